//! U04 — Clear events table: deletes every stored audit event.
//!
//! Input `{}`; output `{"deleted": n}`.
//!
//! Steps: clear Audit Events and log `(n, "Cleared events table")` in the Execution Log (U20),
//! with the number of rows deleted (the template logged nothing useful as the count).

use asa_lib::model::{DeletedOut, Empty, AUDIT_EVENTS};
use flowhost_sdk::{tables, FlowError};

flowhost_sdk::flow!(run);

fn run(_: Empty) -> Result<DeletedOut, FlowError> {
    let deleted = tables::clear(AUDIT_EVENTS)?;
    asa_steps::log_execution(deleted, "Cleared events table")?;
    Ok(DeletedOut { deleted })
}
