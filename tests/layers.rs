//! Per-container writable-layer usage on a real Docker engine: the background walker's figures against
//! `du -sx` and `find` of the layer's upper directory (as `docker inspect` names it) and `stat -f` of its
//! filesystem, and a write of N MiB inside the container showing within one interval.

mod common;

use std::process::Command;

use common::*;

fn sh(cmd: &str) -> String {
    stdout_of(Command::new("sh").arg("-c").arg(cmd))
}

fn series<'a>(s: &'a [Sample], metric: &str, c: &Container) -> Option<&'a Sample> {
    let v = named(s, metric, &c.name);
    assert!(v.len() <= 1, "{metric}: {v:?}");
    v.first().copied()
}

#[test]
fn writable_layer_usage_against_du_and_growth_within_one_interval() {
    const INTERVAL: u64 = 4;
    let c = Container::run(
        "layer",
        &[],
        "head -c 3000000 /dev/urandom > /seed; mkdir -p /d/e; sleep 1000",
    );
    let upper = c.inspect("{{.GraphDriver.Data.UpperDir}}");
    assert!(upper.ends_with("/diff"), "{upper}");
    let interval = format!("--collector.filesystem.layers-interval={INTERVAL}s");
    let e = Exporter::start(&[
        "--collect.min-age=0",
        "--collector.disable-defaults",
        "--collector.filesystem",
        "--collector.docker",
        &interval,
    ]);
    // Measured within a second of the container being known (then every interval).
    let s = scrape_until(&e, 15, "the layer measured with its seed file", |s| {
        series(s, "container_fs_usage_bytes", &c).is_some_and(|x| x.value >= 3_000_000.0)
    });
    let usage = series(&s, "container_fs_usage_bytes", &c).unwrap();
    assert_eq!(usage.labels["id"], c.cgroup());
    assert_eq!(usage.labels["image"], IMAGE);
    assert_eq!(usage.value, du_bytes(&upper));
    let inodes = series(&s, "stevedore_container_fs_inodes_used", &c)
        .unwrap()
        .value;
    assert_eq!(
        inodes,
        sh(&format!(
            "find {upper} -xdev -printf '%i\\n' | sort -u | wc -l"
        ))
        .parse::<f64>()
        .unwrap()
    );
    // The filesystem's size and inodes, as stat -f gives them, under its device name.
    let stat: Vec<f64> = sh(&format!("stat -f -c '%S %b %c' {upper}"))
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    let limit = series(&s, "container_fs_limit_bytes", &c).unwrap();
    assert_eq!(limit.value, stat[0] * stat[1]);
    assert_eq!(
        series(&s, "container_fs_inodes_total", &c).unwrap().value,
        stat[2]
    );
    let dev = sh(&format!("stat -c %d {upper}")).parse::<u64>().unwrap();
    let (major, minor) = (dev >> 8 & 0xfff, (dev & 0xff) | (dev >> 12 & 0xfff00));
    let uevent = std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/uevent")).unwrap();
    let devname = uevent
        .lines()
        .find_map(|l| l.strip_prefix("DEVNAME="))
        .unwrap();
    assert_eq!(usage.labels["device"], format!("/dev/{devname}"));

    // N MiB written inside the container: the usage grows by N MiB within one interval.
    const N: u64 = 12;
    let before = du_bytes(&upper);
    c.exec(&format!("head -c {} /dev/urandom > /d/e/blob", N << 20));
    let grown = du_bytes(&upper);
    assert!(grown - before >= (N << 20) as f64, "du {before} -> {grown}");
    // One interval, and 3 s for the walk and the scrape.
    let s = scrape_until(&e, INTERVAL + 3, "the write measured", |s| {
        series(s, "container_fs_usage_bytes", &c).is_some_and(|x| x.value > before)
    });
    assert_eq!(
        series(&s, "container_fs_usage_bytes", &c).unwrap().value,
        grown
    );

    // A removed container's layer is no longer reported.
    let name = c.name.clone();
    drop(c);
    scrape_until(&e, 10, "the removed container's layer gone", |s| {
        named(s, "container_fs_usage_bytes", &name).is_empty()
    });
}
