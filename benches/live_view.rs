//! What an open live view costs the node: the exporter's CPU and RSS with 0, 1 and 10 viewers on its
//! event stream at 100 and 1000 containers' worth of real cgroups, while a real Prometheus (Debian's)
//! scrapes it every 15 s; the floor is the same exporter with nobody looking (idle, then with Prometheus
//! only). The peer: `docker stats` (what people run to watch containers live) on 10 real containers, the
//! CPU of dockerd and the CLI, beside Stevedore with one viewer of the same 10.
//!
//!   cargo bench --bench live_view      (needs root, cgroup v1 or hybrid, Debian's prometheus, dockerd)
//!
//! BENCH_SIZES=100,1000, BENCH_SECONDS=30 (each phase's measuring window), BENCH_DOCKER_STATS=0 leaves
//! out the peer.

mod common;
#[allow(dead_code)]
#[path = "../tests/common/prometheus.rs"]
mod prometheus;

use common::fleet::Fleet;
use common::usage;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Exporter {
    child: Child,
    addr: String,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The release binary on the default collectors, as a DaemonSet runs it.
fn start_exporter() -> Exporter {
    let bin = std::env::var("BENCH_STEVEDORE_BIN")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_stevedore").to_string());
    let mut child = Command::new(bin)
        .arg("--web.listen-address=127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.split_whitespace()
                .find_map(|kv| kv.strip_prefix("address="))
                .map(|a| a.trim_matches('"').to_string())
        })
        .expect("stevedore's listening line");
    // Keep reading its log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    Exporter { child, addr }
}

/// Live views: threads reading the event stream as a browser does, counting the bytes.
struct Viewers {
    stop: Arc<AtomicBool>,
    bytes: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Viewers {
    fn open(addr: &str, n: usize) -> Viewers {
        let stop = Arc::new(AtomicBool::new(false));
        let bytes = Arc::new(AtomicU64::new(0));
        let threads = (0..n)
            .map(|_| {
                let (stop, bytes) = (stop.clone(), bytes.clone());
                let url = format!("http://{addr}/api/v1/live/stream");
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::builder()
                        .timeout(None)
                        .build()
                        .unwrap();
                    let mut r = client.get(&url).send().unwrap();
                    assert_eq!(r.status(), 200);
                    let mut buf = vec![0u8; 64 << 10];
                    while !stop.load(Ordering::Relaxed) {
                        match r.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(k) => bytes.fetch_add(k as u64, Ordering::Relaxed),
                        };
                    }
                })
            })
            .collect();
        Viewers {
            stop,
            bytes,
            threads,
        }
    }

    fn close(self) {
        self.stop.store(true, Ordering::Relaxed);
        // Each thread wakes with the next frame (one a second) and ends.
        for t in self.threads {
            let _ = t.join();
        }
    }
}

struct Phase {
    what: String,
    cpu_pct: f64,
    rss: f64,
    hwm: f64,
    stream_kib_s: f64,
}

/// The exporter's CPU (% of one core) and memory over `secs`, after a 3 s settling time.
fn measure(pid: u32, what: String, secs: f64, viewers: Option<&Viewers>) -> Phase {
    std::thread::sleep(Duration::from_secs(3));
    let (c0, _, _) = usage(pid);
    let b0 = viewers.map_or(0, |v| v.bytes.load(Ordering::Relaxed));
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let (c1, rss, hwm) = usage(pid);
    let dt = t0.elapsed().as_secs_f64();
    let b1 = viewers.map_or(0, |v| v.bytes.load(Ordering::Relaxed));
    Phase {
        what,
        cpu_pct: (c1 - c0) / dt * 100.0,
        rss: rss / 1048576.0,
        hwm: hwm / 1048576.0,
        stream_kib_s: (b1 - b0) as f64 / dt / 1024.0,
    }
}

fn print(rows: &[Phase]) {
    println!("| what | CPU, % of one core | RSS MiB | peak RSS MiB | stream KiB/s, all viewers |");
    println!("|---|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.2} | {:.1} | {:.1} | {:.0} |",
            r.what, r.cpu_pct, r.rss, r.hwm, r.stream_kib_s
        );
    }
}

