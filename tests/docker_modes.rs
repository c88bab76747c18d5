//! Docker in the other modes: usage from the stats API when cgroups are not readable, and containers in
//! the kubelet's cgroup layout with CRI labels (cri-dockerd) attributed to their pods.

mod common;

use common::*;

#[test]
fn stats_api_fallback_when_cgroups_are_not_readable() {
    let c = Container::run("stats", &["--memory", "64m"], "sleep 1000");
    let empty = tempfile::tempdir().unwrap();
    let e = docker_exporter(&[
        &format!("--path.sysfs={}", empty.path().display()),
        "--docker.stats-interval=1s",
    ]);
    let limit: f64 = c.inspect("{{.HostConfig.Memory}}").parse().unwrap();
    // The stats API is polled every second, so its figure is up to a second old: the container's memory
    // settles after its start (runc's init leaves), so wait for the figure to agree with the file as it is.
    let file = || read_num(&c.v1_file("memory", "memory.usage_in_bytes"), None);
    let close =
        |usage: Option<f64>| usage.is_some_and(|u| (u - file()).abs() <= 0.2 * file().max(1.0));
    let s = scrape_until(&e, 30, "stats-API figures", |s| {
        one(s, "container_spec_memory_limit_bytes", &c.name) == Some(limit)
            && close(one(s, "container_memory_usage_bytes", &c.name))
    });
    assert_eq!(
        value(&s, "stevedore_source_up", &[("source", "docker_stats")]),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "stevedore_source_up", &[("source", "docker")]),
        Some(1.0)
    );
    assert!(one(&s, "container_cpu_usage_seconds_total", &c.name).unwrap() > 0.0);
    assert_eq!(promtool_problems(&e.metrics()), Vec::<String>::new());
    assert!(e.drain_log().iter().any(|l| l.contains("stats API")));
}

