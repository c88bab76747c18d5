//! The binary on cgroup v1 and v2 trees recorded on real hosts (shared/fixtures), with --path.sysfs
//! pointing at the tree. The readers themselves are unit-tested in src/cgroup/tests.rs. Expected values
//! are read from the fixture files in the test.

mod common;

use common::{
    Exporter, V1_ID, collector_success, extract_procfs, file_num, fixtures_dir, keyed,
    many_cgroups, parse_exposition, promtool_problems, sysfs_for, v1_tree, v2_container_tree,
    value,
};

#[test]
fn binary_on_the_v1_and_v2_trees() {
    // v1: the recorded Docker container, through --path.sysfs.
    let sys = sysfs_for(&v1_tree());
    let e = Exporter::start(&[
        &format!("--path.sysfs={}", sys.path().display()),
        "--collector.disable-defaults",
        "--collector.cgroup",
    ]);
    let body = e.metrics();
    assert_eq!(promtool_problems(&body), Vec::<String>::new());
    let s = parse_exposition(&body);
    let id = format!("/docker/{V1_ID}");
    let d = v1_tree().join("cpuacct/docker").join(V1_ID);
    assert_eq!(
        value(
            &s,
            "container_cpu_usage_seconds_total",
            &[("id", &id), ("cpu", "total")]
        ),
        Some(file_num(&d.join("cpuacct.usage")) / 1e9)
    );
    let m = v1_tree().join("memory/docker").join(V1_ID);
    // v1's hierarchy figures for the newer memory families: writeback is recorded, dirty is not (this
    // kernel's memory.stat had no such line), so it is left out rather than written as 0.
    assert_eq!(
        value(&s, "container_memory_file_writeback_bytes", &[("id", &id)]),
        keyed(&m.join("memory.stat"), "total_writeback")
    );
    assert!(value(&s, "container_memory_file_dirty_bytes", &[("id", &id)]).is_none());
    assert!(value(&s, "container_memory_pgscan_total", &[("id", &id)]).is_none());
    assert_eq!(
        value(&s, "container_memory_usage_bytes", &[("id", &id)]),
        Some(file_num(&m.join("memory.usage_in_bytes")))
    );
    assert_eq!(
        value(&s, "container_memory_failcnt", &[("id", &id)]),
        Some(file_num(&m.join("memory.failcnt")))
    );
    assert!(
        value(
            &s,
            "container_cpu_cfs_throttled_periods_total",
            &[("id", &id)]
        )
        .is_none()
    );
    assert_eq!(collector_success(&s, "cgroup"), Some(1.0));
    assert_eq!(value(&s, "container_scrape_error", &[]), Some(0.0));
    drop(e);

    // No cgroup tree where --path.sysfs points: the container figures fail, cAdvisor's flag says so.
    let empty = tempfile::tempdir().unwrap();
    let failing = Exporter::start(&[
        &format!("--path.sysfs={}", empty.path().display()),
        "--collector.disable-defaults",
        "--collector.cgroup",
    ]);
    let s = parse_exposition(&failing.metrics());
    assert_eq!(collector_success(&s, "cgroup"), Some(0.0));
    assert_eq!(value(&s, "container_scrape_error", &[]), Some(1.0));
    drop(failing);

    // v2: the container and pod assembled from real v2 files.
    let (dir, pod, container) = v2_container_tree();
    let e = Exporter::start(&[
        &format!("--path.sysfs={}", dir.path().display()),
        "--collector.disable-defaults",
        "--collector.cgroup",
    ]);
    let body = e.metrics();
    assert_eq!(promtool_problems(&body), Vec::<String>::new());
    let s = parse_exposition(&body);
    let src = fixtures_dir().join("telegraf/cgroup/v2");
    for id in [&pod, &container] {
        assert_eq!(
            value(
                &s,
                "container_cpu_usage_seconds_total",
                &[("id", id), ("cpu", "total")]
            ),
            keyed(&src.join("cpu.stat"), "usage_usec").map(|v| v / 1e6)
        );
        assert_eq!(
            value(
                &s,
                "container_cpu_cfs_throttled_periods_total",
                &[("id", id)]
            ),
            keyed(&src.join("cpu.stat"), "nr_throttled")
        );
        assert_eq!(
            value(&s, "container_spec_memory_limit_bytes", &[("id", id)]),
            Some(file_num(&src.join("memory.max")))
        );
        let pressure = std::fs::read_to_string(src.join("cpu.pressure")).unwrap();
        let some: f64 = pressure
            .lines()
            .next()
            .unwrap()
            .rsplit("total=")
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            value(
                &s,
                "container_pressure_cpu_waiting_seconds_total",
                &[("id", id)]
            ),
            Some(some / 1e6)
        );
        // failcnt does not exist on v2: omitted.
        assert!(value(&s, "container_memory_failcnt", &[("id", id)]).is_none());
        // The newer families, each against its line in the recorded files.
        let stat = src.join("memory.stat");
        for (family, file, key, scale) in [
            (
                "container_cpu_cfs_burst_periods_total",
                "cpu.stat",
                "nr_bursts",
                1.0,
            ),
            (
                "container_cpu_cfs_burst_seconds_total",
                "cpu.stat",
                "burst_usec",
                1e-6,
            ),
            (
                "container_memory_events_high_total",
                "memory.events",
                "high",
                1.0,
            ),
            (
                "container_memory_events_max_total",
                "memory.events",
                "max",
                1.0,
            ),
            (
                "container_memory_file_dirty_bytes",
                "memory.stat",
                "file_dirty",
                1.0,
            ),
            (
                "container_memory_file_writeback_bytes",
                "memory.stat",
                "file_writeback",
                1.0,
            ),
            (
                "container_memory_pgscan_total",
                "memory.stat",
                "pgscan",
                1.0,
            ),
            (
                "container_memory_pgsteal_total",
                "memory.stat",
                "pgsteal",
                1.0,
            ),
            (
                "container_memory_workingset_refault_file_total",
                "memory.stat",
                "workingset_refault_file",
                1.0,
            ),
            (
                "container_memory_workingset_refault_anon_total",
                "memory.stat",
                "workingset_refault_anon",
                1.0,
            ),
        ] {
            let want = keyed(&src.join(file), key).map(|v| v * scale);
            assert!(want.is_some(), "{key} in {file}");
            assert_eq!(value(&s, family, &[("id", id)]), want, "{family}");
        }
        assert!(keyed(&stat, "file_dirty").unwrap() > 0.0);
    }
}

