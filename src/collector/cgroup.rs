//! `cgroup`: usage of every container, pod and the root cgroup, read from the kernel's cgroup files at
//! scrape time (v1, hybrid or v2), joined with the identity the runtime sources keep in the background.
//! Processes, file descriptors and sockets come from /proc/<pid> of the cgroup's processes; network from
//! /proc/<pid>/net/dev of one process per network namespace.

use crate::sample::container::{ProcStats, Level, ContainerEntry, ContainersSample};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Built, Context, Decl, Paths, netdev, read};
use crate::parse::num;
use crate::cgroup::{self, Files, Found, Kind, KeptFiles, Layout, read_into};
use crate::sample::container::{CgroupStats, Interface, SpecStats, TaskStates};
use crate::expose::Exposable;
use crate::identity::{self, Identity, LabelAllowlist};
use crate::scrape::{CollectError, Collector};
use crate::source::MetaStore;
use crate::source::docker::StatsCache;
use crate::source::kubernetes::{PodIndex, PodInfo, PodStore};

pub(crate) const DECL: Decl = Decl {
    name: "cgroup",
    default_enabled: true,
    build,
};

fn build(cx: &Context<'_>) -> Result<Built, String> {
    let f = cx.flags;
    let shared = cx.shared;
    Ok(Built::Run(Arc::new(
        CgroupCollector::new(
            cx.paths.clone(),
            f.cgroup_include_system,
            shared.runtime_meta.clone(),
            shared.docker_stats.clone(),
            cx.docker_labels(),
            shared.pods.clone(),
            cx.pod_columns(),
        )
        .keep_open(f.cgroup_keep_open)
        .tasks_state(f.cgroup_tasks_state)
        .only_pod(f.pod_uid.clone().filter(|u| !u.is_empty())),
    )))
}

/// Limits and shares are re-read at most this often (plus a per-cgroup spread of up to 10 s, so a fleet
/// started together does not refresh in one scrape). They change only when a container is updated;
/// cAdvisor reads them once, when the container starts.
const SPEC_REFRESH: Duration = Duration::from_secs(30);

/// Interfaces never reported for a container (cAdvisor's list): loopback and the host ends of bridges.
const SKIP_INTERFACES: [&str; 4] = ["lo", "veth", "docker", "nerdctl"];

/// Whether a cgroup is the pod `uid` or one of its containers (sidecar mode). The systemd driver writes
/// the uid with underscores.
fn in_pod(kind: &Kind, uid: &str) -> bool {
    let same = |u: &str| u.replace('_', "-").eq_ignore_ascii_case(uid);
    match kind {
        Kind::Pod { uid: u, .. } => same(u),
        Kind::Container {
            pod_uid: Some(u), ..
        } => same(u),
        _ => false,
    }
}

pub(crate) struct CgroupCollector {
    /// Sidecar mode: only this pod's cgroups.
    only_pod: Option<String>,
    paths: Paths,
    include_system: bool,
    meta: Option<Arc<MetaStore>>,
    stats_cache: Option<Arc<StatsCache>>,
    allow: LabelAllowlist,
    /// This node's pods (Kubernetes source), and the `--kubernetes.pod-labels` columns.
    pods: Option<PodStore>,
    pod_columns: Vec<(String, String)>,
    layout: Mutex<Option<Layout>>,
    threads: usize,
    /// What is kept between scrapes for each cgroup, by path.
    state: Mutex<HashMap<String, CgroupState>>,
    /// `--collector.cgroup.keep-open`: keep each cgroup's files open between scrapes.
    keep_open: bool,
    /// `--collector.cgroup.tasks-state`: count the containers' threads by state.
    tasks_state: bool,
}

/// What the collector keeps of one cgroup between scrapes. It travels with its cgroup to the worker that
/// reads it and back, and is dropped (its kept files closed) when the cgroup is no longer found.
#[derive(Debug, Default)]
struct CgroupState {
    /// Inode of the cgroup's folder: a cgroup made again under the same path starts afresh.
    ino: u64,
    /// Limits and shares, with when they were read.
    spec: Option<(Instant, SpecStats)>,
    /// The first process's pid, network namespace and start time (clock ticks after boot): they never
    /// change for a process.
    first_proc: Option<(u32, ProcFacts)>,
    /// Keep-open mode: the cgroup's files.
    kept: Option<KeptFiles>,
}

