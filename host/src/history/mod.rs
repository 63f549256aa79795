//! Run history: one row per top-level run (and per failed child call) in
//! `_flowhost_runs`, its log lines in `_flowhost_run_logs`.
//!
//! What this module decides:
//! - **What is kept.** Input, output and error text are capped at [`MAX_TEXT`] bytes with a
//!   `…(truncated N bytes)` mark; a run keeps its first [`MAX_LOG_LINES`] log lines (each capped
//!   too) and a count of the dropped ones. Child calls are aggregated per parent as
//!   [`ChildStats`] in the parent's row; a child started with [`History::start`] (`parent` set)
//!   keeps its own row only if it does not end `ok` — [`History::finish`] deletes the row of a
//!   child that succeeded, so a million successful calls never become a million rows. Only
//!   the first [`MAX_FAILED_CHILD_ROWS`] failed calls of a run get rows (the runtime counts
//!   the rest in `ChildStats::failures_not_recorded`), so a million failures do not either.
//! - **Independence from tables.** History writes use their own connection and commit on their
//!   own, so a failed run's record survives the rollback of its table writes. SQLite has one
//!   writer per file: if history shares the tables' file, a history write waits while a run
//!   holds the tables' write lock (up to the lock timeout). Give history its own file (see
//!   [`history_path_for`]) to avoid that.
//! - **Time.** Timestamps are RFC 3339 in UTC with milliseconds (`2024-05-01T10:00:00.123Z`),
//!   which sort as text.
//! - **Secrets.** [`crate::redact`] replaces secret values before anything is stored; the
//!   caller applies it (this module never sees the secret values).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod backend;
pub mod postgres;
mod queries;
pub mod sqlite;
pub use backend::HistoryBackend;

use crate::rate_limits::RateLimitSeen;
use crate::store::StoreError;

