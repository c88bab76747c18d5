//! `docker`: container state and restarts from the Docker identity cache (kept current in the background
//! by the events stream). Covers containers that have no cgroup (created, exited, dead) too.

use crate::sample::container::{DockerContainer, DockerSample};
use std::sync::Arc;

use super::{Built, Context, Decl};
use crate::expose::Exposable;
use crate::identity::{Identity, LabelAllowlist};
use crate::scrape::{CollectError, Collector};
use crate::source::MetaStore;

pub(crate) const DECL: Decl = Decl {
    name: "docker",
    default_enabled: true,
    build,
};

fn build(cx: &Context<'_>) -> Result<Built, String> {
    let Some(meta) = &cx.shared.runtime_meta else {
        return Ok(Built::Skip("no runtime source is running (Docker, Podman, containerd)".into()));
    };
    // With a pod source, the kubernetes collector owns the container state families and reports
    // Docker's containers outside pods too.
    if cx.shared.pods.is_some() && cx.enabled("kubernetes") {
        return Ok(Built::Skip(
            "the kubernetes collector reports Docker's container states".into(),
        ));
    }
    Ok(Built::Run(Arc::new(DockerCollector::new(
        meta.clone(),
        cx.docker_labels(),
    ))))
}

pub(crate) struct DockerCollector {
    meta: Arc<MetaStore>,
    allow: LabelAllowlist,
}

impl DockerCollector {
    pub(crate) fn new(meta: Arc<MetaStore>, allow: LabelAllowlist) -> Self {
        DockerCollector { meta, allow }
    }
}

impl DockerCollector {
    pub(crate) fn sample(&self) -> DockerSample {
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
                health: m.health.clone(),
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
    fn collect(&self) -> Result<Box<dyn Exposable>, CollectError> {
        Ok(Box::new(self.sample()))
    }
}

