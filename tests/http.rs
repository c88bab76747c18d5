//! The real binary on an ephemeral port: exposition validity, agreement with the kernel, negotiation,
//! filters, status codes, flags, and behaviour when a collector's file is broken or blocks.

mod common;

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    Exporter, clk_tck, collector_success, extract_procfs, parse_exposition, procfs_member,
    promtool_problems, value,
};

fn kernel_meminfo(key: &str) -> f64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{key}:")))
        .unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<f64>()
        .unwrap()
        * 1024.0
}

#[test]
fn exposition_is_valid_and_agrees_with_the_kernel() {
    let e = Exporter::start(&[]);
    let body = e.metrics();
    assert_eq!(
        promtool_problems(&body),
        Vec::<String>::new(),
        "promtool check metrics"
    );
    let s = parse_exposition(&body);

    // Every default collector succeeded.
    for c in [
        "cpu",
        "diskstats",
        "filesystem",
        "loadavg",
        "machine",
        "meminfo",
        "netdev",
        "stat",
        "time",
        "uname",
    ] {
        assert_eq!(
            value(
                &s,
                "stevedore_scrape_collector_success",
                &[("collector", c)]
            ),
            Some(1.0),
            "{c}"
        );
    }

    // MemTotal, as the kernel says.
    let mem_total = kernel_meminfo("MemTotal");
    assert_eq!(
        value(&s, "node_memory_MemTotal_bytes", &[]),
        Some(mem_total)
    );
    assert_eq!(
        s.iter()
            .find(|x| x.name == "machine_memory_bytes")
            .map(|x| x.value),
        Some(mem_total)
    );

    // Number of CPUs: one `cpu` label per online CPU in /proc/stat, and cpuinfo's processors.
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let online = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    let cpus: std::collections::BTreeSet<&str> = s
        .iter()
        .filter(|x| x.name == "node_cpu_seconds_total")
        .map(|x| x.labels["cpu"].as_str())
        .collect();
    assert_eq!(cpus.len(), online);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let processors = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count() as f64;
    assert_eq!(
        s.iter()
            .find(|x| x.name == "machine_cpu_cores")
            .map(|x| x.value),
        Some(processors)
    );
    // Each CPU's idle seconds are the kernel's ticks / USER_HZ (read after the scrape, so >=).
    let idle_ticks: f64 = stat
        .lines()
        .find(|l| l.starts_with("cpu0 "))
        .unwrap()
        .split_whitespace()
        .nth(4)
        .unwrap()
        .parse()
        .unwrap();
    let idle = value(
        &s,
        "node_cpu_seconds_total",
        &[("cpu", "0"), ("mode", "idle")],
    )
    .unwrap();
    assert!(
        (idle - idle_ticks / clk_tck()).abs() < 60.0,
        "idle {idle} vs {}",
        idle_ticks / clk_tck()
    );

    // Boot time.
    let btime: f64 = stat.lines().find(|l| l.starts_with("btime ")).unwrap()[6..]
        .trim()
        .parse()
        .unwrap();
    assert_eq!(value(&s, "node_boot_time_seconds", &[]), Some(btime));

    // The root filesystem's size, from statvfs as df reports it.
    let df = Command::new("df")
        .args(["-B1", "--output=size", "/"])
        .output()
        .unwrap();
    let df_size: f64 = String::from_utf8_lossy(&df.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        value(&s, "node_filesystem_size_bytes", &[("mountpoint", "/")]),
        Some(df_size)
    );
    assert_eq!(
        value(&s, "node_filesystem_device_error", &[("mountpoint", "/")]),
        Some(0.0)
    );
    // The default excludes hold: no /proc, /sys, /dev, and no cgroup/overlay filesystems.
    for x in s.iter().filter(|x| x.name == "node_filesystem_size_bytes") {
        let mp = &x.labels["mountpoint"];
        assert!(
            !mp.starts_with("/proc") && !mp.starts_with("/sys") && !mp.starts_with("/dev"),
            "{mp}"
        );
        assert!(
            !["cgroup", "cgroup2", "overlay", "proc", "sysfs"]
                .contains(&x.labels["fstype"].as_str())
        );
    }

    // Interfaces: every /proc/net/dev device is there.
    let netdev = std::fs::read_to_string("/proc/net/dev").unwrap();
    for line in netdev.lines().skip(2) {
        let dev = line.split(':').next().unwrap().trim();
        assert!(
            value(&s, "node_network_receive_bytes_total", &[("device", dev)]).is_some(),
            "{dev}"
        );
    }

    // Build info and process metrics.
    assert_eq!(
        value(
            &s,
            "stevedore_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    let rss = value(&s, "process_resident_memory_bytes", &[]).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", e.child.id())).unwrap();
    let vmrss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap();
    let vmrss: f64 = vmrss.parse::<f64>().unwrap() * 1024.0;
    assert!(
        (rss - vmrss).abs() < 8.0 * 1024.0 * 1024.0,
        "rss {rss} vs VmRSS {vmrss}"
    );
    let fds = std::fs::read_dir(format!("/proc/{}/fd", e.child.id()))
        .unwrap()
        .count() as f64;
    assert!((value(&s, "process_open_fds", &[]).unwrap() - fds).abs() <= 4.0);
}

