//! S32 — Get Client Details: describes an ASA client.
//!
//! Input `{"ref": <a details value>}`; output `{"text": "<line>"}` where the line is
//! `{user_name} (hostname: {hostname}, OS: {os}, state: {state})`,
//! or `{"text": ""}` when the reference is empty, `null`, not a string, not in Audit Related
//! Objects, or its object is empty. `null` fields render as empty.
//!
//! Fixes over the template: it read `username` (ASA clients have `user_name`, so the name was
//! always empty), filled the "hostname" label from `description`, and ended the text with a
//! stray `"\n\n"`, which is dropped. Example: `Jason.Compson.IV (hostname: Absalom, OS: macOS
//! 10.14.6, state: ACTIVE)`.
//!
//! Looks the reference up in Audit Related Objects (stored by S20/S21 for the current page)
//! and composes the line with `asa_lib::enrich`.

use asa_lib::enrich::Kind;
use asa_lib::model::{RefIn, TextOut, AUDIT_RELATED_OBJECTS};
use flowhost_sdk::{tables, FlowError};

flowhost_sdk::flow!(run);

fn run(input: RefIn) -> Result<TextOut, FlowError> {
    let text =
        Kind::Client.describe_ref(&input.reference, |id| tables::get(AUDIT_RELATED_OBJECTS, id))?;
    Ok(TextOut { text })
}
