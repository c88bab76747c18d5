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
        assert!(rss < 64.0, "RSS {rss} MiB after reading /dev/zero as memory.stat");
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
    assert!(rss < 64.0, "RSS {rss} MiB after reading /dev/zero as meminfo");
    let log = e.drain_log();
    assert!(
        log.iter()
            .any(|l| l.contains("collector failed") && l.contains("larger than 16 MiB")),
        "{log:#?}"
    );
}
