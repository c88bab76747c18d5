//! Pod metadata of this node: a watch on the apiserver (pods with `spec.nodeName=<node>` only) kept in a
//! kube-rs reflector store, or the kubelet's `/pods` polled into the same store
//! (`--kubernetes.pods-from=kubelet`). Collectors read the store; nothing on the scrape path calls the API.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Config};

use super::error::SourceError;
use crate::health::Health;

/// The RBAC rule the apiserver watch needs, quoted in logs when it is refused.
pub(crate) const RBAC_PODS: &str = "a ClusterRole rule {apiGroups: [\"\"], resources: [\"pods\"], verbs: [\"get\", \"list\", \"watch\"]} bound to the exporter's service account";

/// The pods of this node, as the reflector keeps them (managed fields, annotations and the bulky parts of
/// container specs dropped to keep memory small).
pub(crate) type PodStore = Store<Pod>;

/// One container of a pod, as the collectors need it.
#[derive(Debug, Clone, Default)]
pub(crate) struct ContainerInfo {
    pub name: String,
    /// Runtime id without its `containerd://` / `docker://` / `cri-o://` scheme.
    pub id: Option<String>,
    pub image: String,
    pub restarts: Option<f64>,
    /// waiting, running or terminated.
    pub state: Option<&'static str>,
    pub last_terminated_reason: Option<String>,
    pub started_at: Option<f64>,
    /// (resource, value in base units: cores for cpu, bytes for memory)
    pub requests: Vec<(String, f64)>,
    pub limits: Vec<(String, f64)>,
    pub init: bool,
}

/// One pod, as the collectors need it.
#[derive(Debug, Clone, Default)]
pub(crate) struct PodInfo {
    pub uid: String,
    pub name: String,
    pub namespace: String,
    /// guaranteed, burstable or besteffort (lower case, as in cgroup paths); empty when not reported.
    pub qos: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub containers: Vec<ContainerInfo>,
}

impl PodInfo {
    /// The pod's cgroup as the kubelet names it in cgroupfs form (`id` on the kubelet's cAdvisor
    /// series, whatever the driver): `/kubepods/pod<uid>` for Guaranteed, else `/kubepods/<qos>/pod<uid>`.
    pub(crate) fn cgroup_id(&self) -> Option<String> {
        match self.qos.as_str() {
            "guaranteed" => Some(format!("/kubepods/pod{}", self.uid)),
            "burstable" | "besteffort" => Some(format!("/kubepods/{}/pod{}", self.qos, self.uid)),
            _ => None,
        }
    }

    pub(crate) fn label(&self, key: &str) -> &str {
        self.labels.get(key).map(String::as_str).unwrap_or("")
    }
}

/// Pods by uid and containers by runtime id, built from the store for one scrape.
#[derive(Debug, Default)]
pub(crate) struct PodIndex {
    pub pods: Vec<PodInfo>,
    by_uid: HashMap<String, usize>,
    by_container: HashMap<String, (usize, usize)>,
}

impl PodIndex {
    pub(crate) fn build(pods: &[Arc<Pod>]) -> PodIndex {
        let mut idx = PodIndex {
            pods: pods
                .iter()
                .map(|p| pod_info(p))
                .filter(|info| !info.uid.is_empty())
                .collect(),
            ..Default::default()
        };
        idx.pods
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        for (i, p) in idx.pods.iter().enumerate() {
            idx.by_uid.insert(p.uid.clone(), i);
            for (j, c) in p.containers.iter().enumerate() {
                if let Some(id) = &c.id {
                    idx.by_container.insert(id.clone(), (i, j));
                }
            }
        }
        idx
    }

