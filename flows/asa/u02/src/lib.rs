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
//!
//! Several ASA teams (`asa_lib::teams`): one row per team, the oldest being the default team.
//! `keyIdSecret`/`keySecretSecret` name the secrets with the team's key pair (letters, digits,
//! `_`; `""` goes back to `ASA_KEY_ID`/`ASA_KEY_SECRET`). Without `team` the default team's row
//! is set, as above (`asaTeam` renames it). `{"team": "acme", ...}` sets team acme's row,
//! creating it (other settings defaulted) when there is none; `{"team": "acme", "remove":
//! true}` deletes it (the default team's row only when no other team is left). The output is
//! that team's merged settings (for a removal, the row removed). At most 8 teams.

use asa_lib::env::{validate_team, SetEnv};
use asa_lib::model::{Env, ENVIRONMENT_VARIABLES};
use asa_lib::teams::{self, SetPlan};
use flowhost_sdk::{tables, FlowError};
use serde_json::{Map, Value};

flowhost_sdk::flow!(run);

fn run(input: SetEnv) -> Result<Env, FlowError> {
    let team = input.team.as_deref().map(validate_team).transpose()?;
    let remove = input.remove;
    if remove && input.clone().validate()? != Default::default() {
        flowhost_sdk::fail!(
            "U02: remove takes only the team: {{\"team\": \"name\", \"remove\": true}}"
        );
    }
    let changes = input.validate()?;
    let rows: Vec<Value> = tables::find(ENVIRONMENT_VARIABLES, &(), None)?;
    let envs =
        rows.iter().map(|r| serde_json::from_value(r.clone())).collect::<Result<Vec<Env>, _>>()?;
    let plan = teams::plan_set(&envs, team.as_deref(), changes.asa_team.as_deref(), remove)?;
    let mut set = match serde_json::to_value(&changes)? {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let key = |i: usize| match rows.get(i).and_then(tables::row_id) {
        Some(k) => Ok(k),
        None => Err(FlowError::new("Environment Variables: a row without an _id")),
    };
    let written = match plan {
        SetPlan::Delete { index } => {
            tables::delete(ENVIRONMENT_VARIABLES, &key(index)?)?;
            return Ok(envs.into_iter().nth(index).unwrap_or_default().with_defaults());
        }
        SetPlan::Update { index, asa_team } => {
            if let Some(t) = asa_team {
                set.insert("asaTeam".into(), Value::String(t));
            }
            let k = key(index)?;
            if !set.is_empty() {
                tables::update(ENVIRONMENT_VARIABLES, &k, &set)?;
            }
            k
        }
        SetPlan::Insert { asa_team } => {
            if let Some(t) = asa_team {
                set.insert("asaTeam".into(), Value::String(t));
            }
            if set.is_empty() {
                // `{}` on an empty table: nothing to store, just the defaults.
                return Ok(Env::default().with_defaults());
            }
            tables::insert(ENVIRONMENT_VARIABLES, &set)?
        }
    };
    let row: Option<Env> = tables::get(ENVIRONMENT_VARIABLES, &written)?;
    Ok(row.unwrap_or_default().with_defaults())
}
