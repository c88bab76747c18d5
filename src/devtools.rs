//! Measurements for the examples (`examples/collector_cost.rs`, `examples/render_cost.rs`): not part of
//! the program, kept here so the crate's internals stay private.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::expose::{Format, Outcome, Part};
use crate::identity::Identity;
use crate::sample::container::*;

/// Each default collector's `collect()` timed alone over `n` calls: (name, µs per call).
pub fn collector_cost(n: u32) -> Vec<(&'static str, f64)> {
    let config = crate::cli::try_parse_from(&crate::collector::toggles(), ["stevedore"])
        .expect("the defaults parse");
    let shared = crate::collector::Shared::default();
    let cx = crate::collector::Context {
        flags: &config.flags,
        paths: crate::collector::Paths::default(),
        shared: &shared,
        enabled: &config.enabled,
    };
    let collectors = crate::collector::build(&cx).expect("the defaults build");
    collectors
        .into_iter()
        .map(|(name, c)| {
            let t = Instant::now();
            for _ in 0..n {
                let _ = c.collect();
            }
            (name, t.elapsed().as_secs_f64() * 1e6 / f64::from(n))
        })
        .collect()
}

/// One container with realistic figures.
fn entry(i: usize) -> ContainerEntry {
    let mut memory = MemoryStats {
        usage: Some(123456789.0),
        working_set: Some(100000000.0),
        swap: Some(0.0),
        max_usage: Some(200000000.0),
        failcnt: Some(0.0),
        oom_kills: Some(0.0),
        local_faults: [Some(12345.0), Some(1.0)],
        ..Default::default()
    };
    for (key, v) in [
        ("anon", 9e7),
        ("file", 3e6),
        ("file_mapped", 1e5),
        ("pgfault", 12345.0),
    ] {
        memory.set_stat(key, Some(v));
    }
    ContainerEntry {
        level: Level::Container,
        identity: Identity {
            id: format!("/docker/{i:064x}"),
            name: format!("web-{i}"),
            image: "nginx:1.27".into(),
            ..Default::default()
        },
        stats: CgroupStats {
            cpu: Some(CpuStats {
                usage_seconds: Some(1234.5678 + i as f64),
                user_seconds: Some(1000.1),
                system_seconds: Some(234.4),
                ..Default::default()
            }),
            memory: Some(memory),
            spec: SpecStats {
                cpu_period: Some(100000.0),
                cpu_shares: Some(1024.0),
                memory_limit: Some(0.0),
                ..Default::default()
            },
            blkio: vec![BlkioDevice {
                major: 254,
                device: "/dev/vda".into(),
                read_bytes: Some(1e6),
                write_bytes: Some(2e6),
                reads: Some(100.0),
                writes: Some(200.0),
                ..Default::default()
            }],
            pids: Some(PidsStats {
                current: Some(3.0),
                max: Some(0.0),
            }),
            pressure: None,
            hugetlb: Vec::new(),
        },
        procs: Some(ProcStats {
            processes: 1.0,
            file_descriptors: 3.0,
            sockets: 0.0,
            max_open_files: Some(1024.0),
            tasks: None,
        }),
        network: vec![Interface {
            name: "eth0".into(),
            rx_bytes: 1e6,
            tx_bytes: 2e6,
            ..Default::default()
        }],
        start_time: Some(1.7e9),
        health: Some(-1.0),
    }
}

/// Renders `n` containers ten times in each format: (format, ms per render, bytes).
pub fn render_cost(n: usize) -> Vec<(&'static str, f64, usize)> {
    let sample = ContainersSample {
        columns: vec![],
        entries: (0..n).map(entry).collect(),
        now: 1.7e9,
    };
    let part = Arc::new(Part {
        name: "cgroup",
        started: std::time::Instant::now(),
        duration: Duration::from_millis(1),
        runs: 1,
        outcome: Outcome::Ok(Arc::new(sample)),
    });
    [
        ("text 0.0.4", Format::Text004),
        ("OpenMetrics", Format::OpenMetrics),
    ]
    .into_iter()
    .map(|(label, format)| {
        let t = Instant::now();
        let bytes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..10 {
            bytes.store(0, std::sync::atomic::Ordering::Relaxed);
            let counted = bytes.clone();
            let count = move |chunk: String| {
                counted.fetch_add(chunk.len(), std::sync::atomic::Ordering::Relaxed);
                true
            };
            let last = crate::expose::render_chunked(vec![part.clone()], format, vec![], count);
            bytes.fetch_add(last.len(), std::sync::atomic::Ordering::Relaxed);
        }
        let bytes = bytes.load(std::sync::atomic::Ordering::Relaxed);
        (label, t.elapsed().as_secs_f64() * 100.0, bytes)
    })
    .collect()
}

/// One pass of the layer walker: directory entries visited, bytes measured in all layers, wall seconds,
/// CPU seconds of the walking thread and the disk blocks (512 bytes) it read.
#[derive(Debug, Clone, Copy)]
pub struct LayerPass {
    pub entries: u64,
    pub bytes: f64,
    pub wall: f64,
    pub cpu: f64,
    pub blocks_read: u64,
}

/// (CPU seconds, blocks read) of the calling thread.
fn thread_usage() -> (f64, u64) {
    // SAFETY: getrusage fills the zeroed struct.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut r) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    (t(r.ru_utime) + t(r.ru_stime), r.ru_inblock as u64)
}

/// The writable-layer walker over `layers` (host paths), as the background thread runs it, `passes`
/// times in a row with its directory memory kept between passes, at most `entries_per_second`.
pub fn layer_passes(
    layers: &[std::path::PathBuf],
    entries_per_second: u32,
    passes: u32,
) -> Vec<LayerPass> {
    use crate::identity::ContainerMeta;
    let store = crate::source::MetaStore::default();
    for (i, l) in layers.iter().enumerate() {
        store.upsert(ContainerMeta {
            runtime: "docker",
            id: format!("{i:064x}"),
            state: "running".into(),
            layer: Some(l.to_string_lossy().into_owned()),
            ..Default::default()
        });
    }
    let config = crate::layers::Config {
        interval: Duration::from_secs(60),
        entries_per_second,
        rootfs: "/".into(),
        procfs: "/proc".into(),
    };
    let cache = crate::layers::LayerCache::default();
    let mut known = std::collections::HashMap::new();
    let mut budget = crate::layers::Budget::new(entries_per_second);
    (0..passes)
        .map(|_| {
            let (cpu0, blocks0) = thread_usage();
            let t = Instant::now();
            let (_, entries) =
                crate::layers::pass(&config, &store, &cache, &mut known, &mut budget, false);
            let wall = t.elapsed().as_secs_f64();
            let (cpu1, blocks1) = thread_usage();
            LayerPass {
                entries,
                bytes: cache.snapshot().values().map(|u| u.bytes).sum(),
                wall,
                cpu: cpu1 - cpu0,
                blocks_read: blocks1 - blocks0,
            }
        })
        .collect()
}
