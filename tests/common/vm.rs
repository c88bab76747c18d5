//! A live cgroup v2 kernel for the tests, without touching this host's cgroups: Debian's own kernel
//! package (downloaded and unpacked under target/v2-kernels by ./scripts/test, never installed) boots in
//! qemu-system-x86 (TCG) with an initramfs made here: busybox-static, the static release binary, the
//! virtio modules and an /init that mounts cgroup2 with every controller enabled, runs the test's shell
//! script, and sends back the script's /out directory as base64 tar on the second serial port. A
//! virtio disk (/dev/vda, 64 MiB) is there for direct block I/O.
//!
//! [`boot_userland`] boots the same way into a Debian userland (made by ./scripts/test with mmdebstrap:
//! containerd, runc, crun, podman, conmon, uidmap, a user `app` with subordinate ids) on a second virtio
//! disk (/dev/vdb, ext4, opened with qemu's `snapshot=on` so the image is never written): the initramfs
//! mounts it, copies the binary and the script in and `switch_root`s to it, so runtimes can
//! `pivot_root` as on a real node (they cannot from an initramfs).

#![allow(dead_code)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// An unpacked kernel package: target/v2-kernels/<package version>/{boot,lib/modules}.
pub struct Kernel {
    pub package: String,
    pub release: String,
    pub vmlinuz: PathBuf,
    pub modules: PathBuf,
}

/// Every kernel ./scripts/test unpacked, oldest package first.
pub fn kernels() -> Vec<Kernel> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/v2-kernels");
    let mut out: Vec<Kernel> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run ./scripts/test (it unpacks the kernels)",
                root.display()
            )
        })
        .flatten()
        .filter_map(|d| {
            let modules = std::fs::read_dir(d.path().join("lib/modules"))
                .ok()?
                .flatten()
                .next()?;
            let release = modules.file_name().to_string_lossy().into_owned();
            Some(Kernel {
                package: d.file_name().to_string_lossy().into_owned(),
                vmlinuz: d.path().join(format!("boot/vmlinuz-{release}")),
                modules: modules.path(),
                release,
            })
        })
        .collect();
    out.sort_by(|a, b| a.package.cmp(&b.package));
    assert!(
        !out.is_empty(),
        "no kernel under {}: run ./scripts/test",
        root.display()
    );
    out
}

/// What a boot brought back: the script's /out, the console log, and how long the boot took.
pub struct Boot {
    pub out: tempfile::TempDir,
    pub console: String,
    pub took: Duration,
}

impl Boot {
    pub fn read(&self, rel: &str) -> String {
        let p = self.out.path().join(rel);
        std::fs::read_to_string(&p).unwrap_or_else(|e| {
            panic!(
                "{} from the VM: {e}\nconsole:\n{}",
                p.display(),
                self.console
            )
        })
    }
}

