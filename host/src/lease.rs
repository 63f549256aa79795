//! Cross-process leases on one database: who may `serve` it, and who holds an exclusive group.
//!
//! `serve`'s scheduler keeps exclusive groups within one process; these leases make them hold
//! between processes too (a second `serve`, a `flowhost run` beside a `serve`). Each lease is
//! an advisory `flock` on a file kept next to the database, in `<db>.locks/`:
//!
//! - `serve.lock`: held for the life of a `serve` process. A second `serve` on the same
//!   database does not start ([`Leases::serve`] fails with [`LeaseError::Busy`]).
//! - `group-<name>.lock`: held for one top-level run of a flow in exclusive group `<name>`,
//!   by whichever process runs it ([`Leases::group`], called by
//!   [`crate::runtime::Runtime::run`]). A run whose group is held waits for it, polling with a
//!   backoff on the async runtime (no worker thread is blocked), at most until the run's
//!   deadline; or, when waiting is turned off ([`Leases::set_wait`], `flowhost run
//!   --no-wait`), fails at once.
//!
//! The kernel releases a `flock` when the file is closed, so a lease ends with its holder
//! however that ends (a return, a panic, SIGKILL): a lease is never left behind. The holder
//! writes its pid and what it is (`flowhost serve`, `flowhost run U03`) into the file, so that
//! the one refused or waiting can name it. A `flock` is per open file: two runs in one process
//! exclude each other as two processes do.
//!
//! In a cluster (several `serve` nodes on one PostgreSQL database, [`Leases::cluster`]) the
//! same two leases change meaning: the `serve` lease is the node's membership of the cluster
//! (several serves allowed: [`crate::cluster::Cluster::join`] registered it), and a group is a
//! session advisory lock ([`crate::cluster::groups`]), released by the server when the
//! holder's connection ends.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The first pause between two tries of a busy lease; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
/// The longest pause between two tries of a busy lease.
const MAX_BACKOFF: Duration = Duration::from_millis(250);
/// The most bytes of a lock file read to name its holder.
const MAX_HOLDER: u64 = 256;

/// Why a lease was not obtained.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Held by another process (or run), and waiting was not asked for.
    #[error("{what} is held by {holder}")]
    Busy { what: String, holder: String },
    /// Still held when the run's deadline came.
    #[error("waited {} ms for {what}, held by {holder}, until the run's deadline; the flow did not start", waited.as_millis())]
    Timeout {
        what: String,
        holder: String,
        waited: Duration,
    },
    #[error("{}: cannot use the lock file: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The cluster's database could not be asked.
    #[error("{0}")]
    Postgres(#[from] crate::pg::PgError),
}

/// A lease held until dropped (the file is closed, or the advisory lock unlocked).
#[derive(Debug)]
pub struct Lease {
    _held: Held,
}

