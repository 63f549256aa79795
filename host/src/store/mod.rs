//! The store behind the `tables` capability: the backend-neutral parts (errors, limits, the
//! search and window of an export) and the wrappers [`Store`] and [`Txn`] that every caller
//! uses, over a [`TableBackend`] (SQLite in [`sqlite`], PostgreSQL in [`postgres`]; see [`backend`] for the contract).
//! Generic helpers built on the contract (row counts, export, import) live here once, and the
//! SQL both backends build alike (identifiers, a filter's `WHERE`, an update's `SET`) in
//! `clauses`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::schema::Schemas;

pub mod backend;
mod clauses;
mod insert_many;
mod kept;
pub mod postgres;
pub mod sqlite;
mod upsert;
pub use backend::{TableBackend, UnitOfWork};
pub use upsert::{
    BoundRow, CheckedUpsert, ColumnValue, DeferredRow, DeferredUpsert, FieldValue, UpsertRow,
};

/// The longest a unit's reads share one read snapshot (SQLite): how late at most they see
/// another process's commit, and how long at most an idle run's snapshot holds up a checkpoint.
/// This process's commits renew the snapshot at once.
pub const READ_SNAPSHOT_MAX: Duration = Duration::from_millis(5);
pub(crate) use sqlite::{check_db_dir, enable_wal, open_existing_read_only};
pub use sqlite::{open_connection, open_read_only_connection, Checkpoints};

/// How long a connection waits for another connection's lock before giving up.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// Rows `find` returns when the caller gives no limit.
pub const DEFAULT_FIND_LIMIT: u32 = 1000;
/// The most rows one `find` returns, whatever the caller asks for.
pub const MAX_FIND_LIMIT: u32 = 10_000;
/// The most rows of `keep_on_failure` tables one unit of work keeps for after its rollback.
pub const MAX_KEPT_ROWS: usize = 1000;

/// Why a table call failed; each maps onto a case of the WIT `error` variant. The text names the
/// table and the bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// An unknown table: "no table `X` (did you mean `Y`?)".
    #[error("{0}")]
    NotFound(String),
    /// An unknown column, a value of the wrong type, a missing key, bad JSON.
    #[error("{0}")]
    InvalidInput(String),
    /// A key that already exists.
    #[error("{0}")]
    Conflict(String),
    /// SQLite failed (disk full, I/O error, the write lock not obtained in the lock timeout,
    /// ...).
    #[error("{0}")]
    Storage(String),
    /// The run's deadline passed while waiting for SQLite's write lock (see
    /// [`Txn::set_deadline`]).
    #[error("{0}")]
    Timeout(String),
}

impl TableError {
    /// The same error with `prefix` in front of its text (e.g. "row 3 of 10: ").
    pub fn prefixed(self, prefix: &str) -> TableError {
        match self {
            TableError::NotFound(m) => TableError::NotFound(format!("{prefix}{m}")),
            TableError::InvalidInput(m) => TableError::InvalidInput(format!("{prefix}{m}")),
            TableError::Conflict(m) => TableError::Conflict(format!("{prefix}{m}")),
            TableError::Storage(m) => TableError::Storage(format!("{prefix}{m}")),
            TableError::Timeout(m) => TableError::Timeout(format!("{prefix}{m}")),
        }
    }

    /// The same error with `suffix` after its text.
    fn suffixed(self, suffix: &str) -> TableError {
        match self {
            TableError::NotFound(m) => TableError::NotFound(format!("{m}{suffix}")),
            TableError::InvalidInput(m) => TableError::InvalidInput(format!("{m}{suffix}")),
            TableError::Conflict(m) => TableError::Conflict(format!("{m}{suffix}")),
            TableError::Storage(m) => TableError::Storage(format!("{m}{suffix}")),
            TableError::Timeout(m) => TableError::Timeout(format!("{m}{suffix}")),
        }
    }
}

/// Why the database could not be opened, migrated or committed to (also used by
/// [`crate::history`]).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database folder `{}` does not exist (create it or fix the `db:` setting)", dir.display())]
    MissingDir { dir: PathBuf },
    #[error("database folder `{}` is not writable ({reason}); SQLite must create `{}` and its -wal and -shm files there (fix the permissions or the `db:` setting)", dir.display(), db.display())]
    DirNotWritable {
        dir: PathBuf,
        db: PathBuf,
        reason: String,
    },
    /// A command that only reads found no database file.
    #[error("database `{}` does not exist: nothing has been written yet (or fix --db or the `db:` setting)", path.display())]
    Missing { path: PathBuf },
    #[error("cannot open database `{}`: {source}{}", path.display(), sqlite_hint(source))]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// A schema change that is not migrated, or a migration step that failed.
    #[error("database `{}`: {message}", path.display())]
    Migration { path: PathBuf, message: String },
    #[error("database `{}`: {context}: {source}{}", path.display(), sqlite_hint(source))]
    Sqlite {
        path: PathBuf,
        context: String,
        source: rusqlite::Error,
    },
    /// The unit of work was already rolled back by SQLite (after disk full, an I/O error, ...).
    #[error("database `{}`: {message}", path.display())]
    Aborted { path: PathBuf, message: String },
    /// Data in the database that flowhost cannot read back (e.g. an unknown run status).
    #[error("database `{}`: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    /// A PostgreSQL database could not be reached, migrated or written (the text shows the
    /// URL without its password).
    #[error(transparent)]
    Postgres(#[from] crate::pg::PgError),
}

