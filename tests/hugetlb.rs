//! Huge pages on the real kernel. This host's hugetlb controller is bound to no v1 hierarchy and enabled in
//! no v2 subtree, so the test gives it a v1 hierarchy of its own, mounted in a private mount namespace that
//! runc and dockerd do not see and that goes away with the test. It reserves a few 2 MB pages, charges them
//! to a cgroup of its own with fallocate on a hugetlbfs mounted in that namespace, runs into the cgroup's
//! limit once, and compares every hugetlb series with the kernel's files.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::kube::CgroupDirs;
use common::*;

const POOL: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";

fn run(cmd: &mut Command) -> bool {
    cmd.status()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
        .success()
}

fn file_num(p: &Path) -> f64 {
    let t = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    t.trim().parse().unwrap()
}

/// The private mount namespace (held by a sleeping process) with the hugetlb hierarchy and a hugetlbfs
/// mounted in it, and the 2 MB pool grown by a few pages; all undone on drop.
struct HugeSandbox {
    holder: Child,
    dir: tempfile::TempDir,
    pool_before: String,
}

impl HugeSandbox {
    fn start() -> HugeSandbox {
        let dir = tempfile::tempdir().unwrap();
        for d in ["cg", "fs"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        let holder = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sleep", "600"])
            .spawn()
            .expect("unshare (util-linux)");
        let pool_before = std::fs::read_to_string(POOL).unwrap().trim().to_string();
        let sandbox = HugeSandbox {
            holder,
            dir,
            pool_before,
        };
        let ns = |p: &str| std::fs::read_link(p).ok();
        let deadline = Instant::now() + Duration::from_secs(5);
        while ns(&format!("/proc/{}/ns/mnt", sandbox.holder.id())) == ns("/proc/self/ns/mnt") {
            assert!(Instant::now() < deadline, "unshare made no mount namespace");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mount = |args: &[&str]| {
            let pid = sandbox.holder.id().to_string();
            run(Command::new("nsenter")
                .args(["-t", &pid, "-m", "mount"])
                .args(args))
        };
        let cg = sandbox.dir.path().join("cg");
        assert!(
            mount(&[
                "-t",
                "cgroup",
                "-o",
                "hugetlb",
                "sdtest-hugetlb",
                cg.to_str().unwrap()
            ]),
            "cannot mount a hugetlb hierarchy: the controller is in use in a v2 subtree here"
        );
        let fs = sandbox.dir.path().join("fs");
        assert!(mount(&[
            "-t",
            "hugetlbfs",
            "-o",
            "pagesize=2M",
            "sdtest-hugetlbfs",
            fs.to_str().unwrap()
        ]));
        let want: u64 = sandbox.pool_before.parse::<u64>().unwrap() + 6;
        std::fs::write(POOL, want.to_string()).unwrap();
        let got: u64 = std::fs::read_to_string(POOL)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(got, want, "the kernel could not reserve 6 more 2 MB pages");
        sandbox
    }

    /// A path inside the namespace, as the host reaches it.
    fn inside(&self, rel: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.holder.id()))
            .join(self.dir.path().strip_prefix("/").unwrap())
            .join(rel)
    }

    /// Runs fallocate on the namespace's hugetlbfs from a process in hugetlb cgroup `cgroup`.
    fn fallocate(&self, cgroup: &str, bytes: u64, file: &str) -> bool {
        let procs = self.inside(&format!("cg/{cgroup}/cgroup.procs"));
        let target = self.inside(&format!("fs/{file}"));
        run(Command::new("sh").args([
            "-c",
            &format!(
                "echo $$ > {} && exec fallocate -l {bytes} {}",
                procs.display(),
                target.display()
            ),
        ]))
    }

    /// A sysfs whose cgroup folder is the host's plus this hugetlb hierarchy.
    fn sysfs(&self) -> PathBuf {
        let sys = self.dir.path().join("sys");
        let cgroups = sys.join("fs/cgroup");
        std::fs::create_dir_all(&cgroups).unwrap();
        for e in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            std::os::unix::fs::symlink(e.path(), cgroups.join(e.file_name())).unwrap();
        }
        std::os::unix::fs::symlink(self.inside("cg"), cgroups.join("hugetlb")).unwrap();
        std::os::unix::fs::symlink("/sys/kernel", sys.join("kernel")).unwrap();
        sys
    }
}

impl Drop for HugeSandbox {
    fn drop(&mut self) {
        for f in ["a", "b"] {
            let _ = std::fs::remove_file(self.inside(&format!("fs/{f}")));
        }
        if let Ok(entries) = std::fs::read_dir(self.inside("cg")) {
            for e in entries.flatten().filter(|e| e.path().is_dir()) {
                let _ = std::fs::remove_dir(e.path());
            }
        }
        // A removed cgroup is freed a moment later. The kernel destroys the hierarchy (and gives the
        // controller back to v2) at the unmount only if its root has no child left by then.
        wait_hugetlb_cgroups(|n| n <= 1);
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        wait_hugetlb_cgroups(|n| n != 1);
        let _ = std::fs::write(POOL, &self.pool_before);
    }
}

