//! Podman, rootful, as a real engine: Debian's podman with runc, its API served by `podman system
//! service` on a socket of the test's own, containers and a pod with its infra container. Names, images,
//! labels and limits are compared with what `podman inspect` and the kernel's cgroup files say.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

const PODMAN_IMAGE: &str = "localhost/stevedore-test/busybox:latest";

/// Podman's settings for the tests: runc (crun refuses this machine's hybrid cgroups) and rlimits the
/// sandbox allows (the defaults exceed them), also for pods' infra containers.
fn conf(dir: &Path) -> PathBuf {
    let path = dir.join("containers.conf");
    std::fs::write(
        &path,
        "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
         [engine]\nruntime = \"runc\"\n",
    )
    .unwrap();
    path
}

/// `podman system service` on a socket in a temporary folder; stopped on drop.
struct Podman {
    dir: tempfile::TempDir,
    service: Option<Child>,
    /// Every container and pod of the test is named `<tag>-…`, and removed on drop.
    tag: String,
}

impl Podman {
    fn start(test: &str) -> Podman {
        let dir = tempfile::tempdir().unwrap();
        conf(dir.path());
        let tag = format!("sdtest-pm-{test}-{}", std::process::id());
        let mut p = Podman {
            dir,
            service: None,
            tag,
        };
        p.serve();
        p.image();
        p
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("podman.sock")
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn serve(&mut self) {
        let _ = std::fs::remove_file(self.socket());
        let child = Command::new("podman")
            .env("CONTAINERS_CONF", self.dir.path().join("containers.conf"))
            .args(["system", "service", "--time=0", &self.host()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("podman (Debian's podman)");
        self.service = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !self.socket().exists() {
            assert!(std::time::Instant::now() < deadline, "podman's API socket");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop_service(&mut self) {
        if let Some(mut c) = self.service.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn run(&self, args: &[&str]) -> String {
        stdout_of(
            Command::new("podman")
                .env("CONTAINERS_CONF", self.dir.path().join("containers.conf"))
                .args(args),
        )
    }

    fn inspect(&self, what: &str, format: &str) -> String {
        self.run(&["inspect", "-f", format, what])
    }

    /// The busybox root filesystem imported with `podman import` (no registry).
    fn image(&self) {
        if self.run(&["images", "-q", PODMAN_IMAGE]).is_empty() {
            let root = self.dir.path().join("root");
            std::fs::create_dir_all(root.join("bin")).unwrap();
            std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
            for applet in ["sh", "sleep"] {
                std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
            }
            let status = Command::new("sh")
                .env("CONTAINERS_CONF", self.dir.path().join("containers.conf"))
                .arg("-c")
                .arg(format!(
                    "tar -C {} -c . | podman import - {PODMAN_IMAGE} >/dev/null",
                    root.display()
                ))
                .status()
                .unwrap();
            assert!(status.success(), "podman import");
        }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let conf = self.dir.path().join("containers.conf");
        let _ = Command::new("sh")
            .env("CONTAINERS_CONF", conf)
            .arg("-c")
            .arg(format!(
                "podman pod rm -f -t 0 {tag}-pod; podman ps -aq --filter name={tag} | \
                 xargs -r podman rm -f -t 0",
                tag = self.tag
            ))
            .output();
        self.stop_service();
    }
}

fn exporter(podman: &Podman, extra: &[&str]) -> Exporter {
    let host = format!("--podman.host={}", podman.host());
    let mut args = vec![
        "--collect.min-age=0",
        "--collector.disable-defaults",
        "--collector.cgroup",
        "--collector.docker",
        host.as_str(),
    ];
    args.extend_from_slice(extra);
    Exporter::start(&args)
}

fn source_up(s: &[Sample], source: &str) -> Option<f64> {
    value(s, "stevedore_source_up", &[("source", source)])
}

#[test]
fn containers_pods_and_events_named_from_podmans_api() {
    let pm = Podman::start("api");
    let tag = pm.tag.clone();
    let solo = format!("{tag}-solo");
    let id = pm.run(&[
        "run",
        "-d",
        "--name",
        &solo,
        "--memory",
        "48m",
        "--label",
        "team=blue",
        "--ulimit",
        "nofile=777:1024",
        "--ulimit",
        "nproc=1024:1024",
        PODMAN_IMAGE,
        "sleep",
        "600",
    ]);
    let pod = format!("{tag}-pod");
    let pod_id = pm.run(&["pod", "create", "--name", &pod]);
    let member = format!("{tag}-member");
    let member_id = pm.run(&[
        "run",
        "-d",
        "--pod",
        &pod,
        "--name",
        &member,
        PODMAN_IMAGE,
        "sleep",
        "600",
    ]);
    let infra_id = pm.run(&["pod", "inspect", "-f", "{{.InfraContainerID}}", &pod]);

    let e = exporter(&pm, &["--docker.labels=team", "--collector.filesystem"]);
    let s = scrape_until(
        &e,
        30,
        "podman's containers named, the layer measured",
        |s| {
            one(s, "container_memory_usage_bytes", &member).is_some()
                && one(s, "container_memory_usage_bytes", &solo).is_some()
                && one(s, "container_fs_usage_bytes", &solo).is_some()
                // Podman's events stream has been seen to end while the other test here stops its
                // own service (the source then reconnects within its backoff): wait for it to be up.
                && source_up(s, "podman") == Some(1.0)
        },
    );
    assert_eq!(
        source_up(&s, "podman"),
        Some(1.0),
        "{}",
        e.drain_log().join("\n")
    );

    // The lone container: its cgroup under libpod_parent, its identity as podman inspect gives it.
    let cg = format!("/libpod_parent/libpod-{id}");
    let usage = by_id(&s, "container_memory_usage_bytes", &cg).expect("the container's cgroup");
    assert_eq!(usage.labels["name"], solo);
    assert_eq!(usage.labels["image"], pm.inspect(&id, "{{.ImageName}}"));
    assert_eq!(usage.labels["container_label_team"], "blue");
    let limit = one(&s, "container_spec_memory_limit_bytes", &solo).unwrap();
    let memory_dir = Path::new("/sys/fs/cgroup/memory").join(cg.trim_start_matches('/'));
    assert_eq!(
        limit,
        read_num(&memory_dir.join("memory.limit_in_bytes"), None)
    );
    assert_eq!(limit.to_string(), pm.inspect(&id, "{{.HostConfig.Memory}}"));
    let cpu = one(&s, "container_cpu_usage_seconds_total", &solo).unwrap();
    let cpuacct = Path::new("/sys/fs/cgroup/cpuacct").join(cg.trim_start_matches('/'));
    assert!(cpu <= read_num(&cpuacct.join("cpuacct.usage"), None) / 1e9);
    assert_eq!(
        value(
            &s,
            "stevedore_container_state",
            &[("name", &solo), ("state", "running")]
        ),
        Some(1.0)
    );
    // Its writable layer: the upper directory podman inspect names, against du.
    let upper = pm.inspect(&id, "{{.GraphDriver.Data.UpperDir}}");
    assert_eq!(
        one(&s, "container_fs_usage_bytes", &solo),
        Some(du_bytes(&upper))
    );
    // The open-files limit given on `podman run`, as the kernel holds it for the container's process.
    let pid = pm.inspect(&id, "{{.State.Pid}}");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let soft: f64 = (limits.lines())
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert_eq!(soft, 777.0);
    assert_eq!(
        value(
            &s,
            "container_ulimits_soft",
            &[("name", &solo), ("ulimit", "max_open_files")]
        ),
        Some(soft)
    );

    // The pod's member and its infra container sit in the pod's cgroup; conmon's cgroups and the pod's
    // own cgroup (a Podman pod, not a Kubernetes one) are not containers.
    let member_cg = format!("/libpod_parent/{pod_id}/libpod-{member_id}");
    let m = by_id(&s, "container_memory_usage_bytes", &member_cg).expect("the member's cgroup");
    assert_eq!(m.labels["name"], member);
    let infra_cg = format!("/libpod_parent/{pod_id}/libpod-{infra_id}");
    let infra = by_id(&s, "container_memory_usage_bytes", &infra_cg).expect("the infra container");
    assert_eq!(infra.labels["name"], pm.inspect(&infra_id, "{{.Name}}"));
    assert_eq!(
        infra.labels["image"],
        pm.inspect(&infra_id, "{{.ImageName}}")
    );
    assert!(
        infra.labels["image"].contains("pause"),
        "{:?}",
        infra.labels
    );
    let ids: Vec<&str> = (s
        .iter()
        .filter(|x| x.name == "container_memory_usage_bytes"))
    .map(|x| x.labels["id"].as_str())
    .collect();
    assert!(!ids.iter().any(|i| i.contains("conmon")), "{ids:?}");
    assert!(!ids.contains(&format!("/libpod_parent/{pod_id}").as_str()));

    // Events: a container started later is named without a relist, a removed one goes.
    let late = format!("{tag}-late");
    let late_id = pm.run(&["run", "-d", "--name", &late, PODMAN_IMAGE, "sleep", "600"]);
    let s = scrape_until(&e, 15, "the late container named", |s| {
        one(s, "container_memory_usage_bytes", &late).is_some()
    });
    let late_cg = format!("/libpod_parent/libpod-{late_id}");
    assert_eq!(
        by_id(&s, "container_memory_usage_bytes", &late_cg).map(|x| x.labels["name"].clone()),
        Some(late.clone())
    );
    pm.run(&["rm", "-f", "-t", "0", &late]);
    scrape_until(&e, 15, "the removed container gone", |s| {
        !s.iter().any(|x| x.labels.get("name") == Some(&late))
    });
    let log = e.drain_log().join("\n");
    assert!(log.contains("podman connected"), "{log}");
}

#[test]
fn names_stay_while_podmans_api_is_down_and_it_reconnects() {
    let mut pm = Podman::start("down");
    let name = format!("{}-c", pm.tag);
    pm.run(&["run", "-d", "--name", &name, PODMAN_IMAGE, "sleep", "600"]);
    let e = exporter(&pm, &[]);
    scrape_until(&e, 30, "the container named", |s| {
        one(s, "container_memory_usage_bytes", &name).is_some()
    });
    pm.stop_service();
    let s = scrape_until(&e, 30, "the podman source down", |s| {
        source_up(s, "podman") == Some(0.0)
    });
    // The cgroup series keep the name known; the scrape as a whole succeeds.
    assert!(one(&s, "container_memory_usage_bytes", &name).is_some());
    assert_eq!(collector_success(&s, "cgroup"), Some(1.0));
    pm.serve();
    scrape_until(&e, 40, "the podman source back", |s| {
        source_up(s, "podman") == Some(1.0)
    });
    let log = e.drain_log().join("\n");
    assert!(
        log.contains("--podman.host"),
        "the hint names the flag: {log}"
    );
}
