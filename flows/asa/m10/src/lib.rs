//! M10 — Recurring Audit Collection: pulls the next page of ASA audit events into Audit Events.
//!
//! Input `{}` (scheduled every 5 minutes) or `{"team": "acme"}`; output
//! `{"events": n, "written": w, "note": "<Execution Log note>", "offset": "<checkpoint offset>",
//! "rejected": r}`.
//!
//! Several ASA teams (`asa_lib::teams`): `{"team": t}` collects team t (its settings, key
//! pair, checkpoint row and Execution Log rows; its catch-up run is `{"team": t}` too). `{}`
//! asks U05 for the teams: with one (or none) it collects the default team in this run exactly
//! as before; with several it asks the host for one run per team
//! (`schedule::request_run("M10", {"team": t})`) and returns `{"teams": [...]}`. Each event
//! goes to S30/S31 in the envelope `{"team": t, "batch": b, "event": <the event's text as ASA
//! sent it>}` (the event copied as it is, never re-encoded), so that Audit Events' `team`
//! column is filled; `b` names this run's page, and S30 keeps the pure helpers' answers for it
//! (`asa_lib::answers`).
//!
//! Steps (asa-api.md §8.3):
//! 1. `auth` = U00, `env` = U01, `checkpoint` = U10;
//! 2. `GET {asaBaseUrl}/v1/teams/{asaTeam}/auditsV2?count={searchCount}[&offset={LastOffset}]`
//!    with the bearer header (the host retries 5 times, 500 ms to 10 s, and honours 429's
//!    rate-limit headers); on 401 a fresh token (U00 `{"refresh": true}`) and one more try;
//!    any other non-200 fails the run with the status and ASA's `message`, except a lost
//!    offset (below);
//! 3. the page's `list` and `related_objects` (missing or `null` count as empty);
//!    `offset` = U11(the `link` header; several `link` headers are joined with `", "`);
//! 4. the template's three branches (`asa_lib::main_flow`):
//!    - a next page: U12(offset), U13(0), S20(related objects), S30 for each event
//!      (concurrency 10; S31 if part of the page was stored as a last page before),
//!      U20(written, "Full page"), then ask the host to run M10 again as soon as this run has
//!      committed, to drain a backlog without waiting for the next tick; right after U13 it
//!      also asks the host to prefetch the next page (`http.prefetch`), the very request that
//!      run will send, so the page is on its way while this one is stored;
//!    - the last page, with as many events as are stored from it: U20(0, "No new events");
//!    - the last page with new events: U13(n), S20, S31 for each event (skips stored ids),
//!      U20(written, "First part page" or "Subsequent part page");
//!
//!    in both branches that store events, each event S30/S31 refuse (`{"stored": false,
//!    "rejected": reason}`: not an object, no string `id`) goes whole into Rejected Events at
//!    key `<offset the page was fetched with>#<index in page>` (a key already there is left as
//!    it is), the rest of the page is stored and the offset moves as usual; U20 gets how many
//!    were newly rejected (`eventsrejected`), and so does the output (`rejected`). See
//!    `asa_lib::reject`. (Before, one such event failed every run of its page, for ever.)
//!
//!    `LastCount` counts the events of the page at `LastOffset` that are handled (stored or
//!    rejected), not the size of the last page fetched (see `asa_lib::main_flow`): the
//!    template's rule lost a last page exactly as long as the full page before it.
//!    `eventswritten` is what S30/S31 actually stored.
//!
//! Lost offset (`fetch_checkpoint_page`, `asa_lib::lost_offset`): a 400 to a request with the
//! checkpoint's offset means ASA no longer knows it (its event aged out). With `onLostOffset`
//! `fail` (the default) the run fails with one line naming the offset, U03 and the setting,
//! and the Execution Log gets a row saying the same (the table keeps a failed run's inserts);
//! the checkpoint stays as it was, so every run fails the same way until U03 or `restart`.
//! With `restart` the Execution Log says so, the checkpoint is reset (U12 `""`, U13 0) and
//! the same run collects the oldest page; S30's upsert and S31's check keep Audit Events free
//! of duplicates (events that O10 has offloaded and deleted are stored, and offloaded, again).
//!
//! Atomicity: any failed child fails the whole run, and the host commits a top-level run's
//! table writes (its children's included) all together or not at all. So writing the new
//! offset before the events (as the template does) is safe here: the offset and the events it
//! covers move together, and a crash or error at any point neither loses nor doubles a page.
//! (In Okta Workflows, a failure between U12 and the events lost that page.)
//!
//! Fixes over the template: the base URL is a setting (U01), not hard-coded; the `Link` header
//! is parsed per RFC 8288 and the offset percent-decoded (and encoded again in the URL); a 401
//! renews the token; HTTP errors fail the run instead of writing an empty page; the catch-up
//! run is requested only when the offset moved, so a server that repeats its `next` link
//! cannot make M10 loop.

