//! What the SQLite store's unit tests share: rows from JSON, small schemas, stores in a
//! temporary folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::SqliteTables;
use crate::schema::{Schemas, TableSchema};
use crate::store::Store;

pub(super) fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

pub(super) fn schema(yaml: &str) -> TableSchema {
    TableSchema::from_yaml(yaml, Path::new("tables/test.yaml")).unwrap()
}

pub(super) fn shipped() -> Arc<Schemas> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tables");
    Arc::new(Schemas::load_dirs(&[dir]).unwrap())
}

pub(super) fn typed() -> TableSchema {
    schema(
        "name: Typed\nkey: id\ncolumns:\n  - { name: id, type: text }\n  - { name: n, type: number }\n  - { name: i, type: integer }\n  - { name: b, type: boolean }\n  - { name: j, type: json }\n  - { name: s, type: text }\nindexes: [s]\n",
    )
}

/// The SQLite tables in `dir` and the [`Store`] over them (for tests that reach into the
/// SQLite side).
pub(super) fn open_both(dir: &Path, schemas: Vec<TableSchema>) -> (Arc<SqliteTables>, Store) {
    let schemas = Arc::new(Schemas::from_schemas(schemas).unwrap());
    let tables = Arc::new(SqliteTables::open(&dir.join("t.db"), schemas).unwrap());
    (tables.clone(), Store::from_backend(tables))
}

pub(super) fn open_with(dir: &Path, schemas: Vec<TableSchema>) -> Store {
    Store::open(
        &dir.join("t.db"),
        Arc::new(Schemas::from_schemas(schemas).unwrap()),
    )
    .unwrap()
}
