//! U13 — Write Count: stores how many events the last page held.
//!
//! Input `{"count": n}` (a number, or numeric text as the template passed it), optionally with
//! `"team": "acme"` (absent = the default team); output the same.
//!
//! Updates the team's Audit Checkpoints row, creating it when absent, and sets `LastDateTime`
//! to now (never written by the template).

use asa_lib::teams::TeamCount;
use flowhost_sdk::{schedule, FlowError};
use serde_json::{json, Map, Value};

use asa_steps as steps;

flowhost_sdk::flow!(run);

fn run(input: TeamCount) -> Result<TeamCount, FlowError> {
    let changes = json!({ "LastCount": input.count, "LastDateTime": schedule::now() });
    let changes: Map<String, Value> = serde_json::from_value(changes)?;
    steps::write_checkpoint(input.team.as_deref(), changes)?;
    Ok(input)
}
