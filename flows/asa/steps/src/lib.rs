//! Named steps that several ASA flows take, so each flow stays a short sequence of steps and
//! none repeats the plumbing: writing the Execution Log (U20, with M10's rejected count),
//! asking how many events may be offloaded (U14), and deleting an offloaded event; for several
//! ASA teams, which team an input means and reading and writing that team's checkpoint row
//! (`asa_lib::teams`).

use asa_lib::model::{
    Empty, Env, ExecLogIn, OffloadableOut, AUDIT_CHECKPOINTS, AUDIT_EVENTS, ENVIRONMENT_VARIABLES,
};
use asa_lib::offload::{self, Row};
use asa_lib::teams;
use flowhost_sdk::{call, fail, tables, Error, FlowError};
use serde_json::{Map, Value};

/// U20: one Execution Log row (`eventswritten`, `notes`).
pub fn log_execution(written: u64, note: &str) -> Result<(), Error> {
    let _: Value = call("U20", &ExecLogIn::new(written, note))?;
    Ok(())
}

/// U20: M10's Execution Log row for `team`, with the events it newly put into Rejected Events.
pub fn log_collection(team: &str, written: u64, rejected: u64, note: &str) -> Result<(), Error> {
    let entry = ExecLogIn { team: team.to_string(), ..ExecLogIn::new(written, note) };
    let _: Value = call("U20", &entry.with_rejected(rejected))?;
    Ok(())
}

/// U14: how many of the oldest Audit Events may leave the table now (not the page at the
/// checkpoint, which M10 reads again).
pub fn offloadable_count() -> Result<u64, Error> {
    let out: OffloadableOut = call("U14", &Empty {})?;
    Ok(out.offloadable)
}

/// Deletes an offloaded row of Audit Events (in the run's transaction).
pub fn delete_event(row: &Row) -> Result<(), FlowError> {
    let Some(id) = offload::row_id(row) else {
        fail!("Audit Events: a row without an id: {}", Value::Object(row.clone()));
    };
    if !tables::delete(AUDIT_EVENTS, &id)? {
        fail!("Audit Events: row {id} vanished while it was being offloaded");
    }
    Ok(())
}

/// U20 for one ASA team: one Execution Log row (`eventswritten`, `notes`, `team`).
pub fn log_team_execution(team: &str, written: u64, note: &str) -> Result<(), Error> {
    let entry = ExecLogIn { team: team.to_string(), ..ExecLogIn::new(written, note) };
    let _: Value = call("U20", &entry)?;
    Ok(())
}

/// `(team, default team)`: the team `team` names (canonical form), or the default team (the
/// oldest Environment Variables row) when it names none; the default team is `""` while the
/// table has no row. (The caller needs read access to Environment Variables.)
pub fn resolve_team(team: Option<&str>) -> Result<(String, String), FlowError> {
    let first: Option<Env> = tables::first(ENVIRONMENT_VARIABLES, &())?;
    let default = first.map(|e| teams::canonical(&e.asa_team)).unwrap_or_default();
    let team = match team {
        Some(t) => asa_lib::env::validate_team(t)?,
        None => default.clone(),
    };
    Ok((team, default))
}

/// Team `team`'s Audit Checkpoints row (with its `_id`): the row of that team or, for the
/// default team, the row written before teams existed.
pub fn team_checkpoint(team: &str, default: &str) -> Result<Option<Value>, FlowError> {
    let rows: Vec<Value> = tables::find(AUDIT_CHECKPOINTS, &(), None)?;
    let row_teams: Vec<String> = rows.iter().map(|r| asa_lib::text_of(r.get("team"))).collect();
    Ok(teams::checkpoint_row(&row_teams, team, default).and_then(|i| rows.into_iter().nth(i)))
}

/// Sets `changes` on team `team`'s checkpoint row (absent = the default team), setting its
/// `team` (which claims a row written before teams existed), or inserts the row. Returns the
/// team.
pub fn write_checkpoint(
    team: Option<&str>,
    mut changes: Map<String, Value>,
) -> Result<String, FlowError> {
    let (team, default) = resolve_team(team)?;
    if !team.is_empty() {
        changes.insert("team".into(), Value::String(team.clone()));
    }
    match team_checkpoint(&team, &default)? {
        Some(row) => {
            let Some(key) = tables::row_id(&row) else {
                fail!("Audit Checkpoints: a row without an _id: {row}");
            };
            if !tables::update(AUDIT_CHECKPOINTS, &key, &changes)? {
                fail!("Audit Checkpoints: row {key} vanished during the update");
            }
        }
        None => {
            tables::insert(AUDIT_CHECKPOINTS, &changes)?;
        }
    }
    Ok(team)
}
