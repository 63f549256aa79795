//! U14 — Get Offloadable Count: how many of the oldest Audit Events an offload flow may move
//! out of the table now.
//!
//! Input `{}`; output `{"offloadable": n, "stored": total, "pending": LastCount}`.
//!
//! Not in the template (which left offloading as an exercise). M10 polls the page at the
//! checkpoint again and again and stores whichever of its events S31 does not find in Audit
//! Events; an event of that page that was offloaded would be stored a second time, and then
//! offloaded twice. Those events are the newest `LastCount` rows (M10 sets `LastCount` to the
//! number of stored events of that page, see `asa_lib::main_flow`), so the offload flows (O10,
//! O20) leave them in the table until the checkpoint moves past them.
//!
//! Several ASA teams (one checkpoint row each): each team's pending page is its newest
//! `LastCount` rows, which may lie anywhere among the other teams' rows. U14 then reads the
//! oldest 1000 rows (`offload::PAGE`) and counts up to the first one that is on some team's
//! pending page (`asa_lib::teams::offloadable_prefix`): at most 1000 per answer, so an offload
//! run moves at most 1000 rows then, and the next run (its own catch-up or the schedule) goes
//! on. Rows stored before teams existed (empty `team`) are the default team's.

use asa_lib::model::{Checkpoint, Empty, OffloadableOut, AUDIT_CHECKPOINTS, AUDIT_EVENTS};
use asa_lib::{offload, teams, text_of};
use flowhost_sdk::{call, tables, FlowError};
use serde_json::{json, Value};

use asa_steps as steps;

flowhost_sdk::flow!(run);

fn run(_: Empty) -> Result<OffloadableOut, FlowError> {
    let checkpoints: Vec<Value> = tables::find(AUDIT_CHECKPOINTS, &(), None)?;
    if checkpoints.len() > 1 {
        return several_teams(&checkpoints);
    }
    let checkpoint: Checkpoint = call("U10", &Empty {})?;
    let stored = tables::count(AUDIT_EVENTS, &())?;
    let pending = checkpoint.last_count.min(stored);
    Ok(OffloadableOut { offloadable: stored - pending, stored, pending })
}

/// U14 with a checkpoint row per team.
fn several_teams(checkpoints: &[Value]) -> Result<OffloadableOut, FlowError> {
    let (_, default) = steps::resolve_team(None)?;
    let stored = tables::count(AUDIT_EVENTS, &())?;
    let mut allowed = Vec::new();
    let mut pending = 0u64;
    for row in checkpoints {
        let cp: Checkpoint = serde_json::from_value(row.clone())?;
        let owner =
            teams::owner(&teams::canonical(&text_of(row.get("team"))), &default).to_string();
        let mut team_rows = tables::count(AUDIT_EVENTS, &json!({ "team": owner }))?;
        if owner == default {
            // Rows stored before teams existed are the default team's.
            team_rows =
                team_rows.saturating_add(tables::count(AUDIT_EVENTS, &json!({ "team": null }))?);
        }
        let team_pending = cp.last_count.min(team_rows);
        pending = pending.saturating_add(team_pending);
        allowed.push((owner, team_rows.saturating_sub(team_pending)));
    }
    if pending == 0 {
        return Ok(OffloadableOut { offloadable: stored, stored, pending });
    }
    let oldest: Vec<Value> = tables::find(AUDIT_EVENTS, &(), Some(offload::PAGE))?;
    let owners: Vec<String> = oldest
        .iter()
        .map(|r| teams::owner(&teams::canonical(&text_of(r.get("team"))), &default).to_string())
        .collect();
    let owners: Vec<&str> = owners.iter().map(String::as_str).collect();
    let offloadable = teams::offloadable_prefix(&owners, &allowed);
    Ok(OffloadableOut { offloadable, stored, pending })
}
