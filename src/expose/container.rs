//! Container, pod and root-cgroup families: cAdvisor's `container_*` names, types and HELP with the
//! kubelet's label set (`id`, `name`, `image`, `container`, `pod`, `namespace`), plus the kubelet's
//! `pod_*`/`node_*` resource names and `stevedore_container_*`.
//!
//! Every container family is one row of [`FAMILIES`], as in cAdvisor's `containerMetric` table: its name,
//! HELP, type, extra label names and how its values come out of one entry. One loop walks the table. A
//! family no entry has a value for is left out, never written as 0. Adding a family is one row here (and,
//! for a new figure, one line in the reader that fills it).

use std::fmt;

use super::{Exposable, Family, Out};
use crate::parse::Psi;
use crate::sample::container::{
    BlkioDevice, CgroupStats, ContainerEntry, ContainersSample, CpuStats, DOCKER_STATES,
    DockerContainer, DockerSample, HugetlbStats, Interface, Level, MemoryStats, stat_index,
};

/// Counter or gauge. Counters are named without `_total` (the encoder adds it).
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
}

/// Emits one series of a family: the values of the row's extra labels, and the value.
type Emit<'e> = dyn FnMut(&[&str], f64) + 'e;

/// How a family's values come out of one entry.
#[derive(Clone, Copy)]
pub(crate) enum Values {
    /// One series per entry, with no extra labels.
    One(fn(&ContainerEntry) -> Option<f64>),
    /// Any number of series per entry, each with values for the row's extra labels.
    Many(fn(&ContainerEntry, &mut Emit<'_>)),
}

/// One container family.
pub(crate) struct Row {
    pub(crate) name: &'static str,
    pub(crate) help: &'static str,
    pub(crate) kind: Kind,
    pub(crate) extra: &'static [&'static str],
    pub(crate) values: Values,
}

const fn counter(name: &'static str, help: &'static str, values: Values) -> Row {
    Row {
        name,
        help,
        kind: Kind::Counter,
        extra: &[],
        values,
    }
}

const fn gauge(name: &'static str, help: &'static str, values: Values) -> Row {
    Row {
        name,
        help,
        kind: Kind::Gauge,
        extra: &[],
        values,
    }
}

/// A row whose series carry extra labels.
const fn with(mut row: Row, extra: &'static [&'static str]) -> Row {
    row.extra = extra;
    row
}

use Values::{Many, One};

fn cpu(e: &ContainerEntry) -> Option<&CpuStats> {
    e.stats.cpu.as_ref()
}

fn mem(e: &ContainerEntry) -> Option<&MemoryStats> {
    e.stats.memory.as_ref()
}

fn psi(e: &ContainerEntry, pick: fn(&crate::sample::container::PressureStats) -> Psi) -> Psi {
    e.stats.pressure.as_ref().map(pick).unwrap_or_default()
}

fn per_device(e: &ContainerEntry, emit: &mut Emit<'_>, get: fn(&BlkioDevice) -> Option<f64>) {
    for d in &e.stats.blkio {
        if let Some(v) = get(d) {
            emit(&[&d.device], v);
        }
    }
}

/// cAdvisor's bytes per device and operation: the same figures as `container_fs_{reads,writes}_bytes`,
/// labelled with the device's numbers.
fn blkio_usage(e: &ContainerEntry, emit: &mut Emit<'_>) {
    for d in &e.stats.blkio {
        let (major, minor) = (d.major.to_string(), d.minor.to_string());
        for (op, v) in [("Read", d.read_bytes), ("Write", d.write_bytes)] {
            if let Some(v) = v {
                emit(&[&d.device, &major, &minor, op], v);
            }
        }
    }
}

fn per_pagesize(e: &ContainerEntry, emit: &mut Emit<'_>, get: fn(&HugetlbStats) -> Option<f64>) {
    for h in &e.stats.hugetlb {
        if let Some(v) = get(h) {
            emit(&[&h.pagesize], v);
        }
    }
}

fn per_interface(e: &ContainerEntry, emit: &mut Emit<'_>, get: fn(&Interface) -> f64) {
    for i in &e.network {
        emit(&[&i.name], get(i));
    }
}

fn memory_failures(e: &ContainerEntry, emit: &mut Emit<'_>) {
    let Some(m) = mem(e) else { return };
    let kinds = [
        ("pgfault", const { stat_index("pgfault") }, 0),
        ("pgmajfault", const { stat_index("pgmajfault") }, 1),
    ];
    for (kind, hierarchy, local) in kinds {
        if let (Some(c), Some(h)) = (m.local_faults[local], m.stat(hierarchy)) {
            emit(&[kind, "container"], c);
            emit(&[kind, "hierarchy"], h);
        }
    }
}

