//! containerd's API on its socket (gRPC, through `containerd-client`): list every namespace's containers
//! and tasks at start, then its events stream keeps the identity cache current. Runs in the background;
//! nothing on the scrape path calls containerd.
//!
//! - Names: a CRI container's or sandbox's `name` is its id, as the kubelet's cAdvisor on containerd
//!   labels it; nerdctl's containers keep the name in the `nerdctl/name` label; a plain `ctr` container has
//!   only its id.
//! - Image: the container's image reference (a CRI sandbox's is the pause image).
//! - Cgroup: the OCI spec's `linux.cgroupsPath`, in either driver's form. Plain containerd puts a container
//!   at `/<namespace>/<id>`, which nothing tells apart by path: cgroup discovery takes the paths this
//!   cache names as containers.
//! - Start time: the container's creation time, as cAdvisor's containerd handler reports it.
//! - Namespaces: every one except `moby` (Docker's own containers, which the Docker source names), or the
//!   list in `--containerd.namespaces`.
//!
//! When containerd is down the cache keeps what it knew, `stevedore_source_up{source="containerd"}` is 0,
//! and the source reconnects with backoff. The events stream is opened before the listing, and the cache
//! is listed again every five minutes besides.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use super::containerd_api::containerd::events::{
    ContainerCreate, ContainerDelete, ContainerUpdate, TaskDelete, TaskExit, TaskPaused,
    TaskResumed, TaskStart,
};
use super::containerd_api::containerd::services::{
    containers::v1::{
        Container, GetContainerRequest, ListContainersRequest, containers_client::ContainersClient,
    },
    events::v1::{SubscribeRequest, events_client::EventsClient},
    namespaces::v1::{ListNamespacesRequest, namespaces_client::NamespacesClient},
    snapshots::v1::{MountsRequest, snapshots_client::SnapshotsClient},
    tasks::v1::{GetRequest, ListTasksRequest, tasks_client::TasksClient},
};
use super::containerd_api::containerd::types::{Envelope, Mount};
use super::containerd_api::containerd::v1::types::{Process, Status};
use tonic::{self, Code, Request, transport::Channel};

use super::error::SourceError;
use super::{ContainerMeta, MetaStore};
use crate::health::Health;
use crate::identity;

/// The source's name: `stevedore_source_up{source}`, `ContainerMeta::runtime`.
pub(crate) const NAME: &str = "containerd";

/// Docker's namespace in containerd: its containers are the Docker source's.
const DOCKER_NAMESPACE: &str = "moby";

/// Settings of the containerd source.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The socket's path (`unix://` stripped).
    pub address: String,
    /// Namespaces to read; empty: every namespace but `moby`.
    pub namespaces: Vec<String>,
}

impl Config {
    fn wants(&self, namespace: &str) -> bool {
        if self.namespaces.is_empty() {
            namespace != DOCKER_NAMESPACE
        } else {
            self.namespaces.iter().any(|n| n == namespace)
        }
    }

    fn unreachable(&self, what: &str, e: impl std::fmt::Display) -> SourceError {
        SourceError::Unreachable {
            what: NAME.into(),
            detail: format!("{what} at {}: {e}", self.address),
            hint: "check --containerd.address and that the socket is mounted and readable \
                   (it is root's: the exporter runs as root with the socket mounted read-only)",
        }
    }
}

pub(crate) fn spawn(config: Config, store: Arc<MetaStore>, health: Arc<Health>) {
    tokio::spawn(run(config, store, health));
}

async fn run(config: Config, store: Arc<MetaStore>, health: Arc<Health>) {
    super::follow_forever(NAME, &health, || sync_and_follow(&config, &store, &health)).await
}

/// A request in one containerd namespace (the `containerd-namespace` header).
fn in_ns<T>(namespace: &str, message: T) -> Result<Request<T>, SourceError> {
    let mut req = Request::new(message);
    let value = namespace.parse().map_err(|_| SourceError::Other {
        what: NAME.into(),
        detail: format!("namespace {namespace:?} is not a valid header value"),
    })?;
    req.metadata_mut().insert("containerd-namespace", value);
    Ok(req)
}

