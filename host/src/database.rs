//! Which database a process uses (`db:` in the config, or `--db`): an SQLite file or a
//! PostgreSQL URL ([`Database`]), and the one place that opens it for a process
//! ([`Database::open`], [`Database::open_read_only`]): the tables, run history and, for
//! PostgreSQL, the pool both share (and the cluster after them).
//!
//! A value is a PostgreSQL URL when [`crate::pg::is_postgres_url`] says so (`postgres://` or
//! `postgresql://`), else a path; a relative path is resolved by the config as before. A URL
//! is only ever shown through [`PgUrl::shown`]: its password never reaches a message.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::history::postgres::PgHistory;
use crate::history::History;
use crate::lease::Leases;
use crate::pg::{Pg, PgError, PgUrl};
use crate::schema::Schemas;
use crate::store::postgres::PgTables;
use crate::store::{Store, StoreError};

/// The database of the tables and run history.
// One per process: the size of a parsed URL does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Database {
    /// An SQLite file (history beside it, see [`crate::history::history_path_for`]).
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres(PgUrl),
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(p) => f.debug_tuple("Sqlite").field(p).finish(),
            Database::Postgres(u) => f.debug_tuple("Postgres").field(&u.shown()).finish(),
        }
    }
}

/// The path, or the URL without its password.
impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(p) => write!(f, "{}", p.display()),
            Database::Postgres(u) => f.write_str(u.shown()),
        }
    }
}

/// Two settings name the same database (URLs compare as shown: a changed password alone is
/// not a different database).
impl PartialEq for Database {
    fn eq(&self, other: &Database) -> bool {
        match (self, other) {
            (Database::Sqlite(a), Database::Sqlite(b)) => a == b,
            (Database::Postgres(a), Database::Postgres(b)) => a.shown() == b.shown(),
            _ => false,
        }
    }
}

impl From<PathBuf> for Database {
    fn from(path: PathBuf) -> Database {
        Database::Sqlite(path)
    }
}

impl From<&Path> for Database {
    fn from(path: &Path) -> Database {
        Database::Sqlite(path.to_path_buf())
    }
}

/// Where a process keeps its cross-process leases (`serve`'s own, exclusive groups).
#[derive(Debug)]
pub enum LeaseSlot {
    /// Lock files next to the SQLite file ([`Leases::for_db`]).
    Files(Leases),
    /// PostgreSQL: the cluster's advisory locks, on the pool the tables and history use
    /// (the process joins the cluster when its runtime opens: [`crate::cluster::Cluster::join`]).
    Cluster(Pg),
}

/// A database opened for a process.
#[derive(Debug)]
pub struct OpenDatabase {
    pub store: Store,
    pub history: History,
    /// The pool that store and history share (PostgreSQL only).
    pub pg: Option<Pg>,
    pub leases: LeaseSlot,
}

/// A database opened for reading only; either part may be absent (nothing written yet).
#[derive(Debug)]
pub struct ReadOnlyDatabase {
    pub store: Option<Store>,
    pub history: Option<History>,
    /// The pool both use (PostgreSQL only): `status` lists the cluster's nodes through it.
    pub pg: Option<Pg>,
}

impl Database {
    /// `text` as written in `db:` or `--db`: a PostgreSQL URL, else a path (not yet resolved).
    pub fn parse(text: &str) -> Result<Database, PgError> {
        if crate::pg::is_postgres_url(text) {
            return PgUrl::parse(text.trim()).map(Database::Postgres);
        }
        Ok(Database::Sqlite(PathBuf::from(text)))
    }

