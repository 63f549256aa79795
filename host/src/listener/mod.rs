//! `serve`'s HTTP listener (axum): off unless the config says `listen:` or `serve --listen`
//! gives an address. A bare port (`9464`, `:9464`) means loopback (`127.0.0.1`), so metrics
//! are never exposed to the network by accident.
//!
//! Routes (plain text bodies, one line):
//! - `GET /healthz`: 200 while the scheduler loop runs, from its heartbeat
//!   ([`crate::watch::Watch`]); 503 once it stalls or stops (shutdown), although the process
//!   and this listener still live.
//! - `GET /readyz`: 503 while M10's last run failed (error or timeout), while the newest
//!   stored ASA event is further behind than `readiness.max_lag` (when configured; a quiet team
//!   makes no events, so the lag alone says nothing unless the operator gives a bound), or
//!   while `/healthz` would fail; 200 otherwise. The body says why.
//! - `GET /metrics`: [`crate::metrics`], OpenMetrics text.
//! - the API endpoint flows' routes, `/api/...`: [`crate::api`].
//!
//! Connections are served by hyper's HTTP/1 builder with a header-read timeout
//! ([`HEADER_READ_TIMEOUT`]): a client that does not finish sending a request's headers in
//! time has its connection closed, so slow clients cannot hold connections open once the
//! listener faces a network. Each request carries its client as a
//! [`crate::client_addr::ClientAddr`]: the connection's peer, or the address a trusted proxy
//! forwarded (`trusted_proxies:`). TLS is a reverse proxy's job (`docs/api.md`).
//!
//! The settings a reload may change ([`settings`]) are read at each request.
//!
//! `/readyz` and `/metrics` read the status snapshot ([`crate::status::snapshot`]) at each
//! request, from the registry `serve` runs and the databases opened read-only, on a blocking
//! thread: a scrape never waits for a run's write lock and never slows the scheduler.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

mod settings;

pub use settings::{LiveSettings, Settings};

use crate::history::RunStatus;
use crate::runtime::Runtime;
use crate::status::Status;
use crate::watch::{Health, Watch};

/// The flow whose last run decides readiness.
pub const MAIN_FLOW: &str = "M10";

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("--listen: {0}")]
    Flag(String),
    #[error("cannot listen on {addr}: {source} (fix `listen:` in the config or --listen)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// `9464`, `:9464` (both `127.0.0.1:9464`), `0.0.0.0:9464`, `[::1]:9464`.
pub fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    let t = text.trim();
    let port = t.strip_prefix(':').unwrap_or(t);
    if !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()) {
        return port
            .parse::<u16>()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .map_err(|_| format!("port `{t}` is out of range (0 to 65535)"));
    }
    t.parse::<SocketAddr>().map_err(|_| {
        format!(
            "`{t}` is not a port or an IP:PORT address (e.g. 9464 for 127.0.0.1:9464, \
             0.0.0.0:9464, [::1]:9464)"
        )
    })
}

/// Binds what `serve` was asked to listen on: `flag` (`--listen`), else `configured`
/// (`listen:`); `None` when neither is given.
pub async fn bind_configured(
    flag: Option<&str>,
    configured: Option<SocketAddr>,
) -> Result<Option<Listener>, ListenError> {
    let addr = match flag {
        Some(text) => Some(parse_addr(text).map_err(ListenError::Flag)?),
        None => configured,
    };
    match addr {
        Some(addr) => Ok(Some(bind(addr).await?)),
        None => Ok(None),
    }
}

/// A bound listener, not yet serving.
pub struct Listener {
    inner: tokio::net::TcpListener,
    addr: SocketAddr,
}

/// Binds `addr` (port 0: any free port; [`Listener::local_addr`] says which).
pub async fn bind(addr: SocketAddr) -> Result<Listener, ListenError> {
    let inner = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ListenError::Bind { addr, source })?;
    let addr = inner
        .local_addr()
        .map_err(|source| ListenError::Bind { addr, source })?;
    Ok(Listener { inner, addr })
}

