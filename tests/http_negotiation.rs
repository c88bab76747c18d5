//! The HTTP surface: format negotiation and gzip, collector filters and status codes, the telemetry
//! path, flags and their errors, the JSON log format.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn openmetrics_and_gzip_negotiation() {
    let e = Exporter::start(&[]);
    let client = reqwest::blocking::Client::new();
    let r = client
        .get(e.url("/metrics"))
        .header(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text; version=1.0.0")
    );
    let om = r.text().unwrap();
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# TYPE node_cpu_seconds counter\n"));
    assert!(om.contains("node_cpu_seconds_total{"));

    let r = client.get(e.url("/metrics")).send().unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().unwrap();
    assert!(!text.contains("# EOF"));
    assert!(text.contains("# TYPE node_cpu_seconds_total counter\n"));

    let (compressed, plain) = get_gzip(&client, &e.url("/metrics"));
    assert!(
        compressed.len() * 3 < plain.len(),
        "gzip {} vs {}",
        compressed.len(),
        plain.len()
    );
    assert!(plain.contains("node_memory_MemTotal_bytes "));
    assert_eq!(promtool_problems(&plain), Vec::<String>::new());

    let r = client
        .get(e.url("/metrics"))
        .header("Accept-Encoding", "identity")
        .send()
        .unwrap();
    assert!(r.headers().get("content-encoding").is_none());
}

#[test]
fn collector_filters_and_status_codes() {
    let e = Exporter::start(&[]);
    let s = parse_exposition(
        &e.get("/metrics?collect[]=loadavg&collect[]=meminfo")
            .text()
            .unwrap(),
    );
    assert!(s.iter().any(|x| x.name == "node_load1"));
    assert!(s.iter().any(|x| x.name == "node_memory_MemTotal_bytes"));
    assert!(!s.iter().any(|x| x.name.starts_with("node_cpu")));
    let ran: Vec<&str> = s
        .iter()
        .filter(|x| x.name == "stevedore_scrape_collector_success")
        .map(|x| x.labels["collector"].as_str())
        .collect();
    assert_eq!(ran, ["loadavg", "meminfo"]);

    // `cpu` owns node_cpu_seconds_total; node_cpu_usage_seconds_total (the kubelet's name) is the cgroup
    // collector's and stays.
    let s = parse_exposition(&e.get("/metrics?exclude%5B%5D=cpu").text().unwrap());
    assert!(!s.iter().any(|x| x.name.starts_with("node_cpu_seconds")));
    assert!(s.iter().any(|x| x.name == "node_cpu_usage_seconds_total"));
    assert!(s.iter().any(|x| x.name == "node_load1"));

    let r = e.get("/metrics?collect[]=cpu&exclude[]=meminfo");
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("Combined collect and exclude"));
    let r = e.get("/metrics?collect[]=nonsense");
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("nonsense"));

    assert_eq!(e.get("/nope").status(), 404);
    assert_eq!(e.get("/metrics/extra").status(), 404);
    assert_eq!(e.get("/healthz").status(), 200);
    let landing = e.get("/").text().unwrap();
    assert!(landing.contains("href=\"/metrics\"") && landing.contains(env!("CARGO_PKG_VERSION")));

    // Ready once the first collection (run at start) is done.
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.get("/readyz").status() != 200 {
        assert!(Instant::now() < deadline, "/readyz never turned 200");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn telemetry_path_and_disabled_collectors() {
    let e = Exporter::start(&[
        "--web.telemetry-path=/custom",
        "--no-collector.filesystem",
        "--no-collector.cpu",
    ]);
    assert_eq!(e.get("/metrics").status(), 404);
    let s = parse_exposition(&e.get("/custom").text().unwrap());
    assert!(
        !s.iter().any(
            |x| x.name.starts_with("node_filesystem") || x.name.starts_with("node_cpu_seconds")
        )
    );
    assert!(collector_success(&s, "filesystem").is_none());
    assert_eq!(collector_success(&s, "meminfo"), Some(1.0));
    // Enabling through the environment, as a Kubernetes manifest would.
    let out = Command::new("timeout")
        .args([
            "10",
            env!("CARGO_BIN_EXE_stevedore"),
            "--web.listen-address=127.0.0.1:0",
        ])
        .env("STEVEDORE_WEB_MAX_REQUESTS", "many")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--web.max-requests"));
}

#[test]
fn bad_flags_exit_2_and_busy_port_says_so() {
    let bin = env!("CARGO_BIN_EXE_stevedore");
    for (args, names) in [
        (vec!["--no-such-flag"], "--no-such-flag"),
        (vec!["--collect.min-age=soon"], "--collect.min-age"),
        (vec!["--log.format=xml"], "--log.format"),
        (
            vec!["--collector.diskstats.device-exclude=("],
            "--collector.diskstats.device-exclude",
        ),
        (vec!["--web.telemetry-path=metrics"], "--web.telemetry-path"),
    ] {
        let out = Command::new(bin).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(names), "{args:?}: {err}");
    }
    let out = Command::new(bin).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));

    let e = Exporter::start(&[]);
    let out = Command::new(bin)
        .arg(format!("--web.listen-address={}", e.addr))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already in use") && err.contains("--web.listen-address"),
        "{err}"
    );
}

#[test]
fn json_log_format() {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_stevedore"))
        .args(["--web.listen-address=127.0.0.1:0", "--log.format=json"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Every line is JSON; the one that says where it listens carries the address.
    let mut v = serde_json::Value::Null;
    for line in std::io::BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        v = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if v["fields"]["message"] == "listening" {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(v["fields"]["message"], "listening");
    assert_eq!(v["level"], "INFO");
    assert!(
        v["fields"]["address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
}
