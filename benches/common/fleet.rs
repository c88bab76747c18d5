//! A fleet of real cgroups for the benchmarks: `n` folders made with mkdir, each with a sleeping process;
//! removed on drop, and leftovers of a killed run removed at start.
//!
//! - cgroup v1 or hybrid: `/sys/fs/cgroup/<hierarchy>/stevedore-bench/docker/<id>` in each v1 hierarchy
//!   (and on a hybrid host in the unified one, as runc makes them: it holds the PSI files).
//! - cgroup v2 (the unified hierarchy alone): `/sys/fs/cgroup/stevedore-bench.slice/docker-<id>.scope`,
//!   the systemd driver's form, with cpu, memory, io and pids enabled for the slice's children.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

const CONTROLLERS: [&str; 5] = ["cpu", "cpuacct", "memory", "blkio", "pids"];
const ROOT: &str = "stevedore-bench";
const V2_SLICE: &str = "stevedore-bench.slice";

/// The files a steady-state scrape reads per v1 cgroup (controller, file). Limits and shares are re-read
/// only every 30 s or more and a process's namespace and start time once, so they are not here; nor is
/// cpu.stat, read only where a CPU quota is set (none is here).
const V1_FILES: &[(&str, &str)] = &[
    ("cpuacct", "cpuacct.usage"),
    ("cpuacct", "cpuacct.stat"),
    ("memory", "memory.usage_in_bytes"),
    ("memory", "memory.stat"),
    ("memory", "memory.max_usage_in_bytes"),
    ("memory", "memory.failcnt"),
    ("memory", "memory.oom_control"),
    ("memory", "memory.kmem.usage_in_bytes"),
    ("blkio", "blkio.throttle.io_service_bytes_recursive"),
    ("blkio", "blkio.throttle.io_serviced_recursive"),
    ("pids", "pids.current"),
    ("pids", "cgroup.procs"),
];

/// On a hybrid host, the PSI files of the same cgroup in the unified hierarchy.
const PSI: &[&str] = &["cpu.pressure", "memory.pressure", "io.pressure"];

/// The files a steady-state scrape reads per v2 cgroup (src/cgroup/v2.rs `read` without the limits,
/// and cgroup.procs for the processes): 14 in one folder.
const V2_FILES: &[&str] = &[
    "cpu.stat",
    "memory.current",
    "memory.stat",
    "memory.swap.current",
    "memory.peak",
    "memory.events",
    "io.stat",
    "pids.current",
    "cpu.pressure",
    "memory.pressure",
    "io.pressure",
    "cgroup.procs",
];

pub struct Fleet {
    pub ids: Vec<String>,
    /// Per container, in the order of `ids`: its folder and the files a steady-state scrape reads there
    /// ([`reads`]), worked out once so the floor spends nothing on paths.
    pub reads: Vec<(PathBuf, Vec<PathBuf>)>,
    sleepers: Vec<Child>,
}

/// Whether this host has the unified hierarchy alone (cgroup v2).
pub fn is_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// `/sys/fs/cgroup/<hierarchy>/<rel>` (v1, hybrid).
pub fn cg(controller: &str, rel: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup").join(controller).join(rel)
}

/// The hierarchies a container's cgroup has: the v1 controllers, and on a hybrid host the unified one too
/// (runc makes the container's cgroup there as well; it holds the PSI files).
fn hierarchies() -> Vec<&'static str> {
    let mut h = CONTROLLERS.to_vec();
    if Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists() {
        h.push("unified");
    }
    h
}

/// The folders of one container's cgroup, one per hierarchy.
pub fn dirs(id: &str) -> Vec<PathBuf> {
    if is_v2() {
        return vec![Path::new("/sys/fs/cgroup").join(format!("{V2_SLICE}/docker-{id}.scope"))];
    }
    hierarchies()
        .into_iter()
        .map(|c| cg(c, &format!("{ROOT}/docker/{id}")))
        .collect()
}