    /// The index of the store's pods, built again only when the store changed since the last call (every
    /// collector of a scrape asks for it, and most scrapes see no pod change). The pods of the last build are
    /// kept, so an unchanged list of the same `Arc`s means unchanged pods.
    pub(crate) fn from_store(store: &PodStore) -> Arc<PodIndex> {
        type Last = Option<(Vec<Arc<Pod>>, Arc<PodIndex>)>;
        static LAST: std::sync::Mutex<Last> = std::sync::Mutex::new(None);
        let pods = store.state();
        let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((seen, idx)) = last.as_ref()
            && seen.len() == pods.len()
            && seen.iter().zip(&pods).all(|(a, b)| Arc::ptr_eq(a, b))
        {
            return idx.clone();
        }
        let idx = Arc::new(PodIndex::build(&pods));
        *last = Some((pods, idx.clone()));
        idx
    }

    pub(crate) fn pod(&self, uid: &str) -> Option<&PodInfo> {
        self.by_uid.get(uid).map(|&i| &self.pods[i])
    }

    pub(crate) fn container(&self, id: &str) -> Option<(&PodInfo, &ContainerInfo)> {
        self.by_container
            .get(id)
            .map(|&(i, j)| (&self.pods[i], &self.pods[i].containers[j]))
    }
}

fn strip_scheme(id: &str) -> String {
    match id.split_once("://") {
        Some((_, rest)) => rest.to_string(),
        None => id.to_string(),
    }
}

fn rfc3339(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> f64 {
    t.0.as_millisecond() as f64 / 1000.0
}

fn container_from_status(s: &ContainerStatus, init: bool) -> ContainerInfo {
    let (state, started_at) = match &s.state {
        Some(st) if st.running.is_some() => (
            Some("running"),
            st.running
                .as_ref()
                .and_then(|r| r.started_at.as_ref())
                .map(rfc3339),
        ),
        Some(st) if st.terminated.is_some() => (Some("terminated"), None),
        Some(st) if st.waiting.is_some() => (Some("waiting"), None),
        _ => (None, None),
    };
    ContainerInfo {
        name: s.name.clone(),
        id: s.container_id.as_deref().map(strip_scheme),
        // An image pulled by digest is reported as a bare `sha256:` id; the runtime (and cAdvisor) names it
        // by its repository digest, which is imageID.
        image: if s.image.starts_with("sha256:") && !s.image_id.is_empty() {
            s.image_id.clone()
        } else {
            s.image.clone()
        },
        restarts: Some(s.restart_count as f64),
        state,
        last_terminated_reason: s
            .last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .and_then(|t| t.reason.clone()),
        started_at,
        init,
        ..Default::default()
    }
}

/// The lean view of one pod.
pub(crate) fn pod_info(p: &Pod) -> PodInfo {
    let md = &p.metadata;
    let status = p.status.as_ref();
    let mut info = PodInfo {
        uid: md.uid.clone().unwrap_or_default(),
        name: md.name.clone().unwrap_or_default(),
        namespace: md.namespace.clone().unwrap_or_default(),
        qos: status
            .and_then(|s| s.qos_class.as_deref())
            .unwrap_or("")
            .to_ascii_lowercase(),
        labels: md.labels.clone().unwrap_or_default(),
        containers: Vec::new(),
    };
    let statuses = |v: Option<&Vec<ContainerStatus>>, init: bool| -> Vec<ContainerInfo> {
        v.map(|v| v.iter().map(|s| container_from_status(s, init)).collect())
            .unwrap_or_default()
    };
    let mut by_name: Vec<ContainerInfo> =
        statuses(status.and_then(|s| s.container_statuses.as_ref()), false);
    by_name.extend(statuses(
        status.and_then(|s| s.init_container_statuses.as_ref()),
        true,
    ));
    // Containers of the spec without a status yet (Pending pods) are still listed, with their resources.
    if let Some(spec) = &p.spec {
        let specs = spec
            .containers
            .iter()
            .map(|c| (c, false))
            .chain(spec.init_containers.iter().flatten().map(|c| (c, true)));
        for (c, init) in specs {
            let idx = match by_name
                .iter()
                .position(|s| s.name == c.name && s.init == init)
            {
                Some(i) => i,
                None => {
                    by_name.push(ContainerInfo {
                        name: c.name.clone(),
                        image: c.image.clone().unwrap_or_default(),
                        init,
                        ..Default::default()
                    });
                    by_name.len() - 1
                }
            };
            if let Some(r) = &c.resources {
                let conv = |m: &Option<
                    std::collections::BTreeMap<
                        String,
                        k8s_openapi::apimachinery::pkg::api::resource::Quantity,
                    >,
                >| {
                    m.iter()
                        .flatten()
                        .filter_map(|(k, q)| Some((k.clone(), quantity(&q.0)?)))
                        .collect::<Vec<_>>()
                };
                by_name[idx].requests = conv(&r.requests);
                by_name[idx].limits = conv(&r.limits);
            }
        }
    }
    info.containers = by_name;
    info
}

/// A Kubernetes resource quantity in base units ("100m" → 0.1, "128Mi" → 134217728, "1e3" → 1000).
pub(crate) fn quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0f64.powi(2),
        "Gi" => 1024.0f64.powi(3),
        "Ti" => 1024.0f64.powi(4),
        "Pi" => 1024.0f64.powi(5),
        "Ei" => 1024.0f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    let v = n * mult;
    v.is_finite().then_some(v)
}

