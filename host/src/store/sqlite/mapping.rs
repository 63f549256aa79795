//! How tables map onto SQLite: column types, values bound as parameters and read back as JSON,
//! quoted identifiers, and the SQL each table's operations use ([`TableSql`], built once per
//! table), including the `WHERE` clause of a column search.

use std::cmp::Ordering;
use std::io::Write;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{ffi, ErrorCode, ToSql};
use serde_json::{Map, Value};

use crate::schema::{integral, sql_table_name, ColumnType, TableSchema, ROW_ID};
use crate::store::clauses::Statements;
use crate::store::{BoundRow, ColumnSearch, FieldValue, TableError, UpsertRow};

/// A field of a row being bound: `_id` in a keyless table's row is only checked.
trait FieldRef {
    fn check(&self, schema: &TableSchema, name: &str) -> Result<(), TableError>;
}

impl FieldRef for &Value {
    fn check(&self, schema: &TableSchema, name: &str) -> Result<(), TableError> {
        schema.check_field(name, self)
    }
}

impl FieldRef for &FieldValue<'_> {
    fn check(&self, schema: &TableSchema, name: &str) -> Result<(), TableError> {
        match self {
            FieldValue::Text(s) => schema.check_field(name, &Value::String(s.to_string())),
            FieldValue::Json(v) => schema.check_field(name, v),
        }
    }
}

pub(super) use crate::store::clauses::quote;

/// How SQLite writes its `n`-th parameter.
pub(super) fn placeholder(n: usize) -> String {
    format!("?{n}")
}

/// A value ready to bind: the store's `ColumnValue`, which this module binds.
pub(super) use crate::store::ColumnValue as Bound;

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

pub(super) fn sql_decl(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Text | ColumnType::Json => "TEXT",
        ColumnType::Number => "REAL",
        ColumnType::Integer | ColumnType::Boolean => "INTEGER",
    }
}

