//! Several ASA teams (issue 16.8), end to end: one simulator serving two teams with different
//! key pairs and event streams, the real flows, a real SQLite file; and a database written
//! before teams existed, migrated in place.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::asa::{asa_on, drain_with, rows, Asa};
use common::{err, ok, text, TestEnv};
use serde_json::{json, Value};

const ACME: &str = "acme";
const ACME_KEY_ID: &str = "3f1c2a7e-acme-4b1d-9c1e-000000000001";
const ACME_KEY_SECRET: &str = "YWNtZS1zZWNyZXQtb2YtYS1zZWNvbmQtdGVhbQ==";

/// A simulator serving the default team (`events`) and team acme (`acme_events`, another
/// seed and key pair).
async fn two_team_sim(events: u64, acme_events: u64) -> asa_sim::Sim {
    let cfg = asa_sim::SimConfig {
        events,
        extra_teams: vec![asa_sim::TeamConfig {
            team: ACME.into(),
            key_id: ACME_KEY_ID.into(),
            key_secret: ACME_KEY_SECRET.into(),
            events: acme_events,
            seed: 7,
        }],
        ..Default::default()
    };
    asa_sim::Sim::start(cfg).await.unwrap()
}

/// The ASA set-up on `sim` (default team set with U02, checkpoint reset), with acme's key pair
/// in the secrets file; `grant_acme`: the config grants those secrets to U00.
async fn asa_two(sim: asa_sim::Sim, count: u32, grant_acme: bool) -> Asa {
    let secrets = [
        ("ACME_KEY_ID", ACME_KEY_ID),
        ("ACME_KEY_SECRET", ACME_KEY_SECRET),
    ];
    asa_on(sim, count, &secrets, |env| {
        if grant_acme {
            let u00 = env.config.grants.get_mut("U00").unwrap();
            u00.secrets.insert("ACME_KEY_ID".into());
            u00.secrets.insert("ACME_KEY_SECRET".into());
        }
    })
    .await
}

/// U02 adds team acme, naming its key secrets.
async fn add_acme(a: &Asa, count: u32) -> Value {
    let settings = json!({"team": "ACME", "asaBaseUrl": a.sim.base_url(), "searchCount": count,
        "keyIdSecret": "ACME_KEY_ID", "keySecretSecret": "ACME_KEY_SECRET"});
    ok(&a.rt, "U02", settings).await
}

/// Audit Events ids by their `team` column (`""` for none), each list sorted.
fn ids_by_team(rt: &flowhost::runtime::Runtime) -> BTreeMap<String, Vec<String>> {
    let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rows(rt, "Audit Events") {
        let team = r
            .get("team")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        by.entry(team)
            .or_default()
            .push(r["id"].as_str().unwrap().to_string());
    }
    by.values_mut().for_each(|v| v.sort());
    by
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// `(team, LastOffset, LastCount)` of each Audit Checkpoints row, sorted by team.
fn checkpoints(rt: &flowhost::runtime::Runtime) -> Vec<(String, String, u64)> {
    let mut cps: Vec<_> = rows(rt, "Audit Checkpoints")
        .iter()
        .map(|r| {
            (
                r.get("team")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                r["LastOffset"].as_str().unwrap_or("").to_string(),
                r["LastCount"].as_f64().unwrap_or(-1.0) as u64,
            )
        })
        .collect();
    cps.sort();
    cps
}

/// `(eventswritten, notes)` of the Execution Log rows of `team`, in order.
fn team_notes(rt: &flowhost::runtime::Runtime, team: &str) -> Vec<(String, String)> {
    rows(rt, "Execution Log")
        .iter()
        .filter(|r| r.get("team").and_then(Value::as_str).unwrap_or("") == team)
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_string();
            (s("eventswritten"), s("notes"))
        })
        .collect()
}

