//! Creating and migrating the tables of [`Schemas`] in PostgreSQL, with the rules of the
//! SQLite store: new tables are created, new columns added (`ALTER TABLE ADD COLUMN`), our
//! indexes (`uk:<table>:<key>`, `ix:<table>:<column>`) created or dropped, and a removed or
//! retyped column refused with the same text naming the table, column and schema file. The
//! schema each table was last migrated to is kept in `_flowhost_tables(name, schema_json)`.
//!
//! Several nodes may open the same database at once: the whole migration is one transaction
//! that first takes a transaction-level advisory lock, so they migrate one after the other
//! (the second finds the work done).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use serde_json::json;

use super::mapping::{sql_decl, stored_name, PgTable};
use crate::pg::Pg;
use crate::schema::{Column, Schemas, TableSchema, ROW_ID};
use crate::store::clauses::quote;
use crate::store::StoreError;

/// The table recording each table's last migrated schema (the SQLite store's name).
pub(super) const META_TABLE: &str = "_flowhost_tables";
/// The advisory lock key that serialises migrations (any constant of ours; `flowmigr`).
const MIGRATION_LOCK: i64 = 0x666c_6f77_6d69_6772;

/// What `_flowhost_tables.schema_json` records for `schema` (the fields the SQLite store
/// records: name, key, columns, indexes).
fn schema_json(schema: &TableSchema) -> String {
    json!({
        "name": schema.name,
        "key": schema.key,
        "columns": schema.columns,
        "indexes": schema.indexes,
    })
    .to_string()
}

#[derive(serde::Deserialize)]
struct StoredSchema {
    columns: Vec<Column>,
}

/// One migration transaction's connection and how to word its errors.
struct Migration<'a> {
    pg: &'a Pg,
    client: &'a tokio_postgres::Client,
}

impl Migration<'_> {
    fn fail(&self, context: &str) -> impl FnOnce(tokio_postgres::Error) -> StoreError + '_ {
        let context = context.to_string();
        move |e| StoreError::Postgres(self.pg.error(&context, &e))
    }

    fn refuse(&self, message: String) -> StoreError {
        StoreError::Migration {
            path: PathBuf::from(self.pg.url().shown()),
            message,
        }
    }

    fn batch(&self, sql: &str, context: &str) -> Result<(), StoreError> {
        self.pg
            .wait(self.client.batch_execute(sql))
            .map_err(self.fail(context))
    }

    fn strings(&self, sql: &str, arg: &str, context: &str) -> Result<Vec<String>, StoreError> {
        let rows = self
            .pg
            .wait(self.client.query(sql, &[&arg]))
            .map_err(self.fail(context))?;
        rows.iter()
            .map(|r| r.try_get::<_, String>(0))
            .collect::<Result<_, _>>()
            .map_err(self.fail(context))
    }
}

/// Creates or migrates every table of `schemas` in one transaction.
pub(super) fn migrate(
    pg: &Pg,
    schemas: &Schemas,
    tables: &HashMap<String, PgTable>,
) -> Result<(), StoreError> {
    let conn = pg.get()?;
    let m = Migration { pg, client: &conn };
    let result = (|| {
        m.batch(
            &format!(
                "BEGIN; SELECT pg_advisory_xact_lock({MIGRATION_LOCK}); \
                 CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, schema_json text NOT NULL)",
                quote(META_TABLE)
            ),
            "cannot start the schema migration",
        )?;
        let rows = pg
            .wait(conn.query(
                &format!("SELECT name, schema_json FROM {}", quote(META_TABLE)),
                &[],
            ))
            .map_err(m.fail("cannot read the table metadata"))?;
        let mut stored: HashMap<String, String> = HashMap::new();
        for r in &rows {
            let name: String = r
                .try_get(0)
                .map_err(m.fail("cannot read the table metadata"))?;
            let json: String = r
                .try_get(1)
                .map_err(m.fail("cannot read the table metadata"))?;
            stored.insert(name, json);
        }
        for schema in schemas.iter() {
            let Some(t) = tables.get(&schema.name) else {
                continue;
            };
            let json = schema_json(schema);
            if stored.get(&schema.name) == Some(&json) && table_exists(&m, t)? {
                continue;
            }
            migrate_table(&m, t, stored.get(&schema.name).map(String::as_str))?;
        }
        for name in stored.keys() {
            if schemas.get(name).is_none() {
                tracing::info!(table = %name, "the database has a table with no schema file; its rows are kept but no flow can reach them");
            }
        }
        m.batch("COMMIT", "cannot commit the schema migration")
    })();
    if result.is_err() {
        // The transaction is aborted: the session must not go back to the pool.
        conn.discard();
    }
    result
}

fn table_exists(m: &Migration<'_>, t: &PgTable) -> Result<bool, StoreError> {
    let found = m.strings(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_name = $1",
        &t.sql_name,
        &format!("table `{}`: cannot look up the table", t.name()),
    )?;
    Ok(!found.is_empty())
}