/// A JSON number from a stored REAL: integral values within ±2^53 come back as integers.
pub(super) fn number_value(f: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if f.fract() == 0.0 && f.abs() <= EXACT {
        Value::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

/// The JSON value of a stored cell, per the column type. Cells written by something other than
/// flowhost (the `sqlite3` shell, say) are converted as well as they can be, never refused.
pub(super) fn cell_value(ty: ColumnType, cell: ValueRef<'_>) -> Value {
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
pub(super) enum KeyParam<'a> {
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

/// A table's schema plus the SQL that serves it, built once per [`super::SqliteTables`].
pub(super) struct TableSql {
    pub(super) schema: TableSchema,
    /// Quoted SQLite table name.
    pub(super) ident: String,
    /// Unquoted SQLite table name (for index names and `sqlite_master` lookups).
    pub(super) sql_name: String,
    /// Position and type of the key column (`None`: keyed by `_id`).
    pub(super) key: Option<(usize, ColumnType)>,
    /// Quoted key column (`"_id"` for keyless tables).
    pub(super) key_ident: String,
    /// Column positions in the order of their names (for [`TableSql::bind_row`]).
    pub(super) by_name: Vec<usize>,
    /// What [`TableSql::row_json`] writes, in name order: each field's quoted name and colon,
    /// and the position of its cell in a row of `select` (`_id` is 0).
    json_fields: Vec<(String, usize, ColumnType)>,
    /// `SELECT "_id", <columns> FROM <table>`.
    pub(super) select: String,
    pub(super) insert: String,
    pub(super) upsert: String,
    pub(super) get: String,
    pub(super) delete: String,
}

impl TableSql {
    pub(super) fn new(schema: &TableSchema) -> TableSql {
        let sql_name = sql_table_name(&schema.name);
        let Statements {
            ident,
            key,
            key_ident,
            select,
            insert,
            sets,
            get,
            delete,
        } = Statements::new(schema, &sql_name, placeholder);
        let upsert = match key {
            None => insert.clone(),
            Some(_) if sets.is_empty() => format!("{insert} ON CONFLICT ({key_ident}) DO NOTHING"),
            Some(_) => format!(
                "{insert} ON CONFLICT ({key_ident}) DO UPDATE SET {}",
                sets.join(", ")
            ),
        };
        let mut by_name: Vec<usize> = (0..schema.columns.len()).collect();
        by_name.sort_by(|&a, &b| schema.columns[a].name.cmp(&schema.columns[b].name));
        // The fields of `read_row`'s map, in its (name) order; a later one of the same name
        // replaces an earlier one, as in the map.
        let mut fields = std::collections::BTreeMap::new();
        if key.is_none() {
            fields.insert(ROW_ID.to_string(), (0, ColumnType::Integer));
        }
        for (i, c) in schema.columns.iter().enumerate() {
            fields.insert(c.name.clone(), (i + 1, c.ty));
        }
        let json_fields = fields
            .into_iter()
            .map(|(name, (at, ty))| (format!("{}:", Value::String(name)), at, ty))
            .collect();
        TableSql {
            schema: schema.clone(),
            ident,
            sql_name,
            key,
            key_ident,
            by_name,
            json_fields,
            select,
            insert,
            upsert,
            get,
            delete,
        }
    }

    pub(super) fn name(&self) -> &str {
        &self.schema.name
    }

    pub(super) fn storage(&self, e: rusqlite::Error) -> TableError {
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
    pub(super) fn write_error(&self, e: rusqlite::Error, vals: &[Bound<'_>]) -> TableError {
        let key = self.key.and_then(|(i, _)| vals.get(i).cloned());
        self.write_error_keyed(e, key)
    }

    /// [`TableSql::write_error`] of a row whose key column holds `key`.
    pub(super) fn write_error_keyed(
        &self,
        e: rusqlite::Error,
        key: Option<Bound<'_>>,
    ) -> TableError {
        if let rusqlite::Error::SqliteFailure(f, _) = &e {
            if f.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            {
                let key = match self.key {
                    Some(_) => key.as_ref().map(Bound::key_text).unwrap_or_default(),
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
    pub(super) fn bind<'a>(
        &self,
        name: &str,
        ty: ColumnType,
        v: &'a Value,
    ) -> Result<Bound<'a>, TableError> {
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
    pub(super) fn bind_row<'a>(
        &self,
        row: &'a Map<String, Value>,
    ) -> Result<Vec<Bound<'a>>, TableError> {
        let mut out: Vec<Bound<'a>> = (0..self.schema.columns.len())
            .map(|_| Bound::Null)
            .collect();
        self.bind_fields(row.iter(), |at, name, ty, v| {
            let bound = self.bind(name, ty, v)?;
            if let Some(slot) = out.get_mut(at) {
                *slot = bound;
            }
            Ok(())
        })?;
        self.check_key(|i| out.get(i).is_none_or(Bound::is_null))?;
        Ok(out)
    }

    /// [`TableSql::bind_row`] of a row checked once and kept until it is written (an upsert's
    /// row): the same checks and refusals, the values copied into one [`BoundRow`]. A typed
    /// row's text bound to a text column is copied straight from where the flow's call holds
    /// it.
    pub(crate) fn bind_row_kept(&self, row: &UpsertRow<'_>) -> Result<BoundRow, TableError> {
        let columns = self.schema.columns.len();
        let out = match row {
            UpsertRow::Json(m) => {
                let mut out = BoundRow::new(columns, 0);
                self.bind_fields(m.iter(), |at, name, ty, v| {
                    out.set(at, self.bind(name, ty, v)?);
                    Ok(())
                })?;
                out
            }
            UpsertRow::Fields(f) => {
                let text = f
                    .iter()
                    .map(|(_, v)| match v {
                        FieldValue::Text(s) => s.len(),
                        FieldValue::Json(_) => 0,
                    })
                    .sum();
                let mut out = BoundRow::new(columns, text);
                self.bind_fields(f.iter().map(|(n, v)| (*n, v)), |at, name, ty, v| {
                    match (ty, v) {
                        (ColumnType::Text, FieldValue::Text(s)) => out.set(at, Bound::Text(s)),
                        (_, FieldValue::Json(v)) => out.set(at, self.bind(name, ty, v)?),
                        (_, FieldValue::Text(s)) => {
                            let v = Value::String(s.to_string());
                            out.set(at, self.bind(name, ty, &v)?);
                        }
                    }
                    Ok(())
                })?;
                out
            }
        };
        self.check_key(|i| out.get(i).is_none_or(|v| v.is_null()))?;
        Ok(out)
    }

    /// Passes each of `fields` (by name) to `bind` with its column's position and type. The
    /// row's fields come sorted by name (serde_json's map is a BTreeMap, a typed row's fields
    /// are sorted), so a merge with the columns sorted by name finds each column without a
    /// lookup; should the order differ (serde_json's `preserve_order`), the linear search
    /// keeps this correct.
    fn bind_fields<N: AsRef<str>, V: FieldRef>(
        &self,
        fields: impl Iterator<Item = (N, V)>,
        mut bind: impl FnMut(usize, &str, ColumnType, V) -> Result<(), TableError>,
    ) -> Result<(), TableError> {
        let columns = &self.schema.columns;
        let mut next = 0;
        for (name, v) in fields {
            let name = name.as_ref();
            // One comparison per column passed over or matched.
            let pos = loop {
                let Some(&i) = self.by_name.get(next) else {
                    break columns.iter().position(|c| c.name == name);
                };
                match columns[i].name.as_str().cmp(name) {
                    Ordering::Less => next += 1,
                    Ordering::Equal => {
                        next += 1;
                        break Some(i);
                    }
                    Ordering::Greater => break columns.iter().position(|c| c.name == name),
                }
            };
            match pos {
                Some(i) => bind(i, name, columns[i].ty, v)?,
                None if name == ROW_ID && self.key.is_none() => v.check(&self.schema, name)?,
                None => return Err(self.schema.unknown_column(name)),
            }
        }
        Ok(())
    }

    /// Refuses a row whose key column is null (`is_null(position)`).
    fn check_key(&self, is_null: impl FnOnce(usize) -> bool) -> Result<(), TableError> {
        match self.key {
            Some((i, _)) if is_null(i) => Err(TableError::InvalidInput(format!(
                "table `{}`: the row has no value for the key column `{}`",
                self.name(),
                self.schema.columns[i].name
            ))),
            _ => Ok(()),
        }
    }

    /// ` WHERE a = ?1 AND b IS NULL` (empty for `{}`) and its parameters.
    pub(super) fn where_clause<'a>(
        &self,
        filter: &'a Map<String, Value>,
    ) -> Result<(String, Vec<Bound<'a>>), TableError> {
        crate::store::clauses::where_clause(
            &self.schema,
            self.key,
            filter,
            placeholder,
            |name, ty, v| self.bind(name, ty, v),
        )
    }

    pub(super) fn key_param<'a>(&self, key: &'a str) -> Option<KeyParam<'a>> {
        match self.key {
            Some((_, ColumnType::Text)) => Some(KeyParam::Text(key)),
            _ => key.trim().parse::<i64>().ok().map(KeyParam::Int),
        }
    }

    /// Reads a row selected with `self.select`.
    pub(super) fn read_row(&self, row: &rusqlite::Row<'_>) -> rusqlite::Result<Map<String, Value>> {
        let mut m = Map::new();
        if self.key.is_none() {
            m.insert(ROW_ID.to_string(), Value::from(row.get::<_, i64>(0)?));
        }
        for (i, c) in self.schema.columns.iter().enumerate() {
            m.insert(c.name.clone(), cell_value(c.ty, row.get_ref(i + 1)?));
        }
        Ok(m)
    }

    /// A row selected with `self.select` as JSON text: the same text as `serde_json` makes of
    /// [`TableSql::read_row`]'s map, without building the map.
    pub(super) fn row_json(&self, row: &rusqlite::Row<'_>) -> rusqlite::Result<String> {
        let mut out = Vec::with_capacity(24 * self.json_fields.len() + 2);
        self.write_row(row, &mut out)?;
        String::from_utf8(out).map_err(|e| rusqlite::Error::Utf8Error(e.utf8_error()))
    }

    /// Whether [`TableSql::row_json`] of `row` is `text`, found without making that text (how
    /// a pure flow's kept call is checked: `memo`).
    pub(super) fn row_json_is(
        &self,
        row: &rusqlite::Row<'_>,
        text: &str,
    ) -> rusqlite::Result<bool> {
        let mut same = SameAs {
            rest: text.as_bytes(),
            differs: false,
        };
        match self.write_row(row, &mut same) {
            Ok(()) => Ok(same.rest.is_empty()),
            Err(_) if same.differs => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether a get of the row that `row` upserts (bound by [`TableSql::bind_row_kept`])
    /// would give `text`: the row is what SQLite stores (every column is set, and each value
    /// is bound with its column's affinity, so it reads back as it was bound), written as
    /// [`TableSql::row_json`] writes it. `None` for a keyless table (its text holds `_id`).
    pub(crate) fn bound_json_is(&self, row: &BoundRow, text: &str) -> Option<bool> {
        self.key?;
        let mut same = SameAs {
            rest: text.as_bytes(),
            differs: false,
        };
        let cell = |at: usize| {
            let value = at.checked_sub(1).and_then(|i| row.get(i));
            match value {
                Some(Bound::Null) => Ok(ValueRef::Null),
                Some(Bound::Int(i)) => Ok(ValueRef::Integer(i)),
                Some(Bound::Real(f)) => Ok(ValueRef::Real(f)),
                Some(Bound::Text(s)) => Ok(ValueRef::Text(s.as_bytes())),
                Some(Bound::Owned(_)) | None => Err(rusqlite::Error::InvalidColumnIndex(at)),
            }
        };
        match self.write_cells(&mut same, cell) {
            Ok(()) => Some(same.rest.is_empty()),
            Err(_) if same.differs => Some(false),
            Err(_) => None,
        }
    }

    /// Writes [`TableSql::row_json`]'s text to `out`.
    fn write_row(&self, row: &rusqlite::Row<'_>, out: &mut impl Write) -> rusqlite::Result<()> {
        self.write_cells(out, |at| row.get_ref(at))
    }

    /// Writes the JSON text of the row whose cell at each position of a `select` row is
    /// `cell(position)`.
    fn write_cells<'v>(
        &self,
        out: &mut impl Write,
        cell: impl Fn(usize) -> rusqlite::Result<ValueRef<'v>>,
    ) -> rusqlite::Result<()> {
        let failed = |e: std::io::Error| rusqlite::Error::ToSqlConversionFailure(Box::new(e));
        out.write_all(b"{").map_err(failed)?;
        for (n, (name, at, ty)) in self.json_fields.iter().enumerate() {
            if n > 0 {
                out.write_all(b",").map_err(failed)?;
            }
            out.write_all(name.as_bytes()).map_err(failed)?;
            write_cell(out, *ty, cell(*at)?)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        }
        out.write_all(b"}").map_err(failed)
    }
}

/// A writer that compares what it is given with a text, and fails at the first byte that
/// differs (so a row that is not the text is not written past it).
struct SameAs<'a> {
    /// The text still to come.
    rest: &'a [u8],
    differs: bool,
}

impl Write for SameAs<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.rest.strip_prefix(buf) {
            Some(rest) => {
                self.rest = rest;
                Ok(buf.len())
            }
            None => {
                self.differs = true;
                Err(std::io::Error::other("the row's text differs"))
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Appends [`cell_value`]'s JSON text; text, whole numbers and nulls straight from the cell.
fn write_cell(out: &mut impl Write, ty: ColumnType, cell: ValueRef<'_>) -> serde_json::Result<()> {
    match (ty, cell) {
        (ColumnType::Json | ColumnType::Boolean, _) | (ColumnType::Text, ValueRef::Integer(_)) => {}
        (_, ValueRef::Null) => {
            return out.write_all(b"null").map_err(serde_json::Error::io);
        }
        (_, ValueRef::Integer(i)) => return serde_json::to_writer(out, &i),
        (_, ValueRef::Text(b)) => {
            if let Ok(text) = std::str::from_utf8(b) {
                return serde_json::to_writer(out, text);
            }
        }
        _ => {}
    }
    serde_json::to_writer(out, &cell_value(ty, cell))
}

/// The `WHERE` clause of a search (empty without one) and the text it binds as `?1`.
pub(super) struct SearchFilter {
    pub(super) sql: String,
    pub(super) needle: Option<String>,
}

pub(super) fn search_filter(
    t: &TableSql,
    search: Option<&ColumnSearch>,
) -> Result<SearchFilter, TableError> {
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
