//! The tables of [`Schemas`] in PostgreSQL (`db: postgres://...`): the same contract as the
//! SQLite store (see [`crate::store::backend`]) over a pool of connections ([`crate::pg`]).
//!
//! - `mapping`: physical names (the SQLite store's: `t_<name>`, `_id`, `uk:`/`ix:` index
//!   names), column types and the value mapping both ways;
//! - `migrate`: creating and migrating tables under an advisory lock;
//! - `unit`: the unit of work (one connection, one `READ COMMITTED` transaction);
//! - here: [`PgTables`], which opens them and serves the reads outside a unit (export and
//!   count in one `REPEATABLE READ READ ONLY` snapshot, the greatest text, upsert checks).

mod mapping;
mod migrate;
mod unit;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use serde_json::{Map, Value};
use tokio_postgres::types::ToSql;
use tokio_postgres::Statement;

use self::mapping::{PgTable, PgValue};
use crate::pg::{error_text, Pg};
use crate::schema::{ColumnType, Schemas, ROW_ID};
use crate::store::clauses::quote;
use crate::store::{
    unknown_table, CheckedUpsert, ColumnSearch, DeferredRow, RowWindow, StoreError, TableBackend,
    TableError, UnitOfWork, UpsertRow,
};

/// Connections kept for units with their prepared statements (beyond these, a finished
/// unit's connection goes back to the [`Pg`] pool and its statements are closed).
const UNIT_CONNECTIONS_KEPT: usize = 16;

/// A connection between units, with the statements prepared on it.
type Idle = (crate::pg::Conn, HashMap<String, Statement>);

/// What [`PgTables`] and its units share.
pub(crate) struct Shared {
    pg: Pg,
    schemas: Arc<Schemas>,
    tables: HashMap<String, PgTable>,
    /// Units' connections with their prepared statements: the per-event upsert is parsed
    /// once per connection, not once per run.
    idle: Mutex<Vec<Idle>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("pg", &self.pg)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// A connection for a unit, with what was prepared on it before.
    fn checkout(&self) -> Result<Idle, crate::pg::PgError> {
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                match idle.pop() {
                    Some((c, _)) if c.is_closed() => continue,
                    other => break other,
                }
            }
        };
        match reused {
            Some(r) => Ok(r),
            None => Ok((self.pg.get()?, HashMap::new())),
        }
    }

    /// A unit's connection back, out of any transaction.
    fn checkin(&self, conn: crate::pg::Conn, statements: HashMap<String, Statement>) {
        if conn.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < UNIT_CONNECTIONS_KEPT {
            idle.push((conn, statements));
        }
    }

    fn table(&self, name: &str) -> Result<&PgTable, TableError> {
        self.tables
            .get(name)
            .ok_or_else(|| unknown_table(&self.schemas, name))
    }
}

/// The tables of one PostgreSQL database. `Send + Sync`; share it in an `Arc`.
#[derive(Debug)]
pub struct PgTables {
    shared: Arc<Shared>,
}

