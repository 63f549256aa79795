//! `GET /api/runs/{id}`: a run of an API endpoint flow as run history holds it (status,
//! flow, trigger, start and end, output and error, redacted as everywhere; a `sensitive`
//! flow's output is not there). It needs the token of the run's flow; a run of a flow that
//! is not an API flow, or no run, is 404 (one body for both).

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{api_flow, auth, counted, error};
use crate::history::RunRecord;
use crate::listener::Observed;

pub async fn run(State(o): State<Observed>, Path(id): Path<String>, request: Request) -> Response {
    let (request, _body) = request.into_parts();
    // Not there (or not an API flow's): 404 for a client with some API flow's token, else the
    // same 401 as a wrong token, so that ids cannot be probed without one.
    let not_found = || {
        let answer = match auth::authorize_any(&o, &request.headers, &request.extensions) {
            Ok(()) => error(
                StatusCode::NOT_FOUND,
                format!("no run `{id}` of an API endpoint flow"),
            ),
            Err(refused) => refused.into_response(),
        };
        counted(&o, "", answer)
    };
    let Ok(number) = id.parse::<i64>() else {
        return not_found();
    };
    let record = match record(&o, number).await {
        Ok(Some(r)) => r,
        Ok(None) => return not_found(),
        Err(e) => return counted(&o, "", error(StatusCode::INTERNAL_SERVER_ERROR, e)),
    };
    let Some(flow) = api_flow(&o, &record.flow) else {
        return not_found();
    };
    if let Err(refused) = auth::authorize(&o, &flow, &request.headers, &request.extensions) {
        return counted(&o, &record.flow, refused.into_response());
    }
    let answer = match describe(&record) {
        Ok(body) => (StatusCode::OK, Json(body)).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    counted(&o, &record.flow, answer)
}

/// Run `id` from run history, opened read-only on a blocking thread.
pub async fn record(o: &Observed, id: i64) -> Result<Option<RunRecord>, String> {
    let o = o.clone();
    let read = move || -> Result<Option<RunRecord>, String> {
        let read = o.reader().map_err(|e| e.to_string())?;
        match read.history {
            Some(history) => history.get(id).map_err(|e| e.to_string()),
            None => Ok(None),
        }
    };
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| format!("cannot read run {id}: {e}"))?
}

/// What the route answers about a run: output as JSON (text when history cut it).
pub fn describe(r: &RunRecord) -> Result<serde_json::Value, String> {
    let full = r
        .to_json()
        .map_err(|e| format!("cannot show run {}: {e}", r.id))?;
    let field = |k: &str| full.get(k).cloned().unwrap_or(serde_json::Value::Null);
    Ok(serde_json::json!({
        "run": r.id,
        "flow": r.flow,
        "trigger": r.trigger,
        "status": r.status,
        "started": r.started,
        "ended": r.ended,
        "output": field("output"),
        "error": r.error,
    }))
}
