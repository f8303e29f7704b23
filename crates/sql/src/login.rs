//! What a login reveals and how often it may fail: the verifier a password login is checked
//! against when there is no real one (so an unknown user, a user without a password and an
//! unknown or stopped virtual cluster look exactly like a wrong password), and the
//! failed-login throttle (per client address and per user name, per node).

use crate::catalog::{self, ScramVerifier};
use crate::error::SqlResult;
use crate::exec::SCRAM_ITERATIONS;
use crate::settings;
use pgwire::api::auth::sasl::scram::gen_salted_password;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tenant::TenantTxn;

/// Throttle entries a node keeps at most (an attacker may try endless user names).
pub const THROTTLE_CAPACITY: usize = 10_000;

/// A verifier no password matches, for a login that has no real one. It is derived from the
/// cluster's secret login nonce, the virtual cluster and the user name, so it is the same on
/// every node and every attempt: its salt (sent to the client) looks like a stored user's.
/// Deriving it costs what reading a stored one does, so the timing does not differ either.
pub fn dummy_verifier(nonce: &[u8], cluster: &str, user: &str) -> ScramVerifier {
    let key: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    // HMAC-SHA-256 keyed by the secret nonce (PBKDF2 with one iteration).
    let derive = |label: &str| {
        gen_salted_password(&key, format!("{label}\0{cluster}\0{user}").as_bytes(), 1)
    };
    let mut salt = derive("salt");
    salt.truncate(16);
    ScramVerifier {
        salt,
        iterations: SCRAM_ITERATIONS,
        stored_key: derive("stored"),
        server_key: derive("server"),
    }
}

/// The failed-login throttle's settings (`server.auth.failed_login_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failures in a row before the throttle acts; 0 turns it off.
    pub limit: u32,
    /// The first wait; it doubles with every further failure.
    pub backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
}

impl Default for ThrottleSettings {
    /// The settings' defaults.
    fn default() -> Self {
        ThrottleSettings {
            limit: 5,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl ThrottleSettings {
    /// Reads the settings through a transaction of the system virtual cluster.
    pub async fn read(txn: &mut TenantTxn) -> SqlResult<Self> {
        let limit = catalog::get_setting(txn, "server.auth.failed_login_limit").await?;
        let backoff = catalog::get_setting(txn, "server.auth.failed_login_backoff").await?;
        let max = catalog::get_setting(txn, "server.auth.failed_login_max_backoff").await?;
        // Stored values were validated when set; a negative limit means off.
        Ok(ThrottleSettings {
            limit: limit.parse::<i64>().unwrap_or(0).clamp(0, u32::MAX as i64) as u32,
            backoff: settings::parse_duration(&backoff).unwrap_or(Duration::from_secs(1)),
            max_backoff: settings::parse_duration(&max).unwrap_or(Duration::from_secs(30)),
        })
    }

    /// The wait after `failures` failures in a row.
    fn wait_after(&self, failures: u32) -> Duration {
        if self.limit == 0 || failures < self.limit {
            return Duration::ZERO;
        }
        let doublings = (failures - self.limit).min(30);
        self.backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }
}

/// What the throttle says about a password login before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allow,
    /// The user name failed too often: go ahead after this wait (never longer than the
    /// maximum backoff, so nobody can lock a user out, root included).
    Delay(Duration),
    /// The client's address failed too often: refuse; it may retry after this wait.
    Refuse(Duration),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    User { cluster: String, user: String },
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
}

impl Entry {
    fn remaining(&self, s: &ThrottleSettings, now: Instant) -> Duration {
        (self.last_failure + s.wait_after(self.failures)).saturating_duration_since(now)
    }

    /// Forgotten once quiet for the maximum backoff after its wait ended.
    fn stale(&self, s: &ThrottleSettings, now: Instant) -> bool {
        now >= self.last_failure + s.wait_after(self.failures) + s.max_backoff
    }
}

/// Failed password logins on one node, by client address and by (virtual cluster, user
/// name) as the client gave them, whether or not they exist. Time comes in as `now`.
#[derive(Debug)]
pub struct LoginThrottle {
    entries: Mutex<HashMap<Key, Entry>>,
    capacity: usize,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new(THROTTLE_CAPACITY)
    }
}

impl LoginThrottle {
    /// A throttle keeping at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        LoginThrottle {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(2),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        // A panic while holding the lock leaves consistent counters: keep using them.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn keys(addr: IpAddr, cluster: &str, user: &str) -> [Key; 2] {
        [
            Key::Address(addr),
            Key::User {
                cluster: cluster.to_string(),
                user: user.to_string(),
            },
        ]
    }