/// What to do about an SQLite error that comes from the machine rather than the data.
fn sqlite_hint(e: &rusqlite::Error) -> &'static str {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => {
            " (free space on the database's file system and run again)"
        }
        Some(rusqlite::ErrorCode::SystemIoFailure) => {
            " (check free space and permissions on the database's file system)"
        }
        _ => "",
    }
}

/// A substring search on one column of a table (the web console's table search): rows whose
/// cell, as text, contains `contains`, ignoring ASCII case. The column must be one of the
/// table's (or `_id`); the text is bound as a parameter, never put into the SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSearch {
    pub column: String,
    pub contains: String,
}

/// Which of the rows in order [`Store::export_matching`] passes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowWindow {
    pub offset: u64,
    /// `None`: every row from `offset` on.
    pub limit: Option<u64>,
}

impl RowWindow {
    pub const ALL: RowWindow = RowWindow {
        offset: 0,
        limit: None,
    };
}

/// The error for a table that `schemas` does not have: "no table `X` (did you mean `Y`?)".
pub fn unknown_table(schemas: &Schemas, name: &str) -> TableError {
    let hint = match schemas.suggest(name) {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => String::new(),
    };
    TableError::NotFound(format!("no table `{name}`{hint}"))
}

/// The tables of one database, whichever backend holds them. `Send + Sync`, cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Arc<dyn TableBackend>,
}

impl Store {
    /// The store over `backend` (SQLite or PostgreSQL).
    pub fn from_backend(backend: Arc<dyn TableBackend>) -> Store {
        Store { backend }
    }

    /// Opens (creating if needed) the SQLite database at `path`, switches it to WAL mode and
    /// creates or migrates every table of `schemas` in one transaction.
    pub fn open(path: &Path, schemas: Arc<Schemas>) -> Result<Store, StoreError> {
        Ok(Store::from_backend(Arc::new(sqlite::SqliteTables::open(
            path, schemas,
        )?)))
    }

    /// Opens the existing SQLite database at `path` for reading only (see
    /// [`sqlite::SqliteTables::open_read_only`]).
    pub fn open_read_only(path: &Path, schemas: Arc<Schemas>) -> Result<Store, StoreError> {
        Ok(Store::from_backend(Arc::new(
            sqlite::SqliteTables::open_read_only(path, schemas)?,
        )))
    }

    pub fn backend(&self) -> &Arc<dyn TableBackend> {
        &self.backend
    }

    pub fn schemas(&self) -> &Arc<Schemas> {
        self.backend.schemas()
    }

    /// Where the tables are, for messages (a file path, or a URL without its password).
    pub fn location(&self) -> String {
        self.backend.location()
    }

    /// Starts a unit of work (one top-level run). No lock is taken until the first write.
    pub fn begin(&self) -> Result<Txn, StoreError> {
        Ok(Txn {
            unit: self.backend.begin()?,
        })
    }

    /// Checks an upsert of `row` into `table` as [`Txn::upsert`] would (the same refusals),
    /// without writing it: for a keyed table, the row's key and the row ready to be applied
    /// later with [`Txn::upsert_deferred`]; for a keyless table, the row, whose upsert is an
    /// insert that must run now to learn its row id.
    pub fn check_upsert(
        &self,
        table: &str,
        row: UpsertRow<'_>,
    ) -> Result<CheckedUpsert, TableError> {
        self.backend.check_upsert(table, row)
    }

    /// Whether a get of the row that `row` (from [`Store::check_upsert`] into `table`) upserts
    /// would give the JSON text `text`, told without reading the table; `None` when the
    /// backend cannot tell.
    pub fn bound_row_json_is(&self, table: &str, row: &BoundRow, text: &str) -> Option<bool> {
        self.backend.bound_row_json_is(table, row, text)
    }

