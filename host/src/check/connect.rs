//! `flowhost check --connect`: asks ASA for a service token and for one page of audit events
//! with `count=1`, the two requests U00 and M10 send, and says what answered; for each team
//! (one row of `Environment Variables` each), one after the other, each with its own key pair.
//!
//! Decision: the requests are sent from the host with `reqwest`, not by running U00 and M10:
//! a run records history, caches the token and M10 would store the page; `check` writes
//! nothing. The requests are the flows' own (`POST {base}/v1/teams/{team}/service_token` with
//! `{"key_id", "key_secret"}` from the secrets the team's row names (`ASA_KEY_ID` and
//! `ASA_KEY_SECRET` by default), and only when U00 is granted them; `GET
//! {base}/v1/teams/{team}/auditsV2?count=1` with `Authorization: Bearer …`), one attempt each,
//! and only to a URL the flow that sends it is granted ([`Registry::check_url`]): `check`
//! never sends the key pair where U00 could not.
//!
//! The token is never shown: answers say that one came back, and every text from the server
//! is redacted of the key pair and the token before it is kept.

use std::time::Duration;

use serde::Serialize;

use super::{AsaSettings, ENV_TABLE, TEAM_COLUMN};
use crate::redact::Redactor;
use crate::registry::Registry;
use crate::secrets::Secrets;

/// How long one request may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(30);
/// The most of a response body read.
const MAX_BODY: usize = 1 << 20;
/// The most of a server's text quoted.
const MAX_QUOTE: usize = 200;

/// What ASA answered one team.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Answer {
    /// The team asked about (`""` while U02 has not set it).
    pub team: String,
    /// `team `acme`: ` before each line when there are several teams.
    #[serde(skip)]
    label: String,
    /// The service token request, when it was sent.
    pub token: Option<Step>,
    /// The one-page request, when it was sent.
    pub page: Option<Step>,
    /// One line per thing that went wrong (each becomes a finding).
    #[serde(skip)]
    pub problems: Vec<String>,
}

/// One request and its answer.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// `POST https://…/service_token`.
    pub request: String,
    /// The HTTP status (`None`: no answer).
    pub status: Option<u16>,
    /// What came back, in words (never the token).
    pub answer: String,
    /// How many events the page held (the page request, on a 200).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<usize>,
    /// `X-RateLimit-Remaining` as ASA sent it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_remaining: Option<String>,
}

impl Answer {
    /// One line per request sent: `connect: POST URL: HTTP 200, …`.
    pub fn lines(&self) -> Vec<String> {
        [&self.token, &self.page]
            .into_iter()
            .flatten()
            .map(|s| {
                let status = s
                    .status
                    .map_or_else(|| "no answer".to_string(), |c| format!("HTTP {c}"));
                let limit = s
                    .rate_limit_remaining
                    .as_ref()
                    .map(|r| format!(" (X-RateLimit-Remaining: {r})"))
                    .unwrap_or_default();
                format!(
                    "connect: {}{}: {status}, {}{limit}",
                    self.label, s.request, s.answer
                )
            })
            .collect()
    }
}

/// [`probe`] for each of `teams` (as [`super::check`] read them), one after the other; one
/// answer saying why nothing was sent when there are none.
pub async fn probe_teams(
    teams: &[AsaSettings],
    registry: Option<&Registry>,
    secrets: Option<&Secrets>,
) -> Vec<Answer> {
    let registry = match (teams.is_empty(), registry) {
        (false, Some(r)) => r,
        _ => {
            let mut answer = Answer::default();
            answer.problems.push(
                "connect: ASA not contacted: the ASA flows (M10, U00) or their settings did not \
                 load (see above)"
                    .into(),
            );
            return vec![answer];
        }
    };
    let mut answers = Vec::with_capacity(teams.len());
    for settings in teams {
        let label = if teams.len() > 1 {
            format!("team `{}`: ", settings.team)
        } else {
            String::new()
        };
        answers.push(probe(settings, registry, secrets, label).await);
    }
    answers
}

