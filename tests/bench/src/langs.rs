//! The `langs` mode: what a no-op flow costs in each language flowhost builds flows from.
//!
//! The Rust no-op is the `echo` test flow (flows/dist-test). The Python and JavaScript no-ops
//! are made the way a user makes a flow: `flowhost new NAME --lang L`, the scaffold's source
//! replaced by a `run` that returns its input through the language's SDK, then
//! `flowhost build --install`. So this mode needs componentize-py and Node.js with npm (it
//! stops naming them when they are missing) and spends a minute building.
//!
//! For each it reports: the component's size on disk; its compile time without a cache (the
//! first run after an upgrade); loading it from the compile cache (every later process); the
//! instantiate + run of the no-op on a fresh instance (a top-level run or a first child call)
//! and on a reused one (later calls of the flow within a run); and the linear memory the
//! instance holds after one run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use flowhost::engine::{Engine, EngineOptions};
use flowhost::scaffold::build::check_tools;
use flowhost::scaffold::Lang;
use flowhost_bench::micro_ops::{MicroWorld, Prepared};

use crate::measure::median;
use crate::report::Item;
use crate::wasm::tokio_runtime;
use crate::Env;

/// One language's no-op: its flow name and the source that replaces the scaffold's.
struct Noop {
    lang: &'static str,
    name: &'static str,
    file: &'static str,
    source: &'static str,
}

const PYTHON: Noop = Noop {
    lang: "python",
    name: "noop_py",
    file: "app.py",
    source: include_str!("../noop/app.py"),
};

const JAVASCRIPT: Noop = Noop {
    lang: "javascript",
    name: "noop_js",
    file: "app.js",
    source: include_str!("../noop/app.js"),
};

/// Runs `flowhost ARGS`, failing with its output when it fails.
fn flowhost(env: &Env, args: &[&std::ffi::OsStr]) -> Result<()> {
    let bin = env.flowhost_bin()?;
    let out = Command::new(&bin)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "flowhost {:?} failed: {}{}",
            args,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Scaffolds, rewrites and builds `noop` into `flows`.
fn build(env: &Env, work: &Path, flows: &Path, noop: &Noop) -> Result<()> {
    let dir = work.join(noop.name);
    flowhost(
        env,
        &[
            "new".as_ref(),
            noop.name.as_ref(),
            "--lang".as_ref(),
            noop.lang.as_ref(),
            "--dir".as_ref(),
            dir.as_os_str(),
        ],
    )?;
    std::fs::write(dir.join(noop.file), noop.source)?;
    eprintln!("flowhost-bench: building the {} no-op", noop.lang);
    flowhost(
        env,
        &[
            "build".as_ref(),
            dir.as_os_str(),
            "--install".as_ref(),
            flows.as_os_str(),
        ],
    )
}

/// Median over `reps` of `f()`, after one untimed call.
async fn median_of<F, Fut>(reps: usize, mut f: F) -> Result<(f64, Vec<f64>)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<f64>>,
{
    f().await?;
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        samples.push(f().await?);
    }
    Ok((median(samples.clone()), samples))
}

fn item(name: String, (value, samples): (f64, Vec<f64>), unit: &str, note: &str) -> Item {
    Item {
        name,
        value,
        unit: unit.into(),
        samples,
        note: note.into(),
    }
}

/// Seconds to compile `wasm` on an engine without a cache; then seconds to load it from a
/// cache that holds it (a fresh engine each time, as a new process has).
fn compile_and_load(wasm: &Path, cache: &Path) -> Result<(f64, f64)> {
    let cold = Engine::new(&EngineOptions::default())?;
    let started = Instant::now();
    cold.prepare(wasm)?;
    let compile = started.elapsed().as_secs_f64();
    let opts = EngineOptions {
        cache_dir: Some(cache.to_path_buf()),
        ..EngineOptions::default()
    };
    Engine::new(&opts)?.prepare(wasm)?;
    let warm = Engine::new(&opts)?;
    let started = Instant::now();
    warm.prepare(wasm)?;
    Ok((compile, started.elapsed().as_secs_f64()))
}

