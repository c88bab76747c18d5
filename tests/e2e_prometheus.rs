//! End to end: Debian's Prometheus server scrapes the real exporter every second; the test asks
//! Prometheus's HTTP API for `up`, a CPU rate and MemAvailable and checks them against the kernel.

mod common;

use std::time::{Duration, Instant};

use common::Exporter;
use common::prometheus::{ALERTING_ROW, Prometheus, dashboard_queries, query, start_prometheus};

#[test]
fn prometheus_scrapes_and_queries() {
    let e = Exporter::start(&[]);
    let p = start_prometheus(&e.addr);

    // Wait for enough samples for a 5s rate.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = query(
            &p,
            "count(count_over_time(up{job=\"stevedore\"}[10s]) >= 5)",
        );
        if r.first().map(|x| x.1) == Some(1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not collect 5 scrapes in 60s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let up = query(&p, "up{job=\"stevedore\"}");
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].1, 1.0);

    // Per CPU, the rates of all modes add up to about one second per second; each is within [0, 1.05].
    let cpus = std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    let per_cpu = query(&p, "sum by (cpu) (rate(node_cpu_seconds_total[5s]))");
    assert_eq!(per_cpu.len(), cpus);
    for (labels, v) in &per_cpu {
        assert!((0.8..=1.2).contains(v), "cpu {labels}: modes sum to {v}");
    }
    for (labels, v) in query(&p, "rate(node_cpu_seconds_total[5s])") {
        assert!((0.0..=1.05).contains(&v), "{labels}: {v}");
    }

    // MemAvailable agrees with the kernel within 10%.
    let kernel = std::fs::read_to_string("/proc/meminfo").unwrap();
    let avail: f64 = kernel
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<f64>()
        .unwrap()
        * 1024.0;
    let got = query(&p, "node_memory_MemAvailable_bytes");
    assert_eq!(got.len(), 1);
    assert!(
        (got[0].1 - avail).abs() / avail < 0.10,
        "prometheus {} vs kernel {avail}",
        got[0].1
    );

    // Every collector reported success to Prometheus too.
    for (labels, v) in query(&p, "stevedore_scrape_collector_success") {
        assert_eq!(v, 1.0, "{labels}");
    }
    // Counter resets would show up as a positive resets() count.
    let resets = query(&p, "sum(resets(node_cpu_seconds_total[10s]))");
    assert_eq!(resets[0].1, 0.0);
}

