//! Bad payloads from the kubelet: truncated JSON, unknown fields, missing sections, a large pod list;
//! each logged once, the rest served.

mod common;

use std::time::Duration;

use serde_json::Value;
use std::collections::BTreeSet;

use common::kube::*;
use common::*;

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

fn vm_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    fields_of(&status, "VmRSS:")[1].parse::<f64>().unwrap() / 1024.0
}

/// Answers larger than any node's (tens of MB) are refused after 16 MiB, said once in the log, and
/// leave no memory behind once normal answers resume.
#[test]
fn oversized_kubelet_answers_are_refused_and_memory_stays_bounded() {
    let (replay, e) = recorded_kubelet(&["--no-collector.cgroup"]);
    let mut log = Vec::new();
    until(&e, "kubelet", "the first summary", |s| {
        collector_success(s, "kubelet") == Some(1.0)
    });
    let summary = std::fs::read_to_string(k8s_fixture("1_35/kubelet/stats/summary")).unwrap();
    let pods = std::fs::read_to_string(k8s_fixture("1_35/kubelet/pods")).unwrap();
    let padding = " ".repeat(40 << 20);
    replay.control(serde_json::json!({
        "summary_text": format!("{summary}{padding}"),
        "kubelet_pods_text": format!("{pods}{padding}"),
    }));
    // Both answers are oversized and each source says so; which says it first is a race (CI once saw
    // the /pods line first), so the summary's own line is waited for.
    let line = wait_log(
        &e,
        &mut log,
        &["source failing", "larger than 16 MiB", "/stats/summary"],
        "the oversized summary",
    );
    assert!(line.contains("/stats/summary"), "{line}");
    let mut peak: f64 = 0.0;
    for _ in 0..6 {
        peak = peak.max(vm_rss_mib(e.child.id()));
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(peak < 96.0, "RSS {peak} MiB with 40 MB answers");
    // The pod list kept is the last good one: pods keep their names.
    let (_, s) = scrape(&e, "kubelet");
    assert_eq!(collector_success(&s, "kubelet"), Some(0.0));
    replay.control(serde_json::json!({"summary_text": summary, "kubelet_pods_text": pods}));
    until(&e, "kubelet", "recovery", |s| {
        collector_success(s, "kubelet") == Some(1.0)
    });
    std::thread::sleep(Duration::from_secs(2));
    let after = vm_rss_mib(e.child.id());
    assert!(after < 48.0, "RSS {after} MiB after normal answers resumed");
    log.extend(e.drain_log());
    let failing = log
        .iter()
        .filter(|l| l.contains("source failing") && l.contains("larger than"))
        .count();
    assert!((1..=2).contains(&failing), "{log:#?}");
}
