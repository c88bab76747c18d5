//! Reading cgroup files: one read per seq_file into a reused buffer, optionally kept open between
//! scrapes (`--collector.cgroup.keep-open`), plus the two conversions every reader applies.
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::parse::num;

/// Reads a small kernel file into `buf` (reused between reads) and returns it as text; `None` if it cannot
/// be read (the cgroup vanished, the controller is absent) or is not UTF-8.
///
/// cgroup and proc files are seq_files: one read returns everything that fits, and a read that does not
/// fill the buffer has reached the end. So a file costs open + one read + close, not the extra read to
/// see end-of-file, which matters at thousands of files per scrape.
pub(crate) fn read_into<'a>(path: &Path, buf: &'a mut Vec<u8>) -> Option<&'a str> {
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
        if buf.len() >= MAX_FILE {
            buf.truncate(16 * 1024);
            return Err(std::io::Error::other(format!(
                "larger than {} MiB: not a cgroup file",
                MAX_FILE >> 20
            )));
        }
        let grown = buf.len() * 2;
        buf.resize(grown, 0);
    }
}

/// The largest cgroup file read (the largest real ones are cgroup.procs of a cgroup with very many
/// processes: about 8 bytes a pid). Anything bigger is not a cgroup file (`/dev/zero` linked in place).
const MAX_FILE: usize = 4 << 20;

/// `--collector.cgroup.keep-open`: at most this many cgroup files are kept open at once, past it files are
/// read the ordinary way. Leaves room below the open-files limit for everything else (sockets,
/// directories, /proc).
static KEEP_MAX: AtomicUsize = AtomicUsize::new(0);
static KEPT_NOW: AtomicUsize = AtomicUsize::new(0);

/// Sets how many cgroup files keep-open mode may hold open at once.
pub(crate) fn set_keep_open_limit(max_files: usize) {
    KEEP_MAX.store(max_files, Ordering::Relaxed);
}

/// One cgroup's files kept open between scrapes (`--collector.cgroup.keep-open`), by file name: the names
/// Stevedore reads of one cgroup are unique across its controller folders. `None` records a file the
/// cgroup does not have, so it is not looked up again. Re-reading a kept file with pread at offset 0
/// costs about a tenth of open + read + close, but each one pins a kernel buffer (a page) charged to the
/// exporter's own memory cgroup. Dropping the set closes the files.
#[derive(Debug, Default)]
pub(crate) struct KeptFiles {
    files: Vec<(&'static str, Option<std::fs::File>)>,
}

impl KeptFiles {
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
pub(crate) struct Files<'a> {
    pub buf: &'a mut Vec<u8>,
    kept: Option<&'a mut KeptFiles>,
}

impl<'a> Files<'a> {
    /// Open, read and close every file.
    pub(crate) fn plain(buf: &'a mut Vec<u8>) -> Files<'a> {
        Files { buf, kept: None }
    }

    /// Keep the files open in `kept` between calls.
    pub(crate) fn kept(buf: &'a mut Vec<u8>, kept: &'a mut KeptFiles) -> Files<'a> {
        Files {
            buf,
            kept: Some(kept),
        }
    }

    /// The content of `dir/name`; `None` when the cgroup has no such file or it cannot be read.
    pub(crate) fn text(&mut self, dir: &Path, name: &'static str) -> Option<&str> {
        let Some(kept) = self.kept.as_deref_mut() else {
            return self.text_once(dir, name);
        };
        let n = Self::read_kept(kept, dir, name, self.buf)?;
        std::str::from_utf8(&self.buf[..n]).ok()
    }

    /// A file holding one number.
    pub(crate) fn num(&mut self, dir: &Path, name: &'static str) -> Option<f64> {
        num(self.text(dir, name)?.trim())
    }

    /// A file read rarely (limits, shares): opened, read and closed, never kept open.
    pub(crate) fn text_once(&mut self, dir: &Path, name: &str) -> Option<&str> {
        let n = read_whole(&std::fs::File::open(dir.join(name)).ok()?, self.buf).ok()?;
        std::str::from_utf8(&self.buf[..n]).ok()
    }

    /// A number read rarely, as [`Files::text_once`].
    pub(crate) fn num_once(&mut self, dir: &Path, name: &str) -> Option<f64> {
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

/// usage − inactive file, never below 0 (cAdvisor's working set).
pub(crate) fn working_set(usage: Option<f64>, inactive_file: Option<f64>) -> Option<f64> {
    let u = usage?;
    Some(match inactive_file {
        Some(i) if i < u => u - i,
        Some(_) => 0.0,
        None => u,
    })
}

/// Memory limits above 2^62 are the kernel's "unlimited" (v1 prints 9223372036854771712); report 0.
pub(crate) fn limit(v: Option<f64>) -> Option<f64> {
    v.map(|x| if x >= 4611686018427387904.0 { 0.0 } else { x })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_file_is_refused_not_read_to_the_end() {
        let mut buf = Vec::new();
        assert!(read_into(Path::new("/dev/zero"), &mut buf).is_none());
        assert!(
            buf.len() <= MAX_FILE,
            "the buffer is not kept at its largest"
        );
        let mut kept = KeptFiles::default();
        let mut files = Files::kept(&mut buf, &mut kept);
        assert!(files.text(Path::new("/dev"), "zero").is_none());
    }
}
