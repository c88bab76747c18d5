//! cgroup layout detection (v1, hybrid, v2) from the tree under `--path.sysfs` alone, discovery of container,
//! pod and root cgroups, and the v1 / v2 readers that turn a cgroup's files into typed [`CgroupStats`].
//! Nothing here talks to a container runtime: identity comes from the paths.

pub(crate) mod classify;
pub(crate) mod files;
pub(crate) mod hugetlb;
pub(crate) mod v1;
pub(crate) mod v2;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub(crate) use classify::{Kind, classify};
pub(crate) use files::*;

use crate::sample::container::{CgroupStats, HugetlbStats, SpecStats};

/// Controllers Stevedore reads on v1.
pub(crate) const V1_CONTROLLERS: [&str; 6] =
    ["cpu", "cpuacct", "memory", "blkio", "pids", "hugetlb"];

/// How cgroups are mounted, as seen in `<sysfs>/fs/cgroup`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Layout {
    /// One hierarchy per controller (or combined, e.g. `cpu,cpuacct`). Hybrid: a controller-less v2
    /// hierarchy is mounted beside them at `unified/`; it still has each cgroup's PSI files.
    V1 {
        controllers: BTreeMap<String, PathBuf>,
        unified: Option<PathBuf>,
    },
    /// The unified hierarchy.
    V2 { root: PathBuf },
}

impl Layout {
    /// Detects the layout below `cgroup_root` (normally `<sysfs>/fs/cgroup`), from the files alone.
    pub(crate) fn detect(cgroup_root: &Path) -> Result<Layout, String> {
        if cgroup_root.join("cgroup.controllers").is_file() {
            return Ok(Layout::V2 {
                root: cgroup_root.to_path_buf(),
            });
        }
        let entries = std::fs::read_dir(cgroup_root).map_err(|e| {
            format!(
                "cannot read {}: {e} (mount the host's /sys and set --path.sysfs, e.g. --path.sysfs=/host/sys)",
                cgroup_root.display()
            )
        })?;
        let mut controllers = BTreeMap::new();
        let mut names: Vec<(String, PathBuf)> = entries
            .flatten()
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .collect();
        // Real folders first, so `cpu,cpuacct` wins over the `cpu` and `cpuacct` links that point at it.
        names.sort_by_key(|(_, p)| p.is_symlink());
        for (name, path) in names {
            if !path.is_dir() {
                continue;
            }
            for c in name.split(',') {
                if V1_CONTROLLERS.contains(&c) {
                    controllers
                        .entry(c.to_string())
                        .or_insert_with(|| path.clone());
                }
            }
        }
        if controllers.is_empty() && has_v2_below(cgroup_root, 4) {
            // A unified tree whose root files are not there (a tree copied from a host, a cgroup namespace):
            // the cgroups below still are.
            return Ok(Layout::V2 {
                root: cgroup_root.to_path_buf(),
            });
        }
        if controllers.is_empty() {
            return Err(format!(
                "no cgroup hierarchy found under {} (neither cgroup.controllers for v2 nor cpu/cpuacct/memory \
                 folders for v1); set --path.sysfs to the host's /sys",
                cgroup_root.display()
            ));
        }
        let unified = cgroup_root.join("unified");
        let unified = unified
            .join("cgroup.controllers")
            .is_file()
            .then_some(unified);
        Ok(Layout::V1 {
            controllers,
            unified,
        })
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Layout::V1 { unified: None, .. } => "v1",
            Layout::V1 {
                unified: Some(_), ..
            } => "hybrid",
            Layout::V2 { .. } => "v2",
        }
    }

    /// The hierarchy that is walked to find cgroups.
    fn walk_root(&self) -> Option<&Path> {
        match self {
            Layout::V2 { root } => Some(root),
            Layout::V1 { controllers, .. } => ["memory", "cpuacct", "cpu", "pids", "blkio"]
                .iter()
                .find_map(|c| controllers.get(*c))
                .map(PathBuf::as_path),
        }
    }

    /// Reads one cgroup (`rel` relative to the hierarchy roots, `/` for the root), opening and closing
    /// each file.
    #[cfg(test)]
    pub(crate) fn read(&self, rel: &str, is_root: bool, buf: &mut Vec<u8>) -> CgroupStats {
        self.read_with_spec(rel, is_root, None, &mut Files::plain(buf))
    }

    /// Reads one cgroup through `files`; with `spec` (the cgroup's limits, read recently) the limit
    /// files are skipped.
    pub(crate) fn read_with_spec(
        &self,
        rel: &str,
        is_root: bool,
        spec: Option<&SpecStats>,
        files: &mut Files,
    ) -> CgroupStats {
        match self {
            Layout::V1 {
                controllers,
                unified,
            } => {
                let mut s = v1::read(controllers, rel, spec, files);
                if let Some(u) = unified {
                    s.pressure = v2::read_pressure(&join(u, rel), files);
                }
                s
            }
            Layout::V2 { root } => v2::read(&join(root, rel), is_root, spec, files),
        }
    }

    /// Whether cgroups here can have the hugetlb controller (v2, or a v1 hugetlb hierarchy).
    pub(crate) fn has_hugetlb(&self) -> bool {
        match self {
            Layout::V1 { controllers, .. } => controllers.contains_key("hugetlb"),
            Layout::V2 { .. } => true,
        }
    }

    /// A cgroup's huge pages of each size in `sizes` (the host's pools, [`hugetlb::pool_sizes`]), where it
    /// has the hugetlb controller.
    pub(crate) fn hugetlb(
        &self,
        rel: &str,
        sizes: &[String],
        files: &mut Files,
    ) -> Vec<HugetlbStats> {
        if sizes.is_empty() {
            return Vec::new();
        }
        match self {
            Layout::V1 { controllers, .. } => controllers
                .get("hugetlb")
                .map(|r| hugetlb::read_v1(&join(r, rel), sizes, files))
                .unwrap_or_default(),
            Layout::V2 { root } => hugetlb::read_v2(&join(root, rel), sizes, files),
        }
    }

    /// The pids in a cgroup and the cgroups below it (cgroup.procs, as cAdvisor's GetAllPids), for
    /// process, fd and network figures: a container that runs its own cgroups (systemd inside, a
    /// delegated subtree) keeps its processes in children, and on v2 none in itself. Its own come first.
    pub(crate) fn procs(&self, rel: &str, files: &mut Files) -> Vec<u32> {
        let dir = match self {
            Layout::V2 { root } => join(root, rel),
            Layout::V1 { controllers, .. } => match ["pids", "memory", "cpuacct", "cpu"]
                .iter()
                .find_map(|c| controllers.get(*c))
            {
                Some(r) => join(r, rel),
                None => return Vec::new(),
            },
        };
        let mut pids = Vec::new();
        let mut dirs = vec![(dir, 0)];
        let mut seen = 0;
        while let Some((dir, depth)) = dirs.pop() {
            if let Some(text) = files.text(&dir, "cgroup.procs") {
                pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
            }
            if depth < NESTED_DEPTH {
                for child in child_dirs(&dir) {
                    seen += 1;
                    if seen > NESTED_CGROUPS {
                        return pids;
                    }
                    dirs.push((child, depth + 1));
                }
            }
        }
        pids
    }
}

