//! Container metrics against ground truth on a real Docker engine: limits set on `docker run`, real load
//! (busy loops, memory fills, direct writes, traffic), the kernel's cgroup files read independently, and
//! what `docker inspect` says. Needs dockerd running (the README's test command starts it).

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{
    Container, Exporter, Sample, collector_success, parse_exposition, promtool_problems, read_num,
    scrape_until, value,
};

fn exporter(extra: &[&str]) -> Exporter {
    let mut args = vec![
        "--collect.min-age=0",
        "--collector.disable-defaults",
        "--collector.cgroup",
        "--collector.docker",
    ];
    args.extend_from_slice(extra);
    Exporter::start(&args)
}

fn named<'a>(s: &'a [Sample], metric: &str, name: &str) -> Vec<&'a Sample> {
    s.iter()
        .filter(|x| x.name == metric && x.labels.get("name").map(String::as_str) == Some(name))
        .collect()
}

fn one(s: &[Sample], metric: &str, name: &str) -> Option<f64> {
    let v = named(s, metric, name);
    assert!(v.len() <= 1, "{metric} for {name}: {} series", v.len());
    v.first().map(|x| x.value)
}

fn known(c: &Container) -> impl Fn(&[Sample]) -> bool + '_ {
    move |s: &[Sample]| one(s, "container_cpu_usage_seconds_total", &c.name).is_some()
}

#[test]
fn cpu_quota_busy_loop_measures_half_a_core() {
    let c = Container::run("cpu", &["--cpus", "0.5"], "while :; do :; done");
    let e = exporter(&[]);
    let s1 = scrape_until(&e, 30, "the busy container", known(&c));
    let u1 = one(&s1, "container_cpu_usage_seconds_total", &c.name).unwrap();
    let t1 = one(&s1, "container_last_seen", &c.name).unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let before = read_num(&c.v1_file("cpuacct", "cpuacct.usage"), None) / 1e9;
    let s2 = parse_exposition(&e.metrics());
    let after = read_num(&c.v1_file("cpuacct", "cpuacct.usage"), None) / 1e9;
    let u2 = one(&s2, "container_cpu_usage_seconds_total", &c.name).unwrap();
    let t2 = one(&s2, "container_last_seen", &c.name).unwrap();
    assert!(
        before <= u2 && u2 <= after,
        "cpuacct.usage {before}..{after}, exposed {u2}"
    );
    let rate = (u2 - u1) / (t2 - t1);
    assert!((0.4..=0.55).contains(&rate), "rate {rate} cores");

    // The quota as Docker set it.
    let nano: f64 = c.inspect("{{.HostConfig.NanoCpus}}").parse().unwrap();
    let quota = one(&s2, "container_spec_cpu_quota", &c.name).unwrap();
    let period = one(&s2, "container_spec_cpu_period", &c.name).unwrap();
    assert_eq!(quota / period, nano / 1e9);
    assert_eq!(quota, read_num(&c.v1_file("cpu", "cpu.cfs_quota_us"), None));
    // Throttling is real and reported (a quota is set).
    let throttled = one(&s2, "container_cpu_cfs_throttled_periods_total", &c.name).unwrap();
    assert!(throttled > 0.0);
    let file = read_num(&c.v1_file("cpu", "cpu.stat"), Some("nr_throttled"));
    assert!(throttled <= file, "{throttled} > file {file}");
}

