//! The client token of an API endpoint flow: the value of the secret its `api.token_secret`
//! names, looked up at each request, compared with the presented `x-api-client-token` in
//! constant time (SHA-256 digests of both, compared with `subtle`, so neither the value nor
//! its length leaks through timing). A refusal says nothing about which part was wrong, is
//! logged at warn with the client's address (never the token) and answered 401.
//!
//! Wrong tokens are limited per client address ([`crate::throttle::GuessThrottle`], shared
//! with the console's `Authorization: Bearer`): past the budget, the address's requests are
//! answered 429 with `Retry-After` before their token is looked at, the right one included.
//! A client with the right token spends nothing.

use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiFlow, TOKEN_HEADER};
use crate::listener::Observed;
use crate::throttle::{client_ip, retry_after_secs, with_retry_after};

/// Whether `presented` is the token `expected`, in time independent of both.
pub fn token_matches(presented: &[u8], expected: &[u8]) -> bool {
    let a = Sha256::digest(presented);
    let b = Sha256::digest(expected);
    a.ct_eq(&b).into()
}

/// The client as the listener recorded it (`unknown` when it did not), for log lines:
/// `ADDR:PORT`, or `ADDR (via PROXY:PORT)`.
pub fn peer(extensions: &axum::http::Extensions) -> String {
    extensions
        .get::<crate::client_addr::ClientAddr>()
        .map_or_else(|| "unknown".into(), ToString::to_string)
}

/// Why a request was not let through.
#[derive(Debug)]
pub enum Refused {
    /// Its token is not its flow's: 401, saying nothing of why.
    Wrong,
    /// Its address presented too many wrong tokens: 429, again after this long.
    Throttled(Duration),
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::Wrong => super::error(
                StatusCode::UNAUTHORIZED,
                format!("missing or wrong {TOKEN_HEADER}"),
            ),
            Refused::Throttled(wait) => {
                let secs = retry_after_secs(wait);
                let why = format!(
                    "too many wrong {TOKEN_HEADER} from this address: try again in {secs} s"
                );
                with_retry_after(super::error(StatusCode::TOO_MANY_REQUESTS, why), secs)
            }
        }
    }
}

/// `Ok` when the request's token is `flow`'s; else why not (logged). An address past its
/// wrong-token budget is refused before the token is looked at.
pub fn authorize(
    o: &Observed,
    flow: &ApiFlow,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
) -> Result<(), Refused> {
    let name = flow.entry.manifest.name.as_str();
    let secret = &flow.endpoint.token_secret;
    let expected: Vec<String> =
        o.rt.secrets
            .get(secret)
            .filter(|v| !v.is_empty())
            .into_iter()
            .collect();
    let judged = judge(o, name, &expected, headers, extensions);
    if matches!(judged, Err(Refused::Wrong)) && expected.is_empty() {
        tracing::warn!(
            flow = name,
            peer = peer(extensions),
            "API request refused: the token secret `{secret}` of {name} is not set, so no \
             token is accepted (set FLOWHOST_SECRET_{secret} or add it to the secrets file)"
        );
    }
    judged
}

/// `Ok` when the request's token is that of any API flow: for a route whose flow is not
/// known (a run that is not there, or not an API flow's), so that without a token nobody
/// learns which run ids exist (401 for them, 404 only for a client that has a token).
pub fn authorize_any(
    o: &Observed,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
) -> Result<(), Refused> {
    let expected: Vec<String> =
        o.rt.registry()
            .iter()
            .filter_map(|e| e.manifest.grants.api.as_ref())
            .filter_map(|api| o.rt.secrets.get(&api.token_secret))
            .filter(|v| !v.is_empty())
            .collect();
    judge(o, "", &expected, headers, extensions)
}

/// Whether the presented token is one of `expected` (each compared in constant time), after
/// the address's budget is checked; a wrong one spends it. `flow` names the flow in the log.
fn judge(
    o: &Observed,
    flow: &str,
    expected: &[String],
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
) -> Result<(), Refused> {
    let ip = client_ip(extensions);
    o.guesses.admit(ip).map_err(Refused::Throttled)?;
    let presented = headers.get(TOKEN_HEADER).map(|v| v.as_bytes());
    let Some(presented) = presented.filter(|_| !expected.is_empty()) else {
        if !expected.is_empty() {
            tracing::warn!(
                flow,
                peer = peer(extensions),
                "API request refused: missing {TOKEN_HEADER}"
            );
        }
        return Err(Refused::Wrong);
    };
    // Every token is compared, so the time does not say which one came close.
    let ok = expected
        .iter()
        .fold(false, |ok, e| token_matches(presented, e.as_bytes()) | ok);
    if ok {
        return Ok(());
    }
    let peer = peer(extensions);
    if let Some(wait) = o.guesses.wrong(ip) {
        tracing::warn!(
            flow,
            peer,
            "too many wrong tokens from this address: its requests are refused for {} s",
            retry_after_secs(wait)
        );
    }
    tracing::warn!(
        flow,
        peer,
        "API request refused: missing or wrong {TOKEN_HEADER}"
    );
    Err(Refused::Wrong)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_token_matches() {
        assert!(token_matches(b"s3cret-token", b"s3cret-token"));
        assert!(!token_matches(b"s3cret-tokeN", b"s3cret-token"));
        assert!(!token_matches(b"s3cret", b"s3cret-token"));
        assert!(!token_matches(b"", b"s3cret-token"));
    }
}
