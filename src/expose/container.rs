//! Container, pod and root-cgroup families: cAdvisor's `container_*` names, types and HELP with the
//! kubelet's label set (`id`, `name`, `image`, `container`, `pod`, `namespace`), plus `stevedore_container_*`
//! from Docker. Every container metric's name lives here and only here.

use std::fmt;

use super::{Exposable, Out};
use crate::cgroup::{CgroupStats, Psi};
use crate::collector::cgroup::{ContainerEntry, ContainersSample, Level};
use crate::collector::docker::{DockerSample, STATES};

type Get = fn(&CgroupStats) -> Option<f64>;

/// Single-value families: (name without `_total`, help, is counter, accessor).
const SCALARS: &[(&str, &str, bool, Get)] = &[
    (
        "container_cpu_user_seconds",
        "Cumulative user cpu time consumed in seconds.",
        true,
        |s| s.cpu.as_ref()?.user_seconds,
    ),
    (
        "container_cpu_system_seconds",
        "Cumulative system cpu time consumed in seconds.",
        true,
        |s| s.cpu.as_ref()?.system_seconds,
    ),
    (
        "container_cpu_cfs_periods",
        "Number of elapsed enforcement period intervals.",
        true,
        |s| s.cpu.as_ref()?.periods,
    ),
    (
        "container_cpu_cfs_throttled_periods",
        "Number of throttled period intervals.",
        true,
        |s| s.cpu.as_ref()?.throttled_periods,
    ),
    (
        "container_cpu_cfs_throttled_seconds",
        "Total time duration the container has been throttled.",
        true,
        |s| s.cpu.as_ref()?.throttled_seconds,
    ),
    (
        "container_memory_usage_bytes",
        "Current memory usage in bytes, including all memory regardless of when it was accessed",
        false,
        |s| s.memory.as_ref()?.usage,
    ),
    (
        "container_memory_working_set_bytes",
        "Current working set in bytes.",
        false,
        |s| s.memory.as_ref()?.working_set,
    ),
    (
        "container_memory_rss",
        "Size of RSS in bytes.",
        false,
        |s| s.memory.as_ref()?.rss,
    ),
    (
        "container_memory_cache",
        "Number of bytes of page cache memory.",
        false,
        |s| s.memory.as_ref()?.cache,
    ),
    (
        "container_memory_mapped_file",
        "Size of memory mapped files in bytes.",
        false,
        |s| s.memory.as_ref()?.mapped_file,
    ),
    (
        "container_memory_swap",
        "Container swap usage in bytes.",
        false,
        |s| s.memory.as_ref()?.swap,
    ),
    (
        "container_memory_max_usage_bytes",
        "Maximum memory usage recorded in bytes",
        false,
        |s| s.memory.as_ref()?.max_usage,
    ),
    (
        "container_memory_failcnt",
        "Number of memory usage hits limits",
        true,
        |s| s.memory.as_ref()?.failcnt,
    ),
    (
        "container_oom_events",
        "Count of out of memory events observed for the container",
        true,
        |s| s.memory.as_ref()?.oom_kills,
    ),
    (
        "container_spec_cpu_period",
        "CPU period of the container.",
        false,
        |s| s.spec.cpu_period,
    ),
    (
        "container_spec_cpu_quota",
        "CPU quota of the container.",
        false,
        |s| s.spec.cpu_quota,
    ),
    (
        "container_spec_cpu_shares",
        "CPU share of the container.",
        false,
        |s| s.spec.cpu_shares,
    ),
    (
        "container_spec_memory_limit_bytes",
        "Memory limit for the container.",
        false,
        |s| s.spec.memory_limit,
    ),
    (
        "container_spec_memory_reservation_limit_bytes",
        "Memory reservation limit for the container.",
        false,
        |s| s.spec.memory_reservation,
    ),
    (
        "container_spec_memory_swap_limit_bytes",
        "Memory swap limit for the container.",
        false,
        |s| s.spec.memory_swap_limit,
    ),
    (
        "container_threads",
        "Number of threads running inside the container",
        false,
        |s| s.pids.as_ref()?.current,
    ),
    (
        "container_threads_max",
        "Maximum number of threads allowed inside the container, infinity if value is zero",
        false,
        |s| s.pids.as_ref()?.max,
    ),
];

