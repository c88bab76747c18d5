//! The shipped alert rules end to end: the release binary scraped by Debian's real Prometheus, which
//! evaluates `deploy/prometheus/stevedore-alerts.yml` (its expressions unchanged; only `for:` is shortened
//! tenfold, with one-second scrapes and evaluations) and sends to Debian's real Alertmanager, whose
//! webhook this test receives. Real Docker containers misbehave (an OOM kill loop, a steady leak, a
//! crash loop, a CPU quota, a writable layer filling the disk) beside healthy ones; each misbehaviour
//! must reach the webhook as its alert, with the container's identity, and the healthy ones none.

mod common;

use common::prometheus::{
    ALERTING_ROW, Prometheus, dashboard_queries, free_port, query, start_prometheus_config,
};
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The shipped rules with every `for:` shortened tenfold (10m → 60s); nothing else changes.
fn rules_for_the_test() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/stevedore-alerts.yml");
    let shipped = std::fs::read_to_string(path).unwrap();
    let mut out = String::new();
    for line in shipped.lines() {
        let t = line.trim_start();
        if let Some(d) = t.strip_prefix("for: ") {
            let (n, unit) = d.split_at(d.len() - 1);
            let secs: u64 = n.parse::<u64>().unwrap() * if unit == "h" { 3600 } else { 60 };
            assert!(unit == "m" || unit == "h", "{line}");
            let indent = &line[..line.len() - t.len()];
            out.push_str(&format!("{indent}for: {}s\n", secs / 10));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Alertmanager's webhook: every notification's alerts, with when they arrived.
struct Webhook {
    url: String,
    rx: mpsc::Receiver<(Instant, Value)>,
}

fn webhook() -> Webhook {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming().map_while(Result::ok) {
            let mut r = BufReader::new(conn);
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_err() {
                continue;
            }
            let _ = r
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                let _ = tx.send((Instant::now(), v));
            }
        }
    });
    Webhook { url, rx }
}

/// Debian's Alertmanager on a free port, sending every alert at once to `hook`; killed on drop.
struct Alertmanager {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn alertmanager(hook: &str) -> Alertmanager {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: test\n  group_by: ['...']\n  group_wait: 0s\n  group_interval: 1s\n  \
             repeat_interval: 1h\nreceivers:\n  - name: test\n    webhook_configs:\n      - url: '{hook}'\n        \
             send_resolved: false\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus-alertmanager (Debian's package; ./scripts/test installs it)");
    let url = format!("http://127.0.0.1:{port}");
    common::prometheus::wait_ok(&format!("{url}/-/ready"), "alertmanager");
    Alertmanager {
        child,
        url,
        _dir: dir,
    }
}

/// A cgroup v1 memory file of a container, as the kernel gives it now.
fn memory_file(c: &Container, file: &str) -> f64 {
    let text = std::fs::read_to_string(c.v1_file("memory", file)).unwrap();
    text.trim().parse().unwrap()
}

/// Bytes free on the filesystem Docker keeps its layers on (its data root), from statvfs via `df`.
fn docker_root_free_bytes() -> f64 {
    let root = docker(&["info", "-f", "{{.DockerRootDir}}"]);
    let out = stdout_of(Command::new("df").args(["-B1", "--output=avail", root.trim()]));
    out.lines().nth(1).unwrap().trim().parse().unwrap()
}

#[test]
fn misbehaving_containers_reach_alertmanager_and_healthy_ones_do_not() {
    ensure_image();
    let hook = webhook();
    let am = alertmanager(&hook.url);
    let e = Exporter::start_binary(
        &release_binary(),
        &["--collector.filesystem.layers-interval=2s"],
    );
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, rules_for_the_test()).unwrap();
    let prom = start_prometheus_config(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files: ['{}']\n\
         alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{}']\n\
         scrape_configs:\n  - job_name: stevedore\n    static_configs:\n      - targets: ['{}']\n",
        rules.display(),
        am.url.trim_start_matches("http://"),
        e.addr
    ));

    // The writable layer grows at three times the rate that fills its filesystem in the rule's 4 hours.
    let fill_mb = ((docker_root_free_bytes() / (4.0 * 3600.0) * 3.0) / 1e6)
        .ceil()
        .max(4.0);
    let t0 = Instant::now();
    let mut started = BTreeMap::new();
    let mut run = |tag: &str, opts: &[&str], script: &str| {
        let c = Container::run(tag, opts, script);
        started.insert(c.name.clone(), Instant::now());
        c
    };
    let oom = run(
        "al-oom",
        &["--memory", "32m", "--memory-swap", "32m"],
        "while :; do tail /dev/zero; sleep 2; done",
    );
    let leak = run(
        "al-leak",
        &[
            "--memory",
            "512m",
            "--memory-swap",
            "512m",
            "--shm-size",
            "1g",
        ],
        "while :; do dd if=/dev/zero bs=1M count=2 >> /dev/shm/leak 2>/dev/null; sleep 1; done",
    );
    let crash = run("al-crash", &["--restart", "always"], "sleep 1; exit 3");
    let throttled = run("al-throttled", &["--cpus", "0.1"], "while :; do :; done");
    let fill = run(
        "al-fill",
        &[],
        &format!(
            "i=0; while :; do dd if=/dev/zero of=/fill.$i bs=1M count={fill_mb} 2>/dev/null; \
             i=$((i+1)); sleep 1; done"
        ),
    );
    // Healthy: an idle server, and one that takes 30 MB at start (a startup, not a leak) and holds it.
    let web = run("al-web", &["--memory", "512m"], "httpd -f -p 8080");
    let startup = run(
        "al-startup",
        &["--memory", "512m", "--shm-size", "256m"],
        "dd if=/dev/zero of=/dev/shm/heap bs=1M count=30 2>/dev/null; sleep 100000",
    );
    let healthy = [web.name.clone(), startup.name.clone()];

