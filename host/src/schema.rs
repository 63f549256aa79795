//! Table schemas: loading `tables/*.yaml`, checking them, and checking rows against them.
//!
//! This module owns the YAML format of a table schema (see `docs/manifests.md`), every error a
//! bad schema file can get (one line naming the file, the field and the fix), and the rules for
//! which JSON values a column accepts. It knows nothing about SQLite: `store.rs` maps a
//! [`TableSchema`] onto a physical table and uses the checks here before binding values.
//!
//! Column rules (the same for `insert`, `upsert`, `update` and `find` filters):
//! - `text` takes strings; `number` takes any JSON number (a string holding digits is *not* a
//!   number); `integer` takes integral numbers (`3` or `3.0`); `boolean` takes `true`/`false`;
//!   `json` takes any JSON value.
//! - `null` is accepted everywhere except for the key column of a keyed table.
//! - `_id` names the row id of a keyless table; it is accepted in filters and `update` changes
//!   of keyless tables (and ignored in inserted rows, so that a row read back can be written
//!   again), and is an unknown column for keyed tables.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::store::TableError;

/// The name of the row id column of every table; flows see it only for keyless tables.
pub const ROW_ID: &str = "_id";

/// The type of a column, as written in a schema file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Text,
    Number,
    Integer,
    Boolean,
    Json,
}

impl ColumnType {
    /// Every type, in the order the error messages list them.
    pub const ALL: [ColumnType; 5] = [
        ColumnType::Text,
        ColumnType::Number,
        ColumnType::Integer,
        ColumnType::Boolean,
        ColumnType::Json,
    ];

