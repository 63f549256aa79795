//! S20 — Store Related Objects: keeps the current page's `related_objects` for the helpers.
//!
//! Input `{"related_objects": {"<ref-id>": {"type": "...", "object": {...}}, ...} | null}`;
//! output `{"stored": n}`.
//!
//! Steps (as the template): clear Audit Related Objects, then run S21 for each entry, one at a
//! time (the template's Map-to-List with concurrency 1). Any S21 failure fails S20 (and so the
//! whole M10 run, which the host then rolls back).
//!
//! A page's text as `serde_json` writes it (`asa_lib::canonical`; M10 passes the server's text
//! on as it is) is checked and split in one pass and handed to S21 entry by entry without
//! reading any object; any other text is read whole first, so what S21 gets, and every error,
//! is the same either way.

use asa_lib::model::{
    RelatedObjectsIn, RelatedObjectsText, StoredCountOut, StoredOut, AUDIT_RELATED_OBJECTS,
};
use flowhost_sdk::{for_each_all_raw, input, tables, FlowError};

flowhost_sdk::flow!(text run);

fn run(text: String) -> Result<StoredCountOut, FlowError> {
    let items = match RelatedObjectsText::items_of(&text) {
        Some(items) => items,
        None => {
            let page = input::<RelatedObjectsText>(&text).ok();
            match page.as_ref().and_then(RelatedObjectsText::items) {
                Some(items) => items,
                None => input::<RelatedObjectsIn>(&text)?.items()?,
            }
        }
    };
    tables::clear(AUDIT_RELATED_OBJECTS)?;
    let stored: Vec<StoredOut> = for_each_all_raw("S21", &items, 1)?;
    Ok(StoredCountOut { stored: stored.len() as u64 })
}