/// Every `container_*` family, in exposition order.
pub(crate) const FAMILIES: &[Row] = &[
    with(
        counter(
            "container_cpu_usage_seconds",
            "Cumulative cpu time consumed in seconds.",
            Many(|e, emit| {
                if let Some(v) = cpu(e).and_then(|c| c.usage_seconds) {
                    emit(&["total"], v)
                }
            }),
        ),
        &["cpu"],
    ),
    counter(
        "container_cpu_user_seconds",
        "Cumulative user cpu time consumed in seconds.",
        One(|e| cpu(e)?.user_seconds),
    ),
    counter(
        "container_cpu_system_seconds",
        "Cumulative system cpu time consumed in seconds.",
        One(|e| cpu(e)?.system_seconds),
    ),
    counter(
        "container_cpu_cfs_periods",
        "Number of elapsed enforcement period intervals.",
        One(|e| cpu(e)?.periods),
    ),
    counter(
        "container_cpu_cfs_throttled_periods",
        "Number of throttled period intervals.",
        One(|e| cpu(e)?.throttled_periods),
    ),
    counter(
        "container_cpu_cfs_throttled_seconds",
        "Total time duration the container has been throttled.",
        One(|e| cpu(e)?.throttled_seconds),
    ),
    counter(
        "container_cpu_cfs_burst_periods",
        "Number of periods when burst occurs.",
        One(|e| cpu(e)?.bursts),
    ),
    counter(
        "container_cpu_cfs_burst_seconds",
        "Total time duration the container has been bursted.",
        One(|e| cpu(e)?.burst_seconds),
    ),
    gauge(
        "container_memory_usage_bytes",
        "Current memory usage in bytes, including all memory regardless of when it was accessed",
        One(|e| mem(e)?.usage),
    ),
    gauge(
        "container_memory_working_set_bytes",
        "Current working set in bytes.",
        One(|e| mem(e)?.working_set),
    ),
    gauge(
        "container_memory_rss",
        "Size of RSS in bytes.",
        One(|e| mem(e)?.stat(const { stat_index("anon") })),
    ),
    gauge(
        "container_memory_cache",
        "Number of bytes of page cache memory.",
        One(|e| mem(e)?.stat(const { stat_index("file") })),
    ),
    gauge(
        "container_memory_mapped_file",
        "Size of memory mapped files in bytes.",
        One(|e| mem(e)?.stat(const { stat_index("file_mapped") })),
    ),
    gauge(
        "container_memory_total_active_file_bytes",
        "Current total active file in bytes.",
        One(|e| mem(e)?.stat(const { stat_index("active_file") })),
    ),
    gauge(
        "container_memory_total_inactive_file_bytes",
        "Current total inactive file in bytes.",
        One(|e| mem(e)?.stat(const { stat_index("inactive_file") })),
    ),
    gauge(
        "container_memory_kernel_usage",
        "Size of kernel memory allocated in bytes.",
        One(|e| mem(e)?.stat(const { stat_index("kernel") })),
    ),
    gauge(
        "container_memory_swap",
        "Container swap usage in bytes.",
        One(|e| mem(e)?.swap),
    ),
    gauge(
        "container_memory_max_usage_bytes",
        "Maximum memory usage recorded in bytes",
        One(|e| mem(e)?.max_usage),
    ),
    counter(
        "container_memory_failcnt",
        "Number of memory usage hits limits",
        One(|e| mem(e)?.failcnt),
    ),
    counter(
        "container_memory_events_high",
        "Number of times the container's memory usage went over memory.high (cgroup v2).",
        One(|e| mem(e)?.events_high),
    ),
    counter(
        "container_memory_events_max",
        "Number of times the container's memory usage reached memory.max (cgroup v2).",
        One(|e| mem(e)?.events_max),
    ),
    gauge(
        "container_memory_file_dirty_bytes",
        "Size of file-backed memory waiting to be written back to disk in bytes.",
        One(|e| mem(e)?.stat(const { stat_index("file_dirty") })),
    ),
    gauge(
        "container_memory_file_writeback_bytes",
        "Size of file-backed memory being written back to disk in bytes.",
        One(|e| mem(e)?.stat(const { stat_index("file_writeback") })),
    ),
    with(
        gauge(
            "container_hugetlb_usage_bytes",
            "Current hugepage usage in bytes",
            Many(|e, emit| per_pagesize(e, emit, |h| h.usage)),
        ),
        &["pagesize"],
    ),
    with(
        gauge(
            "container_hugetlb_max_usage_bytes",
            "Maximum hugepage usage recorded in bytes",
            Many(|e, emit| per_pagesize(e, emit, |h| h.max_usage)),
        ),
        &["pagesize"],
    ),
    with(
        counter(
            "container_hugetlb_failcnt",
            "Number of hugepage usage hits limits",
            Many(|e, emit| per_pagesize(e, emit, |h| h.failcnt)),
        ),
        &["pagesize"],
    ),
    with(
        gauge(
            "stevedore_container_hugetlb_limit_bytes",
            "Hugepage limit in bytes per page size (0: no limit).",
            Many(|e, emit| per_pagesize(e, emit, |h| h.limit)),
        ),
        &["pagesize"],
    ),
    counter(
        "container_memory_pgscan",
        "Number of pages scanned by memory reclaim (cgroup v2).",
        One(|e| mem(e)?.stat(const { stat_index("pgscan") })),
    ),
    counter(
        "container_memory_pgsteal",
        "Number of pages reclaimed (cgroup v2).",
        One(|e| mem(e)?.stat(const { stat_index("pgsteal") })),
    ),
    counter(
        "container_memory_workingset_refault_file",
        "Number of refaults of previously evicted file pages (cgroup v2).",
        One(|e| mem(e)?.stat(const { stat_index("workingset_refault_file") })),
    ),
    counter(
        "container_memory_workingset_refault_anon",
        "Number of refaults of previously evicted anonymous pages (cgroup v2).",
        One(|e| mem(e)?.stat(const { stat_index("workingset_refault_anon") })),
    ),
    counter(
        "container_oom_events",
        "Count of out of memory events observed for the container",
        One(|e| mem(e)?.oom_kills),
    ),
    gauge(
        "container_spec_cpu_period",
        "CPU period of the container.",
        One(|e| e.stats.spec.cpu_period),
    ),
    gauge(
        "container_spec_cpu_quota",
        "CPU quota of the container.",
        One(|e| e.stats.spec.cpu_quota),
    ),
    gauge(
        "container_spec_cpu_shares",
        "CPU share of the container.",
        One(|e| e.stats.spec.cpu_shares),
    ),
    gauge(
        "container_spec_memory_limit_bytes",
        "Memory limit for the container.",
        One(|e| e.stats.spec.memory_limit),
    ),
    gauge(
        "container_spec_memory_reservation_limit_bytes",
        "Memory reservation limit for the container.",
        One(|e| e.stats.spec.memory_reservation),
    ),
    gauge(
        "container_spec_memory_swap_limit_bytes",
        "Memory swap limit for the container.",
        One(|e| e.stats.spec.memory_swap_limit),
    ),
    gauge(
        "container_threads",
        "Number of threads running inside the container",
        One(|e| e.stats.pids.as_ref()?.current),
    ),
    gauge(
        "container_threads_max",
        "Maximum number of threads allowed inside the container, infinity if value is zero",
        One(|e| e.stats.pids.as_ref()?.max),
    ),
    with(
        counter(
            "container_memory_failures",
            "Cumulative count of memory allocation failures.",
            Many(memory_failures),
        ),
        &["failure_type", "scope"],
    ),
    counter(
        "container_pressure_cpu_waiting_seconds",
        "Total time duration tasks in the container have waited due to CPU congestion.",
        One(|e| psi(e, |p| p.cpu).some),
    ),
    counter(
        "container_pressure_cpu_stalled_seconds",
        "Total time duration no tasks in the container could make progress due to CPU congestion.",
        One(|e| psi(e, |p| p.cpu).full),
    ),
    counter(
        "container_pressure_memory_waiting_seconds",
        "Total time duration tasks in the container have waited due to memory congestion.",
        One(|e| psi(e, |p| p.memory).some),
    ),
    counter(
        "container_pressure_memory_stalled_seconds",
        "Total time duration no tasks in the container could make progress due to memory congestion.",
        One(|e| psi(e, |p| p.memory).full),
    ),
    counter(
        "container_pressure_io_waiting_seconds",
        "Total time duration tasks in the container have waited due to IO congestion.",
        One(|e| psi(e, |p| p.io).some),
    ),
    counter(
        "container_pressure_io_stalled_seconds",
        "Total time duration no tasks in the container could make progress due to IO congestion.",
        One(|e| psi(e, |p| p.io).full),
    ),
    with(
        counter(
            "container_fs_reads_bytes",
            "Cumulative count of bytes read",
            Many(|e, emit| per_device(e, emit, |d| d.read_bytes)),
        ),
        &["device"],
    ),
    with(
        counter(
            "container_fs_writes_bytes",
            "Cumulative count of bytes written",
            Many(|e, emit| per_device(e, emit, |d| d.write_bytes)),
        ),
        &["device"],
    ),
    with(
        counter(
            "container_fs_reads",
            "Cumulative count of reads completed",
            Many(|e, emit| per_device(e, emit, |d| d.reads)),
        ),
        &["device"],
    ),
    with(
        counter(
            "container_fs_writes",
            "Cumulative count of writes completed",
            Many(|e, emit| per_device(e, emit, |d| d.writes)),
        ),
        &["device"],
    ),
    with(
        counter(
            "container_blkio_device_usage",
            "Blkio Device bytes usage",
            Many(blkio_usage),
        ),
        &["device", "major", "minor", "operation"],
    ),
    with(
        counter(
            "container_network_receive_bytes",
            "Cumulative count of bytes received",
            Many(|e, emit| per_interface(e, emit, |i| i.rx_bytes)),
        ),
        &["interface"],
    ),
    with(
        counter(
            "container_network_receive_packets",
            "Cumulative count of packets received",
            Many(|e, emit| per_interface(e, emit, |i| i.rx_packets)),
        ),
        &["interface"],
    ),
    with(
        counter(
            "container_network_receive_packets_dropped",
            "Cumulative count of packets dropped while receiving",
            Many(|e, emit| per_interface(e, emit, |i| i.rx_dropped)),
        ),
        &["interface"],
    ),
    with(
        counter(
            "container_network_receive_errors",
            "Cumulative count of errors encountered while receiving",
            Many(|e, emit| per_interface(e, emit, |i| i.rx_errors)),
        ),
        &["interface"],
    ),
    with(
        counter(
            "container_network_transmit_bytes",
            "Cumulative count of bytes transmitted",
            Many(|e, emit| per_interface(e, emit, |i| i.tx_bytes)),
        ),
        &["interface"],
    ),
    with(
        counter(
            "container_network_transmit_packets",
            "Cumulative count of packets transmitted",
            Many(|e, emit| per_interface(e, emit, |i| i.tx_packets)),
        ),
        &["interface"],
    ),
    with(
        counter(
            "container_network_transmit_packets_dropped",
            "Cumulative count of packets dropped while transmitting",
            Many(|e, emit| per_interface(e, emit, |i| i.tx_dropped)),
        ),
        &["interface"],
    ),
    with(
        counter(
            "container_network_transmit_errors",
            "Cumulative count of errors encountered while transmitting",
            Many(|e, emit| per_interface(e, emit, |i| i.tx_errors)),
        ),
        &["interface"],
    ),
    gauge(
        "container_processes",
        "Number of processes running inside the container.",
        One(|e| Some(e.procs.as_ref()?.processes)),
    ),
    with(
        gauge(
            "container_tasks_state",
            "Number of tasks in given state",
            Many(|e, emit| {
                if let Some(t) = e.procs.as_ref().and_then(|p| p.tasks) {
                    emit(&["running"], t.running);
                    emit(&["sleeping"], t.sleeping);
                    emit(&["stopped"], t.stopped);
                    emit(&["uninterruptible"], t.uninterruptible);
                }
            }),
        ),
        &["state"],
    ),
    with(
        gauge(
            "container_ulimits_soft",
            "Soft ulimit values for the container root process. Unlimited if -1, except priority and nice",
            Many(|e, emit| {
                if let Some(v) = e.procs.as_ref().and_then(|p| p.max_open_files) {
                    emit(&["max_open_files"], v);
                }
            }),
        ),
        &["ulimit"],
    ),
    gauge(
        "container_file_descriptors",
        "Number of open file descriptors for the container.",
        One(|e| Some(e.procs.as_ref()?.file_descriptors)),
    ),
    gauge(
        "container_sockets",
        "Number of open sockets for the container.",
        One(|e| Some(e.procs.as_ref()?.sockets)),
    ),
    gauge(
        "container_start_time_seconds",
        "Start time of the container since unix epoch in seconds.",
        One(|e| e.start_time),
    ),
    gauge(
        "container_health_state",
        "The result of the container's health check: 1 healthy, 0 unhealthy or starting, -1 no health check",
        One(|e| e.health),
    ),
];