use asa_lib::api::{self, Page};
use asa_lib::lost_offset::{self, OnLostOffset};
use asa_lib::main_flow::{self, Branch};
use asa_lib::model::{
    AuthHeader, AuthIn, Checkpoint, Empty, Env, LinkIn, MainOut, OffsetIo, RelatedObjectsText,
    StoredCountOut, StoredFlags,
};
use asa_lib::reject::{self, REJECTED_EVENTS};
use asa_lib::teams::{self, TeamCount, TeamIn, TeamOffset, TeamsOut};
use asa_lib::url;
use flowhost_sdk::http::{self, Response};
use flowhost_sdk::{call, fail, for_each_all_raw, log, schedule, tables, Error, FlowError};
use serde_json::value::RawValue;
use serde_json::Value;

use asa_steps as steps;

flowhost_sdk::flow!(run);

/// Events stored at once by S30/S31.
const EVENT_CONCURRENCY: u32 = 10;

/// M10's output: a collection, or the teams it requested one run each for.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Out {
    Collected(MainOut),
    Requested(TeamsOut),
}

fn run(input: TeamIn) -> Result<Out, FlowError> {
    if input.team.is_none() {
        let all: TeamsOut = call("U05", &Empty {})?;
        if all.teams.len() > 1 {
            for team in &all.teams {
                schedule::request_run("M10", &serde_json::to_string(&TeamIn::of(team))?, 0)?;
            }
            log::info(&format!("{} ASA teams: one run requested for each", all.teams.len()));
            return Ok(Out::Requested(all));
        }
    }
    collect(input).map(Out::Collected)
}

/// One team's collection (`input.team` absent: the default team).
fn collect(input: TeamIn) -> Result<MainOut, FlowError> {
    let auth_in = AuthIn { refresh: false, team: input.team.clone() };
    let mut auth: AuthHeader = call("U00", &auth_in)?;
    let env: Env = call("U01", &input)?;
    let team = TeamIn::of(&env.asa_team);
    let mut checkpoint: Checkpoint = call("U10", &team)?;

    let (page_url, resp) = fetch_checkpoint_page(&env, &mut checkpoint, &mut auth)?;
    let page: Page = match resp.json() {
        Ok(page) => page,
        // A cut-off or non-JSON 200 (a proxy's error page): say which request, not "input".
        Err(e) => fail!("GET {page_url}: the response is not an auditsV2 page: {}", e.message()),
    };
    let n = page.list.len() as u64;
    let link = resp.header_all("link").collect::<Vec<_>>().join(", ");
    let next: OffsetIo = call("U11", &LinkIn { link })?;

    let branch = main_flow::decide(&next.offset, n, checkpoint.last_count);
    let stored = match branch {
        Branch::NoNewEvents => Stored::default(),
        Branch::FullPage => {
            write_offset(&env.asa_team, &next.offset)?;
            write_count(&env.asa_team, branch.next_count(n, checkpoint.last_count))?;
            if next.offset != checkpoint.last_offset {
                prefetch_next_page(&env, &next.offset, &auth)?;
            }
            store_related_objects(page.related_objects)?;
            // Part of this page may be stored already (it was the last page before).
            let flow = if checkpoint.last_count == 0 { "S30" } else { "S31" };
            store_events(flow, &env.asa_team, &page.list, &checkpoint.last_offset)?
        }
        Branch::PartPage { .. } => {
            write_count(&env.asa_team, branch.next_count(n, checkpoint.last_count))?;
            store_related_objects(page.related_objects)?;
            store_events("S31", &env.asa_team, &page.list, &checkpoint.last_offset)?
        }
    };
    let Stored { written, rejected } = stored;
    let note = branch.note();
    steps::log_collection(&env.asa_team, written, rejected, note)?;

    let offset =
        if branch == Branch::FullPage { next.offset } else { checkpoint.last_offset.clone() };
    log::info(&format!(
        "{n} events, {written} written, {rejected} rejected ({note}); offset {offset:?}"
    ));
    if branch == Branch::FullPage && offset != checkpoint.last_offset {
        // The same input: `{}` with one team (as before teams existed), else this team.
        schedule::request_run("M10", &serde_json::to_string(&input)?, 0)?;
    }
    Ok(MainOut { events: n, written, note: note.to_string(), offset, rejected })
}

