//! `pressure`: pressure stall information (PSI) totals from /proc/pressure/{cpu,io,memory,irq}.

use crate::sample::node::{PressureSample};
use super::{Built, Context, Decl, Paths};
use crate::parse::{Psi, parse_psi};
use std::sync::Arc;

use crate::expose::Exposable;
use crate::scrape::{CollectError, Collector};

pub(crate) const DECL: Decl = Decl {
    name: "pressure",
    default_enabled: true,
    build,
};

fn build(cx: &Context<'_>) -> Result<Built, String> {
    let dir = cx.paths.proc("pressure");
    if !dir.is_dir() {
        return Ok(Built::Skip(format!(
            "{} is missing: the kernel has no PSI (needs Linux 4.20+ with CONFIG_PSI)",
            dir.display()
        )));
    }
    Ok(Built::Run(Arc::new(PressureCollector::new(cx.paths.clone()))))
}

pub(crate) struct PressureCollector {
    paths: Paths,
}

impl PressureCollector {
    pub(crate) fn new(paths: Paths) -> Self {
        PressureCollector { paths }
    }

    fn read(&self, resource: &str) -> Result<Psi, CollectError> {
        let path = self.paths.proc(&format!("pressure/{resource}"));
        let text = super::read(&path)?;
        parse_psi(&text).map_err(|e| CollectError::parse(&path, e))
    }
}

impl Collector for PressureCollector {
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

#[cfg(test)]
mod tests {
    use crate::testutil::{procfs_member, f};
    use crate::parse::parse_psi;

    #[test]
    fn pressure_from_fixture() {
        for res in ["cpu", "io", "memory"] {
            let text = procfs_member(&format!("fixtures/proc/pressure/{res}"));
            let p = parse_psi(&text).unwrap();
            let total = |kind: &str| {
                text.lines()
                    .find(|l| l.starts_with(kind))
                    .map(|l| f(l.rsplit("total=").next().unwrap()) / 1e6)
            };
            assert_eq!(p.some, total("some"), "{res}");
            assert_eq!(p.full, total("full"), "{res}");
        }
    }

    #[test]
    fn pressure_hostile() {
        assert!(parse_psi("some").is_err());
        assert!(parse_psi("some avg10=0.00").is_err());
        assert!(parse_psi("").is_err());
        assert!(parse_psi("some total=abc").is_err());
        assert!(parse_psi("other avg10=1 total=5").is_err());
    }
}
