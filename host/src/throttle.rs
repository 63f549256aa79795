//! Token guesses per client address, so that a weak token cannot be guessed at the speed of
//! the network. Two budgets, both per address:
//!
//! - [`LoginThrottle`], the console's `POST /login`: [`ATTEMPTS_PER_MINUTE`] attempts in a
//!   burst, then one every few seconds. Every attempt counts, right or wrong: a person logs in
//!   a few times a day. A refused attempt is not checked at all (the right token is refused
//!   too until the address may try again).
//! - [`GuessThrottle`], every other token a client presents (an API endpoint flow's
//!   `x-api-client-token`, the console's `Authorization: Bearer`): only wrong tokens count, so
//!   a client with the right one is never slowed, however often it calls. After
//!   [`WRONG_TOKENS_PER_MINUTE`] wrong tokens in a burst the address is refused, right token or
//!   not, until it has earned one more try (one every few seconds). A missing token is no
//!   guess and is not counted.
//!
//! A refusal is answered 429 with `Retry-After`. An IPv6 client is counted by its /64 (one
//! host can hold a whole /64 and try from each of its addresses). The address is the client's
//! as [`crate::client_addr`] finds it: behind a reverse proxy that is not in
//! `trusted_proxies:`, every client has the proxy's address and they share the budgets.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// Log-in attempts one address may make in a burst; it gets one back every
/// `60 / ATTEMPTS_PER_MINUTE` seconds.
pub const ATTEMPTS_PER_MINUTE: u32 = 10;

/// Wrong tokens one address may present in a burst; it gets one back every
/// `60 / WRONG_TOKENS_PER_MINUTE` seconds.
pub const WRONG_TOKENS_PER_MINUTE: u32 = 10;

/// Addresses remembered past which the forgotten ones (those back to a full budget, or no
/// longer refused) are dropped, so that attempts from many addresses cannot grow the maps
/// without bound.
const REMEMBERED: usize = 10_000;

/// A keyed limiter of `per_minute` cells per address.
fn per_minute(per_minute: u32) -> DefaultKeyedRateLimiter<IpAddr> {
    let n = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
    DefaultKeyedRateLimiter::keyed(Quota::per_minute(n))
}

/// Spends one cell of `peer`'s budget in `limiter`: `Ok`, or how long until the next cell (at
/// least a second).
fn spend(limiter: &DefaultKeyedRateLimiter<IpAddr>, peer: IpAddr) -> Result<(), Duration> {
    if limiter.len() > REMEMBERED {
        limiter.retain_recent();
    }
    limiter.check_key(&budget_of(peer)).map_err(|not_until| {
        not_until
            .wait_time_from(DefaultClock::default().now())
            .max(Duration::from_secs(1))
    })
}

/// The log-in budget of every client address of one `serve`.
pub struct LoginThrottle {
    attempts: DefaultKeyedRateLimiter<IpAddr>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle {
            attempts: per_minute(ATTEMPTS_PER_MINUTE),
        }
    }
}

impl LoginThrottle {
    /// Counts an attempt from `peer`: `Ok` if it may be checked, else how long until the next
    /// one may (at least a second).
    pub fn attempt(&self, peer: IpAddr) -> Result<(), Duration> {
        spend(&self.attempts, peer)
    }
}

/// The wrong-token budget of every client address of one `serve`, shared by the API endpoint
/// flows and the console's `Authorization: Bearer`.
pub struct GuessThrottle {
    wrong: DefaultKeyedRateLimiter<IpAddr>,
    /// Addresses that spent their budget, and until when they are refused.
    refused: Mutex<HashMap<IpAddr, Instant>>,
}

impl Default for GuessThrottle {
    fn default() -> Self {
        GuessThrottle {
            wrong: per_minute(WRONG_TOKENS_PER_MINUTE),
            refused: Mutex::default(),
        }
    }
}

impl GuessThrottle {
    /// Before a token from `peer` is checked: `Ok`, or how long the address is still refused
    /// (at least a second).
    pub fn admit(&self, peer: IpAddr) -> Result<(), Duration> {
        let key = budget_of(peer);
        let mut refused = crate::runtime::lock(&self.refused);
        let Some(until) = refused.get(&key).copied() else {
            return Ok(());
        };
        let now = Instant::now();
        if until > now {
            return Err((until - now).max(Duration::from_secs(1)));
        }
        refused.remove(&key);
        Ok(())
    }

