//! The cgroup readers on real trees recorded on real hosts (shared/fixtures) and on hostile files.
//! Expected values are read from the fixture files in the test.

use super::*;
use crate::sample::container::stat_index;
use crate::testutil::*;

#[test]
fn v1_docker_tree_is_read_as_recorded() {
    let root = v1_tree();
    let layout = Layout::detect(&root).unwrap();
    assert_eq!(layout.name(), "v1");
    let found = crate::cgroup::discover(&layout, false, &Default::default()).unwrap();
    let path = format!("/docker/{V1_ID}");
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].kind, Kind::Root);
    assert_eq!(found[1].path, path);
    assert!(matches!(&found[1].kind, Kind::Container { id, .. } if id == V1_ID));

    let mut buf = Vec::new();
    let s = layout.read(&path, false, &mut buf);
    let d = |c: &str, f: &str| root.join(c).join("docker").join(V1_ID).join(f);
    let cpu = s.cpu.as_ref().unwrap();
    assert_eq!(
        cpu.usage_seconds,
        Some(file_num(&d("cpuacct", "cpuacct.usage")) / 1e9)
    );
    assert_eq!(
        cpu.user_seconds,
        Some(keyed(&d("cpuacct", "cpuacct.stat"), "user").unwrap() / user_hz())
    );
    assert_eq!(
        cpu.system_seconds,
        Some(keyed(&d("cpuacct", "cpuacct.stat"), "system").unwrap() / user_hz())
    );
    // The recorded quota is -1 (none): throttling figures are omitted although cpu.stat has them.
    assert_eq!(file_num(&d("cpu", "cpu.cfs_quota_us")), -1.0);
    assert_eq!(
        (cpu.periods, cpu.throttled_periods, cpu.throttled_seconds),
        (None, None, None)
    );
    assert_eq!(s.spec.cpu_quota, None);
    assert_eq!(
        s.spec.cpu_period,
        Some(file_num(&d("cpu", "cpu.cfs_period_us")))
    );
    assert_eq!(s.spec.cpu_shares, Some(file_num(&d("cpu", "cpu.shares"))));

    let m = s.memory.as_ref().unwrap();
    let stat = d("memory", "memory.stat");
    let usage = file_num(&d("memory", "memory.usage_in_bytes"));
    assert_eq!(m.usage, Some(usage));
    assert_eq!(
        m.working_set,
        Some((usage - keyed(&stat, "total_inactive_file").unwrap()).max(0.0))
    );
    assert_eq!(m.stat(stat_index("anon")), keyed(&stat, "total_rss"));
    assert_eq!(m.stat(stat_index("file")), keyed(&stat, "total_cache"));
    assert_eq!(
        m.stat(stat_index("file_mapped")),
        keyed(&stat, "total_mapped_file")
    );
    assert_eq!(m.swap, keyed(&stat, "total_swap"));
    assert_eq!(
        m.max_usage,
        Some(file_num(&d("memory", "memory.max_usage_in_bytes")))
    );
    assert_eq!(m.failcnt, Some(file_num(&d("memory", "memory.failcnt"))));
    // Active and inactive file: the hierarchy's figures (total_*), as cAdvisor's total_*_file_bytes.
    assert_eq!(
        m.stat(stat_index("active_file")),
        keyed(&stat, "total_active_file")
    );
    assert_eq!(
        m.stat(stat_index("inactive_file")),
        keyed(&stat, "total_inactive_file")
    );
    // Kernel memory: v1 accounts it in its own file, as cAdvisor reads it.

    assert_eq!(
        m.stat(stat_index("kernel")),
        Some(file_num(&d("memory", "memory.kmem.usage_in_bytes")))
    );
    assert_eq!(
        (m.local_faults[0], m.stat(stat_index("pgfault"))),
        (keyed(&stat, "pgfault"), keyed(&stat, "total_pgfault"))
    );
    // This kernel's memory.oom_control has no oom_kill line: omitted, not 0.
    assert_eq!(keyed(&d("memory", "memory.oom_control"), "oom_kill"), None);
    assert_eq!(m.oom_kills, None);
    // The unlimited sentinel (9223372036854771712) reads as 0, as cAdvisor reports it.
    assert!(file_num(&d("memory", "memory.limit_in_bytes")) > 4.6e18);
    assert_eq!(s.spec.memory_limit, Some(0.0));
}

