//! Disk usage of each running container's writable layer (the overlay upper directory Docker and Podman
//! report, containerd's active snapshot), measured in the background, never on the scrape path: one
//! thread walks the layers one after another, at most `--collector.filesystem.layers-entries-per-second`
//! directory entries a second, every `--collector.filesystem.layers-interval`; a container started in
//! between is measured within a second. The `filesystem` collector serves the cache as cAdvisor's
//! per-container `container_fs_*`.
//!
//! A layer is measured as `du -sx` does: allocated blocks (`st_blocks` × 512) of every inode once (hard
//! links counted once), without following symlinks or crossing into another filesystem. Incremental: a
//! directory whose mtime and ctime are unchanged since the last pass is not read again (its entries are
//! known); its entries are still statted, since a file that grows changes only itself.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) use crate::sample::node::LayerUsage;
use crate::source::MetaStore;

/// The latest figures by container id. Written by the walker, read by the `filesystem` collector.
pub(crate) type LayerCache = crate::source::SnapshotMap<LayerUsage>;

/// Settings of the walker.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub interval: Duration,
    /// Directory entries visited per second, at most (the I/O budget).
    pub entries_per_second: u32,
    /// The host's root (`--path.rootfs`): layer paths are the host's.
    pub rootfs: PathBuf,
    /// `--path.procfs`, for device names (/proc/diskstats).
    pub procfs: PathBuf,
}

/// Spends the I/O budget: after `rate` entries within a second, waits for the second to end.
pub(crate) struct Budget {
    rate: u32,
    used: u32,
    window: Instant,
    /// Entries visited in all, for the pass's log line and the benchmark.
    pub total: u64,
}

impl Budget {
    pub(crate) fn new(rate: u32) -> Budget {
        Budget {
            rate: rate.max(1),
            used: 0,
            window: Instant::now(),
            total: 0,
        }
    }

    fn spend(&mut self) {
        self.used += 1;
        self.total += 1;
        if self.used >= self.rate {
            let elapsed = self.window.elapsed();
            if elapsed < Duration::from_secs(1) {
                std::thread::sleep(Duration::from_secs(1) - elapsed);
            }
            self.window = Instant::now();
            self.used = 0;
        }
    }
}

/// What a directory held at the last pass: its mtime and ctime, and its entries' names.
#[derive(Debug, Clone)]
struct DirState {
    stamp: (i64, i64, i64, i64),
    entries: Vec<std::ffi::OsString>,
}

/// The directories seen at the last pass, by path, for one layer.
#[derive(Debug, Default)]
pub(crate) struct Known {
    dirs: HashMap<PathBuf, DirState>,
}

/// What [`du`] found: bytes allocated, inodes, and the device (`st_dev`) of the walked filesystem.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Usage {
    pub bytes: u64,
    pub inodes: u64,
    pub dev: u64,
}

/// `du -sx` of `root`. `known` is updated with what was read; directories it holds unchanged are not read
/// again.
pub(crate) fn du(root: &Path, budget: &mut Budget, known: &mut Known) -> std::io::Result<Usage> {
    let top = std::fs::symlink_metadata(root)?;
    let dev = top.dev();
    let mut seen_links: HashSet<u64> = HashSet::new();
    let (mut bytes, mut inodes) = (top.blocks() * 512, 1u64);
    let mut next: HashMap<PathBuf, DirState> = HashMap::new();
    let mut stack = vec![(root.to_path_buf(), top)];
    while let Some((dir, meta)) = stack.pop() {
        let stamp = (
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec(),
        );
        let entries = match known.dirs.remove(&dir) {
            Some(s) if s.stamp == stamp => s.entries,
            _ => match std::fs::read_dir(&dir) {
                Ok(rd) => rd.flatten().map(|e| e.file_name()).collect(),
                Err(_) => continue,
            },
        };
        for name in &entries {
            budget.spend();
            let path = dir.join(name);
            let Ok(m) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if m.dev() != dev || (m.nlink() > 1 && !m.is_dir() && !seen_links.insert(m.ino())) {
                continue;
            }
            bytes += m.blocks() * 512;
            inodes += 1;
            if m.is_dir() {
                stack.push((path, m));
            }
        }
        next.insert(dir, DirState { stamp, entries });
    }
    known.dirs = next;
    Ok(Usage { bytes, inodes, dev })
}

/// The states in which a container has a cgroup, so its layer is reported.
fn is_live(state: &str) -> bool {
    matches!(state, "running" | "paused" | "restarting")
}

/// The host path of a layer under `rootfs`.
fn on_host(rootfs: &Path, layer: &str) -> PathBuf {
    rootfs.join(layer.trim_start_matches('/'))
}

