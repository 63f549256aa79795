//! HTTP routes: `POST /v1/teams/{team}/service_token` and
//! `GET /v1/teams/{team}/auditsV2`, plus rate limiting, auth and fault handling.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::data::{self, mix64, Data};
use crate::faults::{error_type, Endpoint, Fault, FaultQueue};
use crate::{LinkStyle, Stats};

const MAX_COUNT: u64 = 1000;
const DEFAULT_COUNT: u64 = 100;

#[derive(Default)]
pub(crate) struct Counters {
    token_requests: AtomicU64,
    tokens_issued: AtomicU64,
    audit_requests: AtomicU64,
    other_requests: AtomicU64,
    faults_served: AtomicU64,
    events_served: AtomicU64,
    status_2xx: AtomicU64,
    status_401: AtomicU64,
    status_429: AtomicU64,
    status_5xx: AtomicU64,
    status_other: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Stats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            token_requests: g(&self.token_requests),
            tokens_issued: g(&self.tokens_issued),
            audit_requests: g(&self.audit_requests),
            other_requests: g(&self.other_requests),
            faults_served: g(&self.faults_served),
            events_served: g(&self.events_served),
            status_2xx: g(&self.status_2xx),
            status_401: g(&self.status_401),
            status_429: g(&self.status_429),
            status_5xx: g(&self.status_5xx),
            status_other: g(&self.status_other),
        }
    }
}

struct RateWindow {
    start: Instant,
    start_unix: i64,
    used: u64,
}

/// Values of the `X-RateLimit-*` headers for one response.
#[derive(Clone, Copy)]
struct RateInfo {
    limit: u64,
    remaining: u64,
    reset: i64,
    retry_at: Option<i64>,
    exceeded: bool,
}

/// Everything the request handlers share.
pub(crate) struct Shared {
    pub(crate) data: Data,
    pub(crate) team: String,
    pub(crate) key_id: String,
    pub(crate) key_secret: String,
    pub(crate) token_ttl: Duration,
    pub(crate) rate_limit: u32,
    /// Whole seconds, at least 1.
    rate_window: Duration,
    pub(crate) link_style: LinkStyle,
    pub(crate) team_case_sensitive: bool,
    pub(crate) base_url: String,
    pub(crate) count: AtomicU64,
    /// Index of the oldest retained event: every event before it has aged out
    /// ([`crate::Sim::expire_oldest`]).
    pub(crate) expired: AtomicU64,
    pub(crate) faults: FaultQueue,
    pub(crate) counters: Counters,
    /// bearer token → expiry (ns since the epoch).
    tokens: Mutex<HashMap<String, i128>>,
    token_seq: AtomicU64,
    rate: Mutex<RateWindow>,
    /// The other teams of this server, each with its own keys, data, tokens and budget.
    pub(crate) others: Vec<Arc<Shared>>,
}

pub(crate) struct SharedInit {
    pub(crate) data: Data,
    pub(crate) team: String,
    pub(crate) key_id: String,
    pub(crate) key_secret: String,
    pub(crate) token_ttl: Duration,
    pub(crate) rate_limit: u32,
    pub(crate) rate_window: Duration,
    pub(crate) link_style: LinkStyle,
    pub(crate) team_case_sensitive: bool,
    pub(crate) base_url: String,
    pub(crate) events: u64,
    /// The other teams this server answers for (see [`SimConfig::extra_teams`](crate::SimConfig)).
    pub(crate) others: Vec<Arc<Shared>>,
}

fn now_ns() -> i128 {
    jiff::Timestamp::now().as_nanosecond()
}

fn now_unix() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Now in unix seconds, rounded up: a window that starts at the `Instant` now and is reported
/// from this second never ends before its reported reset.
fn now_unix_ceil() -> i64 {
    let t = jiff::Timestamp::now();
    t.as_second() + i64::from(t.subsec_nanosecond() > 0)
}

impl Shared {
    /// Whether `team` (from a URL path) names the simulated team.
    fn is_team(&self, team: &str) -> bool {
        if self.team_case_sensitive {
            team == self.team
        } else {
            team.eq_ignore_ascii_case(&self.team)
        }
    }

