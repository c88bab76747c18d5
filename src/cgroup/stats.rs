//! Typed samples of one cgroup. Everything the kernel may not give is an `Option`, so "omit, never zero"
//! falls out of the types.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};

use crate::collector::num;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuStats {
    pub usage_seconds: Option<f64>,
    pub user_seconds: Option<f64>,
    pub system_seconds: Option<f64>,
    pub periods: Option<f64>,
    pub throttled_periods: Option<f64>,
    pub throttled_seconds: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryStats {
    pub usage: Option<f64>,
    pub working_set: Option<f64>,
    pub rss: Option<f64>,
    pub cache: Option<f64>,
    pub mapped_file: Option<f64>,
    pub swap: Option<f64>,
    pub max_usage: Option<f64>,
    pub failcnt: Option<f64>,
    /// (container scope, hierarchy scope)
    pub pgfault: Option<(f64, f64)>,
    pub pgmajfault: Option<(f64, f64)>,
    pub oom_kills: Option<f64>,
}

/// Limits and shares. Unlimited memory reads as 0, as cAdvisor reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpecStats {
    pub cpu_period: Option<f64>,
    /// Only when a quota is set.
    pub cpu_quota: Option<f64>,
    pub cpu_shares: Option<f64>,
    pub memory_limit: Option<f64>,
    pub memory_reservation: Option<f64>,
    pub memory_swap_limit: Option<f64>,
    /// `pids.max`; `max` (no limit) reads as 0, as cAdvisor reports it.
    pub pids_max: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlkioDevice {
    pub major: u32,
    pub minor: u32,
    pub read_bytes: Option<f64>,
    pub write_bytes: Option<f64>,
    pub reads: Option<f64>,
    pub writes: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Psi {
    pub some: Option<f64>,
    pub full: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PressureStats {
    pub cpu: Psi,
    pub memory: Psi,
    pub io: Psi,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PidsStats {
    pub current: Option<f64>,
    /// `max` (no limit) reads as 0, as cAdvisor reports it.
    pub max: Option<f64>,
}

/// Everything read from one cgroup's files.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupStats {
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
    pub spec: SpecStats,
    pub blkio: Vec<BlkioDevice>,
    pub pids: Option<PidsStats>,
    pub pressure: Option<PressureStats>,
}

impl CgroupStats {
    /// Completes a reading once the limits are known: the thread count gets its limit, and throttling
    /// figures are dropped where no quota is set (they only mean something where one is).
    pub fn apply_spec(&mut self, threads: Option<f64>) {
        if let Some(current) = threads {
            self.pids = Some(PidsStats {
                current: Some(current),
                max: self.spec.pids_max,
            });
        }
        if self.spec.cpu_quota.is_none()
            && let Some(c) = self.cpu.as_mut()
        {
            c.periods = None;
            c.throttled_periods = None;
            c.throttled_seconds = None;
        }
    }
}

/// Reads a small kernel file into `buf` (reused between reads) and returns it as text; `None` if it cannot
/// be read (the cgroup vanished, the controller is absent) or is not UTF-8.
///
/// cgroup and proc files are seq_files: one read returns everything that fits, and a read that does not
/// fill the buffer has reached the end. So a file costs open + one read + close, not the extra read to
/// see end-of-file, which matters at thousands of files per scrape.
pub fn read_into<'a>(path: &Path, buf: &'a mut Vec<u8>) -> Option<&'a str> {
    if buf.len() < 16 * 1024 {
        buf.resize(16 * 1024, 0);
    }
    if KEEP_OPEN.load(Ordering::Relaxed)
        && let Some(n) = KEPT.read_at_start(path, buf)
    {
        return std::str::from_utf8(&buf[..n]).ok();
    }
    let mut f = std::fs::File::open(path).ok()?;
    let mut total = 0;
    loop {
        let n = f.read(&mut buf[total..]).ok()?;
        total += n;
        if n == 0 || total < buf.len() {
            break;
        }
        let grown = buf.len() * 2;
        buf.resize(grown, 0);
    }
    std::str::from_utf8(&buf[..total]).ok()
}

/// `--collector.cgroup.keep-open`: cgroup files stay open between scrapes and are read again with
/// pread at offset 0 (a seq_file regenerates its content then). That is about ten times cheaper than
/// open + read + close, but each open cgroup file pins a kernel buffer (a page), charged to the
/// exporter's own memory cgroup: about 15 files per container.
static KEEP_OPEN: AtomicBool = AtomicBool::new(false);
static KEPT: LazyLock<KeptFiles> = LazyLock::new(KeptFiles::default);

/// At most this many files are kept; past it files are read the ordinary way. Leaves room below the
/// open-files limit for everything else (sockets, directories, /proc).
static KEEP_MAX: AtomicUsize = AtomicUsize::new(0);
static KEPT_NOW: AtomicUsize = AtomicUsize::new(0);

/// Turns keep-open mode on or off; `max_files` bounds how many files it may keep open.
pub fn set_keep_open(on: bool, max_files: usize) {
    KEEP_MAX.store(max_files, Ordering::Relaxed);
    KEEP_OPEN.store(on, Ordering::Relaxed);
}

/// Closes the kept files not read since the previous call (their cgroups are gone). Called once per
/// collection.
pub fn sweep_kept() {
    if KEEP_OPEN.load(Ordering::Relaxed) {
        KEPT.sweep();
    }
}

/// Number of files currently kept open.
pub fn kept_count() -> usize {
    KEPT.shards
        .iter()
        .map(|s| s.lock().map(|m| m.len()).unwrap_or(0))
        .sum()
}

const SHARDS: usize = 16;

#[derive(Default)]
struct KeptFiles {
    /// (file, generation of its last read), sharded by path hash to keep lock contention low.
    shards: [Mutex<HashMap<PathBuf, (std::fs::File, u64)>>; SHARDS],
    generation: AtomicU64,
}

impl KeptFiles {
    fn shard(&self, path: &Path) -> &Mutex<HashMap<PathBuf, (std::fs::File, u64)>> {
        let h = path
            .as_os_str()
            .as_encoded_bytes()
            .iter()
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(*b as usize));
        &self.shards[h % SHARDS]
    }

    /// Reads the whole file from offset 0 into `buf`; opens and keeps it on first use. `None` when the file
    /// cannot be opened or read (the cgroup is gone).
    fn read_at_start(&self, path: &Path, buf: &mut Vec<u8>) -> Option<usize> {
        let generation = self.generation.load(Ordering::Relaxed);
        let mut map = self.shard(path).lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(path) {
            if KEPT_NOW.load(Ordering::Relaxed) >= KEEP_MAX.load(Ordering::Relaxed) {
                return None; // full: read this one the ordinary way
            }
            let f = std::fs::File::open(path).ok()?;
            map.insert(path.to_path_buf(), (f, generation));
            KEPT_NOW.fetch_add(1, Ordering::Relaxed);
        }
        let (f, seen) = map.get_mut(path)?;
        *seen = generation;
        let mut total = 0;
        loop {
            match f.read_at(&mut buf[total..], total as u64) {
                Ok(n) => {
                    total += n;
                    if n == 0 || total < buf.len() {
                        return Some(total);
                    }
                    let grown = buf.len() * 2;
                    buf.resize(grown, 0);
                }
                Err(_) => {
                    map.remove(path);
                    KEPT_NOW.fetch_sub(1, Ordering::Relaxed);
                    return None;
                }
            }
        }
    }

    fn sweep(&self) {
        let current = self.generation.fetch_add(1, Ordering::Relaxed);
        for shard in &self.shards {
            let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
            let before = map.len();
            map.retain(|_, (_, seen)| *seen == current);
            KEPT_NOW.fetch_sub(before - map.len(), Ordering::Relaxed);
        }
    }
}

