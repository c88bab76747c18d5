//! Health of the background sources and the collectors: `stevedore_source_up`, and one log line per
//! change of state, for every source and the scraper alike. A leaf: it imports nothing from the crate.
//!
//! A failure is "the same" as the last one when its [`Failure::class`] is: the kind of error and what
//! failed, never the message text, which may carry column numbers, response bodies or addresses that
//! change on every try.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An error that can say which kind of failure it is.
pub(crate) trait Failure: Display {
    /// The kind of failure and what failed, e.g. `timeout kubelet /stats/summary`.
    fn class(&self) -> String;
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Nothing has happened yet.
    Starting,
    Up,
    /// Running, but nothing to report yet (a first poll still under way).
    NoData,
    /// Failing with this class of failure; `logged` says whether the failure's line was written.
    Down {
        class: String,
        logged: bool,
    },
}

/// A failure of the same class as the last one logged, within this long of it, is logged at debug only:
/// a source that drops right after every reconnect writes a line per this period, not per try.
const FLAP: Duration = Duration::from_secs(300);

/// One source's or collector's health.
#[derive(Debug)]
pub(crate) struct Health {
    name: &'static str,
    /// `source` or `collector`: the log field the name goes in.
    kind: &'static str,
    up: AtomicBool,
    state: Mutex<State>,
    /// The class of the last failure logged, and when.
    last_logged: Mutex<Option<(String, Instant)>>,
}

impl Health {
    pub(crate) fn new(kind: &'static str, name: &'static str) -> Health {
        Health {
            name,
            kind,
            up: AtomicBool::new(false),
            state: Mutex::new(State::Starting),
            last_logged: Mutex::new(None),
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Swaps in the new state; returns the old one.
    fn set(&self, next: State) -> State {
        self.up.store(next == State::Up, Ordering::Relaxed);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *state, next)
    }

    /// It worked. Logs when that is news.
    pub(crate) fn ok(&self) {
        match self.set(State::Up) {
            State::Up => {}
            State::Down { logged: false, .. } => {
                tracing::debug!(
                    name = self.name,
                    "up again (its failure was not logged: flapping)"
                )
            }
            State::Down { .. } if self.kind == "source" => {
                tracing::info!(source = self.name, "source recovered")
            }
            State::Down { .. } => tracing::info!(collector = self.name, "collector recovered"),
            State::Starting | State::NoData => {
                if self.kind == "source" {
                    tracing::info!(source = self.name, "source connected")
                }
            }
        }
    }

    /// Running but nothing to report yet. Logged once, at info.
    pub(crate) fn no_data(&self, why: &str) {
        if self.set(State::NoData) != State::NoData {
            match self.kind {
                "source" => tracing::info!(source = self.name, "no data yet: {why}"),
                _ => tracing::info!(collector = self.name, "no data yet: {why}"),
            }
        }
    }

    /// It failed. Logged when the failure's class differs from the last one's (or it was up before),
    /// unless the same class was logged less than [`FLAP`] ago.
    pub(crate) fn fail(&self, err: &dyn Failure) {
        let class = err.class();
        let mut last = self.last_logged.lock().unwrap_or_else(|p| p.into_inner());
        {
            let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if matches!(&*state, State::Down { class: c, .. } if *c == class) {
                tracing::debug!(name = self.name, error = %err, "still failing");
                return;
            }
        }
        let flapping = last
            .as_ref()
            .is_some_and(|(c, at)| *c == class && at.elapsed() < FLAP);
        self.set(State::Down {
            class: class.clone(),
            logged: !flapping,
        });
        if flapping {
            tracing::debug!(name = self.name, error = %err, "failing again (flapping)");
            return;
        }
        *last = Some((class, Instant::now()));
        match self.kind {
            "source" => tracing::warn!(
                source = self.name,
                error = %err,
                "source failing; its metrics are not served until it recovers"
            ),
            _ => tracing::error!(collector = self.name, error = %err, "collector failed"),
        }
    }
}

/// Every background source's health, for `stevedore_source_up{source}`.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    list: Mutex<Vec<Arc<Health>>>,
}

impl Sources {
    /// A new source, down until it first succeeds.
    pub(crate) fn register(&self, name: &'static str) -> Arc<Health> {
        let h = Arc::new(Health::new("source", name));
        self.list
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(h.clone());
        h
    }

    /// (name, up) of every source, in registration order.
    pub(crate) fn all(&self) -> Vec<(&'static str, bool)> {
        let list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        list.iter().map(|h| (h.name(), h.is_up())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct E(&'static str, String);
    impl Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.1)
        }
    }
    impl Failure for E {
        fn class(&self) -> String {
            self.0.to_string()
        }
    }

    #[test]
    fn state_changes() {
        let h = Health::new("source", "x");
        assert!(!h.is_up());
        h.no_data("first poll");
        assert!(!h.is_up());
        h.ok();
        assert!(h.is_up());
        h.fail(&E("timeout", "after 1s at column 3".into()));
        assert!(!h.is_up());
        // Same class, other text: the state is unchanged (and not logged again).
        h.fail(&E("timeout", "after 1s at column 9".into()));
        let down = |class: &str, logged| State::Down {
            class: class.to_string(),
            logged,
        };
        assert_eq!(*h.state.lock().unwrap(), down("timeout", true));
        h.fail(&E("forbidden", "403".into()));
        assert_eq!(*h.state.lock().unwrap(), down("forbidden", true));
        h.ok();
        assert!(h.is_up());
        // Flapping: the same class again soon after it was logged is not logged again.
        h.fail(&E("forbidden", "403 again".into()));
        assert_eq!(*h.state.lock().unwrap(), down("forbidden", false));
        h.ok();
        // Another class than the last one logged is news.
        h.fail(&E("timeout", "another class".into()));
        assert_eq!(*h.state.lock().unwrap(), down("timeout", true));
    }

    #[test]
    fn registry_reports_each_source() {
        let s = Sources::default();
        let a = s.register("docker");
        s.register("kubelet");
        a.ok();
        assert_eq!(s.all(), vec![("docker", true), ("kubelet", false)]);
    }
}
