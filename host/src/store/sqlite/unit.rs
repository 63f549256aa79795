//! The SQLite unit of work ([`SqliteUnit`]): one connection, reads in a read snapshot until the
//! first write takes the write lock (`BEGIN IMMEDIATE`, bounded by the lock timeout and the
//! run's deadline), commit/rollback, and the inserts kept after a rollback.
//!
//! Reads before the first write share one read transaction (a snapshot) rather than each
//! taking and dropping SQLite's file locks (four `fcntl` calls, about a third of a table get's
//! time). The snapshot is renewed when any unit of the same store has committed since it was
//! taken, so reads see every commit of this process as soon as it is made (read committed,
//! as PostgreSQL's units); a commit by another process is seen at the latest
//! [`READ_SNAPSHOT_MAX`] later. The first write ends the snapshot before it takes the write
//! lock, so writes and the reads after them are exactly as before.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params_from_iter, Connection, ErrorCode};
use serde_json::{Map, Value};

use super::connection::sqlite_err;
use super::mapping::{placeholder, quote, Bound, KeyParam, TableSql};
use super::Inner;
use crate::schema::ROW_ID;
use crate::store::kept::KeptRows;
use crate::store::{clauses, insert_many};
use crate::store::{
    DeferredRow, DeferredUpsert, StoreError, TableError, UnitOfWork, DEFAULT_FIND_LIMIT,
    DEFAULT_LOCK_TIMEOUT, MAX_FIND_LIMIT, READ_SNAPSHOT_MAX,
};

/// The unit's open read transaction.
#[derive(Clone, Copy)]
struct Snapshot {
    /// When it was begun (it is renewed after [`READ_SNAPSHOT_MAX`]).
    since: Instant,
    /// The store's commit count then (it is renewed when that has changed).
    commits: u64,
    /// Someone ends it once idle (see [`UnitOfWork::watch_read_snapshot`]).
    watched: bool,
}

/// Why [`SqliteUnit::begin_write`] did not take the write lock.
pub(super) enum BeginError {
    /// The deadline ended the wait (the text says so).
    Expired(String),
    Sqlite(rusqlite::Error),
    /// The unit was already committed or rolled back.
    Finished,
}

impl BeginError {
    const FINISHED: &'static str = "the unit of work is already finished";
}

/// A unit of work: every table read and write of one top-level run (and its children). Writes
/// become visible to others only on [`SqliteUnit::commit`]; [`SqliteUnit::rollback`] or
/// dropping the `SqliteUnit` undoes them. `Send`, not `Sync`.
///
/// Calls block the calling thread: a write may wait up to the lock timeout for another writer.
pub struct SqliteUnit {
    inner: Arc<Inner>,
    conn: Option<Connection>,
    writing: bool,
    /// The read transaction the reads before the first write share (see the module doc).
    snapshot: Option<Snapshot>,
    /// Set when SQLite rolled the write transaction back on its own (disk full, I/O error):
    /// every later call fails, and so does commit, so a half-applied run can never commit.
    aborted: Option<String>,
    timeout_changed: bool,
    /// The longest wait for another writer's lock ([`DEFAULT_LOCK_TIMEOUT`] unless set).
    lock_timeout: Duration,
    /// When the run that owns this unit must end: no lock wait goes past it.
    deadline: Option<Instant>,
    /// Set when a wait for the write lock ended at the deadline: the run timed out.
    lock_wait_expired: Option<String>,
    /// Rows inserted into `keep_on_failure` tables (table, row), written again after a rollback.
    kept: KeptRows,
}

impl std::fmt::Debug for SqliteUnit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteUnit")
            .field("writing", &self.writing)
            .field("aborted", &self.aborted)
            .finish_non_exhaustive()
    }
}

impl SqliteUnit {
    /// A new unit of work on `inner`'s database (no lock until the first write).
    pub(super) fn begin(inner: &Arc<Inner>) -> Result<SqliteUnit, StoreError> {
        let conn = inner.take_conn()?;
        Ok(SqliteUnit {
            inner: Arc::clone(inner),
            conn: Some(conn),
            writing: false,
            snapshot: None,
            aborted: None,
            timeout_changed: false,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            deadline: None,
            lock_wait_expired: None,
            kept: KeptRows::default(),
        })
    }

    /// Rolls the unit back, then writes the rows it inserted into `keep_on_failure` tables in
    /// a transaction of their own (see the module doc). Returns how many were written; a row
    /// that cannot be written again (its key is taken meanwhile) is skipped with a warning.
    pub fn rollback_keeping_inserts(mut self) -> Result<usize, StoreError> {
        let kept = std::mem::take(&mut self.kept);
        let inner = Arc::clone(&self.inner);
        self.release();
        if kept.is_empty() {
            return Ok(0);
        }
        let mut txn = SqliteUnit::begin(&inner)?;
        let written = kept.write_again(&mut txn, SqliteUnit::insert, |u| u.aborted.is_some());
        txn.kept = KeptRows::default();
        txn.commit()?;
        Ok(written)
    }

    /// Runs `f` on the connection, first taking the write lock if `write`; notices when SQLite
    /// has rolled the whole transaction back after an error.
    pub(super) fn exec<R>(
        &mut self,
        t: &TableSql,
        write: bool,
        f: impl FnOnce(&Connection) -> Result<R, TableError>,
    ) -> Result<R, TableError> {
        if let Some(m) = &self.aborted {
            return Err(TableError::Storage(m.clone()));
        }
        if write && !self.writing {
            self.begin_write().map_err(|e| match e {
                BeginError::Expired(m) => TableError::Timeout(format!("table `{}`: {m}", t.name())),
                BeginError::Sqlite(e) => t.storage(e),
                BeginError::Finished => TableError::Storage(BeginError::FINISHED.into()),
            })?;
        }
        if !self.writing {
            self.read_snapshot().map_err(|e| t.storage(e))?;
        }
        let Some(conn) = self.conn.as_ref() else {
            return Err(TableError::Storage(BeginError::FINISHED.into()));
        };
        let r = f(conn);
        if let Err(e) = &r {
            if self.writing && conn.is_autocommit() {
                self.aborted = Some(format!(
                    "SQLite rolled back this run's table writes after an error ({e}); no more table calls are possible in this run"
                ));
            }
        }
        r
    }

    /// Takes SQLite's write lock now rather than at the first write, so that what this run
    /// reads cannot change before it writes (waits up to the lock timeout).
    pub fn lock_for_write(&mut self) -> Result<(), StoreError> {
        if self.writing {
            return Ok(());
        }
        let path = self.inner.path.clone();
        self.begin_write().map_err(|e| match e {
            BeginError::Expired(message) => StoreError::Aborted { path, message },
            BeginError::Sqlite(e) => sqlite_err(&path, "cannot take the write lock")(e),
            BeginError::Finished => StoreError::Aborted {
                path,
                message: BeginError::FINISHED.into(),
            },
        })
    }

    /// How long the next write waits for another writer's lock (default 10 s).
    pub fn set_lock_timeout(&mut self, timeout: Duration) -> Result<(), StoreError> {
        self.lock_timeout = timeout;
        Ok(())
    }

