//! Helpers of the Kubernetes tests: the recorded payloads (`shared/fixtures/nri-kubernetes`,
//! `signalfx-agent`), the replay server (`tests/support/kube_replay.py`) with the apiserver's
//! list-then-watch semantics and the kubelet's endpoints, and checks shared by several subjects.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::Value;

use super::*;

pub const NODE: &str = "datagen-1-35";

pub fn k8s_fixture(rel: &str) -> PathBuf {
    fixtures_dir().join("nri-kubernetes").join(rel)
}

pub fn load_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// pods.yaml as JSON (Python's yaml, which the replay server uses too).
pub fn load_yaml(path: &Path) -> Value {
    let out = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import json,sys,yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(path)
        .output()
        .expect("python3 with yaml (Debian's python3-yaml)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub struct Replay {
    pub child: Child,
    pub port: u16,
    pub _dir: tempfile::TempDir,
}

impl Replay {
    pub fn start(args: &[&str]) -> Replay {
        let dir = tempfile::tempdir().unwrap();
        let (child, line) = start_support("kube_replay.py", args);
        let port = line
            .strip_prefix("PORT ")
            .expect("replay server prints its port")
            .parse()
            .unwrap();
        Replay {
            child,
            port,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn control(&self, change: Value) {
        let r = reqwest::blocking::Client::new()
            .post(format!("{}/_control", self.url()))
            .body(change.to_string())
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    pub fn requests(&self) -> Vec<(String, Option<String>)> {
        let v: Value = reqwest::blocking::get(format!("{}/_control", self.url()))
            .unwrap()
            .json()
            .unwrap();
        v["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r[1].as_str().unwrap().to_string(),
                    r[2].as_str().map(String::from),
                )
            })
            .collect()
    }

    /// A kubeconfig pointing at this server.
    pub fn kubeconfig(&self) -> PathBuf {
        let path = self._dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: {}\nusers:\n- name: u\n  user:\n    token: test\ncontexts:\n- name: c\n  context: {{cluster: t, user: u}}\ncurrent-context: c\n",
                self.url()
            ),
        )
        .unwrap();
        path
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn scrape(e: &Exporter, collect: &str) -> (String, Vec<Sample>) {
    let body = e
        .get(&format!("/metrics?collect[]={collect}"))
        .text()
        .unwrap();
    let s = parse_exposition(&body);
    (body, s)
}

pub fn until(
    e: &Exporter,
    collect: &str,
    what: &str,
    pred: impl Fn(&[Sample]) -> bool,
) -> Vec<Sample> {
    poll_until(30, what, || scrape(e, collect).1, pred)
}

pub fn source_up(e: &Exporter, source: &str) -> Option<f64> {
    value(
        &parse_exposition(&e.metrics()),
        "stevedore_source_up",
        &[("source", source)],
    )
}

pub fn wait_log(e: &Exporter, seen: &mut Vec<String>, needle: &[&str], what: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        seen.extend(e.drain_log());
        if let Some(l) = seen.iter().find(|l| needle.iter().all(|n| l.contains(n))) {
            return l.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no log line for {what}: {seen:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn assert_promtool_clean(body: &str) {
    let p = promtool_problems(body);
    assert!(p.is_empty(), "promtool: {p:?}");
}

/// A test-side reading of a Kubernetes quantity (cpu "100m", memory "128Mi"), independent of the exporter's.
pub fn qty(s: &str) -> f64 {
    let units = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
    ];
    for (u, m) in units {
        if let Some(n) = s.strip_suffix(u) {
            return n.parse::<f64>().unwrap() * m;
        }
    }
    s.parse().unwrap()
}

pub fn str_of<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str().unwrap_or("")
}

/// Checks every container of every pod of this node in a pod list against the kubernetes collector.
pub fn check_pod_containers(pods: &[Value], s: &[Sample]) -> usize {
    let mut checked = 0;
    for p in pods {
        if str_of(p, &["spec", "nodeName"]) != NODE {
            continue;
        }
        let (pod, ns) = (
            str_of(p, &["metadata", "name"]),
            str_of(p, &["metadata", "namespace"]),
        );
        for st in p["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let c = st["name"].as_str().unwrap();
            let l = [("pod", pod), ("namespace", ns), ("container", c)];
            assert_eq!(
                value(s, "stevedore_container_restarts_total", &l),
                st["restartCount"].as_f64(),
                "{pod}/{c} restarts"
            );
            let state = ["running", "waiting", "terminated"]
                .into_iter()
                .find(|k| st["state"].get(k).is_some())
                .unwrap();
            let mut ls = l.to_vec();
            ls.push(("state", state));
            assert_eq!(
                value(s, "stevedore_container_state", &ls),
                Some(1.0),
                "{pod}/{c}"
            );
            if let Some(reason) = st["lastState"]["terminated"]["reason"].as_str() {
                let mut lr = l.to_vec();
                lr.push(("reason", reason));
                assert_eq!(
                    value(s, "stevedore_container_last_terminated_reason", &lr),
                    Some(1.0)
                );
            }
            // The container's image and runtime id.
            let id = st["containerID"].as_str().unwrap_or("");
            let id = id.split_once("://").map(|x| x.1).unwrap_or(id);
            let mut li = l.to_vec();
            // Pulled by digest: the status names the image by its bare sha256 id, the runtime by imageID.
            let image = match st["image"].as_str().unwrap() {
                i if i.starts_with("sha256:") => st["imageID"].as_str().unwrap(),
                i => i,
            };
            li.push(("image", image));
            li.push(("name", id));
            assert!(value(s, "stevedore_container_restarts_total", &li).is_some());
            checked += 1;
        }
        for spec in p["spec"]["containers"].as_array().into_iter().flatten() {
            let c = spec["name"].as_str().unwrap();
            for (kind, family) in [
                ("requests", "stevedore_container_resource_requests"),
                ("limits", "stevedore_container_resource_limits"),
            ] {
                for (res, q) in spec["resources"][kind].as_object().into_iter().flatten() {
                    let l = [
                        ("pod", pod),
                        ("namespace", ns),
                        ("container", c),
                        ("resource", res.as_str()),
                    ];
                    assert_eq!(
                        value(s, family, &l),
                        Some(qty(q.as_str().unwrap())),
                        "{pod}/{c} {kind} {res}"
                    );
                }
            }
        }
    }
    checked
}

/// Every pod, interface, volume and node filesystem of a summary, against the kubelet collector.
pub fn check_summary(summary: &Value, s: &[Sample]) -> (usize, usize) {
    let (mut ifaces, mut volumes) = (0, 0);
    for p in summary["pods"].as_array().unwrap() {
        let (pod, ns) = (
            str_of(p, &["podRef", "name"]),
            str_of(p, &["podRef", "namespace"]),
        );
        let list = match p["network"]["interfaces"].as_array() {
            Some(l) if !l.is_empty() => l.clone(),
            _ if p["network"]["name"].is_string() => vec![p["network"].clone()],
            _ => vec![],
        };
        for i in &list {
            let l = [
                ("pod", pod),
                ("namespace", ns),
                ("interface", str_of(i, &["name"])),
            ];
            for (key, family) in [
                ("rxBytes", "stevedore_pod_network_receive_bytes_total"),
                ("rxErrors", "stevedore_pod_network_receive_errors_total"),
                ("txBytes", "stevedore_pod_network_transmit_bytes_total"),
                ("txErrors", "stevedore_pod_network_transmit_errors_total"),
            ] {
                assert_eq!(value(s, family, &l), i[key].as_f64(), "{pod} {l:?} {key}");
            }
            ifaces += 1;
        }
        if let Some(used) = p["ephemeral-storage"]["usedBytes"].as_f64() {
            assert_eq!(
                value(
                    s,
                    "stevedore_pod_ephemeral_storage_used_bytes",
                    &[("pod", pod), ("namespace", ns)]
                ),
                Some(used)
            );
        }
        for v in p["volume"].as_array().into_iter().flatten() {
            let l = [
                ("pod", pod),
                ("namespace", ns),
                ("volume", str_of(v, &["name"])),
                ("persistentvolumeclaim", str_of(v, &["pvcRef", "name"])),
            ];
            for (key, family) in [
                ("usedBytes", "stevedore_pod_volume_used_bytes"),
                ("capacityBytes", "stevedore_pod_volume_capacity_bytes"),
                ("availableBytes", "stevedore_pod_volume_available_bytes"),
            ] {
                assert_eq!(value(s, family, &l), v[key].as_f64(), "{l:?} {key}");
            }
            volumes += 1;
        }
    }
    let node = &summary["node"];
    for (fs, v) in [
        ("rootfs", &node["fs"]),
        ("imagefs", &node["runtime"]["imageFs"]),
        ("containerfs", &node["runtime"]["containerFs"]),
    ] {
        for (key, family) in [
            ("capacityBytes", "stevedore_node_filesystem_capacity_bytes"),
            (
                "availableBytes",
                "stevedore_node_filesystem_available_bytes",
            ),
            ("usedBytes", "stevedore_node_filesystem_used_bytes"),
            ("inodes", "stevedore_node_filesystem_inodes"),
            ("inodesFree", "stevedore_node_filesystem_inodes_free"),
        ] {
            assert_eq!(
                value(s, family, &[("filesystem", fs)]),
                v[key].as_f64(),
                "{fs} {key}"
            );
        }
    }
    (ifaces, volumes)
}

/// The replay server with the recorded 1.35 kubelet (`/pods`, `/stats/summary`), and an exporter that reads
/// its pods from it (`--kubernetes.pods-from=kubelet`, no Docker) with `extra` flags.
pub fn recorded_kubelet(extra: &[&str]) -> (Replay, Exporter) {
    recorded_kubelet_with_pods(&k8s_fixture("1_35/kubelet/pods"), extra)
}

/// As [`recorded_kubelet`], with `/pods` answered from `pods`.
pub fn recorded_kubelet_with_pods(pods: &Path, extra: &[&str]) -> (Replay, Exporter) {
    let replay = recorded_kubelet_replay(pods);
    let url = replay.url();
    let mut args = vec![
        "--kubelet.url",
        &url,
        "--kubelet.interval=1s",
        "--kubernetes.pods-from=kubelet",
        "--no-collector.docker",
        "--collect.min-age=0",
    ];
    args.extend_from_slice(extra);
    let e = Exporter::start(&args);
    (replay, e)
}

/// The replay server alone: the recorded 1.35 kubelet's `/stats/summary`, and `/pods` from `pods`.
pub fn recorded_kubelet_replay(pods: &Path) -> Replay {
    Replay::start(&[
        "--kubelet-pods",
        pods.to_str().unwrap(),
        "--summary",
        k8s_fixture("1_35/kubelet/stats/summary").to_str().unwrap(),
    ])
}

/// The recorded `container_cpu_usage_seconds_total` series of pod and container cgroups.
pub fn recorded_pod_cpu(recorded: &[Sample]) -> Vec<&Sample> {
    recorded
        .iter()
        .filter(|r| {
            r.name == "container_cpu_usage_seconds_total" && r.labels["id"].contains("/pod")
        })
        .collect()
}

/// The recorded /metrics/cadvisor of the same node and moment as the 1.35 summary and pod list.
pub fn recorded_cadvisor() -> Vec<Sample> {
    parse_exposition(
        &std::fs::read_to_string(k8s_fixture("1_35/kubelet/metrics/cadvisor")).unwrap(),
    )
}

pub fn label_set(s: &Sample) -> BTreeMap<String, String> {
    s.labels.clone()
}

/// Tests that make the recorded node's cgroups share parent folders (`/kubepods/...`): they take turns,
/// so that each removes everything it made.
pub static NODE_CGROUPS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Real cgroups made with mkdir under the v1 hierarchies; removed (only those made here) on drop.
pub struct CgroupDirs(Vec<PathBuf>);

impl CgroupDirs {
    pub fn make(rel_paths: &[String]) -> CgroupDirs {
        let mut made = Vec::new();
        for ctrl in ["cpu", "cpuacct", "memory", "pids", "blkio"] {
            let root = Path::new("/sys/fs/cgroup").join(ctrl);
            if !root.is_dir() {
                continue;
            }
            for rel in rel_paths {
                let mut p = root.clone();
                for part in rel.trim_start_matches('/').split('/') {
                    p.push(part);
                    if !p.exists() {
                        std::fs::create_dir(&p)
                            .unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
                        made.push(p.clone());
                    }
                }
            }
        }
        CgroupDirs(made)
    }
}

impl Drop for CgroupDirs {
    /// Removes what `make` made, deepest first. A process a test moved in may still be dying (a killed
    /// shell's child): what is left in a cgroup is killed and the removal retried for up to 5 s, so no
    /// cgroup outlives the test (one left behind made the next tests' runtimes keep their parents too).
    fn drop(&mut self) {
        for p in self.0.iter().rev() {
            for _ in 0..50 {
                if std::fs::remove_dir(p).is_ok() || !p.exists() {
                    break;
                }
                let procs = std::fs::read_to_string(p.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

pub fn wait_up(e: &Exporter, source: &str, want: f64, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while source_up(e, source) != Some(want) {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: source_up{{{source}}} never {want}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A CA and a serving certificate for 127.0.0.1 signed by it, made with openssl.
pub fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=test kubelet CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "kubelet.key",
        "-out",
        "kubelet.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "kubelet.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "kubelet.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("kubelet.pem"),
        dir.join("kubelet.key"),
    )
}
