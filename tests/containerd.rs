//! containerd as a real engine: dockerd's own containerd, driven with `ctr` (containers from a plain
//! folder or from an image imported from Docker, no registry). Plain containers in a namespace of the
//! test's own (`/<namespace>/<id>` cgroups, told apart only through the API), and a Kubernetes node on
//! containerd: the CRI labels in namespace `k8s.io`, in the kubelet's cgroup layout, with no kubelet and
//! no Docker identity. Names, images, labels and values are compared with what `ctr` and the kernel's
//! cgroup files say.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const SOCKET: &str = "/var/run/docker/containerd/containerd.sock";

fn ctr(ns: &str, args: &[&str]) -> String {
    stdout_of(
        Command::new("ctr")
            .args(["-a", SOCKET, "-n", ns])
            .args(args),
    )
}

/// A folder with Debian's busybox-static and its applet links: a root filesystem for `ctr run --rootfs`.
fn rootfs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    for d in ["bin", "tmp", "proc", "dev", "sys"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("/bin/busybox (busybox-static)");
    for applet in ["sh", "sleep", "head", "tr"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    dir
}

/// A container run with `ctr run -d`; its task killed and the container deleted on drop.
struct Ctr {
    ns: String,
    id: String,
}

impl Ctr {
    /// `ctr run -d <opts> [image] <id> <cmd>` (opts hold `--rootfs <dir>` when there is no image).
    fn run(ns: &str, id: &str, opts: &[&str], image: Option<&str>, cmd: &[&str]) -> Ctr {
        let mut args = vec!["run", "-d"];
        args.extend_from_slice(opts);
        args.extend(image);
        args.push(id);
        args.extend_from_slice(cmd);
        let c = Ctr {
            ns: ns.to_string(),
            id: id.to_string(),
        };
        ctr(ns, &args);
        c
    }

    /// `ctr containers info`: the container as containerd stores it.
    fn info(&self) -> serde_json::Value {
        serde_json::from_str(&ctr(&self.ns, &["containers", "info", &self.id])).unwrap()
    }

    fn kill(&self) {
        let _ = Command::new("ctr")
            .args([
                "-a", SOCKET, "-n", &self.ns, "tasks", "kill", "-s", "KILL", &self.id,
            ])
            .output();
    }

    fn stop(&self) {
        self.kill();
        for _ in 0..50 {
            let out = Command::new("ctr")
                .args(["-a", SOCKET, "-n", &self.ns, "tasks", "rm", &self.id])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            if out.status.success() || err.contains("not found") {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    fn delete(&self) {
        self.stop();
        let _ = Command::new("ctr")
            .args(["-a", SOCKET, "-n", &self.ns, "containers", "rm", &self.id])
            .output();
    }
}

impl Drop for Ctr {
    fn drop(&mut self) {
        self.delete();
    }
}

fn exporter(extra: &[&str]) -> Exporter {
    let address = format!("--containerd.address=unix://{SOCKET}");
    let mut args = vec![address.as_str()];
    args.extend_from_slice(extra);
    docker_exporter(&args)
}

fn v1(path: &str, controller: &str, file: &str) -> std::path::PathBuf {
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(path.trim_start_matches('/'))
        .join(file)
}

#[test]
fn plain_containers_are_named_measured_and_followed() {
    let pid = std::process::id();
    let ns = format!("sdtest-ctr-{pid}");
    let _ns = Namespace(ns.clone());
    let root = rootfs();
    let rootfs = root.path().to_str().unwrap();
    let web_name = format!("web-{pid}");
    let nerdctl_label = format!("nerdctl/name={web_name}");
    let web = Ctr::run(
        &ns,
        &format!("web-{pid}-id"),
        &[
            "--memory-limit",
            "67108864",
            "--label",
            "app=shop",
            "--label",
            &nerdctl_label,
            "--rootfs",
            rootfs,
        ],
        None,
        &["/bin/sh", "-c", "while :; do :; done"],
    );
    let idle = Ctr::run(
        &ns,
        &format!("idle-{pid}"),
        &["--rootfs", rootfs],
        None,
        &["/bin/sleep", "1000"],
    );
    // A Docker container too: dockerd keeps it in containerd's `moby` namespace, which the containerd
    // source leaves to the Docker source.
    let docker_c = Container::run("ctr-docker", &[], "sleep 1000");
    let e = exporter(&["--docker.labels=app"]);
    let web_path = format!("/{ns}/{}", web.id);
    let idle_path = format!("/{ns}/{}", idle.id);
    let s = scrape_until(&e, 30, "both containerd containers", |s| {
        by_id(s, "container_last_seen", &web_path).is_some_and(|x| x.labels["name"] == web_name)
            && by_id(s, "container_last_seen", &idle_path)
                .is_some_and(|x| x.labels["name"] == idle.id)
            && known(&docker_c)(s)
    });
    assert_eq!(
        value(&s, "stevedore_source_up", &[("source", "containerd")]),
        Some(1.0)
    );
    let w = by_id(&s, "container_spec_memory_limit_bytes", &web_path).unwrap();
    assert_eq!(w.labels["image"], web.info()["Image"].as_str().unwrap());
    assert_eq!(w.labels["container_label_app"], "shop");
    assert_eq!(
        w.value,
        read_num(&v1(&web_path, "memory", "memory.limit_in_bytes"), None)
    );
    assert_eq!(w.value, 67108864.0);
    // CPU between two independent reads of the kernel's counter around a scrape.
    let before = read_num(&v1(&web_path, "cpuacct", "cpuacct.usage"), None) / 1e9;
    let s = parse_exposition(&e.metrics());
    let after = read_num(&v1(&web_path, "cpuacct", "cpuacct.usage"), None) / 1e9;
    let cpu = by_id(&s, "container_cpu_usage_seconds_total", &web_path)
        .unwrap()
        .value;
    assert!(
        before > 0.0 && before <= cpu && cpu <= after,
        "{before} <= {cpu} <= {after}"
    );
    // Start time: the container's creation time in containerd.
    let created = web.info()["CreatedAt"].as_str().unwrap().to_string();
    let start = by_id(&s, "container_start_time_seconds", &web_path)
        .unwrap()
        .value;
    let created = humantime::parse_rfc3339(&created)
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (start - created).abs() < 1.0,
        "start {start} vs created {created}"
    );
    // Docker's container once, with its Docker name (not again from the moby namespace).
    assert_eq!(named(&s, "container_last_seen", &docker_c.name).len(), 1);
    assert!(
        !s.iter()
            .any(|x| x.name == "container_last_seen" && x.labels["name"] == docker_c.id)
    );

    // Followed through the events: a container started now is named, a stopped task is `exited`, a
    // deleted container is gone.
    let late = Ctr::run(
        &ns,
        &format!("late-{pid}"),
        &["--label", "app=late", "--rootfs", rootfs],
        None,
        &["/bin/sleep", "1000"],
    );
    let late_path = format!("/{ns}/{}", late.id);
    scrape_until(&e, 20, "the late container", |s| {
        by_id(s, "container_last_seen", &late_path)
            .is_some_and(|x| x.labels["container_label_app"] == "late")
    });
    idle.kill();
    let state = |s: &[Sample], id: &str, st: &str| {
        s.iter().any(|x| {
            x.name == "stevedore_container_state"
                && x.labels["name"] == id
                && x.labels["state"] == st
                && x.value == 1.0
        })
    };
    scrape_until(&e, 20, "the idle container exited", |s| {
        state(s, &idle.id, "exited")
    });
    idle.delete();
    late.delete();
    let s = scrape_until(&e, 20, "deleted containers gone", |s| {
        !s.iter().any(|x| {
            x.labels.get("name") == Some(&idle.id) || x.labels.get("id") == Some(&late_path)
        })
    });
    assert!(state(&s, &web_name, "running"));
}

/// The test's namespace, removed on drop (after its containers: declared before them), with the
/// `/<namespace>` cgroup runc made for it in every hierarchy.
struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ctr")
            .args(["-a", SOCKET, "namespaces", "rm", &self.0])
            .output();
        drop(RemoveCgroups(vec![self.0.clone()]));
    }
}

#[test]
fn unreachable_containerd_is_a_down_source_with_a_hint() {
    let e = exporter_at("unix:///nonexistent/containerd.sock");
    let s = scrape_until(&e, 10, "containerd source reported", |s| {
        value(s, "stevedore_source_up", &[("source", "containerd")]).is_some()
    });
    assert_eq!(
        value(&s, "stevedore_source_up", &[("source", "containerd")]),
        Some(0.0)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut lines = Vec::new();
    while std::time::Instant::now() < deadline
        && !lines
            .iter()
            .any(|l: &String| l.contains("source=containerd"))
    {
        lines.extend(e.drain_log());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let line = lines
        .iter()
        .find(|l| l.contains("source=containerd"))
        .expect("a log line");
    assert!(
        line.contains("--containerd.address") && line.contains("/nonexistent/containerd.sock"),
        "{line}"
    );
    // The rest is served.
    assert_eq!(collector_success(&s, "cgroup"), Some(1.0));
}

fn exporter_at(address: &str) -> Exporter {
    let flag = format!("--containerd.address={address}");
    docker_exporter(&[&flag])
}

/// A 64-hex id unique to this test process.
fn hex_id(prefix: &str) -> String {
    format!(
        "{prefix}{:0>width$x}",
        std::process::id(),
        width = 64 - prefix.len()
    )
}

#[test]
fn kubernetes_node_on_containerd() {
    const K8S: &str = "k8s.io";
    let pid = std::process::id();
    // The pause image and the app's image, imported from Docker into containerd (no registry).
    ensure_image();
    let pause = format!("registry.k8s.io/pause:sdtest-{pid}");
    docker(&["tag", IMAGE, &pause]);
    let import = |image: &str| {
        let st = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "docker save {image} | ctr -a {SOCKET} -n {K8S} images import -"
            ))
            .status()
            .unwrap();
        assert!(st.success(), "import {image}");
    };
    import(&pause);
    import(IMAGE);
    let _ = docker(&["rmi", &pause]);
    struct Images(Vec<String>);
    impl Drop for Images {
        fn drop(&mut self) {
            for i in &self.0 {
                let _ = Command::new("ctr")
                    .args(["-a", SOCKET, "-n", "k8s.io", "images", "rm", i])
                    .output();
            }
        }
    }
    let image_ref = ctr(K8S, &["images", "ls", "-q"])
        .lines()
        .find(|l| l.contains("stevedore-test/busybox"))
        .expect("the imported test image")
        .to_string();
    let _images = Images(vec![pause.clone(), image_ref.clone()]);

    let uid = format!("c0de{:04x}-0000-4000-8000-{:012x}", pid % 0xffff, pid);
    let made_besteffort = !Path::new("/sys/fs/cgroup/memory/kubepods/besteffort").exists();
    let made_kubepods = !Path::new("/sys/fs/cgroup/memory/kubepods").exists();
    let pod_path = format!("/kubepods/besteffort/pod{uid}");
    let mut dirs = vec![pod_path.clone()];
    if made_besteffort {
        dirs.push("/kubepods/besteffort".into());
    }
    if made_kubepods {
        dirs.push("/kubepods".into());
    }
    let _cgroups = RemoveCgroups(dirs);
    let pod_labels = |kind: &str| {
        vec![
            format!("io.cri-containerd.kind={kind}"),
            "io.kubernetes.pod.name=web-0".to_string(),
            "io.kubernetes.pod.namespace=shop".to_string(),
            format!("io.kubernetes.pod.uid={uid}"),
        ]
    };
    let run = |id: &str, labels: Vec<String>, image: &str, cmd: &[&str]| {
        let cg = format!("{pod_path}/{id}");
        let mut opts: Vec<String> = vec!["--cgroup".into(), cg];
        for l in labels {
            opts.extend(["--label".to_string(), l]);
        }
        let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
        Ctr::run(K8S, id, &opts, Some(image), cmd)
    };
    let sandbox_id = hex_id("5a");
    let app_id = hex_id("a9");
    let sandbox = run(
        &sandbox_id,
        pod_labels("sandbox"),
        &pause,
        &["/bin/sleep", "1000"],
    );
    let mut app_labels = pod_labels("container");
    app_labels.push("io.kubernetes.container.name=app".into());
    let app = run(&app_id, app_labels, &image_ref, &["/bin/sleep", "1000"]);

    // No kubelet, no Kubernetes API, and the Docker source knows none of these: identity comes from
    // containerd alone.
    let e = exporter(&["--collector.filesystem"]);
    let sandbox_path = format!("{pod_path}/{sandbox_id}");
    let app_path = format!("{pod_path}/{app_id}");
    let s = scrape_until(&e, 30, "the pod's containers named", |s| {
        [&sandbox_path, &app_path].iter().all(|p| {
            by_id(s, "container_memory_usage_bytes", p).is_some_and(|x| x.labels["pod"] == "web-0")
        })
    });
    let labels = |p: &str| {
        let x = by_id(&s, "container_memory_usage_bytes", p).unwrap();
        ["name", "image", "container", "pod", "namespace"].map(|k| x.labels[k].clone())
    };
    // The sandbox as the kubelet on containerd labels it: its id as name, the pause image, no container.
    assert_eq!(
        labels(&sandbox_path),
        [
            sandbox_id.clone(),
            sandbox.info()["Image"].as_str().unwrap().to_string(),
            String::new(),
            "web-0".into(),
            "shop".into()
        ]
    );
    assert_eq!(labels(&sandbox_path)[1], pause);
    assert_eq!(
        labels(&app_path),
        [
            app_id.clone(),
            app.info()["Image"].as_str().unwrap().to_string(),
            "app".into(),
            "web-0".into(),
            "shop".into()
        ]
    );
    // The pod cgroup: pod and namespace from the runtime's labels, no container or image.
    assert_eq!(
        labels(&pod_path),
        [
            String::new(),
            String::new(),
            String::new(),
            "web-0".into(),
            "shop".into()
        ]
    );
    // Values: the memory usage against the kernel's file, in a scrape the kernel's figure did not move
    // across (a container just started still settles: CI once saw 180 KiB change between the two).
    let kernel_usage = || read_num(&v1(&app_path, "memory", "memory.usage_in_bytes"), None);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut tries = 0;
    let (usage, kernel) = loop {
        tries += 1;
        let before = kernel_usage();
        let fresh = parse_exposition(&e.metrics());
        let after = kernel_usage();
        let usage = by_id(&fresh, "container_memory_usage_bytes", &app_path)
            .unwrap()
            .value;
        if before == after || std::time::Instant::now() > deadline {
            break (usage, after);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    println!("memory usage compared at try {tries}: {usage} vs the kernel's {kernel}");
    assert!(
        (usage - kernel).abs() <= 65536.0,
        "usage {usage} vs kernel {kernel}"
    );
    // The app's writable layer (its snapshot's overlay upper directory, as ctr shows the mount) against
    // du.
    let key = app.info()["SnapshotKey"].as_str().unwrap().to_string();
    let mount = ctr(K8S, &["snapshots", "mounts", "/mnt", &key]);
    let upper = mount
        .split([',', ' '])
        .find_map(|o| o.strip_prefix("upperdir="))
        .unwrap_or_else(|| panic!("no upperdir in {mount}"))
        .to_string();
    let s = scrape_until(&e, 15, "the app's layer measured", |s| {
        by_id(s, "container_fs_usage_bytes", &app_path).is_some()
    });
    assert_eq!(
        by_id(&s, "container_fs_usage_bytes", &app_path)
            .unwrap()
            .value,
        du_bytes(&upper)
    );
    // The kubelet's resource names for the pod.
    assert!(
        value(
            &s,
            "pod_memory_working_set_bytes",
            &[("pod", "web-0"), ("namespace", "shop")]
        )
        .is_some()
    );
    drop(app);
    drop(sandbox);
}
