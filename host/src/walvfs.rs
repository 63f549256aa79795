//! The SQLite VFS that flowhost opens its databases with: the platform's own VFS, except that
//! a connection's writes to its WAL are gathered into large writes; and [`sync_database`] for
//! the checkpoint thread.
//!
//! SQLite writes each WAL frame as two `pwrite`s, its 24-byte header and then the page, so a
//! commit of 1,200 dirty pages (one page of 1,000 audit events) made 2,400 system calls on the
//! committing run's critical path. Here the writes that follow each other in the file are
//! gathered in a buffer of up to [`CAPACITY`] (128 KiB) and written at once: about 40 writes
//! for such a commit.
//!
//! Nothing another connection can see is ever left in the buffer: other connections only read
//! frames up to the last commit frame that SQLite has published in the WAL index, and the
//! buffer is written out as soon as a commit frame's page has been added to it (SQLite
//! publishes the commit after that write returns, and a write error fails the commit as it
//! would have without the buffer). Telling a commit frame apart relies on SQLite writing a frame
//! as two calls, the 24-byte header (its bytes 4..8 non-zero for a commit) and then the page;
//! should an SQLite upgrade change that, `other_connections_see_each_commit_whole` fails. The
//! buffer is also written out before anything else the connection does with the file (a read
//! of its own uncommitted frames, a sync, a size, a truncate, a file control, closing), and
//! before a write that does not follow the buffered bytes. A crash with
//! bytes still buffered loses only frames of a transaction that had not committed, which SQLite
//! ignores on recovery anyway.
//!
//! Other files (the database itself, its shared-memory index, temporary files) are opened by
//! the platform's VFS directly in the space SQLite gives this one, so they behave exactly as
//! without it.

use std::ffi::{c_int, c_void, CStr};
use std::sync::OnceLock;

use rusqlite::ffi;

/// The name connections pass to `sqlite3_open_v2` to use this VFS.
pub const NAME: &CStr = c"flowhost-wal";

/// The most bytes buffered before they are written: the most the platform's VFS writes in one
/// call (SQLite's unix VFS masks a write's length to 17 bits).
pub const CAPACITY: usize = (128 << 10) - 1;

/// The size of a WAL frame header (SQLite's file format).
const FRAME_HEADER: usize = 24;

/// The platform's VFS, found once when this one is registered.
struct Platform(*mut ffi::sqlite3_vfs);
// SAFETY: SQLite's VFS objects are immutable once registered and safe to use from any thread.
unsafe impl Send for Platform {}
unsafe impl Sync for Platform {}

static REGISTERED: OnceLock<Result<Platform, String>> = OnceLock::new();

/// Registers the VFS (once per process); an error says why it could not be.
pub fn register() -> Result<(), String> {
    REGISTERED
        .get_or_init(|| {
            // SAFETY: `sqlite3_vfs_find(NULL)` returns the default VFS, which lives for the
            // whole process; the new VFS is a copy of it, leaked so that it lives as long.
            unsafe {
                let platform = ffi::sqlite3_vfs_find(std::ptr::null());
                if platform.is_null() {
                    return Err("SQLite has no default VFS".into());
                }
                let mut vfs: ffi::sqlite3_vfs = *platform;
                vfs.szOsFile = (*platform)
                    .szOsFile
                    .max(std::mem::size_of::<WalFile>() as c_int);
                vfs.pNext = std::ptr::null_mut();
                vfs.zName = NAME.as_ptr();
                vfs.xOpen = Some(open);
                let rc = ffi::sqlite3_vfs_register(Box::into_raw(Box::new(vfs)), 0);
                if rc != ffi::SQLITE_OK {
                    return Err(format!("cannot register the SQLite VFS (code {rc})"));
                }
                Ok(Platform(platform))
            }
        })
        .as_ref()
        .map(|_| ())
        .map_err(Clone::clone)
}

fn platform() -> *mut ffi::sqlite3_vfs {
    match REGISTERED.get() {
        Some(Ok(p)) => p.0,
        // `open` is only reachable through a registered VFS.
        _ => std::ptr::null_mut(),
    }
}

/// A WAL file: SQLite sees `base`; `state` owns the platform's file and the buffer.
#[repr(C)]
struct WalFile {
    base: ffi::sqlite3_file,
    state: *mut State,
}

