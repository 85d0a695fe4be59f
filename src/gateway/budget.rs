//! The budget of webhook body bytes held in memory at once: across all requests
//! (`server.max_inflight_body_bytes`), and per sending address
//! (`server.max_inflight_body_bytes_per_peer`).
//!
//! A request holds what it has actually received, not what it announced: it starts with
//! nothing and grows its [`Reservation`] as its body arrives, just before its buffer grows.
//! (It used to reserve its Content-Length up front, so eleven connections announcing 25 MB and
//! sending one byte each held a 256 MiB budget, and every real webhook got 503: issue 12.) A
//! sender who announces much and sends little now holds what it sent, rounded up to a KiB.
//!
//! Both pools are counted in KiB permits of a fair (FIFO) semaphore. A request waiting for
//! room waits up to [`WAIT`], then gets 503 with Retry-After, and gives back all it held as it
//! is dropped. One request never counts for more than a whole pool, so a body larger than a
//! pool can still arrive, alone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::api::error::{ApiError, ApiResult};

/// How long a request waits for room before it is turned away.
const WAIT: Duration = Duration::from_secs(1);

/// `hopper_inbound_body_kib_reserved`: KiB of webhook body buffers held right now.
const RESERVED: &str = "hopper_inbound_body_kib_reserved";

/// The default share of one address: an eighth of the whole budget (so it takes eight
/// addresses, or /64s, sending for real to fill it), but at least the largest body a source
/// accepts (25 MB for GitHub and GitLab: a sender can always have one of those in flight,
/// with 7 MiB to spare under the 256 MiB default), and at most the whole budget. Without a
/// whole budget there is no default share.
pub(super) fn default_per_peer(total: u64, largest_body: u64) -> u64 {
    (total / 8).max(largest_body).min(total)
}

/// Permits of one pool, each a KiB.
#[derive(Debug)]
struct Pool {
    kib: Arc<Semaphore>,
    total_kib: u32,
}

impl Pool {
    fn new(total_kib: u32) -> Self {
        Self {
            kib: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }
}

/// KiB for `bytes`, within what a semaphore can count; 0 for 0.
fn kib_of(bytes: u64) -> u32 {
    let kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
    kib.min(u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX))
}

/// One pool per address that has a request in flight; an address's entry goes when its last
/// request does, so the map is never larger than the requests in flight.
#[derive(Debug)]
struct Peers {
    share_kib: u32,
    pools: Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
}

/// The address a share is counted under: IPv4 as is, IPv6 by its /64, as one host is usually
/// handed a whole /64 (counting single IPv6 addresses would hand it 2^64 shares).
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

#[derive(Debug)]
pub(super) struct Budget {
    /// `None`: `max_inflight_body_bytes` is 0 (off).
    whole: Option<Pool>,
    /// `None`: no per-address share.
    peers: Option<Arc<Peers>>,
    /// [`WAIT`], shorter in unit tests.
    wait: Duration,
}

/// No budget at all.
impl Default for Budget {
    fn default() -> Self {
        Self::new(0, 0)
    }
}

impl Budget {
    /// From the byte counts; 0 turns either off.
    pub fn new(total_bytes: u64, per_peer_bytes: u64) -> Self {
        let whole = Some(kib_of(total_bytes))
            .filter(|kib| *kib > 0)
            .map(Pool::new);
        let peers = Some(kib_of(per_peer_bytes))
            .filter(|kib| *kib > 0)
            .map(|share_kib| {
                Arc::new(Peers {
                    share_kib,
                    pools: Mutex::new(HashMap::new()),
                })
            });
        Self {
            whole,
            peers,
            wait: WAIT,
        }
    }

    /// An empty reservation for one request from `peer` (`None`: an address unknown, as for
    /// a request not from the accept loop, which then only counts in the whole budget).
    pub fn reservation(&self, peer: Option<IpAddr>) -> Reservation {
        let peer = match (&self.peers, peer) {
            (Some(peers), Some(ip)) => {
                let key = peer_key(ip);
                let pool = peers
                    .pools
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(key)
                    .or_insert_with(|| Arc::new(Semaphore::new(peers.share_kib as usize)))
                    .clone();
                Some(PeerShare {
                    peers: peers.clone(),
                    key,
                    pool: Some(pool),
                    held: None,
                })
            }
            _ => None,
        };
        Reservation {
            whole: self.whole.as_ref().map(|p| (p.kib.clone(), p.total_kib)),
            whole_held: None,
            peer,
            kib: 0,
            wait: self.wait,
        }
    }
}

