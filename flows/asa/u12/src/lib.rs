//! U12 — Write New Offset: stores the offset of the next page in the checkpoint.
//!
//! Input `{"offset": "<decoded event id>"}`; output the same.
//!
//! Updates the Audit Checkpoints row, creating it when absent (the template assumed U03 had
//! been run). Also sets `LastDateTime` to now, which the template never wrote: it tells when
//! the checkpoint last moved.

use asa_lib::model::{OffsetIo, AUDIT_CHECKPOINTS};
use flowhost_sdk::{schedule, tables, FlowError};
use serde_json::json;

flowhost_sdk::flow!(run);

fn run(input: OffsetIo) -> Result<OffsetIo, FlowError> {
    let changes = json!({ "LastOffset": input.offset, "LastDateTime": schedule::now() });
    tables::update_first(AUDIT_CHECKPOINTS, &changes)?;
    Ok(input)
}
