//! The wasm-pg mode's database: a throwaway PostgreSQL server (the `pg-throwaway` crate the
//! host's tests use) that the bench child starts itself on loopback, the CPU its processes
//! use, the digest of the rows stored in it and its size.

use anyhow::{anyhow, bail, Context, Result};
use flowhost::database::Database;
use pg_throwaway::PgServer;

use crate::measure::{self, RowDigest, DIGEST_COLUMNS};

/// The database the runtime writes to.
const DB: &str = "bench";

/// A throwaway server with one empty database; stopped (and its folder removed) on drop.
pub struct Server {
    server: PgServer,
    url: String,
}

impl Server {
    pub fn start() -> Result<Server> {
        let server = PgServer::try_start().map_err(|e| anyhow!("wasm-pg: {e}"))?;
        let url = server
            .try_create_db(DB)
            .map_err(|e| anyhow!("wasm-pg: {e}"))?;
        Ok(Server { server, url })
    }

    /// The database's URL (no password: trust authentication on loopback).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Rows in Audit Events now (the table must exist: any flowhost process made it).
    pub fn audit_events(&self) -> Result<u64> {
        let table = flowhost::schema::sql_table_name("Audit Events");
        let out = self
            .server
            .try_psql(DB, &format!("SELECT count(*) FROM \"{table}\""))
            .map_err(|e| anyhow!("{e}"))?;
        out.parse()
            .with_context(|| format!("counting Audit Events printed `{out}`"))
    }

    /// `db:` for the runtime.
    pub fn database(&self) -> Result<Database> {
        Database::parse(&self.url).map_err(|e| anyhow!("wasm-pg: {e}"))
    }

    /// CPU seconds used so far by the server: the postmaster and every process it forked
    /// (backends, background workers), living or exited.
    pub fn cpu(&self) -> f64 {
        measure::tree_cpu(self.server.pid())
    }

    /// Size of the database (`pg_database_size`: tables, indexes and run history).
    pub fn size(&self) -> Result<u64> {
        let out = self
            .server
            .try_psql(DB, "SELECT pg_database_size(current_database())")
            .map_err(|e| anyhow!("{e}"))?;
        out.parse()
            .with_context(|| format!("pg_database_size printed `{out}`"))
    }

    /// (rows, digest) of Audit Events, fed exactly as [`measure::digest`] feeds SQLite's.
    pub fn digest(&self) -> Result<(u64, String)> {
        let table = flowhost::schema::sql_table_name("Audit Events");
        // Fields and rows both end in NUL (no text holds one); a 13th column `.` marks each
        // row's end, so that the split cannot drift. NULL comes out as an empty field, so
        // it is sent as a flag column.
        let cols: Vec<String> = DIGEST_COLUMNS
            .split(", ")
            .map(|c| format!("{c} IS NULL, coalesce({c}, '')"))
            .collect();
        let sql = format!(
            "SELECT {}, '.' FROM \"{table}\" ORDER BY \"id\"",
            cols.join(", ")
        );
        let out = self
            .server
            .psql_output(DB, &sql, &["-z", "-0"])
            .map_err(|e| anyhow!("{e}"))?;
        let mut fields = out.split(|b| *b == 0);
        let mut d = RowDigest::default();
        let per_row = DIGEST_COLUMNS.split(", ").count();
        while let Some(first) = fields.next() {
            if first.is_empty() {
                // The separator after the last row.
                break;
            }
            let mut null = first;
            for i in 0..per_row {
                let value = fields
                    .next()
                    .context("psql's digest output ended mid-row")?;
                d.field((null != b"t").then_some(value));
                if i + 1 < per_row {
                    null = fields
                        .next()
                        .context("psql's digest output ended mid-row")?;
                }
            }
            if fields.next() != Some(b".".as_slice()) {
                bail!("psql's digest output lost its row markers");
            }
            d.end_row();
        }
        Ok(d.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same rows (a NULL, an empty string, a newline, a non-ASCII character) stored in
    /// SQLite and in PostgreSQL give the same digest: the `rows:` line compares like with like.
    #[test]
    fn the_postgres_digest_equals_the_sqlite_digest_of_the_same_rows() {
        let table = flowhost::schema::sql_table_name("Audit Events");
        let cols: Vec<&str> = DIGEST_COLUMNS.split(", ").collect();
        let decl: Vec<String> = cols.iter().map(|c| format!("{c} text")).collect();
        let create = format!("CREATE TABLE \"{table}\" ({})", decl.join(", "));
        let rows = [
            "'a2', '2026-01-01T00:00:00Z', 'x', NULL, '', 'line\nbreak', 'grüße', 'p', 'h', 's', 'g', 'f'",
            "'a1', 't', 'y', 'actor', 'u', 'c', 'g', NULL, NULL, 's', 'g', ''",
        ];
        let insert: Vec<String> = rows
            .iter()
            .map(|r| format!("INSERT INTO \"{table}\" VALUES ({r})"))
            .collect();

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("digest.db");
        let conn = rusqlite::Connection::open(&file).unwrap();
        conn.execute_batch(&format!("{create}; {};", insert.join("; ")))
            .unwrap();
        drop(conn);
        let sqlite = measure::digest(&file).unwrap();

        let server = Server::start().unwrap();
        server
            .server
            .try_psql(DB, &format!("{create}; {};", insert.join("; ")))
            .unwrap();
        assert_eq!(server.digest().unwrap(), sqlite);
        assert_eq!(sqlite.0, 2);
    }
}
