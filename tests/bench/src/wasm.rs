//! The full WASM chain: M10 → U00/U01/U10/U11/U12/U13/U20, S20 → S21, S30/S31 → S32–S37,
//! through `flowhost::runtime::Runtime` exactly as `flowhost run M10 --until-idle` drives it,
//! into a fresh SQLite file (`wasm`) or a fresh database on a throwaway PostgreSQL server the
//! child starts itself (`wasm-pg`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use flowhost::config::Config;
use flowhost::database::Database;
use flowhost::history::Trigger;
use flowhost::manifest::{Grants, HostPattern};
use flowhost::runtime::{RunRequest, Runtime};
use serde_json::json;

use crate::measure::{self, CpuMark};
use crate::report::{FlowStat, Ingest, Part};
use crate::Env;
pub use flowhost_bench::setup::{blob_stores, prewarm, tokio_runtime, warn_load_errors};

/// Every flow the chain calls, compiled (or loaded from the cache) before the clock starts.
/// (U05, which M10 asks for the teams, and U11a, which U11 calls, were missing: with a cold
/// cache, as under `--perf`, they were compiled inside the measured drain.)
pub const CHAIN: [&str; 22] = [
    "M10", "U00", "U01", "U05", "U10", "U11", "U11a", "U12", "U13", "U20", "S20", "S21", "S30",
    "S31", "S32", "S33", "S34", "S35", "S36", "S37", "U02", "U03",
];

/// Writes a 0600 secrets file.
pub fn write_secrets(path: &std::path::Path, pairs: &[(&str, &str)]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let text: String = pairs
        .iter()
        .map(|(k, v)| format!("{k}: \"{v}\"\n"))
        .collect();
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// Where the chain's tables and run history go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `flowhost.db` (and its history file) in the run's temporary directory.
    Sqlite,
    /// A database on a throwaway PostgreSQL server, tables and history in one.
    Postgres,
}

/// A runtime over flows/dist and tables/ in `dir` (tables and history in `db`), whose
/// U00/M10 may call the simulator.
pub fn asa_runtime(
    env: &Env,
    dir: &std::path::Path,
    db: Database,
    sim: &asa_sim::Sim,
    cache_dir: PathBuf,
) -> Result<Arc<Runtime>> {
    let secrets = dir.join("secrets.yaml");
    write_secrets(
        &secrets,
        &[
            ("ASA_KEY_ID", sim.key_id()),
            ("ASA_KEY_SECRET", sim.key_secret()),
        ],
    )?;
    let mut config = Config {
        db,
        flows: vec![env.root.join("flows/dist")],
        tables: vec![env.root.join("tables")],
        secrets_file: Some(secrets),
        cache_dir: Some(cache_dir),
        blobs: blob_stores(dir),
        ..Config::with_state_dir(dir)
    };
    let grant = Grants {
        hosts: vec![HostPattern::parse(&sim.base_url()).map_err(|e| anyhow!(e))?],
        ..Default::default()
    };
    config.grants.insert("U00".into(), grant.clone());
    config.grants.insert("M10".into(), grant);
    let rt = config.open_runtime().map_err(|e| anyhow!("{e}"))?;
    warn_load_errors(&rt);
    Ok(rt)
}

/// Runs `flow` at top level; its output JSON, or the run's error.
pub async fn ok(
    rt: &Arc<Runtime>,
    flow: &str,
    input: serde_json::Value,
) -> Result<serde_json::Value> {
    let r = rt.run(flow, &input.to_string(), Trigger::Cli).await?;
    if !r.ok() {
        bail!("{flow} failed: {}", r.error.unwrap_or_default());
    }
    Ok(serde_json::from_str(r.output.as_deref().unwrap_or("null"))?)
}

