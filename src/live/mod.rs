//! The live view's data: one background loop, running only while someone watches, that asks the scraper
//! for the same collection `/metrics` serves (shared runs, `--collect.min-age`) every second, turns it into
//! one JSON frame with rates (`view`), and hands that frame to every viewer. Ten browsers cost one
//! collection and one serialisation a second; none costs anything once the last has gone, and no figure of
//! a container is kept beyond the previous run.

pub(crate) mod procs;
pub(crate) mod view;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use crate::cgroup::Layout;
use crate::collector::Paths;
use crate::expose::{Outcome, Part};
use crate::sample::container::{ContainersSample, SpecStats};
use crate::scrape::Scraper;
use crate::source::MetaStore;
use crate::source::kubernetes::{PodIndex, PodStore};

/// A serialised frame, shared by every viewer.
pub(crate) type FrameBytes = Arc<Vec<u8>>;

/// Where the live view reads what a frame does not carry: the processes, the runtime's labels, the pods.
pub(crate) struct Sources {
    pub paths: Paths,
    pub meta: Option<Arc<MetaStore>>,
    pub pods: Option<PodStore>,
}

pub(crate) struct Hub {
    scraper: Arc<Scraper>,
    wanted: Vec<&'static str>,
    interval: Duration,
    frames: watch::Sender<Option<FrameBytes>>,
    /// Whether the loop runs; taken with the receiver count, so a viewer never joins a loop that is ending.
    running: Mutex<bool>,
    /// The last collection, for a container's page (labels, limits, processes), while the loop runs.
    last: Mutex<Option<Vec<Arc<Part>>>>,
    sources: Sources,
    layout: Mutex<Option<Layout>>,
    /// Each open container page's last process read, dropped when the page stops asking.
    procs: Mutex<HashMap<String, (Instant, procs::Previous)>>,
}

impl Hub {
    pub(crate) fn new(scraper: Arc<Scraper>, interval: Duration, sources: Sources) -> Arc<Hub> {
        let names = scraper.collector_names();
        let wanted = view::WANTED
            .iter()
            .filter_map(|w| names.iter().find(|n| *n == w).copied())
            .collect();
        Arc::new(Hub {
            scraper,
            wanted,
            interval,
            frames: watch::channel(None).0,
            running: Mutex::new(false),
            last: Mutex::new(None),
            sources,
            layout: Mutex::new(None),
            procs: Mutex::new(HashMap::new()),
        })
    }