/// Pressure families: (name without `_total`, help, accessor).
const PRESSURE: &[(&str, &str, Get)] = &[
    (
        "container_pressure_cpu_waiting_seconds",
        "Total time duration tasks in the container have waited due to CPU congestion.",
        |s| psi(s, |p| p.cpu).some,
    ),
    (
        "container_pressure_cpu_stalled_seconds",
        "Total time duration no tasks in the container could make progress due to CPU congestion.",
        |s| psi(s, |p| p.cpu).full,
    ),
    (
        "container_pressure_memory_waiting_seconds",
        "Total time duration tasks in the container have waited due to memory congestion.",
        |s| psi(s, |p| p.memory).some,
    ),
    (
        "container_pressure_memory_stalled_seconds",
        "Total time duration no tasks in the container could make progress due to memory congestion.",
        |s| psi(s, |p| p.memory).full,
    ),
    (
        "container_pressure_io_waiting_seconds",
        "Total time duration tasks in the container have waited due to IO congestion.",
        |s| psi(s, |p| p.io).some,
    ),
    (
        "container_pressure_io_stalled_seconds",
        "Total time duration no tasks in the container could make progress due to IO congestion.",
        |s| psi(s, |p| p.io).full,
    ),
];

fn psi(s: &CgroupStats, pick: fn(&crate::cgroup::PressureStats) -> Psi) -> Psi {
    s.pressure.as_ref().map(pick).unwrap_or_default()
}

/// Network families by position in the entry's 8 values.
const NETWORK: [(&str, &str); 8] = [
    (
        "container_network_receive_bytes",
        "Cumulative count of bytes received",
    ),
    (
        "container_network_receive_packets",
        "Cumulative count of packets received",
    ),
    (
        "container_network_receive_packets_dropped",
        "Cumulative count of packets dropped while receiving",
    ),
    (
        "container_network_receive_errors",
        "Cumulative count of errors encountered while receiving",
    ),
    (
        "container_network_transmit_bytes",
        "Cumulative count of bytes transmitted",
    ),
    (
        "container_network_transmit_packets",
        "Cumulative count of packets transmitted",
    ),
    (
        "container_network_transmit_packets_dropped",
        "Cumulative count of packets dropped while transmitting",
    ),
    (
        "container_network_transmit_errors",
        "Cumulative count of errors encountered while transmitting",
    ),
];

type BlkGet = fn(&crate::cgroup::BlkioDevice) -> Option<f64>;
const BLKIO: [(&str, &str, BlkGet); 4] = [
    (
        "container_fs_reads_bytes",
        "Cumulative count of bytes read",
        |d| d.read_bytes,
    ),
    (
        "container_fs_writes_bytes",
        "Cumulative count of bytes written",
        |d| d.write_bytes,
    ),
    (
        "container_fs_reads",
        "Cumulative count of reads completed",
        |d| d.reads,
    ),
    (
        "container_fs_writes",
        "Cumulative count of writes completed",
        |d| d.writes,
    ),
];

pub(crate) fn with<'a>(
    base: &[(&'a str, &'a str)],
    extra: (&'a str, &'a str),
) -> Vec<(&'a str, &'a str)> {
    let mut v = Vec::with_capacity(base.len() + 1);
    v.extend_from_slice(base);
    v.push(extra);
    v
}