    /// The name used in schema files.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Text => "text",
            ColumnType::Number => "number",
            ColumnType::Integer => "integer",
            ColumnType::Boolean => "boolean",
            ColumnType::Json => "json",
        }
    }

    /// Parses a type name as written in a schema file (case-insensitive).
    pub fn parse(name: &str) -> Option<ColumnType> {
        ColumnType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether `value` is acceptable for a column of this type (`null` aside, which the caller
    /// decides on).
    pub fn accepts(self, value: &Value) -> bool {
        match (self, value) {
            (ColumnType::Json, _) => true,
            (ColumnType::Text, Value::String(_)) => true,
            (ColumnType::Number, Value::Number(_)) => true,
            (ColumnType::Integer, Value::Number(n)) => integral(n).is_some(),
            (ColumnType::Boolean, Value::Bool(_)) => true,
            _ => false,
        }
    }

    fn expected(self) -> &'static str {
        match self {
            ColumnType::Text => "a string",
            ColumnType::Number => "a number",
            ColumnType::Integer => "an integer",
            ColumnType::Boolean => "true or false",
            ColumnType::Json => "any JSON value",
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The value of an integral JSON number as `i64` (`3` and `3.0` are integral, `3.5` is not,
/// and numbers outside the `i64` range are refused).
pub fn integral(n: &serde_json::Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    if n.is_u64() {
        return None; // larger than i64::MAX
    }
    let f = n.as_f64()?;
    // 2^63 is exactly representable; anything at or beyond it does not fit.
    if f.fract() == 0.0 && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f)
    {
        Some(f as i64)
    } else {
        None
    }
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
}

/// A table schema, as loaded from one `tables/*.yaml` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    /// The name flows use (case-sensitive).
    pub name: String,
    pub description: String,
    /// The key column; `None` means rows are keyed by their row id (`_id`).
    pub key: Option<String>,
    pub columns: Vec<Column>,
    /// Extra indexed columns (for equality lookups in `find`).
    pub indexes: Vec<String>,
    /// `keep_on_failure: true`: the rows a run inserts here are written even when the run
    /// fails, after its rollback, in a transaction of their own (a log a failed run must
    /// leave). Its updates and deletes of this table still roll back. Default `false`.
    #[serde(default)]
    pub keep_on_failure: bool,
    /// The file the schema came from (empty for schemas built in code).
    #[serde(skip)]
    pub source: PathBuf,
}

/// Why a schema file (or a set of them) was refused. Every message is one line that names the
/// file, the field and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("table schema folder `{}` does not exist (create it or fix the `tables:` setting)", dir.display())]
    MissingDir { dir: PathBuf },
    #[error("cannot read table schema folder `{}`: {source}", dir.display())]
    ReadDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: cannot read the file: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Bad YAML, a missing field or an unknown field (with serde_yaml's line and column).
    #[error("{}: {message}", path.display())]
    Yaml { path: PathBuf, message: String },
    #[error("{}: `name` is empty (give the table the name flows use)", path.display())]
    EmptyName { path: PathBuf },
    #[error("{}: `columns` is empty (a table needs at least one column)", path.display())]
    NoColumns { path: PathBuf },
    #[error("{}: column {position} has an empty `name`", path.display())]
    EmptyColumnName { path: PathBuf, position: usize },
    #[error("{}: column `{column}`: the name `_id` is reserved for the row id (rename the column)", path.display())]
    ReservedColumn { path: PathBuf, column: String },
    #[error("{}: column `{column}`: unknown type `{ty}` (expected text, number, integer, boolean or json)", path.display())]
    UnknownType {
        path: PathBuf,
        column: String,
        ty: String,
    },
    #[error("{}: column `{column}` is listed twice (column names are case-insensitive; remove or rename one)", path.display())]
    DuplicateColumn { path: PathBuf, column: String },
    #[error("{}: key `{key}` is not one of the columns{}", path.display(), did_you_mean(suggestion))]
    KeyNotAColumn {
        path: PathBuf,
        key: String,
        suggestion: Option<String>,
    },
    #[error("{}: key `{key}` is a {ty} column (a key must be a text or integer column)", path.display())]
    KeyType {
        path: PathBuf,
        key: String,
        ty: ColumnType,
    },
    #[error("{}: index `{index}` is not one of the columns{}", path.display(), did_you_mean(suggestion))]
    UnknownIndex {
        path: PathBuf,
        index: String,
        suggestion: Option<String>,
    },
    #[error("table `{name}` is defined twice: in {} and in {} (rename or remove one)", first.display(), second.display())]
    DuplicateTable {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("tables `{first_name}` ({}) and `{second_name}` ({}) would share the SQLite table `{sql_name}` (names differing only in case or punctuation are not allowed; rename one)", first.display(), second.display())]
    SqlNameClash {
        first_name: String,
        first: PathBuf,
        second_name: String,
        second: PathBuf,
        sql_name: String,
    },
}

/// A name from a schema file as an error shows it: on one line (see [`crate::yaml::one_line`]).
fn esc(name: &str) -> String {
    crate::yaml::one_line(name)
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => String::new(),
    }
}

/// The schema file as written, before it is checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchema {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    key: Option<String>,
    columns: Option<Vec<RawColumn>>,
    #[serde(default)]
    indexes: Option<Vec<String>>,
    #[serde(default)]
    keep_on_failure: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    name: String,
    #[serde(rename = "type")]
    ty: String,
}

impl TableSchema {
    /// Parses and checks one schema file's text; `source` names the file in errors.
    pub fn from_yaml(text: &str, source: &Path) -> Result<TableSchema, SchemaError> {
        let raw: RawSchema = crate::yaml::from_str(text).map_err(|mut message| {
            if message.starts_with("missing field `name`") {
                message.push_str(" (add `name:` with the table name flows use)");
            }
            SchemaError::Yaml {
                path: source.to_path_buf(),
                message,
            }
        })?;
        let mut columns = Vec::new();
        for (i, c) in raw.columns.unwrap_or_default().into_iter().enumerate() {
            let ty = ColumnType::parse(&c.ty).ok_or_else(|| SchemaError::UnknownType {
                path: source.to_path_buf(),
                column: esc(&c.name),
                ty: esc(&c.ty),
            });
            if c.name.trim().is_empty() {
                return Err(SchemaError::EmptyColumnName {
                    path: source.to_path_buf(),
                    position: i + 1,
                });
            }
            columns.push(Column {
                name: c.name,
                ty: ty?,
            });
        }
        let schema = TableSchema {
            name: raw.name,
            description: raw.description.unwrap_or_default(),
            key: raw.key,
            columns,
            indexes: raw.indexes.unwrap_or_default(),
            keep_on_failure: raw.keep_on_failure,
            source: source.to_path_buf(),
        };
        schema.validate()?;
        Ok(schema)
    }

