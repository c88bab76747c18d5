//! The collection model: the collector trait, running the selected collectors concurrently, sharing a
//! collector's run between concurrent scrapes, reusing a young run, and each collector's health.
//!
//! Each collector keeps its own last run. A scrape asks only the collectors it selects (`collect[]`,
//! `exclude[]`) for a run that finished after the scrape arrived, or is younger than
//! `--collect.min-age`; a scrape that arrives while a collector runs waits for that run and shares it.
//! So `?collect[]=meminfo` never pays for the cgroup collector, and two scrapes with any selections
//! share the collectors they have in common.
//!
//! Nothing here parses or formats: collectors return typed samples and `expose` renders them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::expose::{Exposable, Outcome, Part};
use crate::health::{Failure, Health};

/// Why a collector produced nothing this time. Every message names what failed and, where it helps,
/// what to do about it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CollectError {
    #[error("reading {path}: {source}{hint}")]
    Io {
        path: String,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("parsing {path}: {msg}")]
    Parse { path: String, msg: String },
    /// The collector runs but has nothing yet (a background source's first answer is still due).
    #[error("{0}")]
    NoDataYet(&'static str),
    #[error("{0}")]
    Other(String),
}

impl CollectError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
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

    pub(crate) fn parse(path: &std::path::Path, msg: impl Into<String>) -> Self {
        CollectError::Parse {
            path: path.display().to_string(),
            msg: msg.into(),
        }
    }
}

impl Failure for CollectError {
    fn class(&self) -> String {
        match self {
            CollectError::Io { path, source, .. } => format!("io {path} {:?}", source.kind()),
            CollectError::Parse { path, .. } => format!("parse {path}"),
            CollectError::NoDataYet(_) => "no data".to_string(),
            CollectError::Other(m) => format!("other {m}"),
        }
    }
}

/// A failure of the run itself (timeout, panic), classed by its message.
struct RunError(String);

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Failure for RunError {
    fn class(&self) -> String {
        self.0.clone()
    }
}

/// One source of samples. `collect` does blocking I/O and runs on a blocking thread; it must return
/// (an error if need be) rather than panic, and must not wait on any remote daemon.
pub(crate) trait Collector: Send + Sync + 'static {
    fn collect(&self) -> Result<Box<dyn Exposable>, CollectError>;
}

struct Entry {
    name: &'static str,
    collector: Arc<dyn Collector>,
    /// Set while a `collect` call is running; a collector that hangs past the timeout is skipped until it
    /// returns, so hung calls never pile up.
    busy: Arc<AtomicBool>,
    health: Health,
    /// How many times the collector has run.
    runs: std::sync::atomic::AtomicU64,
    /// The last run and when it finished. Held while a run is under way, so scrapes queue on it.
    last: tokio::sync::Mutex<Option<(Instant, Arc<Part>)>>,
}

/// The last collection of one selection, and when it finished. Held while it is under way, so
/// scrapes with the same selection queue on it and share it.
type Selection = Arc<tokio::sync::Mutex<Option<(Instant, Vec<Arc<Part>>)>>>;

/// At most this many distinct selections are remembered; past it the idle ones are forgotten.
const MAX_SELECTIONS: usize = 64;

pub(crate) struct Scraper {
    entries: Vec<Entry>,
    min_age: Duration,
    timeout: Duration,
    ready: AtomicBool,
    selections: std::sync::Mutex<HashMap<Vec<&'static str>, Selection>>,
}

impl Scraper {
    pub(crate) fn new(
        collectors: Vec<(&'static str, Arc<dyn Collector>)>, // collector::Named
        min_age: Duration,
        timeout: Duration,
    ) -> Self {
        let entries = collectors
            .into_iter()
            .map(|(name, collector)| Entry {
                name,
                collector,
                busy: Arc::new(AtomicBool::new(false)),
                health: Health::new("collector", name),
                runs: Default::default(),
                last: tokio::sync::Mutex::new(None),
            })
            .collect();
        Scraper {
            entries,
            min_age,
            timeout,
            ready: AtomicBool::new(false),
            selections: Default::default(),
        }
    }

    pub(crate) fn collector_names(&self) -> Vec<&'static str> {
        self.entries.iter().map(|e| e.name).collect()
    }

    /// True once some collector has succeeded (or no collector is enabled at all).
    /// `--collect.min-age`: how long a run is reused.
    pub(crate) fn min_age(&self) -> Duration {
        self.min_age
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.entries.is_empty() || self.ready.load(Ordering::Relaxed)
    }

