//! The SQLite backend of the `tables` capability ([`SqliteTables`], [`SqliteUnit`]): one
//! database file (WAL mode) that holds every table of [`Schemas`], and the units of work that
//! make each top-level run atomic.
//!
//! What lives here and nowhere else:
//! - **Physical layout.** Table `Audit Events` is the SQLite table `t_audit_events` (see
//!   [`crate::schema::sql_table_name`]): an `"_id" INTEGER PRIMARY KEY` rowid column
//!   (`AUTOINCREMENT` for keyless tables, so that a keyless table's `_id` is never reused), one
//!   column per schema column (`text`/`json` → `TEXT`, `number` → `REAL`, `integer`/`boolean` →
//!   `INTEGER`), a `UNIQUE` index `uk:<table>:<key>` on the key column and an index
//!   `ix:<table>:<column>` per listed index. Identifiers are always quoted; values are always
//!   bound as parameters.
//! - **Migration** ([`SqliteTables::open`]): new tables are created; new columns are added with
//!   `ALTER TABLE ADD COLUMN`; indexes (and a changed key) are created or dropped; a removed or
//!   retyped column is refused with a message naming the table, column and schema file. The
//!   schema each table was last migrated to is kept in `_flowhost_tables(name, schema_json)`.
//! - **Units of work** ([`SqliteUnit`]): one per top-level run. Reads before the first write run in
//!   autocommit mode; the first write takes SQLite's write lock (`BEGIN IMMEDIATE`, waiting up
//!   to the lock timeout, 10 s by default, for another writer) and keeps it until
//!   [`SqliteUnit::commit`] or [`SqliteUnit::rollback`] (dropping one rolls back). SQLite has one writer
//!   per file: while a run holds the write lock, every other writer to the same file waits.
//! - **Kept inserts.** A table whose schema says `keep_on_failure: true` (the Execution Log)
//!   keeps what a failing run inserted into it: [`SqliteUnit::rollback_keeping_inserts`] rolls the
//!   unit back, then writes those rows again in a transaction of their own (with new `_id`s
//!   for a keyless table; as they were inserted, so a later update or delete by the same run
//!   is undone with the rest). At most [`super::MAX_KEPT_ROWS`] rows per run are kept.
//! - **Value mapping.** Rows come back as JSON objects with every column (`null` where unset),
//!   typed per column: numbers that are integral (and within ±2^53) come back as JSON integers,
//!   booleans as `true`/`false`, `json` columns parsed; keyless tables add `_id`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{
    ffi, params, params_from_iter, Connection, ErrorCode, OpenFlags, ToSql, TransactionBehavior,
};
use serde_json::{Map, Value};

use super::{
    ColumnSearch, DeferredUpsert, RowWindow, StoreError, TableBackend, TableError, UnitOfWork,
    DEFAULT_FIND_LIMIT, DEFAULT_LOCK_TIMEOUT, MAX_FIND_LIMIT, MAX_KEPT_ROWS,
};
use crate::schema::{integral, sql_table_name, Column, ColumnType, Schemas, TableSchema, ROW_ID};

/// Idle connections kept for the next [`SqliteTables::begin`].
const POOL_MAX_IDLE: usize = 8;
/// Prepared statements cached per connection.
const STATEMENT_CACHE: usize = 256;
const META_TABLE: &str = "_flowhost_tables";

fn sqlite_err(path: &Path, context: &str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    let path = path.to_path_buf();
    let context = context.to_string();
    move |source| StoreError::Sqlite {
        path,
        context,
        source,
    }
}

/// `"name"` with inner quotes doubled: a safe SQL identifier for any string.
pub(crate) fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Checks that the database's folder exists and is writable (SQLite creates the file and its
/// -wal/-shm companions there), so that the error names the folder instead of SQLite's
/// "unable to open database file".
pub(crate) fn check_db_dir(db: &Path) -> Result<(), StoreError> {
    static PROBES: AtomicU64 = AtomicU64::new(0);
    let dir = match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(StoreError::MissingDir { dir });
    }
    let probe = dir.join(format!(
        ".flowhost-probe-{}-{}",
        std::process::id(),
        PROBES.fetch_add(1, Ordering::Relaxed)
    ));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(StoreError::DirNotWritable {
            dir,
            db: db.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

/// Opens a read-write connection with flowhost's settings (the [`crate::walvfs`] VFS, busy
/// timeout, `synchronous=NORMAL`, a large statement cache). WAL mode is set once by whoever
/// creates the file.
pub fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match crate::walvfs::register() {
        Ok(()) => Connection::open_with_flags_and_vfs(path, flags, crate::walvfs::NAME)?,
        Err(e) => {
            tracing::warn!(error = %e, "SQLite writes the WAL a frame at a time");
            Connection::open_with_flags(path, flags)?
        }
    };
    conn.busy_timeout(DEFAULT_LOCK_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // 16 MiB of page cache (allocated as used): random-UUID keys touch index pages all over.
    conn.pragma_update(None, "cache_size", -16384)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Opens a read-only connection to an existing database (it is never created): it reads the
/// last commit and never takes or waits for the write lock.
pub fn open_read_only_connection(path: &Path) -> rusqlite::Result<Connection> {
    if !path.is_file() {
        return Err(rusqlite::Error::InvalidPath(path.to_path_buf()));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(DEFAULT_LOCK_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// [`open_read_only_connection`] for the stores' own `open_read_only`: a missing file is
/// [`StoreError::Missing`], any other failure [`StoreError::Open`] naming the path.
pub(crate) fn open_existing_read_only(path: &Path) -> Result<Connection, StoreError> {
    if !path.is_file() {
        return Err(StoreError::Missing {
            path: path.to_path_buf(),
        });
    }
    open_read_only_connection(path).map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })
}

/// Switches the file to WAL mode (persistent), warning if the file system refuses.
pub(crate) fn enable_wal(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(sqlite_err(path, "cannot switch to WAL mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(db = %path.display(), mode, "SQLite did not switch to WAL mode; concurrent runs will block each other's reads");
    }
    Ok(())
}

/// A value ready to bind: borrowed from the JSON where possible.
enum Bound<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Owned(String),
}

impl ToSql for Bound<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Bound::Null => ValueRef::Null,
            Bound::Int(i) => ValueRef::Integer(*i),
            Bound::Real(f) => ValueRef::Real(*f),
            Bound::Text(s) => ValueRef::Text(s.as_bytes()),
            Bound::Owned(s) => ValueRef::Text(s.as_bytes()),
        }))
    }
}

impl Bound<'_> {
    fn is_null(&self) -> bool {
        matches!(self, Bound::Null)
    }

    /// The key as flows see it (a string).
    fn key_text(&self) -> String {
        match self {
            Bound::Null => String::new(),
            Bound::Int(i) => i.to_string(),
            Bound::Real(f) => f.to_string(),
            Bound::Text(s) => (*s).to_string(),
            Bound::Owned(s) => s.clone(),
        }
    }
}

fn sql_decl(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Text | ColumnType::Json => "TEXT",
        ColumnType::Number => "REAL",
        ColumnType::Integer | ColumnType::Boolean => "INTEGER",
    }
}

/// A JSON number from a stored REAL: integral values within ±2^53 come back as integers.
fn number_value(f: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if f.fract() == 0.0 && f.abs() <= EXACT {
        Value::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

/// The JSON value of a stored cell, per the column type. Cells written by something other than
/// flowhost (the `sqlite3` shell, say) are converted as well as they can be, never refused.
fn cell_value(ty: ColumnType, cell: ValueRef<'_>) -> Value {
    let text = |b: &[u8]| Value::String(String::from_utf8_lossy(b).into_owned());
    match (ty, cell) {
        (_, ValueRef::Null) => Value::Null,
        (ColumnType::Boolean, ValueRef::Integer(i)) => Value::Bool(i != 0),
        (ColumnType::Boolean, ValueRef::Real(f)) => Value::Bool(f != 0.0),
        (ColumnType::Text, ValueRef::Integer(i)) => Value::String(i.to_string()),
        (ColumnType::Text, ValueRef::Real(f)) => Value::String(f.to_string()),
        (ColumnType::Json, ValueRef::Text(b)) => {
            serde_json::from_slice(b).unwrap_or_else(|_| text(b))
        }
        (_, ValueRef::Integer(i)) => Value::from(i),
        (_, ValueRef::Real(f)) => number_value(f),
        (_, ValueRef::Text(b)) | (_, ValueRef::Blob(b)) => text(b),
    }
}

/// A key given to `get`/`update`/`delete`, ready to bind; `None` when it cannot match any row
/// (a non-number key for a keyless or integer-keyed table).
enum KeyParam<'a> {
    Text(&'a str),
    Int(i64),
}

impl ToSql for KeyParam<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            KeyParam::Text(s) => ValueRef::Text(s.as_bytes()),
            KeyParam::Int(i) => ValueRef::Integer(*i),
        }))
    }
}

