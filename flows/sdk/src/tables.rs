//! Tables: rows are JSON objects keyed by column name, typed here as any
//! `Serialize`/`DeserializeOwned` value (a struct with the table's columns, or `serde_json::Value`).
//!
//! A row may also be given as its [`Cell`]s, borrowed from the flow's own data
//! ([`upsert_cells`]). Filters are anything that serializes to a JSON object of `column: value`
//! pairs (`()` or `json!({})` = every row). A table without a key column is keyed by its row id, which the
//! host gives back in each row as `_id`; [`first`] and [`update_first`] cover the common
//! "single settings row" tables (the Workflows templates' Environment Variables and checkpoints).

use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

use crate::bindings::flowhost::flow::tables as wit;
use crate::Error;

pub use wit::Cell;

fn to_json<T: Serialize + ?Sized>(table: &str, what: &str, value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::json(format!("{what} for table {table}"), e))
}

fn from_json<T: DeserializeOwned>(table: &str, what: &str, text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|e| Error::json(format!("{what} of table {table}"), e))
}

/// A filter as the host wants it: a JSON object (`null`, from `()`, means every row).
fn filter_json<F: Serialize + ?Sized>(table: &str, filter: &F) -> Result<String, Error> {
    match serde_json::to_value(filter)
        .map_err(|e| Error::json(format!("filter for table {table}"), e))?
    {
        Value::Null => Ok("{}".to_string()),
        v @ Value::Object(_) => Ok(v.to_string()),
        other => Err(Error::InvalidInput(format!(
            "filter for table {table} must be a JSON object of column: value, not {other}"
        ))),
    }
}

/// The row whose key is `key`, if any.
pub fn get<T: DeserializeOwned>(table: &str, key: &str) -> Result<Option<T>, Error> {
    match wit::get(table, key)? {
        Some(row) => from_json(table, "row", &row).map(Some),
        None => Ok(None),
    }
}

/// Rows matching every `column: value` of `filter`, oldest first, at most `limit` (the host
/// caps it).
pub fn find<T, F>(table: &str, filter: &F, limit: Option<u32>) -> Result<Vec<T>, Error>
where
    T: DeserializeOwned,
    F: Serialize + ?Sized,
{
    let rows = wit::find(table, &filter_json(table, filter)?, limit)?;
    from_json(table, "rows", &rows)
}

/// The oldest row matching `filter`, if any.
pub fn first<T, F>(table: &str, filter: &F) -> Result<Option<T>, Error>
where
    T: DeserializeOwned,
    F: Serialize + ?Sized,
{
    Ok(find(table, filter, Some(1))?.into_iter().next())
}

/// Inserts one row; fails if its key exists. Returns the row's key.
pub fn insert<T: Serialize + ?Sized>(table: &str, row: &T) -> Result<String, Error> {
    Ok(wit::insert(table, &to_json(table, "row", row)?)?)
}

/// Inserts every row in one step; returns how many were written.
pub fn insert_many<T: Serialize>(table: &str, rows: &[T]) -> Result<u32, Error> {
    Ok(wit::insert_many(table, &to_json(table, "rows", rows)?)?)
}

/// Inserts the row, or replaces the one with the same key. Returns the row's key.
///
/// The row is checked (columns, types, key) at once, but the host may write it together with
/// later upserts: every later table call of the run sees it, and should the write itself fail
/// (a full disk), a later table call or the end of the run fails, and the run keeps nothing.
///
/// A struct or map row goes to the host as typed cells (`upsert-row`, contract 0.1.2): no JSON
/// to encode here or to parse in the host. Anything else goes as JSON text, and the host
/// answers the same either way.
pub fn upsert<T: Serialize + ?Sized>(table: &str, row: &T) -> Result<String, Error> {
    match crate::cells::of(row) {
        Some(cells) => cells.with(|cells| upsert_cells(table, cells)),
        None => Ok(wit::upsert(table, &to_json(table, "row", row)?)?),
    }
}

/// [`upsert`] of a row given as `(column, cell)` pairs (each column at most once), the texts
/// borrowed from wherever the flow keeps them: nothing is encoded or copied in the flow, and
/// the host reads each text where it lies (a flow storing a long text it holds already, such
/// as an event's text, copies it nowhere).
pub fn upsert_cells(table: &str, row: &[(&str, Cell<'_>)]) -> Result<String, Error> {
    Ok(wit::upsert_row(table, row)?)
}

/// Sets the given columns on the row with `key`; `false` if there is none.
pub fn update<C: Serialize + ?Sized>(table: &str, key: &str, changes: &C) -> Result<bool, Error> {
    Ok(wit::update(table, key, &to_json(table, "changes", changes)?)?)
}

/// Deletes the row with `key`; `false` if there is none.
pub fn delete(table: &str, key: &str) -> Result<bool, Error> {
    Ok(wit::delete(table, key)?)
}

/// Deletes the rows with these keys (at most 10,000) in one step; returns how many there were.
/// Needs a host of contract 0.1.1 or later.
pub fn delete_many<K: AsRef<str>>(table: &str, keys: &[K]) -> Result<u64, Error> {
    let keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
    Ok(wit::delete_many(table, &keys)?)
}

/// Deletes every row; returns how many.
pub fn clear(table: &str) -> Result<u64, Error> {
    Ok(wit::clear(table)?)
}

/// How many rows match `filter` (`()` = all).
pub fn count<F: Serialize + ?Sized>(table: &str, filter: &F) -> Result<u64, Error> {
    Ok(wit::count(table, &filter_json(table, filter)?)?)
}

/// The row id of a row of a table without a key column (its `_id`, a number or a string), as
/// the text [`update`], [`delete`] and [`get`] take.
pub fn row_id(row: &Value) -> Option<String> {
    match row.get("_id")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Sets `changes` on the oldest row of `table`, inserting them as a new row when the table is
/// empty: the "one settings row" pattern. Returns the row's key.
pub fn update_first<C: Serialize + ?Sized>(table: &str, changes: &C) -> Result<String, Error> {
    let existing: Option<Value> = first(table, &())?;
    match existing {
        Some(row) => {
            let key = row_id(&row).ok_or_else(|| {
                Error::Other(format!("table {table}: row without a key or `_id`: {row}"))
            })?;
            if update(table, &key, changes)? {
                Ok(key)
            } else {
                Err(Error::NotFound(format!("table {table}: row {key} vanished during the update")))
            }
        }
        None => insert(table, changes),
    }
}
