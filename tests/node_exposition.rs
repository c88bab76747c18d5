//! The real binary's node exposition: valid, in agreement with the kernel read independently, counters
//! monotonic, values from the recorded procfs fixture, and a broken file failing only its collector.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

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

/// The root cgroup's filesystem families (cAdvisor's `container_fs_*{id="/"}`), against statvfs as
/// `stat -f` reads it: the root filesystem's device, its size and inodes exactly, its usage closely.
#[test]
fn root_filesystem_families_agree_with_statvfs() {
    // min-age 0: the second scrape below must be a new reading, not the first one's run again.
    let e = Exporter::start(&[
        "--collector.disable-defaults",
        "--collector.filesystem",
        "--collect.min-age=0",
    ]);
    let s = parse_exposition(&e.metrics());
    let out = |cmd: &str, args: &[&str]| {
        let o = Command::new(cmd).args(args).output().unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    };
    let device = out("findmnt", &["-n", "-o", "SOURCE", "/"]);
    let device = device.split('[').next().unwrap().to_string();
    assert!(device.starts_with("/dev/"), "{device}");
    let f: Vec<f64> = out("stat", &["-f", "-c", "%b %f %S %c %d", "/"])
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    let (blocks, free, frsize, inodes, inodes_free) = (f[0], f[1], f[2], f[3], f[4]);
    let get = |name: &str| value(&s, name, &[("id", "/"), ("device", &device)]);
    assert_eq!(get("container_fs_limit_bytes"), Some(blocks * frsize));
    assert_eq!(get("container_fs_inodes_total"), Some(inodes));
    let used = get("container_fs_usage_bytes").unwrap();
    assert!(
        (used - (blocks - free) * frsize).abs() <= 0.01 * blocks * frsize,
        "usage {used} vs {}",
        (blocks - free) * frsize
    );
    let ifree = get("container_fs_inodes_free").unwrap();
    assert!(
        (ifree - inodes_free).abs() <= 0.01 * inodes,
        "{ifree} vs {inodes_free}"
    );
    // Mounts not backed by a /dev device (tmpfs) are labelled by their mount point, as cAdvisor labels
    // them, with node_filesystem's figures; the same mounts as the filesystem collector reports.
    let mut others = 0;
    for n in s.iter().filter(|x| x.name == "node_filesystem_size_bytes") {
        let (dev, mp) = (&n.labels["device"], &n.labels["mountpoint"]);
        if !dev.starts_with("/dev/") {
            others += 1;
            let limit = value(
                &s,
                "container_fs_limit_bytes",
                &[("id", "/"), ("device", mp)],
            );
            assert_eq!(limit, Some(n.value), "{mp}");
        }
    }
    println!("{others} mounts labelled by their mount point");
    // The root device's I/O detail from /proc/diskstats, read before and after a scrape: each counter
    // lies between (times in seconds, the file's milliseconds / 1000).
    let name = device.trim_start_matches("/dev/").to_string();
    let line = || -> Vec<f64> {
        let text = std::fs::read_to_string("/proc/diskstats").unwrap();
        let l = text
            .lines()
            .find(|l| l.split_whitespace().nth(2) == Some(name.as_str()))
            .unwrap()
            .to_string();
        l.split_whitespace()
            .skip(3)
            .map(|v| v.parse().unwrap())
            .collect()
    };
    let before = line();
    let s2 = parse_exposition(&e.metrics());
    let after = line();
    for (family, field, scale) in [
        ("container_fs_reads_merged_total", 1, 1.0),
        ("container_fs_sector_reads_total", 2, 1.0),
        ("container_fs_read_seconds_total", 3, 1e-3),
        ("container_fs_writes_merged_total", 5, 1.0),
        ("container_fs_sector_writes_total", 6, 1.0),
        ("container_fs_write_seconds_total", 7, 1e-3),
        ("container_fs_io_time_seconds_total", 9, 1e-3),
        ("container_fs_io_time_weighted_seconds_total", 10, 1e-3),
    ] {
        let v = value(&s2, family, &[("id", "/"), ("device", &device)]).unwrap();
        let (lo, hi) = (before[field] * scale, after[field] * scale);
        assert!(lo <= v && v <= hi, "{family}: {v} not in {lo}..{hi}");
    }
    assert!(
        value(
            &s2,
            "container_fs_io_current",
            &[("id", "/"), ("device", &device)]
        )
        .is_some()
    );
    assert!(
        value(
            &s2,
            "container_fs_sector_writes_total",
            &[("id", "/"), ("device", &device)]
        )
        .unwrap()
            > 0.0
    );

    let devices: Vec<&str> = (s.iter().filter(|x| x.name == "container_fs_usage_bytes"))
        .map(|x| x.labels["device"].as_str())
        .collect();
    let unique: std::collections::HashSet<&&str> = devices.iter().collect();
    assert_eq!(unique.len(), devices.len(), "{devices:?}");
}