#[test]
fn memory_limit_working_set_and_files_read_independently() {
    let c = Container::run("mem", &["--memory", "64m"], "sleep 1000");
    let e = exporter(&[]);
    let s = scrape_until(&e, 30, "the sleeping container", known(&c));
    let limit: f64 = c.inspect("{{.HostConfig.Memory}}").parse().unwrap();
    assert_eq!(
        one(&s, "container_spec_memory_limit_bytes", &c.name),
        Some(limit)
    );
    assert_eq!(limit, 64.0 * 1024.0 * 1024.0);

    // Every value family of an idle container equals its cgroup file, read around the scrape.
    // (family, file, key in the file, divisor to the family's unit)
    let files: Vec<(&str, std::path::PathBuf, Option<&str>, f64)> = vec![
        (
            "container_memory_usage_bytes",
            c.v1_file("memory", "memory.usage_in_bytes"),
            None,
            1.0,
        ),
        (
            "container_memory_rss",
            c.v1_file("memory", "memory.stat"),
            Some("total_rss"),
            1.0,
        ),
        (
            "container_memory_cache",
            c.v1_file("memory", "memory.stat"),
            Some("total_cache"),
            1.0,
        ),
        (
            "container_memory_mapped_file",
            c.v1_file("memory", "memory.stat"),
            Some("total_mapped_file"),
            1.0,
        ),
        (
            "container_memory_max_usage_bytes",
            c.v1_file("memory", "memory.max_usage_in_bytes"),
            None,
            1.0,
        ),
        (
            "container_memory_failcnt",
            c.v1_file("memory", "memory.failcnt"),
            None,
            1.0,
        ),
        (
            "container_spec_memory_limit_bytes",
            c.v1_file("memory", "memory.limit_in_bytes"),
            None,
            1.0,
        ),
        (
            "container_spec_cpu_shares",
            c.v1_file("cpu", "cpu.shares"),
            None,
            1.0,
        ),
        (
            "container_spec_cpu_period",
            c.v1_file("cpu", "cpu.cfs_period_us"),
            None,
            1.0,
        ),
        (
            "container_threads",
            c.v1_file("pids", "pids.current"),
            None,
            1.0,
        ),
        (
            "container_cpu_usage_seconds_total",
            c.v1_file("cpuacct", "cpuacct.usage"),
            None,
            1e9,
        ),
    ];
    // A gauge can move and come back while a scrape runs, so each family must equal its file (read just
    // before and just after the scrape, unchanged) in at least one of several attempts.
    let mut matched = vec![false; files.len()];
    let mut last_seen: Vec<Option<(f64, Option<f64>)>> = vec![None; files.len()];
    for _attempt in 0..10 {
        let before: Vec<f64> = files
            .iter()
            .map(|(_, p, k, div)| read_num(p, *k) / div)
            .collect();
        let s = parse_exposition(&e.metrics());
        let after: Vec<f64> = files
            .iter()
            .map(|(_, p, k, div)| read_num(p, *k) / div)
            .collect();
        for (i, (metric, _, _, _)) in files.iter().enumerate() {
            let got = one(&s, metric, &c.name);
            if before[i] == after[i] {
                last_seen[i] = Some((before[i], got));
                matched[i] |= got == Some(before[i]);
            }
        }
        if matched.iter().all(|m| *m) {
            break;
        }
    }
    for (i, (metric, path, key, _)) in files.iter().enumerate() {
        assert!(
            matched[i],
            "{metric} never equalled {} {key:?}: last (file, exposed) {:?}",
            path.display(),
            last_seen[i]
        );
    }
    // Working set = usage - total_inactive_file.
    let s = parse_exposition(&e.metrics());
    let ws0 = one(&s, "container_memory_working_set_bytes", &c.name).unwrap();

    // Hold 40 MiB (tmpfs pages are charged to the container and stay resident).
    let n = 40.0 * 1024.0 * 1024.0;
    c.exec("head -c 41943040 /dev/zero > /dev/shm/fill");
    let s = parse_exposition(&e.metrics());
    let ws1 = one(&s, "container_memory_working_set_bytes", &c.name).unwrap();
    let want = ws0 + n;
    assert!(
        (ws1 - want).abs() <= 0.1 * want,
        "working set {ws1}, expected {want} ± 10%"
    );
    let usage = read_num(&c.v1_file("memory", "memory.usage_in_bytes"), None);
    let inactive = read_num(
        &c.v1_file("memory", "memory.stat"),
        Some("total_inactive_file"),
    );
    assert!(
        (ws1 - (usage - inactive).max(0.0)).abs() <= 0.05 * want,
        "ws {ws1} vs files {usage} - {inactive}"
    );
}

