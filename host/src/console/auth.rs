//! Who may open the console, checked on every console request before its page is read:
//!
//! - **Off** (no `console:`): every console route answers 404, like an unknown path.
//! - **`console: true`**: only peers on loopback (an SSH tunnel for a remote server), no
//!   token; others get 403 saying how to set one. The `Host` header must be a loopback name
//!   too, so a page of another site whose name resolves to 127.0.0.1 (DNS rebinding) reads
//!   nothing.
//! - **`console: { token_secret: NAME }`**: any peer that presents the operator token, the
//!   value of secret `NAME`: `Authorization: Bearer TOKEN`, or the cookie the `/login` form
//!   sets (HttpOnly, SameSite=Strict, Path=/). The cookie holds an HMAC-SHA256 of the token
//!   under a key drawn at random when the process starts, never the token itself, so a new
//!   process (or a new token) logs everybody out. Tokens are compared in constant time.
//!   Without a session a page redirects to `/login`; anything else gets 401. Log-ins, and
//!   wrong Bearer tokens, are limited per client address ([`crate::throttle`]); the cookie is
//!   `Secure` when a reverse proxy says the client used HTTPS.
//! - **Every POST** (the switches, the run form, log in, log out) must come from the
//!   console's own pages: its `Origin` (else its `Referer`) must name the host and port of
//!   the request's `Host`, else 403 and nothing changes (cross-site request forgery). Behind
//!   a reverse proxy, the proxy must pass the original `Host` on.

use std::net::IpAddr;
use std::sync::OnceLock;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use hmac::{Hmac, Mac};
use maud::html;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::layout::{self, Frame};
use super::{html, see_other, Refusal};
use crate::config::ConsoleAccess;
use crate::listener::Observed;

/// The session cookie's name.
pub const COOKIE: &str = "flowhost_console";

/// A request the console may answer with a page (a session, or loopback mode).
pub struct Allowed {
    /// Token mode: the page offers a log-out button.
    pub logout: bool,
}

impl Allowed {
    /// The frame of this visitor's pages.
    pub fn frame(&self) -> Frame {
        Frame {
            logout: self.logout,
            ..Frame::default()
        }
    }
}

impl FromRequestParts<Observed> for Allowed {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, o: &Observed) -> Result<Self, Refusal> {
        let access = gate(parts, o)?;
        match access {
            ConsoleAccess::Loopback => Ok(Allowed { logout: false }),
            ConsoleAccess::Token { secret } => {
                let token = token_of(o, &secret)?;
                if let Some(given) = bearer(&parts.headers) {
                    let ip = crate::throttle::client_ip(&parts.extensions);
                    o.guesses.admit(ip).map_err(Refusal::Throttled)?;
                    if same_token(given, &token) {
                        return Ok(Allowed { logout: false });
                    }
                    if let Some(wait) = o.guesses.wrong(ip) {
                        tracing::warn!(
                            peer = %ip,
                            "too many wrong console Bearer tokens from this address: its \
                             requests are refused for {} s",
                            crate::throttle::retry_after_secs(wait)
                        );
                    }
                    return Err(Refusal::Failure(
                        StatusCode::UNAUTHORIZED,
                        "the Authorization: Bearer token is not the console's token".into(),
                    ));
                }
                if cookie(&parts.headers, COOKIE).is_some_and(|c| same_session(c, &token)) {
                    return Ok(Allowed { logout: true });
                }
                if parts.method == Method::GET || parts.method == Method::HEAD {
                    Err(Refusal::Login)
                } else {
                    Err(Refusal::Failure(
                        StatusCode::UNAUTHORIZED,
                        "log in first (/login), or send Authorization: Bearer TOKEN".into(),
                    ))
                }
            }
        }
    }
}

/// A request to the login routes: the console is on in token mode and the request passed the
/// POST guard; no session needed.
pub struct LoginGate {
    secret: String,
    /// The client's address (unspecified if the listener did not record it: such clients
    /// share one log-in budget).
    peer: IpAddr,
    /// The request reached a reverse proxy over HTTPS (`X-Forwarded-Proto: https`): the
    /// cookie is then `Secure`.
    https: bool,
}

impl FromRequestParts<Observed> for LoginGate {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, o: &Observed) -> Result<Self, Refusal> {
        match gate(parts, o)? {
            ConsoleAccess::Token { secret } => Ok(LoginGate {
                secret,
                peer: crate::throttle::client_ip(&parts.extensions),
                https: forwarded_https(&parts.headers),
            }),
            // Nothing to log into.
            ConsoleAccess::Loopback => Err(Refusal::NotFound),
        }
    }
}

