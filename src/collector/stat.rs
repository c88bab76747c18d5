//! `stat`: interrupts, context switches, forks, boot time and run queue from /proc/stat.

use super::{Paths, num, read};
use crate::expose::Exposable;
use crate::scrape::{CollectError, Collector};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatSample {
    pub intr: Option<f64>,
    pub ctxt: Option<f64>,
    pub btime: Option<f64>,
    pub forks: Option<f64>,
    pub procs_running: Option<f64>,
    pub procs_blocked: Option<f64>,
}

pub fn parse(text: &str) -> Result<StatSample, String> {
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

pub struct StatCollector {
    paths: Paths,
}

impl StatCollector {
    pub fn new(paths: Paths) -> Self {
        StatCollector { paths }
    }
}

impl Collector for StatCollector {
    fn name(&self) -> &'static str {
        "stat"
    }
    fn collect(&self) -> Result<Box<dyn Exposable>, CollectError> {
        let path = self.paths.proc("stat");
        let s = parse(&read(&path)?).map_err(|e| CollectError::parse(&path, e))?;
        Ok(Box::new(s))
    }
}