/// The kubelet's `/metrics/resource` names, for consumers of the resource metrics API: one series per
/// pod (labels `pod`, `namespace`) or for the node (no labels).
struct LevelRow {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    level: Level,
    get: fn(&CgroupStats) -> Option<f64>,
}

const LEVEL_FAMILIES: &[LevelRow] = &[
    LevelRow {
        name: "pod_cpu_usage_seconds",
        help: "Cumulative cpu time consumed by the pod in core-seconds",
        kind: Kind::Counter,
        level: Level::Pod,
        get: |s| s.cpu.as_ref()?.usage_seconds,
    },
    LevelRow {
        name: "pod_memory_working_set_bytes",
        help: "Current working set of the pod in bytes",
        kind: Kind::Gauge,
        level: Level::Pod,
        get: |s| s.memory.as_ref()?.working_set,
    },
    LevelRow {
        name: "node_cpu_usage_seconds",
        help: "Cumulative cpu time consumed by the node in core-seconds",
        kind: Kind::Counter,
        level: Level::Root,
        get: |s| s.cpu.as_ref()?.usage_seconds,
    },
    LevelRow {
        name: "node_memory_working_set_bytes",
        help: "Current working set of the node in bytes",
        kind: Kind::Gauge,
        level: Level::Root,
        get: |s| s.memory.as_ref()?.working_set,
    },
];