    /// The verdict for a password login of `user` to `cluster` from `addr`.
    pub fn check(
        &self,
        addr: IpAddr,
        cluster: &str,
        user: &str,
        s: &ThrottleSettings,
        now: Instant,
    ) -> Verdict {
        let entries = self.lock();
        let [address, user] = Self::keys(addr, cluster, user);
        let wait = |k: &Key| {
            entries
                .get(k)
                .map_or(Duration::ZERO, |e| e.remaining(s, now))
        };
        let by_address = wait(&address);
        if !by_address.is_zero() {
            return Verdict::Refuse(by_address);
        }
        let by_user = wait(&user);
        if !by_user.is_zero() {
            return Verdict::Delay(by_user.min(s.max_backoff));
        }
        Verdict::Allow
    }

    /// Counts a failed login.
    pub fn failed(
        &self,
        addr: IpAddr,
        cluster: &str,
        user: &str,
        s: &ThrottleSettings,
        now: Instant,
    ) {
        let mut entries = self.lock();
        for key in Self::keys(addr, cluster, user) {
            if !entries.contains_key(&key) && entries.len() >= self.capacity {
                entries.retain(|_, e| !e.stale(s, now));
                if entries.len() >= self.capacity
                    && let Some(oldest) = entries
                        .iter()
                        .min_by_key(|(_, e)| e.last_failure)
                        .map(|(k, _)| k.clone())
                {
                    entries.remove(&oldest);
                }
            }
            let entry = entries.entry(key).or_insert(Entry {
                failures: 0,
                last_failure: now,
            });
            if entry.stale(s, now) {
                entry.failures = 0;
            }
            entry.failures = entry.failures.saturating_add(1);
            entry.last_failure = now;
        }
    }

    /// Forgets the failures of the address and the user after a successful login.
    pub fn succeeded(&self, addr: IpAddr, cluster: &str, user: &str) {
        let mut entries = self.lock();
        for key in Self::keys(addr, cluster, user) {
            entries.remove(&key);
        }
    }

