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
//! A new `asaBaseUrl` is refused, and nothing written, unless M10 and U00 may reach it: the
//! host is asked (`grants.granted-urls`) about the service-token and auditsV2 URLs it makes
//! for both flows, and its refusal, which carries the config file's `grants:` section as it
//! must read, is the error.

use asa_lib::env::{EnvChanges, SetEnv};
use asa_lib::model::{Env, ENVIRONMENT_VARIABLES};
use asa_lib::url;
use flowhost_sdk::{fail, grants, tables, Error, FlowError};

flowhost_sdk::flow!(run);

fn run(input: SetEnv) -> Result<Env, FlowError> {
    let changes = input.validate()?;
    check_base_url_is_granted(&changes)?;
    if !changes.is_empty() {
        tables::update_first(ENVIRONMENT_VARIABLES, &changes)?;
    }
    let row: Option<Env> = tables::first(ENVIRONMENT_VARIABLES, &())?;
    Ok(row.unwrap_or_default().with_defaults())
}

/// Refuses a new base URL that M10 or U00 may not reach (the flows that send to it).
fn check_base_url_is_granted(changes: &EnvChanges) -> Result<(), FlowError> {
    let Some(base) = changes.asa_base_url.as_deref() else {
        return Ok(());
    };
    let current: Option<Env> = tables::first(ENVIRONMENT_VARIABLES, &())?;
    let team = match (&changes.asa_team, current) {
        (Some(team), _) => team.clone(),
        (None, Some(env)) => env.asa_team,
        (None, None) => String::new(),
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
