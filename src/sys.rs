//! Thin system calls the readers share. A leaf: it imports only the sample types.

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
