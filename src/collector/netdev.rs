//! `netdev`: per-interface counters from /proc/net/dev.

use crate::sample::node::{NetDev, NetdevSample};
use regex::Regex;

use super::{Built, Context, Decl, Paths, read};
use crate::parse::num;
use std::sync::Arc;

use crate::expose::Exposable;
use crate::scrape::{CollectError, Collector};

pub(crate) const DECL: Decl = Decl {
    name: "netdev",
    default_enabled: true,
    build,
};

fn build(cx: &Context<'_>) -> Result<Built, String> {
    Ok(Built::Run(Arc::new(NetdevCollector::new(
        cx.paths.clone(),
        cx.flags.netdev_device_include.clone(),
        cx.flags.netdev_device_exclude.clone(),
    ))))
}

/// Parses /proc/net/dev. The name is split off at the first ':' because the kernel prints no space
/// between the name and a wide first counter (`eth0:1234567890 ...`).
pub(crate) fn parse(text: &str) -> Result<Vec<NetDev>, String> {
    let mut devices = Vec::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue; // the two header lines have '|' but no ':'
        };
        let device = name.trim();
        if device.is_empty() || device.contains('|') {
            return Err(format!("bad line {line:?}"));
        }
        let mut values = [0.0; 16];
        let mut n = 0;
        for (slot, field) in values.iter_mut().zip(rest.split_whitespace()) {
            *slot = num(field).ok_or_else(|| format!("bad value {field:?} for {device}"))?;
            n += 1;
        }
        if n < 16 {
            return Err(format!("truncated line for {device}: {n} of 16 fields"));
        }
        if !devices.iter().any(|d: &NetDev| d.device == device) {
            devices.push(NetDev {
                device: device.to_string(),
                values,
            });
        }
    }
    Ok(devices)
}

pub(crate) struct NetdevCollector {
    paths: Paths,
    include: Option<Regex>,
    exclude: Option<Regex>,
}

impl NetdevCollector {
    pub(crate) fn new(paths: Paths, include: Option<Regex>, exclude: Option<Regex>) -> Self {
        NetdevCollector {
            paths,
            include,
            exclude,
        }
    }
}

impl Collector for NetdevCollector {
    fn collect(&self) -> Result<Box<dyn Exposable>, CollectError> {
        let path = self.paths.proc("net/dev");
        let mut devices = parse(&read(&path)?).map_err(|e| CollectError::parse(&path, e))?;
        devices.retain(|d| {
            self.include.as_ref().is_none_or(|r| r.is_match(&d.device))
                && !self.exclude.as_ref().is_some_and(|r| r.is_match(&d.device))
        });
        Ok(Box::new(NetdevSample { devices }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{f, procfs_member};

    #[test]
    fn netdev_from_fixture() {
        let text = procfs_member("fixtures/proc/net/dev");
        let devs = parse(&text).unwrap();
        assert_eq!(devs.len(), text.lines().count() - 2);
        for d in &devs {
            let line = text
                .lines()
                .find(|l| l.split(':').next().unwrap().trim() == d.device)
                .unwrap();
            let raw: Vec<f64> = line
                .split_once(':')
                .unwrap()
                .1
                .split_whitespace()
                .map(f)
                .collect();
            assert_eq!(d.values.to_vec(), raw, "{}", d.device);
        }
    }

    #[test]
    fn netdev_hostile() {
        let text = procfs_member("fixtures/proc/net/dev");
        // The kernel prints no space after the colon once the first counter is wide.
        let glued = text.replace("  eth0: 874354587", "  eth0:874354587");
        let devs = parse(&glued).unwrap();
        assert_eq!(
            devs.iter().find(|d| d.device == "eth0").unwrap().values[0],
            874354587.0
        );
        let truncated = text.replace(
            "docker0:    2568      38    0    0    0     0          0         0      438",
            "docker0: 2568 38",
        );
        assert!(parse(&truncated).unwrap_err().contains("docker0"));
        let garbage = text.replace("vethf345468:     648", "vethf345468:     6x8");
        assert!(parse(&garbage).is_err());
        assert!(parse("").unwrap().is_empty());
    }
}
