//! Buffered HTTP, like the Workflows API Connector card.
//!
//! ```ignore
//! let resp = http::post(&url)
//!     .header("Accept", "application/json")
//!     .json(&body)
//!     .retry(4, 500, 8_000)
//!     .send()?;
//! if resp.status == 200 { let token: Token = resp.json()?; }
//! ```
//!
//! Any status is a [`Response`]; errors are transport failures, a host the manifest does not
//! allow, limits and timeouts. The host does the retrying (backoff with jitter on connect
//! errors and 5xx, `Retry-After`/`X-RateLimit-*` on 429).

use serde::{Deserialize, Serialize};

use crate::bindings::flowhost::flow::http as wit;
use crate::Error;

/// A request being built; [`Request::send`] sends it.
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until it is sent"]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    timeout_ms: Option<u32>,
    retry: Option<wit::RetryPolicy>,
    /// A body that did not serialize: reported by `send`, so the builder can chain.
    error: Option<Error>,
}

/// A `GET` request.
pub fn get(url: &str) -> Request {
    Request::new("GET", url)
}

/// A `POST` request.
pub fn post(url: &str) -> Request {
    Request::new("POST", url)
}

/// A `PUT` request.
pub fn put(url: &str) -> Request {
    Request::new("PUT", url)
}

/// A `PATCH` request.
pub fn patch(url: &str) -> Request {
    Request::new("PATCH", url)
}

/// A `DELETE` request.
pub fn delete(url: &str) -> Request {
    Request::new("DELETE", url)
}

impl Request {
    /// A request with any method.
    pub fn new(method: &str, url: &str) -> Self {
        Request {
            method: method.to_ascii_uppercase(),
            url: url.to_string(),
            headers: Vec::new(),
            body: None,
            timeout_ms: None,
            retry: None,
            error: None,
        }
    }

    /// Adds a header (repeatable).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Adds every header of a list of pairs.
    pub fn headers<K: AsRef<str>, V: AsRef<str>>(
        mut self,
        headers: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        for (k, v) in headers {
            self.headers.push((k.as_ref().to_string(), v.as_ref().to_string()));
        }
        self
    }

    /// Sets a raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Sets a JSON body and `Content-Type: application/json` (unless already set).
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                if !self.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
                    self.headers.push(("Content-Type".to_string(), "application/json".to_string()));
                }
                self.body = Some(bytes);
            }
            Err(e) => self.error = Some(Error::json("HTTP request body", e)),
        }
        self
    }

    /// Per-attempt timeout (the host's default, 30 s, otherwise).
    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.timeout_ms = Some(ms);
        self
    }

    /// Lets the host retry: `attempts` in all (1 = no retry), exponential backoff with jitter
    /// from `initial_ms` up to `max_ms`.
    pub fn retry(mut self, attempts: u32, initial_ms: u32, max_ms: u32) -> Self {
        self.retry = Some(wit::RetryPolicy {
            max_attempts: attempts.max(1),
            initial_backoff_ms: initial_ms,
            max_backoff_ms: max_ms.max(initial_ms),
        });
        self
    }

    /// Sends the request.
    pub fn send(self) -> Result<Response, Error> {
        let resp = self.with_wit(wit::send)?;
        Ok(Response { status: resp.status, headers: resp.headers, body: resp.body })
    }

    /// Starts this GET (or HEAD) in the background for a later run of this flow: its next
    /// [`send`](Request::send) of the very same request within 60 s gets the response without
    /// waiting for the server. For the next page of a paged API, asked while this run still
    /// stores the current page; nothing is lost if that run never comes.
    pub fn prefetch(self) -> Result<(), Error> {
        self.with_wit(wit::prefetch)
    }

    /// `f` of this request as the host takes it (borrowed, not copied).
    fn with_wit<T>(
        self,
        f: impl FnOnce(wit::Request<'_>) -> Result<T, crate::bindings::flowhost::flow::types::Error>,
    ) -> Result<T, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let headers: Vec<(&str, &str)> =
            self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let request = wit::Request {
            method: &self.method,
            url: &self.url,
            headers: &headers,
            body: self.body.as_deref(),
            timeout_ms: self.timeout_ms,
            retry: self.retry,
        };
        Ok(f(request)?)
    }
}

/// A response: any status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header names are lower-case, as the host gives them.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `true` for a 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body decoded as JSON (a `T` that borrows, such as `&RawValue` or `&str` fields,
    /// borrows from the body).
    pub fn json<'a, T: Deserialize<'a>>(&'a self) -> Result<T, Error> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::json(format!("HTTP {} response body", self.status), e))
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}
