//! U11a — Has next page: whether a `Link` header announces a next `auditsV2` page.
//!
//! Input `{"link": "<header value, or empty>"}`; output `{"hasNext": true | false}` (the
//! template returned the text "TRUE"/"FALSE"). Parsed per RFC 8288, like U11.

use asa_lib::link;
use asa_lib::model::{HasNextOut, LinkIn};
use flowhost_sdk::FlowError;

flowhost_sdk::flow!(run);

fn run(input: LinkIn) -> Result<HasNextOut, FlowError> {
    Ok(HasNextOut { has_next: link::has_next(&input.link) })
}
