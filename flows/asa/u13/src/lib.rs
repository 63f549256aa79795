//! U13 — Write Count: stores how many events the last page held.
//!
//! Input `{"count": n}` (a number, or numeric text as the template passed it); output
//! `{"count": n}`.
//!
//! Updates the Audit Checkpoints row, creating it when absent, and sets `LastDateTime` to now
//! (never written by the template).

use asa_lib::model::{CountIo, AUDIT_CHECKPOINTS};
use flowhost_sdk::{schedule, tables, FlowError};
use serde_json::json;

flowhost_sdk::flow!(run);

fn run(input: CountIo) -> Result<CountIo, FlowError> {
    let changes = json!({ "LastCount": input.count, "LastDateTime": schedule::now() });
    tables::update_first(AUDIT_CHECKPOINTS, &changes)?;
    Ok(input)
}