/// blkio: one entry per device with the Read/Write lines of each file; the Total lines are skipped.
#[test]
fn v1_docker_tree_blkio_is_read_as_recorded() {
    let root = v1_tree();
    let layout = Layout::detect(&root).unwrap();
    let s = layout.read(&format!("/docker/{V1_ID}"), false, &mut Vec::new());
    let d = |c: &str, f: &str| root.join(c).join("docker").join(V1_ID).join(f);
    let bytes = std::fs::read_to_string(d("blkio", "blkio.throttle.io_service_bytes")).unwrap();
    let ops = std::fs::read_to_string(d("blkio", "blkio.throttle.io_serviced")).unwrap();
    let pick = |text: &str, dev: &str, op: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(&format!("{dev} {op} "))
                .map(|v| v.trim().parse::<f64>().unwrap())
        })
    };
    let devices: Vec<String> = bytes
        .lines()
        .filter_map(|l| l.split_once(' ').map(|x| x.0.to_string()))
        .filter(|d| d.contains(':'))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(s.blkio.len(), devices.len());
    for b in &s.blkio {
        let dev = format!("{}:{}", b.major, b.minor);
        assert_eq!(b.read_bytes, pick(&bytes, &dev, "Read"), "{dev}");
        assert_eq!(b.write_bytes, pick(&bytes, &dev, "Write"), "{dev}");
        assert_eq!(b.reads, pick(&ops, &dev, "Read"), "{dev}");
        assert_eq!(b.writes, pick(&ops, &dev, "Write"), "{dev}");
    }
}