async fn sync_and_follow(
    config: &Config,
    store: &MetaStore,
    health: &Health,
) -> Result<(), SourceError> {
    let path = config.address.clone();
    let channel = super::containerd_api::connect(path.as_ref())
        .await
        .map_err(|e| config.unreachable("connect", e))?;
    let (mut events, subscription) = subscribe(channel.clone());
    let _stop = AbortOnDrop(subscription);
    relist(config, &channel, store).await?;
    health.ok();
    let mut resync = tokio::time::interval_at(tokio::time::Instant::now() + RESYNC, RESYNC);
    loop {
        let env = tokio::select! {
            env = events.recv() => env,
            _ = resync.tick() => {
                relist(config, &channel, store).await?;
                continue;
            }
        };
        let Some(env) = env else {
            return Err(config.unreachable("events stream", "ended"));
        };
        let env = env.map_err(|e| config.unreachable("events stream", e))?;
        if !config.wants(&env.namespace) {
            continue;
        }
        let Some(id) = event_container(&env.topic, env.event.as_ref()) else {
            continue;
        };
        if env.topic == "/containers/delete" {
            store.remove(NAME, &id);
            continue;
        }
        match fetch(config, &channel, &env.namespace, &id).await? {
            Some(meta) => store.upsert(meta),
            None => store.remove(NAME, &id),
        }
    }
}

/// How often the whole cache is listed again, besides the events: a safety net for an event lost
/// between subscribing and the first listing (containerd answers a subscription only with its first
/// event, so its start cannot be awaited).
const RESYNC: Duration = Duration::from_secs(300);

type Event = Result<Envelope, tonic::Status>;

