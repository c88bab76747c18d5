//! `loadavg`: 1, 5 and 15 minute load averages from /proc/loadavg.

use super::{Paths, num, read};
use crate::expose::Exposable;
use crate::scrape::{CollectError, Collector};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadavgSample {
    pub load1: f64,
    pub load5: f64,
    pub load15: f64,
}

pub fn parse(text: &str) -> Result<LoadavgSample, String> {
    let mut f = text.split_whitespace();
    let mut next = |what: &str| -> Result<f64, String> {
        let s = f.next().ok_or_else(|| format!("missing {what}"))?;
        num(s).ok_or_else(|| format!("bad {what} value {s:?}"))
    };
    Ok(LoadavgSample {
        load1: next("load1")?,
        load5: next("load5")?,
        load15: next("load15")?,
    })
}

pub struct LoadavgCollector {
    paths: Paths,
}

impl LoadavgCollector {
    pub fn new(paths: Paths) -> Self {
        LoadavgCollector { paths }
    }
}

impl Collector for LoadavgCollector {
    fn name(&self) -> &'static str {
        "loadavg"
    }
    fn collect(&self) -> Result<Box<dyn Exposable>, CollectError> {
        let path = self.paths.proc("loadavg");
        let s = parse(&read(&path)?).map_err(|e| CollectError::parse(&path, e))?;
        Ok(Box::new(s))
    }
}
