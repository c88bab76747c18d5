//! One frame of the live view from one collection: the same typed samples `/metrics` renders, read through
//! `Any`, with rates computed here from two consecutive runs (so every browser and tool sees the same
//! figures and none computes them). The builder keeps only the previous run's counters, and only while
//! someone is watching.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::expose::{Outcome, Part};
use crate::parse::Psi;
use crate::sample::container::{ContainerEntry, ContainersSample, DockerSample, KubeSample, Level};
use crate::sample::node::{
    CpuSample, DiskstatsSample, FilesystemSample, LoadavgSample, MachineSample, MeminfoSample,
    PressureSample,
};

/// The collectors a frame reads; the hub asks for those that are enabled.
pub(crate) const WANTED: &[&str] = &[
    "cgroup",
    "docker",
    "kubernetes",
    "machine",
    "meminfo",
    "loadavg",
    "pressure",
    "cpu",
    "diskstats",
    "filesystem",
];

/// What the page and `/api/v1/live` get each second. Rates are per second over `interval`; a rate is
/// `null` on the first frame, and where a counter went backwards (a restarted container).
#[derive(Debug, Serialize, Default)]
pub(crate) struct Frame {
    /// Unix seconds of this frame.
    pub time: f64,
    /// Seconds between the two runs the rates come from; `null` on the first frame.
    pub interval: Option<f64>,
    /// Some container belongs to a pod: the page groups by namespace and pod.
    pub kubernetes: bool,
    pub machine: Machine,
    /// The root cgroup (`id="/"`), the whole machine as cAdvisor reports it.
    pub root: Option<Row>,
    pub containers: Vec<Row>,
    /// Each collector the frame read: `ok`, `nodata` (a source not answered yet) or `failed`.
    pub collectors: Vec<(&'static str, &'static str)>,
}