impl CgroupCollector {
    pub(crate) fn new(
        paths: Paths,
        include_system: bool,
        meta: Option<Arc<MetaStore>>,
        stats_cache: Option<Arc<StatsCache>>,
        allow: LabelAllowlist,
        pods: Option<PodStore>,
        pod_columns: Vec<(String, String)>,
    ) -> Self {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 4);
        CgroupCollector {
            only_pod: None,
            paths,
            include_system,
            meta,
            stats_cache,
            allow,
            pods,
            pod_columns,
            layout: Mutex::new(None),
            threads,
            state: Mutex::new(HashMap::new()),
            keep_open: false,
            tasks_state: false,
        }
    }

    /// Counts each container's threads by state (`--collector.cgroup.tasks-state`).
    pub(crate) fn tasks_state(mut self, on: bool) -> Self {
        self.tasks_state = on;
        self
    }

    /// Keeps each cgroup's files open between scrapes (`--collector.cgroup.keep-open`).
    pub(crate) fn keep_open(mut self, on: bool) -> Self {
        self.keep_open = on;
        self
    }

    pub(crate) fn only_pod(mut self, uid: Option<String>) -> Self {
        self.only_pod = uid;
        self
    }

    /// The cgroup layout, detected on first use and again after a failure.
    pub(crate) fn layout(&self) -> Result<Layout, String> {
        let mut l = self.layout.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(layout) = l.as_ref() {
            return Ok(layout.clone());
        }
        let layout = Layout::detect(&self.paths.sys("fs/cgroup"))?;
        tracing::info!(layout = layout.name(), "cgroup layout detected");
        *l = Some(layout.clone());
        Ok(layout)
    }

    fn forget_layout(&self) {
        *self.layout.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// major:minor → device name, from /proc/diskstats (partitions included).
fn device_names(paths: &Paths) -> HashMap<(u32, u32), String> {
    read(&paths.proc("diskstats"))
        .map(|text| crate::sys::block_device_names(&text))
        .unwrap_or_default()
}

/// Processes, fds and sockets of a set of pids, and the first one's open-files limit. A pid that exits
/// meanwhile is simply not counted.
fn proc_stats(paths: &Paths, pids: &[u32], tasks: bool, buf: &mut Vec<u8>) -> ProcStats {
    let mut s = ProcStats {
        processes: pids.len() as f64,
        max_open_files: (pids.first())
            .and_then(|p| read_into(&paths.proc(&format!("{p}/limits")), buf))
            .and_then(soft_open_files),
        ..Default::default()
    };
    for pid in pids {
        if let Ok((fds, sockets)) = fd_counts(&paths.proc(&format!("{pid}/fd"))) {
            s.file_descriptors += fds;
            s.sockets += sockets;
        }
    }
    if tasks {
        let mut counts = TaskStates::default();
        for pid in pids {
            count_task_states(paths, *pid, &mut counts, buf);
        }
        s.tasks = Some(counts);
    }
    s
}

/// Adds the states of one process's threads (`/proc/<pid>/task/<tid>/stat`, the letter after the
/// command) to `counts`. A thread or process that exits meanwhile is not counted.
fn count_task_states(paths: &Paths, pid: u32, counts: &mut TaskStates, buf: &mut Vec<u8>) {
    let Ok(dir) = std::fs::read_dir(paths.proc(&format!("{pid}/task"))) else {
        return;
    };
    for entry in dir.flatten() {
        let stat = entry.path().join("stat");
        if let Some(state) = read_into(&stat, buf).and_then(stat_state) {
            counts.add(state);
        }
    }
}

/// Field 3 (state) of a /proc/<pid>/stat line: the first letter after the command's last `)`.
pub(crate) fn stat_state(text: &str) -> Option<char> {
    let after = text.get(text.rfind(')')? + 1..)?;
    after.split_whitespace().next()?.chars().next()
}

/// Open file descriptors and, among them, sockets, of one process: its `/proc/<pid>/fd` folder is read
/// once and each link is read relative to it (`readlinkat`), so no link costs a walk of the whole path.
fn fd_counts(fd_dir: &std::path::Path) -> std::io::Result<(f64, f64)> {
    use rustix::fs::{Dir, Mode, OFlags};
    let fd = rustix::fs::open(
        fd_dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut dir = Dir::new(fd)?;
    let (mut fds, mut sockets) = (0.0, 0.0);
    let mut link = [0u8; 8];
    while let Some(entry) = dir.read() {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_bytes().first() == Some(&b'.') {
            continue; // . and ..
        }
        fds += 1.0;
        // Only the start matters: "socket:[inode]". A longer target is cut short, which is fine here.
        if let Ok(n) = rustix::fs::readlinkat_raw(dir.fd()?, name, &mut link[..])
            && link[..n.min(link.len())].starts_with(b"socket:")
        {
            sockets += 1.0;
        }
    }
    Ok((fds, sockets))
}

/// A process's network namespace, as the inode in its `/proc/<pid>/ns/net` link (`net:[4026531992]`).
fn netns(paths: &Paths, pid: u32) -> Option<u64> {
    let link = std::fs::read_link(paths.proc(&format!("{pid}/ns/net"))).ok()?;
    let link = link.to_str()?;
    link.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// A process's start time in clock ticks after boot (field 22 of /proc/<pid>/stat).
fn start_ticks(paths: &Paths, pid: u32, buf: &mut Vec<u8>) -> Option<f64> {
    stat_start_ticks(read_into(&paths.proc(&format!("{pid}/stat")), buf)?)
}

/// The soft limit on the `Max open files` line of /proc/<pid>/limits, -1 for `unlimited` (cAdvisor's
/// `container_ulimits_soft{ulimit="max_open_files"}`).
pub(crate) fn soft_open_files(text: &str) -> Option<f64> {
    let rest = text.lines().find_map(|l| l.strip_prefix("Max open files"))?;
    match rest.split_whitespace().next()? {
        "unlimited" => Some(-1.0),
        v => num(v),
    }
}

/// Field 22 (starttime) of a /proc/<pid>/stat line. The command (field 2) may hold spaces and parens, so
/// the fields are counted after its last `)`; a line cut short gives `None`.
pub(crate) fn stat_start_ticks(text: &str) -> Option<f64> {
    let after = text.get(text.rfind(')')? + 1..)?;
    num(after.split_whitespace().nth(19)?)
}

fn network_of(paths: &Paths, pid: u32) -> Vec<Interface> {
    let Ok(text) = read(&paths.proc(&format!("{pid}/net/dev"))) else {
        return Vec::new();
    };
    let Ok(devs) = netdev::parse(&text) else {
        return Vec::new();
    };
    devs.into_iter()
        .filter(|d| !SKIP_INTERFACES.iter().any(|p| d.device.starts_with(p)))
        .map(|d| {
            // /proc/net/dev: rx bytes packets errs drop ... tx bytes packets errs drop ...
            let v = d.values;
            Interface {
                name: d.device,
                rx_bytes: v[0],
                rx_packets: v[1],
                rx_errors: v[2],
                rx_dropped: v[3],
                tx_bytes: v[8],
                tx_packets: v[9],
                tx_errors: v[10],
                tx_dropped: v[11],
            }
        })
        .collect()
}

/// A process's network namespace and start time (clock ticks after boot).
type ProcFacts = (Option<u64>, Option<f64>);

/// What one worker reads for one cgroup.
struct Raw {
    found: Found,
    /// Handed back to the collector after the read.
    state: CgroupState,
    stats: CgroupStats,
    pids: Vec<u32>,
    /// The first process's pid, network namespace and start time.
    first_proc: Option<(u32, ProcFacts)>,
    procs: Option<ProcStats>,
}

/// A spread of 0..10 s per cgroup path, so refreshes of limits are spread over scrapes.
fn spread(path: &str) -> Duration {
    let h = path
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    Duration::from_millis(h % 10_000)
}

/// One container per network namespace carries its traffic: the one started first (a pod's sandbox, or
/// the container whose namespace others joined). Host-network containers carry none: their traffic is
/// the node's. Returns the positions of the carriers in `raws`.
fn network_owners(raws: &[Raw], host_netns: Option<u64>) -> std::collections::HashSet<usize> {
    let mut owner: HashMap<u64, (f64, usize)> = HashMap::new();
    for (i, r) in raws.iter().enumerate() {
        if !matches!(r.found.kind, Kind::Container { .. }) {
            continue;
        }
        if let Some((_, (Some(ns), Some(start)))) = r.first_proc
            && Some(ns) != host_netns
        {
            let e = owner.entry(ns).or_insert((start, i));
            if start < e.0 {
                *e = (start, i);
            }
        }
    }
    owner.values().map(|(_, i)| *i).collect()
}

/// The containers whose cgroup path does not say it is one (plain containerd's `/<namespace>/<id>`):
/// path → id.
fn unnamed_paths(metas: &HashMap<String, Arc<crate::source::ContainerMeta>>) -> HashMap<String, String> {
    (metas.values())
        .filter_map(|m| Some((m.cgroup_path.as_ref()?, m)))
        .filter(|(p, _)| cgroup::classify(p) == Kind::System)
        .map(|(p, m)| (p.clone(), m.id.clone()))
        .collect()
}

/// Who each cgroup is, for one scrape: the runtime's identity cache, this node's pods, and the label
/// columns (allowlisted runtime labels, then `--kubernetes.pod-labels`).
struct Names<'a> {
    metas: &'a HashMap<String, Arc<crate::source::ContainerMeta>>,
    index: &'a PodIndex,
    pod_keys: &'a [(String, String)],
    columns: Vec<(String, String)>,
    /// How many of `columns` are runtime-label columns.
    runtime_columns: usize,
    /// Pods known from the runtime's labels (cri-dockerd), for pod cgroups when no Kubernetes source runs.
    runtime_pods: HashMap<&'a str, (&'a str, &'a str)>,
}

impl<'a> Names<'a> {
    fn new(
        metas: &'a HashMap<String, Arc<crate::source::ContainerMeta>>,
        index: &'a PodIndex,
        allow: &LabelAllowlist,
        pod_keys: &'a [(String, String)],
    ) -> Names<'a> {
        let mut columns = allow.columns(metas.values().map(|m| &**m));
        let runtime_columns = columns.len();
        columns.extend(pod_keys.iter().cloned());
        let runtime_pods = (metas.values())
            .map(|m| (m.label(identity::POD_UID), m))
            .filter(|(uid, _)| !uid.is_empty())
            .map(|(uid, m)| {
                let pod = (m.label(identity::POD_NAME), m.label(identity::POD_NAMESPACE));
                (uid, pod)
            })
            .collect();
        Names {
            metas,
            index,
            pod_keys,
            columns,
            runtime_columns,
            runtime_pods,
        }
    }

    /// The `--kubernetes.pod-labels` values of a pod (empty strings for no pod).
    fn pod_values(&self, pod: Option<&PodInfo>) -> Vec<String> {
        (self.pod_keys.iter())
            .map(|(_, key)| pod.map(|p| p.label(key).to_string()).unwrap_or_default())
            .collect()
    }

    /// Sets the entry's identity (and, from the runtime, its start time and health).
    fn identify(&self, found: &Found, entry: &mut ContainerEntry) {
        let bare = || Identity::bare(found.path.clone(), self.runtime_columns);
        entry.identity = match &found.kind {
            Kind::Container { id, pod_uid, .. } => self.container(found, id, pod_uid.as_deref(), entry),
            Kind::Pod { uid, .. } => {
                let pod = self.index.pod(uid);
                let mut ident = bare();
                if let Some(p) = pod {
                    ident.pod = p.name.clone();
                    ident.namespace = p.namespace.clone();
                } else if let Some((name, ns)) = self.runtime_pods.get(uid.as_str()) {
                    ident.pod = name.to_string();
                    ident.namespace = ns.to_string();
                }
                ident.extra.extend(self.pod_values(pod));
                ident
            }
            _ => Identity::bare(found.path.clone(), self.columns.len()),
        };
    }

    fn container(
        &self,
        found: &Found,
        id: &str,
        pod_uid: Option<&str>,
        entry: &mut ContainerEntry,
    ) -> Identity {
        if let Some(meta) = self.metas.get(id) {
            entry.start_time = meta.started_at;
            entry.health = Some(health_value(meta));
            let runtime = &self.columns[..self.runtime_columns];
            let mut ident = Identity::from_meta(found.path.clone(), meta, runtime);
            let uid = pod_uid.unwrap_or_else(|| meta.label(identity::POD_UID));
            ident.extra.extend(self.pod_values(self.index.pod(uid)));
            return ident;
        }
        let mut ident = Identity::bare(found.path.clone(), self.runtime_columns);
        if let Some((pod, c)) = self.index.container(id) {
            entry.start_time = c.started_at;
            ident.name = id.to_string();
            ident.image = c.image.clone();
            ident.container = c.name.clone();
            ident.pod = pod.name.clone();
            ident.namespace = pod.namespace.clone();
            ident.extra.extend(self.pod_values(Some(pod)));
        } else {
            // A container the runtime sources do not list (a pod's sandbox under CRI): the pod it sits
            // in, from its path.
            let pod = pod_uid.and_then(|u| self.index.pod(u));
            if let Some(p) = pod {
                ident.name = id.to_string();
                ident.pod = p.name.clone();
                ident.namespace = p.namespace.clone();
            }
            ident.extra.extend(self.pod_values(pod));
        }
        ident
    }
}

/// Runs `work` on every queued job in `threads` workers, which take small batches from the queue so
/// that none idles while another still has a long share. Returns (position, result). A worker that
/// panicked fails the whole collection (its batch would be missing): never a success with data dropped.
fn in_workers<J, R: Send>(
    threads: usize,
    queue: &Mutex<impl Iterator<Item = (usize, J)> + Send>,
    work: impl Fn(J, &mut Vec<u8>) -> R + Sync,
) -> Result<Vec<(usize, R)>, CollectError> {
    let work = &work;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(move || {
                    let mut buf = Vec::new();
                    let mut out = Vec::new();
                    loop {
                        let batch: Vec<_> = (queue.lock().unwrap_or_else(|p| p.into_inner()))
                            .by_ref()
                            .take(16)
                            .collect();
                        if batch.is_empty() {
                            return out;
                        }
                        for (i, job) in batch {
                            out.push((i, work(job, &mut buf)));
                        }
                    }
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.join().map_err(|_| {
                CollectError::Other(
                    "a cgroup reader panicked (a bug: please report it with the log); no container \
                     series this time"
                        .into(),
                )
            })?);
        }
        Ok(all)
    })
}