    let expected = [
        ("ContainerOOMKilled", &oom),
        ("ContainerMemoryFillingUp", &leak),
        ("ContainerRestartLoop", &crash),
        ("ContainerCPUThrottlingHigh", &throttled),
        ("ContainerWritableLayerFillingUp", &fill),
    ];
    let mut arrived: BTreeMap<(String, String), (Duration, Value)> = BTreeMap::new();
    let mut leak_used = None;
    let deadline = t0 + Duration::from_secs(300);
    while expected
        .iter()
        .any(|(a, c)| !arrived.contains_key(&(a.to_string(), c.name.clone())))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "not every alert arrived within 300 s; arrived: {:?}",
            arrived.keys().collect::<Vec<_>>()
        );
        let Ok((at, body)) = hook.rx.recv_timeout(left) else {
            continue;
        };
        for alert in body["alerts"].as_array().unwrap() {
            let labels = &alert["labels"];
            let (Some(name), Some(alertname)) =
                (labels["name"].as_str(), labels["alertname"].as_str())
            else {
                continue;
            };
            let key = (alertname.to_string(), name.to_string());
            if alertname == "ContainerMemoryFillingUp" && name == leak.name && leak_used.is_none() {
                let used = memory_file(&leak, "memory.usage_in_bytes");
                leak_used = Some((used, memory_file(&leak, "memory.limit_in_bytes")));
            }
            if let Some(s) = started.get(name) {
                arrived
                    .entry(key)
                    .or_insert_with(|| (at.duration_since(*s), labels.clone()));
            }
        }
    }
    // Ten more seconds for anything a healthy container would set off.
    let settle = Instant::now() + Duration::from_secs(10);
    while let Ok((_, body)) = hook
        .rx
        .recv_timeout(settle.saturating_duration_since(Instant::now()))
    {
        for alert in body["alerts"].as_array().unwrap() {
            let name = alert["labels"]["name"].as_str().unwrap_or("");
            assert!(
                !healthy.iter().any(|h| h == name),
                "a healthy container set off an alert: {alert}"
            );
        }
    }
    for ((alertname, name), (after, _)) in &arrived {
        assert!(
            !healthy.contains(name),
            "healthy {name} set off {alertname}"
        );
        eprintln!(
            "{alertname:<34} {name:<28} {:>6.1} s after the container started",
            after.as_secs_f64()
        );
    }
    for (alertname, c) in &expected {
        let (_, labels) = &arrived[&(alertname.to_string(), c.name.clone())];
        assert_eq!(
            labels["id"],
            format!("/docker/{}", c.id),
            "{alertname}: {labels}"
        );
        assert_eq!(labels["image"], IMAGE, "{alertname}: {labels}");
        assert_eq!(labels["job"], "stevedore", "{alertname}: {labels}");
    }
    // The leak was caught while it had used less than half of its limit (the kernel's own figures).
    let (used, limit) = leak_used.unwrap();
    eprintln!(
        "the leak's alert arrived at {:.0} MiB of its {:.0} MiB limit ({:.0}%); the writable layer grew {fill_mb} MB/s",
        used / 1048576.0,
        limit / 1048576.0,
        100.0 * used / limit
    );
    assert!(used < limit / 2.0, "{used} of {limit}");
    let names = expected.map(|(a, c)| (a, c.name.clone()));
    dashboard_alerting_row_shows_them(&prom, &names, &leak.name, &throttled.name);
}

/// The dashboard's alerting row, on the Prometheus that raised the alerts: the firing panel lists each
/// expected alert, the memory trend of the leak is past its limit, the throttled container stalls on
/// CPU, the recorded signals have the leak, and its band is empty (the band is that of an hour ago).
fn dashboard_alerting_row_shows_them(
    p: &Prometheus,
    expected: &[(&str, String)],
    leak: &str,
    throttled: &str,
) {
    let of = |r: &[(Value, f64)], name: &str| {
        r.iter()
            .filter(|(l, _)| l["name"] == name)
            .map(|(_, v)| *v)
            .fold(f64::NAN, f64::max)
    };
    let row: Vec<_> = dashboard_queries()
        .into_iter()
        .filter(|d| d.row == ALERTING_ROW)
        .collect();
    assert_eq!(row.len(), 11, "queries in the alerting row");
    for d in &row {
        let r = query(p, &d.query);
        match d.panel.as_str() {
            "Firing alerts" => {
                for (alert, name) in expected {
                    assert!(
                        r.iter()
                            .any(|(l, _)| l["alertname"] == *alert && l["name"] == name.as_str()),
                        "{alert} of {name} not in the firing panel: {r:?}"
                    );
                }
            }
            p if p.starts_with("Memory in an hour") => {
                assert!(of(&r, leak) > 1.0, "{}: {r:?}", d.query)
            }
            p if p.starts_with("Pressure") && d.query.contains("_cpu_") => {
                assert!(of(&r, throttled) > 0.0, "{}: {r:?}", d.query)
            }
            p if p.starts_with("Pressure") => {}
            _ if d.query.contains(":mean3d") => assert!(r.is_empty(), "{}: {r:?}", d.query),
            _ => assert!(of(&r, leak) > 0.0, "{}: {r:?}", d.query),
        }
    }
}
