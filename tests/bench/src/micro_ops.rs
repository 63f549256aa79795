//! The micro-benchmarks' world and operations, through the Runtime API with the `echo` (no-op)
//! and `probe` test flows of `flows/dist-test` (`cargo xtask flows` builds them).
//!
//! - [`MicroWorld::echo_fresh`]: `Engine::invoke` of `echo` on a new Store, no run around it —
//!   the "instantiate + run of a no-op flow" figure (target ≤ 10 µs);
//! - [`MicroWorld::echo_on`]: the same on a kept instance (what a repeated child call pays);
//! - [`MicroWorld::echo_run`]: a whole top-level run (history record, transaction, instance);
//! - [`MicroWorld::probe`] with [`gets`], [`calls`], [`for_each`]: a top-level run of `probe`
//!   doing `n` table gets, nested calls (one step repeated, the last result kept) or a for-each
//!   of `n` items; minus the same run with `n = 0` it is the cost of the operations inside a
//!   run. [`gets_as_steps`] and [`calls_as_steps`] are the first method (`n` steps, `n`
//!   results), kept so the change of method stays visible.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use flowhost::config::Config;
use flowhost::engine::{Instance, Outcome};
use flowhost::history::Trigger;
use flowhost::registry::FlowEntry;
use flowhost::runtime::{CallCtx, RunShared, Runtime};
use serde_json::{json, Value};

use crate::setup::{blob_stores, prewarm, warn_load_errors};

/// A runtime over the test flows and the ASA flows, in its own temporary directory, with one
/// row in Probe Items to get.
pub struct MicroWorld {
    pub rt: Arc<Runtime>,
    echo: Prepared,
    _dir: tempfile::TempDir,
}

/// A flow and its compiled component, ready to instantiate.
pub struct Prepared {
    pub entry: Arc<FlowEntry>,
    pre: flowhost::engine::Prepared,
}

impl MicroWorld {
    /// `root` is the repository; compiled components are cached in `cache_dir`.
    pub fn new(root: &Path, dir: tempfile::TempDir, cache_dir: PathBuf) -> Result<MicroWorld> {
        MicroWorld::with_flows(root, dir, cache_dir, Vec::new())
    }

    /// [`MicroWorld::new`] with `extra` flows folders ahead of the repository's.
    pub fn with_flows(
        root: &Path,
        dir: tempfile::TempDir,
        cache_dir: PathBuf,
        extra: Vec<PathBuf>,
    ) -> Result<MicroWorld> {
        let mut flows = extra;
        flows.extend([root.join("flows/dist-test"), root.join("flows/dist")]);
        let config = Config {
            db: dir.path().join("micro.db").into(),
            flows,
            tables: vec![root.join("tables"), root.join("tests/tables")],
            secrets_file: None,
            cache_dir: Some(cache_dir),
            blobs: blob_stores(dir.path()),
            ..Config::with_state_dir(dir.path())
        };
        let rt = config.open_runtime().map_err(|e| anyhow!("{e}"))?;
        warn_load_errors(&rt);
        prewarm(&rt, &["echo", "probe"])?;
        let echo = prepare(&rt, "echo")?;
        Ok(MicroWorld {
            rt,
            echo,
            _dir: dir,
        })
    }

    /// Compiles (or loads from the cache) flow `name`.
    pub fn prepare(&self, name: &str) -> Result<Prepared> {
        prepare(&self.rt, name)
    }