/// Drops what no collector reads, so the store holds little more than names, statuses and resources.
fn slim(p: &mut Pod) {
    p.metadata.managed_fields = None;
    p.metadata.annotations = None;
    p.metadata.owner_references = None;
    if let Some(spec) = p.spec.as_mut() {
        spec.volumes = None;
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            c.env = None;
            c.env_from = None;
            c.command = None;
            c.args = None;
            c.volume_mounts = None;
            c.liveness_probe = None;
            c.readiness_probe = None;
            c.startup_probe = None;
            c.lifecycle = None;
        }
    }
}

/// An apiserver client from `--kubeconfig`, the in-cluster service account, or `$KUBECONFIG`.
/// `Ok(None)`: nothing says we are on Kubernetes.
pub(crate) async fn api_client(kubeconfig: Option<&PathBuf>) -> Result<Option<Client>, String> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("cannot read --kubeconfig {}: {e}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| format!("invalid --kubeconfig {}: {e}", path.display()))?
        }
        None if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => Config::incluster()
            .map_err(|e| {
                format!(
                    "in-cluster config failed ({e}): mount the service account token \
                     (automountServiceAccountToken: true) or pass --kubeconfig"
                )
            })?,
        None if std::env::var_os("KUBECONFIG").is_some() => Config::infer()
            .await
            .map_err(|e| format!("cannot load $KUBECONFIG: {e}"))?,
        None => return Ok(None),
    };
    Client::try_from(config)
        .map(Some)
        .map_err(|e| format!("cannot build the Kubernetes client: {e}"))
}

/// Which pods to watch: this node's (a DaemonSet), or one pod (a sidecar, which needs only a namespaced
/// Role).
pub(crate) enum Scope {
    Node(String),
    Pod { namespace: String, name: String },
}

/// Watches the scope's pods into the store's writer, forever, with backoff; `health` follows the watch.
pub(crate) fn spawn_watch(client: Client, scope: Scope, writer: Writer<Pod>, health: Arc<Health>) {
    tokio::spawn(async move {
        let (api, cfg): (Api<Pod>, _) = match &scope {
            Scope::Node(node) => (
                Api::all(client),
                watcher::Config::default().fields(&format!("spec.nodeName={node}")),
            ),
            Scope::Pod { namespace, name } => (
                Api::namespaced(client, namespace),
                watcher::Config::default().fields(&format!("metadata.name={name}")),
            ),
        };
        let stream = reflector::reflector(writer, watcher(api, cfg).default_backoff().modify(slim));
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(_) => health.ok(),
                // The watch fell too far behind (410 Gone): the watcher lists again; not a failure.
                Err(watcher::Error::WatchError(s)) if s.code == 410 => {
                    tracing::info!(
                        source = "kubernetes",
                        "pod watch expired (410 Gone); listing again"
                    )
                }
                Err(e) => {
                    let inner = match &e {
                        watcher::Error::InitialListFailed(e)
                        | watcher::Error::WatchStartFailed(e)
                        | watcher::Error::WatchFailed(e) => Some(e),
                        _ => None,
                    };
                    const WHAT: &str = "pod watch on the apiserver";
                    let why = match (inner, &e) {
                        (Some(k), _) => SourceError::from_kube(
                            k,
                            WHAT,
                            RBAC_PODS,
                            "check the service account token or the --kubeconfig credentials",
                        ),
                        (None, watcher::Error::WatchError(s)) if s.code == 403 => {
                            SourceError::Forbidden {
                                what: WHAT.into(),
                                message: s.message.clone(),
                                rbac: RBAC_PODS,
                            }
                        }
                        (None, e) => SourceError::Other {
                            what: WHAT.into(),
                            detail: e.to_string(),
                        },
                    };
                    health.fail(&why);
                }
            }
        }
    });
}

