//! S36 — Get Server Details: describes an ASA server.
//!
//! Input `{"ref": <a details value>}`; output `{"text": "<line>"}` where the line is
//! `{hostname} (project: {project_name}, canonical name: {canonical_name}, access address: {access_address}, OS: {os}, OS type: {os_type})`,
//! or `{"text": ""}` when the reference is empty, `null`, not a string, not in Audit Related
//! Objects, or its object is empty. `null` fields render as empty.
//!
//! Example: `harvard (project: the-sound-and-the-fury, canonical name: , access address: , OS:
//! Ubuntu 16.04, OS type: linux)`.
//!
//! Looks the reference up in Audit Related Objects (stored by S20/S21 for the current page)
//! and composes the line with `asa_lib::enrich`.

use asa_lib::enrich::Kind;
use asa_lib::model::{RefIn, TextOut, AUDIT_RELATED_OBJECTS};
use flowhost_sdk::{tables, FlowError};

flowhost_sdk::flow!(run);

fn run(input: RefIn) -> Result<TextOut, FlowError> {
    let text =
        Kind::Server.describe_ref(&input.reference, |id| tables::get(AUDIT_RELATED_OBJECTS, id))?;
    Ok(TextOut { text })
}
