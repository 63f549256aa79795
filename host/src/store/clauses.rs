//! The SQL pieces both backends build the same way, but for how each writes its parameters
//! (`?1` in SQLite, `$1` in PostgreSQL) and what it binds: quoted identifiers, a table's
//! statements, the `WHERE` of a filter, and the checks of an `update`'s changes against the
//! table's schema.

use serde_json::{Map, Value};

use crate::schema::{ColumnType, TableSchema, ROW_ID};
use crate::store::TableError;

/// `"name"` with inner quotes doubled: a safe SQL identifier for any string.
pub(crate) fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// How a backend writes its `n`-th parameter (from 1).
pub(crate) type Placeholder = fn(usize) -> String;

/// A table's statements as every backend writes them, from its schema and stored name.
pub(crate) struct Statements {
    /// The quoted table name.
    pub ident: String,
    /// The key column's position and type (`None`: keyless, `_id` is the key).
    pub key: Option<(usize, ColumnType)>,
    /// The quoted key column (`"_id"` for keyless tables).
    pub key_ident: String,
    /// `SELECT "_id", <columns> FROM <table>`.
    pub select: String,
    /// `INSERT INTO <table> (<columns>) VALUES (<parameters>)`.
    pub insert: String,
    /// `<column> = excluded.<column>` for every column but the key.
    pub sets: Vec<String>,
    /// `<select> WHERE <key> = <first parameter>`.
    pub get: String,
    /// `DELETE FROM <table> WHERE <key> = <first parameter>`.
    pub delete: String,
}

impl Statements {
    pub(crate) fn new(schema: &TableSchema, sql_name: &str, placeholder: Placeholder) -> Self {
        let ident = quote(sql_name);
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
        let params: Vec<String> = (1..=cols.len()).map(placeholder).collect();
        let insert = format!(
            "INSERT INTO {ident} ({}) VALUES ({})",
            cols.join(", "),
            params.join(", ")
        );
        let sets = cols
            .iter()
            .enumerate()
            .filter(|(i, _)| key.is_some_and(|(k, _)| k != *i))
            .map(|(_, c)| format!("{c} = excluded.{c}"))
            .collect();
        let first = placeholder(1);
        Statements {
            get: format!("{select} WHERE {key_ident} = {first}"),
            delete: format!("DELETE FROM {ident} WHERE {key_ident} = {first}"),
            ident,
            key,
            key_ident,
            select,
            insert,
            sets,
        }
    }
}

/// ` WHERE a = ?1 AND b IS NULL` (empty for `{}`) and its parameters, each value bound by
/// `bind` (name, column type, value). `key` is the table's key column, if any: without one,
/// `_id` names the row id.
pub(crate) fn where_clause<'a, P>(
    schema: &TableSchema,
    key: Option<(usize, ColumnType)>,
    filter: &'a Map<String, Value>,
    placeholder: Placeholder,
    mut bind: impl FnMut(&'a str, ColumnType, &'a Value) -> Result<P, TableError>,
) -> Result<(String, Vec<P>), TableError> {
    let mut sql = String::new();
    let mut params = Vec::new();
    for (name, v) in filter {
        let (ident, ty) = match schema.column(name) {
            Some(c) => (quote(&c.name), c.ty),
            None if name == ROW_ID && key.is_none() => (quote(ROW_ID), ColumnType::Integer),
            None => return Err(schema.unknown_column(name)),
        };
        sql.push_str(if sql.is_empty() { " WHERE " } else { " AND " });
        if v.is_null() {
            sql.push_str(&format!("{ident} IS NULL"));
        } else {
            params.push(bind(name, ty, v)?);
            sql.push_str(&format!("{ident} = {}", placeholder(params.len())));
        }
    }
    Ok((sql, params))
}

/// The `SET` list of an `update` of row `row_key` of `table` (`"a" = ?1`, …) and its
/// parameters, each value bound by `bind`. The key column (or `_id` of a keyless table) may
/// be given only the row's own key, which `is_own_key` tells from its bound value; a name
/// that is neither a column nor the key is refused. Faults are met in the order the changes
/// were given.
pub(crate) fn set_clause<'a, P>(
    schema: &'a TableSchema,
    key: Option<(usize, ColumnType)>,
    changes: &'a Map<String, Value>,
    placeholder: Placeholder,
    (table, row_key): (&str, &str),
    mut bind: impl FnMut(&'a str, ColumnType, &'a Value) -> Result<P, TableError>,
    is_own_key: impl Fn(&P) -> bool,
) -> Result<(Vec<String>, Vec<P>), TableError> {
    let mut sets = Vec::new();
    let mut params = Vec::new();
    for (name, value) in changes {
        let column = schema.column(name);
        let is_key = match (column, key) {
            (Some(c), Some((ki, _))) => schema.columns[ki].name == c.name,
            (None, None) => name == ROW_ID,
            _ => false,
        };
        if is_key {
            let ty = column.map_or(ColumnType::Integer, |c| c.ty);
            if !is_own_key(&bind(name, ty, value)?) {
                return Err(TableError::InvalidInput(format!(
                    "table `{table}`: update cannot change the key `{name}` of row `{row_key}` \
                     (to {value}); delete the row and insert a new one"
                )));
            }
            continue;
        }
        let Some(column) = column else {
            return Err(schema.unknown_column(name));
        };
        params.push(bind(name, column.ty, value)?);
        sets.push(format!(
            "{} = {}",
            quote(&column.name),
            placeholder(params.len())
        ));
    }
    Ok((sets, params))
}