/// The checks every console request passes first: on, the peer and `Host` (loopback mode),
/// the origin of a POST. Returns how the console is protected.
fn gate(parts: &Parts, o: &Observed) -> Result<ConsoleAccess, Refusal> {
    let settings = o.settings.get();
    let Some(access) = settings.console.clone() else {
        return Err(Refusal::NotFound);
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if access == ConsoleAccess::Loopback {
        // Behind a proxy in `trusted_proxies:`, the client the proxy forwarded.
        let client = parts.extensions.get::<crate::client_addr::ClientAddr>();
        // A proxy on this machine that `trusted_proxies:` does not list connects from
        // loopback for clients anywhere: what it forwards says so, and the console cannot
        // tell where they are.
        let untrusted_proxy = crate::client_addr::forwarded(&parts.headers)
            && !client.is_some_and(|c| settings.trusted.trusts(c.peer.ip()));
        if untrusted_proxy {
            return Err(Refusal::Failure(
                StatusCode::FORBIDDEN,
                "this request came through a proxy that `trusted_proxies:` does not list, so \
                 the console cannot tell whether its client is on this machine (console: \
                 true); list the proxy in `trusted_proxies:`, or set `console: { token_secret: \
                 NAME }` (docs/console.md)"
                    .into(),
            ));
        }
        if !client.is_some_and(|c| c.ip.to_canonical().is_loopback()) {
            return Err(Refusal::Failure(
                StatusCode::FORBIDDEN,
                "the console answers clients on this machine only (console: true); to open it \
                 to others, set `console: { token_secret: NAME }` in the config (docs/console.md)"
                    .into(),
            ));
        }
        if !is_loopback_name(host) {
            return Err(Refusal::Failure(
                StatusCode::FORBIDDEN,
                format!(
                    "Host `{host}` is not a loopback address: open the console as \
                     http://127.0.0.1:PORT or http://localhost:PORT"
                ),
            ));
        }
    }
    if parts.method != Method::GET && parts.method != Method::HEAD {
        check_origin(&parts.headers, host)
            .map_err(|why| Refusal::Failure(StatusCode::FORBIDDEN, why))?;
    }
    Ok(access)
}

/// Whether a reverse proxy says the client used HTTPS: `X-Forwarded-Proto: https` (its first
/// value) or `Forwarded: proto=https`. It only ever makes the cookie stricter.
fn forwarded_https(headers: &HeaderMap) -> bool {
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
    };
    first("x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https"))
        || first("forwarded").is_some_and(|f| {
            f.split(';').any(|kv| {
                kv.trim().split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("proto")
                        && v.trim().trim_matches('"').eq_ignore_ascii_case("https")
                })
            })
        })
}

/// `localhost`, `127.x.x.x` or `[::1]`, with or without a port.
fn is_loopback_name(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(n, _)| n),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A POST's `Origin` (else `Referer`) must name the request's own `Host`.
fn check_origin(headers: &HeaderMap, host: &str) -> Result<(), String> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let (what, given) = match (text(header::ORIGIN), text(header::REFERER)) {
        (Some(o), _) => ("Origin", o),
        (None, Some(r)) => ("Referer", r),
        (None, None) => {
            return Err(
                "refused: a POST to the console must come from its own pages (no Origin or \
                 Referer header)"
                    .into(),
            )
        }
    };
    let authority = reqwest::Url::parse(given).ok().and_then(|u| {
        let host = u.host_str()?.to_ascii_lowercase();
        Some(match u.port() {
            Some(p) => format!("{host}:{p}"),
            None => host,
        })
    });
    match authority {
        Some(a) if !host.is_empty() && a.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(format!(
            "refused: this POST's {what} `{given}` is not the console's own address (Host \
             `{host}`)"
        )),
    }
}

/// The operator token, the value of secret `name`; a 503 naming the secret when it is not
/// set.
fn token_of(o: &Observed, name: &str) -> Result<String, Refusal> {
    o.rt.secrets
        .get(name)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Refusal::Failure(StatusCode::SERVICE_UNAVAILABLE, missing_token(name)))
}

/// Why the token mode cannot let anybody in.
pub fn missing_token(name: &str) -> String {
    format!(
        "console.token_secret: the secret `{name}` is not set (put it in the secrets file or \
         FLOWHOST_SECRET_{name}); nobody can log in to the console"
    )
}

/// The token of `Authorization: Bearer TOKEN`.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The value of cookie `name`.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether `given` is `token`, in constant time (their digests are compared, so not even the
/// length leaks).
fn same_token(given: &str, token: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(token.as_bytes());
    bool::from(a.ct_eq(&b))
}

/// The per-process key of the session cookie's HMAC.
fn session_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(rand::random)
}

