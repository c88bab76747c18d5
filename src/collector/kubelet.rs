//! `kubelet`: what only the kubelet knows, from its Summary API (polled in the background): pod network
//! per interface, ephemeral storage, volumes with their claims, the node's root and image filesystems.
//! Where cgroups are not readable (no host mounts, or `--no-collector.cgroup`), it also gives the
//! container, pod and node CPU and memory families from the summary, so a cluster gets usage either way.

use std::sync::Arc;

use crate::sample::container::{ContainerEntry, ContainersSample, Level};
use crate::sample::kubelet::KubeletSample;
use crate::sample::container::{CgroupStats, CpuStats, MemoryStats};
use super::{Built, Context, Decl};
use crate::expose::Exposable;
use crate::identity::Identity;
use crate::scrape::{CollectError, Collector};
use crate::sample::kubelet::{self as kubelet, Summary};
use crate::source::kubelet::{Latest, SummaryCache, unix_seconds};
use crate::source::kubernetes::{PodIndex, PodStore};

pub(crate) const DECL: Decl = Decl {
    name: "kubelet",
    default_enabled: true,
    build,
};

fn build(cx: &Context<'_>) -> Result<Built, String> {
    let Some(cache) = &cx.shared.summary else {
        return Ok(Built::Skip(
            "no kubelet source (--kubelet.url unset, not in a pod)".into(),
        ));
    };
    Ok(Built::Run(Arc::new(KubeletCollector::new(
        cache.clone(),
        cx.shared.pods.clone(),
        cx.pod_columns(),
        cx.shared.usage_from_summary,
    ))))
}

pub(crate) struct KubeletCollector {
    cache: Arc<SummaryCache>,
    pods: Option<PodStore>,
    pod_columns: Vec<(String, String)>,
    usage_from_summary: bool,
}

impl KubeletCollector {
    pub(crate) fn new(
        cache: Arc<SummaryCache>,
        pods: Option<PodStore>,
        pod_columns: Vec<(String, String)>,
        usage_from_summary: bool,
    ) -> Self {
        KubeletCollector {
            cache,
            pods,
            pod_columns,
            usage_from_summary,
        }
    }
}

fn stats(cpu: Option<&kubelet::CpuStats>, mem: Option<&kubelet::MemoryStats>) -> CgroupStats {
    CgroupStats {
        cpu: cpu
            .and_then(|c| c.usage_core_nano_seconds)
            .map(|ns| CpuStats {
                usage_seconds: Some(ns / 1e9),
                ..Default::default()
            }),
        memory: mem.map(|m| {
            let mut stats = MemoryStats {
                usage: m.usage_bytes,
                working_set: m.working_set_bytes,
                ..Default::default()
            };
            stats.set_stat("anon", m.rss_bytes);
            stats
        }),
        ..Default::default()
    }
}

/// The cAdvisor-shaped usage families from a summary, labelled as the kubelet labels its own
/// /metrics/cadvisor series (cgroupfs-form `id`, runtime id as `name`) where the pod store tells.
pub(crate) fn usage_from(
    summary: &Summary,
    index: &PodIndex,
    columns: &[(String, String)],
) -> ContainersSample {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let mut entries = Vec::new();
    if let Some(node) = &summary.node {
        entries.push(ContainerEntry {
            level: Level::Root,
            identity: Identity::bare("/".into(), columns.len()),
            stats: stats(node.cpu.as_ref(), node.memory.as_ref()),
            ..Default::default()
        });
    }
    for p in &summary.pods {
        let pod = index.pod(&p.pod_ref.uid);
        let values: Vec<String> = columns
            .iter()
            .map(|(_, k)| pod.map(|p| p.label(k).to_string()).unwrap_or_default())
            .collect();
        let pod_id = pod.and_then(|p| p.cgroup_id()).unwrap_or_default();
        let base = Identity {
            id: pod_id.clone(),
            pod: p.pod_ref.name.clone(),
            namespace: p.pod_ref.namespace.clone(),
            extra: values,
            ..Default::default()
        };
        entries.push(ContainerEntry {
            level: Level::Pod,
            identity: base.clone(),
            stats: stats(p.cpu.as_ref(), p.memory.as_ref()),
            ..Default::default()
        });
        for c in &p.containers {
            let info = pod.and_then(|p| p.containers.iter().find(|i| i.name == c.name && !i.init));
            let cid = info.and_then(|i| i.id.clone());
            let mut identity = base.clone();
            identity.container = c.name.clone();
            identity.image = info.map(|i| i.image.clone()).unwrap_or_default();
            if let Some(cid) = &cid {
                identity.name = cid.clone();
                if !pod_id.is_empty() {
                    identity.id = format!("{pod_id}/{cid}");
                }
            }
            entries.push(ContainerEntry {
                level: Level::Container,
                identity,
                stats: stats(c.cpu.as_ref(), c.memory.as_ref()),
                start_time: c.start_time.as_deref().and_then(unix_seconds),
                ..Default::default()
            });
        }
    }
    ContainersSample {
        columns: columns.to_vec(),
        entries,
        now,
    }
}

impl Collector for KubeletCollector {
    fn collect(&self) -> Result<Box<dyn Exposable>, CollectError> {
        let summary = match self.cache.get() {
            Latest::Summary(s) => s,
            Latest::NotYet => {
                return Err(CollectError::NoDataYet(
                    "the kubelet source's first poll has not returned yet",
                ));
            }
            Latest::Failed => {
                return Err(CollectError::Other(
                    "no current kubelet summary (see the kubelet source's log line)".into(),
                ));
            }
        };
        let index = self
            .pods
            .as_ref()
            .map(PodIndex::from_store)
            .unwrap_or_default();
        let pod_values = summary
            .pods
            .iter()
            .map(|p| {
                let pod = index.pod(&p.pod_ref.uid);
                self.pod_columns
                    .iter()
                    .map(|(_, k)| pod.map(|p| p.label(k).to_string()).unwrap_or_default())
                    .collect()
            })
            .collect();
        let usage = self
            .usage_from_summary
            .then(|| usage_from(&summary, &index, &self.pod_columns));
        Ok(Box::new(KubeletSample {
            summary,
            pod_columns: self.pod_columns.clone(),
            pod_values,
            usage,
        }))
    }
}

