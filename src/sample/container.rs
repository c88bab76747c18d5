//! Container samples: what one cgroup's files say (typed, `None` where the kernel gives nothing), with
//! the identity joined to it, and the runtime and pod states. Data only.

use crate::identity::Identity;
use crate::parse::Psi;

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CpuStats {
    pub usage_seconds: Option<f64>,
    pub user_seconds: Option<f64>,
    pub system_seconds: Option<f64>,
    pub periods: Option<f64>,
    pub throttled_periods: Option<f64>,
    pub throttled_seconds: Option<f64>,
    /// CPU burst (`cpu.cfs_burst_us` / `cpu.max.burst`): periods in which the quota was exceeded with
    /// burst credit, and the time so spent (cpu.stat `nr_bursts`, `burst_usec`; v1 `burst_time` in ns).
    pub bursts: Option<f64>,
    pub burst_seconds: Option<f64>,
}

/// The memory.stat figures kept, by their cgroup v2 key, each with the key v1 gives the same figure
/// ("" where v1's memory.stat has none). A reader keeps every key listed here; a family reads one with
/// [`MemoryStats::stat`]. Adding a memory.stat figure is one line here and one row in the family table.
pub(crate) const MEMORY_STAT: &[(&str, &str)] = &[
    ("anon", "rss"),
    ("file", "cache"),
    ("file_mapped", "mapped_file"),
    ("active_file", "active_file"),
    ("inactive_file", "inactive_file"),
    ("pgfault", "pgfault"),
    ("pgmajfault", "pgmajfault"),
    ("kernel", ""),
    ("file_dirty", "dirty"),
    ("file_writeback", "writeback"),
    ("pgscan", ""),
    ("pgsteal", ""),
    ("workingset_refault_file", ""),
    ("workingset_refault_anon", ""),
];

/// The position of a v2 key in [`MEMORY_STAT`]; a key that is not listed fails the build when used in
/// a `const` block.
pub(crate) const fn stat_index(key: &str) -> usize {
    let mut i = 0;
    while i < MEMORY_STAT.len() {
        if str_eq(MEMORY_STAT[i].0, key) {
            return i;
        }
        i += 1;
    }
    panic!("not a MEMORY_STAT key")
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct MemoryStats {
    pub usage: Option<f64>,
    pub working_set: Option<f64>,
    pub swap: Option<f64>,
    pub max_usage: Option<f64>,
    pub failcnt: Option<f64>,
    pub oom_kills: Option<f64>,
    /// v2 memory.events: times usage went over memory.high (and was throttled) and reached memory.max.
    pub events_high: Option<f64>,
    pub events_max: Option<f64>,
    /// memory.stat figures of the cgroup and its descendants (v1's `total_*`), by [`MEMORY_STAT`] position.
    pub stat: [Option<f64>; MEMORY_STAT.len()],
    /// pgfault and pgmajfault of the cgroup alone (v1 without `total_`; on v2 the same as in `stat`).
    pub local_faults: [Option<f64>; 2],
}

impl MemoryStats {
    /// A memory.stat figure by v2 key: `m.stat(const { stat_index("anon") })`.
    pub(crate) fn stat(&self, index: usize) -> Option<f64> {
        self.stat.get(index).copied().flatten()
    }

    /// Sets a memory.stat figure by v2 key (for sources that are not cgroup files).
    pub(crate) fn set_stat(&mut self, key: &str, v: Option<f64>) {
        if let Some(i) = MEMORY_STAT.iter().position(|(k, _)| *k == key) {
            self.stat[i] = v;
        }
    }
}

/// Limits and shares. Unlimited memory reads as 0, as cAdvisor reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SpecStats {
    pub cpu_period: Option<f64>,
    /// Only when a quota is set.
    pub cpu_quota: Option<f64>,
    pub cpu_shares: Option<f64>,
    pub memory_limit: Option<f64>,
    pub memory_reservation: Option<f64>,
    pub memory_swap_limit: Option<f64>,
    /// `pids.max`; `max` (no limit) reads as 0, as cAdvisor reports it.
    pub pids_max: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct BlkioDevice {
    pub major: u32,
    pub minor: u32,
    /// The device as cAdvisor names it; filled in by the collector from major:minor.
    pub device: String,
    pub read_bytes: Option<f64>,
    pub write_bytes: Option<f64>,
    pub reads: Option<f64>,
    pub writes: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PressureStats {
    pub cpu: Psi,
    pub memory: Psi,
    pub io: Psi,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PidsStats {
    pub current: Option<f64>,
    /// `max` (no limit) reads as 0, as cAdvisor reports it.
    pub max: Option<f64>,
}

/// Everything read from one cgroup's files.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CgroupStats {
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
    pub spec: SpecStats,
    pub blkio: Vec<BlkioDevice>,
    pub pids: Option<PidsStats>,
    pub pressure: Option<PressureStats>,
    /// One per huge page size the host has a pool of, where the cgroup has the hugetlb controller.
    pub hugetlb: Vec<HugetlbStats>,
}

/// A cgroup's use of one huge page size (`pagesize` as cAdvisor writes it: `2MB`, `1GB`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct HugetlbStats {
    pub pagesize: String,
    pub usage: Option<f64>,
    /// v1 only (`max_usage_in_bytes`).
    pub max_usage: Option<f64>,
    /// Allocations refused at the limit: v1 `failcnt`, v2 the `max` count of `hugetlb.<size>.events`.
    pub failcnt: Option<f64>,
    /// 0 where there is none, as for memory.
    pub limit: Option<f64>,
}

impl CgroupStats {
    /// Completes a reading once the limits are known: the thread count gets its limit, and throttling
    /// figures are dropped where no quota is set (they only mean something where one is).
    pub(crate) fn apply_spec(&mut self, threads: Option<f64>) {
        if let Some(current) = threads {
            self.pids = Some(PidsStats {
                current: Some(current),
                max: self.spec.pids_max,
            });
        }
        if self.spec.cpu_quota.is_none()
            && let Some(c) = self.cpu.as_mut()
        {
            c.periods = None;
            c.throttled_periods = None;
            c.throttled_seconds = None;
        }
    }
}

/// One interface's counters, as cAdvisor reports them.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Interface {
    pub name: String,
    pub rx_bytes: f64,
    pub rx_packets: f64,
    pub rx_dropped: f64,
    pub rx_errors: f64,
    pub tx_bytes: f64,
    pub tx_packets: f64,
    pub tx_dropped: f64,
    pub tx_errors: f64,
}

