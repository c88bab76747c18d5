//! `stat`: interrupts, context switches, forks, boot time and run queue from /proc/stat.

use crate::sample::node::{StatSample};
use super::{Built, Context, Decl, Paths, read};
use crate::parse::num;
use std::sync::Arc;

use crate::expose::Exposable;
use crate::scrape::{CollectError, Collector};

pub(crate) const DECL: Decl = Decl {
    name: "stat",
    default_enabled: true,
    build,
};

fn build(cx: &Context<'_>) -> Result<Built, String> {
    Ok(Built::Run(Arc::new(StatCollector::new(cx.paths.clone()))))
}

pub(crate) fn parse(text: &str) -> Result<StatSample, String> {
    let mut s = StatSample::default();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(key), Some(value)) = (f.next(), f.next()) else {
            continue;
        };
        let slot = match key {
            "intr" => &mut s.intr,
            "ctxt" => &mut s.ctxt,
            "btime" => &mut s.btime,
            "processes" => &mut s.forks,
            "procs_running" => &mut s.procs_running,
            "procs_blocked" => &mut s.procs_blocked,
            _ => continue,
        };
        *slot = Some(num(value).ok_or_else(|| format!("bad value {value:?} for {key}"))?);
    }
    if s == StatSample::default() {
        return Err(
            "none of intr, ctxt, btime, processes, procs_running, procs_blocked found".to_string(),
        );
    }
    Ok(s)
}

pub(crate) struct StatCollector {
    paths: Paths,
}

impl StatCollector {
    pub(crate) fn new(paths: Paths) -> Self {
        StatCollector { paths }
    }
}

impl Collector for StatCollector {
    fn collect(&self) -> Result<Box<dyn Exposable>, CollectError> {
        let path = self.paths.proc("stat");
        let s = parse(&read(&path)?).map_err(|e| CollectError::parse(&path, e))?;
        Ok(Box::new(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{procfs_member, fields_of, f};

    #[test]
    fn stat_from_fixture() {
        let text = procfs_member("fixtures/proc/stat");
        let s = parse(&text).unwrap();
        assert_eq!(s.intr, Some(f(fields_of(&text, "intr ")[1])));
        assert_eq!(s.ctxt, Some(f(fields_of(&text, "ctxt ")[1])));
        assert_eq!(s.btime, Some(f(fields_of(&text, "btime ")[1])));
        assert_eq!(s.forks, Some(f(fields_of(&text, "processes ")[1])));
        assert_eq!(
            s.procs_running,
            Some(f(fields_of(&text, "procs_running ")[1]))
        );
        assert_eq!(
            s.procs_blocked,
            Some(f(fields_of(&text, "procs_blocked ")[1]))
        );
        assert!(parse("").is_err());
        assert!(parse("ctxt twelve\n").unwrap_err().contains("ctxt"));
        // A file without procs_* lines (old kernel) gives the rest.
        let old: String = text
            .lines()
            .filter(|l| !l.starts_with("procs_"))
            .map(|l| format!("{l}\n"))
            .collect();
        let s = parse(&old).unwrap();
        assert_eq!(s.procs_running, None);
        assert!(s.ctxt.is_some());
    }
}