/// Waits until Prometheus has at least `n` scrapes of the exporter within the last 15 s.
fn wait_scrapes(p: &Prometheus, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let q = format!("count(count_over_time(up{{job=\"stevedore\"}}[15s]) >= {n})");
    while query(p, &q).first().map(|x| x.1) != Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "prometheus did not collect {n} scrapes in 60s"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn prometheus_rates_a_half_core_container_and_reads_its_working_set() {
    // A busy loop held to half a core by Docker (--cpus 0.5), and 24 MiB held in its tmpfs.
    let c = common::Container::run(
        "e2e-cpu",
        &[
            "--cpus",
            "0.5",
            "--memory",
            "128m",
            "--tmpfs",
            "/hold:size=64m",
        ],
        "dd if=/dev/zero of=/hold/f bs=1M count=24 2>/dev/null; while :; do :; done",
    );
    // The tmpfs is filled in the container's first moments; the scrapes start after, so that the rate
    // window below holds the busy loop only. Prometheus scrapes every second here: with the default
    // --collect.min-age (1s) a scrape could be served the previous collection again, a value a second
    // old under a new timestamp.
    std::thread::sleep(Duration::from_secs(1));
    let e = Exporter::start(&["--no-collector.filesystem", "--collect.min-age=0"]);
    let p = start_prometheus(&e.addr);
    wait_scrapes(&p, 12);
    let sel = format!("{{name=\"{}\"}}", c.name);

    // PromQL's rate over the scrapes Prometheus took, as every dashboard computes it.
    let rate = query(
        &p,
        &format!("rate(container_cpu_usage_seconds_total{sel}[10s])"),
    );
    assert_eq!(rate.len(), 1, "{rate:?}");
    eprintln!(
        "rate(container_cpu_usage_seconds_total[10s]) = {} cores",
        rate[0].1
    );
    assert!(
        (0.4..=0.55).contains(&rate[0].1),
        "rate {} cores",
        rate[0].1
    );
    // Throttled, as a half-core quota on a busy loop must be.
    let throttled = query(
        &p,
        &format!("rate(container_cpu_cfs_throttled_periods_total{sel}[10s])"),
    );
    assert!(throttled[0].1 > 0.0, "{throttled:?}");
    // The limit, as Docker set it.
    let limit = query(&p, &format!("container_spec_memory_limit_bytes{sel}"));
    let docker_limit: f64 = c.inspect("{{.HostConfig.Memory}}").parse().unwrap();
    assert_eq!(limit[0].1, docker_limit);
    // The working set Prometheus holds is the one of the cgroup's files (usage − total_inactive_file),
    // read by the test around the query; it holds the 24 MiB of tmpfs.
    let ws = |usage: f64, stat: f64| usage - stat;
    let dir = c.v1_file("memory", "");
    let before = ws(
        common::read_num(&dir.join("memory.usage_in_bytes"), None),
        common::read_num(&dir.join("memory.stat"), Some("total_inactive_file")),
    );
    let got = query(&p, &format!("container_memory_working_set_bytes{sel}"));
    let after = ws(
        common::read_num(&dir.join("memory.usage_in_bytes"), None),
        common::read_num(&dir.join("memory.stat"), Some("total_inactive_file")),
    );
    let (lo, hi) = (before.min(after), before.max(after));
    assert!(
        got[0].1 >= lo * 0.95 && got[0].1 <= hi * 1.05,
        "prometheus {} vs cgroup files {before}..{after}",
        got[0].1
    );
    assert!(got[0].1 >= 24.0 * 1048576.0, "{}", got[0].1);
    // A kubernetes-mixin style aggregation over the series works as is.
    let by_name = query(
        &p,
        &format!(
            "sum by (name) (rate(container_cpu_usage_seconds_total{{name=\"{}\",cpu=\"total\"}}[10s]))",
            c.name
        ),
    );
    assert_eq!(by_name.len(), 1);

    // Every query of the shipped Grafana dashboard runs on this Prometheus and finds data, Grafana's
    // variables set as "All" and the rate interval to 10 s. The container panels find this container.
    // The alerting row reads the shipped rules, which this Prometheus does not load (alerting_e2e does).
    let mut ran = 0;
    for d in dashboard_queries() {
        let (expr, q, panel) = (&d.expr, &d.query, &d.panel);
        // Every query is filtered by job and node (a cluster may scrape the same names elsewhere).
        assert!(
            expr.contains("job=~\"$job\"") && expr.contains("instance=~\"$instance\""),
            "{expr}"
        );
        if d.row == ALERTING_ROW {
            continue;
        }
        let result = query(&p, q);
        ran += 1;
        // v1 blkio counters exist only for devices with a throttle rule on this kernel: no series.
        // The Kubernetes row reads pod containers: none in this Docker setup.
        if expr.contains("container_fs_") || expr.contains("pod!=\"\"") {
            continue;
        }
        assert!(!result.is_empty(), "{panel}: no data for {q}");
        if expr.contains("name!=\"\"") {
            // Docker containers are named by their name in the legend's display label.
            assert!(
                result.iter().any(|(l, _)| l["name"] == c.name.as_str()
                    && (!expr.contains("label_join") || l["display"] == c.name.as_str())),
                "{panel}: {} not in {result:?}",
                c.name
            );
        }
    }
    assert_eq!(ran, 28);
}
