//! Who a cgroup is: runtime metadata joined to cgroup paths, as the label values every `container_*` series
//! carries (`id`, `name`, `image`, `container`, `pod`, `namespace`), plus runtime labels allowed through
//! `--docker.labels` / `--docker.labels-regex` as `container_label_<sanitized key>`.

use std::collections::BTreeMap;

use regex::Regex;

pub(crate) const POD_NAME: &str = "io.kubernetes.pod.name";
pub(crate) const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub(crate) const POD_UID: &str = "io.kubernetes.pod.uid";
pub(crate) const CONTAINER_NAME: &str = "io.kubernetes.container.name";

/// Which runtime labels become metric labels. Nothing by default: cardinality stays bounded.
#[derive(Debug, Clone, Default)]
pub(crate) struct LabelAllowlist {
    pub keys: Vec<String>,
    pub regex: Option<Regex>,
}

impl LabelAllowlist {
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.regex.is_none()
    }

    pub(crate) fn allows(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k == key) || self.regex.as_ref().is_some_and(|r| r.is_match(key))
    }

    /// The metric label names for the allowed keys present on these containers, and for each name the
    /// runtime key it comes from. Keys are taken in sorted order; when two keys sanitize to the same name
    /// the first (in byte order) keeps it and the other is dropped, so the choice never changes between
    /// scrapes. Listed keys are always present (empty where a container lacks them).
    pub(crate) fn columns<'a>(
        &self,
        metas: impl Iterator<Item = &'a ContainerMeta>,
    ) -> Vec<(String, String)> {
        if self.is_empty() {
            return Vec::new();
        }
        let mut keys: std::collections::BTreeSet<String> = self.keys.iter().cloned().collect();
        if self.regex.is_some() {
            for m in metas {
                keys.extend(m.labels.keys().filter(|k| self.allows(k)).cloned());
            }
        }
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        for key in keys {
            out.entry(format!("container_label_{}", sanitize(&key)))
                .or_insert(key);
        }
        out.into_iter().collect()
    }
}

/// The metric label columns for `--kubernetes.pod-labels`: (`pod_label_<sanitized key>`, key). When two
/// keys sanitize to the same name the first in byte order keeps it.
pub(crate) fn pod_columns(keys: &[String]) -> Vec<(String, String)> {
    let mut sorted: Vec<&String> = keys.iter().filter(|k| !k.is_empty()).collect();
    sorted.sort();
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for key in sorted {
        out.entry(format!("pod_label_{}", sanitize(key)))
            .or_insert_with(|| key.clone());
    }
    out.into_iter().collect()
}

/// A label name from user data: `[a-zA-Z0-9_]`, everything else `_`.
pub(crate) fn sanitize(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// What a runtime knows about one container.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ContainerMeta {
    /// The runtime source that reported it (`docker`, `podman`).
    pub runtime: &'static str,
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
    /// The writable layer's directory on the host (overlay upper directory), where the runtime tells.
    pub layer: Option<String>,
}

impl ContainerMeta {
    pub(crate) fn label(&self, key: &str) -> &str {
        self.labels.get(key).map(String::as_str).unwrap_or("")
    }

    /// A Kubernetes pod's sandbox (the pause container), by any runtime's marks: containerd's CRI
    /// (`io.cri-containerd.kind=sandbox`), cri-dockerd and dockershim (`io.kubernetes.docker.type=podsandbox`,
    /// container name `POD`).
    pub(crate) fn is_sandbox(&self) -> bool {
        self.label("io.cri-containerd.kind") == "sandbox"
            || self.label("io.kubernetes.docker.type") == "podsandbox"
            || self.label(CONTAINER_NAME) == "POD"
    }
}

/// The label values of one series' identity.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Identity {
    pub id: String,
    pub name: String,
    pub image: String,
    pub container: String,
    pub pod: String,
    pub namespace: String,
    /// Values of the allowlisted label columns, in column order.
    pub extra: Vec<String>,
}

impl Identity {
    pub(crate) fn from_meta(
        id: String,
        meta: &ContainerMeta,
        columns: &[(String, String)],
    ) -> Identity {
        // A sandbox is served as the kubelet on containerd serves it, whatever the runtime: no container
        // name, the pause image, its id as `name`.
        let sandbox = meta.is_sandbox();
        Identity {
            name: if sandbox {
                meta.id.clone()
            } else {
                meta.name.clone()
            },
            image: meta.image.clone(),
            container: if sandbox {
                String::new()
            } else {
                meta.label(CONTAINER_NAME).to_string()
            },
            id,
            pod: meta.label(POD_NAME).to_string(),
            namespace: meta.label(POD_NAMESPACE).to_string(),
            extra: columns
                .iter()
                .map(|(_, key)| meta.label(key).to_string())
                .collect(),
        }
    }

    /// The identity of a cgroup nothing is known about: its path, and empty strings.
    pub(crate) fn bare(id: String, columns: usize) -> Identity {
        Identity {
            id,
            extra: vec![String::new(); columns],
            ..Default::default()
        }
    }

    /// The label pairs, `columns` naming the extra values.
    pub(crate) fn labels<'a>(&'a self, columns: &'a [(String, String)]) -> Vec<(&'a str, &'a str)> {
        let mut v = Vec::with_capacity(7 + columns.len());
        v.extend([
            ("id", self.id.as_str()),
            ("name", self.name.as_str()),
            ("image", self.image.as_str()),
            ("container", self.container.as_str()),
            ("pod", self.pod.as_str()),
            ("namespace", self.namespace.as_str()),
        ]);
        for ((name, _), value) in columns.iter().zip(&self.extra) {
            v.push((name.as_str(), value.as_str()));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_sanitized_and_collisions_deterministic() {
        let mut a = ContainerMeta::default();
        a.labels.insert("com.example/team".into(), "x".into());
        a.labels.insert("com.example.team".into(), "y".into());
        a.labels.insert("other".into(), "z".into());
        let allow = LabelAllowlist {
            keys: vec![],
            regex: Some(Regex::new("^com\\.example").unwrap()),
        };
        let cols = allow.columns([&a].into_iter());
        // Both keys sanitize to the same name: the first in byte order ('.' < '/') wins.
        assert_eq!(
            cols,
            vec![(
                "container_label_com_example_team".to_string(),
                "com.example.team".to_string()
            )]
        );
        let id = Identity::from_meta("/docker/x".into(), &a, &cols);
        assert_eq!(id.extra, vec!["y".to_string()]);
        let allow = LabelAllowlist {
            keys: vec!["missing".into()],
            regex: None,
        };
        let cols = allow.columns([&a].into_iter());
        assert_eq!(
            Identity::from_meta("/".into(), &a, &cols).extra,
            vec![String::new()]
        );
    }
}
