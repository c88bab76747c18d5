//! `uname`: the kernel's identification from uname(2), as node_uname_info.

use crate::sample::node::{UnameSample};
use super::{Built, Context, Decl};
use std::sync::Arc;

use crate::expose::Exposable;
use crate::scrape::{CollectError, Collector};

pub(crate) const DECL: Decl = Decl {
    name: "uname",
    default_enabled: true,
    build,
};

fn build(_cx: &Context<'_>) -> Result<Built, String> {
    Ok(Built::Run(Arc::new(UnameCollector)))
}

pub(crate) struct UnameCollector;

fn field(raw: &[libc::c_char]) -> String {
    // The kernel NUL-terminates every field; a field without NUL is read up to its end.
    let bytes: Vec<u8> = raw
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

pub(crate) fn uname() -> Result<UnameSample, CollectError> {
    // SAFETY: utsname is a plain C struct that uname(2) fills.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return Err(CollectError::Other(format!(
            "uname(2) failed: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(UnameSample {
        sysname: field(&u.sysname),
        release: field(&u.release),
        version: field(&u.version),
        machine: field(&u.machine),
        nodename: field(&u.nodename),
        domainname: field(&u.domainname),
    })
}

impl Collector for UnameCollector {
    fn collect(&self) -> Result<Box<dyn Exposable>, CollectError> {
        Ok(Box::new(uname()?))
    }
}