/// A table's schema plus the SQL that serves it, built once per [`SqliteTables`].
struct TableSql {
    schema: TableSchema,
    /// Quoted SQLite table name.
    ident: String,
    /// Unquoted SQLite table name (for index names and `sqlite_master` lookups).
    sql_name: String,
    /// Position and type of the key column (`None`: keyed by `_id`).
    key: Option<(usize, ColumnType)>,
    /// Quoted key column (`"_id"` for keyless tables).
    key_ident: String,
    /// Column positions in the order of their names (for [`TableSql::bind_row`]).
    by_name: Vec<usize>,
    /// `SELECT "_id", <columns> FROM <table>`.
    select: String,
    insert: String,
    upsert: String,
    get: String,
    delete: String,
}

impl TableSql {
    fn new(schema: &TableSchema) -> TableSql {
        let sql_name = sql_table_name(&schema.name);
        let ident = quote(&sql_name);
        let cols: Vec<String> = schema.columns.iter().map(|c| quote(&c.name)).collect();
        let key = schema
            .key
            .as_deref()
            .and_then(|k| schema.columns.iter().position(|c| c.name == k))
            .map(|i| (i, schema.columns[i].ty));
        let key_ident = match key {
            Some((i, _)) => cols[i].clone(),
            None => quote(ROW_ID),
        };
        let select = format!("SELECT {}, {} FROM {ident}", quote(ROW_ID), cols.join(", "));
        let placeholders: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
        let insert = format!(
            "INSERT INTO {ident} ({}) VALUES ({})",
            cols.join(", "),
            placeholders.join(", ")
        );
        let upsert = match key {
            None => insert.clone(),
            Some((ki, _)) => {
                let sets: Vec<String> = cols
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != ki)
                    .map(|(_, c)| format!("{c} = excluded.{c}"))
                    .collect();
                if sets.is_empty() {
                    format!("{insert} ON CONFLICT ({key_ident}) DO NOTHING")
                } else {
                    format!(
                        "{insert} ON CONFLICT ({key_ident}) DO UPDATE SET {}",
                        sets.join(", ")
                    )
                }
            }
        };
        let mut by_name: Vec<usize> = (0..schema.columns.len()).collect();
        by_name.sort_by(|&a, &b| schema.columns[a].name.cmp(&schema.columns[b].name));
        let get = format!("{select} WHERE {key_ident} = ?1");
        let delete = format!("DELETE FROM {ident} WHERE {key_ident} = ?1");
        TableSql {
            schema: schema.clone(),
            ident,
            sql_name,
            key,
            key_ident,
            by_name,
            select,
            insert,
            upsert,
            get,
            delete,
        }
    }

    fn name(&self) -> &str {
        &self.schema.name
    }

    fn storage(&self, e: rusqlite::Error) -> TableError {
        if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) {
            TableError::Storage(format!(
                "table `{}`: the database is locked by another writer (another run holds the write lock; waited for the lock timeout): {e}",
                self.name()
            ))
        } else {
            TableError::Storage(format!("table `{}`: {e}", self.name()))
        }
    }

    /// A write's error: a duplicate key is a conflict naming the key, anything else storage.
    fn write_error(&self, e: rusqlite::Error, vals: &[Bound<'_>]) -> TableError {
        if let rusqlite::Error::SqliteFailure(f, _) = &e {
            if f.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            {
                let key = match self.key {
                    Some((i, _)) => vals.get(i).map(Bound::key_text).unwrap_or_default(),
                    None => String::from("?"),
                };
                return TableError::Conflict(format!(
                    "table `{}`: a row with key `{key}` already exists",
                    self.name()
                ));
            }
        }
        self.storage(e)
    }

    /// The bound value of one field, checked against its column type.
    fn bind<'a>(&self, name: &str, ty: ColumnType, v: &'a Value) -> Result<Bound<'a>, TableError> {
        let b = match (ty, v) {
            (_, Value::Null) => Some(Bound::Null),
            (ColumnType::Text, Value::String(s)) => Some(Bound::Text(s)),
            (ColumnType::Number, Value::Number(n)) => n.as_f64().map(Bound::Real),
            (ColumnType::Integer, Value::Number(n)) => integral(n).map(Bound::Int),
            (ColumnType::Boolean, Value::Bool(b)) => Some(Bound::Int(i64::from(*b))),
            (ColumnType::Json, v) => Some(Bound::Owned(v.to_string())),
            _ => None,
        };
        match b {
            Some(b) => Ok(b),
            None => Err(self.schema.check_field(name, v).err().unwrap_or_else(|| {
                TableError::InvalidInput(format!(
                    "table `{}`, column `{name}`: bad value",
                    self.name()
                ))
            })),
        }
    }

    /// One value per schema column for `insert`/`upsert`, checked (see
    /// [`TableSchema::check_row`]). `_id` in a keyless table's row is checked and ignored.
    fn bind_row<'a>(&self, row: &'a Map<String, Value>) -> Result<Vec<Bound<'a>>, TableError> {
        let columns = &self.schema.columns;
        let mut out: Vec<Bound<'a>> = (0..columns.len()).map(|_| Bound::Null).collect();
        // The row's fields come sorted by name (serde_json's map is a BTreeMap), so a merge
        // with the columns sorted by name finds each column without a lookup; should the order
        // differ (serde_json's `preserve_order`), the linear search keeps this correct.
        let mut next = 0;
        for (name, v) in row {
            while next < self.by_name.len()
                && columns[self.by_name[next]].name.as_str() < name.as_str()
            {
                next += 1;
            }
            let pos = match self.by_name.get(next) {
                Some(&i) if columns[i].name == *name => {
                    next += 1;
                    Some(i)
                }
                _ => columns.iter().position(|c| c.name == *name),
            };
            match pos {
                Some(i) => out[i] = self.bind(name, columns[i].ty, v)?,
                None if name == ROW_ID && self.key.is_none() => self.schema.check_field(name, v)?,
                None => return Err(self.schema.unknown_column(name)),
            }
        }
        if let Some((i, _)) = self.key {
            if out.get(i).is_none_or(Bound::is_null) {
                return Err(TableError::InvalidInput(format!(
                    "table `{}`: the row has no value for the key column `{}`",
                    self.name(),
                    self.schema.columns[i].name
                )));
            }
        }
        Ok(out)
    }

    /// ` WHERE a = ?1 AND b IS NULL` (empty for `{}`) and its parameters.
    fn where_clause<'a>(
        &self,
        filter: &'a Map<String, Value>,
    ) -> Result<(String, Vec<Bound<'a>>), TableError> {
        let mut sql = String::new();
        let mut params = Vec::new();
        for (name, v) in filter {
            let (ident, ty) = match self.schema.column(name) {
                Some(c) => (quote(&c.name), c.ty),
                None if name == ROW_ID && self.key.is_none() => {
                    (quote(ROW_ID), ColumnType::Integer)
                }
                None => return Err(self.schema.unknown_column(name)),
            };
            sql.push_str(if sql.is_empty() { " WHERE " } else { " AND " });
            if v.is_null() {
                sql.push_str(&format!("{ident} IS NULL"));
            } else {
                params.push(self.bind(name, ty, v)?);
                sql.push_str(&format!("{ident} = ?{}", params.len()));
            }
        }
        Ok((sql, params))
    }

    fn key_param<'a>(&self, key: &'a str) -> Option<KeyParam<'a>> {
        match self.key {
            Some((_, ColumnType::Text)) => Some(KeyParam::Text(key)),
            _ => key.trim().parse::<i64>().ok().map(KeyParam::Int),
        }
    }

    /// Reads a row selected with `self.select`.
    fn read_row(&self, row: &rusqlite::Row<'_>) -> rusqlite::Result<Map<String, Value>> {
        let mut m = Map::new();
        if self.key.is_none() {
            m.insert(ROW_ID.to_string(), Value::from(row.get::<_, i64>(0)?));
        }
        for (i, c) in self.schema.columns.iter().enumerate() {
            m.insert(c.name.clone(), cell_value(c.ty, row.get_ref(i + 1)?));
        }
        Ok(m)
    }
}

struct Inner {
    path: PathBuf,
    schemas: Arc<Schemas>,
    tables: HashMap<String, TableSql>,
    pool: Mutex<Vec<Connection>>,
    /// `None`: SQLite checkpoints on commit (no thread could be started).
    checkpoints: Option<Checkpoints>,
    /// Opened with [`SqliteTables::open_read_only`]: read-only connections, no migration.
    read_only: bool,
    /// Tables of the schemas that the database does not have (read-only stores only: a
    /// read-write store creates them).
    missing: HashSet<String>,
}

/// The least time between two checkpoints of the checkpoint thread.
const CHECKPOINT_PAUSE: Duration = Duration::from_millis(250);

/// The WAL's size past which a commit restarts it (see [`Checkpoints`]). A restart makes that
/// commit wait for the rest of the WAL to be copied and the database synced (80-340 ms each in
/// a backfill of 1,000,000 events), so fewer, for a larger WAL: a backfill keeps up to this
/// much beside the database. At 128 MiB the restarts took 8-9% of the ingest benchmark's time
/// (300,000 events: 9-11 restarts, 1.2-1.5 s of 15-18 s); at 512 MiB, 2-3 restarts.
const WAL_LIMIT_BYTES: u64 = 512 << 20;