    /// Fails with [`TableError::NotFound`] if `schemas` has no table `table`.
    fn known(&self, table: &str) -> Result<(), TableError> {
        match self.schemas().get(table) {
            Some(_) => Ok(()),
            None => Err(unknown_table(self.schemas(), table)),
        }
    }

    /// How many rows `table` holds.
    pub fn row_count(&self, table: &str) -> Result<u64, TableError> {
        self.known(table)?;
        let mut txn = self
            .begin()
            .map_err(|e| TableError::Storage(e.to_string()))?;
        txn.count(table, &Map::new())
    }

    /// The largest value of text column `column` in `table` (text order, which an index on
    /// the column serves without a scan); `None` when the table has no such value.
    pub fn max_text(&self, table: &str, column: &str) -> Result<Option<String>, TableError> {
        self.backend.max_text(table, column)
    }

    /// Streams the rows of `table` to `f`, oldest first, from one consistent snapshot (writers
    /// are not blocked) until `f` returns `Ok(false)` or an error. Returns how many rows were
    /// passed to `f`.
    pub fn export_rows<E: From<TableError>>(
        &self,
        table: &str,
        f: impl FnMut(Map<String, Value>) -> Result<bool, E>,
    ) -> Result<u64, E> {
        self.export_matching(table, None, RowWindow::ALL, f)
    }

    /// [`Store::export_rows`] of the rows that `search` matches (all without one), within
    /// `window` (the web console's pages and its CSV download).
    pub fn export_matching<E: From<TableError>>(
        &self,
        table: &str,
        search: Option<&ColumnSearch>,
        window: RowWindow,
        mut f: impl FnMut(Map<String, Value>) -> Result<bool, E>,
    ) -> Result<u64, E> {
        let mut failed: Option<E> = None;
        let n = self
            .backend
            .export_matching(table, search, window, &mut |row| match f(row) {
                Ok(more) => more,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            })?;
        match failed {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }

    /// How many rows of `table` `search` matches (all rows without one).
    pub fn count_matching(
        &self,
        table: &str,
        search: Option<&ColumnSearch>,
    ) -> Result<u64, TableError> {
        self.backend.count_matching(table, search)
    }

    /// Inserts every row into `table` in one transaction: all of them or, on the first bad row
    /// or duplicate key (named with its row number), none. Insert semantics: an existing key is
    /// a conflict; `_id` in a keyless table's rows is ignored (new row ids are assigned, in
    /// order).
    pub fn import_rows(
        &self,
        table: &str,
        rows: impl IntoIterator<Item = Map<String, Value>>,
    ) -> Result<u64, TableError> {
        self.known(table)?;
        let mut txn = self
            .begin()
            .map_err(|e| TableError::Storage(e.to_string()))?;
        let mut n: u64 = 0;
        for row in rows {
            n = n.saturating_add(1);
            txn.insert(table, &row).map_err(|e| {
                e.prefixed(&format!("row {n}: "))
                    .suffixed(" (nothing was imported)")
            })?;
        }
        txn.commit()
            .map_err(|e| TableError::Storage(e.to_string()))?;
        Ok(n)
    }
}

/// A unit of work: every table read and write of one top-level run (and its children). Writes
/// become visible to others only on [`Txn::commit`]; [`Txn::rollback`] or dropping the `Txn`
/// undoes them. `Send`, not `Sync`.
///
/// Calls block the calling thread: a write may wait up to the lock timeout for another writer.
pub struct Txn {
    unit: Box<dyn UnitOfWork>,
}

impl std::fmt::Debug for Txn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Txn")
            .field("wrote", &self.unit.wrote())
            .finish_non_exhaustive()
    }
}

impl Txn {
    /// The row of `table` whose key is `key`. A keyless table's key is the `_id` in decimal;
    /// a key that is not a number then matches nothing.
    pub fn get(
        &mut self,
        table: &str,
        key: &str,
    ) -> Result<Option<Map<String, Value>>, TableError> {
        self.unit.get(table, key)
    }

    /// When the read snapshot the unit's reads share began, if one is open and unwatched (it is
    /// then watched: whoever got `Some` calls [`Txn::end_idle_read_snapshot`] until it is `None`).
    pub fn watch_read_snapshot(&mut self) -> Option<Instant> {
        self.unit.watch_read_snapshot()
    }

    /// Ends the read snapshot if it began `idle` ago or more; else gives when it began.
    pub fn end_idle_read_snapshot(&mut self, idle: Duration) -> Option<Instant> {
        self.unit.end_idle_read_snapshot(idle)
    }

    /// [`Txn::get`]'s row as JSON text, keys in name order (what a flow's `tables.get` returns).
    pub fn get_json(&mut self, table: &str, key: &str) -> Result<Option<String>, TableError> {
        self.unit.get_json(table, key)
    }