    pub(crate) fn new(init: SharedInit) -> Shared {
        Shared {
            data: init.data,
            team: init.team,
            key_id: init.key_id,
            key_secret: init.key_secret,
            token_ttl: init.token_ttl,
            rate_limit: init.rate_limit,
            rate_window: Duration::from_secs(
                (init.rate_window.as_secs() + u64::from(init.rate_window.subsec_nanos() > 0))
                    .max(1),
            ),
            link_style: init.link_style,
            team_case_sensitive: init.team_case_sensitive,
            base_url: init.base_url,
            count: AtomicU64::new(init.events),
            expired: AtomicU64::new(0),
            faults: FaultQueue::default(),
            counters: Counters::default(),
            tokens: Mutex::new(HashMap::new()),
            token_seq: AtomicU64::new(0),
            rate: Mutex::new(RateWindow {
                start: Instant::now(),
                start_unix: now_unix_ceil(),
                used: 0,
            }),
            others: init.others,
        }
    }

    /// The team a request's path names: one of the other teams when it names one, else this
    /// one (which then answers 404 for an unknown team, as before).
    fn pick<'a>(self: &'a Arc<Self>, path: Option<&Path<String>>) -> &'a Arc<Shared> {
        path.and_then(|Path(t)| self.others.iter().find(|o| o.is_team(t)))
            .unwrap_or(self)
    }

    pub(crate) fn issued_tokens(&self) -> Vec<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.keys().cloned().collect()
    }

    pub(crate) fn expire_tokens(&self) {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn revoke(&self, token: &str) {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
    }

    fn token_valid(&self, token: &str) -> bool {
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.get(token).is_some_and(|&exp| exp > now_ns())
    }

    /// Counts one request against the hourly budget.
    fn take_rate(&self) -> RateInfo {
        let mut w = self.rate.lock().unwrap_or_else(|e| e.into_inner());
        let window = self.rate_window;
        let elapsed = w.start.elapsed();
        if elapsed >= window {
            let k = elapsed.as_secs() / window.as_secs();
            w.start += window * (k as u32);
            w.start_unix += (k * window.as_secs()) as i64;
            w.used = 0;
        }
        w.used += 1;
        let reset = w.start_unix + window.as_secs() as i64;
        if self.rate_limit == 0 {
            return RateInfo {
                limit: u64::from(u32::MAX),
                remaining: u64::from(u32::MAX),
                reset,
                retry_at: None,
                exceeded: false,
            };
        }
        let limit = u64::from(self.rate_limit);
        let exceeded = w.used > limit;
        RateInfo {
            limit,
            remaining: limit.saturating_sub(w.used),
            reset,
            retry_at: exceeded.then_some(reset),
            exceeded,
        }
    }

    fn issue_token(&self) -> (String, String) {
        let seq = self.token_seq.fetch_add(1, Ordering::Relaxed);
        let k = self.data.keys.token;
        let issued = now_ns();
        let ttl_ns = i128::try_from(self.token_ttl.as_nanos()).unwrap_or(i128::MAX / 4);
        let exp_ns = issued.saturating_add(ttl_ns);
        let a = mix64(k ^ seq);
        let b = mix64(a ^ issued as u64);
        let jti = format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48 & 0x3fff),
            b & 0xffff_ffff_ffff
        );
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"asa-sim","typ":"JWT"}"#);
        let claims = serde_json::json!({
            "exp": exp_ns.div_euclid(1_000_000_000) as i64,
            "iss": "scaleft.auth.token",
            "jti": jti,
            "roles": {},
            "team": self.team,
            "user": "asa-sim",
        });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let mut sig = [0u8; 64];
        for (j, chunk) in sig.chunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&mix64(b.wrapping_add(j as u64)).to_be_bytes());
        }
        let token = format!("{header}.{claims}.{}", URL_SAFE_NO_PAD.encode(sig));
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.clone(), exp_ns);
        bump(&self.counters.tokens_issued);
        (token, data::rfc3339_nanos(exp_ns))
    }

    fn link_url(&self, count: u64, descending: bool, offset_id: &str, prev: bool) -> String {
        let mut s = String::with_capacity(self.base_url.len() + 96);
        if self.link_style == LinkStyle::Absolute {
            s.push_str(&self.base_url);
        }
        s.push_str("/v1/teams/");
        escape(&mut s, &self.team, true);
        s.push_str("/auditsV2?count=");
        s.push_str(&count.to_string());
        if descending {
            s.push_str("&descending=true");
        }
        s.push_str("&offset=");
        escape(&mut s, offset_id, false);
        if prev {
            s.push_str("&prev=true");
        }
        s
    }

    fn record(&self, status: StatusCode) {
        let c = &self.counters;
        match status.as_u16() {
            200..=299 => bump(&c.status_2xx),
            401 => bump(&c.status_401),
            429 => bump(&c.status_429),
            500..=599 => bump(&c.status_5xx),
            _ => bump(&c.status_other),
        }
    }
}

