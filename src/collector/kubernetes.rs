//! `kubernetes`: what the pod specs and statuses of this node say about each container (state, restarts,
//! last termination reason, resource requests and limits), from the pod store the Kubernetes source keeps
//! current. When the docker source runs too, this collector also reports the Docker containers that belong
//! to no pod, so each `stevedore_container_*` family has one owner.

use crate::sample::container::{KubeContainer, KubeSample};
use std::sync::Arc;

use super::docker::DockerCollector;
use super::{Built, Context, Decl};
use crate::sample::container::DockerContainer;
use crate::expose::Exposable;
use crate::identity::Identity;
use crate::scrape::{CollectError, Collector};
use crate::source::kubernetes::{PodIndex, PodStore};

pub(crate) const DECL: Decl = Decl {
    name: "kubernetes",
    default_enabled: true,
    build,
};

fn build(cx: &Context<'_>) -> Result<Built, String> {
    let Some(pods) = &cx.shared.pods else {
        return Ok(Built::Skip("no pod source (not on Kubernetes)".into()));
    };
    let docker = (cx.shared.runtime_meta.as_ref())
        .filter(|_| cx.enabled("docker"))
        .map(|meta| Arc::new(DockerCollector::new(meta.clone(), cx.docker_labels())));
    Ok(Built::Run(Arc::new(KubernetesCollector::new(
        pods.clone(),
        cx.pod_columns(),
        docker,
    ))))
}

pub(crate) struct KubernetesCollector {
    pods: PodStore,
    pod_columns: Vec<(String, String)>,
    docker: Option<Arc<DockerCollector>>,
}

impl KubernetesCollector {
    pub(crate) fn new(
        pods: PodStore,
        pod_columns: Vec<(String, String)>,
        docker: Option<Arc<DockerCollector>>,
    ) -> Self {
        KubernetesCollector {
            pods,
            pod_columns,
            docker,
        }
    }

    pub(crate) fn sample(&self) -> KubeSample {
        let index = PodIndex::from_store(&self.pods);
        let (mut columns, docker) = match &self.docker {
            Some(d) => {
                let s = d.sample();
                let docker = s
                    .containers
                    .into_iter()
                    .filter(|c| c.identity.pod.is_empty())
                    .collect();
                (s.columns, docker)
            }
            None => (Vec::new(), Vec::new()),
        };
        let docker_columns = columns.len();
        columns.extend(self.pod_columns.iter().cloned());
        let mut docker: Vec<DockerContainer> = docker;
        for d in &mut docker {
            d.identity
                .extra
                .extend(std::iter::repeat_n(String::new(), self.pod_columns.len()));
        }
        let mut containers = Vec::new();
        for pod in &index.pods {
            let pod_values: Vec<String> = self
                .pod_columns
                .iter()
                .map(|(_, k)| pod.label(k).to_string())
                .collect();
            for c in &pod.containers {
                let mut extra = vec![String::new(); docker_columns];
                extra.extend(pod_values.iter().cloned());
                let id = match (pod.cgroup_id(), &c.id) {
                    (Some(p), Some(cid)) => format!("{p}/{cid}"),
                    _ => String::new(),
                };
                containers.push(KubeContainer {
                    identity: Identity {
                        id,
                        name: c.id.clone().unwrap_or_default(),
                        image: c.image.clone(),
                        container: c.name.clone(),
                        pod: pod.name.clone(),
                        namespace: pod.namespace.clone(),
                        extra,
                    },
                    state: c.state,
                    restarts: c.restarts,
                    last_terminated_reason: c.last_terminated_reason.clone(),
                    requests: c.requests.clone(),
                    limits: c.limits.clone(),
                });
            }
        }
        KubeSample {
            columns,
            containers,
            docker,
        }
    }
}

impl Collector for KubernetesCollector {
    fn collect(&self) -> Result<Box<dyn Exposable>, CollectError> {
        Ok(Box::new(self.sample()))
    }
}

