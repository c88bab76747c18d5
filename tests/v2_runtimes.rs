//! Real runtimes on a live cgroup v2 kernel with the systemd driver: the release binary in a Debian
//! userland (tests/common/vm.rs, booted by its own systemd) where containerd with runc and with crun,
//! rootful Podman with crun and a rootless user's Podman with crun start containers from an image
//! imported from a root filesystem (no registry). The runtimes make the cgroups (the kubelet's
//! `kubepods-…-pod<uid>.slice/cri-containerd-<id>.scope` and a sandbox beside it, `system.slice`,
//! `machine.slice/libpod-<id>.scope`, `user@1000.service/user.slice/libpod-<id>.scope`), and Stevedore
//! names them through the runtimes' APIs (containerd's socket, Podman's rootful socket and the user's).
//! Each container's cgroup is taken from its main process's /proc/<pid>/cgroup, and the values are
//! checked against that cgroup's files copied before and after the scrape.

mod common;

use common::vm::{Boot, boot_userland, kernels};
use common::{Sample, parse_exposition, promtool_problems, release_binary, strict_problems, value};
use std::collections::BTreeSet;

const POD_UID: &str = "6f1c2b3a_9d8e_4f70_8a1b_2c3d4e5f6071";
const APP: &str = "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1";
const SANDBOX: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
const NERDCTL: &str = "c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2";

fn script() -> String {
    let mut s = String::from(
        r#"C=/sys/fs/cgroup
mark() { echo "at $(cut -d' ' -f1 /proc/uptime) s: $1"; }
mark start
mkdir -p /c/rootfs/bin /c/rootfs/dev /c/rootfs/proc /c/rootfs/sys /c/rootfs/tmp /c/rootfs/etc
cp /usr/local/bin/busybox /c/rootfs/bin/busybox
for a in sh sleep head; do ln -s busybox /c/rootfs/bin/$a; done
tar -C /c/rootfs -c . | podman import -q - localhost/busybox:v2
podman save -q --format oci-archive -o /c/img.tar localhost/busybox:v2
ctr image import /c/img.tar
mark imported
HOG='head -c 20000000 /dev/zero > /dev/shm/hog; sleep 100000'
"#,
    );
    s += &format!(
        "K=kubepods-besteffort-pod{POD_UID}.slice\n\
         POD='--label io.kubernetes.pod.name=web --label io.kubernetes.pod.namespace=shop --label io.kubernetes.pod.uid={POD_UID}'\n\
         ctr run -d --runc-systemd-cgroup --cgroup $K:cri-containerd:{SANDBOX} $POD --label io.cri-containerd.kind=sandbox localhost/busybox:v2 {SANDBOX} sleep 100000\n\
         ctr run -d --runc-systemd-cgroup --cgroup $K:cri-containerd:{APP} $POD --label io.cri-containerd.kind=container --label io.kubernetes.container.name=app --memory-limit 268435456 --cpus 0.5 localhost/busybox:v2 {APP} sh -c \"$HOG\"\n\
         ctr run -d --runc-binary crun --runc-systemd-cgroup --cgroup system.slice:nerdctl:{NERDCTL} --label nerdctl/name=batch --memory-limit 134217728 localhost/busybox:v2 {NERDCTL} sh -c \"$HOG\"\n"
    );
    s += r#"mark containerd
podman run -d -q --runtime crun --name shop-db --network none --memory 256m --cpus 0.5 localhost/busybox:v2 sh -c "$HOG"
systemctl start podman.socket
mark podman
systemctl start user@1000.service
AS_APP='cd; export XDG_RUNTIME_DIR=/run/user/1000 DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus'
su app -s /bin/sh -c "$AS_APP; tar -C /c/rootfs -c . | podman import -q - localhost/busybox:v2
  podman run -d -q --runtime crun --name dev-cache --network none --memory 128m --cpus 0.25 localhost/busybox:v2 sh -c '$HOG'
  systemctl --user start podman.socket"
mark rootless
for t in $(ctr task ls -q); do echo "$t $(ctr task ls | awk -v t=$t '$1 == t {print $2}')"; done > /tmp/pids
echo "shop-db $(podman inspect -f '{{.State.Pid}}' shop-db)" >> /tmp/pids
echo "dev-cache $(su app -s /bin/sh -c "$AS_APP; podman inspect -f '{{.State.Pid}}' dev-cache")" >> /tmp/pids
while read name pid; do echo "$name $pid $(cut -d: -f3 /proc/$pid/cgroup)"; done < /tmp/pids > /out/containers
cat /out/containers
CGS=$(while read name pid cg; do dirname_cg=$cg; case $cg in */container) dirname_cg=${cg%/container};; esac; echo $dirname_cg; done < /out/containers)
echo "$CGS" > /out/scopes
snap() { for cg in $CGS; do for f in memory.current memory.max cpu.max cpu.stat pids.current; do echo $C$cg/$f; done; done | xargs grep -H '' > /out/$1; }
stevedore --web.listen-address=127.0.0.1:9100 > /out/stevedore.log 2>&1 &
for i in $(seq 60); do wget -q -O /out/m0.txt http://127.0.0.1:9100/metrics && grep -q 'stevedore_source_up{source="podman_user1000"} 1' /out/m0.txt && grep -q 'name="dev-cache"' /out/m0.txt && break; sleep 1; done
snap before
wget -q -O /out/m1.txt http://127.0.0.1:9100/metrics
snap after
wget -q -O /out/om.txt --header 'Accept: application/openmetrics-text; version=1.0.0' http://127.0.0.1:9100/metrics
mark done
"#;
    s
}

