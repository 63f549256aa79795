//! Log-in attempts per client address: [`LoginThrottle`] lets [`ATTEMPTS_PER_MINUTE`] `POST
//! /login` from one address through in a burst, then one every few seconds, so a weak
//! operator token cannot be guessed at the speed of the network. Every attempt counts, right
//! or wrong: a person logs in a few times a day. A refused attempt is not checked at all (the
//! right token is refused too until the address may try again) and is answered 429 with
//! `Retry-After`.
//!
//! Behind a reverse proxy every client has the proxy's address and they share the budget; the
//! `Authorization: Bearer` path and sessions already logged in are not throttled.

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
        self.limiter.check_key(&peer).map_err(|not_until| {
            not_until
                .wait_time_from(self.clock.now())
                .max(Duration::from_secs(1))
        })
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
    }
}
