//! The rate-limit figures servers last sent (`X-RateLimit-Limit`, `-Remaining`, `-Reset`),
//! per origin, for `flowhost status` and `/metrics`.
//!
//! What this module decides:
//! - **Off the hot path.** The http capability notes the figures of each response in memory
//!   ([`LastSent::note`]: a header scan and a map insert); the end of each top-level run
//!   writes the origins noted since the last write to the run-history database in one small
//!   statement per origin ([`crate::history::History::record_rate_limits`]), and nothing when no response
//!   carried them. A run that never ends (the process killed) loses only its own figures.
//! - **As sent.** The numbers are stored as the server sent them (not the host's own count of
//!   requests since), with the time they arrived; a header that is absent or not a
//!   non-negative integer is stored as null. A response carrying none of the three changes
//!   nothing.
//! - The table `_flowhost_rate_limits` is created with the history tables; reading works on
//!   a read-only connection and on a database from before it (no figures).

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::history::now_rfc3339;

/// What one origin last sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitSeen {
    /// `https://app.scaleft.com`.
    pub origin: String,
    /// `X-RateLimit-Limit`: requests per window.
    pub limit: Option<u64>,
    /// `X-RateLimit-Remaining`: requests left in the window.
    pub remaining: Option<u64>,
    /// `X-RateLimit-Reset`: unix seconds when the window resets.
    pub reset: Option<u64>,
    /// When the response arrived (RFC 3339, UTC).
    pub seen: String,
}

/// The figures noted since the last write, per origin (one per runtime).
#[derive(Debug, Default)]
pub struct LastSent {
    unsaved: Mutex<BTreeMap<String, RateLimitSeen>>,
}

impl LastSent {
    /// Notes what a response from `origin` with `headers` says (nothing if it carries none of
    /// the three headers).
    pub fn note(&self, origin: &str, headers: &[(String, String)]) {
        let num = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.trim().parse::<u64>().ok())
        };
        let (limit, remaining, reset) = (
            num("x-ratelimit-limit"),
            num("x-ratelimit-remaining"),
            num("x-ratelimit-reset"),
        );
        if limit.is_none() && remaining.is_none() && reset.is_none() {
            return;
        }
        let seen = RateLimitSeen {
            origin: origin.to_string(),
            limit,
            remaining,
            reset,
            seen: now_rfc3339(),
        };
        crate::runtime::lock(&self.unsaved).insert(origin.to_string(), seen);
    }

    /// Takes what was noted since the last call.
    pub fn take_unsaved(&self) -> Vec<RateLimitSeen> {
        std::mem::take(&mut *crate::runtime::lock(&self.unsaved))
            .into_values()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::History;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn figures_are_noted_per_origin_and_stored_once_taken() {
        let sent = LastSent::default();
        sent.note("http://a", &headers(&[("content-type", "text/plain")]));
        assert!(sent.take_unsaved().is_empty(), "no figures, nothing noted");
        sent.note(
            "http://a",
            &headers(&[
                ("X-RateLimit-Limit", "10000"),
                ("x-ratelimit-remaining", "9987"),
                ("X-RateLimit-Reset", "1709604000"),
            ]),
        );
        sent.note(
            "http://a",
            &headers(&[
                ("X-RateLimit-Limit", "10000"),
                ("x-ratelimit-remaining", "9986"),
                ("X-RateLimit-Reset", "-5"),
            ]),
        );
        sent.note("http://b", &headers(&[("X-RateLimit-Remaining", "7")]));
        let taken = sent.take_unsaved();
        assert!(sent.take_unsaved().is_empty(), "taken once");
        assert_eq!(taken.len(), 2);
        assert_eq!(
            (taken[0].limit, taken[0].remaining, taken[0].reset),
            (Some(10000), Some(9986), None),
            "the latest response wins; a negative reset is not a time"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let h = History::open(&path).unwrap();
        h.record_rate_limits(&taken).unwrap();
        drop(h);
        let ro = History::open_read_only(&path).unwrap();
        let mut stored = ro.rate_limits().unwrap();
        stored.sort_by(|a, b| a.origin.cmp(&b.origin));
        assert_eq!(stored, taken);
    }
}