#[derive(Debug, Serialize, Default)]
pub(crate) struct Machine {
    pub cores: Option<f64>,
    /// Percent of one core, summed over cores (200 % is two busy cores), as `docker stats` writes CPU.
    pub cpu: Option<f64>,
    pub mem_total: Option<f64>,
    pub mem_available: Option<f64>,
    pub load: Option<[f64; 3]>,
    pub psi: Option<Stalls>,
    pub filesystems: Vec<Filesystem>,
    pub disks: Vec<Disk>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Filesystem {
    pub mountpoint: String,
    pub device: String,
    pub fstype: String,
    pub size: f64,
    pub avail: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Disk {
    pub device: String,
    /// Bytes per second.
    pub read: Option<f64>,
    pub write: Option<f64>,
}

/// Percent of wall time some (or all) tasks stalled on each resource, over the frame's interval.
#[derive(Debug, Serialize, Default, Clone, Copy)]
pub(crate) struct Stalls {
    pub cpu_some: Option<f64>,
    pub cpu_full: Option<f64>,
    pub memory_some: Option<f64>,
    pub memory_full: Option<f64>,
    pub io_some: Option<f64>,
    pub io_full: Option<f64>,
}

/// One cgroup (or one runtime container without a cgroup: created, exited). Text fields are the
/// runtime's and the user's own: the page sets them as text, never as markup.
#[derive(Debug, Serialize, Default)]
pub(crate) struct Row {
    pub id: String,
    pub name: String,
    pub image: String,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// root, pod, container, sandbox (a pod's pause container) or other (a system cgroup).
    pub level: &'static str,
    pub state: Option<String>,
    pub health: Option<String>,
    /// Percent of one core.
    pub cpu: Option<f64>,
    /// The CPU quota in cores, where one is set.
    pub cpu_limit: Option<f64>,
    /// Percent of the interval's CFS periods that were throttled, where a quota is set.
    pub throttled: Option<f64>,
    /// Working set, page cache and limit in bytes; the limit only where one is set.
    pub memory: Option<f64>,
    pub memory_cache: Option<f64>,
    pub memory_limit: Option<f64>,
    /// Bytes per second.
    pub net_rx: Option<f64>,
    pub net_tx: Option<f64>,
    pub blk_read: Option<f64>,
    pub blk_write: Option<f64>,
    pub pids: Option<f64>,
    pub restarts: Option<f64>,
    /// Unix seconds the container started.
    pub started: Option<f64>,
    pub oom_kills: Option<f64>,
    pub psi: Option<Stalls>,
}

/// The counters of one cgroup that rates come from.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    cpu: Option<f64>,
    periods: Option<f64>,
    throttled: Option<f64>,
    rx: Option<f64>,
    tx: Option<f64>,
    read: Option<f64>,
    write: Option<f64>,
    psi: [Option<f64>; 6],
}

/// The node's counters: busy CPU seconds, PSI totals, bytes read and written per disk.
#[derive(Debug, Clone, Default)]
struct NodeCounters {
    cpu: Option<f64>,
    psi: [Option<f64>; 6],
    disks: HashMap<String, (f64, f64)>,
}

/// Builds frames, keeping the last run's counters for the next frame's rates.
#[derive(Default)]
pub(crate) struct Builder {
    containers: HashMap<String, Counters>,
    containers_at: Option<(Instant, u64)>,
    node: NodeCounters,
    cpu_at: Option<(Instant, u64)>,
    pressure_at: Option<(Instant, u64)>,
    disks_at: Option<(Instant, u64)>,
}

/// The time between two runs of a collector, or `None` when the run is the same one (reused through
/// `--collect.min-age`) or there was none before.
fn elapsed(prev: &mut Option<(Instant, u64)>, part: &Part) -> Option<f64> {
    let now = (part.started, part.runs);
    let before = prev.replace(now);
    match before {
        Some((_, runs)) if runs == part.runs => None,
        Some((at, _)) => Some(part.started.duration_since(at).as_secs_f64()).filter(|d| *d > 0.0),
        None => None,
    }
}

fn sample<'a, T: 'static>(parts: &'a [Arc<Part>], name: &str) -> Option<(&'a Part, &'a T)> {
    let part = parts.iter().find(|p| p.name == name)?;
    match &part.outcome {
        Outcome::Ok(s) => {
            let any: &dyn std::any::Any = &**s;
            any.downcast_ref::<T>().map(|t| (&**part, t))
        }
        _ => None,
    }
}

fn rate(cur: Option<f64>, prev: Option<f64>, dt: Option<f64>) -> Option<f64> {
    let (c, p, dt) = (cur?, prev?, dt?);
    (c >= p).then(|| round((c - p) / dt))
}

/// Three significant decimals are plenty for a person and keep the frame small.
fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn psi_totals(cpu: &Psi, memory: &Psi, io: &Psi) -> [Option<f64>; 6] {
    [
        cpu.some,
        cpu.full,
        memory.some,
        memory.full,
        io.some,
        io.full,
    ]
}

/// Stall percentages from two readings of the PSI totals (seconds).
fn stalls(cur: &[Option<f64>; 6], prev: Option<&[Option<f64>; 6]>, dt: Option<f64>) -> Stalls {
    let r = |i: usize| rate(cur[i], prev.and_then(|p| p[i]), dt).map(|v| round(v * 100.0));
    Stalls {
        cpu_some: r(0),
        cpu_full: r(1),
        memory_some: r(2),
        memory_full: r(3),
        io_some: r(4),
        io_full: r(5),
    }
}

impl Builder {
    /// The frame of one collection. A collector's run that was reused (`--collect.min-age`) gives no
    /// rates and leaves the counters of the run before.
    pub(crate) fn build(&mut self, parts: &[Arc<Part>], now: f64) -> Frame {
        let mut frame = Frame {
            time: now,
            collectors: parts
                .iter()
                .map(|p| {
                    let state = match p.outcome {
                        Outcome::Ok(_) => "ok",
                        Outcome::NoData => "nodata",
                        Outcome::Failed => "failed",
                    };
                    (p.name, state)
                })
                .collect(),
            ..Default::default()
        };
        frame.machine = self.machine(parts);
        if let Some((part, s)) = sample::<ContainersSample>(parts, "cgroup") {
            let dt = elapsed(&mut self.containers_at, part);
            frame.interval = dt.map(round);
            self.containers(s, dt, &mut frame);
        }
        self.states(parts, &mut frame);
        frame.kubernetes = frame.containers.iter().any(|r| !r.pod.is_empty());
        frame
    }