impl CgroupCollector {
    fn read_all(
        &self,
        layout: &Layout,
        found: Vec<Found>,
        hugepage_sizes: &[String],
    ) -> Result<Vec<Raw>, CollectError> {
        // Each cgroup's state goes with it to the worker that reads it. The states of cgroups no longer
        // found are dropped here (their kept files closed); a cgroup made again under the same path (a
        // new inode) starts with a fresh one.
        let mut before = std::mem::take(&mut *self.state.lock().unwrap_or_else(|p| p.into_inner()));
        let jobs: Vec<(Found, CgroupState)> = found
            .into_iter()
            .map(|f| {
                let state = before
                    .remove(&f.path)
                    .filter(|s| s.ino == f.ino)
                    .unwrap_or_else(|| CgroupState {
                        ino: f.ino,
                        kept: self.keep_open.then(KeptFiles::default),
                        ..Default::default()
                    });
                (f, state)
            })
            .collect();
        drop(before);
        // Workers take cgroups in small batches from one queue, so none idles while another still has a
        // long share; the results are put back in discovery order.
        let queue = Mutex::new(jobs.into_iter().enumerate());
        let paths = &self.paths;
        let tasks_state = self.tasks_state;
        let read_one = move |(f, mut state): (Found, CgroupState), buf: &mut Vec<u8>| -> Raw {
            let is_root = f.kind == Kind::Root;
            let cached = state
                .spec
                .as_ref()
                .filter(|(at, _)| at.elapsed() < SPEC_REFRESH + spread(&f.path))
                .map(|(_, spec)| spec);
            let spec_read = cached.is_none();
            let mut files = match state.kept.as_mut() {
                Some(k) => Files::kept(buf, k),
                None => Files::plain(buf),
            };
            let mut stats = layout.read_with_spec(&f.path, is_root, cached, &mut files);
            stats.hugetlb = layout.hugetlb(&f.path, hugepage_sizes, &mut files);
            let pids = if is_root {
                Vec::new()
            } else {
                layout.procs(&f.path, &mut files)
            };
            if spec_read {
                state.spec = Some((Instant::now(), stats.spec.clone()));
            }
            match pids.first() {
                Some(&p) if state.first_proc.as_ref().is_some_and(|(q, _)| *q == p) => {}
                Some(&p) => {
                    state.first_proc = Some((p, (netns(paths, p), start_ticks(paths, p, buf))))
                }
                None => state.first_proc = None,
            }
            let procs =
                (!is_root && !matches!(f.kind, Kind::Pod { .. })).then(|| proc_stats(paths, &pids, tasks_state, buf));
            Raw {
                found: f,
                first_proc: state.first_proc,
                state,
                stats,
                pids,
                procs,
            }
        };
        let mut numbered = in_workers(self.threads, &queue, read_one)?;
        numbered.sort_unstable_by_key(|(i, _)| *i);
        let mut raws: Vec<Raw> = numbered.into_iter().map(|(_, r)| r).collect();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for r in &mut raws {
            state.insert(r.found.path.clone(), std::mem::take(&mut r.state));
        }
        Ok(raws)
    }

