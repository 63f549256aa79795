//! The seam between the `tables` contract and a database: what a store backend (SQLite in
//! [`super`] today, PostgreSQL in `store/postgres/`) must provide. [`super::Store`] and
//! [`super::Txn`] are thin wrappers over these traits, so callers never name a backend.
//!
//! The contract every backend keeps (tested against both from one suite):
//! - tables from [`Schemas`] with additive migration, refused otherwise (naming the table,
//!   column and schema file);
//! - one [`UnitOfWork`] per top-level run: every write of the run (its children's included)
//!   becomes visible at [`UnitOfWork::commit`] or not at all; dropping one rolls it back;
//! - rows in and out as JSON objects with the same value mapping (every column present,
//!   `null` where unset; integral numbers within ±2^53 as integers; booleans; `json` columns
//!   parsed; keyless tables add `_id`), the same keys and the same error cases and texts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::{
    BoundRow, CheckedUpsert, ColumnSearch, DeferredUpsert, RowWindow, StoreError, TableError,
    UpsertRow,
};
use crate::schema::Schemas;

/// A database holding the tables of [`Schemas`].
pub trait TableBackend: Send + Sync + std::fmt::Debug {
    fn schemas(&self) -> &Arc<Schemas>;
    /// Where the tables are, as an error or status line may show it (a file path, or a
    /// PostgreSQL URL without its password).
    fn location(&self) -> String;
    /// A new unit of work (reads see committed data; the first write may wait for a lock).
    fn begin(&self) -> Result<Box<dyn UnitOfWork>, StoreError>;
    /// Checks `row` against `table`'s schema as an upsert would, writing nothing: the key it
    /// would have and the row ready for [`UnitOfWork::upsert_deferred`], or for a keyless table
    /// the row itself (see [`CheckedUpsert`]).
    fn check_upsert(&self, table: &str, row: UpsertRow<'_>) -> Result<CheckedUpsert, TableError>;
    /// Whether a get of the row that `row` (checked by [`TableBackend::check_upsert`] into
    /// `table`) upserts would give the JSON text `text`, told without reading the table;
    /// `None` when this backend cannot tell (then read the row).
    fn bound_row_json_is(&self, _table: &str, _row: &BoundRow, _text: &str) -> Option<bool> {
        None
    }
    /// The greatest value of text column `column` (`None` for an empty table).
    fn max_text(&self, table: &str, column: &str) -> Result<Option<String>, TableError>;
    /// Rows of `table` in `_id`/insertion order, filtered by `search` (a case-insensitive
    /// substring of one column's text), within `window`, each handed to `f` until it returns
    /// `false`; returns how many were handed over. Reads one consistent snapshot.
    fn export_matching(
        &self,
        table: &str,
        search: Option<&ColumnSearch>,
        window: RowWindow,
        f: &mut dyn FnMut(Map<String, Value>) -> bool,
    ) -> Result<u64, TableError>;
    /// How many rows [`TableBackend::export_matching`] would hand over without a window.
    fn count_matching(&self, table: &str, search: Option<&ColumnSearch>)
        -> Result<u64, TableError>;
}

/// One top-level run's reads and writes (see the module doc for the contract).
pub trait UnitOfWork: Send {
    fn get(&mut self, table: &str, key: &str) -> Result<Option<Map<String, Value>>, TableError>;
    /// [`UnitOfWork::get`]'s row as JSON text (the text `serde_json` makes of that row: keys in
    /// name order). A backend may write it straight from its columns.
    fn get_json(&mut self, table: &str, key: &str) -> Result<Option<String>, TableError> {
        self.get(table, key)?
            .map(|row| {
                serde_json::to_string(&row)
                    .map_err(|e| TableError::Storage(format!("table `{table}`: {e}")))
            })
            .transpose()
    }
    /// Whether [`UnitOfWork::get_json`] would give `text` (`None`: no row). A backend may
    /// compare without making the text.
    fn get_json_is(
        &mut self,
        table: &str,
        key: &str,
        text: Option<&str>,
    ) -> Result<bool, TableError> {
        Ok(self.get_json(table, key)?.as_deref() == text)
    }
    /// When the read transaction that reads share began, if one is open and nobody watches it
    /// yet; it is then marked watched (see [`UnitOfWork::end_idle_read_snapshot`]).
    fn watch_read_snapshot(&mut self) -> Option<Instant> {
        None
    }
    /// Ends the shared read transaction if it began `idle` ago or more (so that it never holds
    /// up a checkpoint for long); otherwise gives when it began, still watched.
    fn end_idle_read_snapshot(&mut self, _idle: Duration) -> Option<Instant> {
        None
    }
    fn find(
        &mut self,
        table: &str,
        filter: &Map<String, Value>,
        limit: Option<u32>,
    ) -> Result<Vec<Map<String, Value>>, TableError>;
    fn count(&mut self, table: &str, filter: &Map<String, Value>) -> Result<u64, TableError>;
    fn insert(&mut self, table: &str, row: &Map<String, Value>) -> Result<String, TableError>;
    fn insert_many(&mut self, table: &str, rows: &[Map<String, Value>]) -> Result<u32, TableError>;
    fn upsert(&mut self, table: &str, row: &Map<String, Value>) -> Result<String, TableError>;
    /// Applies upserts already checked by [`TableBackend::check_upsert`], in order.
    fn upsert_deferred(&mut self, rows: Vec<DeferredUpsert>) -> Result<(), TableError>;
    fn update(
        &mut self,
        table: &str,
        key: &str,
        changes: &Map<String, Value>,
    ) -> Result<bool, TableError>;
    fn delete(&mut self, table: &str, key: &str) -> Result<bool, TableError>;
    fn clear(&mut self, table: &str) -> Result<u64, TableError>;
    /// Whether anything was written (or the write lock taken).
    fn wrote(&self) -> bool;
    /// Takes the write lock now (SQLite: `BEGIN IMMEDIATE`; elsewhere it may do nothing).
    fn lock_for_write(&mut self) -> Result<(), StoreError>;
    /// How long a wait for another writer's lock may take.
    fn set_lock_timeout(&mut self, timeout: Duration) -> Result<(), StoreError>;
    /// The run's deadline: no lock wait goes past it.
    fn set_deadline(&mut self, deadline: Instant);
    /// Why a lock wait ended at the deadline, if one did (the run then counts as timed out).
    fn lock_wait_expired(&self) -> Option<&str>;
    /// Makes every write visible at once; fails, having rolled back, if it cannot.
    fn commit(self: Box<Self>) -> Result<(), StoreError>;
    fn rollback(self: Box<Self>);
    /// Rolls back, then writes again what was inserted into `keep_on_failure` tables (at most
    /// [`super::MAX_KEPT_ROWS`]) in a unit of its own; returns how many rows it kept.
    fn rollback_keeping_inserts(self: Box<Self>) -> Result<usize, StoreError>;
}