    fn containers(&mut self, s: &ContainersSample, dt: Option<f64>, frame: &mut Frame) {
        let mut next = HashMap::with_capacity(s.entries.len());
        for e in &s.entries {
            let counters = counters(e);
            let prev = self.containers.get(&e.identity.id);
            let row = row(e, &counters, prev, dt, s.now);
            next.insert(e.identity.id.clone(), counters);
            if e.level == Level::Root {
                frame.root = Some(row);
            } else {
                frame.containers.push(row);
            }
        }
        // A reused run (dt None) keeps the counters the next rates divide from.
        if dt.is_some() || self.containers.is_empty() {
            self.containers = next;
        }
    }

    /// State, health and restarts from the runtime (the docker collector) or the pod source (the
    /// kubernetes collector), joined by id; runtime containers with no cgroup get a row of their own.
    fn states(&self, parts: &[Arc<Part>], frame: &mut Frame) {
        let mut states: Vec<State<'_>> = Vec::new();
        let docker = sample::<DockerSample>(parts, "docker").map(|(_, s)| &s.containers);
        let kube = sample::<KubeSample>(parts, "kubernetes").map(|(_, s)| s);
        for c in docker
            .into_iter()
            .flatten()
            .chain(kube.iter().flat_map(|k| &k.docker))
        {
            states.push((
                c.identity.id.clone(),
                c.state.clone(),
                c.health.clone(),
                Some(c.restarts),
                &c.identity,
            ));
        }
        for c in kube.iter().flat_map(|k| &k.containers) {
            if let Some(state) = c.state {
                states.push((
                    c.identity.id.clone(),
                    state.to_string(),
                    None,
                    c.restarts,
                    &c.identity,
                ));
            }
        }
        let index: HashMap<String, usize> = frame
            .containers
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        let mut extra = Vec::new();
        for (id, state, health, restarts, identity) in states {
            match index.get(&id) {
                Some(&i) => {
                    let row = &mut frame.containers[i];
                    row.state = Some(state);
                    row.health = health.or(row.health.take());
                    row.restarts = restarts;
                }
                None => extra.push(Row {
                    id: identity.id.clone(),
                    name: identity.name.clone(),
                    image: identity.image.clone(),
                    namespace: identity.namespace.clone(),
                    pod: identity.pod.clone(),
                    container: identity.container.clone(),
                    level: "container",
                    state: Some(state),
                    health,
                    restarts,
                    ..Default::default()
                }),
            }
        }
        frame.containers.extend(extra);
    }

