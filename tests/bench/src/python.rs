//! The Python baseline: `tests/bench/asa_ingest.py` (standard library only) as a subprocess
//! against the in-process simulator, into a database created by the host.

use std::process::Command;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::measure::{self, run_child, sim_cpu};
use crate::report::{Ingest, Part};
use crate::Env;

pub fn run(env: &Env) -> Result<Ingest> {
    let sim = crate::start_sim(env.events)?;
    let dir = env.tempdir("python")?;
    let db = dir.path().join("python.db");
    // Same physical schema as the other modes (the script's CREATE ... IF NOT EXISTS match it).
    let schemas = Arc::new(
        flowhost::schema::Schemas::load_dirs(&[env.root.join("tables")])
            .map_err(|e| anyhow!("{e}"))?,
    );
    drop(flowhost::store::Store::open(&db, schemas).map_err(|e| anyhow!("{e}"))?);

    let script = env.root.join("tests/bench/asa_ingest.py");
    // The interpreter itself, not a wrapper (a pyenv shim adds ~250 ms of bash per start).
    let python = resolve_python(&env.python)?;
    let mut cmd = Command::new(&python);
    cmd.arg(&script)
        .arg("--base-url")
        .arg(sim.base_url())
        .arg("--team")
        .arg(sim.team())
        .arg("--key-id")
        .arg(sim.key_id())
        .arg("--key-secret")
        .arg(sim.key_secret())
        .arg("--db")
        .arg(&db)
        .arg("--count")
        .arg(env.count.to_string());
    let sim_before = sim_cpu();
    let child = run_child(&mut cmd)?;
    let sim_cpu_s = sim_cpu() - sim_before;
    if child.code != 0 {
        bail!("{} exited with {}", script.display(), child.code);
    }
    let out: Value = child
        .stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .context("asa_ingest.py printed no JSON line")?;
    let events = out["events"]
        .as_u64()
        .context("no `events` in the script's output")?;
    let (rows, digest) = measure::digest(&db)?;
    if rows != events {
        bail!("the script says {events} events, the table has {rows}");
    }
    let inner = out["seconds"].as_f64().unwrap_or(0.0);
    let mut split: Vec<Part> = ["http", "json", "enrich", "sqlite"]
        .iter()
        .map(|k| Part {
            key: (*k).into(),
            name: match *k {
                "http" => "HTTP: urlopen + read (wall includes the simulator serving it)",
                "json" => "JSON: json.loads of the page",
                "enrich" => "enrichment: rows, strings, json.dumps(raw_event)",
                _ => "SQLite: executemany + checkpoint + log, commit per page",
            }
            .into(),
            wall_s: out["split"][k].as_f64(),
            cpu_s: None,
            how: "measured (time.perf_counter in the script)".into(),
        })
        .collect();
    let phases: f64 = split.iter().filter_map(|p| p.wall_s).sum();
    split.push(Part {
        key: "other".into(),
        name: "interpreter start-up, imports, loop (process wall - phases)".into(),
        wall_s: Some(child.wall.as_secs_f64() - phases),
        cpu_s: None,
        how: "derived".into(),
    });
    split.push(Part {
        key: "sim".into(),
        name: "simulator CPU (its own threads, in the bench process)".into(),
        wall_s: None,
        cpu_s: Some(sim_cpu_s),
        how: "measured (/proc/self/task/*/schedstat)".into(),
    });
    Ok(Ingest {
        mode: "python".into(),
        events,
        pages: sim.stats().audit_requests,
        // The whole process, interpreter start-up included (~30 ms): what a user waits for.
        seconds: child.wall.as_secs_f64(),
        cpu_s: child.cpu_s,
        sim_cpu_s,
        server_cpu_s: None,
        flow_calls: 0,
        db_bytes: measure::db_size(&db)?,
        history_bytes: 0,
        peak_rss_kb: child.peak_rss_kb,
        digest,
        split,
        flows: Vec::new(),
        notes: vec![format!(
            "{python} ({}); the script's own timer: {inner:.2} s",
            python_version(&python)
        )],
        cwasm: Default::default(),
    })
}

/// `sys.executable` of `python`.
fn resolve_python(python: &str) -> Result<String> {
    let out = Command::new(python)
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .with_context(|| format!("cannot run {python}"))?;
    let exe = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || exe.is_empty() {
        bail!("{python} did not say where its interpreter is");
    }
    Ok(exe)
}

fn python_version(python: &str) -> String {
    Command::new(python)
        .arg("--version")
        .output()
        .ok()
        .map(|o| {
            let s = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&s).trim().to_string()
        })
        .unwrap_or_default()
}
