//! `diskstats`: per-device I/O statistics from /proc/diskstats.

use crate::sample::node::{DiskStat, DiskstatsSample};
use regex::Regex;

use super::{Built, Context, Decl, Paths, read};
use crate::parse::num;
use std::sync::Arc;

use crate::expose::Exposable;
use crate::scrape::{CollectError, Collector};

pub(crate) const DECL: Decl = Decl {
    name: "diskstats",
    default_enabled: true,
    build,
};

fn build(cx: &Context<'_>) -> Result<Built, String> {
    Ok(Built::Run(Arc::new(DiskstatsCollector::new(
        cx.paths.clone(),
        cx.flags.diskstats_device_exclude.clone(),
    ))))
}

pub(crate) fn parse(text: &str) -> Result<Vec<DiskStat>, String> {
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
    crate::parse::first_of_each(&mut disks, |d| d.device.clone());
    Ok(disks)
}

pub(crate) struct DiskstatsCollector {
    paths: Paths,
    exclude: Regex,
}

impl DiskstatsCollector {
    pub(crate) fn new(paths: Paths, exclude: Regex) -> Self {
        DiskstatsCollector { paths, exclude }
    }
}

impl Collector for DiskstatsCollector {
    fn collect(&self) -> Result<Box<dyn Exposable>, CollectError> {
        let path = self.paths.proc("diskstats");
        let mut disks = parse(&read(&path)?).map_err(|e| CollectError::parse(&path, e))?;
        disks.retain(|d| !self.exclude.is_match(&d.device));
        Ok(Box::new(DiskstatsSample { disks }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{f, procfs_member};

    #[test]
    fn diskstats_from_fixture() {
        let text = procfs_member("fixtures/proc/diskstats");
        let disks = parse(&text).unwrap();
        // The fixture has one device name twice (sdb/sdc lines reuse major 8): each device is reported once.
        let mut names: Vec<&str> = text
            .lines()
            .map(|l| l.split_whitespace().nth(2).unwrap())
            .collect();
        names.dedup();
        assert!(disks.len() <= names.len());
        for d in &disks {
            let line = text
                .lines()
                .find(|l| l.split_whitespace().nth(2) == Some(&d.device))
                .unwrap();
            let raw: Vec<f64> = line.split_whitespace().skip(3).take(17).map(f).collect();
            assert_eq!(d.fields, raw, "{}", d.device);
        }
        // 11-, 15- and 17-field kernels are all in the fixture.
        let lens: std::collections::BTreeSet<usize> = disks.iter().map(|d| d.fields.len()).collect();
        assert_eq!(lens, [11usize, 15, 17].into_iter().collect());
    }

    #[test]
    fn diskstats_hostile() {
        assert!(
            parse("   8       0 sda 1 2 3")
                .unwrap_err()
                .contains("sda")
        );
        assert!(parse("   8       0").is_err());
        assert!(parse("   x       0 sda 1 2 3 4 5 6 7 8 9 10 11").is_err());
        let extra = "   8       0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20";
        assert_eq!(parse(extra).unwrap()[0].fields.len(), 17);
        assert!(parse("").unwrap().is_empty());
    }
}