struct State {
    /// Storage for the platform's file object (8-byte aligned, `szOsFile` bytes).
    real: Vec<u64>,
    /// Bytes not yet written, which belong at `start` in the file.
    buf: Vec<u8>,
    start: i64,
    /// The last write was the header of a commit frame: its page completes the commit.
    commit_page_next: bool,
}

impl State {
    fn real(&mut self) -> *mut ffi::sqlite3_file {
        self.real.as_mut_ptr().cast()
    }

    fn methods(&mut self) -> &ffi::sqlite3_io_methods {
        // SAFETY: the platform's xOpen succeeded, so its pMethods is set and static.
        unsafe { &*(*self.real()).pMethods }
    }

    /// Writes the buffer out.
    fn flush(&mut self) -> c_int {
        if self.buf.is_empty() {
            return ffi::SQLITE_OK;
        }
        let real = self.real();
        let Some(write) = self.methods().xWrite else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        let Ok(len) = c_int::try_from(self.buf.len()) else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        // SAFETY: `real` is an open file of the platform's VFS; the buffer is `len` bytes.
        let rc = unsafe { write(real, self.buf.as_ptr().cast(), len, self.start) };
        self.buf.clear();
        rc
    }

    fn write(&mut self, data: &[u8], offset: i64) -> c_int {
        let follows = offset == self.start + self.buf.len() as i64;
        if !follows || self.buf.len() + data.len() > CAPACITY {
            let rc = self.flush();
            if rc != ffi::SQLITE_OK {
                return rc;
            }
        }
        if self.buf.is_empty() {
            self.start = offset;
        }
        self.buf.extend_from_slice(data);
        let completes_commit = std::mem::take(&mut self.commit_page_next);
        if data.len() == FRAME_HEADER {
            // Bytes 4..8 of a frame header: the database size after a commit, else zero.
            self.commit_page_next = data[4..8] != [0, 0, 0, 0];
        }
        if completes_commit || self.buf.len() >= CAPACITY {
            return self.flush();
        }
        ffi::SQLITE_OK
    }
}

/// The state of an open WAL file.
///
/// # Safety
/// `f` must be a file opened by [`open`] with the WAL methods and not yet closed.
unsafe fn state<'a>(f: *mut ffi::sqlite3_file) -> &'a mut State {
    &mut *(*f.cast::<WalFile>()).state
}

/// Writes the buffer out, then passes the call on to the platform's file.
macro_rules! flushed {
    ($f:expr, $method:ident, $($arg:expr),*) => {{
        let s = state($f);
        let rc = s.flush();
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        let real = s.real();
        match s.methods().$method {
            Some(m) => m(real, $($arg),*),
            None => ffi::SQLITE_MISUSE,
        }
    }};
}

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let platform = platform();
    let Some(platform_open) = platform.as_ref().and_then(|p| p.xOpen) else {
        return ffi::SQLITE_ERROR;
    };
    if flags & ffi::SQLITE_OPEN_WAL == 0 {
        // Not a WAL: the platform's file, in place (this VFS's szOsFile is at least its size).
        return platform_open(platform, name, file, flags, out_flags);
    }
    let words = ((*platform).szOsFile as usize).div_ceil(8);
    let mut st = Box::new(State {
        real: vec![0u64; words],
        buf: Vec::with_capacity(CAPACITY),
        start: 0,
        commit_page_next: false,
    });
    let real = st.real();
    let rc = platform_open(platform, name, real, flags, out_flags);
    let f = file.cast::<WalFile>();
    if rc != ffi::SQLITE_OK {
        // SQLite does not close a file whose pMethods is NULL; the platform's file is closed
        // here if its xOpen left it half open.
        if let Some(close) = (*real).pMethods.as_ref().and_then(|m| m.xClose) {
            close(real);
        }
        (*f).base.pMethods = std::ptr::null();
        return rc;
    }
    (*f).state = Box::into_raw(st);
    (*f).base.pMethods = wal_methods(&*(*real).pMethods);
    ffi::SQLITE_OK
}

/// The WAL file methods (built on the first open, of the same version as the platform's).
static METHODS: OnceLock<WalMethods> = OnceLock::new();