    /// Whether [`Txn::get_json`] would give `text` (`None`: no row), found without making
    /// the row's text where the backend can.
    pub fn get_json_is(
        &mut self,
        table: &str,
        key: &str,
        text: Option<&str>,
    ) -> Result<bool, TableError> {
        self.unit.get_json_is(table, key, text)
    }

    /// Rows equal to every `column: value` of `filter` (`null` matches unset), oldest first, at
    /// most `limit` (default 1000, capped at 10 000).
    pub fn find(
        &mut self,
        table: &str,
        filter: &Map<String, Value>,
        limit: Option<u32>,
    ) -> Result<Vec<Map<String, Value>>, TableError> {
        self.unit.find(table, filter, limit)
    }

    /// How many rows match `filter` (`{}` = all).
    pub fn count(&mut self, table: &str, filter: &Map<String, Value>) -> Result<u64, TableError> {
        self.unit.count(table, filter)
    }

    /// Inserts one row; a duplicate key is [`TableError::Conflict`]. Returns the row's key (the
    /// new `_id` in decimal for a keyless table).
    pub fn insert(&mut self, table: &str, row: &Map<String, Value>) -> Result<String, TableError> {
        self.unit.insert(table, row)
    }

    /// Inserts every row or none (an error names the row number).
    pub fn insert_many(
        &mut self,
        table: &str,
        rows: &[Map<String, Value>],
    ) -> Result<u32, TableError> {
        self.unit.insert_many(table, rows)
    }

    /// Inserts the row, or replaces every column of the row with the same key (which keeps its
    /// place in insertion order). A keyless table has nothing to match on: plain insert.
    pub fn upsert(&mut self, table: &str, row: &Map<String, Value>) -> Result<String, TableError> {
        self.unit.upsert(table, row)
    }

    /// Applies upserts that [`Store::check_upsert`] accepted earlier, in order. The first
    /// failure fails every later call and the commit: the run that deferred them may already
    /// have been told they succeeded, so it must not commit without them.
    pub fn upsert_deferred(&mut self, rows: Vec<DeferredUpsert>) -> Result<(), TableError> {
        self.unit.upsert_deferred(rows)
    }

    /// Sets the columns in `changes` on the row with `key`; `false` if there is no such row.
    /// The key column (or `_id`) may appear only with the row's own key: keys are not renamed.
    pub fn update(
        &mut self,
        table: &str,
        key: &str,
        changes: &Map<String, Value>,
    ) -> Result<bool, TableError> {
        self.unit.update(table, key, changes)
    }

    /// Deletes the row with `key`; `false` if there is none.
    pub fn delete(&mut self, table: &str, key: &str) -> Result<bool, TableError> {
        self.unit.delete(table, key)
    }

    /// Deletes every row; returns how many there were.
    pub fn clear(&mut self, table: &str) -> Result<u64, TableError> {
        self.unit.clear(table)
    }

    /// Whether a write was made (and so the write lock is held).
    pub fn wrote(&self) -> bool {
        self.unit.wrote()
    }

    /// Takes the write lock now rather than at the first write, so that what this run reads
    /// cannot change before it writes (waits up to the lock timeout).
    pub fn lock_for_write(&mut self) -> Result<(), StoreError> {
        self.unit.lock_for_write()
    }

    /// How long the next write waits for another writer's lock (default 10 s).
    pub fn set_lock_timeout(&mut self, timeout: Duration) -> Result<(), StoreError> {
        self.unit.set_lock_timeout(timeout)
    }

    /// Ends every wait for the write lock at `deadline` (the run's): a write that would wait
    /// past it fails with [`TableError::Timeout`], and [`Txn::lock_wait_expired`] says so.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.unit.set_deadline(deadline)
    }

    /// Why a wait for the write lock ended at the deadline, if one did: the run timed out
    /// waiting for another writer.
    pub fn lock_wait_expired(&self) -> Option<&str> {
        self.unit.lock_wait_expired()
    }

    /// Makes every write of the unit visible at once. Fails (having rolled back) if the
    /// database had already rolled the unit back or the commit itself fails (disk full).
    pub fn commit(self) -> Result<(), StoreError> {
        self.unit.commit()
    }

    /// Undoes every write of the unit (also what dropping a `Txn` does).
    pub fn rollback(self) {
        self.unit.rollback()
    }

    /// Rolls the unit back, then writes the rows it inserted into `keep_on_failure` tables in
    /// a unit of their own (at most [`MAX_KEPT_ROWS`]). Returns how many were written; a row
    /// that cannot be written again (its key is taken meanwhile) is skipped with a warning.
    pub fn rollback_keeping_inserts(self) -> Result<usize, StoreError> {
        self.unit.rollback_keeping_inserts()
    }
}
