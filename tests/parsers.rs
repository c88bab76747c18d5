//! Every node parser on the real /proc samples in shared/fixtures/procfs/fixtures.ttar, and on hostile
//! variants of them: truncated lines, unexpected fields, huge numbers, empty files. Expected values are
//! read from the fixture text in the test, never typed in.

mod common;

use common::{clk_tck, procfs_member};
use stevedore::collector::{
    cpu, diskstats, filesystem, loadavg, machine, meminfo, netdev, pressure, stat,
};

/// The whitespace-separated fields of the first fixture line that starts with `prefix`.
fn fields_of<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?}"))
        .split_whitespace()
        .collect()
}

fn f(s: &str) -> f64 {
    s.parse().unwrap()
}

#[test]
fn cpu_per_mode_seconds_from_fixture() {
    let text = procfs_member("fixtures/proc/stat");
    let hz = clk_tck();
    let s = cpu::parse(&text, hz).unwrap();
    let cpu_lines = text
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    assert_eq!(s.cpus.len(), cpu_lines);
    for c in &s.cpus {
        let raw = fields_of(&text, &format!("cpu{} ", c.cpu));
        for (i, mode) in cpu::MODES.iter().enumerate() {
            assert_eq!(
                c.seconds[i],
                Some(f(raw[i + 1]) / hz),
                "cpu{} {mode}",
                c.cpu
            );
        }
    }
}