    /// A viewer's feed of frames. The loop starts with the first viewer and stops after the last.
    pub(crate) fn subscribe(self: &Arc<Self>) -> watch::Receiver<Option<FrameBytes>> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let rx = self.frames.subscribe();
        if !*running {
            *running = true;
            tokio::spawn(self.clone().run());
        }
        rx
    }

    /// The next frame that has rates (the second run after the loop starts), for one-shot readers.
    pub(crate) async fn frame_with_rates(self: &Arc<Self>) -> Option<FrameBytes> {
        let mut rx = self.subscribe();
        let period = self.interval.max(self.scraper.min_age());
        let deadline = tokio::time::Instant::now() + period * 3 + Duration::from_secs(10);
        loop {
            if let Some(f) = rx.borrow_and_update().clone()
                && !contains(&f, b"\"interval\":null")
            {
                return Some(f);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return rx.borrow().clone(),
            }
        }
    }

    /// Collects and sends a frame, then waits `interval` (at least `--collect.min-age`, so that the next
    /// collection is a new run, not the one just seen) from the end of that collection. A collection
    /// whose every run was seen already (another reader's fresher run reused) sends nothing: rates
    /// need two different runs.
    async fn run(self: Arc<Self>) {
        let mut builder = view::Builder::default();
        let period = self.interval.max(self.scraper.min_age());
        let mut seen: Vec<u64> = Vec::new();
        let mut first = true;
        loop {
            if !std::mem::take(&mut first) {
                tokio::time::sleep(period).await;
            }
            if self.stop_if_unwatched() {
                return;
            }
            let parts = self.scraper.scrape(&self.wanted).await;
            let runs: Vec<u64> = parts.iter().map(|p| p.runs).collect();
            if runs == seen {
                continue;
            }
            seen = runs;
            *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(parts.clone());
            let built = tokio::task::spawn_blocking(move || {
                let frame = builder.build(&parts, unix_now());
                let json = serde_json::to_vec(&frame).unwrap_or_default();
                (builder, json)
            })
            .await;
            match built {
                Ok((b, json)) => {
                    builder = b;
                    self.frames.send_replace(Some(Arc::new(json)));
                }
                Err(e) => {
                    tracing::error!(error = %e, "building a live view frame failed (a bug: please report it)");
                    builder = view::Builder::default();
                }
            }
        }
    }

    /// Ends the loop when nobody watches: the last frame, the counters and the process reads go with it.
    fn stop_if_unwatched(&self) -> bool {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if self.frames.receiver_count() > 0 {
            return false;
        }
        *running = false;
        self.frames.send_replace(None);
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.procs.lock().unwrap_or_else(|p| p.into_inner()).clear();
        true
    }

    /// A container's page: labels, limits, cgroup path and (outside pods) its processes. `None` when the
    /// last collection did not report that id: a client's id is only looked up, never made into a path.
    pub(crate) async fn details(self: &Arc<Self>, id: &str) -> Option<Details> {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let parts = match last {
            Some(p) => p,
            None => self.scraper.scrape(&["cgroup"]).await,
        };
        let part = parts.iter().find(|p| p.name == "cgroup")?;
        let Outcome::Ok(s) = &part.outcome else {
            return None;
        };
        let any: &dyn std::any::Any = &**s;
        let entry = any
            .downcast_ref::<ContainersSample>()?
            .entries
            .iter()
            .find(|e| e.identity.id == id)?
            .clone();
        let hub = self.clone();
        let id = id.to_string();
        tokio::task::spawn_blocking(move || hub.details_blocking(&id, &entry))
            .await
            .ok()
    }

    fn details_blocking(&self, id: &str, e: &crate::sample::container::ContainerEntry) -> Details {
        let meta = self.sources.meta.as_ref().and_then(|m| {
            let all = m.snapshot();
            all.values()
                .find(|m| {
                    m.cgroup_path.as_deref() == Some(id) || (m.id.len() >= 12 && id.contains(&m.id))
                })
                .cloned()
        });
        let pod_labels = match (&self.sources.pods, e.identity.pod.is_empty()) {
            (Some(store), false) => PodIndex::from_store(store)
                .pods
                .iter()
                .find(|p| p.name == e.identity.pod && p.namespace == e.identity.namespace)
                .map(|p| p.labels.clone())
                .unwrap_or_default(),
            _ => BTreeMap::new(),
        };
        let in_pod = !e.identity.pod.is_empty();
        let processes = if in_pod || e.identity.id == "/" {
            None
        } else {
            self.layout().map(|layout| self.processes(&layout, id))
        };
        Details {
            id: id.to_string(),
            name: e.identity.name.clone(),
            image: e.identity.image.clone(),
            namespace: e.identity.namespace.clone(),
            pod: e.identity.pod.clone(),
            container: e.identity.container.clone(),
            runtime: meta.as_ref().map(|m| m.runtime.to_string()),
            runtime_id: meta.as_ref().map(|m| m.id.clone()),
            labels: meta.map(|m| m.labels.clone()).unwrap_or_default(),
            pod_labels,
            limits: e.stats.spec.clone().into(),
            processes,
            processes_note: if in_pod {
                Some(
                    "processes are listed for containers outside Kubernetes; use kubectl exec in a pod",
                )
            } else {
                None
            },
        }
    }

    fn processes(&self, layout: &Layout, id: &str) -> Vec<procs::Process> {
        let mut all = self.procs.lock().unwrap_or_else(|p| p.into_inner());
        // A page that stopped asking for half a minute is gone: its reads go too.
        all.retain(|_, (asked, _)| asked.elapsed() < Duration::from_secs(30));
        let (asked, prev) = all
            .entry(id.to_string())
            .or_insert_with(|| (Instant::now(), procs::Previous::default()));
        *asked = Instant::now();
        procs::read(&self.sources.paths, layout, id, prev)
    }

    fn layout(&self) -> Option<Layout> {
        let mut l = self.layout.lock().unwrap_or_else(|p| p.into_inner());
        if l.is_none() {
            *l = Layout::detect(&self.sources.paths.sys("fs/cgroup")).ok();
        }
        l.clone()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A container's page, beyond what each frame carries.
#[derive(Debug, Serialize)]
pub(crate) struct Details {
    pub id: String,
    pub name: String,
    pub image: String,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub runtime: Option<String>,
    pub runtime_id: Option<String>,
    /// Every label the runtime has (not only the allowlisted ones that become metric labels).
    pub labels: BTreeMap<String, String>,
    pub pod_labels: BTreeMap<String, String>,
    pub limits: Limits,
    pub processes: Option<Vec<procs::Process>>,
    pub processes_note: Option<&'static str>,
}

/// Limits and shares as the cgroup files give them; `null` where none is set.
#[derive(Debug, Serialize)]
pub(crate) struct Limits {
    pub cpu_quota_us: Option<f64>,
    pub cpu_period_us: Option<f64>,
    pub cpu_shares: Option<f64>,
    pub memory_bytes: Option<f64>,
    pub memory_reservation_bytes: Option<f64>,
    pub memory_swap_bytes: Option<f64>,
    pub pids: Option<f64>,
}

impl From<SpecStats> for Limits {
    fn from(s: SpecStats) -> Limits {
        let set = |v: Option<f64>| v.filter(|v| *v > 0.0);
        Limits {
            cpu_quota_us: set(s.cpu_quota),
            cpu_period_us: s.cpu_period,
            cpu_shares: s.cpu_shares,
            memory_bytes: set(s.memory_limit),
            memory_reservation_bytes: set(s.memory_reservation),
            memory_swap_bytes: set(s.memory_swap_limit),
            pids: set(s.pids_max),
        }
    }
}