/// A file holding one number.
pub fn read_num(path: &Path, buf: &mut Vec<u8>) -> Option<f64> {
    num(read_into(path, buf)?.trim())
}

/// `key value` lines (memory.stat, cpu.stat, memory.events) as pairs.
pub fn flat_keyed(text: &str) -> impl Iterator<Item = (&str, f64)> {
    text.lines().filter_map(|l| {
        let mut f = l.split_whitespace();
        let k = f.next()?;
        let v = num(f.next()?)?;
        Some((k, v))
    })
}

pub fn get(text: &str, key: &str) -> Option<f64> {
    flat_keyed(text).find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// Parses a PSI file (`some ... total=<µs>` / `full ... total=<µs>`) into seconds.
pub fn parse_psi(text: &str) -> Option<Psi> {
    let mut psi = Psi::default();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let kind = f.next()?;
        let total = f.find_map(|kv| kv.strip_prefix("total=")).and_then(num)? / 1e6;
        match kind {
            "some" => psi.some = Some(total),
            "full" => psi.full = Some(total),
            _ => {}
        }
    }
    psi.some.map(|_| psi)
}

/// usage − inactive file, never below 0 (cAdvisor's working set).
pub fn working_set(usage: Option<f64>, inactive_file: Option<f64>) -> Option<f64> {
    let u = usage?;
    Some(match inactive_file {
        Some(i) if i < u => u - i,
        Some(_) => 0.0,
        None => u,
    })
}

/// Memory limits above 2^62 are the kernel's "unlimited" (v1 prints 9223372036854771712); report 0.
pub fn limit(v: Option<f64>) -> Option<f64> {
    v.map(|x| if x >= 4611686018427387904.0 { 0.0 } else { x })
}