/// The files a steady-state scrape reads for one container, in the order it reads them; cgroup.procs
/// among them.
pub fn reads(id: &str) -> Vec<PathBuf> {
    if is_v2() {
        let dir = &dirs(id)[0];
        return V2_FILES.iter().map(|f| dir.join(f)).collect();
    }
    let mut out: Vec<PathBuf> = V1_FILES
        .iter()
        .map(|(c, f)| cg(c, &format!("{ROOT}/docker/{id}/{f}")))
        .collect();
    if hierarchies().contains(&"unified") {
        out.extend(
            PSI.iter()
                .map(|f| cg("unified", &format!("{ROOT}/docker/{id}/{f}"))),
        );
    }
    out
}

/// The parent folders of the fleet, innermost first.
fn parents() -> Vec<PathBuf> {
    if is_v2() {
        return vec![Path::new("/sys/fs/cgroup").join(V2_SLICE)];
    }
    let mut out: Vec<PathBuf> = hierarchies()
        .into_iter()
        .map(|c| cg(c, &format!("{ROOT}/docker")))
        .collect();
    out.extend(hierarchies().into_iter().map(|c| cg(c, ROOT)));
    out
}

/// The cgroup.procs of a parent's hierarchy root, where a leftover's processes are moved before its
/// removal.
fn root_procs(parent: &Path) -> PathBuf {
    let depth = if is_v2() { 3 } else { 4 }; // /sys/fs/cgroup[/<hierarchy>]
    parent
        .iter()
        .take(depth + 1)
        .collect::<PathBuf>()
        .join("cgroup.procs")
}

impl Fleet {
    pub fn create(n: usize) -> Fleet {
        Fleet::remove_leftovers();
        if is_v2() {
            let slice = &parents()[0];
            std::fs::create_dir_all(slice)
                .unwrap_or_else(|e| panic!("mkdir {}: {e} (run as root)", slice.display()));
            // The controllers the root offers its children, offered on to the containers.
            for c in ["cpu", "memory", "io", "pids"] {
                let _ = std::fs::write(slice.join("cgroup.subtree_control"), format!("+{c}"));
            }
        }
        let mut ids = Vec::with_capacity(n);
        let mut sleepers = Vec::with_capacity(n);
        for i in 0..n {
            let id = format!("{:064x}", 0x5eed_0000_0000u64 + i as u64);
            let mut child = Command::new("sleep").arg("3600").spawn().expect("sleep");
            for dir in dirs(&id) {
                std::fs::create_dir_all(&dir)
                    .unwrap_or_else(|e| panic!("mkdir {}: {e} (run as root)", dir.display()));
                std::fs::write(dir.join("cgroup.procs"), child.id().to_string()).unwrap();
            }
            let _ = child.try_wait();
            ids.push(id);
            sleepers.push(child);
        }
        let reads = ids
            .iter()
            .map(|id| (dirs(id).swap_remove(0), reads(id)))
            .collect();
        Fleet {
            ids,
            reads,
            sleepers,
        }
    }

    /// Removes the cgroups of an earlier run that was killed before it could clean up (their processes
    /// are moved up first, so the folders are empty).
    fn remove_leftovers() {
        for parent in parents() {
            let Ok(entries) = std::fs::read_dir(&parent) else {
                continue;
            };
            for e in entries.flatten().filter(|e| e.path().is_dir()) {
                if let Ok(procs) = std::fs::read_to_string(e.path().join("cgroup.procs")) {
                    for pid in procs.lines() {
                        let _ = std::fs::write(root_procs(&parent), pid);
                    }
                }
                let _ = std::fs::remove_dir(e.path());
            }
            let _ = std::fs::remove_dir(&parent);
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for s in &mut self.sleepers {
            let _ = s.kill();
            let _ = s.wait();
        }
        // The processes are gone, so the cgroups are empty and can be removed (children first).
        for id in &self.ids {
            for dir in dirs(id) {
                let _ = std::fs::remove_dir(dir);
            }
        }
        for p in parents() {
            let _ = std::fs::remove_dir(p);
        }
    }
}