    fn machine(&mut self, parts: &[Arc<Part>]) -> Machine {
        let mut m = Machine::default();
        if let Some((_, s)) = sample::<MachineSample>(parts, "machine") {
            m.cores = s.cpu_cores;
        }
        if let Some((_, s)) = sample::<MeminfoSample>(parts, "meminfo") {
            m.mem_total = s.get("MemTotal_bytes");
            m.mem_available = s.get("MemAvailable_bytes");
        }
        if let Some((_, s)) = sample::<LoadavgSample>(parts, "loadavg") {
            m.load = Some([s.load1, s.load5, s.load15]);
        }
        if let Some((part, s)) = sample::<CpuSample>(parts, "cpu") {
            let dt = elapsed(&mut self.cpu_at, part);
            let busy = busy_seconds(s);
            if dt.is_some() || self.node.cpu.is_none() {
                m.cpu = rate(busy, self.node.cpu, dt).map(|v| round(v * 100.0));
                self.node.cpu = busy;
            }
        }
        if let Some((part, s)) = sample::<PressureSample>(parts, "pressure") {
            let dt = elapsed(&mut self.pressure_at, part);
            let cur = psi_totals(&s.cpu, &s.memory, &s.io);
            m.psi = Some(stalls(&cur, Some(&self.node.psi), dt));
            if dt.is_some() || self.node.psi.iter().all(Option::is_none) {
                self.node.psi = cur;
            }
        }
        if let Some((part, s)) = sample::<DiskstatsSample>(parts, "diskstats") {
            let dt = elapsed(&mut self.disks_at, part);
            let mut next = HashMap::new();
            for d in &s.disks {
                let bytes = |i: usize| d.fields.get(i).map(|v| v * 512.0).unwrap_or(0.0);
                let (read, write) = (bytes(2), bytes(6));
                let prev = self.node.disks.get(&d.device);
                m.disks.push(Disk {
                    device: d.device.clone(),
                    read: rate(Some(read), prev.map(|p| p.0), dt),
                    write: rate(Some(write), prev.map(|p| p.1), dt),
                });
                next.insert(d.device.clone(), (read, write));
            }
            if dt.is_some() || self.node.disks.is_empty() {
                self.node.disks = next;
            }
        }
        if let Some((_, s)) = sample::<FilesystemSample>(parts, "filesystem") {
            m.filesystems = s
                .filesystems
                .iter()
                .filter_map(|f| {
                    let u = f.usage.as_ref()?;
                    (u.size > 0.0).then(|| Filesystem {
                        mountpoint: f.mount.mountpoint.clone(),
                        device: f.mount.device.clone(),
                        fstype: f.mount.fstype.clone(),
                        size: u.size,
                        avail: u.avail,
                    })
                })
                .collect();
        }
        m
    }
}

/// CPU seconds not idle, summed over cores. Guest time is already counted in user and nice.
fn busy_seconds(s: &CpuSample) -> Option<f64> {
    let mut total = None;
    for c in &s.cpus {
        for (i, v) in c.seconds[..8].iter().enumerate() {
            // idle (3) and iowait (4) are not busy.
            if let (false, Some(v)) = (i == 3 || i == 4, v) {
                *total.get_or_insert(0.0) += v;
            }
        }
    }
    total
}

fn counters(e: &ContainerEntry) -> Counters {
    let cpu = e.stats.cpu.as_ref();
    // No device in the block statistics of a cgroup that was read is no I/O yet (as docker stats
    // shows 0B): a zero, not a blank.
    let read = cpu.is_some();
    let sum = |f: fn(&crate::sample::container::BlkioDevice) -> Option<f64>| {
        let total = e.stats.blkio.iter().filter_map(f).reduce(|a, b| a + b);
        total.or(read.then_some(0.0))
    };
    let net = |f: fn(&crate::sample::container::Interface) -> f64| {
        (!e.network.is_empty()).then(|| e.network.iter().map(f).sum())
    };
    Counters {
        cpu: cpu.and_then(|c| c.usage_seconds),
        periods: cpu.and_then(|c| c.periods),
        throttled: cpu.and_then(|c| c.throttled_periods),
        rx: net(|i| i.rx_bytes),
        tx: net(|i| i.tx_bytes),
        read: sum(|d| d.read_bytes),
        write: sum(|d| d.write_bytes),
        psi: e
            .stats
            .pressure
            .as_ref()
            .map(|p| psi_totals(&p.cpu, &p.memory, &p.io))
            .unwrap_or_default(),
    }
}

fn level(e: &ContainerEntry) -> &'static str {
    match e.level {
        Level::Root => "root",
        Level::Pod => "pod",
        Level::Container if !e.identity.pod.is_empty() && e.identity.container.is_empty() => {
            "sandbox"
        }
        Level::Container => "container",
        Level::Other => "other",
    }
}

fn row(
    e: &ContainerEntry,
    c: &Counters,
    prev: Option<&Counters>,
    dt: Option<f64>,
    now: f64,
) -> Row {
    let spec = &e.stats.spec;
    let mem = e.stats.memory.as_ref();
    let p = |f: fn(&Counters) -> Option<f64>| prev.and_then(f);
    let throttled = match (
        rate(c.periods, p(|c| c.periods), dt),
        rate(c.throttled, p(|c| c.throttled), dt),
    ) {
        (Some(periods), Some(thr)) if periods > 0.0 => Some(round(100.0 * thr / periods)),
        (Some(_), Some(_)) => Some(0.0),
        _ => None,
    };
    let id = &e.identity;
    Row {
        id: id.id.clone(),
        name: id.name.clone(),
        image: id.image.clone(),
        namespace: id.namespace.clone(),
        pod: id.pod.clone(),
        container: id.container.clone(),
        level: level(e),
        state: None,
        health: e.health.map(|h| match h {
            1.0 => "healthy".to_string(),
            0.0 => "unhealthy".to_string(),
            _ => "none".to_string(),
        }),
        cpu: rate(c.cpu, p(|c| c.cpu), dt).map(|v| round(v * 100.0)),
        cpu_limit: match (spec.cpu_quota, spec.cpu_period) {
            (Some(q), Some(per)) if q > 0.0 && per > 0.0 => Some(round(q / per)),
            _ => None,
        },
        throttled,
        memory: mem.and_then(|m| m.working_set),
        memory_cache: mem
            .and_then(|m| m.stat(const { crate::sample::container::stat_index("file") })),
        memory_limit: spec.memory_limit.filter(|l| *l > 0.0),
        net_rx: rate(c.rx, p(|c| c.rx), dt),
        net_tx: rate(c.tx, p(|c| c.tx), dt),
        blk_read: rate(c.read, p(|c| c.read), dt),
        blk_write: rate(c.write, p(|c| c.write), dt),
        pids: e.stats.pids.as_ref().and_then(|p| p.current),
        restarts: None,
        started: e.start_time.filter(|t| *t > 0.0 && *t <= now + 60.0),
        oom_kills: mem.and_then(|m| m.oom_kills),
        psi: e
            .stats
            .pressure
            .as_ref()
            .map(|_| stalls(&c.psi, prev.map(|p| &p.psi), dt)),
    }
}