/// Under `--perf`: compiles the chain into a fresh cache one flow at a time, noting which
/// `.cwasm` file each flow became, so that the profile can name the guest code of each flow.
/// (Later runtimes load those files mapped, which is what makes them visible to perf.)
fn map_cwasm(
    env: &Env,
    dir: &Path,
    sim: &asa_sim::Sim,
    cache: &Path,
) -> Result<BTreeMap<String, String>> {
    let list = || -> BTreeSet<String> {
        std::fs::read_dir(cache)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".cwasm"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let rt = asa_runtime(
        env,
        dir,
        dir.join("flowhost.db").into(),
        sim,
        cache.to_path_buf(),
    )?;
    let mut names = BTreeMap::new();
    for flow in CHAIN {
        let before = list();
        prewarm(&rt, &[flow])?;
        for f in list().difference(&before) {
            names.insert(f.clone(), flow.to_string());
        }
    }
    Ok(names)
}

pub fn run(env: &Env, backend: Backend) -> Result<Ingest> {
    let mut perf = crate::perf::Ctl::from_env()?;
    let sim = crate::start_sim(env.events)?;
    let dir = env.tempdir("wasm")?;
    let server = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(crate::pg::Server::start()?),
    };
    let sqlite = dir.path().join("flowhost.db");
    let db = match &server {
        Some(s) => s.database()?,
        None => sqlite.clone().into(),
    };
    let (cache, cwasm) = if perf.is_some() {
        let cache = dir.path().join("cache");
        let names = map_cwasm(env, dir.path(), &sim, &cache)?;
        (cache, names)
    } else {
        (env.cache_dir(), BTreeMap::new())
    };
    let rt = asa_runtime(env, dir.path(), db, &sim, cache)?;
    let tokio = tokio_runtime()?;
    let count = env.count;

    let (drain, top_ids, top_runs, in_runs) = tokio.block_on(async {
        ok(
            &rt,
            "U02",
            json!({"asaTeam": sim.team(), "asaBaseUrl": sim.base_url(), "searchCount": count}),
        )
        .await?;
        ok(&rt, "U03", json!({})).await?;
        prewarm(&rt, &CHAIN)?;
        measure::reset_peak_rss();

        // The --until-idle loop of `flowhost run`: run M10, then whatever it requests.
        if let Some(p) = perf.as_mut() {
            p.enable()?;
        }
        let cpu = CpuMark::now();
        let server_cpu = server.as_ref().map(|s| s.cpu());
        let started = Instant::now();
        let mut queue = VecDeque::from([RunRequest {
            flow: "M10".into(),
            input: "{}".into(),
            delay: Duration::ZERO,
        }]);
        let mut trigger = Trigger::Cli;
        let mut ids = Vec::new();
        let mut in_runs = Duration::ZERO;
        while let Some(req) = queue.pop_front() {
            if !req.delay.is_zero() {
                tokio::time::sleep(req.delay).await;
            }
            let r = rt.run(&req.flow, &req.input, trigger).await?;
            trigger = Trigger::Request;
            if !r.ok() {
                bail!("{} failed: {}", req.flow, r.error.unwrap_or_default());
            }
            in_runs += r.elapsed;
            ids.push(r.id);
            queue.extend(r.requests);
            if ids.len() > 1_000_000 {
                bail!("M10 keeps requesting runs");
            }
        }
        let wall = started.elapsed();
        let (client_cpu, sim_cpu) = cpu.since();
        let server_cpu = server
            .as_ref()
            .zip(server_cpu)
            .map(|(s, before)| (s.cpu() - before).max(0.0));
        if let Some(p) = perf.as_mut() {
            p.disable()?;
        }
        let n = ids.len() as u64;
        Ok::<_, anyhow::Error>(((wall, client_cpu, sim_cpu, server_cpu), ids, n, in_runs))
    })?;
    let ((wall, client_cpu, sim_cpu, server_cpu), ids) = (drain, top_ids);

    // Child calls per flow, from run history (outside the timed part).
    let mut per_flow: BTreeMap<String, FlowStat> = BTreeMap::new();
    for id in &ids {
        let rec = rt
            .history
            .get(*id)?
            .with_context(|| format!("run {id} is not in history"))?;
        for c in rec.children {
            let s = per_flow.entry(c.flow.clone()).or_insert_with(|| FlowStat {
                flow: c.flow.clone(),
                ..Default::default()
            });
            s.calls += c.calls;
            s.memo_hits += c.memo_hits;
            s.total_ms += c.total_ms;
        }
    }
    let child_calls: u64 = per_flow.values().map(|s| s.calls).sum();
    let events = rt
        .store
        .row_count("Audit Events")
        .map_err(|e| anyhow!("{e}"))?;
    let pages = sim.stats().audit_requests;
    drop(rt);
    drop(tokio);
    // The drain's peak, before the digest reads the table back (psql's output of a million
    // rows alone is ~850 MB).
    let peak_rss_kb = measure::self_peak_rss_kb();
    let ((rows, digest), db_bytes, history_bytes) = match &server {
        // History lives in the same database: its size is part of db_bytes.
        Some(s) => (s.digest()?, s.size()?, 0),
        None => {
            let history = flowhost::history::history_path_for(&sqlite);
            (
                measure::digest(&sqlite)?,
                measure::db_size(&sqlite)?,
                measure::db_size(&history).unwrap_or(0),
            )
        }
    };
    if rows != events {
        bail!("digest read {rows} rows, the table has {events}");
    }
    let secs = wall.as_secs_f64();
    let between = (wall.saturating_sub(in_runs)).as_secs_f64();
    let split = vec![
        Part {
            key: "runs".into(),
            name: "inside top-level runs (Runtime::run elapsed, summed)".into(),
            wall_s: Some(in_runs.as_secs_f64()),
            cpu_s: None,
            how: "measured".into(),
        },
        Part {
            key: "between".into(),
            name: "between runs (the --until-idle loop itself)".into(),
            wall_s: Some(between),
            cpu_s: None,
            how: "measured".into(),
        },
        Part {
            key: "client".into(),
            name: "client CPU (whole process minus the simulator's threads)".into(),
            wall_s: None,
            cpu_s: Some(client_cpu),
            how: "measured (getrusage - /proc/self/task)".into(),
        },
        Part {
            key: "sim".into(),
            name: "simulator CPU (its own threads: generating and serving pages)".into(),
            wall_s: None,
            cpu_s: Some(sim_cpu),
            how: "measured (/proc/self/task/*/schedstat)".into(),
        },
    ];
    let mut notes = vec![format!(
        "{top_runs} top-level runs, {child_calls} child calls"
    )];
    if let Some(c) = server_cpu {
        notes.push(format!(
            "PostgreSQL server CPU {c:.2} s ({:.1} µs/event): the postmaster and every process \
             it forked, living or exited, from /proc (clock ticks); not in client CPU",
            c * 1e6 / events.max(1) as f64
        ));
    }
    Ok(Ingest {
        mode: match backend {
            Backend::Sqlite => "wasm",
            Backend::Postgres => "wasm-pg",
        }
        .into(),
        events,
        pages,
        seconds: secs,
        cpu_s: client_cpu,
        sim_cpu_s: sim_cpu,
        flow_calls: top_runs + child_calls,
        server_cpu_s: server_cpu,
        db_bytes,
        history_bytes,
        peak_rss_kb,
        digest,
        split,
        flows: per_flow.into_values().collect(),
        notes,
        cwasm,
    })
}
