//! cgroup v1 readers: one folder per controller (`cpu`, `cpuacct`, `memory`, `blkio`, `pids`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::join;
use super::stats::*;
use crate::collector::{num, user_hz};

/// Reads one cgroup. With `spec` (limits read recently), the limit and share files are not read again.
pub fn read(
    controllers: &BTreeMap<String, PathBuf>,
    rel: &str,
    spec: Option<&SpecStats>,
    buf: &mut Vec<u8>,
) -> CgroupStats {
    let dir = |c: &str| controllers.get(c).map(|r| join(r, rel));
    let mut s = CgroupStats::default();
    if let Some(cpuacct) = dir("cpuacct") {
        s.cpu = read_cpu(&cpuacct, dir("cpu").as_deref(), buf);
    }
    if let Some(mem) = dir("memory") {
        s.memory = read_memory(&mem, buf);
    }
    if let Some(blkio) = dir("blkio") {
        s.blkio = read_blkio(&blkio, buf);
    }
    let current = dir("pids").and_then(|p| read_num(&p.join("pids.current"), buf));
    s.spec = match spec {
        Some(cached) => cached.clone(),
        None => read_spec(&dir, s.memory.is_some(), buf),
    };
    s.apply_spec(current);
    s
}

/// Limits and shares: they change only when someone updates the container.
fn read_spec(
    dir: &dyn Fn(&str) -> Option<PathBuf>,
    has_memory: bool,
    buf: &mut Vec<u8>,
) -> SpecStats {
    let mut spec = SpecStats::default();
    if let Some(cpu) = dir("cpu") {
        spec.cpu_shares = read_num(&cpu.join("cpu.shares"), buf);
        spec.cpu_period = read_num(&cpu.join("cpu.cfs_period_us"), buf);
        spec.cpu_quota = read_num(&cpu.join("cpu.cfs_quota_us"), buf).filter(|q| *q > 0.0);
    }
    if has_memory && let Some(mem) = dir("memory") {
        spec.memory_limit = limit(read_num(&mem.join("memory.limit_in_bytes"), buf));
        spec.memory_reservation = limit(read_num(&mem.join("memory.soft_limit_in_bytes"), buf));
        spec.memory_swap_limit = limit(read_num(&mem.join("memory.memsw.limit_in_bytes"), buf));
    }
    if let Some(pids) = dir("pids") {
        spec.pids_max = read_into(&pids.join("pids.max"), buf)
            .map(str::trim)
            .and_then(|m| if m == "max" { Some(0.0) } else { num(m) });
    }
    spec
}

fn read_cpu(cpuacct: &Path, cpu: Option<&Path>, buf: &mut Vec<u8>) -> Option<CpuStats> {
    let usage = read_num(&cpuacct.join("cpuacct.usage"), buf)?;
    let mut c = CpuStats {
        usage_seconds: Some(usage / 1e9),
        ..Default::default()
    };
    let hz = user_hz();
    if let Some(text) = read_into(&cpuacct.join("cpuacct.stat"), buf) {
        c.user_seconds = get(text, "user").map(|t| t / hz);
        c.system_seconds = get(text, "system").map(|t| t / hz);
    }
    if let Some(cpu) = cpu
        && let Some(text) = read_into(&cpu.join("cpu.stat"), buf)
    {
        c.periods = get(text, "nr_periods");
        c.throttled_periods = get(text, "nr_throttled");
        c.throttled_seconds = get(text, "throttled_time").map(|ns| ns / 1e9);
    }
    Some(c)
}

pub fn parse_memory_stat(usage: Option<f64>, text: &str) -> MemoryStats {
    // One pass over the file; the keys are then looked up, not searched for.
    let map: std::collections::HashMap<&str, f64> = flat_keyed(text).collect();
    let get = |k: &str| map.get(k).copied();
    // With use_hierarchy the total_* keys cover the subtree; without them fall back to the local keys.
    let pick = |total: &str, local: &str| get(total).or_else(|| get(local));
    let pair = |local: &str, total: &str| match (get(local), get(total)) {
        (Some(l), Some(t)) => Some((l, t)),
        (Some(l), None) => Some((l, l)),
        (None, Some(t)) => Some((t, t)),
        (None, None) => None,
    };
    MemoryStats {
        usage,
        working_set: working_set(usage, pick("total_inactive_file", "inactive_file")),
        rss: pick("total_rss", "rss"),
        cache: pick("total_cache", "cache"),
        mapped_file: pick("total_mapped_file", "mapped_file"),
        swap: pick("total_swap", "swap"),
        pgfault: pair("pgfault", "total_pgfault"),
        pgmajfault: pair("pgmajfault", "total_pgmajfault"),
        ..Default::default()
    }
}

