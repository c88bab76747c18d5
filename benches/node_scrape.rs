//! Scrape benchmark, node collectors: Stevedore against Debian's prometheus-node-exporter, on the same
//! machine in the same run, for the collectors both have; plus the floor (reading the same kernel files in
//! a loop, no HTTP, no formatting).
//!
//!   cargo bench --bench node_scrape            (1000 scrapes each; BENCH_SCRAPES=N to change)
//!
//! Prints a Markdown table for BENCHMARKS.md. Both exporters collect afresh on every scrape
//! (Stevedore with --collect.min-age=0), scrapes are sequential over one keep-alive connection.

mod common;

use common::{percentile, usage};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const COLLECTORS: &[&str] = &[
    "cpu",
    "diskstats",
    "filesystem",
    "loadavg",
    "meminfo",
    "netdev",
    "pressure",
    "stat",
    "time",
    "uname",
];

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::blocking::get(url)
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "{url} not ready");
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Result {
    name: String,
    median_ms: f64,
    p99_ms: f64,
    bytes: f64,
    series: usize,
    rss_mib: Option<f64>,
    hwm_mib: Option<f64>,
    cpu_per_1000: Option<f64>,
}

fn bench_http(name: &str, url: &str, pid: u32, n: usize) -> Result {
    let client = reqwest::blocking::Client::new();
    for _ in 0..50 {
        client.get(url).send().unwrap().bytes().unwrap();
    }
    let (cpu0, _, _) = usage(pid);
    let mut lat = Vec::with_capacity(n);
    let mut bytes = 0usize;
    let mut series = 0;
    for _ in 0..n {
        let t = Instant::now();
        let body = client.get(url).send().unwrap().bytes().unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        bytes += body.len();
        series = body
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty() && l[0] != b'#')
            .count();
    }
    let (cpu1, rss, hwm) = usage(pid);
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Result {
        name: name.to_string(),
        median_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
        bytes: bytes as f64 / n as f64,
        series,
        rss_mib: Some(rss / 1048576.0),
        hwm_mib: Some(hwm / 1048576.0),
        cpu_per_1000: Some((cpu1 - cpu0) * 1000.0 / n as f64),
    }
}

/// The floor: read the same files (and statvfs the same mounts) in a loop, nothing else.
fn bench_floor(n: usize) -> Result {
    let files = [
        "/proc/stat",
        "/proc/meminfo",
        "/proc/loadavg",
        "/proc/diskstats",
        "/proc/net/dev",
        "/proc/1/mountinfo",
        "/proc/pressure/cpu",
        "/proc/pressure/io",
        "/proc/pressure/memory",
    ];
    let mounts: Vec<String> = std::fs::read_to_string("/proc/1/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| !m.starts_with("/proc") && !m.starts_with("/sys") && !m.starts_with("/dev"))
        .collect();
    let mut lat = Vec::with_capacity(n);
    let mut bytes = 0;
    for _ in 0..n {
        let t = Instant::now();
        for f in files {
            bytes += std::fs::read(f).map(|b| b.len()).unwrap_or(0);
        }
        for m in &mounts {
            let c = std::ffi::CString::new(m.as_str()).unwrap();
            let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
            unsafe { libc::statvfs(c.as_ptr(), &mut st) };
        }
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Result {
        name: "floor: read the same files in a loop".to_string(),
        median_ms: percentile(&lat, 0.5),
        p99_ms: percentile(&lat, 0.99),
        bytes: bytes as f64 / n as f64,
        series: 0,
        rss_mib: None,
        hwm_mib: None,
        cpu_per_1000: None,
    }
}

fn start_stevedore() -> (Proc, String) {
    let mut args = vec![
        "--web.listen-address=127.0.0.1:0".to_string(),
        "--collect.min-age=0".to_string(),
        "--collector.disable-defaults".to_string(),
    ];
    args.extend(COLLECTORS.iter().map(|c| format!("--collector.{c}")));
    // Extra flags for experiments, e.g. BENCH_STEVEDORE_ARGS="--collect.min-age=1h" to time HTTP + rendering alone.
    if let Ok(extra) = std::env::var("BENCH_STEVEDORE_ARGS") {
        args.extend(extra.split_whitespace().map(str::to_string));
    }
    // BENCH_STEVEDORE_BIN: another build of the binary, for an A/B run in one session.
    let bin = std::env::var("BENCH_STEVEDORE_BIN")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_stevedore").to_string());
    let mut child = Command::new(bin)
        .args(&args)
        .stderr(Stdio::piped())
        .spawn()
        .expect("stevedore binary");
    let stderr = child.stderr.take().unwrap();
    let mut addr = None;
    for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
        if line.contains("message=listening") {
            addr = line
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix("address="))
                .map(str::to_string);
            break;
        }
    }
    (
        Proc(child),
        format!("http://{}/metrics", addr.expect("listening line")),
    )
}

fn start_node_exporter() -> Option<(Proc, String)> {
    let port = free_port();
    let mut args = vec![
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--collector.disable-defaults".to_string(),
        "--web.disable-exporter-metrics".to_string(),
    ];
    args.extend(COLLECTORS.iter().map(|c| format!("--collector.{c}")));
    let child = Command::new("prometheus-node-exporter")
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    Some((Proc(child), format!("http://127.0.0.1:{port}/metrics")))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo test --benches asks for a list of tests
    }
    let n: usize = std::env::var("BENCH_SCRAPES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let mut results = Vec::new();

    let (sd, sd_url) = start_stevedore();
    wait_ready(&sd_url);
    results.push(bench_http("stevedore", &sd_url, sd.0.id(), n));
    drop(sd);

    match start_node_exporter() {
        Some((ne, ne_url)) => {
            wait_ready(&ne_url);
            let version = Command::new("prometheus-node-exporter")
                .arg("--version")
                .output()
                .ok()
                .map(|o| {
                    String::from_utf8_lossy(&o.stderr).to_string()
                        + &String::from_utf8_lossy(&o.stdout)
                })
                .and_then(|s| s.lines().next().map(str::to_string))
                .unwrap_or_default();
            results.push(bench_http(
                &format!("node_exporter ({})", version.trim()),
                &ne_url,
                ne.0.id(),
                n,
            ));
        }
        None => eprintln!(
            "prometheus-node-exporter not installed (apt-get install prometheus-node-exporter): peer skipped"
        ),
    }
    results.push(bench_floor(n));

    println!(
        "collectors: {}; {n} sequential scrapes each after 50 warm-up scrapes\n",
        COLLECTORS.join(", ")
    );
    println!(
        "| exporter | median ms | p99 ms | bytes/scrape | series | RSS MiB (peak) | CPU s / 1000 scrapes |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in &results {
        let opt =
            |v: Option<f64>, d: usize| v.map(|x| format!("{x:.d$}")).unwrap_or_else(|| "–".into());
        println!(
            "| {} | {:.3} | {:.3} | {:.0} | {} | {} ({}) | {} |",
            r.name,
            r.median_ms,
            r.p99_ms,
            r.bytes,
            if r.series > 0 {
                r.series.to_string()
            } else {
                "–".into()
            },
            opt(r.rss_mib, 1),
            opt(r.hwm_mib, 1),
            opt(r.cpu_per_1000, 2)
        );
    }
}
