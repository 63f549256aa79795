//! U11 — Get next offset: the offset of the next `auditsV2` page from a `Link` header.
//!
//! Input `{"link": "<header value, or empty>"}`; output `{"offset": "<decoded event id>"}`,
//! `""` when there is no `rel="next"` link (the last page).
//!
//! Steps (as the template): U11a says whether the header announces a next page; if it does,
//! the offset is read from that page's URL.
//!
//! Fix: the template cut the text between `offset=` and `rel=`, which only worked for one
//! exact layout and kept the value percent-encoded. This parses the header per RFC 8288
//! (`asa_lib::link`): the `next` entry anywhere in the header, `rel` lists, any parameter
//! order, absolute or relative URLs, percent-decoding. A `next` link without an `offset`
//! fails the flow rather than being taken for the last page.

use asa_lib::link;
use asa_lib::model::{HasNextOut, LinkIn, OffsetIo};
use flowhost_sdk::{call, FlowError};

flowhost_sdk::flow!(run);

fn run(input: LinkIn) -> Result<OffsetIo, FlowError> {
    let next: HasNextOut = call("U11a", &input)?;
    if !next.has_next {
        return Ok(OffsetIo::default());
    }
    let offset = link::next_offset(&input.link)?.unwrap_or_default();
    Ok(OffsetIo { offset })
}
