//! `http.send`: buffered HTTP through one shared `reqwest` client. Checks the URL against the
//! flow's allowed hosts, caps the response size, applies per-attempt timeouts inside the run's
//! deadline, and retries when the flow asks: exponential backoff with jitter (`backon`) on
//! connect errors, timeouts and 5xx; on 429 it waits for `Retry-After`,
//! `X-RateLimit-Retry-At` or `X-RateLimit-Reset`, unless that is past the deadline.
//!
//! Rate limits are respected before they are hit. For each origin the runtime remembers what
//! the last response said in `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
//! `X-RateLimit-Reset` (unix seconds), and counts the requests sent since ([`RateLimits`]).
//! Before every attempt, if at most a margin of `max(2, 1% of the limit)` requests are left in
//! the window, the request waits until the window resets (plus 50–500 ms of jitter) when that
//! is before the run's deadline, and otherwise fails at once with `limit-exceeded`, naming the
//! origin and when its window resets — instead of running into 429s. A 429 counts as "nothing
//! left until the time it names" (`Retry-After`, `X-RateLimit-Retry-At`, else
//! `X-RateLimit-Reset`). Responses without both `Remaining` and `Reset` leave the origin
//! unthrottled.
//!
//! Numbers a server sends are parsed with checked arithmetic and never panic the host
//! ([`server_wait`]): unix times and delays may be integers or decimals, a negative, `NaN`
//! or infinite value (or a date that does not parse) is ignored as if the header were absent,
//! and a wait is taken at its word up to [`MAX_SERVER_WAIT`] (a longer one, up to
//! `18446744073709551615` or `1e300` seconds, counts as that). A wait that does not fit in
//! the run's remaining time fails the call at once instead of sleeping: with `timeout` for a
//! 429's wait, with `limit-exceeded` for the rate-limit budget; the message names the origin
//! and the header as the server sent it. Debug lines show URLs without their query or
//! credentials (`log_url`); error texts keep the URL and are redacted on their way out.
//!
//! `http.prefetch` checks a request the same way and hands it to [`super::prefetch`]; a `send`
//! takes a response prefetched for exactly its request (after its own checks) before sending.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use backon::BackoffBuilder;

use crate::engine::flowhost::flow::http::{Host, Request, Response, RetryPolicy};
use crate::engine::{RunState, WitError};
use crate::runtime::CallCtx;

/// Most attempts a retry policy may ask for.
const MAX_ATTEMPTS: u32 = 10;
/// The longest wait a server's header is taken at its word; a longer one counts as this long
/// (far beyond any run's timeout, so such a call fails at once, and an origin's exhausted
/// budget is forgotten after a day at most).
pub const MAX_SERVER_WAIT: Duration = Duration::from_secs(24 * 60 * 60);
/// Longest header value quoted in a message.
const MAX_SHOWN_VALUE: usize = 64;

impl Host for RunState {
    async fn send(&mut self, req: Request) -> Result<Response, WitError> {
        self.ctx.not_a_read();
        let ctx = &self.ctx;
        let (method, url) = check(ctx, &req)?;
        if let Some(resp) = ctx.rt.prefetches.take(ctx, &req).await {
            // The server's latest figures, for `flowhost status`.
            let origin = url.origin().ascii_serialization();
            ctx.rt.rate_limits.sent.note(&origin, &resp.headers);
            return Ok(resp);
        }
        send(ctx, method, url, req).await
    }

    async fn prefetch(&mut self, req: Request) -> Result<(), WitError> {
        self.ctx.not_a_read();
        let ctx = &self.ctx;
        let (method, url) = check(ctx, &req)?;
        if method != reqwest::Method::GET && method != reqwest::Method::HEAD {
            return Err(WitError::InvalidInput(format!(
                "http: only GET and HEAD can be prefetched, not {method} {url}"
            )));
        }
        if ctx.rt.http_prefetch() {
            ctx.rt.prefetches.start(ctx, method, url, req);
        }
        Ok(())
    }
}