/// What the routes read.
#[derive(Clone)]
pub struct Observed {
    pub rt: Arc<Runtime>,
    /// The database (see [`Observed::reader`] for what a page reads).
    pub db: crate::database::Database,
    pub watch: Arc<Watch>,
    /// The settings a reload may change: read them at each request.
    pub settings: LiveSettings,
    /// The console's log-in attempts per client address.
    pub logins: Arc<crate::throttle::LoginThrottle>,
    /// Wrong tokens per client address (API endpoint flows, the console's Bearer token).
    pub guesses: Arc<crate::throttle::GuessThrottle>,
}

impl Observed {
    /// What a page reads (blocking: call it on a blocking thread): for SQLite the files
    /// opened read-only for this request, for PostgreSQL the process's own pool.
    pub fn reader(&self) -> Result<crate::database::ReadOnlyDatabase, crate::store::StoreError> {
        self.db.reader(&self.rt.store, &self.rt.history)
    }
}

impl Listener {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves the routes for `serve` over `rt` and `config` until the process ends, logging
    /// the address it listens on; returns what to give the scheduler: the [`Watch`], and the
    /// [`Started`] listener, to apply a reloaded config to.
    pub fn start(self, rt: Arc<Runtime>, config: &crate::config::Config) -> Started {
        let watch = Arc::new(Watch::default());
        let addr = self.local_addr();
        crate::console::log_start(&rt, config, addr);
        let settings = LiveSettings::new(Settings::of(config));
        self.serve(Observed {
            rt,
            db: config.db.clone(),
            watch: watch.clone(),
            settings: settings.clone(),
            logins: Arc::default(),
            guesses: Arc::default(),
        });
        let console = if config.console.is_some() {
            ", the console at /"
        } else {
            ""
        };
        tracing::info!("listening on http://{addr} (/healthz, /readyz, /metrics, /api/{console})");
        Started {
            watch,
            settings,
            addr,
        }
    }

    /// Serves the routes until the process ends (errors are logged).
    pub fn serve(self, observed: Observed) -> tokio::task::JoinHandle<()> {
        let settings = observed.settings.clone();
        let app = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .merge(crate::api::routes())
            .merge(crate::console::routes())
            .with_state(observed);
        tokio::spawn(accept(self.inner, app, settings))
    }
}

/// A listener `serve` started: its [`Watch`] for the scheduler, and its settings, which a
/// reload changes ([`Started::reload`]).
pub struct Started {
    pub watch: Arc<Watch>,
    settings: LiveSettings,
    addr: SocketAddr,
}

impl Started {
    /// Applies `config`'s listener settings to the next requests, and logs which changed
    /// (and, when the console changed, where it is now, as at the start).
    pub fn reload(&self, rt: &Runtime, config: &crate::config::Config) {
        let changed = self.settings.apply(config);
        if changed.is_empty() {
            return;
        }
        tracing::info!(
            settings = %changed.join(", "),
            "config reload: the listener's settings changed"
        );
        if changed.contains(&"console") {
            if config.console.is_none() {
                tracing::info!("console off");
            }
            crate::console::log_start(rt, config, self.addr);
        }
    }
}

/// How long a client may take to send a request's headers (from the connection's start, or
/// from the end of the previous response); then its connection is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections until the process ends, each served on its own task.
async fn accept(listener: tokio::net::TcpListener, app: Router, settings: LiveSettings) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, typically: back off instead of spinning.
                tracing::warn!(error = %e, "the HTTP listener cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        tokio::spawn(connection(stream, peer, app.clone(), settings.clone()));
    }
}

/// Serves one connection: HTTP/1 with [`HEADER_READ_TIMEOUT`], the client (`peer`, or whom a
/// proxy trusted at the time of the request forwarded) in each request.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    settings: LiveSettings,
) {
    let service =
        hyper::service::service_fn(move |request: axum::http::Request<hyper::body::Incoming>| {
            let mut request = request.map(axum::body::Body::new);
            let client = settings.get().trusted.client(peer, request.headers());
            request.extensions_mut().insert(client);
            tower::Service::call(&mut app.clone(), request)
        });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .with_upgrades()
        .await;
    if let Err(e) = served {
        tracing::debug!(%peer, error = %e, "an HTTP connection ended with an error");
    }
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body + "\n",
    )
        .into_response()
}

