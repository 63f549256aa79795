//! The ASA package at its edges (issue 16.2, 16.5, 16.7), end to end against the simulator:
//! U02 refuses a base URL M10 and U00 may not reach, naming the config lines that grant it;
//! an offset ASA no longer knows fails with what to do (`onLostOffset: fail`) or restarts from
//! the oldest event (`restart`); T00 reads one event and stores nothing.

mod common;

use std::path::Path;
use std::process::Output;

use common::asa::{asa, asa_with, checkpoint, drain, notes, rows, sim_ids, stored_ids};
use common::{err, error_line, ok, text, TestEnv};
use serde_json::{json, Value};

/// `flowhost --config CONFIG ARGS…`, with the simulator's key pair in the environment.
fn flowhost(config: &Path, sim: &asa_sim::Sim, args: &[&str]) -> Output {
    common::flowhost_cmd(config, args)
        .env("FLOWHOST_SECRET_ASA_KEY_ID", sim.key_id())
        .env("FLOWHOST_SECRET_ASA_KEY_SECRET", sim.key_secret())
        .output()
        .unwrap()
}

/// The Environment Variables row, as the table holds it.
fn settings(env: &TestEnv) -> serde_json::Map<String, Value> {
    let rt = env.runtime();
    let all = rows(&rt, "Environment Variables");
    assert_eq!(all.len(), 1, "{all:?}");
    all[0].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn u02_refuses_a_base_url_m10_and_u00_cannot_reach_and_accepts_it_once_the_config_grants_it()
{
    let sim = asa_sim::Sim::start(asa_sim::SimConfig {
        events: 30,
        ..Default::default()
    })
    .await
    .unwrap();
    let env = TestEnv::new();
    let base = sim.base_url();
    // No `grants:`: the simulator's origin is granted to neither M10 nor U00.
    let config = env.config_file("");
    let team = json!({"asaTeam": sim.team(), "searchCount": 10}).to_string();
    let out = flowhost(&config, &sim, &["run", "U02", "--input", &team]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let before = settings(&env);

    let input = json!({"asaBaseUrl": format!("{base}/v1/")}).to_string();
    let out = flowhost(&config, &sim, &["run", "U02", "--input", &input]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let line = error_line(&stderr);
    assert!(
        line.contains(&format!("asaBaseUrl \"{base}\" was not stored: {base} is not in the allowed hosts of M10 and U00")),
        "{line}"
    );
    let want = format!("grants: {{M10: {{hosts: [\"{base}\"]}}, U00: {{hosts: [\"{base}\"]}}}}");
    assert!(line.ends_with(&want), "{line}");
    assert_eq!(settings(&env), before, "a refused base URL writes nothing");

    // The line added to the config as the message says: U02 stores the URL, M10 collects.
    let grants = line.get(line.find("grants: {").unwrap()..).unwrap();
    let config = env.config_file(&format!("{grants}\n"));
    let out = flowhost(&config, &sim, &["run", "U02", "--input", &input]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(settings(&env)["asaBaseUrl"], base.as_str());
    let out = flowhost(&config, &sim, &["run", "U03"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = flowhost(&config, &sim, &["run", "M10", "--until-idle"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(stored_ids(&env.runtime()), sim_ids(&sim));
}

/// The index of the checkpoint's event in the simulator.
fn checkpoint_index(a: &common::asa::Asa) -> u64 {
    let (offset, _) = checkpoint(&a.rt);
    a.sim
        .event_index(&offset)
        .unwrap_or_else(|| panic!("checkpoint offset {offset:?} is no event"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_offset_fails_every_run_saying_what_to_do_until_u03() {
    let a = asa(250, 100).await;
    drain(&a.rt).await;
    let kept = checkpoint(&a.rt);
    let lost = kept.0.clone();
    // The checkpoint's event, and every one before it, ages out.
    a.sim.expire_oldest(checkpoint_index(&a) + 1);
    a.sim.append_events(20);
    let logged = notes(&a.rt).len();

    let want_end =
        "run U03 to start again from the oldest event, or set onLostOffset to restart with U02";
    for attempt in 1..=2 {
        let e = err(&a.rt, "M10", json!({})).await;
        assert!(
            e.contains(&format!("no longer knows the checkpoint offset {lost:?}"))
                && e.contains("HTTP 400 (invalid_request)")
                && e.ends_with(want_end),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        // The Execution Log keeps the failed run's row, saying the same; nothing else moved.
        let log = notes(&a.rt);
        assert_eq!(log.len(), logged + attempt, "{log:?}");
        let (written, note) = log.last().unwrap();
        assert_eq!(written, "0");
        assert!(e.ends_with(note.as_str()), "{e} / {note}");
        assert_eq!(checkpoint(&a.rt), kept);
        assert_eq!(stored_ids(&a.rt).len(), 250);
    }

    ok(&a.rt, "U03", json!({})).await;
    drain(&a.rt).await;
    // Everything the simulator ever served is stored once; the retained events are among it.
    assert_eq!(stored_ids(&a.rt), sim_ids(&a.sim));
    let stored = stored_ids(&a.rt);
    assert!(a.sim.retained_ids().iter().all(|id| stored.contains(id)));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_restart_a_lost_offset_is_logged_and_collection_starts_again_from_the_oldest() {
    let a = asa(250, 50).await;
    ok(&a.rt, "U02", json!({"onLostOffset": "Restart"})).await;
    assert_eq!(ok(&a.rt, "U01", json!({})).await["onLostOffset"], "restart");
    // Setting something else leaves it as it is.
    ok(&a.rt, "U02", json!({"searchCount": 50})).await;
    assert_eq!(ok(&a.rt, "U01", json!({})).await["onLostOffset"], "restart");
    drain(&a.rt).await;
    let lost = checkpoint(&a.rt).0;
    a.sim.expire_oldest(checkpoint_index(&a) + 1);
    a.sim.append_events(120);
    let logged = notes(&a.rt).len();

    let reports = drain(&a.rt).await;
    // The first run logs the lost offset and collects the oldest retained page at once.
    let first = common::out(&reports[0]);
    let retained = a.sim.retained_ids();
    assert_eq!(first["events"], 50, "{first}");
    assert!(
        reports.len() > 1,
        "a backlog of {} is drained",
        retained.len()
    );
    let log = notes(&a.rt);
    assert!(
        log[logged].1
            == format!("Lost offset {lost:?} (auditsV2 no longer knows it): onLostOffset is restart, collecting again from the oldest event")
            && log[logged].0 == "0",
        "{log:?}"
    );
    // Exactly the simulator's events (the aged-out ones stored before, the retained ones now),
    // each once; the next run finds nothing new rather than restarting again.
    assert_eq!(stored_ids(&a.rt), sim_ids(&a.sim));
    assert_eq!(
        rows(&a.rt, "Audit Events").len(),
        a.sim.event_ids().len(),
        "no duplicates"
    );
    let r = ok(&a.rt, "M10", json!({})).await;
    assert_eq!(r["written"], 0, "{r}");
    assert_eq!(notes(&a.rt).len(), log.len() + 1);
    assert!(retained.contains(&checkpoint(&a.rt).0) || checkpoint(&a.rt).0.is_empty());
}

/// Every table's rows, by table.
fn all_tables(
    rt: &flowhost::runtime::Runtime,
) -> Vec<(String, Vec<serde_json::Map<String, Value>>)> {
    let names: Vec<String> = rt.store.schemas().names().map(str::to_string).collect();
    names
        .into_iter()
        .map(|n| {
            let r = rows(rt, &n);
            (n, r)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn t00_reads_one_event_from_the_checkpoint_and_stores_nothing() {
    // T00 reaches the simulator only if the config grants it, like M10 (asa_with grants M10, U00).
    let a = asa_with(250, 100, &[], |env| {
        let m10 = env.config.grants["M10"].clone();
        env.config.grants.insert("T00".into(), m10);
    })
    .await;
    let ids = a.sim.event_ids();
    let before = all_tables(&a.rt);
    // A reset checkpoint: the oldest event.
    let seen = ok(&a.rt, "T00", json!({})).await;
    assert_eq!(seen["status"], 200, "{seen}");
    let events = seen["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{seen}");
    assert_eq!(events[0]["id"], ids[0].as_str());
    assert_eq!(seen["nextOffset"], ids[0].as_str());
    assert!(
        seen["url"].as_str().unwrap().ends_with("/auditsV2?count=1"),
        "{seen}"
    );
    assert!(seen["rateLimitRemaining"].as_u64().is_some(), "{seen}");
    assert_eq!(all_tables(&a.rt), before, "T00 stores nothing");

    // From the checkpoint's offset after a backfill.
    drain(&a.rt).await;
    let before = all_tables(&a.rt);
    let seen = ok(&a.rt, "T00", json!({})).await;
    assert_eq!(seen["events"][0]["id"], ids[200].as_str(), "{seen}");
    assert_eq!(seen["nextOffset"], ids[200].as_str(), "{seen}");
    assert_eq!(all_tables(&a.rt), before, "T00 stores nothing");

    // What the server answered is the result, also when it is an error.
    a.sim.expire_oldest(250);
    let seen = ok(&a.rt, "T00", json!({})).await;
    assert_eq!(seen["status"], 400, "{seen}");
    assert!(
        seen["error"].as_str().unwrap().contains("invalid_request"),
        "{seen}"
    );
    assert_eq!(all_tables(&a.rt), before, "T00 stores nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn u11_asks_u11a_whether_there_is_a_next_page() {
    let a = asa(0, 100).await;
    let link = "<https://h/v1/teams/t/auditsV2?count=1&offset=ab%3D%3D>; rel=\"next\"";
    let r = common::run(&a.rt, "U11", json!({ "link": link })).await;
    assert_eq!(common::out(&r)["offset"], "ab==");
    let rec = a.rt.history.get(r.id).unwrap().unwrap();
    let children: Vec<&str> = rec.children.iter().map(|c| c.flow.as_str()).collect();
    assert_eq!(children, ["U11a"]);
    assert_eq!(ok(&a.rt, "U11", json!({"link": ""})).await["offset"], "");
}
