//! Containers coming and going on a real Docker engine: restarts, states and health as Docker reports
//! them, hostile labels, churn while scraping, keep-open mode across removal and restart.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn restarts_states_and_health_follow_docker() {
    let e = docker_exporter(&[]);
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
    let e = docker_exporter(&[
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
    let e = docker_exporter(&[]);
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
fn keep_open_mode_reads_fresh_values_and_lets_go_of_removed_cgroups() {
    let c = Container::run("keepopen", &["--cpus", "0.5"], "while :; do :; done");
    let e = docker_exporter(&["--collector.cgroup.keep-open"]);
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