fn wal_methods(platform: &ffi::sqlite3_io_methods) -> &'static ffi::sqlite3_io_methods {
    &METHODS
        .get_or_init(|| {
            WalMethods(ffi::sqlite3_io_methods {
                iVersion: platform.iVersion,
                xClose: Some(close),
                xRead: Some(read),
                xWrite: Some(write),
                xTruncate: Some(truncate),
                xSync: Some(sync),
                xFileSize: Some(file_size),
                xLock: Some(lock),
                xUnlock: Some(unlock),
                xCheckReservedLock: Some(check_reserved_lock),
                xFileControl: Some(file_control),
                xSectorSize: Some(sector_size),
                xDeviceCharacteristics: Some(device_characteristics),
                xShmMap: Some(shm_map),
                xShmLock: Some(shm_lock),
                xShmBarrier: Some(shm_barrier),
                xShmUnmap: Some(shm_unmap),
                xFetch: Some(fetch),
                xUnfetch: Some(unfetch),
            })
        })
        .0
}

struct WalMethods(ffi::sqlite3_io_methods);
// SAFETY: a table of function pointers, never changed once built.
unsafe impl Send for WalMethods {}
unsafe impl Sync for WalMethods {}

unsafe extern "C" fn close(f: *mut ffi::sqlite3_file) -> c_int {
    let wal = f.cast::<WalFile>();
    let mut st = Box::from_raw((*wal).state);
    (*wal).state = std::ptr::null_mut();
    let flushed = st.flush();
    let real = st.real();
    let closed = match st.methods().xClose {
        Some(m) => m(real),
        None => ffi::SQLITE_OK,
    };
    if flushed != ffi::SQLITE_OK {
        flushed
    } else {
        closed
    }
}

unsafe extern "C" fn read(
    f: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    n: c_int,
    off: i64,
) -> c_int {
    flushed!(f, xRead, buf, n, off)
}

unsafe extern "C" fn write(
    f: *mut ffi::sqlite3_file,
    data: *const c_void,
    n: c_int,
    off: i64,
) -> c_int {
    let Ok(len) = usize::try_from(n) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    if len > CAPACITY {
        return flushed!(f, xWrite, data, n, off);
    }
    let data = std::slice::from_raw_parts(data.cast::<u8>(), len);
    state(f).write(data, off)
}

unsafe extern "C" fn truncate(f: *mut ffi::sqlite3_file, size: i64) -> c_int {
    flushed!(f, xTruncate, size)
}

unsafe extern "C" fn sync(f: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    flushed!(f, xSync, flags)
}

unsafe extern "C" fn file_size(f: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    flushed!(f, xFileSize, size)
}

unsafe extern "C" fn lock(f: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    flushed!(f, xLock, level)
}

unsafe extern "C" fn unlock(f: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    flushed!(f, xUnlock, level)
}

unsafe extern "C" fn check_reserved_lock(f: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    flushed!(f, xCheckReservedLock, out)
}

unsafe extern "C" fn file_control(f: *mut ffi::sqlite3_file, op: c_int, arg: *mut c_void) -> c_int {
    flushed!(f, xFileControl, op, arg)
}

unsafe extern "C" fn sector_size(f: *mut ffi::sqlite3_file) -> c_int {
    let s = state(f);
    let real = s.real();
    s.methods().xSectorSize.map_or(4096, |m| m(real))
}

unsafe extern "C" fn device_characteristics(f: *mut ffi::sqlite3_file) -> c_int {
    let s = state(f);
    let real = s.real();
    s.methods().xDeviceCharacteristics.map_or(0, |m| m(real))
}

unsafe extern "C" fn shm_map(
    f: *mut ffi::sqlite3_file,
    page: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    flushed!(f, xShmMap, page, size, extend, out)
}

unsafe extern "C" fn shm_lock(
    f: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    flushed!(f, xShmLock, offset, n, flags)
}

unsafe extern "C" fn shm_barrier(f: *mut ffi::sqlite3_file) {
    // SQLite calls this on the database file, never on a WAL; passed on all the same.
    let s = state(f);
    let real = s.real();
    if let Some(m) = s.methods().xShmBarrier {
        m(real);
    }
}

unsafe extern "C" fn shm_unmap(f: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    flushed!(f, xShmUnmap, delete)
}