/// Why one attempt did not give a usable response.
enum AttemptError {
    /// Worth retrying (connect error, timeout).
    Transient(String),
    /// Not worth retrying.
    Fatal(WitError),
}

/// The request's method and URL, if it is well-formed and its host is granted to the flow.
fn check(ctx: &CallCtx, req: &Request) -> Result<(reqwest::Method, reqwest::Url), WitError> {
    let url = reqwest::Url::parse(&req.url)
        .map_err(|e| WitError::InvalidInput(format!("http: `{}` is not a URL: {e}", req.url)))?;
    if !ctx.flow.manifest.grants.allows_url(&url) {
        let origin = url.origin().ascii_serialization();
        return Err(WitError::AccessDenied(format!(
            "http: {origin} is not in {}'s allowed hosts (grants.hosts)",
            ctx.name()
        )));
    }
    let method =
        reqwest::Method::from_bytes(req.method.to_ascii_uppercase().as_bytes()).map_err(|_| {
            WitError::InvalidInput(format!("http: `{}` is not an HTTP method", req.method))
        })?;
    Ok((method, url))
}

/// Sends a checked request, with the retries its policy asks for, within `ctx`'s deadline.
pub(crate) async fn send(
    ctx: &CallCtx,
    method: reqwest::Method,
    url: reqwest::Url,
    req: Request,
) -> Result<Response, WitError> {
    let policy = req.retry.unwrap_or(RetryPolicy {
        max_attempts: 1,
        initial_backoff_ms: 0,
        max_backoff_ms: 0,
    });
    let attempts = policy.max_attempts.clamp(1, MAX_ATTEMPTS);
    let mut backoff = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(
            policy.initial_backoff_ms.max(1) as u64
        ))
        .with_max_delay(Duration::from_millis(
            policy.max_backoff_ms.max(policy.initial_backoff_ms).max(1) as u64,
        ))
        .with_jitter()
        .without_max_times()
        .build();
    let per_attempt = req.timeout_ms.map_or(ctx.rt.limits.http_timeout, |ms| {
        Duration::from_millis(ms as u64)
    });

    let origin = url.origin().ascii_serialization();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let last = attempt >= attempts;
        respect_rate_limit(ctx, &origin, &method, &url).await?;
        let timeout = per_attempt.min(ctx.remaining());
        if timeout.is_zero() {
            return Err(WitError::Timeout(format!(
                "http: the run's deadline passed before {} {url}",
                method
            )));
        }
        let result = once(
            ctx,
            &method,
            &url,
            &req.headers,
            req.body.as_deref(),
            timeout,
        )
        .await;
        if let Ok(resp) = &result {
            ctx.rt.rate_limits.observe(&origin, resp);
        }
        let wait = match result {
            Ok(resp) if last => return Ok(resp),
            Ok(resp) if resp.status == 429 => match rate_limit_wait(&resp.headers) {
                Some(w) if w.wait >= ctx.remaining() => {
                    return Err(WitError::Timeout(format!(
                        "http: {origin} answered 429 and asks to wait {} s ({}), past this \
                         run's deadline; not retrying {method} {url}",
                        w.wait.as_secs(),
                        w.header
                    )))
                }
                Some(w) => w.wait,
                None => backoff.next().unwrap_or_default(),
            },
            Ok(resp) if resp.status >= 500 => backoff.next().unwrap_or_default(),
            Ok(resp) => return Ok(resp),
            Err(AttemptError::Fatal(e)) => return Err(e),
            Err(AttemptError::Transient(msg)) if last => {
                return Err(WitError::Other(format!(
                    "http: {method} {url}: {msg} (after {attempt} attempts)"
                )))
            }
            Err(AttemptError::Transient(msg)) => {
                let url = log_url(&url);
                tracing::debug!(flow = ctx.name(), url, attempt, error = %msg, "retrying");
                backoff.next().unwrap_or_default()
            }
        };
        if wait >= ctx.remaining() {
            return Err(WitError::Timeout(format!(
                "http: {method} {url}: the next retry ({} ms away) is past the run's deadline",
                wait.as_millis()
            )));
        }
        tokio::time::sleep(wait).await;
    }
}

