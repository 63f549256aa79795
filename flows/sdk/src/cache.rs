//! A private in-memory cache per flow: survives between runs in one host process, never written
//! to disk, a table, a log or run history (U00 keeps the ASA bearer token here).

use crate::bindings::flowhost::flow::cache as wit;

/// The value under `key`, unless absent or expired.
pub fn get(key: &str) -> Option<String> {
    wit::get(key)
}

/// Stores `value` under `key` for `ttl_ms` milliseconds.
pub fn set(key: &str, value: &str, ttl_ms: u64) {
    wit::set(key, value, ttl_ms)
}

/// Forgets `key`.
pub fn remove(key: &str) {
    wit::remove(key)
}