/// Processes, open files and sockets of a container's processes, from /proc/<pid>.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ProcStats {
    pub processes: f64,
    pub file_descriptors: f64,
    pub sockets: f64,
    /// The soft open-files limit of the first process (`/proc/<pid>/limits`), -1 for unlimited.
    pub max_open_files: Option<f64>,
    /// Threads by state, with `--collector.cgroup.tasks-state`.
    pub tasks: Option<TaskStates>,
}

/// A container's threads by state, as the kernel's cgroupstats counts them (cAdvisor's
/// `container_tasks_state`). Its fifth state, iowaiting, is not visible in /proc and is left out.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct TaskStates {
    pub running: f64,
    pub sleeping: f64,
    pub stopped: f64,
    pub uninterruptible: f64,
}

impl TaskStates {
    /// Counts one thread by the state letter of its stat line: R running; S sleeping; D uninterruptible;
    /// T and t stopped; idle kernel waits, zombies and dead ones not at all (as cgroupstats).
    pub(crate) fn add(&mut self, state: char) {
        match state {
            'R' => self.running += 1.0,
            'S' => self.sleeping += 1.0,
            'D' => self.uninterruptible += 1.0,
            'T' | 't' => self.stopped += 1.0,
            _ => {}
        }
    }
}

/// What a reported cgroup is, for the families that exist at one level only (`pod_*`, `node_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Level {
    Root,
    Pod,
    Container,
    #[default]
    Other,
}

/// One reported cgroup: its figures and who it is.
#[derive(Debug, Clone, Default)]
pub(crate) struct ContainerEntry {
    pub level: Level,
    pub identity: Identity,
    pub stats: CgroupStats,
    pub procs: Option<ProcStats>,
    /// The network namespace's interfaces, on the one container that carries them.
    pub network: Vec<Interface>,
    pub start_time: Option<f64>,
    /// Docker health: 1 healthy, 0 unhealthy or starting, -1 no health check.
    pub health: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ContainersSample {
    /// Allowlisted runtime-label columns: (metric label name, runtime key).
    pub columns: Vec<(String, String)>,
    pub entries: Vec<ContainerEntry>,
    pub now: f64,
}

/// The states `stevedore_container_state` reports, one series each (1 for the current one).
pub(crate) const DOCKER_STATES: [&str; 7] = [
    "created",
    "running",
    "paused",
    "restarting",
    "removing",
    "exited",
    "dead",
];

#[derive(Debug, Clone)]
pub(crate) struct DockerContainer {
    pub identity: Identity,
    pub state: String,
    pub restarts: f64,
    /// healthy, unhealthy, starting; `None` without a health check (the live view shows it as text).
    pub health: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct DockerSample {
    pub columns: Vec<(String, String)>,
    pub containers: Vec<DockerContainer>,
}

#[derive(Debug, Clone)]
pub(crate) struct KubeContainer {
    pub identity: Identity,
    pub state: Option<&'static str>,
    pub restarts: Option<f64>,
    pub last_terminated_reason: Option<String>,
    pub requests: Vec<(String, f64)>,
    pub limits: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct KubeSample {
    /// Docker label columns, then pod label columns.
    pub columns: Vec<(String, String)>,
    pub containers: Vec<KubeContainer>,
    /// Docker containers outside any pod (state and restarts from Docker).
    pub docker: Vec<DockerContainer>,
}

/// The states the kubelet reports for a container, one series each.
pub(crate) const POD_CONTAINER_STATES: [&str; 3] = ["waiting", "running", "terminated"];
