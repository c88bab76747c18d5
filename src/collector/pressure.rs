//! `pressure`: pressure stall information (PSI) totals from /proc/pressure/{cpu,io,memory,irq}.

use super::{Paths, num};
use crate::expose::Exposable;
use crate::scrape::{CollectError, Collector};

/// `some` and `full` totals of one resource, in seconds. A line the kernel does not give is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Psi {
    pub some: Option<f64>,
    pub full: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PressureSample {
    pub cpu: Psi,
    pub io: Psi,
    pub memory: Psi,
    /// Only on kernels with CONFIG_IRQ_TIME_ACCOUNTING and PSI irq (6.1+).
    pub irq: Option<Psi>,
}

/// Parses one PSI file (`some avg10=.. avg60=.. avg300=.. total=<µs>` / `full ...`).
pub fn parse(text: &str) -> Result<Psi, String> {
    let mut psi = Psi::default();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some(kind) = f.next() else { continue };
        let total = f
            .find_map(|kv| kv.strip_prefix("total="))
            .ok_or_else(|| format!("no total= in line {line:?}"))?;
        let v = num(total).ok_or_else(|| format!("bad total {total:?}"))? / 1e6;
        match kind {
            "some" => psi.some = Some(v),
            "full" => psi.full = Some(v),
            _ => return Err(format!("unexpected line {line:?}")),
        }
    }
    if psi.some.is_none() {
        return Err("no 'some' line".to_string());
    }
    Ok(psi)
}

pub struct PressureCollector {
    paths: Paths,
}

impl PressureCollector {
    pub fn new(paths: Paths) -> Self {
        PressureCollector { paths }
    }

    fn read(&self, resource: &str) -> Result<Psi, CollectError> {
        let path = self.paths.proc(&format!("pressure/{resource}"));
        let text = std::fs::read_to_string(&path).map_err(|e| CollectError::io(&path, e))?;
        parse(&text).map_err(|e| CollectError::parse(&path, e))
    }
}

impl Collector for PressureCollector {
    fn name(&self) -> &'static str {
        "pressure"
    }
    fn collect(&self) -> Result<Box<dyn Exposable>, CollectError> {
        let irq = match self.read("irq") {
            Ok(p) => Some(p),
            Err(CollectError::Io { ref source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                None
            }
            Err(e) => return Err(e),
        };
        Ok(Box::new(PressureSample {
            cpu: self.read("cpu")?,
            io: self.read("io")?,
            memory: self.read("memory")?,
            irq,
        }))
    }
}
