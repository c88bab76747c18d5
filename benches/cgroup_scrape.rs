//! Scrape benchmark, containers: Stevedore's cgroup collector at 100, 500 and 1000 containers' worth of
//! real cgroups, against the floor (one thread reading the same files in a loop) and against Docker's stats
//! API for real containers.
//!
//!   cargo bench --bench cgroup_scrape      (needs root, and dockerd for the peer)
//!
//! The cgroups are made with mkdir in folders this benchmark owns (benches/common/fleet.rs: v1 and
//! hybrid as runc's cgroupfs driver makes them, v2 as the systemd driver does), with a sleeping process
//! in each, and are removed afterwards. BENCH_SIZES=100,500,1000 and BENCH_SCRAPES=N change the sizes and
//! the number of scrapes; BENCH_DOCKER_STATS=0 leaves out the Docker stats peer. BENCH_V2_VM=1 runs it
//! inside a live cgroup v2 kernel instead ([`run_in_v2_vm`]).

mod common;
#[path = "../tests/common/vm.rs"]
mod vm;

use common::fleet::{Fleet, is_v2};
use common::{percentile, usage};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Row {
    what: String,
    median: f64,
    p99: f64,
    extra: String,
}

/// Scrapes the release binary `scrapes` times; before each scrape one pass of `floor` runs, so that the
/// exporter and its floor are measured in alternation under the same machine conditions (this VM's speed
/// drifts by a third between runs minutes apart). Returns the exporter's row and the floor's.
fn bench_stevedore(
    n: usize,
    scrapes: usize,
    keep_open: bool,
    floor: &mut dyn FnMut() -> f64,
    floor_what: String,
) -> (Row, Row) {
    let mut args = vec![
        "--web.listen-address=127.0.0.1:0",
        "--collect.min-age=0",
        "--collector.disable-defaults",
        "--collector.cgroup",
    ];
    if keep_open {
        args.push("--collector.cgroup.keep-open");
    }
    // Extra flags for experiments, e.g. BENCH_STEVEDORE_ARGS=--collect.min-age=1h times rendering + HTTP alone.
    let extra = std::env::var("BENCH_STEVEDORE_ARGS").unwrap_or_default();
    args.extend(extra.split_whitespace());
    // BENCH_STEVEDORE_BIN: another build of the binary, for an A/B run in one session.
    let bin = std::env::var("BENCH_STEVEDORE_BIN")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_stevedore").to_string());
    let mut child = Command::new(bin)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Killed on every way out, a panic included.
    struct KillOnDrop(u32);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = Command::new("kill").arg(self.0.to_string()).status();
        }
    }
    let _guard = KillOnDrop(child.id());
    let stderr = child.stderr.take().unwrap();
    let mut addr = String::new();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if let Some(a) = line
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("address="))
        {
            addr = a.to_string();
            break;
        }
    }
    let url = format!("http://{addr}/metrics");
    let client = reqwest::blocking::Client::new();
    let mut bytes = 0;
    let mut series = 0;
    for _ in 0..10 {
        let body = client.get(&url).send().unwrap().text().unwrap();
        series = body
            .lines()
            .filter(|l| l.starts_with("container_cpu_usage_seconds_total{"))
            .count();
        bytes = body.len();
    }
    assert!(series > n, "only {series} containers seen of {n}");
    let (mut cpu0, _, _) = usage(child.id());
    let mut cpu_scrapes = 0.0;
    let mut lat = Vec::with_capacity(scrapes);
    let mut floor_lat = Vec::with_capacity(scrapes);
    for _ in 0..scrapes {
        floor_lat.push(floor());
        // The exporter's CPU is counted over its scrapes only.
        let (c, _, _) = usage(child.id());
        cpu_scrapes += c - cpu0;
        cpu0 = c;
        let t = Instant::now();
        let body = client.get(&url).send().unwrap().bytes().unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(!body.is_empty());
    }
    let (cpu1, rss, hwm) = usage(child.id());
    cpu_scrapes += cpu1 - cpu0;
    let (rss, hwm) = (rss / 1048576.0, hwm / 1048576.0);
    let _ = child.kill();
    let _ = child.wait();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    floor_lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let floor_row = Row {
        what: floor_what,
        median: percentile(&floor_lat, 0.5),
        p99: percentile(&floor_lat, 0.99),
        extra: format!(
            "measured in alternation with the row above; ratio {:.2}",
            percentile(&lat, 0.5) / percentile(&floor_lat, 0.5)
        ),
    };
    let row = Row {
        what: format!(
            "stevedore{}, {n} containers",
            if keep_open {
                " --collector.cgroup.keep-open"
            } else {
                ""
            }
        ),
        median: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        extra: format!(
            "{:.1} MB/scrape, {} series/container family, CPU {:.1} ms/scrape, RSS {:.1} MiB (peak {:.1})",
            bytes as f64 / 1e6,
            series,
            cpu_scrapes * 1000.0 / scrapes as f64,
            rss,
            hwm
        ),
    };
    // The floor's pass ran while the exporter was idle; the CPU in between is not counted.
    (row, floor_row)
}

