//! Creating and migrating the tables of the schemas in an SQLite file: new tables and columns,
//! indexes and a changed key; a removed or retyped column is refused. The schema each table
//! was last migrated to is kept in `_flowhost_tables`.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rusqlite::{Connection, ErrorCode, TransactionBehavior};

use super::connection::sqlite_err;
use super::mapping::{quote, sql_decl, TableSql};
use crate::schema::{Column, Schemas, TableSchema, ROW_ID};
use crate::store::StoreError;

pub(super) const META_TABLE: &str = "_flowhost_tables";

/// What `_flowhost_tables.schema_json` holds: the parts of a schema that shape the table.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct StoredSchema {
    pub(super) name: String,
    pub(super) key: Option<String>,
    pub(super) columns: Vec<Column>,
    pub(super) indexes: Vec<String>,
}

pub(super) fn migrate(
    conn: &mut Connection,
    path: &Path,
    schemas: &Schemas,
    tables: &HashMap<String, TableSql>,
) -> Result<(), StoreError> {
    // Most opens change nothing: that is found out with reads, which never wait for a writer
    // (a run's timeout must not be spent waiting here for another process's run).
    if up_to_date(conn, schemas, tables) {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_err(path, "cannot start the schema migration"))?;
    tx.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {} (name TEXT PRIMARY KEY, schema_json TEXT NOT NULL)",
        quote(META_TABLE)
    ))
    .map_err(sqlite_err(path, "cannot create the table metadata"))?;
    let mut stored: HashMap<String, String> = HashMap::new();
    {
        let mut stmt = tx
            .prepare(&format!(
                "SELECT name, schema_json FROM {}",
                quote(META_TABLE)
            ))
            .map_err(sqlite_err(path, "cannot read the table metadata"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(sqlite_err(path, "cannot read the table metadata"))?;
        for row in rows {
            let (name, json) = row.map_err(sqlite_err(path, "cannot read the table metadata"))?;
            stored.insert(name, json);
        }
    }
    for schema in schemas.iter() {
        let Some(t) = tables.get(&schema.name) else {
            continue;
        };
        migrate_table(&tx, path, t, stored.get(&schema.name).map(String::as_str))?;
    }
    for name in stored.keys() {
        if schemas.get(name).is_none() {
            tracing::info!(table = %name, "the database has a table with no schema file; its rows are kept but no flow can reach them");
        }
    }
    tx.commit()
        .map_err(sqlite_err(path, "cannot commit the schema migration"))
}

/// Whether every table of `schemas` exists and was last migrated to its current schema (read
/// without a lock; any doubt answers `false`).
pub(super) fn up_to_date(
    conn: &Connection,
    schemas: &Schemas,
    tables: &HashMap<String, TableSql>,
) -> bool {
    let read = || -> rusqlite::Result<HashMap<String, String>> {
        let mut stmt = conn.prepare(&format!(
            "SELECT name, schema_json FROM {}",
            quote(META_TABLE)
        ))?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        rows.collect()
    };
    let Ok(stored) = read() else {
        return false;
    };
    schemas.iter().all(|schema| {
        let (Some(t), Some(json)) = (tables.get(&schema.name), stored.get(&schema.name)) else {
            return false;
        };
        let exists = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [&t.sql_name],
                |r| r.get::<_, i64>(0),
            )
            .is_ok_and(|n| n > 0);
        exists && schema_json(schema).is_ok_and(|current| current == *json)
    })
}

/// What `_flowhost_tables.schema_json` records for `schema`.
pub(super) fn schema_json(schema: &TableSchema) -> serde_json::Result<String> {
    serde_json::to_string(&StoredSchema {
        name: schema.name.clone(),
        key: schema.key.clone(),
        columns: schema.columns.clone(),
        indexes: schema.indexes.clone(),
    })
}

