//! How one table of a schema lives in PostgreSQL: its quoted names, the SQL that serves it,
//! and the value mapping both ways (JSON field → bound parameter, stored cell → JSON value).
//!
//! Types: `text` → `text`, `json` → `jsonb`, `number` → `double precision`, `integer` →
//! `bigint`, `boolean` → `boolean`. Text PostgreSQL cannot hold (a NUL character, in a text
//! column or anywhere in a JSON value) is refused as [`TableError::InvalidInput`] naming the
//! table and column, before anything is sent.

use std::error::Error;

use bytes::BytesMut;
use serde_json::{Map, Value};
use tokio_postgres::types::{IsNull, Json, ToSql, Type};

use crate::schema::{integral, sql_table_name, ColumnType, TableSchema, ROW_ID};
use crate::store::clauses::{quote, Statements};
use crate::store::TableError;

/// How PostgreSQL writes its `n`-th parameter.
pub(super) fn placeholder(n: usize) -> String {
    format!("${n}")
}

/// PostgreSQL's identifier limit (NAMEDATALEN - 1): longer names are cut by the server.
const MAX_IDENT: usize = 63;

/// `name` as PostgreSQL stores it: cut to [`MAX_IDENT`] bytes on a character boundary.
pub(super) fn stored_name(name: &str) -> String {
    let mut end = name.len().min(MAX_IDENT);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// The column type a schema type is declared with.
pub(super) fn sql_decl(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Text => "text",
        ColumnType::Json => "jsonb",
        ColumnType::Number => "double precision",
        ColumnType::Integer => "bigint",
        ColumnType::Boolean => "boolean",
    }
}

/// A value ready to bind, checked against its column's type.
#[derive(Debug, Clone)]
pub(super) enum PgValue {
    Null,
    Text(String),
    Json(Value),
    Float(f64),
    Int(i64),
    Bool(bool),
}

impl PgValue {
    pub(super) fn is_null(&self) -> bool {
        matches!(self, PgValue::Null)
    }

    /// The key as flows see it (a string).
    pub(super) fn key_text(&self) -> String {
        match self {
            PgValue::Null => String::new(),
            PgValue::Text(s) => s.clone(),
            PgValue::Json(v) => v.to_string(),
            PgValue::Float(f) => f.to_string(),
            PgValue::Int(i) => i.to_string(),
            PgValue::Bool(b) => b.to_string(),
        }
    }
}

