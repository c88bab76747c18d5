//! `docker`: container state and restarts from the Docker identity cache (kept current in the background
//! by the events stream). Covers containers that have no cgroup (created, exited, dead) too.

use std::sync::Arc;

use crate::expose::Exposable;
use crate::identity::{Identity, LabelAllowlist};
use crate::scrape::{CollectError, Collector};
use crate::source::MetaStore;

/// The states `stevedore_container_state` reports, one series each (1 for the current one).
pub const STATES: [&str; 7] = [
    "created",
    "running",
    "paused",
    "restarting",
    "removing",
    "exited",
    "dead",
];

#[derive(Debug, Clone)]
pub struct DockerContainer {
    pub identity: Identity,
    pub state: String,
    pub restarts: f64,
}

#[derive(Debug, Clone, Default)]
pub struct DockerSample {
    pub columns: Vec<(String, String)>,
    pub containers: Vec<DockerContainer>,
}

pub struct DockerCollector {
    meta: Arc<MetaStore>,
    allow: LabelAllowlist,
}

impl DockerCollector {
    pub fn new(meta: Arc<MetaStore>, allow: LabelAllowlist) -> Self {
        DockerCollector { meta, allow }
    }
}

impl DockerCollector {
    pub fn sample(&self) -> DockerSample {
        let metas = self.meta.snapshot();
        let columns = self.allow.columns(metas.values().map(|m| &**m));
        let mut containers: Vec<DockerContainer> = metas
            .values()
            .map(|m| DockerContainer {
                identity: Identity::from_meta(
                    m.cgroup_path
                        .clone()
                        .unwrap_or_else(|| format!("/docker/{}", m.id)),
                    m,
                    &columns,
                ),
                state: m.state.clone(),
                restarts: m.restart_count as f64,
            })
            .collect();
        containers.sort_by(|a, b| a.identity.id.cmp(&b.identity.id));
        DockerSample {
            columns,
            containers,
        }
    }
}

impl Collector for DockerCollector {
    fn name(&self) -> &'static str {
        "docker"
    }
    fn collect(&self) -> Result<Box<dyn Exposable>, CollectError> {
        Ok(Box::new(self.sample()))
    }
}