fn migrate_table(
    m: &Migration<'_>,
    t: &PgTable,
    stored_json: Option<&str>,
) -> Result<(), StoreError> {
    let schema = &t.schema;
    let file = if schema.source.as_os_str().is_empty() {
        "its schema".to_string()
    } else {
        schema.source.display().to_string()
    };
    let what = |w: &str| format!("table `{}`: {w}", schema.name);
    let stored: Option<StoredSchema> = match stored_json {
        Some(json) => Some(serde_json::from_str(json).map_err(|e| {
            m.refuse(format!(
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
                    return Err(m.refuse(format!(
                        "table `{}`: column `{}` ({}) is in the database but not in {file}; removing a column is not migrated (put it back, or export the table, drop `{}` and import)",
                        schema.name, oc.name, oc.ty, t.sql_name
                    )))
                }
                Some(nc) if nc.ty != oc.ty => {
                    return Err(m.refuse(format!(
                        "table `{}`: column `{}` is {} in the database but {} in {file}; changing a column's type is not migrated (restore the type, or add a new column)",
                        schema.name, oc.name, oc.ty, nc.ty
                    )))
                }
                Some(_) => {}
            }
        }
    }

    if table_exists(m, t)? {
        let physical: Vec<String> = m
            .strings(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1",
                &t.sql_name,
                &what("cannot read the columns"),
            )?
            .into_iter()
            .filter(|c| c != ROW_ID)
            .collect();
        if stored.is_none() {
            if let Some(extra) = physical.iter().find(|p| schema.column(p).is_none()) {
                return Err(m.refuse(format!(
                    "table `{}`: the PostgreSQL table `{}` has a column `{extra}` that is not in {file}; removing a column is not migrated (add it to the schema)",
                    schema.name, t.sql_name
                )));
            }
        }
        for c in &schema.columns {
            if !physical.iter().any(|p| *p == stored_name(&c.name)) {
                m.batch(
                    &format!(
                        "ALTER TABLE {} ADD COLUMN {} {}",
                        t.ident,
                        quote(&c.name),
                        sql_decl(c.ty)
                    ),
                    &what(&format!("cannot add column `{}`", c.name)),
                )?;
                tracing::info!(table = %schema.name, column = %c.name, "added a column");
            }
        }
    } else {
        let cols: Vec<String> = schema
            .columns
            .iter()
            .map(|c| format!("{} {}", quote(&c.name), sql_decl(c.ty)))
            .collect();
        m.batch(
            &format!(
                "CREATE TABLE {} ({} bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, {})",
                t.ident,
                quote(ROW_ID),
                cols.join(", ")
            ),
            &what("cannot create the table"),
        )?;
    }

    let existing: HashSet<String> = m
        .strings(
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1",
            &t.sql_name,
            &what("cannot read the indexes"),
        )?
        .into_iter()
        .collect();
    let mut wanted: Vec<(String, &str, bool)> = Vec::new();
    if let Some(key) = &schema.key {
        wanted.push((
            stored_name(&format!("uk:{}:{key}", t.sql_name)),
            key.as_str(),
            true,
        ));
    }
    for ix in &schema.indexes {
        if schema.key.as_deref() != Some(ix.as_str()) {
            wanted.push((
                stored_name(&format!("ix:{}:{ix}", t.sql_name)),
                ix.as_str(),
                false,
            ));
        }
    }
    for name in &existing {
        let ours = name.starts_with("uk:") || name.starts_with("ix:");
        if ours && !wanted.iter().any(|(w, _, _)| w == name) {
            m.batch(
                &format!("DROP INDEX {}", quote(name)),
                &what(&format!("cannot drop index `{name}`")),
            )?;
        }
    }
    for (name, column, unique) in &wanted {
        if existing.contains(name) {
            continue;
        }
        if *unique {
            let nulls: i64 =
                m.pg.wait(m.client.query_one(
                    &format!(
                        "SELECT count(*) FROM {} WHERE {} IS NULL",
                        t.ident,
                        quote(column)
                    ),
                    &[],
                ))
                .and_then(|r| r.try_get(0))
                .map_err(m.fail(&what("cannot check the key column")))?;
            if nulls > 0 {
                return Err(m.refuse(format!(
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
        if let Err(e) = m.pg.wait(m.client.batch_execute(&sql)) {
            let dup = e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION);
            if *unique && dup {
                return Err(m.refuse(format!(
                    "table `{}`: cannot make `{column}` the key ({file}): some rows share the same `{column}` (remove the duplicates first)",
                    schema.name
                )));
            }
            return Err(m.fail(&what(&format!("cannot create index on `{column}`")))(e));
        }
    }

    let json = schema_json(schema);
    m.pg
        .wait(m.client.execute(
            &format!(
                "INSERT INTO {} (name, schema_json) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET schema_json = excluded.schema_json",
                quote(META_TABLE)
            ),
            &[&schema.name, &json],
        ))
        .map_err(m.fail(&what("cannot record the schema")))?;
    Ok(())
}
