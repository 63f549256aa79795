//! Allocations per item of the flows that run once per audit event (S30) or once per related
//! object (S20, S21), counted natively (issue 20: allocating was a quarter of S30's time): each
//! test is a bound on what may allocate, so that a change that copies again shows here.
//!
//! S30: a page of events shaped as the ASA simulator writes them goes through S30's steps
//! without the host: open the envelope and plan the event, fill the helper columns from the
//! batch's answers, and lay out the row's columns as `tables::upsert_cells` takes them. What may
//! allocate, and nothing else: the timestamp in its millisecond form (1); a `servers` list, read
//! and then each reference once (2); a column joining several answers (1); for each answer not
//! kept yet, its key and the growth of its kind's map (2); and the batch's name, once per batch
//! (1). The event's text is never copied: `raw_event` and every string member without escapes
//! borrow from the input, and a column of one answer borrows it. (The helper's answer itself,
//! and the SDK's input, output and upsert result, are the host's strings, not counted here.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;

use asa_lib::answers::Answers;
use asa_lib::enrich::Kind;
use asa_lib::model::{RelatedItemText, RelatedObjectsText};
use asa_lib::teams;
use serde_json::{json, Value};

/// The system allocator, counting this thread's allocations (and reallocations).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.realloc(ptr, layout, size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

const JASON: &str = "18TGDjrSCM5QZkQQNunxkeC3UDanf2Xi6qR1JEMjP74=";
const QUENTIN: &str = "gMMtgekb3qBM16OBmzInX8MpivTH7IfrAJlSfQQc7Vw=";
const SHREVE: &str = "4PzUzk49Dj3gkfIUFbt80BH6wojEICCoefKMKkOH35s=";
const LAPTOP: &str = "ErWhDzoR5wjcVBKDPEerfDaKIbnv4ZKTeT7Iec5oMBg=";
const HARVARD: &str = "3Sn5zM8t4WkGLbzsVcjuac2r3bzPP0QoybMbYd8J23g=";
const OXFORD: &str = "7Hq2zM8t4WkGLbzsVcjuac2r3bzPP0QoybMbYd8J23g=";
const FURY: &str = "caw2gnnL5vXLvCuoFUiDqaKeVRfR88A8rE85zjIlBgs=";
const COMPSONS: &str = "Pvt5nNnEEnRq4qGTMbeyYn5mPiWnsAHkwNzF4hvHbDg=";
const JEFFERSON: &str = "1OiMcuUovtx5c0LAP9ejRsTHhXygPUZwE7ZJPEVVUeQ=";

/// What the helpers answer for each reference (`Kind::describe` of the related objects).
fn answers() -> HashMap<(Kind, &'static str), String> {
    let objects = [
        (JASON, json!({"name": "Jason.Compson.IV", "status": "ACTIVE", "user_type": "human"})),
        (QUENTIN, json!({"name": "Quentin.Compson", "status": "ACTIVE", "user_type": "human"})),
        (SHREVE, json!({"name": "shreve", "status": "ACTIVE", "user_type": "service"})),
        (
            LAPTOP,
            json!({"user_name": "Jason.Compson.IV", "hostname": "Absalom", "os": "macOS 10.14.6", "state": "ACTIVE"}),
        ),
        (
            HARVARD,
            json!({"hostname": "harvard", "project_name": "the-sound-and-the-fury", "os": "Ubuntu 16.04", "os_type": "linux"}),
        ),
        (
            OXFORD,
            json!({"hostname": "oxford", "project_name": "the-sound-and-the-fury", "os": "Amazon Linux 2", "os_type": "linux"}),
        ),
        (FURY, json!({"name": "the-sound-and-the-fury"})),
        (COMPSONS, json!({"name": "compsons"})),
        (
            JEFFERSON,
            json!({"name": "gw-jefferson", "access_address": "gw1.example.com", "default_address": "10.0.0.5"}),
        ),
    ];
    let mut answers = HashMap::new();
    for (reference, object) in &objects {
        for kind in Kind::ALL {
            answers.insert((kind, *reference), kind.describe(object));
        }
    }
    answers
}