/// The block device under Docker's data root (a whole disk: blkio rules need one).
fn docker_disk() -> String {
    let src = String::from_utf8(
        Command::new("findmnt")
            .args(["-n", "-o", "SOURCE", "--target", "/var/lib/docker"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    // A bind mount shows as "/dev/vda[/var/lib/docker]".
    let src = src.trim().split('[').next().unwrap_or_default().to_string();
    let parent = String::from_utf8(
        Command::new("lsblk")
            .args(["-n", "-o", "PKNAME", &src])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let parent = parent.trim();
    if parent.is_empty() {
        src
    } else {
        format!("/dev/{parent}")
    }
}

#[test]
fn direct_writes_show_in_fs_writes_bytes() {
    // This kernel keeps v1 blkio statistics only for devices with a throttle rule, so the container gets
    // one far above anything it can reach (10 GB/s): accounting without throttling.
    let disk = docker_disk();
    let rule = format!("{disk}:10gb");
    let n = 20.0 * 1024.0 * 1024.0;
    let c = Container::run(
        "dd",
        &["--device-write-bps", &rule],
        "dd if=/dev/zero of=/tmp/f bs=1M count=20 oflag=direct && sleep 1000",
    );
    let e = exporter(&[]);
    let device = disk.trim_start_matches("/dev/").to_string();
    let s = scrape_until(&e, 30, "20 MiB of direct writes", |s| {
        named(s, "container_fs_writes_bytes_total", &c.name)
            .iter()
            .map(|x| x.value)
            .sum::<f64>()
            >= n
    });
    let w = named(&s, "container_fs_writes_bytes_total", &c.name);
    assert!(
        w.iter().any(|x| x.labels["device"] == device),
        "device label should be {device}: {w:?}"
    );
    let ops: f64 = named(&s, "container_fs_writes_total", &c.name)
        .iter()
        .map(|x| x.value)
        .sum();
    assert!(ops >= 20.0, "{ops} write operations");
    assert_eq!(promtool_problems(&e.metrics()), Vec::<String>::new());
}

#[test]
fn traffic_between_two_containers_shows_on_both_sides() {
    let n = 5.0 * 1024.0 * 1024.0;
    // busybox nc -l exits when its own stdin ends, and a container's stdin is /dev/null: feed it a sleep.
    let server = Container::run(
        "netrx",
        &[],
        "sleep 1000 | nc -l -p 5000 > /dev/null; sleep 1000",
    );
    let ip = server.inspect("{{.NetworkSettings.IPAddress}}");
    std::thread::sleep(Duration::from_millis(500));
    let client = Container::run(
        "nettx",
        &[],
        &format!("head -c 5242880 /dev/zero | nc {ip} 5000; sleep 1000"),
    );
    let e = exporter(&[]);
    let s = scrape_until(&e, 30, "5 MiB each way", |s| {
        let rx = s.iter().find(|x| {
            x.name == "container_network_receive_bytes_total"
                && x.labels["name"] == server.name
                && x.labels["interface"] == "eth0"
        });
        let tx = s.iter().find(|x| {
            x.name == "container_network_transmit_bytes_total"
                && x.labels["name"] == client.name
                && x.labels["interface"] == "eth0"
        });
        rx.is_some_and(|x| x.value >= n) && tx.is_some_and(|x| x.value >= n)
    });
    // The counters are the container's own network namespace, as the kernel shows it from inside.
    let pid = server.inspect("{{.State.Pid}}");
    let dev = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap();
    let eth0: f64 = dev
        .lines()
        .find(|l| l.trim_start().starts_with("eth0:"))
        .unwrap()
        .split_once(':')
        .unwrap()
        .1
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let got = s
        .iter()
        .find(|x| {
            x.name == "container_network_receive_bytes_total" && x.labels["name"] == server.name
        })
        .unwrap()
        .value;
    assert!(got <= eth0 && got >= n, "exposed {got}, kernel {eth0}");
    // Loopback is never reported.
    assert!(!s.iter().any(|x| x.name.starts_with("container_network_")
        && x.labels.get("interface").is_some_and(|i| i == "lo")));
}

#[test]
fn memory_limit_kill_counts_an_oom_event() {
    // `tail /dev/zero` grows until the 16 MiB limit kills it; the shell survives, so does the cgroup.
    let c = Container::run("oom", &["--memory", "16m"], "tail /dev/zero; sleep 1000");
    let e = exporter(&[]);
    let s = scrape_until(&e, 30, "an OOM kill", |s| {
        one(s, "container_oom_events_total", &c.name).is_some_and(|v| v >= 1.0)
    });
    let file = read_num(&c.v1_file("memory", "memory.oom_control"), Some("oom_kill"));
    assert_eq!(one(&s, "container_oom_events_total", &c.name), Some(file));
    assert!(one(&s, "container_memory_failcnt", &c.name).unwrap() > 0.0);
}

#[test]
fn restarts_states_and_health_follow_docker() {
    let e = exporter(&[]);
    // Restarts: a container that fails, restarted by its policy until it gives up.
    let r = Container::run(
        "restart",
        &["--restart", "on-failure:3"],
        "sleep 0.3; exit 1",
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = r.inspect("{{.State.Status}} {{.RestartCount}}");
        if state == "exited 3" {
            break;
        }
        assert!(Instant::now() < deadline, "docker still says {state}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let restarts: f64 = r.inspect("{{.RestartCount}}").parse().unwrap();
    let state = |s: &[Sample], name: &str, st: &str| {
        s.iter()
            .find(|x| {
                x.name == "stevedore_container_state"
                    && x.labels["name"] == name
                    && x.labels["state"] == st
            })
            .map(|x| x.value)
    };
    // The cache follows Docker's events: the last restart's "start" and the final "die" arrive in order.
    let s = scrape_until(&e, 15, "restart count and exited state", |s| {
        one(s, "stevedore_container_restarts_total", &r.name) == Some(restarts)
            && state(s, &r.name, "exited") == Some(1.0)
    });
    assert_eq!(state(&s, &r.name, "exited"), Some(1.0));
    assert_eq!(state(&s, &r.name, "running"), Some(0.0));
    // An exited container has no cgroup: no usage series.
    assert!(one(&s, "container_cpu_usage_seconds_total", &r.name).is_none());

    // Health: unhealthy until the file exists, then healthy; -1 without a health check.
    let h = Container::run(
        "health",
        &[
            "--health-cmd",
            "test -f /tmp/ok",
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
        ],
        "sleep 1000",
    );
    let plain = Container::run("nohealth", &[], "sleep 1000");
    let wait_docker = |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while h.inspect("{{.State.Health.Status}}") != want {
            assert!(Instant::now() < deadline, "docker never said {want}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_docker("unhealthy");
    scrape_until(&e, 15, "health 0", |s| {
        one(s, "container_health_state", &h.name) == Some(0.0)
    });
    h.exec("touch /tmp/ok");
    wait_docker("healthy");
    let s = scrape_until(&e, 15, "health 1", |s| {
        one(s, "container_health_state", &h.name) == Some(1.0)
    });
    assert_eq!(one(&s, "container_health_state", &plain.name), Some(-1.0));
    // Start time as Docker recorded it.
    let started = h.inspect("{{.State.StartedAt}}");
    let t = one(&s, "container_start_time_seconds", &h.name).unwrap();
    let secs = Command::new("date")
        .args(["-d", &started, "+%s.%N"])
        .output()
        .unwrap();
    let want: f64 = String::from_utf8_lossy(&secs.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!((t - want).abs() < 0.001, "{t} vs {want}");

    // Pause and unpause.
    common::docker(&["pause", &plain.id]);
    scrape_until(&e, 15, "paused", |s| {
        state(s, &plain.name, "paused") == Some(1.0)
    });
    common::docker(&["unpause", &plain.id]);
    scrape_until(&e, 15, "running again", |s| {
        state(s, &plain.name, "running") == Some(1.0)
    });
}

#[test]
fn hostile_label_values_round_trip() {
    let long = "x".repeat(4000);
    let values = [
        ("team", "a\"b\\c}d{e\nf,g=h"),
        ("note", long.as_str()),
        ("unicode", "ñandú 日本 🚀"),
        ("com.example/owner", "ops"),
        ("com.example.owner", "dev"),
    ];
    let mut opts: Vec<String> = Vec::new();
    for (k, v) in &values {
        opts.push("--label".into());
        opts.push(format!("{k}={v}"));
    }
    let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
    let c = Container::run("hostile.name_x-y", &opts, "sleep 1000");
    let e = exporter(&[
        "--docker.labels=team,note,unicode,absent",
        "--docker.labels-regex=^com\\.example",
    ]);
    let s = scrape_until(&e, 30, "the labelled container", known(&c));
    let body = e.metrics();
    assert_eq!(promtool_problems(&body), Vec::<String>::new());
    let s2 = parse_exposition(&body);
    for s in [&s, &s2] {
        let x = named(s, "container_memory_usage_bytes", &c.name)[0];
        assert_eq!(x.labels["container_label_team"], values[0].1);
        assert_eq!(x.labels["container_label_note"], long);
        assert_eq!(x.labels["container_label_unicode"], values[2].1);
        assert_eq!(x.labels["container_label_absent"], "");
        // Both keys sanitize to container_label_com_example_owner: the first in byte order wins, always.
        assert_eq!(x.labels["container_label_com_example_owner"], "dev");
        // The label values are Docker's own.
        assert_eq!(c.inspect("{{index .Config.Labels \"team\"}}"), values[0].1);
    }
    // OpenMetrics too.
    let om = reqwest::blocking::Client::new()
        .get(e.url("/metrics"))
        .header("Accept", "application/openmetrics-text")
        .send()
        .unwrap()
        .text()
        .unwrap();
    let s3 = parse_exposition(&om);
    assert_eq!(
        named(&s3, "container_memory_usage_bytes", &c.name)[0].labels["container_label_team"],
        values[0].1
    );
}

#[test]
fn churn_of_fifty_containers_while_scraping() {
    common::ensure_image();
    let e = exporter(&[]);
    let url = e.url("/metrics");
    let stop = Arc::new(AtomicBool::new(false));
    let scrapes = Arc::new(AtomicUsize::new(0));
    let bad = Arc::new(AtomicUsize::new(0));
    let scraper = {
        let (stop, scrapes, bad) = (stop.clone(), scrapes.clone(), bad.clone());
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            while !stop.load(Ordering::Relaxed) {
                match client.get(&url).timeout(Duration::from_secs(10)).send() {
                    Ok(r) if r.status() == 200 => {
                        let body = r.text().unwrap_or_default();
                        parse_exposition(&body);
                        scrapes.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    let prefix = format!("sdtest-churn-{}", std::process::id());
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(common::docker(&[
            "run",
            "-d",
            "--name",
            &format!("{prefix}-{i}"),
            common::IMAGE,
            "sleep",
            "1000",
        ]));
        if i % 10 == 9 {
            // Remove a few while others are still being created.
            let gone = ids.remove(0);
            common::docker(&["rm", "-f", &gone]);
        }
    }
    let mut args = vec!["rm", "-f"];
    args.extend(ids.iter().map(String::as_str));
    common::docker(&args);
    // The very next scrape has no cgroup series of the removed containers.
    let s = parse_exposition(&e.metrics());
    assert!(
        !s.iter().any(|x| x.name.starts_with("container_")
            && x.labels.get("name").is_some_and(|n| n.starts_with(&prefix))),
        "series of removed containers remain"
    );
    // Their Docker state series follow the destroy events.
    scrape_until(&e, 10, "no state series of removed containers", |s| {
        !s.iter()
            .any(|x| x.labels.get("name").is_some_and(|n| n.starts_with(&prefix)))
    });
    stop.store(true, Ordering::Relaxed);
    scraper.join().expect("scraper thread panicked");
    assert_eq!(
        bad.load(Ordering::Relaxed),
        0,
        "non-200 answers during churn"
    );
    assert!(
        scrapes.load(Ordering::Relaxed) > 10,
        "only {} scrapes",
        scrapes.load(Ordering::Relaxed)
    );
    assert!(e.drain_log().iter().all(|l| !l.contains("panicked")));
    let s = parse_exposition(&e.metrics());
    assert_eq!(collector_success(&s, "cgroup"), Some(1.0));
}

#[test]
fn stats_api_fallback_when_cgroups_are_not_readable() {
    let c = Container::run("stats", &["--memory", "64m"], "sleep 1000");
    let empty = tempfile::tempdir().unwrap();
    let e = exporter(&[
        &format!("--path.sysfs={}", empty.path().display()),
        "--docker.stats-interval=1s",
    ]);
    let limit: f64 = c.inspect("{{.HostConfig.Memory}}").parse().unwrap();
    let s = scrape_until(&e, 30, "stats-API figures", |s| {
        one(s, "container_spec_memory_limit_bytes", &c.name) == Some(limit)
    });
    assert_eq!(
        value(&s, "stevedore_source_up", &[("source", "docker_stats")]),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "stevedore_source_up", &[("source", "docker")]),
        Some(1.0)
    );
    let usage = one(&s, "container_memory_usage_bytes", &c.name).unwrap();
    let file = read_num(&c.v1_file("memory", "memory.usage_in_bytes"), None);
    assert!(
        (usage - file).abs() <= 0.2 * file.max(1.0),
        "stats API {usage} vs cgroup file {file}"
    );
    assert!(one(&s, "container_cpu_usage_seconds_total", &c.name).unwrap() > 0.0);
    assert_eq!(promtool_problems(&e.metrics()), Vec::<String>::new());
    assert!(e.drain_log().iter().any(|l| l.contains("stats API")));
}

#[test]
fn keep_open_mode_reads_fresh_values_and_lets_go_of_removed_cgroups() {
    let c = Container::run("keepopen", &["--cpus", "0.5"], "while :; do :; done");
    let e = exporter(&["--collector.cgroup.keep-open"]);
    let s1 = scrape_until(&e, 30, "the busy container", known(&c));
    let u1 = one(&s1, "container_cpu_usage_seconds_total", &c.name).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let before = read_num(&c.v1_file("cpuacct", "cpuacct.usage"), None) / 1e9;
    let s2 = parse_exposition(&e.metrics());
    let after = read_num(&c.v1_file("cpuacct", "cpuacct.usage"), None) / 1e9;
    let u2 = one(&s2, "container_cpu_usage_seconds_total", &c.name).unwrap();
    // A kept file re-read at offset 0 gives the kernel's current value, not the first one.
    assert!(u2 > u1 + 0.5, "{u1} then {u2}");
    assert!(before <= u2 && u2 <= after, "{before}..{after} vs {u2}");
    // The exporter's open files that are this container's cgroup files (other tests' containers come and
    // go meanwhile, so the total number of open files says little).
    let pid = e.child.id();
    let id = c.id.clone();
    let kept = move || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
            .filter_map(|f| std::fs::read_link(f.path()).ok())
            .filter(|t| t.to_string_lossy().contains(&id))
            .count()
    };
    // A restart makes the cgroup again under the same path: the files kept of the old one are stale and
    // must not be read; the figures are the new cgroup's (its CPU count starts again from 0).
    let ino =
        |p: &std::path::Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let dir = c.v1_file("memory", "");
    let ino_before = ino(&dir);
    common::docker(&["restart", "-t", "0", &c.id]);
    assert_ne!(ino(&dir), ino_before, "the restart made a new cgroup");
    std::thread::sleep(Duration::from_millis(500));
    let before = read_num(&c.v1_file("cpuacct", "cpuacct.usage"), None) / 1e9;
    let s5 = parse_exposition(&e.metrics());
    let after = read_num(&c.v1_file("cpuacct", "cpuacct.usage"), None) / 1e9;
    let u5 = one(&s5, "container_cpu_usage_seconds_total", &c.name).unwrap();
    assert!(
        before <= u5 && u5 <= after,
        "after restart {before}..{after} vs {u5}"
    );
    assert!(
        u5 < u2,
        "the new cgroup's count ({u5}) starts again below the old one's ({u2})"
    );
    // cpuacct.usage and .stat, cpu.stat (a quota is set), five memory files, two blkio files, pids.current,
    // cgroup.procs and three PSI files of the unified hierarchy; the limit files are not kept.
    let with = kept();
    assert!(with >= 14, "{with} kept files of the container");
    drop(c);
    let s3 = parse_exposition(&e.metrics());
    assert!(!s3.iter().any(|x| {
        x.name.starts_with("container_")
            && x.labels
                .get("name")
                .is_some_and(|n| n.starts_with("sdtest-keepopen"))
    }));
    // The removed container's files were closed when that collection no longer found its cgroup.
    assert_eq!(kept(), 0, "files of the removed container still open");
}

#[test]
fn kubelet_cgroup_layout_and_cri_labels_give_pod_attribution() {
    // The kubelet's cgroupfs layout, reproduced with real containers: a pod cgroup per pod under its QoS
    // class (Guaranteed pods directly under kubepods), the containers inside it, and the io.kubernetes.*
    // labels cri-dockerd sets. One pod per QoS class.
    // runc leaves the parent cgroups it made for --cgroup-parent: remove what this test made, in every
    // hierarchy (rmdir only removes empty cgroups, and the QoS levels only if the test created them).
    struct RemovePodCgroups {
        dirs: Vec<String>,
    }
    impl Drop for RemovePodCgroups {
        fn drop(&mut self) {
            let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
                return;
            };
            for h in hierarchies.flatten() {
                for d in &self.dirs {
                    let _ = std::fs::remove_dir(h.path().join(d.trim_start_matches('/')));
                }
            }
        }
    }
    let mut cleanup = RemovePodCgroups { dirs: Vec::new() };
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
        cleanup.dirs.push(parent.clone());
        if qos != "guaranteed"
            && !std::path::Path::new("/sys/fs/cgroup/memory/kubepods")
                .join(qos)
                .exists()
        {
            cleanup.dirs.push(format!("/kubepods/{qos}"));
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
        cleanup.dirs.push("/kubepods".into());
    }
    let e = exporter(&[]);
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
        let sum: f64 = [&p.sandbox.name, &p.app.name]
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
        let sum_ws = ws(&p.sandbox.name) + ws(&p.app.name);
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
            named(&s, "container_network_receive_bytes_total", &p.sandbox.name)
                .iter()
                .any(|x| x.labels["interface"] == "eth0")
        );
        assert!(named(&s, "container_network_receive_bytes_total", &p.app.name).is_empty());
    }
}
