//! Who holds the server's connections, and who gives one up when `--web.max-connections` is reached.
//!
//! A connection is busy while a request of it is being answered (its response body not yet all sent: a
//! scrape, a live view's stream) and idle otherwise: in its TLS handshake, sending its headers, or kept
//! alive between requests. At the cap, a new connection takes the place of the oldest idle one, which is
//! closed; only when every connection is busy is the new one refused. So stalled handshakes, slow headers
//! and idle keep-alives, however many and however often renewed, never keep Prometheus or a kubelet probe
//! out: its connection is the newest, and the first to turn busy.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::Notify;

pub(crate) struct Registry {
    max: usize,
    open: Mutex<(u64, BTreeMap<u64, Held>)>,
}

struct Held {
    busy: Arc<AtomicUsize>,
    close: Arc<Notify>,
}

/// An admitted connection's place; given back when dropped.
pub(crate) struct Ticket {
    id: u64,
    registry: Arc<Registry>,
    /// Requests of this connection being answered.
    pub(crate) busy: Arc<AtomicUsize>,
    /// Told when the connection is to be closed to make room.
    pub(crate) close: Arc<Notify>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self.registry.open.lock().unwrap_or_else(|p| p.into_inner());
        open.1.remove(&self.id);
    }
}

pub(crate) enum Admit {
    /// Under the cap.
    Room(Ticket),
    /// At the cap: the oldest idle connection was told to close.
    Evicted(Ticket),
    /// At the cap with every connection busy.
    Full,
}

impl Registry {
    pub(crate) fn new(max: usize) -> Arc<Registry> {
        Arc::new(Registry {
            max: max.max(1),
            open: Mutex::new((0, BTreeMap::new())),
        })
    }

    pub(crate) fn admit(self: &Arc<Self>) -> Admit {
        let mut guard = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let (next, open) = &mut *guard;
        let evicted = if open.len() >= self.max {
            // Ids grow with time: the first idle one is the oldest.
            let Some(oldest) = open
                .iter()
                .find(|(_, h)| h.busy.load(Ordering::Acquire) == 0)
                .map(|(id, _)| *id)
            else {
                return Admit::Full;
            };
            if let Some(h) = open.remove(&oldest) {
                h.close.notify_one();
            }
            true
        } else {
            false
        };
        *next += 1;
        let ticket = Ticket {
            id: *next,
            registry: self.clone(),
            busy: Arc::new(AtomicUsize::new(0)),
            close: Arc::new(Notify::new()),
        };
        open.insert(
            ticket.id,
            Held {
                busy: ticket.busy.clone(),
                close: ticket.close.clone(),
            },
        );
        if evicted {
            Admit::Evicted(ticket)
        } else {
            Admit::Room(ticket)
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.lock().unwrap().1.len()
    }
}

/// Marks a connection busy for as long as it lives (from a request's arrival to its body's end).
pub(crate) struct Busy(Arc<AtomicUsize>);

impl Busy {
    pub(crate) fn enter(count: &Arc<AtomicUsize>) -> Busy {
        count.fetch_add(1, Ordering::AcqRel);
        Busy(count.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its connection busy until it is all sent (or dropped).
pub(crate) struct Tracked {
    pub(crate) inner: axum::body::Body,
    pub(crate) _busy: Busy,
}

impl hyper::body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_oldest_idle_connection_makes_room_and_busy_ones_are_kept() {
        let r = Registry::new(3);
        let Admit::Room(a) = r.admit() else { panic!() };
        let Admit::Room(b) = r.admit() else { panic!() };
        let Admit::Room(c) = r.admit() else { panic!() };
        let busy_a = Busy::enter(&a.busy);
        // a is busy: b, the oldest idle one, is told to close.
        let Admit::Evicted(d) = r.admit() else {
            panic!()
        };
        tokio::time::timeout(std::time::Duration::from_secs(1), b.close.notified())
            .await
            .expect("b told to close");
        assert_eq!(r.len(), 3);
        drop(b);
        let _busy_c = Busy::enter(&c.busy);
        let _busy_d = Busy::enter(&d.busy);
        assert!(matches!(r.admit(), Admit::Full), "every connection busy");
        drop(busy_a);
        let Admit::Evicted(_e) = r.admit() else {
            panic!("a is idle again")
        };
        tokio::time::timeout(std::time::Duration::from_secs(1), a.close.notified())
            .await
            .expect("a told to close");
    }
}
