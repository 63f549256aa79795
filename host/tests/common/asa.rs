//! The ASA package's test set-up: a simulator, a runtime whose U00/M10 may reach it, and
//! readers of the ASA tables.

use std::sync::Arc;

use flowhost::manifest::{Grants, HostPattern};
use flowhost::runtime::{RunReport, Runtime};
use serde_json::{json, Value};

use super::{ok, run, TestEnv};

pub struct Asa {
    pub sim: asa_sim::Sim,
    pub env: TestEnv,
    pub rt: Arc<Runtime>,
}

impl Asa {
    /// The test's config file with a `grants:` section that lets U00 and M10 reach the
    /// simulator (their manifests grant only `*.scaleft.com`), U00 also the secrets
    /// `u00_secrets`, and then `more` lines of that section (e.g. `"  O20: {hosts: [...]}\n"`).
    pub fn config_granting_sim(&self, u00_secrets: &[&str], more: &str) -> std::path::PathBuf {
        self.env.config_file(&format!(
            "{}{more}",
            sim_grants(&self.sim.base_url(), u00_secrets)
        ))
    }
}

/// A config's `grants:` section letting U00 and M10 reach `origin`, and U00 read the secrets
/// `u00_secrets` beyond its manifest's.
pub fn sim_grants(origin: &str, u00_secrets: &[&str]) -> String {
    let origin = origin.trim_end_matches('/');
    format!(
        "grants:\n  U00: {{hosts: [\"{origin}\"], secrets: [{}]}}\n  M10: {{hosts: [\"{origin}\"]}}\n",
        u00_secrets.join(", ")
    )
}

/// A simulator with `events` events, and a runtime whose U00/M10 may call it, configured with
/// page size `count` and a reset checkpoint.
pub async fn asa(events: u64, count: u32) -> Asa {
    asa_with(events, count, &[], |_| {}).await
}

/// As [`asa`], with more secrets and a chance to change the config before the runtime opens.
pub async fn asa_with(
    events: u64,
    count: u32,
    secrets: &[(&str, &str)],
    configure: impl FnOnce(&mut TestEnv),
) -> Asa {
    let cfg = asa_sim::SimConfig {
        events,
        ..Default::default()
    };
    asa_on(
        asa_sim::Sim::start(cfg).await.unwrap(),
        count,
        secrets,
        configure,
    )
    .await
}

/// As [`asa_with`], on a simulator the caller started. `secrets` come after the simulator's
/// key pair, so `("ASA_KEY_SECRET", "wrong")` gives bad credentials.
pub async fn asa_on(
    sim: asa_sim::Sim,
    count: u32,
    secrets: &[(&str, &str)],
    configure: impl FnOnce(&mut TestEnv),
) -> Asa {
    let mut all: Vec<(String, String)> = vec![
        ("ASA_KEY_ID".into(), sim.key_id().into()),
        ("ASA_KEY_SECRET".into(), sim.key_secret().into()),
    ];
    for (k, v) in secrets {
        all.retain(|(name, _)| name != k);
        all.push((k.to_string(), v.to_string()));
    }
    let pairs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut env = TestEnv::new().with_secrets(&pairs);
    let grant = Grants {
        hosts: vec![HostPattern::parse(&sim.base_url()).unwrap()],
        ..Default::default()
    };
    env.config.grants.insert("U00".into(), grant.clone());
    env.config.grants.insert("M10".into(), grant);
    configure(&mut env);
    let rt = env.runtime();
    let settings =
        json!({"asaTeam": sim.team(), "asaBaseUrl": sim.base_url(), "searchCount": count});
    ok(&rt, "U02", settings).await;
    ok(&rt, "U03", json!({})).await;
    Asa { sim, env, rt }
}

/// Runs M10 and whatever it requests until nothing is pending (`--until-idle`).
pub async fn drain(rt: &Arc<Runtime>) -> Vec<RunReport> {
    let mut reports = Vec::new();
    let mut pending = vec!["M10".to_string()];
    while let Some(flow) = pending.pop() {
        let r = run(rt, &flow, json!({})).await;
        assert!(r.ok(), "{flow} failed: {:?}", r.error);
        pending.extend(r.requests.iter().map(|q| q.flow.clone()));
        reports.push(r);
        assert!(reports.len() < 10_000, "M10 keeps requesting runs");
    }
    reports
}

pub fn rows(rt: &Runtime, table: &str) -> Vec<serde_json::Map<String, Value>> {
    let mut out = Vec::new();
    rt.store
        .export_rows(table, |r| -> Result<bool, flowhost::store::TableError> {
            out.push(r);
            Ok(true)
        })
        .unwrap();
    out
}

pub fn stored_ids(rt: &Runtime) -> Vec<String> {
    let mut ids: Vec<String> = rows(rt, "Audit Events")
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

pub fn sim_ids(sim: &asa_sim::Sim) -> Vec<String> {
    let mut ids = sim.event_ids();
    ids.sort();
    ids
}

pub fn notes(rt: &Runtime) -> Vec<(String, String)> {
    rows(rt, "Execution Log")
        .iter()
        .map(|r| {
            (
                r["eventswritten"].as_str().unwrap().to_string(),
                r["notes"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub fn checkpoint(rt: &Runtime) -> (String, f64) {
    let cp = rows(rt, "Audit Checkpoints");
    assert_eq!(cp.len(), 1, "{cp:?}");
    (
        cp[0]["LastOffset"].as_str().unwrap_or("").to_string(),
        cp[0]["LastCount"].as_f64().unwrap_or(-1.0),
    )
}

/// Runs M10 with `input` and whatever it requests, each with the input it was requested with
/// (as `run --until-idle` and `serve` do), until nothing is pending.
pub async fn drain_with(rt: &Arc<Runtime>, input: Value) -> Vec<RunReport> {
    let mut reports = Vec::new();
    let mut pending = std::collections::VecDeque::from([("M10".to_string(), input.to_string())]);
    while let Some((flow, input)) = pending.pop_front() {
        let r = rt
            .run(&flow, &input, flowhost::history::Trigger::Cli)
            .await
            .unwrap();
        assert!(r.ok(), "{flow} {input} failed: {:?}", r.error);
        pending.extend(r.requests.iter().map(|q| (q.flow.clone(), q.input.clone())));
        reports.push(r);
        assert!(reports.len() < 10_000, "M10 keeps requesting runs");
    }
    reports
}