    /// Reads and checks one schema file.
    pub fn load_file(path: &Path) -> Result<TableSchema, SchemaError> {
        let text = std::fs::read_to_string(path).map_err(|source| SchemaError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        TableSchema::from_yaml(&text, path)
    }

    /// Checks the rules a schema file must follow (also for schemas built in code).
    pub fn validate(&self) -> Result<(), SchemaError> {
        let path = || self.source.clone();
        if self.name.trim().is_empty() {
            return Err(SchemaError::EmptyName { path: path() });
        }
        if self.columns.is_empty() {
            return Err(SchemaError::NoColumns { path: path() });
        }
        let mut seen: Vec<String> = Vec::with_capacity(self.columns.len());
        for (i, c) in self.columns.iter().enumerate() {
            if c.name.trim().is_empty() {
                return Err(SchemaError::EmptyColumnName {
                    path: path(),
                    position: i + 1,
                });
            }
            if c.name.eq_ignore_ascii_case(ROW_ID) {
                return Err(SchemaError::ReservedColumn {
                    path: path(),
                    column: esc(&c.name),
                });
            }
            let lower = c.name.to_lowercase();
            if seen.contains(&lower) {
                return Err(SchemaError::DuplicateColumn {
                    path: path(),
                    column: esc(&c.name),
                });
            }
            seen.push(lower);
        }
        if let Some(key) = &self.key {
            match self.column(key) {
                None => {
                    return Err(SchemaError::KeyNotAColumn {
                        path: path(),
                        key: esc(key),
                        suggestion: closest(key, self.column_names()).map(esc),
                    })
                }
                Some(c) if !matches!(c.ty, ColumnType::Text | ColumnType::Integer) => {
                    return Err(SchemaError::KeyType {
                        path: path(),
                        key: esc(key),
                        ty: c.ty,
                    })
                }
                Some(_) => {}
            }
        }
        for index in &self.indexes {
            if self.column(index).is_none() {
                return Err(SchemaError::UnknownIndex {
                    path: path(),
                    index: esc(index),
                    suggestion: closest(index, self.column_names()).map(esc),
                });
            }
        }
        Ok(())
    }

    /// The column called `name` (exact, case-sensitive).
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The column names, in schema order.
    pub fn column_names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|c| c.name.as_str())
    }

    /// The key column, if the table has one.
    pub fn key_column(&self) -> Option<&Column> {
        self.key.as_deref().and_then(|k| self.column(k))
    }

    /// Whether the table is keyed by its row id (`_id`).
    pub fn is_keyless(&self) -> bool {
        self.key.is_none()
    }

    /// Checks a row given to `insert`/`upsert`/`insert-many`: every field must be a column (or
    /// `_id` for a keyless table, which must then be an integer or null), every value must fit
    /// its column, and a keyed table's key must be present and not null.
    pub fn check_row(&self, row: &Map<String, Value>) -> Result<(), TableError> {
        for (name, value) in row {
            self.check_field(name, value)?;
        }
        if let Some(key) = &self.key {
            if row.get(key).is_none_or(Value::is_null) {
                return Err(TableError::InvalidInput(format!(
                    "table `{}`: the row has no value for the key column `{key}`",
                    self.name
                )));
            }
        }
        Ok(())
    }

    /// Checks the changes given to `update`: every field must be a column (or `_id` for a
    /// keyless table), values must fit their columns, and the key column cannot be set to null.
    pub fn check_changes(&self, changes: &Map<String, Value>) -> Result<(), TableError> {
        for (name, value) in changes {
            self.check_field(name, value)?;
            if value.is_null() && self.key.as_deref() == Some(name.as_str()) {
                return Err(TableError::InvalidInput(format!(
                    "table `{}`: the key column `{name}` cannot be set to null",
                    self.name
                )));
            }
        }
        Ok(())
    }

    /// Checks a `find`/`count` filter: every field must be a column (or `_id` for a keyless
    /// table) and every value must fit its column; `null` matches rows where the column is unset.
    pub fn check_filter(&self, filter: &Map<String, Value>) -> Result<(), TableError> {
        for (name, value) in filter {
            self.check_field(name, value)?;
        }
        Ok(())
    }

    /// Checks one `name: value` pair against the schema (null is always fine here).
    pub fn check_field(&self, name: &str, value: &Value) -> Result<(), TableError> {
        let ty = match self.column(name) {
            Some(c) => c.ty,
            None if name == ROW_ID && self.is_keyless() => ColumnType::Integer,
            None => return Err(self.unknown_column(name)),
        };
        if value.is_null() || ty.accepts(value) {
            Ok(())
        } else {
            Err(self.wrong_type(name, ty, value))
        }
    }

    /// The error for a field that is not a column, with the closest column name.
    pub fn unknown_column(&self, name: &str) -> TableError {
        let mut candidates: Vec<&str> = self.column_names().collect();
        if self.is_keyless() {
            candidates.push(ROW_ID);
        }
        let hint = match closest(name, candidates) {
            Some(s) => format!(" (did you mean `{s}`?)"),
            None => format!(
                " (columns: {})",
                self.column_names().collect::<Vec<_>>().join(", ")
            ),
        };
        TableError::InvalidInput(format!(
            "table `{}` has no column `{name}`{hint}",
            self.name
        ))
    }

    fn wrong_type(&self, column: &str, ty: ColumnType, value: &Value) -> TableError {
        let got = match value {
            Value::Null => "null".to_string(),
            Value::Bool(b) => format!("the boolean {b}"),
            Value::Number(n) => format!("the number {n}"),
            Value::String(s) => format!("the string {}", preview(s)),
            Value::Array(_) => "an array".to_string(),
            Value::Object(_) => "an object".to_string(),
        };
        let extra = match (ty, value) {
            (ColumnType::Integer, Value::Number(_)) => " (not integral or out of range)",
            _ => "",
        };
        TableError::InvalidInput(format!(
            "table `{}`, column `{column}` ({ty}): expected {}, got {got}{extra}",
            self.name,
            ty.expected()
        ))
    }
}

