//! Creating and migrating the tables of the schemas in an SQLite file: new tables and columns,
//! indexes and a changed key; a removed or retyped column is refused. The schema each table
//! was last migrated to is kept in `_flowhost_tables`.

mod checkpoints;
mod connection;
mod mapping;
mod migrate;
#[cfg(test)]
mod test_support;
mod unit;

pub use checkpoints::Checkpoints;
pub(crate) use connection::{check_db_dir, enable_wal, open_existing_read_only};
pub use connection::{open_connection, open_read_only_connection};
use mapping::quote;
pub use unit::SqliteUnit;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OpenFlags};
use serde_json::{Map, Value};

use crate::schema::{Schemas, ROW_ID};
use crate::store::{
    BoundRow, CheckedUpsert, ColumnSearch, DeferredRow, RowWindow, StoreError, TableBackend,
    TableError, UnitOfWork, UpsertRow, DEFAULT_LOCK_TIMEOUT,
};
use checkpoints::*;
use connection::*;
use mapping::*;
use migrate::*;

/// Idle connections kept for the next [`SqliteTables::begin`].
const POOL_MAX_IDLE: usize = 8;

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
    /// Commits by this store's units so far: a unit's read snapshot older than the latest
    /// commit is renewed (see the module doc of `unit.rs`).
    commits: AtomicU64,
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
            commits: AtomicU64::new(0),
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
            commits: AtomicU64::new(0),
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

    /// Checks an upsert of `row` into `table` as [`SqliteUnit::upsert`] would (the same
    /// refusals), without writing it. A keyed table's row is bound here, once: its key, and its
    /// values for [`SqliteUnit::upsert_deferred`]. A keyless table's row comes back whole (its
    /// upsert is an insert that must run now to learn its row id).
    pub fn check_upsert(
        &self,
        table: &str,
        row: UpsertRow<'_>,
    ) -> Result<CheckedUpsert, TableError> {
        let t = self.inner.table(table)?;
        let Some((key_at, _)) = t.key else {
            let row = row.into_map();
            t.bind_row(&row)?;
            return Ok(CheckedUpsert::Now(row));
        };
        let vals = t.bind_row_kept(&row)?;
        let key = vals.get(key_at).map(|k| k.key_text()).unwrap_or_default();
        Ok(CheckedUpsert::Later {
            key,
            row: DeferredRow::Bound(vals),
        })
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

    fn check_upsert(&self, table: &str, row: UpsertRow<'_>) -> Result<CheckedUpsert, TableError> {
        SqliteTables::check_upsert(self, table, row)
    }

    fn bound_row_json_is(&self, table: &str, row: &BoundRow, text: &str) -> Option<bool> {
        self.inner.table(table).ok()?.bound_json_is(row, text)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::test_support::*;
    use crate::store::Store;
    use serde_json::json;

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
}
