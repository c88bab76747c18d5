//! `filesystem`: size, free space and inodes of mounted filesystems, from mountinfo and statvfs(3).
//!
//! A mount whose statvfs does not answer within `--collector.filesystem.mount-timeout` (a dead NFS server,
//! say) is reported with `node_filesystem_device_error` 1 and is not asked again until the stuck call
//! returns, so a hung mount never hangs the scrape and never piles up threads.

use crate::sample::node::{FilesystemSample, FsStat, FsUsage, LayerRow, Mount};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use regex::Regex;

use super::{Built, Context, Decl, Paths, read};
use crate::expose::Exposable;
use crate::scrape::{CollectError, Collector};

pub(crate) const DECL: Decl = Decl {
    name: "filesystem",
    default_enabled: true,
    build,
};

fn build(cx: &Context<'_>) -> Result<Built, String> {
    let mut c = FilesystemCollector::new(
        cx.paths.clone(),
        cx.flags.fs_mount_points_exclude.clone(),
        cx.flags.fs_types_exclude.clone(),
        cx.flags.fs_mount_timeout,
    );
    if let (Some(cache), Some(meta)) = (&cx.shared.layers, &cx.shared.runtime_meta) {
        c.layers = Some(Layers {
            cache: cache.clone(),
            meta: meta.clone(),
            allow: cx.docker_labels(),
        });
    }
    if let (Some(summary), Some(pods)) = (&cx.shared.summary, &cx.shared.pods) {
        c.summary = Some((summary.clone(), pods.clone()));
    }
    Ok(Built::Run(Arc::new(c)))
}

/// The device of the runtimes' data root on the host (containerd's, CRI-O's, Docker's: the first that
/// exists), as cAdvisor labels it: the summary does not say where a container's rootfs lives.
fn runtime_device(paths: &Paths) -> String {
    use std::os::unix::fs::MetadataExt;
    ["var/lib/containerd", "var/lib/containers/storage", "var/lib/docker"]
        .iter()
        .find_map(|d| std::fs::metadata(paths.rootfs.join(d)).ok())
        .map(|m| {
            let names = super::read(&paths.proc("diskstats"))
                .map(|t| crate::sys::block_device_names(&t))
                .unwrap_or_default();
            crate::sys::dev_label(&names, m.dev())
        })
        .unwrap_or_default()
}

/// The writable layers the kubelet's summary reports (each container's `rootfs`), for the containers the
/// walker does not measure (CRI-O, or no runtime source): labelled as the kubelet's cAdvisor labels a
/// container, `id` the cgroupfs-form path `<pod cgroup>/<container id>` and `name` the id.
fn summary_rows(
    summary: &crate::source::kubelet::SummaryCache,
    pods: &crate::source::kubernetes::PodStore,
    measured: &HashSet<String>,
    columns: usize,
    device: &str,
) -> Vec<LayerRow> {
    use crate::identity::Identity;
    use crate::source::kubelet::Latest;
    let Latest::Summary(summary) = summary.get() else {
        return Vec::new();
    };
    let index = crate::source::kubernetes::PodIndex::from_store(pods);
    let mut rows = Vec::new();
    for p in &summary.pods {
        let Some(pod) = index.pod(&p.pod_ref.uid) else { continue };
        let Some(parent) = pod.cgroup_id() else { continue };
        for c in &p.containers {
            let Some(fs) = &c.rootfs else { continue };
            let Some(info) = pod.containers.iter().find(|i| i.name == c.name) else { continue };
            let Some(cid) = &info.id else { continue };
            if measured.contains(cid) {
                continue;
            }
            let id = format!("{parent}/{cid}");
            let usage = crate::sample::node::LayerUsage {
                bytes: fs.used_bytes.unwrap_or(f64::NAN),
                inodes: fs.inodes_used.unwrap_or(f64::NAN),
                device: device.to_string(),
                fs: fs.capacity_bytes.map(|size| FsUsage {
                    size,
                    free: fs.available_bytes.unwrap_or(f64::NAN),
                    avail: fs.available_bytes.unwrap_or(f64::NAN),
                    files: fs.inodes.unwrap_or(f64::NAN),
                    files_free: fs.inodes_free.unwrap_or(f64::NAN),
                    read_only: false,
                }),
            };
            let mut identity = Identity::bare(id, columns);
            identity.name = cid.clone();
            identity.image = info.image.clone();
            identity.container = info.name.clone();
            identity.pod = pod.name.clone();
            identity.namespace = pod.namespace.clone();
            rows.push(LayerRow {
                identity,
                usage: Arc::new(usage),
            });
        }
    }
    rows
}