/// Go-style escaping: `url.PathEscape` (path = true) or `url.QueryEscape`.
fn escape(out: &mut String, s: &str, path: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (path
                && matches!(
                    b,
                    b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'@'
                ));
        if keep {
            out.push(b as char);
        } else if b == b' ' && !path {
            out.push('+');
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/teams/{team}/service_token", post(service_token))
        .route("/v1/teams/{team}/auditsV2", get(audits))
        .fallback(fallback)
        .with_state(shared)
}

// ---------------------------------------------------------------------------
// Response helpers
// ---------------------------------------------------------------------------

/// A response before the rate-limit headers are added.
struct Reply {
    status: StatusCode,
    body: Vec<u8>,
    link: Option<String>,
}

impl Reply {
    fn json(status: StatusCode, body: Vec<u8>) -> Reply {
        Reply {
            status,
            body,
            link: None,
        }
    }
}

/// The ASA error body: `{"type":..,"code":..,"message":..}`.
fn error(status: u16, message: &str) -> Reply {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = status.as_u16();
    let body = serde_json::json!({
        "type": error_type(code),
        "code": code,
        "message": message,
    });
    Reply::json(status, body.to_string().into_bytes())
}

fn set_int(r: &mut Response, name: &'static str, v: impl ToString) {
    if let Ok(v) = HeaderValue::from_str(&v.to_string()) {
        r.headers_mut().insert(name, v);
    }
}

fn finish(s: &Shared, reply: Reply, rate: RateInfo) -> Response {
    let mut r = Response::new(Body::from(reply.body));
    *r.status_mut() = reply.status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(link) = reply.link {
        if let Ok(v) = HeaderValue::from_str(&link) {
            r.headers_mut().insert(header::LINK, v);
        }
    }
    set_int(&mut r, "x-ratelimit-limit", rate.limit);
    set_int(&mut r, "x-ratelimit-remaining", rate.remaining);
    set_int(&mut r, "x-ratelimit-reset", rate.reset);
    if let Some(at) = rate.retry_at {
        set_int(&mut r, "x-ratelimit-retry-at", at);
    }
    s.record(r.status());
    r
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// What to do with the normal response after it is built.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PostFault {
    None,
    Truncated,
    NoLink,
    MalformedLink,
}

/// Shared front half of every API request: rate limit, then fault queue.
/// `Err(reply)` = respond with this now; `Ok(post)` = serve normally.
async fn front(
    s: &Shared,
    ep: Endpoint,
    headers: &HeaderMap,
    rate: &mut RateInfo,
) -> Result<PostFault, Reply> {
    if rate.exceeded {
        return Err(error(
            429,
            "rate limit exceeded: too many requests in this period",
        ));
    }
    let Some(fault) = s.faults.pop(ep) else {
        return Ok(PostFault::None);
    };
    bump(&s.counters.faults_served);
    tracing::debug!(?fault, ?ep, "asa-sim: serving injected fault");
    match fault {
        Fault::Status(code) => Err(error(code, "injected failure")),
        Fault::RateLimited => {
            rate.remaining = 0;
            rate.retry_at = Some(now_unix() + 1);
            Err(error(429, "too many requests (injected)"))
        }
        Fault::RateLimitedResetOnly => {
            rate.remaining = 0;
            rate.retry_at = None;
            rate.reset = now_unix() + 1;
            Err(error(429, "too many requests (injected)"))
        }
        Fault::Latency(d) => {
            tokio::time::sleep(d).await;
            Ok(PostFault::None)
        }
        Fault::Truncated => Ok(PostFault::Truncated),
        Fault::Malformed => Err(Reply::json(
            StatusCode::OK,
            b"<html><head><title>502 Bad Gateway</title></head><body>upstream hiccup</body></html>"
                .to_vec(),
        )),
        Fault::NoLink => Ok(PostFault::NoLink),
        Fault::MalformedLink => Ok(PostFault::MalformedLink),
        Fault::ExpireToken => {
            if let Some(t) = bearer(headers) {
                s.revoke(t);
            }
            Err(error(401, "the auth token has expired (injected)"))
        }
    }
}

fn apply_post(s: &Shared, mut r: Reply, post: PostFault) -> Reply {
    if !r.status.is_success() {
        return r;
    }
    match post {
        PostFault::None => {}
        PostFault::NoLink => r.link = None,
        PostFault::MalformedLink => {
            r.link = Some(format!(
                "<{}/v1/teams/{}/auditsV2?count=%%zz&offset=>; rel=next; <<garbage, rel=\"next",
                s.base_url, s.team
            ))
        }
        PostFault::Truncated => {
            let half = r.body.len() / 2;
            r.body.truncate(half);
        }
    }
    r
}

// ---------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------

async fn service_token(
    State(s): State<Arc<Shared>>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let s = s.pick(path.as_ref().ok()).clone();
    bump(&s.counters.token_requests);
    let mut rate = s.take_rate();
    let r = match front(&s, Endpoint::Token, &headers, &mut rate).await {
        Err(r) => r,
        Ok(post) => apply_post(&s, token_inner(&s, path.ok(), &body), post),
    };
    finish(&s, r, rate)
}

fn token_inner(s: &Shared, team: Option<Path<String>>, body: &[u8]) -> Reply {
    let Some(Path(team)) = team else {
        return error(404, "team not found");
    };
    if !s.is_team(&team) {
        return error(404, &format!("team {team:?} does not exist"));
    }
    let req: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return error(400, &format!("request body is not valid JSON: {e}")),
    };
    let (Some(key_id), Some(key_secret)) = (
        req.get("key_id").and_then(|v| v.as_str()),
        req.get("key_secret").and_then(|v| v.as_str()),
    ) else {
        return error(400, "key_id and key_secret are required strings");
    };
    if key_id != s.key_id || key_secret != s.key_secret {
        return error(401, "invalid key_id or key_secret");
    }
    let (token, expires_at) = s.issue_token();
    let body = serde_json::json!({
        "bearer_token": token,
        "expires_at": expires_at,
        "team_name": s.team,
    });
    Reply::json(StatusCode::OK, body.to_string().into_bytes())
}

