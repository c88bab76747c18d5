//! Node collectors: one file per kernel interface, each a [`Collector`] that reads into typed samples.
//! Names follow node_exporter so `--no-collector.filesystem` means what its users expect.

pub mod cgroup;
pub mod cpu;
pub mod diskstats;
pub mod docker;
pub mod filesystem;
pub mod kubelet;
pub mod kubernetes;
pub mod loadavg;
pub mod machine;
pub mod meminfo;
pub mod netdev;
pub mod pressure;
pub mod stat;
pub mod time;
pub mod uname;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cli::Config;
use crate::scrape::{CollectError, Collector};

/// A collector's name and whether it runs without being asked for.
pub struct Info {
    pub name: &'static str,
    pub default_enabled: bool,
}

/// Every collector this build knows, in exposition order.
pub const ALL: &[Info] = &[
    on("cgroup"),
    on("cpu"),
    on("diskstats"),
    on("docker"),
    on("filesystem"),
    on("kubelet"),
    on("kubernetes"),
    on("loadavg"),
    on("machine"),
    on("meminfo"),
    on("netdev"),
    on("pressure"),
    on("stat"),
    on("time"),
    on("uname"),
];

/// A collector enabled by default.
const fn on(name: &'static str) -> Info {
    Info {
        name,
        default_enabled: true,
    }
}

