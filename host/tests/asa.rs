//! The ASA package end to end: the real flows (flows/dist) against the ASA simulator over
//! loopback HTTP, into a real SQLite file.

mod common;

use common::asa::{asa, asa_on, asa_with, checkpoint, drain, notes, rows, sim_ids, stored_ids};
use common::{ok, out, run, wait_until, TestEnv, PATIENCE};
use flowhost::history::RunStatus;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn backfill_then_partial_page_then_new_events() {
    let a = asa(250, 100).await;
    let reports = drain(&a.rt).await;
    // Two full pages (each asking for another run), then the last page of 50.
    let got: Vec<(u64, String)> = reports
        .iter()
        .map(|r| {
            (
                out(r)["events"].as_u64().unwrap(),
                out(r)["note"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (100, "Full page".into()),
            (100, "Full page".into()),
            (50, "First part page".into())
        ]
    );
    assert_eq!(stored_ids(&a.rt), sim_ids(&a.sim));
    let ids = a.sim.event_ids();
    assert_eq!(
        checkpoint(&a.rt),
        (ids[199].clone(), 50.0),
        "offset = last id of the last full page"
    );

    // Nothing new: the last page is polled again and nothing is written.
    let r = ok(&a.rt, "M10", json!({})).await;
    assert_eq!(
        (
            r["events"].as_u64(),
            r["written"].as_u64(),
            r["note"].as_str()
        ),
        (Some(50), Some(0), Some("No new events"))
    );

    // New events arrive: only they are written, no duplicates.
    a.sim.append_events(30);
    let r = ok(&a.rt, "M10", json!({})).await;
    assert_eq!(
        (
            r["events"].as_u64(),
            r["written"].as_u64(),
            r["note"].as_str()
        ),
        (Some(80), Some(30), Some("Subsequent part page"))
    );
    assert_eq!(stored_ids(&a.rt), sim_ids(&a.sim));
    assert_eq!(checkpoint(&a.rt).1, 80.0);

    let log = notes(&a.rt);
    assert_eq!(
        log,
        vec![
            ("0".into(), "Reset checkpoint".into()),
            ("100".into(), "Full page".into()),
            ("100".into(), "Full page".into()),
            ("50".into(), "First part page".into()),
            ("0".into(), "No new events".into()),
            ("30".into(), "Subsequent part page".into()),
        ]
    );
    // Every run is in history (the three of the backfill and the two after it, each ok, in
    // order), and the service token was fetched once and reused.
    let history = a.rt.history.list(Some("M10"), 100).unwrap();
    let mut ids: Vec<i64> = reports.iter().map(|r| r.id).collect();
    let outputs: Vec<Value> = history
        .iter()
        .rev()
        .map(|h| {
            assert_eq!(h.status, RunStatus::Ok, "{h:?}");
            serde_json::from_str(h.output.as_deref().unwrap()).unwrap()
        })
        .collect();
    assert_eq!(outputs.len(), 5, "{history:?}");
    assert_eq!(outputs[4], r);
    ids.extend(history.iter().take(2).rev().map(|h| h.id));
    assert_eq!(
        history.iter().rev().map(|h| h.id).collect::<Vec<_>>(),
        ids,
        "the runs in history are the runs made"
    );
    for settings in ["U02", "U03"] {
        let runs = a.rt.history.list(Some(settings), 10).unwrap();
        assert_eq!(runs.len(), 1, "{settings}: {runs:?}");
        assert_eq!(runs[0].status, RunStatus::Ok, "{settings}: {runs:?}");
    }
    assert_eq!(a.sim.stats().tokens_issued, 1);
}

/// M10 asks for the next page while it stores this one (`http.prefetch`): the run it requests
/// finds that page fetched already, and no page is fetched twice.
#[tokio::test(flavor = "multi_thread")]
async fn the_next_page_is_fetched_while_this_one_is_stored() {
    let a = asa(250, 100).await;
    let audit_requests = || a.sim.stats().audit_requests;
    ok(&a.rt, "M10", json!({})).await;
    wait_until(PATIENCE, "page 2 to be asked for ahead", || {
        audit_requests() >= 2
    })
    .await;
    assert_eq!(audit_requests(), 2, "page 1, then page 2 asked for ahead");
    let r = ok(&a.rt, "M10", json!({})).await;
    assert_eq!(
        (r["events"].as_u64(), r["written"].as_u64()),
        (Some(100), Some(100))
    );
    wait_until(PATIENCE, "page 3 to be asked for ahead", || {
        audit_requests() >= 3
    })
    .await;
    assert_eq!(
        audit_requests(),
        3,
        "page 2 came from the prefetch; page 3 asked for ahead"
    );
    let r = ok(&a.rt, "M10", json!({})).await;
    assert_eq!(r["note"], "First part page");
    assert_eq!(audit_requests(), 3);
    // The last page leaves nothing to fetch ahead: new events that arrive now are seen by the
    // next run, which asks for them itself (a page fetched ahead of them would hide them).
    a.sim.append_events(30);
    let r = ok(&a.rt, "M10", json!({})).await;
    assert_eq!(
        (r["written"].as_u64(), r["note"].as_str()),
        (Some(30), Some("Subsequent part page"))
    );
    assert_eq!(audit_requests(), 4);
    assert_eq!(stored_ids(&a.rt), sim_ids(&a.sim));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_last_page_as_long_as_a_full_page_is_not_lost() {
    // 200 events, pages of 100: the second page is full but has no `next` link. The template
    // compared its length with the previous page's and logged "No new events".
    let a = asa(200, 100).await;
    drain(&a.rt).await;
    assert_eq!(stored_ids(&a.rt).len(), 200);
    assert_eq!(stored_ids(&a.rt), sim_ids(&a.sim));
    a.sim.append_events(5);
    let reports = drain(&a.rt).await;
    assert_eq!(out(&reports[0])["note"], "Full page");
    assert_eq!(
        out(&reports[0])["written"],
        0,
        "the page was stored already"
    );
    assert_eq!(out(&reports[1])["note"], "First part page");
    assert_eq!(stored_ids(&a.rt), sim_ids(&a.sim));
}

/// What S30 should have made of `event`, computed here from the simulator's own data.
fn expected_row(sim: &asa_sim::Sim, event: &Value) -> serde_json::Map<String, Value> {
    let d = &event["details"];
    let text = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let describe = |r: &Value| -> String {
        let Some(r) = r.as_str().filter(|s| !s.is_empty()) else {
            return String::new();
        };
        let Some(rel) = sim.related_object(r) else {
            return String::new();
        };
        let o = &rel["object"];
        let f = |k: &str| text(&o[k]);
        match rel["type"].as_str().unwrap() {
            "user" => format!(
                "{} (status: {} , usertype: {})",
                f("name"),
                f("status"),
                f("user_type")
            ),
            "client" => format!(
                "{} (hostname: {}, OS: {}, state: {})",
                f("user_name"),
                f("hostname"),
                f("os"),
                f("state")
            ),
            "server" => format!(
                "{} (project: {}, canonical name: {}, access address: {}, OS: {}, OS type: {})",
                f("hostname"),
                f("project_name"),
                f("canonical_name"),
                f("access_address"),
                f("os"),
                f("os_type")
            ),
            "gateway" => format!(
                "{} (access_address: {}, default_address: {})",
                f("name"),
                f("access_address"),
                f("default_address")
            ),
            _ => f("name"),
        }
    };
    let is_ref = |v: &Value| v.as_str().is_some_and(|s| !s.is_empty());
    let first = |a: &str, b: &str| {
        if is_ref(&d[a]) {
            describe(&d[a])
        } else {
            describe(&d[b])
        }
    };
    let server = if is_ref(&d["server"]) {
        describe(&d["server"])
    } else {
        let list = d["servers"].as_array().cloned().unwrap_or_default();
        list.iter()
            .map(describe)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let ts = event["timestamp"].as_str().unwrap();
    let json = json!({
        "id": event["id"], "timestamp": format!("{}Z", &ts[..23]), "type": d["type"],
        "actor": describe(&d["actor"]), "user": first("target_user", "user"), "client": describe(&d["client"]),
        "group": first("group_id", "group"), "project": first("project_id", "project"),
        "hostname": text(&d["hostname"]), "server": server, "gateway": describe(&d["gateway"]),
        "from_addr": text(&d["from_address"]),
    });
    json.as_object().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_enrichment_string_matches_the_related_objects() {
    let a = asa(400, 1000).await;
    drain(&a.rt).await;
    let stored = rows(&a.rt, "Audit Events");
    assert_eq!(stored.len(), 400);
    let mut kinds = std::collections::BTreeSet::new();
    for row in &stored {
        let event = a.sim.event(row["id"].as_str().unwrap()).unwrap();
        let want = expected_row(&a.sim, &event);
        for (col, v) in &want {
            assert_eq!(&row[col], v, "column {col} of {}", row["id"]);
            if v.as_str().is_some_and(|s| !s.is_empty()) {
                kinds.insert(col.clone());
            }
        }
        // The raw event is the whole event, not just `details`.
        let raw: Value = serde_json::from_str(row["raw_event"].as_str().unwrap()).unwrap();
        assert_eq!(raw, event);
    }
    // The data exercised every enriched column.
    for col in [
        "actor",
        "user",
        "client",
        "group",
        "project",
        "server",
        "gateway",
        "from_addr",
    ] {
        assert!(kinds.contains(col), "no event filled `{col}`: {kinds:?}");
    }
    // The related objects of the last page are in their table, as S20/S21 store them.
    let related = rows(&a.rt, "Audit Related Objects");
    assert!(!related.is_empty());
    for r in related {
        let want = a.sim.related_object(r["id"].as_str().unwrap()).unwrap();
        assert_eq!(r["type"], want["type"]);
        assert_eq!(
            serde_json::from_str::<Value>(r["object"].as_str().unwrap()).unwrap(),
            want["object"]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_starts_over_without_doubles_and_purge_empties_the_table() {
    let a = asa(120, 50).await;
    drain(&a.rt).await;
    assert_eq!(stored_ids(&a.rt), sim_ids(&a.sim));

    ok(&a.rt, "U03", json!({})).await;
    assert_eq!(checkpoint(&a.rt), (String::new(), 0.0));
    let reports = drain(&a.rt).await;
    assert_eq!(out(&reports[0])["note"], "Full page");
    assert_eq!(
        stored_ids(&a.rt),
        sim_ids(&a.sim),
        "starting over stores no event twice"
    );

    let r = ok(&a.rt, "U04", json!({})).await;
    assert_eq!(r["deleted"], 120);
    assert!(rows(&a.rt, "Audit Events").is_empty());
    let log = notes(&a.rt);
    assert!(
        log.contains(&("0".into(), "Reset checkpoint".into())),
        "{log:?}"
    );
    assert!(
        log.contains(&("120".into(), "Cleared events table".into())),
        "{log:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_token_mid_backfill_is_renewed_once() {
    let a = asa(300, 50).await;
    ok(&a.rt, "M10", json!({})).await;
    ok(&a.rt, "M10", json!({})).await;
    assert_eq!(
        a.sim.stats().tokens_issued,
        1,
        "the token is cached between runs"
    );
    a.sim.expire_tokens();
    drain(&a.rt).await;
    assert_eq!(a.sim.stats().tokens_issued, 2);
    assert_eq!(stored_ids(&a.rt), sim_ids(&a.sim));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_page_moves_neither_checkpoint_nor_events() {
    // Without prefetching, so that the 500s below reach the run's own request.
    let a = asa_with(150, 50, &[], |env| env.config.http_prefetch = false).await;
    ok(&a.rt, "M10", json!({})).await;
    let before = (checkpoint(&a.rt), stored_ids(&a.rt), notes(&a.rt));
    // More 500s than M10's retry policy absorbs.
    a.sim.inject(asa_sim::Fault::Status(500), 6);
    let r = run(&a.rt, "M10", json!({})).await;
    assert!(!r.ok());
    assert!(r.error.as_deref().unwrap().contains("500"), "{:?}", r.error);
    assert_eq!((checkpoint(&a.rt), stored_ids(&a.rt), notes(&a.rt)), before);
    drain(&a.rt).await;
    assert_eq!(stored_ids(&a.rt), sim_ids(&a.sim));
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_are_checked_and_missing_team_is_explained() {
    let env = TestEnv::new();
    let rt = env.runtime();
    let r = run(&rt, "U01", json!({})).await;
    assert!(
        r.error.as_deref().unwrap().contains("asaTeam is not set"),
        "{:?}",
        r.error
    );
    let r = run(&rt, "U02", json!({"searchCount": 5000})).await;
    assert!(!r.ok(), "searchCount over 1000 is refused");
    let r = ok(&rt, "U02", json!({"asaTeam": "acme"})).await;
    assert_eq!(r["searchCount"], "100");
    assert_eq!(r["asaBaseUrl"], "https://app.scaleft.com");
}

/// ASA's docs give the base as `https://app.scaleft.com/v1/`, and team names are
/// case-insensitive while some deployments match the API path exactly: U02 stores one form of
/// each (the base without `/v1` and trailing slashes, the team in lower case), says what it
/// stored, and M10 then reaches the team's events.
#[tokio::test(flavor = "multi_thread")]
async fn a_v1_base_url_and_a_capitalised_team_are_stored_in_the_form_the_api_answers() {
    let sim = asa_sim::Sim::start(asa_sim::SimConfig {
        events: 120,
        team: "acme-corp".into(),
        team_case_sensitive: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let a = asa_on(sim, 50, &[], |_| {}).await;
    let base = a.sim.base_url().trim_end_matches('/').to_string();
    let stored = ok(
        &a.rt,
        "U02",
        json!({"asaTeam": "ACME-Corp", "asaBaseUrl": format!("{base}/v1/")}),
    )
    .await;
    assert_eq!(stored["asaTeam"], "acme-corp");
    assert_eq!(stored["asaBaseUrl"], base.as_str());
    drain(&a.rt).await;
    assert_eq!(stored_ids(&a.rt), sim_ids(&a.sim));
}
