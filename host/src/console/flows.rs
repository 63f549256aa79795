//! The console's flow pages: `/` lists every flow (title, schedule, on/off switch, last runs,
//! next tick, from the status snapshot [`crate::status`]); `/flows/NAME` shows one (its
//! description, grants, recent runs) with the form that runs it. The switches write what
//! `flowhost flow enable|disable` writes; the form starts a top-level run as `flowhost run`
//! does (any flow, even one switched off), trigger `console`, and goes to its run page.

use std::time::SystemTime;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};

use super::auth::Allowed;
use super::layout::{self, or_dash};
use super::{failure, flow_path, html, read, run_path, see_other};
use crate::history::{RunRecord, RunStatus, Trigger};
use crate::launch::{launch, LaunchError};
use crate::listener::Observed;
use crate::status::FlowStatus;

/// Runs shown per flow on the list.
const LAST_RUNS: u32 = 5;
/// Runs shown on a flow's page.
const RECENT_RUNS: u32 = 20;

/// The status word of a run, styled.
pub fn status_word(status: RunStatus) -> Markup {
    html! { span class={ "status status-" (status.as_str()) } { (status.as_str()) } }
}

/// One small link per run, newest first.
fn run_dots(runs: &[RunRecord]) -> Markup {
    html! {
        @for r in runs {
            a.dot href=(run_path(r.id)) title={ "run " (r.id) " " (r.status.as_str()) " " (r.started) } {
                span class={ "dot status-" (r.status.as_str()) } {
                    @match r.status {
                        RunStatus::Ok => "●",
                        RunStatus::Running => "◐",
                        RunStatus::Skipped => "○",
                        RunStatus::Error | RunStatus::Timeout => "✖",
                    }
                }
            }
            " "
        }
    }
}

/// The on/off switch of `flow`, a form posting to `/flows/NAME/enable|disable`.
fn switch(flow: &str, enabled: bool, back: &str) -> Markup {
    let action = if enabled { "disable" } else { "enable" };
    html! {
        form.inline method="post" action={ (flow_path(flow)) "/" (action) } {
            input type="hidden" name="back" value=(back);
            button type="submit" data-action=(action) {
                @if enabled { "Turn off" } @else { "Turn on" }
            }
        }
    }
}

fn state_cell(enabled: bool) -> Markup {
    let word = if enabled { "on" } else { "off" };
    html! { td class={ "state state-" (word) } { (word) } }
}

/// `GET /`.
pub async fn list(a: Allowed, State(o): State<Observed>) -> Response {
    let read = read(&o, |db| {
        let status = crate::status::snapshot(
            &db.registry,
            db.history.as_ref(),
            db.store.as_ref(),
            SystemTime::now(),
        )
        .map_err(|e| e.to_string())?;
        let mut rows = Vec::new();
        for f in status.flows {
            let runs = match &db.history {
                Some(h) => h
                    .page(Some(&f.name), None, 0, LAST_RUNS)
                    .map_err(|e| e.to_string())?,
                None => Vec::new(),
            };
            let title = db
                .registry
                .get(&f.name)
                .map(|e| e.manifest.title.clone())
                .unwrap_or_default();
            rows.push((f, title, runs));
        }
        Ok(rows)
    })
    .await;
    let rows: Vec<(FlowStatus, String, Vec<RunRecord>)> = match read {
        Ok(r) => r,
        Err(r) => return r,
    };
    let body = html! {
        h1 { "Flows" }
        table #flows {
            thead { tr {
                th { "Flow" } th { "Title" } th { "Schedule" } th { "State" } th { "" }
                th { "Last runs" } th { "Fails" } th { "Next tick" }
            } }
            tbody {
                @for (f, title, runs) in &rows {
                    tr data-flow=(f.name) {
                        td.name { a.flow href=(flow_path(&f.name)) { (f.name) } }
                        td.title { (title) }
                        td.schedule { (f.schedule.as_deref().unwrap_or("on demand")) }
                        (state_cell(f.enabled))
                        td.switch { (switch(&f.name, f.enabled, "/")) }
                        td.runs {
                            (run_dots(runs))
                            @if !runs.is_empty() {
                                a.all href={ "/runs" (super::query(&[("flow", &f.name)])) } { "all" }
                            }
                        }
                        td.num.fails { (f.consecutive_failures) }
                        td.next { (or_dash(f.next_tick.as_deref())) }
                    }
                }
            }
        }
    };
    html(StatusCode::OK, layout::document("Flows", body, a.frame()))
}