/// A short, quoted preview of a string for error messages.
fn preview(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut:?}…")
    }
}

/// The closest of `candidates` to `name`, for "did you mean" hints: a case-insensitive match
/// first, then a containing name, then the most similar name if it is similar enough.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_lowercase();
    let mut best: Option<(f64, &'a str)> = None;
    for c in candidates {
        let cl = c.to_lowercase();
        let score = if cl == lower {
            2.0
        } else if lower.len() >= 3 && cl.len() >= 3 && (cl.contains(&lower) || lower.contains(&cl))
        {
            1.5
        } else {
            strsim::jaro_winkler(&lower, &cl)
                .max(strsim::normalized_damerau_levenshtein(&lower, &cl))
        };
        if score >= 0.66 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Every table schema the host knows, by name (case-sensitive).
#[derive(Debug, Clone, Default)]
pub struct Schemas {
    by_name: BTreeMap<String, TableSchema>,
}

impl Schemas {
    /// Loads every `*.yaml`/`*.yml` file (not starting with `.`) of each folder, in file-name
    /// order. The first bad file, missing folder or duplicate table name is an error.
    pub fn load_dirs(dirs: &[PathBuf]) -> Result<Schemas, SchemaError> {
        let mut all = Vec::new();
        for dir in dirs {
            if !dir.is_dir() {
                return Err(SchemaError::MissingDir { dir: dir.clone() });
            }
            let entries = std::fs::read_dir(dir).map_err(|source| SchemaError::ReadDir {
                dir: dir.clone(),
                source,
            })?;
            let mut files = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|source| SchemaError::ReadDir {
                    dir: dir.clone(),
                    source,
                })?;
                let path = entry.path();
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let is_yaml = name.ends_with(".yaml") || name.ends_with(".yml");
                if is_yaml && !name.starts_with('.') && path.is_file() {
                    files.push(path);
                }
            }
            files.sort();
            for path in files {
                all.push(TableSchema::load_file(&path)?);
            }
        }
        Schemas::from_schemas(all)
    }

    /// The schemas of the folders `dirs`, then those of the built-in package
    /// ([`crate::package`]) that no folder replaces: a folder's table of the same name (or the
    /// same SQL name) wins over the built-in one.
    pub fn load_with_package(dirs: &[PathBuf]) -> Result<Schemas, SchemaError> {
        let mine = Schemas::load_dirs(dirs)?;
        let taken: std::collections::BTreeSet<String> =
            mine.by_name.keys().map(|n| sql_table_name(n)).collect();
        let mut all: Vec<TableSchema> = mine.by_name.into_values().collect();
        for t in crate::package::tables() {
            let schema = TableSchema::from_yaml(t.text, &t.path())?;
            if !taken.contains(&sql_table_name(&schema.name)) {
                all.push(schema);
            }
        }
        Schemas::from_schemas(all)
    }

    /// Builds the set from schemas made in code (each is validated).
    pub fn from_schemas(schemas: Vec<TableSchema>) -> Result<Schemas, SchemaError> {
        let mut by_name: BTreeMap<String, TableSchema> = BTreeMap::new();
        let mut by_sql: BTreeMap<String, (String, PathBuf)> = BTreeMap::new();
        for schema in schemas {
            schema.validate()?;
            if let Some(first) = by_name.get(&schema.name) {
                return Err(SchemaError::DuplicateTable {
                    name: esc(&schema.name),
                    first: first.source.clone(),
                    second: schema.source.clone(),
                });
            }
            let sql = sql_table_name(&schema.name);
            if let Some((first_name, first)) = by_sql.get(&sql) {
                return Err(SchemaError::SqlNameClash {
                    first_name: esc(first_name),
                    first: first.clone(),
                    second_name: esc(&schema.name),
                    second: schema.source.clone(),
                    sql_name: sql,
                });
            }
            by_sql.insert(sql, (schema.name.clone(), schema.source.clone()));
            by_name.insert(schema.name.clone(), schema);
        }
        Ok(Schemas { by_name })
    }

    /// The schema of table `name` (case-sensitive).
    pub fn get(&self, name: &str) -> Option<&TableSchema> {
        self.by_name.get(name)
    }

    /// The table names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// The schemas, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &TableSchema> {
        self.by_name.values()
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The table name closest to `name`, for "did you mean" hints.
    pub fn suggest(&self, name: &str) -> Option<&str> {
        closest(name, self.names())
    }
}

