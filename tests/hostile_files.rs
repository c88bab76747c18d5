//! Hostile or broken kernel files under --path.procfs and --path.sysfs: the collector that reads them
//! fails or leaves the figure out, the process stays small, the rest is served.

mod common;

use common::*;

fn vm_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = fields_of(&status, "VmRSS:")[1].parse().unwrap();
    kb / 1024.0
}

/// A copy of the recorded v1 tree (as a --path.sysfs root) with `file` of the container replaced.
fn v1_with(controller: &str, file: &str, target: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for c in ["cpu", "cpuacct", "memory", "blkio"] {
        let src = v1_tree().join(c).join("docker").join(V1_ID);
        let dst = dir.path().join(format!("fs/cgroup/{c}/docker/{V1_ID}"));
        std::fs::create_dir_all(&dst).unwrap();
        for f in std::fs::read_dir(&src).unwrap().flatten() {
            std::fs::copy(f.path(), dst.join(f.file_name())).unwrap();
        }
    }
    let path = dir
        .path()
        .join(format!("fs/cgroup/{controller}/docker/{V1_ID}/{file}"));
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(target, &path).unwrap();
    dir
}

#[test]
fn dev_zero_as_a_cgroup_memory_stat_is_refused_and_the_rest_served() {
    let sys = v1_with("memory", "memory.stat", "/dev/zero");
    for keep_open in [false, true] {
        let mut args = vec![
            format!("--path.sysfs={}", sys.path().display()),
            "--collect.min-age=0".to_string(),
            "--docker.host=unix:///nonexistent.sock".to_string(),
        ];
        if keep_open {
            args.push("--collector.cgroup.keep-open".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let e = Exporter::start(&args);
        for _ in 0..3 {
            let s = parse_exposition(&e.metrics());
            assert_eq!(collector_success(&s, "cgroup"), Some(1.0));
            let id = format!("/docker/{V1_ID}");
            let usage = file_num(
                &v1_tree()
                    .join("memory/docker")
                    .join(V1_ID)
                    .join("memory.usage_in_bytes"),
            );
            // Usage is read from its own file; what memory.stat would give is left out, not zero.
            assert_eq!(
                value(&s, "container_memory_usage_bytes", &[("id", &id)]),
                Some(usage)
            );
            assert_eq!(value(&s, "container_memory_rss", &[("id", &id)]), None);
        }
        let rss = vm_rss_mib(e.child.id());
        assert!(
            rss < 64.0,
            "RSS {rss} MiB after reading /dev/zero as memory.stat"
        );
    }
}

#[test]
fn dev_zero_as_proc_meminfo_fails_only_meminfo_and_costs_little() {
    let dir = tempfile::tempdir().unwrap();
    extract_procfs(dir.path());
    let proc = dir.path().join("fixtures/proc");
    std::fs::remove_file(proc.join("meminfo")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", proc.join("meminfo")).unwrap();
    let e = Exporter::start(&[
        &format!("--path.procfs={}", proc.display()),
        "--collect.min-age=0",
        "--no-collector.cgroup",
    ]);
    for _ in 0..3 {
        let s = parse_exposition(&e.metrics());
        assert_eq!(collector_success(&s, "meminfo"), Some(0.0));
        assert_eq!(collector_success(&s, "cpu"), Some(1.0));
    }
    let rss = vm_rss_mib(e.child.id());
    assert!(
        rss < 64.0,
        "RSS {rss} MiB after reading /dev/zero as meminfo"
    );
    let log = e.drain_log();
    assert!(
        log.iter()
            .any(|l| l.contains("collector failed") && l.contains("larger than 16 MiB")),
        "{log:#?}"
    );
}

#[test]
fn duplicated_lines_and_negative_values_never_make_an_invalid_exposition() {
    let dir = tempfile::tempdir().unwrap();
    extract_procfs(dir.path());
    let proc = dir.path().join("fixtures/proc");
    let stat = std::fs::read_to_string(proc.join("stat")).unwrap();
    let cpu0 = stat.lines().find(|l| l.starts_with("cpu0 ")).unwrap();
    // A second cpu0 with other figures, a disk named twice, a clock source listed twice, and -1 in
    // net/dev's first receive field.
    let twice = format!("{stat}{}\n", cpu0.replace("cpu0 ", "cpu0 9"));
    std::fs::write(proc.join("stat"), twice).unwrap();
    let disks = std::fs::read_to_string(proc.join("diskstats")).unwrap();
    let first_disk = disks.lines().next().unwrap().to_string();
    std::fs::write(proc.join("diskstats"), format!("{disks}{first_disk}\n")).unwrap();
    let netdev = std::fs::read_to_string(proc.join("net/dev")).unwrap();
    let iface_line = netdev.lines().nth(2).unwrap();
    let (iface, figures) = iface_line.split_once(':').unwrap();
    let first = figures.split_whitespace().next().unwrap();
    let broken = netdev.replacen(
        iface_line,
        &format!("{iface}:{}", figures.replacen(first, "-1", 1)),
        1,
    );
    std::fs::write(proc.join("net/dev"), broken).unwrap();
    let clock = dir
        .path()
        .join("fixtures/sys/devices/system/clocksource/clocksource0/available_clocksource");
    std::fs::write(&clock, "tsc hpet tsc acpi_pm\n").unwrap();
    // A v2 container whose io.stat names a device twice.
    let (tree, _, container) = v2_container_tree();
    let io = tree
        .path()
        .join("fs/cgroup")
        .join(container.trim_start_matches('/'))
        .join("io.stat");
    let io_text = std::fs::read_to_string(&io).unwrap();
    let first_dev = io_text.lines().next().unwrap().to_string();
    std::fs::write(&io, format!("{io_text}{first_dev}\n")).unwrap();
    let sys = dir.path().join("fixtures/sys");
    std::os::unix::fs::symlink(tree.path().join("fs/cgroup"), sys.join("fs/cgroup")).unwrap();

    let e = Exporter::start(&[
        &format!("--path.procfs={}", proc.display()),
        &format!("--path.sysfs={}", sys.display()),
        "--docker.host=unix:///nonexistent.sock",
    ]);
    // Both formats pass the strict check (openmetrics() and metrics() assert it).
    let om = e.openmetrics();
    assert!(
        om.contains("container_fs_reads_bytes_total"),
        "io.stat was read"
    );
    let s = parse_exposition(&e.metrics());
    // The first cpu0 line is the one reported.
    let user = fields_of(cpu0, "cpu0 ")[1].parse::<f64>().unwrap() / clk_tck();
    assert_eq!(
        value(
            &s,
            "node_cpu_seconds_total",
            &[("cpu", "0"), ("mode", "user")]
        ),
        Some(user)
    );
    // The broken figure is left out; the interface's other counters are served.
    let device = iface.trim();
    assert_eq!(
        value(
            &s,
            "node_network_receive_bytes_total",
            &[("device", device)]
        ),
        None
    );
    assert!(
        value(
            &s,
            "node_network_receive_packets_total",
            &[("device", device)]
        )
        .is_some()
    );
}

/// The strict check used on every exposition the suite reads catches what promtool's lint does not.
#[test]
fn the_strict_check_catches_what_promtool_does_not() {
    let ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 1\na_total{x=\"2\"} 2\n";
    assert_eq!(strict_problems(ok), Vec::<String>::new());
    let om = "# TYPE a counter\na_total{x=\"1\"} 1\n# EOF\n";
    assert_eq!(strict_problems(om), Vec::<String>::new());
    for (bad, what) in [
        (format!("{ok}a_total{{x=\"1\"}} 3\n"), "series given twice"),
        (
            "# TYPE a_total counter\na_total -1\n".to_string(),
            "counter not a finite",
        ),
        (
            format!("{ok}# TYPE b gauge\nb 1\n# TYPE a_total counter\na_total{{x=\"3\"}} 1\n"),
            "declared twice",
        ),
        (
            format!("{ok}# TYPE b gauge\na_total{{x=\"3\"}} 1\n"),
            "outside its family",
        ),
        (
            "# TYPE a_total counter\na_total{x=\"1\",x=\"2\"} 1\n".to_string(),
            "a label named twice",
        ),
        (
            "# TYPE a counter\na_total 1\n# EOF\nb 1\n".to_string(),
            "after # EOF",
        ),
    ] {
        let p = strict_problems(&bad);
        assert!(
            p.iter().any(|x| x.contains(what)),
            "{what}: {p:?} for\n{bad}"
        );
    }
}
