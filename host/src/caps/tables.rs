//! `tables.*`: rows as JSON text in and out (or typed, for `upsert-row`: see [`super::cells`]), checked against the table's grants here and
//! against its schema by the store. Every write goes into the run's one transaction; upserts
//! into keyed tables are checked at once and written in batches (see [`super::upsert_queue`]).

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::cells::CellRef;
use super::upsert_queue::{self, ended, write_waiting_for};
use crate::engine::flowhost::flow::tables::{Cell, Host};
use crate::engine::{RunState, WitError};
use crate::memo::Read;
use crate::runtime::{lock, CallCtx};
use crate::store::{
    CheckedUpsert, DeferredRow, DeferredUpsert, TableError, Txn, UpsertRow, READ_SNAPSHOT_MAX,
};

#[derive(Clone, Copy, PartialEq)]
enum Access {
    Read,
    /// Any write but an upsert.
    Write,
    /// An upsert (a write the run's memo follows row by row: `memo::Memo::upserted`).
    Upsert,
}

impl From<TableError> for WitError {
    fn from(e: TableError) -> Self {
        match e {
            TableError::NotFound(m) => WitError::NotFound(m),
            TableError::InvalidInput(m) => WitError::InvalidInput(m),
            TableError::Conflict(m) => WitError::InvalidInput(m),
            TableError::Storage(m) => WitError::Other(m),
            TableError::Timeout(m) => WitError::Timeout(m),
        }
    }
}

/// The most keys one `delete-many` call takes (as many as one `find` may return).
const DELETE_MANY_MAX: usize = 10_000;

/// Checks that the flow may read or write `table`; a write is noted in the run's memo.
fn check_grant(ctx: &CallCtx, table: &str, access: Access) -> Result<(), WitError> {
    let grants = &ctx.flow.manifest.grants;
    let allowed = match access {
        Access::Read => grants.can_read(table),
        Access::Write | Access::Upsert => grants.can_write(table),
    };
    // A table the flow may not use is answered `access-denied` alone, whether it exists or
    // not: a flow learns no table names beyond its grants.
    if !allowed {
        let (what, field) = match access {
            Access::Read => ("read", "grants.tables.read"),
            Access::Write | Access::Upsert => ("write", "grants.tables.write"),
        };
        return Err(WitError::AccessDenied(format!(
            "{} may not {what} table `{table}` ({field})",
            ctx.name()
        )));
    }
    if access != Access::Read {
        ctx.not_a_read();
        let mut memo = lock(&ctx.run.memo);
        memo.wrote(table);
        if access == Access::Write {
            memo.forget_rows(table);
        }
    }
    Ok(())
}

/// Checks the grant, then runs `op` on the run's transaction.
fn with_txn<T>(
    ctx: &CallCtx,
    table: &str,
    access: Access,
    op: impl FnOnce(&mut Txn) -> Result<T, TableError>,
) -> Result<T, WitError> {
    check_grant(ctx, table, access)?;
    in_txn(ctx, table, op).map_err(|e| match e {
        // A granted table the database lacks: never a "did you mean" naming another table.
        WitError::NotFound(_) => WitError::NotFound(format!("no table `{table}`")),
        other => other,
    })
}

/// Runs `op` on `table` in the run's transaction, after the upserts of that table waiting in
/// the run's queue.
fn in_txn<T>(
    ctx: &CallCtx,
    table: &str,
    op: impl FnOnce(&mut Txn) -> Result<T, TableError>,
) -> Result<T, WitError> {
    let mut guard = lock(&ctx.run.txn);
    let txn = guard.as_mut().ok_or_else(ended)?;
    write_waiting_for(&ctx.run, txn, table)?;
    let out = op(txn).map_err(WitError::from);
    if let Some(since) = txn.watch_read_snapshot() {
        end_when_idle(ctx, since, txn);
    }
    out
}

/// Ends the read snapshot the run's reads share (SQLite, see `store::sqlite::unit`) once it is
/// [`READ_SNAPSHOT_MAX`] old, so that a run busy elsewhere (an HTTP call, a sleep) never keeps
/// a checkpoint waiting for longer than that.
fn end_when_idle(ctx: &CallCtx, since: Instant, txn: &mut Txn) {
    let Ok(tokio) = tokio::runtime::Handle::try_current() else {
        txn.end_idle_read_snapshot(Duration::ZERO);
        return;
    };
    let run = ctx.run.clone();
    tokio.spawn(async move {
        let mut since = since;
        loop {
            tokio::time::sleep(READ_SNAPSHOT_MAX.saturating_sub(since.elapsed())).await;
            // Never wait here for a run's call that holds the transaction (it may be waiting
            // for the write lock): look again later.
            let mut guard = match run.txn.try_lock() {
                Ok(g) => g,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {
                    since = Instant::now();
                    continue;
                }
            };
            match guard.as_mut() {
                Some(txn) => match txn.end_idle_read_snapshot(READ_SNAPSHOT_MAX) {
                    Some(renewed) => since = renewed,
                    None => return,
                },
                None => return,
            }
        }
    });
}