/// The running containers' writable layers: the background walker's cache, and who each container is.
struct Layers {
    cache: Arc<crate::layers::LayerCache>,
    meta: Arc<crate::source::MetaStore>,
    allow: crate::identity::LabelAllowlist,
}

impl Layers {
    /// The measured layers of the containers the runtimes still know, with their identity (as the
    /// `docker` collector's state series label them); and those containers' ids.
    fn rows(&self) -> (Vec<LayerRow>, Vec<(String, String)>, HashSet<String>) {
        let metas = self.meta.snapshot();
        let columns = self.allow.columns(metas.values().map(|m| &**m));
        let mut ids = HashSet::new();
        let rows: Vec<LayerRow> = (self.cache.snapshot().iter())
            .filter_map(|(id, usage)| {
                let meta = metas.get(id)?;
                ids.insert(id.clone());
                let path = (meta.cgroup_path.clone()).unwrap_or_else(|| format!("/docker/{id}"));
                Some(LayerRow {
                    identity: crate::identity::Identity::from_meta(path, meta, &columns),
                    usage: usage.clone(),
                })
            })
            .collect();
        (rows, columns, ids)
    }
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo: `id parent maj:min root mountpoint options [optional...] - fstype source superopts`.
pub(crate) fn parse_mountinfo(text: &str) -> Result<Vec<Mount>, String> {
    let mut mounts = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(' ').collect();
        let sep = fields
            .iter()
            .position(|f| *f == "-")
            .ok_or_else(|| format!("no ' - ' separator in line {line:?}"))?;
        if sep < 6 || fields.len() < sep + 3 {
            return Err(format!("truncated line {line:?}"));
        }
        let options = fields[5];
        mounts.push(Mount {
            mountpoint: unescape(fields[4]),
            read_only: options.split(',').any(|o| o == "ro"),
            fstype: unescape(fields[sep + 1]),
            device: unescape(fields[sep + 2]),
        });
    }
    crate::parse::first_of_each(&mut mounts, |m| {
        (m.device.clone(), m.mountpoint.clone(), m.fstype.clone())
    });
    Ok(mounts)
}

pub(crate) use crate::sys::statvfs;

pub(crate) struct FilesystemCollector {
    paths: Paths,
    mount_points_exclude: Regex,
    fs_types_exclude: Regex,
    timeout: Duration,
    /// Mount points whose statvfs call is running right now; one still there at the next scrape is stuck.
    stuck: Arc<Mutex<HashSet<String>>>,
    /// The statvfs worker thread (kept between scrapes, replaced when it gets stuck on a mount).
    worker: Mutex<Option<mpsc::Sender<Job>>>,
    layers: Option<Layers>,
    /// The kubelet's summary and this node's pods: the layers of containers no runtime source measures.
    summary: Option<(
        Arc<crate::source::kubelet::SummaryCache>,
        crate::source::kubernetes::PodStore,
    )>,
    /// The device of the runtimes' data root, looked up once (at the first scrape that needs it).
    runtime_device: std::sync::OnceLock<String>,
}

/// One statvfs request for the worker thread.
struct Job {
    index: usize,
    target: PathBuf,
    mountpoint: String,
    reply: mpsc::Sender<(usize, Option<FsUsage>)>,
}