/// Sends the two requests for one team's `settings`, with the key pair from `secrets`, when
/// the flows in `registry` may reach the URLs and U00 may read the key pair.
async fn probe(
    settings: &AsaSettings,
    registry: &Registry,
    secrets: Option<&Secrets>,
    label: String,
) -> Answer {
    let mut answer = Answer {
        team: settings.team.clone(),
        label,
        ..Answer::default()
    };
    let not_contacted = |why: String| format!("connect: {}ASA not contacted: {why}", answer.label);
    if settings.team.is_empty() {
        answer.problems.push(not_contacted(format!(
            "{ENV_TABLE}.{TEAM_COLUMN} is not set; run U02 with {{\"asaTeam\": \"your-team\"}}"
        )));
        return answer;
    }
    let (id_name, secret_name) = (&settings.key_id_secret, &settings.key_secret_secret);
    if !super::ungranted_keys(registry, settings).is_empty() {
        let why = format!("U00 is not granted the secrets {id_name} and {secret_name} (see above)");
        answer.problems.push(not_contacted(why));
        return answer;
    }
    let key = |name: &str| secrets.and_then(|s| s.get(name));
    let (Some(key_id), Some(key_secret)) = (key(id_name), key(secret_name)) else {
        answer.problems.push(not_contacted(format!(
            "the secrets {id_name} and {secret_name} must both be set"
        )));
        return answer;
    };
    let (token_url, page_url) = match urls(&settings.base_url, &settings.team) {
        Ok(u) => u,
        Err(e) => {
            answer.problems.push(not_contacted(e));
            return answer;
        }
    };
    for (flow, url) in [("U00", &token_url), ("M10", &page_url)] {
        if let Err(e) = registry.check_url(flow, url.as_str()) {
            answer.problems.push(not_contacted(e.to_string()));
            return answer;
        }
    }
    let client = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            answer
                .problems
                .push(not_contacted(format!("no HTTP client: {e}")));
            return answer;
        }
    };
    let mut redact = Redaction::new(&[&key_id, &key_secret]);

    let body = serde_json::json!({ "key_id": key_id, "key_secret": key_secret });
    let sent = client
        .post(token_url.clone())
        .header("Accept", "application/json")
        .json(&body)
        .send();
    let (mut step, body) = exchange(format!("POST {token_url}"), sent, &redact).await;
    let token = match (&step.status, body) {
        (Some(200), Some(body)) => {
            match serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("bearer_token")?.as_str().map(str::to_string))
            {
                Some(t) if !t.is_empty() => Some(t),
                _ => {
                    // Never quote a 200's body: it may hold a token in another shape.
                    step.answer = "a body without a bearer_token".into();
                    answer.problems.push(format!(
                        "connect: POST {token_url}: HTTP 200 without a bearer_token in the body"
                    ));
                    None
                }
            }
        }
        _ => None,
    };
    if token.is_some() {
        step.answer = "a service token came back (not shown)".into();
    } else if step.status != Some(200) {
        answer.problems.push(format!(
            "connect: ASA refused the service token: POST {token_url}: {}",
            step_outcome(&step)
        ));
    }
    answer.token = Some(step);
    let Some(token) = token else {
        return answer;
    };
    redact = Redaction::new(&[&key_id, &key_secret, &token]);

    let sent = client
        .get(page_url.clone())
        .header("Accept", "application/json")
        .header("Authorization", format!("Bearer {token}"))
        .send();
    let (mut step, body) = exchange(format!("GET {page_url}"), sent, &redact).await;
    if step.status == Some(200) {
        let events = body
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| match v.get("list") {
                Some(serde_json::Value::Array(a)) => Some(a.len()),
                Some(serde_json::Value::Null) | None => Some(0),
                Some(_) => None,
            });
        match events {
            Some(n) => {
                step.events = Some(n);
                step.answer = match n {
                    0 => "a page with no events (none yet, or the team has none)".into(),
                    1 => "a page with 1 event".into(),
                    n => format!("a page with {n} events"),
                };
            }
            None => answer.problems.push(format!(
                "connect: GET {page_url}: HTTP 200 but the body is not an auditsV2 page"
            )),
        }
    } else {
        answer.problems.push(format!(
            "connect: ASA refused the page: GET {page_url}: {}",
            step_outcome(&step)
        ));
    }
    answer.page = Some(step);
    answer
}

