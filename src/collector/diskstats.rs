//! `diskstats`: per-device I/O statistics from /proc/diskstats.

use regex::Regex;

use super::{Paths, num, read};
use crate::expose::Exposable;
use crate::scrape::{CollectError, Collector};

/// node_exporter's default: partitions and virtual devices whose whole disk is already counted.
pub const DEFAULT_DEVICE_EXCLUDE: &str = r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$";

/// Sector size used by /proc/diskstats, whatever the device's real sector size.
pub const SECTOR_BYTES: f64 = 512.0;

/// One device's fields after major, minor and name, in file order. Kernels print 11 (2.6+), 15 (4.18+)
/// or 17 (5.5+) of them; only those present are kept.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskStat {
    pub device: String,
    pub fields: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DiskstatsSample {
    pub disks: Vec<DiskStat>,
}

pub fn parse(text: &str) -> Result<Vec<DiskStat>, String> {
    let mut disks = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(major), Some(minor), Some(device)) = (f.next(), f.next(), f.next()) else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(format!("truncated line {line:?}"));
        };
        if num(major).is_none() || num(minor).is_none() {
            return Err(format!("bad device number in line {line:?}"));
        }
        let mut fields = Vec::with_capacity(17);
        for field in f.take(17) {
            fields.push(num(field).ok_or_else(|| format!("bad value {field:?} for {device}"))?);
        }
        if fields.len() < 11 {
            return Err(format!(
                "truncated line for {device}: {} of at least 11 fields",
                fields.len()
            ));
        }
        if !disks.iter().any(|d: &DiskStat| d.device == device) {
            disks.push(DiskStat {
                device: device.to_string(),
                fields,
            });
        }
    }
    Ok(disks)
}

pub struct DiskstatsCollector {
    paths: Paths,
    exclude: Regex,
}

impl DiskstatsCollector {
    pub fn new(paths: Paths, exclude: Regex) -> Self {
        DiskstatsCollector { paths, exclude }
    }
}

impl Collector for DiskstatsCollector {
    fn name(&self) -> &'static str {
        "diskstats"
    }
    fn collect(&self) -> Result<Box<dyn Exposable>, CollectError> {
        let path = self.paths.proc("diskstats");
        let mut disks = parse(&read(&path)?).map_err(|e| CollectError::parse(&path, e))?;
        disks.retain(|d| !self.exclude.is_match(&d.device));
        Ok(Box::new(DiskstatsSample { disks }))
    }
}
