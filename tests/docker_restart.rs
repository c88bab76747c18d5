//! Docker stopped and started mid-run: scrapes keep answering, cgroup metrics keep flowing with the names
//! already known, `stevedore_source_up{source="docker"}` goes to 0 and back, identity resumes for
//! containers started afterwards, and each state change is logged once. This stops the real daemon, so it
//! is its own test binary (cargo runs test binaries one after another).

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Container, Exporter, collector_success, parse_exposition, scrape_until, value};

fn dockerd_pid() -> Option<u32> {
    let out = Command::new("pidof").arg("dockerd").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn socket_answers() -> bool {
    Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn docker_restart_mid_run() {
    let pid = dockerd_pid().expect("dockerd is not running (the README's test command starts it)");
    let cmdline: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap()
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let live_restore = common::docker(&["info", "-f", "{{.LiveRestoreEnabled}}"]) == "true";
    let before = Container::run("before", &[], "sleep 1000");
    let e = Exporter::start(&[
        "--collect.min-age=0",
        "--collector.disable-defaults",
        "--collector.cgroup",
        "--collector.docker",
    ]);
    scrape_until(&e, 30, "the first container's identity", |s| {
        s.iter().any(|x| {
            x.name == "container_cpu_usage_seconds_total" && x.labels["name"] == before.name
        })
    });

    // Scrape continuously through the whole outage.
    let stop = Arc::new(AtomicBool::new(false));
    let bad = Arc::new(AtomicUsize::new(0));
    let scraper = {
        let (stop, bad, url) = (stop.clone(), bad.clone(), e.url("/metrics"));
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            while !stop.load(Ordering::Relaxed) {
                match client.get(&url).timeout(Duration::from_secs(10)).send() {
                    Ok(r) if r.status() == 200 => {}
                    _ => {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    // Stop the daemon.
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "dockerd did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = scrape_until(&e, 30, "docker source down", |s| {
        value(s, "stevedore_source_up", &[("source", "docker")]) == Some(0.0)
    });
    assert_eq!(collector_success(&s, "cgroup"), Some(1.0));
    if live_restore {
        // The container kept running; its usage keeps flowing under the name the cache still knows.
        assert!(
            s.iter()
                .any(|x| x.name == "container_cpu_usage_seconds_total"
                    && x.labels["name"] == before.name)
        );
    }

    // Start it again, exactly as it was started.
    let log =
        std::fs::File::create(std::env::temp_dir().join("stevedore-test-dockerd.log")).unwrap();
    Command::new("setsid")
        .arg("-f")
        .args(&cmdline)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .status()
        .expect("restart dockerd");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !socket_answers() {
        assert!(Instant::now() < deadline, "dockerd did not come back");
        std::thread::sleep(Duration::from_millis(200));
    }
    scrape_until(&e, 60, "docker source up again", |s| {
        value(s, "stevedore_source_up", &[("source", "docker")]) == Some(1.0)
    });
    // Identity resumes: a container started after the restart gets its name.
    let after = Container::run("after", &[], "sleep 1000");
    let s = scrape_until(&e, 30, "the new container's identity", |s| {
        s.iter().any(|x| {
            x.name == "container_cpu_usage_seconds_total" && x.labels["name"] == after.name
        })
    });
    if live_restore {
        assert!(
            s.iter()
                .any(|x| x.name == "container_cpu_usage_seconds_total"
                    && x.labels["name"] == before.name)
        );
    }
    stop.store(true, Ordering::Relaxed);
    scraper.join().unwrap();
    assert_eq!(
        bad.load(Ordering::Relaxed),
        0,
        "scrapes failed during the outage"
    );

    // One log line per state change: down once, connected twice (start and after the restart).
    let log = e.drain_log();
    let down = log
        .iter()
        .filter(|l| l.contains("docker unreachable") || l.contains("events stream ended"))
        .count();
    let connected = log
        .iter()
        .filter(|l| l.contains("docker connected"))
        .count();
    assert_eq!(down, 1, "{log:#?}");
    assert_eq!(connected, 2, "{log:#?}");
    let parsed = parse_exposition(&e.metrics());
    assert_eq!(
        value(&parsed, "stevedore_source_up", &[("source", "docker")]),
        Some(1.0)
    );
}