#[test]
fn counters_never_go_backwards() {
    let e = Exporter::start(&["--collect.min-age=0"]);
    let first = parse_exposition(&e.metrics());
    // Generate some activity between the scrapes.
    let _ = std::fs::read_to_string("/proc/self/stat");
    std::thread::sleep(Duration::from_millis(300));
    let second = parse_exposition(&e.metrics());
    let mut compared = 0;
    for a in first.iter().filter(|x| x.name.ends_with("_total")) {
        if let Some(b) = second
            .iter()
            .find(|b| b.name == a.name && b.labels == a.labels)
        {
            assert!(
                b.value >= a.value,
                "{} {:?}: {} then {}",
                a.name,
                a.labels,
                a.value,
                b.value
            );
            compared += 1;
        }
    }
    assert!(compared > 50, "only {compared} counters compared");
    let ctx = |s: &[common::Sample]| value(s, "node_context_switches_total", &[]).unwrap();
    assert!(
        ctx(&second) > ctx(&first),
        "context switches did not increase"
    );
}

/// GET with `Accept-Encoding: gzip`: the compressed body, and it decompressed.
fn get_gzip(client: &reqwest::blocking::Client, url: &str) -> (Vec<u8>, String) {
    let mut r = client
        .get(url)
        .header("Accept-Encoding", "gzip")
        .send()
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let mut compressed = Vec::new();
    r.read_to_end(&mut compressed).unwrap();
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_string(&mut plain)
        .unwrap();
    (compressed, plain)
}

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
fn values_from_a_fixture_procfs() {
    let dir = tempfile::tempdir().unwrap();
    extract_procfs(dir.path());
    let proc = dir.path().join("fixtures/proc");
    let sys = dir.path().join("fixtures/sys");
    let e = Exporter::start(&[
        &format!("--path.procfs={}", proc.display()),
        &format!("--path.sysfs={}", sys.display()),
        &format!("--path.rootfs={}", dir.path().display()),
        "--no-collector.pressure",
    ]);
    let body = e.metrics();
    assert_eq!(promtool_problems(&body), Vec::<String>::new());
    let s = parse_exposition(&body);
    let meminfo = procfs_member("fixtures/proc/meminfo");
    let total: f64 = meminfo
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        value(&s, "node_memory_MemTotal_bytes", &[]),
        Some(total * 1024.0)
    );
    let stat = procfs_member("fixtures/proc/stat");
    let user: f64 = stat
        .lines()
        .find(|l| l.starts_with("cpu7 "))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        value(
            &s,
            "node_cpu_seconds_total",
            &[("cpu", "7"), ("mode", "user")]
        ),
        Some(user / clk_tck())
    );
    let load = procfs_member("fixtures/proc/loadavg");
    assert_eq!(
        value(&s, "node_load15", &[]),
        Some(load.split_whitespace().nth(2).unwrap().parse().unwrap())
    );
    // Diskstats default excludes drop partitions and ram/loop devices but keep whole disks.
    assert!(value(&s, "node_disk_reads_completed_total", &[("device", "sda")]).is_some());
    assert!(value(&s, "node_disk_reads_completed_total", &[("device", "sda1")]).is_none());
    assert!(value(&s, "node_disk_reads_completed_total", &[("device", "ram0")]).is_none());
    let diskstats = procfs_member("fixtures/proc/diskstats");
    let sda: Vec<&str> = diskstats
        .lines()
        .find(|l| l.contains(" sda "))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        value(&s, "node_disk_read_bytes_total", &[("device", "sda")]),
        Some(sda[5].parse::<f64>().unwrap() * 512.0)
    );
    // The fixture's mounts (self/mountinfo, since there is no proc/1) are statted under --path.rootfs:
    // "/" exists there; the NFS mount point does not, so it reports device_error 1 and no size.
    assert_eq!(
        value(&s, "node_filesystem_device_error", &[("mountpoint", "/")]),
        Some(0.0)
    );
    assert_eq!(
        value(
            &s,
            "node_filesystem_device_error",
            &[("mountpoint", "/mnt/nfs/test")]
        ),
        Some(1.0)
    );
    assert!(
        value(
            &s,
            "node_filesystem_size_bytes",
            &[("mountpoint", "/mnt/nfs/test")]
        )
        .is_none()
    );
}

