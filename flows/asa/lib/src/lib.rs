//! # asa-lib — the pure logic of the ASA audit-capture flows
//!
//! Plain Rust (no WIT, no host calls), unit-tested natively with the documented data of
//! `asa-api.md` §7. The flows under `flows/asa/` are thin sequences of steps over this crate and
//! `flowhost-sdk`.
//!
//! Modules:
//! - [`link`]: RFC 8288 `Link` header parsing and the `offset` of the `rel="next"` page (U11/U11a);
//! - [`url`]: percent-encoding and the ASA URLs (`service_token`, `auditsV2`);
//! - [`time`]: RFC 3339 parsing, the "isoString" millisecond form, epoch milliseconds and seconds;
//! - [`api`]: ASA response bodies (service token, an `auditsV2` page) and error texts;
//! - [`mod@env`]: the Environment Variables row: defaults and validation (U01/U02);
//! - [`enrich`]: the S32–S37 enrichment strings; [`answers`]: S30 keeps their answers for an
//!   event and its batch;
//! - [`event`]: event → Audit Events row mapping (S30); `event_scan` reads the members it needs
//!   in one pass (by hand with `json_skim` for the events ASA writes, else through serde_json);
//! - [`reject`]: events S30/S31 refuse, and their Rejected Events rows (M10);
//! - [`main_flow`]: M10's branch decision (§8.3);
//! - [`lost_offset`]: an offset auditsV2 no longer knows, and `onLostOffset` (M10);
//! - [`offload`]: O10's object names and JSONL+gzip bodies, O20's Splunk HEC events;
//! - [`model`]: table names, row types and the flows' JSON inputs/outputs;
//! - [`teams`]: several ASA teams: each team's settings and checkpoint row, the event envelope;
//! - [`canonical`]: JSON text as `serde_json` writes it (S20/S21 pass such a related object on
//!   without reading it).

pub mod answers;
pub mod api;
pub mod canonical;
pub mod enrich;
pub mod env;
pub mod event;
mod event_scan;
mod json_skim;
pub mod link;
pub mod lost_offset;
pub mod main_flow;
pub mod model;
pub mod offload;
pub mod reject;
pub mod teams;
pub mod time;
pub mod url;

/// A JSON value as the text a Workflows card would show: strings as they are, `null` or absent
/// as `""`, numbers and booleans as written, arrays and objects as JSON.
pub fn text_of(value: Option<&serde_json::Value>) -> String {
    use serde_json::Value;
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The reference id in a `details` value: a non-empty string, or nothing (empty, `null`,
/// missing or not a string).
pub fn ref_id(value: Option<&serde_json::Value>) -> Option<&str> {
    match value {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}