/// The session cookie's value for `token`: hex HMAC-SHA256 under [`session_key`].
fn session_value(token: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(session_key()) else {
        // An HMAC takes a key of any length; this cannot happen.
        return String::new();
    };
    mac.update(token.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether cookie value `given` is the session of `token`, in constant time.
fn same_session(given: &str, token: &str) -> bool {
    let want = session_value(token);
    !want.is_empty() && bool::from(given.as_bytes().ct_eq(want.as_bytes()))
}

fn login_page(status: StatusCode, error: Option<&str>) -> Response {
    let body = html! {
        h1 { "Log in to the flowhost console" }
        form #login method="post" action="/login" {
            label {
                "Operator token"
                input type="password" name="token" autocomplete="current-password" required;
            }
            @if let Some(e) = error {
                p.error #login-error { (e) }
            }
            button type="submit" { "Log in" }
        }
    };
    let frame = Frame {
        bare: true,
        ..Frame::default()
    };
    html(status, layout::document("Log in", body, frame))
}

/// `GET /login`.
pub async fn login_form(_: LoginGate) -> Response {
    login_page(StatusCode::OK, None)
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
}

/// `POST /login`: the right token sets the session cookie and goes to the flows.
pub async fn login(
    gate: LoginGate,
    State(o): State<Observed>,
    Form(f): Form<LoginForm>,
) -> Response {
    if let Err(wait) = o.logins.attempt(gate.peer) {
        let secs = crate::throttle::retry_after_secs(wait);
        tracing::warn!(
            peer = %gate.peer,
            "console log-in refused: too many attempts from this address (again in {secs} s)"
        );
        let why = format!("Too many log-in attempts from this address: try again in {secs} s.");
        let page = login_page(StatusCode::TOO_MANY_REQUESTS, Some(&why));
        return crate::throttle::with_retry_after(page, secs);
    }
    let token = match token_of(&o, &gate.secret) {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    if !same_token(&f.token, &token) {
        tracing::warn!(peer = %gate.peer, "console log-in refused: wrong token");
        return login_page(
            StatusCode::UNAUTHORIZED,
            Some("That is not the operator token."),
        );
    }
    let secure = if gate.https { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/{secure}",
        session_value(&token)
    );
    let mut r = see_other("/");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// `POST /logout`: the cookie is cleared.
pub async fn logout(_: LoginGate) -> Response {
    let mut r = see_other("/login");
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("flowhost_console=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_behind_a_proxy_is_read_from_its_headers() {
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            forwarded_https(&h)
        };
        assert!(with(&[("x-forwarded-proto", "https")]));
        assert!(with(&[("x-forwarded-proto", "HTTPS, http")]));
        assert!(with(&[(
            "forwarded",
            "for=192.0.2.1;proto=https;by=x, proto=http"
        )]));
        assert!(with(&[("forwarded", "proto=\"https\"")]));
        assert!(!with(&[]));
        assert!(!with(&[("x-forwarded-proto", "http")]));
        assert!(!with(&[("x-forwarded-proto", "http, https")]));
        assert!(!with(&[("forwarded", "for=192.0.2.1")]));
    }

    #[test]
    fn loopback_names() {
        for yes in [
            "127.0.0.1:9464",
            "localhost:80",
            "LOCALHOST",
            "[::1]:9",
            "127.1.2.3",
        ] {
            assert!(is_loopback_name(yes), "{yes}");
        }
        for no in [
            "evil.example:9464",
            "10.0.0.1:9464",
            "",
            "[::2]:1",
            "localhost.evil.example",
        ] {
            assert!(!is_loopback_name(no), "{no}");
        }
    }

    #[test]
    fn a_post_must_name_its_own_host() {
        let with = |pairs: &[(header::HeaderName, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(k, HeaderValue::from_str(v).unwrap());
            }
            h
        };
        let host = "127.0.0.1:9464";
        assert!(check_origin(&with(&[(header::ORIGIN, "http://127.0.0.1:9464")]), host).is_ok());
        assert!(check_origin(
            &with(&[(header::REFERER, "http://127.0.0.1:9464/flows/M10")]),
            host
        )
        .is_ok());
        let e = check_origin(&with(&[(header::ORIGIN, "http://evil.example")]), host).unwrap_err();
        assert!(e.contains("Origin `http://evil.example`"), "{e}");
        assert!(check_origin(&with(&[(header::ORIGIN, "null")]), host).is_err());
        assert!(check_origin(&with(&[(header::ORIGIN, "http://127.0.0.1:9465")]), host).is_err());
        assert!(check_origin(&HeaderMap::new(), host)
            .unwrap_err()
            .contains("no Origin or Referer"));
    }

    #[test]
    fn the_session_is_an_hmac_of_the_token_not_the_token() {
        let s = session_value("operator-token");
        assert_eq!(s.len(), 64);
        assert!(!s.contains("operator-token"));
        assert!(same_session(&s, "operator-token"));
        assert!(!same_session(&s, "another-token"));
        assert!(!same_session("operator-token", "operator-token"));
        assert!(same_token("a", "a"));
        assert!(!same_token("a", "ab"));
    }

    #[test]
    fn cookies_and_bearer_tokens_are_read() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; flowhost_console=xyz"),
        );
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer  tok "),
        );
        assert_eq!(cookie(&h, COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "b"), None);
        assert_eq!(bearer(&h), Some("tok"));
    }
}
