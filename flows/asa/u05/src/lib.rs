//! U05 — List Teams: the ASA teams the package collects (not in the template).
//!
//! Input `{}`; output `{"teams": ["william-faulkner", "acme"]}`: the `asaTeam` of each
//! Environment Variables row, oldest (the default team) first, in canonical lower case; rows
//! without a team are left out. M10 `{}` asks it which teams to collect.

use asa_lib::model::{Empty, Env, ENVIRONMENT_VARIABLES};
use asa_lib::teams::{self, TeamsOut};
use flowhost_sdk::{tables, FlowError};

flowhost_sdk::flow!(run);

fn run(_: Empty) -> Result<TeamsOut, FlowError> {
    let rows: Vec<Env> = tables::find(ENVIRONMENT_VARIABLES, &(), None)?;
    Ok(TeamsOut { teams: teams::team_names(&rows) })
}
