//! PostgreSQL connections (`db: postgres://...`): the URL, a pool of connections, and the
//! bridge that lets synchronous code (the store's table calls, which run inside host calls)
//! wait for the async client.
//!
//! Every connection's I/O is driven by a small tokio runtime owned by [`Pg`] (threads named
//! `flowhost-pg`). A `tokio_postgres::Client` only talks to its connection task through
//! channels, so any thread may wait for a query with [`Pg::wait`], a plain
//! `futures::executor::block_on`: a tokio worker of the main runtime blocks on it exactly as
//! it blocks on an SQLite call, and the connection it waits for never runs on that thread.
//!
//! Dead peers are noticed within a bounded time both ways: the client sets TCP keepalives
//! ([`KEEPALIVE_IDLE`], [`KEEPALIVE_INTERVAL`], [`KEEPALIVE_RETRIES`]) and asks the server for
//! the same on its side, plus `client_connection_check_interval`, so that the server ends
//! the session of a node that vanished (rolling back its transaction and releasing its
//! advisory locks) rather than keep it for the kernel's two hours.
//!
//! The password of a URL never leaves this module: [`PgUrl`]'s `Display` and every error
//! show the URL without it. TLS follows the URL's `sslmode` and `sslrootcert` as libpq reads
//! them ([`tls`]).

pub mod tls;

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Idle time before the first keepalive probe, client and server side.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
/// Time between keepalive probes.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
/// Unanswered probes after which a connection counts as dead.
pub const KEEPALIVE_RETRIES: u32 = 3;
/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle connections kept for reuse.
const POOL_MAX_IDLE: usize = 16;

/// Why PostgreSQL could not be used; the text never holds the URL's password.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("`db:` URL `{shown}` is not a valid PostgreSQL URL: {reason}")]
    BadUrl { shown: String, reason: String },
    #[error("cannot connect to PostgreSQL at `{shown}`: {reason}")]
    Connect { shown: String, reason: String },
    #[error("PostgreSQL at `{shown}`: {context}: {reason}")]
    Query {
        shown: String,
        context: String,
        reason: String,
    },
}

/// Whether a `db:` value names PostgreSQL rather than an SQLite file.
pub fn is_postgres_url(db: &str) -> bool {
    let lower = db.trim_start().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// This process's name in a cluster: `HOST-PID-XXXX` (at most 48 bytes), also the
/// `application_name` of every connection it opens (`flowhost NODE`), so the server's
/// `pg_stat_activity` tells which node holds which session.
pub fn node_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        let host: String = host
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
            .take(32)
            .collect();
        let host = if host.is_empty() {
            "node".to_string()
        } else {
            host
        };
        format!(
            "{host}-{}-{:04x}",
            std::process::id(),
            rand::random::<u16>()
        )
    })
}

/// A parsed PostgreSQL URL, shown without its password.
#[derive(Clone)]
pub struct PgUrl {
    config: tokio_postgres::Config,
    shown: String,
    /// TLS as `sslmode` asks (`None`: plain TCP).
    tls: Option<MakeRustlsConnect>,
}

impl PgUrl {
    /// Parses `url` (`postgres://user:password@host:port/dbname?...`).
    pub fn parse(url: &str) -> Result<PgUrl, PgError> {
        let shown = without_password(url);
        let bad = |reason: String| PgError::BadUrl {
            shown: shown.clone(),
            reason,
        };
        let (url, settings) = tls::TlsSettings::split(url).map_err(bad)?;
        let tls = settings.connector().map_err(bad)?;
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| bad(e.to_string()))?;
        if config.get_hosts().is_empty() {
            return Err(PgError::BadUrl {
                shown,
                reason: "it names no host".into(),
            });
        }
        config
            .application_name(format!("flowhost {}", node_id()))
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(KEEPALIVE_IDLE)
            .keepalives_interval(KEEPALIVE_INTERVAL)
            .keepalives_retries(KEEPALIVE_RETRIES);
        // The server's side of the same promise (a user's own `options=` come first).
        let server_side = format!(
            "-c tcp_keepalives_idle={} -c tcp_keepalives_interval={} -c tcp_keepalives_count={} \
             -c client_connection_check_interval={}",
            KEEPALIVE_IDLE.as_secs(),
            KEEPALIVE_INTERVAL.as_secs(),
            KEEPALIVE_RETRIES,
            KEEPALIVE_INTERVAL.as_millis()
        );
        let options = match config.get_options() {
            Some(o) if !o.trim().is_empty() => format!("{o} {server_side}"),
            _ => server_side,
        };
        config.options(options);
        Ok(PgUrl { config, shown, tls })
    }

    /// The URL as it may be shown: the password replaced by `***`.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The same URL for the sessions of another node (`application_name` `flowhost NODE`):
    /// tests run several cluster nodes in one process.
    pub fn for_node(&self, node: &str) -> PgUrl {
        let mut url = self.clone();
        url.config.application_name(format!("flowhost {node}"));
        url
    }

    /// The cluster node whose sessions this URL opens ([`node_id`] unless [`PgUrl::for_node`]).
    pub fn node(&self) -> &str {
        self.config
            .get_application_name()
            .and_then(|a| a.strip_prefix("flowhost "))
            .unwrap_or_else(|| node_id())
    }

    /// The database name (the user's name when the URL gives none, as libpq does).
    pub fn dbname(&self) -> &str {
        self.config
            .get_dbname()
            .or(self.config.get_user())
            .unwrap_or("postgres")
    }
}

impl fmt::Display for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgUrl({})", self.shown)
    }
}

/// `url` with the password of its user-info (if any) replaced by `***`.
fn without_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

/// A pool of connections to one database, and the runtime that drives them. Cloning is cheap.
#[derive(Clone)]
pub struct Pg {
    inner: Arc<PgInner>,
}

