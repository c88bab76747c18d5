//! Long-lived clients of daemons (Docker today; Kubernetes and the kubelet later). They run in the
//! background, keep caches current, and never run on the scrape path: collectors read their caches.

pub mod docker;
pub mod kubelet;
pub mod kubernetes;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// What a runtime knows about one container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerMeta {
    /// Full 64-hex id.
    pub id: String,
    /// The runtime's name, without Docker's leading `/`.
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    /// created, running, paused, restarting, removing, exited, dead.
    pub state: String,
    /// healthy, unhealthy, starting; `None` when the container has no health check.
    pub health: Option<String>,
    pub restart_count: u64,
    /// Unix seconds; `None` when never started.
    pub started_at: Option<f64>,
    /// The cgroup path the runtime gives the container (relative, leading `/`), where it can be derived.
    pub cgroup_path: Option<String>,
}

impl ContainerMeta {
    pub fn label(&self, key: &str) -> &str {
        self.labels.get(key).map(String::as_str).unwrap_or("")
    }
}

/// The containers a runtime source knows, by id. Written by the source's background task, read by
/// collectors (a read clones an `Arc` of the current map, so a scrape never waits on a writer for long).
#[derive(Debug, Default)]
pub struct MetaStore {
    map: RwLock<Arc<HashMap<String, Arc<ContainerMeta>>>>,
}

impl MetaStore {
    pub fn snapshot(&self) -> Arc<HashMap<String, Arc<ContainerMeta>>> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn replace_all(&self, all: HashMap<String, Arc<ContainerMeta>>) {
        *self.map.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(all);
    }

    pub fn upsert(&self, meta: ContainerMeta) {
        let mut guard = self.map.write().unwrap_or_else(|p| p.into_inner());
        let mut next = (**guard).clone();
        next.insert(meta.id.clone(), Arc::new(meta));
        *guard = Arc::new(next);
    }

    pub fn remove(&self, id: &str) {
        let mut guard = self.map.write().unwrap_or_else(|p| p.into_inner());
        if guard.contains_key(id) {
            let mut next = (**guard).clone();
            next.remove(id);
            *guard = Arc::new(next);
        }
    }
}

/// Whether each source is connected, for `stevedore_source_up{source}`.
#[derive(Debug, Default)]
pub struct SourceStatus {
    sources: Mutex<Vec<(&'static str, Arc<AtomicBool>)>>,
}

impl SourceStatus {
    pub fn register(&self, name: &'static str) -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(false));
        self.sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name, flag.clone()));
        flag
    }

    pub fn all(&self) -> Vec<(&'static str, bool)> {
        self.sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(n, f)| (*n, f.load(Ordering::Relaxed)))
            .collect()
    }
}