#[test]
fn a_broken_file_fails_only_its_collector_and_is_logged_once() {
    let dir = tempfile::tempdir().unwrap();
    extract_procfs(dir.path());
    let proc = dir.path().join("fixtures/proc");
    std::fs::write(proc.join("meminfo"), "MemTotal: lots kB\n").unwrap();
    std::fs::write(proc.join("loadavg"), "").unwrap();
    let e = Exporter::start(&[
        &format!("--path.procfs={}", proc.display()),
        "--collect.min-age=0",
    ]);
    for _ in 0..3 {
        let body = e.metrics();
        assert_eq!(promtool_problems(&body), Vec::<String>::new());
        let s = parse_exposition(&body);
        assert_eq!(collector_success(&s, "meminfo"), Some(0.0));
        assert_eq!(collector_success(&s, "loadavg"), Some(0.0));
        assert_eq!(collector_success(&s, "cpu"), Some(1.0));
        assert!(value(&s, "node_memory_MemTotal_bytes", &[]).is_none());
        assert!(
            value(
                &s,
                "node_cpu_seconds_total",
                &[("cpu", "0"), ("mode", "user")]
            )
            .is_some()
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    let log = e.drain_log();
    let failures: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("collector failed") && l.contains("collector=meminfo"))
        .collect();
    assert_eq!(failures.len(), 1, "{log:#?}");
    assert!(
        failures[0].contains("meminfo") && failures[0].contains("lots"),
        "{}",
        failures[0]
    );

    // Once fixed, the collector recovers without a restart, and says so once.
    std::fs::write(proc.join("meminfo"), procfs_member("fixtures/proc/meminfo")).unwrap();
    let s = parse_exposition(&e.metrics());
    assert_eq!(collector_success(&s, "meminfo"), Some(1.0));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        e.drain_log()
            .iter()
            .filter(|l| l.contains("collector recovered") && l.contains("collector=meminfo"))
            .count(),
        1
    );
}

/// A FIFO in place of /proc/meminfo blocks every read until a writer appears: a real hung file.
fn procfs_with_blocking_meminfo() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    extract_procfs(dir.path());
    let proc = dir.path().join("fixtures/proc");
    std::fs::remove_file(proc.join("meminfo")).unwrap();
    let status = Command::new("mkfifo")
        .arg(proc.join("meminfo"))
        .status()
        .unwrap();
    assert!(status.success());
    (dir, proc)
}