#[test]
fn kubelet_cgroup_layout_and_cri_labels_give_pod_attribution() {
    // The kubelet's cgroupfs layout, reproduced with real containers: a pod cgroup per pod under its QoS
    // class (Guaranteed pods directly under kubepods), the containers inside it, and the io.kubernetes.*
    // labels cri-dockerd sets. One pod per QoS class.
    // runc leaves the parent cgroups it made for --cgroup-parent: remove what this test made, in every
    // hierarchy (rmdir only removes empty cgroups, and the QoS levels only if the test created them).
    let mut cleanup = RemoveCgroups(Vec::new());
    let made_kubepods = !std::path::Path::new("/sys/fs/cgroup/memory/kubepods").exists();
    struct Pod {
        qos: &'static str,
        parent: String,
        name: String,
        sandbox: Container,
        app: Container,
    }
    let mut pods = Vec::new();
    for (i, qos) in ["guaranteed", "burstable", "besteffort"]
        .into_iter()
        .enumerate()
    {
        let uid = format!(
            "5eed{:04x}-000{i}-4000-8000-{:012x}",
            std::process::id() % 0xffff,
            std::process::id()
        );
        let parent = if qos == "guaranteed" {
            format!("/kubepods/pod{uid}")
        } else {
            format!("/kubepods/{qos}/pod{uid}")
        };
        cleanup.0.push(parent.clone());
        if qos != "guaranteed"
            && !std::path::Path::new("/sys/fs/cgroup/memory/kubepods")
                .join(qos)
                .exists()
        {
            cleanup.0.push(format!("/kubepods/{qos}"));
        }
        let name = format!("web-{qos}");
        let labels = |container: &str| {
            vec![
                "--cgroup-parent".to_string(),
                parent.clone(),
                "--label".into(),
                format!("io.kubernetes.pod.name={name}"),
                "--label".into(),
                "io.kubernetes.pod.namespace=shop".into(),
                "--label".into(),
                format!("io.kubernetes.pod.uid={uid}"),
                "--label".into(),
                format!("io.kubernetes.container.name={container}"),
            ]
        };
        let sandbox_opts = labels("POD");
        let sandbox = Container::run(
            &format!("k8s-pause-{qos}"),
            &sandbox_opts.iter().map(String::as_str).collect::<Vec<_>>(),
            "sleep 1000",
        );
        let mut app_args = labels("app");
        app_args.extend([
            "--network".into(),
            format!("container:{}", sandbox.id),
            "--cpus".into(),
            "0.2".into(),
        ]);
        let app = Container::run(
            &format!("k8s-app-{qos}"),
            &app_args.iter().map(String::as_str).collect::<Vec<_>>(),
            // A busy loop in a shell holding about 8 MB.
            "x=$(head -c 8000000 /dev/zero | tr '\\0' a); while :; do :; done",
        );
        pods.push(Pod {
            qos,
            parent,
            name,
            sandbox,
            app,
        });
    }
    if made_kubepods {
        cleanup.0.push("/kubepods".into());
    }
    let e = docker_exporter(&[]);
    let s = scrape_until(&e, 30, "pod and container series", |s| {
        pods.iter().all(|p| {
            value(s, "container_cpu_usage_seconds_total", &[("id", &p.parent)]).is_some()
                && one(s, "container_cpu_usage_seconds_total", &p.app.name).is_some()
                && value(s, "pod_cpu_usage_seconds_total", &[("pod", &p.name)]).is_some()
        })
    });
    for p in &pods {
        let app_series = named(&s, "container_cpu_usage_seconds_total", &p.app.name)[0];
        assert_eq!(
            app_series.labels["id"],
            format!("{}/{}", p.parent, p.app.id)
        );
        assert_eq!(app_series.labels["pod"], p.name);
        assert_eq!(app_series.labels["namespace"], "shop");
        assert_eq!(app_series.labels["container"], "app");
        // The sandbox as the kubelet on containerd serves it: container="", name = its id, its image.
        let sandbox = named(&s, "container_cpu_usage_seconds_total", &p.sandbox.id)[0];
        assert_eq!(
            (
                sandbox.labels["container"].as_str(),
                sandbox.labels["image"].as_str(),
                sandbox.labels["pod"].as_str()
            ),
            ("", IMAGE, p.name.as_str())
        );
        // The pod cgroup: container="" and image="", pod and namespace filled.
        let pod = s
            .iter()
            .find(|x| x.name == "container_cpu_usage_seconds_total" && x.labels["id"] == p.parent)
            .unwrap();
        assert_eq!(
            (
                pod.labels["container"].as_str(),
                pod.labels["image"].as_str()
            ),
            ("", ""),
            "{}",
            p.qos
        );
        assert_eq!(
            (pod.labels["pod"].as_str(), pod.labels["namespace"].as_str()),
            (p.name.as_str(), "shop")
        );
        // The pod's usage is the sum of its containers' (read in one collection; the busy loop dominates).
        let sum: f64 = [&p.sandbox.id, &p.app.name]
            .iter()
            .map(|n| one(&s, "container_cpu_usage_seconds_total", n).unwrap())
            .sum();
        assert!(
            (pod.value - sum).abs() <= 0.05 * sum.max(0.1),
            "{}: pod {} vs containers {sum}",
            p.qos,
            pod.value
        );
        let ws = |n: &str| one(&s, "container_memory_working_set_bytes", n).unwrap();
        let pod_ws = value(
            &s,
            "container_memory_working_set_bytes",
            &[("id", &p.parent)],
        )
        .unwrap();
        let sum_ws = ws(&p.sandbox.id) + ws(&p.app.name);
        assert!(
            (pod_ws - sum_ws).abs() <= (0.10 * sum_ws).max(1048576.0),
            "{}: pod working set {pod_ws} vs containers {sum_ws}",
            p.qos
        );
        // The kubelet's resource names carry the pod cgroup's figures.
        assert_eq!(
            value(
                &s,
                "pod_cpu_usage_seconds_total",
                &[("pod", &p.name), ("namespace", "shop")]
            ),
            Some(pod.value)
        );
        assert_eq!(
            value(
                &s,
                "pod_memory_working_set_bytes",
                &[("pod", &p.name), ("namespace", "shop")]
            ),
            Some(pod_ws)
        );
        // The sandbox carries the pod's network; the app container shares its namespace and carries none.
        assert!(
            named(&s, "container_network_receive_bytes_total", &p.sandbox.id)
                .iter()
                .any(|x| x.labels["interface"] == "eth0")
        );
        assert!(named(&s, "container_network_receive_bytes_total", &p.app.name).is_empty());
    }
}
