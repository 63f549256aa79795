//! Micro-benchmarks through the Runtime API, with the `echo` (no-op) and `probe` test flows of
//! flows/dist-test. Each figure is the median of 5 repetitions of a batch; the `probe`
//! figures subtract an empty batch run by the same probe, so they are the cost per operation
//! inside a run (host call + guest work), without the run's own overhead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use flowhost::config::Config;
use flowhost::engine::Outcome;
use flowhost::history::Trigger;
use flowhost::runtime::{CallCtx, RunShared, Runtime};
use serde_json::{json, Value};

use crate::measure::median;
use crate::report::Item;
use crate::wasm::{blob_stores, prewarm, tokio_runtime, warn_load_errors};
use crate::Env;

const REPS: usize = 5;
const BATCH: usize = 1000;

/// Median over `REPS` of `f()`'s seconds divided by `per`, in µs.
async fn bench<F, Fut>(per: usize, mut f: F) -> Result<(f64, Vec<f64>)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Duration>>,
{
    // One warm-up, untimed.
    f().await?;
    let mut samples = Vec::with_capacity(REPS);
    for _ in 0..REPS {
        samples.push(f().await?.as_secs_f64() * 1e6 / per as f64);
    }
    Ok((median(samples.clone()), samples))
}

/// Runs `probe` with `input` at top level; the run's elapsed time.
async fn probe(rt: &Arc<Runtime>, input: &Value) -> Result<Duration> {
    let started = Instant::now();
    let r = rt.run("probe", &input.to_string(), Trigger::Cli).await?;
    if !r.ok() {
        bail!("probe failed: {}", r.error.unwrap_or_default());
    }
    Ok(started.elapsed())
}

/// (batch - empty batch) / BATCH, per repetition, in µs.
async fn probe_diff(rt: &Arc<Runtime>, full: &Value, empty: &Value) -> Result<(f64, Vec<f64>)> {
    probe(rt, full).await?;
    let mut samples = Vec::with_capacity(REPS);
    for _ in 0..REPS {
        let t_full = probe(rt, full).await?;
        let t_empty = probe(rt, empty).await?;
        samples.push((t_full.as_secs_f64() - t_empty.as_secs_f64()).max(0.0) * 1e6 / BATCH as f64);
    }
    Ok((median(samples.clone()), samples))
}

/// A call context outside any top-level run (no transaction, no history): what the engine
/// needs to instantiate and call a flow that uses no capability.
fn bare_ctx(rt: &Arc<Runtime>, flow: &Arc<flowhost::registry::FlowEntry>) -> CallCtx {
    CallCtx {
        rt: rt.clone(),
        flow: flow.clone(),
        run: Arc::new(RunShared::new(0, None)),
        depth: 0,
        deadline: Instant::now() + Duration::from_secs(30),
    }
}

fn item(name: &str, (value, samples): (f64, Vec<f64>), note: &str) -> Item {
    Item {
        name: name.into(),
        value,
        unit: "µs".into(),
        samples,
        note: note.into(),
    }
}

