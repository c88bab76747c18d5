//! `machine`: cAdvisor's machine facts (`machine_cpu_cores`, `machine_memory_bytes`) with its
//! `boot_id`, `machine_id`, `system_uuid` labels, so cAdvisor-based dashboards find them.

use crate::sample::node::{MachineSample};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Built, Context, Decl, Paths, meminfo, read};
use std::sync::Arc;

use crate::expose::Exposable;
use crate::scrape::{CollectError, Collector};

pub(crate) const DECL: Decl = Decl {
    name: "machine",
    default_enabled: true,
    build,
};

fn build(cx: &Context<'_>) -> Result<Built, String> {
    Ok(Built::Run(Arc::new(MachineCollector::new(cx.paths.clone()))))
}

/// Logical CPUs: the `processor` entries of /proc/cpuinfo (what cAdvisor counts).
pub(crate) fn count_processors(cpuinfo: &str) -> usize {
    cpuinfo
        .lines()
        .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
        .count()
}

/// Machine facts hardly ever change (CPU or memory hot-plug), and /proc/cpuinfo is large on big hosts:
/// they are read again at most this often, as cAdvisor refreshes its machine info periodically.
const REFRESH: Duration = Duration::from_secs(60);

pub(crate) struct MachineCollector {
    paths: Paths,
    cached: Mutex<Option<(Instant, MachineSample)>>,
}

impl MachineCollector {
    pub(crate) fn new(paths: Paths) -> Self {
        MachineCollector {
            paths,
            cached: Mutex::new(None),
        }
    }

    fn first_line(&self, candidates: &[std::path::PathBuf]) -> String {
        candidates
            .iter()
            .find_map(|p| super::read_capped(p).ok())
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }
}

impl Collector for MachineCollector {
    fn collect(&self) -> Result<Box<dyn Exposable>, CollectError> {
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, sample)) = cached.as_ref()
            && at.elapsed() < REFRESH
        {
            return Ok(Box::new(sample.clone()));
        }
        let sample = self.read()?;
        *cached = Some((Instant::now(), sample.clone()));
        Ok(Box::new(sample))
    }
}

impl MachineCollector {
    fn read(&self) -> Result<MachineSample, CollectError> {
        let cpuinfo = read(&self.paths.proc("cpuinfo"))?;
        let cores = count_processors(&cpuinfo);
        let mem_path = self.paths.proc("meminfo");
        let mem =
            meminfo::parse(&read(&mem_path)?).map_err(|e| CollectError::parse(&mem_path, e))?;
        Ok(MachineSample {
            cpu_cores: (cores > 0).then_some(cores as f64),
            memory_bytes: mem.get("MemTotal_bytes"),
            boot_id: self.first_line(&[self.paths.proc("sys/kernel/random/boot_id")]),
            machine_id: self.first_line(&[
                self.paths.rootfs_path("/etc/machine-id"),
                self.paths.rootfs_path("/var/lib/dbus/machine-id"),
            ]),
            system_uuid: self.first_line(&[self.paths.sys("class/dmi/id/product_uuid")]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{procfs_member};

    #[test]
    fn cpuinfo_processor_count_from_fixture() {
        let text = procfs_member("fixtures/proc/cpuinfo");
        let expected = text.lines().filter(|l| l.starts_with("processor")).count();
        assert!(expected > 0);
        assert_eq!(count_processors(&text), expected);
    }
}
