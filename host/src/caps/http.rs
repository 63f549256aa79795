//! `http.send`: buffered HTTP through one shared `reqwest` client. Checks the URL against the
//! flow's allowed hosts, caps the response size, applies per-attempt timeouts inside the run's
//! deadline, and retries when the flow asks: exponential backoff with jitter (`backon`) on
//! connect errors, timeouts and 5xx; on 429 it waits for `Retry-After`,
//! `X-RateLimit-Retry-At` or `X-RateLimit-Reset`, unless that is past the deadline.

use std::time::{Duration, SystemTime};

use backon::BackoffBuilder;

use crate::engine::flowhost::flow::http::{Host, Request, Response, RetryPolicy};
use crate::engine::{RunState, WitError};
use crate::runtime::CallCtx;

/// Most attempts a retry policy may ask for.
const MAX_ATTEMPTS: u32 = 10;

impl Host for RunState {
    async fn send(&mut self, req: Request) -> Result<Response, WitError> {
        send(&self.ctx, req).await
    }
}

/// Why one attempt did not give a usable response.
enum AttemptError {
    /// Worth retrying (connect error, timeout).
    Transient(String),
    /// Not worth retrying.
    Fatal(WitError),
}

async fn send(ctx: &CallCtx, req: Request) -> Result<Response, WitError> {
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

    let mut attempt = 0;
    loop {
        attempt += 1;
        let last = attempt >= attempts;
        let timeout = per_attempt.min(ctx.remaining());
        if timeout.is_zero() {
            return Err(WitError::Timeout(format!(
                "http: the run's deadline passed before {} {url}",
                method
            )));
        }
        let wait = match once(
            ctx,
            &method,
            &url,
            &req.headers,
            req.body.as_deref(),
            timeout,
        )
        .await
        {
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
    while let Some(chunk) = resp.chunk().await.map_err(classify)? {
        if body.len() + chunk.len() > cap {
            return Err(AttemptError::Fatal(too_big(url, cap)));
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

/// How long a 429 asks us to wait: `Retry-After` (seconds or an HTTP date), else
/// `X-RateLimit-Retry-At`, else `X-RateLimit-Reset` (unix seconds), plus a little jitter.
pub fn rate_limit_wait(headers: &[(String, String)]) -> Option<Duration> {
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
    let jitter = Duration::from_millis(rand::random_range(50..=500));
    Some(base + jitter)
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
}
