//! The kubelet's Summary API (pkg/apis/stats/v1alpha1), the fields Stevedore reads. Every field is optional
//! and unknown fields are ignored: kubelets of different versions send different subsets. Data only.

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Summary {
    pub node: Option<NodeStats>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub pods: Vec<PodStats>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NodeStats {
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
    pub fs: Option<FsStats>,
    pub runtime: Option<RuntimeStats>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RuntimeStats {
    pub image_fs: Option<FsStats>,
    pub container_fs: Option<FsStats>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodRef {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub uid: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodStats {
    #[serde(default)]
    pub pod_ref: PodRef,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub containers: Vec<ContainerStats>,
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
    pub network: Option<NetworkStats>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub volume: Vec<VolumeStats>,
    #[serde(rename = "ephemeral-storage")]
    pub ephemeral_storage: Option<FsStats>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ContainerStats {
    #[serde(default)]
    pub name: String,
    pub start_time: Option<String>,
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
    /// The container's writable layer, as the runtime measures it for the kubelet.
    pub rootfs: Option<FsStats>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CpuStats {
    pub usage_core_nano_seconds: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MemoryStats {
    pub usage_bytes: Option<f64>,
    pub working_set_bytes: Option<f64>,
    pub rss_bytes: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InterfaceStats {
    #[serde(default)]
    pub name: String,
    pub rx_bytes: Option<f64>,
    pub rx_errors: Option<f64>,
    pub tx_bytes: Option<f64>,
    pub tx_errors: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NetworkStats {
    /// The default interface's figures (the kubelet's `eth0`), inlined.
    #[serde(flatten)]
    pub default: InterfaceStats,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub interfaces: Vec<InterfaceStats>,
}

impl NetworkStats {
    /// Every interface: the list, or the inlined default interface when the kubelet gives no list.
    pub(crate) fn all(&self) -> Vec<&InterfaceStats> {
        if !self.interfaces.is_empty() {
            self.interfaces.iter().collect()
        } else if !self.default.name.is_empty() {
            vec![&self.default]
        } else {
            Vec::new()
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FsStats {
    pub available_bytes: Option<f64>,
    pub capacity_bytes: Option<f64>,
    pub used_bytes: Option<f64>,
    pub inodes_free: Option<f64>,
    pub inodes: Option<f64>,
    pub inodes_used: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PvcRef {
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VolumeStats {
    #[serde(flatten)]
    pub fs: FsStats,
    #[serde(default)]
    pub name: String,
    pub pvc_ref: Option<PvcRef>,
}

fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone)]
pub(crate) struct KubeletSample {
    pub summary: std::sync::Arc<Summary>,
    pub pod_columns: Vec<(String, String)>,
    /// Pod label values by position in `summary.pods`.
    pub pod_values: Vec<Vec<String>>,
    /// Container, pod and node usage from the summary (cgroups not readable).
    pub usage: Option<crate::sample::container::ContainersSample>,
}
