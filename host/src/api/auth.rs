//! The client token of an API endpoint flow: the value of the secret its `api.token_secret`
//! names, looked up at each request, compared with the presented `x-api-client-token` in
//! constant time (SHA-256 digests of both, compared with `subtle`, so neither the value nor
//! its length leaks through timing). A refusal says nothing about which part was wrong, is
//! logged at warn with the client's address (never the token) and answered 401.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiFlow, TOKEN_HEADER};
use crate::listener::Observed;

/// Whether `presented` is the token `expected`, in time independent of both.
pub fn token_matches(presented: &[u8], expected: &[u8]) -> bool {
    let a = Sha256::digest(presented);
    let b = Sha256::digest(expected);
    a.ct_eq(&b).into()
}

/// The client's address, when the listener recorded it.
pub fn peer(extensions: &axum::http::Extensions) -> String {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".into(), |c| c.0.to_string())
}

/// A request whose token is not its flow's: answered 401, saying nothing of why.
#[derive(Debug)]
pub struct Refused;

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        super::error(
            StatusCode::UNAUTHORIZED,
            format!("missing or wrong {TOKEN_HEADER}"),
        )
    }
}

/// `Ok` when the request's token is `flow`'s; else [`Refused`] (logged).
pub fn authorize(
    o: &Observed,
    flow: &ApiFlow,
    headers: &HeaderMap,
    peer: &str,
) -> Result<(), Refused> {
    let name = &flow.entry.manifest.name;
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
    Err(Refused)
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
