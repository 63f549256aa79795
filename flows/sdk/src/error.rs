//! Errors: [`Error`], what a host call fails with, and [`FlowError`], what a flow fails with.
//!
//! [`Error`] mirrors the WIT `error` variant case for case, so a flow can match on what matters
//! (`Err(Error::NotFound(_))`). Its `Display` is `"<kebab-case variant>: <text>"`, e.g.
//! `access-denied: host example.com is not granted`, which is also the text a flow fails with
//! when it passes the error on with `?`.

use std::fmt;

use crate::bindings::flowhost::flow::types::Error as WitError;

/// Why a host call failed (the WIT `error` variant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The table, row, flow or secret does not exist.
    NotFound(String),
    /// The manifest does not grant this host, table, flow or secret.
    AccessDenied(String),
    /// The call's arguments are wrong (bad JSON, unknown column, wrong type).
    InvalidInput(String),
    /// A size, depth, count or rate limit was hit.
    LimitExceeded(String),
    /// The call (or the run's deadline) ran out of time.
    Timeout(String),
    /// Anything else (network failure, a child flow's error text, ...).
    Other(String),
}

impl Error {
    /// The variant's name as the WIT spells it (`not-found`, `access-denied`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotFound(_) => "not-found",
            Error::AccessDenied(_) => "access-denied",
            Error::InvalidInput(_) => "invalid-input",
            Error::LimitExceeded(_) => "limit-exceeded",
            Error::Timeout(_) => "timeout",
            Error::Other(_) => "other",
        }
    }

    /// The text carried by the variant.
    pub fn message(&self) -> &str {
        match self {
            Error::NotFound(m)
            | Error::AccessDenied(m)
            | Error::InvalidInput(m)
            | Error::LimitExceeded(m)
            | Error::Timeout(m)
            | Error::Other(m) => m,
        }
    }

    /// An [`Error::InvalidInput`] for a value that does not (de)serialize.
    pub(crate) fn json(what: impl fmt::Display, err: serde_json::Error) -> Self {
        Error::InvalidInput(format!("{what}: {err}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind(), self.message())
    }
}

impl std::error::Error for Error {}

impl From<WitError> for Error {
    fn from(e: WitError) -> Self {
        match e {
            WitError::NotFound(m) => Error::NotFound(m),
            WitError::AccessDenied(m) => Error::AccessDenied(m),
            WitError::InvalidInput(m) => Error::InvalidInput(m),
            WitError::LimitExceeded(m) => Error::LimitExceeded(m),
            WitError::Timeout(m) => Error::Timeout(m),
            WitError::Other(m) => Error::Other(m),
        }
    }
}

/// What a flow's `run` fails with: the text the caller (or run history) sees.
///
/// Every `std::error::Error` converts with `?` (host [`Error`]s keep their `"kind: text"` form);
/// build one from text with [`FlowError::new`] or the [`fail!`](crate::fail) macro.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowError(String);

impl FlowError {
    /// A flow error with this text.
    pub fn new(message: impl Into<String>) -> Self {
        FlowError(message.into())
    }

    /// The text.
    pub fn message(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_message(self) -> String {
        self.0
    }

    /// Prefixes the text with what was being done: `"step: text"`.
    pub fn context(self, step: impl fmt::Display) -> Self {
        FlowError(format!("{step}: {}", self.0))
    }
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Any error converts with `?`: host [`Error`]s (`"not-found: …"`), `serde_json` errors, parse
/// errors, and the error types of shared crates. (Plain strings do not, as with `anyhow`: use
/// [`FlowError::new`] or [`fail!`](crate::fail).)
impl<E: std::error::Error> From<E> for FlowError {
    fn from(e: E) -> Self {
        FlowError(e.to_string())
    }
}

/// Returns early from a flow with a [`FlowError`] built like `format!`.
///
/// ```ignore
/// if count > 1000 { flowhost_sdk::fail!("count {count} is over 1000"); }
/// ```
#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => {
        return ::std::result::Result::Err($crate::FlowError::new(::std::format!($($arg)*)).into())
    };
}

/// Adds context to any result whose error converts into a [`FlowError`].
pub trait Context<T> {
    /// On error, prefixes the text with `step`: `"step: text"`.
    fn context(self, step: impl fmt::Display) -> Result<T, FlowError>;
}

impl<T, E: Into<FlowError>> Context<T> for Result<T, E> {
    fn context(self, step: impl fmt::Display) -> Result<T, FlowError> {
        self.map_err(|e| e.into().context(step))
    }
}