/// Where the host's pseudo-filesystems are (`--path.procfs`, `--path.sysfs`, `--path.rootfs`).
#[derive(Debug, Clone)]
pub struct Paths {
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
    pub fn proc(&self, rel: &str) -> PathBuf {
        self.procfs.join(rel)
    }
    pub fn sys(&self, rel: &str) -> PathBuf {
        self.sysfs.join(rel)
    }
    /// A host path (e.g. a mount point) as seen from here: under --path.rootfs.
    pub fn rootfs_path(&self, host_path: &str) -> PathBuf {
        self.rootfs.join(host_path.trim_start_matches('/'))
    }
    /// A path seen from here (e.g. a mount point read from our own mountinfo) as the host sees it.
    pub fn strip_rootfs(&self, path: &str) -> String {
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
pub fn read(path: &Path) -> Result<String, CollectError> {
    std::fs::read_to_string(path).map_err(|e| CollectError::io(path, e))
}

/// A kernel counter or gauge field: digits with an optional sign and decimal point. Rejects `inf`, `NaN`
/// and exponents, which a kernel file never holds. Numbers beyond u64 are kept as (approximate) floats.
pub fn num(s: &str) -> Option<f64> {
    let t = s.strip_prefix('-').unwrap_or(s);
    if t.is_empty()
        || !t.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        || t.bytes().filter(|&b| b == b'.').count() > 1
    {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Kernel clock ticks per second (USER_HZ) for /proc/stat times.
pub fn user_hz() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 { v as f64 } else { 100.0 }
}

/// Caches of the background sources that collectors read.
#[derive(Default, Clone)]
pub struct Shared {
    /// Docker identity, when the docker source runs.
    pub docker_meta: Option<Arc<crate::source::MetaStore>>,
    /// Docker stats-API figures, in stats mode (cgroups not readable).
    pub docker_stats: Option<Arc<crate::source::docker::StatsCache>>,
    /// This node's pods, when a Kubernetes source runs.
    pub pods: Option<crate::source::kubernetes::PodStore>,
    /// The kubelet's last summary, when the kubelet source runs.
    pub summary: Option<Arc<crate::source::kubelet::SummaryCache>>,
    /// The container, pod and node CPU and memory families come from the summary (cgroups not readable).
    pub usage_from_summary: bool,
}

/// Builds the enabled collectors from the configuration.
pub fn build(config: &Config, shared: &Shared) -> Vec<Arc<dyn Collector>> {
    let f = &config.flags;
    let paths = Paths {
        procfs: f.procfs.clone(),
        sysfs: f.sysfs.clone(),
        rootfs: f.rootfs.clone(),
    };
    let mut out: Vec<Arc<dyn Collector>> = Vec::new();
    let pod_columns = crate::identity::pod_columns(&f.pod_labels);
    let docker_allow = crate::identity::LabelAllowlist {
        keys: f
            .docker_labels
            .iter()
            .filter(|k| !k.is_empty())
            .cloned()
            .collect(),
        regex: f.docker_labels_regex.clone(),
    };
    // With a pod source, the kubernetes collector owns the container state families and reports Docker's
    // containers outside pods too.
    let kube_owns_state = shared.pods.is_some() && config.enabled.contains(&"kubernetes");
    let docker = shared
        .docker_meta
        .as_ref()
        .filter(|_| config.enabled.contains(&"docker"))
        .map(|meta| {
            Arc::new(docker::DockerCollector::new(
                meta.clone(),
                docker_allow.clone(),
            ))
        });
    for name in &config.enabled {
        let allow = crate::identity::LabelAllowlist {
            keys: f
                .docker_labels
                .iter()
                .filter(|k| !k.is_empty())
                .cloned()
                .collect(),
            regex: f.docker_labels_regex.clone(),
        };
        let c: Arc<dyn Collector> = match *name {
            "cgroup" => Arc::new(
                cgroup::CgroupCollector::new(
                    paths.clone(),
                    f.cgroup_include_system,
                    shared.docker_meta.clone(),
                    shared.docker_stats.clone(),
                    allow,
                    shared.pods.clone(),
                    pod_columns.clone(),
                )
                .keep_open(f.cgroup_keep_open),
            ),
            "docker" => match &docker {
                Some(d) if !kube_owns_state => d.clone(),
                _ => continue,
            },
            "kubernetes" => match &shared.pods {
                Some(pods) => Arc::new(kubernetes::KubernetesCollector::new(
                    pods.clone(),
                    pod_columns.clone(),
                    docker.clone(),
                )),
                None => continue,
            },
            "kubelet" => match &shared.summary {
                Some(cache) => Arc::new(kubelet::KubeletCollector::new(
                    cache.clone(),
                    shared.pods.clone(),
                    pod_columns.clone(),
                    shared.usage_from_summary,
                )),
                None => continue,
            },
            "cpu" => Arc::new(cpu::CpuCollector::new(paths.clone())),
            "diskstats" => Arc::new(diskstats::DiskstatsCollector::new(
                paths.clone(),
                f.diskstats_device_exclude.clone(),
            )),
            "filesystem" => Arc::new(filesystem::FilesystemCollector::new(
                paths.clone(),
                f.fs_mount_points_exclude.clone(),
                f.fs_types_exclude.clone(),
                f.fs_mount_timeout,
            )),
            "loadavg" => Arc::new(loadavg::LoadavgCollector::new(paths.clone())),
            "machine" => Arc::new(machine::MachineCollector::new(paths.clone())),
            "meminfo" => Arc::new(meminfo::MeminfoCollector::new(paths.clone())),
            "netdev" => Arc::new(netdev::NetdevCollector::new(
                paths.clone(),
                f.netdev_device_include.clone(),
                f.netdev_device_exclude.clone(),
            )),
            "pressure" => {
                if !paths.proc("pressure").is_dir() {
                    tracing::info!(
                        path = %paths.proc("pressure").display(),
                        "pressure collector disabled: the kernel has no PSI (needs Linux 4.20+ with CONFIG_PSI)"
                    );
                    continue;
                }
                Arc::new(pressure::PressureCollector::new(paths.clone()))
            }
            "stat" => Arc::new(stat::StatCollector::new(paths.clone())),
            "time" => Arc::new(time::TimeCollector::new(paths.clone())),
            "uname" => Arc::new(uname::UnameCollector),
            _ => continue,
        };
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(num("42"), Some(42.0));
        assert_eq!(num("0.5"), Some(0.5));
        assert_eq!(num("-1"), Some(-1.0));
        assert_eq!(num("18446744073709551616"), Some(18446744073709551616.0));
        assert_eq!(num("inf"), None);
        assert_eq!(num("NaN"), None);
        assert_eq!(num("1e5"), None);
        assert_eq!(num(""), None);
        assert_eq!(num("1.2.3"), None);
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