impl ToSql for PgValue {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            PgValue::Null => Ok(IsNull::Yes),
            PgValue::Text(s) => s.to_sql(ty, out),
            PgValue::Json(v) => Json(v).to_sql(ty, out),
            PgValue::Float(f) => f.to_sql(ty, out),
            PgValue::Int(i) => i.to_sql(ty, out),
            PgValue::Bool(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// A number from a stored `double precision`: integral values within ±2^53 come back as
/// integers (the same rule as SQLite's `REAL`).
fn number_value(f: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if f.fract() == 0.0 && f.abs() <= EXACT {
        Value::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

/// Whether a JSON value holds a NUL character anywhere (a string or a key).
fn json_has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(json_has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || json_has_nul(v)),
        _ => false,
    }
}

/// A table's schema plus the SQL that serves it, built once per [`super::PgTables`].
#[derive(Debug)]
pub(super) struct PgTable {
    pub schema: TableSchema,
    /// Quoted table name.
    pub ident: String,
    /// Table name as stored (for catalog lookups and index names).
    pub sql_name: String,
    /// Position and type of the key column (`None`: keyed by `_id`).
    pub key: Option<(usize, ColumnType)>,
    /// Quoted key column (`"_id"` for keyless tables).
    pub key_ident: String,
    /// `SELECT "_id", <columns> FROM <table>`.
    pub select: String,
    /// `INSERT ... ON CONFLICT DO NOTHING RETURNING "_id"`: no row back means a taken key.
    pub insert: String,
    /// `INSERT ... ON CONFLICT (key) DO UPDATE ... RETURNING "_id"` (keyless: plain insert).
    pub upsert: String,
    pub get: String,
    pub delete: String,
}

impl PgTable {
    pub(super) fn new(schema: &TableSchema) -> PgTable {
        let sql_name = stored_name(&sql_table_name(&schema.name));
        let Statements {
            ident,
            key,
            key_ident,
            select,
            insert: plain,
            sets,
            get,
            delete,
        } = Statements::new(schema, &sql_name, placeholder);
        let returning = format!(" RETURNING {}", quote(ROW_ID));
        let insert = match key {
            Some(_) => format!("{plain} ON CONFLICT ({key_ident}) DO NOTHING{returning}"),
            None => format!("{plain}{returning}"),
        };
        let upsert = match key {
            None => format!("{plain}{returning}"),
            // A no-op update so that RETURNING answers for an existing row too.
            Some(_) if sets.is_empty() => format!(
                "{plain} ON CONFLICT ({key_ident}) DO UPDATE SET {key_ident} = excluded.{key_ident}{returning}"
            ),
            Some(_) => format!(
                "{plain} ON CONFLICT ({key_ident}) DO UPDATE SET {}{returning}",
                sets.join(", ")
            ),
        };
        PgTable {
            schema: schema.clone(),
            ident,
            sql_name,
            key,
            key_ident,
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

    /// A storage error naming the table.
    pub(super) fn storage(&self, reason: &str) -> TableError {
        TableError::Storage(format!("table `{}`: {reason}", self.name()))
    }

    /// A conflict on the row whose values are `vals`.
    pub(super) fn conflict(&self, vals: &[PgValue]) -> TableError {
        let key = match self.key {
            Some((i, _)) => vals.get(i).map(PgValue::key_text).unwrap_or_default(),
            None => String::from("?"),
        };
        TableError::Conflict(format!(
            "table `{}`: a row with key `{key}` already exists",
            self.name()
        ))
    }

    fn nul(&self, name: &str) -> TableError {
        TableError::InvalidInput(format!(
            "table `{}`, column `{name}`: the text holds a NUL character (\\u0000), which PostgreSQL cannot store",
            self.name()
        ))
    }

    /// The bound value of one field, checked against its column type.
    pub(super) fn bind(
        &self,
        name: &str,
        ty: ColumnType,
        v: &Value,
    ) -> Result<PgValue, TableError> {
        let b = match (ty, v) {
            (_, Value::Null) => Some(PgValue::Null),
            (ColumnType::Text, Value::String(s)) => {
                if s.contains('\0') {
                    return Err(self.nul(name));
                }
                Some(PgValue::Text(s.clone()))
            }
            (ColumnType::Number, Value::Number(n)) => n.as_f64().map(PgValue::Float),
            (ColumnType::Integer, Value::Number(n)) => integral(n).map(PgValue::Int),
            (ColumnType::Boolean, Value::Bool(b)) => Some(PgValue::Bool(*b)),
            (ColumnType::Json, v) => {
                if json_has_nul(v) {
                    return Err(self.nul(name));
                }
                Some(PgValue::Json(v.clone()))
            }
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

    /// One value per schema column for `insert`/`upsert`, checked. `_id` in a keyless table's
    /// row is checked and ignored.
    pub(super) fn bind_row(&self, row: &Map<String, Value>) -> Result<Vec<PgValue>, TableError> {
        let columns = &self.schema.columns;
        let mut out: Vec<PgValue> = vec![PgValue::Null; columns.len()];
        for (name, v) in row {
            match columns.iter().position(|c| c.name == *name) {
                Some(i) => out[i] = self.bind(name, columns[i].ty, v)?,
                None if name == ROW_ID && self.key.is_none() => self.schema.check_field(name, v)?,
                None => return Err(self.schema.unknown_column(name)),
            }
        }
        if let Some((i, _)) = self.key {
            if out.get(i).is_none_or(PgValue::is_null) {
                return Err(TableError::InvalidInput(format!(
                    "table `{}`: the row has no value for the key column `{}`",
                    self.name(),
                    self.schema.columns[i].name
                )));
            }
        }
        Ok(out)
    }

    /// ` WHERE a = $1 AND b IS NULL` (empty for `{}`) and its parameters.
    pub(super) fn where_clause(
        &self,
        filter: &Map<String, Value>,
    ) -> Result<(String, Vec<PgValue>), TableError> {
        crate::store::clauses::where_clause(
            &self.schema,
            self.key,
            filter,
            placeholder,
            |name, ty, v| self.bind(name, ty, v),
        )
    }

    /// A key given to `get`/`update`/`delete`, ready to bind; `None` when it cannot match any
    /// row (a non-number key for a keyless or integer-keyed table).
    pub(super) fn key_param(&self, key: &str) -> Option<PgValue> {
        match self.key {
            Some((_, ColumnType::Text)) => {
                if key.contains('\0') {
                    None
                } else {
                    Some(PgValue::Text(key.to_string()))
                }
            }
            _ => key.trim().parse::<i64>().ok().map(PgValue::Int),
        }
    }

    /// Reads a row selected with `self.select`.
    pub(super) fn read_row(
        &self,
        row: &tokio_postgres::Row,
    ) -> Result<Map<String, Value>, TableError> {
        let bad = |e: tokio_postgres::Error| self.storage(&crate::pg::error_text(&e));
        let mut m = Map::new();
        if self.key.is_none() {
            let id: i64 = row.try_get(0).map_err(bad)?;
            m.insert(ROW_ID.to_string(), Value::from(id));
        }
        for (i, c) in self.schema.columns.iter().enumerate() {
            let at = i + 1;
            let v = match c.ty {
                ColumnType::Text => row
                    .try_get::<_, Option<String>>(at)
                    .map_err(bad)?
                    .map(Value::String),
                ColumnType::Json => row.try_get::<_, Option<Value>>(at).map_err(bad)?,
                ColumnType::Number => row
                    .try_get::<_, Option<f64>>(at)
                    .map_err(bad)?
                    .map(number_value),
                ColumnType::Integer => row
                    .try_get::<_, Option<i64>>(at)
                    .map_err(bad)?
                    .map(Value::from),
                ColumnType::Boolean => row
                    .try_get::<_, Option<bool>>(at)
                    .map_err(bad)?
                    .map(Value::Bool),
            };
            m.insert(c.name.clone(), v.unwrap_or(Value::Null));
        }
        Ok(m)
    }
}