pub(super) fn migrate_table(
    tx: &Connection,
    path: &Path,
    t: &TableSql,
    stored_json: Option<&str>,
) -> Result<(), StoreError> {
    let schema = &t.schema;
    let file = if schema.source.as_os_str().is_empty() {
        "its schema".to_string()
    } else {
        schema.source.display().to_string()
    };
    let refuse = |message: String| StoreError::Migration {
        path: path.to_path_buf(),
        message,
    };
    let sql_fail = |what: &str| sqlite_err(path, &format!("table `{}`: {what}", schema.name));

    let stored: Option<StoredSchema> = match stored_json {
        Some(json) => Some(serde_json::from_str(json).map_err(|e| {
            refuse(format!(
                "table `{}`: the schema recorded in `{META_TABLE}` is unreadable ({e})",
                schema.name
            ))
        })?),
        None => None,
    };
    if let Some(old) = &stored {
        for oc in &old.columns {
            match schema.column(&oc.name) {
                None => {
                    return Err(refuse(format!(
                        "table `{}`: column `{}` ({}) is in the database but not in {file}; removing a column is not migrated (put it back, or export the table, drop `{}` and import)",
                        schema.name, oc.name, oc.ty, t.sql_name
                    )))
                }
                Some(nc) if nc.ty != oc.ty => {
                    return Err(refuse(format!(
                        "table `{}`: column `{}` is {} in the database but {} in {file}; changing a column's type is not migrated (restore the type, or add a new column)",
                        schema.name, oc.name, oc.ty, nc.ty
                    )))
                }
                Some(_) => {}
            }
        }
    }

    let exists: bool = tx
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [&t.sql_name],
            |r| r.get::<_, i64>(0),
        )
        .map_err(sql_fail("cannot look up the table"))?
        > 0;
    if exists {
        let mut physical: Vec<String> = Vec::new();
        {
            let mut stmt = tx
                .prepare(&format!("PRAGMA table_info({})", t.ident))
                .map_err(sql_fail("cannot read the columns"))?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(1))
                .map_err(sql_fail("cannot read the columns"))?;
            for r in rows {
                let name = r.map_err(sql_fail("cannot read the columns"))?;
                if name != ROW_ID {
                    physical.push(name);
                }
            }
        }
        if stored.is_none() {
            if let Some(extra) = physical.iter().find(|p| schema.column(p).is_none()) {
                return Err(refuse(format!(
                    "table `{}`: the SQLite table `{}` has a column `{extra}` that is not in {file}; removing a column is not migrated (add it to the schema)",
                    schema.name, t.sql_name
                )));
            }
        }
        for c in &schema.columns {
            if !physical.iter().any(|p| p.eq_ignore_ascii_case(&c.name)) {
                tx.execute_batch(&format!(
                    "ALTER TABLE {} ADD COLUMN {} {}",
                    t.ident,
                    quote(&c.name),
                    sql_decl(c.ty)
                ))
                .map_err(sql_fail(&format!("cannot add column `{}`", c.name)))?;
                tracing::info!(table = %schema.name, column = %c.name, "added a column");
            }
        }
    } else {
        let cols: Vec<String> = schema
            .columns
            .iter()
            .map(|c| format!("{} {}", quote(&c.name), sql_decl(c.ty)))
            .collect();
        // AUTOINCREMENT (row ids never reused) only where `_id` is the key flows see; it costs
        // a little on every insert.
        tx.execute_batch(&format!(
            "CREATE TABLE {} ({} INTEGER PRIMARY KEY{}, {})",
            t.ident,
            quote(ROW_ID),
            if schema.key.is_none() {
                " AUTOINCREMENT"
            } else {
                ""
            },
            cols.join(", ")
        ))
        .map_err(sql_fail("cannot create the table"))?;
    }

    // Indexes: ours are named `uk:<table>:<key>` and `ix:<table>:<column>`.
    let mut existing: HashSet<String> = HashSet::new();
    {
        let mut stmt = tx
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1")
            .map_err(sql_fail("cannot read the indexes"))?;
        let rows = stmt
            .query_map([&t.sql_name], |r| r.get::<_, String>(0))
            .map_err(sql_fail("cannot read the indexes"))?;
        for r in rows {
            existing.insert(r.map_err(sql_fail("cannot read the indexes"))?);
        }
    }
    let mut wanted: Vec<(String, &str, bool)> = Vec::new();
    if let Some(key) = &schema.key {
        wanted.push((format!("uk:{}:{key}", t.sql_name), key.as_str(), true));
    }
    for ix in &schema.indexes {
        if schema.key.as_deref() != Some(ix.as_str()) {
            wanted.push((format!("ix:{}:{ix}", t.sql_name), ix.as_str(), false));
        }
    }
    for name in &existing {
        let ours = name.starts_with("uk:") || name.starts_with("ix:");
        if ours && !wanted.iter().any(|(w, _, _)| w == name) {
            tx.execute_batch(&format!("DROP INDEX {}", quote(name)))
                .map_err(sql_fail(&format!("cannot drop index `{name}`")))?;
        }
    }
    for (name, column, unique) in &wanted {
        if existing.contains(name) {
            continue;
        }
        if *unique {
            let nulls: i64 = tx
                .query_row(
                    &format!(
                        "SELECT count(*) FROM {} WHERE {} IS NULL",
                        t.ident,
                        quote(column)
                    ),
                    [],
                    |r| r.get(0),
                )
                .map_err(sql_fail("cannot check the key column"))?;
            if nulls > 0 {
                return Err(refuse(format!(
                    "table `{}`: cannot make `{column}` the key ({file}): {nulls} rows have no `{column}` (fill them in or clear the table first)",
                    schema.name
                )));
            }
        }
        let sql = format!(
            "CREATE {}INDEX {} ON {} ({})",
            if *unique { "UNIQUE " } else { "" },
            quote(name),
            t.ident,
            quote(column)
        );
        if let Err(e) = tx.execute_batch(&sql) {
            let is_dup = matches!(&e, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation);
            if *unique && is_dup {
                return Err(refuse(format!(
                    "table `{}`: cannot make `{column}` the key ({file}): some rows share the same `{column}` (remove the duplicates first)",
                    schema.name
                )));
            }
            return Err(sql_fail(&format!("cannot create index on `{column}`"))(e));
        }
    }

    let json = schema_json(schema).map_err(|e| {
        refuse(format!(
            "table `{}`: cannot record the schema ({e})",
            schema.name
        ))
    })?;
    tx.execute(
        &format!(
            "INSERT INTO {} (name, schema_json) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET schema_json = excluded.schema_json",
            quote(META_TABLE)
        ),
        [&schema.name, &json],
    )
    .map_err(sql_fail("cannot record the schema"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{json, Map};

    use super::*;
    use crate::store::sqlite::test_support::*;
    use crate::store::{Store, TableError};

    #[test]
    fn migration_adds_columns_and_indexes_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = schema("name: M\nkey: id\ncolumns:\n  - { name: id, type: text }\n  - { name: a, type: text }\n");
        {
            let store = open_with(dir.path(), vec![v1]);
            let mut tx = store.begin().unwrap();
            tx.insert("M", &obj(json!({"id": "k", "a": "old"})))
                .unwrap();
            tx.commit().unwrap();
        }
        let v2 = schema(
            "name: M\nkey: id\ncolumns:\n  - { name: id, type: text }\n  - { name: a, type: text }\n  - { name: c, type: integer }\nindexes: [c]\n",
        );
        let store = open_with(dir.path(), vec![v2.clone()]);
        let mut tx = store.begin().unwrap();
        assert_eq!(
            tx.get("M", "k").unwrap().unwrap(),
            obj(json!({"id": "k", "a": "old", "c": null}))
        );
        tx.update("M", "k", &obj(json!({"c": 3}))).unwrap();
        assert_eq!(tx.find("M", &obj(json!({"c": 3})), None).unwrap().len(), 1);
        tx.commit().unwrap();
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        let idx: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='t_m' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(idx, ["ix:t_m:c", "uk:t_m:id"]);
        drop(store);
        // Reopening with the same schema is a no-op; dropping the index is allowed.
        let v3 = schema(
            "name: M\nkey: id\ncolumns:\n  - { name: id, type: text }\n  - { name: a, type: text }\n  - { name: c, type: integer }\n",
        );
        open_with(dir.path(), vec![v2]);
        open_with(dir.path(), vec![v3]);
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name='ix:t_m:c'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn migration_refuses_removed_and_retyped_columns() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let v1 = schema(
            "name: M\ncolumns:\n  - { name: a, type: text }\n  - { name: b, type: number }\n",
        );
        open_with(dir.path(), vec![v1]);
        let removed = schema("name: M\ncolumns:\n  - { name: a, type: text }\n");
        let err =
            Store::open(&db, Arc::new(Schemas::from_schemas(vec![removed]).unwrap())).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "database `{}`: table `M`: column `b` (number) is in the database but not in tables/test.yaml; removing a column is not migrated (put it back, or export the table, drop `t_m` and import)",
                db.display()
            )
        );
        let retyped = schema(
            "name: M\ncolumns:\n  - { name: a, type: json }\n  - { name: b, type: number }\n",
        );
        let err =
            Store::open(&db, Arc::new(Schemas::from_schemas(vec![retyped]).unwrap())).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "database `{}`: table `M`: column `a` is text in the database but json in tables/test.yaml; changing a column's type is not migrated (restore the type, or add a new column)",
                db.display()
            )
        );
    }

    #[test]
    fn migration_of_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let keyless = schema("name: K\ncolumns:\n  - { name: a, type: text }\n");
        {
            let store = open_with(dir.path(), vec![keyless]);
            let mut tx = store.begin().unwrap();
            tx.insert("K", &obj(json!({"a": "x"}))).unwrap();
            tx.insert("K", &obj(json!({"a": null}))).unwrap();
            tx.commit().unwrap();
        }
        let keyed = schema("name: K\nkey: a\ncolumns:\n  - { name: a, type: text }\n");
        let err = Store::open(
            &db,
            Arc::new(Schemas::from_schemas(vec![keyed.clone()]).unwrap()),
        )
        .unwrap_err();
        assert!(
            err.to_string().ends_with("table `K`: cannot make `a` the key (tables/test.yaml): 1 rows have no `a` (fill them in or clear the table first)"),
            "{err}"
        );
        let conn = Connection::open(&db).unwrap();
        conn.execute("UPDATE t_k SET a = 'x' WHERE a IS NULL", [])
            .unwrap();
        let err = Store::open(
            &db,
            Arc::new(Schemas::from_schemas(vec![keyed.clone()]).unwrap()),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("some rows share the same `a`"),
            "{err}"
        );
        conn.execute("UPDATE t_k SET a = 'y' WHERE _id = 2", [])
            .unwrap();
        let store = open_with(dir.path(), vec![keyed]);
        let mut tx = store.begin().unwrap();
        assert_eq!(tx.get("K", "y").unwrap().unwrap(), obj(json!({"a": "y"})));
        assert!(matches!(
            tx.insert("K", &obj(json!({"a": "y"}))),
            Err(TableError::Conflict(_))
        ));
    }

    #[test]
    fn shipped_tables_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("f.db"), shipped()).unwrap();
        let mut tx = store.begin().unwrap();
        tx.insert(
            "Audit Checkpoints",
            &obj(json!({"LastOffset": "abc", "LastDateTime": "2024-01-01T00:00:00Z", "LastCount": 100})),
        )
        .unwrap();
        let rows = tx.find("Audit Checkpoints", &Map::new(), None).unwrap();
        assert_eq!(rows[0]["LastCount"], json!(100));
        assert_eq!(rows[0]["_id"], json!(1));
        tx.commit().unwrap();
        let conn = Connection::open(dir.path().join("f.db")).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let names: Vec<String> = conn
            .prepare("SELECT name FROM _flowhost_tables ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(names.len(), 6);
        assert_eq!(names[1], "Audit Events");
        // Values with SQL in them are just values.
        let mut tx = store.begin().unwrap();
        let evil = "x'); DROP TABLE t_audit_events; --";
        tx.insert("Audit Events", &obj(json!({"id": evil, "type": "\""})))
            .unwrap();
        assert_eq!(
            tx.get("Audit Events", evil).unwrap().unwrap()["type"],
            json!("\"")
        );
        tx.commit().unwrap();
    }
}