    /// A fresh-enough run of each selected collector, in the configured order. Scrapes with the same
    /// selection that arrive while one is collected share that collection; the selected collectors run
    /// concurrently, each reusing a run that finished after `asked` or within `--collect.min-age`.
    pub(crate) async fn scrape(&self, selected: &[&'static str]) -> Vec<Arc<Part>> {
        let asked = Instant::now();
        let selection = self.selection(selected);
        let mut last = selection.lock().await;
        if let Some((finished, parts)) = last.as_ref()
            && (*finished >= asked || finished.elapsed() < self.min_age)
        {
            return parts.clone();
        }
        let parts = self.collect(selected, asked).await;
        *last = Some((Instant::now(), parts.clone()));
        parts
    }

    fn selection(&self, selected: &[&'static str]) -> Selection {
        let mut map = self.selections.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = map.get(selected) {
            return s.clone();
        }
        if map.len() >= MAX_SELECTIONS {
            map.retain(|_, s| Arc::strong_count(s) > 1);
        }
        map.entry(selected.to_vec()).or_default().clone()
    }

    async fn collect(&self, selected: &[&'static str], asked: Instant) -> Vec<Arc<Part>> {
        let runs = self
            .entries
            .iter()
            .filter(|e| selected.contains(&e.name))
            .map(|e| self.fresh(e, asked));
        futures_util::future::join_all(runs).await
    }

    async fn fresh(&self, entry: &Entry, asked: Instant) -> Arc<Part> {
        let mut last = entry.last.lock().await;
        if let Some((finished, part)) = last.as_ref()
            && (*finished >= asked || finished.elapsed() < self.min_age)
        {
            return part.clone();
        }
        let part = Arc::new(self.run(entry).await);
        if matches!(part.outcome, Outcome::Ok(_)) {
            self.ready.store(true, Ordering::Relaxed);
        }
        *last = Some((Instant::now(), part.clone()));
        part
    }

    async fn run(&self, entry: &Entry) -> Part {
        let start = Instant::now();
        let result = run_one(entry.collector.clone(), entry.busy.clone(), self.timeout).await;
        let outcome = match result {
            Ok(output) => {
                entry.health.ok();
                Outcome::Ok(Arc::from(output))
            }
            Err(RunFailure::Collect(CollectError::NoDataYet(why))) => {
                entry.health.no_data(why);
                Outcome::NoData
            }
            Err(RunFailure::Collect(e)) => {
                entry.health.fail(&e);
                Outcome::Failed
            }
            Err(RunFailure::Run(e)) => {
                entry.health.fail(&e);
                Outcome::Failed
            }
        };
        Part {
            name: entry.name,
            started: start,
            duration: start.elapsed(),
            runs: entry.runs.fetch_add(1, Ordering::Relaxed) + 1,
            outcome,
        }
    }
}

enum RunFailure {
    Collect(CollectError),
    Run(RunError),
}

async fn run_one(
    collector: Arc<dyn Collector>,
    busy: Arc<AtomicBool>,
    timeout: Duration,
) -> Result<Box<dyn Exposable>, RunFailure> {
    let fail = |m: String| Err(RunFailure::Run(RunError(m)));
    if busy.swap(true, Ordering::AcqRel) {
        return fail(
            "the previous collection of this collector has not returned yet (skipped)".into(),
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
        Ok(Ok(Ok(Err(e)))) => Err(RunFailure::Collect(e)),
        Ok(Ok(Err(_panic))) => {
            fail("collector panicked (a bug: please report it with the log)".into())
        }
        Ok(Err(join)) => {
            busy.store(false, Ordering::Release);
            fail(format!("collector task failed: {join}"))
        }
        Err(_) => fail(format!(
            "did not finish within {timeout:?} (--collect.timeout); skipped until it returns"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Counting(Arc<AtomicUsize>);
    impl Collector for Counting {
        fn collect(&self) -> Result<Box<dyn Exposable>, CollectError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(50));
            Ok(Box::new(crate::expose::Nothing))
        }
    }

    struct Pending;
    impl Collector for Pending {
        fn collect(&self) -> Result<Box<dyn Exposable>, CollectError> {
            Err(CollectError::NoDataYet("first poll under way"))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_selected_collectors_run_and_concurrent_scrapes_share_a_run() {
        let (a, b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let s = Scraper::new(
            vec![
                ("a", Arc::new(Counting(a.clone()))),
                ("b", Arc::new(Counting(b.clone()))),
                ("p", Arc::new(Pending)),
            ],
            Duration::ZERO,
            Duration::from_secs(5),
        );
        assert!(!s.is_ready());
        let parts = s.scrape(&["a"]).await;
        assert_eq!(parts.len(), 1);
        assert_eq!((a.load(Ordering::SeqCst), b.load(Ordering::SeqCst)), (1, 0));
        // Concurrent scrapes of one selection share its collection; another selection shares the
        // collectors they have in common.
        let (x, y, z) = tokio::join!(s.scrape(&["a"]), s.scrape(&["a"]), s.scrape(&["a", "b"]));
        assert!(Arc::ptr_eq(&x[0], &y[0]));
        assert!(Arc::ptr_eq(&x[0], &z[0]));
        assert_eq!((a.load(Ordering::SeqCst), b.load(Ordering::SeqCst)), (2, 1));
        assert!(s.is_ready());
        let p = s.scrape(&["p"]).await;
        assert!(matches!(p[0].outcome, Outcome::NoData));
    }
}