#[derive(Debug)]
enum Held {
    File(#[allow(dead_code)] File),
    Advisory(#[allow(dead_code)] crate::cluster::GroupLock),
    /// A node's membership of its cluster: nothing to release.
    Member,
}

/// The leases of one database.
#[derive(Debug)]
pub struct Leases {
    dir: PathBuf,
    /// In a cluster: its advisory locks instead of the files in `dir`.
    cluster: Option<crate::cluster::Cluster>,
    /// What this process is, as others will read it (`flowhost run U03`).
    label: Mutex<String>,
    /// Whether a busy group is waited for (the default) or refused at once.
    wait: std::sync::atomic::AtomicBool,
}

impl Leases {
    /// The leases of the database at `db`, kept in `<db>.locks/` (created when first used).
    pub fn for_db(db: &Path) -> Leases {
        let mut dir = db.as_os_str().to_owned();
        dir.push(".locks");
        Leases {
            dir: dir.into(),
            cluster: None,
            label: Mutex::new("flowhost".into()),
            wait: true.into(),
        }
    }

    /// The leases of a node of `cluster`: groups are advisory locks on its database, and
    /// [`Leases::serve`] lets any number of nodes serve.
    pub fn cluster(cluster: crate::cluster::Cluster) -> Leases {
        Leases {
            dir: PathBuf::new(),
            cluster: Some(cluster),
            label: Mutex::new("flowhost".into()),
            wait: true.into(),
        }
    }

    /// The cluster these leases belong to, if any.
    pub fn in_cluster(&self) -> Option<&crate::cluster::Cluster> {
        self.cluster.as_ref()
    }

    /// The folder of the lock files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Says what this process is, for whoever finds a lease of it held.
    pub fn set_label(&self, label: &str) {
        *self.label.lock().unwrap_or_else(|p| p.into_inner()) = label.to_string();
    }

    /// Whether a run waits for a busy exclusive group (`true`, the default) or is refused.
    pub fn set_wait(&self, wait: bool) {
        self.wait.store(wait, std::sync::atomic::Ordering::Relaxed);
    }

    /// The `serve` lease: fails at once if another process serves this database.
    pub fn serve(&self) -> Result<Lease, LeaseError> {
        if self.cluster.is_some() {
            return Ok(Lease {
                _held: Held::Member,
            });
        }
        let path = self.dir.join("serve.lock");
        let file = self.open(&path)?;
        match file.try_lock() {
            Ok(()) => self.claim(file, &path),
            Err(std::fs::TryLockError::WouldBlock) => Err(LeaseError::Busy {
                what: format!("database `{}`", self.database().display()),
                holder: holder(&path),
            }),
            Err(std::fs::TryLockError::Error(source)) => Err(LeaseError::Io { path, source }),
        }
    }

    /// The lease of exclusive group `group` for one run; waits while another run (in any
    /// process) holds it, until `deadline`, unless waiting is turned off. The first time it
    /// finds the group held it says so on the log (one line, naming the holder).
    pub async fn group(&self, group: &str, deadline: Instant) -> Result<Lease, LeaseError> {
        if let Some(cluster) = &self.cluster {
            let wait = self.wait.load(std::sync::atomic::Ordering::Relaxed);
            let lock = cluster.lock_group(group, deadline, wait).await?;
            return Ok(Lease {
                _held: Held::Advisory(lock),
            });
        }
        let path = self.dir.join(group_file_name(group));
        let file = self.open(&path)?;
        let what = format!("exclusive group `{group}`");
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        let mut said = false;
        loop {
            match file.try_lock() {
                Ok(()) => return self.claim(file, &path),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(source)) => {
                    return Err(LeaseError::Io { path, source })
                }
            }
            if !self.wait.load(std::sync::atomic::Ordering::Relaxed) {
                let holder = holder(&path);
                return Err(LeaseError::Busy { what, holder });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(LeaseError::Timeout {
                    what,
                    holder: holder(&path),
                    waited: now.saturating_duration_since(started),
                });
            }
            if !said {
                said = true;
                tracing::warn!("waiting for {what}, held by {}...", holder(&path));
            }
            let pause = backoff.min(deadline.saturating_duration_since(now));
            tokio::time::sleep(pause).await;
            backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
        }
    }

    /// The database these leases belong to (`<db>.locks` → `<db>`).
    fn database(&self) -> PathBuf {
        self.dir.with_extension("")
    }

    fn open(&self, path: &Path) -> Result<File, LeaseError> {
        let io = |source| LeaseError::Io {
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)
    }

    /// Writes this process's pid and label into a lock file just taken, as its first line.
    ///
    /// The line is written over the start of the file, never after truncating it: on ext4 a
    /// file truncated to nothing and written again is flushed to disk when it is closed
    /// (`auto_da_alloc`), which cost every run of an exclusive group about a millisecond.
    /// What an older, longer holder left after the new line is never read ([`holder`] reads
    /// the first line only).
    fn claim(&self, file: File, path: &Path) -> Result<Lease, LeaseError> {
        use std::os::unix::fs::FileExt;
        let label = self.label.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let text = format!("{} {label}\n", std::process::id());
        file.write_all_at(text.as_bytes(), 0)
            .map_err(|source| LeaseError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Lease {
            _held: Held::File(file),
        })
    }
}

/// `group-<name>.lock`, with anything but ASCII letters, digits, `-` and `_` written as
/// `%XX`, so that any group name is one safe file name.
fn group_file_name(group: &str) -> String {
    let mut name = String::from("group-");
    for b in group.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            name.push(char::from(b));
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    name.push_str(".lock");
    name
}

/// "pid 123 (flowhost serve)" from a lock file, or "another process" if it says nothing yet.
fn holder(path: &Path) -> String {
    let mut text = String::new();
    let read = File::open(path).and_then(|f| f.take(MAX_HOLDER).read_to_string(&mut text));
    let line = text.lines().next().unwrap_or("");
    match (read, line.split_once(' ')) {
        (Ok(_), Some((pid, label))) if pid.parse::<u32>().is_ok() => {
            let label: String = label.chars().filter(|c| !c.is_control()).collect();
            format!("pid {pid} ({label})")
        }
        _ => "another process".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_become_safe_file_names() {
        assert_eq!(group_file_name("asa"), "group-asa.lock");
        assert_eq!(group_file_name("a/../b c"), "group-a%2F%2E%2E%2Fb%20c.lock");
    }

    #[tokio::test]
    async fn a_held_group_is_refused_or_waited_for_until_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let leases = Leases::for_db(&dir.path().join("f.db"));
        leases.set_label("flowhost test");
        let far = Instant::now() + Duration::from_secs(60);
        let held = leases.group("asa", far).await.unwrap();

        let other = Leases::for_db(&dir.path().join("f.db"));
        other.set_wait(false);
        let err = other.group("asa", far).await.unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "exclusive group `asa` is held by pid {} (flowhost test)",
                std::process::id()
            )
        );
        other.set_wait(true);
        let err = other.group("asa", Instant::now()).await.unwrap_err();
        assert!(matches!(err, LeaseError::Timeout { .. }), "{err}");
        assert!(
            err.to_string().contains("until the run's deadline"),
            "{err}"
        );

        // A later holder with a shorter label is named by its own line only (the file is
        // written over, not truncated).
        drop(held);
        let again = Leases::for_db(&dir.path().join("f.db"));
        again.set_label("run");
        let held = again.group("asa", far).await.unwrap();
        other.set_wait(false);
        let err = other.group("asa", far).await.unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "exclusive group `asa` is held by pid {} (run)",
                std::process::id()
            )
        );
        other.set_wait(true);

        // Another group is free; the same group is free once the holder is gone.
        drop(other.group("other", far).await.unwrap());
        drop(held);
        drop(other.group("asa", far).await.unwrap());
    }
}