fn logged(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, s)| (n.to_string(), s.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_teams_are_collected_each_with_its_own_keys_checkpoint_and_log() {
    let sim = two_team_sim(250, 130).await;
    let acme = sim.team_handle(ACME).unwrap();
    let a = asa_two(sim, 100, true).await;
    let wf = a.sim.team().to_string();
    // The added team's settings come back merged, its name in canonical form.
    let set = add_acme(&a, 100).await;
    assert_eq!(
        (
            &set["asaTeam"],
            &set["keyIdSecret"],
            &set["keySecretSecret"]
        ),
        (
            &json!(ACME),
            &json!("ACME_KEY_ID"),
            &json!("ACME_KEY_SECRET")
        )
    );
    assert_eq!(
        ok(&a.rt, "U05", json!({})).await,
        json!({"teams": [wf, ACME]})
    );
    // A key secret's name is checked like the host's secret names, and nothing is stored.
    let e = err(
        &a.rt,
        "U02",
        json!({"team": "globex", "keyIdSecret": "globex-key"}),
    )
    .await;
    assert!(
        e.contains("keyIdSecret \"globex-key\" must be a secret's name (letters, digits and '_')"),
        "{e}"
    );
    assert_eq!(
        ok(&a.rt, "U05", json!({})).await,
        json!({"teams": [wf, ACME]})
    );
    // The default team needed no new setting: its key secrets are the defaults.
    let u01 = ok(&a.rt, "U01", json!({})).await;
    assert_eq!(
        (&u01["asaTeam"], &u01["keyIdSecret"]),
        (&json!(wf), &json!("ASA_KEY_ID"))
    );

    // The schedule's `{}` asks for one run per team, and each drains its team.
    let reports = drain_with(&a.rt, json!({})).await;
    assert_eq!(
        serde_json::from_str::<Value>(reports[0].output.as_deref().unwrap()).unwrap(),
        json!({"teams": [wf, ACME]})
    );
    let by_team = ids_by_team(&a.rt);
    assert_eq!(by_team.keys().collect::<Vec<_>>(), [ACME, wf.as_str()]);
    assert_eq!(by_team[wf.as_str()], sorted(a.sim.event_ids()));
    assert_eq!(by_team[ACME], sorted(acme.event_ids()));
    // Each row keeps the event as its team's server sent it.
    for r in rows(&a.rt, "Audit Events")
        .iter()
        .filter(|r| r["team"] == ACME)
    {
        let id = r["id"].as_str().unwrap();
        let raw: Value = serde_json::from_str(r["raw_event"].as_str().unwrap()).unwrap();
        assert_eq!(Some(raw), acme.event(id), "{id}");
    }
    let (wf_ids, acme_ids) = (a.sim.event_ids(), acme.event_ids());
    assert_eq!(
        checkpoints(&a.rt),
        vec![
            (ACME.to_string(), acme_ids[99].clone(), 30),
            (wf.clone(), wf_ids[199].clone(), 50),
        ]
    );
    assert_eq!(
        team_notes(&a.rt, ACME),
        logged(&[("100", "Full page"), ("30", "First part page")])
    );
    assert_eq!(
        team_notes(&a.rt, &wf),
        logged(&[
            ("0", "Reset checkpoint"),
            ("100", "Full page"),
            ("100", "Full page"),
            ("50", "First part page")
        ])
    );
    // Each team got a token with its own key pair, once.
    assert_eq!(
        (a.sim.stats().tokens_issued, acme.stats().tokens_issued),
        (1, 1)
    );

    // New events of one team: only that team's run writes, the other's finds nothing new.
    acme.append_events(5);
    let r = ok(&a.rt, "M10", json!({"team": ACME})).await;
    assert_eq!(
        (&r["written"], &r["note"]),
        (&json!(5), &json!("Subsequent part page"))
    );
    let r = ok(&a.rt, "M10", json!({"team": wf})).await;
    assert_eq!(
        (&r["written"], &r["note"]),
        (&json!(0), &json!("No new events"))
    );
    assert_eq!(ids_by_team(&a.rt)[ACME], sorted(acme.event_ids()));

    // Resetting one team leaves the other's checkpoint alone.
    ok(&a.rt, "U03", json!({"team": ACME})).await;
    assert_eq!(
        checkpoints(&a.rt),
        vec![
            (ACME.to_string(), String::new(), 0),
            (wf.clone(), wf_ids[199].clone(), 50)
        ]
    );

    // A team without a row is named, with the teams there are and how to add it.
    let e = err(&a.rt, "M10", json!({"team": "globex"})).await;
    assert!(
        e.contains(&format!(
            "ASA team \"globex\" has no row (teams: {wf}, acme); add it with U02 {{\"team\": \"globex\""
        )),
        "{e}"
    );
    // The default team stays while another exists; acme can go.
    let e = err(&a.rt, "U02", json!({"team": wf, "remove": true})).await;
    assert!(
        e.contains("is the default team (the oldest row) and other teams exist (acme)"),
        "{e}"
    );
    ok(&a.rt, "U02", json!({"team": ACME, "remove": true})).await;
    assert_eq!(ok(&a.rt, "U05", json!({})).await, json!({"teams": [wf]}));
}

/// Offloading (O10, through U14) leaves every team's checkpoint page in the table, wherever
/// the other team's rows lie around it, so a run after the offload stores nothing twice.
#[tokio::test(flavor = "multi_thread")]
async fn offloading_keeps_every_teams_checkpoint_page() {
    let sim = two_team_sim(250, 130).await;
    let acme = sim.team_handle(ACME).unwrap();
    let a = asa_two(sim, 100, true).await;
    add_acme(&a, 100).await;
    drain_with(&a.rt, json!({})).await;
    // Stored in this order: default 100, acme 100, default 100, acme 30 (acme's checkpoint
    // page), default 50 (the default team's checkpoint page).
    let u14 = ok(&a.rt, "U14", json!({})).await;
    assert_eq!(
        u14,
        json!({"offloadable": 300, "stored": 380, "pending": 80})
    );
    let o10 = ok(&a.rt, "O10", json!({})).await;
    assert_eq!(o10["offloaded"], 300);
    let by_team = ids_by_team(&a.rt);
    let newest = |ids: Vec<String>, n: usize| sorted(ids[ids.len() - n..].to_vec());
    assert_eq!(by_team[ACME], newest(acme.event_ids(), 30));
    assert_eq!(by_team[a.sim.team()], newest(a.sim.event_ids(), 50));
    // Both teams poll their checkpoint page again: nothing is stored a second time.
    for team in [a.sim.team(), ACME] {
        let r = ok(&a.rt, "M10", json!({"team": team})).await;
        assert_eq!(
            (&r["written"], &r["note"]),
            (&json!(0), &json!("No new events")),
            "{team}"
        );
    }
    assert_eq!(rows(&a.rt, "Audit Events").len(), 80);
}

/// A second team whose key secrets the config does not grant to U00 fails with the host's
/// access-denied naming the secret; the default team keeps collecting.
#[tokio::test(flavor = "multi_thread")]
async fn a_team_whose_key_secrets_are_not_granted_fails_naming_the_secret() {
    let sim = two_team_sim(20, 20).await;
    let a = asa_two(sim, 100, false).await;
    add_acme(&a, 100).await;
    let e = err(&a.rt, "M10", json!({"team": ACME})).await;
    assert!(
        e.contains("secret `ACME_KEY_ID` is not granted to U00"),
        "{e}"
    );
    let r = ok(&a.rt, "M10", json!({"team": a.sim.team()})).await;
    assert_eq!(r["written"], 20);
    assert!(!e.contains(ACME_KEY_SECRET));
}

/// `run M10 --until-idle` runs the per-team runs that `{}` requests, and collects both teams.
#[tokio::test(flavor = "multi_thread")]
async fn run_until_idle_collects_every_team() {
    let sim = two_team_sim(25, 17).await;
    let acme = sim.team_handle(ACME).unwrap();
    let a = asa_two(sim, 10, true).await;
    add_acme(&a, 10).await;
    let config = a.config_granting_sim(&["ACME_KEY_ID", "ACME_KEY_SECRET"], "");
    let out = common::flowhost_async(&config, &["run", "M10", "--until-idle"]).await;
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(" events, 42 written"), "{stderr}");
    let by_team = ids_by_team(&a.rt);
    assert_eq!(by_team[a.sim.team()], sorted(a.sim.event_ids()));
    assert_eq!(by_team[ACME], sorted(acme.event_ids()));

    // `status` shows each team's events and checkpoint.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flowhost"))
        .arg("--config")
        .arg(&config)
        .arg("status")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (wf_ids, acme_ids) = (a.sim.event_ids(), acme.event_ids());
    for want in [
        format!(
            "  team {} (default): 25 events; checkpoint {} (5 of its page stored), written ",
            a.sim.team(),
            wf_ids[19]
        ),
        format!(
            "  team acme: 17 events; checkpoint {} (7 of its page stored), written ",
            acme_ids[9]
        ),
    ] {
        assert!(
            shown.lines().any(|l| l.starts_with(&want)),
            "no {want:?} in:\n{shown}"
        );
    }
}