fn open<'s>(
    out: &'s mut Out<'_, '_>,
    name: &'s str,
    help: &str,
    kind: Kind,
) -> Result<Family<'s>, fmt::Error> {
    match kind {
        Kind::Counter => out.counter(name, help),
        Kind::Gauge => out.gauge(name, help),
    }
}

/// Writes one family of the table, if any entry has a value for it.
fn write_row(
    out: &mut Out<'_, '_>,
    row: &Row,
    entries: &[ContainerEntry],
    labels: &[Vec<(&str, &str)>],
) -> fmt::Result {
    let has = |e: &ContainerEntry| match row.values {
        One(get) => get(e).is_some(),
        Many(each) => {
            let mut any = false;
            each(e, &mut |_, _| any = true);
            any
        }
    };
    if !entries.iter().any(has) {
        return Ok(());
    }
    let mut f = open(out, row.name, row.help, row.kind)?;
    let mut result = Ok(());
    for (e, base) in entries.iter().zip(labels) {
        match row.values {
            One(get) => {
                if let Some(v) = get(e) {
                    f.sample(base, v)?;
                }
            }
            Many(each) => each(e, &mut |extra, v| {
                if result.is_ok() {
                    result = f.sample_with(base, row.extra, extra, v);
                }
            }),
        }
        result?;
    }
    Ok(())
}

