//! Container values against ground truth on a real Docker engine: limits set on `docker run`, real
//! load (busy loops, memory fills, direct writes, traffic), the kernel's cgroup files read independently.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

/// The block device under Docker's data root (a whole disk: blkio rules need one).
fn docker_disk() -> String {
    let src = String::from_utf8(
        Command::new("findmnt")
            .args(["-n", "-o", "SOURCE", "--target", "/var/lib/docker"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    // A bind mount shows as "/dev/vda[/var/lib/docker]".
    let src = src.trim().split('[').next().unwrap_or_default().to_string();
    let parent = String::from_utf8(
        Command::new("lsblk")
            .args(["-n", "-o", "PKNAME", &src])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let parent = parent.trim();
    if parent.is_empty() {
        src
    } else {
        format!("/dev/{parent}")
    }
}

#[test]
fn cpu_quota_busy_loop_measures_half_a_core() {
    let c = Container::run("cpu", &["--cpus", "0.5"], "while :; do :; done");
    let e = docker_exporter(&[]);
    let s1 = scrape_until(&e, 30, "the busy container", known(&c));
    let u1 = one(&s1, "container_cpu_usage_seconds_total", &c.name).unwrap();
    let t1 = one(&s1, "container_last_seen", &c.name).unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let before = read_num(&c.v1_file("cpuacct", "cpuacct.usage"), None) / 1e9;
    let s2 = parse_exposition(&e.metrics());
    let after = read_num(&c.v1_file("cpuacct", "cpuacct.usage"), None) / 1e9;
    let u2 = one(&s2, "container_cpu_usage_seconds_total", &c.name).unwrap();
    let t2 = one(&s2, "container_last_seen", &c.name).unwrap();
    assert!(
        before <= u2 && u2 <= after,
        "cpuacct.usage {before}..{after}, exposed {u2}"
    );
    let rate = (u2 - u1) / (t2 - t1);
    assert!((0.4..=0.55).contains(&rate), "rate {rate} cores");

    // The quota as Docker set it.
    let nano: f64 = c.inspect("{{.HostConfig.NanoCpus}}").parse().unwrap();
    let quota = one(&s2, "container_spec_cpu_quota", &c.name).unwrap();
    let period = one(&s2, "container_spec_cpu_period", &c.name).unwrap();
    assert_eq!(quota / period, nano / 1e9);
    assert_eq!(quota, read_num(&c.v1_file("cpu", "cpu.cfs_quota_us"), None));
    // Throttling is real and reported (a quota is set).
    let throttled = one(&s2, "container_cpu_cfs_throttled_periods_total", &c.name).unwrap();
    assert!(throttled > 0.0);
    let file = read_num(&c.v1_file("cpu", "cpu.stat"), Some("nr_throttled"));
    assert!(throttled <= file, "{throttled} > file {file}");
}

#[test]
fn memory_limit_working_set_and_files_read_independently() {
    let c = Container::run("mem", &["--memory", "64m"], "sleep 1000");
    let e = docker_exporter(&[]);
    let s = scrape_until(&e, 30, "the sleeping container", known(&c));
    let limit: f64 = c.inspect("{{.HostConfig.Memory}}").parse().unwrap();
    assert_eq!(
        one(&s, "container_spec_memory_limit_bytes", &c.name),
        Some(limit)
    );
    assert_eq!(limit, 64.0 * 1024.0 * 1024.0);

    // Every value family of an idle container equals its cgroup file, read around the scrape.
    // (family, file, key in the file, divisor to the family's unit)
    let files: Vec<(&str, std::path::PathBuf, Option<&str>, f64)> = vec![
        (
            "container_memory_usage_bytes",
            c.v1_file("memory", "memory.usage_in_bytes"),
            None,
            1.0,
        ),
        (
            "container_memory_rss",
            c.v1_file("memory", "memory.stat"),
            Some("total_rss"),
            1.0,
        ),
        (
            "container_memory_cache",
            c.v1_file("memory", "memory.stat"),
            Some("total_cache"),
            1.0,
        ),
        (
            "container_memory_mapped_file",
            c.v1_file("memory", "memory.stat"),
            Some("total_mapped_file"),
            1.0,
        ),
        (
            "container_memory_max_usage_bytes",
            c.v1_file("memory", "memory.max_usage_in_bytes"),
            None,
            1.0,
        ),
        (
            "container_memory_failcnt",
            c.v1_file("memory", "memory.failcnt"),
            None,
            1.0,
        ),
        (
            "container_spec_memory_limit_bytes",
            c.v1_file("memory", "memory.limit_in_bytes"),
            None,
            1.0,
        ),
        (
            "container_spec_cpu_shares",
            c.v1_file("cpu", "cpu.shares"),
            None,
            1.0,
        ),
        (
            "container_spec_cpu_period",
            c.v1_file("cpu", "cpu.cfs_period_us"),
            None,
            1.0,
        ),
        (
            "container_threads",
            c.v1_file("pids", "pids.current"),
            None,
            1.0,
        ),
        (
            "container_cpu_usage_seconds_total",
            c.v1_file("cpuacct", "cpuacct.usage"),
            None,
            1e9,
        ),
    ];
    // A gauge can move and come back while a scrape runs, so each family must equal its file (read just
    // before and just after the scrape, unchanged) in at least one of several attempts.
    let mut matched = vec![false; files.len()];
    let mut last_seen: Vec<Option<(f64, Option<f64>)>> = vec![None; files.len()];
    for _attempt in 0..10 {
        let before: Vec<f64> = files
            .iter()
            .map(|(_, p, k, div)| read_num(p, *k) / div)
            .collect();
        let s = parse_exposition(&e.metrics());
        let after: Vec<f64> = files
            .iter()
            .map(|(_, p, k, div)| read_num(p, *k) / div)
            .collect();
        for (i, (metric, _, _, _)) in files.iter().enumerate() {
            let got = one(&s, metric, &c.name);
            if before[i] == after[i] {
                last_seen[i] = Some((before[i], got));
                matched[i] |= got == Some(before[i]);
            }
        }
        if matched.iter().all(|m| *m) {
            break;
        }
    }
    for (i, (metric, path, key, _)) in files.iter().enumerate() {
        assert!(
            matched[i],
            "{metric} never equalled {} {key:?}: last (file, exposed) {:?}",
            path.display(),
            last_seen[i]
        );
    }
    // Working set = usage - total_inactive_file.
    let s = parse_exposition(&e.metrics());
    let ws0 = one(&s, "container_memory_working_set_bytes", &c.name).unwrap();

    // Hold 40 MiB (tmpfs pages are charged to the container and stay resident).
    let n = 40.0 * 1024.0 * 1024.0;
    c.exec("head -c 41943040 /dev/zero > /dev/shm/fill");
    let s = parse_exposition(&e.metrics());
    let ws1 = one(&s, "container_memory_working_set_bytes", &c.name).unwrap();
    let want = ws0 + n;
    assert!(
        (ws1 - want).abs() <= 0.1 * want,
        "working set {ws1}, expected {want} ± 10%"
    );
    let usage = read_num(&c.v1_file("memory", "memory.usage_in_bytes"), None);
    let inactive = read_num(
        &c.v1_file("memory", "memory.stat"),
        Some("total_inactive_file"),
    );
    assert!(
        (ws1 - (usage - inactive).max(0.0)).abs() <= 0.05 * want,
        "ws {ws1} vs files {usage} - {inactive}"
    );
}

#[test]
fn direct_writes_show_in_fs_writes_bytes() {
    // This kernel keeps v1 blkio statistics only for devices with a throttle rule, so the container gets
    // one far above anything it can reach (10 GB/s): accounting without throttling.
    let disk = docker_disk();
    let rule = format!("{disk}:10gb");
    let n = 20.0 * 1024.0 * 1024.0;
    let c = Container::run(
        "dd",
        &["--device-write-bps", &rule],
        "dd if=/dev/zero of=/tmp/f bs=1M count=20 oflag=direct && sleep 1000",
    );
    let e = docker_exporter(&[]);
    // cAdvisor's form of the label: the device's path.
    let device = disk.clone();
    let s = scrape_until(&e, 30, "20 MiB of direct writes", |s| {
        named(s, "container_fs_writes_bytes_total", &c.name)
            .iter()
            .map(|x| x.value)
            .sum::<f64>()
            >= n
    });
    let w = named(&s, "container_fs_writes_bytes_total", &c.name);
    assert!(
        w.iter().any(|x| x.labels["device"] == device),
        "device label should be {device}: {w:?}"
    );
    let ops: f64 = named(&s, "container_fs_writes_total", &c.name)
        .iter()
        .map(|x| x.value)
        .sum();
    assert!(ops >= 20.0, "{ops} write operations");
    // cAdvisor's per-operation family: the cgroup's own Write line for the device, with its numbers.
    let file =
        std::fs::read_to_string(c.v1_file("blkio", "blkio.throttle.io_service_bytes")).unwrap();
    let majmin = std::fs::read_to_string(format!(
        "/sys/class/block/{}/dev",
        disk.trim_start_matches("/dev/")
    ))
    .unwrap();
    let (major, minor) = majmin.trim().split_once(':').unwrap();
    let in_file: f64 = (file.lines())
        .find_map(|l| l.strip_prefix(&format!("{major}:{minor} Write ")))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let s = parse_exposition(&e.metrics());
    let usage = named(&s, "container_blkio_device_usage_total", &c.name);
    let write = usage
        .iter()
        .find(|x| x.labels["operation"] == "Write")
        .unwrap();
    assert_eq!(
        (
            write.labels["device"].as_str(),
            write.labels["major"].as_str(),
            write.labels["minor"].as_str()
        ),
        (device.as_str(), major, minor)
    );
    assert_eq!(write.value, in_file);
    assert!(usage.iter().any(|x| x.labels["operation"] == "Read"));
    assert_eq!(promtool_problems(&e.metrics()), Vec::<String>::new());
}

#[test]
fn traffic_between_two_containers_shows_on_both_sides() {
    let n = 5.0 * 1024.0 * 1024.0;
    // busybox nc -l exits when its own stdin ends, and a container's stdin is /dev/null: feed it a sleep.
    let server = Container::run(
        "netrx",
        &[],
        "sleep 1000 | nc -l -p 5000 > /dev/null; sleep 1000",
    );
    let ip = server.inspect("{{.NetworkSettings.IPAddress}}");
    std::thread::sleep(Duration::from_millis(500));
    let client = Container::run(
        "nettx",
        &[],
        &format!("head -c 5242880 /dev/zero | nc {ip} 5000; sleep 1000"),
    );
    let e = docker_exporter(&[]);
    let s = scrape_until(&e, 30, "5 MiB each way", |s| {
        let rx = s.iter().find(|x| {
            x.name == "container_network_receive_bytes_total"
                && x.labels["name"] == server.name
                && x.labels["interface"] == "eth0"
        });
        let tx = s.iter().find(|x| {
            x.name == "container_network_transmit_bytes_total"
                && x.labels["name"] == client.name
                && x.labels["interface"] == "eth0"
        });
        rx.is_some_and(|x| x.value >= n) && tx.is_some_and(|x| x.value >= n)
    });
    // The counters are the container's own network namespace, as the kernel shows it from inside.
    let pid = server.inspect("{{.State.Pid}}");
    let dev = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap();
    let eth0: f64 = dev
        .lines()
        .find(|l| l.trim_start().starts_with("eth0:"))
        .unwrap()
        .split_once(':')
        .unwrap()
        .1
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let got = s
        .iter()
        .find(|x| {
            x.name == "container_network_receive_bytes_total" && x.labels["name"] == server.name
        })
        .unwrap()
        .value;
    assert!(got <= eth0 && got >= n, "exposed {got}, kernel {eth0}");
    // Loopback is never reported.
    assert!(!s.iter().any(|x| x.name.starts_with("container_network_")
        && x.labels.get("interface").is_some_and(|i| i == "lo")));
}

#[test]
fn memory_limit_kill_counts_an_oom_event() {
    // `tail /dev/zero` grows until the 16 MiB limit kills it; the shell survives, so does the cgroup.
    let c = Container::run("oom", &["--memory", "16m"], "tail /dev/zero; sleep 1000");
    let e = docker_exporter(&[]);
    let s = scrape_until(&e, 30, "an OOM kill", |s| {
        one(s, "container_oom_events_total", &c.name).is_some_and(|v| v >= 1.0)
    });
    let file = read_num(&c.v1_file("memory", "memory.oom_control"), Some("oom_kill"));
    assert_eq!(one(&s, "container_oom_events_total", &c.name), Some(file));
    assert!(one(&s, "container_memory_failcnt", &c.name).unwrap() > 0.0);
}

#[test]
fn tasks_by_state_with_the_flag() {
    // A busy loop (running), a sleep (sleeping) and a stopped process, counted per thread.
    let c = Container::run(
        "tasks",
        &[],
        "sleep 1000 & sleep 1000 & kill -STOP $!; while :; do :; done",
    );
    let e = docker_exporter(&["--collector.cgroup.tasks-state"]);
    let state = |s: &[Sample], st: &str| {
        value(
            s,
            "container_tasks_state",
            &[("name", &c.name), ("state", st)],
        )
    };
    let s = scrape_until(&e, 30, "the stopped sleep counted", |s| {
        state(s, "stopped") == Some(1.0)
    });
    // The kernel's own list of the cgroup's threads.
    let threads = std::fs::read_to_string(c.v1_file("pids", "tasks")).unwrap();
    let counted: f64 = ["running", "sleeping", "stopped", "uninterruptible"]
        .iter()
        .map(|st| state(&s, st).unwrap())
        .sum();
    assert_eq!(counted, threads.lines().count() as f64);
    assert_eq!(state(&s, "sleeping"), Some(1.0));
    assert!(state(&s, "running").unwrap() >= 1.0);
    // Off by default: one read per thread per scrape.
    let plain = docker_exporter(&[]);
    let s = scrape_until(&plain, 30, "the container", known(&c));
    assert_eq!(state(&s, "running"), None);
}