/// A request's place in one address's pool.
struct PeerShare {
    peers: Arc<Peers>,
    key: IpAddr,
    /// `Some` until dropped.
    pool: Option<Arc<Semaphore>>,
    held: Option<OwnedSemaphorePermit>,
}

impl Drop for PeerShare {
    fn drop(&mut self) {
        let mut pools = self
            .peers
            .pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Every handle on an address's pool is dropped under the lock (and made under it), so
        // whoever sees the map's own handle as the last one can remove the entry.
        drop(self.held.take());
        drop(self.pool.take());
        if pools
            .get(&self.key)
            .is_some_and(|pool| Arc::strong_count(pool) == 1)
        {
            pools.remove(&self.key);
        }
    }
}

/// What one request holds of the budget, given back when dropped (answered, or gone).
pub(super) struct Reservation {
    /// The whole budget's pool and its size.
    whole: Option<(Arc<Semaphore>, u32)>,
    whole_held: Option<OwnedSemaphorePermit>,
    peer: Option<PeerShare>,
    /// What the request holds, in KiB, uncapped: what the gauge shows.
    kib: u32,
    wait: Duration,
}

impl Reservation {
    /// Grows what is held to cover `bytes`, waiting up to [`WAIT`] for room. On failure
    /// nothing more is held, and the caller is expected to give up the request.
    pub async fn grow_to(&mut self, bytes: u64) -> ApiResult<()> {
        let kib = kib_of(bytes);
        if kib <= self.kib {
            return Ok(());
        }
        let deadline = Instant::now() + self.wait;
        // The address's share first: a sender over it waits behind its own requests only.
        let peer = match &self.peer {
            Some(share) => match &share.pool {
                Some(pool) => {
                    let want = more(kib, share.peers.share_kib, held(&share.held));
                    take(pool, want, deadline).await.ok_or_else(|| {
                        busy("too many webhook bodies in flight from your address")
                    })?
                }
                None => None,
            },
            None => None,
        };
        let whole = match &self.whole {
            Some((pool, total)) => {
                let want = more(kib, *total, held(&self.whole_held));
                // Failing here drops `peer`: its permits go back.
                take(pool, want, deadline)
                    .await
                    .ok_or_else(|| busy("too many webhook bodies in flight; retry shortly"))?
            }
            None => None,
        };
        if let Some(share) = &mut self.peer {
            merge(&mut share.held, peer);
        }
        merge(&mut self.whole_held, whole);
        metrics::gauge!(RESERVED).increment(f64::from(kib - self.kib));
        self.kib = kib;
        Ok(())
    }

    /// KiB held, for tests.
    #[cfg(test)]
    fn kib(&self) -> u32 {
        self.kib
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        metrics::gauge!(RESERVED).decrement(f64::from(self.kib));
    }
}

fn held(permit: &Option<OwnedSemaphorePermit>) -> u32 {
    permit
        .as_ref()
        .map_or(0, |p| u32::try_from(p.num_permits()).unwrap_or(u32::MAX))
}

/// Permits still to take to cover `kib`, counting at most the pool's `total` (so one request
/// larger than the pool holds all of it and no more).
fn more(kib: u32, total: u32, held: u32) -> u32 {
    kib.min(total).saturating_sub(held)
}

/// `Some(None)` when nothing is needed, `None` when the deadline passed first.
async fn take(
    pool: &Arc<Semaphore>,
    kib: u32,
    deadline: Instant,
) -> Option<Option<OwnedSemaphorePermit>> {
    if kib == 0 {
        return Some(None);
    }
    match tokio::time::timeout_at(deadline, pool.clone().acquire_many_owned(kib)).await {
        Ok(Ok(permit)) => Some(Some(permit)),
        // Timed out, or (never: no pool is closed) closed.
        _ => None,
    }
}

fn merge(into: &mut Option<OwnedSemaphorePermit>, more: Option<OwnedSemaphorePermit>) {
    match (into.as_mut(), more) {
        (Some(held), Some(more)) => held.merge(more),
        (None, more) => *into = more,
        (Some(_), None) => {}
    }
}

