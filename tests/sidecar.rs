//! Sidecar mode: Stevedore in an application pod reports that pod's containers only (`POD_UID` from the
//! downward API), and watches only that pod on the apiserver (a namespaced Role is enough). The node is
//! the recorded 1.35 node, its pod containers' cgroups made for real in the kubelet's layout.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::kube::*;
use common::*;

#[test]
fn a_sidecar_reports_its_own_pod_only() {
    let _turn = NODE_CGROUPS.lock().unwrap_or_else(|p| p.into_inner());
    assert!(
        Path::new("/sys/fs/cgroup/memory").is_dir(),
        "needs the cgroup v1 hierarchies (root)"
    );
    let recorded = recorded_cadvisor();
    let ids: Vec<String> = recorded
        .iter()
        .filter(|r| {
            r.name == "container_cpu_usage_seconds_total" && r.labels["id"].contains("/pod")
        })
        .map(|r| r.labels["id"].clone())
        .collect();
    let _dirs = CgroupDirs::make(&ids);
    let ksm = recorded
        .iter()
        .find(|r| {
            r.name == "container_cpu_usage_seconds_total"
                && r.labels["container"] == "kube-state-metrics"
        })
        .unwrap();
    let (namespace, pod) = (ksm.labels["namespace"].clone(), ksm.labels["pod"].clone());
    // The pod's uid, as the downward API gives it (the recorded pod list has it).
    let pods = load_json(&k8s_fixture("1_35/kubelet/pods"));
    let me = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["metadata"]["name"] == pod.as_str())
        .unwrap();
    let uid = me["metadata"]["uid"].as_str().unwrap().to_string();
    // The recorded cgroups of that pod: its own and its containers' (the sandbox included).
    let expected: BTreeSet<String> = ids
        .iter()
        .filter(|id| id.contains(&format!("pod{uid}")))
        .cloned()
        .collect();
    assert!(expected.len() >= 2, "{expected:?}");

    let replay = Replay::start(&[
        "--apiserver-pods",
        k8s_fixture("1_35/kubelet/pods").to_str().unwrap(),
    ]);
    let kc = replay.kubeconfig();
    let e = Exporter::start(&[
        "--kubeconfig",
        kc.to_str().unwrap(),
        "--collector.disable-defaults",
        "--collector.cgroup",
        "--collector.kubernetes",
        "--collect.min-age=0",
        &format!("--kubernetes.pod-uid={uid}"),
        &format!("--kubernetes.pod-name={pod}"),
        &format!("--kubernetes.pod-namespace={namespace}"),
    ]);
    let s = until(&e, "cgroup", "the pod's containers named", |s| {
        s.iter().any(|x| {
            x.name == "container_cpu_usage_seconds_total"
                && x.labels["container"] == "kube-state-metrics"
        })
    });
    let served: BTreeSet<String> = s
        .iter()
        .filter(|x| x.name == "container_cpu_usage_seconds_total")
        .map(|x| x.labels["id"].clone())
        .collect();
    // Exactly the pod's cgroups: not the node's root, not the other pods.
    assert_eq!(served, expected);
    for x in s
        .iter()
        .filter(|x| x.name == "container_cpu_usage_seconds_total")
    {
        assert_eq!(x.labels["pod"], pod);
        assert_eq!(x.labels["namespace"], namespace);
    }
    // The pod-level families name only this pod too.
    let others: Vec<&Sample> = s
        .iter()
        .filter(|x| {
            x.labels
                .get("pod")
                .is_some_and(|p| !p.is_empty() && *p != pod)
        })
        .collect();
    assert!(others.is_empty(), "{:?}", others.first());
    // The watch asked for this pod, in its namespace only: a namespaced Role suffices.
    let asked: Vec<String> = replay
        .requests()
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    let pod_requests: Vec<&String> = asked.iter().filter(|p| p.contains("pods")).collect();
    assert!(!pod_requests.is_empty());
    for p in &pod_requests {
        assert!(
            p.starts_with(&format!("/api/v1/namespaces/{namespace}/pods?"))
                && p.contains(&format!("metadata.name%3D{pod}")),
            "{p}"
        );
    }
}
