//! `time`: the system clock, the local time zone, and clock sources from sysfs.

use std::ffi::CStr;

use super::Paths;
use crate::expose::Exposable;
use crate::scrape::{CollectError, Collector};

#[derive(Debug, Clone, PartialEq)]
pub struct ClockSource {
    /// The N of clocksourceN.
    pub device: String,
    pub available: Vec<String>,
    pub current: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TimeSample {
    pub now: f64,
    pub zone: Option<(String, f64)>,
    pub clocksources: Vec<ClockSource>,
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
pub fn read_clocksources(paths: &Paths) -> Vec<ClockSource> {
    let dir = paths.sys("devices/system/clocksource");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<ClockSource> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let device = name.strip_prefix("clocksource")?.to_string();
            let read = |f: &str| std::fs::read_to_string(e.path().join(f)).ok();
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
    out
}

pub struct TimeCollector {
    paths: Paths,
}

impl TimeCollector {
    pub fn new(paths: Paths) -> Self {
        TimeCollector { paths }
    }
}

impl Collector for TimeCollector {
    fn name(&self) -> &'static str {
        "time"
    }
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
