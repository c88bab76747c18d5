//! The Docker Engine API through bollard: list and inspect at start, then the events stream keeps the
//! identity cache current. Runs in the background; nothing on the scrape path calls Docker.
//!
//! Podman is read through the same code: `podman system service` serves the Docker-compatible API, which
//! gives everything the identity needs (name, image, labels, state, health, restarts, start time, the
//! cgroup parent) and the same events stream, so one client, one reconnect loop and one set of tests cover
//! both engines. Its libpod API adds pod names, which only Podman's own pods have (they are not
//! Kubernetes pods and get no `pod` label), so it is not used.
//!
//! When the daemon is down or restarts, the cache keeps what it knew (cgroup metrics keep their names),
//! `stevedore_source_up{source="docker"}` is 0, and the source reconnects with backoff. On reconnect it
//! lists again and resumes the events from the moment it listed, so no change is missed. Each state change
//! is logged once.
//!
//! In stats mode (cgroups not readable: Docker Desktop, a remote daemon) a poller also asks the stats API
//! (`one-shot`, bounded concurrency, a timeout per container) in the background.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::query_parameters::{
    EventsOptions, InspectContainerOptions, ListContainersOptions, StatsOptions,
};
use futures_util::StreamExt;
use tokio::sync::Semaphore;

use super::error::SourceError;
use super::{ContainerMeta, MetaStore};
use crate::health::Health;
use crate::sample::container::{
    BlkioDevice, CgroupStats, CpuStats, Interface, PidsStats, SpecStats,
};

/// Which engine answers on the socket: the API is the same, the names, cgroup paths and flags differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    Docker,
    Podman,
}

impl Engine {
    /// The cgroup path the engine gives a container, from the cgroup driver and its cgroup parent.
    pub(crate) fn cgroup_path(self, driver: &str, parent: &str, id: &str) -> String {
        let p = match self {
            Engine::Docker => &DOCKER,
            Engine::Podman => &PODMAN,
        };
        placed(p, driver, parent, id)
    }
}

/// Settings of the Docker (or Podman) source.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub engine: Engine,
    /// The source's name: `stevedore_source_up{source}`, the owner of its entries in the identity cache
    /// (`ContainerMeta::runtime`). The engine's name, or for a rootless user's Podman `podman_user<uid>`.
    pub source: &'static str,
    /// `unix:///path`, `tcp://host:port` or `http://...`; `None`: DOCKER_HOST, else the local socket.
    pub host: Option<String>,
    pub stats_interval: Duration,
    pub stats_concurrency: usize,
    pub stats_timeout: Duration,
}

/// One container's figures from the stats API (fallback mode).
#[derive(Debug, Clone, Default)]
pub(crate) struct StatsSample {
    pub stats: CgroupStats,
    /// (interface, [rx_bytes, rx_packets, rx_dropped, rx_errors, tx_bytes, tx_packets, tx_dropped, tx_errors])
    pub network: Vec<Interface>,
}

/// Latest stats-API figures by container id.
pub(crate) type StatsCache = super::SnapshotMap<StatsSample>;

fn connect(host: &Option<String>) -> Result<Docker, bollard::errors::Error> {
    match host.as_deref() {
        None | Some("") => Docker::connect_with_defaults(),
        Some(h) if h.starts_with("unix://") || h.starts_with('/') => {
            let path = h.trim_start_matches("unix://");
            Docker::connect_with_unix(path, 30, bollard::API_DEFAULT_VERSION)
        }
        Some(h) => Docker::connect_with_http(
            h.trim_start_matches("tcp://"),
            30,
            bollard::API_DEFAULT_VERSION,
        ),
    }
}

/// RFC 3339 time from the Docker API as Unix seconds; Docker's zero time (never started) is `None`.
pub(crate) fn parse_time(s: &str) -> Option<f64> {
    if s.is_empty() || s.starts_with("0001-01-01") {
        return None;
    }
    let t = humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
        .ok()
        .or_else(|| humantime::parse_rfc3339(s).ok())?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_secs_f64())
}

/// `a-b-c.slice` → `/a.slice/a-b.slice/a-b-c.slice` (how systemd nests slices).
pub(crate) fn expand_slice(slice: &str) -> String {
    let stem = slice.trim_end_matches(".slice");
    let mut out = String::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        out.push('/');
        out.push_str(&prefix);
        out.push_str(".slice");
    }
    out
}

/// Where an engine puts its containers: the default systemd slice and scope prefix, the default cgroupfs
/// parent and folder prefix.
struct Placement {
    slice: &'static str,
    scope: &'static str,
    parent: &'static str,
    folder: &'static str,
}