/// One pass of the floor: `threads` threads reading the same files a steady-state scrape reads (the
/// cgroup files, a stat of the folder for nested cgroups, each process's fd folder and links), nothing
/// else: no parsing, no HTTP, no formatting. Returns its time in ms.
fn floor_pass(fleet: &Fleet, threads: usize) -> f64 {
    let read_one = |(dir, files): &(PathBuf, Vec<PathBuf>), buf: &mut Vec<u8>| {
        use std::io::Read;
        let mut pid = String::new();
        let _ = std::fs::symlink_metadata(dir);
        for f in files {
            buf.clear();
            if let Ok(mut file) = std::fs::File::open(f) {
                let _ = file.read_to_end(buf);
            }
            if f.ends_with("cgroup.procs") {
                pid = first_line(buf);
            }
        }
        fd_links(&pid);
    };
    let chunk = fleet.reads.len().div_ceil(threads);
    let t = Instant::now();
    std::thread::scope(|s| {
        for part in fleet.reads.chunks(chunk) {
            s.spawn(move || {
                let mut buf = Vec::with_capacity(16384);
                for c in part {
                    read_one(c, &mut buf);
                }
            });
        }
    });
    t.elapsed().as_secs_f64() * 1000.0
}

fn first_line(buf: &[u8]) -> String {
    String::from_utf8_lossy(buf)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// A process's fd folder and links, as the exporter counts fds and sockets.
fn fd_links(pid: &str) {
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            let _ = std::fs::read_link(fd.path());
        }
    }
}

fn floor_name(n: usize, threads: usize) -> String {
    let files = if is_v2() {
        " (cgroup v2: one folder, PSI included)"
    } else if Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists() {
        " (incl. the unified hierarchy's PSI files)"
    } else {
        ""
    };
    format!("floor, {n} containers, {threads} thread(s), same files{files}")
}

/// The floor on its own, `scrapes` passes.
fn bench_floor(fleet: &Fleet, scrapes: usize, threads: usize) -> Row {
    let mut lat: Vec<f64> = (0..scrapes).map(|_| floor_pass(fleet, threads)).collect();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Row {
        what: floor_name(fleet.ids.len(), threads),
        median: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        extra: String::new(),
    }
}

/// The floor of keep-open mode: the same cgroup files kept open and re-read with pread at offset 0, plus
/// the folder's stat and the fd folders.
struct KeptFloor {
    open: Vec<(PathBuf, Vec<std::fs::File>, String)>,
}

impl KeptFloor {
    fn open(fleet: &Fleet) -> KeptFloor {
        let open = fleet
            .reads
            .iter()
            .map(|(dir, files)| {
                let kept = files
                    .iter()
                    .filter_map(|f| std::fs::File::open(f).ok())
                    .collect();
                let procs = files.iter().find(|f| f.ends_with("cgroup.procs")).unwrap();
                let pid = first_line(&std::fs::read(procs).unwrap_or_default());
                (dir.clone(), kept, pid)
            })
            .collect();
        KeptFloor { open }
    }

    /// One pass on `threads` threads; its time in ms.
    fn pass(&self, threads: usize) -> f64 {
        use std::os::unix::fs::FileExt;
        let chunk = self.open.len().div_ceil(threads);
        let t = Instant::now();
        std::thread::scope(|s| {
            for part in self.open.chunks(chunk) {
                s.spawn(move || {
                    let mut buf = vec![0u8; 16384];
                    for (dir, files, pid) in part {
                        let _ = std::fs::symlink_metadata(dir);
                        for f in files {
                            let _ = f.read_at(&mut buf, 0);
                        }
                        fd_links(pid);
                    }
                });
            }
        });
        t.elapsed().as_secs_f64() * 1000.0
    }
}

/// Docker's stats API for `n` real containers: `docker stats --no-stream` (what users run), and
/// one-shot stats calls one after another (what an exporter on the stats API does).
fn bench_docker_stats(n: usize) -> Vec<Row> {
    if Command::new("docker")
        .arg("info")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        eprintln!("dockerd not running: Docker stats peer skipped");
        return Vec::new();
    }
    let image = "stevedore-test/busybox:latest";
    let have = Command::new("docker")
        .args(["image", "inspect", image])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have {
        eprintln!("{image} missing (cargo test imports it): Docker stats peer skipped");
        return Vec::new();
    }
    let ids: Vec<String> = (0..n)
        .map(|i| {
            let out = Command::new("docker")
                .args([
                    "run",
                    "-d",
                    "--name",
                    &format!("sdbench-{i}"),
                    image,
                    "sleep",
                    "3600",
                ])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
        .collect();
    let mut rows = Vec::new();
    let mut lat = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let ok = Command::new("docker")
            .args(["stats", "--no-stream"])
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok);
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    rows.push(Row {
        what: format!("docker stats --no-stream, {n} containers"),
        median: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        extra: String::new(),
    });
    let mut lat = Vec::new();
    let mut per = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for id in &ids {
            let t1 = Instant::now();
            let out = Command::new("curl")
                .args([
                    "-sf",
                    "--unix-socket",
                    "/var/run/docker.sock",
                    &format!("http://localhost/containers/{id}/stats?stream=false&one-shot=true"),
                ])
                .output()
                .unwrap();
            assert!(out.status.success());
            per.push(t1.elapsed().as_secs_f64() * 1000.0);
        }
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    per.sort_by(|a, b| a.partial_cmp(b).unwrap());
    rows.push(Row {
        what: format!("stats API one-shot, {n} containers in sequence"),
        median: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        extra: format!(
            "per container: median {:.1} ms (curl included)",
            percentile(&per, 0.5)
        ),
    });
    let mut args = vec!["rm".to_string(), "-f".to_string()];
    args.extend(ids);
    let _ = Command::new("docker").args(&args).output();
    rows
}

