//! The console's page frame (maud: every value escaped) and its one stylesheet, embedded in
//! the binary and served at [`CSS_PATH`].

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use crate::listener::Observed;

/// Where the stylesheet is served.
pub const CSS_PATH: &str = "/console.css";
const CSS: &str = include_str!("console.css");

/// Seconds after which the page of a run still going reloads itself.
pub const REFRESH_SECONDS: u32 = 2;

/// A page with the console's navigation.
pub fn page(title: &str, body: Markup) -> Markup {
    document(title, body, Frame::default())
}

/// What a page's frame shows besides the body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Frame {
    /// A log-out button (token mode).
    pub logout: bool,
    /// Reloads itself every [`REFRESH_SECONDS`] (a run still going).
    pub refresh: bool,
    /// No navigation (the login page).
    pub bare: bool,
}

pub fn document(title: &str, body: Markup, frame: Frame) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if frame.refresh {
                    meta http-equiv="refresh" content=(REFRESH_SECONDS);
                }
                title { (title) " · flowhost" }
                link rel="stylesheet" href=(CSS_PATH);
            }
            body {
                @if !frame.bare {
                    header.top {
                        span.brand { "flowhost" }
                        nav {
                            a href="/" { "Flows" }
                            a href="/runs" { "Runs" }
                            a href="/tables" { "Tables" }
                            a href="/asa" { "ASA" }
                        }
                        @if frame.logout {
                            form.logout method="post" action="/logout" {
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// `GET /console.css` (the login page needs it: no session asked; 404 while the console is
/// off).
pub async fn css(State(o): State<Observed>) -> Response {
    if o.settings.get().console.is_none() {
        return StatusCode::NOT_FOUND.into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

/// `text`, or a dash when empty.
pub fn or_dash(text: Option<&str>) -> &str {
    text.filter(|t| !t.is_empty()).unwrap_or("-")
}

/// The "newer / older" links under a paged list: `prev` and `next` label the links to page
/// `page - 1` (from page 2 on) and `page + 1` (while `more`), which `link` makes.
pub fn pager(
    page: u64,
    more: bool,
    link: impl Fn(u64) -> String,
    prev: &str,
    next: &str,
) -> Markup {
    html! {
        nav.pages {
            @if page > 1 {
                a #prev href=(link(page - 1)) { (prev) }
            }
            span.muted { "Page " (page) }
            @if more {
                a #next href=(link(page.saturating_add(1))) { (next) }
            }
        }
    }
}
