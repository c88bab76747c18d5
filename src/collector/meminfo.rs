//! `meminfo`: every /proc/meminfo field as `node_memory_<Field>[_bytes]`, named as node_exporter does.

use super::{Paths, num, read};
use crate::expose::Exposable;
use crate::scrape::{CollectError, Collector};

/// `(metric name suffix, value)`: `MemTotal_bytes`, `Active_anon_bytes`, `HugePages_Total`, ...
#[derive(Debug, Clone, PartialEq)]
pub struct MeminfoSample {
    pub fields: Vec<(String, f64)>,
}

impl MeminfoSample {
    pub fn get(&self, name: &str) -> Option<f64> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// `Active(anon)` becomes `Active_anon` (node_exporter's rule); anything else outside `[A-Za-z0-9_]`
/// becomes `_`, so a hostile key can never make an invalid metric name.
fn field_name(key: &str) -> String {
    let key = match (key.find('('), key.rfind(')')) {
        (Some(o), Some(c)) if o < c => format!("{}_{}{}", &key[..o], &key[o + 1..c], &key[c + 1..]),
        _ => key.to_string(),
    };
    crate::identity::sanitize(&key)
}

pub fn parse(text: &str) -> Result<MeminfoSample, String> {
    let mut fields: Vec<(String, f64)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let (key, rest) = line
            .split_once(':')
            .ok_or_else(|| format!("no ':' in line {line:?}"))?;
        let mut parts = rest.split_whitespace();
        let value = parts
            .next()
            .ok_or_else(|| format!("no value in line {line:?}"))?;
        let mut v = num(value).ok_or_else(|| format!("bad value {value:?} in line {line:?}"))?;
        let mut name = field_name(key.trim());
        match parts.next() {
            Some("kB") => {
                v *= 1024.0;
                name.push_str("_bytes");
            }
            Some(unit) => return Err(format!("unknown unit {unit:?} in line {line:?}")),
            None => {}
        }
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("bad field name in line {line:?}"));
        }
        // Keep the first of duplicate names so each series is emitted once.
        if !fields.iter().any(|(n, _)| *n == name) {
            fields.push((name, v));
        }
    }
    if fields.is_empty() {
        return Err("no fields".to_string());
    }
    Ok(MeminfoSample { fields })
}

pub struct MeminfoCollector {
    paths: Paths,
}

impl MeminfoCollector {
    pub fn new(paths: Paths) -> Self {
        MeminfoCollector { paths }
    }
}

impl Collector for MeminfoCollector {
    fn name(&self) -> &'static str {
        "meminfo"
    }
    fn collect(&self) -> Result<Box<dyn Exposable>, CollectError> {
        let path = self.paths.proc("meminfo");
        let s = parse(&read(&path)?).map_err(|e| CollectError::parse(&path, e))?;
        Ok(Box::new(s))
    }
}
