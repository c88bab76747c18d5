//! Real cgroups in the kubelet's layout for the recorded node, both drivers: pods, containers and their
//! labels, and `--kubernetes.pod-labels`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::kube::*;
use common::*;

#[test]
fn cgroup_attribution_of_the_recorded_node_both_drivers() {
    let _turn = NODE_CGROUPS.lock().unwrap_or_else(|p| p.into_inner());
    if !Path::new("/sys/fs/cgroup/memory").is_dir() {
        panic!("needs the cgroup v1 hierarchies of this machine kind (root)");
    }
    let recorded = recorded_cadvisor();
    let cpu = recorded_pod_cpu(&recorded);
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
    let ids: Vec<String> = recorded_pod_cpu(&recorded_cadvisor())
        .iter()
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

/// CRI-O's layouts (`crio-<id>` under the pod with the cgroupfs driver, `crio-<id>.scope` with systemd,
/// conmon beside each container in `crio-conmon-<id>`), named from the pod API: the recorded node's pods
/// as CRI-O would report them (`cri-o://` ids), every recorded container cgroup made in CRI-O's form.
#[test]
fn crio_layouts_named_from_the_pod_api() {
    let _turn = NODE_CGROUPS.lock().unwrap_or_else(|p| p.into_inner());
    let recorded = recorded_cadvisor();
    let cpu = recorded_pod_cpu(&recorded);
    // (recorded series, its cgroup in CRI-O's cgroupfs form); pod cgroups stay as they are.
    let crio = |id: &str| -> String {
        let (parent, last) = id.rsplit_once('/').unwrap();
        if last.starts_with("pod") {
            id.to_string()
        } else {
            format!("{parent}/crio-{last}")
        }
    };
    let mut dirs: Vec<String> = cpu.iter().map(|r| crio(&r.labels["id"])).collect();
    let conmons: Vec<String> = (cpu.iter())
        .filter(|r| !r.labels["name"].is_empty())
        .map(|r| crio(&r.labels["id"]).replace("/crio-", "/crio-conmon-"))
        .collect();
    dirs.extend(conmons.iter().cloned());
    // One app container also in the systemd driver's form, with its conmon scope.
    let app = cpu
        .iter()
        .find(|r| !r.labels["container"].is_empty())
        .unwrap();
    let parts: Vec<&str> = app.labels["id"]
        .trim_start_matches('/')
        .split('/')
        .collect();
    let (qos, uid, cid) = (parts[1], parts[2].trim_start_matches("pod"), parts[3]);
    let slice = format!(
        "/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{}.slice",
        uid.replace('-', "_")
    );
    let systemd = format!("{slice}/crio-{cid}.scope");
    dirs.push(systemd.clone());
    dirs.push(format!("{slice}/crio-conmon-{cid}.scope"));
    let _dirs = CgroupDirs::make(&dirs);

    let tmp = tempfile::tempdir().unwrap();
    let pods_path = tmp.path().join("pods");
    let payload = std::fs::read_to_string(k8s_fixture("1_35/kubelet/pods")).unwrap();
    assert!(payload.contains("containerd://"));
    std::fs::write(&pods_path, payload.replace("containerd://", "cri-o://")).unwrap();
    let (_replay, e) = recorded_kubelet_with_pods(&pods_path, &[]);
    let app_crio = crio(&app.labels["id"]);
    let s = until(&e, "cgroup", "CRI-O containers attributed", |s| {
        s.iter().any(|x| {
            x.name == "container_cpu_usage_seconds_total"
                && x.labels["id"] == app_crio
                && !x.labels["pod"].is_empty()
        })
    });
    let series = |id: &str| {
        s.iter()
            .find(|x| x.name == "container_cpu_usage_seconds_total" && x.labels["id"] == id)
    };
    let mut apps = 0;
    for r in &cpu {
        let ours = series(&crio(&r.labels["id"]))
            .unwrap_or_else(|| panic!("no series for {}", crio(&r.labels["id"])));
        for l in ["pod", "namespace", "container", "name"] {
            assert_eq!(ours.labels[l], r.labels[l], "{l} of {}", r.labels["id"]);
        }
        if !r.labels["container"].is_empty() {
            assert_eq!(
                ours.labels["image"], r.labels["image"],
                "{}",
                r.labels["id"]
            );
            apps += 1;
        }
    }
    assert!(apps > 10, "{apps}");
    // conmon is CRI-O's helper, not a container.
    for c in &conmons {
        assert!(series(c).is_none(), "{c}");
    }
    assert!(series(&format!("{slice}/crio-conmon-{cid}.scope")).is_none());
    let sd = series(&systemd).expect("the systemd-form cgroup");
    for l in ["pod", "namespace", "container", "image", "name"] {
        assert_eq!(sd.labels[l], app.labels[l], "{l}");
    }
}

/// No runtime source measures the layers here: each container's writable layer comes from the kubelet's
/// summary (`rootfs`), labelled as the kubelet's cAdvisor labels the same container.
#[test]
fn container_rootfs_from_the_summary_when_no_runtime_measures_it() {
    let summary = load_json(&k8s_fixture("1_35/kubelet/stats/summary"));
    let recorded = recorded_cadvisor();
    let (_replay, e) = recorded_kubelet(&[]);
    let s = until(&e, "filesystem", "the containers' rootfs", |s| {
        s.iter()
            .any(|x| x.name == "container_fs_usage_bytes" && x.labels["id"] != "/")
    });
    let (mut containers, mut ids) = (0, 0);
    for p in summary["pods"].as_array().unwrap() {
        let pod = str_of(p, &["podRef", "name"]);
        let ns = str_of(p, &["podRef", "namespace"]);
        for c in p["containers"].as_array().into_iter().flatten() {
            let Some(used) = c["rootfs"]["usedBytes"].as_f64() else {
                continue;
            };
            let name = str_of(c, &["name"]);
            let find = |family: &str| {
                s.iter()
                    .find(|x| {
                        x.name == family
                            && x.labels["pod"] == pod
                            && x.labels["namespace"] == ns
                            && x.labels["container"] == name
                    })
                    .unwrap_or_else(|| panic!("{family} of {ns}/{pod}/{name}"))
            };
            let usage = find("container_fs_usage_bytes");
            assert_eq!(usage.value, used);
            assert_eq!(
                find("container_fs_limit_bytes").value,
                c["rootfs"]["capacityBytes"].as_f64().unwrap()
            );
            assert_eq!(
                find("stevedore_container_fs_inodes_used").value,
                c["rootfs"]["inodesUsed"].as_f64().unwrap()
            );
            assert_eq!(
                find("container_fs_inodes_free").value,
                c["rootfs"]["inodesFree"].as_f64().unwrap()
            );
            containers += 1;
            // The same id and name as the kubelet's cAdvisor series of that container.
            if let Some(r) = recorded.iter().find(|r| {
                r.name == "container_cpu_usage_seconds_total"
                    && r.labels["pod"] == pod
                    && r.labels["namespace"] == ns
                    && r.labels["container"] == name
            }) {
                assert_eq!(usage.labels["id"], r.labels["id"]);
                assert_eq!(usage.labels["name"], r.labels["name"]);
                assert_eq!(usage.labels["image"], r.labels["image"]);
                ids += 1;
            }
        }
    }
    assert!(containers > 10 && ids > 10, "{containers} {ids}");
}
