//! `serve`'s web console (issue 17.2), on the listener's routes ([`crate::listener`]):
//! server-rendered HTML pages (maud templates, which escape every value) and one embedded CSS
//! file; no script, no external asset, so the binary stays self-contained.
//!
//! Off unless the config says `console:` ([`crate::config::ConsoleAccess`]): then every route
//! here answers 404 like an unknown path. Who may open it, and the CSRF / DNS-rebinding
//! guards of every request, are [`auth`]'s. Pages, one file per family:
//! - [`flows`]: `/` (every flow: title, schedule, on/off switch, last runs, next tick) and
//!   `/flows/NAME` (description, grants, recent runs, the run form);
//! - [`runs`]: `/runs` (filtered by flow and status, paged) and `/runs/ID` (input, output,
//!   error, logs, child calls: history as it is kept, secrets already redacted);
//! - [`tables`]: `/tables`, `/tables/NAME` (paged rows, a substring search on one column) and
//!   `/tables/NAME/csv` (the same CSV `flowhost table export` writes, streamed);
//! - [`asa`]: `/asa`, the ASA package's checkpoints, newest event, lag and Execution Log.
//!
//! Every SQLite read runs on a blocking thread over read-only handles ([`read`]), so a page
//! never waits for a run's write lock and never slows the scheduler. The only writes are the
//! on/off switches (history's switch table, as `flowhost flow enable|disable` writes it) and
//! the runs the form starts ([`crate::launch`], trigger `console`).

pub mod asa;
pub mod auth;
pub mod flows;
pub mod layout;
pub mod runs;
pub mod tables;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::history::History;
use crate::listener::Observed;
use crate::registry::Registry;
use crate::store::Store;

/// Rows or runs per page.
pub const PAGE_SIZE: u32 = 50;

/// The console's routes, merged into the listener's.
pub fn routes() -> Router<Observed> {
    Router::new()
        .route("/", get(flows::list))
        .route("/flows/{name}", get(flows::show))
        .route("/flows/{name}/run", post(flows::run))
        .route("/flows/{name}/enable", post(flows::enable))
        .route("/flows/{name}/disable", post(flows::disable))
        .route("/runs", get(runs::list))
        .route("/runs/{id}", get(runs::show))
        .route("/tables", get(tables::list))
        .route("/tables/{name}", get(tables::show))
        .route("/tables/{name}/csv", get(tables::csv))
        .route("/asa", get(asa::show))
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .route(layout::CSS_PATH, get(layout::css))
        .layer(axum::middleware::map_response(security_headers))
}

/// Says at `serve`'s start where the console is, and when token mode cannot let anybody in
/// because the secret is not set (the console then answers 503 naming it).
pub fn log_start(rt: &crate::runtime::Runtime, config: &crate::config::Config, addr: SocketAddr) {
    use crate::config::ConsoleAccess;
    match &config.console {
        None => {}
        Some(ConsoleAccess::Loopback) => {
            tracing::info!("console on http://{addr}/ (clients on this machine only)")
        }
        Some(ConsoleAccess::Token { secret }) => {
            if rt.secrets.get(secret).is_some_and(|t| !t.is_empty()) {
                tracing::info!("console on http://{addr}/ (operator token required)")
            } else {
                tracing::error!("{}", auth::missing_token(secret))
            }
        }
    }
}

/// On every console response: no framing, no sniffing, no script, nothing from elsewhere.
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// What a page reads: run history and the tables (read-only; `None` while the database does
/// not exist yet) and the flows `serve` runs.
pub struct Db {
    pub history: Option<History>,
    pub store: Option<Store>,
    pub registry: Arc<Registry>,
}

