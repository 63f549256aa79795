//! A PostgreSQL unit of work: one pooled connection and one `READ COMMITTED` transaction,
//! begun at the first call and ended by commit or rollback (dropping the unit rolls back).
//!
//! - **Lock waits** are bounded by the lock timeout and by the run's deadline
//!   (`SET LOCAL lock_timeout` / `statement_timeout`); one that ends at the deadline is a
//!   [`TableError::Timeout`] and [`UnitOfWork::lock_wait_expired`] says so.
//! - **Errors.** PostgreSQL aborts the whole transaction on any statement error, so the unit
//!   refuses every later call and its commit (a half-applied run never commits). Expected
//!   outcomes are not errors there: a taken key is found with `ON CONFLICT DO NOTHING`, and
//!   `insert_many` undoes its own rows with a savepoint.
//! - **Round trips.** Statements are prepared once per connection and reused by every unit
//!   that gets it (see [`super::Shared::checkout`]); the rows of an
//!   `insert_many` or of a batch of deferred upserts are sent pipelined (every row's statement
//!   before the first answer), so a 64-row batch costs one round trip.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use super::mapping::{placeholder, PgTable, PgValue};
use super::Shared;
use crate::pg::{error_text, Conn, PgError};
use crate::schema::ROW_ID;
use crate::store::clauses::{self, quote};
use crate::store::insert_many;
use crate::store::kept::KeptRows;
use crate::store::{
    DeferredRow, DeferredUpsert, StoreError, TableError, UnitOfWork, DEFAULT_FIND_LIMIT,
    DEFAULT_LOCK_TIMEOUT, MAX_FIND_LIMIT,
};

/// The longest `lock_timeout` / `statement_timeout` PostgreSQL accepts, in milliseconds.
const MAX_TIMEOUT_MS: u64 = i32::MAX as u64;

type Params<'a> = Vec<&'a (dyn ToSql + Sync)>;

fn params(vals: &[PgValue]) -> Params<'_> {
    vals.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

/// Why a step inside the unit failed.
enum Failure {
    /// PostgreSQL refused a statement (the transaction is now aborted).
    Db(tokio_postgres::Error),
    /// A table-level outcome (a taken key) that left the transaction usable.
    Table(TableError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Failure {
        Failure::Db(e)
    }
}

/// The connection of a unit while one step runs, with the unit's prepared statements.
struct Session<'a> {
    shared: &'a Shared,
    client: &'a Client,
    statements: &'a mut HashMap<String, Statement>,
}

impl Session<'_> {
    fn statement(&mut self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.shared.pg.wait(self.client.prepare(sql))?;
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        let s = self.statement(sql)?;
        self.shared.pg.wait(self.client.query(&s, params))
    }

    fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        let s = self.statement(sql)?;
        self.shared.pg.wait(self.client.execute(&s, params))
    }

    /// Runs `sql` once per parameter list, pipelined; each run's rows.
    fn query_many(
        &mut self,
        sql: &str,
        all: &[Params<'_>],
    ) -> Result<Vec<Vec<tokio_postgres::Row>>, tokio_postgres::Error> {
        let s = self.statement(sql)?;
        let client = self.client;
        let futures = all.iter().map(|p| client.query(&s, p));
        self.shared
            .pg
            .wait(futures::future::join_all(futures))
            .into_iter()
            .collect()
    }

    fn batch(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.shared.pg.wait(self.client.batch_execute(sql))
    }
}

pub(super) struct PgUnit {
    shared: Arc<Shared>,
    conn: Option<Conn>,
    begun: bool,
    writing: bool,
    /// Set once PostgreSQL aborted the transaction: every later call and the commit fail.
    aborted: Option<String>,
    lock_timeout: Duration,
    deadline: Option<Instant>,
    /// The timeouts changed since they were last sent.
    timeouts_stale: bool,
    /// The lock timeout in force is the deadline's rest (a lock wait then times the run out).
    deadline_bound: bool,
    lock_wait_expired: Option<String>,
    kept: KeptRows,
    statements: HashMap<String, Statement>,
}

