//! S20 — Store Related Objects: keeps the current page's `related_objects` for the helpers.
//!
//! Input `{"related_objects": {"<ref-id>": {"type": "...", "object": {...}}, ...} | null}`;
//! output `{"stored": n}`.
//!
//! Steps (as the template): clear Audit Related Objects, then run S21 for each entry, one at a
//! time (the template's Map-to-List with concurrency 1). Any S21 failure fails S20 (and so the
//! whole M10 run, which the host then rolls back).

use asa_lib::model::{
    RelatedItem, RelatedObjectsIn, StoredCountOut, StoredOut, AUDIT_RELATED_OBJECTS,
};
use flowhost_sdk::{for_each_all, tables, FlowError};

flowhost_sdk::flow!(run);

fn run(input: RelatedObjectsIn) -> Result<StoredCountOut, FlowError> {
    tables::clear(AUDIT_RELATED_OBJECTS)?;
    let items: Vec<RelatedItem> = input
        .related_objects
        .into_iter()
        .map(|(id, value)| RelatedItem::from_entry(id, value))
        .collect();
    let stored: Vec<StoredOut> = for_each_all("S21", &items, 1)?;
    Ok(StoredCountOut { stored: stored.len() as u64 })
}