fn step_outcome(step: &Step) -> String {
    match step.status {
        Some(c) => format!("HTTP {c}: {}", step.answer),
        None => step.answer.clone(),
    }
}

/// The service-token and one-event page URLs for `base` and `team`, as the flows build them.
fn urls(base: &str, team: &str) -> Result<(reqwest::Url, reqwest::Url), String> {
    let parsed = reqwest::Url::parse(base)
        .map_err(|e| format!("{ENV_TABLE}.asaBaseUrl `{base}` is not a URL: {e}"))?;
    let at = |last: &str| -> Result<reqwest::Url, String> {
        let mut u = parsed.clone();
        u.path_segments_mut()
            .map_err(|()| format!("{ENV_TABLE}.asaBaseUrl `{base}` cannot have a path"))?
            .pop_if_empty()
            .extend(["v1", "teams", team, last]);
        Ok(u)
    };
    let token = at("service_token")?;
    let mut page = at("auditsV2")?;
    page.query_pairs_mut().append_pair("count", "1");
    Ok((token, page))
}

/// Redacts the key pair and the token from what the server sent.
struct Redaction(Option<Redactor>);

impl Redaction {
    fn new(values: &[&str]) -> Redaction {
        Redaction(Redactor::new(values).ok())
    }

    fn clean(&self, text: &str) -> String {
        let one = crate::yaml::one_line(text);
        match &self.0 {
            Some(r) => r.redact(&one).into_owned(),
            // No redactor, no quote: never show a server's text unredacted.
            None => "(the answer is not shown)".into(),
        }
    }
}

/// Awaits `sent`, reads at most [`MAX_BODY`] of the body, and says what answered; returns
/// the body of a response (for the caller to parse) beside the step.
async fn exchange(
    request: String,
    sent: impl std::future::Future<Output = reqwest::Result<reqwest::Response>>,
    redact: &Redaction,
) -> (Step, Option<Vec<u8>>) {
    let mut step = Step {
        request,
        status: None,
        answer: String::new(),
        events: None,
        rate_limit_remaining: None,
    };
    let mut resp = match sent.await {
        Ok(r) => r,
        Err(e) => {
            step.answer = format!("no answer: {}", redact.clean(&error_chain(&e)));
            return (step, None);
        }
    };
    step.status = Some(resp.status().as_u16());
    step.rate_limit_remaining = resp
        .headers()
        .get("x-ratelimit-remaining")
        .and_then(|v| v.to_str().ok())
        .map(|v| redact.clean(v));
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                body.extend_from_slice(&c);
                if body.len() > MAX_BODY {
                    body.truncate(MAX_BODY);
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                step.answer = format!("the answer broke off: {}", redact.clean(&error_chain(&e)));
                return (step, None);
            }
        }
    }
    step.answer = describe_error(&body, redact);
    (step, Some(body))
}

/// ASA's error (`{"type", "message"}`) or the start of the body, redacted, one line.
fn describe_error(body: &[u8], redact: &Redaction) -> String {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |k: &str| {
        json.as_ref()
            .and_then(|v| v.get(k)?.as_str().map(str::to_string))
    };
    let text = match (field("type"), field("message")) {
        (Some(t), Some(m)) => format!("{t}: {m}"),
        (Some(t), None) => t,
        (None, Some(m)) => m,
        (None, None) => {
            let s = String::from_utf8_lossy(body);
            let s: String = s.chars().take(MAX_QUOTE).collect();
            if s.trim().is_empty() {
                "an empty body".into()
            } else {
                s
            }
        }
    };
    redact.clean(&text)
}

/// An error and its causes, `: `-joined (reqwest's own text leaves the cause out).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