/// BENCH_V2_VM=1: this benchmark, run inside a live cgroup v2 kernel (each kernel ./scripts/test
/// unpacked, booted under TCG by tests/common/vm.rs with a busybox initramfs), with the static release
/// binary. Both this benchmark and the exporter must be static: build with
/// `RUSTFLAGS="-C target-feature=+crt-static" cargo bench --bench cgroup_scrape --target x86_64-unknown-linux-gnu`.
fn run_in_v2_vm() {
    let me = std::env::current_exe().unwrap();
    let exporter = Path::new(env!("CARGO_BIN_EXE_stevedore"));
    for bin in [me.as_path(), exporter] {
        let ldd = Command::new("ldd").arg(bin).output().unwrap();
        let text = String::from_utf8_lossy(&ldd.stdout).to_string()
            + &String::from_utf8_lossy(&ldd.stderr);
        assert!(
            text.contains("statically linked") || text.contains("not a dynamic executable"),
            "{} is not static: build with RUSTFLAGS=\"-C target-feature=+crt-static\" cargo bench --bench cgroup_scrape --target x86_64-unknown-linux-gnu",
            bin.display()
        );
    }
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let script = format!(
        "ulimit -n 65536\necho kernel $(uname -r), $(nproc) CPUs, cgroup.controllers: $(cat /sys/fs/cgroup/cgroup.controllers)\n\
         BENCH_SIZES={} BENCH_SCRAPES={} BENCH_DOCKER_STATS=0 BENCH_STEVEDORE_BIN=/bin/stevedore \
         /bin/cgroup_scrape > /out/bench.md\n",
        env("BENCH_SIZES", "1000"),
        env("BENCH_SCRAPES", "20"),
    );
    for kernel in vm::kernels() {
        let options = vm::Options {
            extra: vec![(me.clone(), "bin/cgroup_scrape".into())],
            timeout_s: 1800,
            memory_mb: 2048,
            ..vm::Options::new(false)
        };
        let boot = vm::start(&kernel, exporter, &script, options).finish();
        println!(
            "## kernel {} (package {}), qemu TCG, boot and run {:.0} s\n",
            kernel.release,
            kernel.package,
            boot.took.as_secs_f64()
        );
        println!(
            "{}\n{}",
            boot.read("script.log").trim(),
            boot.read("bench.md")
        );
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if std::env::var("BENCH_V2_VM").is_ok_and(|v| v == "1") {
        return run_in_v2_vm();
    }
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "100,500,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let scrapes: usize = std::env::var("BENCH_SCRAPES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let mut rows = Vec::new();
    for n in sizes {
        let fleet = Fleet::create(n);
        std::thread::sleep(Duration::from_millis(200));
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 4);
        // Each mode against its floor, in alternation: a floor pass, then a scrape.
        let (row, floor) = bench_stevedore(
            n,
            scrapes,
            false,
            &mut || floor_pass(&fleet, threads),
            floor_name(n, threads),
        );
        rows.extend([row, floor]);
        let kept = KeptFloor::open(&fleet);
        let (row, floor) = bench_stevedore(
            n,
            scrapes,
            true,
            &mut || kept.pass(threads),
            format!("floor, {n} containers, {threads} thread(s), same files kept open (pread)"),
        );
        drop(kept);
        rows.extend([row, floor]);
        if threads > 1 {
            rows.push(bench_floor(&fleet, scrapes, 1));
        }
        drop(fleet);
    }
    // BENCH_DOCKER_STATS=0 skips the Docker stats peer (about a minute) while iterating.
    if std::env::var("BENCH_DOCKER_STATS").as_deref() != Ok("0") {
        rows.extend(bench_docker_stats(10));
    }
    println!("{scrapes} sequential scrapes per size after 10 warm-up scrapes\n");
    println!("| what | median ms | p99 ms | notes |");
    println!("|---|---:|---:|---|");
    for r in rows {
        println!(
            "| {} | {:.1} | {:.1} | {} |",
            r.what, r.median, r.p99, r.extra
        );
    }
}
