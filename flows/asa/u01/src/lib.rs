//! U01 — Get env vars: the ASA package's settings from the Environment Variables table.
//!
//! Input `{}`; output `{"asaTeam", "searchCount", "asaBaseUrl", "offloadStore",
//! "offloadPrefix", "offloadBatch", "hecUrl"}` (all text).
//!
//! Reads the table's one row (the oldest, if there are several). Defaults: `searchCount`
//! `"100"`, `asaBaseUrl` `https://app.scaleft.com` (so the same flows can run against a
//! simulator or a regional host); for the offload flows O10/O20, `offloadStore` `"archive"`,
//! `offloadPrefix` `"asa/audit-events/"`, `offloadBatch` `"5000"`, and `hecUrl` `""` (not
//! set; O20 says so when it needs it). Fails when `asaTeam` is not set, saying how to set it
//! with U02, and when a stored value is invalid (`searchCount` outside 1..=1000, a base URL
//! that is not http(s), a bad store name or prefix, `offloadBatch` outside 1..=50000, a
//! `hecUrl` that is not http(s)).

use asa_lib::model::{Empty, Env, ENVIRONMENT_VARIABLES};
use flowhost_sdk::{tables, FlowError};

flowhost_sdk::flow!(run);

fn run(_: Empty) -> Result<Env, FlowError> {
    let row: Option<Env> = tables::first(ENVIRONMENT_VARIABLES, &())?;
    Ok(row.unwrap_or_default().checked()?)
}