/// Instantiate + run of `flow` on fresh instances, µs per call, over `batch` calls.
async fn fresh(world: &MicroWorld, flow: &Prepared, batch: usize) -> Result<f64> {
    let started = Instant::now();
    for _ in 0..batch {
        drop(world.invoke_on(flow, None).await?);
    }
    Ok(per_call(started.elapsed(), batch))
}

/// Run of `flow` on one reused instance, µs per call, over `batch` calls.
async fn reused(world: &MicroWorld, flow: &Prepared, batch: usize) -> Result<f64> {
    let mut instance = world.invoke_on(flow, None).await?;
    let started = Instant::now();
    for _ in 0..batch {
        instance = world.invoke_on(flow, instance.take()).await?;
    }
    Ok(per_call(started.elapsed(), batch))
}

fn per_call(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n.max(1) as f64
}

pub fn run(env: &Env) -> Result<Vec<Item>> {
    // The host's own check, so the bench names what to install exactly as `flowhost build`.
    check_tools(Lang::Python)?;
    check_tools(Lang::JavaScript)?;
    let work = env.tempdir("langs")?;
    let flows = work.path().join("flows");
    std::fs::create_dir_all(&flows)?;
    std::fs::create_dir_all(work.path().join("src"))?;
    for noop in [&PYTHON, &JAVASCRIPT] {
        build(env, &work.path().join("src"), &flows, noop)?;
    }
    let components: Vec<(&str, &str, PathBuf)> = vec![
        ("Rust", "echo", env.root.join("flows/dist-test/echo.wasm")),
        (
            "Python",
            PYTHON.name,
            flows.join(format!("{}.wasm", PYTHON.name)),
        ),
        (
            "JavaScript",
            JAVASCRIPT.name,
            flows.join(format!("{}.wasm", JAVASCRIPT.name)),
        ),
    ];

    let mut items = Vec::new();
    for (lang, _, wasm) in &components {
        let size = std::fs::metadata(wasm)
            .with_context(|| format!("{}", wasm.display()))?
            .len();
        let kb = size as f64 / 1e3;
        items.push(item(
            format!("{lang} no-op: component size"),
            (kb, vec![kb]),
            "KB",
            "on disk, as built",
        ));
        let cache = work.path().join(format!("cache-{lang}"));
        let (compile, load) = compile_and_load(wasm, &cache)?;
        items.push(item(
            format!("{lang} no-op: compile, no cache"),
            (compile * 1e3, vec![compile * 1e3]),
            "ms",
            "Cranelift, the first run after an install or upgrade",
        ));
        items.push(item(
            format!("{lang} no-op: load from the compile cache"),
            (load * 1e3, vec![load * 1e3]),
            "ms",
            "every later process",
        ));
    }

    let world = MicroWorld::with_flows(
        &env.root,
        env.tempdir("langs-world")?,
        work.path().join("cache-world"),
        vec![flows.clone()],
    )?;
    let tokio = tokio_runtime()?;
    tokio.block_on(async {
        for (lang, name, _) in &components {
            let flow = world.prepare(name)?;
            // Fewer calls for the slower languages, so each batch still takes ~0.1-1 s.
            let one = {
                let started = Instant::now();
                drop(world.invoke_on(&flow, None).await?);
                started.elapsed()
            };
            let batch = (Duration::from_millis(200).as_secs_f64() / one.as_secs_f64().max(1e-6))
                .clamp(20.0, 1000.0) as usize;
            items.push(item(
                format!("{lang} no-op: instantiate + run (fresh instance)"),
                median_of(5, || fresh(&world, &flow, batch)).await?,
                "µs",
                &format!("median of 5 batches of {batch}"),
            ));
            items.push(item(
                format!("{lang} no-op: run on a reused instance"),
                median_of(5, || reused(&world, &flow, 1000)).await?,
                "µs",
                "median of 5 batches of 1,000 (calls of a flow within a run reuse its instance)",
            ));
            let instance = world
                .invoke_on(&flow, None)
                .await?
                .ok_or_else(|| anyhow!("{name}: no instance back"))?;
            let mb = instance.linear_memory() as f64 / 1e6;
            items.push(item(
                format!("{lang} no-op: linear memory after one run"),
                (mb, vec![mb]),
                "MB",
                "all of the instance's memories",
            ));
        }
        Ok(items)
    })
}