    /// The SQLite file, if this is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Database::Sqlite(p) => Some(p),
            Database::Postgres(_) => None,
        }
    }

    /// Opens (creating or migrating as needed) the tables and run history for a process.
    pub fn open(&self, schemas: Arc<Schemas>) -> Result<OpenDatabase, StoreError> {
        match self {
            Database::Sqlite(path) => {
                let store = Store::open(path, schemas)?;
                // History has its own file: it must not wait for a run's table write lock.
                let history = History::open(&crate::history::history_path_for(path))?;
                Ok(OpenDatabase {
                    store,
                    history,
                    pg: None,
                    leases: LeaseSlot::Files(Leases::for_db(path)),
                })
            }
            Database::Postgres(url) => open_postgres(url, schemas),
        }
    }

    /// Opens the tables and history for reading only (`status`, `history`, `table export`):
    /// nothing is created; a part with nothing written yet is `None`.
    pub fn open_read_only(&self, schemas: Arc<Schemas>) -> Result<ReadOnlyDatabase, StoreError> {
        match self {
            Database::Sqlite(_) => Ok(ReadOnlyDatabase {
                store: self.open_store_read_only(schemas)?,
                history: self.open_history_read_only()?,
                pg: None,
            }),
            Database::Postgres(url) => {
                let open = open_postgres(url, schemas)?;
                Ok(ReadOnlyDatabase {
                    store: Some(open.store),
                    history: Some(open.history),
                    pg: open.pg,
                })
            }
        }
    }

    /// The tables, opened (created or migrated) for writing (`table import`).
    pub fn open_store(&self, schemas: Arc<Schemas>) -> Result<Store, StoreError> {
        match self {
            Database::Sqlite(path) => Store::open(path, schemas),
            Database::Postgres(url) => open_postgres(url, schemas).map(|o| o.store),
        }
    }

    /// Run history, opened (created if needed) for writing (`flow enable|disable`).
    pub fn open_history(&self) -> Result<History, StoreError> {
        match self {
            Database::Sqlite(path) => History::open(&crate::history::history_path_for(path)),
            Database::Postgres(url) => open_postgres_history(url),
        }
    }

    /// The tables, read-only; `None` while nothing has been written.
    pub fn open_store_read_only(&self, schemas: Arc<Schemas>) -> Result<Option<Store>, StoreError> {
        absent_is_none(self.store_read_only(schemas))
    }

    /// Run history, read-only; `None` while nothing has been written.
    pub fn open_history_read_only(&self) -> Result<Option<History>, StoreError> {
        absent_is_none(self.history_read_only())
    }

    /// The existing tables, read-only ([`StoreError::Missing`] while nothing has been
    /// written: `table list|show|export` says so).
    pub fn store_read_only(&self, schemas: Arc<Schemas>) -> Result<Store, StoreError> {
        match self {
            Database::Sqlite(path) => Store::open_read_only(path, schemas),
            Database::Postgres(url) => open_postgres(url, schemas).map(|o| o.store),
        }
    }

    /// The existing run history, read-only ([`StoreError::Missing`] while nothing has been
    /// written: `history` says so).
    pub fn history_read_only(&self) -> Result<History, StoreError> {
        match self {
            Database::Sqlite(path) => {
                History::open_read_only(&crate::history::history_path_for(path))
            }
            Database::Postgres(url) => open_postgres_history(url),
        }
    }

    /// What a page of `serve`'s listener reads, given the process's own `store` and
    /// `history`: for SQLite the files opened read-only for this request (a reader never
    /// waits for a run's write lock); for PostgreSQL the process's own handles (its pool).
    pub fn reader(&self, store: &Store, history: &History) -> Result<ReadOnlyDatabase, StoreError> {
        match self {
            Database::Sqlite(_) => self.open_read_only(store.schemas().clone()),
            Database::Postgres(_) => Ok(ReadOnlyDatabase {
                store: Some(store.clone()),
                history: Some(history.clone()),
                pg: None,
            }),
        }
    }
}

/// A file that does not exist yet is `None`; any other error stays one.
fn absent_is_none<T>(r: Result<T, StoreError>) -> Result<Option<T>, StoreError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(StoreError::Missing { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens PostgreSQL for a process: one pool shared by the tables and history (and, for
/// a runtime, the cluster). Tables are created or migrated; nothing else is written.
fn open_postgres(url: &PgUrl, schemas: Arc<Schemas>) -> Result<OpenDatabase, StoreError> {
    let pg = Pg::connect(url.clone())?;
    let store = Store::from_backend(Arc::new(PgTables::open(pg.clone(), schemas)?));
    let history = History::from_backend(Arc::new(PgHistory::open(pg.clone())?));
    Ok(OpenDatabase {
        store,
        history,
        pg: Some(pg.clone()),
        leases: LeaseSlot::Cluster(pg),
    })
}

/// Run history alone on PostgreSQL (`history`, `flow enable|disable`, `list`).
fn open_postgres_history(url: &PgUrl) -> Result<History, StoreError> {
    let pg = Pg::connect(url.clone())?;
    Ok(History::from_backend(Arc::new(PgHistory::open(pg)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_postgres_and_anything_else_a_path() {
        let db = Database::parse("postgres://u:pw@127.0.0.1:1/x").unwrap();
        assert!(matches!(db, Database::Postgres(_)));
        assert_eq!(db.to_string(), "postgres://u:***@127.0.0.1:1/x");
        assert!(!format!("{db:?}").contains("pw"));
        assert!(matches!(
            Database::parse("postgresql://h/x").unwrap(),
            Database::Postgres(_)
        ));
        let db = Database::parse("data/flowhost.db").unwrap();
        assert_eq!(db.sqlite_path(), Some(Path::new("data/flowhost.db")));
        assert_eq!(db.to_string(), "data/flowhost.db");
        let err = Database::parse("postgres://u:pw@/x")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("pw"), "{err}");
    }

    #[test]
    fn an_unreachable_postgres_is_named_without_its_password() {
        let db = Database::parse("postgres://u:pw@127.0.0.1:1/x").unwrap();
        let schemas = Arc::new(Schemas::from_schemas(vec![]).unwrap());
        let err = db.open(schemas).unwrap_err().to_string();
        assert!(
            err.starts_with("cannot connect to PostgreSQL at `postgres://u:***@127.0.0.1:1/x`: "),
            "{err}"
        );
        assert!(!err.contains("pw"), "{err}");
    }

    #[test]
    fn sqlite_opens_tables_history_and_leases_beside_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::from(dir.path().join("f.db"));
        let schemas = Arc::new(Schemas::from_schemas(vec![]).unwrap());
        let ro = db.open_read_only(schemas.clone()).unwrap();
        assert!(
            ro.store.is_none() && ro.history.is_none(),
            "nothing written yet"
        );
        let open = db.open(schemas.clone()).unwrap();
        assert!(open.pg.is_none());
        match &open.leases {
            LeaseSlot::Files(l) => assert_eq!(l.dir(), dir.path().join("f.db.locks")),
            LeaseSlot::Cluster(_) => panic!("an SQLite database has lease files"),
        }
        assert!(dir.path().join("f-history.db").is_file());
        let ro = db.open_read_only(schemas).unwrap();
        assert!(ro.store.is_some() && ro.history.is_some());
    }
}