/// The SQLite table that holds table `name`: `t_` and the name in lower case with every
/// character other than an ASCII letter or digit replaced by `_` (`Audit Events` →
/// `t_audit_events`). [`Schemas::from_schemas`] refuses two tables with the same SQLite name.
pub fn sql_table_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push_str("t_");
    for ch in name.chars() {
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push('_');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_table_replaces_the_built_in_one_of_the_same_name() {
        let only = |names: Vec<&str>| names.into_iter().map(String::from).collect::<Vec<_>>();
        let builtin = Schemas::load_with_package(&[]).unwrap();
        assert_eq!(
            only(builtin.names().collect()),
            [
                "Audit Checkpoints",
                "Audit Events",
                "Audit Related Objects",
                "Environment Variables",
                "Execution Log",
                "Rejected Events"
            ]
        );
        assert!(builtin
            .get("Audit Events")
            .unwrap()
            .source
            .starts_with("built-in"));
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("mine.yaml"),
            "name: Audit Events\ncolumns:\n  - {name: id, type: text}\n",
        )
        .unwrap();
        let s = Schemas::load_with_package(&[d.path().to_path_buf()]).unwrap();
        let mine = s.get("Audit Events").unwrap();
        assert_eq!(mine.columns.len(), 1);
        assert_eq!(mine.source, d.path().join("mine.yaml"));
        assert_eq!(s.names().count(), 6, "the other built-in tables stay");
    }
    use serde_json::json;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn shipped_schemas_load() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tables");
        let s = Schemas::load_dirs(&[dir]).unwrap();
        let names: Vec<&str> = s.names().collect();
        assert_eq!(
            names,
            [
                "Audit Checkpoints",
                "Audit Events",
                "Audit Related Objects",
                "Environment Variables",
                "Execution Log",
                "Rejected Events"
            ]
        );
        let ev = s.get("Audit Events").unwrap();
        assert_eq!(ev.key.as_deref(), Some("id"));
        assert_eq!(ev.columns.len(), 14);
        assert_eq!(ev.indexes, ["timestamp"]);
        assert!(ev.source.ends_with("audit-events.yaml"));
        let cp = s.get("Audit Checkpoints").unwrap();
        assert!(cp.is_keyless());
        assert_eq!(cp.column("LastCount").unwrap().ty, ColumnType::Number);
        assert!(s.get("audit events").is_none(), "names are case-sensitive");
        assert_eq!(s.suggest("audit events"), Some("Audit Events"));
        assert_eq!(s.suggest("Audit Event"), Some("Audit Events"));
        assert_eq!(s.suggest("Executon Log"), Some("Execution Log"));
        assert_eq!(s.suggest("zzzz"), None);
        // Only the Execution Log keeps a failed run's inserts.
        let kept: Vec<&str> = s
            .names()
            .filter(|n| s.get(n).is_some_and(|t| t.keep_on_failure))
            .collect();
        assert_eq!(kept, ["Execution Log"]);
    }

    #[test]
    fn schema_errors_as_text() {
        let f = "tables/x.yaml";
        let cases: &[(&str, &str)] = &[
            (
                "name: X\ncolumns:\n  - { name: LastCount, type: decimal }\n",
                "tables/x.yaml: column `LastCount`: unknown type `decimal` (expected text, number, integer, boolean or json)",
            ),
            (
                "name: X\nkey: idd\ncolumns:\n  - { name: id, type: text }\n",
                "tables/x.yaml: key `idd` is not one of the columns (did you mean `id`?)",
            ),
            (
                "name: X\nkey: zzzz\ncolumns:\n  - { name: id, type: text }\n",
                "tables/x.yaml: key `zzzz` is not one of the columns",
            ),
            (
                "name: X\nkey: n\ncolumns:\n  - { name: n, type: number }\n",
                "tables/x.yaml: key `n` is a number column (a key must be a text or integer column)",
            ),
            (
                "name: X\ncolumns:\n  - { name: a, type: text }\n  - { name: A, type: text }\n",
                "tables/x.yaml: column `A` is listed twice (column names are case-insensitive; remove or rename one)",
            ),
            (
                "name: X\ncolumns:\n  - { name: a, type: text }\nindexs: [a]\n",
                "tables/x.yaml: unknown field `indexs` (did you mean `indexes`?), expected one of `name`, `description`, `key`, `columns`, `indexes`, `keep_on_failure` at line 4 column 1",
            ),
            (
                "name: X\ncolumns:\n  - { name: a, typ: text }\n",
                "tables/x.yaml: columns[0]: unknown field `typ` (did you mean `type`?), expected `name` or `type` at line 3 column 16",
            ),
            (
                "name: ''\ncolumns:\n  - { name: a, type: text }\n",
                "tables/x.yaml: `name` is empty (give the table the name flows use)",
            ),
            (
                "description: no name\ncolumns:\n  - { name: a, type: text }\n",
                "tables/x.yaml: missing field `name` (add `name:` with the table name flows use)",
            ),
            ("name: X\n", "tables/x.yaml: `columns` is empty (a table needs at least one column)"),
            (
                "name: X\ncolumns:\n  - { name: timestamp, type: text }\nindexes: [timestmp]\n",
                "tables/x.yaml: index `timestmp` is not one of the columns (did you mean `timestamp`?)",
            ),
            (
                "name: X\ncolumns:\n  - { name: _id, type: integer }\n",
                "tables/x.yaml: column `_id`: the name `_id` is reserved for the row id (rename the column)",
            ),
            (
                "name: X\ncolumns:\n  - { name: '', type: text }\n",
                "tables/x.yaml: column 1 has an empty `name`",
            ),
            (
                "name: [X\n",
                "tables/x.yaml: name: invalid type: sequence, expected a string at line 1 column 7",
            ),
            (
                "name: 'X\ncolumns: []\n",
                "tables/x.yaml: found unexpected end of stream at line 3 column 1, while scanning a quoted scalar at line 1 column 7",
            ),
        ];
        for (yaml, want) in cases {
            let err = TableSchema::from_yaml(yaml, &p(f)).unwrap_err().to_string();
            assert_eq!(&err, want, "for YAML:\n{yaml}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn type_names_are_case_insensitive_and_description_optional() {
        let s = TableSchema::from_yaml(
            "name: X\ndescription:\ncolumns:\n  - { name: a, type: Text }\n  - { name: b, type: JSON }\n",
            &p("x.yaml"),
        )
        .unwrap();
        assert_eq!(s.columns[0].ty, ColumnType::Text);
        assert_eq!(s.columns[1].ty, ColumnType::Json);
        assert_eq!(s.description, "");
        assert!(s.indexes.is_empty());
        assert!(!s.keep_on_failure);
        let kept = TableSchema::from_yaml(
            "name: X\nkeep_on_failure: true\ncolumns:\n  - { name: a, type: text }\n",
            &p("x.yaml"),
        )
        .unwrap();
        assert!(kept.keep_on_failure);
        let err = TableSchema::from_yaml(
            "name: X\nkeep_on_failure: yes please\ncolumns:\n  - { name: a, type: text }\n",
            &p("x.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("x.yaml: keep_on_failure"), "{err}");
    }

    #[test]
    fn dir_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nope");
        let err = Schemas::load_dirs(std::slice::from_ref(&missing))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "table schema folder `{}` does not exist (create it or fix the `tables:` setting)",
                missing.display()
            )
        );

        let a = tmp.path().join("a");
        let b = tmp.path().join("b");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(
            a.join("one.yaml"),
            "name: T\ncolumns: [{ name: x, type: text }]\n",
        )
        .unwrap();
        std::fs::write(
            b.join("two.yml"),
            "name: T\ncolumns: [{ name: y, type: text }]\n",
        )
        .unwrap();
        std::fs::write(b.join("notes.txt"), "ignored").unwrap();
        std::fs::write(b.join(".swap.yaml"), "ignored: [").unwrap();
        let err = Schemas::load_dirs(&[a.clone(), b.clone()])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "table `T` is defined twice: in {} and in {} (rename or remove one)",
                a.join("one.yaml").display(),
                b.join("two.yml").display()
            )
        );

        std::fs::write(
            b.join("two.yml"),
            "name: t\ncolumns: [{ name: y, type: text }]\n",
        )
        .unwrap();
        let err = Schemas::load_dirs(&[a.clone(), b.clone()])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("tables `T` ("), "{err}");
        assert!(err.contains("would share the SQLite table `t_t`"), "{err}");

        std::fs::write(
            b.join("two.yml"),
            "name: U\ncolumns: [{ name: y, type: text }]\n",
        )
        .unwrap();
        let s = Schemas::load_dirs(&[a, b]).unwrap();
        assert_eq!(s.names().collect::<Vec<_>>(), ["T", "U"]);
    }

    #[test]
    fn sql_names() {
        assert_eq!(sql_table_name("Audit Events"), "t_audit_events");
        assert_eq!(
            sql_table_name("a\"; DROP TABLE x; --"),
            "t_a___drop_table_x____"
        );
        assert_eq!(sql_table_name("Größe"), "t_gr__e");
    }

    fn events() -> TableSchema {
        TableSchema::from_yaml(
            "name: Events\nkey: id\ncolumns:\n  - { name: id, type: text }\n  - { name: n, type: number }\n  - { name: i, type: integer }\n  - { name: b, type: boolean }\n  - { name: j, type: json }\n  - { name: timestamp, type: text }\n",
            &p("events.yaml"),
        )
        .unwrap()
    }

    #[test]
    fn row_validation() {
        let t = events();
        let ok = |v: Value| t.check_row(&obj(v)).map_err(|e| e.to_string());
        assert_eq!(ok(json!({"id": "a"})), Ok(()));
        assert_eq!(
            ok(json!({"id": "a", "n": 1.5, "i": 3, "b": true, "j": {"x": [1]}, "timestamp": null})),
            Ok(())
        );
        assert_eq!(ok(json!({"id": "a", "i": 3.0})), Ok(()));
        assert_eq!(ok(json!({"id": "a", "n": -2})), Ok(()));
        assert_eq!(ok(json!({"id": "a", "j": "text is json too"})), Ok(()));
        let cases: &[(Value, &str)] = &[
            (json!({"id": "a", "tiemstamp": "x"}), "table `Events` has no column `tiemstamp` (did you mean `timestamp`?)"),
            (json!({"id": "a", "zzz": 1}), "table `Events` has no column `zzz` (columns: id, n, i, b, j, timestamp)"),
            (json!({"id": "a", "_id": 1}), "table `Events` has no column `_id` (did you mean `id`?)"),
            (json!({"id": "a", "n": "12"}), "table `Events`, column `n` (number): expected a number, got the string \"12\""),
            (json!({"id": 5}), "table `Events`, column `id` (text): expected a string, got the number 5"),
            (json!({"id": "a", "i": 1.5}), "table `Events`, column `i` (integer): expected an integer, got the number 1.5 (not integral or out of range)"),
            (json!({"id": "a", "i": 18446744073709551615u64}), "table `Events`, column `i` (integer): expected an integer, got the number 18446744073709551615 (not integral or out of range)"),
            (json!({"id": "a", "b": 1}), "table `Events`, column `b` (boolean): expected true or false, got the number 1"),
            (json!({"id": "a", "b": "true"}), "table `Events`, column `b` (boolean): expected true or false, got the string \"true\""),
            (json!({"id": "a", "timestamp": ["x"]}), "table `Events`, column `timestamp` (text): expected a string, got an array"),
            (json!({"n": 1}), "table `Events`: the row has no value for the key column `id`"),
            (json!({"id": null}), "table `Events`: the row has no value for the key column `id`"),
        ];
        for (row, want) in cases {
            let err = t.check_row(&obj(row.clone())).unwrap_err();
            assert!(matches!(err, TableError::InvalidInput(_)), "{err:?}");
            assert_eq!(err.to_string(), *want, "row {row}");
        }
        let long = "x".repeat(100);
        let err = ok(json!({"id": "a", "n": long})).unwrap_err();
        assert!(
            err.ends_with("got the string \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"…"),
            "{err}"
        );
    }

    #[test]
    fn changes_and_filters() {
        let t = events();
        assert!(t
            .check_changes(&obj(json!({"n": null, "b": false})))
            .is_ok());
        assert_eq!(
            t.check_changes(&obj(json!({"id": null})))
                .unwrap_err()
                .to_string(),
            "table `Events`: the key column `id` cannot be set to null"
        );
        assert!(t.check_filter(&obj(json!({"id": null, "n": 2}))).is_ok());
        assert!(t.check_filter(&obj(json!({"_id": 1}))).is_err());

        let keyless = TableSchema::from_yaml(
            "name: Log\ncolumns:\n  - { name: note, type: text }\n",
            &p("log.yaml"),
        )
        .unwrap();
        assert!(keyless.check_filter(&obj(json!({"_id": 3}))).is_ok());
        assert!(keyless
            .check_changes(&obj(json!({"_id": 3, "note": "x"})))
            .is_ok());
        assert!(keyless
            .check_row(&obj(json!({"_id": 3, "note": "x"})))
            .is_ok());
        assert_eq!(
            keyless
                .check_filter(&obj(json!({"_id": "3"})))
                .unwrap_err()
                .to_string(),
            "table `Log`, column `_id` (integer): expected an integer, got the string \"3\""
        );
        assert_eq!(
            keyless
                .check_filter(&obj(json!({"_di": 3})))
                .unwrap_err()
                .to_string(),
            "table `Log` has no column `_di` (did you mean `_id`?)"
        );
    }

    #[test]
    fn closest_names() {
        let names = ["M10", "S20", "U00", "Audit Events"];
        assert_eq!(closest("m10", names), Some("M10"));
        assert_eq!(closest("M1O", names), Some("M10"));
        assert_eq!(closest("Events", names), Some("Audit Events"));
        assert_eq!(closest("qqqqqq", names), None);
    }
}