/// A page of events as the simulator writes them (compact, `details` keys sorted), each in
/// M10's envelope.
fn page() -> Vec<String> {
    let team = r#""team_id":"","team_name":"william-faulkner""#;
    let details = [
        format!(
            r#"{{"actor":"{JASON}","client":"{LAPTOP}","session_type":"authenticated_client","target_server":"",{team},"trace_id":"Xk3p9QaB","type":"auth_token.issue","via":null}}"#
        ),
        format!(
            r#"{{"actor":"{JASON}","client":"{LAPTOP}","project":"{FURY}","servers":["{HARVARD}","{OXFORD}"],{team},"trace_id":"Lm4Qr7Tz","type":"user_creds.issue"}}"#
        ),
        format!(
            r#"{{"from_address":"203.0.113.24","project":"{FURY}","server":"{HARVARD}","ssh_algorithm":"ecdsa-sha2-nistp256-cert-v01@openssh.com","ssh_public_key":"SHA256:q2bS0y1vX0d3n2x8kq0mKlJb3aCk0ZbJx9vQ0s0Wk1c",{team},"trace_id":"Pq8Wn2Ds","type":"server.ssh_login","unix_user_name":"jason_compson_iv","user":"{JASON}"}}"#
        ),
        format!(
            r#"{{"actor":"{JASON}","client":"{LAPTOP}","gateway":"{JEFFERSON}","servers":["{OXFORD}"],{team},"trace_id":"Zt5Yh1Kc","type":"gateway_creds.issue"}}"#
        ),
        format!(
            r#"{{"actor":"{SHREVE}","group":"{COMPSONS}","target_user":"{QUENTIN}",{team},"trace_id":"Ab3Cd4Ef","type":"member.add"}}"#
        ),
        format!(
            r#"{{"actor":"{SHREVE}","target_user":"{QUENTIN}",{team},"trace_id":"Gh5Ij6Kl","type":"user.update","user_status":"ACTIVE"}}"#
        ),
        format!(
            r#"{{"actor":"{JASON}","client":"{LAPTOP}","from_address":"198.51.100.7","hostname":"Absalom",{team},"trace_id":"Mn7Op8Qr","type":"client.enroll"}}"#
        ),
        format!(
            r#"{{"actor":"","hostname":"harvard","project":"{FURY}","server":"{HARVARD}",{team},"trace_id":"St9Uv0Wx","type":"server.enroll"}}"#
        ),
        format!(
            r#"{{"from_address":"2001:db8::1f","project":"{FURY}","server":"{OXFORD}","ssh_algorithm":"ssh-ed25519","ssh_public_key":"SHA256:Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXg",{team},"trace_id":"Yz1Ab2Cd","type":"server.ssh_login","unix_user_name":"quentin_compson","user":"{QUENTIN}"}}"#
        ),
        format!(
            r#"{{"actor":"{JASON}","client":"{LAPTOP}","session_type":"authenticated_client","target_server":"",{team},"trace_id":"Ef3Gh4Ij","type":"auth_token.issue","via":null}}"#
        ),
    ];
    let batch = "2024-03-05T01:05:00.000Z b2Zmc2V0PTEwMA==";
    details
        .iter()
        .enumerate()
        .map(|(i, details)| {
            let event = format!(
                r#"{{"id":"ag801Wtj58WV8rIF2-HDk{i}==","timestamp":"2024-03-05T01:02:0{i}.123456789Z","details":{details}}}"#
            );
            let event = serde_json::value::RawValue::from_string(event).unwrap();
            teams::envelope("william-faulkner", batch, &event)
        })
        .collect()
}