/// The pod- and node-level resource families.
fn write_levels(out: &mut Out<'_, '_>, entries: &[ContainerEntry]) -> fmt::Result {
    for row in LEVEL_FAMILIES {
        let at_level = || {
            entries.iter().filter(|e| {
                e.level == row.level && (row.level != Level::Pod || !e.identity.pod.is_empty())
            })
        };
        if !at_level().any(|e| (row.get)(&e.stats).is_some()) {
            continue;
        }
        let mut f = open(out, row.name, row.help, row.kind)?;
        // One series per pod even if two cgroups claim it (a node switching cgroup drivers); one for the node.
        let mut seen = std::collections::HashSet::new();
        for e in at_level().filter(|e| seen.insert((&e.identity.pod, &e.identity.namespace))) {
            let Some(v) = (row.get)(&e.stats) else {
                continue;
            };
            match row.level {
                Level::Pod => f.sample(
                    &[
                        ("pod", e.identity.pod.as_str()),
                        ("namespace", e.identity.namespace.as_str()),
                    ],
                    v,
                )?,
                _ => f.value(v)?,
            }
        }
    }
    Ok(())
}

impl Exposable for ContainersSample {
    fn expose(&self, out: &mut Out<'_, '_>) -> fmt::Result {
        let labels: Vec<Vec<(&str, &str)>> = self
            .entries
            .iter()
            .map(|e| e.identity.labels(&self.columns))
            .collect();
        for row in FAMILIES {
            write_row(out, row, &self.entries, &labels)?;
        }
        write_levels(out, &self.entries)?;
        if !self.entries.is_empty() {
            let mut f = out.gauge(
                "container_last_seen",
                "Last time a container was seen by the exporter",
            )?;
            for l in &labels {
                f.sample(l, self.now)?;
            }
        }
        Ok(())
    }
}