/// Why the scheduler is not healthy, if it is not.
fn unhealthy(watch: &Watch) -> Option<String> {
    match watch.health() {
        Health::Running(_) => None,
        Health::Stalled(since) => Some(format!(
            "the scheduler loop has not run for {}s",
            since.as_secs()
        )),
        Health::Stopped => Some("the scheduler is stopping: it starts no more runs".into()),
    }
}

async fn healthz(State(o): State<Observed>) -> Response {
    match unhealthy(&o.watch) {
        None => text(StatusCode::OK, "ok: the scheduler is running".into()),
        Some(why) => text(StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

async fn readyz(State(o): State<Observed>) -> Response {
    if let Some(why) = unhealthy(&o.watch) {
        return text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}"));
    }
    let max_lag = o.settings.get().max_lag;
    match status_of(o).await {
        Ok(status) => match readiness(&status, max_lag) {
            Ok(why) => text(StatusCode::OK, why),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, why),
        },
        Err(e) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: cannot read the status: {e}"),
        ),
    }
}

async fn metrics(State(o): State<Observed>) -> Response {
    let watch = o.watch.clone();
    let status = match status_of(o).await {
        Ok(s) => s,
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot read the status: {e}"),
            )
        }
    };
    match watch.metrics.encode(&figures(&status)) {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
            body,
        )
            .into_response(),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the metrics: {e}"),
        ),
    }
}

/// The status snapshot, from the databases opened read-only, on a blocking thread.
async fn status_of(o: Observed) -> Result<Status, String> {
    let work = move || -> Result<Status, String> {
        let read = o.reader().map_err(|e| e.to_string())?;
        let registry = o.rt.registry();
        crate::status::snapshot(
            &registry,
            read.history.as_ref(),
            read.store.as_ref(),
            SystemTime::now(),
        )
        .map_err(|e| e.to_string())
    };
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| format!("the status read failed: {e}"))?
        .map_err(|e| crate::yaml::one_line(&e))
}

/// `Ok(why)` when ready, `Err(why)` when not: M10's last run failed, or the ASA lag is past
/// `max_lag`.
pub fn readiness(status: &Status, max_lag: Option<Duration>) -> Result<String, String> {
    let main = status.flows.iter().find(|f| f.name == MAIN_FLOW);
    let last = main.and_then(|f| f.last_run.as_ref());
    let mut why = Vec::new();
    match last {
        Some(r) if matches!(r.status, RunStatus::Error | RunStatus::Timeout) => {
            let error = r.error.as_deref().unwrap_or("no error text");
            let first = error.lines().next().unwrap_or_default();
            return Err(format!(
                "not ready: {MAIN_FLOW}'s last run (run {}) ended {}: {}",
                r.id,
                r.status.as_str(),
                crate::yaml::one_line(first)
            ));
        }
        Some(r) => why.push(format!(
            "{MAIN_FLOW}'s last run (run {}) is {}",
            r.id,
            r.status.as_str()
        )),
        None if main.is_some() => why.push(format!("{MAIN_FLOW} has not run yet")),
        None => why.push(format!("{MAIN_FLOW} is not loaded")),
    }
    let lag = status.asa.as_ref().and_then(|a| a.lag_seconds);
    match (lag, max_lag) {
        (Some(lag), Some(max)) if lag > max.as_secs() => {
            return Err(format!(
            "not ready: the newest stored ASA event is {lag}s behind, over readiness.max_lag ({})",
            crate::manifest::format_duration(max)
        ))
        }
        (Some(lag), _) => why.push(format!("the ASA lag is {lag}s")),
        (None, _) => {}
    }
    Ok(format!("ready: {}", why.join("; ")))
}

