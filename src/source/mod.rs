//! Long-lived clients of daemons (Docker, Podman and containerd, the apiserver, the kubelet). They run in the
//! background, keep caches current, and never run on the scrape path: collectors read their caches.

pub(crate) mod containerd;
pub(crate) mod docker;
pub(crate) mod error;
pub(crate) mod kubelet;
pub(crate) mod kubernetes;

use std::collections::HashMap;

pub(crate) use crate::identity::ContainerMeta;
use std::sync::{Arc, RwLock};

/// The containers the runtime sources know, by id. Written by the sources' background tasks (each owns
/// the entries with its `runtime`), read by collectors (a read clones an `Arc` of the current map, so a
/// scrape never waits on a writer for long).
#[derive(Debug, Default)]
pub(crate) struct MetaStore {
    map: RwLock<Arc<HashMap<String, Arc<ContainerMeta>>>>,
}

impl MetaStore {
    pub(crate) fn snapshot(&self) -> Arc<HashMap<String, Arc<ContainerMeta>>> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces what one runtime knows; the other runtimes' entries stay.
    pub(crate) fn replace_runtime(
        &self,
        runtime: &str,
        mut all: HashMap<String, Arc<ContainerMeta>>,
    ) {
        let mut guard = self.map.write().unwrap_or_else(|p| p.into_inner());
        for (id, m) in guard.iter() {
            if m.runtime != runtime {
                all.entry(id.clone()).or_insert_with(|| m.clone());
            }
        }
        *guard = Arc::new(all);
    }

    pub(crate) fn upsert(&self, meta: ContainerMeta) {
        let mut guard = self.map.write().unwrap_or_else(|p| p.into_inner());
        let mut next = (**guard).clone();
        next.insert(meta.id.clone(), Arc::new(meta));
        *guard = Arc::new(next);
    }

    /// Forgets a container of this runtime.
    pub(crate) fn remove(&self, runtime: &str, id: &str) {
        let mut guard = self.map.write().unwrap_or_else(|p| p.into_inner());
        if guard.get(id).is_some_and(|m| m.runtime == runtime) {
            let mut next = (**guard).clone();
            next.remove(id);
            *guard = Arc::new(next);
        }
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
