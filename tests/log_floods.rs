//! "One line per state change" under sources that fail over and over: a Docker daemon that drops every
//! events stream at once, and a kubelet whose answers break differently each time.

mod common;

use std::time::{Duration, Instant};

use common::kube::*;
use common::*;

struct FakeDocker {
    child: std::process::Child,
    port: u16,
}

impl FakeDocker {
    fn start() -> FakeDocker {
        let (child, line) = start_support("fake_docker.py", &[]);
        FakeDocker {
            child,
            port: line.parse().expect("the fake daemon's port"),
        }
    }

    fn counts(&self) -> serde_json::Value {
        reqwest::blocking::get(format!("http://127.0.0.1:{}/_counts", self.port))
            .unwrap()
            .json()
            .unwrap()
    }
}

impl Drop for FakeDocker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Log lines of the exporter over `secs` seconds.
fn log_over(e: &Exporter, secs: u64) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut log = Vec::new();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        log.extend(e.drain_log());
    }
    log
}

#[test]
fn a_docker_daemon_that_drops_every_events_stream_does_not_flood_the_log() {
    let docker = FakeDocker::start();
    let e = Exporter::start(&[
        &format!("--docker.host=tcp://127.0.0.1:{}", docker.port),
        "--collector.disable-defaults",
        "--collector.docker",
    ]);
    let log = log_over(&e, 20);
    let about_docker: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("source=docker") || l.contains("docker connected"))
        .collect();
    // It did reconnect (the events stream was asked for again and again), with backoff...
    let events = docker.counts()["events"].as_u64().unwrap();
    assert!((3..=8).contains(&events), "{events} events streams in 20 s");
    // ...and the log says so in a few lines, not one or two per try (80 lines in 20 s before).
    let health: Vec<&&String> = about_docker
        .iter()
        .filter(|l| l.contains("target=stevedore::health"))
        .collect();
    assert!(health.len() <= 3, "{health:#?}");
}

#[test]
fn a_kubelet_that_breaks_differently_each_time_is_logged_once() {
    let (replay, e) = recorded_kubelet(&["--no-collector.cgroup"]);
    until(&e, "kubelet", "the first summary", |s| {
        collector_success(s, "kubelet") == Some(1.0)
    });
    let summary = std::fs::read_to_string(k8s_fixture("1_35/kubelet/stats/summary")).unwrap();
    let _ = e.drain_log();
    // Twelve seconds of truncated answers, cut at a different place each second (another column in
    // serde's error each time).
    let start = Instant::now();
    let mut log = Vec::new();
    let mut cut = summary.len() / 3;
    while start.elapsed() < Duration::from_secs(12) {
        replay.control(serde_json::json!({ "summary_text": &summary[..cut] }));
        cut += 997;
        std::thread::sleep(Duration::from_secs(1));
        log.extend(e.drain_log());
    }
    let failing = log.iter().filter(|l| l.contains("source failing")).count();
    assert_eq!(failing, 1, "{log:#?}");
    assert!(
        !log.iter()
            .any(|l| l.contains("target=kube_client") || l.contains("level=error")),
        "{log:#?}"
    );
}