    fn read_cgroups(&self, layout: &Layout) -> Result<ContainersSample, CollectError> {
        let metas = self.meta.as_ref().map(|m| m.snapshot()).unwrap_or_default();
        let mut found = cgroup::discover(layout, self.include_system, &unnamed_paths(&metas))
            .map_err(CollectError::Other)?;
        if let Some(uid) = &self.only_pod {
            found.retain(|f| in_pod(&f.kind, uid));
        }
        // The host's huge page pools, where cgroups can have the controller at all.
        let sizes = match layout.has_hugetlb() {
            true => cgroup::hugetlb::pool_sizes(&self.paths.sys("kernel/mm/hugepages")),
            false => Vec::new(),
        };
        let raws = self.read_all(layout, found, &sizes)?;
        let devices = device_names(&self.paths);
        let owners = network_owners(&raws, netns(&self.paths, 1));
        let index = (self.pods.as_ref())
            .map(PodIndex::from_store)
            .unwrap_or_default();
        let names = Names::new(&metas, &index, &self.allow, &self.pod_columns);
        let meminfo = read(&self.paths.proc("meminfo"))
            .ok()
            .and_then(|t| super::meminfo::parse(&t).ok());
        // No swap on the machine at all: every cgroup's swap is truly 0, also where it is not accounted.
        let no_swap = meminfo.as_ref().and_then(|m| m.get("SwapTotal_bytes")) == Some(0.0);
        let mut entries = Vec::with_capacity(raws.len());
        for (i, r) in raws.into_iter().enumerate() {
            let is_root = r.found.kind == Kind::Root;
            // A cgroup that vanished between discovery and reading has no figures: it is not reported.
            if !is_root && r.stats.cpu.is_none() && r.stats.memory.is_none() {
                continue;
            }
            let mut entry = ContainerEntry {
                level: match r.found.kind {
                    Kind::Root => Level::Root,
                    Kind::Pod { .. } => Level::Pod,
                    Kind::Container { .. } => Level::Container,
                    _ => Level::Other,
                },
                stats: r.stats,
                procs: r.procs,
                ..Default::default()
            };
            names.identify(&r.found, &mut entry);
            if is_root {
                root_memory(meminfo.as_ref(), &mut entry.stats);
                entry.network = network_of(&self.paths, 1);
            } else if owners.contains(&i)
                && let Some(pid) = r.pids.first()
            {
                entry.network = network_of(&self.paths, *pid);
            }
            if no_swap
                && let Some(m) = entry.stats.memory.as_mut()
                && m.swap.is_none()
            {
                m.swap = Some(0.0);
            }
            // Devices as cAdvisor labels them: `/dev/<name>`; major:minor where the name is not known.
            for d in &mut entry.stats.blkio {
                d.device = crate::sys::device_label(&devices, d.major, d.minor);
            }
            entries.push(entry);
        }
        Ok(ContainersSample {
            columns: names.columns,
            entries,
            now: now(),
        })
    }