fn read_memory(mem: &Path, buf: &mut Vec<u8>) -> Option<MemoryStats> {
    let usage = read_num(&mem.join("memory.usage_in_bytes"), buf)?;
    let mut m = match read_into(&mem.join("memory.stat"), buf) {
        Some(text) => parse_memory_stat(Some(usage), text),
        None => MemoryStats {
            usage: Some(usage),
            working_set: Some(usage),
            ..Default::default()
        },
    };
    m.max_usage = read_num(&mem.join("memory.max_usage_in_bytes"), buf);
    m.failcnt = read_num(&mem.join("memory.failcnt"), buf);
    // `oom_kill` appears in memory.oom_control from Linux 4.13.
    m.oom_kills = read_into(&mem.join("memory.oom_control"), buf).and_then(|t| get(t, "oom_kill"));
    Some(m)
}

/// Parses `MAJ:MIN Op value` lines (blkio.throttle.io_service_bytes / io_serviced) into per-device
/// (read, write) pairs; `Total` lines and other operations are skipped.
pub fn parse_blkio(text: &str) -> Vec<(u32, u32, Option<f64>, Option<f64>)> {
    let mut out: Vec<(u32, u32, Option<f64>, Option<f64>)> = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(dev), Some(op), Some(v)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let Some((maj, min)) = dev.split_once(':') else {
            continue;
        };
        let (Ok(maj), Ok(min), Some(v)) = (maj.parse::<u32>(), min.parse::<u32>(), num(v)) else {
            continue;
        };
        let slot = match out.iter_mut().position(|d| d.0 == maj && d.1 == min) {
            Some(i) => &mut out[i],
            None => {
                out.push((maj, min, None, None));
                out.last_mut().unwrap_or_else(|| unreachable!())
            }
        };
        match op {
            "Read" => slot.2 = Some(v),
            "Write" => slot.3 = Some(v),
            _ => {}
        }
    }
    out
}

fn read_blkio(blkio: &Path, buf: &mut Vec<u8>) -> Vec<BlkioDevice> {
    // The throttle files count every I/O whatever the scheduler; the _recursive forms include children
    // (a pod's containers). The CFQ/BFQ files are the fallback on old kernels.
    let first = |names: &[&str], buf: &mut Vec<u8>| {
        names.iter().find_map(|n| {
            read_into(&blkio.join(n), buf)
                .filter(|t| !t.trim().is_empty())
                .map(parse_blkio)
        })
    };
    let bytes = first(
        &[
            "blkio.throttle.io_service_bytes_recursive",
            "blkio.throttle.io_service_bytes",
            "blkio.io_service_bytes_recursive",
        ],
        buf,
    )
    .unwrap_or_default();
    let ops = first(
        &[
            "blkio.throttle.io_serviced_recursive",
            "blkio.throttle.io_serviced",
            "blkio.io_serviced_recursive",
        ],
        buf,
    )
    .unwrap_or_default();
    let mut devices: Vec<BlkioDevice> = bytes
        .iter()
        .map(|&(major, minor, r, w)| BlkioDevice {
            major,
            minor,
            read_bytes: r,
            write_bytes: w,
            ..Default::default()
        })
        .collect();
    for (major, minor, r, w) in ops {
        match devices
            .iter_mut()
            .find(|d| d.major == major && d.minor == minor)
        {
            Some(d) => {
                d.reads = r;
                d.writes = w;
            }
            None => devices.push(BlkioDevice {
                major,
                minor,
                reads: r,
                writes: w,
                ..Default::default()
            }),
        }
    }
    devices
}