const DOCKER: Placement = Placement {
    slice: "system.slice",
    scope: "docker-",
    parent: "/docker",
    folder: "",
};

/// Podman: `libpod-<id>` under `/libpod_parent` or a pod's cgroup (cgroupfs), under `machine.slice` or a
/// pod's slice (systemd).
const PODMAN: Placement = Placement {
    slice: "machine.slice",
    scope: "libpod-",
    parent: "/libpod_parent",
    folder: "libpod-",
};

/// The cgroup path an engine gives a container, from the cgroup driver and the container's cgroup parent.
fn placed(p: &Placement, driver: &str, parent: &str, id: &str) -> String {
    if driver == "systemd" {
        let slice = if parent.is_empty() { p.slice } else { parent };
        format!("{}/{}{id}.scope", expand_slice(slice), p.scope)
    } else {
        let parent = if parent.is_empty() { p.parent } else { parent };
        format!("/{}/{}{id}", parent.trim_matches('/'), p.folder)
    }
}

/// One container's identity from its inspect response, owned by `config.source`.
fn meta_from_inspect(
    c: bollard::models::ContainerInspectResponse,
    source: &Config,
    driver: &str,
) -> Option<ContainerMeta> {
    let engine = source.engine;
    let id = c.id?;
    let state = c.state.unwrap_or_default();
    let config = c.config.unwrap_or_default();
    let parent = c
        .host_config
        .and_then(|h| h.cgroup_parent)
        .unwrap_or_default();
    let health = state
        .health
        .and_then(|h| h.status)
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty() && s != "none");
    let layer = (c.graph_driver.as_ref())
        .and_then(|g| g.data.get("UpperDir"))
        .filter(|d| !d.is_empty())
        .cloned();
    Some(ContainerMeta {
        runtime: source.source,
        layer,
        cgroup_path: Some(engine.cgroup_path(driver, &parent, &id)),
        name: c
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        image: config.image.unwrap_or_default(),
        labels: config
            .labels
            .unwrap_or_default()
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
        state: state.status.map(|s| s.to_string()).unwrap_or_default(),
        health,
        restart_count: c.restart_count.unwrap_or(0).max(0) as u64,
        started_at: state.started_at.as_deref().and_then(parse_time),
        id,
    })
}

/// Starts the background task(s): the identity cache, and in stats mode the stats poller.
pub(crate) fn spawn(
    config: Config,
    store: Arc<MetaStore>,
    health: Arc<Health>,
    stats: Option<(Arc<StatsCache>, Arc<Health>)>,
) {
    let cfg = config.clone();
    tokio::spawn(run_identity(config, store.clone(), health));
    if let Some((cache, stats_health)) = stats {
        tokio::spawn(run_stats(cfg, store, cache, stats_health));
    }
}

/// Keeps the identity cache current for as long as the process runs.
async fn run_identity(config: Config, store: Arc<MetaStore>, health: Arc<Health>) {
    super::follow_forever(config.source, &health, || {
        sync_and_follow(&config, &store, &health)
    })
    .await
}

/// A failed Docker (or Podman) API call, with what to check.
fn unreachable(config: &Config, what: &str, e: bollard::errors::Error) -> SourceError {
    let host = (config.host.as_deref()).unwrap_or("DOCKER_HOST or unix:///var/run/docker.sock");
    SourceError::Unreachable {
        what: config.source.into(),
        detail: format!("{what} at {host}: {e}"),
        hint: match config.engine {
            Engine::Docker => "check --docker.host and that the socket is mounted and readable",
            Engine::Podman => {
                "check --podman.host, that `podman system service` serves it (podman.socket) \
                 and that the socket is mounted and readable"
            }
        },
    }
}

