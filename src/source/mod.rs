//! Long-lived clients of daemons (Docker, Podman and containerd, the apiserver, the kubelet). They run in the
//! background, keep caches current, and never run on the scrape path: collectors read their caches.

pub(crate) mod containerd;
pub(crate) mod containerd_api;
pub(crate) mod docker;
pub(crate) mod error;
pub(crate) mod kubelet;
pub(crate) mod kubernetes;

use std::collections::HashMap;

pub(crate) use crate::identity::ContainerMeta;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::health::Health;
use error::SourceError;

/// A map by id that background tasks write and collectors read: a read clones an `Arc` of the current
/// map, so a scrape never waits on a writer for long; a write builds the next map and swaps it in.
#[derive(Debug)]
pub(crate) struct SnapshotMap<V> {
    map: RwLock<Arc<HashMap<String, Arc<V>>>>,
}

impl<V> Default for SnapshotMap<V> {
    fn default() -> Self {
        SnapshotMap {
            map: RwLock::new(Arc::new(HashMap::new())),
        }
    }
}

impl<V> SnapshotMap<V> {
    pub(crate) fn snapshot(&self) -> Arc<HashMap<String, Arc<V>>> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn replace(&self, next: HashMap<String, Arc<V>>) {
        *self.map.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
    }

    /// Changes the map in one swap; `change` returns whether it changed anything (else nothing is
    /// swapped).
    pub(crate) fn update(&self, change: impl FnOnce(&mut HashMap<String, Arc<V>>) -> bool) {
        let mut guard = self.map.write().unwrap_or_else(|p| p.into_inner());
        let mut next = (**guard).clone();
        if change(&mut next) {
            *guard = Arc::new(next);
        }
    }
}

/// The containers the runtime sources know, by id. Each source owns the entries with its `runtime`.
#[derive(Debug, Default)]
pub(crate) struct MetaStore {
    map: SnapshotMap<ContainerMeta>,
}

impl MetaStore {
    pub(crate) fn snapshot(&self) -> Arc<HashMap<String, Arc<ContainerMeta>>> {
        self.map.snapshot()
    }

    /// Replaces what one runtime knows; the other runtimes' entries stay.
    pub(crate) fn replace_runtime(&self, runtime: &str, all: HashMap<String, Arc<ContainerMeta>>) {
        self.map.update(|map| {
            map.retain(|_, m| m.runtime != runtime);
            for (id, m) in all {
                map.entry(id).or_insert(m);
            }
            true
        });
    }

    pub(crate) fn upsert(&self, meta: ContainerMeta) {
        self.map.update(|map| {
            map.insert(meta.id.clone(), Arc::new(meta));
            true
        });
    }

    /// Forgets a container of this runtime.
    pub(crate) fn remove(&self, runtime: &str, id: &str) {
        self.map.update(|map| {
            let mine = map.get(id).is_some_and(|m| m.runtime == runtime);
            mine && map.remove(id).is_some()
        });
    }
}

/// A connection that stayed up at least this long resets the reconnect backoff; one that ends sooner
/// (a daemon that accepts and drops the events stream) keeps backing off.
const STABLE: Duration = Duration::from_secs(30);

/// Runs `follow` (connect, sync, follow the events) again and again for as long as the process runs:
/// each end is a failure of `health` (`what` names the stream), then a backoff from 0.5 s doubling to
/// 30 s, reset after a connection that stayed up [`STABLE`].
pub(crate) async fn follow_forever<F, Fut>(what: &str, health: &Health, mut follow: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), SourceError>>,
{
    let mut backoff = Duration::from_millis(500);
    loop {
        let started = std::time::Instant::now();
        let result = follow().await;
        if started.elapsed() >= STABLE {
            backoff = Duration::from_millis(500);
        }
        let err = result.err().unwrap_or_else(|| SourceError::Other {
            what: format!("{what} events stream"),
            detail: "ended; cgroup metrics keep flowing with the names already known".into(),
        });
        health.fail(&err);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(runtime: &'static str, id: &str) -> ContainerMeta {
        ContainerMeta {
            runtime,
            id: id.into(),
            ..Default::default()
        }
    }

    #[test]
    fn each_runtime_replaces_and_removes_only_its_own() {
        let store = MetaStore::default();
        store.upsert(meta("docker", "a"));
        store.upsert(meta("podman", "b"));
        store.replace_runtime(
            "podman",
            HashMap::from([("c".into(), Arc::new(meta("podman", "c")))]),
        );
        let mut ids: Vec<String> = store.snapshot().keys().cloned().collect();
        ids.sort();
        assert_eq!(ids, ["a", "c"]);
        store.remove("podman", "a");
        assert!(store.snapshot().contains_key("a"));
        store.remove("docker", "a");
        assert!(!store.snapshot().contains_key("a"));
    }
}
