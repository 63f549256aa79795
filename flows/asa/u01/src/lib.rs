//! U01 — Get env vars: the ASA package's settings from the Environment Variables table.
//!
//! Input `{}`; output `{"asaTeam", "searchCount", "asaBaseUrl"}` (all text).
//!
//! Reads the table's one row (the oldest, if there are several). Defaults: `searchCount`
//! `"100"`, `asaBaseUrl` `https://app.scaleft.com` (so the same flows can run against a
//! simulator or a regional host). Fails when `asaTeam` is not set, saying how to set it with
//! U02, and when a stored value is invalid (`searchCount` outside 1..=1000, a base URL that is
//! not http(s)).

use asa_lib::model::{Empty, Env, ENVIRONMENT_VARIABLES};
use flowhost_sdk::{tables, FlowError};

flowhost_sdk::flow!(run);

fn run(_: Empty) -> Result<Env, FlowError> {
    let row: Option<Env> = tables::first(ENVIRONMENT_VARIABLES, &())?;
    Ok(row.unwrap_or_default().checked()?)
}
