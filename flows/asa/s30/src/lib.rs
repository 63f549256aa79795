//! S30 — Process Event: one ASA audit event → its Audit Events row, enriched by S32–S37.
//!
//! Input: the whole event `{"id", "timestamp", "details": {...}}`, or M10's envelope
//! `{"team": "acme", "batch": "...", "event": {...}}` that also names the ASA team and the batch
//! (`asa_lib::teams`); output
//! `{"stored": true, "id": "<event id>"}`, or `{"stored": false, "rejected": "<reason>"}` for an
//! event that cannot be a row (not an object, no non-empty string `id`): nothing is written and
//! M10 quarantines it in Rejected Events (`asa_lib::reject`), so one bad event no longer fails
//! every run of its page (issue 16.4). The row's `team` column is the envelope's team (unset
//! for a bare event); `raw_event` is the event's text exactly as ASA sent it.
//!
//! The mapping (which `details` key feeds which column) is `asa_lib::event`. Fixes over the
//! template (asa-api.md §8.6), as DESIGN.md §5 asks:
//! - `raw_event` holds the whole event, as the JSON text ASA sent (the template stored
//!   `details` only);
//! - a new `gateway` column is filled by S33 from `details.gateway` (the template defined S33
//!   but never called it);
//! - `server` is S36(`details.server`) or, when that gives nothing, S36 of each
//!   `details.servers[]` (a server listed twice once), joined with `"; "` (the template ignored
//!   `servers[]`);
//! - a `target_user`, `group_id` or `project_id` missing from the page's related objects falls
//!   back to `user`, `group`, `project` (the template fell back only when it was no reference);
//! - the helpers read the real ASA fields: S37 `user_type`, S32 `user_name` and `hostname`
//!   (S32 also drops the template's stray trailing `"\n\n"`);
//! - references that are empty, `null`, not strings, or missing from Audit Related Objects
//!   give `""`; unknown `details` keys are ignored (they stay in `raw_event`);
//! - the timestamp is the millisecond "isoString" (kept as given if it does not parse, so one
//!   odd event never blocks the pipeline);
//! - the row is upserted: a page fetched again overwrites its own rows, never doubles them.
//!
//! Each distinct reference is described once per event, and once per batch when M10 names one
//! in the envelope (`asa_lib::answers`: the helpers are pure, and a batch is one page of one run
//! of M10). The row is stored as cells borrowed from the input and the answers: the event's text
//! is copied nowhere in the flow.

use std::cell::RefCell;

use asa_lib::answers::Answers;
use asa_lib::enrich::Kind;
use asa_lib::model::{RefIn, StoredOut, TextOut, AUDIT_EVENTS};
use asa_lib::reject;
use asa_lib::teams::{self, Opened};
use flowhost_sdk::tables::{self, Cell};
use flowhost_sdk::{call, Error, FlowError};

flowhost_sdk::flow!(text run);

thread_local! {
    /// The helpers' answers for the batch (or event) this instance is handling
    /// (`asa_lib::answers`).
    static ANSWERS: RefCell<Answers> = RefCell::default();
}

fn run(input: String) -> Result<StoredOut, FlowError> {
    let (Opened { team, batch, .. }, plan) = teams::open_and_plan(&input);
    let plan = match plan {
        Ok(plan) => plan,
        Err(invalid) => return Ok(reject::rejected_out(&invalid)),
    };
    let id = ANSWERS.with_borrow_mut(|answers| {
        answers.start(&batch);
        let mut row = plan.resolve(answers, describe)?;
        row.team = team;
        row.with_columns(Cell::Text, |cells| tables::upsert_cells(AUDIT_EVENTS, cells))
    })?;
    Ok(StoredOut { stored: true, id, rejected: None })
}

/// The helper flow for `kind` (S32–S37) on one reference.
fn describe(kind: Kind, reference: &str) -> Result<String, Error> {
    let out: TextOut = call(kind.flow(), &RefIn { reference })?;
    Ok(out.text)
}
