//! U12 — Write New Offset: stores the offset of the next page in the checkpoint.
//!
//! Input `{"offset": "<decoded event id>"}`, optionally with `"team": "acme"` (absent = the
//! default team); output the same.
//!
//! Updates the team's Audit Checkpoints row, creating it when absent (the template assumed U03
//! had been run). Also sets `LastDateTime` to now, which the template never wrote: it tells when
//! the checkpoint last moved.

use asa_lib::teams::TeamOffset;
use flowhost_sdk::{schedule, FlowError};
use serde_json::{json, Map, Value};

use asa_steps as steps;

flowhost_sdk::flow!(run);

fn run(input: TeamOffset) -> Result<TeamOffset, FlowError> {
    let changes = json!({ "LastOffset": input.offset, "LastDateTime": schedule::now() });
    let changes: Map<String, Value> = serde_json::from_value(changes)?;
    steps::write_checkpoint(input.team.as_deref(), changes)?;
    Ok(input)
}
