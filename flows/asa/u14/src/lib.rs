//! U14 — Get Offloadable Count: how many of the oldest Audit Events an offload flow may move
//! out of the table now.
//!
//! Input `{}`; output `{"offloadable": n, "stored": total, "pending": LastCount}`.
//!
//! Not in the template (which left offloading as an exercise). M10 polls the page at the
//! checkpoint again and again and stores whichever of its events S31 does not find in Audit
//! Events; an event of that page that was offloaded would be stored a second time, and then
//! offloaded twice. Those events are the newest `LastCount` rows (M10 sets `LastCount` to the
//! number of stored events of that page, see `asa_lib::main_flow`), so the offload flows (O10,
//! O20) leave them in the table until the checkpoint moves past them.

use asa_lib::model::{Checkpoint, Empty, OffloadableOut, AUDIT_EVENTS};
use flowhost_sdk::{call, tables, FlowError};

flowhost_sdk::flow!(run);

fn run(_: Empty) -> Result<OffloadableOut, FlowError> {
    let checkpoint: Checkpoint = call("U10", &Empty {})?;
    let stored = tables::count(AUDIT_EVENTS, &())?;
    let pending = checkpoint.last_count.min(stored);
    Ok(OffloadableOut { offloadable: stored - pending, stored, pending })
}
