//! Families from the Kubernetes sources: pod specs and statuses (`kubernetes` collector) and the kubelet's
//! Summary API (`kubelet` collector). Every such metric's name lives here and only here.

use std::fmt;

use super::container::{StateRow, docker_state_rows, state_families};
use super::{Exposable, Out};
use crate::sample::container::{KubeSample, POD_CONTAINER_STATES};
use crate::sample::kubelet::KubeletSample;
use crate::sample::kubelet::{FsStats, InterfaceStats, PodStats, Summary};

impl Exposable for KubeSample {
    fn expose(&self, out: &mut Out<'_, '_>) -> fmt::Result {
        let labels: Vec<Vec<(&str, &str)>> = self
            .containers
            .iter()
            .map(|c| c.identity.labels(&self.columns))
            .collect();
        let mut rows: Vec<StateRow<'_>> = docker_state_rows(&self.docker, &self.columns);
        for (c, l) in self.containers.iter().zip(&labels) {
            if let Some(state) = c.state {
                rows.push(StateRow {
                    labels: l.clone(),
                    state,
                    domain: &POD_CONTAINER_STATES,
                    restarts: c.restarts,
                });
            }
        }
        state_families(out, &rows)?;

        let reasons = || {
            self.containers
                .iter()
                .zip(&labels)
                .filter_map(|(c, l)| Some((c.last_terminated_reason.as_deref()?, l)))
        };
        if reasons().next().is_some() {
            let mut f = out.gauge(
                "stevedore_container_last_terminated_reason",
                "Why the container's previous run ended (kubelet's lastState.terminated.reason), 1 per container.",
            )?;
            for (reason, l) in reasons() {
                f.sample_with(l, &["reason"], &[reason], 1.0)?;
            }
        }
        type Get = fn(&crate::sample::container::KubeContainer) -> &Vec<(String, f64)>;
        let families: [(&str, &str, Get); 2] = [
            (
                "stevedore_container_resource_requests",
                "Resources the container requests (cpu in cores, memory and storage in bytes, others in units).",
                |c| &c.requests,
            ),
            (
                "stevedore_container_resource_limits",
                "Resource limits of the container (cpu in cores, memory and storage in bytes, others in units).",
                |c| &c.limits,
            ),
        ];
        for (name, help, get) in families {
            if !self.containers.iter().any(|c| !get(c).is_empty()) {
                continue;
            }
            let mut f = out.gauge(name, help)?;
            for (c, l) in self.containers.iter().zip(&labels) {
                for (resource, v) in get(c) {
                    f.sample_with(l, &["resource"], &[resource.as_str()], *v)?;
                }
            }
        }
        Ok(())
    }
}

type IfaceGet = fn(&InterfaceStats) -> Option<f64>;
const POD_NETWORK: [(&str, &str, IfaceGet); 4] = [
    (
        "stevedore_pod_network_receive_bytes",
        "Cumulative bytes received by the pod on this interface (kubelet summary).",
        |i| i.rx_bytes,
    ),
    (
        "stevedore_pod_network_receive_errors",
        "Cumulative receive errors of the pod on this interface (kubelet summary).",
        |i| i.rx_errors,
    ),
    (
        "stevedore_pod_network_transmit_bytes",
        "Cumulative bytes transmitted by the pod on this interface (kubelet summary).",
        |i| i.tx_bytes,
    ),
    (
        "stevedore_pod_network_transmit_errors",
        "Cumulative transmit errors of the pod on this interface (kubelet summary).",
        |i| i.tx_errors,
    ),
];

type FsGet = fn(&FsStats) -> Option<f64>;
const VOLUME: [(&str, &str, FsGet); 3] = [
    (
        "stevedore_pod_volume_used_bytes",
        "Bytes used on the pod's volume (kubelet summary).",
        |f| f.used_bytes,
    ),
    (
        "stevedore_pod_volume_capacity_bytes",
        "Capacity of the pod's volume in bytes (kubelet summary).",
        |f| f.capacity_bytes,
    ),
    (
        "stevedore_pod_volume_available_bytes",
        "Bytes available on the pod's volume (kubelet summary).",
        |f| f.available_bytes,
    ),
];

const NODE_FS: [(&str, &str, FsGet); 5] = [
    (
        "stevedore_node_filesystem_capacity_bytes",
        "Capacity of the node filesystem the kubelet reports (rootfs, imagefs, containerfs) in bytes.",
        |f| f.capacity_bytes,
    ),
    (
        "stevedore_node_filesystem_available_bytes",
        "Bytes available on the node filesystem the kubelet reports.",
        |f| f.available_bytes,
    ),
    (
        "stevedore_node_filesystem_used_bytes",
        "Bytes used on the node filesystem the kubelet reports.",
        |f| f.used_bytes,
    ),
    (
        "stevedore_node_filesystem_inodes",
        "Inodes of the node filesystem the kubelet reports.",
        |f| f.inodes,
    ),
    (
        "stevedore_node_filesystem_inodes_free",
        "Free inodes of the node filesystem the kubelet reports.",
        |f| f.inodes_free,
    ),
];