fn bench_size(n: usize, secs: f64) -> Vec<Phase> {
    let _fleet = Fleet::create(n);
    let e = start_exporter();
    let pid = e.child.id();
    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = client
            .get(format!("http://{}/metrics", e.addr))
            .send()
            .unwrap()
            .text()
            .unwrap();
        let seen = body
            .lines()
            .filter(|l| l.starts_with("container_cpu_usage_seconds_total{"))
            .count();
        if seen >= n {
            break;
        }
        assert!(Instant::now() < deadline, "{seen} of {n} containers seen");
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut rows = vec![measure(pid, format!("{n} containers: idle"), secs, None)];
    let _prom = prometheus::start_prometheus_config(&format!(
        "global:\n  scrape_interval: 15s\n  scrape_timeout: 10s\n\
         scrape_configs:\n  - job_name: stevedore\n    static_configs:\n      - targets: ['{}']\n",
        e.addr
    ));
    rows.push(measure(
        pid,
        format!("{n} containers: Prometheus every 15 s (the floor)"),
        secs,
        None,
    ));
    for k in [1, 10] {
        let v = Viewers::open(&e.addr, k);
        rows.push(measure(
            pid,
            format!(
                "{n} containers: Prometheus + {k} live view{}",
                if k == 1 { "" } else { "s" }
            ),
            secs,
            Some(&v),
        ));
        v.close();
    }
    rows.push(measure(
        pid,
        format!("{n} containers: Prometheus, the views closed again"),
        secs,
        None,
    ));
    rows
}

/// CPU seconds of a process (utime + stime).
fn cpu_of(pid: u32) -> f64 {
    usage(pid).0
}

fn pid_of(name: &str) -> Option<u32> {
    let out = Command::new("pidof").arg(name).output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `docker stats` streaming 10 real containers, against Stevedore with one live view of the same.
fn bench_docker_stats(secs: f64) -> Vec<Phase> {
    let image = "stevedore-test/busybox:latest";
    let names: Vec<String> = (0..10)
        .map(|i| format!("sdbench-live-{i}-{}", std::process::id()))
        .collect();
    for name in &names {
        let ok = Command::new("docker")
            .args(["run", "-d", "--name", name, image, "sleep", "3600"])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "docker run {image} (./scripts/test imports it)");
    }
    struct Remove(Vec<String>);
    impl Drop for Remove {
        fn drop(&mut self) {
            let mut args = vec!["rm".to_string(), "-f".to_string()];
            args.extend(self.0.iter().cloned());
            let _ = Command::new("docker").args(&args).output();
        }
    }
    let _remove = Remove(names.clone());
    let dockerd = pid_of("dockerd").expect("dockerd running");
    let mut rows = Vec::new();
    // docker stats, as someone watching: dockerd's CPU and the CLI's.
    let mut cli = Command::new("docker")
        .arg("stats")
        .args(&names)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let (d0, c0, t0) = (cpu_of(dockerd), cpu_of(cli.id()), Instant::now());
    std::thread::sleep(Duration::from_secs_f64(secs));
    let dt = t0.elapsed().as_secs_f64();
    let (d1, c1) = (cpu_of(dockerd), cpu_of(cli.id()));
    let (_, rss, hwm) = usage(dockerd);
    let _ = cli.kill();
    let _ = cli.wait();
    rows.push(Phase {
        what: format!(
            "peer: `docker stats` on 10 containers (dockerd {:.2} % + CLI {:.2} %; RSS is dockerd's)",
            (d1 - d0) / dt * 100.0,
            (c1 - c0) / dt * 100.0
        ),
        cpu_pct: (d1 - d0 + c1 - c0) / dt * 100.0,
        rss: rss / 1048576.0,
        hwm: hwm / 1048576.0,
        stream_kib_s: f64::NAN,
    });
    let e = start_exporter();
    let v = Viewers::open(&e.addr, 1);
    let d0 = cpu_of(dockerd);
    let mut row = measure(
        e.child.id(),
        "stevedore, 1 live view, the same 10 containers (and the host's)".to_string(),
        secs,
        Some(&v),
    );
    let d1 = cpu_of(dockerd);
    row.what += &format!(
        "; dockerd meanwhile {:.2} %",
        (d1 - d0) / (secs + 3.0) * 100.0
    );
    v.close();
    rows.push(row);
    rows
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "100,1000".into())
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let secs: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30.0);
    println!(
        "machine: {} cores, kernel {}",
        std::thread::available_parallelism().unwrap(),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap()
            .trim()
    );
    let mut rows = Vec::new();
    for n in sizes {
        rows.extend(bench_size(n, secs));
    }
    if std::env::var("BENCH_DOCKER_STATS").as_deref() != Ok("0") {
        rows.extend(bench_docker_stats(secs));
    }
    print(&rows);
}
