//! End-to-end tests of the simulator over loopback HTTP.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use asa_sim::{Fault, FaultTarget, LinkStyle, Sim, SimConfig};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::Value;

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii header").to_string())
    }
    /// (rel, url) pairs of the Link header, in order.
    fn links(&self) -> Vec<(String, String)> {
        let Some(h) = self.header("link") else {
            return Vec::new();
        };
        h.split(", ")
            .map(|part| {
                let (url, rel) = part.split_once(">; rel=\"").expect("link entry shape");
                let url = url.strip_prefix('<').expect("starts with <");
                let rel = rel.strip_suffix('"').expect("ends with quote");
                (rel.to_string(), url.to_string())
            })
            .collect()
    }
    fn link(&self, rel: &str) -> Option<String> {
        self.links()
            .into_iter()
            .find(|(r, _)| r == rel)
            .map(|(_, u)| u)
    }
    fn ids(&self) -> Vec<String> {
        self.json()["list"]
            .as_array()
            .expect("list array")
            .iter()
            .map(|e| e["id"].as_str().expect("id").to_string())
            .collect()
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    team: String,
}

impl Client {
    fn new(sim: &Sim) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: sim.base_url(),
            team: sim.team().to_string(),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let r = req.send().await.expect("request");
        let status = r.status();
        let headers = r.headers().clone();
        let body = r.bytes().await.expect("body").to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    async fn token_raw(&self, team: &str, body: Value) -> Resp {
        let url = format!("{}/v1/teams/{team}/service_token", self.base);
        self.send(self.http.post(url).json(&body)).await
    }

    async fn token(&self, sim: &Sim) -> String {
        let r = self
            .token_raw(
                &self.team,
                serde_json::json!({"key_id": sim.key_id(), "key_secret": sim.key_secret()}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()["bearer_token"]
            .as_str()
            .expect("token")
            .to_string()
    }

    fn audits_url(&self, query: &str) -> String {
        format!("{}/v1/teams/{}/auditsV2{query}", self.base, self.team)
    }

    async fn get(&self, url: &str, token: &str) -> Resp {
        let url = if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            url.to_string()
        };
        self.send(self.http.get(url).bearer_auth(token)).await
    }

    async fn audits(&self, query: &str, token: &str) -> Resp {
        self.get(&self.audits_url(query), token).await
    }

    /// Follows `rel` links from `first_url` until absent; returns all ids.
    async fn walk(&self, first_url: &str, token: &str, rel: &str) -> (Vec<String>, usize) {
        let mut ids = Vec::new();
        let mut url = first_url.to_string();
        let mut pages = 0;
        loop {
            let r = self.get(&url, token).await;
            assert_eq!(r.status, StatusCode::OK);
            ids.extend(r.ids());
            pages += 1;
            assert!(pages < 10_000, "runaway paging");
            match r.link(rel) {
                Some(next) => url = next,
                None => return (ids, pages),
            }
        }
    }
}

/// How long a test waits for an event before it gives up: far beyond what any takes here.
const PATIENCE: Duration = Duration::from_secs(60);

/// Waits until `condition` holds, checking every 10 ms; panics naming `what` after
/// [`PATIENCE`]. (This crate's copy of flowhost's `tests/common::wait_until`.)
async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "gave up after {PATIENCE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn cfg(events: u64) -> SimConfig {
    SimConfig {
        events,
        ..Default::default()
    }
}

