//! Named steps that several ASA flows take, so each flow stays a short sequence of steps and
//! none repeats the plumbing: writing the Execution Log (U20, with M10's rejected count), asking how many events may be
//! offloaded (U14), and deleting an offloaded event.

use asa_lib::model::{Empty, ExecLogIn, OffloadableOut, AUDIT_EVENTS};
use asa_lib::offload::{self, Row};
use flowhost_sdk::{call, fail, tables, Error, FlowError};
use serde_json::Value;

/// U20: one Execution Log row (`eventswritten`, `notes`).
pub fn log_execution(written: u64, note: &str) -> Result<(), Error> {
    let _: Value = call("U20", &ExecLogIn::new(written, note))?;
    Ok(())
}

/// U20: M10's Execution Log row, with the events it newly put into Rejected Events.
pub fn log_collection(written: u64, rejected: u64, note: &str) -> Result<(), Error> {
    let _: Value = call("U20", &ExecLogIn::new(written, note).with_rejected(rejected))?;
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