/// `upsert-row`: the typed row `cells` checked ([`super::cells::row_of`]) and queued as
/// [`upsert_later`] queues a JSON row.
pub(super) fn upsert_typed<'a, 'c: 'a>(
    ctx: &CallCtx,
    table: &str,
    cells: impl IntoIterator<Item = (&'a str, CellRef<'c>)>,
) -> Result<String, WitError> {
    let (row, bytes) = super::cells::row_of(table, cells)?;
    upsert_later(ctx, table.to_string(), row, bytes)
}

/// An upsert into a keyed table: checked now, queued, and written with the next batch; the
/// caller gets the key at once. A keyless table's upsert is an insert and is written now.
/// `bytes` is the row's JSON size, held against the run's memory while it waits.
fn upsert_later(
    ctx: &CallCtx,
    table: String,
    row: UpsertRow<'_>,
    bytes: usize,
) -> Result<String, WitError> {
    check_grant(ctx, &table, Access::Upsert)?;
    let (key, row) = match ctx.rt.store.check_upsert(&table, row)? {
        CheckedUpsert::Later { key, row } => (key, row),
        CheckedUpsert::Now(row) => {
            lock(&ctx.run.memo).forget_rows(&table);
            return in_txn(ctx, &table, |t| t.upsert(&table, &row));
        }
    };
    if !ctx.rt.kept.tracks(&table) {
        upsert_queue::push(&ctx.run, DeferredUpsert { table, row }, bytes)?;
        return Ok(key);
    }
    // A table whose rows kept calls read: the run notes the row its get will now give.
    let own = match &row {
        DeferredRow::Bound(row) => Some(row.clone()),
        DeferredRow::Json(_) => None,
    };
    let pushed = upsert_queue::push(
        &ctx.run,
        DeferredUpsert {
            table: table.clone(),
            row,
        },
        bytes,
    );
    let own = own.filter(|_| pushed.is_ok());
    lock(&ctx.run.memo).upserted(&table, &key, own);
    pushed?;
    Ok(key)
}

fn object(json: &str, what: &str) -> Result<Map<String, Value>, WitError> {
    match crate::json::parse(json) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(WitError::InvalidInput(format!(
            "{what} must be a JSON object"
        ))),
        Err(e) => Err(WitError::InvalidInput(format!("{what} is not JSON: {e}"))),
    }
}

fn objects(json: &str) -> Result<Vec<Map<String, Value>>, WitError> {
    match crate::json::parse(json) {
        Ok(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Object(m) => Ok(m),
                _ => Err(WitError::InvalidInput(format!(
                    "rows[{i}] must be a JSON object"
                ))),
            })
            .collect(),
        Ok(_) => Err(WitError::InvalidInput("rows must be a JSON array".into())),
        Err(e) => Err(WitError::InvalidInput(format!("rows are not JSON: {e}"))),
    }
}

fn to_json(v: impl serde::Serialize) -> Result<String, WitError> {
    serde_json::to_string(&v).map_err(|e| WitError::Other(e.to_string()))
}

/// Row `key` of `table`, as JSON text.
fn get_row(ctx: &CallCtx, table: &str, key: &str) -> Result<Option<String>, WitError> {
    with_txn(ctx, table, Access::Read, |t| t.get_json(table, key))
}

/// The rows of `table` that match `filter`, as a JSON array.
fn find_rows(
    ctx: &CallCtx,
    table: &str,
    filter: &str,
    limit: Option<u32>,
) -> Result<String, WitError> {
    let filter = object(filter, "filter")?;
    let rows = with_txn(ctx, table, Access::Read, |t| t.find(table, &filter, limit))?;
    to_json(rows)
}

/// How many rows of `table` match `filter`.
fn count_rows(ctx: &CallCtx, table: &str, filter: &str) -> Result<u64, WitError> {
    let filter = object(filter, "filter")?;
    with_txn(ctx, table, Access::Read, |t| t.count(table, &filter))
}

/// Whether `read`, made again in `ctx`'s run, gives the answer it gave when it was recorded
/// (an error never does). How a pure flow's call kept from an earlier run is checked.
pub(crate) fn reads_the_same(ctx: &CallCtx, read: &Read) -> bool {
    match read {
        Read::Get { table, key, got } => {
            // A row this run upserted is what a get gives: compared without a read.
            let own = lock(&ctx.run.memo).own_row(table, key);
            if let Some(row) = own {
                if check_grant(ctx, table, Access::Read).is_err() {
                    return false;
                }
                let Some(got) = got else {
                    return false;
                };
                if let Some(same) = ctx.rt.store.bound_row_json_is(table, &row, got) {
                    return same;
                }
            }
            with_txn(ctx, table, Access::Read, |t| {
                t.get_json_is(table, key, got.as_deref())
            })
            .unwrap_or(false)
        }
        Read::Find {
            table,
            filter,
            limit,
            got,
        } => find_rows(ctx, table, filter, *limit).is_ok_and(|now| now == *got),
        Read::Count { table, filter, got } => {
            count_rows(ctx, table, filter).is_ok_and(|now| now == *got)
        }
    }
}

