//! `filesystem`: size, free space and inodes of mounted filesystems, from mountinfo and statvfs(3).
//!
//! A mount whose statvfs does not answer within `--collector.filesystem.mount-timeout` (a dead NFS server,
//! say) is reported with `node_filesystem_device_error` 1 and is not asked again until the stuck call
//! returns, so a hung mount never hangs the scrape and never piles up threads.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use regex::Regex;

use super::{Paths, read};
use crate::expose::Exposable;
use crate::scrape::{CollectError, Collector};

/// node_exporter's default mount points to ignore (Linux).
pub const DEFAULT_MOUNT_POINTS_EXCLUDE: &str =
    r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
/// node_exporter's default filesystem types to ignore (Linux).
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$";

/// One line of /proc/<pid>/mountinfo, with the octal escapes (`\040` for a space) decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    pub device: String,
    pub mountpoint: String,
    pub fstype: String,
    pub read_only: bool,
}

/// statvfs figures of one filesystem, in bytes and inodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FsUsage {
    pub size: f64,
    pub free: f64,
    pub avail: f64,
    pub files: f64,
    pub files_free: f64,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FsStat {
    pub mount: Mount,
    /// `None`: statvfs failed or timed out (device_error).
    pub usage: Option<FsUsage>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FilesystemSample {
    pub filesystems: Vec<FsStat>,
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo: `id parent maj:min root mountpoint options [optional...] - fstype source superopts`.
pub fn parse_mountinfo(text: &str) -> Result<Vec<Mount>, String> {
    let mut mounts = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(' ').collect();
        let sep = fields
            .iter()
            .position(|f| *f == "-")
            .ok_or_else(|| format!("no ' - ' separator in line {line:?}"))?;
        if sep < 6 || fields.len() < sep + 3 {
            return Err(format!("truncated line {line:?}"));
        }
        let options = fields[5];
        mounts.push(Mount {
            mountpoint: unescape(fields[4]),
            read_only: options.split(',').any(|o| o == "ro"),
            fstype: unescape(fields[sep + 1]),
            device: unescape(fields[sep + 2]),
        });
    }
    Ok(mounts)
}

/// statvfs(3) of a path.
pub fn statvfs(path: &Path) -> std::io::Result<FsUsage> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: c is a valid NUL-terminated path; st is a plain C struct that statvfs fills.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let frsize = st.f_frsize as f64;
    Ok(FsUsage {
        size: st.f_blocks as f64 * frsize,
        free: st.f_bfree as f64 * frsize,
        avail: st.f_bavail as f64 * frsize,
        files: st.f_files as f64,
        files_free: st.f_ffree as f64,
        read_only: st.f_flag & libc::ST_RDONLY != 0,
    })
}

pub struct FilesystemCollector {
    paths: Paths,
    mount_points_exclude: Regex,
    fs_types_exclude: Regex,
    timeout: Duration,
    /// Mount points whose statvfs call is in flight (stuck, if it outlives a scrape).
    stuck: Arc<Mutex<HashSet<String>>>,
}

impl FilesystemCollector {
    pub fn new(
        paths: Paths,
        mount_points_exclude: Regex,
        fs_types_exclude: Regex,
        timeout: Duration,
    ) -> Self {
        FilesystemCollector {
            paths,
            mount_points_exclude,
            fs_types_exclude,
            timeout,
            stuck: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// The mounts to report: the host's (pid 1's) mount table, falling back to our own.
    fn mounts(&self) -> Result<Vec<Mount>, CollectError> {
        let primary = self.paths.proc("1/mountinfo");
        let (path, text) = match read(&primary) {
            Ok(t) => (primary, t),
            Err(_) => {
                let fallback = self.paths.proc("self/mountinfo");
                let t = read(&fallback)?;
                (fallback, t)
            }
        };
        let mut mounts = parse_mountinfo(&text).map_err(|e| CollectError::parse(&path, e))?;
        for m in &mut mounts {
            m.mountpoint = self.paths.strip_rootfs(&m.mountpoint);
        }
        mounts.retain(|m| {
            !self.mount_points_exclude.is_match(&m.mountpoint)
                && !self.fs_types_exclude.is_match(&m.fstype)
        });
        // A mount point mounted over again shows what the last mount holds: keep only that one, so one
        // statvfs answer is never reported twice under different devices.
        let mut seen = HashSet::new();
        let mut unique: Vec<Mount> = mounts
            .into_iter()
            .rev()
            .filter(|m| seen.insert(m.mountpoint.clone()))
            .collect();
        unique.reverse();
        Ok(unique)
    }

    fn lock_stuck(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.stuck.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Collector for FilesystemCollector {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn collect(&self) -> Result<Box<dyn Exposable>, CollectError> {
        let mounts = self.mounts()?;
        let (tx, rx) = mpsc::channel::<(usize, Option<FsUsage>)>();
        let mut pending = 0;
        let mut results: Vec<Option<FsUsage>> = vec![None; mounts.len()];
        for (i, m) in mounts.iter().enumerate() {
            // A mount still in flight from an earlier scrape is stuck: report device_error, do not ask again.
            if !self.lock_stuck().insert(m.mountpoint.clone()) {
                continue;
            }
            let target: PathBuf = self.paths.rootfs_path(&m.mountpoint);
            let tx = tx.clone();
            let in_flight = self.stuck.clone();
            let mountpoint = m.mountpoint.clone();
            let spawned = std::thread::Builder::new()
                .name("statvfs".into())
                .spawn(move || {
                    let usage = match statvfs(&target) {
                        Ok(u) => Some(u),
                        Err(e) => {
                            tracing::debug!(mountpoint = %mountpoint, error = %e, "statvfs failed");
                            None
                        }
                    };
                    in_flight
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&mountpoint);
                    let _ = tx.send((i, usage));
                });
            match spawned {
                Ok(_) => pending += 1,
                Err(_) => {
                    self.lock_stuck().remove(&m.mountpoint);
                }
            }
        }
        drop(tx);
        let deadline = Instant::now() + self.timeout;
        let mut answered = vec![false; mounts.len()];
        while pending > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((i, usage)) => {
                    results[i] = usage;
                    answered[i] = true;
                    pending -= 1;
                }
                Err(_) => break,
            }
        }
        if pending > 0 {
            for (i, m) in mounts.iter().enumerate() {
                if !answered[i] && self.lock_stuck().contains(&m.mountpoint) {
                    tracing::warn!(
                        mountpoint = %m.mountpoint,
                        timeout = ?self.timeout,
                        "statvfs did not answer in time (--collector.filesystem.mount-timeout); \
                         reporting device_error=1 until it does"
                    );
                }
            }
        }
        let filesystems = mounts
            .into_iter()
            .zip(results)
            .map(|(mount, usage)| FsStat { mount, usage })
            .collect();
        Ok(Box::new(FilesystemSample { filesystems }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape(r"/mnt/with\040space"), "/mnt/with space");
        assert_eq!(unescape(r"/a\\b"), r"/a\\b");
        assert_eq!(unescape(r"/end\04"), r"/end\04");
    }
}
