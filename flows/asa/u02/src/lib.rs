//! U02 — Set env vars: validates and writes the ASA package's settings.
//!
//! Input: any of `{"asaTeam": "william-faulkner", "searchCount": "100" | 100,
//! "asaBaseUrl": "https://app.scaleft.com", "offloadStore": "archive",
//! "offloadPrefix": "asa/audit-events/", "offloadBatch": "5000" | 5000,
//! "hecUrl": "https://splunk.example.com:8088/services/collector/event"}` (other keys are
//! refused, so a typo cannot pass silently). Output: the merged settings with U01's defaults
//! filled in.
//!
//! Checks: `asaTeam` is non-empty (letters, digits, `-`, `_`, `.`), stored in lower case (ASA
//! team names are case-insensitive; some deployments match the API path exactly);
//! `searchCount` is a whole number from 1 to 1000 (stored as text, like the template's
//! column); `asaBaseUrl` is an http or https URL without query or credentials, stored without
//! trailing slashes and without a final `/v1` (ASA's docs write the base as
//! `https://app.scaleft.com/v1/`; the flows add `/v1/teams/...`). The output shows what was
//! stored. The offload
//! settings: `offloadStore` is a store name (letters, digits, `-`, `_`), `offloadPrefix`
//! a relative path (a trailing `/` is added), `offloadBatch` 1..=50000, `hecUrl` an http(s)
//! URL without credentials or fragment; `""` puts one back to its default (`hecUrl`: unset).
//! Then updates the table's single row, creating it when the table is empty (`{}` changes
//! nothing and just shows the settings). (New: the template set the row by hand in the
//! Tables UI.)

use asa_lib::env::SetEnv;
use asa_lib::model::{Env, ENVIRONMENT_VARIABLES};
use flowhost_sdk::{tables, FlowError};

flowhost_sdk::flow!(run);

fn run(input: SetEnv) -> Result<Env, FlowError> {
    let changes = input.validate()?;
    if !changes.is_empty() {
        tables::update_first(ENVIRONMENT_VARIABLES, &changes)?;
    }
    let row: Option<Env> = tables::first(ENVIRONMENT_VARIABLES, &())?;
    Ok(row.unwrap_or_default().with_defaults())
}
