//! The console's tables: `/tables` (every table of the schemas with its row count),
//! `/tables/NAME?column=C&q=Q&page=N` ([`super::PAGE_SIZE`] rows a page, oldest first, with a
//! substring search on one column: [`crate::store::ColumnSearch`], the column checked against
//! the schema and the text bound, never put into SQL) and `/tables/NAME/csv` with the same
//! filter: the CSV `flowhost table export` writes ([`crate::export::write_csv`]), streamed
//! from a blocking thread so a large table is never held in memory.

use std::collections::HashMap;
use std::io::Write;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde_json::{Map, Value};

use super::auth::Allowed;
use super::layout;
use super::{failure, html, page_offset, query, read, table_path, Refusal, PAGE_SIZE};
use crate::listener::Observed;
use crate::schema::ROW_ID;
use crate::store::{ColumnSearch, RowWindow, TableError};

/// `GET /tables`.
pub async fn list(a: Allowed, State(o): State<Observed>) -> Response {
    let mut names: Vec<String> =
        o.rt.store
            .schemas()
            .iter()
            .map(|t| t.name.clone())
            .collect();
    names.sort();
    let read = read(&o, move |db| {
        let mut out = Vec::new();
        for name in names {
            let rows = match &db.store {
                None => None,
                Some(s) => match s.row_count(&name) {
                    Ok(n) => Some(n),
                    Err(TableError::NotFound(_)) => None,
                    Err(e) => return Err(e.to_string()),
                },
            };
            out.push((name, rows));
        }
        Ok(out)
    })
    .await;
    let tables: Vec<(String, Option<u64>)> = match read {
        Ok(t) => t,
        Err(r) => return r,
    };
    let body = html! {
        h1 { "Tables" }
        table #tables {
            thead { tr { th { "Table" } th.num { "Rows" } th { "" } } }
            tbody {
                @for (name, rows) in &tables {
                    tr data-table=(name) {
                        td { a.table href=(table_path(name)) { (name) } }
                        td.num.rows {
                            @match rows {
                                Some(n) => (n),
                                None => span.muted { "not created yet" },
                            }
                        }
                        td { a href={ (table_path(name)) "/csv" } { "CSV" } }
                    }
                }
            }
        }
    };
    html(StatusCode::OK, layout::document("Tables", body, a.frame()))
}

/// The search a table page or its CSV asks for: `None` without a `q`; `Err` (a 400 page)
/// when the table does not exist or the column is not one of its own.
fn search_of(
    o: &Observed,
    table: &str,
    q: &HashMap<String, String>,
) -> Result<(Vec<String>, Option<ColumnSearch>), Refusal> {
    let schemas = o.rt.store.schemas();
    let Some(schema) = schemas.get(table) else {
        return Err(Refusal::Failure(
            StatusCode::NOT_FOUND,
            format!("no table `{table}`"),
        ));
    };
    let mut columns: Vec<String> = schema.columns.iter().map(|c| c.name.clone()).collect();
    if schema.key.is_none() {
        columns.insert(0, ROW_ID.to_string());
    }
    let text = q.get("q").map(String::as_str).unwrap_or_default();
    if text.is_empty() {
        return Ok((columns, None));
    }
    let column = q
        .get("column")
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| columns.first().cloned().unwrap_or_default());
    if !columns.contains(&column) {
        return Err(Refusal::Failure(
            StatusCode::BAD_REQUEST,
            format!(
                "column: table `{table}` has no column `{column}` (its columns: {})",
                columns.join(", ")
            ),
        ));
    }
    Ok((
        columns,
        Some(ColumnSearch {
            column,
            contains: text.to_string(),
        }),
    ))
}

