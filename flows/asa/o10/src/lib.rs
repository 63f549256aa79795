//! O10 — Offload Audit Events to Object Store: moves the oldest Audit Events into one
//! gzip-compressed JSON Lines object of a blob store and deletes them from the table.
//!
//! The template warns that a Workflows table is no place to keep audit events: they must go to
//! long-term storage (or a SIEM, see O20). Input `{}` (scheduled every 15 minutes) or any of
//! the overrides `{"store": "archive", "prefix": "asa/audit-events/", "batch": 5000}`; output
//! `{"offloaded": n, "object": "<object name>", "more": bool}` (`object` is `""` when there
//! was nothing to offload).
//!
//! Steps:
//! 1. settings = U01: `offloadStore`, `offloadPrefix`, `offloadBatch` (the input overrides
//!    them, checked the same way);
//! 2. the batch: up to `batch` rows of Audit Events, oldest first (insertion order), and no
//!    more than U14 says may leave (M10 polls the page at the checkpoint again: its events
//!    stay until the checkpoint moves past them, or they would be stored and offloaded twice), read a
//!    page of 1000 at a time; each page is appended to the body (gzip of one JSON object per
//!    row, as stored: `raw_event` stays text) and its rows are deleted by id. (One `find` is
//!    capped at 10 000 rows and has no offset, so the next page is the one after the deleted
//!    rows; deleting as we go is safe because the deletes only commit with the run, below.)
//!    No rows: U20(0, "Offload: nothing to do") and stop;
//! 3. the object name, from the batch's FIRST row only:
//!    `{prefix}{YYYY/MM/DD}/{timestamp with ':' → '-'}_{id, URL-safe}.jsonl.gz`, e.g.
//!    `asa/audit-events/2024/03/05/2024-03-05T01-02-03.123Z_ag801Wtj58WV8rIF2-HDkw.jsonl.gz`
//!    (`asa_lib::offload::object_key`);
//! 4. blobs::put(store, name, body);
//! 5. U20(n, "Offloaded to {store}:{name}"); if the batch was full and rows remain, ask the
//!    host to run O10 again (with the same input) as soon as this run has committed.
//!
//! Crash safety (at least once; repeats collapse): the run is one transaction, so its deletes
//! (and the Execution Log row) commit only when it returns `Ok`, after the put succeeded. A
//! failure or crash at any earlier point rolls them back: every row is still in the table, and
//! the next run reads the same rows again, oldest first, starting from the same first row, so
//! it writes an object of the same name and overwrites the copy written before (with the same
//! rows, or more if the earlier batch was not full and M10 has added rows since; rows a smaller
//! batch leaves out stay in the table for the next object). So a crash between the put and the
//! commit leaves an object that the next run replaces, never a row that is gone from the table
//! without being in an object. O10 is in the exclusive group `asa` with M10 (and U02–U04,
//! O20): no rows are added or removed while it runs, which the template says the offload and
//! M10 must never do at the same time.

use asa_lib::model::{Empty, Env, ObjectOffloadIn, ObjectOffloadOut, AUDIT_EVENTS};
use asa_lib::offload::{self, JsonlGz, ObjectTarget, Row, PAGE};
use flowhost_sdk::{blobs, call, log, schedule, tables, Context, FlowError};

use asa_steps as steps;

flowhost_sdk::flow!(run);

fn run(input: ObjectOffloadIn) -> Result<ObjectOffloadOut, FlowError> {
    let env: Env = call("U01", &Empty {})?;
    let mut target = input.target(&env)?;
    let offloadable = steps::offloadable_count()?;
    target.batch = target.batch.min(u32::try_from(offloadable).unwrap_or(u32::MAX));

    let mut body = JsonlGz::new();
    let taken = if target.batch == 0 { None } else { take_batch(&target, &mut body)? };
    let Some(object) = taken else {
        steps::log_execution(0, "Offload: nothing to do")?;
        return Ok(ObjectOffloadOut::default());
    };
    let n = body.rows();
    let bytes = body.finish()?;
    blobs::put(&target.store, &object, &bytes)
        .context(format!("put {}:{object} ({n} rows)", target.store))?;

    let more = offloadable > n;
    steps::log_execution(n, &format!("Offloaded to {}:{object}", target.store))?;
    log::info(&format!(
        "{n} events ({} bytes gzip) offloaded to {}:{object}{}",
        bytes.len(),
        target.store,
        if more { "; more to do" } else { "" }
    ));
    if more {
        schedule::request_run("O10", &serde_json::to_string(&input)?, 0)?;
    }
    Ok(ObjectOffloadOut { offloaded: n, object, more })
}

/// Step 2: appends up to `target.batch` rows, oldest first, to `body` and deletes them (in
/// this run's transaction). Returns the object name from the first row, `None` if there were
/// no rows.
fn take_batch(target: &ObjectTarget, body: &mut JsonlGz) -> Result<Option<String>, FlowError> {
    let mut object = None;
    while body.rows() < u64::from(target.batch) {
        let want = PAGE.min(target.batch - body.rows() as u32);
        let page: Vec<Row> = tables::find(AUDIT_EVENTS, &(), Some(want))?;
        let Some(first) = page.first() else { break };
        object.get_or_insert_with(|| offload::object_key(&target.prefix, first));
        for row in &page {
            body.push(row)?;
            steps::delete_event(row)?;
        }
        if page.len() < want as usize {
            break;
        }
    }
    Ok(object)
}