/// A pod's label set on the kubelet families: `pod`, `namespace`, then the `--kubernetes.pod-labels`.
fn pod_labels(s: &KubeletSample) -> Vec<Vec<(&str, &str)>> {
    (s.summary.pods.iter().zip(&s.pod_values))
        .map(|(p, values)| {
            let mut l = vec![
                ("pod", p.pod_ref.name.as_str()),
                ("namespace", p.pod_ref.namespace.as_str()),
            ];
            for ((name, _), v) in s.pod_columns.iter().zip(values) {
                l.push((name.as_str(), v.as_str()));
            }
            l
        })
        .collect()
}

type PodRows<'a, 'l> = Vec<(&'a PodStats, &'l Vec<(&'a str, &'a str)>)>;

fn pod_network(out: &mut Out<'_, '_>, pods: &PodRows<'_, '_>) -> fmt::Result {
    for (name, help, get) in POD_NETWORK {
        let has = |p: &PodStats| {
            (p.network.as_ref()).is_some_and(|n| n.all().iter().any(|i| get(i).is_some()))
        };
        if !pods.iter().any(|(p, _)| has(p)) {
            continue;
        }
        let mut f = out.counter(name, help)?;
        for (p, l) in pods {
            for i in p.network.iter().flat_map(|n| n.all()) {
                if let Some(v) = get(i) {
                    f.sample_with(l, &["interface"], &[i.name.as_str()], v)?;
                }
            }
        }
    }
    Ok(())
}

fn pod_storage(out: &mut Out<'_, '_>, pods: &PodRows<'_, '_>) -> fmt::Result {
    let used = |p: &PodStats| p.ephemeral_storage.as_ref().and_then(|e| e.used_bytes);
    if pods.iter().any(|(p, _)| used(p).is_some()) {
        let mut f = out.gauge(
            "stevedore_pod_ephemeral_storage_used_bytes",
            "Ephemeral storage the pod uses: container writable layers, logs, emptyDir volumes (kubelet summary).",
        )?;
        for (p, l) in pods {
            if let Some(v) = used(p) {
                f.sample(l, v)?;
            }
        }
    }
    for (name, help, get) in VOLUME {
        if !pods
            .iter()
            .any(|(p, _)| p.volume.iter().any(|v| get(&v.fs).is_some()))
        {
            continue;
        }
        let mut f = out.gauge(name, help)?;
        for (p, l) in pods {
            for v in &p.volume {
                if let Some(x) = get(&v.fs) {
                    let claim = v.pvc_ref.as_ref().map(|r| r.name.as_str()).unwrap_or("");
                    let values = [v.name.as_str(), claim];
                    f.sample_with(l, &["volume", "persistentvolumeclaim"], &values, x)?;
                }
            }
        }
    }
    Ok(())
}

fn node_filesystems(out: &mut Out<'_, '_>, summary: &Summary) -> fmt::Result {
    let node = summary.node.as_ref();
    let runtime = node.and_then(|n| n.runtime.as_ref());
    let filesystems: Vec<(&str, &FsStats)> = [
        ("rootfs", node.and_then(|n| n.fs.as_ref())),
        ("imagefs", runtime.and_then(|r| r.image_fs.as_ref())),
        ("containerfs", runtime.and_then(|r| r.container_fs.as_ref())),
    ]
    .into_iter()
    .filter_map(|(n, f)| Some((n, f?)))
    .collect();
    for (name, help, get) in NODE_FS {
        if !filesystems.iter().any(|(_, f)| get(f).is_some()) {
            continue;
        }
        let mut f = out.gauge(name, help)?;
        for (fs, stats) in &filesystems {
            if let Some(v) = get(stats) {
                f.sample(&[("filesystem", fs)], v)?;
            }
        }
    }
    Ok(())
}

impl Exposable for KubeletSample {
    fn expose(&self, out: &mut Out<'_, '_>) -> fmt::Result {
        if let Some(usage) = &self.usage {
            usage.expose(out)?;
        }
        let labels = pod_labels(self);
        let pods: PodRows<'_, '_> = self.summary.pods.iter().zip(&labels).collect();
        pod_network(out, &pods)?;
        pod_storage(out, &pods)?;
        node_filesystems(out, &self.summary)
    }
}
