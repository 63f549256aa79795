//! O20 — Offload Audit Events to Splunk HEC: sends the oldest Audit Events to a Splunk HTTP
//! Event Collector and deletes them from the table once HEC has acknowledged them.
//!
//! The template warns that a Workflows table is no place to keep audit events: they must go to
//! a SIEM (or long-term storage, see O10). Input `{}` (scheduled every 15 minutes) or
//! `{"batch": n}` (1..=10000, default 1000 events per request); output
//! `{"offloaded": n, "more": bool}`.
//!
//! Steps:
//! 1. settings = U01: `hecUrl` (required: the error names the setting and how to set it with
//!    U02) and `asaTeam` (each event's `host`); the token = secret `HEC_TOKEN`;
//! 2. the batch: up to `batch` rows of Audit Events, oldest first (insertion order); none:
//!    U20(0, "Offload: nothing to do") and stop;
//! 3. `POST {hecUrl}` with `Authorization: Splunk <token>`, `Content-Type: application/json`
//!    and one HEC event per row, newline-separated (`asa_lib::offload::hec_event`):
//!    `{"time": <epoch seconds.millis of the row's timestamp>, "host": <asaTeam>,
//!    "source": "okta:asa", "sourcetype": "okta:asa:audit", "event": {"id": <event id>,
//!    <the row's other columns>, "raw": <raw_event as JSON>}}`; the host retries connect
//!    errors and 5xx (4 attempts, 500 ms to 8 s) and honours 429's `Retry-After`;
//! 4. only on HTTP 200 with HEC's `{"text": "Success", "code": 0}`: delete the rows by id;
//!    any other answer fails the run with the status and the body's text;
//! 5. U20(n, "Offloaded to Splunk HEC"); if the batch was full and rows remain, ask the host
//!    to run O20 again (with the same input) as soon as this run has committed.
//!
//! Crash safety (at least once; repeats collapse): rows are deleted only after HEC
//! acknowledged them, and the deletes commit only when the run returns `Ok`. A failed request,
//! an answer other than HEC's success, or a crash at any point (even after HEC acknowledged)
//! leaves every row in the table, and the next run sends the same events again. A repeat
//! carries the same event `id`, so duplicates can be collapsed in Splunk (e.g. `dedup id`).
//! HEC's 200 means it accepted the events: O20 does not poll HEC's indexer acknowledgement
//! (`/services/collector/ack`); a token that requires it also needs `?channel=<guid>` in
//! `hecUrl`, else HEC answers 400 and the run fails with that. O20 is in the exclusive group `asa` with
//! M10 (and U02–U04, O10), so no rows are added or removed while it runs.

use asa_lib::model::{Empty, Env, HecOffloadIn, HecOffloadOut, AUDIT_EVENTS};
use asa_lib::offload::{self, Row, HEC_TOKEN};
use flowhost_sdk::{call, http, log, schedule, secrets, tables, Context, FlowError};

use asa_steps as steps;

flowhost_sdk::flow!(run);

fn run(input: HecOffloadIn) -> Result<HecOffloadOut, FlowError> {
    let env: Env = call("U01", &Empty {})?;
    let url = offload::hec_url(&env)?;
    let token = secrets::get(HEC_TOKEN).context("the Splunk HEC token")?;
    let offloadable = steps::offloadable_count()?;
    let batch = input.batch()?.min(u32::try_from(offloadable).unwrap_or(u32::MAX));

    let rows: Vec<Row> =
        if batch == 0 { Vec::new() } else { tables::find(AUDIT_EVENTS, &(), Some(batch))? };
    if rows.is_empty() {
        steps::log_execution(0, "Offload: nothing to do")?;
        return Ok(HecOffloadOut::default());
    }
    send_events(url, &token, offload::hec_body(&rows, &env.asa_team))?;
    for row in &rows {
        steps::delete_event(row)?;
    }

    let n = rows.len() as u64;
    let more = offloadable > n;
    steps::log_execution(n, "Offloaded to Splunk HEC")?;
    log::info(&format!("{n} events sent to Splunk HEC{}", if more { "; more to do" } else { "" }));
    if more {
        schedule::request_run("O20", &serde_json::to_string(&input)?, 0)?;
    }
    Ok(HecOffloadOut { offloaded: n, more })
}

/// Step 3: POSTs the events; `Ok` only when HEC acknowledged them.
fn send_events(url: &str, token: &str, body: Vec<u8>) -> Result<(), FlowError> {
    let resp = http::post(url)
        .header("Authorization", &format!("Splunk {token}"))
        .header("Content-Type", "application/json")
        .body(body)
        .retry(4, 500, 8_000)
        .send()
        .context(format!("POST {url}"))?;
    offload::hec_acknowledged(resp.status, &resp.body).map_err(|e| {
        FlowError::new(format!("POST {url}: Splunk HEC did not accept the events: {e}"))
    })
}
