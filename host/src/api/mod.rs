//! API endpoint flows on `serve`'s listener, as Okta Workflows exposes a flow: a flow whose
//! manifest says `api: { token_secret: NAME }` (or the config's `grants.FLOW.api`, for a
//! built-in flow) can be invoked from outside by a client that presents the value of the
//! secret `NAME` in the `x-api-client-token` header. Documented for users in `docs/api.md`.
//!
//! Routes (JSON bodies; errors are `{"error": "..."}`):
//! - `POST /api/flows/{name}/invoke` ([`invoke`]): runs the flow with the body as its input
//!   through [`crate::launch`] (trigger `api`: the same transaction, history, grants and
//!   exclusive groups as `flowhost run`); `?async=true` answers 202 at once.
//! - `GET /api/runs/{id}` ([`runs`]): a run of an API flow, as run history holds it.
//! - `GET /api/flows/{name}/openapi.json` ([`openapi`]): the endpoint's OpenAPI 3.0 document.
//!
//! Decisions:
//! - A flow without `api:` does not exist here: 404 with the same body as an unknown name.
//!   Each route needs the token of the flow it is about ([`auth`]), so no route lists flows.
//! - A wrong or missing token is 401 without saying which; it is logged at warn with the
//!   client's address (never the token) and counted, like every answer, in
//!   `flowhost_api_requests_total{flow, code}` ([`crate::metrics`]), where `flow` is `""`
//!   unless the name is that of an API flow.
//! - Every SQLite read (the flow's on/off switch, a run's record) opens run history read-only
//!   on a blocking thread, as the listener's other routes do: a request never waits for a
//!   run's write lock.

pub mod auth;
pub mod invoke;
pub mod openapi;
pub mod runs;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::listener::Observed;
use crate::manifest::ApiEndpoint;
use crate::registry::FlowEntry;

/// The header that carries the client token (Okta Workflows' name for it).
pub const TOKEN_HEADER: &str = "x-api-client-token";
/// The header that carries the id of the run an invocation started.
pub const RUN_ID_HEADER: &str = "x-flowhost-run-id";

/// The API routes, merged into the listener's router.
pub fn routes() -> Router<Observed> {
    Router::new()
        .route("/api/flows/{name}/invoke", post(invoke::invoke))
        .route("/api/flows/{name}/openapi.json", get(openapi::openapi))
        .route("/api/runs/{id}", get(runs::run))
}

/// A loaded flow that is an API endpoint, and its endpoint settings.
pub struct ApiFlow {
    pub entry: Arc<FlowEntry>,
    pub endpoint: ApiEndpoint,
}

/// The API flow named `name` in the registry `serve` runs now (a reload's grants count).
pub fn api_flow(o: &Observed, name: &str) -> Option<ApiFlow> {
    let registry = o.rt.registry();
    let entry = registry.get(name)?.clone();
    let endpoint = entry.manifest.grants.api.clone()?;
    Some(ApiFlow { entry, endpoint })
}

/// `{"error": message}` with `status`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let message = crate::yaml::one_line(&message.into());
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// The 404 of a name that is not an API flow (unknown, or without `api:`): the same body.
pub fn not_found(name: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no API endpoint flow named `{name}`"),
    )
}

/// Counts `response` in the metrics under `flow` (an API flow's name, or `""`) and returns it.
pub fn counted(o: &Observed, flow: &str, response: Response) -> Response {
    o.watch.metrics.record_api(flow, response.status().as_u16());
    response
}