/// Swap that is not accounted (no `swap` in memory.stat) is 0 where the machine has no swap at all, as
/// kubernetes-mixin's swap rule needs; where the machine has swap, it is left out.
#[test]
fn unaccounted_swap_is_zero_only_without_any_swap() {
    let sys = many_cgroups(1);
    let id = format!("/docker/{:064x}", 0);
    let stat = sys.path().join(format!("fs/cgroup/memory{id}/memory.stat"));
    let text = std::fs::read_to_string(&stat).unwrap();
    let without: String = text
        .lines()
        .filter(|l| !l.starts_with("swap ") && !l.starts_with("total_swap "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&stat, without).unwrap();
    for (swap_total_kb, want) in [(0u64, Some(0.0)), (1 << 20, None)] {
        let dir = tempfile::tempdir().unwrap();
        extract_procfs(dir.path());
        let proc = dir.path().join("fixtures/proc");
        let meminfo = std::fs::read_to_string(proc.join("meminfo")).unwrap();
        let line = meminfo
            .lines()
            .find(|l| l.starts_with("SwapTotal:"))
            .unwrap();
        let meminfo = meminfo.replace(line, &format!("SwapTotal: {swap_total_kb} kB"));
        std::fs::write(proc.join("meminfo"), meminfo).unwrap();
        let e = Exporter::start(&[
            &format!("--path.sysfs={}", sys.path().display()),
            &format!("--path.procfs={}", proc.display()),
            "--docker.host=unix:///nonexistent.sock",
        ]);
        let s = parse_exposition(&e.metrics());
        assert!(value(&s, "container_memory_usage_bytes", &[("id", &id)]).is_some());
        assert_eq!(
            value(&s, "container_memory_swap", &[("id", &id)]),
            want,
            "SwapTotal {swap_total_kb} kB"
        );
    }
}
