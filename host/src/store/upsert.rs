//! An upsert checked once, when the flow makes it, and written later: the row as given
//! ([`UpsertRow`]: a JSON object, or a typed row's fields), what the check makes of it
//! ([`CheckedUpsert`]: the key and the row ready to write, or a keyless table's row to insert
//! now) and what waits in a run's queue ([`DeferredUpsert`]). A backend that can turns the row
//! into its column values at the check ([`BoundRow`]: [`ColumnValue`]s, types of the store,
//! not of one backend, with every text in one buffer), so that the write binds nothing again.

use std::borrow::Cow;
use std::ops::Range;

use serde_json::{Map, Value};

/// A row given to `tables.upsert` (a JSON object) or `tables.upsert-row` (typed cells).
#[derive(Debug, Clone, PartialEq)]
pub enum UpsertRow<'a> {
    Json(Map<String, Value>),
    /// Fields in name order, each name once: what the object of the same cells would hold,
    /// without building the object (see `caps::cells`). The names and texts are borrowed
    /// (from the row the flow passed, for the length of its host call): a check binds the row
    /// by column, copying its texts once, and keeps no name.
    Fields(Vec<(&'a str, FieldValue<'a>)>),
}

/// A typed row's field: a text as the flow gave it, or any other value as the JSON value the
/// same row given as an object would hold.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    Text(Cow<'a, str>),
    Json(Value),
}

impl FieldValue<'_> {
    /// The field as the JSON value of the same row given as an object.
    pub fn into_value(self) -> Value {
        match self {
            FieldValue::Text(s) => Value::String(s.into_owned()),
            FieldValue::Json(v) => v,
        }
    }
}

impl<'a> UpsertRow<'a> {
    /// The fields a flow's typed row of the same cells as `object` gives: its strings as
    /// texts (borrowed), its other members as values.
    pub fn typed_of(object: &'a Map<String, Value>) -> UpsertRow<'a> {
        let field = |v: &'a Value| match v {
            Value::String(s) => FieldValue::Text(Cow::Borrowed(s.as_str())),
            v => FieldValue::Json(v.clone()),
        };
        UpsertRow::Fields(object.iter().map(|(k, v)| (k.as_str(), field(v))).collect())
    }

    /// The row as a JSON object.
    pub fn into_map(self) -> Map<String, Value> {
        match self {
            UpsertRow::Json(m) => m,
            UpsertRow::Fields(f) => f
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.into_value()))
                .collect(),
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
/// where it can be (from a row being written, or from a [`BoundRow`]), owned where it is made
/// (a `json` column's text).
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValue<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Owned(String),
}

impl ColumnValue<'_> {
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
/// binds at the check (SQLite). Its texts share one buffer: a row waiting in a run's queue is
/// two allocations, not one per text column (issue 20).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BoundRow {
    text: String,
    values: Vec<Packed>,
}

/// A [`ColumnValue`] whose text is a range of [`BoundRow::text`].
#[derive(Debug, Clone, PartialEq)]
enum Packed {
    Null,
    Int(i64),
    Real(f64),
    Text(Range<usize>),
}

impl BoundRow {
    /// A row of `columns` nulls, with room for `text` bytes of text.
    pub fn new(columns: usize, text: usize) -> BoundRow {
        BoundRow {
            text: String::with_capacity(text),
            values: vec![Packed::Null; columns],
        }
    }

    /// Sets column `at` (a position past the row's columns is ignored: the caller binds by
    /// the schema the row was made for).
    pub fn set(&mut self, at: usize, value: ColumnValue<'_>) {
        let packed = match value {
            ColumnValue::Null => Packed::Null,
            ColumnValue::Int(i) => Packed::Int(i),
            ColumnValue::Real(f) => Packed::Real(f),
            ColumnValue::Text(s) => self.push_text(s),
            ColumnValue::Owned(s) => self.push_text(&s),
        };
        if let Some(slot) = self.values.get_mut(at) {
            *slot = packed;
        }
    }

    fn push_text(&mut self, s: &str) -> Packed {
        let start = self.text.len();
        self.text.push_str(s);
        Packed::Text(start..self.text.len())
    }

    /// The bytes the row holds (its texts and values).
    pub fn size(&self) -> usize {
        self.text.len() + self.values.len() * std::mem::size_of::<Packed>()
    }

    /// Column `at`'s value (`None` past the row's columns).
    pub fn get(&self, at: usize) -> Option<ColumnValue<'_>> {
        self.values.get(at).map(|p| self.value(p))
    }

    /// Every column's value, in the schema's order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = ColumnValue<'_>> + '_ {
        self.values.iter().map(|p| self.value(p))
    }

    fn value(&self, p: &Packed) -> ColumnValue<'_> {
        match p {
            Packed::Null => ColumnValue::Null,
            Packed::Int(i) => ColumnValue::Int(*i),
            Packed::Real(f) => ColumnValue::Real(*f),
            Packed::Text(r) => ColumnValue::Text(self.text.get(r.clone()).unwrap_or_default()),
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_row_keeps_its_texts_in_one_buffer_by_column() {
        let mut row = BoundRow::new(4, 8);
        row.set(2, ColumnValue::Text("abc"));
        row.set(0, ColumnValue::Int(7));
        row.set(1, ColumnValue::Owned("{\"x\":1}".into()));
        // Past the row's columns: ignored, not a panic.
        row.set(9, ColumnValue::Text("lost"));
        // Set again: the later value counts.
        row.set(2, ColumnValue::Text("é"));
        let values: Vec<ColumnValue<'_>> = row.values().collect();
        assert_eq!(
            values,
            [
                ColumnValue::Int(7),
                ColumnValue::Text("{\"x\":1}"),
                ColumnValue::Text("é"),
                ColumnValue::Null,
            ]
        );
        assert_eq!(row.get(3), Some(ColumnValue::Null));
        assert_eq!(row.get(4), None);
        assert_eq!(
            row.get(1).map(|v| v.key_text()).as_deref(),
            Some("{\"x\":1}")
        );
    }

    #[test]
    fn typed_fields_become_the_object_of_the_same_row() {
        let row = UpsertRow::Fields(vec![
            ("a", FieldValue::Text("x".into())),
            ("b", FieldValue::Json(Value::from(2))),
        ]);
        assert_eq!(
            Value::Object(row.into_map()),
            serde_json::json!({"a": "x", "b": 2})
        );
    }
}