/// A thread that runs statvfs calls one after another. It ends when its sender is dropped; a worker stuck
/// in a hung statvfs is abandoned (its sender dropped) and ends by itself once the call returns.
fn spawn_worker(in_flight: Arc<Mutex<HashSet<String>>>) -> Option<mpsc::Sender<Job>> {
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("statvfs".into())
        .spawn(move || {
            for job in rx {
                in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(job.mountpoint.clone());
                let usage = match statvfs(&job.target) {
                    Ok(u) => Some(u),
                    Err(e) => {
                        tracing::debug!(mountpoint = %job.mountpoint, error = %e, "statvfs failed");
                        None
                    }
                };
                in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&job.mountpoint);
                let _ = job.reply.send((job.index, usage));
            }
        })
        .ok()?;
    Some(tx)
}

impl FilesystemCollector {
    pub(crate) fn new(
        paths: Paths,
        mount_points_exclude: Regex,
        fs_types_exclude: Regex,
        timeout: Duration,
    ) -> Self {
        FilesystemCollector {
            paths,
            mount_points_exclude,
            fs_types_exclude,
            timeout,
            stuck: Arc::new(Mutex::new(HashSet::new())),
            worker: Mutex::new(None),
            layers: None,
            summary: None,
            runtime_device: std::sync::OnceLock::new(),
        }
    }

    /// The mounts to report: the host's (pid 1's) mount table, falling back to our own.
    fn mounts(&self) -> Result<Vec<Mount>, CollectError> {
        let primary = self.paths.proc("1/mountinfo");
        let (path, text) = match read(&primary) {
            Ok(t) => (primary, t),
            Err(_) => {
                let fallback = self.paths.proc("self/mountinfo");
                let t = read(&fallback)?;
                (fallback, t)
            }
        };
        let mut mounts = parse_mountinfo(&text).map_err(|e| CollectError::parse(&path, e))?;
        for m in &mut mounts {
            m.mountpoint = self.paths.strip_rootfs(&m.mountpoint);
        }
        mounts.retain(|m| {
            !self.mount_points_exclude.is_match(&m.mountpoint)
                && !self.fs_types_exclude.is_match(&m.fstype)
        });
        // A mount point mounted over again shows what the last mount holds: keep only that one, so one
        // statvfs answer is never reported twice under different devices.
        let mut seen = HashSet::new();
        let mut unique: Vec<Mount> = mounts
            .into_iter()
            .rev()
            .filter(|m| seen.insert(m.mountpoint.clone()))
            .collect();
        unique.reverse();
        Ok(unique)
    }

    /// /proc/diskstats, for the root cgroup's I/O detail by filesystem (empty where unreadable: the
    /// diskstats collector reports that file's failures).
    fn disks(&self) -> Vec<crate::sample::node::DiskStat> {
        read(&self.paths.proc("diskstats"))
            .ok()
            .and_then(|t| super::diskstats::parse(&t).ok())
            .unwrap_or_default()
    }

