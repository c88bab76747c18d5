//! Debian's Prometheus server, started on a free port with a temporary configuration and storage.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Prometheus {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (at most 30 s) until `url` answers 200: a server started by a test is ready.
pub fn wait_ok(url: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reqwest::blocking::get(url).is_ok_and(|r| r.status() == 200) {
        assert!(
            Instant::now() < deadline,
            "{what} did not answer {url} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Prometheus scraping `target` every second as job "stevedore".
pub fn start_prometheus(target: &str) -> Prometheus {
    start_prometheus_with(&format!("static_configs:\n      - targets: ['{target}']\n"))
}

/// Prometheus with one job "stevedore" scraping every second; `job` is the rest of the scrape config,
/// indented for its place under `- job_name: stevedore` (4 spaces).
pub fn start_prometheus_with(job: &str) -> Prometheus {
    start_prometheus_config(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: stevedore\n    {job}"
    ))
}

/// Prometheus with this whole configuration file.
pub fn start_prometheus_config(text: &str) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, text).unwrap();
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus not found: install Debian's prometheus package (the README's test command does)");
    let url = format!("http://127.0.0.1:{port}");
    wait_ok(&format!("{url}/-/ready"), "prometheus");
    Prometheus {
        child,
        url,
        _dir: dir,
    }
}

/// Runs an instant query and returns (labels, value) of each result.
pub fn query(p: &Prometheus, q: &str) -> Vec<(serde_json::Value, f64)> {
    let r: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("{}/api/v1/query", p.url))
        .query(&[("query", q)])
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["status"], "success", "{q}: {r}");
    r["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["metric"].clone(),
                x["value"][1].as_str().unwrap().parse::<f64>().unwrap(),
            )
        })
        .collect()
}

/// One query of the shipped Grafana dashboard (dashboards/stevedore.json).
#[allow(dead_code)]
pub struct DashboardQuery {
    /// The title of the row the panel sits in.
    pub row: String,
    pub panel: String,
    /// As written, with Grafana's variables.
    pub expr: String,
    /// Runnable: the variables at "All" and `$__rate_interval` at 10 s.
    pub query: String,
}

/// The row of the dashboard whose queries read the shipped alerting and recording rules.
#[allow(dead_code)]
pub const ALERTING_ROW: &str = "Alerts and usual bands";

/// Every query of the shipped dashboard, in panel order.
#[allow(dead_code)]
pub fn dashboard_queries() -> Vec<DashboardQuery> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/stevedore.json");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (mut row, mut out) = (String::new(), Vec::new());
    for panel in dash["panels"].as_array().unwrap() {
        if panel["type"] == "row" {
            row = panel["title"].as_str().unwrap().to_string();
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap().to_string();
            let query = ["$job", "$instance", "$namespace", "$pod"]
                .iter()
                .fold(expr.replace("$__rate_interval", "10s"), |q, v| {
                    q.replace(v, ".*")
                });
            out.push(DashboardQuery {
                row: row.clone(),
                panel: panel["title"].as_str().unwrap().to_string(),
                expr,
                query,
            });
        }
    }
    out
}