const MODULES: [&str; 17] = [
    "drivers/virtio/virtio_ring",
    "drivers/virtio/virtio",
    "drivers/virtio/virtio_pci_legacy_dev",
    "drivers/virtio/virtio_pci_modern_dev",
    "drivers/virtio/virtio_pci",
    "drivers/block/virtio_blk",
    // The userland's ext4 disk, and overlay for the runtimes.
    "lib/crc16",
    "crypto/crc32c_generic",
    "lib/libcrc32c",
    "fs/mbcache",
    "fs/jbd2/jbd2",
    "fs/ext4/ext4",
    "fs/overlayfs/overlay",
    // The NIC of Options::forwards, and veth for a pod's network namespace.
    "net/core/failover",
    "drivers/net/net_failover",
    "drivers/net/virtio_net",
    "drivers/net/veth",
];

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for pass in 1 2 3; do for m in /lib/modules/*.ko; do insmod "$m" 2>/dev/null && rm "$m"; done; done
if [ -e /userland ]; then
  mkdir /newroot; mount -t ext4 /dev/vdb /newroot
  cp /bin/busybox /newroot/usr/local/bin/busybox; cp /bin/stevedore /newroot/usr/bin/stevedore
  cp /script.sh /stage2 /newroot/; mkdir -p /newroot/out
  cp /stevedore-vm.service /newroot/etc/systemd/system/
  ln -s ../stevedore-vm.service /newroot/etc/systemd/system/multi-user.target.wants/
  ln -s /dev/null /newroot/etc/systemd/system/serial-getty@ttyS0.service
  for m in proc sys dev; do mount --move /$m /newroot/$m; done
  exec switch_root /newroot /lib/systemd/systemd
fi
exec /bin/busybox sh /stage2
"#;

/// The userland's systemd runs the second stage once it is up.
const UNIT: &str = "[Unit]\nDescription=Stevedore VM test\nAfter=basic.target dbus.service containerd.service\n\
[Service]\nType=oneshot\nExecStart=/usr/local/bin/busybox sh /stage2\n";

/// The second stage, as PID 1 of the initramfs (which mounts cgroup2 itself) or as a service of the
/// userland's systemd (which has mounted it): every controller on, the script, /out back, power off.
const STAGE2: &str = r#"
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/bin HOME=/root
[ -e /usr/local/bin/busybox ] && /usr/local/bin/busybox --install -s /usr/local/bin
if [ $$ = 1 ]; then
  mount -t cgroup2 cgroup2 /sys/fs/cgroup; mount -t tmpfs tmp /tmp; mount -t tmpfs run /run
  ip link set lo up
fi
cd /sys/fs/cgroup && for c in $(cat cgroup.controllers); do echo "+$c" > cgroup.subtree_control; done; cd /
echo "controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control)" > /dev/ttyS0
sh -e /script.sh > /out/script.log 2>&1; echo "script exit $?" >> /out/script.log
tar -C /out -c . | base64 > /dev/ttyS1
echo VM-DONE > /dev/ttyS0
poweroff -f
"#;

/// The userland image ./scripts/test makes (target/v2-userland/root.ext4).
pub fn userland() -> PathBuf {
    let image = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/v2-userland/root.ext4");
    assert!(
        image.exists(),
        "{}: run ./scripts/test (it makes the userland with mmdebstrap)",
        image.display()
    );
    image
}

/// What a boot may change from the defaults.
pub struct Options {
    /// The Debian userland of [`userland`] as the root file system, not the busybox initramfs.
    pub userland: bool,
    /// More files for the initramfs: (from, path in the initramfs such as `bin/tool`), as they are.
    pub extra: Vec<(PathBuf, String)>,
    /// Seconds before qemu is killed.
    pub timeout_s: u32,
    /// The VM's memory, MiB.
    pub memory_mb: u32,
    /// TCP ports of the VM reachable on the host's 127.0.0.1: (host port, VM port). With any, the VM
    /// has a virtio NIC on qemu's user network (VM 10.0.2.15/24; the host's 127.0.0.1 is 10.0.2.2).
    pub forwards: Vec<(u16, u16)>,
}

impl Options {
    pub fn new(userland: bool) -> Options {
        Options {
            userland,
            extra: Vec::new(),
            timeout_s: 420,
            memory_mb: if userland { 1536 } else { 1024 },
            forwards: Vec::new(),
        }
    }
}

/// Boots `kernel` with `script` (run by `sh -e` as root, its output in /out/script.log) and returns /out.
pub fn boot(kernel: &Kernel, binary: &Path, script: &str) -> Boot {
    start(kernel, binary, script, Options::new(false)).finish()
}

/// As [`boot`], with the Debian userland of [`userland`] as the root file system.
pub fn boot_userland(kernel: &Kernel, binary: &Path, script: &str) -> Boot {
    start(kernel, binary, script, Options::new(true)).finish()
}

/// A VM running; killed on drop unless [`Running::finish`] waited for it.
pub struct Running {
    qemu: Option<std::process::Child>,
    dir: tempfile::TempDir,
    t0: Instant,
}

/// Starts `kernel` with `script` and `o`, without waiting for it.
pub fn start(kernel: &Kernel, binary: &Path, script: &str, o: Options) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let initrd = dir.path().join("initrd.cpio");
    let root = dir.path().join("root");
    for (from, to) in &o.extra {
        let to = root.join(to);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, &to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }
    initramfs(kernel, binary, script, o.userland, &root, &initrd);
    let disk = dir.path().join("disk.img");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let (console, data) = (dir.path().join("console.log"), dir.path().join("data.b64"));
    let mut qemu = Command::new("timeout");
    qemu.arg(o.timeout_s.to_string())
        .args(["qemu-system-x86_64", "-accel", "tcg", "-smp", "2"])
        .args(["-m", &o.memory_mb.to_string()])
        .args(["-display", "none", "-monitor", "none", "-no-reboot"])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet hugepages=8"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-serial")
        .arg(format!("file:{}", data.display()))
        .arg("-drive")
        .arg(format!("file={},if=virtio,format=raw", disk.display()));
    if o.userland {
        qemu.arg("-drive").arg(format!(
            "file={},if=virtio,format=raw,snapshot=on",
            userland().display()
        ));
    }
    if o.forwards.is_empty() {
        qemu.args(["-nic", "none"]);
    } else {
        let fwd: String = o
            .forwards
            .iter()
            .map(|(h, g)| format!(",hostfwd=tcp:127.0.0.1:{h}-:{g}"))
            .collect();
        qemu.args(["-netdev", &format!("user,id=n0{fwd}")])
            .args(["-device", "virtio-net-pci,netdev=n0"]);
    }
    let t0 = Instant::now();
    let child = qemu
        .spawn()
        .expect("qemu-system-x86_64 (Debian's qemu-system-x86; ./scripts/test installs it)");
    Running {
        qemu: Some(child),
        dir,
        t0,
    }
}

impl Running {
    /// Waits for the VM to power off and returns what it brought back.
    pub fn finish(mut self) -> Boot {
        let status = self.qemu.take().unwrap().wait().unwrap();
        let took = self.t0.elapsed();
        let console = self.console();
        assert!(
            status.success() && console.contains("VM-DONE"),
            "{status}; console:\n{console}"
        );
        let out = untar_base64(&self.dir.path().join("data.b64"), &console);
        Boot { out, console, took }
    }

    /// The console so far.
    pub fn console(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("console.log")).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // TERM, which timeout passes on to qemu (a KILL would leave qemu running).
        if let Some(mut q) = self.qemu.take() {
            let _ = Command::new("kill").arg(q.id().to_string()).status();
            let _ = q.wait();
        }
    }
}

/// The initramfs: busybox, the binary, the modules, /init, /stage2 and the script (and /userland, a
/// marker that makes /init switch to the userland disk).
fn initramfs(kernel: &Kernel, binary: &Path, script: &str, userland: bool, root: &Path, to: &Path) {
    for d in [
        "bin",
        "proc",
        "sys",
        "dev",
        "tmp",
        "run",
        "out",
        "lib/modules",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let copy = |from: &Path, to: &str| {
        std::fs::copy(from, root.join(to)).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    };
    copy(Path::new("/bin/busybox"), "bin/busybox");
    copy(binary, "bin/stevedore");
    // Modules as the package has them: plain (6.1) or xz-compressed (6.12, where virtio and virtio_pci
    // are built in and so absent).
    for m in MODULES {
        let name = m.rsplit('/').next().unwrap();
        let to = format!("lib/modules/{name}.ko");
        let plain = kernel.modules.join(format!("kernel/{m}.ko"));
        let xz = kernel.modules.join(format!("kernel/{m}.ko.xz"));
        if plain.exists() {
            copy(&plain, &to);
        } else if xz.exists() {
            let out = Command::new("xz").arg("-dc").arg(&xz).output().unwrap();
            assert!(out.status.success(), "xz -dc {}", xz.display());
            std::fs::write(root.join(&to), out.stdout).unwrap();
        }
    }
    let marker = if userland { "userland" } else { "initramfs" };
    let files = [
        ("init", INIT),
        ("stage2", STAGE2),
        ("stevedore-vm.service", UNIT),
        ("script.sh", script),
        (marker, ""),
    ];
    for (name, text) in files {
        std::fs::write(root.join(name), text).unwrap();
        std::fs::set_permissions(root.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    write_cpio(root, to);
}

/// The VM's /out, sent as base64 tar on its second serial port, unpacked into a new directory.
fn untar_base64(data: &Path, console: &str) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let b64: String = std::fs::read_to_string(data)
        .unwrap()
        .split_whitespace()
        .collect();
    let mut tar = Command::new("sh")
        .arg("-c")
        .arg("base64 -d | tar -x -C \"$0\"")
        .arg(out.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tar.stdin.take().unwrap().write_all(b64.as_bytes()).unwrap();
    assert!(
        tar.wait().unwrap().success(),
        "the VM's /out did not come back; console:\n{console}"
    );
    out
}

/// An initramfs: a cpio archive in the kernel's "newc" format of every file and directory under `root`.
fn write_cpio(root: &Path, to: &Path) {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::io::BufWriter::new(std::fs::File::create(to).unwrap());
    let mut entries = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
            entries.push(e.path());
        }
    }
    entries.sort();
    let pad = |n: usize| vec![0u8; (4 - n % 4) % 4];
    let record = |out: &mut dyn Write, ino: usize, name: &str, mode: u32, data: &[u8]| {
        let fields = [
            ino as u32,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        let mut h = String::from("070701");
        for f in fields {
            h.push_str(&format!("{f:08x}"));
        }
        let mut head = h.into_bytes();
        head.extend_from_slice(name.as_bytes());
        head.push(0);
        let p = pad(head.len());
        out.write_all(&head).unwrap();
        out.write_all(&p).unwrap();
        out.write_all(data).unwrap();
        out.write_all(&pad(data.len())).unwrap();
    };
    for (i, p) in entries.iter().enumerate() {
        let meta = std::fs::symlink_metadata(p).unwrap();
        let name = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let data = if meta.is_file() {
            std::fs::read(p).unwrap()
        } else {
            vec![]
        };
        record(&mut out, i + 1, &name, meta.mode(), &data);
    }
    record(&mut out, entries.len() + 1, "TRAILER!!!", 0, &[]);
}