    fn lock_stuck(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.stuck.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Collector for FilesystemCollector {
    fn collect(&self) -> Result<Box<dyn Exposable>, CollectError> {
        let mounts = self.mounts()?;
        let mut results: Vec<Option<FsUsage>> = vec![None; mounts.len()];
        // Mounts whose statvfs is still running from an earlier scrape are stuck: device_error, not asked.
        let stuck_now = self.lock_stuck().clone();
        let mut todo: Vec<usize> = (0..mounts.len())
            .filter(|&i| !stuck_now.contains(&mounts[i].mountpoint))
            .collect();
        // Round 1 asks every mount within one mount-timeout. If a mount hangs, the worker is abandoned on it
        // and round 2 asks the mounts queued behind it on a fresh worker, within one more mount-timeout.
        for _round in 0..2 {
            if todo.is_empty() {
                break;
            }
            let mut worker = self.worker.lock().unwrap_or_else(|p| p.into_inner());
            if worker.is_none() {
                *worker = spawn_worker(self.stuck.clone());
            }
            let Some(tx) = worker.as_ref() else {
                return Err(CollectError::Other(
                    "cannot start the statvfs thread".to_string(),
                ));
            };
            let (reply, replies) = mpsc::channel();
            for &i in &todo {
                let job = Job {
                    index: i,
                    target: self.paths.rootfs_path(&mounts[i].mountpoint),
                    mountpoint: mounts[i].mountpoint.clone(),
                    reply: reply.clone(),
                };
                if tx.send(job).is_err() {
                    break;
                }
            }
            drop(reply);
            let deadline = Instant::now() + self.timeout;
            let mut answered = vec![false; mounts.len()];
            let mut pending = todo.len();
            while pending > 0 {
                match replies.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok((i, usage)) => {
                        results[i] = usage;
                        answered[i] = true;
                        pending -= 1;
                    }
                    Err(_) => break,
                }
            }
            if pending == 0 {
                break;
            }
            // The worker is stuck: leave it to finish on its own and use a new one next time.
            *worker = None;
            let in_flight = self.lock_stuck().clone();
            for &i in &todo {
                if !answered[i] && in_flight.contains(&mounts[i].mountpoint) {
                    tracing::warn!(
                        mountpoint = %mounts[i].mountpoint,
                        timeout = ?self.timeout,
                        "statvfs did not answer in time (--collector.filesystem.mount-timeout); \
                         reporting device_error=1 until it does"
                    );
                }
            }
            todo.retain(|&i| !answered[i] && !in_flight.contains(&mounts[i].mountpoint));
        }
        let filesystems = mounts
            .into_iter()
            .zip(results)
            .map(|(mount, usage)| FsStat { mount, usage })
            .collect();
        let (mut layers, layer_columns, measured) =
            self.layers.as_ref().map(Layers::rows).unwrap_or_default();
        if let Some((summary, pods)) = &self.summary {
            let device = self.runtime_device.get_or_init(|| runtime_device(&self.paths));
            let from_summary = summary_rows(summary, pods, &measured, layer_columns.len(), device);
            layers.extend(from_summary);
        }
        layers.sort_by(|a, b| a.identity.id.cmp(&b.identity.id));
        Ok(Box::new(FilesystemSample {
            filesystems,
            disks: self.disks(),
            layers,
            layer_columns,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape(r"/mnt/with\040space"), "/mnt/with space");
        assert_eq!(unescape(r"/a\\b"), r"/a\\b");
        assert_eq!(unescape(r"/end\04"), r"/end\04");
    }

    use crate::testutil::{procfs_member};

    #[test]
    fn mountinfo_from_fixture() {
        let text = procfs_member("fixtures/proc/26231/mountinfo");
        let mounts = parse_mountinfo(&text).unwrap();
        // The recorded file lists one mount twice (same device, mount point and type): one series each,
        // so the first of each is kept.
        let mut seen = std::collections::HashSet::new();
        let lines: Vec<&str> = (text.lines())
            .filter(|line| {
                let f: Vec<&str> = line.split(' ').collect();
                let sep = f.iter().position(|x| *x == "-").unwrap();
                seen.insert((f[sep + 2], f[4], f[sep + 1]))
            })
            .collect();
        assert!(lines.len() < text.lines().count());
        assert_eq!(mounts.len(), lines.len());
        for (m, line) in mounts.iter().zip(lines) {
            let f: Vec<&str> = line.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-").unwrap();
            assert_eq!(m.mountpoint, f[4]);
            assert_eq!(m.fstype, f[sep + 1]);
            assert_eq!(m.device, f[sep + 2]);
            assert_eq!(m.read_only, f[5].split(',').any(|o| o == "ro"));
        }
    }

    #[test]
    fn mountinfo_hostile() {
        assert!(
            parse_mountinfo("21 0 8:1 / / rw,relatime shared:1 ext4 /dev/sda1 rw").is_err()
        );
        assert!(parse_mountinfo("21 0 8:1 / - ext4").is_err());
        let m = parse_mountinfo("21 0 8:1 / /mnt/a\\040b ro - ext4 /dev/sda1 rw").unwrap();
        assert_eq!(m[0].mountpoint, "/mnt/a b");
        assert!(m[0].read_only);
        assert!(parse_mountinfo("").unwrap().is_empty());
    }
}