fn assert_error(r: &Resp, status: u16, ty: &str) {
    assert_eq!(
        r.status.as_u16(),
        status,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let v = r.json();
    assert_eq!(v["type"], ty, "{v}");
    assert_eq!(v["code"], status, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
}

#[tokio::test]
async fn token_issue_and_bad_credentials() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let c = Client::new(&sim);
    assert_eq!(sim.team(), "william-faulkner");
    assert_eq!(sim.key_secret().len(), 88);
    assert!(sim.base_url().starts_with("http://127.0.0.1:"));
    assert!(!sim.base_url().ends_with('/'));

    let before = jiff::Timestamp::now();
    let r = c
        .token_raw(
            "william-faulkner",
            serde_json::json!({"key_id": sim.key_id(), "key_secret": sim.key_secret()}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert!(r.header("x-ratelimit-limit").is_some());
    let v = r.json();
    assert_eq!(v["team_name"], "william-faulkner");
    assert!(v["bearer_token"].as_str().unwrap().split('.').count() == 3);
    let exp: jiff::Timestamp = v["expires_at"].as_str().unwrap().parse().unwrap();
    let ttl = exp.duration_since(before).as_secs_f64();
    assert!((3590.0..3610.0).contains(&ttl), "ttl {ttl}");

    // Team names are case-insensitive.
    let r = c
        .token_raw(
            "William-Faulkner",
            serde_json::json!({"key_id": sim.key_id(), "key_secret": sim.key_secret()}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    let r = c
        .token_raw(
            "william-faulkner",
            serde_json::json!({"key_id": sim.key_id(), "key_secret": "nope"}),
        )
        .await;
    assert_error(&r, 401, "authentication_error");
    let r = c
        .token_raw(
            "william-faulkner",
            serde_json::json!({"key_id": "6052868b-0000-0000-0000-000000000000", "key_secret": sim.key_secret()}),
        )
        .await;
    assert_error(&r, 401, "authentication_error");
    let r = c
        .token_raw(
            "other-team",
            serde_json::json!({"key_id": sim.key_id(), "key_secret": sim.key_secret()}),
        )
        .await;
    assert_error(&r, 404, "resource_does_not_exist");
    let r = c
        .token_raw("william-faulkner", serde_json::json!([1, 2]))
        .await;
    assert_error(&r, 400, "invalid_request");
    let r = c
        .send(
            c.http
                .post(format!(
                    "{}/v1/teams/william-faulkner/service_token",
                    c.base
                ))
                .body("not json"),
        )
        .await;
    assert_error(&r, 400, "invalid_request");
    let s = sim.stats();
    assert_eq!(s.token_requests, 7);
    assert_eq!(s.tokens_issued, 2);
    assert_eq!(s.status_401, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn auth_checks_and_expiry() {
    let sim = Sim::start(SimConfig {
        events: 10,
        token_ttl: Duration::from_millis(700),
        ..Default::default()
    })
    .await
    .unwrap();
    let c = Client::new(&sim);
    // No header, wrong scheme, unknown token.
    let r = c.send(c.http.get(c.audits_url(""))).await;
    assert_error(&r, 401, "authentication_error");
    let r = c
        .send(
            c.http
                .get(c.audits_url(""))
                .header("authorization", "Basic abc"),
        )
        .await;
    assert_error(&r, 401, "authentication_error");
    let r = c.audits("", "not-a-token").await;
    assert_error(&r, 401, "authentication_error");

    let t = c.token(&sim).await;
    assert_eq!(c.audits("", &t).await.status, StatusCode::OK);
    // Unknown team with a valid token.
    let r = c
        .get(&format!("{}/v1/teams/nobody/auditsV2", c.base), &t)
        .await;
    assert_error(&r, 404, "resource_does_not_exist");
    // TTL expiry: the token works until it expires (700 ms after it was issued), then is
    // refused. Waited for, with a deadline far beyond the TTL.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let r = c.audits("", &t).await;
        if r.status != StatusCode::OK {
            assert_error(&r, 401, "authentication_error");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a 700 ms token still works after {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // expire_tokens() revokes everything issued so far.
    let t1 = c.token(&sim).await;
    let t2 = c.token(&sim).await;
    assert_ne!(t1, t2);
    assert_eq!(c.audits("", &t1).await.status, StatusCode::OK);
    sim.expire_tokens();
    assert_error(&c.audits("", &t1).await, 401, "authentication_error");
    assert_error(&c.audits("", &t2).await, 401, "authentication_error");
    let t3 = c.token(&sim).await;
    assert_eq!(c.audits("", &t3).await.status, StatusCode::OK);

    // Unknown paths: JSON 404.
    let r = c.get(&format!("{}/v1/nope", c.base), &t3).await;
    assert_error(&r, 404, "resource_does_not_exist");
    sim.shutdown().await;
}

#[tokio::test]
async fn pages_ascending_through_everything_by_link_next() {
    let sim = Sim::start(cfg(250)).await.unwrap();
    let c = Client::new(&sim);
    let t = c.token(&sim).await;
    let (ids, pages) = c.walk(&c.audits_url("?count=37"), &t, "next").await;
    assert_eq!(pages, 7); // 6 full pages + 28
    assert_eq!(ids, sim.event_ids(), "no gaps, no repeats, oldest first");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 250);

    // Default count is 100; ascending; first page has only a next link.
    let r = c.audits("", &t).await;
    assert_eq!(r.ids(), sim.event_ids()[..100]);
    let links = r.links();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].0, "next");
    let expected_next = format!(
        "{}/v1/teams/william-faulkner/auditsV2?count=100&offset={}",
        sim.base_url(),
        sim.event_ids()[99].replace('=', "%3D")
    );
    assert_eq!(links[0].1, expected_next);
    // The Workflows U11 parser: text between "offset=" and 3 chars before "rel=".
    let h = r.header("link").unwrap();
    let start = h.find("offset=").unwrap() + 7;
    let end = h.find("rel=").unwrap() - 3;
    assert_eq!(&h[start..end], sim.event_ids()[99].replace('=', "%3D"));

    // Middle page: prev first, then next.
    let r = c.get(&expected_next, &t).await;
    let links = r.links();
    assert_eq!(
        links.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>(),
        ["prev", "next"]
    );
    assert!(links[0].1.ends_with("&prev=true"));
    assert!(r.header("link").unwrap().contains(">; rel=\"prev\", <"));

    // Events and their timestamps increase.
    let list = r.json()["list"].as_array().unwrap().clone();
    let mut last: Option<jiff::Timestamp> = None;
    for e in &list {
        let ts_str = e["timestamp"].as_str().unwrap();
        assert_eq!(ts_str.len(), 30, "{ts_str}");
        let ts: jiff::Timestamp = ts_str.parse().unwrap();
        assert!(last.is_none_or(|l| l < ts));
        last = Some(ts);
        assert_eq!(
            e.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["details", "id", "timestamp"]
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn full_final_page_has_no_next_link() {
    let sim = Sim::start(cfg(200)).await.unwrap();
    let c = Client::new(&sim);
    let t = c.token(&sim).await;
    let (ids, pages) = c.walk(&c.audits_url("?count=50"), &t, "next").await;
    assert_eq!(pages, 4);
    assert_eq!(ids.len(), 200);
    let ids_all = sim.event_ids();
    let r = c
        .audits(
            &format!("?count=50&offset={}", ids_all[149].replace('=', "%3D")),
            &t,
        )
        .await;
    assert_eq!(r.ids().len(), 50);
    assert!(r.link("next").is_none());
    assert!(r.link("prev").is_some());
    // Re-polling after the last event: empty list, no links.
    let r = c
        .audits(&format!("?offset={}", ids_all[199].replace('=', "%3D")), &t)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        serde_json::json!({"list": [], "related_objects": {}})
    );
    assert!(r.header("link").is_none());
    // New events show up after the stored offset, with a next link only once
    // more than a page exists.
    sim.append_events(3);
    let r = c
        .audits(&format!("?offset={}", ids_all[199].replace('=', "%3D")), &t)
        .await;
    assert_eq!(r.ids(), sim.event_ids()[200..203]);
    assert!(r.link("next").is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn offset_is_exclusive_and_unpadded_or_raw_ids_work() {
    let sim = Sim::start(cfg(100)).await.unwrap();
    let c = Client::new(&sim);
    let t = c.token(&sim).await;
    let ids = sim.event_ids();
    let enc = ids[10].replace('=', "%3D");
    let r = c.audits(&format!("?count=5&offset={enc}"), &t).await;
    assert_eq!(r.ids(), ids[11..16]);
    // Raw "==" in the query and no padding at all are accepted too.
    let r = c.audits(&format!("?count=5&offset={}", ids[10]), &t).await;
    assert_eq!(r.ids(), ids[11..16]);
    let r = c
        .audits(
            &format!("?count=5&offset={}", ids[10].trim_end_matches('=')),
            &t,
        )
        .await;
    assert_eq!(r.ids(), ids[11..16]);
    // Unknown params are ignored.
    let r = c
        .audits(&format!("?count=5&after_time=2020-01-01&offset={enc}"), &t)
        .await;
    assert_eq!(r.ids(), ids[11..16]);
    // Unknown / foreign / not-yet-existing offsets → 400.
    for bad in [
        "UD5pqjIhjKVQPmmqMiGMpQ%3D%3D",
        "garbage",
        "72H8i_PqrupQhBdw8-qu6g%3D%3D",
    ] {
        let r = c.audits(&format!("?offset={bad}"), &t).await;
        assert_error(&r, 400, "invalid_request");
    }
    let future = {
        let probe = Sim::start(cfg(101)).await.unwrap();
        let id = probe.event_id(100).unwrap();
        probe.shutdown().await;
        id
    };
    assert!(sim.event(&future).is_none());
    let r = c
        .audits(&format!("?offset={}", future.replace('=', "%3D")), &t)
        .await;
    assert_error(&r, 400, "invalid_request");
    sim.append_events(1);
    let r = c
        .audits(&format!("?offset={}", future.replace('=', "%3D")), &t)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.ids().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn descending_and_prev() {
    let sim = Sim::start(cfg(95)).await.unwrap();
    let c = Client::new(&sim);
    let t = c.token(&sim).await;
    let ids = sim.event_ids();
    let rev: Vec<String> = ids.iter().rev().cloned().collect();

    // Descending from the newest, following next: everything newest → oldest.
    let r = c.audits("?descending=true&count=10", &t).await;
    assert_eq!(r.ids(), rev[..10]);
    let next = r.link("next").unwrap();
    assert!(next.contains("?count=10&descending=true&offset="), "{next}");
    assert!(r.link("prev").is_none());
    let (all, pages) = c
        .walk(&c.audits_url("?descending=true&count=10"), &t, "next")
        .await;
    assert_eq!(all, rev);
    assert_eq!(pages, 10);
    // NODE-style descending=1.
    assert_eq!(c.audits("?descending=1&count=3", &t).await.ids(), rev[..3]);

    // Ascending prev: the `count` events before the offset, still ascending.
    let enc = |i: usize| ids[i].replace('=', "%3D");
    let r = c
        .audits(&format!("?count=10&offset={}&prev=true", enc(50)), &t)
        .await;
    assert_eq!(r.ids(), ids[40..50]);
    assert!(r.link("prev").unwrap().contains(&enc(40)));
    assert!(r.link("next").unwrap().contains(&enc(49)));
    // Walking prev links from the end reaches the start without gaps.
    let r = c.audits(&format!("?count=10&offset={}", enc(84)), &t).await;
    assert_eq!(r.ids(), ids[85..95]);
    let (back, _) = c.walk(&r.link("prev").unwrap(), &t, "prev").await;
    let mut expect = Vec::new();
    for chunk in ids[..85].rchunks(10) {
        expect.extend_from_slice(chunk);
    }
    assert_eq!(back, expect);
    // Short prev page at the start: no prev link.
    let r = c
        .audits(&format!("?count=10&offset={}&prev=true", enc(3)), &t)
        .await;
    assert_eq!(r.ids(), ids[..3]);
    assert!(r.link("prev").is_none());

    // Descending + prev: the newer events, listed newest first.
    let r = c
        .audits(
            &format!("?count=5&descending=true&offset={}&prev=true", enc(50)),
            &t,
        )
        .await;
    let mut want = ids[51..56].to_vec();
    want.reverse();
    assert_eq!(r.ids(), want);
    let prev = r.link("prev").unwrap();
    assert!(
        prev.ends_with(&format!("descending=true&offset={}&prev=true", enc(55))),
        "{prev}"
    );
    // prev without offset is ignored.
    assert_eq!(c.audits("?prev=true&count=4", &t).await.ids(), ids[..4]);
    sim.shutdown().await;
}

#[tokio::test]
async fn count_default_clamp_and_errors() {
    let sim = Sim::start(cfg(2500)).await.unwrap();
    let c = Client::new(&sim);
    let t = c.token(&sim).await;
    assert_eq!(c.audits("", &t).await.ids().len(), 100);
    assert_eq!(c.audits("?count=0", &t).await.ids().len(), 100);
    assert_eq!(c.audits("?count=", &t).await.ids().len(), 100);
    let r = c.audits("?count=5000", &t).await;
    assert_eq!(r.ids().len(), 1000);
    assert!(r.link("next").unwrap().contains("count=1000&offset="));
    assert_error(&c.audits("?count=abc", &t).await, 400, "invalid_request");
    assert_error(&c.audits("?count=-3", &t).await, 400, "invalid_request");
    assert_error(
        &c.audits("?descending=sideways", &t).await,
        400,
        "invalid_request",
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn related_objects_are_exactly_the_referenced_ones() {
    let sim = Sim::start(cfg(600)).await.unwrap();
    let c = Client::new(&sim);
    let t = c.token(&sim).await;
    let mut kinds_seen = HashSet::new();
    let mut types_seen = HashSet::new();
    let mut saw_empty_ref = false;
    let mut saw_servers = false;
    let mut saw_via_null = false;
    for q in ["?count=1000", "?count=1"] {
        let v = c.audits(q, &t).await.json();
        let ro = v["related_objects"].as_object().unwrap();
        let mut referenced = HashSet::new();
        for e in v["list"].as_array().unwrap() {
            let id = e["id"].as_str().unwrap();
            assert_eq!(id.len(), 24);
            assert_eq!(
                sim.event(id).as_ref(),
                Some(e),
                "Sim::event matches the wire"
            );
            let d = e["details"].as_object().unwrap();
            types_seen.insert(d["type"].as_str().unwrap().to_string());
            assert_eq!(d["team_name"], "william-faulkner");
            assert_eq!(d["team_id"], "");
            assert_eq!(d["trace_id"].as_str().unwrap().len(), 8);
            saw_via_null |= d.get("via").is_some_and(Value::is_null);
            for key in [
                "actor",
                "client",
                "user",
                "target_user",
                "group",
                "project",
                "server",
                "gateway",
            ] {
                match d.get(key) {
                    Some(Value::String(s)) if s.is_empty() => saw_empty_ref = true,
                    Some(Value::String(s)) => {
                        referenced.insert(s.clone());
                    }
                    Some(other) => panic!("{key} = {other}"),
                    None => {}
                }
            }
            if let Some(servers) = d.get("servers") {
                saw_servers = true;
                for s in servers.as_array().unwrap() {
                    referenced.insert(s.as_str().unwrap().to_string());
                }
            }
        }
        let keys: HashSet<String> = ro.keys().cloned().collect();
        assert_eq!(keys, referenced);
        for (k, entry) in ro {
            assert_eq!(k.len(), 44);
            assert_eq!(sim.related_object(k).as_ref(), Some(entry));
            let kind = entry["type"].as_str().unwrap();
            kinds_seen.insert(kind.to_string());
            let obj = entry["object"].as_object().unwrap();
            assert!(obj["id"].as_str().unwrap().len() == 36);
            let want: &[&str] = match kind {
                "user" => &[
                    "deleted_at",
                    "details",
                    "id",
                    "name",
                    "oauth_client_application_id",
                    "role_grants",
                    "status",
                    "team_name",
                    "user_type",
                ],
                "client" => &[
                    "deleted_at",
                    "description",
                    "encrypted",
                    "hostname",
                    "id",
                    "os",
                    "state",
                    "user_name",
                ],
                "server" => &[
                    "access_address",
                    "alt_names",
                    "bastion",
                    "canonical_name",
                    "cloud_provider",
                    "deleted_at",
                    "hostname",
                    "id",
                    "instance_details",
                    "labels",
                    "last_seen",
                    "managed",
                    "os",
                    "os_type",
                    "project_name",
                    "registered_at",
                    "services",
                    "sftd_version",
                    "ssh_host_keys",
                    "state",
                    "team_name",
                ],
                "project" => &[
                    "create_server_users",
                    "deleted_at",
                    "force_shared_ssh_users",
                    "id",
                    "name",
                    "next_unix_gid",
                    "next_unix_uid",
                    "require_preauth_for_creds",
                    "shared_admin_user_name",
                    "shared_standard_user_name",
                    "team",
                    "user_on_demand_period",
                ],
                "group" => &[
                    "deleted_at",
                    "federated_from_team",
                    "federation_approved_at",
                    "id",
                    "name",
                    "roles",
                ],
                "gateway" => &[
                    "access_address",
                    "cloud_provider",
                    "default_address",
                    "description",
                    "id",
                    "labels",
                    "name",
                    "refuse_connections",
                ],
                other => panic!("unexpected kind {other}"),
            };
            let mut got: Vec<&str> = obj.keys().map(String::as_str).collect();
            got.sort_unstable();
            assert_eq!(got, want, "{kind}");
        }
    }
    assert_eq!(
        kinds_seen,
        ["user", "client", "server", "project", "group", "gateway"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    assert_eq!(
        types_seen.len(),
        asa_sim::EVENT_TYPES.len(),
        "{types_seen:?}"
    );
    assert!(saw_empty_ref && saw_servers && saw_via_null);
    // Service users have details: null.
    let svc = sim
        .related_ref_ids()
        .into_iter()
        .filter(|(_, k)| *k == "user")
        .filter_map(|(r, _)| sim.related_object(&r))
        .filter(|o| o["object"]["user_type"] == "service")
        .collect::<Vec<_>>();
    assert_eq!(svc.len(), 8);
    assert!(svc.iter().all(|o| o["object"]["details"].is_null()));
    assert!(sim.related_object("nope").is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn rate_limit_headers_and_429() {
    let started = jiff::Timestamp::now().as_second();
    let sim = Sim::start(SimConfig {
        events: 10,
        rate_limit_per_hour: 4,
        ..Default::default()
    })
    .await
    .unwrap();
    let c = Client::new(&sim);
    let t = c.token(&sim).await; // 1
    let r = c.audits("", &t).await; // 2
    assert_eq!(r.header("x-ratelimit-limit").as_deref(), Some("4"));
    assert_eq!(r.header("x-ratelimit-remaining").as_deref(), Some("2"));
    let reset: i64 = r.header("x-ratelimit-reset").unwrap().parse().unwrap();
    // The hourly window started with the simulator (reported from the whole second after).
    let now = jiff::Timestamp::now().as_second();
    assert!(
        (started + 3600..=now + 3601).contains(&reset),
        "{reset} vs {started}..{now}"
    );
    assert!(r.header("x-ratelimit-retry-at").is_none());
    c.audits("", &t).await; // 3
    let r = c.audits("", &t).await; // 4
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-ratelimit-remaining").as_deref(), Some("0"));
    let r = c.audits("", &t).await; // 5: over
    assert_error(&r, 429, "too_many_requests");
    assert_eq!(
        r.header("x-ratelimit-retry-at"),
        r.header("x-ratelimit-reset")
    );
    // Token requests share the budget.
    let r = c
        .token_raw(
            "william-faulkner",
            serde_json::json!({"key_id": sim.key_id(), "key_secret": sim.key_secret()}),
        )
        .await;
    assert_error(&r, 429, "too_many_requests");
    assert_eq!(sim.stats().status_429, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn every_fault() {
    let sim = Sim::start(cfg(300)).await.unwrap();
    let c = Client::new(&sim);
    let t = c.token(&sim).await;
    let ids = sim.event_ids();

    for (code, ty) in [
        (500, "unknown_error"),
        (502, "unknown_error"),
        (503, "service_offline"),
        (504, "gateway_timeout"),
    ] {
        sim.inject(Fault::Status(code), 2);
        assert_error(&c.audits("", &t).await, code, ty);
        assert_error(&c.audits("", &t).await, code, ty);
        assert_eq!(c.audits("", &t).await.status, StatusCode::OK);
    }

    // Retry-At (or Reset) names the second after the 429 was served: between the second after
    // the request was sent and the second after the answer came.
    let around = |before: i64, after: i64, named: i64| {
        assert!(
            (before + 1..=after + 1).contains(&named),
            "{named} vs {before}..{after}"
        );
    };
    sim.inject(Fault::RateLimited, 1);
    let before = jiff::Timestamp::now().as_second();
    let r = c.audits("", &t).await;
    let after = jiff::Timestamp::now().as_second();
    assert_error(&r, 429, "too_many_requests");
    let retry: i64 = r.header("x-ratelimit-retry-at").unwrap().parse().unwrap();
    around(before, after, retry);
    assert_eq!(r.header("x-ratelimit-remaining").as_deref(), Some("0"));
    assert!(r.header("x-ratelimit-reset").is_some());

    sim.inject(Fault::RateLimitedResetOnly, 1);
    let before = jiff::Timestamp::now().as_second();
    let r = c.audits("", &t).await;
    let after = jiff::Timestamp::now().as_second();
    assert_error(&r, 429, "too_many_requests");
    assert!(r.header("x-ratelimit-retry-at").is_none());
    let reset: i64 = r.header("x-ratelimit-reset").unwrap().parse().unwrap();
    around(before, after, reset);

    sim.inject(Fault::Latency(Duration::from_millis(300)), 1);
    let t0 = Instant::now();
    let r = c.audits("?count=3", &t).await;
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.ids(), ids[..3]);

    sim.inject(Fault::Truncated, 1);
    let r = c.audits("?count=50", &t).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(serde_json::from_slice::<Value>(&r.body).is_err());
    assert!(r.body.starts_with(b"{\"list\":[{\"id\":"));
    let full = c.audits("?count=50", &t).await;
    assert_eq!(r.body.len(), full.body.len() / 2);

    sim.inject(Fault::Malformed, 1);
    let r = c.audits("", &t).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(serde_json::from_slice::<Value>(&r.body).is_err());

    sim.inject(Fault::NoLink, 1);
    let r = c.audits("?count=10", &t).await;
    assert_eq!(r.ids(), ids[..10]);
    assert!(r.header("link").is_none());

    sim.inject(Fault::MalformedLink, 1);
    let r = c.audits("?count=10", &t).await;
    assert_eq!(r.ids(), ids[..10]);
    let link = r.header("link").unwrap();
    assert!(!link.contains(&ids[9].replace('=', "%3D")), "{link}");

    // ExpireToken: 401, and the presented token stays dead.
    sim.inject(Fault::ExpireToken, 1);
    assert_error(&c.audits("", &t).await, 401, "authentication_error");
    assert_error(&c.audits("", &t).await, 401, "authentication_error");
    let t2 = c.token(&sim).await;
    assert_eq!(c.audits("", &t2).await.status, StatusCode::OK);

    // FIFO across kinds; token requests do not consume auditsV2 faults.
    sim.inject(Fault::Status(503), 1);
    sim.inject(Fault::NoLink, 1);
    assert_eq!(sim.pending_faults(), 2);
    let t3 = c.token(&sim).await;
    assert_eq!(c.audits("", &t3).await.status.as_u16(), 503);
    let r = c.audits("", &t3).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("link").is_none());
    assert_eq!(c.audits("", &t3).await.links().len(), 1);

    // Token-targeted faults.
    sim.inject_for(FaultTarget::Token, Fault::Status(500), 1);
    let r = c
        .token_raw(
            "william-faulkner",
            serde_json::json!({"key_id": sim.key_id(), "key_secret": sim.key_secret()}),
        )
        .await;
    assert_error(&r, 500, "unknown_error");
    assert_eq!(c.audits("", &t3).await.status, StatusCode::OK);
    sim.inject(Fault::Status(503), 5);
    sim.clear_faults();
    assert_eq!(sim.pending_faults(), 0);

    let s = sim.stats();
    assert_eq!(s.faults_served, 8 + 2 + 1 + 1 + 1 + 1 + 1 + 1 + 2 + 1);
    assert!(s.status_5xx >= 10);
    sim.shutdown().await;
}

#[tokio::test]
async fn live_mode_and_appends() {
    let before_start = Instant::now();
    let sim = Sim::start(SimConfig {
        events: 5,
        live_events_per_sec: 200.0,
        ..Default::default()
    })
    .await
    .unwrap();
    // Events arrive on their own; never faster than 200 a second.
    wait_until("50 live events", || sim.event_count() >= 55).await;
    let n = sim.event_count();
    let most = 5.0 + 200.0 * before_start.elapsed().as_secs_f64();
    assert!(
        n as f64 <= most,
        "{n} events, more than 200/s allows ({most})"
    );
    let c = Client::new(&sim);
    let t = c.token(&sim).await;
    let (ids, _) = c.walk(&c.audits_url("?count=1000"), &t, "next").await;
    assert!(ids.len() as u64 >= n);
    assert_eq!(ids, sim.event_ids()[..ids.len()]);
    sim.shutdown().await;

    // Manual appends: newest last, later timestamps.
    let sim = Sim::start(cfg(3)).await.unwrap();
    let c = Client::new(&sim);
    let t = c.token(&sim).await;
    let last_old = sim.event_ids()[2].clone();
    sim.append_events(4);
    assert_eq!(sim.event_count(), 7);
    let r = c
        .audits(&format!("?offset={}", last_old.replace('=', "%3D")), &t)
        .await;
    assert_eq!(r.ids(), sim.event_ids()[3..]);
    let ts = |id: &str| -> jiff::Timestamp {
        sim.event(id).unwrap()["timestamp"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(ts(&sim.event_ids()[3]) > ts(&last_old));
    sim.shutdown().await;
}

#[tokio::test]
async fn large_indexes_roundtrip() {
    let sim = Sim::start(cfg(3_000_000)).await.unwrap();
    let c = Client::new(&sim);
    let t = c.token(&sim).await;
    for i in [0u64, 1, 999_999, 1_000_000, 2_999_998, 2_999_999] {
        let id = sim.event_id(i).unwrap();
        assert_eq!(id.len(), 24);
        assert!(id.ends_with("=="));
        assert_eq!(sim.event_index(&id), Some(i));
        assert_eq!(sim.event(&id).unwrap()["id"], id.as_str());
    }
    assert!(sim.event_id(3_000_000).is_none());
    let enc = sim.event_id(2_499_999).unwrap().replace('=', "%3D");
    let r = c.audits(&format!("?count=1000&offset={enc}"), &t).await;
    let got = r.ids();
    assert_eq!(got.len(), 1000);
    assert_eq!(sim.event_index(&got[0]), Some(2_500_000));
    assert_eq!(sim.event_index(&got[999]), Some(2_500_999));
    // Newest page via descending.
    let r = c.audits("?descending=true&count=2", &t).await;
    assert_eq!(
        r.ids()
            .iter()
            .map(|id| sim.event_index(id).unwrap())
            .collect::<Vec<_>>(),
        [2_999_999, 2_999_998]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn deterministic_per_seed() {
    let a = Sim::start(SimConfig {
        seed: 7,
        events: 300,
        ..Default::default()
    })
    .await
    .unwrap();
    let b = Sim::start(SimConfig {
        seed: 7,
        events: 300,
        link_style: LinkStyle::Relative,
        ..Default::default()
    })
    .await
    .unwrap();
    let other = Sim::start(SimConfig {
        seed: 8,
        events: 300,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(a.event_ids(), b.event_ids());
    assert_ne!(a.event_ids(), other.event_ids());
    assert!(other.event(&a.event_ids()[5]).is_none());
    let (ca, cb) = (Client::new(&a), Client::new(&b));
    let (ta, tb) = (ca.token(&a).await, cb.token(&b).await);
    let ra = ca.audits("?count=300", &ta).await;
    let rb = cb.audits("?count=300", &tb).await;
    assert_eq!(ra.body, rb.body, "identical bytes for the same seed");
    for r in a.related_ref_ids() {
        assert_eq!(a.related_object(&r.0), b.related_object(&r.0));
    }
    // Relative links.
    let r = cb.audits("?count=10", &tb).await;
    let next = r.link("next").unwrap();
    assert!(next.starts_with("/v1/teams/william-faulkner/auditsV2?count=10&offset="));
    let (all, _) = cb.walk(&cb.audits_url("?count=64"), &tb, "next").await;
    assert_eq!(all, b.event_ids());
    // Default start time and the 9-digit timestamps.
    let first = a.event(&a.event_ids()[0]).unwrap();
    assert!(first["timestamp"]
        .as_str()
        .unwrap()
        .starts_with("2024-03-05T00:00:00."));
    a.shutdown().await;
    b.shutdown().await;
    other.shutdown().await;
}

/// A full page deep in a million events: the right thousand ids, every time. (How long it
/// takes is printed, not asserted: the machine may be busy.)
#[tokio::test]
async fn a_full_page_deep_in_a_million_events() {
    let sim = Sim::start(cfg(1_000_000)).await.unwrap();
    let c = Client::new(&sim);
    let t = c.token(&sim).await;
    // Warm up the connection.
    c.audits("?count=1000", &t).await;
    let enc = sim.event_id(500_000).unwrap().replace('=', "%3D");
    let want: Vec<String> = (500_001..501_001)
        .map(|i| sim.event_id(i).unwrap())
        .collect();
    let rounds = 20;
    let t0 = Instant::now();
    let mut bytes = 0;
    for _ in 0..rounds {
        let r = c.audits(&format!("?count=1000&offset={enc}"), &t).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.ids(), want);
        bytes += r.body.len();
    }
    let per = t0.elapsed() / rounds;
    eprintln!(
        "1000-event page: {per:?} per request (incl. client), {} KiB",
        bytes / rounds as usize / 1024
    );
    sim.shutdown().await;
}

#[test]
fn start_in_thread_serves_blocking_callers() {
    let sim = Sim::start_in_thread(cfg(10)).unwrap();
    let base = sim.base_url();
    // A plain blocking TCP exchange, no runtime on this thread.
    use std::io::{Read, Write};
    let addr = sim.addr();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let body = format!(
        r#"{{"key_id":"{}","key_secret":"{}"}}"#,
        sim.key_id(),
        sim.key_secret()
    );
    write!(
        s,
        "POST /v1/teams/william-faulkner/service_token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("bearer_token"));
    assert!(base.starts_with("http://127.0.0.1:"));
    drop(sim); // last handle: the server thread stops
    let deadline = Instant::now() + PATIENCE;
    while std::net::TcpStream::connect(addr).is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting connections {PATIENCE:?} after the last handle was dropped"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn handle_is_send_sync_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Sim>();
    check::<SimConfig>();
    check::<Fault>();
}

/// One server, two teams (as app.scaleft.com serves many): each answers only its own key pair,
/// a token of one team does not read the other's events, and their ids differ.
#[tokio::test]
async fn extra_teams_have_their_own_keys_tokens_and_events() {
    let acme = asa_sim::TeamConfig {
        team: "acme".into(),
        key_id: "acme-id".into(),
        key_secret: "acme-secret".into(),
        events: 30,
        seed: 9,
    };
    let sim = Sim::start(SimConfig {
        extra_teams: vec![acme.clone()],
        ..cfg(20)
    })
    .await
    .unwrap();
    let handle = sim.team_handle("ACME").expect("acme is served");
    let c = Client::new(&sim);
    let pair = |id: &str, secret: &str| serde_json::json!({"key_id": id, "key_secret": secret});
    // The default team's key pair is refused for acme, and acme's own pair is accepted.
    let r = c
        .token_raw("acme", pair(sim.key_id(), sim.key_secret()))
        .await;
    assert_error(&r, 401, "authentication_error");
    let r = c.token_raw("acme", pair("acme-id", "acme-secret")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["team_name"], "acme");
    let acme_token = r.json()["bearer_token"].as_str().unwrap().to_string();
    // acme's token reads acme's events only.
    let acme_url = format!("{}/v1/teams/acme/auditsV2?count=100", sim.base_url());
    let r = c.get(&acme_url, &acme_token).await;
    assert_eq!(r.ids(), handle.event_ids());
    let r = c.audits("?count=100", &acme_token).await;
    assert_error(&r, 401, "authentication_error");
    let token = c.token(&sim).await;
    let own: HashSet<String> = c
        .audits("?count=100", &token)
        .await
        .ids()
        .into_iter()
        .collect();
    assert_eq!(own.len(), 20);
    assert!(
        handle.event_ids().iter().all(|id| !own.contains(id)),
        "ids repeat across teams"
    );
    assert_eq!(
        (sim.stats().tokens_issued, handle.stats().tokens_issued),
        (1, 1)
    );
    // A seed shared with another team is refused (the ids would repeat).
    let same_seed = SimConfig {
        extra_teams: vec![asa_sim::TeamConfig { seed: 0, ..acme }],
        ..cfg(1)
    };
    let e = Sim::start(same_seed).await.unwrap_err().to_string();
    assert!(
        e.contains("its seed 0 is also team \"william-faulkner\"'s"),
        "{e}"
    );
}

#[tokio::test]
async fn aged_out_events_are_not_served_and_their_offset_is_400() {
    let sim = Sim::start(cfg(30)).await.unwrap();
    let c = Client::new(&sim);
    let t = c.token(&sim).await;
    let ids = sim.event_ids();
    let enc = |i: usize| ids[i].replace('=', "%3D");
    sim.expire_oldest(10);
    assert_eq!(sim.retained_ids(), ids[10..]);

    // The oldest page starts at the oldest retained event, with no prev link.
    let r = c.audits("?count=5", &t).await;
    assert_eq!(r.ids(), ids[10..15]);
    assert!(r.link("prev").is_none());
    // An offset naming an aged-out event: 400 invalid_request naming the offset.
    let r = c.audits(&format!("?count=5&offset={}", enc(4)), &t).await;
    assert_error(&r, 400, "invalid_request");
    assert!(
        r.json()["message"].as_str().unwrap().contains(&ids[4]),
        "{}",
        r.json()
    );
    // A retained offset still pages on; paging back stops at the oldest retained event.
    let r = c.audits(&format!("?count=5&offset={}", enc(12)), &t).await;
    assert_eq!(r.ids(), ids[13..18]);
    let r = c
        .audits(&format!("?count=5&offset={}&prev=true", enc(12)), &t)
        .await;
    assert_eq!(r.ids(), ids[10..12]);
    assert!(r.link("prev").is_none());
    let (back, _) = c
        .walk(&c.audits_url("?descending=true&count=7"), &t, "next")
        .await;
    let mut want = ids[10..].to_vec();
    want.reverse();
    assert_eq!(back, want);
    // Never more than exist.
    sim.expire_oldest(1000);
    assert!(sim.retained_ids().is_empty());
    assert!(c.audits("?count=5", &t).await.ids().is_empty());
    sim.shutdown().await;
}
