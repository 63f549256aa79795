//! U03 — Reset checkpoint: the next M10 run starts again from the oldest retained event.
//!
//! Input `{}` (the default team) or `{"team": "acme"}`; output the new checkpoint
//! `{"LastOffset": "", "LastDateTime": "", "LastCount": 0}`.
//!
//! Steps (as the template): remove the team's Audit Checkpoints row (other teams' rows stay),
//! insert `{LastOffset: "", LastCount: 0}` for the team, and log `("0", "Reset checkpoint")` in
//! the Execution Log (U20) with the team.

use asa_lib::model::{Checkpoint, AUDIT_CHECKPOINTS};
use asa_lib::teams::TeamIn;
use flowhost_sdk::{tables, FlowError};
use serde_json::json;

use asa_steps as steps;

flowhost_sdk::flow!(run);

fn run(input: TeamIn) -> Result<Checkpoint, FlowError> {
    let (team, default) = steps::resolve_team(input.team.as_deref())?;
    if let Some(key) = steps::team_checkpoint(&team, &default)?.as_ref().and_then(tables::row_id) {
        tables::delete(AUDIT_CHECKPOINTS, &key)?;
    }
    let mut row = json!({ "LastOffset": "", "LastCount": 0 });
    if !team.is_empty() {
        row["team"] = json!(team);
    }
    tables::insert(AUDIT_CHECKPOINTS, &row)?;
    steps::log_team_execution(&team, 0, "Reset checkpoint")?;
    Ok(Checkpoint::default())
}