/// One runtime's word on a container: id, state, health, restarts, identity.
type State<'a> = (
    String,
    String,
    Option<String>,
    Option<f64>,
    &'a crate::identity::Identity,
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::container::{CgroupStats, CpuStats, SpecStats};
    use std::time::Duration;

    fn part(runs: u64, started: Instant, cpu: f64, periods: f64, thr: f64) -> Arc<Part> {
        let entry = ContainerEntry {
            level: Level::Container,
            identity: crate::identity::Identity {
                id: "/docker/a".into(),
                name: "<img src=x>".into(),
                ..Default::default()
            },
            stats: CgroupStats {
                cpu: Some(CpuStats {
                    usage_seconds: Some(cpu),
                    periods: Some(periods),
                    throttled_periods: Some(thr),
                    ..Default::default()
                }),
                spec: SpecStats {
                    cpu_quota: Some(50_000.0),
                    cpu_period: Some(100_000.0),
                    memory_limit: Some(0.0),
                    ..Default::default()
                },
                ..Default::default()
            },
            ..Default::default()
        };
        let sample = ContainersSample {
            columns: vec![],
            entries: vec![entry],
            now: 1.0,
        };
        Arc::new(Part {
            name: "cgroup",
            started,
            duration: Duration::ZERO,
            runs,
            outcome: Outcome::Ok(Arc::new(sample)),
        })
    }

    #[test]
    fn rates_come_from_two_runs_and_a_reused_run_changes_nothing() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(2);
        let mut b = Builder::default();
        let f = b.build(&[part(1, t0, 10.0, 100.0, 0.0)], 1.0);
        assert_eq!(f.containers[0].cpu, None, "no rate on the first frame");
        assert_eq!(f.containers[0].cpu_limit, Some(0.5));
        assert_eq!(
            f.containers[0].memory_limit, None,
            "no limit is not a limit of 0"
        );
        // 1 CPU second in 2 s is 50 % of a core; 10 of 20 periods throttled is 50 %.
        let f = b.build(&[part(2, t1, 11.0, 120.0, 10.0)], 3.0);
        assert_eq!(f.interval, Some(2.0));
        assert_eq!(f.containers[0].cpu, Some(50.0));
        assert_eq!(f.containers[0].throttled, Some(50.0));
        // The same run again (min-age): no rate, and the counters stay those of run 2.
        let f = b.build(&[part(2, t1, 11.0, 120.0, 10.0)], 3.5);
        assert_eq!(f.containers[0].cpu, None);
        let f = b.build(
            &[part(3, t1 + Duration::from_secs(1), 11.25, 130.0, 10.0)],
            4.0,
        );
        assert_eq!(f.containers[0].cpu, Some(25.0));
        assert_eq!(f.containers[0].throttled, Some(0.0));
        // A counter that went backwards (the container restarted) gives no rate, not a negative one.
        let f = b.build(&[part(4, t1 + Duration::from_secs(2), 1.0, 1.0, 0.0)], 5.0);
        assert_eq!(f.containers[0].cpu, None);
        // Text is carried as data; the page sets it as text.
        let json = serde_json::to_string(&f).unwrap();
        assert!(json.contains(r#""name":"<img src=x>""#), "{json}");
    }
}
