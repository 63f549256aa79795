//! S21 — Store Related Object: one `related_objects` entry as an Audit Related Objects row.
//!
//! Input `{"id": "<ref-id>", "type": "user", "object": {...}}`; output
//! `{"stored": true, "id": "<ref-id>"}`.
//!
//! Writes `{id, type, object: <object as JSON text>}`: compact, keys sorted, as `serde_json`
//! writes the object's `Value`. An object written so already (as S20 hands them on) is stored as
//! it is, without being read (and an input laid out as S20 writes it is taken apart without
//! `serde_json`); any other input is read whole, so the row, and every error, is the same
//! either way. Uses upsert (the template created the row), so an id repeated within a
//! page cannot fail the run.

use asa_lib::model::{RelatedItem, RelatedItemText, StoredOut, AUDIT_RELATED_OBJECTS};
use flowhost_sdk::{input, tables, FlowError};

flowhost_sdk::flow!(text run);

fn run(text: String) -> Result<StoredOut, FlowError> {
    let as_s20_writes_it = || RelatedItemText::row_of(&text);
    let kept = || input::<RelatedItemText>(&text).ok().and_then(RelatedItemText::into_row);
    let row = match as_s20_writes_it().or_else(kept) {
        Some(row) => row,
        None => input::<RelatedItem>(&text)?.into_row(),
    };
    let id = tables::upsert(AUDIT_RELATED_OBJECTS, &row)?;
    Ok(StoredOut { stored: true, id, rejected: None })
}