/// The snapshot figures `/metrics` shows.
fn figures(status: &Status) -> crate::metrics::Snapshot {
    let unix = |t: &str| {
        t.parse::<jiff::Timestamp>()
            .ok()
            .map(|t| t.as_millisecond() as f64 / 1000.0)
    };
    let last_success = status
        .flows
        .iter()
        .filter_map(|f| Some((f.name.clone(), unix(f.last_success.as_deref()?)?)))
        .collect();
    let asa = status.asa.as_ref();
    crate::metrics::Snapshot {
        last_success,
        table_rows: asa
            .map(|a| a.rows.iter().map(|(t, n)| (t.clone(), *n)).collect())
            .unwrap_or_default(),
        events_stored: asa.and_then(|a| a.rows.get(crate::status::AUDIT_EVENTS).copied()),
        lag_seconds: asa.and_then(|a| a.lag_seconds).map(|l| l as f64),
        rate_limit_remaining: asa
            .map(|a| {
                a.rate_limits
                    .iter()
                    .filter_map(|r| {
                        let remaining = i64::try_from(r.remaining?).ok()?;
                        Some((r.origin.clone(), remaining))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        rejected_events: asa.map(|a| a.rejected_events),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{AsaStatus, FlowStatus, LastRun};

    #[test]
    fn a_bare_port_means_loopback() {
        for text in ["9464", ":9464", " 9464 "] {
            assert_eq!(parse_addr(text).unwrap(), "127.0.0.1:9464".parse().unwrap());
        }
        assert_eq!(
            parse_addr("0.0.0.0:9464").unwrap(),
            "0.0.0.0:9464".parse().unwrap()
        );
        assert_eq!(
            parse_addr("[::1]:9464").unwrap(),
            "[::1]:9464".parse().unwrap()
        );
        assert!(parse_addr("65536").unwrap_err().contains("out of range"));
        assert!(parse_addr("localhost").unwrap_err().contains("not a port"));
    }

    fn status(last: Option<RunStatus>, lag: Option<u64>) -> Status {
        Status {
            at: "2026-01-01T00:00:00.000Z".into(),
            flows: vec![FlowStatus {
                name: MAIN_FLOW.into(),
                enabled: true,
                schedule: Some("every 5m".into()),
                last_run: last.map(|status| LastRun {
                    id: 7,
                    trigger: crate::history::Trigger::Schedule,
                    status,
                    started: "2026-01-01T00:00:00.000Z".into(),
                    ended: None,
                    duration_ms: None,
                    error: Some("GET …: HTTP 500\nmore".into()),
                }),
                consecutive_failures: 0,
                last_success: None,
                next_tick: None,
            }],
            asa: Some(AsaStatus {
                newest_event: None,
                lag_seconds: lag,
                rows: Default::default(),
                rate_limits: Vec::new(),
                teams: Vec::new(),
                rejected_events: 0,
            }),
            nodes: Vec::new(),
        }
    }

    #[test]
    fn readiness_follows_m10_and_the_lag_bound() {
        let hour = Some(Duration::from_secs(3600));
        assert_eq!(
            readiness(&status(Some(RunStatus::Ok), Some(3600)), hour),
            Ok("ready: M10's last run (run 7) is ok; the ASA lag is 3600s".into())
        );
        assert_eq!(
            readiness(&status(Some(RunStatus::Ok), Some(3601)), hour),
            Err("not ready: the newest stored ASA event is 3601s behind, over readiness.max_lag (1h)".into())
        );
        // Without a bound the lag does not count (a quiet team makes no events).
        assert!(readiness(&status(Some(RunStatus::Ok), Some(1 << 40)), None).is_ok());
        for failed in [RunStatus::Error, RunStatus::Timeout] {
            let why = readiness(&status(Some(failed), Some(0)), hour).unwrap_err();
            assert_eq!(
                why,
                format!(
                    "not ready: M10's last run (run 7) ended {}: GET …: HTTP 500",
                    failed.as_str()
                )
            );
        }
        assert_eq!(
            readiness(&status(None, None), hour),
            Ok("ready: M10 has not run yet".into())
        );
    }
}
