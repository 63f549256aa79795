//! S35 — Get Project Details: describes an ASA project.
//!
//! Input `{"ref": <a details value>}`; output `{"text": "<line>"}` where the line is
//! `{name}`,
//! or `{"text": ""}` when the reference is empty, `null`, not a string, not in Audit Related
//! Objects, or its object is empty. `null` fields render as empty.
//!
//! Example: `the-sound-and-the-fury`.
//!
//! Looks the reference up in Audit Related Objects (stored by S20/S21 for the current page)
//! and composes the line with `asa_lib::enrich`.

use asa_lib::enrich::Kind;
use asa_lib::model::{RefIn, TextOut, AUDIT_RELATED_OBJECTS};
use flowhost_sdk::{tables, FlowError};

flowhost_sdk::flow!(run);

fn run(input: RefIn) -> Result<TextOut, FlowError> {
    let text = Kind::Project
        .describe_ref(&input.reference, |id| tables::get(AUDIT_RELATED_OBJECTS, id))?;
    Ok(TextOut { text })
}
