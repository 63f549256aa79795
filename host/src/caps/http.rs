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

impl Host for RunState {
    async fn send(&mut self, req: Request) -> Result<Response, WitError> {
        let ctx = &self.ctx;
        let (method, url) = check(ctx, &req)?;
        if let Some(resp) = ctx.rt.prefetches.take(ctx, &req).await {
            return Ok(resp);
        }
        send(ctx, method, url, req).await
    }

    async fn prefetch(&mut self, req: Request) -> Result<(), WitError> {
        let ctx = &self.ctx;
        let (method, url) = check(ctx, &req)?;
        if method != reqwest::Method::GET && method != reqwest::Method::HEAD {
            return Err(WitError::InvalidInput(format!(
                "http: only GET and HEAD can be prefetched, not {method} {url}"
            )));
        }
        if ctx.rt.limits.http_prefetch {
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
                Some(w) => w,
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
                tracing::debug!(flow = ctx.name(), %url, attempt, error = %msg, "retrying");
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
            + jitter;
        let resets = jiff::Timestamp::try_from(low.reset)
            .map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string())
            .unwrap_or_else(|_| "an unknown time".into());
        if wait >= ctx.remaining() {
            return Err(WitError::LimitExceeded(format!(
                "http: {origin} rate limit: {} of {} requests left in this window (flowhost \
                 keeps a margin of {}); it resets at {resets}, in {} s, after this run's \
                 deadline; not sending {method} {url}",
                low.remaining,
                low.limit,
                low.margin,
                wait.as_secs()
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
}

#[derive(Debug, Clone, Copy)]
struct Budget {
    limit: u64,
    remaining: u64,
    reset: SystemTime,
}

/// An origin within the margin of its limit.
#[derive(Debug, Clone, Copy)]
pub struct Low {
    pub limit: u64,
    pub remaining: u64,
    pub margin: u64,
    pub reset: SystemTime,
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
            });
        }
        b.remaining -= 1;
        None
    }

    /// Remembers what `resp` says about `origin`'s budget (the latest response wins).
    pub fn observe(&self, origin: &str, resp: &Response) {
        let get = |name: &str| {
            resp.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim())
        };
        let num = |name: &str| get(name).and_then(|v| v.parse::<u64>().ok());
        let budget = if resp.status == 429 {
            // Nothing left until the time the 429 names.
            rate_limit_wait_base(&resp.headers).map(|wait| Budget {
                limit: num("x-ratelimit-limit").unwrap_or(0),
                remaining: 0,
                reset: SystemTime::now() + wait,
            })
        } else {
            match (num("x-ratelimit-remaining"), num("x-ratelimit-reset")) {
                (Some(remaining), Some(reset)) => Some(Budget {
                    limit: num("x-ratelimit-limit").unwrap_or(remaining),
                    remaining,
                    reset: SystemTime::UNIX_EPOCH + Duration::from_secs(reset),
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
    if resp.content_length().is_some_and(|n| n as usize > cap) {
        return Err(AttemptError::Fatal(too_big(url, cap)));
    }
    let mut body = Vec::new();
    let what = format!(
        "the response body from {}",
        url.origin().ascii_serialization()
    );
    let mut held = ctx
        .run
        .budget
        .charge(0, &what)
        .map_err(AttemptError::Fatal)?;
    while let Some(chunk) = resp.chunk().await.map_err(classify)? {
        if body.len() + chunk.len() > cap {
            return Err(AttemptError::Fatal(too_big(url, cap)));
        }
        held.grow(chunk.len(), &what).map_err(AttemptError::Fatal)?;
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

/// How long a 429 asks us to wait: `Retry-After` (seconds or an HTTP date), else
/// `X-RateLimit-Retry-At`, else `X-RateLimit-Reset` (unix seconds), plus a little jitter.
pub fn rate_limit_wait(headers: &[(String, String)]) -> Option<Duration> {
    let jitter = Duration::from_millis(rand::random_range(50..=500));
    rate_limit_wait_base(headers).map(|base| base + jitter)
}

/// [`rate_limit_wait`] without the jitter.
fn rate_limit_wait_base(headers: &[(String, String)]) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    let now = SystemTime::now();
    let until = |secs: f64| {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs.max(0.0));
        at.duration_since(now).unwrap_or_default()
    };
    let base = if let Some(v) = get("retry-after") {
        match v.parse::<u64>() {
            Ok(s) => Duration::from_secs(s),
            Err(_) => {
                let t = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
                until(t.as_second() as f64)
            }
        }
    } else if let Some(v) = get("x-ratelimit-retry-at").or_else(|| get("x-ratelimit-reset")) {
        until(v.parse::<f64>().ok()?)
    } else {
        return None;
    };
    Some(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_headers_give_a_wait() {
        let h = |k: &str, v: String| vec![(k.to_string(), v)];
        let w = rate_limit_wait(&h("Retry-After", "2".into())).unwrap();
        assert!(
            w >= Duration::from_secs(2) && w <= Duration::from_millis(2500),
            "{w:?}"
        );
        let at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3;
        let w = rate_limit_wait(&h("x-ratelimit-retry-at", at.to_string())).unwrap();
        assert!(
            w > Duration::from_millis(1500) && w <= Duration::from_millis(3500),
            "{w:?}"
        );
        let w = rate_limit_wait(&h("X-RateLimit-Reset", "1".into())).unwrap();
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
}