/// One cgroup file's value in a snapshot (`grep -H` lines `<path>:<content>`), the whole file's text.
fn file(b: &Boot, snap: &str, cg: &str, name: &str) -> String {
    let prefix = format!("/sys/fs/cgroup{cg}/{name}:");
    let text: Vec<String> = (b.read(snap).lines())
        .filter_map(|l| l.strip_prefix(&prefix).map(String::from))
        .collect();
    assert!(!text.is_empty(), "{name} of {cg} not in {snap}");
    text.join("\n")
}

fn key(text: &str, k: &str) -> f64 {
    (text.lines())
        .find_map(|l| l.strip_prefix(&format!("{k} ")))
        .unwrap_or_else(|| panic!("{k} not in {text}"))
        .parse()
        .unwrap()
}

/// (the runtime's name for it, the cgroup of its main process with crun's `container` child folded in).
fn containers(b: &Boot) -> Vec<(String, String)> {
    (b.read("containers").lines())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 3, "{l}");
            let cg = f[2].strip_suffix("/container").unwrap_or(f[2]);
            (f[0].to_string(), cg.to_string())
        })
        .collect()
}

fn check(b: &Boot) {
    let m1 = b.read("m1.txt");
    let samples = parse_exposition(&m1);
    let got = |name: &str, id: &str| {
        value(&samples, name, &[("id", id)])
            .unwrap_or_else(|| panic!("{name}{{id={id}}} not served"))
    };
    let label = |id: &str, l: &str| -> String {
        let s: &Sample = (samples.iter())
            .find(|s| s.name == "container_cpu_usage_seconds_total" && s.labels["id"] == id)
            .unwrap_or_else(|| panic!("{id} not served"));
        s.labels[l].clone()
    };
    let found = containers(b);
    let pod =
        format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{POD_UID}.slice");
    let expected: Vec<(&str, &str, String)> = vec![
        (APP, APP, format!("{pod}/cri-containerd-{APP}.scope")),
        (
            SANDBOX,
            SANDBOX,
            format!("{pod}/cri-containerd-{SANDBOX}.scope"),
        ),
        (
            NERDCTL,
            "batch",
            format!("/system.slice/nerdctl-{NERDCTL}.scope"),
        ),
        ("shop-db", "shop-db", String::new()),
        ("dev-cache", "dev-cache", String::new()),
    ];
    assert_eq!(found.len(), expected.len(), "{found:?}");
    for (runtime_name, served_name, scope) in &expected {
        let (_, cg) = (found.iter().find(|(n, _)| n == runtime_name))
            .unwrap_or_else(|| panic!("{runtime_name} not started: {found:?}"));
        if !scope.is_empty() {
            assert_eq!(cg, scope, "the runtime's cgroup for {runtime_name}");
        }
        assert_eq!(label(cg, "name"), *served_name, "{cg}");
        assert_eq!(label(cg, "image"), "localhost/busybox:v2", "{cg}");
        let (before, after) = (
            |f: &str| file(b, "before", cg, f),
            |f: &str| file(b, "after", cg, f),
        );
        let usage = got("container_cpu_usage_seconds_total", cg);
        let (u0, u1) = (
            key(&before("cpu.stat"), "usage_usec") / 1e6,
            key(&after("cpu.stat"), "usage_usec") / 1e6,
        );
        assert!(
            u0 <= usage && usage <= u1,
            "{cg}: cpu {usage} not in [{u0}, {u1}]"
        );
        let mem = got("container_memory_usage_bytes", cg);
        let (m0, m1): (f64, f64) = (
            before("memory.current").parse().unwrap(),
            after("memory.current").parse().unwrap(),
        );
        let slack = 1024.0 * 1024.0;
        assert!(
            m0.min(m1) - slack <= mem && mem <= m0.max(m1) + slack,
            "{cg}: memory {mem} vs {m0}/{m1}"
        );
        let limit = after("memory.max");
        let served_limit = got("container_spec_memory_limit_bytes", cg);
        if limit == "max" {
            assert_eq!(served_limit, 0.0, "{cg}");
        } else {
            assert_eq!(
                served_limit,
                limit.parse::<f64>().unwrap(),
                "{cg}: memory.max byte for byte"
            );
        }
        let quota = after("cpu.max");
        let q = quota.split_whitespace().next().unwrap();
        if q != "max" {
            assert_eq!(
                got("container_spec_cpu_quota", cg),
                q.parse::<f64>().unwrap(),
                "{cg}: cpu.max {quota}"
            );
        }
        assert_eq!(
            got("container_processes", cg),
            after("pids.current").parse::<f64>().unwrap(),
            "{cg}"
        );
        if *runtime_name != SANDBOX {
            let ws = got("container_memory_working_set_bytes", cg);
            assert!(
                ws >= 20e6 && ws <= mem,
                "{cg}: working set {ws} with a 20 MB hog, usage {mem}"
            );
        }
    }
    let app = format!("{pod}/cri-containerd-{APP}.scope");
    for (l, v) in [("pod", "web"), ("namespace", "shop"), ("container", "app")] {
        assert_eq!(label(&app, l), v, "{app}: {l}");
    }
    // Rootful and rootless Podman on the systemd driver, and what is left out: conmon, the rootless
    // pause process's scope, the user's own services.
    let ids: BTreeSet<String> = (samples.iter())
        .filter(|s| s.name == "container_cpu_usage_seconds_total")
        .map(|s| s.labels["id"].clone())
        .collect();
    let mut want: BTreeSet<String> = found.iter().map(|(_, cg)| cg.clone()).collect();
    want.insert("/".into());
    want.insert(pod);
    assert_eq!(ids, want, "served ids against the runtimes' cgroups");
    let db = &found.iter().find(|(n, _)| n == "shop-db").unwrap().1;
    assert!(
        db.starts_with("/machine.slice/libpod-") && db.ends_with(".scope"),
        "{db}"
    );
    let dev = &found.iter().find(|(n, _)| n == "dev-cache").unwrap().1;
    assert!(
        dev.starts_with("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-"),
        "{dev}"
    );
    for source in ["containerd", "podman", "podman_user1000"] {
        assert_eq!(
            value(&samples, "stevedore_source_up", &[("source", source)]),
            Some(1.0),
            "{source}"
        );
    }
    assert_eq!(promtool_problems(&m1), Vec::<String>::new());
    assert_eq!(strict_problems(&b.read("om.txt")), Vec::<String>::new());
}

fn run(which: usize) {
    let binary = release_binary();
    let k = &kernels()[which];
    let b = boot_userland(k, &binary, &script());
    println!(
        "{} ({}): booted and ran in {:.1} s",
        k.package,
        k.release,
        b.took.as_secs_f64()
    );
    let log = b.read("script.log");
    println!("{log}");
    assert!(
        log.contains("script exit 0"),
        "{log}\nstevedore:\n{}",
        b.read("stevedore.log")
    );
    check(&b);
}

#[test]
fn runtimes_on_bookworms_kernel() {
    run(0);
}

#[test]
fn runtimes_on_the_newer_kernel() {
    run(kernels().len() - 1);
}
