//! A fleet of real cgroups for the benchmarks: `n` folders made with mkdir under
//! `/sys/fs/cgroup/<hierarchy>/stevedore-bench/docker/<id>` in each v1 hierarchy (and on a hybrid host in
//! the unified one, as runc makes them), each with a sleeping process; removed on drop, and leftovers of
//! a killed run removed at start.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

const CONTROLLERS: [&str; 5] = ["cpu", "cpuacct", "memory", "blkio", "pids"];
pub const ROOT: &str = "stevedore-bench";

pub struct Fleet {
    pub ids: Vec<String>,
    sleepers: Vec<Child>,
}

pub fn cg(controller: &str, rel: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup").join(controller).join(rel)
}

/// The hierarchies a container's cgroup has: the v1 controllers, and on a hybrid host the unified one too
/// (runc makes the container's cgroup there as well; it holds the PSI files).
pub fn hierarchies() -> Vec<&'static str> {
    let mut h = CONTROLLERS.to_vec();
    if Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists() {
        h.push("unified");
    }
    h
}

impl Fleet {
    pub fn create(n: usize) -> Fleet {
        Fleet::remove_leftovers();
        let mut ids = Vec::with_capacity(n);
        let mut sleepers = Vec::with_capacity(n);
        for i in 0..n {
            let id = format!("{:064x}", 0x5eed_0000_0000u64 + i as u64);
            let mut child = Command::new("sleep").arg("3600").spawn().expect("sleep");
            for c in hierarchies() {
                let dir = cg(c, &format!("{ROOT}/docker/{id}"));
                std::fs::create_dir_all(&dir).unwrap_or_else(|e| {
                    panic!(
                        "mkdir {}: {e} (run as root on cgroup v1/hybrid)",
                        dir.display()
                    )
                });
                std::fs::write(dir.join("cgroup.procs"), child.id().to_string()).unwrap();
            }
            let _ = child.try_wait();
            ids.push(id);
            sleepers.push(child);
        }
        Fleet { ids, sleepers }
    }
}

impl Fleet {
    /// Removes the cgroups of an earlier run that was killed before it could clean up (their processes
    /// are moved to the parent first, so the folders are empty).
    fn remove_leftovers() {
        for c in hierarchies() {
            let docker = cg(c, &format!("{ROOT}/docker"));
            let Ok(entries) = std::fs::read_dir(&docker) else {
                continue;
            };
            for e in entries.flatten().filter(|e| e.path().is_dir()) {
                if let Ok(procs) = std::fs::read_to_string(e.path().join("cgroup.procs")) {
                    for pid in procs.lines() {
                        let _ = std::fs::write(cg(c, "cgroup.procs"), pid);
                    }
                }
                let _ = std::fs::remove_dir(e.path());
            }
            let _ = std::fs::remove_dir(&docker);
            let _ = std::fs::remove_dir(cg(c, ROOT));
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
            for c in hierarchies() {
                let _ = std::fs::remove_dir(cg(c, &format!("{ROOT}/docker/{id}")));
            }
        }
        for c in hierarchies() {
            let _ = std::fs::remove_dir(cg(c, &format!("{ROOT}/docker")));
            let _ = std::fs::remove_dir(cg(c, ROOT));
        }
    }
}
