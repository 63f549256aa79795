//! S31 — Process Event If New: S30, unless the event is already stored.
//!
//! Input: the whole event; output `{"stored": false, "id"}` when Audit Events already has its
//! id, else S30's output `{"stored": true, "id"}`.
//!
//! Used on the last page, which M10 fetches again on every run until a next page appears.

use asa_lib::event;
use asa_lib::model::{StoredOut, AUDIT_EVENTS};
use flowhost_sdk::{call, tables, FlowError};
use serde_json::Value;

flowhost_sdk::flow!(run);

fn run(event: Value) -> Result<StoredOut, FlowError> {
    let id = event::event_id(&event)?;
    if tables::get::<Value>(AUDIT_EVENTS, id)?.is_some() {
        return Ok(StoredOut { stored: false, id: id.to_string() });
    }
    Ok(call("S30", &event)?)
}