fn busy(message: &str) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message).retry_after(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(total_kib: u64, share_kib: u64) -> Budget {
        Budget {
            wait: Duration::from_millis(20),
            ..Budget::new(total_kib * 1024, share_kib * 1024)
        }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    fn pools(budget: &Budget) -> usize {
        budget.peers.as_ref().map_or(0, |p| {
            p.pools.lock().unwrap_or_else(PoisonError::into_inner).len()
        })
    }

    async fn refusal(budget: &Budget, peer: &str, kib: u64) -> String {
        let mut r = budget.reservation(ip(peer));
        let refused = r.grow_to(kib * 1024).await.unwrap_err();
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.retry_after_secs, Some(1));
        refused.message
    }

    #[test]
    fn zero_turns_either_off() {
        let b = Budget::new(0, 0);
        assert!(b.whole.is_none() && b.peers.is_none());
        assert_eq!(Budget::new(1, 0).whole.map(|p| p.total_kib), Some(1));
    }

    #[test]
    fn the_default_share_is_an_eighth_but_fits_the_largest_body() {
        let mib = 1024 * 1024;
        assert_eq!(default_per_peer(256 * mib, 25 * mib), 32 * mib);
        assert_eq!(default_per_peer(64 * mib, 25 * mib), 25 * mib);
        assert_eq!(default_per_peer(mib, 25 * mib), mib);
        assert_eq!(default_per_peer(0, 25 * mib), 0);
    }

    #[tokio::test]
    async fn what_is_held_grows_with_what_arrived() {
        let budget = budget(64, 0);
        let mut r = budget.reservation(None);
        assert_eq!(r.kib(), 0);
        r.grow_to(1).await.unwrap();
        assert_eq!(r.kib(), 1);
        r.grow_to(10 * 1024).await.unwrap();
        assert_eq!(r.kib(), 10);
        // Growing to less changes nothing.
        r.grow_to(5).await.unwrap();
        assert_eq!(r.kib(), 10);
        let mut other = budget.reservation(None);
        other.grow_to(54 * 1024).await.unwrap();
        refusal(&budget, "192.0.2.1", 1).await;
        // A refused request keeps what it had: it is about to be answered and dropped.
        assert!(other.grow_to(55 * 1024).await.is_err());
        assert_eq!(other.kib(), 54);
        drop(r);
        other.grow_to(55 * 1024).await.unwrap();
    }

    #[tokio::test]
    async fn one_request_larger_than_the_budget_still_runs_alone() {
        let budget = budget(64, 0);
        let mut big = budget.reservation(None);
        big.grow_to(10 << 20).await.unwrap();
        assert_eq!(big.kib(), 10 * 1024);
        // Nothing else fits until it is given back.
        let mut small = budget.reservation(None);
        assert!(small.grow_to(1).await.is_err());
        drop(big);
        small.grow_to(1).await.unwrap();
    }

    #[tokio::test]
    async fn one_address_holds_at_most_its_share() {
        let budget = budget(64, 16);
        let mut first = budget.reservation(ip("192.0.2.1"));
        first.grow_to(12 * 1024).await.unwrap();
        let mut second = budget.reservation(ip("192.0.2.1"));
        second.grow_to(4 * 1024).await.unwrap();
        let message = refusal(&budget, "192.0.2.1", 1).await;
        assert!(message.contains("your address"), "{message}");
        // The same address written as IPv4-mapped IPv6 is the same sender...
        refusal(&budget, "::ffff:192.0.2.1", 1).await;
        // ...and so is a whole IPv6 /64.
        let mut v6 = budget.reservation(ip("2001:db8::1"));
        v6.grow_to(16 * 1024).await.unwrap();
        refusal(&budget, "2001:db8::ffff:2", 1).await;
        // Other addresses have their own shares, within the whole budget: 16 + 16 + 16 + 16.
        let mut elsewhere = budget.reservation(ip("192.0.2.2"));
        elsewhere.grow_to(16 * 1024).await.unwrap();
        let mut more = budget.reservation(ip("192.0.2.3"));
        more.grow_to(16 * 1024).await.unwrap();
        let message = refusal(&budget, "192.0.2.4", 1).await;
        assert!(message.contains("retry shortly"), "{message}");
        assert_eq!(pools(&budget), 4);
        drop((first, second, v6, elsewhere, more));
        assert_eq!(
            pools(&budget),
            0,
            "addresses with nothing in flight are forgotten"
        );
    }

    #[tokio::test]
    async fn a_body_larger_than_the_share_still_arrives_alone() {
        let budget = budget(64, 16);
        let mut big = budget.reservation(ip("192.0.2.1"));
        big.grow_to(40 * 1024).await.unwrap();
        refusal(&budget, "192.0.2.1", 1).await;
        // It counts in full in the whole budget.
        let mut other = budget.reservation(ip("192.0.2.2"));
        other.grow_to(16 * 1024).await.unwrap();
        refusal(&budget, "192.0.2.3", 9).await;
    }
}
