//! U01 — Get env vars: the ASA package's settings from the Environment Variables table.
//!
//! Input `{}` (the default team) or `{"team": "acme"}`; output `{"asaTeam", "searchCount",
//! "asaBaseUrl", "offloadStore", "offloadPrefix", "offloadBatch", "hecUrl", "keyIdSecret",
//! "keySecretSecret", "onLostOffset"}` (all text).
//!
//! Reads the team's row: one row per ASA team, the oldest being the default team
//! (`asa_lib::teams`); a team without a row is an error naming the teams there are and how to
//! add one with U02. `keyIdSecret`/`keySecretSecret` default to `ASA_KEY_ID`/`ASA_KEY_SECRET`
//! (names of secrets, never their values). Defaults: `searchCount`
//! `"100"`, `asaBaseUrl` `https://app.scaleft.com` (so the same flows can run against a
//! simulator or a regional host); for the offload flows O10/O20, `offloadStore` `"archive"`,
//! `offloadPrefix` `"asa/audit-events/"`, `offloadBatch` `"5000"`, and `hecUrl` `""` (not
//! set; O20 says so when it needs it); `onLostOffset` `"fail"` (M10's answer to an offset
//! ASA no longer knows: `fail` or `restart`). Fails when `asaTeam` is not set, saying how to set it
//! with U02, and when a stored value is invalid (`searchCount` outside 1..=1000, a base URL
//! that is not http(s), a bad store name or prefix, `offloadBatch` outside 1..=50000, a
//! `hecUrl` that is not http(s)).

use asa_lib::model::{Env, ENVIRONMENT_VARIABLES};
use asa_lib::teams::{self, TeamIn};
use flowhost_sdk::{tables, FlowError};

flowhost_sdk::flow!(run);

fn run(input: TeamIn) -> Result<Env, FlowError> {
    let team = input.name()?;
    let mut rows: Vec<Env> = tables::find(ENVIRONMENT_VARIABLES, &(), None)?;
    let row = match teams::find_row(&rows, team.as_deref())? {
        Some(i) => rows.swap_remove(i),
        None => Env::default(),
    };
    Ok(row.checked()?)
}
