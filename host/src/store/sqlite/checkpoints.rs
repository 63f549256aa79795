//! The checkpoint thread ([`Checkpoints`]): copies the WAL into the database file off the
//! commit path, and restarts a WAL grown past its limit.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

use super::connection::open_connection;

/// The least time between two checkpoints of the checkpoint thread.
pub(super) const CHECKPOINT_PAUSE: Duration = Duration::from_millis(250);

/// The WAL's size past which a commit restarts it (see [`Checkpoints`]). A restart makes that
/// commit wait for the rest of the WAL to be copied and the database synced (80-340 ms each in
/// a backfill of 1,000,000 events), so fewer, for a larger WAL: a backfill keeps up to this
/// much beside the database. At 128 MiB the restarts took 8-9% of the ingest benchmark's time
/// (300,000 events: 9-11 restarts, 1.2-1.5 s of 15-18 s); at 512 MiB, 2-3 restarts.
pub(super) const WAL_LIMIT_BYTES: u64 = 512 << 20;

/// `PRAGMA wal_checkpoint(mode)`: whether it could not finish (another connection was in the
/// way).
pub(super) fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<bool> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok(r.get::<_, i64>(0)? != 0)
    })
}

/// Checkpoints the WAL of one database on its own thread and connection, woken after each
/// commit.
///
/// SQLite's automatic checkpoint runs inside the commit that crosses 1,000 WAL pages: that run
/// copies the pages into the database file and waits for the fsync. For a run of 1,000 audit
/// events that wait was about as long as the run's own work (the ingest benchmark's native
/// path, 200,000 events in 200 commits on disk: 11.2 s with SQLite's checkpoints, 6.2 s with
/// these, measured together with a smaller change to its JSON handling). With `Checkpoints`,
/// writers only append
/// to the WAL, and `PASSIVE` checkpoints, which never block a writer, copy it out alongside.
///
/// Only a checkpoint that finds no writer can make the WAL start over, which the thread rarely
/// does while runs follow each other; so a commit that leaves the WAL longer than
/// `WAL_LIMIT_BYTES` checkpoints with `RESTART` itself (most of the WAL is copied out by
/// then), and `journal_size_limit` cuts the file back when it starts over.
///
/// SQLite syncs the database file only in a checkpoint that reaches the end of the WAL, which
/// the thread's never do while runs follow each other: everything they copied waited for that
/// commit's `RESTART`, 190-460 ms each in a backfill of 1,000,000 events. The thread syncs the
/// database after each checkpoint instead, and the restarts took 80-340 ms. The thread stops
/// when this is dropped. Public so that the benchmark's native path can do the same.
pub struct Checkpoints {
    /// `None` only while dropping.
    wake: Option<std::sync::mpsc::SyncSender<()>>,
    /// Held by whichever checkpoint runs (SQLite refuses a second one at once).
    running: Arc<Mutex<()>>,
    wal: PathBuf,
    /// The WAL's size past which a commit restarts it.
    limit: u64,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Checkpoints {
    /// Stops the thread and waits for it, so that its connection is closed before the process
    /// exits: the last connection to close copies the WAL into the database and deletes it,
    /// leaving one self-contained file, as SQLite's own checkpoints did.
    fn drop(&mut self) {
        drop(self.wake.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Checkpoints {
    /// Starts the thread for the database at `path` (already in WAL mode).
    pub fn start(path: &Path) -> std::io::Result<Checkpoints> {
        Checkpoints::with_limit(path, WAL_LIMIT_BYTES)
    }

    /// [`Checkpoints::start`] with a WAL limit other than [`WAL_LIMIT_BYTES`].
    pub(super) fn with_limit(path: &Path, limit: u64) -> std::io::Result<Checkpoints> {
        use std::sync::mpsc::RecvTimeoutError::{Disconnected, Timeout};
        let conn = open_connection(path).map_err(std::io::Error::other)?;
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        let running = Arc::new(Mutex::new(()));
        let lock = running.clone();
        let db = path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("flowhost-checkpoint".into())
            .spawn(move || {
                // Woken after a commit (or every 5 s); gone with the store.
                let mut woken_since = false;
                loop {
                    if !woken_since
                        && woken.recv_timeout(Duration::from_secs(5)) == Err(Disconnected)
                    {
                        return;
                    }
                    {
                        let _running = lock.lock().unwrap_or_else(|e| e.into_inner());
                        if let Err(e) = checkpoint(&conn, "PASSIVE") {
                            tracing::warn!(db, error = %e, "WAL checkpoint failed");
                        } else if let Err(e) = crate::walvfs::sync_database(&conn) {
                            tracing::warn!(db, error = %e, "database sync failed");
                        }
                    }
                    // A pause before the next one, so that a page written by several commits
                    // is copied once; the commits meanwhile are remembered.
                    woken_since = false;
                    let until = std::time::Instant::now() + CHECKPOINT_PAUSE;
                    loop {
                        let left = until.saturating_duration_since(std::time::Instant::now());
                        match woken.recv_timeout(left) {
                            Ok(()) => woken_since = true,
                            Err(Timeout) => break,
                            Err(Disconnected) => return,
                        }
                    }
                }
            })?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        Ok(Checkpoints {
            wake: Some(wake),
            running,
            wal: wal.into(),
            limit,
            thread: Some(thread),
        })
    }

    /// Turns off SQLite's checkpoint-on-commit for a writing connection.
    pub fn adopt(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "journal_size_limit", self.limit as i64)
    }

    /// After `conn` committed: wakes the thread, or restarts a WAL grown past the limit.
    pub fn committed(&self, conn: &Connection) {
        let len = std::fs::metadata(&self.wal).map_or(0, |m| m.len());
        if len <= self.limit {
            if let Some(wake) = &self.wake {
                let _ = wake.try_send(());
            }
            return;
        }
        let _running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        match checkpoint(conn, "RESTART") {
            Ok(false) => {}
            Ok(true) => tracing::debug!("WAL restart deferred: a reader is in the way"),
            Err(e) => tracing::warn!(error = %e, "WAL restart failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use crate::schema::Schemas;
    use crate::store::sqlite::test_support::*;
    use crate::store::sqlite::SqliteTables;
    use crate::store::Store;

    /// Writers never checkpoint inside a commit, yet the WAL stays bounded: 320 MiB written in
    /// commits of 4 MiB leaves a WAL within one commit of the limit (64 MiB here, to cross it
    /// often), and every row readable.
    #[test]
    fn the_wal_stays_bounded_with_checkpoints_off_the_commit_path() {
        const LIMIT: u64 = 64 << 20;
        let tmp = tempfile::tempdir().unwrap();
        let schemas = Arc::new(Schemas::from_schemas(vec![typed()]).unwrap());
        let tables = SqliteTables::open_with_wal_limit(&tmp.path().join("t.db"), schemas, LIMIT);
        let tables = Arc::new(tables.unwrap());
        assert!(tables.inner.checkpoints.is_some());
        let store = Store::from_backend(tables);
        let wal = tmp.path().join("t.db-wal");
        let text = "x".repeat(4000);
        let mut biggest = 0;
        for c in 0..80 {
            let mut txn = store.begin().unwrap();
            for i in 0..1000 {
                let row = obj(json!({"id": format!("{c}-{i}"), "s": text}));
                txn.insert("Typed", &row).unwrap();
            }
            txn.commit().unwrap();
            biggest = biggest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        assert!(biggest >= LIMIT, "the WAL never reached the limit");
        assert!(
            biggest < LIMIT + (16 << 20),
            "the WAL grew to {} MiB",
            biggest >> 20
        );
        assert_eq!(store.row_count("Typed").unwrap(), 80_000);
        drop(store);
        // Closed: the WAL is in the database file and gone, nothing is missing.
        assert!(!wal.exists(), "the WAL is left beside the database");
        let store = open_with(tmp.path(), vec![typed()]);
        assert_eq!(store.row_count("Typed").unwrap(), 80_000);
    }
}
