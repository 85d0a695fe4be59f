//! Sessions counted per peer, beside the global limit: without it a handful of idle
//! connections from one address locked every other sender out.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

type Counts = Arc<Mutex<HashMap<IpAddr, usize>>>;

pub(super) struct PeerLimit {
    max: usize,
    counts: Counts,
}

/// One session's share of its peer's allowance, given back on drop.
pub(super) struct PeerSlot {
    key: IpAddr,
    counts: Counts,
}

impl PeerLimit {
    pub(super) fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            counts: Counts::default(),
        }
    }

    /// `None` when `ip` already holds `max` sessions.
    pub(super) fn try_acquire(&self, ip: IpAddr) -> Option<PeerSlot> {
        let key = peer_key(ip);
        let mut counts = lock(&self.counts);
        let n = counts.entry(key).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            key,
            counts: self.counts.clone(),
        })
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        lock(&self.counts).len()
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        if let Some(n) = counts.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// The counters stay consistent under every early exit, so a panic elsewhere while the lock
/// was held is no reason to stop counting.
fn lock(counts: &Counts) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
    counts.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What counts as one peer: an IPv4 address (also when a dual-stack socket reports it as
/// `::ffff:a.b.c.d`), or an IPv6 /64, since one host is routinely given a whole /64.
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_address_and_forgets_idle_peers() {
        let limit = PeerLimit::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = limit.try_acquire(a).unwrap();
        let _second = limit.try_acquire(a).unwrap();
        assert!(limit.try_acquire(a).is_none());
        assert!(
            limit
                .try_acquire("::ffff:10.0.0.1".parse().unwrap())
                .is_none()
        );
        let other = limit.try_acquire(b).unwrap();
        drop(first);
        assert!(
            limit.try_acquire(a).is_some(),
            "a slot is given back on drop"
        );
        drop(other);
        assert_eq!(limit.tracked(), 1, "a peer with no sessions is forgotten");
    }

    #[test]
    fn an_ipv6_peer_is_its_64() {
        let limit = PeerLimit::new(1);
        let _held = limit
            .try_acquire("2001:db8:1:2::1".parse().unwrap())
            .unwrap();
        assert!(
            limit
                .try_acquire("2001:db8:1:2::ffff".parse().unwrap())
                .is_none()
        );
        assert!(
            limit
                .try_acquire("2001:db8:1:3::1".parse().unwrap())
                .is_some()
        );
    }
}