/// Input, output, error and log message text is capped at this many bytes.
pub const MAX_TEXT: usize = 4096;
/// Log lines kept per run; later ones are counted, not stored.
pub const MAX_LOG_LINES: usize = 200;
/// The most runs [`History::list`] returns.
pub const MAX_LIST: u32 = 10_000;
/// The error text of a run whose process died.
pub const INTERRUPTED: &str = "interrupted (process exited)";

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// `flowhost run`.
    Cli,
    /// The flow's schedule.
    Schedule,
    /// Another flow's `call`/`for-each`.
    Call,
    /// Another run's `request-run`.
    Request,
    /// `POST /api/flows/{name}/invoke` on `serve`'s listener (an API endpoint flow).
    Api,
    /// The run form of `serve`'s web console.
    Console,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Cli => "cli",
            Trigger::Schedule => "schedule",
            Trigger::Call => "call",
            Trigger::Request => "request",
            Trigger::Api => "api",
            Trigger::Console => "console",
        }
    }

    pub fn parse(s: &str) -> Option<Trigger> {
        [
            Trigger::Cli,
            Trigger::Schedule,
            Trigger::Call,
            Trigger::Request,
            Trigger::Api,
            Trigger::Console,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a run ended (or that it has not yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Ok,
    Error,
    Timeout,
    Skipped,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Ok => "ok",
            RunStatus::Error => "error",
            RunStatus::Timeout => "timeout",
            RunStatus::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        [
            RunStatus::Running,
            RunStatus::Ok,
            RunStatus::Error,
            RunStatus::Timeout,
            RunStatus::Skipped,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The calls a run made to one child flow, aggregated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildStats {
    pub flow: String,
    pub calls: u64,
    pub failures: u64,
    /// Time spent in calls of this flow, in whole milliseconds (of `total_us`).
    pub total_ms: u64,
    /// The same in microseconds: most helper calls take well under a millisecond.
    #[serde(default)]
    pub total_us: u64,
    /// Calls of a `pure` flow answered from an earlier call in the same run (counted in
    /// `calls`; they take no time).
    #[serde(default)]
    pub memo_hits: u64,
    /// Failures (counted in `failures`) that have no history row of their own: a run keeps
    /// only its first [`MAX_FAILED_CHILD_ROWS`] failed child calls whole.
    #[serde(default)]
    pub failures_not_recorded: u64,
    /// Calls (counted in `calls`) that were items of a for-each given to the flow's
    /// `run-many` a few at a time: one call into the component for several items.
    #[serde(default)]
    pub batched: u64,
}

/// Failed child calls of one top-level run that get a history row of their own (input and
/// error); later failures are only counted in the parent's [`ChildStats`].
pub const MAX_FAILED_CHILD_ROWS: u64 = 10;

impl ChildStats {
    /// No calls yet.
    pub fn new(flow: &str) -> ChildStats {
        ChildStats {
            flow: flow.to_string(),
            calls: 0,
            failures: 0,
            total_ms: 0,
            total_us: 0,
            memo_hits: 0,
            failures_not_recorded: 0,
            batched: 0,
        }
    }
}

/// One log line of a run (or of one of its children).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// RFC 3339, UTC.
    pub at: String,
    pub level: String,
    pub flow: String,
    pub message: String,
}

/// One recorded run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: i64,
    /// The run that called this one (only failed child calls have rows of their own).
    pub parent: Option<i64>,
    pub flow: String,
    pub trigger: Trigger,
    pub started: String,
    pub ended: Option<String>,
    pub status: RunStatus,
    /// Capped at [`MAX_TEXT`] bytes.
    pub input: String,
    pub output: Option<String>,
    /// Why the run failed, or why it was skipped.
    pub error: Option<String>,
    /// The first [`MAX_LOG_LINES`] lines.
    pub logs: Vec<LogLine>,
    /// How many log lines were dropped after the first [`MAX_LOG_LINES`].
    pub logs_dropped: u64,
    pub children: Vec<ChildStats>,
}

impl RunRecord {
    /// The record as JSON for `history --json` and `history show --json`: `input` and
    /// `output` are JSON values, not escaped text (one cut at [`MAX_TEXT`] stays text).
    pub fn to_json(&self) -> serde_json::Result<serde_json::Value> {
        let mut v = serde_json::to_value(self)?;
        if let Some(obj) = v.as_object_mut() {
            for field in ["input", "output"] {
                if let Some(serde_json::Value::String(text)) = obj.get(field) {
                    if let Ok(parsed) = serde_json::from_str::<serde_json::Value>(text) {
                        obj.insert(field.to_string(), parsed);
                    }
                }
            }
        }
        Ok(v)
    }
}

/// What [`History::flow_runs`] finds about one flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRuns {
    /// The newest top-level run that is not a skipped tick (it may still be running).
    pub last: Option<RunRecord>,
    /// Top-level runs ending `error` or `timeout` since the last `ok` one.
    pub consecutive_failures: u64,
    /// When the last `ok` run ended.
    pub last_success: Option<String>,
    /// When the last scheduled tick started a run (or was skipped).
    pub last_tick: Option<String>,
}

/// `2024-05-01T10:00:00.123Z`: RFC 3339, UTC, milliseconds.
pub fn format_timestamp(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The current time as [`format_timestamp`] writes it.
pub fn now_rfc3339() -> String {
    format_timestamp(jiff::Timestamp::now())
}

/// How long a finished run took, in milliseconds (`None` while it runs, or if a timestamp does
/// not parse).
pub fn duration_ms(run: &RunRecord) -> Option<u64> {
    let started: jiff::Timestamp = run.started.parse().ok()?;
    let ended: jiff::Timestamp = run.ended.as_deref()?.parse().ok()?;
    let ms = ended.duration_since(started).as_millis();
    u64::try_from(ms).ok()
}

/// Where to keep history when it should not share the tables' write lock: `flowhost.db` →
/// `flowhost-history.db`, beside it.
pub fn history_path_for(db: &Path) -> PathBuf {
    let stem = db
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match db.extension() {
        Some(ext) => format!("{stem}-history.{}", ext.to_string_lossy()),
        None => format!("{stem}-history"),
    };
    db.with_file_name(name)
}

/// `text` cut to at most `max` bytes (on a character boundary) plus a `…(truncated N bytes)`
/// mark saying how many bytes were cut.
pub fn cap(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…(truncated {} bytes)", &text[..end], text.len() - end)
}

/// Run history (with the flow switches and rate-limit figures beside it), whichever backend
/// keeps it. `Send + Sync`, cheap to clone; calls block briefly on the database.
#[derive(Debug, Clone)]
pub struct History {
    backend: Arc<dyn HistoryBackend>,
}

impl History {
    /// History over `backend` (SQLite or PostgreSQL).
    pub fn from_backend(backend: Arc<dyn HistoryBackend>) -> History {
        History { backend }
    }

    /// Opens (creating if needed) the history tables in the SQLite file at `path` (WAL mode).
    pub fn open(path: &Path) -> Result<History, StoreError> {
        Ok(History::from_backend(Arc::new(
            sqlite::SqliteHistory::open(path)?,
        )))
    }

    /// Opens existing SQLite history at `path` for reading only (`flowhost history`): nothing
    /// is created, marked or pruned, and nothing waits for a writer.
    pub fn open_read_only(path: &Path) -> Result<History, StoreError> {
        Ok(History::from_backend(Arc::new(
            sqlite::SqliteHistory::open_read_only(path)?,
        )))
    }

    pub fn backend(&self) -> &Arc<dyn HistoryBackend> {
        &self.backend
    }

    /// Where history is, for messages (a file path, or a URL without its password).
    pub fn location(&self) -> String {
        self.backend.location()
    }

    /// How long a history write waits for another writer's lock (default 10 s).
    pub fn set_lock_timeout(&self, timeout: Duration) -> Result<(), StoreError> {
        self.backend.set_lock_timeout(timeout)
    }

    /// Records the start of a run (status `running`); returns its id. `input` is capped.
    pub fn start(
        &self,
        flow: &str,
        trigger: Trigger,
        parent: Option<i64>,
        input: &str,
    ) -> Result<i64, StoreError> {
        self.backend.start(flow, trigger, parent, input)
    }

    /// Moves run `id`'s start to now (see [`HistoryBackend::mark_started`]).
    pub fn mark_started(&self, id: i64) -> Result<(), StoreError> {
        self.backend.mark_started(id)
    }

    /// Records how run `id` ended: output and error capped, the first [`MAX_LOG_LINES`] log
    /// lines kept and the rest counted, child aggregates stored. A child run (one with a parent)
    /// that ended `ok` is deleted instead: its parent's [`ChildStats`] account for it.
    pub fn finish(
        &self,
        id: i64,
        status: RunStatus,
        output: Option<&str>,
        error: Option<&str>,
        logs: &[LogLine],
        children: &[ChildStats],
    ) -> Result<(), StoreError> {
        self.finish_with_dropped_logs(id, status, output, error, logs, 0, children)
    }

    /// [`History::finish`] for a run that already dropped `dropped_earlier` log lines before
    /// handing over `logs` (the runtime's own cap): `logs_dropped` counts both.
    #[allow(clippy::too_many_arguments)]
    pub fn finish_with_dropped_logs(
        &self,
        id: i64,
        status: RunStatus,
        output: Option<&str>,
        error: Option<&str>,
        logs: &[LogLine],
        dropped_earlier: u64,
        children: &[ChildStats],
    ) -> Result<(), StoreError> {
        self.backend.finish_with_dropped_logs(
            id,
            status,
            output,
            error,
            logs,
            dropped_earlier,
            children,
        )
    }

    /// Records a run that did not happen (overlap policy, exclusive group); `reason` is stored
    /// as its error text.
    pub fn record_skipped(
        &self,
        flow: &str,
        trigger: Trigger,
        reason: &str,
    ) -> Result<i64, StoreError> {
        self.backend.record_skipped(flow, trigger, reason)
    }

    /// The newest runs first (of `flow`, or of every flow): top-level runs and the child runs
    /// that have rows (failed, timed out or still running), at most `limit` (capped at
    /// [`MAX_LIST`]), each with its logs and children.
    pub fn list(&self, flow: Option<&str>, limit: u32) -> Result<Vec<RunRecord>, StoreError> {
        self.page(flow, None, 0, limit)
    }

    /// One page of the runs [`History::list`] shows, newest first, filtered by flow and by
    /// status (the web console's run history): `limit` runs (capped at [`MAX_LIST`]) after
    /// skipping `offset`.
    pub fn page(
        &self,
        flow: Option<&str>,
        status: Option<RunStatus>,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        self.backend.page(flow, status, offset, limit)
    }

    /// Run `id`, if it is recorded.
    pub fn get(&self, id: i64) -> Result<Option<RunRecord>, StoreError> {
        self.backend.get(id)
    }

    /// What the top-level runs of `flow` say about it (skipped ticks aside): the last run,
    /// the failures since its last `ok`, when it last succeeded and its last scheduled tick.
    pub fn flow_runs(&self, flow: &str) -> Result<FlowRuns, StoreError> {
        self.backend.flow_runs(flow)
    }

    /// Deletes finished runs (and their logs) that started more than `age` ago; returns how
    /// many runs were deleted.
    pub fn prune_older_than(&self, age: Duration) -> Result<u64, StoreError> {
        self.backend.prune_older_than(age)
    }

    /// Marks as failed ([`INTERRUPTED`]) the runs left `running` by processes that no longer
    /// exist (runs of this process and of other live processes are left alone); returns how
    /// many. Call once at startup.
    pub fn mark_interrupted(&self) -> Result<u64, StoreError> {
        self.backend.mark_interrupted()
    }

    /// Switches `flow` on or off for `serve` (the row wins over the manifest from now on; see
    /// [`crate::switches`]).
    pub fn set_enabled(&self, flow: &str, enabled: bool) -> Result<(), StoreError> {
        self.backend.set_enabled(flow, enabled)
    }

    /// The stored switch of `flow` (`None`: never switched; its manifest decides).
    pub fn switch(&self, flow: &str) -> Result<Option<bool>, StoreError> {
        self.backend.switch(flow)
    }

    /// Every stored switch, by flow.
    pub fn switches(&self) -> Result<BTreeMap<String, bool>, StoreError> {
        self.backend.switches()
    }

    /// Stores the rate-limit figures `seen` (the latest per origin wins; see
    /// [`crate::rate_limits`]).
    pub fn record_rate_limits(&self, seen: &[RateLimitSeen]) -> Result<(), StoreError> {
        self.backend.record_rate_limits(seen)
    }

    /// The rate-limit figures each origin last sent, the most recent first.
    pub fn rate_limits(&self) -> Result<Vec<RateLimitSeen>, StoreError> {
        self.backend.rate_limits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(i: usize) -> LogLine {
        LogLine {
            at: now_rfc3339(),
            level: "info".into(),
            flow: "M10".into(),
            message: format!("line {i}"),
        }
    }

    #[test]
    fn history_is_send_sync() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<History>();
    }

    #[test]
    fn timestamps_are_utc_with_millis() {
        let ts: jiff::Timestamp = "2024-05-01T10:00:00Z".parse().unwrap();
        assert_eq!(format_timestamp(ts), "2024-05-01T10:00:00.000Z");
        let ts: jiff::Timestamp = "2024-05-01T12:00:00.123456+02:00".parse().unwrap();
        assert_eq!(format_timestamp(ts), "2024-05-01T10:00:00.123Z");
        let now = now_rfc3339();
        assert_eq!(now.len(), 24, "{now}");
        assert!(now.ends_with('Z'));
    }

    #[test]
    fn capping() {
        assert_eq!(cap("short", 10), "short");
        assert_eq!(cap("abcdefghij", 4), "abcd…(truncated 6 bytes)");
        // Never splits a character: "é" is two bytes.
        assert_eq!(cap("aéé", 2), "a…(truncated 4 bytes)");
    }

    #[test]
    fn history_path() {
        assert_eq!(
            history_path_for(Path::new("data/flowhost.db")),
            Path::new("data/flowhost-history.db")
        );
        assert_eq!(history_path_for(Path::new("fh")), Path::new("fh-history"));
    }

    #[test]
    fn start_finish_list_get() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(&dir.path().join("h.db")).unwrap();
        let big = "x".repeat(10_000);
        let id = h.start("M10", Trigger::Schedule, None, &big).unwrap();
        let rec = h.get(id).unwrap().unwrap();
        assert_eq!(rec.status, RunStatus::Running);
        assert_eq!(rec.trigger, Trigger::Schedule);
        assert_eq!(rec.input.len(), MAX_TEXT + "…(truncated 5904 bytes)".len());
        assert!(rec.input.ends_with("…(truncated 5904 bytes)"));
        assert_eq!(rec.ended, None);

        // A child that succeeds leaves no row; one that fails keeps its row.
        let ok_child = h.start("U10", Trigger::Call, Some(id), "{}").unwrap();
        h.finish(ok_child, RunStatus::Ok, Some("{}"), None, &[line(0)], &[])
            .unwrap();
        assert_eq!(h.get(ok_child).unwrap(), None);
        let bad_child = h
            .start("U11", Trigger::Call, Some(id), "{\"n\":1}")
            .unwrap();
        h.finish(
            bad_child,
            RunStatus::Error,
            None,
            Some("boom"),
            &[line(0)],
            &[],
        )
        .unwrap();

        let logs: Vec<LogLine> = (0..250).map(line).collect();
        let children = vec![
            ChildStats {
                flow: "U10".into(),
                calls: 1000,
                failures: 0,
                total_ms: 1234,
                total_us: 1_234_000,
                memo_hits: 400,
                failures_not_recorded: 0,
                batched: 0,
            },
            ChildStats {
                flow: "U11".into(),
                calls: 3,
                failures: 1,
                total_ms: 5,
                total_us: 5_000,
                memo_hits: 0,
                failures_not_recorded: 0,
                batched: 2,
            },
        ];
        h.finish(id, RunStatus::Ok, Some(&big), None, &logs, &children)
            .unwrap();
        let rec = h.get(id).unwrap().unwrap();
        assert_eq!(rec.status, RunStatus::Ok);
        assert!(rec.ended.is_some());
        assert!(rec
            .output
            .as_deref()
            .unwrap()
            .ends_with("…(truncated 5904 bytes)"));
        assert_eq!(rec.logs.len(), MAX_LOG_LINES);
        assert_eq!(rec.logs[199].message, "line 199");
        assert_eq!(rec.logs_dropped, 50);
        assert_eq!(rec.children, children);
        assert_eq!(rec.parent, None);
        assert!(duration_ms(&rec).is_some());
        let mut fake = rec.clone();
        fake.started = "2024-05-01T10:00:00.000Z".into();
        fake.ended = Some("2024-05-01T10:00:01.250Z".into());
        assert_eq!(duration_ms(&fake), Some(1250));
        fake.ended = None;
        assert_eq!(duration_ms(&fake), None);

        let skipped = h
            .record_skipped("M10", Trigger::Schedule, "previous run still going")
            .unwrap();
        let other = h.start("S20", Trigger::Cli, None, "").unwrap();
        h.finish(
            other,
            RunStatus::Timeout,
            None,
            Some("timed out after 5m"),
            &[],
            &[],
        )
        .unwrap();

        let all = h.list(None, 100).unwrap();
        let ids: Vec<i64> = all.iter().map(|r| r.id).collect();
        assert_eq!(ids, [other, skipped, bad_child, id]);
        let failed_child = &all[2];
        assert_eq!(failed_child.parent, Some(id));
        assert_eq!(failed_child.status, RunStatus::Error);
        assert_eq!(failed_child.error.as_deref(), Some("boom"));
        assert_eq!(failed_child.logs.len(), 1);
        assert_eq!(all[1].status, RunStatus::Skipped);
        assert_eq!(all[1].error.as_deref(), Some("previous run still going"));
        assert_eq!(all[1].started, all[1].ended.clone().unwrap());

        let m10: Vec<i64> = h
            .list(Some("M10"), 100)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(m10, [skipped, id]);
        assert_eq!(h.list(None, 1).unwrap().len(), 1);
        assert!(h.list(Some("nope"), 10).unwrap().is_empty());
        assert_eq!(h.get(9999).unwrap(), None);
        let err = h
            .finish(9999, RunStatus::Error, None, None, &[], &[])
            .unwrap_err();
        assert!(
            err.to_string().contains("no run with id 9999 to finish"),
            "{err}"
        );
    }

    #[test]
    fn a_page_of_runs_filtered_by_flow_and_status() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(&dir.path().join("h.db")).unwrap();
        let mut ids = Vec::new();
        for i in 0..7 {
            let flow = if i % 2 == 0 { "M10" } else { "U03" };
            let id = h.start(flow, Trigger::Cli, None, "{}").unwrap();
            let status = if i % 3 == 0 {
                RunStatus::Error
            } else {
                RunStatus::Ok
            };
            h.finish(id, status, None, None, &[], &[]).unwrap();
            ids.push((id, flow, status));
        }
        // A child that failed is listed; one that succeeded has no row.
        let child = h.start("U10", Trigger::Call, Some(ids[0].0), "{}").unwrap();
        h.finish(child, RunStatus::Error, None, Some("x"), &[], &[])
            .unwrap();
        let got = |flow, status, offset, limit| -> Vec<i64> {
            h.page(flow, status, offset, limit)
                .unwrap()
                .iter()
                .map(|r| r.id)
                .collect()
        };
        let want = |keep: &dyn Fn(&str, RunStatus) -> bool| -> Vec<i64> {
            ids.iter()
                .rev()
                .filter(|(_, f, s)| keep(f, *s))
                .map(|(id, _, _)| *id)
                .collect()
        };
        let mut all = vec![child];
        all.extend(want(&|_, _| true));
        assert_eq!(got(None, None, 0, 100), all);
        assert_eq!(got(None, None, 2, 3), all[2..5]);
        assert_eq!(got(Some("M10"), None, 0, 100), want(&|f, _| f == "M10"));
        let mut errors = vec![child];
        errors.extend(want(&|_, s| s == RunStatus::Error));
        assert_eq!(got(None, Some(RunStatus::Error), 0, 100), errors);
        assert_eq!(
            got(Some("U03"), Some(RunStatus::Ok), 1, 100),
            want(&|f, s| f == "U03" && s == RunStatus::Ok)[1..]
        );
        assert!(got(Some("U03"), Some(RunStatus::Running), 0, 100).is_empty());
        assert!(got(None, None, u64::MAX, 10).is_empty());
    }
}
