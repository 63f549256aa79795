//! U04 — Clear events table: deletes every stored audit event.
//!
//! Input `{}`; output `{"deleted": n}`.
//!
//! Steps: clear Audit Events and log `(n, "Cleared events table")` in the Execution Log (U20),
//! with the number of rows deleted (the template logged nothing useful as the count).

use asa_lib::model::{DeletedOut, Empty, ExecLogIn, AUDIT_EVENTS};
use flowhost_sdk::{call, tables, FlowError};
use serde_json::Value;

flowhost_sdk::flow!(run);

fn run(_: Empty) -> Result<DeletedOut, FlowError> {
    let deleted = tables::clear(AUDIT_EVENTS)?;
    let _: Value = call("U20", &ExecLogIn::new(deleted, "Cleared events table"))?;
    Ok(DeletedOut { deleted })
}
