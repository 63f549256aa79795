//! The console's run history: `/runs` (filtered by flow and status, [`super::PAGE_SIZE`] per
//! page, newest first: [`crate::history::History::page`]) and `/runs/ID`, one run as
//! history keeps it (input, output, error, log lines, child calls). History holds the text
//! already redacted and a sensitive flow's placeholder; the page redacts the current
//! secrets once more before showing anything. A run still going reloads itself.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::auth::Allowed;
use super::flows::runs_table;
use super::layout::{self, Frame};
use super::{failure, flow_path, html, page_offset, query, read, run_path, PAGE_SIZE};
use crate::history::{RunRecord, RunStatus};
use crate::listener::Observed;

const STATUSES: [RunStatus; 5] = [
    RunStatus::Running,
    RunStatus::Ok,
    RunStatus::Error,
    RunStatus::Timeout,
    RunStatus::Skipped,
];

/// `GET /runs?flow=NAME&status=STATUS&page=N`.
pub async fn list(
    a: Allowed,
    State(o): State<Observed>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let flow = q
        .get("flow")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let status_text = q.get("status").map(|s| s.trim()).unwrap_or_default();
    let status = if status_text.is_empty() {
        None
    } else {
        match RunStatus::parse(status_text) {
            Some(s) => Some(s),
            None => {
                let all: Vec<&str> = STATUSES.iter().map(|s| s.as_str()).collect();
                return failure(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "status: `{status_text}` is not a run status ({})",
                        all.join(", ")
                    ),
                );
            }
        }
    };
    let (page, offset) = match page_offset(q.get("page").map(String::as_str)) {
        Ok(p) => p,
        Err(e) => return failure(StatusCode::BAD_REQUEST, &e),
    };
    let wanted = flow.clone();
    let read = read(&o, move |db| {
        let Some(h) = &db.history else {
            return Ok(Vec::new());
        };
        // One more than a page says whether there is a next one.
        h.page(wanted.as_deref(), status, offset, PAGE_SIZE + 1)
            .map_err(|e| e.to_string())
    })
    .await;
    let mut runs: Vec<RunRecord> = match read {
        Ok(r) => r,
        Err(r) => return r,
    };
    let more = runs.len() > PAGE_SIZE as usize;
    runs.truncate(PAGE_SIZE as usize);
    let registry = o.rt.registry();
    let mut names: Vec<String> = registry.iter().map(|f| f.manifest.name.clone()).collect();
    if let Some(f) = &flow {
        if !names.contains(f) {
            names.push(f.clone());
        }
    }
    let flow_text = flow.clone().unwrap_or_default();
    let link = |page: u64| {
        let page = page.to_string();
        format!(
            "/runs{}",
            query(&[
                ("flow", &flow_text),
                ("status", status_text),
                ("page", &page)
            ])
        )
    };
    let body = html! {
        h1 { "Runs" }
        form #filter method="get" action="/runs" {
            label { "Flow"
                select name="flow" {
                    option value="" selected[flow.is_none()] { "every flow" }
                    @for n in &names {
                        option value=(n) selected[flow.as_deref() == Some(n.as_str())] { (n) }
                    }
                }
            }
            label { "Status"
                select name="status" {
                    option value="" selected[status.is_none()] { "any status" }
                    @for s in STATUSES {
                        option value=(s.as_str()) selected[status == Some(s)] { (s.as_str()) }
                    }
                }
            }
            button type="submit" { "Show" }
        }
        (runs_table(&runs))
        (layout::pager(page, more, link, "← Newer", "Older →"))
    };
    html(StatusCode::OK, layout::document("Runs", body, a.frame()))
}

/// `GET /runs/ID`.
pub async fn show(a: Allowed, State(o): State<Observed>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.trim().parse::<i64>() else {
        return failure(
            StatusCode::NOT_FOUND,
            &format!("no run `{id}` (a run id is a number)"),
        );
    };
    let read = read(&o, move |db| match &db.history {
        Some(h) => h.get(id).map_err(|e| e.to_string()),
        None => Ok(None),
    })
    .await;
    let run = match read {
        Ok(Some(r)) => r,
        Ok(None) => return failure(StatusCode::NOT_FOUND, &format!("no run {id} in history")),
        Err(r) => return r,
    };
    let redact = |t: &str| o.rt.secrets.redact(t).into_owned();
    let json = |t: &str| {
        serde_json::from_str::<serde_json::Value>(t)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| t.to_string())
    };
    let running = run.status == RunStatus::Running;
    let title = format!("Run {id}");
    let body = html! {
        h1 { "Run " (run.id) " · " a #run-flow href=(flow_path(&run.flow)) { (run.flow) } }
        dl.facts {
            dt { "Status" } dd { span #run-status class={ "status status-" (run.status.as_str()) } { (run.status.as_str()) } }
            dt { "Trigger" } dd #run-trigger { (run.trigger.as_str()) }
            dt { "Started" } dd #run-started { (run.started) }
            dt { "Ended" } dd #run-ended { (layout::or_dash(run.ended.as_deref())) }
            dt { "Took" } dd {
                (crate::history::duration_ms(&run).map_or_else(|| "-".to_string(), |ms| format!("{ms} ms")))
            }
            @if let Some(p) = run.parent {
                dt { "Called by" } dd { a #run-parent href=(run_path(p)) { "run " (p) } }
            }
        }
        @if running {
            p.muted { "Still running: this page reloads every " (layout::REFRESH_SECONDS) " s." }
        }
        h2 { "Error" }
        pre #run-error { (run.error.as_deref().map(redact).unwrap_or_default()) }
        h2 { "Input" }
        pre #run-input { (json(&redact(&run.input))) }
        h2 { "Output" }
        pre #run-output { (run.output.as_deref().map(|t| json(&redact(t))).unwrap_or_default()) }
        h2 { "Log" }
        table #run-logs {
            thead { tr { th { "At" } th { "Level" } th { "Flow" } th { "Message" } } }
            tbody {
                @for l in &run.logs {
                    tr.log { td { (l.at) } td { (l.level) } td { (l.flow) } td { (redact(&l.message)) } }
                }
            }
        }
        @if run.logs_dropped > 0 {
            p.muted { (run.logs_dropped) " later log lines were not kept." }
        }
        h2 { "Child calls" }
        table #run-children {
            thead { tr {
                th { "Flow" } th.num { "Calls" } th.num { "Failures" } th.num { "Memo hits" } th.num { "Time" }
            } }
            tbody {
                @for c in &run.children {
                    tr.child data-flow=(c.flow) {
                        td { (c.flow) } td.num { (c.calls) } td.num { (c.failures) }
                        td.num { (c.memo_hits) } td.num { (c.total_ms) " ms" }
                    }
                }
            }
        }
        p { a href={ "/runs" (query(&[("flow", &run.flow)])) } { "All runs of " (run.flow) } }
    };
    let frame = Frame {
        refresh: running,
        ..a.frame()
    };
    html(StatusCode::OK, layout::document(&title, body, frame))
}
