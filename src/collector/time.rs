//! `time`: the system clock, the local time zone, and clock sources from sysfs.

use crate::sample::node::{ClockSource, TimeSample};
use std::ffi::CStr;

use super::{Built, Context, Decl, Paths};
use std::sync::Arc;

use crate::expose::Exposable;
use crate::scrape::{CollectError, Collector};

pub(crate) const DECL: Decl = Decl {
    name: "time",
    default_enabled: true,
    build,
};

fn build(cx: &Context<'_>) -> Result<Built, String> {
    Ok(Built::Run(Arc::new(TimeCollector::new(cx.paths.clone()))))
}

/// The local time zone's abbreviation and offset from UTC in seconds (honours TZ and /etc/localtime).
fn local_zone(now: i64) -> Option<(String, f64)> {
    let t: libc::time_t = now as libc::time_t;
    // SAFETY: tm is a plain C struct; localtime_r fills it and returns null on failure.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    if r.is_null() || tm.tm_zone.is_null() {
        return None;
    }
    // SAFETY: tm_zone points at a NUL-terminated static string owned by libc's tz state.
    let name = unsafe { CStr::from_ptr(tm.tm_zone) }
        .to_string_lossy()
        .into_owned();
    Some((name, tm.tm_gmtoff as f64))
}

/// Reads every clocksourceN folder under `<sysfs>/devices/system/clocksource`.
pub(crate) fn read_clocksources(paths: &Paths) -> Vec<ClockSource> {
    let dir = paths.sys("devices/system/clocksource");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<ClockSource> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let device = name.strip_prefix("clocksource")?.to_string();
            let read = |f: &str| super::read_capped(&e.path().join(f)).ok();
            Some(ClockSource {
                device,
                available: read("available_clocksource")
                    .map(|s| s.split_whitespace().map(str::to_string).collect())
                    .unwrap_or_default(),
                current: read("current_clocksource")
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty()),
            })
        })
        .collect();
    out.sort_by(|a, b| a.device.cmp(&b.device));
    for c in &mut out {
        crate::parse::first_of_each(&mut c.available, String::clone);
    }
    out
}

pub(crate) struct TimeCollector {
    paths: Paths,
}

impl TimeCollector {
    pub(crate) fn new(paths: Paths) -> Self {
        TimeCollector { paths }
    }
}

impl Collector for TimeCollector {
    fn collect(&self) -> Result<Box<dyn Exposable>, CollectError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| CollectError::Other(format!("system clock is before 1970: {e}")))?;
        Ok(Box::new(TimeSample {
            now: now.as_secs_f64(),
            zone: local_zone(now.as_secs() as i64),
            clocksources: read_clocksources(&self.paths),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{procfs_member, extract_procfs};

    #[test]
    fn clocksources_from_fixture_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        extract_procfs(dir.path());
        let paths = crate::collector::Paths {
            sysfs: dir.path().join("fixtures/sys"),
            ..Default::default()
        };
        let cs = read_clocksources(&paths);
        let available =
            procfs_member("fixtures/sys/devices/system/clocksource/clocksource0/available_clocksource");
        let current =
            procfs_member("fixtures/sys/devices/system/clocksource/clocksource0/current_clocksource");
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].device, "0");
        assert_eq!(
            cs[0].available,
            available.split_whitespace().collect::<Vec<_>>()
        );
        assert_eq!(cs[0].current.as_deref(), Some(current.trim()));
        // No clocksource folder (a container without /sys): nothing, not an error.
        let none = crate::collector::Paths {
            sysfs: dir.path().join("nowhere"),
            ..Default::default()
        };
        assert!(read_clocksources(&none).is_empty());
    }
}
