//! Who holds the server's connections, and who gives one up when `--web.max-connections` is reached.
//!
//! A connection is busy while a request of it is being answered (its response body not yet all sent: a
//! scrape, a live view's stream) and idle otherwise: in its TLS handshake, sending its headers, or kept
//! alive between requests. A peer is an IPv4 address or an IPv6 /64. At the cap:
//! - a new connection from a peer that already holds more than half of the cap is closed at once (it keeps
//!   the ones it has): a flood from one address costs an accept and a close, not a handshake;
//! - any other new connection takes the place of an idle one, which is closed: the oldest idle connection
//!   of the peer that holds the most;
//! - only when every connection is busy is it refused.
//!
//! So stalled handshakes, slow headers and idle keep-alives, however many and however often renewed, never
//! keep Prometheus or a kubelet probe from another address out. A client sharing the attacker's address
//! waits for the attacker's connections to time out (`--web.read-header-timeout`).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::Notify;

pub(crate) struct Registry {
    max: usize,
    open: Mutex<Open>,
}

/// The connections held, by admission order (ids grow with time), and how many each peer holds.
#[derive(Default)]
struct Open {
    next: u64,
    held: BTreeMap<u64, Held>,
    per_peer: HashMap<Peer, usize>,
}

struct Held {
    peer: Peer,
    busy: Arc<AtomicUsize>,
    close: Arc<Notify>,
}

/// Who holds a connection: an IPv4 address, or the /64 of an IPv6 one (one host's or one subnet's share).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct Peer(u128);

impl From<IpAddr> for Peer {
    fn from(ip: IpAddr) -> Peer {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Peer(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => Peer(u128::from(v6) & !u128::from(u64::MAX) | 1 << 32),
        }
    }
}

impl Open {
    fn insert(&mut self, id: u64, held: Held) {
        *self.per_peer.entry(held.peer).or_default() += 1;
        self.held.insert(id, held);
    }

    fn remove(&mut self, id: u64) -> Option<Held> {
        let held = self.held.remove(&id)?;
        if let Some(n) = self.per_peer.get_mut(&held.peer) {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&held.peer);
            }
        }
        Some(held)
    }

    /// The idle connection to give up: the oldest of the peer holding the most connections.
    fn victim(&self) -> Option<u64> {
        let mut best: Option<(usize, u64)> = None;
        for (id, h) in &self.held {
            if h.busy.load(Ordering::Acquire) != 0 {
                continue;
            }
            let n = self.per_peer.get(&h.peer).copied().unwrap_or(0);
            if best.is_none_or(|(m, _)| n > m) {
                best = Some((n, *id));
            }
        }
        best.map(|(_, id)| id)
    }
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
        open.remove(self.id);
    }
}

pub(crate) enum Admit {
    /// Under the cap.
    Room(Ticket),
    /// At the cap: an idle connection was told to close (`Open::victim`).
    Evicted(Ticket),
    /// At the cap, from a peer holding more than half of it.
    Greedy,
    /// At the cap with every connection busy.
    Full,
}

impl Admit {
    /// What the log says of this admission at the cap; `None` under it.
    pub(crate) fn at_cap(&self) -> Option<&'static str> {
        match self {
            Admit::Room(_) => None,
            Admit::Evicted(_) => Some(
                "too many open connections; closing idle ones of the peers holding the most to make room",
            ),
            Admit::Greedy => Some(
                "too many open connections; closing new ones from a peer holding more than half",
            ),
            Admit::Full => Some("too many open connections, all busy; closing new ones"),
        }
    }

    /// The admitted connection's ticket; `None` when the new connection is to be closed.
    pub(crate) fn ticket(self) -> Option<Ticket> {
        match self {
            Admit::Room(t) | Admit::Evicted(t) => Some(t),
            Admit::Greedy | Admit::Full => None,
        }
    }
}

impl Registry {
    pub(crate) fn new(max: usize) -> Arc<Registry> {
        Arc::new(Registry {
            max: max.max(1),
            open: Mutex::new(Open::default()),
        })
    }