#[test]
fn v2_tree_is_detected_and_read_as_recorded() {
    let root = v2_tree();
    let layout = Layout::detect(&root).unwrap();
    assert_eq!(layout.name(), "v2");
    let scope = "/user.slice/user-1000.slice/session-520.scope";
    // A session scope is a system cgroup: reported only behind --collector.cgroup.include-system.
    assert_eq!(
        crate::cgroup::discover(&layout, false, &Default::default())
            .unwrap()
            .len(),
        1
    );
    let all = crate::cgroup::discover(&layout, true, &Default::default()).unwrap();
    assert!(
        all.iter()
            .any(|f| f.path == scope && f.kind == Kind::System)
    );

    let mut buf = Vec::new();
    let s = layout.read(scope, false, &mut buf);
    let d = root.join(scope.trim_start_matches('/'));
    let cpu = s.cpu.as_ref().unwrap();
    assert_eq!(
        cpu.usage_seconds,
        Some(keyed(&d.join("cpu.stat"), "usage_usec").unwrap() / 1e6)
    );
    assert_eq!(
        cpu.user_seconds,
        Some(keyed(&d.join("cpu.stat"), "user_usec").unwrap() / 1e6)
    );
    assert_eq!(
        cpu.system_seconds,
        Some(keyed(&d.join("cpu.stat"), "system_usec").unwrap() / 1e6)
    );
    // cpu.max is "max 100000": no quota, so no throttling figures; the period is kept.
    assert!(
        std::fs::read_to_string(d.join("cpu.max"))
            .unwrap()
            .starts_with("max ")
    );
    assert_eq!(s.spec.cpu_quota, None);
    assert_eq!(cpu.throttled_periods, None);
    assert_eq!(
        s.spec.cpu_period,
        std::fs::read_to_string(d.join("cpu.max"))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .map(|p| p.parse().unwrap())
    );
    let weight = file_num(&d.join("cpu.weight"));
    assert_eq!(
        s.spec.cpu_shares,
        Some((2.0 + (weight - 1.0) * 262142.0 / 9999.0).round())
    );

    let m = s.memory.as_ref().unwrap();
    let stat = d.join("memory.stat");
    let usage = file_num(&d.join("memory.current"));
    assert_eq!(m.usage, Some(usage));
    assert_eq!(
        m.working_set,
        Some((usage - keyed(&stat, "inactive_file").unwrap()).max(0.0))
    );
    assert_eq!(m.stat(stat_index("anon")), keyed(&stat, "anon"));
    assert_eq!(m.stat(stat_index("file")), keyed(&stat, "file"));
    assert_eq!(
        m.stat(stat_index("file_mapped")),
        keyed(&stat, "file_mapped")
    );
    assert_eq!(m.swap, Some(file_num(&d.join("memory.swap.current"))));
    assert_eq!(m.max_usage, Some(file_num(&d.join("memory.peak"))));
    assert_eq!(m.failcnt, None, "v2 has no failcnt: omitted");
    assert_eq!(m.oom_kills, keyed(&d.join("memory.events"), "oom_kill"));
    assert_eq!(
        m.stat(stat_index("active_file")),
        keyed(&stat, "active_file")
    );
    assert_eq!(
        m.stat(stat_index("inactive_file")),
        keyed(&stat, "inactive_file")
    );
    // Kernel memory: memory.stat's `kernel` (Linux 5.18+).

    assert!(keyed(&stat, "kernel").is_some());
    assert_eq!(m.stat(stat_index("kernel")), keyed(&stat, "kernel"));
    let majfault = keyed(&stat, "pgmajfault");
    assert_eq!(
        (m.local_faults[1], m.stat(stat_index("pgmajfault"))),
        (majfault, majfault)
    );
    // memory.max and memory.swap.max hold "max": 0, as cAdvisor reports unlimited.
    assert_eq!(s.spec.memory_limit, Some(0.0));
    assert_eq!(s.spec.memory_swap_limit, Some(0.0));
    // pids.max is "max": 0 (cAdvisor's "no limit").
    assert_eq!(
        s.pids.as_ref().unwrap().current,
        Some(file_num(&d.join("pids.current")))
    );
    assert_eq!(s.pids.as_ref().unwrap().max, Some(0.0));
    // PSI, in seconds.
    let p = s.pressure.as_ref().unwrap();
    let total = |f: &str, kind: &str| {
        std::fs::read_to_string(d.join(f))
            .unwrap()
            .lines()
            .find(|l| l.starts_with(kind))
            .map(|l| l.rsplit("total=").next().unwrap().parse::<f64>().unwrap() / 1e6)
    };
    assert_eq!(p.io.some, total("io.pressure", "some"));
    assert_eq!(p.io.full, total("io.pressure", "full"));
    assert_eq!(p.cpu.some, total("cpu.pressure", "some"));
    assert_eq!(p.memory.full, total("memory.pressure", "full"));
}

/// A v2 container cgroup assembled from telegraf's real v2 files (a busy host with a CPU quota and
/// throttling, a numeric memory limit) under Docker's systemd-driver name, and a kubepods pod around it.

#[test]
fn v2_quota_throttling_and_kubepods_from_telegraf_files() {
    let (dir, pod, container) = v2_container_tree();
    let layout = Layout::detect(&dir.path().join("fs/cgroup")).unwrap();
    let found = crate::cgroup::discover(&layout, false, &Default::default()).unwrap();
    let kinds: Vec<(&str, &Kind)> = found.iter().map(|f| (f.path.as_str(), &f.kind)).collect();
    assert!(kinds.iter().any(|(p, k)| *p == pod
        && matches!(
            k,
            Kind::Pod {
                qos: "burstable",
                ..
            }
        )));
    assert!(kinds.iter().any(|(p, k)| *p == container
        && matches!(
            k,
            Kind::Container {
                runtime: crate::cgroup::classify::Runtime::Containerd,
                pod_uid: Some(_),
                ..
            }
        )));

    let src = fixtures_dir().join("telegraf/cgroup/v2");
    let mut buf = Vec::new();
    let s = layout.read(&container, false, &mut buf);
    let max = std::fs::read_to_string(src.join("cpu.max")).unwrap();
    let mut f = max.split_whitespace().map(|x| x.parse::<f64>().unwrap());
    assert_eq!((s.spec.cpu_quota, s.spec.cpu_period), (f.next(), f.next()));
    let cpu = s.cpu.as_ref().unwrap();
    assert_eq!(cpu.periods, keyed(&src.join("cpu.stat"), "nr_periods"));
    assert_eq!(
        cpu.throttled_periods,
        keyed(&src.join("cpu.stat"), "nr_throttled")
    );
    assert_eq!(
        cpu.throttled_seconds,
        keyed(&src.join("cpu.stat"), "throttled_usec").map(|v| v / 1e6)
    );
    assert_eq!(s.spec.memory_limit, Some(file_num(&src.join("memory.max"))));
    assert_eq!(
        s.pids.as_ref().unwrap().max,
        Some(file_num(&src.join("pids.max")))
    );
    let io = std::fs::read_to_string(src.join("io.stat")).unwrap();
    assert_eq!(s.blkio.len(), 1);
    let b = &s.blkio[0];
    let field = |k: &str| {
        io.split_whitespace()
            .find_map(|t| t.strip_prefix(&format!("{k}=")))
            .map(|v| v.parse::<f64>().unwrap())
    };
    assert_eq!(
        (b.read_bytes, b.write_bytes, b.reads, b.writes),
        (
            field("rbytes"),
            field("wbytes"),
            field("rios"),
            field("wios")
        )
    );
    assert_eq!(
        format!("{}:{}", b.major, b.minor),
        io.split_whitespace().next().unwrap()
    );
}

