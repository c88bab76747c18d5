//! The collection model: the collector trait, running collectors concurrently, sharing one collection
//! between concurrent scrapes, reusing a young collection, and the per-collector self-metrics.
//!
//! Nothing here parses or formats: collectors return typed samples (`Box<dyn Exposable>`) and the
//! `expose` module turns them into metric families.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::expose::Exposable;

/// Why a collector produced nothing this time. Every message names what failed and, where it helps,
/// what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("reading {path}: {source}{hint}")]
    Io {
        path: String,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("parsing {path}: {msg}")]
    Parse { path: String, msg: String },
    #[error("{0}")]
    Other(String),
}

impl CollectError {
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        let hint = match source.kind() {
            std::io::ErrorKind::PermissionDenied => {
                " (permission denied: run with read access to this file)"
            }
            std::io::ErrorKind::NotFound => " (check --path.procfs / --path.sysfs / --path.rootfs)",
            _ => "",
        };
        CollectError::Io {
            path: path.display().to_string(),
            source,
            hint,
        }
    }

    pub fn parse(path: &std::path::Path, msg: impl Into<String>) -> Self {
        CollectError::Parse {
            path: path.display().to_string(),
            msg: msg.into(),
        }
    }
}

/// One source of samples. `collect` does blocking I/O and runs on a blocking thread; it must return
/// (an error if need be) rather than panic, and should not wait on any remote daemon.
pub trait Collector: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn collect(&self) -> Result<Box<dyn Exposable>, CollectError>;
}

/// The outcome of one collector in one collection.
pub struct CollectorRun {
    pub name: &'static str,
    pub duration: Duration,
    pub output: Option<Box<dyn Exposable>>,
}

/// Everything one collection produced.
pub struct Snapshot {
    pub finished: Instant,
    pub runs: Vec<CollectorRun>,
}

struct Entry {
    collector: Arc<dyn Collector>,
    /// Set while a `collect` call is running; a collector that hangs past the timeout is skipped until it
    /// returns, so hung calls never pile up.
    busy: Arc<AtomicBool>,
    /// Whether the last run failed, so a failure is logged once per change, not on every scrape.
    failing: Arc<AtomicBool>,
}

pub struct Scraper {
    entries: Vec<Entry>,
    min_age: Duration,
    timeout: Duration,
    last: Mutex<Option<Arc<Snapshot>>>,
    ready: AtomicBool,
}

impl Scraper {
    pub fn new(collectors: Vec<Arc<dyn Collector>>, min_age: Duration, timeout: Duration) -> Self {
        let entries = collectors
            .into_iter()
            .map(|collector| Entry {
                collector,
                busy: Arc::new(AtomicBool::new(false)),
                failing: Arc::new(AtomicBool::new(false)),
            })
            .collect();
        Scraper {
            entries,
            min_age,
            timeout,
            last: Mutex::new(None),
            ready: AtomicBool::new(false),
        }
    }

    pub fn collector_names(&self) -> Vec<&'static str> {
        self.entries.iter().map(|e| e.collector.name()).collect()
    }

    /// True once a collection has finished in which at least one collector succeeded (or no collector is
    /// enabled at all).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// A fresh-enough snapshot. Scrapes that arrive while a collection runs wait for it and share it; a
    /// snapshot younger than `--collect.min-age` is served again.
    pub async fn scrape(&self) -> Arc<Snapshot> {
        let asked = Instant::now();
        let mut last = self.last.lock().await;
        if let Some(s) = last.as_ref()
            && (s.finished >= asked || s.finished.elapsed() < self.min_age)
        {
            return s.clone();
        }
        let snapshot = Arc::new(self.collect_all().await);
        if snapshot.runs.is_empty() || snapshot.runs.iter().any(|r| r.output.is_some()) {
            self.ready.store(true, Ordering::Relaxed);
        }
        *last = Some(snapshot.clone());
        snapshot
    }

    async fn collect_all(&self) -> Snapshot {
        let mut tasks = tokio::task::JoinSet::new();
        for (index, entry) in self.entries.iter().enumerate() {
            let collector = entry.collector.clone();
            let busy = entry.busy.clone();
            let failing = entry.failing.clone();
            let timeout = self.timeout;
            tasks.spawn(async move {
                let start = Instant::now();
                let name = collector.name();
                let output = run_one(collector, busy, timeout).await;
                let duration = start.elapsed();
                let output = match output {
                    Ok(o) => {
                        if failing.swap(false, Ordering::Relaxed) {
                            tracing::info!(collector = name, "collector recovered");
                        }
                        Some(o)
                    }
                    Err(msg) => {
                        if !failing.swap(true, Ordering::Relaxed) {
                            tracing::error!(collector = name, error = %msg, "collector failed");
                        } else {
                            tracing::debug!(collector = name, error = %msg, "collector still failing");
                        }
                        None
                    }
                };
                (index, CollectorRun { name, duration, output })
            });
        }
        let mut runs: Vec<Option<CollectorRun>> = (0..self.entries.len()).map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            // The task body cannot panic (collector panics are caught in run_one), so a join error can only be
            // a cancelled runtime; such a run simply does not appear.
            if let Ok((index, run)) = joined {
                runs[index] = Some(run);
            }
        }
        Snapshot {
            finished: Instant::now(),
            runs: runs.into_iter().flatten().collect(),
        }
    }
}

async fn run_one(
    collector: Arc<dyn Collector>,
    busy: Arc<AtomicBool>,
    timeout: Duration,
) -> Result<Box<dyn Exposable>, String> {
    if busy.swap(true, Ordering::AcqRel) {
        return Err(
            "the previous collection of this collector has not returned yet (skipped)".to_string(),
        );
    }
    let busy_in_task = busy.clone();
    let handle = tokio::task::spawn_blocking(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| collector.collect()));
        busy_in_task.store(false, Ordering::Release);
        result
    });
    match tokio::time::timeout(timeout, handle).await {
        Ok(Ok(Ok(Ok(output)))) => Ok(output),
        Ok(Ok(Ok(Err(e)))) => Err(e.to_string()),
        Ok(Ok(Err(_panic))) => {
            Err("collector panicked (a bug: please report it with the log)".to_string())
        }
        Ok(Err(join)) => {
            busy.store(false, Ordering::Release);
            Err(format!("collector task failed: {join}"))
        }
        Err(_) => Err(format!(
            "did not finish within {timeout:?} (--collect.timeout); skipped until it returns"
        )),
    }
}