/// S30's steps on one envelope, but the host's: the allocations, how many answers were asked
/// for, and the stored columns' texts.
fn store(
    input: &str,
    answers: &mut Answers,
    helpers: &HashMap<(Kind, &str), String>,
) -> (u64, u64, Vec<(&'static str, String)>) {
    let before = allocations();
    let mut asked = 0;
    let mut helper_allocations = 0;
    let (opened, plan) = teams::open_and_plan(input);
    answers.start(&opened.batch);
    let describe = |kind, reference: &str| {
        asked += 1;
        let before = allocations();
        let text = helpers.get(&(kind, reference)).cloned().unwrap_or_default();
        helper_allocations += allocations() - before;
        Ok::<_, ()>(text)
    };
    let mut row = plan.unwrap().resolve(answers, describe).unwrap();
    row.team = opened.team;
    let event = input.find(r#""event":"#).unwrap() + r#""event":"#.len();
    assert!(
        matches!(row.raw_event, Cow::Borrowed(raw) if std::ptr::eq(raw, &input[event..input.len() - 1])),
        "raw_event is the input's text, not a copy"
    );
    let stored = row.with_columns(|text| text, |columns| std::hint::black_box(columns.len()));
    let spent = allocations() - before - helper_allocations;
    let texts = row.with_columns(str::to_string, |columns| columns.to_vec());
    assert_eq!(texts.len(), stored);
    (spent, asked, texts)
}

#[test]
fn an_event_allocates_only_what_its_row_cannot_borrow() {
    let helpers = answers();
    let mut answers = Answers::default();
    let (mut total, mut total_asked) = (0, 0);
    for (i, input) in page().iter().enumerate() {
        let (spent, asked, texts) = store(input, &mut answers, &helpers);
        let raw_event = texts.iter().find(|(name, _)| *name == "raw_event").unwrap();
        let event: Value = serde_json::from_str(&raw_event.1).unwrap();
        let servers = event["details"]["servers"].as_array().map_or(0, Vec::len) as u64;
        let list = if servers > 0 { 2 } else { 0 };
        let joined = u64::from(servers > 1);
        let batch = u64::from(i == 0);
        let bound = 1 + list + joined + 2 * asked + batch;
        println!("event {i}: {spent} allocations ({asked} answers asked for)");
        assert!(spent <= bound, "event {i}: {spent} allocations, at most {bound} expected");
        let team = texts.iter().find(|(name, _)| *name == "team");
        assert_eq!(team.map(|(_, team)| team.as_str()), Some("william-faulkner"));
        total += spent;
        total_asked += asked;
    }
    println!("page: {total} allocations over 10 events, {total_asked} answers asked for");
    // Each distinct reference is described once in the batch.
    assert_eq!(total_asked, 9);
}

/// S20's input for a page of related objects shaped as the simulator writes them.
fn related_page() -> String {
    let user = |name: &str, t: &str| {
        json!({"deleted_at": null, "details": {"email": format!("{}@example.com", name.to_lowercase()), "first_name": "Jason", "full_name": "Jason Compson IV", "last_name": "Compson"},
        "id": "e4c22cba-f8ec-4beb-98f4-b1a03725b204", "name": name, "oauth_client_application_id": null, "role_grants": null, "status": "ACTIVE", "team_name": "", "user_type": t})
    };
    let server = |host: &str| {
        json!({"access_address": "10.1.3.11", "alt_names": [], "bastion": null, "canonical_name": null, "cloud_provider": "aws",
        "deleted_at": "0001-01-01T00:00:00Z", "hostname": host, "id": "0a49a1cf-c747-47a0-bb14-94b1edb9f3ee",
        "instance_details": {"account_id": "123456789012", "availability_zone": "us-east-1a", "instance_id": "i-0123456789abcdef0", "region": "us-east-1"},
        "labels": {"env": "prod", "tier": "web"}, "last_seen": "2024-03-05T01:01:00.000000000Z", "managed": true, "os": "Ubuntu 16.04", "os_type": "linux",
        "project_name": "the-sound-and-the-fury", "registered_at": "2023-01-01T00:00:00.000000000Z", "services": ["ssh"], "sftd_version": "1.44.4",
        "ssh_host_keys": null, "state": "ACTIVE", "team_name": "william-faulkner"})
    };
    let objects = json!({
        JASON: {"type": "user", "object": user("Jason.Compson.IV", "human")},
        QUENTIN: {"type": "user", "object": user("Quentin.Compson", "human")},
        SHREVE: {"type": "user", "object": user("shreve", "service")},
        LAPTOP: {"type": "client", "object": {"deleted_at": null,
          "description": "Personal laptop", "encrypted": true, "hostname": "Absalom", "id": "65d9e9d0-b0e5-48d9-aea6-420b9da6d1a3",
          "os": "macOS 10.14.6", "state": "ACTIVE", "user_name": "Jason.Compson.IV"}},
        HARVARD: {"type": "server", "object": server("harvard")},
        OXFORD: {"type": "server", "object": server("oxford")},
        FURY: {"type": "project", "object": {"create_server_users": true,
          "deleted_at": "0001-01-01T00:00:00Z", "force_shared_ssh_users": false, "id": "47534a0d-ba28-4a8b-b427-3a9fb276c033",
          "name": "the-sound-and-the-fury", "next_unix_gid": 63001, "next_unix_uid": 60001, "require_preauth_for_creds": true,
          "shared_admin_user_name": null, "shared_standard_user_name": null, "team": "william-faulkner", "user_on_demand_period": null}},
        COMPSONS: {"type": "group", "object": {"deleted_at": "0001-01-01T00:00:00Z",
          "federated_from_team": null, "federation_approved_at": null, "id": "57bc138b-63c2-4351-98d0-d72d8d6c1b74",
          "name": "compsons", "roles": ["access_user"]}},
        JEFFERSON: {"type": "gateway", "object": {"id": "d23f0824-128b-4f33-8c5c-7fd0a6a3a450",
          "name": "gw-jefferson", "access_address": "gw.example.com", "default_address": "10.0.0.5", "description": "",
          "cloud_provider": "", "refuse_connections": false, "labels": {}}}
    });
    format!(r#"{{"related_objects":{objects}}}"#)
}

/// S20 hands a page written as `serde_json` writes it (as the simulator does) to S21 object by
/// object, and S21 stores each, without reading any object into a `Value` (which took 36
/// allocations per object in S20, and again in S21). Per object, S20 writes S21's input (1), and
/// S21 makes its row (id, type and object: 3); neither builds a `serde_json` reader. Without
/// the SDK's (the row's cells).
#[test]
fn related_objects_are_handed_on_without_being_read() {
    let input = related_page();
    let before = allocations();
    let items = RelatedObjectsText::items_of(&input).expect("a page as serde_json writes it");
    let s20 = allocations() - before;
    let mut s21 = 0;
    for item in &items {
        let before = allocations();
        let row = RelatedItemText::row_of(item);
        s21 += allocations() - before;
        assert!(row.is_some(), "{item}");
    }
    let objects = items.len() as u64;
    println!("S20: {s20} allocations for {objects} objects; S21: {s21}");
    // S20: also the list of the page's members and the list of items (each growing).
    assert!(s20 <= objects + 10, "S20: {s20} allocations");
    assert!(s21 <= 3 * objects, "S21: {s21} allocations");
}