impl Exposable for ContainersSample {
    fn expose(&self, out: &mut Out<'_, '_>) -> fmt::Result {
        let labels: Vec<Vec<(&str, &str)>> = self
            .entries
            .iter()
            .map(|e| e.identity.labels(&self.columns))
            .collect();
        let rows = || self.entries.iter().zip(&labels);

        if rows().any(|(e, _)| {
            e.stats
                .cpu
                .as_ref()
                .is_some_and(|c| c.usage_seconds.is_some())
        }) {
            let mut f = out.counter(
                "container_cpu_usage_seconds",
                "Cumulative cpu time consumed in seconds.",
            )?;
            for (e, l) in rows() {
                if let Some(v) = e.stats.cpu.as_ref().and_then(|c| c.usage_seconds) {
                    f.sample(&with(l, ("cpu", "total")), v)?;
                }
            }
        }
        for (name, help, counter, get) in SCALARS {
            if !rows().any(|(e, _)| get(&e.stats).is_some()) {
                continue;
            }
            let mut f = if *counter {
                out.counter(name, help)?
            } else {
                out.gauge(name, help)?
            };
            for (e, l) in rows() {
                if let Some(v) = get(&e.stats) {
                    f.sample(l, v)?;
                }
            }
        }
        if rows().any(|(e, _)| e.stats.memory.as_ref().is_some_and(|m| m.pgfault.is_some())) {
            let mut f = out.counter(
                "container_memory_failures",
                "Cumulative count of memory allocation failures.",
            )?;
            for (e, l) in rows() {
                let Some(m) = &e.stats.memory else { continue };
                for (kind, pair) in [("pgfault", m.pgfault), ("pgmajfault", m.pgmajfault)] {
                    if let Some((container, hierarchy)) = pair {
                        let mut a = with(l, ("failure_type", kind));
                        a.push(("scope", "container"));
                        f.sample(&a, container)?;
                        let mut b = with(l, ("failure_type", kind));
                        b.push(("scope", "hierarchy"));
                        f.sample(&b, hierarchy)?;
                    }
                }
            }
        }
        for (name, help, get) in PRESSURE {
            if !rows().any(|(e, _)| get(&e.stats).is_some()) {
                continue;
            }
            let mut f = out.counter(name, help)?;
            for (e, l) in rows() {
                if let Some(v) = get(&e.stats) {
                    f.sample(l, v)?;
                }
            }
        }
        for (name, help, get) in BLKIO {
            if !rows().any(|(e, _)| e.stats.blkio.iter().any(|d| get(d).is_some())) {
                continue;
            }
            let mut f = out.counter(name, help)?;
            for (e, l) in rows() {
                for (d, dev) in e.stats.blkio.iter().zip(&e.devices) {
                    if let Some(v) = get(d) {
                        f.sample(&with(l, ("device", dev.as_str())), v)?;
                    }
                }
            }
        }
        for (i, (name, help)) in NETWORK.iter().enumerate() {
            if !rows().any(|(e, _)| !e.network.is_empty()) {
                break;
            }
            let mut f = out.counter(name, help)?;
            for (e, l) in rows() {
                for (iface, v) in &e.network {
                    f.sample(&with(l, ("interface", iface.as_str())), v[i])?;
                }
            }
        }
        type ProcGet = fn(&crate::collector::cgroup::ProcStats) -> f64;
        let procs: [(&str, &str, ProcGet); 3] = [
            (
                "container_processes",
                "Number of processes running inside the container.",
                |p| p.processes,
            ),
            (
                "container_file_descriptors",
                "Number of open file descriptors for the container.",
                |p| p.file_descriptors,
            ),
            (
                "container_sockets",
                "Number of open sockets for the container.",
                |p| p.sockets,
            ),
        ];
        for (name, help, get) in procs {
            if !rows().any(|(e, _)| e.procs.is_some()) {
                break;
            }
            let mut f = out.gauge(name, help)?;
            for (e, l) in rows() {
                if let Some(p) = &e.procs {
                    f.sample(l, get(p))?;
                }
            }
        }
        type EntryGet = fn(&ContainerEntry) -> Option<f64>;
        let meta: [(&str, &str, EntryGet); 2] = [
            (
                "container_start_time_seconds",
                "Start time of the container since unix epoch in seconds.",
                |e| e.start_time,
            ),
            (
                "container_health_state",
                "The result of the container's health check: 1 healthy, 0 unhealthy or starting, -1 no health check",
                |e| e.health,
            ),
        ];
        for (name, help, get) in meta {
            if !rows().any(|(e, _)| get(e).is_some()) {
                continue;
            }
            let mut f = out.gauge(name, help)?;
            for (e, l) in rows() {
                if let Some(v) = get(e) {
                    f.sample(l, v)?;
                }
            }
        }
        // The kubelet's /metrics/resource names, for consumers of the resource metrics API.
        type LevelGet = fn(&CgroupStats) -> Option<f64>;
        let cpu: LevelGet = |s| s.cpu.as_ref()?.usage_seconds;
        let ws: LevelGet = |s| s.memory.as_ref()?.working_set;
        let pods = || {
            self.entries
                .iter()
                .filter(|e| e.level == Level::Pod && !e.identity.pod.is_empty())
        };
        for (name, help, counter, get) in [
            (
                "pod_cpu_usage_seconds",
                "Cumulative cpu time consumed by the pod in core-seconds",
                true,
                cpu,
            ),
            (
                "pod_memory_working_set_bytes",
                "Current working set of the pod in bytes",
                false,
                ws,
            ),
        ] {
            if !pods().any(|e| get(&e.stats).is_some()) {
                continue;
            }
            let mut f = if counter {
                out.counter(name, help)?
            } else {
                out.gauge(name, help)?
            };
            // One series per pod even if two cgroups claim it (a node switching cgroup drivers).
            let mut seen = std::collections::HashSet::new();
            for e in pods().filter(|e| seen.insert((&e.identity.pod, &e.identity.namespace))) {
                if let Some(v) = get(&e.stats) {
                    let l = [
                        ("pod", e.identity.pod.as_str()),
                        ("namespace", e.identity.namespace.as_str()),
                    ];
                    f.sample(&l, v)?;
                }
            }
        }
        if let Some(root) = self.entries.iter().find(|e| e.level == Level::Root) {
            if let Some(v) = cpu(&root.stats) {
                out.single_counter(
                    "node_cpu_usage_seconds",
                    "Cumulative cpu time consumed by the node in core-seconds",
                    v,
                )?;
            }
            if let Some(v) = ws(&root.stats) {
                out.single_gauge(
                    "node_memory_working_set_bytes",
                    "Current working set of the node in bytes",
                    v,
                )?;
            }
        }
        if !self.entries.is_empty() {
            let mut f = out.gauge(
                "container_last_seen",
                "Last time a container was seen by the exporter",
            )?;
            for (_, l) in rows() {
                f.sample(l, self.now)?;
            }
        }
        Ok(())
    }
}

