//! `meminfo`: every /proc/meminfo field as `node_memory_<Field>[_bytes]`, named as node_exporter does.

use crate::sample::node::{MeminfoSample};
use super::{Built, Context, Decl, Paths, read};
use crate::parse::num;
use std::sync::Arc;

use crate::expose::Exposable;
use crate::scrape::{CollectError, Collector};

pub(crate) const DECL: Decl = Decl {
    name: "meminfo",
    default_enabled: true,
    build,
};

fn build(cx: &Context<'_>) -> Result<Built, String> {
    Ok(Built::Run(Arc::new(MeminfoCollector::new(cx.paths.clone()))))
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

pub(crate) fn parse(text: &str) -> Result<MeminfoSample, String> {
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

pub(crate) struct MeminfoCollector {
    paths: Paths,
}

impl MeminfoCollector {
    pub(crate) fn new(paths: Paths) -> Self {
        MeminfoCollector { paths }
    }
}

impl Collector for MeminfoCollector {
    fn collect(&self) -> Result<Box<dyn Exposable>, CollectError> {
        let path = self.paths.proc("meminfo");
        let s = parse(&read(&path)?).map_err(|e| CollectError::parse(&path, e))?;
        Ok(Box::new(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{procfs_member, fields_of, f};

    #[test]
    fn meminfo_from_fixture() {
        let text = procfs_member("fixtures/proc/meminfo");
        let s = parse(&text).unwrap();
        assert_eq!(s.fields.len(), text.lines().count());
        assert_eq!(
            s.get("MemTotal_bytes"),
            Some(f(fields_of(&text, "MemTotal:")[1]) * 1024.0)
        );
        assert_eq!(
            s.get("Active_anon_bytes"),
            Some(f(fields_of(&text, "Active(anon):")[1]) * 1024.0)
        );
        assert_eq!(
            s.get("HugePages_Total"),
            Some(f(fields_of(&text, "HugePages_Total:")[1]))
        );
        assert_eq!(
            s.get("VmallocTotal_bytes"),
            Some(f(fields_of(&text, "VmallocTotal:")[1]) * 1024.0)
        );
    }

    #[test]
    fn meminfo_hostile() {
        assert!(parse("").is_err());
        assert!(
            parse("MemTotal:\n")
                .unwrap_err()
                .contains("MemTotal")
        );
        assert!(parse("MemTotal 1 kB\n").is_err());
        assert!(
            parse("MemTotal: 1 MB\n")
                .unwrap_err()
                .contains("unit")
        );
        // Strange key characters can never make an invalid metric name.
        let s = parse("Weird key{x}: 5 kB\n").unwrap();
        assert_eq!(s.fields[0].0, "Weird_key_x__bytes");
        let s = parse("Huge: 99999999999999999999 kB\n").unwrap();
        assert_eq!(s.fields[0].1, 99999999999999999999.0 * 1024.0);
    }
}