/// Waits (or fails with `limit-exceeded`) while `origin` is within the margin of its rate
/// limit; then counts the request about to be sent.
async fn respect_rate_limit(
    ctx: &CallCtx,
    origin: &str,
    method: &reqwest::Method,
    url: &reqwest::Url,
) -> Result<(), WitError> {
    loop {
        let Some(low) = ctx.rt.rate_limits.take(origin) else {
            return Ok(());
        };
        let jitter = Duration::from_millis(rand::random_range(50..=500));
        let wait = low
            .reset
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .saturating_add(jitter);
        let resets = jiff::Timestamp::try_from(low.reset)
            .map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string())
            .unwrap_or_else(|_| "an unknown time".into());
        if wait >= ctx.remaining() {
            return Err(WitError::LimitExceeded(format!(
                "http: {origin} rate limit: {} of {} requests left in this window (flowhost \
                 keeps a margin of {}); it resets at {resets}, in {} s ({}), after this \
                 run's deadline; not sending {method} {url}",
                low.remaining,
                low.limit,
                low.margin,
                wait.as_secs(),
                low.header
            )));
        }
        tracing::info!(
            flow = ctx.name(),
            origin,
            remaining = low.remaining,
            limit = low.limit,
            wait_ms = wait.as_millis() as u64,
            "near the rate limit: waiting for the window to reset at {resets}"
        );
        tokio::time::sleep(wait).await;
    }
}

/// Per origin, what the last response said about the rate limit, less the requests sent since.
/// One per [`crate::runtime::Runtime`] (so one per process in `serve`).
#[derive(Default)]
pub struct RateLimits {
    by_origin: Mutex<HashMap<String, Budget>>,
    /// The figures as sent, for `flowhost status` (written once per run by the runtime).
    pub sent: crate::rate_limits::LastSent,
}

#[derive(Debug, Clone)]
struct Budget {
    limit: u64,
    remaining: u64,
    reset: SystemTime,
    /// The header that set `reset`, as the server sent it (for messages).
    header: String,
}

/// An origin within the margin of its limit.
#[derive(Debug, Clone)]
pub struct Low {
    pub limit: u64,
    pub remaining: u64,
    pub margin: u64,
    pub reset: SystemTime,
    /// The header that set `reset`, as the server sent it (for messages).
    pub header: String,
}

/// Requests kept in reserve: `max(2, 1% of the limit)`.
pub fn margin(limit: u64) -> u64 {
    (limit / 100).max(2)
}

impl RateLimits {
    /// `None` and one request counted when `origin` may be sent to now; otherwise how low its
    /// budget is and when it resets. A budget whose window has reset is forgotten.
    pub fn take(&self, origin: &str) -> Option<Low> {
        let mut map = crate::runtime::lock(&self.by_origin);
        let b = map.get_mut(origin)?;
        if b.reset <= SystemTime::now() {
            map.remove(origin);
            return None;
        }
        let margin = margin(b.limit);
        if b.remaining <= margin {
            return Some(Low {
                limit: b.limit,
                remaining: b.remaining,
                margin,
                reset: b.reset,
                header: b.header.clone(),
            });
        }
        b.remaining -= 1;
        None
    }

    /// Remembers what `resp` says about `origin`'s budget (the latest response wins).
    pub fn observe(&self, origin: &str, resp: &Response) {
        self.sent.note(origin, &resp.headers);
        let num = |name: &str| header(&resp.headers, name).and_then(|v| v.parse::<u64>().ok());
        let now = SystemTime::now();
        let at = |w: ServerWait| Budget {
            limit: 0,
            remaining: 0,
            reset: now.checked_add(w.wait).unwrap_or(now),
            header: w.header,
        };
        let budget = if resp.status == 429 {
            // Nothing left until the time the 429 names.
            server_wait(&resp.headers).map(|w| Budget {
                limit: num("x-ratelimit-limit").unwrap_or(0),
                ..at(w)
            })
        } else {
            let reset = epoch_wait(&resp.headers, "X-RateLimit-Reset");
            match (num("x-ratelimit-remaining"), reset) {
                (Some(remaining), Some(w)) => Some(Budget {
                    limit: num("x-ratelimit-limit").unwrap_or(remaining),
                    remaining,
                    ..at(w)
                }),
                _ => None,
            }
        };
        if let Some(b) = budget {
            crate::runtime::lock(&self.by_origin).insert(origin.to_string(), b);
        }
    }
}

