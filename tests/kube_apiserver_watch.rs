//! The apiserver pod source against the recorded pods replayed with list-then-watch semantics: events,
//! a watch that ends, 410 Gone, 403 with recovery.

mod common;

use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

use common::kube::*;
use common::*;

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