/// Runs `work` over read-only handles on a blocking thread; an error becomes a 500 page
/// with its one line.
pub async fn read<T: Send + 'static>(
    o: &Observed,
    work: impl FnOnce(&Db) -> Result<T, String> + Send + 'static,
) -> Result<T, Response> {
    let (o, registry) = (o.clone(), o.rt.registry());
    let job = move || -> Result<T, String> {
        let read = o.reader().map_err(|e| e.to_string())?;
        work(&Db {
            history: read.history,
            store: read.store,
            registry,
        })
    };
    match tokio::task::spawn_blocking(job).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            &crate::yaml::one_line(&e),
        )),
        Err(e) => Err(failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the read failed: {e}"),
        )),
    }
}

/// Why a console request gets no page of its own (small, unlike a [`Response`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 404 with no body, as for an unknown path (the console is off).
    NotFound,
    /// A 303 to the login form.
    Login,
    /// A page saying why, in one line.
    Failure(StatusCode, String),
    /// 429: the client's address presented too many wrong tokens; again after this long.
    Throttled(std::time::Duration),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::NotFound => StatusCode::NOT_FOUND.into_response(),
            Refusal::Login => see_other("/login"),
            Refusal::Failure(status, why) => failure(status, &why),
            Refusal::Throttled(wait) => {
                let secs = crate::throttle::retry_after_secs(wait);
                let why =
                    format!("Too many wrong tokens from this address: try again in {secs} s.");
                crate::throttle::with_retry_after(
                    failure(StatusCode::TOO_MANY_REQUESTS, &why),
                    secs,
                )
            }
        }
    }
}

/// A page saying what went wrong, in one line.
pub fn failure(status: StatusCode, why: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = maud::html! {
        h1 { (title) }
        p.error #error { (why) }
    };
    html(status, layout::page(title, body))
}

/// An HTML response.
pub fn html(status: StatusCode, markup: maud::Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// A 303 to `location` (a path of this console).
pub fn see_other(location: &str) -> Response {
    let value = HeaderValue::from_str(location).unwrap_or_else(|_| HeaderValue::from_static("/"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response()
}

/// Bytes escaped in a path segment or a query value: everything but letters, digits and
/// `-._~`.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `text` percent-encoded for a path segment or a query value.
pub fn enc(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// `/flows/NAME`.
pub fn flow_path(name: &str) -> String {
    format!("/flows/{}", enc(name))
}

/// `/runs/ID`.
pub fn run_path(id: i64) -> String {
    format!("/runs/{id}")
}

/// `/tables/NAME`.
pub fn table_path(name: &str) -> String {
    format!("/tables/{}", enc(name))
}

/// A query string (`?k=v&...`) of the pairs whose value is not empty (`""` when none is).
pub fn query(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// `page=N` (1-based, default 1) as the offset of its first item; `Err` names the bad value.
pub fn page_offset(page: Option<&str>) -> Result<(u64, u64), String> {
    let page = match page.map(str::trim).filter(|p| !p.is_empty()) {
        None => 1,
        Some(p) => p
            .parse::<u64>()
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| format!("page: `{p}` is not a page number (1, 2, ...)"))?,
    };
    let offset = (page - 1)
        .checked_mul(u64::from(PAGE_SIZE))
        .ok_or_else(|| format!("page: `{page}` is too large"))?;
    Ok((page, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_queries_are_encoded() {
        assert_eq!(table_path("Audit Events"), "/tables/Audit%20Events");
        assert_eq!(flow_path("a/b?c"), "/flows/a%2Fb%3Fc");
        assert_eq!(
            query(&[("column", "note"), ("q", "%' OR 1=1 --"), ("page", "")]),
            "?column=note&q=%25%27%20OR%201%3D1%20--"
        );
        assert_eq!(query(&[("flow", "")]), "");
    }

    #[test]
    fn pages_start_at_one() {
        assert_eq!(page_offset(None), Ok((1, 0)));
        assert_eq!(page_offset(Some("3")), Ok((3, 2 * u64::from(PAGE_SIZE))));
        assert!(page_offset(Some("0")).unwrap_err().starts_with("page: `0`"));
        assert!(page_offset(Some("x")).is_err());
        assert_eq!(
            page_offset(Some(&u64::MAX.to_string())).unwrap_err(),
            format!("page: `{}` is too large", u64::MAX)
        );
    }
}
