//! A real PostgreSQL server for tests and the benchmark: a throwaway cluster in a temporary
//! folder, started with Debian's `postgresql` binaries (`initdb`, `postgres`) on a loopback
//! port, killed on drop. `cargo xtask test` and `.ci/run` install the package; a test that
//! needs it fails at once naming what to install when the binaries are missing: it never
//! passes without running.
//!
//! `initdb` runs once per build (into `target/flowhost-test-pg/template`, reused by every
//! test binary and bench run afterwards); each [`PgServer`] copies that template, so a user
//! pays only for the server's start. PostgreSQL refuses to run as root: as root, the server
//! runs as the `postgres` user the package creates.
//!
//! [`PgServer::start_tls`] starts one that speaks TLS with the certificate it is given and
//! accepts TCP clients over TLS only (`hostssl` in `pg_hba.conf`; `psql` still comes in over
//! the Unix socket).
//!
//! Tests call the panicking forms ([`PgServer::start`], [`PgServer::psql`], [`bin_dir`]),
//! whose messages carry the install hint; the benchmark calls the `try_` forms and reports
//! the [`Error`] as its own.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What to do when the PostgreSQL binaries are missing.
pub const INSTALL: &str = "install Debian's PostgreSQL server with: apt-get install -y postgresql \
                           (or run `cargo xtask test`, which installs it)";

/// The database user the template cluster is made for (trust authentication on loopback).
pub const USER: &str = "flowhost";

/// How long a server may take to accept connections.
const READY_DEADLINE: Duration = Duration::from_secs(60);

/// Why a throwaway server could not be made, started or used (the text says what to do).
#[derive(Debug)]
pub struct Error {
    message: String,
    /// The server could not bind its port (someone took it meanwhile): worth a retry.
    bind: bool,
}