/// What a flow page shows besides the manifest.
struct FlowPage {
    enabled: bool,
    runs: Vec<RunRecord>,
}

/// `GET /flows/NAME`.
pub async fn show(a: Allowed, State(o): State<Observed>, Path(name): Path<String>) -> Response {
    flow_page(&a, &o, &name, "{}", None).await
}

/// The flow page, its form holding `input` and showing `error` (a refused run) if any.
async fn flow_page(
    a: &Allowed,
    o: &Observed,
    name: &str,
    input: &str,
    error: Option<&str>,
) -> Response {
    let registry = o.rt.registry();
    let Some(entry) = registry.get(name).cloned() else {
        return failure(StatusCode::NOT_FOUND, &format!("no flow `{name}`"));
    };
    let flow = name.to_string();
    let read = read(o, move |db| {
        let Some(h) = &db.history else {
            return Ok(FlowPage {
                enabled: entry.manifest.enabled,
                runs: Vec::new(),
            });
        };
        let switch = h.switch(&flow).map_err(|e| e.to_string())?;
        Ok(FlowPage {
            enabled: crate::switches::effective(&entry.manifest, switch),
            runs: h
                .page(Some(&flow), None, 0, RECENT_RUNS)
                .map_err(|e| e.to_string())?,
        })
    })
    .await;
    let page = match read {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(entry) = registry.get(name) else {
        return failure(StatusCode::NOT_FOUND, &format!("no flow `{name}`"));
    };
    let m = &entry.manifest;
    let g = &m.grants;
    let set = |s: &std::collections::BTreeSet<String>| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.iter().cloned().collect::<Vec<_>>().join(", ")
        }
    };
    let hosts: Vec<String> = g.hosts.iter().map(ToString::to_string).collect();
    let back = flow_path(name);
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let body = html! {
        h1 #flow-name { (m.name) " · " span #flow-title { (m.title) } }
        p #flow-description { (m.description) }
        dl.facts {
            dt { "Schedule" } dd #flow-schedule {
                (m.schedule.as_ref().map_or_else(|| "on demand".to_string(), ToString::to_string))
            }
            dt { "State" } dd {
                span #flow-state class={ "state-" (if page.enabled { "on" } else { "off" }) } {
                    (if page.enabled { "on" } else { "off" })
                }
                " " (switch(name, page.enabled, &back))
            }
            dt { "Timeout" } dd { (crate::manifest::format_duration(m.timeout)) }
            dt { "Exclusive group" } dd { (or_dash(m.exclusive.as_deref())) }
            dt { "Sensitive" } dd { (if m.sensitive { "yes: input and output are not recorded" } else { "no" }) }
            dt { "Comes from" } dd { (entry.origin()) }
        }
        h2 { "Grants" }
        table #grants {
            tbody {
                tr { th { "Hosts" } td { (if hosts.is_empty() { "-".to_string() } else { hosts.join(", ") }) } }
                tr { th { "Tables read" } td { (set(&g.tables_read)) } }
                tr { th { "Tables written" } td { (set(&g.tables_write)) } }
                tr { th { "Flows called" } td { (set(&g.flows)) } }
                tr { th { "Secrets" } td { (set(&g.secrets)) } }
                tr { th { "Blob stores read" } td { (set(&g.blobs_read)) } }
                tr { th { "Blob stores written" } td { (set(&g.blobs_write)) } }
            }
        }
        h2 { "Run it" }
        form #run method="post" action={ (back) "/run" } {
            label {
                "Input (JSON)"
                textarea name="input" spellcheck="false" { (input) }
            }
            @if let Some(e) = error {
                p.error #input-error { (e) }
            }
            button type="submit" { "Run " (m.name) }
        }
        h2 { "Recent runs" }
        (runs_table(&page.runs))
        p { a href={ "/runs" (super::query(&[("flow", name)])) } { "All runs of " (m.name) } }
    };
    html(status, layout::document(&m.name, body, a.frame()))
}

