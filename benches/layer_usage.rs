//! Writable-layer usage: Stevedore's background walker against `du` over the same layers, at 100 real
//! Docker containers with 100 MB layers each.
//!
//!   cargo bench --bench layer_usage      (needs root and dockerd)
//!
//! Each container (`sdbench-layer-<i>`, a sleeping busybox) gets 100 MB in its writable layer: 10
//! directories of 100 files of 100 000 bytes, allocated with fallocate(2) in the overlay upper directory
//! `docker inspect` names (from the host: writing 10 GB through the containers would take minutes and
//! walk the same tree). Each tool runs cold (page cache dropped: `echo 3 > /proc/sys/vm/drop_caches`) and
//! warm, and reports wall seconds, CPU seconds (user + system, from getrusage) and the disk reads it
//! caused (getrusage's ru_inblock, 512-byte blocks):
//!
//! - cAdvisor's way: per layer, `du -s` for bytes, then `find -xdev -printf .` for inodes.
//! - a plain `du -sx` per layer.
//! - the floor: one `du -sxc` process over all layers.
//! - Stevedore: the walker's pass (`stevedore::devtools::layer_passes`), unbudgeted; the warm figure is
//!   the second of two passes (directories unchanged since the first are not read again). Then one warm
//!   pass at the default budget (20 000 entries a second), which spreads the same work over time.
//!
//! BENCH_LAYERS=N changes the number of containers; the containers are removed afterwards.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

const FILES_PER_DIR: usize = 100;
const DIRS: usize = 10;
const FILE_BYTES: i64 = 100_000;

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// (CPU seconds, blocks read) of this process (`who` = RUSAGE_SELF) or its waited-for children.
fn rusage(who: i32) -> (f64, u64) {
    // SAFETY: getrusage fills the zeroed struct.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut r) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    (t(r.ru_utime) + t(r.ru_stime), r.ru_inblock as u64)
}

fn drop_caches() {
    Command::new("sync").status().unwrap();
    std::fs::write("/proc/sys/vm/drop_caches", "3").expect("drop_caches (root)");
}

/// (wall s, CPU s, MiB read) of `f`, counting this process and the children it waits for.
fn measure(f: impl FnOnce()) -> (f64, f64, f64) {
    let (s0, b0) = rusage(libc::RUSAGE_SELF);
    let (c0, cb0) = rusage(libc::RUSAGE_CHILDREN);
    let t = Instant::now();
    f();
    let wall = t.elapsed().as_secs_f64();
    let (s1, b1) = rusage(libc::RUSAGE_SELF);
    let (c1, cb1) = rusage(libc::RUSAGE_CHILDREN);
    let blocks = (b1 - b0) + (cb1 - cb0);
    (
        wall,
        (s1 - s0) + (c1 - c0),
        blocks as f64 * 512.0 / 1048576.0,
    )
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(out.status.success(), "{cmd} {args:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fill(layer: &std::path::Path) {
    for d in 0..DIRS {
        let dir = layer.join(format!("bench/d{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..FILES_PER_DIR {
            let file = std::fs::File::create(dir.join(format!("f{f}"))).unwrap();
            // SAFETY: a valid descriptor; fallocate allocates the blocks without writing them.
            let rc = unsafe {
                libc::fallocate(std::os::fd::AsRawFd::as_raw_fd(&file), 0, 0, FILE_BYTES)
            };
            assert_eq!(rc, 0, "fallocate");
        }
    }
}

fn main() {
    let n: usize = std::env::var("BENCH_LAYERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    cleanup();
    let image = "stevedore-test/busybox:latest";
    docker(&["image", "inspect", image]);
    let mut layers: Vec<PathBuf> = Vec::new();
    let t = Instant::now();
    for i in 0..n {
        let name = format!("sdbench-layer-{i}");
        docker(&["run", "-d", "--name", &name, image, "sleep", "100000"]);
        let upper = docker(&["inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", &name]);
        let upper = PathBuf::from(upper);
        fill(&upper);
        layers.push(upper);
    }
    let entries: usize = n * (DIRS * FILES_PER_DIR + DIRS + 1);
    println!(
        "{n} containers, {} MB of layers, about {entries} entries, made in {:.0} s",
        n as i64 * FILE_BYTES * (DIRS * FILES_PER_DIR) as i64 / 1_000_000,
        t.elapsed().as_secs_f64()
    );
    let paths: Vec<String> = layers.iter().map(|p| p.display().to_string()).collect();
    let du_total = |out: &str| -> f64 {
        out.lines()
            .filter_map(|l| l.split_whitespace().next()?.parse::<f64>().ok())
            .sum()
    };
    println!("| tool | cache | wall s | CPU s | disk read MiB | bytes measured |");
    println!("|---|---|---:|---:|---:|---:|");
    let row = |tool: &str, cache: &str, (wall, cpu, mib): (f64, f64, f64), bytes: f64| {
        println!("| {tool} | {cache} | {wall:.3} | {cpu:.3} | {mib:.1} | {bytes:.0} |");
    };
    for cold in [true, false] {
        let cache = if cold { "cold" } else { "warm" };
        let mut bytes = 0.0;
        if cold {
            drop_caches();
        }
        let m = measure(|| {
            for p in &paths {
                bytes += du_total(&run("du", &["-s", "--block-size=1", p]));
                run("find", &[p, "-xdev", "-printf", "."]);
            }
        });
        row("cAdvisor's way: du -s + find per layer", cache, m, bytes);
        if cold {
            drop_caches();
        }
        bytes = 0.0;
        let m = measure(|| {
            for p in &paths {
                bytes += du_total(&run("du", &["-sx", "--block-size=1", p]));
            }
        });
        row("du -sx per layer", cache, m, bytes);
        if cold {
            drop_caches();
        }
        let mut args = vec!["-sx", "--block-size=1"];
        args.extend(paths.iter().map(String::as_str));
        bytes = 0.0;
        let m = measure(|| bytes = du_total(&run("du", &args)));
        row("floor: one du -sx over all layers", cache, m, bytes);
        if cold {
            drop_caches();
        }
        // Two passes of one walker: the second reads no directory again (none changed).
        let pass_row = |tool: &str, p: &stevedore::devtools::LayerPass| {
            let mib = p.blocks_read as f64 * 512.0 / 1048576.0;
            row(tool, cache, (p.wall, p.cpu, mib), p.bytes);
        };
        let passes = stevedore::devtools::layer_passes(&layers, u32::MAX, 2);
        pass_row("stevedore walker, unbudgeted, first pass", &passes[0]);
        pass_row(
            "stevedore walker, unbudgeted, second pass (incremental)",
            &passes[1],
        );
        if !cold {
            let passes = stevedore::devtools::layer_passes(&layers, 20_000, 1);
            pass_row(
                "stevedore walker, default budget (20 000 entries/s)",
                &passes[0],
            );
            println!();
            println!("entries visited per pass: {}", passes[0].entries);
        }
    }
    cleanup();
}

fn cleanup() {
    let ids = Command::new("docker")
        .args(["ps", "-aq", "--filter", "name=sdbench-layer-"])
        .output()
        .unwrap();
    let ids = String::from_utf8_lossy(&ids.stdout);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(ids);
        let _ = Command::new("docker").args(&args).output();
    }
}
