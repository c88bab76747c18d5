//! The local kubelet: `/stats/summary` (pod network, ephemeral storage, volumes, node filesystems, and
//! CPU and memory where cgroups are not readable) and, with `--kubernetes.pods-from=kubelet`, `/pods`.
//! Polled in the background; collectors read the last good answer.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::store::Writer;
use serde::Deserialize;

use super::kubernetes::{self, Health};

/// What the kubelet's authorizer asks of the exporter's service account, quoted in logs.
pub const RBAC_KUBELET: &str = "a ClusterRole rule {apiGroups: [\"\"], resources: [\"nodes/stats\", \"nodes/proxy\", \"nodes/pods\"], verbs: [\"get\"]} bound to the exporter's service account";

// The Summary API (kubelet pkg/apis/stats/v1alpha1), the fields Stevedore reads. Every field is optional
// and unknown fields are ignored: kubelets of different versions send different subsets.

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub node: Option<NodeStats>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub pods: Vec<PodStats>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    #[serde(default)]
    pub node_name: String,
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
    pub network: Option<NetworkStats>,
    pub fs: Option<FsStats>,
    pub runtime: Option<RuntimeStats>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeStats {
    pub image_fs: Option<FsStats>,
    pub container_fs: Option<FsStats>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRef {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub uid: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    #[serde(default)]
    pub pod_ref: PodRef,
    pub start_time: Option<String>,
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
pub struct ContainerStats {
    #[serde(default)]
    pub name: String,
    pub start_time: Option<String>,
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
    pub rootfs: Option<FsStats>,
    pub logs: Option<FsStats>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    pub usage_core_nano_seconds: Option<f64>,
    pub usage_nano_cores: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    pub usage_bytes: Option<f64>,
    pub working_set_bytes: Option<f64>,
    pub rss_bytes: Option<f64>,
    pub available_bytes: Option<f64>,
    pub page_faults: Option<f64>,
    pub major_page_faults: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceStats {
    #[serde(default)]
    pub name: String,
    pub rx_bytes: Option<f64>,
    pub rx_errors: Option<f64>,
    pub tx_bytes: Option<f64>,
    pub tx_errors: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkStats {
    /// The default interface's figures (the kubelet's `eth0`), inlined.
    #[serde(flatten)]
    pub default: InterfaceStats,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub interfaces: Vec<InterfaceStats>,
}

impl NetworkStats {
    /// Every interface: the list, or the inlined default interface when the kubelet gives no list.
    pub fn all(&self) -> Vec<&InterfaceStats> {
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
pub struct FsStats {
    pub available_bytes: Option<f64>,
    pub capacity_bytes: Option<f64>,
    pub used_bytes: Option<f64>,
    pub inodes_free: Option<f64>,
    pub inodes: Option<f64>,
    pub inodes_used: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PvcRef {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeStats {
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

/// An RFC 3339 time as Unix seconds.
pub fn unix_seconds(t: &str) -> Option<f64> {
    let ts: k8s_openapi::jiff::Timestamp = t.parse().ok()?;
    Some(ts.as_millisecond() as f64 / 1000.0)
}

/// The last good summary; `None` after a failed poll (its series are not served stale).
#[derive(Debug, Default)]
pub struct SummaryCache {
    inner: RwLock<Option<Arc<Summary>>>,
    polled: std::sync::atomic::AtomicBool,
}

impl SummaryCache {
    /// Whether a poll has finished yet (before that, no summary is not a failure).
    pub fn polled(&self) -> bool {
        self.polled.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn get(&self) -> Option<Arc<Summary>> {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
    pub fn set(&self, s: Option<Summary>) {
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = s.map(Arc::new);
        self.polled
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

pub struct KubeletConfig {
    pub url: String,
    pub token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
    pub interval: Duration,
    pub timeout: Duration,
}

/// A client of one kubelet. The bearer token is re-read from its file before every request, so a
/// rotated projected token is used at once.
pub struct KubeletClient {
    client: kube::Client,
    token_file: Option<PathBuf>,
    token_error: std::sync::Mutex<Option<String>>,
    timeout: Duration,
}

impl KubeletClient {
    pub fn new(cfg: &KubeletConfig) -> Result<KubeletClient, String> {
        let uri: http::Uri = cfg
            .url
            .trim_end_matches('/')
            .parse()
            .map_err(|e| format!("invalid --kubelet.url {:?}: {e}", cfg.url))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(format!(
                "invalid --kubelet.url {:?}: use http:// or https://",
                cfg.url
            ));
        }
        if let Some(ca) = &cfg.ca_file
            && let Err(e) = std::fs::metadata(ca)
        {
            return Err(format!(
                "cannot read --kubelet.ca-file {}: {e}",
                ca.display()
            ));
        }
        let mut config = kube::Config::new(uri);
        config.accept_invalid_certs = cfg.insecure_skip_verify;
        config.root_cert_file = cfg.ca_file.clone();
        config.read_timeout = Some(cfg.timeout);
        config.default_retry = false;
        let client = kube::Client::try_from(config)
            .map_err(|e| format!("cannot build the kubelet client: {e}"))?;
        Ok(KubeletClient {
            client,
            token_file: cfg.token_file.clone(),
            token_error: std::sync::Mutex::new(None),
            timeout: cfg.timeout,
        })
    }

    fn token(&self) -> Option<String> {
        let path = self.token_file.as_ref()?;
        let mut err = self.token_error.lock().unwrap_or_else(|p| p.into_inner());
        match std::fs::read_to_string(path) {
            Ok(t) => {
                if err.take().is_some() {
                    tracing::info!(path = %path.display(), "kubelet token file readable again");
                }
                Some(t.trim().to_string())
            }
            Err(e) => {
                let msg = e.to_string();
                if err.as_deref() != Some(&msg) {
                    tracing::warn!(path = %path.display(), error = %e,
                        "cannot read --kubelet.token-file; calling the kubelet without a token");
                }
                *err = Some(msg);
                None
            }
        }
    }

    /// GET a path, as text.
    pub async fn get(&self, path: &str) -> Result<String, String> {
        let mut req = http::Request::get(path);
        if let Some(t) = self.token() {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req
            .body(Vec::new())
            .map_err(|e| format!("kubelet {path}: {e}"))?;
        match tokio::time::timeout(self.timeout, self.client.request_text(req)).await {
            Err(_) => Err(format!(
                "kubelet {path}: no answer within {:?} (--kubelet.timeout)",
                self.timeout
            )),
            Ok(Err(e)) => Err(kubernetes::explain(
                &e,
                &format!("kubelet {path}"),
                RBAC_KUBELET,
                "check --kubelet.token-file (the service account token)",
            )),
            Ok(Ok(text)) => Ok(text),
        }
    }
}

/// Polls the summary (and /pods into `pods`, when the kubelet is the pod source) forever.
pub fn spawn(
    client: KubeletClient,
    interval: Duration,
    cache: Arc<SummaryCache>,
    health: Arc<Health>,
    mut pods: Option<(Writer<Pod>, Arc<Health>)>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            poll_summary(&client, &cache, &health).await;
            if let Some((writer, pods_health)) = pods.as_mut() {
                poll_pods(&client, writer, pods_health).await;
            }
        }
    });
}

async fn poll_summary(client: &KubeletClient, cache: &SummaryCache, health: &Health) {
    match client.get("/stats/summary").await {
        Ok(text) => match serde_json::from_str::<Summary>(&text) {
            Ok(s) => {
                cache.set(Some(s));
                health.ok();
            }
            Err(e) => {
                cache.set(None);
                health.fail(format!(
                    "kubelet /stats/summary: invalid JSON ({e}); is --kubelet.url a kubelet?"
                ));
            }
        },
        Err(why) => {
            cache.set(None);
            health.fail(why);
        }
    }
}

async fn poll_pods(client: &KubeletClient, writer: &mut Writer<Pod>, health: &Health) {
    match client.get("/pods").await {
        Ok(text) => match kubernetes::parse_pod_list(&text) {
            Ok((list, bad)) => {
                if bad > 0 {
                    tracing::warn!(
                        skipped = bad,
                        "kubelet /pods: some pods did not parse and are left out"
                    );
                }
                kubernetes::replace_all(writer, list);
                health.ok();
            }
            // The previous pod list is kept: identities do not vanish because of one bad answer.
            Err(e) => health.fail(format!("kubelet /pods: {e}")),
        },
        Err(why) => health.fail(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_tolerates_missing_and_null_sections() {
        let s: Summary = serde_json::from_str(
            r#"{"node":{"nodeName":"n","unknown":1},"pods":[{"podRef":{"name":"a","namespace":"b","uid":"c"},"containers":null,"volume":null}]}"#,
        )
        .unwrap();
        assert_eq!(s.pods.len(), 1);
        assert!(s.pods[0].network.is_none());
        assert!(serde_json::from_str::<Summary>("{\"pods\": [").is_err());
        assert_eq!(unix_seconds("1970-01-01T00:01:00Z"), Some(60.0));
    }
}