/// GETs the page at the checkpoint's offset. An offset auditsV2 no longer knows is handled as
/// `onLostOffset` says: `fail` logs and fails; `restart` logs, resets `checkpoint` (U12, U13)
/// and GETs the oldest page instead. Returns the URL of the page fetched and the response.
fn fetch_checkpoint_page(
    env: &Env,
    checkpoint: &mut Checkpoint,
    auth: &mut AuthHeader,
) -> Result<(String, Response), FlowError> {
    let count = env.count()?;
    let page_url =
        url::audits_url(&env.asa_base_url, &env.asa_team, count, &checkpoint.last_offset);
    let resp = send_page(&page_url, auth, &env.asa_team)?;
    let lost = checkpoint.last_offset.clone();
    if !lost_offset::is_lost_offset(resp.status, &resp.body, &lost) {
        let resp = ok_page(&page_url, resp)?;
        return Ok((page_url, resp));
    }
    match env.lost_offset_policy()? {
        OnLostOffset::Fail => {
            let message =
                lost_offset::fail_message(&lost, &api::error_text(resp.status, &resp.body));
            steps::log_team_execution(&env.asa_team, 0, &message)?;
            fail!("{message}")
        }
        OnLostOffset::Restart => {
            let note = lost_offset::restart_note(&lost);
            log::warn(&note);
            steps::log_team_execution(&env.asa_team, 0, &note)?;
            write_offset(&env.asa_team, "")?;
            write_count(&env.asa_team, 0)?;
            *checkpoint = Checkpoint::default();
            let page_url = url::audits_url(&env.asa_base_url, &env.asa_team, count, "");
            let resp = fetch_page(&page_url, auth, &env.asa_team)?;
            Ok((page_url, resp))
        }
    }
}

/// GETs the page; on 401 renews the token (U00 with refresh) and tries once more; any other
/// non-200 fails.
fn fetch_page(page_url: &str, auth: &mut AuthHeader, team: &str) -> Result<Response, FlowError> {
    let resp = send_page(page_url, auth, team)?;
    ok_page(page_url, resp)
}

/// GETs the page; on 401 renews the token (U00 with refresh) and tries once more.
fn send_page(page_url: &str, auth: &mut AuthHeader, team: &str) -> Result<Response, FlowError> {
    let mut resp = get_page(page_url, auth)?;
    if resp.status == 401 {
        log::info("auditsV2 answered 401: renewing the service token and trying again");
        *auth = call("U00", &AuthIn { refresh: true, team: Some(team.to_string()) })?;
        resp = get_page(page_url, auth)?;
    }
    Ok(resp)
}

