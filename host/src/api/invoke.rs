//! `POST /api/flows/{name}/invoke`: runs an API endpoint flow with the request body as its
//! input, as a top-level run with trigger `api` ([`crate::launch`]).
//!
//! In order: the name must be an API flow (404), the token its token (401), the flow switched
//! on (409, as an Okta Workflows endpoint of a flow that is off does not run; the console and
//! `flowhost run` still run it), the body at most `api_max_body` (413) and JSON (400, naming
//! the line and column; an empty body is `{}`). Then the run is recorded and started, and the
//! answer is its output (200, `application/json`, the run id in `x-flowhost-run-id`), or
//! `{"run", "status", "error"}` (500) when it failed; with `?async=true`, 202
//! `{"run", "status": "running", "href": "/api/runs/ID"}` at once. Once `serve` is shutting
//! down no run starts: 503. Nothing is recorded for a request refused before the run starts.

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::BodyExt;

use super::{api_flow, auth, counted, error, not_found, ApiFlow, RUN_ID_HEADER};
use crate::history::Trigger;
use crate::launch::{launch, LaunchError};
use crate::listener::Observed;
use crate::runtime::RunError;

#[derive(serde::Deserialize)]
pub struct InvokeQuery {
    /// `?async=true`: answer 202 with the run's id at once.
    #[serde(default, rename = "async")]
    asynchronous: bool,
}

pub async fn invoke(
    State(o): State<Observed>,
    Path(name): Path<String>,
    query: Result<Query<InvokeQuery>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Response {
    let Some(flow) = api_flow(&o, &name) else {
        return counted(&o, "", not_found(&name));
    };
    let answer = answer(&o, &flow, query, request).await;
    counted(&o, &name, answer)
}

async fn answer(
    o: &Observed,
    flow: &ApiFlow,
    query: Result<Query<InvokeQuery>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Response {
    let name = flow.entry.manifest.name.as_str();
    let (parts, body) = request.into_parts();
    if let Err(refused) = auth::authorize(o, flow, &parts.headers, &parts.extensions) {
        return refused.into_response();
    }
    let asynchronous = match query {
        Ok(Query(q)) => q.asynchronous,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("bad query string: {} (e.g. ?async=true)", e.body_text()),
            )
        }
    };
    match switched_on(o, flow).await {
        Ok(true) => {}
        Ok(false) => {
            return error(
                StatusCode::CONFLICT,
                format!(
                    "flow {name} is switched off, so its endpoint does not run it \
                     (`flowhost flow enable {name}` switches it on)"
                ),
            )
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
    let cap = o.settings.get().api_max_body;
    let bytes = match http_body_util::Limited::new(body, cap).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body is over the limit of {} (`api_max_body:` in the config)",
                    crate::manifest::format_size(cap)
                ),
            )
        }
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            )
        }
    };
    let input = match input_of(&bytes) {
        Ok(input) => input,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    let launched = match launch(&o.rt, &o.watch, name, &input, Trigger::Api) {
        Ok(l) => l,
        Err(LaunchError::ShuttingDown) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "serve is shutting down: it starts no more runs",
            )
        }
        Err(LaunchError::Run(RunError::BadInput { message, .. })) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not valid JSON: {message}"),
            )
        }
        Err(LaunchError::Run(RunError::UnknownFlow { .. })) => return not_found(name),
        Err(e) => {
            let text = o.rt.secrets.redact(&e.to_string()).into_owned();
            return error(StatusCode::INTERNAL_SERVER_ERROR, text);
        }
    };
    let id = launched.id;
    if asynchronous {
        let href = format!("/api/runs/{id}");
        let body = serde_json::json!({"run": id, "status": "running", "href": href});
        let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
        if let Ok(v) = HeaderValue::from_str(&href) {
            response.headers_mut().insert(header::LOCATION, v);
        }
        return with_run_id(response, id);
    }
    let report = launched.done.await.ok().flatten();
    let response = match report {
        Some(r) if r.ok() => {
            let output = r.output.as_deref().unwrap_or("null");
            let output = o.rt.secrets.redact(output).into_owned();
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                output,
            )
                .into_response()
        }
        Some(r) => failed(id, r.status.as_str(), r.error.as_deref()),
        // It could not go on, or panicked: history says how it ended.
        None => match super::runs::record(o, id).await {
            Ok(Some(r)) => failed(id, r.status.as_str(), r.error.as_deref()),
            Ok(None) => failed(id, "error", Some("the run ended without a record")),
            Err(e) => failed(id, "error", Some(&e)),
        },
    };
    with_run_id(response, id)
}

/// The 500 of a run that did not succeed (its error is redacted already, as in history).
fn failed(id: i64, status: &str, error: Option<&str>) -> Response {
    let body = serde_json::json!({"run": id, "status": status, "error": error});
    (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
}

fn with_run_id(mut response: Response, id: i64) -> Response {
    response
        .headers_mut()
        .insert(RUN_ID_HEADER, HeaderValue::from(id));
    response
}

/// The run's input: the body, `{}` when it is empty; strict JSON (a repeated field is
/// refused) with the line and column of the fault.
pub fn input_of(body: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(body).map_err(|e| {
        format!(
            "the body is not UTF-8 text (at byte {}); send JSON",
            e.valid_up_to()
        )
    })?;
    crate::launch::input(text).map_err(|e| format!("the body is not valid JSON: {e}"))
}

/// Whether `serve` runs `flow` now (`flowhost flow enable|disable`, else its manifest), read
/// from run history opened read-only on a blocking thread.
async fn switched_on(o: &Observed, flow: &ApiFlow) -> Result<bool, String> {
    let name = flow.entry.manifest.name.clone();
    let o = o.clone();
    let read = move || -> Result<Option<bool>, String> {
        let read = o.reader().map_err(|e| e.to_string())?;
        match read.history {
            Some(history) => history.switch(&name).map_err(|e| e.to_string()),
            None => Ok(None),
        }
    };
    let switch = tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| format!("cannot read the flow's switch: {e}"))??;
    Ok(crate::switches::effective(&flow.entry.manifest, switch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_the_input() {
        assert_eq!(input_of(b"").unwrap(), "{}");
        assert_eq!(input_of(b" \n").unwrap(), "{}");
        assert_eq!(input_of(br#"{"a": 1}"#).unwrap(), r#"{"a": 1}"#);
        assert_eq!(
            input_of(b"{\"a\": 1,\n \"a\": 2}").unwrap_err(),
            "the body is not valid JSON: field `a` appears twice in one object at line 2 column 4"
        );
        let e = input_of(b"{\"a\": }").unwrap_err();
        assert!(e.contains("line 1 column 7"), "{e}");
        assert!(input_of(b"\xff").unwrap_err().contains("not UTF-8"));
    }
}
