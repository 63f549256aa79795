//! Issue 16.4 and 16.6 end to end, against the ASA simulator with odd events in its stream:
//! events that cannot be stored go whole into Rejected Events while the rest of their page is
//! stored and collection goes on; `status` and `/metrics` count them; and the enrichment edge
//! cases (an unknown `target_user`, a server listed twice) come out right.

mod common;

use asa_sim::{OddEvent, Sim, SimConfig};
use common::asa::{asa_on, checkpoint, drain, rows, stored_ids, Asa};
use common::process::Flowhost;
use common::{ok, text};
use flowhost::history::RunStatus;
use serde_json::{json, Map, Value};

/// A simulator with `events` events and `odd` ones among them, and the package set up on it
/// (page size `count`), M10 not yet run.
async fn asa_with_odd(events: u64, count: u32, odd: &[(u64, OddEvent)]) -> Asa {
    let sim = Sim::start(SimConfig {
        events,
        odd_events: odd.to_vec(),
        ..Default::default()
    })
    .await
    .unwrap();
    asa_on(sim, count, &[], |env| env.config.builtin = false).await
}

/// The simulator's ids that a consumer must store, sorted like [`stored_ids`].
fn good_ids(sim: &Sim) -> Vec<String> {
    let mut ids = sim.stored_event_ids();
    ids.sort();
    ids
}

/// Rejected Events by key.
fn rejected(a: &Asa) -> std::collections::BTreeMap<String, Map<String, Value>> {
    rows(&a.rt, "Rejected Events")
        .into_iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r))
        .collect()
}

/// Execution Log rows as (eventswritten, notes, eventsrejected).
fn log(a: &Asa) -> Vec<(String, String, String)> {
    rows(&a.rt, "Execution Log")
        .iter()
        .map(|r| {
            let t = |c: &str| r[c].as_str().unwrap_or("").to_string();
            (t("eventswritten"), t("notes"), t("eventsrejected"))
        })
        .collect()
}

fn entry(written: &str, note: &str, rejected: &str) -> (String, String, String) {
    (written.into(), note.into(), rejected.into())
}