async fn audits(
    State(s): State<Arc<Shared>>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let s = s.pick(path.as_ref().ok()).clone();
    bump(&s.counters.audit_requests);
    let mut rate = s.take_rate();
    let r = match front(&s, Endpoint::Audits, &headers, &mut rate).await {
        Err(r) => r,
        Ok(post) => {
            let r = audits_inner(&s, path.ok(), &headers, query.as_deref().unwrap_or(""));
            apply_post(&s, r, post)
        }
    };
    finish(&s, r, rate)
}

async fn fallback(State(s): State<Arc<Shared>>) -> Response {
    bump(&s.counters.other_requests);
    let rate = s.take_rate();
    finish(&s, error(404, "resource does not exist"), rate)
}

/// Go `strconv.ParseBool`, plus "" = false.
fn parse_bool(name: &str, v: &str) -> Result<bool, Reply> {
    match v {
        "" | "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        _ => Err(error(
            400,
            &format!("invalid value for {name}: {v:?} is not a boolean"),
        )),
    }
}

struct Params {
    count: u64,
    descending: bool,
    prev: bool,
    offset: Option<String>,
}

fn parse_params(query: &str) -> Result<Params, Reply> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| error(400, &format!("malformed query string: {e}")))?;
    let mut p = Params {
        count: DEFAULT_COUNT,
        descending: false,
        prev: false,
        offset: None,
    };
    for (k, v) in pairs {
        match k.as_str() {
            "count" if !v.trim().is_empty() => {
                let n: u64 = v.trim().parse().map_err(|_| {
                    error(
                        400,
                        &format!("invalid value for count: {v:?} is not a non-negative integer"),
                    )
                })?;
                p.count = if n == 0 {
                    DEFAULT_COUNT
                } else {
                    n.min(MAX_COUNT)
                };
            }
            "descending" => p.descending = parse_bool("descending", v.trim())?,
            "prev" => p.prev = parse_bool("prev", v.trim())?,
            "offset" => p.offset = Some(v).filter(|v| !v.is_empty()),
            _ => {} // unknown parameters are ignored
        }
    }
    Ok(p)
}