#[test]
fn cpu_hostile() {
    let text = procfs_member("fixtures/proc/stat");
    // Older kernels print only 4 to 8 fields: the missing modes are absent, not zero.
    let short = text.replace(
        "cpu0 44490 19 21045 1087069 220 1 3410 0 0 0",
        "cpu0 44490 19 21045 1087069",
    );
    let s = cpu::parse(&short, 100.0).unwrap();
    assert_eq!(s.cpus[0].seconds[4], None);
    assert_eq!(s.cpus[0].seconds[3], Some(10870.69));
    // Truncated line, garbage value, empty file: errors that say what is wrong, never a panic.
    let truncated: String = text
        .lines()
        .map(|l| {
            if l.starts_with("cpu1 ") {
                "cpu1 47869\n".to_string()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let err = cpu::parse(&truncated, 100.0).unwrap_err();
    assert!(err.contains("cpu1"), "{err}");
    assert!(
        cpu::parse(&text.replace("cpu2 46504", "cpu2 46x04"), 100.0)
            .unwrap_err()
            .contains("46x04")
    );
    assert!(cpu::parse("", 100.0).is_err());
    // Unexpected trailing fields are ignored; huge counters are kept.
    let extra = text.replace(
        "cpu3 47054 102 15683 1113230 533 0 60 0 0 0",
        "cpu3 18446744073709551616 102 15683 1113230 533 0 60 0 0 0 7 7",
    );
    let s = cpu::parse(&extra, 100.0).unwrap();
    assert_eq!(s.cpus[3].seconds[0], Some(18446744073709551616.0 / 100.0));
}

#[test]
fn stat_from_fixture() {
    let text = procfs_member("fixtures/proc/stat");
    let s = stat::parse(&text).unwrap();
    assert_eq!(s.intr, Some(f(fields_of(&text, "intr ")[1])));
    assert_eq!(s.ctxt, Some(f(fields_of(&text, "ctxt ")[1])));
    assert_eq!(s.btime, Some(f(fields_of(&text, "btime ")[1])));
    assert_eq!(s.forks, Some(f(fields_of(&text, "processes ")[1])));
    assert_eq!(
        s.procs_running,
        Some(f(fields_of(&text, "procs_running ")[1]))
    );
    assert_eq!(
        s.procs_blocked,
        Some(f(fields_of(&text, "procs_blocked ")[1]))
    );
    assert!(stat::parse("").is_err());
    assert!(stat::parse("ctxt twelve\n").unwrap_err().contains("ctxt"));
    // A file without procs_* lines (old kernel) gives the rest.
    let old: String = text
        .lines()
        .filter(|l| !l.starts_with("procs_"))
        .map(|l| format!("{l}\n"))
        .collect();
    let s = stat::parse(&old).unwrap();
    assert_eq!(s.procs_running, None);
    assert!(s.ctxt.is_some());
}

#[test]
fn meminfo_from_fixture() {
    let text = procfs_member("fixtures/proc/meminfo");
    let s = meminfo::parse(&text).unwrap();
    assert_eq!(s.fields.len(), text.lines().count());
    assert_eq!(
        s.get("MemTotal_bytes"),
        Some(f(fields_of(&text, "MemTotal:")[1]) * 1024.0)
    );
    assert_eq!(
        s.get("Active_anon_bytes"),
        Some(f(fields_of(&text, "Active(anon):")[1]) * 1024.0)
    );
    assert_eq!(
        s.get("HugePages_Total"),
        Some(f(fields_of(&text, "HugePages_Total:")[1]))
    );
    assert_eq!(
        s.get("VmallocTotal_bytes"),
        Some(f(fields_of(&text, "VmallocTotal:")[1]) * 1024.0)
    );
}

#[test]
fn meminfo_hostile() {
    assert!(meminfo::parse("").is_err());
    assert!(
        meminfo::parse("MemTotal:\n")
            .unwrap_err()
            .contains("MemTotal")
    );
    assert!(meminfo::parse("MemTotal 1 kB\n").is_err());
    assert!(
        meminfo::parse("MemTotal: 1 MB\n")
            .unwrap_err()
            .contains("unit")
    );
    // Strange key characters can never make an invalid metric name.
    let s = meminfo::parse("Weird key{x}: 5 kB\n").unwrap();
    assert_eq!(s.fields[0].0, "Weird_key_x__bytes");
    let s = meminfo::parse("Huge: 99999999999999999999 kB\n").unwrap();
    assert_eq!(s.fields[0].1, 99999999999999999999.0 * 1024.0);
}

#[test]
fn loadavg_from_fixture() {
    let text = procfs_member("fixtures/proc/loadavg");
    let l = loadavg::parse(&text).unwrap();
    let raw: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(
        (l.load1, l.load5, l.load15),
        (f(raw[0]), f(raw[1]), f(raw[2]))
    );
    assert!(loadavg::parse("").is_err());
    assert!(loadavg::parse("0.1 0.2").unwrap_err().contains("load15"));
    assert!(loadavg::parse("0.1 nan 0.3 1/2 3").is_err());
}

#[test]
fn netdev_from_fixture() {
    let text = procfs_member("fixtures/proc/net/dev");
    let devs = netdev::parse(&text).unwrap();
    assert_eq!(devs.len(), text.lines().count() - 2);
    for d in &devs {
        let line = text
            .lines()
            .find(|l| l.split(':').next().unwrap().trim() == d.device)
            .unwrap();
        let raw: Vec<f64> = line
            .split_once(':')
            .unwrap()
            .1
            .split_whitespace()
            .map(f)
            .collect();
        assert_eq!(d.values.to_vec(), raw, "{}", d.device);
    }
}

#[test]
fn netdev_hostile() {
    let text = procfs_member("fixtures/proc/net/dev");
    // The kernel prints no space after the colon once the first counter is wide.
    let glued = text.replace("  eth0: 874354587", "  eth0:874354587");
    let devs = netdev::parse(&glued).unwrap();
    assert_eq!(
        devs.iter().find(|d| d.device == "eth0").unwrap().values[0],
        874354587.0
    );
    let truncated = text.replace(
        "docker0:    2568      38    0    0    0     0          0         0      438",
        "docker0: 2568 38",
    );
    assert!(netdev::parse(&truncated).unwrap_err().contains("docker0"));
    let garbage = text.replace("vethf345468:     648", "vethf345468:     6x8");
    assert!(netdev::parse(&garbage).is_err());
    assert!(netdev::parse("").unwrap().is_empty());
}

#[test]
fn diskstats_from_fixture() {
    let text = procfs_member("fixtures/proc/diskstats");
    let disks = diskstats::parse(&text).unwrap();
    // The fixture has one device name twice (sdb/sdc lines reuse major 8): each device is reported once.
    let mut names: Vec<&str> = text
        .lines()
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    names.dedup();
    assert!(disks.len() <= names.len());
    for d in &disks {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().nth(2) == Some(&d.device))
            .unwrap();
        let raw: Vec<f64> = line.split_whitespace().skip(3).take(17).map(f).collect();
        assert_eq!(d.fields, raw, "{}", d.device);
    }
    // 11-, 15- and 17-field kernels are all in the fixture.
    let lens: std::collections::BTreeSet<usize> = disks.iter().map(|d| d.fields.len()).collect();
    assert_eq!(lens, [11usize, 15, 17].into_iter().collect());
}

#[test]
fn diskstats_hostile() {
    assert!(
        diskstats::parse("   8       0 sda 1 2 3")
            .unwrap_err()
            .contains("sda")
    );
    assert!(diskstats::parse("   8       0").is_err());
    assert!(diskstats::parse("   x       0 sda 1 2 3 4 5 6 7 8 9 10 11").is_err());
    let extra = "   8       0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20";
    assert_eq!(diskstats::parse(extra).unwrap()[0].fields.len(), 17);
    assert!(diskstats::parse("").unwrap().is_empty());
}

#[test]
fn pressure_from_fixture() {
    for res in ["cpu", "io", "memory"] {
        let text = procfs_member(&format!("fixtures/proc/pressure/{res}"));
        let p = pressure::parse(&text).unwrap();
        let total = |kind: &str| {
            text.lines()
                .find(|l| l.starts_with(kind))
                .map(|l| f(l.rsplit("total=").next().unwrap()) / 1e6)
        };
        assert_eq!(p.some, total("some"), "{res}");
        assert_eq!(p.full, total("full"), "{res}");
    }
}

#[test]
fn pressure_hostile() {
    assert!(pressure::parse("some").is_err());
    assert!(pressure::parse("some avg10=0.00").is_err());
    assert!(pressure::parse("").is_err());
    assert!(pressure::parse("some total=abc").is_err());
    assert!(pressure::parse("other avg10=1 total=5").is_err());
}

#[test]
fn mountinfo_from_fixture() {
    let text = procfs_member("fixtures/proc/26231/mountinfo");
    let mounts = filesystem::parse_mountinfo(&text).unwrap();
    assert_eq!(mounts.len(), text.lines().count());
    for (m, line) in mounts.iter().zip(text.lines()) {
        let f: Vec<&str> = line.split(' ').collect();
        let sep = f.iter().position(|x| *x == "-").unwrap();
        assert_eq!(m.mountpoint, f[4]);
        assert_eq!(m.fstype, f[sep + 1]);
        assert_eq!(m.device, f[sep + 2]);
        assert_eq!(m.read_only, f[5].split(',').any(|o| o == "ro"));
    }
}

#[test]
fn mountinfo_hostile() {
    assert!(
        filesystem::parse_mountinfo("21 0 8:1 / / rw,relatime shared:1 ext4 /dev/sda1 rw").is_err()
    );
    assert!(filesystem::parse_mountinfo("21 0 8:1 / - ext4").is_err());
    let m = filesystem::parse_mountinfo("21 0 8:1 / /mnt/a\\040b ro - ext4 /dev/sda1 rw").unwrap();
    assert_eq!(m[0].mountpoint, "/mnt/a b");
    assert!(m[0].read_only);
    assert!(filesystem::parse_mountinfo("").unwrap().is_empty());
}

#[test]
fn cpuinfo_processor_count_from_fixture() {
    let text = procfs_member("fixtures/proc/cpuinfo");
    let expected = text.lines().filter(|l| l.starts_with("processor")).count();
    assert!(expected > 0);
    assert_eq!(machine::count_processors(&text), expected);
}

#[test]
fn clocksources_from_fixture_sysfs() {
    let dir = tempfile::tempdir().unwrap();
    common::extract_procfs(dir.path());
    let paths = stevedore::collector::Paths {
        sysfs: dir.path().join("fixtures/sys"),
        ..Default::default()
    };
    let cs = stevedore::collector::time::read_clocksources(&paths);
    let available =
        procfs_member("fixtures/sys/devices/system/clocksource/clocksource0/available_clocksource");
    let current =
        procfs_member("fixtures/sys/devices/system/clocksource/clocksource0/current_clocksource");
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0].device, "0");
    assert_eq!(
        cs[0].available,
        available.split_whitespace().collect::<Vec<_>>()
    );
    assert_eq!(cs[0].current.as_deref(), Some(current.trim()));
    // No clocksource folder (a container without /sys): nothing, not an error.
    let none = stevedore::collector::Paths {
        sysfs: dir.path().join("nowhere"),
        ..Default::default()
    };
    assert!(stevedore::collector::time::read_clocksources(&none).is_empty());
}
