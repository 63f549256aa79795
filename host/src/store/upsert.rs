//! An upsert checked once, when the flow makes it, and written later: the row as given
//! ([`UpsertRow`]: a JSON object, or a typed row's fields), what the check makes of it
//! ([`CheckedUpsert`]: the key and the row ready to write, or a keyless table's row to insert
//! now) and what waits in a run's queue ([`DeferredUpsert`]). A backend that can turns the row
//! into its column values at the check ([`BoundRow`] of [`ColumnValue`]s, types of the store,
//! not of one backend), so that the write binds nothing again.

use serde_json::{Map, Value};

/// A row given to `tables.upsert` (a JSON object) or `tables.upsert-row` (typed cells).
#[derive(Debug, Clone, PartialEq)]
pub enum UpsertRow<'a> {
    Json(Map<String, Value>),
    /// Fields in name order, each name once: what the object of the same cells would hold,
    /// without building the object (see `caps::cells`). The names are borrowed (from the
    /// flow's memory, for the length of its host call): a check binds the row by column and
    /// keeps no name.
    Fields(Vec<(&'a str, Value)>),
}

impl UpsertRow<'_> {
    /// The row as a JSON object.
    pub fn into_map(self) -> Map<String, Value> {
        match self {
            UpsertRow::Json(m) => m,
            UpsertRow::Fields(f) => f.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        }
    }
}

/// What [`super::Store::check_upsert`] made of an upsert it accepted.
#[derive(Debug)]
pub enum CheckedUpsert {
    /// A keyed table's row: its key (what the flow is told at once) and the row, to be written
    /// later with [`super::Txn::upsert_deferred`].
    Later { key: String, row: DeferredRow },
    /// A keyless table's row: its upsert is an insert that must be written now (with
    /// [`super::Txn::upsert`]) to learn its row id.
    Now(Map<String, Value>),
}

/// A column's value checked against its column's type, ready to bind: its text borrowed
/// where it can be (from a JSON row being written), owned where it is kept ([`BoundRow`]).
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValue<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Owned(String),
}

impl ColumnValue<'_> {
    /// The same value, owning its text.
    pub fn into_owned(self) -> ColumnValue<'static> {
        match self {
            ColumnValue::Null => ColumnValue::Null,
            ColumnValue::Int(i) => ColumnValue::Int(i),
            ColumnValue::Real(f) => ColumnValue::Real(f),
            ColumnValue::Text(s) => ColumnValue::Owned(s.to_string()),
            ColumnValue::Owned(s) => ColumnValue::Owned(s),
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, ColumnValue::Null)
    }

    /// The key as flows see it (a string).
    pub fn key_text(&self) -> String {
        match self {
            ColumnValue::Null => String::new(),
            ColumnValue::Int(i) => i.to_string(),
            ColumnValue::Real(f) => f.to_string(),
            ColumnValue::Text(s) => (*s).to_string(),
            ColumnValue::Owned(s) => s.clone(),
        }
    }
}

/// A row's values by column position (the table's schema order), owned, checked against the
/// schema when the upsert was made: written without binding again. Made by a backend that
/// binds at the check (SQLite).
#[derive(Debug, Clone, PartialEq)]
pub struct BoundRow(pub Vec<ColumnValue<'static>>);

/// A checked row waiting to be written.
#[derive(Debug, Clone, PartialEq)]
pub enum DeferredRow {
    /// The row's values by column position, checked and ready to bind (SQLite).
    Bound(BoundRow),
    /// The row as a JSON object, bound when written (PostgreSQL, and rows queued by hand).
    Json(Map<String, Value>),
}

/// An upsert accepted by [`super::Store::check_upsert`], waiting for
/// [`super::Txn::upsert_deferred`].
#[derive(Debug, Clone, PartialEq)]
pub struct DeferredUpsert {
    pub table: String,
    pub row: DeferredRow,
}

impl DeferredUpsert {
    /// An upsert of the JSON object `row` into `table` (checked or not: the write checks it).
    pub fn json(table: impl Into<String>, row: Map<String, Value>) -> DeferredUpsert {
        DeferredUpsert {
            table: table.into(),
            row: DeferredRow::Json(row),
        }
    }
}