impl PgUnit {
    pub(super) fn new(shared: Arc<Shared>) -> PgUnit {
        PgUnit {
            shared,
            conn: None,
            begun: false,
            writing: false,
            aborted: None,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            deadline: None,
            timeouts_stale: true,
            deadline_bound: false,
            lock_wait_expired: None,
            kept: KeptRows::default(),
            statements: HashMap::new(),
        }
    }

    fn query_error(&self, context: &str, reason: String) -> StoreError {
        StoreError::Postgres(PgError::Query {
            shown: self.shared.pg.url().shown().to_string(),
            context: context.to_string(),
            reason,
        })
    }

    /// `SET LOCAL` statements for the lock timeout and the deadline's rest.
    fn timeout_sql(&mut self) -> String {
        let rest = self
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        let lock = match rest {
            Some(r) if r <= self.lock_timeout => {
                self.deadline_bound = true;
                r
            }
            _ => {
                self.deadline_bound = false;
                self.lock_timeout
            }
        };
        // 0 means "no limit" to PostgreSQL: a spent deadline still waits 1 ms at most.
        // PostgreSQL takes at most i32::MAX ms (about 24 days): longer waits are that long.
        let ms = |d: Duration| {
            u64::try_from(d.as_millis())
                .unwrap_or(u64::MAX)
                .clamp(1, MAX_TIMEOUT_MS)
        };
        let statement = rest.map_or(0, ms);
        self.timeouts_stale = false;
        format!(
            "SET LOCAL lock_timeout = {}; SET LOCAL statement_timeout = {statement}",
            ms(lock)
        )
    }

    /// The connection, in a transaction with current timeouts.
    fn ready(&mut self) -> Result<(), StoreError> {
        if let Some(m) = &self.aborted {
            return Err(self.query_error("this unit of work", m.clone()));
        }
        if self.conn.is_none() {
            let (conn, statements) = self.shared.checkout()?;
            self.conn = Some(conn);
            self.statements = statements;
        }
        if !self.begun || self.timeouts_stale {
            let mut sql = String::new();
            if !self.begun {
                sql.push_str("BEGIN ISOLATION LEVEL READ COMMITTED; ");
            }
            sql.push_str(&self.timeout_sql());
            let Some(conn) = self.conn.as_ref() else {
                return Err(self.query_error("this unit of work", "no connection".into()));
            };
            if let Err(e) = self.shared.pg.wait(conn.batch_execute(&sql)) {
                if let Some(c) = self.conn.take() {
                    c.discard();
                }
                return Err(StoreError::Postgres(
                    self.shared.pg.error("cannot begin a unit of work", &e),
                ));
            }
            self.begun = true;
        }
        Ok(())
    }