struct PgInner {
    url: PgUrl,
    runtime: Option<tokio::runtime::Runtime>,
    idle: Mutex<Vec<Client>>,
}

impl Drop for PgInner {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which a tokio worker may not do: let it go in the background.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl fmt::Debug for Pg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pg({})", self.inner.url.shown)
    }
}

impl Pg {
    /// A pool for `url`; connects once to check that the database answers.
    pub fn connect(url: PgUrl) -> Result<Pg, PgError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("flowhost-pg")
            .enable_all()
            .build()
            .map_err(|e| PgError::Connect {
                shown: url.shown.clone(),
                reason: format!("cannot start its I/O thread: {e}"),
            })?;
        let pg = Pg {
            inner: Arc::new(PgInner {
                url,
                runtime: Some(runtime),
                idle: Mutex::new(Vec::new()),
            }),
        };
        let first = pg.get()?;
        drop(first);
        Ok(pg)
    }

    pub fn url(&self) -> &PgUrl {
        &self.inner.url
    }

    /// Waits on this thread for `fut`, a query on one of this pool's clients. Never call it
    /// from inside a future that runs on the pool's own runtime.
    pub fn wait<F: Future>(&self, fut: F) -> F::Output {
        futures::executor::block_on(fut)
    }

    /// An idle connection, or a new one. It goes back to the pool when dropped, unless it
    /// has closed or [`Conn::discard`] was called.
    pub fn get(&self) -> Result<Conn, PgError> {
        let reused = {
            let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                match idle.pop() {
                    Some(c) if c.is_closed() => continue,
                    other => break other,
                }
            }
        };
        let client = match reused {
            Some(c) => c,
            None => self.open()?,
        };
        Ok(Conn {
            client: Some(client),
            pool: self.inner.clone(),
        })
    }

    /// A connection of its own that never goes back to the pool: for a session whose state
    /// matters (an advisory lock held for as long as the connection lives).
    pub fn dedicated(&self) -> Result<Client, PgError> {
        self.open()
    }

    fn open(&self) -> Result<Client, PgError> {
        let shown = self.inner.url.shown.clone();
        let Some(rt) = &self.inner.runtime else {
            return Err(PgError::Connect {
                shown,
                reason: "the pool is shut down".into(),
            });
        };
        let config = self.inner.url.config.clone();
        let tls = self.inner.url.tls.clone();
        let task = rt.spawn(async move {
            match tls {
                Some(tls) => connect(&config, tls).await,
                None => connect(&config, NoTls).await,
            }
        });
        match futures::executor::block_on(task) {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(PgError::Connect {
                shown,
                reason: error_text(&e),
            }),
            Err(e) => Err(PgError::Connect {
                shown,
                reason: format!("the connection task failed: {e}"),
            }),
        }
    }

    /// A [`PgError::Query`] for `e`, met while doing `context`.
    pub fn error(&self, context: &str, e: &tokio_postgres::Error) -> PgError {
        PgError::Query {
            shown: self.inner.url.shown.clone(),
            context: context.to_string(),
            reason: error_text(e),
        }
    }
}

/// Opens a connection with `tls` and drives it on the current runtime.
async fn connect<T>(
    config: &tokio_postgres::Config,
    tls: T,
) -> Result<Client, tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, connection) = config.connect(tls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "a PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// The server's message for a database error (with its detail), else the client's text.
pub fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(d) => format!("{} ({d})", db.message()),
            None => db.message().to_string(),
        },
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            text
        }
    }
}

/// A pooled connection (see [`Pg::get`]).
pub struct Conn {
    client: Option<Client>,
    pool: Arc<PgInner>,
}

impl Conn {
    pub fn client(&self) -> &Client {
        // Only `discard` and `drop` take the client, and both consume the `Conn`.
        match &self.client {
            Some(c) => c,
            None => unreachable!("a Conn always holds its client until it is dropped"),
        }
    }

    /// Closes the connection instead of returning it to the pool (after an error that may
    /// have left the session in a state the next user must not inherit).
    pub fn discard(mut self) {
        self.client = None;
    }
}

impl std::ops::Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            if !c.is_closed() {
                let mut idle = self.pool.idle.lock().unwrap_or_else(|p| p.into_inner());
                if idle.len() < POOL_MAX_IDLE {
                    idle.push(c);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_never_shown() {
        for (url, shown) in [
            (
                "postgres://flow:s3cret@db.example:5432/audit",
                "postgres://flow:***@db.example:5432/audit",
            ),
            (
                "postgresql://flow:p%40ss@10.0.0.1/audit?sslmode=disable",
                "postgresql://flow:***@10.0.0.1/audit?sslmode=disable",
            ),
            ("postgres://flow@db/audit", "postgres://flow@db/audit"),
            ("postgres://db/audit", "postgres://db/audit"),
        ] {
            assert_eq!(without_password(url), shown, "{url}");
        }
        let bad = PgUrl::parse("postgres://flow:s3cret@db:notaport/audit").err();
        let text = bad.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains("postgres://flow:***@db:notaport/audit"),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
    }

    #[test]
    fn a_bad_tls_setting_is_refused_in_one_line_naming_it() {
        let err = PgUrl::parse("postgres://flow:s3cret@db/audit?sslmode=verify-everything")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("sslmode=`verify-everything`"), "{err}");
        assert!(err.contains("postgres://flow:***@db/audit"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn postgres_urls_are_told_from_paths() {
        assert!(is_postgres_url("postgres://db/x"));
        assert!(is_postgres_url("PostgreSQL://db/x"));
        assert!(!is_postgres_url("/var/lib/flowhost/flowhost.db"));
        assert!(!is_postgres_url("postgres.db"));
    }
}
