//! U03 — Reset checkpoint: the next M10 run starts again from the oldest retained event.
//!
//! Input `{}`; output the new checkpoint `{"LastOffset": "", "LastDateTime": "", "LastCount": 0}`.
//!
//! Steps (as the template): clear Audit Checkpoints, insert `{LastOffset: "", LastCount: 0}`,
//! and log `("0", "Reset checkpoint")` in the Execution Log (U20).

use asa_lib::model::{Checkpoint, Empty, AUDIT_CHECKPOINTS};
use flowhost_sdk::{tables, FlowError};
use serde_json::json;

flowhost_sdk::flow!(run);

fn run(_: Empty) -> Result<Checkpoint, FlowError> {
    tables::clear(AUDIT_CHECKPOINTS)?;
    tables::insert(AUDIT_CHECKPOINTS, &json!({ "LastOffset": "", "LastCount": 0 }))?;
    asa_steps::log_execution(0, "Reset checkpoint")?;
    Ok(Checkpoint::default())
}
