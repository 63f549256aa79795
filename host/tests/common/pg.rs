//! A real PostgreSQL server for tests: a throwaway cluster in a temporary folder, started
//! with Debian's `postgresql` binaries (`initdb`, `postgres`) on a loopback port, killed on
//! drop. `cargo xtask test` and `.ci/run` install the package; a test that needs it fails at
//! once naming what to install when the binaries are missing: it never passes without running.
//!
//! `initdb` runs once per build (into `target/flowhost-test-pg/template`, reused by every
//! test binary afterwards); each [`PgServer`] copies that template, so a test pays only for
//! the server's start. PostgreSQL refuses to run as root: as root, the server runs as the
//! `postgres` user the package creates.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What to do when the PostgreSQL binaries are missing.
pub const INSTALL: &str = "install Debian's PostgreSQL server with: apt-get install -y postgresql \
                           (or run `cargo xtask test`, which installs it)";

/// The database user the template cluster is made for (trust authentication on loopback).
pub const USER: &str = "flowhost";

/// A running throwaway cluster; the server and its folder go when it is dropped.
pub struct PgServer {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl PgServer {
    /// Starts a fresh cluster (no databases beyond `postgres`) and waits until it accepts
    /// connections.
    pub fn start() -> PgServer {
        let mut last = String::new();
        // A port picked here may be taken by someone else before the server binds it: retry.
        for _ in 0..5 {
            match PgServer::try_start() {
                Ok(server) => return server,
                Err(log) if log.contains("could not bind") => last = log,
                Err(log) => panic!("postgres did not start:\n{log}"),
            }
        }
        panic!("postgres did not start:\n{last}");
    }

    fn try_start() -> Result<PgServer, String> {
        let bin = bin_dir();
        let template = template(&bin);
        let dir = tempfile::Builder::new()
            .prefix("flowhost-pg-")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        let status = Command::new("cp")
            .arg("-a")
            .arg(&template)
            .arg(&data)
            .status()
            .unwrap();
        assert!(status.success(), "cannot copy the PostgreSQL template");
        let owner = server_user();
        let log = dir.path().join("postgres.log");
        let out = std::fs::File::create(&log).unwrap();
        if let Some((uid, gid)) = owner {
            chown_tree(dir.path(), uid, gid);
        }
        let port = free_port();
        let child = {
            use std::os::unix::process::CommandExt;
            let mut cmd = Command::new(bin.join("postgres"));
            cmd.arg("-D")
                .arg(&data)
                .args(["-p", &port.to_string()])
                .arg("-k")
                .arg(dir.path())
                .args(["-c", "listen_addresses=127.0.0.1"])
                .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
                .args(["-c", "full_page_writes=off", "-c", "max_connections=200"])
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .process_group(0);
            if let Some((uid, gid)) = owner {
                cmd.uid(uid).gid(gid);
            }
            cmd.spawn()
                .unwrap_or_else(|e| panic!("cannot start postgres: {e}; {INSTALL}"))
        };
        let mut server = PgServer {
            child,
            port,
            log,
            _dir: dir,
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Duration::from_secs(60);
        let started = Instant::now();
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if log.contains("ready to accept connections") {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("postgres exited ({status}):\n{log}"));
            }
            if started.elapsed() > deadline {
                return Err(format!(
                    "postgres was not ready within {deadline:?}:\n{log}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// The URL of a new, empty database named `db`.
    pub fn create_db(&self, db: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE \"{db}\""));
        self.url(db)
    }

    /// Runs `sql` in database `db` with `psql`, returning its unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(bin_dir().join("psql"))
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url(db),
            ])
            .args(["-c", sql])
            .output()
            .unwrap_or_else(|e| panic!("cannot run psql: {e}; {INSTALL}"));
        assert!(
            out.status.success(),
            "psql `{sql}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: a signal to our own child's process group (the postmaster and its backends).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The folder with `initdb` and `postgres`: Debian keeps them in
/// `/usr/lib/postgresql/<version>/bin`, off PATH.
pub fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("postgres").is_file() && b.join("initdb").is_file())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    match found.pop() {
        Some(b) => b,
        None => panic!(
            "the PostgreSQL tests need `initdb` and `postgres`, and /usr/lib/postgresql/*/bin \
             has none: {INSTALL}"
        ),
    }
}

/// `(uid, gid)` of the `postgres` user when running as root (PostgreSQL refuses root).
fn server_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = std::ffi::CString::new("postgres").unwrap();
    // SAFETY: getpwnam with a valid C string; the result is read at once, before any other
    // passwd call (tests that start servers do so from one helper, and only read two ints).
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !pw.is_null(),
        "running as root, the PostgreSQL tests start the server as user `postgres`, which \
         does not exist: {INSTALL}"
    );
    // SAFETY: `pw` is non-null and points at getpwnam's static record.
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

fn chown_tree(dir: &Path, uid: u32, gid: u32) {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success(), "cannot chown {}", dir.display());
}

/// The initdb'd template, made once per build and reused.
fn template(bin: &Path) -> PathBuf {
    let root = super::root().join("target/flowhost-test-pg");
    let template = root.join("template");
    if template.join("PG_VERSION").is_file() {
        return template;
    }
    std::fs::create_dir_all(&root).unwrap();
    let work = tempfile::Builder::new()
        .prefix("initdb-")
        .tempdir_in(&root)
        .unwrap();
    let owner = server_user();
    if let Some((uid, gid)) = owner {
        chown_tree(work.path(), uid, gid);
    }
    let data = work.path().join("data");
    let mut cmd = Command::new(bin.join("initdb"));
    cmd.arg("-D")
        .arg(&data)
        .args(["-U", USER, "-A", "trust", "-E", "UTF8", "--locale=C"])
        .args(["--no-sync", "--no-instructions"]);
    if let Some((uid, gid)) = owner {
        use std::os::unix::process::CommandExt;
        cmd.uid(uid).gid(gid);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run initdb: {e}; {INSTALL}"));
    assert!(
        out.status.success(),
        "initdb failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Another test binary may have made it meanwhile: the first rename wins, both are equal.
    if std::fs::rename(&data, &template).is_err() {
        assert!(template.join("PG_VERSION").is_file());
    }
    template
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