/// Replaces the store's content with a full list (the kubelet's /pods), as a watcher's relist would.
pub(crate) fn replace_all(writer: &mut Writer<Pod>, pods: Vec<Pod>) {
    writer.apply_watcher_event(&watcher::Event::Init);
    for mut p in pods {
        slim(&mut p);
        writer.apply_watcher_event(&watcher::Event::InitApply(p));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
}

/// Parses a pod list (`{"items": [...]}`) item by item: a pod that does not parse is skipped and
/// counted, the others are kept.
pub(crate) fn parse_pod_list(text: &str) -> Result<(Vec<Pod>, usize), String> {
    #[derive(serde::Deserialize)]
    struct Items {
        #[serde(default)]
        items: Option<Vec<serde_json::Value>>,
    }
    let list: Items =
        serde_json::from_str(text).map_err(|e| format!("invalid pod list JSON: {e}"))?;
    let mut bad = 0;
    let mut pods = Vec::new();
    for v in list.items.unwrap_or_default() {
        match serde_json::from_value::<Pod>(v) {
            Ok(p) => pods.push(p),
            Err(_) => bad += 1,
        }
    }
    Ok((pods, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(quantity("100m"), Some(0.1));
        assert_eq!(quantity("2"), Some(2.0));
        assert_eq!(quantity("0.5"), Some(0.5));
        assert_eq!(quantity("128Mi"), Some(134217728.0));
        assert_eq!(quantity("1G"), Some(1e9));
        assert_eq!(quantity("1e3"), Some(1000.0));
        assert_eq!(quantity("12Qi"), None);
        assert_eq!(quantity(""), None);
    }

    #[test]
    fn the_index_is_built_again_only_when_the_store_changed() {
        let text = std::fs::read_to_string(
            crate::testutil::fixtures_dir().join("nri-kubernetes/1_35/kubelet/pods"),
        )
        .unwrap();
        let (pods, bad) = parse_pod_list(&text).unwrap();
        assert_eq!(bad, 0);
        let (store, mut writer) = reflector::store::<Pod>();
        replace_all(&mut writer, pods.clone());
        let first = PodIndex::from_store(&store);
        assert_eq!(first.pods.len(), pods.len());
        assert!(Arc::ptr_eq(&first, &PodIndex::from_store(&store)));
        // One pod changed (a new status): a new index, with that pod's new figures.
        let mut changed = pods[0].clone();
        let uid = changed.metadata.uid.clone().unwrap();
        changed
            .metadata
            .labels
            .get_or_insert_default()
            .insert("sdtest".into(), "changed".into());
        writer.apply_watcher_event(&watcher::Event::Apply(changed));
        let second = PodIndex::from_store(&store);
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(second.pod(&uid).unwrap().label("sdtest"), "changed");
        assert_eq!(first.pod(&uid).unwrap().label("sdtest"), "");
    }

    #[test]
    fn cgroup_ids() {
        let mut p = PodInfo {
            uid: "u".into(),
            qos: "guaranteed".into(),
            ..Default::default()
        };
        assert_eq!(p.cgroup_id().as_deref(), Some("/kubepods/podu"));
        p.qos = "besteffort".into();
        assert_eq!(p.cgroup_id().as_deref(), Some("/kubepods/besteffort/podu"));
        p.qos = String::new();
        assert_eq!(p.cgroup_id(), None);
    }
}