#[tokio::test(flavor = "multi_thread")]
async fn poison_events_are_quarantined_once_and_the_rest_of_each_page_is_stored() {
    // Pages of 100 over 250 events: poison on the first full page (one of them its last
    // event, whose id is the next page's offset), on the second, and on the last page (one
    // its last event); one more arrives later with new events.
    let odd = [
        (5, OddEvent::NoId),
        (99, OddEvent::NumericId),
        (150, OddEvent::NotAnObject),
        (230, OddEvent::NoId),
        (249, OddEvent::NumericId),
        (255, OddEvent::NotAnObject),
    ];
    let a = asa_with_odd(250, 100, &odd).await;
    let reports = drain(&a.rt).await;
    let got: Vec<(Value, Value, Value)> = reports
        .iter()
        .map(|r| {
            let o = common::out(r);
            (
                o["written"].clone(),
                o["rejected"].clone(),
                o["note"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (json!(98), json!(2), json!("Full page")),
            (json!(99), json!(1), json!("Full page")),
            (json!(48), json!(2), json!("First part page")),
        ]
    );
    assert_eq!(stored_ids(&a.rt), good_ids(&a.sim));
    assert_eq!(stored_ids(&a.rt).len(), 245);

    // Each poison event once, whole as served, at `<team>/<offset the page was fetched
    // with>#<index>`, with its team.
    let ids = a.sim.event_ids();
    let no_id = "no `id`";
    let want = |pairs: &[(&str, u64, u64, String)]| {
        let poison: std::collections::BTreeMap<u64, String> =
            a.sim.poison_events().into_iter().collect();
        pairs
            .iter()
            .map(|(offset, index, event, reason)| {
                (
                    format!("{}/{offset}#{index}", a.sim.team()),
                    (
                        offset.to_string(),
                        *index,
                        reason.clone(),
                        poison[event].clone(),
                    ),
                )
            })
            .collect::<Vec<_>>()
    };
    let seen = |a: &Asa| {
        rejected(a)
            .into_iter()
            .map(|(key, r)| {
                (
                    key,
                    (
                        r["page_offset"].as_str().unwrap().to_string(),
                        r["page_index"].as_f64().unwrap() as u64,
                        r["reason"].as_str().unwrap().to_string(),
                        r["raw_event"].as_str().unwrap().to_string(),
                    ),
                )
            })
            .collect::<Vec<_>>()
    };
    let mut expected = want(&[
        ("", 5, 5, no_id.into()),
        ("", 99, 99, "`id` must be a non-empty string, not 99".into()),
        (
            &ids[99],
            50,
            150,
            r#"expected a JSON object, not "garbled audit event 150""#.into(),
        ),
        (&ids[199], 30, 230, no_id.into()),
        (
            &ids[199],
            49,
            249,
            "`id` must be a non-empty string, not 249".into(),
        ),
    ]);
    expected.sort();
    assert_eq!(seen(&a), expected);
    assert!(
        rejected(&a)
            .values()
            .all(|r| r["team"] == json!(a.sim.team())),
        "{:?}",
        rejected(&a)
    );
    let first_rejected: Vec<Value> = rejected(&a)
        .values()
        .map(|r| r["rejected_at"].clone())
        .collect();
    assert!(
        first_rejected
            .iter()
            .all(|t| t.as_str().unwrap().parse::<jiff::Timestamp>().is_ok()),
        "{first_rejected:?}"
    );

    // The last page polled again: nothing new, nothing rejected twice.
    let r = ok(&a.rt, "M10", json!({})).await;
    assert_eq!(
        (&r["note"], &r["written"], &r["rejected"]),
        (&json!("No new events"), &json!(0), &json!(0))
    );
    assert_eq!(seen(&a), expected);

    // New events, one of them poison: the two known poison events of the page are not
    // recorded again (their first rejection time stays), the new one is.
    a.sim.append_events(10);
    let r = ok(&a.rt, "M10", json!({})).await;
    assert_eq!(
        (&r["note"], &r["written"], &r["rejected"]),
        (&json!("Subsequent part page"), &json!(9), &json!(1))
    );
    assert_eq!(checkpoint(&a.rt), (ids[199].clone(), 60.0));
    let r = ok(&a.rt, "M10", json!({})).await;
    assert_eq!(r["note"], "No new events");
    expected.extend(want(&[(
        &ids[199],
        55,
        255,
        r#"expected a JSON object, not "garbled audit event 255""#.into(),
    )]));
    expected.sort();
    assert_eq!(seen(&a), expected);
    let still: Vec<Value> = rejected(&a)
        .iter()
        .filter(|(k, _)| !k.ends_with("#55"))
        .map(|(_, r)| r["rejected_at"].clone())
        .collect();
    assert_eq!(still, first_rejected);
    assert_eq!(stored_ids(&a.rt), good_ids(&a.sim));

    assert_eq!(
        log(&a),
        [
            entry("0", "Reset checkpoint", "0"),
            entry("98", "Full page", "2"),
            entry("99", "Full page", "1"),
            entry("48", "First part page", "2"),
            entry("0", "No new events", "0"),
            entry("9", "Subsequent part page", "1"),
            entry("0", "No new events", "0"),
        ]
    );
    let m10 = a.rt.history.list(Some("M10"), 100).unwrap();
    assert_eq!(m10.len(), 6);
    assert!(m10.iter().all(|h| h.status == RunStatus::Ok), "{m10:?}");
}

/// `flowhost status` (text and `--json`) and `serve`'s `/metrics` count Rejected Events.
#[tokio::test(flavor = "multi_thread")]
async fn status_and_metrics_count_the_rejected_events() {
    let odd = [(7, OddEvent::NoId), (61, OddEvent::NotAnObject)];
    let a = asa_with_odd(80, 50, &odd).await;
    drain(&a.rt).await;
    assert_eq!(rows(&a.rt, "Rejected Events").len(), 2);
    let config = a.config_granting_sim(&[], "");

    let out = common::flowhost(&config, &["status", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["asa"]["rejected_events"], 2, "{s:#}");
    assert_eq!(s["asa"]["rows"]["Rejected Events"], 2, "{s:#}");

    let out = common::flowhost(&config, &["status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.lines().any(|l| l.trim_start().starts_with(
            "rejected events: 2 (ASA sent them but they could not be stored: see table Rejected Events)"
        )),
        "{shown}"
    );

    let mut serve = Flowhost::spawn(
        &config,
        &["serve", "--listen", "127.0.0.1:0"],
        &[("RUST_LOG", "info")],
    );
    let origin = serve.listening();
    let body = reqwest::get(format!("{origin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.lines().any(|l| l == "flowhost_asa_rejected_events 2"),
        "{body}"
    );
    serve.signal(libc::SIGTERM);
    let (status, _) = serve.finish();
    assert!(status.success());
}

/// Issue 16.6 through the simulator: a `target_user` missing from the page's related objects
/// falls back to `user`, and a server listed twice in `servers` is shown once.
#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_target_user_falls_back_to_user_and_a_repeated_server_shows_once() {
    let odd = [
        (3, OddEvent::UnknownTargetUser),
        (4, OddEvent::RepeatedServer),
    ];
    let a = asa_with_odd(10, 100, &odd).await;
    drain(&a.rt).await;
    let stored: std::collections::BTreeMap<String, Map<String, Value>> =
        rows(&a.rt, "Audit Events")
            .into_iter()
            .map(|r| (r["id"].as_str().unwrap().to_string(), r))
            .collect();
    // What the helper flows say of a reference, with the page's related objects stored.
    let describe = |flow: &'static str, reference: Value| {
        let rt = a.rt.clone();
        async move {
            let out = ok(&rt, flow, json!({ "ref": reference })).await;
            out["text"].as_str().unwrap().to_string()
        }
    };

    let event = a.sim.event(&a.sim.event_id(3).unwrap()).unwrap();
    assert_eq!(event["details"]["target_user"], asa_sim::UNKNOWN_REF);
    let user = describe("S37", event["details"]["user"].clone()).await;
    assert!(!user.is_empty());
    assert_eq!(stored[event["id"].as_str().unwrap()]["user"], user.as_str());

    let event = a.sim.event(&a.sim.event_id(4).unwrap()).unwrap();
    let servers = event["details"]["servers"].as_array().unwrap().clone();
    assert_eq!(servers.len(), 3);
    assert_eq!(servers[0], servers[2]);
    let first = describe("S36", servers[0].clone()).await;
    let second = describe("S36", servers[1].clone()).await;
    assert_eq!(
        stored[event["id"].as_str().unwrap()]["server"],
        format!("{first}; {second}").as_str()
    );
    assert_eq!(stored.len(), 10);
}

/// A database whose Execution Log predates `eventsrejected` gains the column in place: the old
/// rows stay (the column empty), M10's new rows fill it.
#[tokio::test(flavor = "multi_thread")]
async fn an_existing_execution_log_gains_eventsrejected_in_place() {
    let sim = Sim::start(SimConfig {
        events: 20,
        odd_events: vec![(2, OddEvent::NoId)],
        ..Default::default()
    })
    .await
    .unwrap();
    let a = asa_on(sim, 100, &[], |env| {
        // The shipped tables as they were: Execution Log with the template's three columns.
        let old = env.dir.path().join("old-tables");
        common::copy_flows(&common::root().join("tables"), &old, |name| {
            name != "rejected-events.yaml"
        });
        std::fs::write(
            old.join("execution-log.yaml"),
            "name: Execution Log\ncolumns:\n  - { name: datetime, type: text }\n  \
             - { name: eventswritten, type: text }\n  - { name: notes, type: text }\n",
        )
        .unwrap();
        let mut then = env.config.clone();
        then.tables[0] = old;
        let rt = then.open_runtime().unwrap();
        let mut txn = rt.store.begin().unwrap();
        let row = json!({"datetime": "2024-03-05T00:00:00.000Z", "eventswritten": "7", "notes": "Full page"});
        txn.insert("Execution Log", row.as_object().unwrap()).unwrap();
        txn.commit().unwrap();
    })
    .await;
    drain(&a.rt).await;
    assert_eq!(
        log(&a),
        [
            entry("7", "Full page", ""),
            entry("0", "Reset checkpoint", "0"),
            entry("19", "First part page", "1"),
        ]
    );
    assert_eq!(stored_ids(&a.rt), good_ids(&a.sim));
}
