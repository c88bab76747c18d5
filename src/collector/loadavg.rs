//! `loadavg`: 1, 5 and 15 minute load averages from /proc/loadavg.

use crate::sample::node::{LoadavgSample};
use super::{Built, Context, Decl, Paths, read};
use crate::parse::num;
use std::sync::Arc;

use crate::expose::Exposable;
use crate::scrape::{CollectError, Collector};

pub(crate) const DECL: Decl = Decl {
    name: "loadavg",
    default_enabled: true,
    build,
};

fn build(cx: &Context<'_>) -> Result<Built, String> {
    Ok(Built::Run(Arc::new(LoadavgCollector::new(cx.paths.clone()))))
}

pub(crate) fn parse(text: &str) -> Result<LoadavgSample, String> {
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

pub(crate) struct LoadavgCollector {
    paths: Paths,
}

impl LoadavgCollector {
    pub(crate) fn new(paths: Paths) -> Self {
        LoadavgCollector { paths }
    }
}

impl Collector for LoadavgCollector {
    fn collect(&self) -> Result<Box<dyn Exposable>, CollectError> {
        let path = self.paths.proc("loadavg");
        let s = parse(&read(&path)?).map_err(|e| CollectError::parse(&path, e))?;
        Ok(Box::new(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{procfs_member, f};

    #[test]
    fn loadavg_from_fixture() {
        let text = procfs_member("fixtures/proc/loadavg");
        let l = parse(&text).unwrap();
        let raw: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(
            (l.load1, l.load5, l.load15),
            (f(raw[0]), f(raw[1]), f(raw[2]))
        );
        assert!(parse("").is_err());
        assert!(parse("0.1 0.2").unwrap_err().contains("load15"));
        assert!(parse("0.1 nan 0.3 1/2 3").is_err());
    }
}