    /// Entries held (for tests).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: ThrottleSettings = ThrottleSettings {
        limit: 3,
        backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(8),
    };

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    // issue 14 item 10: failed logins are throttled per address (refused) and per user name
    // (delayed, never refused, so another address cannot lock a user such as root out).
    // Method: a fake clock; failures below the limit pass, at the limit the address is
    // refused with a doubling wait capped at the maximum, the same user from another
    // address is only delayed, a success forgets both, a quiet key is forgotten.
    #[test]
    fn throttles_by_address_and_delays_by_user() {
        let t = LoginThrottle::default();
        let t0 = Instant::now();
        for i in 0..2 {
            t.failed(ip(1), "system", "root", &S, t0);
            assert_eq!(
                t.check(ip(1), "system", "root", &S, t0),
                Verdict::Allow,
                "{i}"
            );
        }
        t.failed(ip(1), "system", "root", &S, t0);
        assert_eq!(
            t.check(ip(1), "system", "root", &S, t0),
            Verdict::Refuse(Duration::from_secs(1))
        );
        // The address is refused for any user; another address is delayed for this user only.
        assert!(matches!(
            t.check(ip(1), "system", "alice", &S, t0),
            Verdict::Refuse(_)
        ));
        assert_eq!(
            t.check(ip(2), "system", "root", &S, t0),
            Verdict::Delay(Duration::from_secs(1))
        );
        assert_eq!(t.check(ip(2), "system", "alice", &S, t0), Verdict::Allow);
        assert_eq!(
            t.check(ip(2), "application", "root", &S, t0),
            Verdict::Allow
        );
        // After the wait, one more failure doubles it; the cap holds.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(t.check(ip(1), "system", "root", &S, t1), Verdict::Allow);
        t.failed(ip(1), "system", "root", &S, t1);
        assert_eq!(
            t.check(ip(1), "system", "root", &S, t1),
            Verdict::Refuse(Duration::from_secs(2))
        );
        let mut now = t1;
        for _ in 0..10 {
            now += Duration::from_secs(5);
            t.failed(ip(1), "system", "root", &S, now);
        }
        match t.check(ip(3), "system", "root", &S, now) {
            Verdict::Delay(d) => assert!(d <= S.max_backoff, "{d:?}"),
            other => panic!("a user is delayed, never refused: {other:?}"),
        }
        // A success forgets the address and the user.
        t.succeeded(ip(1), "system", "root");
        assert_eq!(t.check(ip(1), "system", "root", &S, now), Verdict::Allow);
        // A quiet key is forgotten: the count starts again.
        t.failed(ip(4), "system", "bob", &S, t0);
        t.failed(ip(4), "system", "bob", &S, t0);
        t.failed(ip(4), "system", "bob", &S, t0);
        let later = t0 + Duration::from_secs(100);
        t.failed(ip(4), "system", "bob", &S, later);
        assert_eq!(t.check(ip(4), "system", "bob", &S, later), Verdict::Allow);
        // Limit 0 turns it off.
        for _ in 0..3 {
            t.failed(ip(5), "system", "carol", &S, later);
        }
        assert!(matches!(
            t.check(ip(5), "system", "carol", &S, later),
            Verdict::Refuse(_)
        ));
        let off = ThrottleSettings { limit: 0, ..S };
        assert_eq!(
            t.check(ip(5), "system", "carol", &off, later),
            Verdict::Allow
        );
    }

    // Goal: the defaults used when the settings cannot be read are the settings' defaults.
    #[test]
    fn defaults_match_the_settings() {
        let def = |n: &str| settings::lookup(n).expect("known").default;
        let d = ThrottleSettings::default();
        assert_eq!(d.limit.to_string(), def("server.auth.failed_login_limit"));
        assert_eq!(
            Some(d.backoff),
            settings::parse_duration(def("server.auth.failed_login_backoff"))
        );
        assert_eq!(
            Some(d.max_backoff),
            settings::parse_duration(def("server.auth.failed_login_max_backoff"))
        );
    }

    // Goal: endless distinct user names cannot grow the throttle past its capacity.
    #[test]
    fn capacity_is_bounded() {
        let t = LoginThrottle::new(16);
        let now = Instant::now();
        for i in 0..1000 {
            t.failed(ip(9), "system", &format!("u{i}"), &S, now);
        }
        assert!(t.len() <= 16, "{}", t.len());
    }

    // issue 14 item 10: the verifier of a login without a real one is stable per (virtual
    // cluster, user) and looks like a stored one (16-byte salt, 32-byte keys), so its salt
    // does not tell an unknown user from a known one; it differs by user and by nonce.
    #[test]
    fn dummy_verifier_is_stable_and_per_user() {
        let a = dummy_verifier(b"nonce-1", "system", "ghost");
        assert_eq!(a, dummy_verifier(b"nonce-1", "system", "ghost"));
        assert_eq!(a.salt.len(), 16);
        assert_eq!(a.stored_key.len(), 32);
        assert_eq!(a.server_key.len(), 32);
        assert_eq!(a.iterations, SCRAM_ITERATIONS);
        assert_ne!(a.salt, dummy_verifier(b"nonce-1", "system", "ghost2").salt);
        assert_ne!(a.salt, dummy_verifier(b"nonce-1", "app", "ghost").salt);
        assert_ne!(a.salt, dummy_verifier(b"nonce-2", "system", "ghost").salt);
        assert_ne!(a.stored_key, a.server_key);
    }
}