    /// The world of `cargo bench`: the repository above this crate, a system temp dir.
    pub fn for_cargo_bench() -> Result<MicroWorld> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let root = root.canonicalize()?;
        let cache = root.join("target/flowhost-bench-cache");
        MicroWorld::new(&root, tempfile::tempdir()?, cache)
    }

    /// A call context outside any top-level run (no transaction, no history): what the engine
    /// needs to instantiate and call a flow that uses no capability.
    fn bare_ctx(&self, flow: &Prepared) -> CallCtx {
        CallCtx {
            rt: self.rt.clone(),
            flow: flow.entry.clone(),
            run: Arc::new(RunShared::new(0, None)),
            depth: 0,
            reads: None,
            deadline: Instant::now() + Duration::from_secs(30),
        }
    }

    /// `echo` on `instance` (a new one when `None`); gives the instance back.
    pub async fn echo_on(&self, instance: Option<Instance>) -> Result<Option<Instance>> {
        self.invoke_on(&self.echo, instance).await
    }

    /// `flow` with input `{}` on `instance` (a new one when `None`), outside any run; gives
    /// the instance back.
    pub async fn invoke_on(
        &self,
        flow: &Prepared,
        instance: Option<Instance>,
    ) -> Result<Option<Instance>> {
        let ctx = self.bare_ctx(flow);
        let (deadline, memory) = (ctx.deadline, flow.entry.manifest.memory);
        let engine = &self.rt.engine;
        let (out, back) = engine
            .invoke(&flow.pre, instance, ctx, "{}", memory, deadline)
            .await;
        if !matches!(out, Outcome::Ok(_)) {
            bail!("{}: {out:?}", flow.entry.manifest.name);
        }
        Ok(back)
    }

    /// `echo` on a fresh Store and instance, dropped afterwards.
    pub async fn echo_fresh(&self) -> Result<()> {
        drop(self.echo_on(None).await?);
        Ok(())
    }

    /// A top-level run of `echo`.
    pub async fn echo_run(&self) -> Result<()> {
        let r = self.rt.run("echo", "{}", Trigger::Cli).await?;
        if !r.ok() {
            bail!("echo failed: {:?}", r.error);
        }
        Ok(())
    }

    /// A top-level run of `probe` with `input`.
    pub async fn probe(&self, input: &Value) -> Result<()> {
        let r = self
            .rt
            .run("probe", &input.to_string(), Trigger::Cli)
            .await?;
        if !r.ok() {
            bail!("probe failed: {}", r.error.unwrap_or_default());
        }
        Ok(())
    }

    /// Puts the row that [`gets`] reads.
    pub async fn put_row(&self) -> Result<()> {
        let row = json!({"id": "k1", "n": 1, "note": "bench"});
        self.probe(&json!({"op": "table", "fn": "upsert", "table": "Probe Items", "row": row}))
            .await
    }
}

fn prepare(rt: &Runtime, name: &str) -> Result<Prepared> {
    let entry = rt.flow(name)?;
    let pre = entry
        .prepare(&rt.engine)
        .map_err(|e| anyhow!("{name}: {e}"))?;
    Ok(Prepared { entry, pre })
}

/// One table get of the row [`MicroWorld::put_row`] puts.
fn get_op() -> Value {
    json!({"op": "table", "fn": "get", "table": "Probe Items", "key": "k1"})
}

/// One nested call of `echo` (`flows.call`).
fn call_op() -> Value {
    json!({"op": "call", "flow": "echo", "input": {}})
}

/// Probe repeats `step` `n` times and returns only the last result: the run's input and output
/// stay the same size whatever `n` is, so (n ops - 0 ops) / n is the op alone.
fn repeat(n: usize, step: Value) -> Value {
    json!({"op": "repeat", "n": n, "step": step})
}

/// `n` table gets of an existing row by key, repeated in probe (see `repeat`).
pub fn gets(n: usize) -> Value {
    repeat(n, get_op())
}

/// `n` nested calls of `echo` (`flows.call`), repeated in probe (see `repeat`).
pub fn calls(n: usize) -> Value {
    repeat(n, call_op())
}

/// The first method's `n` table gets: `n` step objects in the input, `n` rows in the output, so
/// (n - 0) / n also counts probe parsing each step and the run carrying n results.
pub fn gets_as_steps(n: usize) -> Value {
    json!({"op": "steps", "steps": vec![get_op(); n]})
}

/// The first method's `n` nested calls (see [`gets_as_steps`]).
pub fn calls_as_steps(n: usize) -> Value {
    json!({"op": "steps", "steps": vec![call_op(); n]})
}

/// A for-each of `echo` over `n` items at `concurrency`.
pub fn for_each(n: usize, concurrency: u32) -> Value {
    json!({"op": "for_each", "flow": "echo", "items": vec![json!({}); n], "concurrency": concurrency})
}