/// Waits (at most 10 s) until the hugetlb line of /proc/cgroups has a cgroup count `ok` accepts.
fn wait_hugetlb_cgroups(ok: impl Fn(u64) -> bool) {
    let count = || {
        let text = std::fs::read_to_string("/proc/cgroups").ok()?;
        let line = text.lines().find(|l| l.starts_with("hugetlb\t"))?;
        line.split_whitespace().nth(2)?.parse().ok()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !count().is_some_and(&ok) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn hugetlb_usage_peak_failures_and_limit_against_the_kernel() {
    let sandbox = HugeSandbox::start();
    let name = format!("sdtest-hugetlb-{}", std::process::id());
    let id = format!("/{name}");
    let _dirs = CgroupDirs::make(std::slice::from_ref(&id));
    let cg = sandbox.inside(&format!("cg/{name}"));
    std::fs::create_dir(&cg).unwrap();
    std::fs::write(
        cg.join("hugetlb.2MB.limit_in_bytes"),
        (8u64 << 20).to_string(),
    )
    .unwrap();
    assert!(
        sandbox.fallocate(&name, 4 << 20, "a"),
        "4 MiB within the limit"
    );
    assert!(
        !sandbox.fallocate(&name, 16 << 20, "b"),
        "16 MiB more is over the limit"
    );

    let sys = sandbox.sysfs();
    let e = Exporter::start(&[
        &format!("--path.sysfs={}", sys.display()),
        "--collector.disable-defaults",
        "--collector.cgroup",
        "--collector.cgroup.include-system",
        "--collect.min-age=0",
    ]);
    let body = e.metrics();
    assert_eq!(promtool_problems(&body), Vec::<String>::new());
    let s = parse_exposition(&body);
    let at = |metric: &str, id: &str| value(&s, metric, &[("id", id), ("pagesize", "2MB")]);
    let kernel = |what: &str| Some(file_num(&cg.join(format!("hugetlb.2MB.{what}"))));
    let usage = kernel("usage_in_bytes");
    assert!(usage >= Some((4 << 20) as f64), "{usage:?}");
    assert_eq!(at("container_hugetlb_usage_bytes", &id), usage);
    assert_eq!(
        at("container_hugetlb_max_usage_bytes", &id),
        kernel("max_usage_in_bytes")
    );
    let failcnt = kernel("failcnt");
    assert!(
        failcnt >= Some(1.0),
        "the refused allocation is counted: {failcnt:?}"
    );
    assert_eq!(at("container_hugetlb_failcnt_total", &id), failcnt);
    assert_eq!(
        at("stevedore_container_hugetlb_limit_bytes", &id),
        kernel("limit_in_bytes")
    );
    // The hierarchy's root: everything charged in it; its limit is the kernel's "none".
    let root = sandbox.inside("cg");
    assert_eq!(
        at("container_hugetlb_usage_bytes", "/"),
        Some(file_num(&root.join("hugetlb.2MB.usage_in_bytes")))
    );
    assert_eq!(
        at("stevedore_container_hugetlb_limit_bytes", "/"),
        Some(0.0)
    );
    // Page sizes without a pool (1 GB here) have no series; cgroups outside this hierarchy have none.
    let sizes: Vec<&str> = s
        .iter()
        .filter(|x| x.name == "container_hugetlb_usage_bytes")
        .map(|x| x.labels["pagesize"].as_str())
        .collect();
    for e in std::fs::read_dir("/sys/kernel/mm/hugepages")
        .unwrap()
        .flatten()
    {
        let pool = file_num(&e.path().join("nr_hugepages"));
        let name = e.file_name().to_string_lossy().into_owned();
        let kib: u64 = name["hugepages-".len()..name.len() - 2].parse().unwrap();
        let size = match kib {
            k if k >= 1 << 20 => format!("{}GB", k >> 20),
            k if k >= 1 << 10 => format!("{}MB", k >> 10),
            k => format!("{k}KB"),
        };
        assert_eq!(
            sizes.contains(&size.as_str()),
            pool > 0.0,
            "{name}: {sizes:?}"
        );
    }
    assert_eq!(
        sizes.len(),
        2,
        "only the root and the test's cgroup: {sizes:?}"
    );

    // Freed pages leave the cgroup: read afresh at the next scrape.
    for f in ["a", "b"] {
        std::fs::remove_file(sandbox.inside(&format!("fs/{f}"))).unwrap();
    }
    // The kernel may give the pages back a moment after the unlink.
    let deadline = Instant::now() + Duration::from_secs(10);
    while kernel("usage_in_bytes") != Some(0.0) {
        assert!(Instant::now() < deadline, "the pages were not freed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = parse_exposition(&e.metrics());
    let after = value(
        &s,
        "container_hugetlb_usage_bytes",
        &[("id", &id), ("pagesize", "2MB")],
    );
    assert_eq!(after, Some(0.0));
}