/// One container's row of the state families.
pub(crate) struct StateRow<'a> {
    pub(crate) labels: Vec<(&'a str, &'a str)>,
    pub(crate) state: &'a str,
    /// The states this container's source knows, one series each.
    pub(crate) domain: &'static [&'static str],
    pub(crate) restarts: Option<f64>,
}

/// `stevedore_container_state` and `stevedore_container_restarts_total`, for Docker's containers and
/// (through the kubernetes collector) pod containers, so each family is written by one collector.
pub(crate) fn state_families(out: &mut Out<'_, '_>, rows: &[StateRow<'_>]) -> fmt::Result {
    if rows.is_empty() {
        return Ok(());
    }
    let mut f = out.gauge(
        "stevedore_container_state",
        "State of the container (its runtime's: Docker, Podman, containerd; or the kubelet's for pod containers): 1 for the current state, 0 for the others.",
    )?;
    for r in rows {
        for s in r.domain {
            f.sample_with(
                &r.labels,
                &["state"],
                &[s],
                if r.state == *s { 1.0 } else { 0.0 },
            )?;
        }
    }
    if rows.iter().any(|r| r.restarts.is_some()) {
        let mut f = out.counter(
            "stevedore_container_restarts",
            "Number of times the container was restarted (Docker's restart policy, or the kubelet).",
        )?;
        for r in rows {
            if let Some(v) = r.restarts {
                f.sample(&r.labels, v)?;
            }
        }
    }
    Ok(())
}

/// The state rows of Docker's containers, labelled with `columns`.
pub(crate) fn docker_state_rows<'a>(
    containers: &'a [DockerContainer],
    columns: &'a [(String, String)],
) -> Vec<StateRow<'a>> {
    containers
        .iter()
        .map(|c| StateRow {
            labels: c.identity.labels(columns),
            state: &c.state,
            domain: &DOCKER_STATES,
            restarts: Some(c.restarts),
        })
        .collect()
}

impl Exposable for DockerSample {
    fn expose(&self, out: &mut Out<'_, '_>) -> fmt::Result {
        state_families(out, &docker_state_rows(&self.containers, &self.columns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expose::{Format, Outcome, Part, render};
    use crate::identity::Identity;
    use std::sync::Arc;

    fn rendered(entries: Vec<ContainerEntry>) -> String {
        let sample = ContainersSample {
            columns: vec![],
            entries,
            now: 1.0,
        };
        let part = Part {
            name: "cgroup",
            started: std::time::Instant::now(),
            duration: std::time::Duration::ZERO,
            runs: 1,
            outcome: Outcome::Ok(Arc::new(sample)),
        };
        render(vec![Arc::new(part)], Format::Text004, vec![])
    }

    #[test]
    fn rows_write_values_with_extra_labels_and_leave_out_families_without_values() {
        let mut memory = MemoryStats::default();
        memory.set_stat("anon", Some(42.0));
        memory.set_stat("pgfault", Some(7.0));
        memory.local_faults = [Some(5.0), None];
        let e = ContainerEntry {
            identity: Identity {
                id: "/docker/a".into(),
                ..Default::default()
            },
            stats: CgroupStats {
                memory: Some(memory),
                blkio: vec![BlkioDevice {
                    device: "/dev/vda".into(),
                    read_bytes: Some(3.0),
                    ..Default::default()
                }],
                ..Default::default()
            },
            ..Default::default()
        };
        let text = rendered(vec![e]);
        let base = r#"id="/docker/a",name="",image="",container="",pod="",namespace="""#;
        for line in [
            format!("container_memory_rss{{{base}}} 42.0"),
            format!(
                "container_memory_failures_total{{{base},failure_type=\"pgfault\",scope=\"container\"}} 5.0"
            ),
            format!(
                "container_memory_failures_total{{{base},failure_type=\"pgfault\",scope=\"hierarchy\"}} 7.0"
            ),
            format!("container_fs_reads_bytes_total{{{base},device=\"/dev/vda\"}} 3.0"),
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\nnot in\n{text}");
        }
        // No entry has CPU, writes or a network: those families are left out, not written as 0.
        for absent in [
            "container_cpu_usage_seconds_total",
            "container_fs_writes_bytes_total",
            "container_network_receive_bytes_total",
            "container_memory_cache",
        ] {
            assert!(!text.contains(absent), "{absent} in\n{text}");
        }
    }
}