    pub(crate) fn admit(self: &Arc<Self>, peer: Peer) -> Admit {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let evicted = if open.held.len() >= self.max {
            if open.per_peer.get(&peer).copied().unwrap_or(0) > self.max / 2 {
                return Admit::Greedy;
            }
            let Some(victim) = open.victim() else {
                return Admit::Full;
            };
            if let Some(h) = open.remove(victim) {
                h.close.notify_one();
            }
            true
        } else {
            false
        };
        open.next += 1;
        let ticket = Ticket {
            id: open.next,
            registry: self.clone(),
            busy: Arc::new(AtomicUsize::new(0)),
            close: Arc::new(Notify::new()),
        };
        open.insert(
            ticket.id,
            Held {
                peer,
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
        self.open.lock().unwrap().held.len()
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

    fn peer(ip: &str) -> Peer {
        Peer::from(ip.parse::<IpAddr>().unwrap())
    }

    #[tokio::test]
    async fn the_oldest_idle_connection_makes_room_and_busy_ones_are_kept() {
        let r = Registry::new(3);

        let Admit::Room(a) = r.admit(peer("10.0.0.1")) else {
            panic!()
        };
        let Admit::Room(b) = r.admit(peer("10.0.0.2")) else {
            panic!()
        };
        let Admit::Room(c) = r.admit(peer("10.0.0.3")) else {
            panic!()
        };
        let busy_a = Busy::enter(&a.busy);
        // a is busy: b, the oldest idle one, is told to close.
        let Admit::Evicted(d) = r.admit(peer("10.0.0.4")) else {
            panic!()
        };
        tokio::time::timeout(std::time::Duration::from_secs(1), b.close.notified())
            .await
            .expect("b told to close");
        assert_eq!(r.len(), 3);
        drop(b);
        let _busy_c = Busy::enter(&c.busy);
        let _busy_d = Busy::enter(&d.busy);
        assert!(
            matches!(r.admit(peer("10.0.0.5")), Admit::Full),
            "every connection busy"
        );
        drop(busy_a);
        let Admit::Evicted(_e) = r.admit(peer("10.0.0.6")) else {
            panic!("a is idle again")
        };
        tokio::time::timeout(std::time::Duration::from_secs(1), a.close.notified())
            .await
            .expect("a told to close");
    }

    fn room(r: &Arc<Registry>, p: Peer) -> Ticket {
        match r.admit(p) {
            Admit::Room(t) => t,
            _ => panic!("no room"),
        }
    }

    async fn told_to_close(t: &Ticket) -> bool {
        let wait = std::time::Duration::from_millis(100);
        tokio::time::timeout(wait, t.close.notified()).await.is_ok()
    }

    #[tokio::test]
    async fn the_peer_holding_the_most_gives_one_up() {
        let r = Registry::new(4);
        let (attacker, prometheus, other) = (peer("10.0.0.66"), peer("10.0.0.9"), peer("10.0.0.7"));
        let p = room(&r, prometheus);
        let a = [room(&r, attacker), room(&r, attacker)];
        let _o = room(&r, other);
        // Prometheus' connection is the oldest idle one, but the attacker holds the most.
        let Admit::Evicted(_q) = r.admit(peer("10.0.0.10")) else {
            panic!()
        };
        assert!(
            told_to_close(&a[0]).await,
            "the attacker's oldest told to close"
        );
        assert!(!told_to_close(&p).await, "Prometheus' connection kept");
        assert!(!told_to_close(&a[1]).await);
        assert_eq!(r.len(), 4);
    }

    #[tokio::test]
    async fn at_the_cap_a_peer_holding_more_than_half_gets_no_more() {
        let r = Registry::new(4);
        let (attacker, prometheus) = (peer("10.0.0.66"), peer("10.0.0.9"));
        let a: Vec<Ticket> = (0..3).map(|_| room(&r, attacker)).collect();
        let p = room(&r, prometheus);
        assert!(matches!(r.admit(attacker), Admit::Greedy));
        assert!(!told_to_close(&a[0]).await, "its own connections kept");
        assert_eq!(r.len(), 4);
        // Prometheus' next connection takes the attacker's oldest place, not its own first one's.
        let Admit::Evicted(_p2) = r.admit(prometheus) else {
            panic!()
        };
        assert!(told_to_close(&a[0]).await);
        assert!(!told_to_close(&p).await);
    }

    #[test]
    fn an_ipv6_peer_is_its_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(peer("2001:db8:1:2::1"), peer("2001:db8:1:2:ffff::9"));
        assert_ne!(peer("2001:db8:1:2::1"), peer("2001:db8:1:3::1"));
        assert_eq!(peer("::ffff:192.0.2.1"), peer("192.0.2.1"));
        assert_ne!(peer("::"), peer("0.0.0.0"));
    }
}
