//! S37 — Get User Details: describes an ASA user.
//!
//! Input `{"ref": <a details value>}`; output `{"text": "<line>"}` where the line is
//! `{name} (status: {status} , usertype: {user_type})`,
//! or `{"text": ""}` when the reference is empty, `null`, not a string, not in Audit Related
//! Objects, or its object is empty. `null` fields render as empty.
//!
//! Fix over the template: it read `usertype` (ASA users have `user_type`, so the type was
//! always empty); its space before the comma is kept. Example: `Jason.Compson.IV (status:
//! ACTIVE , usertype: human)`.
//!
//! Looks the reference up in Audit Related Objects (stored by S20/S21 for the current page)
//! and composes the line with `asa_lib::enrich`.

use asa_lib::enrich::Kind;
use asa_lib::model::{RefIn, TextOut, AUDIT_RELATED_OBJECTS};
use flowhost_sdk::{tables, FlowError};

flowhost_sdk::flow!(run);

fn run(input: RefIn) -> Result<TextOut, FlowError> {
    let text =
        Kind::User.describe_ref(&input.reference, |id| tables::get(AUDIT_RELATED_OBJECTS, id))?;
    Ok(TextOut { text })
}