#[test]
fn a_hung_collector_times_out_and_the_rest_is_served() {
    let (_dir, proc) = procfs_with_blocking_meminfo();
    let e = Exporter::start(&[
        &format!("--path.procfs={}", proc.display()),
        "--collect.timeout=1s",
        "--collect.min-age=0",
        "--no-collector.machine",
    ]);
    let start = Instant::now();
    let s = parse_exposition(&e.metrics());
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(collector_success(&s, "meminfo"), Some(0.0));
    assert_eq!(collector_success(&s, "cpu"), Some(1.0));
    // The hung read is still in flight: the next scrape skips it at once instead of waiting again.
    let start = Instant::now();
    let s = parse_exposition(&e.metrics());
    assert!(
        start.elapsed() < Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(collector_success(&s, "meminfo"), Some(0.0));
}

#[test]
fn concurrent_scrapes_share_one_collection_and_excess_gets_503() {
    let (_dir, proc) = procfs_with_blocking_meminfo();
    let e = Exporter::start(&[
        &format!("--path.procfs={}", proc.display()),
        "--collect.timeout=2s",
        "--collect.min-age=0",
        "--web.max-requests=2",
        "--no-collector.machine",
    ]);
    // Wait until the start-up collection (blocked on the FIFO for 2s) has timed out, then let its hung read
    // finish (a writer opens and closes the FIFO) so the next collection blocks on the FIFO anew.
    std::thread::sleep(Duration::from_millis(2500));
    drop(
        std::fs::OpenOptions::new()
            .write(true)
            .open(proc.join("meminfo"))
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(200));
    let url = e.url("/metrics");
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let r = reqwest::blocking::get(url).unwrap();
                (r.status().as_u16(), r.text().unwrap())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // Two scrapes are in flight (waiting on the hung meminfo): a third is refused.
    let third = e.get("/metrics");
    assert_eq!(third.status(), 503);
    assert!(third.text().unwrap().contains("--web.max-requests"));
    let results: Vec<(u16, String)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(results.iter().all(|(code, _)| *code == 200));
    // Both got the same collection: identical duration samples.
    let dur = |body: &str| {
        value(
            &parse_exposition(body),
            "stevedore_scrape_collector_duration_seconds",
            &[("collector", "cpu")],
        )
    };
    assert_eq!(dur(&results[0].1), dur(&results[1].1));
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let mut e = Exporter::start(&[]);
    let _ = e.metrics();
    let pid = e.child.id() as i32;
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = e.child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
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

/// Empty cgroups made with mkdir under the v1 hierarchies (a folder this test owns), removed on drop.
struct ManyCgroups(Vec<std::path::PathBuf>);

impl ManyCgroups {
    fn make(n: usize) -> ManyCgroups {
        let mut made = Vec::new();
        for c in ["cpu", "cpuacct", "memory", "pids", "blkio"] {
            let base = std::path::Path::new("/sys/fs/cgroup")
                .join(c)
                .join("sdtest-stream");
            for i in 0..n {
                let dir = base
                    .join("docker")
                    .join(format!("{:064x}", 0xabc0_0000u64 + i as u64));
                std::fs::create_dir_all(&dir)
                    .unwrap_or_else(|e| panic!("mkdir {}: {e} (root, cgroup v1)", dir.display()));
                made.push(dir);
            }
            made.push(base.join("docker"));
            made.push(base);
        }
        ManyCgroups(made)
    }
}

impl Drop for ManyCgroups {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Asserts two expositions of the same collection are the same, but for the exporter's own process_*
/// figures (read as each response is rendered); names the first line that differs.
fn assert_same_collection(a: &str, b: &str, what: &str) {
    let lines = |t: &str| {
        t.lines()
            .filter(|l| !l.starts_with("process_"))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let (a, b) = (lines(a), lines(b));
    if let Some((x, y)) = a.iter().zip(&b).find(|(x, y)| x != y) {
        panic!("{what}: first difference:\n{x}\n{y}");
    }
    assert_eq!(a.len(), b.len(), "{what}: line counts");
}

#[test]
fn a_large_exposition_streams_whole_in_every_format_and_a_client_may_hang_up() {
    use std::io::Write;
    let _cgroups = ManyCgroups::make(150);
    // One collection, served again to every request below (min-age), so the bodies can be compared.
    let e = Exporter::start(&[
        "--collect.min-age=1h",
        "--collector.disable-defaults",
        "--collector.cgroup",
        "--web.max-requests=1",
    ]);
    let client = reqwest::blocking::Client::new();
    let plain = client
        .get(e.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let containers = plain
        .lines()
        .filter(|l| l.starts_with("container_cpu_usage_seconds_total{id=\"/sdtest-stream/"))
        .count();
    assert_eq!(containers, 150);
    // Many chunks of 64 KiB.
    assert!(plain.len() > 8 * 64 * 1024, "{} bytes", plain.len());
    assert_eq!(promtool_problems(&plain), Vec::<String>::new());

    let (_, unzipped) = get_gzip(&client, &e.url("/metrics"));
    assert_same_collection(&unzipped, &plain, "gzip body against the plain one");

    let om = client
        .get(e.url("/metrics"))
        .header("Accept", "application/openmetrics-text;version=1.0.0")
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(om.ends_with("# EOF\n"));
    let samples = |t: &str| t.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(samples(&om), samples(&plain));

    // A client that reads a little and hangs up: the rendering stops, and the only in-flight slot
    // (--web.max-requests=1) is free again for the next scrape, within seconds.
    let slot_free = || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = client.get(e.url("/metrics")).send().unwrap();
            if r.status() == 200 {
                return r.text().unwrap();
            }
            assert_eq!(r.status(), 503);
            assert!(Instant::now() < deadline, "the slot stayed taken");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    for _ in 0..3 {
        slot_free();
        let mut s = std::net::TcpStream::connect(&e.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut first = [0u8; 12];
        s.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");
        drop(s);
    }
    assert_same_collection(&slot_free(), &plain, "after the hang-ups");
}
