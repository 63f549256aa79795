//! S21 — Store Related Object: one `related_objects` entry as an Audit Related Objects row.
//!
//! Input `{"id": "<ref-id>", "type": "user", "object": {...}}`; output
//! `{"stored": true, "id": "<ref-id>"}`.
//!
//! Writes `{id, type, object: <object as JSON text>}`. Uses upsert (the template created the
//! row), so an id repeated within a page cannot fail the run.

use asa_lib::model::{RelatedItem, StoredOut, AUDIT_RELATED_OBJECTS};
use flowhost_sdk::{tables, FlowError};

flowhost_sdk::flow!(run);

fn run(input: RelatedItem) -> Result<StoredOut, FlowError> {
    let id = tables::upsert(AUDIT_RELATED_OBJECTS, &input.into_row())?;
    Ok(StoredOut { stored: true, id, rejected: None })
}