/// Notes what a read of a pure flow's call got (`crate::memo`), `answer` bytes long; a read
/// that failed makes the call one that is not kept. The answer is copied only if it may be.
fn record<T>(
    ctx: &CallCtx,
    got: &Result<T, WitError>,
    answer: impl FnOnce(&T) -> usize,
    read: impl FnOnce(&T) -> Read,
) {
    if let Some(recorder) = &ctx.reads {
        let mut recorder = lock(recorder);
        match got {
            Ok(got) if recorder.fits(answer(got)) => recorder.read(read(got)),
            Ok(_) => {}
            Err(_) => recorder.other(),
        }
    }
}

impl Host for RunState {
    async fn get(&mut self, table: String, key: String) -> Result<Option<String>, WitError> {
        let got = get_row(&self.ctx, &table, &key);
        let answer = |got: &Option<String>| got.as_ref().map_or(0, String::len);
        record(&self.ctx, &got, answer, |got| Read::Get {
            table,
            key,
            got: got.clone(),
        });
        got
    }

    async fn find(
        &mut self,
        table: String,
        filter: String,
        limit: Option<u32>,
    ) -> Result<String, WitError> {
        let got = find_rows(&self.ctx, &table, &filter, limit);
        record(&self.ctx, &got, String::len, |got| Read::Find {
            table,
            filter,
            limit,
            got: got.clone(),
        });
        got
    }

    async fn insert(&mut self, table: String, row: String) -> Result<String, WitError> {
        let row = object(&row, "row")?;
        with_txn(&self.ctx, &table, Access::Write, |t| t.insert(&table, &row))
    }

    async fn insert_many(&mut self, table: String, rows: String) -> Result<u32, WitError> {
        let rows = objects(&rows)?;
        with_txn(&self.ctx, &table, Access::Write, |t| {
            t.insert_many(&table, &rows)
        })
    }

    async fn upsert(&mut self, table: String, row: String) -> Result<String, WitError> {
        let bytes = row.len();
        let row = object(&row, "row")?;
        upsert_later(&self.ctx, table, UpsertRow::Json(row), bytes)
    }

    /// What the bindings would call: `cells::link_upsert_row` defines `upsert-row` over it
    /// with a function that reads the row from the flow's memory in one pass
    /// (`caps::guest_row`), and both end in `upsert_typed`.
    async fn upsert_row(
        &mut self,
        table: String,
        row: Vec<(String, Cell)>,
    ) -> Result<String, WitError> {
        let (names, cells): (Vec<String>, Vec<Cell>) = row.into_iter().unzip();
        let row = names
            .iter()
            .map(String::as_str)
            .zip(cells.into_iter().map(CellRef::from));
        upsert_typed(&self.ctx, &table, row)
    }

    async fn update(
        &mut self,
        table: String,
        key: String,
        changes: String,
    ) -> Result<bool, WitError> {
        let changes = object(&changes, "changes")?;
        with_txn(&self.ctx, &table, Access::Write, |t| {
            t.update(&table, &key, &changes)
        })
    }

    async fn delete(&mut self, table: String, key: String) -> Result<bool, WitError> {
        with_txn(&self.ctx, &table, Access::Write, |t| t.delete(&table, &key))
    }

    async fn delete_many(&mut self, table: String, keys: Vec<String>) -> Result<u64, WitError> {
        if keys.len() > DELETE_MANY_MAX {
            return Err(WitError::LimitExceeded(format!(
                "table `{table}`: delete-many takes at most {DELETE_MANY_MAX} keys, not {}",
                keys.len()
            )));
        }
        with_txn(&self.ctx, &table, Access::Write, |t| {
            let mut deleted = 0u64;
            for key in &keys {
                if t.delete(&table, key)? {
                    deleted += 1;
                }
            }
            Ok(deleted)
        })
    }

    async fn clear(&mut self, table: String) -> Result<u64, WitError> {
        with_txn(&self.ctx, &table, Access::Write, |t| t.clear(&table))
    }

    async fn count(&mut self, table: String, filter: String) -> Result<u64, WitError> {
        let got = count_rows(&self.ctx, &table, &filter);
        record(
            &self.ctx,
            &got,
            |_| 8,
            |got| Read::Count {
                table,
                filter,
                got: *got,
            },
        );
        got
    }
}
