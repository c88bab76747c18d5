//! Thin system calls and kernel-file readers the collectors and the background walkers share. A leaf: it
//! imports only the sample types.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::sample::node::FsUsage;

/// statvfs(3) of a path.
pub(crate) fn statvfs(path: &Path) -> std::io::Result<FsUsage> {
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

/// The largest /proc or /sys file read (mountinfo of a node with tens of thousands of mounts, net/dev
/// with tens of thousands of interfaces). Anything bigger is not such a file (`/dev/zero` in its place).
const MAX_FILE: u64 = 16 << 20;

/// Reads a whole text file of at most [`MAX_FILE`] bytes.
pub(crate) fn read_capped(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_FILE + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_FILE {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB: not a kernel file",
            MAX_FILE >> 20
        )));
    }
    Ok(text)
}

/// Block device names by major:minor (partitions included), from the text of /proc/diskstats.
pub(crate) fn block_device_names(diskstats: &str) -> HashMap<(u32, u32), String> {
    let mut m = HashMap::new();
    for line in diskstats.lines() {
        let mut f = line.split_whitespace();
        if let (Some(maj), Some(min), Some(name)) = (f.next(), f.next(), f.next())
            && let (Ok(maj), Ok(min)) = (maj.parse(), min.parse())
        {
            m.insert((maj, min), name.to_string());
        }
    }
    m
}

/// A block device as cAdvisor labels it: `/dev/<name>`, else `major:minor` where the name is not known.
pub(crate) fn device_label(names: &HashMap<(u32, u32), String>, major: u32, minor: u32) -> String {
    match names.get(&(major, minor)) {
        Some(name) => format!("/dev/{name}"),
        None => format!("{major}:{minor}"),
    }
}

/// [`device_label`] of a device number (`st_dev`).
pub(crate) fn dev_label(names: &HashMap<(u32, u32), String>, dev: u64) -> String {
    device_label(names, libc::major(dev), libc::minor(dev))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every block device of this machine is named as its sysfs `uevent` names it (the layer walker's
    /// former lookup), and an unknown number falls back to `major:minor`.
    #[test]
    fn device_labels_agree_with_sysfs() {
        let names = block_device_names(&read_capped(Path::new("/proc/diskstats")).unwrap());
        assert!(!names.is_empty());
        for &(major, minor) in names.keys() {
            let uevent =
                std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/uevent")).unwrap();
            let devname = uevent
                .lines()
                .find_map(|l| l.strip_prefix("DEVNAME="))
                .unwrap();
            assert_eq!(
                device_label(&names, major, minor),
                format!("/dev/{devname}")
            );
        }
        assert_eq!(device_label(&names, 0, 4242), "0:4242");
    }
}