    /// Stats mode: figures from the Docker stats API cache (cgroups not readable here).
    fn read_stats_api(&self, cache: &StatsCache) -> ContainersSample {
        let metas = self.meta.as_ref().map(|m| m.snapshot()).unwrap_or_default();
        let columns = self.allow.columns(metas.values().map(|m| &**m));
        let stats = cache.snapshot();
        let mut entries: Vec<ContainerEntry> = stats
            .iter()
            .filter_map(|(id, s)| {
                let meta = metas.get(id)?;
                let path = meta
                    .cgroup_path
                    .clone()
                    .unwrap_or_else(|| format!("/docker/{id}"));
                let mut stats = s.stats.clone();
                for d in &mut stats.blkio {
                    d.device = format!("{}:{}", d.major, d.minor);
                }
                Some(ContainerEntry {
                    identity: Identity::from_meta(path, meta, &columns),
                    stats,
                    network: s.network.clone(),
                    start_time: meta.started_at,
                    health: Some(health_value(meta)),
                    ..Default::default()
                })
            })
            .collect();
        entries.sort_by(|a, b| a.identity.id.cmp(&b.identity.id));
        ContainersSample {
            columns,
            entries,
            now: now(),
        }
    }
}

/// The root cgroup as cAdvisor reports it: its memory limit is the machine's memory, and on v2 (no
/// memory.current at the root) its usage is what /proc/meminfo counts as used (MemTotal − MemFree).
fn root_memory(mem: Option<&crate::sample::node::MeminfoSample>, stats: &mut CgroupStats) {
    let Some(mem) = mem else { return };
    let total = mem.get("MemTotal_bytes");
    if matches!(stats.spec.memory_limit, None | Some(0.0)) && total.is_some() {
        stats.spec.memory_limit = total;
    }
    if let Some(m) = stats.memory.as_mut()
        && m.usage.is_none()
        && let (Some(t), Some(free)) = (total, mem.get("MemFree_bytes"))
    {
        let usage = t - free;
        m.usage = Some(usage);
        m.working_set = crate::cgroup::working_set(Some(usage), mem.get("Inactive_file_bytes"));
    }
}