fn audits_inner(s: &Shared, team: Option<Path<String>>, headers: &HeaderMap, query: &str) -> Reply {
    match team {
        Some(Path(t)) if s.is_team(&t) => {}
        Some(Path(t)) => return error(404, &format!("team {t:?} does not exist")),
        None => return error(404, "team not found"),
    }
    match bearer(headers) {
        None => {
            return error(
                401,
                "missing or malformed Authorization header; expected \"Bearer <token>\"",
            )
        }
        Some(t) if !s.token_valid(t) => {
            return error(401, "the auth token is invalid or has expired")
        }
        Some(_) => {}
    }
    let p = match parse_params(query) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let n = s.count.load(Ordering::Acquire);
    let oldest = s.expired.load(Ordering::Acquire).min(n);
    let off = match p.offset.as_deref() {
        None => None,
        Some(id) => match s.data.index_of(id) {
            Some(i) if i < oldest => {
                return error(
                    400,
                    &format!("invalid offset {id:?}: no audit event has this id"),
                )
            }
            Some(i) if i < n => Some(i),
            _ => {
                return error(
                    400,
                    &format!("invalid offset {id:?}: no audit event has this id"),
                )
            }
        },
    };
    let c = p.count;
    // Half-open index range of the page; display order is ascending unless
    // `descending`. `prev` pages the other way from `offset` (ignored without one).
    let (lo, hi) = match (p.descending, p.prev, off) {
        (false, _, None) => (0, c.min(n)),
        (true, _, None) => (n.saturating_sub(c), n),
        (false, false, Some(o)) | (true, true, Some(o)) => {
            (o + 1, (o + 1).saturating_add(c).min(n))
        }
        (false, true, Some(o)) | (true, false, Some(o)) => (o.saturating_sub(c), o),
    };
    // Aged-out events are served to nobody.
    let (lo, hi) = if lo < oldest {
        match (p.descending, p.prev, off) {
            // Paging towards the oldest stops at the oldest retained event.
            (true, _, None) | (false, true, Some(_)) | (true, false, Some(_)) => {
                (oldest, hi.max(oldest))
            }
            _ => (oldest, oldest.saturating_add(c).min(n)),
        }
    } else {
        (lo, hi)
    };
    let mut body = Vec::with_capacity(((hi - lo) as usize) * 560 + 8192);
    let written = if p.descending {
        s.data.write_page((lo..hi).rev(), &mut body)
    } else {
        s.data.write_page(lo..hi, &mut body)
    };
    if let Err(e) = written {
        return error(500, &format!("serialisation failed: {e}"));
    }
    s.counters
        .events_served
        .fetch_add(hi - lo, Ordering::Relaxed);
    let mut r = Reply::json(StatusCode::OK, body);
    if lo < hi {
        let (first, last, before, after) = if p.descending {
            (hi - 1, lo, hi < n, lo > oldest)
        } else {
            (lo, hi - 1, lo > oldest, hi < n)
        };
        let mut links = Vec::with_capacity(2);
        if before {
            let url = s.link_url(c, p.descending, &s.data.id(first), true);
            links.push(format!("<{url}>; rel=\"prev\""));
        }
        if after {
            let url = s.link_url(c, p.descending, &s.data.id(last), false);
            links.push(format!("<{url}>; rel=\"next\""));
        }
        if !links.is_empty() {
            r.link = Some(links.join(", "));
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_like_go() {
        let mut s = String::new();
        escape(&mut s, "wuFhR8Dz1GtA1RR4BL-KDQ==", false);
        assert_eq!(s, "wuFhR8Dz1GtA1RR4BL-KDQ%3D%3D");
        let mut s = String::new();
        escape(&mut s, "a b/c?d", true);
        assert_eq!(s, "a%20b/c%3Fd");
        let mut s = String::new();
        escape(&mut s, "a b+c", false);
        assert_eq!(s, "a+b%2Bc");
    }

    #[test]
    fn params() {
        let p = parse_params("count=5000&descending=1&prev=false&after_time=x").ok();
        let p = p.expect("valid");
        assert_eq!(p.count, 1000);
        assert!(p.descending && !p.prev && p.offset.is_none());
        assert!(parse_params("count=abc").is_err());
        assert!(parse_params("count=-1").is_err());
        assert!(parse_params("descending=maybe").is_err());
        let p = parse_params("offset=abc%3D%3D&count=").ok().expect("valid");
        assert_eq!(p.offset.as_deref(), Some("abc=="));
        assert_eq!(p.count, 100);
        let p = parse_params("offset=abc==").ok().expect("valid");
        assert_eq!(p.offset.as_deref(), Some("abc=="));
    }
}
