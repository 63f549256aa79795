//! The console's ASA page, `/asa`: how far audit collection has got, from the status
//! snapshot's ASA section ([`crate::status::AsaStatus`]): the checkpoint of each team (the
//! Audit Checkpoints rows), the newest stored event and its lag, rows per table, the rate
//! limits ASA last sent, and the newest rows of the Execution Log.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde_json::{Map, Value};

use super::auth::Allowed;
use super::layout::{self, or_dash};
use super::{html, read, table_path};
use crate::listener::Observed;
use crate::status::AsaStatus;
use crate::store::{RowWindow, Store, TableError};

const CHECKPOINTS: &str = "Audit Checkpoints";
const EXECUTION_LOG: &str = "Execution Log";
/// Execution Log rows shown, newest first.
const LOG_ROWS: u64 = 20;

/// The columns shown of each table.
const CHECKPOINT_COLUMNS: [&str; 4] = ["team", "LastOffset", "LastCount", "LastDateTime"];
const LOG_COLUMNS: [&str; 5] = [
    "datetime",
    "team",
    "eventswritten",
    "eventsrejected",
    "notes",
];

/// Rows of `table` from `offset` on (none when the table is not in the database).
fn rows(store: &Store, table: &str, window: RowWindow) -> Result<Vec<Map<String, Value>>, String> {
    let mut out = Vec::new();
    match store.export_matching(table, None, window, |r| -> Result<bool, TableError> {
        out.push(r);
        Ok(true)
    }) {
        Ok(_) | Err(TableError::NotFound(_)) => Ok(out),
        Err(e) => Err(e.to_string()),
    }
}

fn text(row: &Map<String, Value>, column: &str) -> String {
    match row.get(column) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

struct AsaPage {
    asa: Option<AsaStatus>,
    checkpoints: Vec<Map<String, Value>>,
    log: Vec<Map<String, Value>>,
}

/// `GET /asa`.
pub async fn show(a: Allowed, State(o): State<Observed>) -> Response {
    let read = read(&o, |db| {
        let status = crate::status::snapshot(
            &db.registry,
            db.history.as_ref(),
            db.store.as_ref(),
            std::time::SystemTime::now(),
        )
        .map_err(|e| e.to_string())?;
        let Some(store) = &db.store else {
            return Ok(AsaPage {
                asa: status.asa,
                checkpoints: Vec::new(),
                log: Vec::new(),
            });
        };
        let checkpoints = rows(store, CHECKPOINTS, RowWindow::ALL)?;
        let total = match store.count_matching(EXECUTION_LOG, None) {
            Ok(n) => n,
            Err(TableError::NotFound(_)) => 0,
            Err(e) => return Err(e.to_string()),
        };
        let window = RowWindow {
            offset: total.saturating_sub(LOG_ROWS),
            limit: Some(LOG_ROWS),
        };
        let mut log = rows(store, EXECUTION_LOG, window)?;
        log.reverse();
        Ok(AsaPage {
            asa: status.asa,
            checkpoints,
            log,
        })
    })
    .await;
    let page = match read {
        Ok(p) => p,
        Err(r) => return r,
    };
    let asa = page.asa.as_ref();
    let lag = asa
        .and_then(|a| a.lag_seconds)
        .map_or_else(|| "-".to_string(), |s| format!("{s} s"));
    let body = html! {
        h1 { "ASA audit collection" }
        @if asa.is_none() {
            p.muted #asa-absent {
                "The database has no Audit Events table yet (M10 has not run, or the built-in \
                 package is off)."
            }
        }
        dl.facts {
            dt { "Newest stored event" } dd #asa-newest-event { (or_dash(asa.and_then(|a| a.newest_event.as_deref()))) }
            dt { "Lag" } dd #asa-lag { (lag) }
            dt { "Rejected events" } dd #asa-rejected { (asa.map_or(0, |a| a.rejected_events)) }
        }
        h2 { "Checkpoint" }
        div #asa-checkpoint {
            table #checkpoints {
                thead { tr { @for c in CHECKPOINT_COLUMNS { th { (c) } } } }
                tbody {
                    @for r in &page.checkpoints {
                        tr.checkpoint { @for c in CHECKPOINT_COLUMNS { td { (text(r, c)) } } }
                    }
                }
            }
            @if page.checkpoints.is_empty() {
                p.muted { "No checkpoint yet: the next collection starts from the oldest retained event." }
            }
            @if let Some(a) = asa {
                @if !a.teams.is_empty() {
                    table #teams {
                        thead { tr { th { "Team" } th.num { "Events" } th { "Offset" } th.num { "Of its page stored" } th { "Checkpoint written" } th.num { "Ago" } } }
                        tbody {
                            @for t in &a.teams {
                                tr data-team=(t.team) {
                                    td { (t.team) @if t.default { " (default)" } }
                                    td.num { (t.events) }
                                    td { (or_dash(Some(&t.offset))) }
                                    td.num { (t.last_count) }
                                    td { (or_dash(t.checkpoint_at.as_deref())) }
                                    td.num { (t.checkpoint_lag_seconds.map_or_else(|| "-".to_string(), |s| format!("{s} s"))) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(a) = asa {
            h2 { "Tables" }
            table #asa-tables {
                tbody {
                    @for (t, n) in &a.rows {
                        tr { td { a.table href=(table_path(t)) { (t) } } td.num { (n) } }
                    }
                }
            }
            @if !a.rate_limits.is_empty() {
                h2 { "Rate limits ASA last sent" }
                table #rate-limits {
                    thead { tr { th { "Origin" } th.num { "Remaining" } th.num { "Limit" } th { "Seen" } } }
                    tbody {
                        @for r in &a.rate_limits {
                            tr {
                                td { (r.origin) }
                                td.num { (r.remaining.map_or_else(|| "-".to_string(), |n| n.to_string())) }
                                td.num { (r.limit.map_or_else(|| "-".to_string(), |n| n.to_string())) }
                                td { (r.seen) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Execution Log (newest first)" }
        table #execution-log {
            thead { tr { @for c in LOG_COLUMNS { th { (c) } } } }
            tbody {
                @for r in &page.log {
                    tr.row { @for c in LOG_COLUMNS { td { (text(r, c)) } } }
                }
            }
        }
        p { a href=(table_path(EXECUTION_LOG)) { "The whole Execution Log" } }
    };
    html(StatusCode::OK, layout::document("ASA", body, a.frame()))
}