unsafe extern "C" fn fetch(
    f: *mut ffi::sqlite3_file,
    off: i64,
    n: c_int,
    out: *mut *mut c_void,
) -> c_int {
    flushed!(f, xFetch, off, n, out)
}

unsafe extern "C" fn unfetch(f: *mut ffi::sqlite3_file, off: i64, p: *mut c_void) -> c_int {
    flushed!(f, xUnfetch, off, p)
}

/// Syncs the database file of `conn` (not its WAL), as a checkpoint that reaches the end of
/// the WAL would. `PASSIVE` checkpoints that stop short of the end leave what they copied
/// unsynced, so the checkpoint that finally restarts the WAL, inside a commit, had to wait for
/// all of it to reach the disk.
pub fn sync_database(conn: &rusqlite::Connection) -> Result<(), String> {
    let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: SQLITE_FCNTL_FILE_POINTER writes the connection's open database file, which
    // stays open while `conn` is borrowed; its methods are called from the connection's thread.
    unsafe {
        let rc = ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_FILE_POINTER,
            (&mut file as *mut *mut ffi::sqlite3_file).cast(),
        );
        if rc != ffi::SQLITE_OK || file.is_null() || (*file).pMethods.is_null() {
            return Err(format!("no database file to sync (code {rc})"));
        }
        match (*(*file).pMethods).xSync {
            Some(sync) => match sync(file, ffi::SQLITE_SYNC_NORMAL) {
                ffi::SQLITE_OK => Ok(()),
                rc => Err(format!("fsync of the database failed (code {rc})")),
            },
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::open_connection;
    use rusqlite::Connection;
    use std::io::BufRead;

    /// Whether `conn`'s WAL is open through this VFS.
    fn wal_is_buffered(conn: &Connection) -> bool {
        let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
        // SAFETY: SQLITE_FCNTL_JOURNAL_POINTER writes the journal's (here the WAL's) file.
        unsafe {
            let rc = ffi::sqlite3_file_control(
                conn.handle(),
                c"main".as_ptr(),
                ffi::SQLITE_FCNTL_JOURNAL_POINTER,
                (&mut file as *mut *mut ffi::sqlite3_file).cast(),
            );
            assert_eq!(rc, ffi::SQLITE_OK);
            !file.is_null()
                && METHODS
                    .get()
                    .is_some_and(|m| std::ptr::eq((*file).pMethods, &m.0))
        }
    }

    fn wal_db(dir: &std::path::Path) -> Connection {
        let conn = open_connection(&dir.join("w.db")).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE IF NOT EXISTS t (txn INTEGER, i INTEGER, v TEXT)")
            .unwrap();
        conn
    }

    fn rows_by_txn(conn: &Connection) -> Vec<(i64, i64)> {
        let mut stmt = conn
            .prepare("SELECT txn, count(*) FROM t GROUP BY txn ORDER BY txn")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn insert(conn: &Connection, txn: i64, rows: i64, width: usize) {
        let mut stmt = conn
            .prepare_cached("INSERT INTO t VALUES (?1, ?2, ?3)")
            .unwrap();
        for i in 0..rows {
            stmt.execute(rusqlite::params![
                txn,
                i,
                format!("{txn}:{i}:{}", "x".repeat(width))
            ])
            .unwrap();
        }
    }

    /// Another connection sees every commit at once, whatever its size: one row, many
    /// buffers' worth, a transaction that spilled pages to the WAL before committing (a
    /// tiny cache) and reads them back, and one with a savepoint rolled back.
    #[test]
    fn other_connections_see_each_commit_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let writer = wal_db(tmp.path());
        let reader = open_connection(&tmp.path().join("w.db")).unwrap();
        assert!(wal_is_buffered(&writer));
        let mut expected = Vec::new();
        for (txn, rows, width) in [(1, 1, 10), (2, 2000, 300), (3, 5, 5000), (4, 30_000, 40)] {
            if txn == 4 {
                writer.pragma_update(None, "cache_size", 10).unwrap();
            }
            writer.execute_batch("BEGIN").unwrap();
            insert(&writer, txn, rows, width);
            writer.execute_batch("SAVEPOINT s").unwrap();
            insert(&writer, 99, 500, 2000);
            writer.execute_batch("ROLLBACK TO s; RELEASE s").unwrap();
            // The writer reads its own rows back (from the WAL for a spilled transaction).
            let own: i64 = writer
                .query_row("SELECT count(*) FROM t WHERE txn = ?1", [txn], |r| r.get(0))
                .unwrap();
            assert_eq!(own, rows);
            writer.execute_batch("COMMIT").unwrap();
            expected.push((txn, rows));
            assert_eq!(rows_by_txn(&reader), expected, "after commit {txn}");
        }
        let ok: String = reader
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        let last: String = reader
            .query_row(
                "SELECT v FROM t WHERE txn = 4 ORDER BY i DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(last.starts_with("4:29999:"), "{last}");
    }

    /// The checkpoint thread's sync reaches the connection's database file; a connection with
    /// no file yet (a temporary database) says so.
    #[test]
    fn sync_database_syncs_the_open_file() {
        let tmp = tempfile::tempdir().unwrap();
        let conn = wal_db(tmp.path());
        assert_eq!(sync_database(&conn), Ok(()));
        let temp = Connection::open("").unwrap();
        let err = sync_database(&temp).unwrap_err();
        assert!(err.starts_with("no database file to sync"), "{err}");
    }

    /// How many bytes `conn`'s WAL holds in this VFS's buffer, not yet written.
    fn buffered_bytes(conn: &Connection) -> usize {
        assert!(wal_is_buffered(conn));
        let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
        // SAFETY: as in `wal_is_buffered`, which checked that the file is one of ours: a
        // `WalFile` whose state is live while the connection is open (and used by this thread
        // only).
        unsafe {
            let rc = ffi::sqlite3_file_control(
                conn.handle(),
                c"main".as_ptr(),
                ffi::SQLITE_FCNTL_JOURNAL_POINTER,
                (&mut file as *mut *mut ffi::sqlite3_file).cast(),
            );
            assert_eq!(rc, ffi::SQLITE_OK);
            (*(*file.cast::<WalFile>()).state).buf.len()
        }
    }

    /// A writer killed in the middle of a transaction, with frames of it still buffered, leaves
    /// every transaction it committed, whole, and none of the one it had not. The writer says
    /// when it is there (and how much is buffered) and then waits to be killed.
    #[test]
    fn a_killed_writer_loses_no_commit() {
        let tmp = tempfile::tempdir().unwrap();
        drop(wal_db(tmp.path()));
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "walvfs::tests::writer_until_killed",
                "--ignored",
                "--nocapture",
            ])
            .env("FLOWHOST_WALVFS_TEST_DIR", tmp.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut committed = 0;
        let mut buffered = None;
        let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        for line in lines {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("committed ") {
                committed = n.parse().unwrap();
            }
            if let Some(n) = line.strip_prefix("in transaction 13, bytes buffered: ") {
                buffered = Some(n.parse::<usize>().unwrap());
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(committed, 12);
        let buffered = buffered.expect("the writer never reached transaction 13");
        assert!(buffered > 0, "nothing of transaction 13 was buffered");
        let conn = open_connection(&tmp.path().join("w.db")).unwrap();
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        let by_txn = rows_by_txn(&conn);
        let want: Vec<(i64, i64)> = (1..=12).map(|txn| (txn, 3000)).collect();
        assert_eq!(by_txn, want);
    }

    /// The child of `a_killed_writer_loses_no_commit`: commits transactions of 3,000 rows
    /// (about 1 MiB of WAL each) and says so after each; in the 13th, with a cache small enough
    /// that its pages spill into the WAL before the commit, it says how many bytes are
    /// buffered and waits to be killed.
    #[test]
    #[ignore = "run by a_killed_writer_loses_no_commit"]
    fn writer_until_killed() {
        let Some(dir) = std::env::var_os("FLOWHOST_WALVFS_TEST_DIR") else {
            return;
        };
        let conn = wal_db(std::path::Path::new(&dir));
        for txn in 1.. {
            if txn == 13 {
                conn.pragma_update(None, "cache_size", 10).unwrap();
            }
            conn.execute_batch("BEGIN").unwrap();
            insert(&conn, txn, 3000, 300);
            if txn == 13 {
                println!(
                    "in transaction 13, bytes buffered: {}",
                    buffered_bytes(&conn)
                );
                loop {
                    std::thread::park();
                }
            }
            conn.execute_batch("COMMIT").unwrap();
            println!("committed {txn}");
        }
    }
}
