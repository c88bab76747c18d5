//! `collect[]` and `exclude[]` run only the collectors they select: a node-only job on a node with many
//! containers does not pay for the cgroup collection.

mod common;

use common::{Exporter, collector_success, many_cgroups, parse_exposition, value};

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
