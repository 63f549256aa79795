//! Log-in attempts per client address: [`LoginThrottle`] lets [`ATTEMPTS_PER_MINUTE`] `POST
//! /login` from one address through in a burst, then one every few seconds, so a weak
//! operator token cannot be guessed at the speed of the network. Every attempt counts, right
//! or wrong: a person logs in a few times a day. A refused attempt is not checked at all (the
//! right token is refused too until the address may try again) and is answered 429 with
//! `Retry-After`.
//!
//! An IPv6 client is counted by its /64 (one host can hold a whole /64 and try from each of its
//! addresses). Behind a reverse proxy every client has the proxy's address and they share the
//! budget; the `Authorization: Bearer` path and sessions already logged in are not throttled.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// Log-in attempts one address may make in a burst; it gets one back every
/// `60 / ATTEMPTS_PER_MINUTE` seconds.
pub const ATTEMPTS_PER_MINUTE: u32 = 10;

/// Addresses remembered past which the forgotten ones (those back to a full budget) are
/// dropped, so that attempts from many addresses cannot grow the map without bound.
const REMEMBERED: usize = 10_000;

/// The log-in budget of every client address of one `serve`.
pub struct LoginThrottle {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        let per_minute = NonZeroU32::new(ATTEMPTS_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
        LoginThrottle {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_minute(per_minute)),
            clock: DefaultClock::default(),
        }
    }
}

impl LoginThrottle {
    /// Counts an attempt from `peer`: `Ok` if it may be checked, else how long until the next
    /// one may (at least a second).
    pub fn attempt(&self, peer: IpAddr) -> Result<(), Duration> {
        if self.limiter.len() > REMEMBERED {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&budget_of(peer))
            .map_err(|not_until| {
                not_until
                    .wait_time_from(self.clock.now())
                    .max(Duration::from_secs(1))
            })
    }
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