    /// Runs one step on the unit's transaction; a statement error aborts the unit.
    fn step<R>(
        &mut self,
        t: &PgTable,
        write: bool,
        f: impl FnOnce(&mut Session<'_>) -> Result<R, Failure>,
    ) -> Result<R, TableError> {
        self.ready()
            .map_err(|e| TableError::Storage(format!("table `{}`: {e}", t.name())))?;
        if write {
            self.writing = true;
        }
        let Some(conn) = self.conn.as_ref() else {
            return Err(t.storage("no connection"));
        };
        let mut session = Session {
            shared: &self.shared,
            client: conn,
            statements: &mut self.statements,
        };
        match f(&mut session) {
            Ok(r) => Ok(r),
            Err(Failure::Table(e)) => Err(e),
            Err(Failure::Db(e)) => {
                let err = self.classify(t, &e);
                self.aborted = Some(format!(
                    "PostgreSQL rolled back this run's table writes after an error ({err}); no more table calls are possible in this run"
                ));
                Err(err)
            }
        }
    }

    fn classify(&mut self, t: &PgTable, e: &tokio_postgres::Error) -> TableError {
        let reason = error_text(e);
        let code = e.code();
        let waited =
            code == Some(&SqlState::LOCK_NOT_AVAILABLE) || code == Some(&SqlState::QUERY_CANCELED);
        if waited && (self.deadline_bound || code == Some(&SqlState::QUERY_CANCELED)) {
            let message = format!(
                "the run's deadline passed while it waited for a row lock (another process or run was writing to `{}`): {reason}; nothing was written",
                self.shared.pg.url().shown()
            );
            self.lock_wait_expired = Some(message.clone());
            return TableError::Timeout(format!("table `{}`: {message}", t.name()));
        }
        if waited {
            return t.storage(&format!(
                "a row is locked by another writer (another run holds it; waited for the lock timeout): {reason}"
            ));
        }
        t.storage(&reason)
    }

    /// Ends the transaction without committing and gives the connection back.
    fn release(&mut self) {
        self.writing = false;
        let Some(conn) = self.conn.take() else {
            return;
        };
        let statements = std::mem::take(&mut self.statements);
        if self.begun {
            self.begun = false;
            if self.shared.pg.wait(conn.batch_execute("ROLLBACK")).is_err() {
                conn.discard();
                return;
            }
        }
        self.shared.checkin(conn, statements);
    }

    /// The key of a written row: the key column's value, or the new `_id`.
    fn written_key(
        t: &PgTable,
        vals: &[PgValue],
        row: &tokio_postgres::Row,
    ) -> Result<String, Failure> {
        Ok(match t.key {
            Some((i, _)) => vals.get(i).map(PgValue::key_text).unwrap_or_default(),
            None => row.try_get::<_, i64>(0)?.to_string(),
        })
    }
}

impl Drop for PgUnit {
    fn drop(&mut self) {
        self.release();
    }
}

impl UnitOfWork for PgUnit {
    fn get(&mut self, table: &str, key: &str) -> Result<Option<Map<String, Value>>, TableError> {
        let shared = Arc::clone(&self.shared);
        let t = shared.table(table)?;
        let Some(k) = t.key_param(key) else {
            return Ok(None);
        };
        let rows = self.step(t, false, |s| Ok(s.query(&t.get, &[&k])?))?;
        rows.first().map(|r| t.read_row(r)).transpose()
    }

    fn find(
        &mut self,
        table: &str,
        filter: &Map<String, Value>,
        limit: Option<u32>,
    ) -> Result<Vec<Map<String, Value>>, TableError> {
        let shared = Arc::clone(&self.shared);
        let t = shared.table(table)?;
        let (clause, mut vals) = t.where_clause(filter)?;
        let limit = limit.unwrap_or(DEFAULT_FIND_LIMIT).min(MAX_FIND_LIMIT);
        vals.push(PgValue::Int(i64::from(limit)));
        let sql = format!(
            "{}{clause} ORDER BY {} LIMIT ${}",
            t.select,
            quote(ROW_ID),
            vals.len()
        );
        let rows = self.step(t, false, |s| Ok(s.query(&sql, &params(&vals))?))?;
        rows.iter().map(|r| t.read_row(r)).collect()
    }

