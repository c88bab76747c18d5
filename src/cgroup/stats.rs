//! Typed samples of one cgroup. Everything the kernel may not give is an `Option`, so "omit, never zero"
//! falls out of the types.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    let f = std::fs::File::open(path).ok()?;
    let n = read_whole(&f, buf).ok()?;
    std::str::from_utf8(&buf[..n]).ok()
}

/// Reads a seq_file from offset 0 into `buf`, growing it when the content does not fit; returns the length.
/// pread at offset 0 makes a kept-open seq_file generate its content afresh.
fn read_whole(f: &std::fs::File, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    if buf.len() < 16 * 1024 {
        buf.resize(16 * 1024, 0);
    }
    let mut total = 0;
    loop {
        let n = f.read_at(&mut buf[total..], total as u64)?;
        total += n;
        if n == 0 || total < buf.len() {
            return Ok(total);
        }
        let grown = buf.len() * 2;
        buf.resize(grown, 0);
    }
}

/// `--collector.cgroup.keep-open`: at most this many cgroup files are kept open at once, past it files are
/// read the ordinary way. Leaves room below the open-files limit for everything else (sockets,
/// directories, /proc).
static KEEP_MAX: AtomicUsize = AtomicUsize::new(0);
static KEPT_NOW: AtomicUsize = AtomicUsize::new(0);

/// Sets how many cgroup files keep-open mode may hold open at once.
pub fn set_keep_open_limit(max_files: usize) {
    KEEP_MAX.store(max_files, Ordering::Relaxed);
}

/// Number of cgroup files currently kept open.
pub fn kept_count() -> usize {
    KEPT_NOW.load(Ordering::Relaxed)
}

/// One cgroup's files kept open between scrapes (`--collector.cgroup.keep-open`), by file name: the names
/// Stevedore reads of one cgroup are unique across its controller folders. `None` records a file the
/// cgroup does not have, so it is not looked up again. Re-reading a kept file with pread at offset 0
/// costs about a tenth of open + read + close, but each one pins a kernel buffer (a page) charged to the
/// exporter's own memory cgroup. Dropping the set closes the files.
#[derive(Debug, Default)]
pub struct KeptFiles {
    files: Vec<(&'static str, Option<std::fs::File>)>,
    /// Inode of the cgroup folder the files belong to.
    ino: u64,
}

impl KeptFiles {
    /// An empty set for the cgroup whose folder has inode `ino`.
    pub fn new(ino: u64) -> KeptFiles {
        KeptFiles {
            files: Vec::new(),
            ino,
        }
    }

    pub fn ino(&self) -> u64 {
        self.ino
    }

    fn clear(&mut self) {
        let open = self.files.iter().filter(|(_, f)| f.is_some()).count();
        KEPT_NOW.fetch_sub(open, Ordering::Relaxed);
        self.files.clear();
    }
}

impl Drop for KeptFiles {
    fn drop(&mut self) {
        self.clear();
    }
}

/// How one cgroup's files are read: opened, read and closed each time, or through the cgroup's
/// [`KeptFiles`]. `buf` is reused between reads.
pub struct Files<'a> {
    pub buf: &'a mut Vec<u8>,
    kept: Option<&'a mut KeptFiles>,
}

impl<'a> Files<'a> {
    /// Open, read and close every file.
    pub fn plain(buf: &'a mut Vec<u8>) -> Files<'a> {
        Files { buf, kept: None }
    }

    /// Keep the files open in `kept` between calls.
    pub fn kept(buf: &'a mut Vec<u8>, kept: &'a mut KeptFiles) -> Files<'a> {
        Files {
            buf,
            kept: Some(kept),
        }
    }

    /// The content of `dir/name`; `None` when the cgroup has no such file or it cannot be read.
    pub fn text(&mut self, dir: &Path, name: &'static str) -> Option<&str> {
        let Some(kept) = self.kept.as_deref_mut() else {
            return self.text_once(dir, name);
        };
        let n = Self::read_kept(kept, dir, name, self.buf)?;
        std::str::from_utf8(&self.buf[..n]).ok()
    }

    /// A file holding one number.
    pub fn num(&mut self, dir: &Path, name: &'static str) -> Option<f64> {
        num(self.text(dir, name)?.trim())
    }

    /// A file read rarely (limits, shares): opened, read and closed, never kept open.
    pub fn text_once(&mut self, dir: &Path, name: &str) -> Option<&str> {
        let n = read_whole(&std::fs::File::open(dir.join(name)).ok()?, self.buf).ok()?;
        std::str::from_utf8(&self.buf[..n]).ok()
    }

    /// A number read rarely, as [`Files::text_once`].
    pub fn num_once(&mut self, dir: &Path, name: &str) -> Option<f64> {
        num(self.text_once(dir, name)?.trim())
    }

    fn read_kept(
        kept: &mut KeptFiles,
        dir: &Path,
        name: &'static str,
        buf: &mut Vec<u8>,
    ) -> Option<usize> {
        if let Some((_, slot)) = kept.files.iter().find(|(n, _)| *n == name) {
            match slot {
                None => return None, // the cgroup has no such file
                Some(f) => match read_whole(f, buf) {
                    Ok(n) => return Some(n),
                    // The cgroup was removed (and perhaps made again under the same path): every kept
                    // file of it is stale. Start over with fresh opens.
                    Err(_) => kept.clear(),
                },
            }
        }
        let opened = std::fs::File::open(dir.join(name));
        let n = match &opened {
            Ok(f) => Some(read_whole(f, buf).ok()?),
            Err(_) => None,
        };
        let keep = match opened {
            Ok(f) if KEPT_NOW.load(Ordering::Relaxed) < KEEP_MAX.load(Ordering::Relaxed) => {
                KEPT_NOW.fetch_add(1, Ordering::Relaxed);
                Some(Some(f))
            }
            Ok(_) => None, // at the limit: this one is read the ordinary way next time too
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(None),
            Err(_) => None,
        };
        if let Some(slot) = keep {
            kept.files.push((name, slot));
        }
        n
    }
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

/// The values of `keys` in `key value` lines, in one pass over the text (memory.stat has dozens of keys).
pub fn pick_keys<const N: usize>(text: &str, keys: &[&str; N]) -> [Option<f64>; N] {
    let mut v = [None; N];
    for (k, x) in flat_keyed(text) {
        if let Some(i) = keys.iter().position(|key| *key == k) {
            v[i] = Some(x);
        }
    }
    v
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
