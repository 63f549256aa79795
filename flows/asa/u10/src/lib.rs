//! U10 — Get checkpoint: where M10 resumes.
//!
//! Input `{}` (the default team) or `{"team": "acme"}`; output `{"LastOffset", "LastDateTime",
//! "LastCount"}` from the team's Audit Checkpoints row (`""`, `""`, `0` when there is none,
//! i.e. start from the oldest event). The default team's row is also the one written before
//! teams existed (empty `team`), see `asa_lib::teams`.

use asa_lib::model::Checkpoint;
use asa_lib::teams::TeamIn;
use flowhost_sdk::FlowError;

use asa_steps as steps;

flowhost_sdk::flow!(run);

fn run(input: TeamIn) -> Result<Checkpoint, FlowError> {
    let (team, default) = steps::resolve_team(input.team.as_deref())?;
    match steps::team_checkpoint(&team, &default)? {
        Some(row) => Ok(serde_json::from_value(row)?),
        None => Ok(Checkpoint::default()),
    }
}
