//! U00 — Get Service Token: the `Authorization` header for the ASA API.
//!
//! Input `{}` or `{"refresh": true}`, and optionally `"team": "acme"` (absent = the default
//! team); output `{"Authorization": "Bearer <token>"}`.
//!
//! Steps: read the team's settings (U01); unless `refresh`, give back the token cached for this
//! base URL and team; otherwise `POST {asaBaseUrl}/v1/teams/{asaTeam}/service_token` with
//! `{key_id, key_secret}` from the secrets the team's row names (`keyIdSecret`,
//! `keySecretSecret`; by default `ASA_KEY_ID` and `ASA_KEY_SECRET`: another team's secrets must
//! be granted to U00 in the config's `grants:`) (the host retries: 4 attempts, 500 ms to 8 s),
//! and cache the token until 60 s before its `expires_at`.
//!
//! Fixes over the template, which hard-coded the key pair in Compose cards, fetched a new
//! token on every run and had no error handling: the key pair comes from secrets; the token is
//! cached in the host's private in-memory cache (never a table or a log); a non-200 answer
//! fails with the status and ASA's error `message` (never the secret).

use asa_lib::api::{self, ServiceToken};
use asa_lib::model::{AuthHeader, AuthIn, Env};
use asa_lib::teams::TeamIn;
use asa_lib::{time, url};
use flowhost_sdk::{cache, call, fail, http, log, schedule, secrets, FlowError};

flowhost_sdk::flow!(run);

/// A cached token is renewed this long before it expires.
const RENEW_BEFORE_MS: i64 = 60_000;

fn run(input: AuthIn) -> Result<AuthHeader, FlowError> {
    let env: Env = call("U01", &TeamIn { team: input.team.clone() })?;
    let token_url = url::service_token_url(&env.asa_base_url, &env.asa_team);
    let cache_key = token_url.as_str();
    if input.refresh {
        cache::remove(cache_key);
    } else if let Some(token) = cache::get(cache_key) {
        return Ok(bearer(&token));
    }
    let token = request_token(&token_url, &env)?;
    remember(cache_key, &token);
    Ok(bearer(&token.bearer_token))
}

/// `POST …/service_token` with the key pair from secrets.
fn request_token(token_url: &str, env: &Env) -> Result<ServiceToken, FlowError> {
    let team = &env.asa_team;
    let key_id = secrets::get(&env.key_id_secret)?;
    let key_secret = secrets::get(&env.key_secret_secret)?;
    let resp = http::post(token_url)
        .header("Accept", "application/json")
        .json(&serde_json::json!({ "key_id": key_id, "key_secret": key_secret }))
        .retry(4, 500, 8_000)
        .send()?;
    if resp.status != 200 {
        let why = api::redact(&api::error_text(resp.status, &resp.body), &[&key_id, &key_secret]);
        fail!("ASA service token for team {team} refused: {why}");
    }
    Ok(resp.json()?)
}

/// Caches the token until [`RENEW_BEFORE_MS`] before `expires_at` (not at all without one).
fn remember(cache_key: &str, token: &ServiceToken) {
    let expires = token.expires_at.as_deref().and_then(time::epoch_ms);
    match (expires, time::epoch_ms(&schedule::now())) {
        (Some(expires), Some(now)) if expires - now > RENEW_BEFORE_MS => {
            cache::set(cache_key, &token.bearer_token, (expires - now - RENEW_BEFORE_MS) as u64)
        }
        _ => log::debug("service token not cached: no usable expires_at"),
    }
}

fn bearer(token: &str) -> AuthHeader {
    AuthHeader { authorization: format!("Bearer {token}") }
}
