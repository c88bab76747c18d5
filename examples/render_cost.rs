//! Times rendering alone: a snapshot of N containers (realistic figures) to text 0.0.4 and OpenMetrics.
//!   cargo run --release --example render_cost [N]
use std::sync::Arc;
use std::time::{Duration, Instant};

use stevedore::cgroup::{BlkioDevice, CgroupStats, CpuStats, MemoryStats, PidsStats, SpecStats};
use stevedore::collector::cgroup::{ContainerEntry, ContainersSample, ProcStats};
use stevedore::expose::{Format, render};
use stevedore::identity::Identity;
use stevedore::scrape::{CollectorRun, Snapshot};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let entries = (0..n)
        .map(|i| ContainerEntry {
            level: stevedore::collector::cgroup::Level::Container,
            identity: Identity {
                id: format!("/docker/{:064x}", i),
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
                memory: Some(MemoryStats {
                    usage: Some(123456789.0),
                    working_set: Some(100000000.0),
                    rss: Some(90000000.0),
                    cache: Some(3000000.0),
                    mapped_file: Some(100000.0),
                    swap: Some(0.0),
                    max_usage: Some(200000000.0),
                    failcnt: Some(0.0),
                    pgfault: Some((12345.0, 12345.0)),
                    pgmajfault: Some((1.0, 1.0)),
                    oom_kills: Some(0.0),
                }),
                spec: SpecStats {
                    cpu_period: Some(100000.0),
                    cpu_shares: Some(1024.0),
                    memory_limit: Some(0.0),
                    memory_reservation: Some(0.0),
                    memory_swap_limit: Some(0.0),
                    pids_max: Some(0.0),
                    ..Default::default()
                },
                blkio: vec![BlkioDevice {
                    major: 254,
                    minor: 0,
                    read_bytes: Some(1e6),
                    write_bytes: Some(2e6),
                    reads: Some(100.0),
                    writes: Some(200.0),
                }],
                pids: Some(PidsStats {
                    current: Some(3.0),
                    max: Some(0.0),
                }),
                pressure: None,
            },
            procs: Some(ProcStats {
                processes: 1.0,
                file_descriptors: 3.0,
                sockets: 0.0,
            }),
            network: vec![("eth0".into(), [1e6, 1e3, 0.0, 0.0, 2e6, 2e3, 0.0, 0.0])],
            devices: vec!["vda".into()],
            start_time: Some(1.7e9),
            health: Some(-1.0),
        })
        .collect();
    let sample = ContainersSample {
        columns: vec![],
        entries,
        now: 1.7e9,
    };
    let snapshot = Arc::new(Snapshot {
        finished: Instant::now(),
        runs: vec![CollectorRun {
            name: "cgroup",
            duration: Duration::from_millis(1),
            output: Some(Box::new(sample)),
        }],
    });
    for format in [Format::Text004, Format::OpenMetrics] {
        let t = Instant::now();
        let mut bytes = 0;
        for _ in 0..10 {
            bytes = render(snapshot.clone(), vec!["cgroup"], format, vec![]).len();
        }
        println!(
            "{format:?}: {:.1} ms per render, {:.1} MB",
            t.elapsed().as_secs_f64() * 100.0,
            bytes as f64 / 1e6
        );
    }
}
