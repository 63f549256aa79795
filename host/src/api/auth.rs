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

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiFlow, TOKEN_HEADER};
use crate::listener::Observed;
use crate::throttle::{client_ip, retry_after_secs};

/// Whether `presented` is the token `expected`, in time independent of both.
pub fn token_matches(presented: &[u8], expected: &[u8]) -> bool {
    let a = Sha256::digest(presented);
    let b = Sha256::digest(expected);
    a.ct_eq(&b).into()
}

/// The client's address and port as the listener recorded them (`unknown` when it did not),
/// for log lines.
pub fn peer(extensions: &axum::http::Extensions) -> String {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".into(), |c| c.0.to_string())
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
            Refused::Throttled(wait) => throttled(wait, &format!("wrong {TOKEN_HEADER}")),
        }
    }
}

/// The 429 of an address refused for `wait` after too many `what` (`{"error"}` with
/// `Retry-After` in whole seconds).
pub fn throttled(wait: Duration, what: &str) -> Response {
    let secs = retry_after_secs(wait);
    let mut r = super::error(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many {what} from this address: try again in {secs} s"),
    );
    r.headers_mut()
        .insert(axum::http::header::RETRY_AFTER, secs.into());
    r
}

/// `Ok` when the request's token is `flow`'s; else why not (logged). An address past its
/// wrong-token budget is refused before the token is looked at.
pub fn authorize(
    o: &Observed,
    flow: &ApiFlow,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
) -> Result<(), Refused> {
    let name = &flow.entry.manifest.name;
    let ip = client_ip(extensions);
    o.guesses.admit(ip).map_err(Refused::Throttled)?;
    let peer = peer(extensions);
    let peer = peer.as_str();
    let secret = &flow.endpoint.token_secret;
    let expected = o.rt.secrets.get(secret).filter(|v| !v.is_empty());
    let presented = headers.get(TOKEN_HEADER).map(|v| v.as_bytes());
    let ok = match (&expected, presented) {
        (Some(expected), Some(presented)) => token_matches(presented, expected.as_bytes()),
        _ => false,
    };
    if ok {
        return Ok(());
    }
    if expected.is_some() && presented.is_some() {
        if let Some(wait) = o.guesses.wrong(ip) {
            tracing::warn!(
                flow = name.as_str(),
                peer,
                "too many wrong tokens from this address: its requests are refused for {} s",
                retry_after_secs(wait)
            );
        }
    }
    if expected.is_none() {
        tracing::warn!(
            flow = name.as_str(),
            peer,
            "API request refused: the token secret `{secret}` of {name} is not set, so no \
             token is accepted (set FLOWHOST_SECRET_{secret} or add it to the secrets file)"
        );
    } else {
        tracing::warn!(
            flow = name.as_str(),
            peer,
            "API request refused: missing or wrong {TOKEN_HEADER}"
        );
    }
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
