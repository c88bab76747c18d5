//! Collectors: one file each, each a [`Collector`] that reads one kernel interface or one background
//! source's cache into typed samples, and declares itself (`DECL`: name, default, how it is built).
//! Names follow node_exporter so `--no-collector.filesystem` means what its users expect.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cli::{Flags, Toggle};
use crate::identity::LabelAllowlist;
use crate::scrape::{CollectError, Collector};

/// Declares the collector modules and derives [`ALL`] from their declarations, in this order (the
/// exposition order). A new collector is its own file with a `DECL`, and its name in this list.
macro_rules! collectors {
    ($($m:ident),* $(,)?) => {
        $(pub(crate) mod $m;)*
        /// Every collector this build knows, from each one's own declaration.
        pub(crate) const ALL: &[&Decl] = &[$(&$m::DECL),*];
    };
}

collectors!(
    cgroup, cpu, diskstats, docker, filesystem, kubelet, kubernetes, loadavg, machine, meminfo,
    netdev, pressure, stat, time, uname,
);

/// A collector's declaration, in its own file: its name, whether it runs unless disabled, and how it is
/// built from the configuration.
pub(crate) struct Decl {
    pub(crate) name: &'static str,
    pub(crate) default_enabled: bool,
    pub(crate) build: fn(&Context<'_>) -> Result<Built, String>,
}

/// What building a collector gave.
pub(crate) enum Built {
    Run(Arc<dyn Collector>),
    /// Enabled, but nothing to collect here (e.g. no kubelet configured, no PSI in the kernel); the
    /// reason is logged at start-up.
    Skip(String),
}

/// Everything a collector may be built from.
pub(crate) struct Context<'a> {
    pub(crate) flags: &'a Flags,
    pub(crate) paths: Paths,
    pub(crate) shared: &'a Shared,
    /// The collectors enabled by the flags.
    pub(crate) enabled: &'a [&'static str],
}

impl Context<'_> {
    pub(crate) fn enabled(&self, name: &str) -> bool {
        self.enabled.contains(&name)
    }

    /// `--kubernetes.pod-labels` as label columns.
    pub(crate) fn pod_columns(&self) -> Vec<(String, String)> {
        crate::identity::pod_columns(&self.flags.pod_labels)
    }

    /// `--docker.labels` and `--docker.labels-regex`.
    pub(crate) fn docker_labels(&self) -> LabelAllowlist {
        LabelAllowlist {
            keys: (self.flags.docker_labels.iter())
                .filter(|k| !k.is_empty())
                .cloned()
                .collect(),
            regex: self.flags.docker_labels_regex.clone(),
        }
    }
}

/// The collectors as the flags know them.
pub(crate) fn toggles() -> Vec<Toggle> {
    ALL.iter()
        .map(|d| Toggle {
            name: d.name,
            default_enabled: d.default_enabled,
        })
        .collect()
}

/// A built collector with its name.
pub(crate) type Named = (&'static str, Arc<dyn Collector>);

/// Builds the enabled collectors. A declaration that fails to build stops the start-up with its error.
pub(crate) fn build(cx: &Context<'_>) -> Result<Vec<Named>, String> {
    let mut out = Vec::new();
    for d in ALL.iter().filter(|d| cx.enabled(d.name)) {
        match (d.build)(cx).map_err(|e| format!("collector {}: {e}", d.name))? {
            Built::Run(c) => out.push((d.name, c)),
            Built::Skip(why) => tracing::info!(collector = d.name, "collector not run: {why}"),
        }
    }
    Ok(out)
}

/// Where the host's pseudo-filesystems are (`--path.procfs`, `--path.sysfs`, `--path.rootfs`).
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub procfs: PathBuf,
    pub sysfs: PathBuf,
    pub rootfs: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            procfs: "/proc".into(),
            sysfs: "/sys".into(),
            rootfs: "/".into(),
        }
    }
}

impl Paths {
    pub(crate) fn proc(&self, rel: &str) -> PathBuf {
        self.procfs.join(rel)
    }
    pub(crate) fn sys(&self, rel: &str) -> PathBuf {
        self.sysfs.join(rel)
    }
    /// A host path (e.g. a mount point) as seen from here: under --path.rootfs.
    pub(crate) fn rootfs_path(&self, host_path: &str) -> PathBuf {
        self.rootfs.join(host_path.trim_start_matches('/'))
    }
    /// A path seen from here (e.g. a mount point read from our own mountinfo) as the host sees it.
    pub(crate) fn strip_rootfs(&self, path: &str) -> String {
        let root = self.rootfs.to_string_lossy();
        let root = root.trim_end_matches('/');
        if root.is_empty() {
            return path.to_string();
        }
        match path.strip_prefix(root) {
            Some("") => "/".to_string(),
            Some(rest) if rest.starts_with('/') => rest.to_string(),
            _ => path.to_string(),
        }
    }
}

/// Reads a whole file, with an error that names the path and what to do.
pub(crate) fn read(path: &Path) -> Result<String, CollectError> {
    read_capped(path).map_err(|e| CollectError::io(path, e))
}

pub(crate) use crate::sys::read_capped;

/// Caches of the background sources that collectors read.
#[derive(Default, Clone)]
pub(crate) struct Shared {
    /// Container identity from the runtime sources (Docker, Podman, containerd), when one runs.
    pub runtime_meta: Option<Arc<crate::source::MetaStore>>,
    /// The writable layers' usage, measured in the background, when the runtime sources run.
    pub layers: Option<Arc<crate::layers::LayerCache>>,
    /// Docker stats-API figures, in stats mode (cgroups not readable).
    pub docker_stats: Option<Arc<crate::source::docker::StatsCache>>,
    /// This node's pods, when a Kubernetes source runs.
    pub pods: Option<crate::source::kubernetes::PodStore>,
    /// The kubelet's last summary, when the kubelet source runs.
    pub summary: Option<Arc<crate::source::kubelet::SummaryCache>>,
    /// The container, pod and node CPU and memory families come from the summary (cgroups not readable).
    pub usage_from_summary: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_file_is_refused() {
        let e = read_capped(Path::new("/dev/zero")).unwrap_err();
        assert!(e.to_string().contains("larger than 16 MiB"), "{e}");
        assert!(read(Path::new("/proc/self/status")).is_ok());
    }

    #[test]
    fn rootfs_strip() {
        let p = Paths {
            rootfs: "/host".into(),
            ..Default::default()
        };
        assert_eq!(p.strip_rootfs("/host"), "/");
        assert_eq!(p.strip_rootfs("/host/var"), "/var");
        assert_eq!(p.strip_rootfs("/hostile"), "/hostile");
        assert_eq!(p.rootfs_path("/var"), PathBuf::from("/host/var"));
        let p = Paths::default();
        assert_eq!(p.strip_rootfs("/var"), "/var");
        assert_eq!(p.rootfs_path("/"), PathBuf::from("/"));
    }
}
