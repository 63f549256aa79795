//! S31 — Process Event If New: S30, unless the event is already stored.
//!
//! Input: the whole event, or M10's envelope `{"team", "event"}` (passed on to S30 as the same
//! text); output `{"stored": false, "id"}` when Audit Events already has its id (ids are unique
//! across teams: ASA's are random 16-byte values), else S30's output `{"stored": true, "id"}`;
//! for an event S30 would refuse (not an object, no non-empty string `id`),
//! `{"stored": false, "rejected": "<reason>"}` without asking S30.
//!
//! Used on the last page, which M10 fetches again on every run until a next page appears.

use asa_lib::model::{StoredOut, AUDIT_EVENTS};
use asa_lib::{event, reject, teams};
use flowhost_sdk::{call, tables, FlowError};
use serde_json::value::RawValue;
use serde_json::Value;

flowhost_sdk::flow!(text run);

fn run(text: String) -> Result<StoredOut, FlowError> {
    let event = teams::open_envelope(&text).event;
    let id = match event::checked_id(event) {
        Ok(id) => id,
        Err(invalid) => return Ok(reject::rejected_out(&invalid)),
    };
    if tables::get::<Value>(AUDIT_EVENTS, &id)?.is_some() {
        return Ok(StoredOut { stored: false, id, rejected: None });
    }
    // S30 gets the event as it came, so `raw_event` is the same whichever flow stored it.
    let event = RawValue::from_string(text).map_err(|e| event::InvalidEvent(e.to_string()))?;
    Ok(call("S30", &event)?)
}
