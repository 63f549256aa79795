//! The seam between run history (with the flow switches and rate-limit figures kept beside
//! it) and a database: SQLite in [`super`] today, PostgreSQL in `history/postgres.rs`.
//! [`super::History`] is a thin wrapper over [`HistoryBackend`], so callers never name one.
//!
//! Every backend keeps the rules the module doc of [`super`] states (what is kept, caps,
//! child rows only for failures, timestamps as RFC 3339 text, nothing unredacted).

use std::collections::BTreeMap;
use std::time::Duration;

use super::{ChildStats, FlowRuns, LogLine, RunRecord, RunStatus, Trigger};
use crate::rate_limits::RateLimitSeen;
use crate::store::StoreError;

pub trait HistoryBackend: Send + Sync + std::fmt::Debug {
    /// Where history is (a file path, or a PostgreSQL URL without its password).
    fn location(&self) -> String;
    fn set_lock_timeout(&self, timeout: Duration) -> Result<(), StoreError>;
    /// Records the start of a run (status `running`, this process as its owner); its id.
    fn start(
        &self,
        flow: &str,
        trigger: Trigger,
        parent: Option<i64>,
        input: &str,
    ) -> Result<i64, StoreError>;
    /// Sets run `id`'s start to now: it waited (for its exclusive group) and starts only now,
    /// so that two runs of one group never overlap in history.
    fn mark_started(&self, id: i64) -> Result<(), StoreError>;
    #[allow(clippy::too_many_arguments)]
    fn finish_with_dropped_logs(
        &self,
        id: i64,
        status: RunStatus,
        output: Option<&str>,
        error: Option<&str>,
        logs: &[LogLine],
        dropped_logs: u64,
        children: &[ChildStats],
    ) -> Result<(), StoreError>;
    fn record_skipped(&self, flow: &str, trigger: Trigger, reason: &str)
        -> Result<i64, StoreError>;
    /// Top-level runs, newest first, filtered by flow and status.
    fn page(
        &self,
        flow: Option<&str>,
        status: Option<RunStatus>,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError>;
    fn get(&self, id: i64) -> Result<Option<RunRecord>, StoreError>;
    fn flow_runs(&self, flow: &str) -> Result<FlowRuns, StoreError>;
    fn prune_older_than(&self, age: Duration) -> Result<u64, StoreError>;
    /// Marks `running` runs whose process is gone as errors ([`super::INTERRUPTED`]).
    fn mark_interrupted(&self) -> Result<u64, StoreError>;
    // Flow switches (`crate::switches`).
    fn set_enabled(&self, flow: &str, enabled: bool) -> Result<(), StoreError>;
    fn switch(&self, flow: &str) -> Result<Option<bool>, StoreError>;
    fn switches(&self) -> Result<BTreeMap<String, bool>, StoreError>;
    // Rate-limit figures (`crate::rate_limits`).
    fn record_rate_limits(&self, seen: &[RateLimitSeen]) -> Result<(), StoreError>;
    fn rate_limits(&self) -> Result<Vec<RateLimitSeen>, StoreError>;
}