    /// Ends every wait for the write lock at `deadline` (the run's): a write that would wait
    /// past it fails with [`TableError::Timeout`], and [`SqliteUnit::lock_wait_expired`] says so.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = Some(deadline);
    }

    /// Why a wait for the write lock ended at the deadline, if one did: the run timed out
    /// waiting for another writer.
    pub fn lock_wait_expired(&self) -> Option<&str> {
        self.lock_wait_expired.as_deref()
    }

    /// Makes sure the reads to come run in a read transaction no older than
    /// [`READ_SNAPSHOT_MAX`] and no older than the store's last commit (see the module doc).
    fn read_snapshot(&mut self) -> rusqlite::Result<()> {
        let Some(conn) = self.conn.as_ref() else {
            return Ok(());
        };
        let commits = self.inner.commits.load(Ordering::Acquire);
        let now = Instant::now();
        let mut watched = false;
        if let Some(s) = self.snapshot {
            watched = s.watched;
            let fresh =
                s.commits == commits && now.saturating_duration_since(s.since) < READ_SNAPSHOT_MAX;
            // SQLite may have ended the transaction on its own (an I/O error).
            if fresh && !conn.is_autocommit() {
                return Ok(());
            }
        }
        self.end_snapshot()?;
        if let Some(conn) = self.conn.as_ref() {
            conn.execute_batch("BEGIN DEFERRED")?;
            // A renewed snapshot stays with whoever watched the one before.
            self.snapshot = Some(Snapshot {
                since: now,
                commits,
                watched,
            });
        }
        Ok(())
    }

    /// Ends the read transaction, if one is open.
    fn end_snapshot(&mut self) -> rusqlite::Result<()> {
        if self.snapshot.take().is_some() {
            if let Some(conn) = self.conn.as_ref().filter(|c| !c.is_autocommit()) {
                conn.execute_batch("COMMIT")?;
            }
        }
        Ok(())
    }

    /// `BEGIN IMMEDIATE`: takes SQLite's write lock, waiting for another writer at most the
    /// lock timeout and never past the deadline. Ends the read snapshot first: the run then
    /// reads what is committed when it gets the lock.
    pub(super) fn begin_write(&mut self) -> Result<(), BeginError> {
        self.end_snapshot().map_err(BeginError::Sqlite)?;
        let Some(conn) = self.conn.as_ref() else {
            return Err(BeginError::Finished);
        };
        let left = self
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        let wait = left.map_or(self.lock_timeout, |l| l.min(self.lock_timeout));
        conn.busy_timeout(wait).map_err(BeginError::Sqlite)?;
        self.timeout_changed = true;
        let waiting = Instant::now();
        match conn.execute_batch("BEGIN IMMEDIATE") {
            Ok(()) => {
                self.writing = true;
                Ok(())
            }
            Err(e)
                if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                    && left.is_some_and(|l| l <= self.lock_timeout) =>
            {
                let message = format!(
                    "the run's deadline passed while it waited {} ms for the database's write lock (another process or run was writing to `{}`); nothing was written",
                    waiting.elapsed().as_millis(),
                    self.inner.path.display()
                );
                self.lock_wait_expired = Some(message.clone());
                Err(BeginError::Expired(message))
            }
            Err(e) => Err(BeginError::Sqlite(e)),
        }
    }

    /// The row of `table` whose key is `key`. A keyless table's key is the `_id` in decimal;
    /// a key that is not a number then matches nothing.
    pub fn get(
        &mut self,
        table: &str,
        key: &str,
    ) -> Result<Option<Map<String, Value>>, TableError> {
        self.get_as(table, key, TableSql::read_row)
    }

    /// [`SqliteUnit::get`]'s row as JSON text, written straight from the columns (no map of
    /// the row in between); the same text as `serde_json` makes of that row.
    pub fn get_json(&mut self, table: &str, key: &str) -> Result<Option<String>, TableError> {
        self.get_as(table, key, TableSql::row_json)
    }

    /// Whether [`SqliteUnit::get_json`] would give `text` (`None`: no row), found without
    /// making the row's text.
    pub fn get_json_is(
        &mut self,
        table: &str,
        key: &str,
        text: Option<&str>,
    ) -> Result<bool, TableError> {
        let Some(text) = text else {
            return Ok(self.get_as(table, key, |_, _| Ok(()))?.is_none());
        };
        let same = self.get_as(table, key, |t, row| t.row_json_is(row, text))?;
        Ok(same == Some(true))
    }

    /// The row with `key`, as `read` makes it of the SQLite row.
    fn get_as<T>(
        &mut self,
        table: &str,
        key: &str,
        read: impl Fn(&TableSql, &rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, TableError> {
        let inner = Arc::clone(&self.inner);
        let t = inner.table(table)?;
        let Some(k) = t.key_param(key) else {
            return Ok(None);
        };
        self.exec(t, false, |conn| {
            let mut stmt = conn.prepare_cached(&t.get).map_err(|e| t.storage(e))?;
            let mut rows = stmt.query([k]).map_err(|e| t.storage(e))?;
            match rows.next().map_err(|e| t.storage(e))? {
                Some(r) => Ok(Some(read(t, r).map_err(|e| t.storage(e))?)),
                None => Ok(None),
            }
        })
    }

    /// Rows equal to every `column: value` of `filter` (`null` matches unset), oldest first, at
    /// most `limit` (default 1000, capped at 10 000).
    pub fn find(
        &mut self,
        table: &str,
        filter: &Map<String, Value>,
        limit: Option<u32>,
    ) -> Result<Vec<Map<String, Value>>, TableError> {
        let inner = Arc::clone(&self.inner);
        let t = inner.table(table)?;
        let (clause, params) = t.where_clause(filter)?;
        let sql = find_sql(t, &clause, limit);
        self.exec(t, false, |conn| {
            let mut stmt = conn.prepare_cached(&sql).map_err(|e| t.storage(e))?;
            let mut rows = stmt
                .query(params_from_iter(params.iter()))
                .map_err(|e| t.storage(e))?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(|e| t.storage(e))? {
                out.push(t.read_row(r).map_err(|e| t.storage(e))?);
            }
            Ok(out)
        })
    }

    /// How many rows match `filter` (`{}` = all).
    pub fn count(&mut self, table: &str, filter: &Map<String, Value>) -> Result<u64, TableError> {
        let inner = Arc::clone(&self.inner);
        let t = inner.table(table)?;
        let (clause, params) = t.where_clause(filter)?;
        let sql = format!("SELECT count(*) FROM {}{clause}", t.ident);
        self.exec(t, false, |conn| {
            let mut stmt = conn.prepare_cached(&sql).map_err(|e| t.storage(e))?;
            let n: i64 = stmt
                .query_row(params_from_iter(params.iter()), |r| r.get(0))
                .map_err(|e| t.storage(e))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    /// Inserts one row; a duplicate key is [`TableError::Conflict`]. Returns the row's key (the
    /// new `_id` in decimal for a keyless table).
    pub fn insert(&mut self, table: &str, row: &Map<String, Value>) -> Result<String, TableError> {
        let inner = Arc::clone(&self.inner);
        let t = inner.table(table)?;
        let vals = t.bind_row(row)?;
        let key = self.write_one(t, &t.insert, &vals)?;
        self.kept.keep(&t.schema, [row]);
        Ok(key)
    }

    /// Writes one bound row of `t` with `sql` (its insert or its upsert) and returns the row's
    /// key (the new `_id` in decimal for a keyless table).
    fn write_one(
        &mut self,
        t: &TableSql,
        sql: &str,
        vals: &[Bound<'_>],
    ) -> Result<String, TableError> {
        self.exec(t, true, |conn| {
            let mut stmt = conn.prepare_cached(sql).map_err(|e| t.storage(e))?;
            stmt.execute(params_from_iter(vals.iter()))
                .map_err(|e| t.write_error(e, vals))?;
            Ok(match t.key {
                Some((i, _)) => vals.get(i).map(Bound::key_text).unwrap_or_default(),
                None => conn.last_insert_rowid().to_string(),
            })
        })
    }

    /// Inserts every row or none: all rows are checked first (an error names the row number),
    /// then written with one prepared statement inside a savepoint.
    pub fn insert_many(
        &mut self,
        table: &str,
        rows: &[Map<String, Value>],
    ) -> Result<u32, TableError> {
        let inner = Arc::clone(&self.inner);
        let t = inner.table(table)?;
        let (count, bound) = insert_many::bind_all(t.name(), rows, |row| t.bind_row(row))?;
        if bound.is_empty() {
            return Ok(0);
        }
        self.exec(t, true, |conn| {
            conn.execute_batch("SAVEPOINT flowhost_insert_many")
                .map_err(|e| t.storage(e))?;
            let total = bound.len();
            let result = (|| {
                let mut stmt = conn.prepare_cached(&t.insert).map_err(|e| t.storage(e))?;
                for (i, vals) in bound.iter().enumerate() {
                    stmt.execute(params_from_iter(vals.iter()))
                        .map_err(|e| insert_many::row_failed(t.write_error(e, vals), i, total))?;
                }
                Ok(count)
            })();
            if result.is_err() {
                let _ = conn.execute_batch("ROLLBACK TO flowhost_insert_many");
            }
            let _ = conn.execute_batch("RELEASE flowhost_insert_many");
            result
        })?;
        self.kept.keep(&t.schema, rows);
        Ok(count)
    }

    /// Inserts the row, or replaces every column of the row with the same key (which keeps its
    /// place in insertion order). A keyless table has nothing to match on: plain insert.
    pub fn upsert(&mut self, table: &str, row: &Map<String, Value>) -> Result<String, TableError> {
        let inner = Arc::clone(&self.inner);
        let t = inner.table(table)?;
        let vals = t.bind_row(row)?;
        let key = self.write_one(t, &t.upsert, &vals)?;
        // A keyless table's upsert is an insert.
        if t.key.is_none() {
            self.kept.keep(&t.schema, [row]);
        }
        Ok(key)
    }

    /// Applies upserts that [`super::SqliteTables::check_upsert`] accepted earlier, in order
    /// (consecutive rows of one table share one statement), with the values bound then. The
    /// first failure fails every later call and the commit: the run that deferred them may
    /// already have been told they succeeded, so it must not commit without them.
    pub fn upsert_deferred(&mut self, rows: Vec<DeferredUpsert>) -> Result<(), TableError> {
        let Some(first) = rows.first() else {
            return Ok(());
        };
        let inner = Arc::clone(&self.inner);
        let t = inner.table(&first.table)?;
        let r = self.exec(t, true, |conn| {
            let mut current: Option<(&TableSql, rusqlite::CachedStatement<'_>)> = None;
            for row in &rows {
                let same = current.as_ref().is_some_and(|(t, _)| t.name() == row.table);
                if !same {
                    let t = inner.table(&row.table)?;
                    let stmt = conn.prepare_cached(&t.upsert).map_err(|e| t.storage(e))?;
                    current = Some((t, stmt));
                }
                if let Some((t, stmt)) = current.as_mut() {
                    match &row.row {
                        DeferredRow::Bound(vals) => {
                            stmt.execute(params_from_iter(vals.values())).map_err(|e| {
                                let key = t.key.and_then(|(i, _)| vals.get(i));
                                t.write_error_keyed(e, key)
                            })?
                        }
                        DeferredRow::Json(m) => {
                            let vals = t.bind_row(m)?;
                            stmt.execute(params_from_iter(vals.iter()))
                                .map_err(|e| t.write_error(e, &vals))?
                        }
                    };
                }
            }
            Ok(())
        });
        if let Err(e) = &r {
            self.aborted.get_or_insert_with(|| {
                format!("a table write of this run failed ({e}); no more table calls are possible in this run")
            });
        }
        r
    }

    /// Sets the columns in `changes` on the row with `key`; `false` if there is no such row.
    /// The key column (or `_id`) may appear only with the row's own key: keys are not renamed.
    pub fn update(
        &mut self,
        table: &str,
        key: &str,
        changes: &Map<String, Value>,
    ) -> Result<bool, TableError> {
        let inner = Arc::clone(&self.inner);
        let t = inner.table(table)?;
        let Some(k) = t.key_param(key) else {
            // Still check the changes, so that a typo is reported even for a missing row.
            t.schema.check_changes(changes)?;
            return Ok(false);
        };
        let (sets, params) = clauses::set_clause(
            &t.schema,
            t.key,
            changes,
            placeholder,
            (t.name(), key),
            |name, ty, v| t.bind(name, ty, v),
            |bound| match (&k, bound) {
                (KeyParam::Text(a), Bound::Text(b)) => a == b,
                (KeyParam::Int(a), Bound::Int(b)) => a == b,
                _ => false,
            },
        )?;
        if sets.is_empty() {
            let sql = format!("SELECT 1 FROM {} WHERE {} = ?1", t.ident, t.key_ident);
            return self.exec(t, false, |conn| {
                let mut stmt = conn.prepare_cached(&sql).map_err(|e| t.storage(e))?;
                stmt.exists([k]).map_err(|e| t.storage(e))
            });
        }
        let key_pos = params.len() + 1;
        let sql = format!(
            "UPDATE {} SET {} WHERE {} = ?{key_pos}",
            t.ident,
            sets.join(", "),
            t.key_ident
        );
        self.exec(t, true, |conn| {
            let mut stmt = conn.prepare_cached(&sql).map_err(|e| t.storage(e))?;
            for (i, p) in params.iter().enumerate() {
                stmt.raw_bind_parameter(i + 1, p)
                    .map_err(|e| t.storage(e))?;
            }
            stmt.raw_bind_parameter(key_pos, &k)
                .map_err(|e| t.storage(e))?;
            let n = stmt.raw_execute().map_err(|e| t.write_error(e, &[]))?;
            Ok(n > 0)
        })
    }

    /// Deletes the row with `key`; `false` if there is none.
    pub fn delete(&mut self, table: &str, key: &str) -> Result<bool, TableError> {
        let inner = Arc::clone(&self.inner);
        let t = inner.table(table)?;
        let Some(k) = t.key_param(key) else {
            return Ok(false);
        };
        self.exec(t, true, |conn| {
            let mut stmt = conn.prepare_cached(&t.delete).map_err(|e| t.storage(e))?;
            let n = stmt.execute([k]).map_err(|e| t.storage(e))?;
            Ok(n > 0)
        })
    }

    /// Deletes every row; returns how many there were.
    pub fn clear(&mut self, table: &str) -> Result<u64, TableError> {
        let inner = Arc::clone(&self.inner);
        let t = inner.table(table)?;
        let sql = format!("DELETE FROM {}", t.ident);
        self.exec(t, true, |conn| {
            let mut stmt = conn.prepare_cached(&sql).map_err(|e| t.storage(e))?;
            let n = stmt.execute([]).map_err(|e| t.storage(e))?;
            Ok(n as u64)
        })
    }

    /// Whether a write transaction was started (and so holds SQLite's write lock).
    pub fn wrote(&self) -> bool {
        self.writing
    }

    /// Makes every write of the unit visible at once. Fails (having rolled back) if SQLite had
    /// already rolled the unit back or the commit itself fails (disk full).
    pub fn commit(mut self) -> Result<(), StoreError> {
        let path = self.inner.path.clone();
        if let Some(message) = self.aborted.take() {
            self.release();
            return Err(StoreError::Aborted { path, message });
        }
        if self.writing {
            if let Some(conn) = self.conn.as_ref() {
                if let Err(source) = conn.execute_batch("COMMIT") {
                    self.release();
                    return Err(StoreError::Sqlite {
                        path,
                        context: "commit failed, the run's table writes were rolled back".into(),
                        source,
                    });
                }
            }
            self.writing = false;
            self.inner.commits.fetch_add(1, Ordering::Release);
            if let (Some(c), Some(conn)) = (&self.inner.checkpoints, &self.conn) {
                c.committed(conn);
            }
        }
        self.release();
        Ok(())
    }

    /// Undoes every write of the unit (also what dropping a `SqliteUnit` does).
    pub fn rollback(mut self) {
        self.release();
    }

    pub(super) fn release(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.writing = false;
            // `put_conn` rolls back whatever transaction is open, a read snapshot included.
            self.snapshot = None;
            self.inner.put_conn(conn, self.timeout_changed);
        }
    }
}

impl Drop for SqliteUnit {
    fn drop(&mut self) {
        self.release();
    }
}

impl UnitOfWork for SqliteUnit {
    fn get(&mut self, table: &str, key: &str) -> Result<Option<Map<String, Value>>, TableError> {
        SqliteUnit::get(self, table, key)
    }

    fn get_json(&mut self, table: &str, key: &str) -> Result<Option<String>, TableError> {
        SqliteUnit::get_json(self, table, key)
    }

    fn get_json_is(
        &mut self,
        table: &str,
        key: &str,
        text: Option<&str>,
    ) -> Result<bool, TableError> {
        SqliteUnit::get_json_is(self, table, key, text)
    }

    fn watch_read_snapshot(&mut self) -> Option<Instant> {
        match &mut self.snapshot {
            Some(s) if !s.watched => {
                s.watched = true;
                Some(s.since)
            }
            _ => None,
        }
    }

    fn end_idle_read_snapshot(&mut self, idle: Duration) -> Option<Instant> {
        let since = self.snapshot?.since;
        if since.elapsed() < idle {
            return Some(since);
        }
        if let Err(e) = self.end_snapshot() {
            // The connection goes back to the pool with a rollback at the end of the unit.
            tracing::warn!(error = %e, "could not end a run's read snapshot");
        }
        None
    }

    fn find(
        &mut self,
        table: &str,
        filter: &Map<String, Value>,
        limit: Option<u32>,
    ) -> Result<Vec<Map<String, Value>>, TableError> {
        SqliteUnit::find(self, table, filter, limit)
    }

    fn count(&mut self, table: &str, filter: &Map<String, Value>) -> Result<u64, TableError> {
        SqliteUnit::count(self, table, filter)
    }

    fn insert(&mut self, table: &str, row: &Map<String, Value>) -> Result<String, TableError> {
        SqliteUnit::insert(self, table, row)
    }

    fn insert_many(&mut self, table: &str, rows: &[Map<String, Value>]) -> Result<u32, TableError> {
        SqliteUnit::insert_many(self, table, rows)
    }

    fn upsert(&mut self, table: &str, row: &Map<String, Value>) -> Result<String, TableError> {
        SqliteUnit::upsert(self, table, row)
    }

    fn upsert_deferred(&mut self, rows: Vec<DeferredUpsert>) -> Result<(), TableError> {
        SqliteUnit::upsert_deferred(self, rows)
    }

    fn update(
        &mut self,
        table: &str,
        key: &str,
        changes: &Map<String, Value>,
    ) -> Result<bool, TableError> {
        SqliteUnit::update(self, table, key, changes)
    }

    fn delete(&mut self, table: &str, key: &str) -> Result<bool, TableError> {
        SqliteUnit::delete(self, table, key)
    }

    fn clear(&mut self, table: &str) -> Result<u64, TableError> {
        SqliteUnit::clear(self, table)
    }

    fn wrote(&self) -> bool {
        SqliteUnit::wrote(self)
    }

    fn lock_for_write(&mut self) -> Result<(), StoreError> {
        SqliteUnit::lock_for_write(self)
    }

    fn set_lock_timeout(&mut self, timeout: Duration) -> Result<(), StoreError> {
        SqliteUnit::set_lock_timeout(self, timeout)
    }

    fn set_deadline(&mut self, deadline: Instant) {
        SqliteUnit::set_deadline(self, deadline)
    }

    fn lock_wait_expired(&self) -> Option<&str> {
        SqliteUnit::lock_wait_expired(self)
    }

    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        SqliteUnit::commit(*self)
    }

    fn rollback(self: Box<Self>) {
        SqliteUnit::rollback(*self)
    }

    fn rollback_keeping_inserts(self: Box<Self>) -> Result<usize, StoreError> {
        SqliteUnit::rollback_keeping_inserts(*self)
    }
}

/// The statement of a find with `clause` (its `WHERE`, bound by the caller), oldest first, at
/// most `limit` rows (default 1000, capped at 10 000). The limit is written into the text, not
/// bound: SQLite plans a bound `LIMIT` by its value, so binding it again expires the cached
/// statement, and every find (U01's, in every M10 run) was compiled afresh.
fn find_sql(t: &TableSql, clause: &str, limit: Option<u32>) -> String {
    let limit = limit.unwrap_or(DEFAULT_FIND_LIMIT).min(MAX_FIND_LIMIT);
    format!(
        "{}{clause} ORDER BY {} LIMIT {limit}",
        t.select,
        quote(ROW_ID)
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::store::sqlite::test_support::*;
    use crate::store::{BoundRow, CheckedUpsert, Store, TableBackend, Txn, UpsertRow};
    use serde_json::json;
    use std::time::Instant;

    #[test]
    fn store_and_txn_are_send_sync() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Store>();
        send::<Txn>();
    }

    #[test]
    fn reads_share_a_snapshot_that_this_stores_commits_renew() {
        let dir = tempfile::tempdir().unwrap();
        let (tables, store) = open_both(dir.path(), vec![typed()]);
        let mut reader = SqliteUnit::begin(&tables.inner).unwrap();
        assert_eq!(reader.get("Typed", "a").unwrap(), None);
        // The read left its transaction open for the reads after it.
        assert!(!reader.conn.as_ref().unwrap().is_autocommit());

        // Another unit's commit is seen by the very next read.
        let mut writer = store.begin().unwrap();
        writer.insert("Typed", &obj(json!({"id": "a"}))).unwrap();
        writer.commit().unwrap();
        assert!(reader.get("Typed", "a").unwrap().is_some());

        // Another process's commit is seen within READ_SNAPSHOT_MAX.
        let other = Connection::open(dir.path().join("t.db")).unwrap();
        let ident = &tables.inner.tables["Typed"].ident;
        other
            .execute(&format!("INSERT INTO {ident} (\"id\") VALUES ('b')"), [])
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while reader.get("Typed", "b").unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "the other process's row never showed"
            );
        }

        // Whoever watches the snapshot can end it once idle, and only then.
        assert!(reader.get("Typed", "a").unwrap().is_some());
        assert!(UnitOfWork::watch_read_snapshot(&mut reader).is_some());
        assert!(
            UnitOfWork::watch_read_snapshot(&mut reader).is_none(),
            "watched once"
        );
        assert!(reader
            .end_idle_read_snapshot(Duration::from_secs(3600))
            .is_some());
        assert!(!reader.conn.as_ref().unwrap().is_autocommit());
        assert!(reader.end_idle_read_snapshot(Duration::ZERO).is_none());
        assert!(reader.conn.as_ref().unwrap().is_autocommit());

        // The first write ends the snapshot and takes the write lock; the unit commits.
        reader.insert("Typed", &obj(json!({"id": "c"}))).unwrap();
        assert!(reader.wrote());
        reader.commit().unwrap();
        assert_eq!(store.row_count("Typed").unwrap(), 3);
    }

    #[test]
    fn get_json_is_the_text_of_gets_row() {
        let dir = tempfile::tempdir().unwrap();
        let log = schema(
            "name: Log\ncolumns:\n  - { name: msg, type: text }\n  - { name: at, type: integer }\n",
        );
        let (tables, store) = open_both(dir.path(), vec![typed(), log]);
        let mut tx = store.begin().unwrap();
        let row = json!({"id": "k\"1", "n": 1.5, "i": -7, "b": true, "j": {"z": [1, "x"], "a": null}, "s": "tab\tünï"});
        tx.insert("Typed", &obj(row)).unwrap();
        tx.insert("Typed", &obj(json!({"id": "empty"}))).unwrap();
        let log_key = tx
            .insert("Log", &obj(json!({"msg": "hi", "at": 3})))
            .unwrap();
        tx.commit().unwrap();
        // Cells another program wrote, of other types than the columns'.
        let other = Connection::open(dir.path().join("t.db")).unwrap();
        let ident = &tables.inner.tables["Typed"].ident;
        other
            .execute(
                &format!("INSERT INTO {ident} (\"id\", \"n\", \"i\", \"b\", \"j\", \"s\") VALUES ('odd', 2.0, 'seven', 'yes', 'not json', ?1)"),
                [rusqlite::types::Value::Blob(vec![0x66, 0xff, 0x6f])],
            )
            .unwrap();
        other
            .execute(
                &format!("INSERT INTO {ident} (\"id\", \"n\", \"s\") VALUES ('num', 'text', 12)"),
                [],
            )
            .unwrap();

        let mut tx = store.begin().unwrap();
        for (table, key) in [
            ("Typed", "k\"1"),
            ("Typed", "empty"),
            ("Typed", "odd"),
            ("Typed", "num"),
            ("Log", log_key.as_str()),
        ] {
            let row = tx.get(table, key).unwrap().expect("the row");
            let text = tx.get_json(table, key).unwrap().expect("the row's text");
            assert_eq!(text, serde_json::to_string(&row).unwrap(), "{table} {key}");
        }
        assert_eq!(tx.get_json("Typed", "missing").unwrap(), None);
        assert_eq!(tx.get_json("Log", "not a number").unwrap(), None);
    }

    #[test]
    fn get_json_is_compares_with_the_rows_text() {
        let dir = tempfile::tempdir().unwrap();
        let (_tables, store) = open_both(dir.path(), vec![typed()]);
        let mut tx = store.begin().unwrap();
        let row = json!({"id": "k\"1", "n": 1.5, "j": {"z": [1, "x"]}, "s": "tab\tünï"});
        tx.insert("Typed", &obj(row)).unwrap();
        let text = tx
            .get_json("Typed", "k\"1")
            .unwrap()
            .expect("the row's text");
        let is = |tx: &mut Txn, key: &str, text: Option<&str>| {
            tx.get_json_is("Typed", key, text).unwrap()
        };
        assert!(is(&mut tx, "k\"1", Some(&text)));
        // Shorter, longer, one byte changed (inside an escaped text too), no row expected.
        assert!(!is(&mut tx, "k\"1", Some(&text[..text.len() - 1])));
        assert!(!is(&mut tx, "k\"1", Some(&format!("{text} "))));
        assert!(!is(&mut tx, "k\"1", Some(&text.replace("1.5", "1.6"))));
        assert!(!is(&mut tx, "k\"1", Some(&text.replace("\\t", "\\n"))));
        assert!(!is(&mut tx, "k\"1", None));
        // A missing row is `None`, and is no text.
        assert!(is(&mut tx, "missing", None));
        assert!(!is(&mut tx, "missing", Some(&text)));
    }

    #[test]
    fn every_txn_op_on_a_keyed_table() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_with(dir.path(), vec![typed()]);
        let mut tx = store.begin().unwrap();
        assert!(!tx.wrote());
        assert_eq!(tx.get("Typed", "a").unwrap(), None);
        assert!(!tx.wrote(), "reads do not take the write lock");

        let key = tx
            .insert("Typed", &obj(json!({"id": "a", "n": 2.5, "i": 7, "b": true, "j": {"x": [1, "y"]}, "s": "hello"})))
            .unwrap();
        assert_eq!(key, "a");
        assert!(tx.wrote());
        assert_eq!(
            tx.get("Typed", "a").unwrap().unwrap(),
            obj(
                json!({"id": "a", "n": 2.5, "i": 7, "b": true, "j": {"x": [1, "y"]}, "s": "hello"})
            )
        );
        // Omitted columns come back as null; integral numbers as integers.
        tx.insert("Typed", &obj(json!({"id": "b", "n": 3})))
            .unwrap();
        assert_eq!(
            tx.get("Typed", "b").unwrap().unwrap(),
            obj(json!({"id": "b", "n": 3, "i": null, "b": null, "j": null, "s": null}))
        );
        // Duplicate key.
        let err = tx.insert("Typed", &obj(json!({"id": "a"}))).unwrap_err();
        assert_eq!(
            err,
            TableError::Conflict("table `Typed`: a row with key `a` already exists".into())
        );
        // The failed insert did not spoil the unit of work.
        assert_eq!(tx.count("Typed", &Map::new()).unwrap(), 2);

        // Upsert replaces every column and keeps the row's place.
        assert_eq!(
            tx.upsert("Typed", &obj(json!({"id": "a", "s": "replaced"})))
                .unwrap(),
            "a"
        );
        assert_eq!(
            tx.upsert("Typed", &obj(json!({"id": "c", "b": false})))
                .unwrap(),
            "c"
        );
        let all = tx.find("Typed", &Map::new(), None).unwrap();
        let ids: Vec<&str> = all.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(all[0]["s"], json!("replaced"));
        assert_eq!(all[0]["n"], Value::Null);
        assert_eq!(all[2]["b"], json!(false));

        // Find with filters (null matches unset), limit.
        assert_eq!(
            tx.find("Typed", &obj(json!({"s": null})), None)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            tx.find("Typed", &obj(json!({"b": false})), None)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            tx.find("Typed", &obj(json!({"n": 3.0})), None)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            tx.find("Typed", &obj(json!({"s": null, "id": "b"})), None)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(tx.find("Typed", &Map::new(), Some(2)).unwrap().len(), 2);
        assert_eq!(tx.find("Typed", &Map::new(), Some(0)).unwrap().len(), 0);
        assert_eq!(tx.count("Typed", &obj(json!({"s": null}))).unwrap(), 2);
        let err = tx.find("Typed", &obj(json!({"nn": 1})), None).unwrap_err();
        assert_eq!(
            err,
            TableError::InvalidInput("table `Typed` has no column `nn` (did you mean `n`?)".into())
        );
        let err = tx.find("Typed", &obj(json!({"n": "3"})), None).unwrap_err();
        assert!(matches!(err, TableError::InvalidInput(_)), "{err:?}");

        // Update.
        assert!(tx
            .update("Typed", "b", &obj(json!({"s": "upd", "i": 4.0, "id": "b"})))
            .unwrap());
        assert_eq!(tx.get("Typed", "b").unwrap().unwrap()["i"], json!(4));
        assert!(!tx.update("Typed", "zz", &obj(json!({"s": "x"}))).unwrap());
        assert!(
            tx.update("Typed", "b", &Map::new()).unwrap(),
            "no changes: true if the row exists"
        );
        assert!(!tx.update("Typed", "zz", &Map::new()).unwrap());
        let err = tx
            .update("Typed", "b", &obj(json!({"id": "other"})))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot change the key `id` of row `b`"),
            "{err}"
        );
        let err = tx
            .update("Typed", "b", &obj(json!({"id": null})))
            .unwrap_err();
        assert!(matches!(err, TableError::InvalidInput(_)));
        let err = tx
            .update("Typed", "b", &obj(json!({"bogus": 1})))
            .unwrap_err();
        assert!(err.to_string().contains("no column `bogus`"));

        // Delete and clear.
        assert!(tx.delete("Typed", "b").unwrap());
        assert!(!tx.delete("Typed", "b").unwrap());
        assert_eq!(tx.clear("Typed").unwrap(), 2);
        assert_eq!(tx.count("Typed", &Map::new()).unwrap(), 0);

        // Unknown table.
        let err = tx.get("typed", "a").unwrap_err();
        assert_eq!(
            err,
            TableError::NotFound("no table `typed` (did you mean `Typed`?)".into())
        );
        let err = tx.insert("Nope", &Map::new()).unwrap_err();
        assert_eq!(err, TableError::NotFound("no table `Nope`".into()));
        // Missing key.
        let err = tx.insert("Typed", &obj(json!({"s": "x"}))).unwrap_err();
        assert_eq!(
            err,
            TableError::InvalidInput(
                "table `Typed`: the row has no value for the key column `id`".into()
            )
        );
        tx.commit().unwrap();
    }

    #[test]
    fn keyless_tables_use_the_row_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_with(
            dir.path(),
            vec![schema("name: Log\ncolumns:\n  - { name: note, type: text }\n  - { name: n, type: number }\n")],
        );
        let mut tx = store.begin().unwrap();
        let k1 = tx.insert("Log", &obj(json!({"note": "one"}))).unwrap();
        let k2 = tx
            .upsert("Log", &obj(json!({"note": "two", "n": 1.25})))
            .unwrap();
        assert_eq!((k1.as_str(), k2.as_str()), ("1", "2"));
        assert_eq!(
            tx.get("Log", "2").unwrap().unwrap(),
            obj(json!({"_id": 2, "note": "two", "n": 1.25}))
        );
        assert_eq!(
            tx.get("Log", "two").unwrap(),
            None,
            "a non-number key matches nothing"
        );
        assert!(!tx.update("Log", "two", &obj(json!({"note": "x"}))).unwrap());
        assert!(!tx.delete("Log", "x").unwrap());
        // A row read back can be written back (`_id` in changes equal to the key is fine).
        let mut row = tx.get("Log", "1").unwrap().unwrap();
        row.insert("note".into(), json!("uno"));
        assert!(tx.update("Log", "1", &row).unwrap());
        assert_eq!(tx.get("Log", "1").unwrap().unwrap()["note"], json!("uno"));
        let err = tx.update("Log", "1", &obj(json!({"_id": 5}))).unwrap_err();
        assert!(
            err.to_string().contains("cannot change the key `_id`"),
            "{err}"
        );
        // `_id` in an inserted row is ignored.
        let k3 = tx.insert("Log", &row).unwrap();
        assert_eq!(k3, "3");
        assert_eq!(
            tx.find("Log", &obj(json!({"_id": 3})), None).unwrap().len(),
            1
        );
        assert_eq!(tx.count("Log", &obj(json!({"note": "uno"}))).unwrap(), 2);
        // Row ids are never reused.
        assert!(tx.delete("Log", "3").unwrap());
        assert_eq!(tx.insert("Log", &obj(json!({}))).unwrap(), "4");
        assert_eq!(tx.clear("Log").unwrap(), 3);
        assert_eq!(tx.insert("Log", &obj(json!({}))).unwrap(), "5");
        tx.commit().unwrap();
    }

    #[test]
    fn insert_many_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_with(dir.path(), vec![typed()]);
        let mut tx = store.begin().unwrap();
        tx.insert("Typed", &obj(json!({"id": "x"}))).unwrap();
        let rows: Vec<_> = (0..5)
            .map(|i| obj(json!({"id": format!("r{i}")})))
            .collect();
        assert_eq!(tx.insert_many("Typed", &rows).unwrap(), 5);

        // A bad row: nothing written, error names the row.
        let bad = vec![obj(json!({"id": "n1"})), obj(json!({"id": "n2", "i": "7"}))];
        let err = tx.insert_many("Typed", &bad).unwrap_err();
        assert_eq!(
            err.to_string(),
            "row 2 of 2: table `Typed`, column `i` (integer): expected an integer, got the string \"7\" (nothing was inserted)"
        );
        // A duplicate in the middle: rolled back to before the call.
        let dup = vec![
            obj(json!({"id": "n1"})),
            obj(json!({"id": "x"})),
            obj(json!({"id": "n3"})),
        ];
        let err = tx.insert_many("Typed", &dup).unwrap_err();
        assert_eq!(
            err,
            TableError::Conflict("row 2 of 3: table `Typed`: a row with key `x` already exists (nothing was inserted)".into())
        );
        assert_eq!(tx.count("Typed", &Map::new()).unwrap(), 6);
        assert_eq!(tx.insert_many("Typed", &[]).unwrap(), 0);
        tx.commit().unwrap();
        assert_eq!(store.row_count("Typed").unwrap(), 6);
    }

    #[test]
    fn a_failed_runs_inserts_into_a_keep_on_failure_table_survive_its_rollback() {
        let dir = tempfile::tempdir().unwrap();
        let log =
            schema("name: Log\nkeep_on_failure: true\ncolumns:\n  - { name: note, type: text }\n");
        let store = open_with(dir.path(), vec![typed(), log]);
        let mut tx = store.begin().unwrap();
        tx.insert("Log", &obj(json!({"note": "before"}))).unwrap();
        tx.commit().unwrap();

        let mut tx = store.begin().unwrap();
        tx.insert("Typed", &obj(json!({"id": "rolled"}))).unwrap();
        tx.insert("Log", &obj(json!({"note": "one"}))).unwrap();
        tx.insert_many(
            "Log",
            &[obj(json!({"note": "two"})), obj(json!({"note": "three"}))],
        )
        .unwrap();
        tx.upsert("Log", &obj(json!({"note": "four"}))).unwrap();
        // Updates and deletes of the kept table roll back like every other write.
        assert!(tx
            .update("Log", "1", &obj(json!({"note": "changed"})))
            .unwrap());
        assert!(tx.delete("Log", "1").unwrap());
        assert_eq!(tx.rollback_keeping_inserts().unwrap(), 4);

        let mut tx = store.begin().unwrap();
        assert_eq!(tx.get("Typed", "rolled").unwrap(), None);
        let notes: Vec<Value> = tx
            .find("Log", &Map::new(), None)
            .unwrap()
            .into_iter()
            .map(|r| r["note"].clone())
            .collect();
        assert_eq!(
            notes,
            [
                json!("before"),
                json!("one"),
                json!("two"),
                json!("three"),
                json!("four")
            ]
        );
        tx.commit().unwrap();

        // A plain rollback (or drop) keeps nothing; a unit without kept rows writes nothing.
        let mut tx = store.begin().unwrap();
        tx.insert("Log", &obj(json!({"note": "dropped"}))).unwrap();
        tx.rollback();
        let mut tx = store.begin().unwrap();
        tx.insert("Typed", &obj(json!({"id": "rolled"}))).unwrap();
        assert_eq!(tx.rollback_keeping_inserts().unwrap(), 0);
        let mut tx = store.begin().unwrap();
        assert_eq!(tx.count("Log", &Map::new()).unwrap(), 5);
        assert_eq!(tx.count("Typed", &Map::new()).unwrap(), 0);
    }

    #[test]
    fn commit_rollback_and_drop() {
        let dir = tempfile::tempdir().unwrap();
        let (tables, store) = open_both(dir.path(), vec![typed()]);

        let mut tx = store.begin().unwrap();
        tx.insert("Typed", &obj(json!({"id": "committed"})))
            .unwrap();
        // Not visible to another unit before commit.
        let mut other = store.begin().unwrap();
        assert_eq!(other.get("Typed", "committed").unwrap(), None);
        tx.commit().unwrap();
        assert!(other.get("Typed", "committed").unwrap().is_some());
        drop(other);

        let mut tx = store.begin().unwrap();
        tx.insert("Typed", &obj(json!({"id": "rolled"}))).unwrap();
        tx.rollback();
        {
            let mut tx = store.begin().unwrap();
            tx.insert("Typed", &obj(json!({"id": "dropped"}))).unwrap();
            tx.clear("Typed").unwrap();
        }
        let mut tx = store.begin().unwrap();
        assert_eq!(tx.get("Typed", "rolled").unwrap(), None);
        assert_eq!(tx.get("Typed", "dropped").unwrap(), None);
        assert!(tx.get("Typed", "committed").unwrap().is_some());
        // A read-only unit commits trivially.
        tx.commit().unwrap();
        // Connections go back to the pool.
        assert!(!tables.inner.pool.lock().unwrap().is_empty());
    }

    #[test]
    fn a_second_writer_waits_for_the_first() {
        use std::sync::atomic::AtomicBool;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open_with(dir.path(), vec![typed()]));
        let mut first = store.begin().unwrap();
        first.insert("Typed", &obj(json!({"id": "first"}))).unwrap();

        // While the first holds the lock, a writer that may not wait is refused.
        let mut hasty = store.begin().unwrap();
        hasty.set_lock_timeout(Duration::ZERO).unwrap();
        let err = hasty
            .insert("Typed", &obj(json!({"id": "hasty"})))
            .unwrap_err();
        assert!(
            err.to_string().contains("locked by another writer"),
            "{err}"
        );
        drop(hasty);

        // A writer that may wait gets the lock once the first has committed, and not before.
        let committing = Arc::new(AtomicBool::new(false));
        let (s2, seen) = (Arc::clone(&store), Arc::clone(&committing));
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let second = std::thread::spawn(move || {
            let mut tx = s2.begin().unwrap();
            // Reads do not wait.
            assert_eq!(tx.count("Typed", &Map::new()).unwrap(), 0);
            started_tx.send(()).unwrap();
            tx.insert("Typed", &obj(json!({"id": "second"}))).unwrap();
            let after_commit = seen.load(Ordering::SeqCst);
            // Inside its write transaction it sees the first unit's committed row.
            assert!(tx.get("Typed", "first").unwrap().is_some());
            tx.commit().unwrap();
            after_commit
        });
        started_rx.recv().unwrap();
        committing.store(true, Ordering::SeqCst);
        first.commit().unwrap();
        assert!(
            second.join().unwrap(),
            "the second writer wrote before the first committed"
        );
        assert_eq!(store.row_count("Typed").unwrap(), 2);

        // With a short lock timeout, the waiting writer gives up with a clear error.
        let mut first = store.begin().unwrap();
        first.clear("Typed").unwrap();
        let mut second = store.begin().unwrap();
        second.set_lock_timeout(Duration::from_millis(100)).unwrap();
        let err = second
            .insert("Typed", &obj(json!({"id": "x"})))
            .unwrap_err();
        assert!(matches!(err, TableError::Storage(_)), "{err:?}");
        assert!(
            err.to_string().contains("locked by another writer"),
            "{err}"
        );
        assert!(!second.wrote());
        drop(second);
        first.rollback();
        assert_eq!(store.row_count("Typed").unwrap(), 2);
    }

    #[test]
    fn a_lock_wait_ends_at_the_deadline_as_a_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_with(dir.path(), vec![typed()]);
        let mut first = store.begin().unwrap();
        first.insert("Typed", &obj(json!({"id": "first"}))).unwrap();

        let mut late = store.begin().unwrap();
        late.set_deadline(Instant::now() + Duration::from_millis(50));
        assert_eq!(late.lock_wait_expired(), None);
        let err = late
            .insert("Typed", &obj(json!({"id": "late"})))
            .unwrap_err();
        assert!(matches!(err, TableError::Timeout(_)), "{err:?}");
        let said = late.lock_wait_expired().unwrap().to_string();
        assert!(
            err.to_string()
                .starts_with("table `Typed`: the run's deadline passed while it waited ")
                && said.contains("for the database's write lock"),
            "{err} / {said}"
        );
        // Past the deadline a write is refused at once, and the unit cannot commit it.
        assert!(matches!(
            late.insert("Typed", &obj(json!({"id": "later"}))),
            Err(TableError::Timeout(_))
        ));
        assert!(!late.wrote());
        drop(late);
        first.commit().unwrap();
        assert_eq!(store.row_count("Typed").unwrap(), 1);
    }

    /// Caps the database at 20 pages, so that a few rows of the returned 3,000-byte text fill
    /// it: a full disk, for the tests.
    fn fill_soon(tx: &SqliteUnit) -> String {
        tx.conn
            .as_ref()
            .unwrap()
            .pragma_update(None, "max_page_count", 20)
            .unwrap();
        "x".repeat(3000)
    }

    /// A find asked again runs the statement it compiled the first time: SQLite recompiles
    /// a statement whose plan depends on a bound value (a bound `LIMIT`) each time it is bound
    /// again, which every M10 run paid for U01's find.
    #[test]
    fn a_repeated_find_is_not_compiled_again() {
        let dir = tempfile::tempdir().unwrap();
        let (tables, _) = open_both(dir.path(), vec![typed()]);
        let mut tx = tables.begin().unwrap();
        tx.insert("Typed", &obj(json!({"id": "a", "s": "x"})))
            .unwrap();
        let filter = obj(json!({"s": "x"}));
        for limit in [None, None, Some(5), Some(5), None] {
            let rows = tx.find("Typed", &filter, limit).unwrap();
            assert_eq!(rows.len(), 1);
        }
        let inner = Arc::clone(&tx.inner);
        let t = inner.table("Typed").unwrap();
        let (clause, _) = t.where_clause(&filter).unwrap();
        let recompiled = tx
            .exec(t, false, |conn| {
                let mut total = 0;
                for limit in [None, Some(5)] {
                    let sql = find_sql(t, &clause, limit);
                    let stmt = conn.prepare_cached(&sql).map_err(|e| t.storage(e))?;
                    total += stmt.get_status(rusqlite::StatementStatus::RePrepare);
                }
                Ok(total)
            })
            .unwrap();
        assert_eq!(recompiled, 0);
    }

    #[test]
    fn a_full_database_is_a_storage_error() {
        let dir = tempfile::tempdir().unwrap();
        let (tables, _) = open_both(dir.path(), vec![typed()]);
        let mut tx = tables.begin().unwrap();
        let big = fill_soon(&tx);
        let mut err = None;
        for i in 0..100 {
            if let Err(e) = tx.insert("Typed", &obj(json!({"id": format!("k{i}"), "s": big}))) {
                err = Some(e);
                break;
            }
        }
        let err = err.expect("the database never filled up");
        assert!(matches!(err, TableError::Storage(_)), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("table `Typed`: database or disk is full"),
            "{err}"
        );
        // Either SQLite kept the transaction (commit keeps the rows written before) or it rolled
        // it back (then every later call and the commit fail); never a half-applied commit.
        let aborted = tx.aborted.is_some();
        match tx.commit() {
            Ok(()) => assert!(!aborted),
            Err(e) => assert!(aborted, "{e}"),
        }
    }

    /// An upsert into a keyed table is bound once, when it is checked: a typed row's fields
    /// and the same row as a JSON object give the same values and the same refusals as a
    /// direct upsert, and the values bound then are what the deferred write stores.
    #[test]
    fn a_checked_upsert_is_bound_once_and_fields_bind_as_their_object() {
        let dir = tempfile::tempdir().unwrap();
        let (_, store) = open_both(dir.path(), vec![typed()]);
        let rows = [
            json!({"id": "a", "n": 1.5, "i": 3, "b": true, "j": {"x": [1, "y"]}, "s": "say \"hi\""}),
            json!({"id": "b", "n": 2, "i": -4, "b": null, "j": "text", "s": ""}),
            json!({"id": "c"}),
            json!({"id": "x", "i": "no"}),
            json!({"id": "x", "zz": 1}),
            json!({"n": 1}),
            json!({"id": "x", "b": 1}),
            json!({"id": "x", "i": 1.5}),
            // Of two faults, the one in the first column by name is refused.
            json!({"a_unknown": 1, "i": "no", "id": "x"}),
            json!({"b": "no", "zz": 1, "id": "x"}),
        ];
        let mut later = Vec::new();
        for row in rows {
            let m = obj(row.clone());
            let direct = {
                let mut tx = store.begin().unwrap();
                tx.upsert("Typed", &m)
            };
            let as_json = store.check_upsert("Typed", UpsertRow::Json(m.clone()));
            let as_fields = store.check_upsert("Typed", UpsertRow::typed_of(&m));
            match (direct, as_json, as_fields) {
                (
                    Ok(key),
                    Ok(CheckedUpsert::Later { key: k1, row: r1 }),
                    Ok(CheckedUpsert::Later { key: k2, row: r2 }),
                ) => {
                    assert_eq!((&k1, &k2), (&key, &key), "{row}");
                    assert!(matches!(r1, DeferredRow::Bound(_)), "{row}: {r1:?}");
                    assert_eq!(r1, r2, "{row}");
                    later.push((
                        row,
                        DeferredUpsert {
                            table: "Typed".into(),
                            row: r2,
                        },
                    ));
                }
                (Err(e), Err(e1), Err(e2)) => {
                    assert_eq!((&e1, &e2), (&e, &e), "{row}");
                }
                other => panic!("{row}: {other:?}"),
            }
        }
        assert_eq!(later.len(), 3);
        let mut tx = store.begin().unwrap();
        let (rows, batch): (Vec<_>, Vec<_>) = later.into_iter().unzip();
        tx.upsert_deferred(batch).unwrap();
        for row in rows {
            let id = row["id"].as_str().unwrap();
            let got = tx.get("Typed", id).unwrap().unwrap();
            for (column, value) in obj(row.clone()) {
                assert_eq!(got[&column], value, "{row}: `{column}`");
            }
        }
    }

    /// The JSON of a checked upsert's bound row is the JSON a get of the row gives once it is
    /// written, for every column type (how a kept call's read of a row its run upserted is
    /// checked without reading it), and any other text is not.
    #[test]
    fn a_bound_rows_json_is_what_a_get_of_the_written_row_gives() {
        let dir = tempfile::tempdir().unwrap();
        let keyless = schema("name: Log\ncolumns:\n  - { name: m, type: text }\n");
        let (tables, store) = open_both(dir.path(), vec![typed(), keyless]);
        let rows = [
            json!({"id": "a", "n": 1.5, "i": 3, "b": true, "j": {"x": [1, "y"]}, "s": "say \"hi\"\n"}),
            json!({"id": "b", "n": 2, "i": -4, "b": false, "j": "text", "s": "é\u{1F600}"}),
            json!({"id": "c"}),
            json!({"id": "d", "n": 1e300, "j": [null, 2.5], "s": ""}),
        ];
        let mut tx = store.begin().unwrap();
        for row in rows {
            let Ok(CheckedUpsert::Later {
                row: DeferredRow::Bound(bound),
                ..
            }) = store.check_upsert("Typed", UpsertRow::Json(obj(row.clone())))
            else {
                panic!("{row}: a keyed table's row is bound at the check")
            };
            let upsert = DeferredUpsert {
                table: "Typed".into(),
                row: DeferredRow::Bound(bound.clone()),
            };
            tx.upsert_deferred(vec![upsert]).unwrap();
            let id = row["id"].as_str().unwrap();
            let got = tx.get_json("Typed", id).unwrap().unwrap();
            assert_eq!(
                tables.bound_row_json_is("Typed", &bound, &got),
                Some(true),
                "{row}: {got}"
            );
            for other in [
                &got[..got.len() - 1],
                &format!("{got} "),
                &got.replace("\"id\"", "\"ie\""),
            ] {
                assert_eq!(
                    tables.bound_row_json_is("Typed", &bound, other),
                    Some(false),
                    "{other}"
                );
            }
        }
        // A keyless table's text holds `_id`, which no bound row has: not told.
        let mut row = BoundRow::new(1, 0);
        row.set(0, crate::store::ColumnValue::Text("x"));
        assert_eq!(
            tables.bound_row_json_is("Log", &row, r#"{"_id":1,"m":"x"}"#),
            None
        );
        assert_eq!(tables.bound_row_json_is("Nope", &row, "{}"), None);
    }

    /// Deferred upserts are checked like upserts when queued, written in order when applied
    /// (a later row with the same key wins), and a batch that fails leaves the unit of work
    /// unable to commit, so rows a flow was told were stored are never silently missing.
    #[test]
    fn deferred_upserts_are_checked_early_and_a_failed_batch_cannot_commit() {
        let dir = tempfile::tempdir().unwrap();
        let keyless = schema("name: Log\ncolumns:\n  - { name: m, type: text }\n");
        let (tables, store) = open_both(dir.path(), vec![typed(), keyless]);
        let row = |id: &str, s: &str| obj(json!({"id": id, "s": s}));
        let later = |id: &str, s: &str| DeferredUpsert::json("Typed", row(id, s));
        let check = |table: &str, row: Value| {
            let Value::Object(row) = row else {
                panic!("not an object: {row}")
            };
            store.check_upsert(table, UpsertRow::Json(row))
        };
        let Ok(CheckedUpsert::Later { key, row: bound }) =
            check("Typed", json!({"id": "a", "s": "0"}))
        else {
            panic!("a keyed table's upsert is deferred")
        };
        assert_eq!(key, "a");
        assert!(matches!(bound, DeferredRow::Bound(_)), "{bound:?}");
        // A keyless table's upsert is an insert: it cannot be deferred.
        assert!(matches!(
            check("Log", json!({"m": "x"})),
            Ok(CheckedUpsert::Now(r)) if r == obj(json!({"m": "x"}))
        ));
        let err = check("Typed", json!({"id": "a", "n": "not a number"})).unwrap_err();
        assert!(matches!(err, TableError::InvalidInput(_)), "{err:?}");
        let err = check("Typed", json!({"s": "no key"})).unwrap_err();
        assert!(
            err.to_string().contains("no value for the key column `id`"),
            "{err}"
        );

        let mut tx = store.begin().unwrap();
        let checked_a = DeferredUpsert {
            table: "Typed".into(),
            row: bound,
        };
        tx.upsert_deferred(vec![
            checked_a,
            later("a", "1"),
            later("b", "2"),
            later("a", "3"),
        ])
        .unwrap();
        assert_eq!(tx.get("Typed", "a").unwrap().unwrap()["s"], json!("3"));
        tx.commit().unwrap();
        assert_eq!(store.row_count("Typed").unwrap(), 2);

        let mut tx = tables.begin().unwrap();
        tx.upsert_deferred(vec![later("c", "4")]).unwrap();
        let big = fill_soon(&tx);
        let batch = (0..100).map(|i| later(&format!("k{i}"), &big)).collect();
        let err = tx.upsert_deferred(batch).unwrap_err();
        assert!(
            err.to_string().contains("database or disk is full"),
            "{err}"
        );
        let err = tx.get("Typed", "a").unwrap_err();
        assert!(
            err.to_string()
                .contains("no more table calls are possible in this run"),
            "{err}"
        );
        assert!(tx.commit().is_err());
        assert_eq!(store.row_count("Typed").unwrap(), 2);
    }

    #[test]
    fn insert_many_throughput_sanity() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("f.db"), shipped()).unwrap();
        let cols = [
            "timestamp",
            "type",
            "actor",
            "user",
            "client",
            "group",
            "project",
            "hostname",
            "server",
            "gateway",
            "from_addr",
            "raw_event",
        ];
        let batches = 5;
        let mut spent = Duration::ZERO;
        for b in 0..batches {
            let rows: Vec<_> = (0..1000)
                .map(|i| {
                    let mut m = Map::new();
                    m.insert(
                        "id".into(),
                        json!(format!("{b:02}-{i:06}-0000-0000-000000000000")),
                    );
                    for c in cols {
                        m.insert(
                            c.into(),
                            json!(format!("{c} value {i} with some padding text")),
                        );
                    }
                    m
                })
                .collect();
            let t0 = Instant::now();
            let mut tx = store.begin().unwrap();
            assert_eq!(tx.insert_many("Audit Events", &rows).unwrap(), 1000);
            tx.commit().unwrap();
            spent += t0.elapsed();
        }
        let secs = spent.as_secs_f64();
        eprintln!(
            "insert_many: {} rows x 13 text columns in {secs:.3}s = {:.0} rows/s",
            batches * 1000,
            (batches * 1000) as f64 / secs
        );
        assert_eq!(store.row_count("Audit Events").unwrap(), batches * 1000);
    }
}