/// Reads containerd's events into a channel, in a task of its own: containerd sends a subscription's
/// response headers only with the first event, so awaiting the subscription would wait for one.
fn subscribe(
    channel: Channel,
) -> (
    tokio::sync::mpsc::Receiver<Event>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    let task = tokio::spawn(async move {
        let filters = vec![r#"topic~="^/(containers|tasks)/""#.to_string()];
        let mut stream = match EventsClient::new(channel)
            .subscribe(SubscribeRequest { filters })
            .await
        {
            Ok(r) => r.into_inner(),
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        loop {
            let next = match stream.message().await {
                Ok(Some(env)) => Ok(env),
                Ok(None) => return,
                Err(e) => Err(e),
            };
            let failed = next.is_err();
            if tx.send(next).await.is_err() || failed {
                return;
            }
        }
    });
    (rx, task)
}

/// Ends the events task when the connection it belongs to is given up.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Lists every wanted namespace and replaces what the cache holds for containerd.
async fn relist(config: &Config, channel: &Channel, store: &MetaStore) -> Result<(), SourceError> {
    let namespaces = NamespacesClient::new(channel.clone())
        .list(ListNamespacesRequest::default())
        .await
        .map_err(|e| config.unreachable("namespaces list", e))?
        .into_inner()
        .namespaces;
    let mut all = HashMap::new();
    for ns in namespaces.iter().filter(|n| config.wants(&n.name)) {
        for meta in list_namespace(config, channel, &ns.name).await? {
            all.insert(meta.id.clone(), Arc::new(meta));
        }
    }
    tracing::debug!(containers = all.len(), "containerd identity cache listed");
    store.replace_runtime(NAME, all);
    Ok(())
}

/// Every container of one namespace, with its task's state.
async fn list_namespace(
    config: &Config,
    channel: &Channel,
    namespace: &str,
) -> Result<Vec<ContainerMeta>, SourceError> {
    let containers = ContainersClient::new(channel.clone())
        .list(in_ns(namespace, ListContainersRequest::default())?)
        .await
        .map_err(|e| config.unreachable("containers list", e))?
        .into_inner()
        .containers;
    let tasks = TasksClient::new(channel.clone())
        .list(in_ns(namespace, ListTasksRequest::default())?)
        .await
        .map_err(|e| config.unreachable("tasks list", e))?
        .into_inner()
        .tasks;
    let by_container: HashMap<&str, &Process> = tasks.iter().map(|t| (task_owner(t), t)).collect();
    let mut out = Vec::with_capacity(containers.len());
    for c in containers {
        let task = by_container.get(c.id.as_str()).copied();
        let snapshot = (c.snapshotter.clone(), c.snapshot_key.clone());
        let mut meta = meta_from(c, task);
        meta.layer = layer_of(channel, namespace, snapshot).await;
        out.push(meta);
    }
    Ok(out)
}

/// The writable layer of a container's snapshot: the `upperdir` of its overlay mount.
async fn layer_of(
    channel: &Channel,
    namespace: &str,
    (snapshotter, key): (String, String),
) -> Option<String> {
    if snapshotter.is_empty() || key.is_empty() {
        return None;
    }
    let req = in_ns(namespace, MountsRequest { snapshotter, key }).ok()?;
    let mounts = SnapshotsClient::new(channel.clone())
        .mounts(req)
        .await
        .ok()?
        .into_inner()
        .mounts;
    upper_dir(&mounts)
}

/// The `upperdir=` option of an overlay mount.
pub(crate) fn upper_dir(mounts: &[Mount]) -> Option<String> {
    (mounts.iter())
        .flat_map(|m| m.options.iter())
        .find_map(|o| o.strip_prefix("upperdir="))
        .map(str::to_string)
}

/// The container a listed task belongs to (containerd fills `id` with it, and `container_id` in newer
/// versions).
fn task_owner(t: &Process) -> &str {
    if t.container_id.is_empty() {
        &t.id
    } else {
        &t.container_id
    }
}

/// One container and its task now; `None` when the container is gone.
async fn fetch(
    config: &Config,
    channel: &Channel,
    namespace: &str,
    id: &str,
) -> Result<Option<ContainerMeta>, SourceError> {
    let get = GetContainerRequest { id: id.to_string() };
    let container = match ContainersClient::new(channel.clone())
        .get(in_ns(namespace, get)?)
        .await
    {
        Ok(r) => r.into_inner().container,
        Err(s) if s.code() == Code::NotFound => return Ok(None),
        Err(e) => return Err(config.unreachable("container get", e)),
    };
    let Some(container) = container else {
        return Ok(None);
    };
    let get = GetRequest {
        container_id: id.to_string(),
        exec_id: String::new(),
    };
    let task = match TasksClient::new(channel.clone())
        .get(in_ns(namespace, get)?)
        .await
    {
        Ok(r) => r.into_inner().process,
        Err(s) if s.code() == Code::NotFound => None,
        Err(e) => return Err(config.unreachable("task get", e)),
    };
    let snapshot = (
        container.snapshotter.clone(),
        container.snapshot_key.clone(),
    );
    let mut meta = meta_from(container, task.as_ref());
    meta.layer = layer_of(channel, namespace, snapshot).await;
    Ok(Some(meta))
}

/// The container an event is about, for the topics that change what the cache holds.
pub(crate) fn event_container(topic: &str, event: Option<&prost_types::Any>) -> Option<String> {
    fn decode<M: prost::Message + Default>(any: &prost_types::Any) -> Option<M> {
        M::decode(any.value.as_slice()).ok()
    }
    let any = event?;
    let id = match topic {
        "/containers/create" => decode::<ContainerCreate>(any)?.id,
        "/containers/update" => decode::<ContainerUpdate>(any)?.id,
        "/containers/delete" => decode::<ContainerDelete>(any)?.id,
        "/tasks/start" => decode::<TaskStart>(any)?.container_id,
        "/tasks/exit" => decode::<TaskExit>(any)?.container_id,
        "/tasks/delete" => decode::<TaskDelete>(any)?.container_id,
        "/tasks/paused" => decode::<TaskPaused>(any)?.container_id,
        "/tasks/resumed" => decode::<TaskResumed>(any)?.container_id,
        _ => return None,
    };
    (!id.is_empty()).then_some(id)
}

/// The identity of one containerd container.
pub(crate) fn meta_from(c: Container, task: Option<&Process>) -> ContainerMeta {
    let spec: serde_json::Value = (c.spec.as_ref())
        .and_then(|s| serde_json::from_slice(&s.value).ok())
        .unwrap_or_default();
    let cgroup_path = spec
        .pointer("/linux/cgroupsPath")
        .and_then(|v| v.as_str())
        .filter(|p| !p.is_empty())
        .map(cgroup_path);
    let restart_count = spec
        .pointer("/annotations/io.kubernetes.container.restartCount")
        .and_then(|v| v.as_str())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let labels: BTreeMap<String, String> = c.labels.into_iter().collect();
    let cri = labels.contains_key(identity::POD_UID) || labels.contains_key(CRI_KIND);
    let name = match labels.get(NERDCTL_NAME) {
        Some(n) if !cri && !n.is_empty() => n.clone(),
        _ => c.id.clone(),
    };
    ContainerMeta {
        runtime: NAME,
        name,
        image: c.image,
        state: task_state(task).into(),
        health: None,
        restart_count,
        started_at: c
            .created_at
            .map(|t| t.seconds as f64 + t.nanos as f64 / 1e9),
        cgroup_path,
        layer: None,
        labels,
        id: c.id,
    }
}

/// containerd's CRI plugin marks a sandbox `sandbox` and a workload `container` with this label.
pub(crate) const CRI_KIND: &str = "io.cri-containerd.kind";
/// nerdctl keeps a container's name in this label.
const NERDCTL_NAME: &str = "nerdctl/name";

/// Docker's words for a task's state (the `docker` collector's state set); no task: `created`.
fn task_state(task: Option<&Process>) -> &'static str {
    match task.and_then(|t| Status::try_from(t.status).ok()) {
        None | Some(Status::Created) => "created",
        Some(Status::Running) => "running",
        Some(Status::Paused | Status::Pausing) => "paused",
        Some(Status::Stopped) => "exited",
        Some(Status::Unknown) => "dead",
    }
}

/// A spec's `cgroupsPath` as a path in the hierarchy. The systemd driver's form `slice:prefix:name`
/// becomes `/<nested slices>/<prefix>-<name>.scope`, as runc places it; a cgroupfs path is kept.
pub(crate) fn cgroup_path(spec_path: &str) -> String {
    let parts: Vec<&str> = spec_path.split(':').collect();
    if let [slice, prefix, name] = parts[..]
        && !spec_path.starts_with('/')
    {
        let slice = if slice.is_empty() {
            "system.slice"
        } else {
            slice
        };
        let unit = if name.ends_with(".slice") {
            name.to_string()
        } else if prefix.is_empty() {
            format!("{name}.scope")
        } else {
            format!("{prefix}-{name}.scope")
        };
        return format!("{}/{unit}", super::docker::expand_slice(slice));
    }
    format!("/{}", spec_path.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    const ID: &str = "b29faf21b7eff959f64b4192c34d5d67a707fe8561e9eaa608cb27693fba4242";

    #[test]
    fn cgroup_paths_of_both_drivers() {
        assert_eq!(cgroup_path("/default/web"), "/default/web");
        assert_eq!(
            cgroup_path(&format!("/kubepods/besteffort/pod1/{ID}")),
            format!("/kubepods/besteffort/pod1/{ID}")
        );
        assert_eq!(
            cgroup_path(&format!(
                "kubepods-besteffort-pod1_2.slice:cri-containerd:{ID}"
            )),
            format!(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1_2.slice/cri-containerd-{ID}.scope"
            )
        );
        assert_eq!(
            cgroup_path(&format!("system.slice:nerdctl:{ID}")),
            format!("/system.slice/nerdctl-{ID}.scope")
        );
        assert_eq!(cgroup_path(":x:y"), "/system.slice/x-y.scope");
    }

    #[test]
    fn events_name_their_container() {
        let any = |m: &dyn Fn() -> Vec<u8>| prost_types::Any {
            type_url: String::new(),
            value: m(),
        };
        let start = any(&|| {
            TaskStart {
                container_id: "c1".into(),
                pid: 7,
            }
            .encode_to_vec()
        });
        assert_eq!(
            event_container("/tasks/start", Some(&start)).as_deref(),
            Some("c1")
        );
        let del = any(&|| ContainerDelete { id: "c2".into() }.encode_to_vec());
        assert_eq!(
            event_container("/containers/delete", Some(&del)).as_deref(),
            Some("c2")
        );
        assert_eq!(event_container("/images/create", Some(&del)), None);
        let junk = prost_types::Any {
            type_url: String::new(),
            value: vec![0xff, 0xff, 0xff],
        };
        assert_eq!(event_container("/tasks/exit", Some(&junk)), None);
        assert_eq!(event_container("/tasks/exit", None), None);
    }

    #[test]
    fn cri_containers_are_named_by_id_and_nerdctl_by_label() {
        let mut c = Container {
            id: ID.into(),
            image: "registry.k8s.io/pause:3.10.1".into(),
            ..Default::default()
        };
        c.labels.insert(CRI_KIND.into(), "sandbox".into());
        c.labels.insert(NERDCTL_NAME.into(), "ignored".into());
        c.spec = Some(prost_types::Any {
            type_url: String::new(),
            value: br#"{"linux":{"cgroupsPath":"/kubepods/pod1/x"},"annotations":{"io.kubernetes.container.restartCount":"3"}}"#.to_vec(),
        });
        let running = Process {
            status: Status::Running as i32,
            ..Default::default()
        };
        let m = meta_from(c.clone(), Some(&running));
        assert_eq!((m.name.as_str(), m.state.as_str()), (ID, "running"));
        assert_eq!(m.cgroup_path.as_deref(), Some("/kubepods/pod1/x"));
        assert_eq!(m.restart_count, 3);
        c.labels.remove(CRI_KIND);
        c.spec = None;
        let m = meta_from(c, None);
        assert_eq!((m.name.as_str(), m.state.as_str()), ("ignored", "created"));
        assert_eq!(m.cgroup_path, None);
    }

    #[test]
    fn namespaces_default_to_all_but_docker() {
        let mut cfg = Config {
            address: String::new(),
            namespaces: vec![],
        };
        assert!(cfg.wants("k8s.io") && cfg.wants("default") && !cfg.wants("moby"));
        cfg.namespaces = vec!["moby".into()];
        assert!(cfg.wants("moby") && !cfg.wants("k8s.io"));
    }
}