/// The runs table of the run list and a flow's page (`table#runs`).
pub fn runs_table(runs: &[RunRecord]) -> Markup {
    html! {
        table #runs {
            thead { tr {
                th { "Run" } th { "Flow" } th { "Trigger" } th { "Status" } th { "Started" }
                th.num { "Took" } th { "Error" }
            } }
            tbody {
                @for r in runs {
                    tr data-run=(r.id) data-status=(r.status.as_str()) {
                        td { a.run href=(run_path(r.id)) { (r.id) } }
                        td { (r.flow) }
                        td { (r.trigger.as_str()) }
                        td { (status_word(r.status)) }
                        td { (r.started) }
                        td.num {
                            (crate::history::duration_ms(r).map_or_else(|| "-".to_string(), |ms| format!("{ms} ms")))
                        }
                        td.error {
                            (r.error.as_deref().and_then(|e| e.lines().next()).unwrap_or(""))
                        }
                    }
                }
            }
        }
        @if runs.is_empty() {
            p.muted #no-runs { "No runs." }
        }
    }
}

#[derive(serde::Deserialize)]
pub struct RunForm {
    #[serde(default)]
    input: String,
}

/// `POST /flows/NAME/run`: starts a run (trigger `console`) and goes to its page; input that
/// is not JSON shows the form again with the error, and nothing runs.
pub async fn run(
    a: Allowed,
    State(o): State<Observed>,
    Path(name): Path<String>,
    Form(f): Form<RunForm>,
) -> Response {
    if o.rt.registry().get(&name).is_none() {
        return failure(StatusCode::NOT_FOUND, &format!("no flow `{name}`"));
    }
    let input = match crate::launch::input(&f.input) {
        Ok(input) => input,
        Err(e) => {
            let why = format!("input: not JSON: {e}; nothing was run");
            return flow_page(&a, &o, &name, &f.input, Some(&why)).await;
        }
    };
    match launch(&o.rt, &o.watch, &name, &input, Trigger::Console) {
        Ok(l) => see_other(&run_path(l.id)),
        Err(LaunchError::ShuttingDown) => failure(
            StatusCode::SERVICE_UNAVAILABLE,
            &LaunchError::ShuttingDown.to_string(),
        ),
        Err(e) => {
            let why = format!("{}; nothing was run", crate::yaml::one_line(&e.to_string()));
            flow_page(&a, &o, &name, &f.input, Some(&why)).await
        }
    }
}

#[derive(serde::Deserialize)]
pub struct SwitchForm {
    #[serde(default)]
    back: String,
}

/// `POST /flows/NAME/enable`.
pub async fn enable(
    _: Allowed,
    State(o): State<Observed>,
    Path(name): Path<String>,
    Form(f): Form<SwitchForm>,
) -> Response {
    set(o, name, true, &f.back).await
}

/// `POST /flows/NAME/disable`.
pub async fn disable(
    _: Allowed,
    State(o): State<Observed>,
    Path(name): Path<String>,
    Form(f): Form<SwitchForm>,
) -> Response {
    set(o, name, false, &f.back).await
}

/// Switches `name` on or off as `flowhost flow enable|disable` does, then back to `back` (a
/// path of this console; anything else goes to the flows).
async fn set(o: Observed, name: String, enabled: bool, back: &str) -> Response {
    if o.rt.registry().get(&name).is_none() {
        return failure(StatusCode::NOT_FOUND, &format!("no flow `{name}`"));
    }
    let rt = o.rt.clone();
    let done = tokio::task::spawn_blocking(move || rt.history.set_enabled(&name, enabled)).await;
    match done {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                &crate::yaml::one_line(&e.to_string()),
            )
        }
        Err(e) => {
            return failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("the switch failed: {e}"),
            )
        }
    }
    let own = back.starts_with('/') && !back.starts_with("//") && !back.contains('\\');
    see_other(if own { back } else { "/" })
}
