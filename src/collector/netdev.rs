//! `netdev`: per-interface counters from /proc/net/dev.

use regex::Regex;

use super::{Paths, num, read};
use crate::expose::Exposable;
use crate::scrape::{CollectError, Collector};

/// The /proc/net/dev columns in file order, named as node_exporter's `node_network_<name>_total`.
pub const FIELDS: [&str; 16] = [
    "receive_bytes",
    "receive_packets",
    "receive_errs",
    "receive_drop",
    "receive_fifo",
    "receive_frame",
    "receive_compressed",
    "receive_multicast",
    "transmit_bytes",
    "transmit_packets",
    "transmit_errs",
    "transmit_drop",
    "transmit_fifo",
    "transmit_colls",
    "transmit_carrier",
    "transmit_compressed",
];

#[derive(Debug, Clone, PartialEq)]
pub struct NetDev {
    pub device: String,
    pub values: [f64; 16],
}

#[derive(Debug, Clone, PartialEq)]
pub struct NetdevSample {
    pub devices: Vec<NetDev>,
}

/// Parses /proc/net/dev. The name is split off at the first ':' because the kernel prints no space
/// between the name and a wide first counter (`eth0:1234567890 ...`).
pub fn parse(text: &str) -> Result<Vec<NetDev>, String> {
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

pub struct NetdevCollector {
    paths: Paths,
    include: Option<Regex>,
    exclude: Option<Regex>,
}

impl NetdevCollector {
    pub fn new(paths: Paths, include: Option<Regex>, exclude: Option<Regex>) -> Self {
        NetdevCollector {
            paths,
            include,
            exclude,
        }
    }
}

impl Collector for NetdevCollector {
    fn name(&self) -> &'static str {
        "netdev"
    }
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