/// `container_health_state`: 1 healthy, 0 unhealthy or starting, -1 no health check (cAdvisor's values).
fn health_value(meta: &crate::source::ContainerMeta) -> f64 {
    match meta.health.as_deref() {
        Some("healthy") => 1.0,
        Some(_) => 0.0,
        None => -1.0,
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Collector for CgroupCollector {
    fn collect(&self) -> Result<Box<dyn Exposable>, CollectError> {
        match self.layout() {
            Ok(layout) => match self.read_cgroups(&layout) {
                Ok(s) => Ok(Box::new(s)),
                Err(e) => {
                    self.forget_layout();
                    Err(e)
                }
            },
            Err(e) => match &self.stats_cache {
                Some(cache) => Ok(Box::new(self.read_stats_api(cache))),
                None => Err(CollectError::Other(e)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_states() {
        assert_eq!(stat_state("42 (a) b) R 1 2"), Some('R'));
        assert_eq!(stat_state("42 (sleep) S 1"), Some('S'));
        assert_eq!(stat_state("42 (x)"), None);
        assert_eq!(stat_state(")"), None);
        let mut t = TaskStates::default();
        for c in ['R', 'S', 'S', 'D', 'T', 't', 'I', 'Z', 'X'] {
            t.add(c);
        }
        assert_eq!(
            (t.running, t.sleeping, t.uninterruptible, t.stopped),
            (1.0, 2.0, 1.0, 2.0)
        );
    }

    #[test]
    fn soft_open_files_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             1024                 1024                 processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(soft_open_files(limits), Some(1024.0));
        let unlimited = "Max open files            unlimited            unlimited            files\n";
        assert_eq!(soft_open_files(unlimited), Some(-1.0));
        for bad in ["", "Max open files", "Max open files   x  y files", "Max open filesxx"] {
            assert_eq!(soft_open_files(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn start_ticks_of_cut_short_and_hostile_stat_lines() {
        let line = "26231 (a) b (c)) S 1 26231 26231 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 777 0 0";
        assert_eq!(stat_start_ticks(line), Some(777.0));
        for bad in [")", "26231 (vim)", "26231 (vim) S", "", "no paren at all"] {
            assert_eq!(stat_start_ticks(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_panicking_worker_fails_the_collection() {
        let queue = Mutex::new((0..100usize).map(|i| (i, i)));
        let got = in_workers(2, &queue, |j, _| j * 2).unwrap();
        assert_eq!(got.len(), 100);
        let queue = Mutex::new((0..100usize).map(|i| (i, i)));
        let result = in_workers(2, &queue, |j, _| {
            assert!(j != 57, "boom");
            j
        });
        assert!(matches!(result, Err(CollectError::Other(m)) if m.contains("panicked")));
    }
}