/// `PRAGMA wal_checkpoint(mode)`: whether it could not finish (another connection was in the
/// way).
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<bool> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok(r.get::<_, i64>(0)? != 0)
    })
}

/// Checkpoints the WAL of one database on its own thread and connection, woken after each
/// commit.
///
/// SQLite's automatic checkpoint runs inside the commit that crosses 1,000 WAL pages: that run
/// copies the pages into the database file and waits for the fsync. For a run of 1,000 audit
/// events that wait was about as long as the run's own work (the ingest benchmark's native
/// path, 200,000 events in 200 commits on disk: 11.2 s with SQLite's checkpoints, 6.2 s with
/// these, measured together with a smaller change to its JSON handling). With `Checkpoints`,
/// writers only append
/// to the WAL, and `PASSIVE` checkpoints, which never block a writer, copy it out alongside.
///
/// Only a checkpoint that finds no writer can make the WAL start over, which the thread rarely
/// does while runs follow each other; so a commit that leaves the WAL longer than
/// [`WAL_LIMIT_BYTES`] checkpoints with `RESTART` itself (most of the WAL is copied out by
/// then), and `journal_size_limit` cuts the file back when it starts over.
///
/// SQLite syncs the database file only in a checkpoint that reaches the end of the WAL, which
/// the thread's never do while runs follow each other: everything they copied waited for that
/// commit's `RESTART`, 190-460 ms each in a backfill of 1,000,000 events. The thread syncs the
/// database after each checkpoint instead, and the restarts took 80-340 ms. The thread stops
/// when this is dropped. Public so that the benchmark's native path can do the same.
pub struct Checkpoints {
    /// `None` only while dropping.
    wake: Option<std::sync::mpsc::SyncSender<()>>,
    /// Held by whichever checkpoint runs (SQLite refuses a second one at once).
    running: Arc<Mutex<()>>,
    wal: PathBuf,
    /// The WAL's size past which a commit restarts it.
    limit: u64,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Checkpoints {
    /// Stops the thread and waits for it, so that its connection is closed before the process
    /// exits: the last connection to close copies the WAL into the database and deletes it,
    /// leaving one self-contained file, as SQLite's own checkpoints did.
    fn drop(&mut self) {
        drop(self.wake.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Checkpoints {
    /// Starts the thread for the database at `path` (already in WAL mode).
    pub fn start(path: &Path) -> std::io::Result<Checkpoints> {
        Checkpoints::with_limit(path, WAL_LIMIT_BYTES)
    }

    /// [`Checkpoints::start`] with a WAL limit other than [`WAL_LIMIT_BYTES`].
    fn with_limit(path: &Path, limit: u64) -> std::io::Result<Checkpoints> {
        use std::sync::mpsc::RecvTimeoutError::{Disconnected, Timeout};
        let conn = open_connection(path).map_err(std::io::Error::other)?;
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        let running = Arc::new(Mutex::new(()));
        let lock = running.clone();
        let db = path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("flowhost-checkpoint".into())
            .spawn(move || {
                // Woken after a commit (or every 5 s); gone with the store.
                let mut woken_since = false;
                loop {
                    if !woken_since
                        && woken.recv_timeout(Duration::from_secs(5)) == Err(Disconnected)
                    {
                        return;
                    }
                    {
                        let _running = lock.lock().unwrap_or_else(|e| e.into_inner());
                        if let Err(e) = checkpoint(&conn, "PASSIVE") {
                            tracing::warn!(db, error = %e, "WAL checkpoint failed");
                        } else if let Err(e) = crate::walvfs::sync_database(&conn) {
                            tracing::warn!(db, error = %e, "database sync failed");
                        }
                    }
                    // A pause before the next one, so that a page written by several commits
                    // is copied once; the commits meanwhile are remembered.
                    woken_since = false;
                    let until = std::time::Instant::now() + CHECKPOINT_PAUSE;
                    loop {
                        let left = until.saturating_duration_since(std::time::Instant::now());
                        match woken.recv_timeout(left) {
                            Ok(()) => woken_since = true,
                            Err(Timeout) => break,
                            Err(Disconnected) => return,
                        }
                    }
                }
            })?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        Ok(Checkpoints {
            wake: Some(wake),
            running,
            wal: wal.into(),
            limit,
            thread: Some(thread),
        })
    }

    /// Turns off SQLite's checkpoint-on-commit for a writing connection.
    pub fn adopt(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "journal_size_limit", self.limit as i64)
    }

    /// After `conn` committed: wakes the thread, or restarts a WAL grown past the limit.
    pub fn committed(&self, conn: &Connection) {
        let len = std::fs::metadata(&self.wal).map_or(0, |m| m.len());
        if len <= self.limit {
            if let Some(wake) = &self.wake {
                let _ = wake.try_send(());
            }
            return;
        }
        let _running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        match checkpoint(conn, "RESTART") {
            Ok(false) => {}
            Ok(true) => tracing::debug!("WAL restart deferred: a reader is in the way"),
            Err(e) => tracing::warn!(error = %e, "WAL restart failed"),
        }
    }
}

impl Inner {
    fn table(&self, name: &str) -> Result<&TableSql, TableError> {
        if self.missing.contains(name) {
            return Err(TableError::NotFound(format!(
                "table `{name}` is not in database `{}` yet: nothing has written to it (the first `flowhost run` or `flowhost table import` creates it)",
                self.path.display()
            )));
        }
        self.tables
            .get(name)
            .ok_or_else(|| super::unknown_table(&self.schemas, name))
    }

    fn take_conn(&self) -> Result<Connection, StoreError> {
        let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match pooled {
            Some(c) => Ok(c),
            None if self.read_only => {
                open_read_only_connection(&self.path).map_err(|source| StoreError::Open {
                    path: self.path.clone(),
                    source,
                })
            }
            None => open_connection(&self.path)
                .and_then(|c| self.checkpoint_policy(c))
                .map_err(|source| StoreError::Open {
                    path: self.path.clone(),
                    source,
                }),
        }
    }

    /// Leaves checkpoints to the checkpoint thread, when there is one.
    fn checkpoint_policy(&self, conn: Connection) -> rusqlite::Result<Connection> {
        if let Some(c) = &self.checkpoints {
            c.adopt(&conn)?;
        }
        Ok(conn)
    }

    /// Returns a connection to the pool, rolling back anything left open; a connection that
    /// cannot be brought back to autocommit mode is closed instead.
    fn put_conn(&self, conn: Connection, reset_timeout: bool) {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
            if !conn.is_autocommit() {
                return;
            }
        }
        if reset_timeout && conn.busy_timeout(DEFAULT_LOCK_TIMEOUT).is_err() {
            return;
        }
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < POOL_MAX_IDLE {
            pool.push(conn);
        }
    }
}

/// The tables of one SQLite file. `Send + Sync`; share it in an `Arc`.
pub struct SqliteTables {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqliteTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteTables")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl SqliteTables {
    /// Opens (creating if needed) the database at `path`, switches it to WAL mode and creates or
    /// migrates every table of `schemas` in one transaction.
    pub fn open(path: &Path, schemas: Arc<Schemas>) -> Result<SqliteTables, StoreError> {
        SqliteTables::open_with_wal_limit(path, schemas, WAL_LIMIT_BYTES)
    }

    fn open_with_wal_limit(
        path: &Path,
        schemas: Arc<Schemas>,
        wal_limit: u64,
    ) -> Result<SqliteTables, StoreError> {
        check_db_dir(path)?;
        let mut conn = open_connection(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        enable_wal(&conn, path)?;
        let tables: HashMap<String, TableSql> = schemas
            .iter()
            .map(|s| (s.name.clone(), TableSql::new(s)))
            .collect();
        migrate(&mut conn, path, &schemas, &tables)?;
        let checkpoints = Checkpoints::with_limit(path, wal_limit)
            .inspect_err(|e| tracing::warn!(error = %e, "SQLite checkpoints on commit"))
            .ok();
        let inner = Inner {
            path: path.to_path_buf(),
            schemas,
            tables,
            pool: Mutex::new(Vec::new()),
            checkpoints,
            read_only: false,
            missing: HashSet::new(),
        };
        let conn = inner
            .checkpoint_policy(conn)
            .map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        inner
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
        Ok(SqliteTables {
            inner: Arc::new(inner),
        })
    }

    /// Opens the existing database at `path` for reading only: no migration, no write, no
    /// wait for a writer (in WAL mode a reader reads the last commit while another connection
    /// writes). For the commands that only read (`history`, `table list|show|export`).
    /// Tables of `schemas` that the database does not have yet answer
    /// [`TableError::NotFound`] saying so.
    pub fn open_read_only(path: &Path, schemas: Arc<Schemas>) -> Result<SqliteTables, StoreError> {
        let conn = open_existing_read_only(path)?;
        let present: HashSet<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .and_then(|mut stmt| {
                stmt.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<_>>()
            })
            .map_err(sqlite_err(path, "cannot read the list of tables"))?;
        let tables: HashMap<String, TableSql> = schemas
            .iter()
            .map(|s| (s.name.clone(), TableSql::new(s)))
            .collect();
        let missing = tables
            .values()
            .filter(|t| !present.contains(&t.sql_name))
            .map(|t| t.name().to_string())
            .collect();
        let inner = Inner {
            path: path.to_path_buf(),
            schemas,
            tables,
            pool: Mutex::new(vec![conn]),
            checkpoints: None,
            read_only: true,
            missing,
        };
        Ok(SqliteTables {
            inner: Arc::new(inner),
        })
    }

    pub fn schemas(&self) -> &Arc<Schemas> {
        &self.inner.schemas
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Starts a unit of work (one top-level run). No lock is taken until the first write.
    pub fn begin(&self) -> Result<SqliteUnit, StoreError> {
        SqliteUnit::begin(&self.inner)
    }

    /// Checks an upsert of `row` into `table` as [`SqliteUnit::upsert`] would, without writing it: the
    /// row's key if it can be applied later with [`SqliteUnit::upsert_deferred`]; `None` for a keyless
    /// table (whose upsert is an insert that must run now to learn its row id).
    pub fn check_upsert(
        &self,
        table: &str,
        row: &Map<String, Value>,
    ) -> Result<Option<String>, TableError> {
        let t = self.inner.table(table)?;
        let vals = t.bind_row(row)?;
        Ok(t.key
            .map(|(i, _)| vals.get(i).map(Bound::key_text).unwrap_or_default()))
    }

    /// The largest value of text column `column` in `table` (SQLite's text order, which an
    /// index on the column serves without a scan); `None` when the table has no such value.
    pub fn max_text(&self, table: &str, column: &str) -> Result<Option<String>, TableError> {
        let t = self.inner.table(table)?;
        if !t.schema.columns.iter().any(|c| c.name == column) {
            return Err(TableError::InvalidInput(format!(
                "table `{table}` has no column `{column}`"
            )));
        }
        let sql = format!("SELECT max({}) FROM {}", quote(column), t.ident);
        let mut txn = self
            .begin()
            .map_err(|e| TableError::Storage(e.to_string()))?;
        txn.exec(t, false, |conn| {
            conn.prepare_cached(&sql)
                .and_then(|mut s| s.query_row([], |r| r.get::<_, Option<String>>(0)))
                .map_err(|e| t.storage(e))
        })
    }

    /// Streams the rows of `table` that `search` matches (all without one), oldest first,
    /// within `window`, to `f` from a read-only connection (one consistent snapshot; writers
    /// are not blocked) until `f` returns `false`. Returns how many rows were passed to `f`.
    pub fn export_matching(
        &self,
        table: &str,
        search: Option<&ColumnSearch>,
        window: RowWindow,
        f: &mut dyn FnMut(Map<String, Value>) -> bool,
    ) -> Result<u64, TableError> {
        let t = self.inner.table(table)?;
        let filter = search_filter(t, search)?;
        let conn = self.snapshot_connection(t)?;
        let sql = format!(
            "{}{} ORDER BY {} LIMIT ?2 OFFSET ?3",
            t.select,
            filter.sql,
            quote(ROW_ID)
        );
        let mut stmt = conn.prepare(&sql).map_err(|e| t.storage(e))?;
        let limit = window
            .limit
            .map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let offset = i64::try_from(window.offset).unwrap_or(i64::MAX);
        let mut rows = stmt
            .query(params![filter.needle, limit, offset])
            .map_err(|e| t.storage(e))?;
        let mut n = 0;
        while let Some(row) = rows.next().map_err(|e| t.storage(e))? {
            n += 1;
            if !f(t.read_row(row).map_err(|e| t.storage(e))?) {
                break;
            }
        }
        Ok(n)
    }

    /// How many rows of `table` `search` matches (all rows without one).
    pub fn count_matching(
        &self,
        table: &str,
        search: Option<&ColumnSearch>,
    ) -> Result<u64, TableError> {
        let t = self.inner.table(table)?;
        let filter = search_filter(t, search)?;
        let conn = self.snapshot_connection(t)?;
        let sql = format!("SELECT count(*) FROM {}{}", t.ident, filter.sql);
        let n: i64 = conn
            .query_row(&sql, params![filter.needle], |r| r.get(0))
            .map_err(|e| t.storage(e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// A read-only connection of its own: one consistent snapshot, no writer blocked.
    fn snapshot_connection(&self, t: &TableSql) -> Result<Connection, TableError> {
        let conn = Connection::open_with_flags(
            &self.inner.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| t.storage(e))?;
        conn.busy_timeout(DEFAULT_LOCK_TIMEOUT)
            .map_err(|e| t.storage(e))?;
        Ok(conn)
    }
}

/// Why [`SqliteUnit::begin_write`] did not take the write lock.
enum BeginError {
    /// The deadline ended the wait (the text says so).
    Expired(String),
    Sqlite(rusqlite::Error),
    /// The unit was already committed or rolled back.
    Finished,
}

/// The `WHERE` clause of a search (empty without one) and the text it binds as `?1`.
struct SearchFilter {
    sql: String,
    needle: Option<String>,
}

fn search_filter(t: &TableSql, search: Option<&ColumnSearch>) -> Result<SearchFilter, TableError> {
    let Some(search) = search else {
        return Ok(SearchFilter {
            sql: " WHERE ?1 IS NULL".into(),
            needle: None,
        });
    };
    let known = search.column == ROW_ID || t.schema.columns.iter().any(|c| c.name == search.column);
    if !known {
        let names: Vec<&str> = t.schema.columns.iter().map(|c| c.name.as_str()).collect();
        return Err(TableError::InvalidInput(format!(
            "table `{}` has no column `{}` (its columns: {})",
            t.name(),
            search.column,
            names.join(", ")
        )));
    }
    Ok(SearchFilter {
        sql: format!(
            " WHERE instr(lower(CAST({} AS TEXT)), lower(?1)) > 0",
            quote(&search.column)
        ),
        needle: Some(search.contains.clone()),
    })
}

impl BeginError {
    const FINISHED: &'static str = "the unit of work is already finished";
}

/// A unit of work: every table read and write of one top-level run (and its children). Writes
/// become visible to others only on [`SqliteUnit::commit`]; [`SqliteUnit::rollback`] or dropping the `SqliteUnit`
/// undoes them. `Send`, not `Sync`.
///
/// Calls block the calling thread: a write may wait up to the lock timeout for another writer.
pub struct SqliteUnit {
    inner: Arc<Inner>,
    conn: Option<Connection>,
    writing: bool,
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
    /// Rows inserted into `keep_on_failure` tables, written again after a rollback.
    kept: Vec<DeferredUpsert>,
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
    fn begin(inner: &Arc<Inner>) -> Result<SqliteUnit, StoreError> {
        let conn = inner.take_conn()?;
        Ok(SqliteUnit {
            inner: Arc::clone(inner),
            conn: Some(conn),
            writing: false,
            aborted: None,
            timeout_changed: false,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            deadline: None,
            lock_wait_expired: None,
            kept: Vec::new(),
        })
    }

    /// Remembers rows inserted into `t` for after a rollback, if its schema keeps them.
    fn keep_inserted<'a>(
        &mut self,
        t: &TableSql,
        rows: impl IntoIterator<Item = &'a Map<String, Value>>,
    ) {
        if !t.schema.keep_on_failure {
            return;
        }
        for row in rows {
            if self.kept.len() >= MAX_KEPT_ROWS {
                tracing::warn!(
                    table = t.name(),
                    "more than {MAX_KEPT_ROWS} rows inserted by one run: the rest are not kept if it fails"
                );
                return;
            }
            self.kept.push(DeferredUpsert {
                table: t.name().to_string(),
                row: row.clone(),
            });
        }
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
        let mut written = 0;
        for k in &kept {
            match txn.insert(&k.table, &k.row) {
                Ok(_) => written += 1,
                Err(e) => tracing::warn!(
                    table = k.table.as_str(),
                    error = %e,
                    "a failed run's kept row could not be written"
                ),
            }
        }
        txn.kept.clear();
        txn.commit()?;
        Ok(written)
    }

    /// Runs `f` on the connection, first taking the write lock if `write`; notices when SQLite
    /// has rolled the whole transaction back after an error.
    fn exec<R>(
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

    /// `BEGIN IMMEDIATE`: takes SQLite's write lock, waiting for another writer at most the
    /// lock timeout and never past the deadline.
    fn begin_write(&mut self) -> Result<(), BeginError> {
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
        let inner = Arc::clone(&self.inner);
        let t = inner.table(table)?;
        let Some(k) = t.key_param(key) else {
            return Ok(None);
        };
        self.exec(t, false, |conn| {
            let mut stmt = conn.prepare_cached(&t.get).map_err(|e| t.storage(e))?;
            let mut rows = stmt.query([k]).map_err(|e| t.storage(e))?;
            match rows.next().map_err(|e| t.storage(e))? {
                Some(r) => Ok(Some(t.read_row(r).map_err(|e| t.storage(e))?)),
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
        let (clause, mut params) = t.where_clause(filter)?;
        let limit = limit.unwrap_or(DEFAULT_FIND_LIMIT).min(MAX_FIND_LIMIT);
        params.push(Bound::Int(i64::from(limit)));
        let sql = format!(
            "{}{clause} ORDER BY {} LIMIT ?{}",
            t.select,
            quote(ROW_ID),
            params.len()
        );
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
        let key = self.exec(t, true, |conn| {
            let mut stmt = conn.prepare_cached(&t.insert).map_err(|e| t.storage(e))?;
            stmt.execute(params_from_iter(vals.iter()))
                .map_err(|e| t.write_error(e, &vals))?;
            Ok(match t.key {
                Some((i, _)) => vals.get(i).map(Bound::key_text).unwrap_or_default(),
                None => conn.last_insert_rowid().to_string(),
            })
        })?;
        self.keep_inserted(t, [row]);
        Ok(key)
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
        let total = rows.len();
        let Ok(count) = u32::try_from(total) else {
            return Err(TableError::InvalidInput(format!(
                "table `{}`: {total} rows in one insert-many is too many",
                t.name()
            )));
        };
        let mut bound = Vec::with_capacity(total);
        for (i, row) in rows.iter().enumerate() {
            bound.push(t.bind_row(row).map_err(|e| {
                e.prefixed(&format!("row {} of {total}: ", i + 1))
                    .suffixed(" (nothing was inserted)")
            })?);
        }
        if bound.is_empty() {
            return Ok(0);
        }
        self.exec(t, true, |conn| {
            conn.execute_batch("SAVEPOINT flowhost_insert_many")
                .map_err(|e| t.storage(e))?;
            let result = (|| {
                let mut stmt = conn.prepare_cached(&t.insert).map_err(|e| t.storage(e))?;
                for (i, vals) in bound.iter().enumerate() {
                    stmt.execute(params_from_iter(vals.iter())).map_err(|e| {
                        t.write_error(e, vals)
                            .prefixed(&format!("row {} of {total}: ", i + 1))
                            .suffixed(" (nothing was inserted)")
                    })?;
                }
                Ok(count)
            })();
            if result.is_err() {
                let _ = conn.execute_batch("ROLLBACK TO flowhost_insert_many");
            }
            let _ = conn.execute_batch("RELEASE flowhost_insert_many");
            result
        })?;
        self.keep_inserted(t, rows);
        Ok(count)
    }

    /// Inserts the row, or replaces every column of the row with the same key (which keeps its
    /// place in insertion order). A keyless table has nothing to match on: plain insert.
    pub fn upsert(&mut self, table: &str, row: &Map<String, Value>) -> Result<String, TableError> {
        let inner = Arc::clone(&self.inner);
        let t = inner.table(table)?;
        let vals = t.bind_row(row)?;
        let key = self.exec(t, true, |conn| {
            let mut stmt = conn.prepare_cached(&t.upsert).map_err(|e| t.storage(e))?;
            stmt.execute(params_from_iter(vals.iter()))
                .map_err(|e| t.write_error(e, &vals))?;
            Ok(match t.key {
                Some((i, _)) => vals.get(i).map(Bound::key_text).unwrap_or_default(),
                None => conn.last_insert_rowid().to_string(),
            })
        })?;
        // A keyless table's upsert is an insert.
        if t.key.is_none() {
            self.keep_inserted(t, [row]);
        }
        Ok(key)
    }

    /// Applies upserts that [`SqliteTables::check_upsert`] accepted earlier, in order (consecutive rows
    /// of one table share one statement). The first failure fails every later call and the
    /// commit: the run that deferred them may already have been told they succeeded, so it must
    /// not commit without them.
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
                    let vals = t.bind_row(&row.row)?;
                    stmt.execute(params_from_iter(vals.iter()))
                        .map_err(|e| t.write_error(e, &vals))?;
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
        let mut sets = Vec::new();
        let mut params: Vec<Bound<'_>> = Vec::new();
        for (name, v) in changes {
            let column: Option<&Column> = t.schema.column(name);
            let is_key = match (column, t.key) {
                (Some(c), Some((ki, _))) => t.schema.columns[ki].name == c.name,
                (None, None) => name == ROW_ID,
                _ => false,
            };
            if is_key {
                let ty = column.map_or(ColumnType::Integer, |c| c.ty);
                let same = match (&k, t.bind(name, ty, v)?) {
                    (KeyParam::Text(a), Bound::Text(b)) => *a == b,
                    (KeyParam::Int(a), Bound::Int(b)) => *a == b,
                    _ => false,
                };
                if !same {
                    return Err(TableError::InvalidInput(format!(
                        "table `{}`: update cannot change the key `{name}` of row `{key}` (to {v}); delete the row and insert a new one",
                        t.name()
                    )));
                }
                continue;
            }
            let Some(c) = column else {
                return Err(t.schema.unknown_column(name));
            };
            params.push(t.bind(name, c.ty, v)?);
            sets.push(format!("{} = ?{}", quote(&c.name), params.len()));
        }
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

    fn release(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.writing = false;
            self.inner.put_conn(conn, self.timeout_changed);
        }
    }
}

impl Drop for SqliteUnit {
    fn drop(&mut self) {
        self.release();
    }
}

/// What `_flowhost_tables.schema_json` holds: the parts of a schema that shape the table.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredSchema {
    name: String,
    key: Option<String>,
    columns: Vec<Column>,
    indexes: Vec<String>,
}

fn migrate(
    conn: &mut Connection,
    path: &Path,
    schemas: &Schemas,
    tables: &HashMap<String, TableSql>,
) -> Result<(), StoreError> {
    // Most opens change nothing: that is found out with reads, which never wait for a writer
    // (a run's timeout must not be spent waiting here for another process's run).
    if up_to_date(conn, schemas, tables) {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_err(path, "cannot start the schema migration"))?;
    tx.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {} (name TEXT PRIMARY KEY, schema_json TEXT NOT NULL)",
        quote(META_TABLE)
    ))
    .map_err(sqlite_err(path, "cannot create the table metadata"))?;
    let mut stored: HashMap<String, String> = HashMap::new();
    {
        let mut stmt = tx
            .prepare(&format!(
                "SELECT name, schema_json FROM {}",
                quote(META_TABLE)
            ))
            .map_err(sqlite_err(path, "cannot read the table metadata"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(sqlite_err(path, "cannot read the table metadata"))?;
        for row in rows {
            let (name, json) = row.map_err(sqlite_err(path, "cannot read the table metadata"))?;
            stored.insert(name, json);
        }
    }
    for schema in schemas.iter() {
        let Some(t) = tables.get(&schema.name) else {
            continue;
        };
        migrate_table(&tx, path, t, stored.get(&schema.name).map(String::as_str))?;
    }
    for name in stored.keys() {
        if schemas.get(name).is_none() {
            tracing::info!(table = %name, "the database has a table with no schema file; its rows are kept but no flow can reach them");
        }
    }
    tx.commit()
        .map_err(sqlite_err(path, "cannot commit the schema migration"))
}

/// Whether every table of `schemas` exists and was last migrated to its current schema (read
/// without a lock; any doubt answers `false`).
fn up_to_date(conn: &Connection, schemas: &Schemas, tables: &HashMap<String, TableSql>) -> bool {
    let read = || -> rusqlite::Result<HashMap<String, String>> {
        let mut stmt = conn.prepare(&format!(
            "SELECT name, schema_json FROM {}",
            quote(META_TABLE)
        ))?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        rows.collect()
    };
    let Ok(stored) = read() else {
        return false;
    };
    schemas.iter().all(|schema| {
        let (Some(t), Some(json)) = (tables.get(&schema.name), stored.get(&schema.name)) else {
            return false;
        };
        let exists = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [&t.sql_name],
                |r| r.get::<_, i64>(0),
            )
            .is_ok_and(|n| n > 0);
        exists && schema_json(schema).is_ok_and(|current| current == *json)
    })
}

/// What `_flowhost_tables.schema_json` records for `schema`.
fn schema_json(schema: &TableSchema) -> serde_json::Result<String> {
    serde_json::to_string(&StoredSchema {
        name: schema.name.clone(),
        key: schema.key.clone(),
        columns: schema.columns.clone(),
        indexes: schema.indexes.clone(),
    })
}

fn migrate_table(
    tx: &Connection,
    path: &Path,
    t: &TableSql,
    stored_json: Option<&str>,
) -> Result<(), StoreError> {
    let schema = &t.schema;
    let file = if schema.source.as_os_str().is_empty() {
        "its schema".to_string()
    } else {
        schema.source.display().to_string()
    };
    let refuse = |message: String| StoreError::Migration {
        path: path.to_path_buf(),
        message,
    };
    let sql_fail = |what: &str| sqlite_err(path, &format!("table `{}`: {what}", schema.name));

    let stored: Option<StoredSchema> = match stored_json {
        Some(json) => Some(serde_json::from_str(json).map_err(|e| {
            refuse(format!(
                "table `{}`: the schema recorded in `{META_TABLE}` is unreadable ({e})",
                schema.name
            ))
        })?),
        None => None,
    };
    if let Some(old) = &stored {
        for oc in &old.columns {
            match schema.column(&oc.name) {
                None => {
                    return Err(refuse(format!(
                        "table `{}`: column `{}` ({}) is in the database but not in {file}; removing a column is not migrated (put it back, or export the table, drop `{}` and import)",
                        schema.name, oc.name, oc.ty, t.sql_name
                    )))
                }
                Some(nc) if nc.ty != oc.ty => {
                    return Err(refuse(format!(
                        "table `{}`: column `{}` is {} in the database but {} in {file}; changing a column's type is not migrated (restore the type, or add a new column)",
                        schema.name, oc.name, oc.ty, nc.ty
                    )))
                }
                Some(_) => {}
            }
        }
    }

    let exists: bool = tx
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [&t.sql_name],
            |r| r.get::<_, i64>(0),
        )
        .map_err(sql_fail("cannot look up the table"))?
        > 0;
    if exists {
        let mut physical: Vec<String> = Vec::new();
        {
            let mut stmt = tx
                .prepare(&format!("PRAGMA table_info({})", t.ident))
                .map_err(sql_fail("cannot read the columns"))?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(1))
                .map_err(sql_fail("cannot read the columns"))?;
            for r in rows {
                let name = r.map_err(sql_fail("cannot read the columns"))?;
                if name != ROW_ID {
                    physical.push(name);
                }
            }
        }
        if stored.is_none() {
            if let Some(extra) = physical.iter().find(|p| schema.column(p).is_none()) {
                return Err(refuse(format!(
                    "table `{}`: the SQLite table `{}` has a column `{extra}` that is not in {file}; removing a column is not migrated (add it to the schema)",
                    schema.name, t.sql_name
                )));
            }
        }
        for c in &schema.columns {
            if !physical.iter().any(|p| p.eq_ignore_ascii_case(&c.name)) {
                tx.execute_batch(&format!(
                    "ALTER TABLE {} ADD COLUMN {} {}",
                    t.ident,
                    quote(&c.name),
                    sql_decl(c.ty)
                ))
                .map_err(sql_fail(&format!("cannot add column `{}`", c.name)))?;
                tracing::info!(table = %schema.name, column = %c.name, "added a column");
            }
        }
    } else {
        let cols: Vec<String> = schema
            .columns
            .iter()
            .map(|c| format!("{} {}", quote(&c.name), sql_decl(c.ty)))
            .collect();
        // AUTOINCREMENT (row ids never reused) only where `_id` is the key flows see; it costs
        // a little on every insert.
        tx.execute_batch(&format!(
            "CREATE TABLE {} ({} INTEGER PRIMARY KEY{}, {})",
            t.ident,
            quote(ROW_ID),
            if schema.key.is_none() {
                " AUTOINCREMENT"
            } else {
                ""
            },
            cols.join(", ")
        ))
        .map_err(sql_fail("cannot create the table"))?;
    }

    // Indexes: ours are named `uk:<table>:<key>` and `ix:<table>:<column>`.
    let mut existing: HashSet<String> = HashSet::new();
    {
        let mut stmt = tx
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1")
            .map_err(sql_fail("cannot read the indexes"))?;
        let rows = stmt
            .query_map([&t.sql_name], |r| r.get::<_, String>(0))
            .map_err(sql_fail("cannot read the indexes"))?;
        for r in rows {
            existing.insert(r.map_err(sql_fail("cannot read the indexes"))?);
        }
    }
    let mut wanted: Vec<(String, &str, bool)> = Vec::new();
    if let Some(key) = &schema.key {
        wanted.push((format!("uk:{}:{key}", t.sql_name), key.as_str(), true));
    }
    for ix in &schema.indexes {
        if schema.key.as_deref() != Some(ix.as_str()) {
            wanted.push((format!("ix:{}:{ix}", t.sql_name), ix.as_str(), false));
        }
    }
    for name in &existing {
        let ours = name.starts_with("uk:") || name.starts_with("ix:");
        if ours && !wanted.iter().any(|(w, _, _)| w == name) {
            tx.execute_batch(&format!("DROP INDEX {}", quote(name)))
                .map_err(sql_fail(&format!("cannot drop index `{name}`")))?;
        }
    }
    for (name, column, unique) in &wanted {
        if existing.contains(name) {
            continue;
        }
        if *unique {
            let nulls: i64 = tx
                .query_row(
                    &format!(
                        "SELECT count(*) FROM {} WHERE {} IS NULL",
                        t.ident,
                        quote(column)
                    ),
                    [],
                    |r| r.get(0),
                )
                .map_err(sql_fail("cannot check the key column"))?;
            if nulls > 0 {
                return Err(refuse(format!(
                    "table `{}`: cannot make `{column}` the key ({file}): {nulls} rows have no `{column}` (fill them in or clear the table first)",
                    schema.name
                )));
            }
        }
        let sql = format!(
            "CREATE {}INDEX {} ON {} ({})",
            if *unique { "UNIQUE " } else { "" },
            quote(name),
            t.ident,
            quote(column)
        );
        if let Err(e) = tx.execute_batch(&sql) {
            let is_dup = matches!(&e, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation);
            if *unique && is_dup {
                return Err(refuse(format!(
                    "table `{}`: cannot make `{column}` the key ({file}): some rows share the same `{column}` (remove the duplicates first)",
                    schema.name
                )));
            }
            return Err(sql_fail(&format!("cannot create index on `{column}`"))(e));
        }
    }

    let json = schema_json(schema).map_err(|e| {
        refuse(format!(
            "table `{}`: cannot record the schema ({e})",
            schema.name
        ))
    })?;
    tx.execute(
        &format!(
            "INSERT INTO {} (name, schema_json) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET schema_json = excluded.schema_json",
            quote(META_TABLE)
        ),
        [&schema.name, &json],
    )
    .map_err(sql_fail("cannot record the schema"))?;
    Ok(())
}

impl TableBackend for SqliteTables {
    fn schemas(&self) -> &Arc<Schemas> {
        SqliteTables::schemas(self)
    }

    fn location(&self) -> String {
        self.inner.path.display().to_string()
    }

    fn begin(&self) -> Result<Box<dyn UnitOfWork>, StoreError> {
        Ok(Box::new(SqliteTables::begin(self)?))
    }

    fn check_upsert(
        &self,
        table: &str,
        row: &Map<String, Value>,
    ) -> Result<Option<String>, TableError> {
        SqliteTables::check_upsert(self, table, row)
    }

    fn max_text(&self, table: &str, column: &str) -> Result<Option<String>, TableError> {
        SqliteTables::max_text(self, table, column)
    }

    fn export_matching(
        &self,
        table: &str,
        search: Option<&ColumnSearch>,
        window: RowWindow,
        f: &mut dyn FnMut(Map<String, Value>) -> bool,
    ) -> Result<u64, TableError> {
        SqliteTables::export_matching(self, table, search, window, f)
    }

    fn count_matching(
        &self,
        table: &str,
        search: Option<&ColumnSearch>,
    ) -> Result<u64, TableError> {
        SqliteTables::count_matching(self, table, search)
    }
}

impl UnitOfWork for SqliteUnit {
    fn get(&mut self, table: &str, key: &str) -> Result<Option<Map<String, Value>>, TableError> {
        SqliteUnit::get(self, table, key)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, Txn};
    use serde_json::json;
    use std::time::Instant;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn schema(yaml: &str) -> TableSchema {
        TableSchema::from_yaml(yaml, Path::new("tables/test.yaml")).unwrap()
    }

    fn shipped() -> Arc<Schemas> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tables");
        Arc::new(Schemas::load_dirs(&[dir]).unwrap())
    }

    fn typed() -> TableSchema {
        schema(
            "name: Typed\nkey: id\ncolumns:\n  - { name: id, type: text }\n  - { name: n, type: number }\n  - { name: i, type: integer }\n  - { name: b, type: boolean }\n  - { name: j, type: json }\n  - { name: s, type: text }\nindexes: [s]\n",
        )
    }

    /// The SQLite tables in `dir` and the [`Store`] over them (for tests that reach into the
    /// SQLite side).
    fn open_both(dir: &Path, schemas: Vec<TableSchema>) -> (Arc<SqliteTables>, Store) {
        let schemas = Arc::new(Schemas::from_schemas(schemas).unwrap());
        let tables = Arc::new(SqliteTables::open(&dir.join("t.db"), schemas).unwrap());
        (tables.clone(), Store::from_backend(tables))
    }

    fn open_with(dir: &Path, schemas: Vec<TableSchema>) -> Store {
        Store::open(
            &dir.join("t.db"),
            Arc::new(Schemas::from_schemas(schemas).unwrap()),
        )
        .unwrap()
    }

    /// Writers never checkpoint inside a commit, yet the WAL stays bounded: 320 MiB written in
    /// commits of 4 MiB leaves a WAL within one commit of the limit (64 MiB here, to cross it
    /// often), and every row readable.
    #[test]
    fn the_wal_stays_bounded_with_checkpoints_off_the_commit_path() {
        const LIMIT: u64 = 64 << 20;
        let tmp = tempfile::tempdir().unwrap();
        let schemas = Arc::new(Schemas::from_schemas(vec![typed()]).unwrap());
        let tables = SqliteTables::open_with_wal_limit(&tmp.path().join("t.db"), schemas, LIMIT);
        let tables = Arc::new(tables.unwrap());
        assert!(tables.inner.checkpoints.is_some());
        let store = Store::from_backend(tables);
        let wal = tmp.path().join("t.db-wal");
        let text = "x".repeat(4000);
        let mut biggest = 0;
        for c in 0..80 {
            let mut txn = store.begin().unwrap();
            for i in 0..1000 {
                let row = obj(json!({"id": format!("{c}-{i}"), "s": text}));
                txn.insert("Typed", &row).unwrap();
            }
            txn.commit().unwrap();
            biggest = biggest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        assert!(biggest >= LIMIT, "the WAL never reached the limit");
        assert!(
            biggest < LIMIT + (16 << 20),
            "the WAL grew to {} MiB",
            biggest >> 20
        );
        assert_eq!(store.row_count("Typed").unwrap(), 80_000);
        drop(store);
        // Closed: the WAL is in the database file and gone, nothing is missing.
        assert!(!wal.exists(), "the WAL is left beside the database");
        let store = open_with(tmp.path(), vec![typed()]);
        assert_eq!(store.row_count("Typed").unwrap(), 80_000);
    }

    #[test]
    fn store_and_txn_are_send_sync() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Store>();
        send::<Txn>();
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

    #[test]
    fn a_read_only_store_neither_writes_nor_waits_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let missing =
            Store::open_read_only(&db, Arc::new(Schemas::from_schemas(vec![typed()]).unwrap()));
        assert!(matches!(missing, Err(StoreError::Missing { .. })));
        assert!(!db.exists());
        let store = open_with(dir.path(), vec![typed()]);
        let mut writer = store.begin().unwrap();
        writer.insert("Typed", &obj(json!({"id": "a"}))).unwrap();
        writer.commit().unwrap();
        let mut holder = store.begin().unwrap();
        holder.insert("Typed", &obj(json!({"id": "b"}))).unwrap();

        let with_more = vec![
            typed(),
            schema("name: Later\ncolumns:\n  - { name: x, type: text }\n"),
        ];
        let reader =
            Store::open_read_only(&db, Arc::new(Schemas::from_schemas(with_more).unwrap()))
                .unwrap();
        assert_eq!(reader.row_count("Typed").unwrap(), 1);
        let err = reader.row_count("Later").unwrap_err().to_string();
        assert!(err.starts_with("table `Later` is not in database"), "{err}");
        holder.rollback();
    }

    #[test]
    fn migration_adds_columns_and_indexes_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = schema("name: M\nkey: id\ncolumns:\n  - { name: id, type: text }\n  - { name: a, type: text }\n");
        {
            let store = open_with(dir.path(), vec![v1]);
            let mut tx = store.begin().unwrap();
            tx.insert("M", &obj(json!({"id": "k", "a": "old"})))
                .unwrap();
            tx.commit().unwrap();
        }
        let v2 = schema(
            "name: M\nkey: id\ncolumns:\n  - { name: id, type: text }\n  - { name: a, type: text }\n  - { name: c, type: integer }\nindexes: [c]\n",
        );
        let store = open_with(dir.path(), vec![v2.clone()]);
        let mut tx = store.begin().unwrap();
        assert_eq!(
            tx.get("M", "k").unwrap().unwrap(),
            obj(json!({"id": "k", "a": "old", "c": null}))
        );
        tx.update("M", "k", &obj(json!({"c": 3}))).unwrap();
        assert_eq!(tx.find("M", &obj(json!({"c": 3})), None).unwrap().len(), 1);
        tx.commit().unwrap();
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        let idx: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='t_m' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(idx, ["ix:t_m:c", "uk:t_m:id"]);
        drop(store);
        // Reopening with the same schema is a no-op; dropping the index is allowed.
        let v3 = schema(
            "name: M\nkey: id\ncolumns:\n  - { name: id, type: text }\n  - { name: a, type: text }\n  - { name: c, type: integer }\n",
        );
        open_with(dir.path(), vec![v2]);
        open_with(dir.path(), vec![v3]);
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name='ix:t_m:c'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn migration_refuses_removed_and_retyped_columns() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let v1 = schema(
            "name: M\ncolumns:\n  - { name: a, type: text }\n  - { name: b, type: number }\n",
        );
        open_with(dir.path(), vec![v1]);
        let removed = schema("name: M\ncolumns:\n  - { name: a, type: text }\n");
        let err =
            Store::open(&db, Arc::new(Schemas::from_schemas(vec![removed]).unwrap())).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "database `{}`: table `M`: column `b` (number) is in the database but not in tables/test.yaml; removing a column is not migrated (put it back, or export the table, drop `t_m` and import)",
                db.display()
            )
        );
        let retyped = schema(
            "name: M\ncolumns:\n  - { name: a, type: json }\n  - { name: b, type: number }\n",
        );
        let err =
            Store::open(&db, Arc::new(Schemas::from_schemas(vec![retyped]).unwrap())).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "database `{}`: table `M`: column `a` is text in the database but json in tables/test.yaml; changing a column's type is not migrated (restore the type, or add a new column)",
                db.display()
            )
        );
    }

    #[test]
    fn migration_of_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let keyless = schema("name: K\ncolumns:\n  - { name: a, type: text }\n");
        {
            let store = open_with(dir.path(), vec![keyless]);
            let mut tx = store.begin().unwrap();
            tx.insert("K", &obj(json!({"a": "x"}))).unwrap();
            tx.insert("K", &obj(json!({"a": null}))).unwrap();
            tx.commit().unwrap();
        }
        let keyed = schema("name: K\nkey: a\ncolumns:\n  - { name: a, type: text }\n");
        let err = Store::open(
            &db,
            Arc::new(Schemas::from_schemas(vec![keyed.clone()]).unwrap()),
        )
        .unwrap_err();
        assert!(
            err.to_string().ends_with("table `K`: cannot make `a` the key (tables/test.yaml): 1 rows have no `a` (fill them in or clear the table first)"),
            "{err}"
        );
        let conn = Connection::open(&db).unwrap();
        conn.execute("UPDATE t_k SET a = 'x' WHERE a IS NULL", [])
            .unwrap();
        let err = Store::open(
            &db,
            Arc::new(Schemas::from_schemas(vec![keyed.clone()]).unwrap()),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("some rows share the same `a`"),
            "{err}"
        );
        conn.execute("UPDATE t_k SET a = 'y' WHERE _id = 2", [])
            .unwrap();
        let store = open_with(dir.path(), vec![keyed]);
        let mut tx = store.begin().unwrap();
        assert_eq!(tx.get("K", "y").unwrap().unwrap(), obj(json!({"a": "y"})));
        assert!(matches!(
            tx.insert("K", &obj(json!({"a": "y"}))),
            Err(TableError::Conflict(_))
        ));
    }

    #[test]
    fn open_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("missing/sub/t.db");
        let err = Store::open(&db, shipped()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "database folder `{}` does not exist (create it or fix the `db:` setting)",
                dir.path().join("missing/sub").display()
            )
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            use std::os::unix::process::CommandExt;
            let ro = dir.path().join("ro");
            std::fs::create_dir(&ro).unwrap();
            std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
            if std::fs::write(ro.join("probe"), b"").is_err() {
                read_only_folder_is_refused(&ro);
            } else {
                // Root ignores permissions: the check runs in a copy of this test binary as
                // `nobody`, for whom the folder is read-only.
                std::fs::remove_file(ro.join("probe")).unwrap();
                let traverse = std::fs::Permissions::from_mode(0o755);
                std::fs::set_permissions(dir.path(), traverse).unwrap();
                let exe = std::env::current_exe().unwrap();
                // This module's path without the crate: the test's name wherever it lives.
                let module = module_path!().split_once("::").map_or("", |(_, m)| m);
                let out = std::process::Command::new(&exe)
                    .args([
                        "--exact",
                        &format!("{module}::read_only_folder_as_nobody"),
                        "--include-ignored",
                        "--nocapture",
                    ])
                    .env(RO_DIR_VAR, &ro)
                    .uid(NOBODY)
                    .gid(NOBODY)
                    .output()
                    .unwrap_or_else(|e| {
                        panic!(
                            "cannot run {} as nobody to check a read-only folder: {e}",
                            exe.display()
                        )
                    });
                let report = String::from_utf8_lossy(&out.stdout);
                assert!(
                    out.status.success() && report.contains("1 passed"),
                    "the read-only folder check as nobody failed or did not run: {report}{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    #[cfg(unix)]
    const RO_DIR_VAR: &str = "FLOWHOST_TEST_RO_DIR";
    #[cfg(unix)]
    const NOBODY: u32 = 65534;

    /// Opening a database in `ro` (a folder this process cannot write) names the folder.
    #[cfg(unix)]
    fn read_only_folder_is_refused(ro: &Path) {
        assert!(
            std::fs::write(ro.join("probe"), b"").is_err(),
            "{} is writable: the check cannot be made",
            ro.display()
        );
        let err = Store::open(&ro.join("t.db"), shipped())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "database folder `{}` is not writable (",
                ro.display()
            )),
            "{err}"
        );
    }

    /// Run by `open_errors_name_the_path` as `nobody` when the tests run as root.
    #[cfg(unix)]
    #[test]
    #[ignore = "run by open_errors_name_the_path in a child process as nobody"]
    fn read_only_folder_as_nobody() {
        let ro = std::env::var_os(RO_DIR_VAR).unwrap_or_else(|| {
            panic!("{RO_DIR_VAR} is not set: run through open_errors_name_the_path")
        });
        read_only_folder_is_refused(Path::new(&ro));
    }

    #[test]
    fn shipped_tables_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("f.db"), shipped()).unwrap();
        let mut tx = store.begin().unwrap();
        tx.insert(
            "Audit Checkpoints",
            &obj(json!({"LastOffset": "abc", "LastDateTime": "2024-01-01T00:00:00Z", "LastCount": 100})),
        )
        .unwrap();
        let rows = tx.find("Audit Checkpoints", &Map::new(), None).unwrap();
        assert_eq!(rows[0]["LastCount"], json!(100));
        assert_eq!(rows[0]["_id"], json!(1));
        tx.commit().unwrap();
        let conn = Connection::open(dir.path().join("f.db")).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let names: Vec<String> = conn
            .prepare("SELECT name FROM _flowhost_tables ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(names.len(), 6);
        assert_eq!(names[1], "Audit Events");
        // Values with SQL in them are just values.
        let mut tx = store.begin().unwrap();
        let evil = "x'); DROP TABLE t_audit_events; --";
        tx.insert("Audit Events", &obj(json!({"id": evil, "type": "\""})))
            .unwrap();
        assert_eq!(
            tx.get("Audit Events", evil).unwrap().unwrap()["type"],
            json!("\"")
        );
        tx.commit().unwrap();
    }

    #[test]
    fn a_column_search_matches_substrings_only_and_checks_the_column() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_with(dir.path(), vec![typed()]);
        let rows: Vec<_> = (0..30)
            .map(|i| obj(json!({"id": format!("Key{i:02}"), "n": i, "b": i % 2 == 0})))
            .chain([obj(json!({"id": "100%_'x"}))])
            .collect();
        store.import_rows("Typed", rows).unwrap();
        let search = |column: &str, contains: &str| ColumnSearch {
            column: column.into(),
            contains: contains.into(),
        };
        let ids = |s: &ColumnSearch, window: RowWindow| {
            let mut out = Vec::new();
            store
                .export_matching("Typed", Some(s), window, |r| -> Result<bool, TableError> {
                    out.push(r["id"].as_str().unwrap().to_string());
                    Ok(true)
                })
                .unwrap();
            out
        };
        // ASCII case is ignored; `%`, `_` and quotes are plain characters.
        let key1 = search("id", "key1");
        assert_eq!(store.count_matching("Typed", Some(&key1)).unwrap(), 10);
        let window = RowWindow {
            offset: 2,
            limit: Some(3),
        };
        assert_eq!(ids(&key1, window), ["Key12", "Key13", "Key14"]);
        for hostile in ["%", "_", "%' OR 1=1 --", "' OR ''='"] {
            let want = u64::from(hostile.len() == 1);
            let s = search("id", hostile);
            assert_eq!(
                store.count_matching("Typed", Some(&s)).unwrap(),
                want,
                "{hostile}"
            );
        }
        // Numbers and booleans are searched as their stored text.
        assert_eq!(
            store
                .count_matching("Typed", Some(&search("n", "2")))
                .unwrap(),
            12
        );
        assert_eq!(store.count_matching("Typed", None).unwrap(), 31);
        let err = store
            .count_matching("Typed", Some(&search("id\" OR 1=1 --", "x")))
            .unwrap_err();
        assert!(
            matches!(&err, TableError::InvalidInput(m) if m.starts_with("table `Typed` has no column `id\" OR 1=1 --`")),
            "{err}"
        );
    }

    #[test]
    fn export_import_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_with(dir.path(), vec![typed()]);
        let rows: Vec<_> = (0..50)
            .map(|i| obj(json!({"id": format!("k{i:03}"), "n": i as f64 / 2.0, "b": i % 2 == 0, "j": [i]})))
            .collect();
        assert_eq!(store.import_rows("Typed", rows.clone()).unwrap(), 50);
        let mut out = Vec::new();
        let n = store
            .export_rows("Typed", |r| -> Result<bool, TableError> {
                out.push(r);
                Ok(true)
            })
            .unwrap();
        assert_eq!(n, 50);
        assert_eq!(out[3]["id"], json!("k003"));
        assert_eq!(out[3]["n"], json!(1.5));
        assert_eq!(out[3]["j"], json!([3]));
        assert_eq!(store.row_count("Typed").unwrap(), 50);

        // A second import conflicts and imports nothing.
        let more = vec![obj(json!({"id": "new"})), obj(json!({"id": "k001"}))];
        let err = store.import_rows("Typed", more).unwrap_err();
        assert_eq!(
            err,
            TableError::Conflict(
                "row 2: table `Typed`: a row with key `k001` already exists (nothing was imported)"
                    .into()
            )
        );
        assert_eq!(store.row_count("Typed").unwrap(), 50);
        assert!(matches!(
            store.row_count("Nope"),
            Err(TableError::NotFound(_))
        ));
        let err = store
            .export_rows("Nope", |_| -> Result<bool, TableError> { Ok(true) })
            .unwrap_err();
        assert!(matches!(err, TableError::NotFound(_)));
        // `Ok(false)` stops the export; so does an error.
        let n = store
            .export_rows("Typed", |r| -> Result<bool, TableError> {
                Ok(r["id"] != json!("k004"))
            })
            .unwrap();
        assert_eq!(n, 5);
        let mut seen = 0;
        let err = store
            .export_rows("Typed", |_| {
                seen += 1;
                if seen == 3 {
                    Err(TableError::Storage("stop".into()))
                } else {
                    Ok(true)
                }
            })
            .unwrap_err();
        assert_eq!(err, TableError::Storage("stop".into()));
    }

    #[test]
    fn integer_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_with(
            dir.path(),
            vec![schema("name: N\nkey: n\ncolumns:\n  - { name: n, type: integer }\n  - { name: v, type: json }\n")],
        );
        let mut tx = store.begin().unwrap();
        assert_eq!(
            tx.insert("N", &obj(json!({"n": 42, "v": "text"}))).unwrap(),
            "42"
        );
        assert_eq!(
            tx.upsert("N", &obj(json!({"n": 7.0, "v": {"b": 1, "a": [true]}})))
                .unwrap(),
            "7"
        );
        assert_eq!(
            tx.get("N", "42").unwrap().unwrap(),
            obj(json!({"n": 42, "v": "text"}))
        );
        assert_eq!(tx.get("N", "x").unwrap(), None);
        assert_eq!(
            tx.find("N", &obj(json!({"v": {"a": [true], "b": 1}})), None)
                .unwrap()
                .len(),
            1
        );
        assert!(tx
            .update("N", "7", &obj(json!({"n": 7, "v": null})))
            .unwrap());
        assert!(matches!(
            tx.insert("N", &obj(json!({"n": 7}))),
            Err(TableError::Conflict(_))
        ));
        assert!(tx.delete("N", " 42 ").unwrap());
        tx.commit().unwrap();
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

    /// Deferred upserts are checked like upserts when queued, written in order when applied
    /// (a later row with the same key wins), and a batch that fails leaves the unit of work
    /// unable to commit, so rows a flow was told were stored are never silently missing.
    #[test]
    fn deferred_upserts_are_checked_early_and_a_failed_batch_cannot_commit() {
        let dir = tempfile::tempdir().unwrap();
        let keyless = schema("name: Log\ncolumns:\n  - { name: m, type: text }\n");
        let (tables, store) = open_both(dir.path(), vec![typed(), keyless]);
        let row = |id: &str, s: &str| obj(json!({"id": id, "s": s}));
        let later = |id: &str, s: &str| DeferredUpsert {
            table: "Typed".into(),
            row: row(id, s),
        };
        assert_eq!(
            store.check_upsert("Typed", &row("a", "1")).unwrap(),
            Some("a".to_string())
        );
        // A keyless table's upsert is an insert: it cannot be deferred.
        assert_eq!(
            store.check_upsert("Log", &obj(json!({"m": "x"}))).unwrap(),
            None
        );
        let err = store
            .check_upsert("Typed", &obj(json!({"id": "a", "n": "not a number"})))
            .unwrap_err();
        assert!(matches!(err, TableError::InvalidInput(_)), "{err:?}");
        let err = store
            .check_upsert("Typed", &obj(json!({"s": "no key"})))
            .unwrap_err();
        assert!(
            err.to_string().contains("no value for the key column `id`"),
            "{err}"
        );

        let mut tx = store.begin().unwrap();
        tx.upsert_deferred(vec![later("a", "1"), later("b", "2"), later("a", "3")])
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