#[test]
fn io_stat_kernel_quirks() {
    // Several ids without stats run together before the stats: the stats are the last id's.
    let text =
        std::fs::read_to_string(fixtures_dir().join("elastic-cgroup/io_statfiles/ubuntu/io.stat"))
            .unwrap();
    let devs = crate::cgroup::v2::parse_io_stat(&text);
    for line in text.lines() {
        let toks: Vec<&str> = line.split_whitespace().collect();
        let Some(last_id) = toks
            .iter()
            .rev()
            .find(|t| t.contains(':') && !t.contains('='))
        else {
            continue;
        };
        if !toks.iter().any(|t| t.starts_with("rbytes=")) {
            continue;
        }
        let rbytes: f64 = toks
            .iter()
            .find_map(|t| t.strip_prefix("rbytes="))
            .unwrap()
            .parse()
            .unwrap();
        let d = devs
            .iter()
            .find(|d| format!("{}:{}", d.major, d.minor) == *last_id)
            .unwrap();
        assert_eq!(d.read_bytes, Some(rbytes), "{line}");
    }
    // A trailing line of ids only gives no device.
    let text =
        std::fs::read_to_string(fixtures_dir().join("elastic-cgroup/io_statfiles/ubuntu2/io.stat"))
            .unwrap();
    let with_stats = text.lines().filter(|l| l.contains("rbytes=")).count();
    assert_eq!(crate::cgroup::v2::parse_io_stat(&text).len(), with_stats);
    // telegraf's v1 io_serviced for many devices.
    let text = std::fs::read_to_string(
        fixtures_dir().join("telegraf/cgroup/blkio/blkio.throttle.io_serviced"),
    )
    .unwrap();
    let parsed = crate::cgroup::v1::parse_blkio(&text);
    for (maj, min, r, w) in &parsed {
        let dev = format!("{maj}:{min}");
        let get = |op: &str| {
            text.lines().find_map(|l| {
                l.strip_prefix(&format!("{dev} {op} "))
                    .map(|v| v.trim().parse::<f64>().unwrap())
            })
        };
        assert_eq!((*r, *w), (get("Read"), get("Write")), "{dev}");
    }
    assert!(!parsed.is_empty());
}

