//! The login throttle: failed logins only, counted per name and per address over a
//! sliding minute. A name that failed 5 times, or an address that failed 20 times (an
//! office behind one proxy shares it), waits until its oldest failure is a minute old; a
//! successful login never counts, so colleagues who type their passwords right are never
//! turned away. Pure apart from its lock: the caller passes the instant.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins a name may have in a window.
pub const PER_NAME: usize = 5;
/// Failed logins an address may have in a window (several people behind one proxy).
pub const PER_ADDRESS: usize = 20;
const WINDOW: Duration = Duration::from_secs(60);
/// Keys kept before the expired ones are swept (names sprayed by a guesser).
const SWEEP_AT: usize = 10_000;

/// Recent failures per key.
struct Failures<K> {
    max: usize,
    seen: Mutex<HashMap<K, VecDeque<Instant>>>,
}

impl<K: Hash + Eq + Clone> Failures<K> {
    fn new(max: usize) -> Self {
        Failures {
            max,
            seen: Mutex::new(HashMap::new()),
        }
    }

    fn blocked(&self, key: &K, now: Instant) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return true;
        };
        let Some(q) = seen.get_mut(key) else {
            return false;
        };
        expire(q, now);
        q.len() >= self.max
    }

    fn record(&self, key: &K, now: Instant) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        if seen.len() >= SWEEP_AT {
            seen.retain(|_, q| {
                expire(q, now);
                !q.is_empty()
            });
        }
        let q = seen.entry(key.clone()).or_default();
        expire(q, now);
        q.push_back(now);
    }
}

fn expire(q: &mut VecDeque<Instant>, now: Instant) {
    while q
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
    {
        q.pop_front();
    }
}

/// Failed console logins, per name and per address.
pub struct Throttle {
    by_name: Failures<String>,
    by_addr: Failures<IpAddr>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            by_name: Failures::new(PER_NAME),
            by_addr: Failures::new(PER_ADDRESS),
        }
    }
}

impl Throttle {
    /// True when this name, or this address, has failed too often in the last minute:
    /// the attempt is not even checked.
    pub fn blocked(&self, name: &str, addr: IpAddr, now: Instant) -> bool {
        self.by_name.blocked(&name.to_string(), now) || self.by_addr.blocked(&addr, now)
    }

    /// Counts a failed login (a wrong name or password).
    pub fn failed(&self, name: &str, addr: IpAddr, now: Instant) {
        self.by_name.record(&name.to_string(), now);
        self.by_addr.record(&addr, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn successful_logins_never_count() {
        let t = Throttle::default();
        let now = Instant::now();
        // Nothing but checks: an office logging in all morning is never turned away.
        assert!((0..1000).all(|_| !t.blocked("vera", addr(1), now)));
    }

    #[test]
    fn a_name_that_failed_five_times_waits_a_minute() {
        let t = Throttle::default();
        let now = Instant::now();
        for i in 0..PER_NAME {
            assert!(!t.blocked("vera", addr(1), now), "attempt {i}");
            t.failed("vera", addr(1), now);
        }
        assert!(t.blocked("vera", addr(1), now));
        assert!(t.blocked("vera", addr(2), now), "from anywhere");
        assert!(
            !t.blocked("abe", addr(1), now),
            "a colleague behind the same proxy"
        );
        assert!(!t.blocked("vera", addr(1), now + WINDOW), "after a minute");
    }

    #[test]
    fn an_address_that_failed_twenty_times_waits_a_minute() {
        let t = Throttle::default();
        let now = Instant::now();
        for i in 0..PER_ADDRESS {
            t.failed(&format!("guess{i}"), addr(9), now);
        }
        assert!(t.blocked("abe", addr(9), now), "a name sprayer's address");
        assert!(!t.blocked("abe", addr(1), now));
        assert!(!t.blocked("abe", addr(9), now + WINDOW));
    }
}
