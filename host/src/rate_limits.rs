//! The rate-limit figures servers last sent (`X-RateLimit-Limit`, `-Remaining`, `-Reset`),
//! per origin, for `flowhost status` and `/metrics`.
//!
//! What this module decides:
//! - **Off the hot path.** The http capability notes the figures of each response in memory
//!   ([`LastSent::note`]: a header scan and a map insert); the end of each top-level run
//!   writes the origins noted since the last write to the run-history database in one small
//!   statement per origin ([`History::record_rate_limits`]), and nothing when no response
//!   carried them. A run that never ends (the process killed) loses only its own figures.
//! - **As sent.** The numbers are stored as the server sent them (not the host's own count of
//!   requests since), with the time they arrived; a header that is absent or not a
//!   non-negative integer is stored as null. A response carrying none of the three changes
//!   nothing.
//! - The table `_flowhost_rate_limits` is created with the history tables; reading works on
//!   a read-only connection and on a database from before it (no figures).

use std::collections::BTreeMap;
use std::sync::Mutex;

use rusqlite::params;
use serde::{Deserialize, Serialize};

use crate::history::{now_rfc3339, History};
use crate::store::StoreError;

/// Created with the run-history tables.
pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS "_flowhost_rate_limits" (
    origin TEXT PRIMARY KEY,
    "limit" INTEGER,
    remaining INTEGER,
    reset INTEGER,
    seen TEXT NOT NULL
) WITHOUT ROWID;
"#;

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

impl History {
    /// Stores the figures `seen` (the latest per origin wins).
    pub fn record_rate_limits(&self, seen: &[RateLimitSeen]) -> Result<(), StoreError> {
        let clamp = |n: Option<u64>| n.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        let conn = self.lock();
        let context = "cannot record the rate-limit figures";
        let mut stmt = conn
            .prepare_cached(
                r#"INSERT INTO _flowhost_rate_limits (origin, "limit", remaining, reset, seen)
                   VALUES (?1, ?2, ?3, ?4, ?5)
                   ON CONFLICT (origin) DO UPDATE SET "limit" = excluded."limit",
                   remaining = excluded.remaining, reset = excluded.reset, seen = excluded.seen"#,
            )
            .map_err(self.err(context))?;
        for s in seen {
            stmt.execute(params![
                s.origin,
                clamp(s.limit),
                clamp(s.remaining),
                clamp(s.reset),
                s.seen
            ])
            .map_err(self.err(context))?;
        }
        Ok(())
    }

    /// The figures each origin last sent, the most recent first.
    pub fn rate_limits(&self) -> Result<Vec<RateLimitSeen>, StoreError> {
        let conn = self.lock();
        let context = "cannot read the rate-limit figures";
        let exists = conn
            .prepare_cached(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_flowhost_rate_limits'",
            )
            .and_then(|mut s| s.exists([]))
            .map_err(self.err(context))?;
        if !exists {
            return Ok(Vec::new());
        }
        let unsigned = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok());
        let mut stmt = conn
            .prepare_cached(
                r#"SELECT origin, "limit", remaining, reset, seen FROM _flowhost_rate_limits
                   ORDER BY seen DESC, origin"#,
            )
            .map_err(self.err(context))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(RateLimitSeen {
                    origin: r.get(0)?,
                    limit: unsigned(r.get(1)?),
                    remaining: unsigned(r.get(2)?),
                    reset: unsigned(r.get(3)?),
                    seen: r.get(4)?,
                })
            })
            .map_err(self.err(context))?;
        rows.collect::<Result<_, _>>().map_err(self.err(context))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
