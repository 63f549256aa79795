//! T00 — Test Read: one `auditsV2` page of one event, shown and not stored.
//!
//! Input `{}` (the default team) or `{"team": "acme"}`; output `{"url", "status", "events": [...], "nextOffset", "rateLimitRemaining",
//! "error"}`: the URL read, the HTTP status, the page's events as the server sent them, the
//! offset of the next page (`""` when there is none), the `X-RateLimit-Remaining` header
//! (`null` when absent) and, when the status is not 200, ASA's error text (the run still
//! succeeds: what the server answered is the result).
//!
//! Steps (the template's T00 test flow): `auth` = U00, `env` = U01, `checkpoint` = U10;
//! `GET {asaBaseUrl}/v1/teams/{asaTeam}/auditsV2?count=1[&offset={LastOffset}]` (on 401 a fresh
//! token, U00 `{"refresh": true}`, and one more try); the next offset from the `link` header
//! (U11). The flow is granted no table, so it cannot store anything; the token stays in U00's
//! in-memory cache as for M10.

use asa_lib::api::{self, Page};
use asa_lib::model::{AuthHeader, AuthIn, Checkpoint, Env, LinkIn, OffsetIo};
use asa_lib::teams::TeamIn;
use asa_lib::url;
use flowhost_sdk::http::{self, Response};
use flowhost_sdk::{call, fail, log, Error, FlowError};
use serde::Serialize;
use serde_json::value::RawValue;

flowhost_sdk::flow!(run);

/// What T00 saw.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TestReadOut {
    url: String,
    status: u16,
    events: Vec<Box<RawValue>>,
    next_offset: String,
    rate_limit_remaining: Option<u64>,
    error: String,
}

fn run(input: TeamIn) -> Result<TestReadOut, FlowError> {
    let mut auth: AuthHeader = call("U00", &AuthIn { refresh: false, team: input.team.clone() })?;
    let env: Env = call("U01", &input)?;
    let checkpoint: Checkpoint = call("U10", &TeamIn::of(&env.asa_team))?;
    let page_url = url::audits_url(&env.asa_base_url, &env.asa_team, 1, &checkpoint.last_offset);

    let mut resp = get(&page_url, &auth)?;
    if resp.status == 401 {
        log::info("auditsV2 answered 401: renewing the service token and trying again");
        auth = call("U00", &AuthIn { refresh: true, team: Some(env.asa_team.clone()) })?;
        resp = get(&page_url, &auth)?;
    }
    let rate_limit_remaining =
        resp.header("x-ratelimit-remaining").and_then(|v| v.trim().parse::<u64>().ok());
    if resp.status != 200 {
        return Ok(TestReadOut {
            url: page_url,
            status: resp.status,
            events: Vec::new(),
            next_offset: String::new(),
            rate_limit_remaining,
            error: api::error_text(resp.status, &resp.body),
        });
    }
    let page: Page = match resp.json() {
        Ok(page) => page,
        Err(e) => fail!("GET {page_url}: the response is not an auditsV2 page: {}", e.message()),
    };
    let link = resp.header_all("link").collect::<Vec<_>>().join(", ");
    let next: OffsetIo = call("U11", &LinkIn { link })?;
    Ok(TestReadOut {
        url: page_url,
        status: resp.status,
        events: page.list.into_iter().map(RawValue::to_owned).collect(),
        next_offset: next.offset,
        rate_limit_remaining,
        error: String::new(),
    })
}

fn get(page_url: &str, auth: &AuthHeader) -> Result<Response, Error> {
    http::get(page_url)
        .header("Authorization", &auth.authorization)
        .header("Accept", "application/json")
        .retry(5, 500, 10_000)
        .send()
}