async fn sync_and_follow(
    config: &Config,
    store: &MetaStore,
    health: &Health,
) -> Result<(), SourceError> {
    let docker = connect(&config.host).map_err(|e| unreachable(config, "connect", e))?;
    let info = docker
        .info()
        .await
        .map_err(|e| unreachable(config, "info", e))?;
    let driver = info
        .cgroup_driver
        .map(|d| d.to_string())
        .unwrap_or_else(|| "cgroupfs".into());
    // Events are asked for from just before the list, so nothing that happens in between is missed;
    // replaying an event twice is harmless (each one re-inspects).
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs().saturating_sub(1))
        .unwrap_or(0);
    let list = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            ..Default::default()
        }))
        .await
        .map_err(|e| unreachable(config, "list", e))?;
    let mut all = HashMap::new();
    for c in list {
        let Some(id) = c.id else { continue };
        if let Ok(full) = docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await
            && let Some(meta) = meta_from_inspect(full, config, &driver)
        {
            all.insert(meta.id.clone(), Arc::new(meta));
        }
    }
    let n = all.len();
    store.replace_runtime(config.source, all);
    health.ok();
    tracing::info!(containers = n, cgroup_driver = %driver, "{} connected; identity cache synced", config.source);

    let mut filters = HashMap::new();
    filters.insert("type".to_string(), vec!["container".to_string()]);
    let mut events = docker.events(Some(EventsOptions {
        since: Some(since.to_string()),
        until: None,
        filters: Some(filters),
    }));
    while let Some(ev) = events.next().await {
        let ev = ev.map_err(|e| unreachable(config, "events stream", e))?;
        let action = ev.action.unwrap_or_default();
        let Some(id) = ev.actor.and_then(|a| a.id) else {
            continue;
        };
        if action.starts_with("exec_")
            || action == "attach"
            || action == "resize"
            || action == "top"
            || action == "export"
        {
            continue;
        }
        // Docker's last event is `destroy`, Podman's `remove`.
        if action == "destroy" || action == "remove" {
            store.remove(config.source, &id);
            continue;
        }
        match docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await
        {
            Ok(full) => {
                if let Some(meta) = meta_from_inspect(full, config, &driver) {
                    store.upsert(meta);
                }
            }
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => store.remove(config.source, &id),
            Err(e) => return Err(unreachable(config, "inspect", e)),
        }
    }
    Ok(())
}

/// Converts one stats-API response into cgroup-like figures.
pub(crate) fn from_stats(r: &bollard::models::ContainerStatsResponse) -> StatsSample {
    let mut s = CgroupStats::default();
    if let Some(cpu) = r.cpu_stats.as_ref().and_then(|c| c.cpu_usage.as_ref()) {
        s.cpu = Some(CpuStats {
            usage_seconds: cpu.total_usage.map(|v| v as f64 / 1e9),
            user_seconds: cpu.usage_in_usermode.map(|v| v as f64 / 1e9),
            system_seconds: cpu.usage_in_kernelmode.map(|v| v as f64 / 1e9),
            ..Default::default()
        });
    }
    if let Some(m) = &r.memory_stats
        && let Some(usage) = m.usage
    {
        // The daemon passes memory.stat on: v1 keys (`total_*`) or v2 keys. The cgroup readers parse it.
        let st = m.stats.clone().unwrap_or_default();
        let text: String = st.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
        let usage = Some(usage as f64);
        let v1 = st.contains_key("total_rss") || st.contains_key("rss");
        let mut mem = if v1 {
            crate::cgroup::v1::parse_memory_stat(usage, &text)
        } else {
            crate::cgroup::v2::parse_memory(usage, &text)
        };
        mem.max_usage = m.max_usage.map(|v| v as f64);
        mem.failcnt = m.failcnt.map(|v| v as f64);
        s.memory = Some(mem);
        s.spec = SpecStats {
            memory_limit: m.limit.map(|v| v as f64),
            ..Default::default()
        };
    }
    if let Some(p) = &r.pids_stats {
        s.pids = Some(PidsStats {
            current: p.current.map(|v| v as f64),
            max: p.limit.map(|v| v as f64),
        });
    }
    if let Some(b) = &r.blkio_stats {
        let mut devices: Vec<BlkioDevice> = Vec::new();
        let mut add = |entries: &Option<Vec<bollard::models::ContainerBlkioStatEntry>>,
                       bytes: bool| {
            for e in entries.iter().flatten() {
                let (Some(maj), Some(min), Some(op), Some(v)) =
                    (e.major, e.minor, e.op.as_deref(), e.value)
                else {
                    continue;
                };
                let (maj, min) = (maj as u32, min as u32);
                let i = match devices
                    .iter()
                    .position(|d| d.major == maj && d.minor == min)
                {
                    Some(i) => i,
                    None => {
                        devices.push(BlkioDevice {
                            major: maj,
                            minor: min,
                            ..Default::default()
                        });
                        devices.len() - 1
                    }
                };
                let d = &mut devices[i];
                match (op.to_ascii_lowercase().as_str(), bytes) {
                    ("read", true) => d.read_bytes = Some(v as f64),
                    ("write", true) => d.write_bytes = Some(v as f64),
                    ("read", false) => d.reads = Some(v as f64),
                    ("write", false) => d.writes = Some(v as f64),
                    _ => {}
                }
            }
        };
        add(&b.io_service_bytes_recursive, true);
        add(&b.io_serviced_recursive, false);
        s.blkio = devices;
    }
    let mut network: Vec<Interface> = r
        .networks
        .iter()
        .flatten()
        .map(|(name, n)| {
            let v = |x: Option<u64>| x.unwrap_or(0) as f64;
            Interface {
                name: name.clone(),
                rx_bytes: v(n.rx_bytes),
                rx_packets: v(n.rx_packets),
                rx_dropped: v(n.rx_dropped),
                rx_errors: v(n.rx_errors),
                tx_bytes: v(n.tx_bytes),
                tx_packets: v(n.tx_packets),
                tx_dropped: v(n.tx_dropped),
                tx_errors: v(n.tx_errors),
            }
        })
        .collect();
    network.sort_by(|a, b| a.name.cmp(&b.name));
    StatsSample { stats: s, network }
}

