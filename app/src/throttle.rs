//! Sign-in throttling. Failures are counted per (user name, client address) and per client
//! address. After [`FREE_FAILURES`] failures in a row for a user from one address, that pair waits
//! 30 s, then 60 s, 120 s … at most [`MAX_LOCK`] before each next try; a success clears it. An
//! address that fails for many users waits too (password spraying). The lock is per address, so
//! nobody can lock a user out from elsewhere, and it is bounded, so never forever. State is kept
//! in memory per server instance (with N instances an attacker gets N times the attempts).
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures for a (user, address) pair before the first wait.
pub const FREE_FAILURES: u32 = 5;
/// Failures from one address (any users) within [`WINDOW`] before that address waits.
pub const ADDRESS_FAILURES: u32 = 50;
/// The longest wait.
pub const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// Failures older than this are forgotten.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// The throttle's memory.
#[derive(Debug, Default)]
pub struct Throttle {
    pairs: Mutex<HashMap<(String, IpAddr), Failures>>,
    addresses: Mutex<HashMap<IpAddr, Failures>>,
}

fn wait(f: &Failures, now: Instant) -> Option<Duration> {
    f.locked_until
        .and_then(|until| until.checked_duration_since(now))
        .filter(|d| !d.is_zero())
}

fn fail(f: &mut Failures, now: Instant, free: u32) {
    if now.duration_since(f.last) > WINDOW {
        f.count = 0;
    }
    f.count += 1;
    f.last = now;
    if f.count >= free {
        let doublings = (f.count - free).min(10);
        let lock = Duration::from_secs(30)
            .saturating_mul(1 << doublings)
            .min(MAX_LOCK);
        f.locked_until = Some(now + lock);
    }
}

impl Throttle {
    /// How long `user` from `ip` must wait before trying again, if at all (checked before the
    /// password is).
    pub fn wait(&self, user: &str, ip: IpAddr, now: Instant) -> Option<Duration> {
        let pair = self
            .pairs
            .lock()
            .ok()
            .and_then(|m| m.get(&(user.to_string(), ip)).and_then(|f| wait(f, now)));
        let address = self
            .addresses
            .lock()
            .ok()
            .and_then(|m| m.get(&ip).and_then(|f| wait(f, now)));
        pair.max(address)
    }

    /// Records a failed sign-in.
    pub fn failed(&self, user: &str, ip: IpAddr, now: Instant) {
        let fresh = Failures {
            count: 0,
            last: now,
            locked_until: None,
        };
        if let Ok(mut m) = self.pairs.lock() {
            if m.len() > 100_000 {
                m.retain(|_, f| now.duration_since(f.last) <= WINDOW);
            }
            fail(
                m.entry((user.to_string(), ip)).or_insert(fresh),
                now,
                FREE_FAILURES,
            );
        }
        if let Ok(mut m) = self.addresses.lock() {
            if m.len() > 100_000 {
                m.retain(|_, f| now.duration_since(f.last) <= WINDOW);
            }
            fail(m.entry(ip).or_insert(fresh), now, ADDRESS_FAILURES);
        }
    }

    /// Records a successful sign-in: the pair starts over.
    pub fn succeeded(&self, user: &str, ip: IpAddr) {
        if let Ok(mut m) = self.pairs.lock() {
            m.remove(&(user.to_string(), ip));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_per_user_and_address_and_stay_bounded() {
        let t = Throttle::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let now = Instant::now();
        for _ in 0..FREE_FAILURES - 1 {
            t.failed("alice", a, now);
            assert_eq!(t.wait("alice", a, now), None);
        }
        t.failed("alice", a, now);
        assert_eq!(t.wait("alice", a, now), Some(Duration::from_secs(30)));
        // The same user from another address is not locked: nobody locks someone else out.
        assert_eq!(t.wait("alice", b, now), None);
        // Each further failure doubles the wait, up to the cap.
        t.failed("alice", a, now);
        assert_eq!(t.wait("alice", a, now), Some(Duration::from_secs(60)));
        for _ in 0..20 {
            t.failed("alice", a, now);
        }
        assert_eq!(t.wait("alice", a, now), Some(MAX_LOCK));
        // Waits end.
        assert_eq!(t.wait("alice", a, now + MAX_LOCK), None);
        // A success clears the pair.
        t.succeeded("alice", a);
        assert_eq!(t.wait("alice", a, now), None);
    }

    #[test]
    fn spraying_many_users_from_one_address_waits_too() {
        let t = Throttle::default();
        let a: IpAddr = "10.0.0.9".parse().unwrap();
        let now = Instant::now();
        for i in 0..ADDRESS_FAILURES {
            t.failed(&format!("user{i}"), a, now);
        }
        assert!(t.wait("someone-else", a, now).is_some());
        assert!(t
            .wait("someone-else", "10.0.0.10".parse().unwrap(), now)
            .is_none());
    }
}
