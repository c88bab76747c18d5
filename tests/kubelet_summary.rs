//! The kubelet Summary source on both recorded payload sets: every pod, interface and volume, and usage
//! without cgroups label for label against the recorded /metrics/cadvisor.

mod common;

use common::kube::*;
use common::*;

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