/// Polls the stats API of every running container: one-shot, at most `stats_concurrency` at once, each
/// bounded by `stats_timeout`. A container that does not answer in time keeps no figures this round.
async fn run_stats(
    config: Config,
    store: Arc<MetaStore>,
    cache: Arc<StatsCache>,
    health: Arc<Health>,
) {
    let sem = Arc::new(Semaphore::new(config.stats_concurrency.max(1)));
    loop {
        match connect(&config.host) {
            Ok(docker) => {
                let running: Vec<String> = store
                    .snapshot()
                    .values()
                    .filter(|m| m.runtime == "docker" && m.state == "running")
                    .map(|m| m.id.clone())
                    .collect();
                let mut tasks = tokio::task::JoinSet::new();
                for id in running {
                    let docker = docker.clone();
                    let sem = sem.clone();
                    let timeout = config.stats_timeout;
                    tasks.spawn(async move {
                        let _permit = sem.acquire_owned().await.ok()?;
                        let opts = StatsOptions {
                            stream: false,
                            one_shot: true,
                        };
                        let mut stream = docker.stats(&id, Some(opts));
                        let r = tokio::time::timeout(timeout, stream.next())
                            .await
                            .ok()??
                            .ok()?;
                        Some((id, Arc::new(from_stats(&r))))
                    });
                }
                let mut next = HashMap::new();
                while let Some(j) = tasks.join_next().await {
                    if let Ok(Some((id, s))) = j {
                        next.insert(id, s);
                    }
                }
                let ok =
                    store.snapshot().values().all(|m| m.state != "running") || !next.is_empty();
                cache.replace(next);
                if ok {
                    health.ok();
                } else {
                    health.fail(&SourceError::Timeout {
                        what: "docker stats API: no figures for any running container".into(),
                        after: config.stats_timeout,
                        flag: "--docker.stats-timeout",
                    });
                }
            }
            Err(e) => health.fail(&unreachable(&config, "stats API", e)),
        }
        tokio::time::sleep(config.stats_interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_cgroup_paths() {
        let id = "abc";
        let path = |d, p| Engine::Podman.cgroup_path(d, p, id);
        assert_eq!(path("cgroupfs", ""), "/libpod_parent/libpod-abc");
        // A pod's member: the pod's cgroup is the parent (as `podman inspect` gives it).
        assert_eq!(
            path("cgroupfs", "/libpod_parent/f00d"),
            "/libpod_parent/f00d/libpod-abc"
        );
        assert_eq!(path("systemd", ""), "/machine.slice/libpod-abc.scope");
        assert_eq!(
            path("systemd", "machine-libpod_pod_f00d.slice"),
            "/machine.slice/machine-libpod_pod_f00d.slice/libpod-abc.scope"
        );
    }

    #[test]
    fn cgroup_paths() {
        let id = "abc";
        assert_eq!(
            Engine::Docker.cgroup_path("cgroupfs", "", id),
            "/docker/abc"
        );
        assert_eq!(
            Engine::Docker.cgroup_path("cgroupfs", "/kubepods/burstable/pod1", id),
            "/kubepods/burstable/pod1/abc"
        );
        assert_eq!(
            Engine::Docker.cgroup_path("systemd", "", id),
            "/system.slice/docker-abc.scope"
        );
        assert_eq!(
            Engine::Docker.cgroup_path("systemd", "kubepods-burstable-pod1.slice", id),
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/docker-abc.scope"
        );
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("0001-01-01T00:00:00Z"), None);
        assert_eq!(parse_time("1970-01-01T00:00:10Z"), Some(10.0));
        let t = parse_time("2026-11-25T12:49:29.554101111Z").unwrap();
        assert!((t - 1_795_610_969.554_101).abs() < 1e-3, "{t}");
        assert_eq!(parse_time(""), None);
    }
}