#[test]
fn hostile_cgroup_files_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("fs/cgroup");
    let c = root.join(format!("system.slice/docker-{V1_ID}.scope"));
    std::fs::create_dir_all(&c).unwrap();
    std::fs::write(root.join("cgroup.controllers"), "cpu memory io pids\n").unwrap();
    std::fs::write(c.join("cgroup.controllers"), "cpu memory io pids\n").unwrap();
    std::fs::write(
        c.join("cpu.stat"),
        "usage_usec\nuser_usec abc\nsystem_usec 18446744073709551616\n",
    )
    .unwrap();
    std::fs::write(c.join("cpu.max"), "").unwrap();
    std::fs::write(c.join("memory.current"), "12345\n").unwrap();
    std::fs::write(
        c.join("memory.stat"),
        "anon\nfile 10 20 30\ninactive_file 99999999\n",
    )
    .unwrap();
    std::fs::write(c.join("memory.max"), "lots\n").unwrap();
    std::fs::write(
        c.join("io.stat"),
        "8:0 rbytes=x wbytes=5\n:: rbytes=1\n8:\n",
    )
    .unwrap();
    std::fs::write(c.join("pids.current"), "\n").unwrap();
    std::fs::write(c.join("cpu.pressure"), "some\nfull avg10=1\n").unwrap();
    let layout = Layout::detect(&root).unwrap();
    let mut buf = Vec::new();
    let s = layout.read(
        &format!("/system.slice/docker-{V1_ID}.scope"),
        false,
        &mut buf,
    );
    let cpu = s.cpu.unwrap();
    assert_eq!(cpu.usage_seconds, None);
    assert_eq!(cpu.user_seconds, None);
    assert_eq!(cpu.system_seconds, Some(18446744073709551616.0 / 1e6));
    let m = s.memory.unwrap();
    assert_eq!(m.usage, Some(12345.0));
    // inactive_file above usage: the working set floors at 0.
    assert_eq!(m.working_set, Some(0.0));
    assert_eq!(m.stat(stat_index("anon")), None);
    assert_eq!(s.spec.memory_limit, None);
    assert_eq!(s.blkio.len(), 1);
    assert_eq!(s.blkio[0].read_bytes, None);
    assert_eq!(s.blkio[0].write_bytes, Some(5.0));
    assert!(s.pids.is_none());
    assert!(s.pressure.is_none());
    // An empty or missing tree is a clear error.
    let empty = tempfile::tempdir().unwrap();
    let e = Layout::detect(empty.path()).unwrap_err();
    assert!(e.contains("--path.sysfs"), "{e}");
    let e = Layout::detect(&empty.path().join("missing")).unwrap_err();
    assert!(e.contains("--path.sysfs"), "{e}");
}

#[test]
fn v1_combined_controller_folders() {
    // Many distributions mount cpu and cpuacct together as `cpu,cpuacct`, with `cpu` and `cpuacct` links.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("fs/cgroup");
    let combined = root.join("cpu,cpuacct");
    let cg = combined.join("docker").join(V1_ID);
    std::fs::create_dir_all(&cg).unwrap();
    for c in ["cpu", "cpuacct"] {
        for f in std::fs::read_dir(v1_tree().join(c).join("docker").join(V1_ID))
            .unwrap()
            .flatten()
        {
            std::fs::copy(f.path(), cg.join(f.file_name())).unwrap();
        }
        std::os::unix::fs::symlink("cpu,cpuacct", root.join(c)).unwrap();
    }
    let mem = root.join("memory/docker").join(V1_ID);
    std::fs::create_dir_all(&mem).unwrap();
    for f in std::fs::read_dir(v1_tree().join("memory/docker").join(V1_ID))
        .unwrap()
        .flatten()
    {
        std::fs::copy(f.path(), mem.join(f.file_name())).unwrap();
    }
    let layout = Layout::detect(&root).unwrap();
    match &layout {
        Layout::V1 { controllers, .. } => {
            assert_eq!(controllers["cpu"], combined);
            assert_eq!(controllers["cpuacct"], combined);
            assert_eq!(controllers["memory"], root.join("memory"));
        }
        other => panic!("{other:?}"),
    }
    let mut buf = Vec::new();
    let s = layout.read(&format!("/docker/{V1_ID}"), false, &mut buf);
    assert_eq!(
        s.cpu.unwrap().usage_seconds,
        Some(file_num(&cg.join("cpuacct.usage")) / 1e9)
    );
    assert_eq!(s.spec.cpu_shares, Some(file_num(&cg.join("cpu.shares"))));
    assert_eq!(
        s.memory.unwrap().usage,
        Some(file_num(&mem.join("memory.usage_in_bytes")))
    );
}
