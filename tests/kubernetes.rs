//! The Kubernetes sources against recorded payloads (`shared/fixtures/nri-kubernetes`, `signalfx-agent`)
//! replayed by `tests/support/kube_replay.py` with the apiserver's list-then-watch semantics and the
//! kubelet's endpoints. Expected values are read from the same payloads by the test.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

const NODE: &str = "datagen-1-35";

fn k8s_fixture(rel: &str) -> PathBuf {
    fixtures_dir().join("nri-kubernetes").join(rel)
}

fn load_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// pods.yaml as JSON (Python's yaml, which the replay server uses too).
fn load_yaml(path: &Path) -> Value {
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

struct Replay {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Replay {
    fn start(args: &[&str]) -> Replay {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/kube_replay.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
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

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn control(&self, change: Value) {
        let r = reqwest::blocking::Client::new()
            .post(format!("{}/_control", self.url()))
            .body(change.to_string())
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    fn requests(&self) -> Vec<(String, Option<String>)> {
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
    fn kubeconfig(&self) -> PathBuf {
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

fn scrape(e: &Exporter, collect: &str) -> (String, Vec<Sample>) {
    let body = e
        .get(&format!("/metrics?collect[]={collect}"))
        .text()
        .unwrap();
    let s = parse_exposition(&body);
    (body, s)
}

fn until(e: &Exporter, collect: &str, what: &str, pred: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, s) = scrape(e, collect);
        if pred(&s) {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn source_up(e: &Exporter, source: &str) -> Option<f64> {
    value(
        &parse_exposition(&e.metrics()),
        "stevedore_source_up",
        &[("source", source)],
    )
}

fn wait_log(e: &Exporter, seen: &mut Vec<String>, needle: &[&str], what: &str) -> String {
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

fn assert_promtool_clean(body: &str) {
    let p = promtool_problems(body);
    assert!(p.is_empty(), "promtool: {p:?}");
}

/// A test-side reading of a Kubernetes quantity (cpu "100m", memory "128Mi"), independent of the exporter's.
fn qty(s: &str) -> f64 {
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

fn str_of<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str().unwrap_or("")
}

/// Checks every container of every pod of this node in a pod list against the kubernetes collector.
fn check_pod_containers(pods: &[Value], s: &[Sample]) -> usize {
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

#[test]
fn apiserver_list_then_watch_follows_events_watch_ends_and_410() {
    let pods = load_yaml(&k8s_fixture("1_35/pods.yaml"));
    let items = pods["items"].as_array().unwrap().clone();
    let replay = Replay::start(&[
        "--apiserver-pods",
        k8s_fixture("1_35/pods.yaml").to_str().unwrap(),
    ]);
    let kc = replay.kubeconfig();
    let e = Exporter::start(&[
        "--kubeconfig",
        kc.to_str().unwrap(),
        "--kubernetes.node-name",
        NODE,
        "--collect.min-age=0",
        "--no-collector.docker",
    ]);
    let expected_pods: BTreeSet<&str> = items
        .iter()
        .filter(|p| str_of(p, &["spec", "nodeName"]) == NODE)
        .map(|p| str_of(p, &["metadata", "name"]))
        .collect();
    let s = until(&e, "kubernetes", "the pod list", |s| {
        let seen: BTreeSet<&str> = s
            .iter()
            .filter(|x| x.name == "stevedore_container_restarts_total")
            .map(|x| x.labels["pod"].as_str())
            .collect();
        seen == expected_pods
            .iter()
            .copied()
            .filter(|p| {
                items.iter().any(|i| {
                    str_of(i, &["metadata", "name"]) == *p
                        && i["status"]["containerStatuses"].is_array()
                })
            })
            .collect::<BTreeSet<_>>()
    });
    let checked = check_pod_containers(&items, &s);
    assert!(checked >= 20, "only {checked} containers checked");
    // The unscheduled pod (no nodeName) is another node's business: the field selector leaves it out.
    let unscheduled: Vec<&str> = items
        .iter()
        .filter(|p| p["spec"]["nodeName"].is_null())
        .map(|p| str_of(p, &["metadata", "name"]))
        .collect();
    assert!(!unscheduled.is_empty());
    for u in &unscheduled {
        assert!(
            !s.iter()
                .any(|x| x.labels.get("pod").map(String::as_str) == Some(u))
        );
    }
    let (body, _) = scrape(&e, "kubernetes");
    assert_promtool_clean(&body);
    assert_eq!(source_up(&e, "kubernetes"), Some(1.0));

    // The list asked for this node only; then a watch from the list's resourceVersion.
    let reqs = replay.requests();
    let list = reqs.iter().find(|(p, _)| p.starts_with("/api/")).unwrap();
    assert!(
        list.0
            .contains("fieldSelector=spec.nodeName%3Ddatagen-1-35"),
        "{list:?}"
    );
    let watch = reqs
        .iter()
        .find(|(p, _)| p.contains("watch=true"))
        .expect("a watch after the list");
    assert!(watch.0.contains("resourceVersion=1000"), "{watch:?}");

    // Watch events: one pod restarts its container, another is deleted.
    let mut modified = items
        .iter()
        .find(|p| {
            str_of(p, &["spec", "nodeName"]) == NODE && p["status"]["containerStatuses"].is_array()
        })
        .unwrap()
        .clone();
    let old = modified["status"]["containerStatuses"][0]["restartCount"]
        .as_f64()
        .unwrap();
    modified["status"]["containerStatuses"][0]["restartCount"] = Value::from(old as i64 + 7);
    let deleted = items
        .iter()
        .rev()
        .find(|p| {
            str_of(p, &["spec", "nodeName"]) == NODE && p["status"]["containerStatuses"].is_array()
        })
        .unwrap()
        .clone();
    let (mpod, mc) = (
        str_of(&modified, &["metadata", "name"]).to_string(),
        str_of(&modified["status"]["containerStatuses"][0], &["name"]).to_string(),
    );
    let dpod = str_of(&deleted, &["metadata", "name"]).to_string();
    assert_ne!(mpod, dpod);
    replay.control(serde_json::json!({"events": [
        {"type": "MODIFIED", "object": modified},
        {"type": "DELETED", "object": deleted},
    ]}));
    until(&e, "kubernetes", "the watch events", |s| {
        value(
            s,
            "stevedore_container_restarts_total",
            &[("pod", &mpod), ("container", &mc)],
        ) == Some(old + 7.0)
            && !s.iter().any(|x| x.labels.get("pod") == Some(&dpod))
    });
    // That watch ended; the client watched again from the last version it saw, without listing again.
    std::thread::sleep(Duration::from_millis(1500));
    let reqs = replay.requests();
    let lists = reqs
        .iter()
        .filter(|(p, _)| p.starts_with("/api/") && !p.contains("watch=true"))
        .count();
    assert_eq!(lists, 1, "{reqs:#?}");
    assert!(
        reqs.iter()
            .any(|(p, _)| p.contains("watch=true") && p.contains("resourceVersion=1002")),
        "{reqs:#?}"
    );

    // 410 Gone: the client lists again and takes the new list (a pod added meanwhile), still up.
    let mut added = modified.clone();
    added["metadata"]["name"] = Value::from("added-after-410");
    added["metadata"]["uid"] = Value::from("00000000-0000-0000-0000-000000000410");
    let mut now: Vec<Value> = replay_pods_now(&items, &modified, &dpod);
    now.push(added);
    replay.control(serde_json::json!({"pods": now, "gone": true}));
    let mut log = Vec::new();
    until(&e, "kubernetes", "the relist after 410", |s| {
        s.iter()
            .any(|x| x.labels.get("pod").map(String::as_str) == Some("added-after-410"))
    });
    wait_log(&e, &mut log, &["410"], "the 410 relist");
    let reqs = replay.requests();
    assert_eq!(
        reqs.iter()
            .filter(|(p, _)| p.starts_with("/api/") && !p.contains("watch=true"))
            .count(),
        2
    );
    assert_eq!(source_up(&e, "kubernetes"), Some(1.0));

    // 403 on the next list: source down, one line naming the RBAC rule; the known pods keep their
    // identity and every other collector is served. Then recovery without a restart.
    replay.control(serde_json::json!({"status": {"apiserver": 403}, "gone": true}));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while source_up(&e, "kubernetes") != Some(0.0) {
        assert!(std::time::Instant::now() < deadline, "source_up stayed 1");
        std::thread::sleep(Duration::from_millis(200));
    }
    let line = wait_log(&e, &mut log, &["source failing", "403"], "the 403");
    assert!(
        line.contains("list") && line.contains("watch") && line.contains("ClusterRole"),
        "{line}"
    );
    std::thread::sleep(Duration::from_secs(3));
    log.extend(e.drain_log());
    let failing = log
        .iter()
        .filter(|l| l.contains("source failing") && l.contains("kubernetes"))
        .count();
    assert_eq!(failing, 1, "one line per state change: {log:#?}");
    let all = parse_exposition(&e.metrics());
    assert_eq!(collector_success(&all, "loadavg"), Some(1.0));
    replay.control(serde_json::json!({"status": {"apiserver": 0}}));
    let deadline = std::time::Instant::now() + Duration::from_secs(45);
    while source_up(&e, "kubernetes") != Some(1.0) {
        assert!(std::time::Instant::now() < deadline, "no recovery");
        std::thread::sleep(Duration::from_millis(300));
    }
    wait_log(
        &e,
        &mut log,
        &["source recovered", "kubernetes"],
        "the recovery",
    );
}

/// The replay server's list after the events above (the modified pod, without the deleted one).
fn replay_pods_now(items: &[Value], modified: &Value, deleted: &str) -> Vec<Value> {
    items
        .iter()
        .filter(|p| str_of(p, &["metadata", "name"]) != deleted)
        .map(|p| {
            if p["metadata"]["uid"] == modified["metadata"]["uid"] {
                modified.clone()
            } else {
                p.clone()
            }
        })
        .collect()
}

/// Every pod, interface, volume and node filesystem of a summary, against the kubelet collector.
fn check_summary(summary: &Value, s: &[Sample]) -> (usize, usize) {
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

#[test]
fn kubelet_summary_every_pod_interface_and_volume_both_payload_sets() {
    for (summary, pods) in [
        ("1_35/kubelet/stats/summary", "1_35/kubelet/pods"),
        (
            "legacy/kubelet_stats_summary_payload.json",
            "legacy/kubelet_pods_payload.json",
        ),
    ] {
        let replay = Replay::start(&[
            "--summary",
            k8s_fixture(summary).to_str().unwrap(),
            "--kubelet-pods",
            k8s_fixture(pods).to_str().unwrap(),
            "--token",
            "t0ken",
        ]);
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "t0ken\n").unwrap();
        let e = Exporter::start(&[
            "--kubelet.url",
            &replay.url(),
            "--kubelet.token-file",
            token.to_str().unwrap(),
            "--kubelet.interval=1s",
            "--kubernetes.pods-from=kubelet",
            "--collect.min-age=0",
            "--no-collector.docker",
        ]);
        let s = until(&e, "kubelet", "the summary", |s| {
            s.iter()
                .any(|x| x.name.starts_with("stevedore_node_filesystem"))
        });
        let doc = load_json(&k8s_fixture(summary));
        let (ifaces, volumes) = check_summary(&doc, &s);
        assert!(
            ifaces > 0 && volumes > 0,
            "{summary}: {ifaces} interfaces, {volumes} volumes"
        );
        // Volumes with a claim carry it.
        if summary.starts_with("legacy") {
            assert!(
                s.iter().any(|x| x.name == "stevedore_pod_volume_used_bytes"
                    && !x.labels["persistentvolumeclaim"].is_empty())
                    || !doc.to_string().contains("pvcRef")
            );
        }
        let (body, _) = scrape(&e, "kubelet");
        assert_promtool_clean(&body);
        // The kubelet saw the token on every call.
        assert!(
            replay
                .requests()
                .iter()
                .filter(|(p, _)| p != "/_control")
                .all(|(_, auth)| auth.as_deref() == Some("Bearer t0ken"))
        );
        // The pods of the kubelet's /pods (Pending and Failed ones, pods without qosClass included).
        let kdoc = load_json(&k8s_fixture(pods));
        let s = until(&e, "kubernetes", "pods from the kubelet", |s| {
            s.iter().any(|x| x.name == "stevedore_container_state")
        });
        for p in kdoc["items"].as_array().unwrap() {
            let name = str_of(p, &["metadata", "name"]);
            let has_status = p["status"]["containerStatuses"].is_array();
            let seen = s
                .iter()
                .any(|x| x.labels.get("pod").map(String::as_str) == Some(name));
            assert_eq!(
                seen,
                has_status
                    || p["spec"]["containers"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|c| c["resources"]["requests"].is_object())),
                "{name}"
            );
        }
        let (body, _) = scrape(&e, "kubernetes");
        assert_promtool_clean(&body);
    }
}

/// The replay server with the recorded 1.35 kubelet (`/pods`, `/stats/summary`), and an exporter that reads
/// its pods from it (`--kubernetes.pods-from=kubelet`, no Docker) with `extra` flags.
fn recorded_kubelet(extra: &[&str]) -> (Replay, Exporter) {
    let replay = Replay::start(&[
        "--kubelet-pods",
        k8s_fixture("1_35/kubelet/pods").to_str().unwrap(),
        "--summary",
        k8s_fixture("1_35/kubelet/stats/summary").to_str().unwrap(),
    ]);
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

/// The recorded /metrics/cadvisor of the same node and moment as the 1.35 summary and pod list.
fn recorded_cadvisor() -> Vec<Sample> {
    parse_exposition(
        &std::fs::read_to_string(k8s_fixture("1_35/kubelet/metrics/cadvisor")).unwrap(),
    )
}

fn label_set(s: &Sample) -> BTreeMap<String, String> {
    s.labels.clone()
}

#[test]
fn summary_usage_without_cgroups_lines_up_with_the_recorded_cadvisor() {
    let (_replay, e) = recorded_kubelet(&["--no-collector.cgroup"]);
    let s = until(&e, "kubelet", "usage from the summary", |s| {
        s.iter().any(|x| {
            x.name == "container_cpu_usage_seconds_total"
                && !x.labels["container"].is_empty()
                && !x.labels["name"].is_empty()
        })
    });
    let recorded = recorded_cadvisor();
    let summary = load_json(&k8s_fixture("1_35/kubelet/stats/summary"));
    let mut matched = 0;
    for family in [
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
        "container_memory_rss",
        "container_memory_usage_bytes",
        "container_start_time_seconds",
    ] {
        let ours: Vec<&Sample> = s
            .iter()
            .filter(|x| x.name == family && !x.labels["pod"].is_empty())
            .collect();
        assert!(!ours.is_empty(), "{family}");
        for o in ours {
            // The same series, label for label, in the kubelet's own exposition.
            let theirs = recorded
                .iter()
                .find(|r| r.name == family && label_set(r) == label_set(o))
                .unwrap_or_else(|| panic!("{family}{:?} not in the recorded cadvisor", o.labels));
            // Taken seconds apart: CPU counters and memory gauges agree closely.
            if family != "container_start_time_seconds" {
                let tol = if family.contains("cpu") { 0.10 } else { 0.25 };
                let diff = (o.value - theirs.value).abs();
                assert!(
                    diff <= tol * theirs.value.max(1e-3) + 0.05,
                    "{family}{:?}: {} vs recorded {}",
                    o.labels,
                    o.value,
                    theirs.value
                );
            }
            matched += 1;
        }
    }
    assert!(matched > 100, "{matched}");
    // The kubelet's resource names, from the summary's own figures.
    for p in summary["pods"].as_array().unwrap() {
        let l = [
            ("pod", str_of(p, &["podRef", "name"])),
            ("namespace", str_of(p, &["podRef", "namespace"])),
        ];
        assert_eq!(
            value(&s, "pod_cpu_usage_seconds_total", &l),
            p["cpu"]["usageCoreNanoSeconds"].as_f64().map(|v| v / 1e9)
        );
        assert_eq!(
            value(&s, "pod_memory_working_set_bytes", &l),
            p["memory"]["workingSetBytes"].as_f64()
        );
    }
    assert_eq!(
        value(&s, "node_cpu_usage_seconds_total", &[]),
        summary["node"]["cpu"]["usageCoreNanoSeconds"]
            .as_f64()
            .map(|v| v / 1e9)
    );
    assert_eq!(
        value(&s, "node_memory_working_set_bytes", &[]),
        summary["node"]["memory"]["workingSetBytes"].as_f64()
    );
    let (body, _) = scrape(&e, "kubelet");
    assert_promtool_clean(&body);
}

/// Tests that make the recorded node's cgroups share parent folders (`/kubepods/...`): they take turns,
/// so that each removes everything it made.
static NODE_CGROUPS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Real cgroups made with mkdir under the v1 hierarchies; removed (only those made here) on drop.
struct CgroupDirs(Vec<PathBuf>);

impl CgroupDirs {
    fn make(rel_paths: &[String]) -> CgroupDirs {
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
    fn drop(&mut self) {
        for p in self.0.iter().rev() {
            let _ = std::fs::remove_dir(p);
        }
    }
}

#[test]
fn cgroup_attribution_of_the_recorded_node_both_drivers() {
    let _turn = NODE_CGROUPS.lock().unwrap_or_else(|p| p.into_inner());
    if !Path::new("/sys/fs/cgroup/memory").is_dir() {
        panic!("needs the cgroup v1 hierarchies of this machine kind (root)");
    }
    let recorded = recorded_cadvisor();
    let cpu: Vec<&Sample> = recorded
        .iter()
        .filter(|r| {
            r.name == "container_cpu_usage_seconds_total" && r.labels["id"].contains("/pod")
        })
        .collect();
    let ids: Vec<String> = cpu.iter().map(|r| r.labels["id"].clone()).collect();
    assert!(ids.len() > 40, "{}", ids.len());
    // One pod also in the systemd driver's form.
    let ksm = cpu
        .iter()
        .find(|r| r.labels["container"] == "kube-state-metrics")
        .unwrap();
    let ksm_id = &ksm.labels["id"];
    let parts: Vec<&str> = ksm_id.trim_start_matches('/').split('/').collect();
    let (qos, pod_uid, cid) = (parts[1], parts[2].trim_start_matches("pod"), parts[3]);
    let systemd = format!(
        "/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{}.slice/cri-containerd-{cid}.scope",
        pod_uid.replace('-', "_")
    );
    let mut all = ids.clone();
    all.push(systemd.clone());
    let _dirs = CgroupDirs::make(&all);

    let (_replay, e) = recorded_kubelet(&[]);
    let s = until(&e, "cgroup", "pods attributed", |s| {
        s.iter().any(|x| {
            x.name == "container_cpu_usage_seconds_total"
                && x.labels["id"] == *ksm_id
                && !x.labels["pod"].is_empty()
        })
    });
    let mut sandboxes = 0;
    for r in &cpu {
        let ours = s
            .iter()
            .find(|x| x.name == r.name && x.labels["id"] == r.labels["id"])
            .unwrap_or_else(|| panic!("no series for {}", r.labels["id"]));
        let names = |m: &BTreeMap<String, String>| m.keys().cloned().collect::<Vec<_>>();
        assert_eq!(names(&ours.labels), names(&r.labels));
        for l in ["pod", "namespace", "container", "name"] {
            assert_eq!(ours.labels[l], r.labels[l], "{l} of {}", r.labels["id"]);
        }
        if r.labels["container"].is_empty() && !r.labels["name"].is_empty() {
            // A sandbox: no pod API names its image; the kubelet's cAdvisor asks the runtime.
            assert_eq!(ours.labels["image"], "");
            sandboxes += 1;
        } else {
            assert_eq!(
                ours.labels["image"], r.labels["image"],
                "{}",
                r.labels["id"]
            );
        }
    }
    assert!(sandboxes > 10);
    // The systemd form names the same container.
    let sd = s
        .iter()
        .find(|x| x.name == "container_cpu_usage_seconds_total" && x.labels["id"] == systemd)
        .expect("the systemd-form cgroup");
    for l in ["pod", "namespace", "container", "image", "name"] {
        assert_eq!(sd.labels[l], ksm.labels[l]);
    }
    // The kubelet's resource names for each pod cgroup.
    for r in cpu
        .iter()
        .filter(|r| r.labels["container"].is_empty() && r.labels["name"].is_empty())
    {
        assert!(
            value(
                &s,
                "pod_cpu_usage_seconds_total",
                &[
                    ("pod", &r.labels["pod"]),
                    ("namespace", &r.labels["namespace"])
                ]
            )
            .is_some()
        );
    }
    let (body, _) = scrape(&e, "cgroup");
    assert_promtool_clean(&body);
}

#[test]
fn pod_labels_only_through_the_allowlist_sanitized() {
    let _turn = NODE_CGROUPS.lock().unwrap_or_else(|p| p.into_inner());
    let pods = load_json(&k8s_fixture("1_35/kubelet/pods"));
    let items = pods["items"].as_array().unwrap();
    let ids: Vec<String> = recorded_cadvisor()
        .iter()
        .filter(|r| {
            r.name == "container_cpu_usage_seconds_total" && r.labels["id"].contains("/pod")
        })
        .map(|r| r.labels["id"].clone())
        .collect();
    let _dirs = CgroupDirs::make(&ids);
    // `job-name` and `job.name` both become pod_label_job_name: the first in byte order keeps it.
    let (_replay, e) = recorded_kubelet(&[
        "--kubernetes.pod-labels=k8s-app,job.name,batch.kubernetes.io/job-name,app,job-name",
    ]);
    let columns = [
        ("pod_label_app", "app"),
        (
            "pod_label_batch_kubernetes_io_job_name",
            "batch.kubernetes.io/job-name",
        ),
        ("pod_label_job_name", "job-name"),
        ("pod_label_k8s_app", "k8s-app"),
    ];
    // The pod's label in the payload, read by the test.
    let label_of = |ns: &str, pod: &str, key: &str| -> String {
        items
            .iter()
            .find(|p| {
                str_of(p, &["metadata", "name"]) == pod
                    && str_of(p, &["metadata", "namespace"]) == ns
            })
            .map(|p| {
                p["metadata"]["labels"][key]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .unwrap_or_default()
    };
    // The series of one family in `samples`: (series with a pod, non-empty pod label values).
    let check = |samples: &[Sample], family: &str| -> (usize, usize) {
        let (mut pods, mut values) = (0, 0);
        for x in samples.iter().filter(|x| x.name == family) {
            let extra: Vec<&str> = x
                .labels
                .keys()
                .filter(|k| k.starts_with("pod_label_"))
                .map(String::as_str)
                .collect();
            assert_eq!(
                extra,
                columns.iter().map(|c| c.0).collect::<Vec<_>>(),
                "{x:?}"
            );
            let (pod, ns) = (&x.labels["pod"], &x.labels["namespace"]);
            for (col, key) in columns {
                let want = if pod.is_empty() {
                    String::new()
                } else {
                    label_of(ns, pod, key)
                };
                assert_eq!(x.labels[col], want, "{col} of {pod}");
                values += usize::from(!want.is_empty());
            }
            pods += usize::from(!pod.is_empty());
        }
        (pods, values)
    };
    let s = until(&e, "cgroup", "pods with their labels", |s| {
        s.iter().any(|x| {
            x.name == "container_cpu_usage_seconds_total"
                && x.labels.get("pod_label_app").is_some_and(|v| !v.is_empty())
        })
    });
    let (pods, values) = check(&s, "container_cpu_usage_seconds_total");
    assert!(
        pods > 40 && values > 20,
        "{pods} pod series, {values} label values"
    );
    let (body, k) = scrape(&e, "kubernetes");
    assert_promtool_clean(&body);
    let (pods, values) = check(&k, "stevedore_container_restarts_total");
    assert!(
        pods >= 20 && values > 20,
        "{pods} pod series, {values} label values"
    );
    // Pod labels not in the list are no labels.
    assert!(
        !s.iter()
            .chain(&k)
            .any(|x| x.labels.keys().any(|l| l.contains("template_hash")))
    );
    let (body, _) = scrape(&e, "cgroup");
    assert_promtool_clean(&body);
}

fn wait_up(e: &Exporter, source: &str, want: f64, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while source_up(e, source) != Some(want) {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: source_up{{{source}}} never {want}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn kubelet_token_rotation_401_403_and_unreachable_without_restart() {
    let replay = Replay::start(&[
        "--summary",
        k8s_fixture("1_35/kubelet/stats/summary").to_str().unwrap(),
        "--token",
        "first",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "first").unwrap();
    let e = Exporter::start(&[
        "--kubelet.url",
        &replay.url(),
        "--kubelet.token-file",
        token.to_str().unwrap(),
        "--kubelet.interval=500ms",
        "--no-collector.docker",
        "--collect.min-age=0",
    ]);
    let mut log = Vec::new();
    wait_up(&e, "kubelet", 1.0, "start");
    // The kubelet now wants a new token (rotated): 401, one line naming the flag; cgroup metrics still served.
    replay.control(serde_json::json!({"token": "second"}));
    wait_up(&e, "kubelet", 0.0, "401");
    let line = wait_log(&e, &mut log, &["source failing", "401"], "the 401");
    assert!(line.contains("--kubelet.token-file"), "{line}");
    let s = parse_exposition(&e.metrics());
    assert_eq!(collector_success(&s, "kubelet"), Some(0.0));
    assert_eq!(collector_success(&s, "cgroup"), Some(1.0));
    assert!(
        !s.iter().any(|x| x.name.starts_with("stevedore_pod_")),
        "no stale summary series"
    );
    assert!(
        s.iter()
            .any(|x| x.name == "container_cpu_usage_seconds_total")
    );
    // The projected token rotates in its file: picked up without a restart.
    std::fs::write(&token, "second\n").unwrap();
    wait_up(&e, "kubelet", 1.0, "rotated token");
    wait_log(&e, &mut log, &["source recovered", "kubelet"], "recovery");
    assert!(
        replay
            .requests()
            .iter()
            .any(|(_, a)| a.as_deref() == Some("Bearer second"))
    );
    // 403: the line names the RBAC rule.
    replay.control(serde_json::json!({"status": {"kubelet": 403}}));
    wait_up(&e, "kubelet", 0.0, "403");
    let line = wait_log(&e, &mut log, &["source failing", "403"], "the 403");
    assert!(
        line.contains("nodes/stats") && line.contains("ClusterRole"),
        "{line}"
    );
    replay.control(serde_json::json!({"status": {"kubelet": 0}}));
    wait_up(&e, "kubelet", 1.0, "after 403");
    // Unreachable.
    drop(replay);
    wait_up(&e, "kubelet", 0.0, "unreachable");
    let line = wait_log(
        &e,
        &mut log,
        &["source failing", "unreachable"],
        "unreachable",
    );
    assert!(line.contains("kubelet /stats/summary"), "{line}");
    std::thread::sleep(Duration::from_secs(2));
    log.extend(e.drain_log());
    let n = log
        .iter()
        .filter(|l| l.contains("source failing") && l.contains("unreachable"))
        .count();
    assert_eq!(n, 1, "one line per state change: {log:#?}");
}

/// A CA and a serving certificate for 127.0.0.1 signed by it, made with openssl.
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
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

#[test]
fn kubelet_over_https_with_ca_file_or_skip_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(dir.path());
    let replay = Replay::start(&[
        "--summary",
        k8s_fixture("1_35/kubelet/stats/summary").to_str().unwrap(),
        "--tls",
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
    ]);
    let url = format!("https://127.0.0.1:{}", replay.port);
    let common = [
        "--kubelet.interval=500ms",
        "--no-collector.docker",
        "--no-collector.cgroup",
        "--collect.min-age=0",
    ];
    let mut args = vec![
        "--kubelet.url",
        &url,
        "--kubelet.ca-file",
        ca.to_str().unwrap(),
    ];
    args.extend(common);
    let e = Exporter::start(&args);
    wait_up(&e, "kubelet", 1.0, "with the CA");
    let s = parse_exposition(&e.metrics());
    assert!(
        value(
            &s,
            "stevedore_node_filesystem_capacity_bytes",
            &[("filesystem", "rootfs")]
        )
        .is_some()
    );
    drop(e);
    // Without the CA the certificate is refused, and the log says so.
    let mut args = vec!["--kubelet.url", url.as_str()];
    args.extend(common);
    let e = Exporter::start(&args);
    let mut log = Vec::new();
    wait_log(
        &e,
        &mut log,
        &["source failing", "kubelet"],
        "an untrusted certificate",
    );
    assert_eq!(source_up(&e, "kubelet"), Some(0.0));
    drop(e);
    let mut args = vec![
        "--kubelet.url",
        url.as_str(),
        "--kubelet.insecure-skip-verify",
    ];
    args.extend(common);
    let e = Exporter::start(&args);
    wait_up(&e, "kubelet", 1.0, "skip-verify");
}

#[test]
fn bad_input_is_logged_and_the_rest_served() {
    let summary_text = std::fs::read_to_string(k8s_fixture("1_35/kubelet/stats/summary")).unwrap();
    let replay = Replay::start(&[
        "--summary",
        k8s_fixture("legacy/kubelet_stats_summary_payload.json")
            .to_str()
            .unwrap(),
        "--kubelet-pods",
        k8s_fixture("legacy/kubelet_pods_payload.json")
            .to_str()
            .unwrap(),
    ]);
    let e = Exporter::start(&[
        "--kubelet.url",
        &replay.url(),
        "--kubelet.interval=500ms",
        "--kubernetes.pods-from=kubelet",
        "--no-collector.docker",
        "--collect.min-age=0",
    ]);
    let mut log = Vec::new();
    // Legacy pods: Pending and Failed pods, no qosClass: served, their containers without a cgroup id.
    let legacy = load_json(&k8s_fixture("legacy/kubelet_pods_payload.json"));
    let s = until(&e, "kubernetes", "legacy pods", |s| {
        s.iter().any(|x| x.name == "stevedore_container_state")
    });
    for p in legacy["items"].as_array().unwrap() {
        if p["status"]["qosClass"].is_null() {
            for st in p["status"]["containerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let l = [
                    ("pod", str_of(p, &["metadata", "name"])),
                    ("container", st["name"].as_str().unwrap()),
                    ("id", ""),
                ];
                assert_eq!(
                    value(&s, "stevedore_container_restarts_total", &l),
                    st["restartCount"].as_f64()
                );
            }
        }
    }
    let (body, _) = scrape(&e, "kubernetes");
    assert_promtool_clean(&body);

    // Truncated summary: the kubelet collector fails with one clear line, everything else is served.
    replay.control(serde_json::json!({"summary_text": &summary_text[..summary_text.len() / 2]}));
    let line = wait_log(
        &e,
        &mut log,
        &["source failing", "invalid JSON"],
        "truncated summary",
    );
    assert!(line.contains("/stats/summary"), "{line}");
    let s = parse_exposition(&e.metrics());
    assert_eq!(collector_success(&s, "kubelet"), Some(0.0));
    assert_eq!(collector_success(&s, "cgroup"), Some(1.0));

    // Unknown fields and a summary without any network section: served, no network families.
    let mut doc: Value = serde_json::from_str(&summary_text).unwrap();
    doc["node"]["someFutureField"] = serde_json::json!({"x": [1, 2]});
    doc["node"].as_object_mut().unwrap().remove("network");
    for p in doc["pods"].as_array_mut().unwrap() {
        p.as_object_mut().unwrap().remove("network");
        p["unknownPodField"] = Value::from(1);
    }
    replay.control(serde_json::json!({"summary_text": doc.to_string()}));
    let s = until(&e, "kubelet", "the summary without network", |s| {
        s.iter().any(|x| {
            x.name == "stevedore_pod_volume_used_bytes" && x.labels["namespace"] == "kube-system"
        })
    });
    assert!(
        !s.iter()
            .any(|x| x.name.starts_with("stevedore_pod_network"))
    );
    let (ifaces, volumes) = check_summary(&doc, &s);
    assert_eq!(ifaces, 0);
    assert!(volumes > 0);

    // A pod list of more than 5 MB, one item of it malformed and one truncated list before it: the
    // truncated list keeps the previous pods; the big one is served but for the bad item.
    let base = load_json(&k8s_fixture("1_35/kubelet/pods"));
    let items = base["items"].as_array().unwrap();
    let mut big = Vec::new();
    let (mut i, mut size) = (0, 0);
    while size < 5_200_000 {
        size += serde_json::to_string(&items[i % items.len()])
            .unwrap()
            .len();
        let mut p = items[i % items.len()].clone();
        p["metadata"]["name"] = Value::from(format!("bulk-{i}"));
        p["metadata"]["uid"] = Value::from(format!("00000000-0000-0000-0000-{i:012}"));
        p["someUnknownField"] = Value::from("ignored");
        big.push(p);
        i += 1;
    }
    big.push(serde_json::json!({"metadata": 5}));
    let text = serde_json::json!({"kind": "PodList", "apiVersion": "v1", "items": big}).to_string();
    assert!(text.len() > 5_000_000);
    replay.control(serde_json::json!({"kubelet_pods_text": &text[..text.len() / 3]}));
    wait_log(
        &e,
        &mut log,
        &["source failing", "kubelet /pods"],
        "truncated pod list",
    );
    let s = parse_exposition(&e.get("/metrics?collect[]=kubernetes").text().unwrap());
    assert!(
        s.iter().any(|x| x.name == "stevedore_container_state"),
        "previous pods kept"
    );
    replay.control(serde_json::json!({"kubelet_pods_text": text}));
    let want = i;
    let s = until(&e, "kubernetes", "the big pod list", |s| {
        let pods: BTreeSet<&str> = s
            .iter()
            .filter(|x| x.labels.get("pod").is_some_and(|p| p.starts_with("bulk-")))
            .map(|x| x.labels["pod"].as_str())
            .collect();
        pods.len() == want
    });
    wait_log(&e, &mut log, &["did not parse"], "the skipped item");
    let (body, _) = scrape(&e, "kubernetes");
    assert_promtool_clean(&body);
    drop(s);
}
