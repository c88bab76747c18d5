//! The local kubelet: `/stats/summary` (pod network, ephemeral storage, volumes, node filesystems, and
//! CPU and memory where cgroups are not readable) and, with `--kubernetes.pods-from=kubelet`, `/pods`.
//! Polled in the background; collectors read the last good answer.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::store::Writer;

use super::error::SourceError;
use super::kubernetes;
use crate::health::Health;
use crate::sample::kubelet::Summary;

/// What the kubelet's authorizer asks of the exporter's service account, quoted in logs.
pub(crate) const RBAC_KUBELET: &str = "a ClusterRole rule {apiGroups: [\"\"], resources: [\"nodes/stats\", \"nodes/proxy\", \"nodes/pods\"], verbs: [\"get\"]} bound to the exporter's service account";

// The Summary API (kubelet pkg/apis/stats/v1alpha1), the fields Stevedore reads. Every field is optional
// and unknown fields are ignored: kubelets of different versions send different subsets.

/// An RFC 3339 time as Unix seconds.
pub(crate) fn unix_seconds(t: &str) -> Option<f64> {
    let ts: k8s_openapi::jiff::Timestamp = t.parse().ok()?;
    Some(ts.as_millisecond() as f64 / 1000.0)
}

/// The summary as the collector sees it.
#[derive(Debug, Clone, Default)]
pub(crate) enum Latest {
    /// The first poll has not finished yet.
    #[default]
    NotYet,
    Summary(Arc<Summary>),
    /// The last poll failed: its series are not served stale.
    Failed,
}

/// The outcome of the last poll of the summary.
#[derive(Debug, Default)]
pub(crate) struct SummaryCache {
    inner: RwLock<Latest>,
}

impl SummaryCache {
    pub(crate) fn get(&self) -> Latest {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, latest: Latest) {
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = latest;
    }
}

pub(crate) struct KubeletConfig {
    pub url: String,
    pub token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
    pub timeout: Duration,
}

/// A client of one kubelet. The bearer token is re-read from its file before every request, so a
/// rotated projected token is used at once.
pub(crate) struct KubeletClient {
    client: kube::Client,
    token_file: Option<PathBuf>,
    token_error: std::sync::Mutex<Option<String>>,
    timeout: Duration,
}

impl KubeletClient {
    pub(crate) fn new(cfg: &KubeletConfig) -> Result<KubeletClient, String> {
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
        let plain = uri.scheme_str() == Some("http");
        let mut config = kube::Config::new(uri);
        config.accept_invalid_certs = cfg.insecure_skip_verify;
        config.root_cert_file = cfg.ca_file.clone();
        config.read_timeout = Some(cfg.timeout);
        config.default_retry = false;
        if plain {
            // Plain HTTP uses no TLS: an empty trust store, so that a host or image without CA
            // certificates still starts (kube would look for the system's and fail).
            config.root_cert = Some(Vec::new());
        }
        let client = kube::Client::try_from(config).map_err(|e| {
            let hint = match (plain, &cfg.ca_file, cfg.insecure_skip_verify) {
                (false, None, false) => {
                    " (no CA file given, so the system's CA certificates are used: pass \
                     --kubelet.ca-file with the kubelet's CA, or --kubelet.insecure-skip-verify)"
                }
                _ => "",
            };
            format!("cannot build the kubelet client: {e}{hint}")
        })?;
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
    pub(crate) async fn get(&self, path: &str) -> Result<String, SourceError> {
        let mut req = http::Request::get(path);
        if let Some(t) = self.token() {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let what = format!("kubelet {path}");
        let req = req.body(Vec::new()).map_err(|e| SourceError::Other {
            what: what.clone(),
            detail: e.to_string(),
        })?;
        match tokio::time::timeout(self.timeout, self.fetch(req)).await {
            Err(_) => Err(SourceError::Timeout {
                what,
                after: self.timeout,
                flag: "--kubelet.timeout",
            }),
            Ok(Err(Fetch::Kube(e))) => Err(SourceError::from_kube(
                &e,
                &what,
                RBAC_KUBELET,
                "check --kubelet.token-file (the service account token)",
            )),
            Ok(Err(Fetch::Body(detail))) => Err(SourceError::BadPayload {
                what,
                detail,
                hint: "is --kubelet.url a kubelet?",
            }),
            Ok(Err(Fetch::TooLarge)) => Err(SourceError::TooLarge {
                what,
                limit_mib: MAX_BODY >> 20,
                hint: "a node runs a few hundred pods at most: is --kubelet.url this node's kubelet?",
            }),
            Ok(Ok(text)) => Ok(text),
        }
    }

    /// Sends the request and reads at most [`MAX_BODY`] bytes of the answer.
    async fn fetch(&self, req: http::Request<Vec<u8>>) -> Result<String, Fetch> {
        use futures_util::AsyncReadExt;
        let body = self.client.request_stream(req).await.map_err(Fetch::Kube)?;
        let mut bytes = Vec::new();
        let limited = body.take(MAX_BODY + 1);
        let mut limited = std::pin::pin!(limited);
        limited
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| Fetch::Body(format!("reading the answer: {e}")))?;
        if bytes.len() as u64 > MAX_BODY {
            return Err(Fetch::TooLarge);
        }
        String::from_utf8(bytes).map_err(|e| Fetch::Body(format!("not UTF-8: {e}")))
    }
}

/// The largest kubelet answer read. A node's summary or pod list is a few MiB at most (a few hundred
/// pods); anything bigger is refused, so a broken or hostile kubelet cannot take the exporter's memory.
const MAX_BODY: u64 = 16 << 20;

enum Fetch {
    Kube(kube::Error),
    Body(String),
    TooLarge,
}

/// Polls the summary (and /pods into `pods`, when the kubelet is the pod source) forever.
pub(crate) fn spawn(
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
    let parsed = client.get("/stats/summary").await.and_then(|text| {
        serde_json::from_str::<Summary>(&text).map_err(|e| SourceError::BadPayload {
            what: "kubelet /stats/summary".into(),
            detail: e.to_string(),
            hint: "is --kubelet.url a kubelet?",
        })
    });
    match parsed {
        Ok(s) => {
            cache.set(Latest::Summary(Arc::new(s)));
            health.ok();
        }
        Err(e) => {
            cache.set(Latest::Failed);
            health.fail(&e);
        }
    }
}

async fn poll_pods(client: &KubeletClient, writer: &mut Writer<Pod>, health: &Health) {
    let parsed = client.get("/pods").await.and_then(|text| {
        kubernetes::parse_pod_list(&text).map_err(|detail| SourceError::BadPayload {
            what: "kubelet /pods".into(),
            detail,
            hint: "is --kubelet.url a kubelet?",
        })
    });
    match parsed {
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
        Err(e) => health.fail(&e),
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