/// One container's row of the state families.
pub struct StateRow<'a> {
    pub labels: Vec<(&'a str, &'a str)>,
    pub state: &'a str,
    /// The states this container's source knows, one series each.
    pub domain: &'static [&'static str],
    pub restarts: Option<f64>,
}

/// `stevedore_container_state` and `stevedore_container_restarts_total`, for Docker's containers and
/// (through the kubernetes collector) pod containers, so each family is written by one collector.
pub fn state_families(out: &mut Out<'_, '_>, rows: &[StateRow<'_>]) -> fmt::Result {
    if rows.is_empty() {
        return Ok(());
    }
    let mut f = out.gauge(
        "stevedore_container_state",
        "State of the container (Docker's, or the kubelet's for pod containers): 1 for the current state, 0 for the others.",
    )?;
    for r in rows {
        for s in r.domain {
            f.sample(
                &with(&r.labels, ("state", s)),
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

impl DockerSample {
    pub fn state_rows(&self) -> Vec<StateRow<'_>> {
        self.containers
            .iter()
            .map(|c| StateRow {
                labels: c.identity.labels(&self.columns),
                state: &c.state,
                domain: &STATES,
                restarts: Some(c.restarts),
            })
            .collect()
    }
}

impl Exposable for DockerSample {
    fn expose(&self, out: &mut Out<'_, '_>) -> fmt::Result {
        state_families(out, &self.state_rows())
    }
}