async fn once(
    ctx: &CallCtx,
    method: &reqwest::Method,
    url: &reqwest::Url,
    headers: &[(String, String)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<Response, AttemptError> {
    let mut rb = ctx
        .rt
        .http
        .request(method.clone(), url.clone())
        .timeout(timeout);
    for (k, v) in headers {
        rb = rb.header(k.as_str(), v.as_str());
    }
    if let Some(b) = body {
        rb = rb.body(b.to_vec());
    }
    let mut resp = rb.send().await.map_err(classify)?;
    let status = resp.status().as_u16();
    let headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let cap = ctx.rt.limits.max_response;
    let declared = resp
        .content_length()
        .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
    if declared > cap {
        return Err(AttemptError::Fatal(too_big(url, cap)));
    }
    let what = format!(
        "the response body from {}",
        url.origin().ascii_serialization()
    );
    // A declared length is charged to the run's memory before the body is read into one
    // buffer of that size: grown chunk by chunk, a page of ASA events was copied a dozen
    // times, and each larger buffer was fresh memory the kernel had to zero (issue 20).
    let mut held = ctx
        .run
        .budget
        .charge(declared, &what)
        .map_err(AttemptError::Fatal)?;
    let mut charged = declared;
    let mut body = Vec::with_capacity(declared);
    while let Some(chunk) = resp.chunk().await.map_err(classify)? {
        let len = body.len() + chunk.len();
        if len > cap {
            return Err(AttemptError::Fatal(too_big(url, cap)));
        }
        if len > charged {
            held.grow(len - charged, &what)
                .map_err(AttemptError::Fatal)?;
            charged = len;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn too_big(url: &reqwest::Url, cap: usize) -> WitError {
    WitError::LimitExceeded(format!(
        "http: the response from {url} is over the limit of {cap} bytes"
    ))
}

fn classify(e: reqwest::Error) -> AttemptError {
    if e.is_builder() {
        return AttemptError::Fatal(WitError::InvalidInput(format!("http: {e}")));
    }
    // The source chain carries the useful part ("connection refused"); the URL is added by
    // the caller.
    let timed_out = e.is_timeout();
    let e = e.without_url();
    let mut msg = if timed_out {
        "timed out".to_string()
    } else {
        e.to_string()
    };
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg = format!("{msg}: {text}");
        }
        src = s.source();
    }
    AttemptError::Transient(msg)
}

/// A wait a server asked for, and the header that asked, as sent (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerWait {
    /// At most [`MAX_SERVER_WAIT`] (plus jitter from [`rate_limit_wait`]).
    pub wait: Duration,
    /// `Name: value`, the value escaped and cut to a few dozen characters.
    pub header: String,
}

/// How long a 429 asks us to wait: `Retry-After` (seconds or an HTTP date), else
/// `X-RateLimit-Retry-At`, else `X-RateLimit-Reset` (unix seconds), plus 50–500 ms of jitter.
/// `None` when no header says (or none parses).
pub fn rate_limit_wait(headers: &[(String, String)]) -> Option<ServerWait> {
    let jitter = Duration::from_millis(rand::random_range(50..=500));
    server_wait(headers).map(|w| ServerWait {
        wait: w.wait.saturating_add(jitter),
        ..w
    })
}

/// [`rate_limit_wait`] without the jitter: never more than [`MAX_SERVER_WAIT`], never a
/// panic, whatever the headers say.
pub fn server_wait(headers: &[(String, String)]) -> Option<ServerWait> {
    if let Some(value) = header(headers, "retry-after") {
        let wait = match value.parse::<u64>() {
            Ok(s) => Some(Duration::from_secs(s).min(MAX_SERVER_WAIT)),
            // All digits but past u64: as long as can be.
            Err(_) if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                Some(MAX_SERVER_WAIT)
            }
            Err(_) => jiff::fmt::rfc2822::parse(value)
                .ok()
                .map(|t| until_unix(t.timestamp().as_second() as f64)),
        };
        return wait.map(|wait| ServerWait {
            wait,
            header: shown_header("Retry-After", value),
        });
    }
    if header(headers, "x-ratelimit-retry-at").is_some() {
        return epoch_wait(headers, "X-RateLimit-Retry-At");
    }
    epoch_wait(headers, "X-RateLimit-Reset")
}

/// The wait until the unix time (seconds, maybe with decimals) in header `name`; `None` when
/// it is absent, negative, not a number, `NaN` or infinite.
fn epoch_wait(headers: &[(String, String)], name: &str) -> Option<ServerWait> {
    let value = header(headers, name)?;
    let secs = value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)?;
    Some(ServerWait {
        wait: until_unix(secs),
        header: shown_header(name, value),
    })
}

