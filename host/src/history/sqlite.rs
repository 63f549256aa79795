//! Run history in SQLite ([`SqliteHistory`]): `_flowhost_runs` and `_flowhost_run_logs`, with
//! the flow switches (`_flowhost_flow_switches`) and the rate-limit figures
//! (`_flowhost_rate_limits`) kept in the same file. A run's owner is its process id: a
//! `running` row whose process is gone is marked [`INTERRUPTED`] at startup.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::queries::{page_sql, RUN_COLUMNS};
use super::{
    cap, format_timestamp, now_rfc3339, ChildStats, FlowRuns, HistoryBackend, LogLine, RunRecord,
    RunStatus, Trigger, INTERRUPTED, MAX_LIST, MAX_LOG_LINES, MAX_TEXT,
};
use crate::rate_limits::RateLimitSeen;
use crate::store::{
    check_db_dir, enable_wal, open_connection, open_existing_read_only, StoreError,
};

/// Whether process `pid` is alive (on this machine).
fn pid_alive(pid: i64) -> bool {
    if pid <= 0 || pid > i64::from(i32::MAX) {
        return false;
    }
    if pid == i64::from(std::process::id()) {
        return true;
    }
    #[cfg(unix)]
    {
        // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists.
        let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// The flow switches ([`crate::switches`]), created with the run-history tables.
const SWITCHES_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS "_flowhost_flow_switches" (
    flow TEXT PRIMARY KEY,
    enabled INTEGER NOT NULL,
    changed TEXT NOT NULL
) WITHOUT ROWID;
"#;

/// The rate-limit figures ([`crate::rate_limits`]), created with the run-history tables.
const RATE_LIMITS_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS "_flowhost_rate_limits" (
    origin TEXT PRIMARY KEY,
    "limit" INTEGER,
    remaining INTEGER,
    reset INTEGER,
    seen TEXT NOT NULL
) WITHOUT ROWID;
"#;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS "_flowhost_runs" (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    parent INTEGER,
    flow TEXT NOT NULL,
    trigger TEXT NOT NULL,
    started TEXT NOT NULL,
    ended TEXT,
    status TEXT NOT NULL,
    input TEXT NOT NULL,
    output TEXT,
    error TEXT,
    children TEXT NOT NULL DEFAULT '[]',
    logs_dropped INTEGER NOT NULL DEFAULT 0,
    pid INTEGER
);
CREATE INDEX IF NOT EXISTS "_flowhost_runs_flow" ON "_flowhost_runs" (flow, id);
CREATE INDEX IF NOT EXISTS "_flowhost_runs_started" ON "_flowhost_runs" (started);
CREATE INDEX IF NOT EXISTS "_flowhost_runs_running" ON "_flowhost_runs" (status) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS "_flowhost_runs_status" ON "_flowhost_runs" (status, id);
CREATE INDEX IF NOT EXISTS "_flowhost_runs_flow_status" ON "_flowhost_runs" (flow, status, id);
CREATE TABLE IF NOT EXISTS "_flowhost_run_logs" (
    run INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    level TEXT NOT NULL,
    flow TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (run, seq)
) WITHOUT ROWID;
"#;

/// The run history of one SQLite file (with the flow switches and rate-limit figures).
/// `Send + Sync`; calls block briefly on SQLite.
pub struct SqliteHistory {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteHistory")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteHistory {
    /// Opens (creating if needed) the history tables in the SQLite file at `path` (WAL mode).
    pub fn open(path: &Path) -> Result<SqliteHistory, StoreError> {
        check_db_dir(path)?;
        let conn = open_connection(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        enable_wal(&conn, path)?;
        // The tables of the modules that keep state beside run history come with it (each
        // `IF NOT EXISTS`: an existing database gains a new one in place).
        [SCHEMA, SWITCHES_SCHEMA, RATE_LIMITS_SCHEMA]
            .into_iter()
            .try_for_each(|sql| conn.execute_batch(sql))
            .map_err(|source| StoreError::Sqlite {
                path: path.to_path_buf(),
                context: "cannot create the run history tables".into(),
                source,
            })?;
        Ok(SqliteHistory {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    /// Opens existing history at `path` for reading only (`flowhost history`): nothing is
    /// created, marked or pruned, and nothing waits for a writer.
    pub fn open_read_only(path: &Path) -> Result<SqliteHistory, StoreError> {
        let conn = open_existing_read_only(path)?;
        Ok(SqliteHistory {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How long a history write waits for another writer's lock (default 10 s).
    pub fn set_lock_timeout(&self, timeout: Duration) -> Result<(), StoreError> {
        self.lock()
            .busy_timeout(timeout)
            .map_err(self.err("cannot set the lock timeout"))
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn err(&self, context: &str) -> impl FnOnce(rusqlite::Error) -> StoreError {
        let path = self.path.clone();
        let context = context.to_string();
        move |source| StoreError::Sqlite {
            path,
            context,
            source,
        }
    }

    /// Records the start of a run (status `running`); returns its id. `input` is capped.
    pub fn start(
        &self,
        flow: &str,
        trigger: Trigger,
        parent: Option<i64>,
        input: &str,
    ) -> Result<i64, StoreError> {
        let conn = self.lock();
        conn.prepare_cached(
            "INSERT INTO _flowhost_runs (parent, flow, trigger, started, status, input, pid) VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6)",
        )
        .and_then(|mut s| {
            s.execute(params![
                parent,
                flow,
                trigger.as_str(),
                now_rfc3339(),
                cap(input, MAX_TEXT),
                i64::from(std::process::id())
            ])
        })
        .map_err(self.err(&format!("cannot record the start of a run of `{flow}`")))?;
        Ok(conn.last_insert_rowid())
    }

    /// See [`HistoryBackend::mark_started`].
    pub fn mark_started(&self, id: i64) -> Result<(), StoreError> {
        self.lock()
            .prepare_cached("UPDATE _flowhost_runs SET started = ?1 WHERE id = ?2")
            .and_then(|mut s| s.execute(params![now_rfc3339(), id]))
            .map_err(self.err(&format!("cannot record the start of run {id}")))?;
        Ok(())
    }

    /// [`super::History::finish`] for a run that already dropped `dropped_earlier` log lines before
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
        let children_json = serde_json::to_string(children).map_err(|e| StoreError::Invalid {
            path: self.path.clone(),
            message: format!("run {id}: cannot encode the child statistics ({e})"),
        })?;
        let context = format!("cannot record the end of run {id}");
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err(&context))?;
        if status == RunStatus::Ok {
            let deleted = tx
                .prepare_cached("DELETE FROM _flowhost_runs WHERE id = ?1 AND parent IS NOT NULL")
                .and_then(|mut s| s.execute([id]))
                .map_err(self.err(&context))?;
            if deleted > 0 {
                tx.prepare_cached("DELETE FROM _flowhost_run_logs WHERE run = ?1")
                    .and_then(|mut s| s.execute([id]))
                    .map_err(self.err(&context))?;
                return tx.commit().map_err(self.err(&context));
            }
        }
        let dropped = u64::try_from(logs.len().saturating_sub(MAX_LOG_LINES))
            .unwrap_or(u64::MAX)
            .saturating_add(dropped_earlier);
        let dropped = i64::try_from(dropped).unwrap_or(i64::MAX);
        // Prepared once per connection: this runs at the end of every top-level run.
        let updated = tx
            .prepare_cached(
                "UPDATE _flowhost_runs SET ended = ?1, status = ?2, output = ?3, error = ?4, children = ?5, logs_dropped = ?6 WHERE id = ?7",
            )
            .and_then(|mut s| {
                s.execute(params![
                    now_rfc3339(),
                    status.as_str(),
                    output.map(|o| cap(o, MAX_TEXT)),
                    error.map(|e| cap(e, MAX_TEXT)),
                    children_json,
                    dropped,
                    id
                ])
            })
            .map_err(self.err(&context))?;
        if updated == 0 {
            return Err(StoreError::Invalid {
                path: self.path.clone(),
                message: format!("no run with id {id} to finish (pruned, or never started)"),
            });
        }
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO _flowhost_run_logs (run, seq, at, level, flow, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(self.err(&context))?;
            for (seq, line) in logs.iter().take(MAX_LOG_LINES).enumerate() {
                stmt.execute(params![
                    id,
                    seq as i64,
                    line.at,
                    line.level,
                    line.flow,
                    cap(&line.message, MAX_TEXT)
                ])
                .map_err(self.err(&context))?;
            }
        }
        tx.commit().map_err(self.err(&context))
    }

    /// Records a run that did not happen (overlap policy, exclusive group); `reason` is stored
    /// as its error text.
    pub fn record_skipped(
        &self,
        flow: &str,
        trigger: Trigger,
        reason: &str,
    ) -> Result<i64, StoreError> {
        let conn = self.lock();
        let now = now_rfc3339();
        conn.prepare_cached(
            "INSERT INTO _flowhost_runs (parent, flow, trigger, started, ended, status, input, error, pid) VALUES (NULL, ?1, ?2, ?3, ?3, 'skipped', '', ?4, ?5)",
        )
        .and_then(|mut s| {
            s.execute(params![
                flow,
                trigger.as_str(),
                now,
                cap(reason, MAX_TEXT),
                i64::from(std::process::id())
            ])
        })
        .map_err(self.err(&format!("cannot record a skipped run of `{flow}`")))?;
        Ok(conn.last_insert_rowid())
    }

    /// One page of the runs [`super::History::list`] shows, newest first, filtered by flow and by
    /// status (the web console's run history): `limit` runs (capped at [`MAX_LIST`]) after
    /// skipping `offset`. Each filter combination has its own statement, served by an index.
    pub fn page(
        &self,
        flow: Option<&str>,
        status: Option<RunStatus>,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let param = |n| format!("?{n}");
        let sql = page_sql(flow.is_some(), status.is_some(), param, param);
        let conn = self.lock();
        let rows = {
            let mut stmt = conn
                .prepare_cached(&sql)
                .map_err(self.err("cannot list runs"))?;
            let rows = stmt
                .query_map(
                    params![
                        flow,
                        status.map(RunStatus::as_str),
                        i64::from(limit.min(MAX_LIST)),
                        i64::try_from(offset).unwrap_or(i64::MAX)
                    ],
                    RawRun::from_row,
                )
                .map_err(self.err("cannot list runs"))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(self.err("cannot list runs"))?
        };
        rows.into_iter()
            .map(|raw| self.record(&conn, raw))
            .collect()
    }

    /// Run `id`, if it is recorded.
    pub fn get(&self, id: i64) -> Result<Option<RunRecord>, StoreError> {
        let conn = self.lock();
        let sql = format!("SELECT {RUN_COLUMNS} FROM _flowhost_runs WHERE id = ?1");
        let raw = conn
            .prepare_cached(&sql)
            .and_then(|mut s| s.query_row([id], RawRun::from_row).optional())
            .map_err(self.err(&format!("cannot read run {id}")))?;
        raw.map(|raw| self.record(&conn, raw)).transpose()
    }

    /// What the top-level runs of `flow` say about it (skipped ticks aside): the last run,
    /// the failures since its last `ok`, when it last succeeded and its last scheduled tick.
    pub fn flow_runs(&self, flow: &str) -> Result<FlowRuns, StoreError> {
        let context = format!("cannot read the runs of `{flow}`");
        let (last_id, failures, last_success, last_tick) = {
            let conn = self.lock();
            let one = |sql: &str| -> rusqlite::Result<Option<String>> {
                conn.prepare_cached(sql)
                    .and_then(|mut s| s.query_row([flow], |r| r.get(0)).optional())
                    .map(Option::flatten)
            };
            let last_id: Option<i64> = conn
                .prepare_cached(
                    "SELECT id FROM _flowhost_runs WHERE flow = ?1 AND parent IS NULL AND status <> 'skipped' ORDER BY id DESC LIMIT 1",
                )
                .and_then(|mut s| s.query_row([flow], |r| r.get(0)).optional())
                .map_err(self.err(&context))?;
            let failures: i64 = conn
                .prepare_cached(
                    "SELECT count(*) FROM _flowhost_runs WHERE flow = ?1 AND parent IS NULL AND status IN ('error', 'timeout') AND id > coalesce((SELECT max(id) FROM _flowhost_runs WHERE flow = ?1 AND parent IS NULL AND status = 'ok'), 0)",
                )
                .and_then(|mut s| s.query_row([flow], |r| r.get(0)))
                .map_err(self.err(&context))?;
            let last_success = one(
                "SELECT ended FROM _flowhost_runs WHERE flow = ?1 AND parent IS NULL AND status = 'ok' ORDER BY id DESC LIMIT 1",
            )
            .map_err(self.err(&context))?;
            let last_tick = one(
                "SELECT started FROM _flowhost_runs WHERE flow = ?1 AND parent IS NULL AND trigger = 'schedule' ORDER BY id DESC LIMIT 1",
            )
            .map_err(self.err(&context))?;
            (last_id, failures, last_success, last_tick)
        };
        let last = match last_id {
            Some(id) => self.get(id)?,
            None => None,
        };
        Ok(FlowRuns {
            last,
            consecutive_failures: u64::try_from(failures).unwrap_or(0),
            last_success,
            last_tick,
        })
    }

    /// Deletes finished runs (and their logs) that started more than `age` ago; returns how
    /// many runs were deleted.
    pub fn prune_older_than(&self, age: Duration) -> Result<u64, StoreError> {
        let Ok(age) = jiff::SignedDuration::try_from(age) else {
            return Ok(0);
        };
        let Ok(cutoff) = jiff::Timestamp::now().checked_sub(age) else {
            return Ok(0);
        };
        let cutoff = format_timestamp(cutoff);
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err("cannot prune run history"))?;
        tx.execute(
            "DELETE FROM _flowhost_run_logs WHERE run IN (SELECT id FROM _flowhost_runs WHERE started < ?1 AND status <> 'running')",
            [&cutoff],
        )
        .map_err(self.err("cannot prune run history"))?;
        let n = tx
            .execute(
                "DELETE FROM _flowhost_runs WHERE started < ?1 AND status <> 'running'",
                [&cutoff],
            )
            .map_err(self.err("cannot prune run history"))?;
        tx.commit().map_err(self.err("cannot prune run history"))?;
        Ok(n as u64)
    }

    /// Marks as failed ([`INTERRUPTED`]) the runs left `running` by processes that no longer
    /// exist (runs of this process and of other live processes are left alone); returns how
    /// many. Call once at startup.
    pub fn mark_interrupted(&self) -> Result<u64, StoreError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err("cannot mark interrupted runs"))?;
        let running: Vec<(i64, Option<i64>)> = {
            let mut stmt = tx
                .prepare("SELECT id, pid FROM _flowhost_runs WHERE status = 'running'")
                .map_err(self.err("cannot mark interrupted runs"))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(self.err("cannot mark interrupted runs"))?;
            rows.collect::<Result<_, _>>()
                .map_err(self.err("cannot mark interrupted runs"))?
        };
        let now = now_rfc3339();
        let mut n = 0;
        for (id, pid) in running {
            if pid.is_some_and(pid_alive) {
                continue;
            }
            n += tx
                .execute(
                    "UPDATE _flowhost_runs SET status = 'error', ended = ?1, error = ?2 WHERE id = ?3 AND status = 'running'",
                    params![now, INTERRUPTED, id],
                )
                .map_err(self.err("cannot mark interrupted runs"))? as u64;
        }
        tx.commit()
            .map_err(self.err("cannot mark interrupted runs"))?;
        Ok(n)
    }

    fn record(&self, conn: &Connection, raw: RawRun) -> Result<RunRecord, StoreError> {
        let invalid = |message: String| StoreError::Invalid {
            path: self.path.clone(),
            message,
        };
        let trigger = Trigger::parse(&raw.trigger)
            .ok_or_else(|| invalid(format!("run {}: unknown trigger `{}`", raw.id, raw.trigger)))?;
        let status = RunStatus::parse(&raw.status)
            .ok_or_else(|| invalid(format!("run {}: unknown status `{}`", raw.id, raw.status)))?;
        let children: Vec<ChildStats> = serde_json::from_str(&raw.children)
            .map_err(|e| invalid(format!("run {}: unreadable child statistics ({e})", raw.id)))?;
        let logs = conn
            .prepare_cached(
                "SELECT at, level, flow, message FROM _flowhost_run_logs WHERE run = ?1 ORDER BY seq",
            )
            .and_then(|mut s| {
                s.query_map([raw.id], |r| {
                    Ok(LogLine {
                        at: r.get(0)?,
                        level: r.get(1)?,
                        flow: r.get(2)?,
                        message: r.get(3)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.err(&format!("cannot read the logs of run {}", raw.id)))?;
        Ok(RunRecord {
            id: raw.id,
            parent: raw.parent,
            flow: raw.flow,
            trigger,
            started: raw.started,
            ended: raw.ended,
            status,
            input: raw.input,
            output: raw.output,
            error: raw.error,
            logs,
            logs_dropped: u64::try_from(raw.logs_dropped).unwrap_or(0),
            children,
        })
    }
}

/// A `_flowhost_runs` row as stored.
struct RawRun {
    id: i64,
    parent: Option<i64>,
    flow: String,
    trigger: String,
    started: String,
    ended: Option<String>,
    status: String,
    input: String,
    output: Option<String>,
    error: Option<String>,
    children: String,
    logs_dropped: i64,
}

impl RawRun {
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRun> {
        Ok(RawRun {
            id: r.get(0)?,
            parent: r.get(1)?,
            flow: r.get(2)?,
            trigger: r.get(3)?,
            started: r.get(4)?,
            ended: r.get(5)?,
            status: r.get(6)?,
            input: r.get(7)?,
            output: r.get(8)?,
            error: r.get(9)?,
            children: r.get(10)?,
            logs_dropped: r.get(11)?,
        })
    }
}

impl SqliteHistory {
    /// Switches `flow` on or off for `serve` (the row wins over the manifest from now on).
    pub fn set_enabled(&self, flow: &str, enabled: bool) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.prepare_cached(
            "INSERT INTO _flowhost_flow_switches (flow, enabled, changed) VALUES (?1, ?2, ?3) \
             ON CONFLICT (flow) DO UPDATE SET enabled = excluded.enabled, changed = excluded.changed",
        )
        .and_then(|mut s| s.execute(params![flow, enabled, now_rfc3339()]))
        .map_err(self.err(&format!("cannot switch flow `{flow}` on or off")))?;
        Ok(())
    }

    /// The stored switch of `flow` (`None`: never switched; its manifest decides).
    pub fn switch(&self, flow: &str) -> Result<Option<bool>, StoreError> {
        let conn = self.lock();
        if !switches_table_exists(&conn).map_err(self.err("cannot read the flow switches"))? {
            return Ok(None);
        }
        conn.prepare_cached("SELECT enabled FROM _flowhost_flow_switches WHERE flow = ?1")
            .and_then(|mut s| s.query_row([flow], |r| r.get::<_, bool>(0)).optional())
            .map_err(self.err(&format!("cannot read the switch of flow `{flow}`")))
    }

    /// Every stored switch, by flow.
    pub fn switches(&self) -> Result<BTreeMap<String, bool>, StoreError> {
        let conn = self.lock();
        let context = "cannot read the flow switches";
        if !switches_table_exists(&conn).map_err(self.err(context))? {
            return Ok(BTreeMap::new());
        }
        let mut stmt = conn
            .prepare_cached("SELECT flow, enabled FROM _flowhost_flow_switches")
            .map_err(self.err(context))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)))
            .map_err(self.err(context))?;
        rows.collect::<Result<_, _>>().map_err(self.err(context))
    }
}

/// Whether the database has the switches table (a read-only open of an older database does
/// not).
fn switches_table_exists(conn: &rusqlite::Connection) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_flowhost_flow_switches'",
    )?
    .exists([])
}

impl SqliteHistory {
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

impl HistoryBackend for SqliteHistory {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn set_lock_timeout(&self, timeout: Duration) -> Result<(), StoreError> {
        SqliteHistory::set_lock_timeout(self, timeout)
    }

    fn start(
        &self,
        flow: &str,
        trigger: Trigger,
        parent: Option<i64>,
        input: &str,
    ) -> Result<i64, StoreError> {
        SqliteHistory::start(self, flow, trigger, parent, input)
    }

    fn mark_started(&self, id: i64) -> Result<(), StoreError> {
        SqliteHistory::mark_started(self, id)
    }

    fn finish_with_dropped_logs(
        &self,
        id: i64,
        status: RunStatus,
        output: Option<&str>,
        error: Option<&str>,
        logs: &[LogLine],
        dropped_logs: u64,
        children: &[ChildStats],
    ) -> Result<(), StoreError> {
        SqliteHistory::finish_with_dropped_logs(
            self,
            id,
            status,
            output,
            error,
            logs,
            dropped_logs,
            children,
        )
    }

    fn record_skipped(
        &self,
        flow: &str,
        trigger: Trigger,
        reason: &str,
    ) -> Result<i64, StoreError> {
        SqliteHistory::record_skipped(self, flow, trigger, reason)
    }

    fn page(
        &self,
        flow: Option<&str>,
        status: Option<RunStatus>,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<RunRecord>, StoreError> {
        SqliteHistory::page(self, flow, status, offset, limit)
    }

    fn get(&self, id: i64) -> Result<Option<RunRecord>, StoreError> {
        SqliteHistory::get(self, id)
    }

    fn flow_runs(&self, flow: &str) -> Result<FlowRuns, StoreError> {
        SqliteHistory::flow_runs(self, flow)
    }

    fn prune_older_than(&self, age: Duration) -> Result<u64, StoreError> {
        SqliteHistory::prune_older_than(self, age)
    }

    fn mark_interrupted(&self) -> Result<u64, StoreError> {
        SqliteHistory::mark_interrupted(self)
    }

    fn set_enabled(&self, flow: &str, enabled: bool) -> Result<(), StoreError> {
        SqliteHistory::set_enabled(self, flow, enabled)
    }

    fn switch(&self, flow: &str) -> Result<Option<bool>, StoreError> {
        SqliteHistory::switch(self, flow)
    }

    fn switches(&self) -> Result<BTreeMap<String, bool>, StoreError> {
        SqliteHistory::switches(self)
    }

    fn record_rate_limits(&self, seen: &[RateLimitSeen]) -> Result<(), StoreError> {
        SqliteHistory::record_rate_limits(self, seen)
    }

    fn rate_limits(&self) -> Result<Vec<RateLimitSeen>, StoreError> {
        SqliteHistory::rate_limits(self)
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::history::{history_path_for, History};

    fn line(i: usize) -> LogLine {
        LogLine {
            at: now_rfc3339(),
            level: "info".into(),
            flow: "M10".into(),
            message: format!("line {i}"),
        }
    }

    #[test]
    fn prune_and_mark_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let h = History::open(&path).unwrap();
        let old = h.start("M10", Trigger::Schedule, None, "").unwrap();
        h.finish(old, RunStatus::Error, None, Some("x"), &[line(1)], &[])
            .unwrap();
        let stuck = h.start("M10", Trigger::Schedule, None, "").unwrap();
        let dead = h.start("M10", Trigger::Schedule, None, "").unwrap();
        let mine = h.start("M10", Trigger::Cli, None, "").unwrap();
        let fresh = h.start("M10", Trigger::Cli, None, "").unwrap();
        h.finish(fresh, RunStatus::Ok, None, None, &[], &[])
            .unwrap();
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute(
                "UPDATE _flowhost_runs SET started = '2000-01-01T00:00:00.000Z' WHERE id IN (?1, ?2)",
                [old, stuck],
            )
            .unwrap();
            // `dead` belongs to a process that no longer exists; `stuck` has no pid at all.
            conn.execute(
                "UPDATE _flowhost_runs SET pid = 2147483000 WHERE id = ?1",
                [dead],
            )
            .unwrap();
            conn.execute(
                "UPDATE _flowhost_runs SET pid = NULL WHERE id = ?1",
                [stuck],
            )
            .unwrap();
        }
        // Running runs are never pruned.
        assert_eq!(h.prune_older_than(Duration::from_secs(3600)).unwrap(), 1);
        assert_eq!(h.get(old).unwrap(), None);
        assert!(h.get(stuck).unwrap().is_some());
        assert!(h.get(fresh).unwrap().is_some());
        let logs: i64 = Connection::open(&path)
            .unwrap()
            .query_row("SELECT count(*) FROM _flowhost_run_logs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(logs, 0);

        assert_eq!(h.mark_interrupted().unwrap(), 2);
        for id in [stuck, dead] {
            let r = h.get(id).unwrap().unwrap();
            assert_eq!(r.status, RunStatus::Error);
            assert_eq!(r.error.as_deref(), Some(INTERRUPTED));
            assert!(r.ended.is_some());
        }
        assert_eq!(
            h.get(mine).unwrap().unwrap().status,
            RunStatus::Running,
            "this process is alive"
        );
        assert_eq!(h.mark_interrupted().unwrap(), 0);
        assert_eq!(h.prune_older_than(Duration::from_secs(3600)).unwrap(), 1);
        std::thread::sleep(Duration::from_millis(5));
        // `dead` and `fresh` go; `mine` is still running.
        assert_eq!(h.prune_older_than(Duration::ZERO).unwrap(), 2);
        assert_eq!(h.prune_older_than(Duration::MAX).unwrap(), 0);
    }

    #[test]
    fn history_survives_a_table_rollback_but_shares_the_write_lock() {
        use crate::schema::{Schemas, TableSchema};
        use crate::store::Store;
        use std::sync::Arc;

        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("flowhost.db");
        let schema = TableSchema::from_yaml(
            "name: T\ncolumns:\n  - { name: a, type: text }\n",
            Path::new("t.yaml"),
        )
        .unwrap();
        let store =
            Store::open(&db, Arc::new(Schemas::from_schemas(vec![schema]).unwrap())).unwrap();
        let same = History::open(&db).unwrap();
        let separate = History::open(&history_path_for(&db)).unwrap();

        let id = same.start("M10", Trigger::Cli, None, "{}").unwrap();
        let mut txn = store.begin().unwrap();
        let mut row = serde_json::Map::new();
        row.insert("a".into(), "x".into());
        txn.insert("T", &row).unwrap();
        // While the run holds the tables' write lock, history in the same file must wait...
        same.set_lock_timeout(Duration::from_millis(100)).unwrap();
        let err = same
            .start("U10", Trigger::Call, Some(id), "{}")
            .unwrap_err();
        assert!(err.to_string().contains("database is locked"), "{err}");
        // ...but history in its own file does not.
        separate.start("U10", Trigger::Call, None, "{}").unwrap();
        txn.rollback();
        same.finish(id, RunStatus::Error, None, Some("failed"), &[], &[])
            .unwrap();
        assert_eq!(same.get(id).unwrap().unwrap().status, RunStatus::Error);
        assert_eq!(store.row_count("T").unwrap(), 0);
    }
}
