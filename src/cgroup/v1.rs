//! cgroup v1 readers: one folder per controller (`cpu`, `cpuacct`, `memory`, `blkio`, `pids`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::files::*;
use super::join;
use crate::parse::{flat_keyed, get};
use crate::parse::{num, user_hz};
use crate::sample::container::*;

/// Reads one cgroup. With `spec` (limits read recently), the limit and share files are not read again.
pub(crate) fn read(
    controllers: &BTreeMap<String, PathBuf>,
    rel: &str,
    spec: Option<&SpecStats>,
    files: &mut Files,
) -> CgroupStats {
    let dir = |c: &str| controllers.get(c).map(|r| join(r, rel));
    let mut s = CgroupStats {
        spec: match spec {
            Some(cached) => cached.clone(),
            None => read_spec(&dir, files),
        },
        ..Default::default()
    };
    if let Some(cpuacct) = dir("cpuacct") {
        // Throttling counts mean something only where a quota is set: cpu.stat is read only then.
        let cpu = dir("cpu").filter(|_| s.spec.cpu_quota.is_some());
        s.cpu = read_cpu(&cpuacct, cpu.as_deref(), files);
    }
    if let Some(mem) = dir("memory") {
        s.memory = read_memory(&mem, files);
    }
    if s.memory.is_none() {
        // No memory controller here (or the cgroup is gone): no memory limits either.
        s.spec.memory_limit = None;
        s.spec.memory_reservation = None;
        s.spec.memory_swap_limit = None;
    }
    if let Some(blkio) = dir("blkio") {
        s.blkio = read_blkio(&blkio, files);
    }
    let current = dir("pids").and_then(|p| files.num(&p, "pids.current"));
    s.apply_spec(current);
    s
}

/// Limits and shares: they change only when someone updates the container.
fn read_spec(dir: &dyn Fn(&str) -> Option<PathBuf>, files: &mut Files) -> SpecStats {
    let mut spec = SpecStats::default();
    if let Some(cpu) = dir("cpu") {
        spec.cpu_shares = files.num_once(&cpu, "cpu.shares");
        spec.cpu_period = files.num_once(&cpu, "cpu.cfs_period_us");
        spec.cpu_quota = files
            .num_once(&cpu, "cpu.cfs_quota_us")
            .filter(|q| *q > 0.0);
    }
    if let Some(mem) = dir("memory") {
        spec.memory_limit = limit(files.num_once(&mem, "memory.limit_in_bytes"));
        spec.memory_reservation = limit(files.num_once(&mem, "memory.soft_limit_in_bytes"));
        spec.memory_swap_limit = limit(files.num_once(&mem, "memory.memsw.limit_in_bytes"));
    }
    if let Some(pids) = dir("pids") {
        spec.pids_max = files
            .text_once(&pids, "pids.max")
            .map(str::trim)
            .and_then(|m| if m == "max" { Some(0.0) } else { num(m) });
    }
    spec
}

fn read_cpu(cpuacct: &Path, cpu: Option<&Path>, files: &mut Files) -> Option<CpuStats> {
    let usage = files.num(cpuacct, "cpuacct.usage")?;
    let mut c = CpuStats {
        usage_seconds: Some(usage / 1e9),
        ..Default::default()
    };
    let hz = user_hz();
    if let Some(text) = files.text(cpuacct, "cpuacct.stat") {
        c.user_seconds = get(text, "user").map(|t| t / hz);
        c.system_seconds = get(text, "system").map(|t| t / hz);
    }
    if let Some(cpu) = cpu
        && let Some(text) = files.text(cpu, "cpu.stat")
    {
        c.periods = get(text, "nr_periods");
        c.throttled_periods = get(text, "nr_throttled");
        c.throttled_seconds = get(text, "throttled_time").map(|ns| ns / 1e9);
        c.bursts = get(text, "nr_bursts");
        c.burst_seconds = get(text, "burst_time").map(|ns| ns / 1e9);
    }
    Some(c)
}

/// Parses v1 memory.stat in one pass. With use_hierarchy the `total_*` keys cover the subtree and are the
/// figures; without them the local keys are. Local pgfault and pgmajfault are kept for cAdvisor's
/// `scope="container"` series.
pub(crate) fn parse_memory_stat(usage: Option<f64>, text: &str) -> MemoryStats {
    const N: usize = MEMORY_STAT.len();
    let (mut local, mut total) = ([None; N], [None; N]);
    let (mut swap, mut total_swap) = (None, None);
    for (k, v) in flat_keyed(text) {
        let (base, slots) = match k.strip_prefix("total_") {
            Some(b) => (b, &mut total),
            None => (k, &mut local),
        };
        if base == "swap" {
            let s = if k == base {
                &mut swap
            } else {
                &mut total_swap
            };
            s.get_or_insert(v);
        } else if let Some(i) = MEMORY_STAT.iter().position(|(_, v1)| *v1 == base) {
            slots[i].get_or_insert(v);
        }
    }
    let mut m = MemoryStats {
        usage,
        swap: total_swap.or(swap),
        ..Default::default()
    };
    for i in 0..N {
        m.stat[i] = total[i].or(local[i]);
    }
    let faults = [stat_index("pgfault"), stat_index("pgmajfault")];
    m.local_faults = faults.map(|i| local[i].or(total[i]));
    m.working_set = working_set(usage, m.stat(stat_index("inactive_file")));
    m
}

fn read_memory(mem: &Path, files: &mut Files) -> Option<MemoryStats> {
    let usage = files.num(mem, "memory.usage_in_bytes")?;
    let mut m = match files.text(mem, "memory.stat") {
        Some(text) => parse_memory_stat(Some(usage), text),
        None => MemoryStats {
            usage: Some(usage),
            working_set: Some(usage),
            ..Default::default()
        },
    };
    m.max_usage = files.num(mem, "memory.max_usage_in_bytes");
    m.failcnt = files.num(mem, "memory.failcnt");
    m.stat[stat_index("kernel")] = files.num(mem, "memory.kmem.usage_in_bytes");
    // `oom_kill` appears in memory.oom_control from Linux 4.13.
    m.oom_kills = files
        .text(mem, "memory.oom_control")
        .and_then(|t| get(t, "oom_kill"));
    Some(m)
}

/// Parses `MAJ:MIN Op value` lines (blkio.throttle.io_service_bytes / io_serviced) into per-device
/// (read, write) pairs; `Total` lines and other operations are skipped.
pub(crate) fn parse_blkio(text: &str) -> Vec<(u32, u32, Option<f64>, Option<f64>)> {
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

fn read_blkio(blkio: &Path, files: &mut Files) -> Vec<BlkioDevice> {
    // The throttle files count every I/O whatever the scheduler; the _recursive forms include children
    // (a pod's containers). The CFQ/BFQ files are the fallback on old kernels.
    let first = |names: &[&'static str], files: &mut Files| {
        names.iter().find_map(|n| {
            files
                .text(blkio, n)
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
        files,
    )
    .unwrap_or_default();
    let ops = first(
        &[
            "blkio.throttle.io_serviced_recursive",
            "blkio.throttle.io_serviced",
            "blkio.io_serviced_recursive",
        ],
        files,
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
