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
//! `onLostOffset` is `fail` or `restart` (`""`: back to `fail`; see `asa_lib::lost_offset`).
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
//!
//! A new `asaBaseUrl` is refused, and nothing written, unless M10 and U00 may reach it: the
//! host is asked (`grants.granted-urls`) about the service-token and auditsV2 URLs it makes
//! for both flows, and its refusal, which carries the config file's `grants:` section as it
//! must read, is the error.

use asa_lib::env::{validate_team, EnvChanges, SetEnv};
use asa_lib::model::{Env, ENVIRONMENT_VARIABLES};
use asa_lib::teams::{self, SetPlan};
use asa_lib::url;
use flowhost_sdk::{fail, grants, tables, Error, FlowError};
use serde_json::{Map, Value};

flowhost_sdk::flow!(run);

fn run(input: SetEnv) -> Result<Env, FlowError> {
    let team = input.team.as_deref().map(validate_team).transpose()?;
    let remove = input.remove;
    if remove && input.clone().validate()? != Default::default() {
        fail!("U02: remove takes only the team: {{\"team\": \"name\", \"remove\": true}}");
    }
    let changes = input.validate()?;
    check_base_url_is_granted(&changes, team.as_deref())?;
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

/// Refuses a new base URL that M10 or U00 may not reach (the flows that send to it).
/// `team` is the team the input names (absent: the default team's row).
fn check_base_url_is_granted(changes: &EnvChanges, team: Option<&str>) -> Result<(), FlowError> {
    let Some(base) = changes.asa_base_url.as_deref() else {
        return Ok(());
    };
    let current: Option<Env> = tables::first(ENVIRONMENT_VARIABLES, &())?;
    let team = match (team, &changes.asa_team, current) {
        (Some(team), _, _) => team.to_string(),
        (None, Some(team), _) => team.clone(),
        (None, None, Some(env)) => env.asa_team,
        (None, None, None) => String::new(),
    };
    let token_url = url::service_token_url(base, &team);
    let audits_url = url::audits_url(base, &team, 1, "");
    let asks = [
        ("M10", audits_url.as_str()),
        ("M10", token_url.as_str()),
        ("U00", token_url.as_str()),
        ("U00", audits_url.as_str()),
    ];
    match grants::granted_urls(&asks) {
        Ok(()) => Ok(()),
        Err(Error::AccessDenied(why)) => fail!("asaBaseUrl {base:?} was not stored: {why}"),
        Err(e) => Err(e.into()),
    }
}
