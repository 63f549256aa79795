//! Connections to an SQLite file: opening one read-write (the WAL VFS, busy timeout, pragmas)
//! or read-only, switching a new file to WAL mode, and checking the database's folder first so
//! an error names the folder rather than SQLite's "unable to open database file".

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::{Connection, OpenFlags};

use crate::store::{StoreError, DEFAULT_LOCK_TIMEOUT};

/// Prepared statements cached per connection.
pub(super) const STATEMENT_CACHE: usize = 256;

pub(super) fn sqlite_err(path: &Path, context: &str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    let path = path.to_path_buf();
    let context = context.to_string();
    move |source| StoreError::Sqlite {
        path,
        context,
        source,
    }
}

/// Checks that the database's folder exists and is writable (SQLite creates the file and its
/// -wal/-shm companions there), so that the error names the folder instead of SQLite's
/// "unable to open database file".
pub(crate) fn check_db_dir(db: &Path) -> Result<(), StoreError> {
    static PROBES: AtomicU64 = AtomicU64::new(0);
    let dir = match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(StoreError::MissingDir { dir });
    }
    let probe = dir.join(format!(
        ".flowhost-probe-{}-{}",
        std::process::id(),
        PROBES.fetch_add(1, Ordering::Relaxed)
    ));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(StoreError::DirNotWritable {
            dir,
            db: db.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

/// Opens a read-write connection with flowhost's settings (the [`crate::walvfs`] VFS, busy
/// timeout, `synchronous=NORMAL`, a large statement cache). WAL mode is set once by whoever
/// creates the file.
pub fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match crate::walvfs::register() {
        Ok(()) => Connection::open_with_flags_and_vfs(path, flags, crate::walvfs::NAME)?,
        Err(e) => {
            tracing::warn!(error = %e, "SQLite writes the WAL a frame at a time");
            Connection::open_with_flags(path, flags)?
        }
    };
    conn.busy_timeout(DEFAULT_LOCK_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // 16 MiB of page cache (allocated as used): random-UUID keys touch index pages all over.
    conn.pragma_update(None, "cache_size", -16384)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Opens a read-only connection to an existing database (it is never created): it reads the
/// last commit and never takes or waits for the write lock.
pub fn open_read_only_connection(path: &Path) -> rusqlite::Result<Connection> {
    if !path.is_file() {
        return Err(rusqlite::Error::InvalidPath(path.to_path_buf()));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(DEFAULT_LOCK_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// [`open_read_only_connection`] for the stores' own `open_read_only`: a missing file is
/// [`StoreError::Missing`], any other failure [`StoreError::Open`] naming the path.
pub(crate) fn open_existing_read_only(path: &Path) -> Result<Connection, StoreError> {
    if !path.is_file() {
        return Err(StoreError::Missing {
            path: path.to_path_buf(),
        });
    }
    open_read_only_connection(path).map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })
}

/// Switches the file to WAL mode (persistent), warning if the file system refuses.
pub(crate) fn enable_wal(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(sqlite_err(path, "cannot switch to WAL mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(db = %path.display(), mode, "SQLite did not switch to WAL mode; concurrent runs will block each other's reads");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::test_support::*;
    use crate::store::Store;

    #[test]
    fn open_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("missing/sub/t.db");
        let err = Store::open(&db, shipped()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "database folder `{}` does not exist (create it or fix the `db:` setting)",
                dir.path().join("missing/sub").display()
            )
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            use std::os::unix::process::CommandExt;
            let ro = dir.path().join("ro");
            std::fs::create_dir(&ro).unwrap();
            std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
            if std::fs::write(ro.join("probe"), b"").is_err() {
                read_only_folder_is_refused(&ro);
            } else {
                // Root ignores permissions: the check runs in a copy of this test binary as
                // `nobody`, for whom the folder is read-only.
                std::fs::remove_file(ro.join("probe")).unwrap();
                let traverse = std::fs::Permissions::from_mode(0o755);
                std::fs::set_permissions(dir.path(), traverse).unwrap();
                let exe = std::env::current_exe().unwrap();
                // This module's path without the crate: the test's name wherever it lives.
                let module = module_path!().split_once("::").map_or("", |(_, m)| m);
                let out = std::process::Command::new(&exe)
                    .args([
                        "--exact",
                        &format!("{module}::read_only_folder_as_nobody"),
                        "--include-ignored",
                        "--nocapture",
                    ])
                    .env(RO_DIR_VAR, &ro)
                    .uid(NOBODY)
                    .gid(NOBODY)
                    .output()
                    .unwrap_or_else(|e| {
                        panic!(
                            "cannot run {} as nobody to check a read-only folder: {e}",
                            exe.display()
                        )
                    });
                let report = String::from_utf8_lossy(&out.stdout);
                assert!(
                    out.status.success() && report.contains("1 passed"),
                    "the read-only folder check as nobody failed or did not run: {report}{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    #[cfg(unix)]
    const RO_DIR_VAR: &str = "FLOWHOST_TEST_RO_DIR";
    #[cfg(unix)]
    const NOBODY: u32 = 65534;

    /// Opening a database in `ro` (a folder this process cannot write) names the folder.
    #[cfg(unix)]
    fn read_only_folder_is_refused(ro: &Path) {
        assert!(
            std::fs::write(ro.join("probe"), b"").is_err(),
            "{} is writable: the check cannot be made",
            ro.display()
        );
        let err = Store::open(&ro.join("t.db"), shipped())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "database folder `{}` is not writable (",
                ro.display()
            )),
            "{err}"
        );
    }

    /// Run by `open_errors_name_the_path` as `nobody` when the tests run as root.
    #[cfg(unix)]
    #[test]
    #[ignore = "run by open_errors_name_the_path in a child process as nobody"]
    fn read_only_folder_as_nobody() {
        let ro = std::env::var_os(RO_DIR_VAR).unwrap_or_else(|| {
            panic!("{RO_DIR_VAR} is not set: run through open_errors_name_the_path")
        });
        read_only_folder_is_refused(Path::new(&ro));
    }
}
