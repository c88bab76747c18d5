//! Families from the Kubernetes sources: pod specs and statuses (`kubernetes` collector) and the kubelet's
//! Summary API (`kubelet` collector). Every such metric's name lives here and only here.

use std::fmt;

use super::container::{StateRow, docker_state_rows, state_families};
use super::{Exposable, Out};
use crate::sample::container::{KubeSample, POD_CONTAINER_STATES};
use crate::sample::kubelet::KubeletSample;
use crate::sample::kubelet::{FsStats, InterfaceStats};

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

impl Exposable for KubeletSample {
    fn expose(&self, out: &mut Out<'_, '_>) -> fmt::Result {
        if let Some(usage) = &self.usage {
            usage.expose(out)?;
        }
        let s = &*self.summary;
        let pod_labels: Vec<Vec<(&str, &str)>> = s
            .pods
            .iter()
            .zip(&self.pod_values)
            .map(|(p, values)| {
                let mut l = vec![
                    ("pod", p.pod_ref.name.as_str()),
                    ("namespace", p.pod_ref.namespace.as_str()),
                ];
                for ((name, _), v) in self.pod_columns.iter().zip(values) {
                    l.push((name.as_str(), v.as_str()));
                }
                l
            })
            .collect();
        let pods = || s.pods.iter().zip(&pod_labels);

        for (name, help, get) in POD_NETWORK {
            let has = |p: &crate::sample::kubelet::PodStats| {
                p.network
                    .as_ref()
                    .is_some_and(|n| n.all().iter().any(|i| get(i).is_some()))
            };
            if !s.pods.iter().any(has) {
                continue;
            }
            let mut f = out.counter(name, help)?;
            for (p, l) in pods() {
                for i in p.network.iter().flat_map(|n| n.all()) {
                    if let Some(v) = get(i) {
                        f.sample_with(l, &["interface"], &[i.name.as_str()], v)?;
                    }
                }
            }
        }
        if s.pods.iter().any(|p| {
            p.ephemeral_storage
                .as_ref()
                .is_some_and(|e| e.used_bytes.is_some())
        }) {
            let mut f = out.gauge(
                "stevedore_pod_ephemeral_storage_used_bytes",
                "Ephemeral storage the pod uses: container writable layers, logs, emptyDir volumes (kubelet summary).",
            )?;
            for (p, l) in pods() {
                if let Some(v) = p.ephemeral_storage.as_ref().and_then(|e| e.used_bytes) {
                    f.sample(l, v)?;
                }
            }
        }
        for (name, help, get) in VOLUME {
            if !s
                .pods
                .iter()
                .any(|p| p.volume.iter().any(|v| get(&v.fs).is_some()))
            {
                continue;
            }
            let mut f = out.gauge(name, help)?;
            for (p, l) in pods() {
                for v in &p.volume {
                    if let Some(x) = get(&v.fs) {
                        let claim = v.pvc_ref.as_ref().map(|r| r.name.as_str()).unwrap_or("");
                        f.sample_with(
                            l,
                            &["volume", "persistentvolumeclaim"],
                            &[v.name.as_str(), claim],
                            x,
                        )?;
                    }
                }
            }
        }
        let node = s.node.as_ref();
        let filesystems: Vec<(&str, &FsStats)> = [
            ("rootfs", node.and_then(|n| n.fs.as_ref())),
            (
                "imagefs",
                node.and_then(|n| n.runtime.as_ref()?.image_fs.as_ref()),
            ),
            (
                "containerfs",
                node.and_then(|n| n.runtime.as_ref()?.container_fs.as_ref()),
            ),
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
}
