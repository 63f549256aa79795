//! U20 — Write Execution Log: one Execution Log row per M10 run (and per reset or purge).
//!
//! Input `{"eventswritten": "n", "notes": "...", "team": "acme", "eventsrejected": r}`
//! (`eventswritten` may be a number; `team`, the ASA team the entry is about, may be absent;
//! `eventsrejected`, the events M10 newly put into Rejected Events, is optional and 0 by
//! default); output the row written: `{"datetime", "eventswritten", "notes", "team",
//! "eventsrejected"}`, `datetime` being now (RFC 3339, UTC, milliseconds).

use asa_lib::model::{ExecLogIn, ExecLogRow, EXECUTION_LOG};
use flowhost_sdk::{schedule, tables, FlowError};

flowhost_sdk::flow!(run);

fn run(input: ExecLogIn) -> Result<ExecLogRow, FlowError> {
    let row = ExecLogRow {
        datetime: schedule::now(),
        eventswritten: input.eventswritten,
        notes: input.notes,
        team: input.team,
        eventsrejected: input.eventsrejected.to_string(),
    };
    tables::insert(EXECUTION_LOG, &row)?;
    Ok(row)
}