pub fn run(env: &Env) -> Result<Vec<Item>> {
    let dir = env.tempdir("micro")?;
    let config = Config {
        db: dir.path().join("micro.db"),
        flows: vec![
            env.root.join("flows/dist-test"),
            env.root.join("flows/dist"),
        ],
        tables: vec![env.root.join("tables"), env.root.join("tests/tables")],
        secrets_file: None,
        cache_dir: Some(env.cache_dir()),
        blobs: blob_stores(dir.path()),
        ..Config::default()
    };
    let rt = config.open_runtime().map_err(|e| anyhow!("{e}"))?;
    warn_load_errors(&rt);
    prewarm(&rt, &["echo", "probe"])?;
    let tokio = tokio_runtime()?;
    tokio.block_on(async {
        let mut items = Vec::new();
        let echo = rt.flow("echo")?;
        let pre = echo.prepare(&rt.engine).map_err(|e| anyhow!(e))?;
        let memory = echo.manifest.memory;

        // Engine only: a fresh Store + instance per call, `run("{}")`, dropped.
        let fresh = bench(BATCH, || async {
            let started = Instant::now();
            for _ in 0..BATCH {
                let ctx = bare_ctx(&rt, &echo);
                let deadline = ctx.deadline;
                let (out, inst) = rt.engine.invoke(&pre, None, ctx, "{}", memory, deadline).await;
                if !matches!(out, Outcome::Ok(_)) {
                    bail!("echo: {out:?}");
                }
                drop(inst);
            }
            Ok(started.elapsed())
        })
        .await?;
        items.push(item(
            "no-op flow: instantiate + run (fresh instance)",
            fresh,
            "Engine::invoke on a new Store each call, no run around it (target <= 15 µs)",
        ));

        // Engine only, the instance kept: what a repeated child call of the same flow costs.
        let reused = bench(BATCH, || async {
            let mut inst = None;
            let started = Instant::now();
            for _ in 0..BATCH {
                let ctx = bare_ctx(&rt, &echo);
                let deadline = ctx.deadline;
                let (out, back) = rt.engine.invoke(&pre, inst.take(), ctx, "{}", memory, deadline).await;
                if !matches!(out, Outcome::Ok(_)) {
                    bail!("echo: {out:?}");
                }
                inst = back;
            }
            Ok(started.elapsed())
        })
        .await?;
        items.push(item(
            "no-op flow: run on a reused instance",
            reused,
            "Engine::invoke with the previous call's instance (runs reuse instances per flow)",
        ));

        // A whole top-level run of echo: history start/finish, a transaction, instantiation.
        let top = bench(200, || async {
            let started = Instant::now();
            for _ in 0..200 {
                let r = rt.run("echo", "{}", Trigger::Cli).await?;
                if !r.ok() {
                    bail!("echo failed: {:?}", r.error);
                }
            }
            Ok(started.elapsed())
        })
        .await?;
        items.push(item(
            "top-level run of echo {}",
            top,
            "Runtime::run: history record (its own SQLite file), transaction, instance",
        ));

        let empty_items = json!({"op": "for_each", "flow": "echo", "items": [], "concurrency": 1});
        let items_1 = json!({"op": "for_each", "flow": "echo", "items": vec![json!({}); BATCH], "concurrency": 1});
        items.push(item(
            "child call of echo via for-each, concurrency 1",
            probe_diff(&rt, &items_1, &empty_items).await?,
            "per item: a tokio task, call_child bookkeeping, instance reused after the first",
        ));

        // A row to get.
        probe(
            &rt,
            &json!({"op": "table", "fn": "upsert", "table": "Probe Items", "row": {"id": "k1", "n": 1, "note": "bench"}}),
        )
        .await?;
        let empty_steps = json!({"op": "steps", "steps": []});
        let gets = json!({"op": "steps", "steps": vec![json!({"op": "table", "fn": "get", "table": "Probe Items", "key": "k1"}); BATCH]});
        items.push(item(
            "table get (existing row, by key)",
            probe_diff(&rt, &gets, &empty_steps).await?,
            "probe steps: tables.get from the guest, row back as JSON",
        ));

        let calls = json!({"op": "steps", "steps": vec![json!({"op": "call", "flow": "echo", "input": {}}); BATCH]});
        items.push(item(
            "nested call of echo (flows.call)",
            probe_diff(&rt, &calls, &empty_steps).await?,
            "probe steps: flows.call, instance reused after the first",
        ));

        let items_8 = json!({"op": "for_each", "flow": "echo", "items": vec![json!({}); BATCH], "concurrency": 8});
        let empty_8 = json!({"op": "for_each", "flow": "echo", "items": [], "concurrency": 8});
        items.push(item(
            "for-each of 1,000 items, concurrency 8 (per item)",
            probe_diff(&rt, &items_8, &empty_8).await?,
            "wall per item on this machine's cores; x1000 = the whole for-each",
        ));
        Ok(items)
    })
}