impl Error {
    fn new(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            bind: false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// A server certificate and its private key, PEM.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A running throwaway cluster; the server and its folder go when it is dropped.
pub struct PgServer {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl PgServer {
    /// Starts a fresh cluster (no databases beyond `postgres`) and waits until it accepts
    /// connections; panics saying why (and what to install) when it cannot.
    pub fn start() -> PgServer {
        PgServer::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`PgServer::start`], returning the reason instead of panicking.
    pub fn try_start() -> Result<PgServer, Error> {
        PgServer::try_start_with(None)
    }

    /// A server that accepts TCP clients over TLS only, with `tls` as its certificate;
    /// panics saying why when it cannot start.
    pub fn start_tls(tls: &ServerTls) -> PgServer {
        PgServer::try_start_with(Some(tls)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_start_with(tls: Option<&ServerTls>) -> Result<PgServer, Error> {
        let mut last = None;
        // A port picked here may be taken by someone else before the server binds it: retry.
        for _ in 0..5 {
            match PgServer::start_once(tls) {
                Ok(server) => return Ok(server),
                Err(e) if e.bind => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::new("postgres did not start")))
    }

    fn start_once(tls: Option<&ServerTls>) -> Result<PgServer, Error> {
        let bin = try_bin_dir()?;
        let template = template(&bin)?;
        let dir = tempfile::Builder::new()
            .prefix("flowhost-pg-")
            .tempdir()
            .map_err(|e| Error::new(format!("cannot make a folder for postgres: {e}")))?;
        let data = dir.path().join("data");
        let status = Command::new("cp")
            .arg("-a")
            .arg(&template)
            .arg(&data)
            .status()
            .map_err(|e| Error::new(format!("cannot run cp: {e}")))?;
        if !status.success() {
            return Err(Error::new(format!(
                "cannot copy the PostgreSQL template {}",
                template.display()
            )));
        }
        if let Some(tls) = tls {
            write_tls(&data, tls)?;
        }
        let owner = server_user()?;
        let log = dir.path().join("postgres.log");
        let out = std::fs::File::create(&log)
            .and_then(|f| Ok((f.try_clone()?, f)))
            .map_err(|e| Error::new(format!("cannot create {}: {e}", log.display())))?;
        if let Some((uid, gid)) = owner {
            chown_tree(dir.path(), uid, gid)?;
        }
        let port = free_port()?;
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
                .args(["-c", if tls.is_some() { "ssl=on" } else { "ssl=off" }])
                .stdin(Stdio::null())
                .stdout(out.0)
                .stderr(out.1)
                .process_group(0);
            if let Some((uid, gid)) = owner {
                cmd.uid(uid).gid(gid);
            }
            cmd.spawn()
                .map_err(|e| Error::new(format!("cannot start postgres: {e}; {INSTALL}")))?
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

    fn wait_ready(&mut self) -> Result<(), Error> {
        let started = Instant::now();
        loop {
            let log = self.log();
            if log.contains("ready to accept connections") {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Error {
                    bind: log.contains("could not bind"),
                    message: format!("postgres exited ({status}):\n{log}"),
                });
            }
            if started.elapsed() > READY_DEADLINE {
                return Err(Error::new(format!(
                    "postgres was not ready within {READY_DEADLINE:?}:\n{log}"
                )));
            }
            // Polling the log file: the server offers no other readiness event to wait on.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's process id: the parent of every other server process (backends,
    /// checkpointer, ...; each of them leads a process group of its own).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// The URL of a new, empty database named `db`; panics when it cannot be made.
    pub fn create_db(&self, db: &str) -> String {
        self.try_create_db(db).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`PgServer::create_db`], returning the reason instead of panicking.
    pub fn try_create_db(&self, db: &str) -> Result<String, Error> {
        self.try_psql("postgres", &format!("CREATE DATABASE \"{db}\""))?;
        Ok(self.url(db))
    }

    /// Runs `sql` in database `db` with `psql`, returning its unaligned, tuples-only output;
    /// panics when psql fails.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`PgServer::psql`], returning the reason instead of panicking.
    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, Error> {
        let out = self.psql_output(db, sql, &[])?;
        Ok(String::from_utf8_lossy(&out).trim().to_string())
    }

    /// Runs `sql` in database `db` with `psql -X -A -t` and these extra arguments (output
    /// format options), returning its raw standard output.
    pub fn psql_output(&self, db: &str, sql: &str, extra: &[&str]) -> Result<Vec<u8>, Error> {
        let out = Command::new(try_bin_dir()?.join("psql"))
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url(db),
            ])
            .args(extra)
            .args(["-c", sql])
            .output()
            .map_err(|e| Error::new(format!("cannot run psql: {e}; {INSTALL}")))?;
        if !out.status.success() {
            return Err(Error::new(format!(
                "psql `{sql}` failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(out.stdout)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // A pid beyond pid_t cannot be ours; then only the child itself is killed below.
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: a signal to our own child's process group (the postmaster and its
            // backends).
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Puts `tls` in the data folder (`server.crt`, a 0600 `server.key`, as `ssl=on` reads them)
/// and lets TCP clients in over TLS only.
fn write_tls(data: &Path, tls: &ServerTls) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let write = |name: &str, text: &str, mode: u32| {
        let path = data.join(name);
        std::fs::write(&path, text)
            .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)))
            .map_err(|e| Error::new(format!("cannot write {}: {e}", path.display())))
    };
    write("server.crt", &tls.cert_pem, 0o644)?;
    write("server.key", &tls.key_pem, 0o600)?;
    write(
        "pg_hba.conf",
        &format!(
            "local all all trust\nhostssl all {USER} 127.0.0.1/32 trust\nhostssl all {USER} ::1/128 trust\n"
        ),
        0o600,
    )
}

/// The folder with `initdb` and `postgres` (Debian keeps them in
/// `/usr/lib/postgresql/<version>/bin`, off PATH); panics with the install hint when absent.
pub fn bin_dir() -> PathBuf {
    try_bin_dir().unwrap_or_else(|e| panic!("{e}"))
}

/// [`bin_dir`], returning the reason instead of panicking.
pub fn try_bin_dir() -> Result<PathBuf, Error> {
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
    found.pop().ok_or_else(|| {
        Error::new(format!(
            "a throwaway PostgreSQL server needs `initdb` and `postgres`, and \
             /usr/lib/postgresql/*/bin has none: {INSTALL}"
        ))
    })
}

/// `(uid, gid)` of the `postgres` user when running as root (PostgreSQL refuses root).
fn server_user() -> Result<Option<(u32, u32)>, Error> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    // SAFETY: getpwnam with a valid NUL-terminated C string; the result is read at once,
    // before any other passwd call (only two ints are read).
    let pw = unsafe { libc::getpwnam(c"postgres".as_ptr()) };
    if pw.is_null() {
        return Err(Error::new(format!(
            "running as root, a throwaway PostgreSQL server runs as user `postgres`, which \
             does not exist: {INSTALL}"
        )));
    }
    // SAFETY: `pw` is non-null and points at getpwnam's static record.
    Ok(Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) }))
}

fn chown_tree(dir: &Path, uid: u32, gid: u32) -> Result<(), Error> {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(dir)
        .status()
        .map_err(|e| Error::new(format!("cannot run chown: {e}")))?;
    if !status.success() {
        return Err(Error::new(format!("cannot chown {}", dir.display())));
    }
    Ok(())
}

/// Where the template goes: the workspace's `target/flowhost-test-pg`.
fn template_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/flowhost-test-pg")
}

/// The initdb'd template, made once per build and reused.
fn template(bin: &Path) -> Result<PathBuf, Error> {
    let root = template_root();
    let template = root.join("template");
    if template.join("PG_VERSION").is_file() {
        return Ok(template);
    }
    std::fs::create_dir_all(&root)
        .map_err(|e| Error::new(format!("cannot create {}: {e}", root.display())))?;
    let work = tempfile::Builder::new()
        .prefix("initdb-")
        .tempdir_in(&root)
        .map_err(|e| Error::new(format!("cannot make a folder in {}: {e}", root.display())))?;
    let owner = server_user()?;
    if let Some((uid, gid)) = owner {
        chown_tree(work.path(), uid, gid)?;
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
        .map_err(|e| Error::new(format!("cannot run initdb: {e}; {INSTALL}")))?;
    if !out.status.success() {
        return Err(Error::new(format!(
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    // Another process may have made it meanwhile: the first rename wins, both are equal.
    if std::fs::rename(&data, &template).is_err() && !template.join("PG_VERSION").is_file() {
        return Err(Error::new(format!(
            "cannot move the initdb'd cluster to {}",
            template.display()
        )));
    }
    Ok(template)
}

fn free_port() -> Result<u16, Error> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::new(format!("cannot find a free loopback port: {e}")))
}