/// A cell as the page shows it: text as is, anything else as JSON, null as nothing.
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// `GET /tables/NAME`.
pub async fn show(
    a: Allowed,
    State(o): State<Observed>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (columns, search) = match search_of(&o, &name, &q) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let (page, offset) = match page_offset(q.get("page").map(String::as_str)) {
        Ok(p) => p,
        Err(e) => return failure(StatusCode::BAD_REQUEST, &e),
    };
    let (table, wanted) = (name.clone(), search.clone());
    let read = read(&o, move |db| {
        let Some(store) = &db.store else {
            return Ok((0, Vec::new()));
        };
        let count = match store.count_matching(&table, wanted.as_ref()) {
            Ok(n) => n,
            Err(TableError::NotFound(_)) => return Ok((0, Vec::new())),
            Err(e) => return Err(e.to_string()),
        };
        let mut rows: Vec<Map<String, Value>> = Vec::new();
        let window = RowWindow {
            offset,
            limit: Some(u64::from(PAGE_SIZE)),
        };
        store
            .export_matching(
                &table,
                wanted.as_ref(),
                window,
                |row| -> Result<bool, TableError> {
                    rows.push(row);
                    Ok(true)
                },
            )
            .map_err(|e| e.to_string())?;
        Ok((count, rows))
    })
    .await;
    let (count, rows) = match read {
        Ok(r) => r,
        Err(r) => return r,
    };
    let column = search
        .as_ref()
        .map(|s| s.column.clone())
        .unwrap_or_default();
    let text = search
        .as_ref()
        .map(|s| s.contains.clone())
        .unwrap_or_default();
    let link = |page: u64| {
        let page = page.to_string();
        format!(
            "{}{}",
            table_path(&name),
            query(&[("column", &column), ("q", &text), ("page", &page)])
        )
    };
    let csv = format!(
        "{}/csv{}",
        table_path(&name),
        query(&[("column", &column), ("q", &text)])
    );
    let shown_to = offset.saturating_add(rows.len() as u64);
    let more = shown_to < count;
    let body = html! {
        h1 #table-name { (name) }
        form #search method="get" action=(table_path(&name)) {
            label { "Column"
                select name="column" {
                    @for c in &columns {
                        option value=(c) selected[*c == column] { (c) }
                    }
                }
            }
            label { "Contains"
                input type="search" name="q" value=(text);
            }
            button type="submit" { "Search" }
            a #csv href=(csv) { "Export CSV" }
        }
        p {
            span #row-count { (count) } " matching rows"
            @if !rows.is_empty() {
                span.muted { " (showing " (offset.saturating_add(1)) "–" (shown_to) ")" }
            }
        }
        table #rows {
            thead { tr { @for c in &columns { th { (c) } } } }
            tbody {
                @for r in &rows {
                    tr.row { @for c in &columns { td { (cell(r.get(c))) } } }
                }
            }
        }
        (layout::pager(page, more, link, "← Previous", "Next →"))
    };
    html(StatusCode::OK, layout::document(&name, body, a.frame()))
}

/// Chunks of CSV sent to the response body as they are written.
struct ToBody(tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>);

impl Write for ToBody {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `GET /tables/NAME/csv?column=C&q=Q`: the matching rows as `flowhost table export` writes
/// them, as an attachment `NAME.csv`.
pub async fn csv(
    _: Allowed,
    State(o): State<Observed>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let search = match search_of(&o, &name, &q) {
        Ok((_, s)) => s,
        Err(r) => return r.into_response(),
    };
    let store = match o.reader().map(|r| r.store) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return failure(
                StatusCode::NOT_FOUND,
                &format!("table `{name}` is not in the database yet"),
            )
        }
        Err(e) => return failure(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let table = name.clone();
    tokio::task::spawn_blocking(move || {
        let out = std::io::BufWriter::with_capacity(64 << 10, ToBody(tx.clone()));
        if let Err(e) = crate::export::write_csv(&store, &table, search.as_ref(), out, || {}) {
            tracing::warn!(table, error = %e, "the console's CSV export stopped");
            // The body ends with an error: the client sees a broken download, not a short file.
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let file: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " -_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{file}.csv\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}