/// From now until unix time `secs`: zero if past, at most [`MAX_SERVER_WAIT`].
fn until_unix(secs: f64) -> Duration {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let ahead = (secs - now).min(MAX_SERVER_WAIT.as_secs_f64());
    if ahead > 0.0 {
        Duration::try_from_secs_f64(ahead).unwrap_or(MAX_SERVER_WAIT)
    } else {
        Duration::ZERO
    }
}

/// The trimmed value of the first header called `name` (any case).
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// `Name: value` for a message: control characters escaped, a long value cut.
fn shown_header(name: &str, value: &str) -> String {
    let mut shown: String = value.chars().take(MAX_SHOWN_VALUE).collect();
    if shown.len() < value.len() {
        shown.push('…');
    }
    format!("{name}: {}", crate::terminal::escape_controls(&shown))
}

/// `url` for a log line: no credentials, and `?…` for its query (where tokens travel).
pub(crate) fn log_url(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_fragment(None);
    let had_query = shown.query().is_some();
    shown.set_query(None);
    if had_query {
        format!("{shown}?…")
    } else {
        shown.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_headers_give_a_wait() {
        let h = |k: &str, v: String| vec![(k.to_string(), v)];
        let w = rate_limit_wait(&h("Retry-After", "2".into())).unwrap().wait;
        assert!(
            w >= Duration::from_secs(2) && w <= Duration::from_millis(2500),
            "{w:?}"
        );
        let at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3;
        let w = rate_limit_wait(&h("x-ratelimit-retry-at", at.to_string()))
            .unwrap()
            .wait;
        assert!(
            w > Duration::from_millis(1500) && w <= Duration::from_millis(3500),
            "{w:?}"
        );
        let w = rate_limit_wait(&h("X-RateLimit-Reset", "1".into()))
            .unwrap()
            .wait;
        assert!(
            w <= Duration::from_millis(500),
            "a reset in the past means no wait beyond jitter: {w:?}"
        );
        assert!(rate_limit_wait(&[]).is_none());
        assert!(rate_limit_wait(&h("retry-after", "soon".into())).is_none());
    }

    #[test]
    fn an_origin_within_the_margin_is_held_until_its_reset() {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let resp = |status: u16, pairs: &[(&str, String)]| Response {
            status,
            headers: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            body: Vec::new(),
        };
        let limits = RateLimits::default();
        let o = "http://127.0.0.1:1";
        assert!(limits.take(o).is_none(), "nothing known: go");
        let reset = (now + 600).to_string();
        limits.observe(
            o,
            &resp(
                200,
                &[
                    ("X-RateLimit-Limit", "30".into()),
                    ("X-RateLimit-Remaining", "4".into()),
                    ("X-RateLimit-Reset", reset.clone()),
                ],
            ),
        );
        // Margin max(2, 1%) = 2: two more requests go, the third waits.
        assert!(limits.take(o).is_none());
        assert!(limits.take(o).is_none());
        let low = limits.take(o).expect("within the margin");
        assert_eq!((low.limit, low.remaining, low.margin), (30, 2, 2));
        assert!(limits.take("http://127.0.0.1:2").is_none(), "per origin");
        // A window that has reset is forgotten.
        limits.observe(
            o,
            &resp(
                200,
                &[
                    ("X-RateLimit-Limit", "30".into()),
                    ("X-RateLimit-Remaining", "0".into()),
                    ("X-RateLimit-Reset", (now - 1).to_string()),
                ],
            ),
        );
        assert!(limits.take(o).is_none());
        // A 429 holds the origin until the time it names, not the (later) window reset.
        limits.observe(
            o,
            &resp(
                429,
                &[
                    ("X-RateLimit-Limit", "10000".into()),
                    ("X-RateLimit-Remaining", "0".into()),
                    ("X-RateLimit-Reset", reset),
                    ("X-RateLimit-Retry-At", (now + 2).to_string()),
                ],
            ),
        );
        let low = limits.take(o).expect("held after a 429");
        assert!(low.reset <= SystemTime::now() + Duration::from_secs(3));
        assert_eq!(margin(10_000), 100);
        assert_eq!(margin(u64::from(u32::MAX)), 42_949_672);
    }

    #[test]
    fn hostile_numbers_are_bounded_or_ignored() {
        let h = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let max = MAX_SERVER_WAIT;
        for (name, value) in [
            ("Retry-After", "18446744073709551615"),
            ("Retry-After", "99999999999999999999999999"),
            ("X-RateLimit-Reset", "18446744073709551615"),
            ("X-RateLimit-Reset", "1e300"),
            ("X-RateLimit-Retry-At", "1.7976931348623157e308"),
            ("Retry-After", "Thu, 30 Dec 9999 00:00:00 GMT"),
        ] {
            let w = server_wait(&h(name, value)).unwrap();
            assert_eq!(w.wait, max, "{name}: {value}");
            assert_eq!(w.header, format!("{name}: {value}"));
        }
        for (name, value) in [
            ("X-RateLimit-Reset", "NaN"),
            ("X-RateLimit-Reset", "inf"),
            ("X-RateLimit-Reset", "-infinity"),
            ("X-RateLimit-Reset", "-5"),
            ("Retry-After", "-5"),
            ("Retry-After", "1e300"),
            ("Retry-After", "Fri, 31 Dec 99999 23:59:59 GMT"),
            ("Retry-After", "Fri, 31 Dec 9999 23:59:59 GMT"),
            ("Retry-After", ""),
        ] {
            assert_eq!(server_wait(&h(name, value)), None, "{name}: {value}");
        }
        // A past date is no wait; the value is cut and escaped in messages.
        let w = server_wait(&h("Retry-After", "Thu, 01 Jan 1970 00:00:00 GMT")).unwrap();
        assert_eq!(w.wait, Duration::ZERO);
        let long = format!("\u{1b}[2J{}", "9".repeat(100));
        let w = server_wait(&h("X-RateLimit-Retry-At", &long)).unwrap_or(ServerWait {
            wait: Duration::ZERO,
            header: shown_header("X-RateLimit-Retry-At", &long),
        });
        assert!(w.header.starts_with("X-RateLimit-Retry-At: \\u{1b}[2J999"));
        assert!(
            w.header.ends_with('…') && w.header.len() < 100,
            "{}",
            w.header
        );

        // A 200 with a budget resetting at the end of time: remembered for a day at most.
        let limits = RateLimits::default();
        let o = "http://127.0.0.1:1";
        let resp = |status: u16, pairs: &[(&str, &str)]| Response {
            status,
            headers: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
        };
        limits.observe(
            o,
            &resp(
                200,
                &[
                    ("X-RateLimit-Remaining", "2"),
                    ("X-RateLimit-Reset", "18446744073709551615"),
                ],
            ),
        );
        let low = limits.take(o).expect("within the margin");
        assert!(low.reset <= SystemTime::now() + max);
        assert_eq!(low.header, "X-RateLimit-Reset: 18446744073709551615");
        limits.observe(o, &resp(429, &[("Retry-After", "18446744073709551615")]));
        let low = limits.take(o).expect("held after a 429");
        assert_eq!(
            (low.remaining, low.header.as_str()),
            (0, "Retry-After: 18446744073709551615")
        );
    }

    #[test]
    fn log_urls_lose_query_and_credentials() {
        let u = reqwest::Url::parse("http://me:pw@127.0.0.1:8/a/b?token=s3cr3t#f").unwrap();
        assert_eq!(log_url(&u), "http://127.0.0.1:8/a/b?…");
        let u = reqwest::Url::parse("https://h/p").unwrap();
        assert_eq!(log_url(&u), "https://h/p");
    }

    mod fuzz {
        //! Fuzzing of response-header handling: arbitrary statuses, header names and values
        //! (numbers near every limit, dates, junk) through `RateLimits::observe`, `take` and
        //! `rate_limit_wait`: no panic, and every wait and reset within bounds. 2,000 cases by
        //! default (well under a second); `PROPTEST_CASES` for a longer run.
        use super::*;
        use proptest::prelude::*;

        fn cases() -> u32 {
            std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(2000)
        }

        fn name() -> impl Strategy<Value = String> {
            prop_oneof![
                prop::sample::select(vec![
                    "Retry-After",
                    "retry-after",
                    "X-RateLimit-Limit",
                    "x-ratelimit-remaining",
                    "X-RateLimit-Reset",
                    "X-RateLimit-Retry-At",
                ])
                .prop_map(str::to_string),
                "[A-Za-z-]{1,20}",
            ]
        }

        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<u64>().prop_map(|n| n.to_string()),
                any::<i64>().prop_map(|n| n.to_string()),
                any::<f64>().prop_map(|f| f.to_string()),
                any::<f64>().prop_map(|f| format!("{f:e}")),
                (0u64..4_000_000_000).prop_map(|n| n.to_string()),
                prop::sample::select(vec![
                    "NaN",
                    "inf",
                    "-inf",
                    "infinity",
                    "1e300",
                    "-0",
                    "",
                    " 5 ",
                    "0x10",
                    "18446744073709551616",
                    "340282366920938463463374607431768211456",
                    "Thu, 30 Dec 9999 00:00:00 GMT",
                    "Thu, 01 Jan 1970 00:00:00 GMT",
                    "Mon, 01 Jan 0001 00:00:00 GMT",
                    "Wed, 21 Oct 2015 07:28:00 GMT",
                ])
                .prop_map(str::to_string),
                ".{0,40}",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                cases: cases(),
                failure_persistence: None,
                ..ProptestConfig::default()
            })]

            #[test]
            fn response_headers_never_panic_and_waits_stay_bounded(
                responses in prop::collection::vec(
                    (
                        prop::sample::select(vec![200u16, 204, 429, 500, 503]),
                        prop::collection::vec((name(), value()), 0..6),
                    ),
                    1..4,
                ),
                takes in 0usize..5,
            ) {
                let limits = RateLimits::default();
                let origin = "http://127.0.0.1:1";
                let bound = MAX_SERVER_WAIT + Duration::from_secs(1);
                for (status, headers) in responses {
                    if let Some(w) = rate_limit_wait(&headers) {
                        prop_assert!(w.wait <= bound, "{:?} from {:?}", w.wait, headers);
                        prop_assert!(w.header.len() < 200 && !w.header.contains('\n'));
                    }
                    let resp = Response { status, headers, body: Vec::new() };
                    limits.observe(origin, &resp);
                    for _ in 0..takes {
                        if let Some(low) = limits.take(origin) {
                            let until = low
                                .reset
                                .duration_since(SystemTime::now())
                                .unwrap_or_default();
                            prop_assert!(until <= bound, "{until:?}");
                            prop_assert!(low.remaining <= low.margin);
                        }
                    }
                }
            }
        }
    }
}