    /// After a wrong token from `peer`: `None`, or, when that spent the address's budget, how
    /// long it is refused from now.
    pub fn wrong(&self, peer: IpAddr) -> Option<Duration> {
        let wait = spend(&self.wrong, peer).err()?;
        let now = Instant::now();
        let mut refused = crate::runtime::lock(&self.refused);
        if refused.len() > REMEMBERED {
            refused.retain(|_, until| *until > now);
        }
        refused.insert(budget_of(peer), now + wait);
        Some(wait)
    }
}

/// The client's address as the listener recorded it ([`crate::client_addr`]; unspecified when
/// it did not: such clients share one budget).
pub fn client_ip(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<crate::client_addr::ClientAddr>()
        .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |c| c.ip)
}

/// `response` with `Retry-After: secs`, as every 429 of these budgets carries it.
pub fn with_retry_after(
    mut response: axum::response::Response,
    secs: u64,
) -> axum::response::Response {
    response
        .headers_mut()
        .insert(axum::http::header::RETRY_AFTER, secs.into());
    response
}

/// `wait` as the whole seconds `Retry-After` says (rounded up).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// The address whose budget an attempt from `peer` spends: IPv4 as it is (an IPv4-mapped IPv6
/// address as its IPv4), IPv6 as its /64.
fn budget_of(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refused_per_address_with_the_wait() {
        let t = LoginThrottle::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        for i in 0..ATTEMPTS_PER_MINUTE {
            assert_eq!(t.attempt(a), Ok(()), "attempt {i}");
        }
        let wait = t.attempt(a).unwrap_err();
        // One attempt comes back every 6 s.
        assert!(
            wait >= Duration::from_secs(1) && wait <= Duration::from_secs(6),
            "{wait:?}"
        );
        // Another address has its own budget.
        assert_eq!(t.attempt(b), Ok(()));
        assert!(t.attempt(a).is_err());
        // The same IPv4 address written as IPv6 is the same client.
        assert!(t.attempt("::ffff:192.0.2.1".parse().unwrap()).is_err());
    }

    #[test]
    fn only_wrong_tokens_spend_and_a_spent_address_is_refused_for_the_wait() {
        let t = GuessThrottle::default();
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        let b: IpAddr = "2001:db8::7".parse().unwrap();
        // Right tokens (admitted, never reported wrong) spend nothing.
        for _ in 0..100 {
            assert_eq!(t.admit(a), Ok(()));
        }
        for i in 0..WRONG_TOKENS_PER_MINUTE {
            assert_eq!(t.admit(a), Ok(()), "guess {i}");
            assert_eq!(t.wrong(a), None, "guess {i}");
        }
        assert_eq!(t.admit(a), Ok(()));
        let wait = t.wrong(a).unwrap();
        assert!(
            wait >= Duration::from_secs(1) && wait <= Duration::from_secs(6),
            "{wait:?}"
        );
        let left = t.admit(a).unwrap_err();
        assert!(left <= wait && left >= Duration::from_secs(1), "{left:?}");
        // Its IPv4-mapped form is the same client; another address is not refused.
        assert!(t.admit("::ffff:192.0.2.7".parse().unwrap()).is_err());
        assert_eq!(t.admit(b), Ok(()));
        assert_eq!(t.wrong(b), None);
    }

    #[test]
    fn an_address_whose_refusal_ended_is_admitted_again() {
        let t = GuessThrottle::default();
        let a: IpAddr = "192.0.2.8".parse().unwrap();
        // A refusal that has ended, as `wrong` leaves one behind.
        crate::runtime::lock(&t.refused).insert(a, Instant::now() - Duration::from_millis(1));
        assert_eq!(t.admit(a), Ok(()));
        assert!(crate::runtime::lock(&t.refused).is_empty());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::from_secs(6)), 6);
        assert_eq!(retry_after_secs(Duration::from_millis(5_001)), 6);
        assert_eq!(retry_after_secs(Duration::from_millis(999)), 1);
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let t = LoginThrottle::default();
        for i in 0..ATTEMPTS_PER_MINUTE {
            let same_64: IpAddr = format!("2001:db8:1:2::{:x}", i + 1).parse().unwrap();
            assert_eq!(t.attempt(same_64), Ok(()), "attempt {i}");
        }
        assert!(t.attempt("2001:db8:1:2:ffff::9".parse().unwrap()).is_err());
        assert_eq!(t.attempt("2001:db8:1:3::1".parse().unwrap()), Ok(()));
    }
}