/// How deep and how many nested cgroups below a container are listed for its processes.
const NESTED_DEPTH: usize = 8;
const NESTED_CGROUPS: usize = 256;

/// The cgroup folders directly below `dir`, sorted (so the order of pids is stable).
fn child_dirs(dir: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    // A folder's link count is 2 + its subfolders (kernfs counts as any Unix directory does), so the
    // usual leaf costs one stat, not an open and a listing of its ~20-60 files (25 ms a scrape at 1000
    // containers). A file system that does not count (btrfs: 1) is listed.
    if std::fs::metadata(dir).is_ok_and(|m| m.nlink() == 2) {
        return Vec::new();
    }
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Whether some folder within `depth` levels below `dir` holds `cgroup.controllers`.
fn has_v2_below(dir: &Path, depth: usize) -> bool {
    if dir.join("cgroup.controllers").is_file() {
        return true;
    }
    depth > 0
        && std::fs::read_dir(dir).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                e.file_type().is_ok_and(|t| t.is_dir()) && has_v2_below(&e.path(), depth - 1)
            })
        })
}

/// `root` joined with a cgroup path such as `/docker/abc` (`/` is the root itself).
pub(crate) fn join(root: &Path, rel: &str) -> PathBuf {
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

/// One cgroup that will be reported.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Found {
    /// Path relative to the hierarchy root: the `id` label (`/` for the root cgroup).
    pub path: String,
    pub kind: Kind,
    /// Inode of the cgroup's folder in the walked hierarchy (0 for the root): a cgroup removed and made
    /// again under the same path (a restarted container) has a new one.
    pub ino: u64,
}

/// Walks the hierarchy and returns the root, pod and container cgroups (and, with `include_system`,
/// every other cgroup). Container cgroups are not descended into: what a container makes inside its own
/// cgroup is its business. The walk never follows links and stops at depth 16. `known` names containers
/// whose path does not tell (plain containerd's `/<namespace>/<id>`): path → id, from containerd's
/// identity cache.
pub(crate) fn discover(
    layout: &Layout,
    include_system: bool,
    known: &std::collections::HashMap<String, String>,
) -> Result<Vec<Found>, String> {
    let root = layout.walk_root().ok_or("no hierarchy to walk")?;
    let mut out = vec![Found {
        path: "/".to_string(),
        kind: Kind::Root,
        ino: 0,
    }];
    let mut stack: Vec<(PathBuf, String, usize)> = vec![(root.to_path_buf(), String::new(), 0)];
    while let Some((dir, rel, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if !ft.is_dir() {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let child = format!("{rel}/{name}");
            let kind = match classify(&child) {
                Kind::System if known.contains_key(&child) => Kind::Container {
                    runtime: classify::Runtime::Containerd,
                    id: known[&child].clone(),
                    pod_uid: None,
                },
                k => k,
            };
            let descend = !matches!(kind, Kind::Container { .. }) && depth < 16;
            let ino = std::os::unix::fs::DirEntryExt::ino(&e);
            match &kind {
                Kind::Container { .. } | Kind::Pod { .. } => out.push(Found {
                    path: child.clone(),
                    kind,
                    ino,
                }),
                Kind::System if include_system => out.push(Found {
                    path: child.clone(),
                    kind,
                    ino,
                }),
                _ => {}
            }
            if descend {
                stack.push((e.path(), child, depth + 1));
            }
        }
    }
    out[1..].sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}