    fn count(&mut self, table: &str, filter: &Map<String, Value>) -> Result<u64, TableError> {
        let shared = Arc::clone(&self.shared);
        let t = shared.table(table)?;
        let (clause, vals) = t.where_clause(filter)?;
        let sql = format!("SELECT count(*) FROM {}{clause}", t.ident);
        self.step(t, false, |s| {
            let rows = s.query(&sql, &params(&vals))?;
            let n: i64 = match rows.first() {
                Some(r) => r.try_get(0)?,
                None => 0,
            };
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    fn insert(&mut self, table: &str, row: &Map<String, Value>) -> Result<String, TableError> {
        let shared = Arc::clone(&self.shared);
        let t = shared.table(table)?;
        let vals = t.bind_row(row)?;
        let key = self.step(t, true, |s| {
            let rows = s.query(&t.insert, &params(&vals))?;
            match rows.first() {
                Some(r) => PgUnit::written_key(t, &vals, r),
                None => Err(Failure::Table(t.conflict(&vals))),
            }
        })?;
        self.kept.keep(&t.schema, [row]);
        Ok(key)
    }

    fn insert_many(&mut self, table: &str, rows: &[Map<String, Value>]) -> Result<u32, TableError> {
        let shared = Arc::clone(&self.shared);
        let t = shared.table(table)?;
        let (count, bound) = insert_many::bind_all(t.name(), rows, |row| t.bind_row(row))?;
        if bound.is_empty() {
            return Ok(0);
        }
        self.step(t, true, |s| {
            s.batch("SAVEPOINT flowhost_insert_many")?;
            let all: Vec<Params<'_>> = bound.iter().map(|v| params(v)).collect();
            let answers = s.query_many(&t.insert, &all)?;
            if let Some(i) = answers.iter().position(Vec::is_empty) {
                s.batch("ROLLBACK TO SAVEPOINT flowhost_insert_many")?;
                return Err(Failure::Table(insert_many::row_failed(
                    t.conflict(&bound[i]),
                    i,
                    bound.len(),
                )));
            }
            s.batch("RELEASE SAVEPOINT flowhost_insert_many")?;
            Ok(())
        })?;
        self.kept.keep(&t.schema, rows);
        Ok(count)
    }

    fn upsert(&mut self, table: &str, row: &Map<String, Value>) -> Result<String, TableError> {
        let shared = Arc::clone(&self.shared);
        let t = shared.table(table)?;
        let vals = t.bind_row(row)?;
        let key = self.step(t, true, |s| {
            let rows = s.query(&t.upsert, &params(&vals))?;
            match rows.first() {
                Some(r) => PgUnit::written_key(t, &vals, r),
                None => Err(Failure::Table(t.conflict(&vals))),
            }
        })?;
        if t.key.is_none() {
            self.kept.keep(&t.schema, [row]);
        }
        Ok(key)
    }

    fn upsert_deferred(&mut self, rows: Vec<DeferredUpsert>) -> Result<(), TableError> {
        let Some(first) = rows.first() else {
            return Ok(());
        };
        let shared = Arc::clone(&self.shared);
        let t = shared.table(&first.table)?;
        // Consecutive rows of one table go out as one pipelined batch.
        let mut batches: Vec<(&PgTable, Vec<Vec<PgValue>>)> = Vec::new();
        for row in &rows {
            let rt = shared.table(&row.table)?;
            let DeferredRow::Json(fields) = &row.row else {
                return Err(TableError::Storage(format!(
                    "table `{}`: an upsert checked by another store cannot be written here",
                    row.table
                )));
            };
            let vals = rt.bind_row(fields)?;
            match batches.last_mut() {
                Some((bt, list)) if bt.name() == rt.name() => list.push(vals),
                _ => batches.push((rt, vec![vals])),
            }
        }
        let r = self.step(t, true, |s| {
            for (bt, list) in &batches {
                let all: Vec<Params<'_>> = list.iter().map(|v| params(v)).collect();
                let answers = s.query_many(&bt.upsert, &all)?;
                if let Some(i) = answers.iter().position(Vec::is_empty) {
                    return Err(Failure::Table(bt.conflict(&list[i])));
                }
            }
            Ok(())
        });
        if let Err(e) = &r {
            if self.aborted.is_none() {
                self.aborted = Some(format!(
                    "a table write of this run failed ({e}); no more table calls are possible in this run"
                ));
            }
        }
        r
    }

    fn update(
        &mut self,
        table: &str,
        key: &str,
        changes: &Map<String, Value>,
    ) -> Result<bool, TableError> {
        let shared = Arc::clone(&self.shared);
        let t = shared.table(table)?;
        let Some(k) = t.key_param(key) else {
            t.schema.check_changes(changes)?;
            return Ok(false);
        };
        let (sets, mut vals) = clauses::set_clause(
            &t.schema,
            t.key,
            changes,
            placeholder,
            (t.name(), key),
            |name, ty, v| t.bind(name, ty, v),
            |bound| match (&k, bound) {
                (PgValue::Text(a), PgValue::Text(b)) => a == b,
                (PgValue::Int(a), PgValue::Int(b)) => a == b,
                _ => false,
            },
        )?;
        if sets.is_empty() {
            let sql = format!("SELECT 1 FROM {} WHERE {} = $1", t.ident, t.key_ident);
            return self.step(t, false, |s| Ok(!s.query(&sql, &[&k])?.is_empty()));
        }
        vals.push(k);
        let sql = format!(
            "UPDATE {} SET {} WHERE {} = ${}",
            t.ident,
            sets.join(", "),
            t.key_ident,
            vals.len()
        );
        self.step(t, true, |s| Ok(s.execute(&sql, &params(&vals))? > 0))
    }

    fn delete(&mut self, table: &str, key: &str) -> Result<bool, TableError> {
        let shared = Arc::clone(&self.shared);
        let t = shared.table(table)?;
        let Some(k) = t.key_param(key) else {
            return Ok(false);
        };
        self.step(t, true, |s| Ok(s.execute(&t.delete, &[&k])? > 0))
    }

    fn clear(&mut self, table: &str) -> Result<u64, TableError> {
        let shared = Arc::clone(&self.shared);
        let t = shared.table(table)?;
        let sql = format!("DELETE FROM {}", t.ident);
        self.step(t, true, |s| Ok(s.execute(&sql, &[])?))
    }

    fn wrote(&self) -> bool {
        self.writing
    }

    fn lock_for_write(&mut self) -> Result<(), StoreError> {
        // PostgreSQL locks rows, not the database: there is no lock to take ahead.
        self.ready()?;
        self.writing = true;
        Ok(())
    }

    fn set_lock_timeout(&mut self, timeout: Duration) -> Result<(), StoreError> {
        self.lock_timeout = timeout;
        self.timeouts_stale = true;
        Ok(())
    }

    fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = Some(deadline);
        self.timeouts_stale = true;
    }

    fn lock_wait_expired(&self) -> Option<&str> {
        self.lock_wait_expired.as_deref()
    }

    fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        if let Some(message) = self.aborted.take() {
            self.release();
            return Err(self.query_error("the run's table writes were not committed", message));
        }
        let Some(conn) = self.conn.take() else {
            return Ok(());
        };
        let statements = std::mem::take(&mut self.statements);
        if !self.begun {
            self.shared.checkin(conn, statements);
            return Ok(());
        }
        self.begun = false;
        self.writing = false;
        match self.shared.pg.wait(conn.batch_execute("COMMIT")) {
            Ok(()) => {
                self.shared.checkin(conn, statements);
                Ok(())
            }
            Err(e) => {
                conn.discard();
                Err(StoreError::Postgres(self.shared.pg.error(
                    "commit failed, the run's table writes were rolled back",
                    &e,
                )))
            }
        }
    }

    fn rollback(mut self: Box<Self>) {
        self.release();
    }

    fn rollback_keeping_inserts(mut self: Box<Self>) -> Result<usize, StoreError> {
        let kept = std::mem::take(&mut self.kept);
        let shared = Arc::clone(&self.shared);
        self.release();
        if kept.is_empty() {
            return Ok(0);
        }
        let mut unit = Box::new(PgUnit::new(shared));
        // A storage error aborts the transaction: the rest are left.
        let written = kept.write_again(
            &mut *unit,
            |u, t, r| u.insert(t, r),
            |u| u.aborted.is_some(),
        );
        unit.kept = KeptRows::default();
        unit.commit()?;
        Ok(written)
    }
}