/// The response if it is a 200; otherwise the run fails with the status and ASA's `message`.
fn ok_page(page_url: &str, resp: Response) -> Result<Response, FlowError> {
    if resp.status != 200 {
        fail!("GET {page_url} failed: {}", api::error_text(resp.status, &resp.body));
    }
    Ok(resp)
}

fn get_page(page_url: &str, auth: &AuthHeader) -> Result<Response, Error> {
    page_request(page_url, auth).send()
}

fn page_request(page_url: &str, auth: &AuthHeader) -> http::Request {
    http::get(page_url)
        .header("Authorization", &auth.authorization)
        .header("Accept", "application/json")
        .retry(5, 500, 10_000)
}

/// Starts the GET of the page after this one, which the run this one requests will send (the
/// same URL and token): it comes over the network while this run stores its page.
fn prefetch_next_page(env: &Env, offset: &str, auth: &AuthHeader) -> Result<(), FlowError> {
    let next_url = url::audits_url(&env.asa_base_url, &env.asa_team, env.count()?, offset);
    page_request(&next_url, auth).prefetch()?;
    Ok(())
}

/// U12, for `team`.
fn write_offset(team: &str, offset: &str) -> Result<(), Error> {
    let input = TeamOffset { offset: offset.to_string(), team: Some(team.to_string()) };
    let _: Value = call("U12", &input)?;
    Ok(())
}

/// U13, for `team`.
fn write_count(team: &str, count: u64) -> Result<(), Error> {
    let _: Value = call("U13", &TeamCount { count, team: Some(team.to_string()) })?;
    Ok(())
}

/// S20, with the page's `related_objects` as the server sent them.
fn store_related_objects(related_objects: Option<&RawValue>) -> Result<(), Error> {
    let _: StoredCountOut = call("S20", &RelatedObjectsText { related_objects })?;
    Ok(())
}

/// What [`store_events`] did with a page.
#[derive(Default)]
struct Stored {
    /// Events S30/S31 stored.
    written: u64,
    /// Events newly put into Rejected Events.
    rejected: u64,
}

/// S30 or S31 for each event (its JSON text as the server sent it, in `team`'s envelope), then
/// the events they refused into Rejected Events; any failure fails the run (a refused event is
/// no failure). `page_offset` is the offset the page was fetched with.
fn store_events(
    flow: &str,
    team: &str,
    events: &[&RawValue],
    page_offset: &str,
) -> Result<Stored, Error> {
    // The batch: this run and this page (a run's clock reading with the page's offset), so S30
    // keeps the helpers' answers for this page only.
    let batch = format!("{} {page_offset}", schedule::now());
    let envelopes = teams::Envelopes::new(team, &batch).wrap_all(events);
    let results: Vec<StoredFlags> = for_each_all_raw(flow, &envelopes.get(), EVENT_CONCURRENCY)?;
    let written = results.iter().filter(|r| r.stored).count() as u64;
    let rejected = quarantine_rejected(team, page_offset, events, &results)?;
    Ok(Stored { written, rejected })
}

/// Rejected Events: each event S30/S31 refused, whole, at `<team>/<page offset>#<index>`. A
/// key that is there already (the last page is fetched again on every run) is left as it is
/// and not counted. Returns how many rows are new.
fn quarantine_rejected(
    team: &str,
    page_offset: &str,
    events: &[&RawValue],
    results: &[StoredFlags],
) -> Result<u64, Error> {
    let mut new = 0;
    for row in reject::rejected_rows(team, page_offset, events, results, &schedule::now()) {
        if tables::get::<Value>(REJECTED_EVENTS, &row.id)?.is_some() {
            continue;
        }
        tables::insert(REJECTED_EVENTS, &row)?;
        log::warn(&format!(
            "event {} of the page at offset {:?} rejected into {REJECTED_EVENTS}: {}",
            row.page_index, row.page_offset, row.reason
        ));
        new += 1;
    }
    Ok(new)
}