/// One pass over every live container's layer, or with `only_new` over those not measured yet.
/// Returns (layers measured, entries visited).
pub(crate) fn pass(
    config: &Config,
    store: &MetaStore,
    cache: &LayerCache,
    known: &mut HashMap<String, Known>,
    budget: &mut Budget,
    only_new: bool,
) -> (usize, u64) {
    let metas = store.snapshot();
    let live: Vec<(&String, &str)> = (metas.iter())
        .filter(|(_, m)| is_live(&m.state))
        .filter_map(|(id, m)| Some((id, m.layer.as_deref()?)))
        .collect();
    let measured_before = cache.snapshot();
    let start = budget.total;
    let mut fresh: HashMap<String, Arc<LayerUsage>> = HashMap::new();
    // Most layers share one filesystem: its name and statvfs are looked up once per pass.
    let mut names = None;
    let mut filesystems: HashMap<u64, (String, Option<crate::sample::node::FsUsage>)> =
        HashMap::new();
    for (id, layer) in &live {
        if only_new && measured_before.contains_key(*id) {
            continue;
        }
        let path = on_host(&config.rootfs, layer);
        let k = known.entry(id.to_string()).or_default();
        let Ok(u) = du(&path, budget, k) else {
            continue;
        };
        let (device, fs) = filesystems.entry(u.dev).or_insert_with(|| {
            let names = names.get_or_insert_with(|| {
                crate::sys::read_capped(&config.procfs.join("diskstats"))
                    .map(|t| crate::sys::block_device_names(&t))
                    .unwrap_or_default()
            });
            (
                crate::sys::dev_label(names, u.dev),
                crate::sys::statvfs(&path).ok(),
            )
        });
        let usage = LayerUsage {
            bytes: u.bytes as f64,
            inodes: u.inodes as f64,
            device: device.clone(),
            fs: *fs,
        };
        fresh.insert(id.to_string(), Arc::new(usage));
    }
    let measured = fresh.len();
    let keep: HashSet<String> = live.iter().map(|(id, _)| id.to_string()).collect();
    // One swap per pass: the new figures in, the containers no longer live out.
    cache.update(|map| {
        let before = map.len();
        map.retain(|id, _| keep.contains(id));
        let changed = map.len() != before || !fresh.is_empty();
        map.extend(fresh);
        changed
    });
    known.retain(|id, _| keep.contains(id));
    (measured, budget.total - start)
}

/// Starts the walker thread.
pub(crate) fn spawn(config: Config, store: Arc<MetaStore>, cache: Arc<LayerCache>) {
    let spawned = std::thread::Builder::new()
        .name("layer-usage".into())
        .spawn(move || {
            let mut known = HashMap::new();
            let mut budget = Budget::new(config.entries_per_second);
            let mut last_full: Option<Instant> = None;
            loop {
                let began = Instant::now();
                let full = last_full.is_none_or(|t| t.elapsed() >= config.interval);
                let (layers, entries) =
                    pass(&config, &store, &cache, &mut known, &mut budget, !full);
                if full {
                    last_full = Some(began);
                    tracing::debug!(
                        layers,
                        entries,
                        seconds = began.elapsed().as_secs_f64(),
                        "writable layers measured"
                    );
                }
                // Between full passes, containers started since are measured within a second.
                std::thread::sleep(Duration::from_secs(1).min(config.interval));
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the layer-usage thread: no per-container container_fs_* series");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn du_counts_blocks_and_inodes_once_and_rereads_only_changed_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("a")).unwrap();
        std::fs::write(root.join("a/f"), vec![1u8; 100_000]).unwrap();
        std::fs::hard_link(root.join("a/f"), root.join("g")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("l")).unwrap();
        let blocks = |p: &str| std::fs::symlink_metadata(root.join(p)).unwrap().blocks() * 512;
        let want = blocks("") + blocks("a") + blocks("a/f") + blocks("l");
        let mut known = Known::default();
        let mut budget = Budget::new(1_000_000);
        // root, a, f (also g: one inode), l.
        assert_eq!(
            du(root, &mut budget, &mut known)
                .map(|u| (u.bytes, u.inodes))
                .unwrap(),
            (want, 4)
        );
        assert_eq!(budget.total, 4);
        // A file grows in an unchanged directory: seen without reading the directory again.
        std::fs::OpenOptions::new()
            .append(true)
            .open(root.join("a/f"))
            .unwrap()
            .write_all(&[2u8; 200_000])
            .unwrap();
        let want = blocks("") + blocks("a") + blocks("a/f") + blocks("l");
        assert_eq!(
            du(root, &mut budget, &mut known)
                .map(|u| (u.bytes, u.inodes))
                .unwrap(),
            (want, 4)
        );
        // A new file changes its directory, which is read again.
        std::fs::write(root.join("a/h"), b"x").unwrap();
        let inodes = du(root, &mut budget, &mut known).unwrap().inodes;
        assert_eq!(inodes, 5);
    }

    use std::io::Write;

    #[test]
    fn budget_waits_out_the_second() {
        let mut b = Budget::new(100);
        let t = Instant::now();
        for _ in 0..150 {
            b.spend();
        }
        // 150 entries at 100 a second: the first second is waited out.
        assert!(
            t.elapsed() >= Duration::from_millis(990),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(b.total, 150);
    }
}