/// `serve` (M10 every 300 ms) runs one M10 per team from each `{}` tick and collects both
/// teams exactly, with no failed run.
#[tokio::test(flavor = "multi_thread")]
async fn serve_collects_every_team() {
    let sim = two_team_sim(230, 170).await;
    let acme = sim.team_handle(ACME).unwrap();
    let flows = tempfile::tempdir().unwrap();
    let dir = flows.path().join("flows");
    common::copy_flows(&common::flows_dir("dist"), &dir, |name| {
        !name.starts_with("O10.") && !name.starts_with("O20.")
    });
    common::set_every(&dir, "M10", "300ms");
    let secrets = [
        ("ACME_KEY_ID", ACME_KEY_ID),
        ("ACME_KEY_SECRET", ACME_KEY_SECRET),
    ];
    let a = asa_on(sim, 50, &secrets, |env| {
        env.config.flows = vec![dir.clone()];
        env.config.builtin = false;
    })
    .await;
    add_acme(&a, 50).await;
    let config = a.config_granting_sim(&["ACME_KEY_ID", "ACME_KEY_SECRET"], "");
    common::enable(&config, "M10");
    let serve = common::process::Flowhost::spawn(&config, &["serve"], &[]);
    let want = (sorted(a.sim.event_ids()), sorted(acme.event_ids()));
    common::wait_until(common::PATIENCE, "serve to collect both teams", || {
        let by = ids_by_team(&a.rt);
        let got = |t: &str| by.get(t).cloned().unwrap_or_default();
        (got(a.sim.team()), got(ACME)) == want
    })
    .await;
    serve.signal(libc::SIGTERM);
    let (status, lines) = serve.finish();
    assert!(status.success(), "{}", lines.join("\n"));
    let runs = a.rt.history.list(Some("M10"), 1000).unwrap();
    assert!(
        runs.iter().all(|r| {
            use flowhost::history::RunStatus;
            matches!(r.status, RunStatus::Ok | RunStatus::Skipped)
        }),
        "{runs:?}"
    );
    let inputs: std::collections::BTreeSet<String> = runs.iter().map(|r| r.input.clone()).collect();
    assert!(inputs.contains(r#"{"team":"acme"}"#), "{inputs:?}");
}

/// The table schemas as they were before teams: `tables/` without the new columns.
fn tables_before_teams(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for entry in std::fs::read_dir(common::root().join("tables")).unwrap() {
        let path = entry.unwrap().path();
        let old: String = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .filter(|l| {
                ![
                    "name: team,",
                    "name: keyIdSecret,",
                    "name: keySecretSecret,",
                ]
                .iter()
                .any(|c| l.contains(c))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(dir.join(path.file_name().unwrap()), old).unwrap();
    }
}

/// A database written before teams existed (no `team` columns; one settings row, one
/// checkpoint row, the first page stored) migrates in place when opened: the default team
/// keeps collecting from its checkpoint without doubles, claims the old checkpoint row, and a
/// second team added afterwards is collected beside it.
#[tokio::test(flavor = "multi_thread")]
async fn a_database_from_before_teams_migrates_in_place_and_keeps_collecting() {
    let sim = two_team_sim(250, 60).await;
    let acme = sim.team_handle(ACME).unwrap();
    let ids = sim.event_ids();
    // 1. The old schema, and the rows the package wrote with it after its first full page.
    let mut env = TestEnv::new();
    // U02 stores only a base URL M10 and U00 may reach.
    let mut grant = flowhost::manifest::Grants {
        hosts: vec![flowhost::manifest::HostPattern::parse(&sim.base_url()).unwrap()],
        ..Default::default()
    };
    env.config.grants.insert("M10".into(), grant.clone());
    grant
        .secrets
        .extend(["ACME_KEY_ID".to_string(), "ACME_KEY_SECRET".to_string()]);
    env.config.grants.insert("U00".into(), grant);
    let old_tables = env.dir.path().join("old-tables");
    tables_before_teams(&old_tables);
    let new_tables = std::mem::replace(&mut env.config.tables[0], old_tables);
    {
        let rt = env.runtime();
        ok(
            &rt,
            "U02",
            json!({"asaTeam": sim.team(), "asaBaseUrl": sim.base_url(), "searchCount": 100}),
        )
        .await;
        let mut txn = rt.store.begin().unwrap();
        let obj = |v: Value| v.as_object().unwrap().clone();
        let no_team = txn.insert("Audit Checkpoints", &obj(json!({"team": "x"})));
        assert!(no_team.is_err(), "the old schema has no team column");
        txn.insert(
            "Audit Checkpoints",
            &obj(json!({"LastOffset": ids[99], "LastCount": 0})),
        )
        .unwrap();
        for id in &ids[..100] {
            let raw = sim.event(id).unwrap().to_string();
            txn.insert("Audit Events", &obj(json!({"id": id, "raw_event": raw})))
                .unwrap();
        }
        txn.insert(
            "Execution Log",
            &obj(json!({"datetime": "2024-03-05T00:00:00.000Z", "eventswritten": "100", "notes": "Full page"})),
        )
        .unwrap();
        txn.commit().unwrap();
    }
    // 2. Today's schema on the same file: the columns are added in place.
    env.config.tables[0] = new_tables;
    let secrets = [
        ("ASA_KEY_ID", sim.key_id()),
        ("ASA_KEY_SECRET", sim.key_secret()),
        ("ACME_KEY_ID", ACME_KEY_ID),
        ("ACME_KEY_SECRET", ACME_KEY_SECRET),
    ];
    let env = env.with_secrets(&secrets);
    let rt = env.runtime();

    // The default team needs nothing new: `{}` carries on from the old checkpoint.
    let reports = drain_with(&rt, json!({})).await;
    let written: u64 = reports
        .iter()
        .map(|r| common::out(r)["written"].as_u64().unwrap())
        .sum();
    assert_eq!(written, 150, "only the events after the old checkpoint");
    let by_team = ids_by_team(&rt);
    assert_eq!(
        by_team[""],
        sorted(ids[..100].to_vec()),
        "old rows stay as they were"
    );
    let mut all: Vec<String> = by_team.values().flatten().cloned().collect();
    all.sort();
    assert_eq!(all, sorted(ids.clone()), "every event once");
    // The old checkpoint row was claimed by the default team (no second row).
    assert_eq!(
        checkpoints(&rt),
        vec![(sim.team().to_string(), ids[199].clone(), 50)]
    );

    // A second team added now is collected beside the first.
    let settings = json!({"team": ACME, "asaBaseUrl": sim.base_url(), "searchCount": 100,
        "keyIdSecret": "ACME_KEY_ID", "keySecretSecret": "ACME_KEY_SECRET"});
    ok(&rt, "U02", settings).await;
    drain_with(&rt, json!({})).await;
    let by_team = ids_by_team(&rt);
    assert_eq!(by_team[ACME], sorted(acme.event_ids()));
    assert_eq!(by_team[""].len() + by_team[sim.team()].len(), 250);
    assert_eq!(checkpoints(&rt).len(), 2);
}

/// `check` reads every team's row: a team whose key secrets U00 is not granted is an error
/// with the config lines that grant them; `check --connect` then asks ASA with each team's own
/// key pair, and says for which team what answered.
#[tokio::test(flavor = "multi_thread")]
async fn check_and_connect_cover_every_team_with_its_own_key_pair() {
    let sim = two_team_sim(3, 2).await;
    let a = asa_two(sim, 100, false).await;
    add_acme(&a, 100).await;
    let (base, wf) = (a.sim.base_url(), a.sim.team().to_string());
    let check = |config: std::path::PathBuf, args: &'static [&'static str]| async move {
        let out = common::flowhost_async(&config, args).await;
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };

    // acme's secrets are set but not granted: an error naming them, with the grant to add.
    let config = a.config_granting_sim(&[], "");
    let (code, out, _) = check(config.clone(), &["check"]).await;
    assert_eq!(code, Some(1), "{out}");
    let error = out
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default();
    assert!(
        error.contains(&format!(
            "grants.U00.secrets: team `{ACME}`'s key pair is in the secrets `ACME_KEY_ID` and \
             `ACME_KEY_SECRET` (Environment Variables.keyIdSecret, keySecretSecret), which U00 \
             is not granted"
        )),
        "{out}"
    );
    assert_eq!(out.matches("error: ").count(), 1, "{out}");
    assert!(
        out.lines().any(|l| l.trim_start().starts_with("U00:"))
            && out.contains("secrets: [\"ACME_KEY_ID\", \"ACME_KEY_SECRET\"]"),
        "the fix grants both: {out}"
    );
    // --connect asks for the default team only, and says why not for acme.
    let tokens = a.sim.stats().tokens_issued;
    let (code, out, _) = check(config, &["check", "--connect"]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with(&format!(
            "connect: team `{wf}`: POST {base}/v1/teams/{wf}/service_token: HTTP 200"
        ))),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "error: connect: team `{ACME}`: ASA not contacted: U00 is not granted the secrets \
             ACME_KEY_ID and ACME_KEY_SECRET"
        )),
        "{out}"
    );
    assert_eq!(a.sim.stats().tokens_issued, tokens + 1);

    // Granted (the fix applied): both teams answer, each with its own key pair.
    let config = a.config_granting_sim(&["ACME_KEY_ID", "ACME_KEY_SECRET"], "");
    let (code, out, err) = check(config.clone(), &["check", "--connect"]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    for (team, events) in [(wf.as_str(), 1), (ACME, 1)] {
        for line in [
            format!("connect: team `{team}`: POST {base}/v1/teams/{team}/service_token: HTTP 200"),
            format!(
                "connect: team `{team}`: GET {base}/v1/teams/{team}/auditsV2?count=1: HTTP 200, \
                 a page with {events} event"
            ),
        ] {
            assert!(out.lines().any(|l| l.starts_with(&line)), "{line}\n{out}");
        }
    }
    assert!(!out.contains(ACME_KEY_SECRET) && !out.contains(a.sim.key_secret()));
    let (code, json, _) = check(config, &["check", "--connect", "--json"]).await;
    assert_eq!(code, Some(0));
    let json: Value = serde_json::from_str(&json).unwrap();
    let teams: Vec<&str> = json["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["team"].as_str().unwrap())
        .collect();
    assert_eq!(teams, [wf.as_str(), ACME]);
    assert_eq!(json["teams"][1]["key_id_secret"], "ACME_KEY_ID");
    assert_eq!(json["connect_teams"][1]["team"], ACME);
    assert_eq!(json["connect_teams"][1]["page"]["status"], 200);
    assert_eq!(
        json["connect"]["team"],
        wf.as_str(),
        "the default team's, as before"
    );
    // Nothing was stored.
    assert_eq!(rows(&a.rt, "Audit Events").len(), 0);
}