impl PgTables {
    /// Creates or migrates every table of `schemas` (one transaction, under an advisory lock
    /// so that nodes opening at once take turns).
    pub fn open(pg: Pg, schemas: Arc<Schemas>) -> Result<PgTables, StoreError> {
        let tables: HashMap<String, PgTable> = schemas
            .iter()
            .map(|s| (s.name.clone(), PgTable::new(s)))
            .collect();
        migrate::migrate(&pg, &schemas, &tables)?;
        Ok(PgTables {
            shared: Arc::new(Shared {
                pg,
                schemas,
                tables,
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// ` WHERE strpos(...) > 0` for a search (empty without one) and its parameter.
    fn search_filter(
        t: &PgTable,
        search: Option<&ColumnSearch>,
    ) -> Result<(String, Option<PgValue>), TableError> {
        let Some(search) = search else {
            return Ok((String::new(), None));
        };
        let known =
            search.column == ROW_ID || t.schema.columns.iter().any(|c| c.name == search.column);
        if !known {
            let names: Vec<&str> = t.schema.columns.iter().map(|c| c.name.as_str()).collect();
            return Err(TableError::InvalidInput(format!(
                "table `{}` has no column `{}` (its columns: {})",
                t.name(),
                search.column,
                names.join(", ")
            )));
        }
        // A NUL can be in no stored text: such a search matches nothing.
        let needle = search.contains.replace('\0', "\u{FFFD}");
        Ok((
            format!(
                " WHERE strpos(lower({}::text), lower($1)) > 0",
                quote(&search.column)
            ),
            Some(PgValue::Text(needle)),
        ))
    }

    /// A connection in a `REPEATABLE READ READ ONLY` transaction (one consistent snapshot).
    fn snapshot(&self, t: &PgTable) -> Result<crate::pg::Conn, TableError> {
        let pg = &self.shared.pg;
        let conn = pg
            .get()
            .map_err(|e| TableError::Storage(format!("table `{}`: {e}", t.name())))?;
        pg.wait(conn.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))
            .map_err(|e| t.storage(&error_text(&e)))?;
        Ok(conn)
    }

    /// Ends a snapshot; a connection that cannot say so is closed.
    fn end_snapshot(&self, conn: crate::pg::Conn, done: bool) {
        if !done || self.shared.pg.wait(conn.batch_execute("ROLLBACK")).is_err() {
            // Rows may still be on their way: the session is not reused.
            conn.discard();
        }
    }
}

impl TableBackend for PgTables {
    fn schemas(&self) -> &Arc<Schemas> {
        &self.shared.schemas
    }

    fn location(&self) -> String {
        self.shared.pg.url().shown().to_string()
    }

    fn begin(&self) -> Result<Box<dyn UnitOfWork>, StoreError> {
        Ok(Box::new(unit::PgUnit::new(Arc::clone(&self.shared))))
    }

    /// Checks the row as an upsert would; it is bound again when written (PostgreSQL's values
    /// borrow from the row).
    fn check_upsert(&self, table: &str, row: UpsertRow<'_>) -> Result<CheckedUpsert, TableError> {
        let t = self.shared.table(table)?;
        let row = row.into_map();
        let vals = t.bind_row(&row)?;
        let key = t
            .key
            .map(|(i, _)| vals.get(i).map(PgValue::key_text).unwrap_or_default());
        drop(vals);
        Ok(match key {
            Some(key) => CheckedUpsert::Later {
                key,
                row: DeferredRow::Json(row),
            },
            None => CheckedUpsert::Now(row),
        })
    }

    fn max_text(&self, table: &str, column: &str) -> Result<Option<String>, TableError> {
        let t = self.shared.table(table)?;
        let Some(c) = t.schema.columns.iter().find(|c| c.name == column) else {
            return Err(TableError::InvalidInput(format!(
                "table `{table}` has no column `{column}`"
            )));
        };
        // Byte order, as SQLite compares text, whatever the database's collation.
        let expr = match c.ty {
            ColumnType::Text => format!("{} COLLATE \"C\"", quote(column)),
            _ => format!("{}::text COLLATE \"C\"", quote(column)),
        };
        let sql = format!("SELECT max({expr}) FROM {}", t.ident);
        let pg = &self.shared.pg;
        let conn = pg
            .get()
            .map_err(|e| TableError::Storage(format!("table `{table}`: {e}")))?;
        let row = pg
            .wait(conn.query_one(&sql, &[]))
            .map_err(|e| t.storage(&error_text(&e)))?;
        row.try_get::<_, Option<String>>(0)
            .map_err(|e| t.storage(&error_text(&e)))
    }

    fn export_matching(
        &self,
        table: &str,
        search: Option<&ColumnSearch>,
        window: RowWindow,
        f: &mut dyn FnMut(Map<String, Value>) -> bool,
    ) -> Result<u64, TableError> {
        let t = self.shared.table(table)?;
        let (filter, needle) = PgTables::search_filter(t, search)?;
        let limit: Option<i64> = window.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        let offset = i64::try_from(window.offset).unwrap_or(i64::MAX);
        let (lp, op) = if needle.is_some() { (2, 3) } else { (1, 2) };
        let sql = format!(
            "{}{filter} ORDER BY {} LIMIT ${lp} OFFSET ${op}",
            t.select,
            quote(ROW_ID)
        );
        let mut args: Vec<&(dyn ToSql + Sync)> = Vec::new();
        if let Some(n) = &needle {
            args.push(n);
        }
        args.push(&limit);
        args.push(&offset);
        let pg = &self.shared.pg;
        let conn = self.snapshot(t)?;
        let mut n = 0;
        let result = (|| {
            let stream = pg
                .wait(conn.query_raw(&sql, args.iter().copied()))
                .map_err(|e| t.storage(&error_text(&e)))?;
            let mut stream = std::pin::pin!(stream);
            while let Some(row) = pg.wait(stream.next()) {
                let row = row.map_err(|e| t.storage(&error_text(&e)))?;
                n += 1;
                if !f(t.read_row(&row)?) {
                    return Ok(false);
                }
            }
            Ok(true)
        })();
        match result {
            Ok(done) => {
                self.end_snapshot(conn, done);
                Ok(n)
            }
            Err(e) => {
                self.end_snapshot(conn, false);
                Err(e)
            }
        }
    }

    fn count_matching(
        &self,
        table: &str,
        search: Option<&ColumnSearch>,
    ) -> Result<u64, TableError> {
        let t = self.shared.table(table)?;
        let (filter, needle) = PgTables::search_filter(t, search)?;
        let sql = format!("SELECT count(*) FROM {}{filter}", t.ident);
        let mut args: Vec<&(dyn ToSql + Sync)> = Vec::new();
        if let Some(n) = &needle {
            args.push(n);
        }
        let pg = &self.shared.pg;
        let conn = self.snapshot(t)?;
        let result = pg
            .wait(conn.query_one(&sql, &args))
            .and_then(|r| r.try_get::<_, i64>(0))
            .map_err(|e| t.storage(&error_text(&e)));
        self.end_snapshot(conn, result.is_ok());
        Ok(u64::try_from(result?).unwrap_or(0))
    }
}
