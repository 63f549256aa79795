//! U10 — Get checkpoint: where M10 resumes.
//!
//! Input `{}`; output `{"LastOffset", "LastDateTime", "LastCount"}` from the Audit Checkpoints
//! row (`""`, `""`, `0` when there is none, i.e. start from the oldest event).

use asa_lib::model::{Checkpoint, Empty, AUDIT_CHECKPOINTS};
use flowhost_sdk::{tables, FlowError};

flowhost_sdk::flow!(run);

fn run(_: Empty) -> Result<Checkpoint, FlowError> {
    let row: Option<Checkpoint> = tables::first(AUDIT_CHECKPOINTS, &())?;
    Ok(row.unwrap_or_default())
}
