//! cgroup v2 readers: one folder per cgroup in the unified hierarchy.

use std::path::Path;

use super::files::*;
use crate::parse::num;
use crate::parse::{flat_keyed, get, parse_psi};
use crate::sample::container::*;

/// Reads one cgroup. With `spec` (limits read recently), the limit and weight files are not read again.
pub(crate) fn read(
    dir: &Path,
    is_root: bool,
    spec: Option<&SpecStats>,
    files: &mut Files,
) -> CgroupStats {
    let mut s = CgroupStats::default();
    if let Some(text) = files.text(dir, "cpu.stat") {
        s.cpu = Some(parse_cpu_stat(text));
    }
    s.memory = read_memory(dir, is_root, files);
    if let Some(text) = files.text(dir, "io.stat") {
        s.blkio = parse_io_stat(text);
    }
    let current = files.num(dir, "pids.current");
    s.spec = match spec {
        Some(cached) => cached.clone(),
        None => read_spec(dir, s.memory.is_some() || !is_root, files),
    };
    s.apply_spec(current);
    s.pressure = read_pressure(dir, files);
    s
}

/// Limits and weights: they change only when someone updates the container.
fn read_spec(dir: &Path, memory: bool, files: &mut Files) -> SpecStats {
    let mut spec = SpecStats::default();
    if let Some(text) = files.text_once(dir, "cpu.max") {
        let (quota, period) = parse_cpu_max(text);
        spec.cpu_quota = quota;
        spec.cpu_period = period;
    }
    spec.cpu_shares = files.num_once(dir, "cpu.weight").map(weight_to_shares);
    let max = |name: &str, files: &mut Files| {
        files
            .text_once(dir, name)
            .map(str::trim)
            .and_then(|v| if v == "max" { Some(0.0) } else { num(v) })
    };
    if memory {
        spec.memory_limit = limit(max("memory.max", files));
        spec.memory_reservation = limit(max("memory.min", files));
        spec.memory_swap_limit = limit(max("memory.swap.max", files));
    }
    spec.pids_max = max("pids.max", files);
    spec
}

/// The cgroup's PSI files (`cpu.pressure`, `memory.pressure`, `io.pressure`), where the kernel has them.
pub(crate) fn read_pressure(dir: &Path, files: &mut Files) -> Option<PressureStats> {
    let psi = |name: &'static str, files: &mut Files| {
        files.text(dir, name).and_then(|t| parse_psi(t).ok())
    };
    let (cpu, memory, io) = (
        psi("cpu.pressure", files),
        psi("memory.pressure", files),
        psi("io.pressure", files),
    );
    (cpu.is_some() || memory.is_some() || io.is_some()).then(|| PressureStats {
        cpu: cpu.unwrap_or_default(),
        memory: memory.unwrap_or_default(),
        io: io.unwrap_or_default(),
    })
}

pub(crate) fn parse_cpu_stat(text: &str) -> CpuStats {
    let us = |k: &str| get(text, k).map(|v| v / 1e6);
    CpuStats {
        usage_seconds: us("usage_usec"),
        user_seconds: us("user_usec"),
        system_seconds: us("system_usec"),
        periods: get(text, "nr_periods"),
        throttled_periods: get(text, "nr_throttled"),
        throttled_seconds: us("throttled_usec"),
        bursts: get(text, "nr_bursts"),
        burst_seconds: us("burst_usec"),
    }
}

/// `cpu.max`: `<quota|max> <period>` in µs → (quota when set, period).
pub(crate) fn parse_cpu_max(text: &str) -> (Option<f64>, Option<f64>) {
    let mut f = text.split_whitespace();
    let quota = f.next().and_then(num).filter(|q| *q > 0.0);
    let period = f.next().and_then(num);
    (quota, period)
}

/// cgroup v2 cpu.weight (1..10000) back to v1 cpu.shares (2..262144), the inverse of the conversion
/// runc and the kubelet use (`weight = 1 + (shares - 2) * 9999 / 262142`).
pub(crate) fn weight_to_shares(weight: f64) -> f64 {
    (2.0 + (weight - 1.0) * 262142.0 / 9999.0).round()
}

/// Parses memory.stat in one pass, keeping the [`MEMORY_STAT`] keys. v2 counts faults per cgroup
/// subtree only, so both scopes of pgfault and pgmajfault are the same figure.
pub(crate) fn parse_memory(usage: Option<f64>, stat: &str) -> MemoryStats {
    let mut m = MemoryStats {
        usage,
        ..Default::default()
    };
    for (k, v) in flat_keyed(stat) {
        if let Some(i) = MEMORY_STAT.iter().position(|(v2, _)| *v2 == k) {
            m.stat[i].get_or_insert(v);
        }
    }
    m.local_faults = [stat_index("pgfault"), stat_index("pgmajfault")].map(|i| m.stat[i]);
    m.working_set = working_set(usage, m.stat(stat_index("inactive_file")));
    m
}

fn read_memory(dir: &Path, is_root: bool, files: &mut Files) -> Option<MemoryStats> {
    // The root cgroup has no memory.current: the node's usage is not a cgroup figure there.
    let usage = files.num(dir, "memory.current");
    if usage.is_none() && !is_root {
        return None;
    }
    let mut m = match files.text(dir, "memory.stat") {
        Some(stat) => parse_memory(usage, stat),
        None if usage.is_some() => MemoryStats {
            usage,
            working_set: usage,
            ..Default::default()
        },
        None => return None,
    };
    m.swap = files.num(dir, "memory.swap.current");
    m.max_usage = files.num(dir, "memory.peak");
    if let Some(events) = files.text(dir, "memory.events") {
        m.oom_kills = get(events, "oom_kill");
        m.events_high = get(events, "high");
        m.events_max = get(events, "max");
    }
    Some(m)
}

/// Parses io.stat: `MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. ...`. Some kernels print several device
/// ids without stats on one line (`7:7 7:6 8:0 rbytes=...`): the stats belong to the last id.
pub(crate) fn parse_io_stat(text: &str) -> Vec<BlkioDevice> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut dev: Option<(u32, u32)> = None;
        let mut d = BlkioDevice::default();
        let mut any = false;
        for tok in line.split_whitespace() {
            if let Some((k, v)) = tok.split_once('=') {
                let v = num(v);
                match k {
                    "rbytes" => d.read_bytes = v,
                    "wbytes" => d.write_bytes = v,
                    "rios" => d.reads = v,
                    "wios" => d.writes = v,
                    _ => continue,
                }
                any = true;
            } else if let Some((maj, min)) = tok.split_once(':')
                && let (Ok(maj), Ok(min)) = (maj.parse(), min.parse())
            {
                dev = Some((maj, min));
            }
        }
        if let (Some((major, minor)), true) = (dev, any) {
            d.major = major;
            d.minor = minor;
            out.push(d);
        }
    }
    crate::parse::first_of_each(&mut out, |d| (d.major, d.minor));
    out
}
