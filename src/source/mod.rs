//! Long-lived clients of daemons (Docker today; Kubernetes and the kubelet later). They run in the
//! background, keep caches current, and never run on the scrape path: collectors read their caches.

pub(crate) mod docker;
pub(crate) mod error;
pub(crate) mod kubelet;
pub(crate) mod kubernetes;

use std::collections::HashMap;

pub(crate) use crate::identity::ContainerMeta;
use std::sync::{Arc, RwLock};

/// The containers a runtime source knows, by id. Written by the source's background task, read by
/// collectors (a read clones an `Arc` of the current map, so a scrape never waits on a writer for long).
#[derive(Debug, Default)]
pub(crate) struct MetaStore {
    map: RwLock<Arc<HashMap<String, Arc<ContainerMeta>>>>,
}

impl MetaStore {
    pub(crate) fn snapshot(&self) -> Arc<HashMap<String, Arc<ContainerMeta>>> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn replace_all(&self, all: HashMap<String, Arc<ContainerMeta>>) {
        *self.map.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(all);
    }

    pub(crate) fn upsert(&self, meta: ContainerMeta) {
        let mut guard = self.map.write().unwrap_or_else(|p| p.into_inner());
        let mut next = (**guard).clone();
        next.insert(meta.id.clone(), Arc::new(meta));
        *guard = Arc::new(next);
    }

    pub(crate) fn remove(&self, id: &str) {
        let mut guard = self.map.write().unwrap_or_else(|p| p.into_inner());
        if guard.contains_key(id) {
            let mut next = (**guard).clone();
            next.remove(id);
            *guard = Arc::new(next);
        }
    }
}
