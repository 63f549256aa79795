//! Injectable faults: a FIFO queue consumed by matching requests.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// A fault served instead of (or on top of) a normal response.
///
/// Faults are queued with [`crate::Sim::inject`] (auditsV2 requests) or
/// [`crate::Sim::inject_for`] and consumed first-in first-out: each matching
/// request pops at most one fault. Every response still carries the
/// `X-RateLimit-*` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// This HTTP status with the ASA error body
    /// (`{"type":..,"code":..,"message":..}`; the `type` follows the status:
    /// 500 `unknown_error`, 503 `service_offline`, 504 `gateway_timeout`, …).
    Status(u16),
    /// `429 too_many_requests` with `X-RateLimit-Remaining: 0`,
    /// `X-RateLimit-Retry-At = now + 1 s` and the regular
    /// `X-RateLimit-Reset` (end of the current hourly window, possibly far away):
    /// a client must honour `Retry-At` first.
    RateLimited,
    /// `429 too_many_requests` without `X-RateLimit-Retry-At`, with
    /// `X-RateLimit-Reset = now + 1 s`.
    RateLimitedResetOnly,
    /// Sleep this long, then serve the request normally.
    Latency(Duration),
    /// `200` whose body is the first half of the real page (invalid JSON).
    Truncated,
    /// `200` with `Content-Type: application/json` and a non-JSON (HTML) body.
    Malformed,
    /// The normal response without its `Link` header.
    NoLink,
    /// The normal response with an unparseable `Link` header.
    MalformedLink,
    /// `401 authentication_error`; the presented bearer token is revoked too,
    /// as if it had expired, so the client must fetch a new one.
    ExpireToken,
}

/// Which requests a queued fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaultTarget {
    /// `GET /v1/teams/{team}/auditsV2` (what [`crate::Sim::inject`] uses).
    #[default]
    Audits,
    /// `POST /v1/teams/{team}/service_token`.
    Token,
    /// Whichever of the two comes first.
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Audits,
    Token,
}

impl FaultTarget {
    fn matches(self, ep: Endpoint) -> bool {
        matches!(
            (self, ep),
            (FaultTarget::Any, _)
                | (FaultTarget::Audits, Endpoint::Audits)
                | (FaultTarget::Token, Endpoint::Token)
        )
    }
}

#[derive(Default)]
pub(crate) struct FaultQueue {
    q: Mutex<VecDeque<(FaultTarget, Fault)>>,
}

impl FaultQueue {
    pub(crate) fn push(&self, target: FaultTarget, fault: Fault, times: u32) {
        let mut q = self.q.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..times {
            q.push_back((target, fault.clone()));
        }
    }

    /// Removes and returns the oldest fault matching `ep`.
    pub(crate) fn pop(&self, ep: Endpoint) -> Option<Fault> {
        let mut q = self.q.lock().unwrap_or_else(|e| e.into_inner());
        let pos = q.iter().position(|(t, _)| t.matches(ep))?;
        q.remove(pos).map(|(_, f)| f)
    }

    pub(crate) fn len(&self) -> usize {
        self.q.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub(crate) fn clear(&self) {
        self.q.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// ASA error `type` for an HTTP status.
pub(crate) fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request",
        401 => "authentication_error",
        403 => "forbidden_error",
        404 => "resource_does_not_exist",
        409 => "resource_already_exists",
        415 => "unsupported_content_type",
        429 => "too_many_requests",
        499 => "client_closed_connection",
        503 => "service_offline",
        504 => "gateway_timeout",
        _ => "unknown_error",
    }
}
