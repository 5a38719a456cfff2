//! Sign-in throttling. Failures are counted per (user name, client address) and per client
//! address. After [`FREE_FAILURES`] failures in a row for a user from one address, that pair waits
//! 30 s, then 60 s, 120 s … at most [`MAX_LOCK`] before each next try; a success clears it. An
//! address that fails for many users waits too (password spraying). The lock is per address, so
//! nobody can lock a user out from elsewhere, and it is bounded, so never forever. State is kept
//! in memory per server instance (with N instances an attacker gets N times the attempts).
//!
//! A sign-in [`reserve`](Throttle::reserve)s its attempt before the password is verified: the
//! check and the count are one step, so the attempt counts as a failure up front and concurrent
//! attempts cannot all pass the check before any failure is recorded. A success gives the
//! reservation back ([`succeeded`](Throttle::succeeded)).
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
/// How often the server prunes forgotten failures ([`Throttle::prune`]).
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);

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

/// Counts a failure for `key` (forgetting stale entries when the map grows large).
fn record<K: std::hash::Hash + Eq>(m: &mut HashMap<K, Failures>, key: K, now: Instant, free: u32) {
    if m.len() > 100_000 {
        m.retain(|_, f| now.duration_since(f.last) <= WINDOW);
    }
    let fresh = Failures {
        count: 0,
        last: now,
        locked_until: None,
    };
    fail(m.entry(key).or_insert(fresh), now, free);
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

/// The address a throttle entry is kept under: an IPv4 address as it is, an IPv6 address as its
/// /64 network (one subscriber's prefix: rotating addresses inside it gains no attempts).
pub fn throttle_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

impl Throttle {
    /// How long `user` from `ip` must wait before trying again, if at all (checked before the
    /// password is).
    pub fn wait(&self, user: &str, ip: IpAddr, now: Instant) -> Option<Duration> {
        let ip = throttle_key(ip);
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

    /// Reserves a sign-in attempt of `user` from `ip` before its password is verified: `Err` with
    /// the wait when the pair or the address must wait, else the attempt is counted as a failure
    /// now, in the same step as the check (a success gives it back through [`Self::succeeded`]).
    /// So of any number of concurrent attempts at most [`FREE_FAILURES`] reach verification.
    pub fn reserve(&self, user: &str, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let ip = throttle_key(ip);
        // Both maps are held for the whole step (always pairs first, so no two steps deadlock).
        // A poisoned lock refuses the attempt rather than letting it through unthrottled.
        let refuse = Duration::from_secs(1);
        let mut pairs = self.pairs.lock().map_err(|_| refuse)?;
        let mut addresses = self.addresses.lock().map_err(|_| refuse)?;
        let key = (user.to_string(), ip);
        let pair_wait = pairs.get(&key).and_then(|f| wait(f, now));
        let address_wait = addresses.get(&ip).and_then(|f| wait(f, now));
        if let Some(w) = pair_wait.max(address_wait) {
            return Err(w);
        }
        record(&mut pairs, key, now, FREE_FAILURES);
        record(&mut addresses, ip, now, ADDRESS_FAILURES);
        Ok(())
    }

    /// Records a failed sign-in that was not reserved (a reserved attempt already counts).
    pub fn failed(&self, user: &str, ip: IpAddr, now: Instant) {
        let ip = throttle_key(ip);
        if let Ok(mut m) = self.pairs.lock() {
            record(&mut m, (user.to_string(), ip), now, FREE_FAILURES);
        }
        if let Ok(mut m) = self.addresses.lock() {
            record(&mut m, ip, now, ADDRESS_FAILURES);
        }
    }

    /// Forgets every entry whose last failure is older than [`WINDOW`] and whose wait is over; the
    /// server runs it on a timer ([`PRUNE_EVERY`]), so the maps hold only recent failures however
    /// many names an attacker tries. Returns how many entries remain.
    pub fn prune(&self, now: Instant) -> usize {
        let stale =
            |f: &Failures| now.saturating_duration_since(f.last) > WINDOW && wait(f, now).is_none();
        let mut left = 0;
        if let Ok(mut m) = self.pairs.lock() {
            m.retain(|_, f| !stale(f));
            left += m.len();
        }
        if let Ok(mut m) = self.addresses.lock() {
            m.retain(|_, f| !stale(f));
            left += m.len();
        }
        left
    }

    /// Records that the attempt reserved for `user` from `ip` succeeded: the pair starts over,
    /// and the attempt no longer counts against the address.
    pub fn succeeded(&self, user: &str, ip: IpAddr) {
        let ip = throttle_key(ip);
        if let Ok(mut m) = self.pairs.lock() {
            m.remove(&(user.to_string(), ip));
        }
        if let Ok(mut m) = self.addresses.lock() {
            if let Some(f) = m.get_mut(&ip) {
                f.count = f.count.saturating_sub(1);
                if f.count < ADDRESS_FAILURES {
                    f.locked_until = None;
                }
            }
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
    fn an_ipv6_prefix_is_one_address() {
        let t = Throttle::default();
        let now = Instant::now();
        for i in 0..FREE_FAILURES {
            let ip: IpAddr = format!("2001:db8:1:2::{:x}", i + 1).parse().unwrap();
            assert!(t.reserve("victim", ip, now).is_ok());
        }
        let other_in_prefix: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert!(t.reserve("victim", other_in_prefix, now).is_err());
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(t.reserve("victim", elsewhere, now).is_ok());
    }

    #[test]
    fn pruning_forgets_old_failures_but_not_running_waits() {
        let t = Throttle::default();
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let start = Instant::now();
        for i in 0..1000 {
            t.failed(&format!("spray-{i}"), ip, start);
        }
        for _ in 0..FREE_FAILURES + 8 {
            t.failed("victim", ip, start);
        }
        assert_eq!(t.prune(start), 1002);
        // After the window, the one-off names are gone; the pair still waiting stays until its
        // wait is over (at most MAX_LOCK).
        let later = start + WINDOW + Duration::from_secs(1);
        let left = t.prune(later);
        assert!(left <= 2, "{left}");
        assert!(t.wait("victim", ip, later).is_some() || left == 0);
        assert_eq!(
            t.prune(start + WINDOW + MAX_LOCK + Duration::from_secs(2)),
            0
        );
    }

    #[test]
    fn reserving_counts_up_front_and_a_success_gives_it_back() {
        let t = Throttle::default();
        let a: IpAddr = "10.0.0.3".parse().unwrap();
        let now = Instant::now();
        // Reserved attempts that have not finished yet count: the next ones wait.
        for _ in 0..FREE_FAILURES {
            assert_eq!(t.reserve("bob", a, now), Ok(()));
        }
        assert_eq!(t.reserve("bob", a, now), Err(Duration::from_secs(30)));
        assert!(t.wait("bob", a, now).is_some());
        // A success clears the pair and gives the address its attempt back.
        t.succeeded("bob", a);
        assert_eq!(t.wait("bob", a, now), None);
        for i in 0..ADDRESS_FAILURES - 1 {
            assert_eq!(t.reserve(&format!("user{i}"), a, now), Ok(()));
            t.succeeded(&format!("user{i}"), a);
        }
        assert_eq!(t.wait("someone", a, now), None);
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
