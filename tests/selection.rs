//! `collect[]` and `exclude[]` run only the collectors they select: a node-only job on a node with many
//! containers does not pay for the cgroup collection.

mod common;

use common::{Exporter, V1_ID, collector_success, parse_exposition, v1_tree, value};

/// A v1 tree with `n` copies of the recorded Docker container, as a --path.sysfs root.
fn many_cgroups(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for c in ["cpu", "cpuacct", "memory", "blkio"] {
        let src = v1_tree().join(c).join("docker").join(V1_ID);
        for i in 0..n {
            let dst = dir.path().join(format!("fs/cgroup/{c}/docker/{i:064x}"));
            std::fs::create_dir_all(&dst).unwrap();
            for f in std::fs::read_dir(&src).unwrap().flatten() {
                std::fs::copy(f.path(), dst.join(f.file_name())).unwrap();
            }
        }
    }
    dir
}

fn runs(body: &str, collector: &str) -> Option<f64> {
    value(
        &parse_exposition(body),
        "stevedore_scrape_collector_runs_total",
        &[("collector", collector)],
    )
}

#[test]
fn collect_meminfo_does_not_run_the_cgroup_collector() {
    let sys = many_cgroups(300);
    let e = Exporter::start(&[
        &format!("--path.sysfs={}", sys.path().display()),
        "--collect.min-age=0",
        "--docker.host=unix:///nonexistent.sock",
    ]);
    // The start-up collection ran everything once; a full scrape runs it again.
    let full = e.metrics();
    let s = parse_exposition(&full);
    assert_eq!(collector_success(&s, "cgroup"), Some(1.0));
    let containers = s
        .iter()
        .filter(|x| x.name == "container_memory_usage_bytes" && x.labels["id"] != "/")
        .count();
    assert_eq!(containers, 300);
    let cgroup_runs = runs(&full, "cgroup").unwrap();
    let meminfo_runs = runs(&full, "meminfo").unwrap();

    for i in 1..=5 {
        let body = e.get("/metrics?collect[]=meminfo").text().expect("a body");
        assert_eq!(runs(&body, "meminfo"), Some(meminfo_runs + i as f64));
        assert_eq!(runs(&body, "cgroup"), None, "only meminfo is reported");
        assert!(!body.contains("container_"), "no container series");
    }
    // The cgroup collector did not run for any of them.
    let after = e.metrics();
    assert_eq!(runs(&after, "cgroup"), Some(cgroup_runs + 1.0));
    assert_eq!(runs(&after, "meminfo"), Some(meminfo_runs + 6.0));

    // exclude[] likewise.
    let body = e.get("/metrics?exclude[]=cgroup").text().unwrap();
    assert_eq!(runs(&body, "cgroup"), None);
    assert_eq!(
        runs(&e.metrics(), "cgroup"),
        Some(cgroup_runs + 2.0),
        "exclude[]=cgroup ran the cgroup collector"
    );
}
