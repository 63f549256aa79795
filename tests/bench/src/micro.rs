//! The `micro` mode: the operations of `flowhost_bench::micro_ops` (shared with the divan
//! benchmarks in `benches/runtime.rs`), each figure the median of 5 repetitions of a batch.
//! The probe figures subtract an empty run of the same probe, so they are the cost per
//! operation inside a run (host call + guest work), without the run's own overhead.

use std::time::{Duration, Instant};

use anyhow::Result;
use flowhost_bench::micro_ops::{self, MicroWorld};
use serde_json::Value;

use crate::measure::median;
use crate::report::Item;
use crate::wasm::tokio_runtime;
use crate::Env;

const REPS: usize = 5;
const BATCH: usize = 1000;

/// Median over `REPS` of `f()`'s seconds divided by `per`, in µs, after one untimed warm-up.
async fn bench<F, Fut>(per: usize, mut f: F) -> Result<(f64, Vec<f64>)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Duration>>,
{
    f().await?;
    let mut samples = Vec::with_capacity(REPS);
    for _ in 0..REPS {
        samples.push(f().await?.as_secs_f64() * 1e6 / per as f64);
    }
    Ok((median(samples.clone()), samples))
}

/// How long `world.probe(input)` takes.
async fn probe(world: &MicroWorld, input: &Value) -> Result<Duration> {
    let started = Instant::now();
    world.probe(input).await?;
    Ok(started.elapsed())
}

/// (batch - empty batch) / BATCH, per repetition, in µs.
async fn probe_diff(world: &MicroWorld, full: &Value, empty: &Value) -> Result<(f64, Vec<f64>)> {
    probe(world, full).await?;
    let mut samples = Vec::with_capacity(REPS);
    for _ in 0..REPS {
        let t_full = probe(world, full).await?;
        let t_empty = probe(world, empty).await?;
        samples.push((t_full.as_secs_f64() - t_empty.as_secs_f64()).max(0.0) * 1e6 / BATCH as f64);
    }
    Ok((median(samples.clone()), samples))
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
    let world = MicroWorld::new(&env.root, env.tempdir("micro")?, env.cache_dir())?;
    let tokio = tokio_runtime()?;
    tokio.block_on(async {
        let mut items = Vec::new();
        let fresh = bench(BATCH, || async {
            let started = Instant::now();
            for _ in 0..BATCH {
                world.echo_fresh().await?;
            }
            Ok(started.elapsed())
        })
        .await?;
        items.push(item(
            "no-op flow: instantiate + run (fresh instance)",
            fresh,
            "Engine::invoke on a new Store each call, no run around it (target <= 10 µs)",
        ));

        let reused = bench(BATCH, || async {
            let mut instance = None;
            let started = Instant::now();
            for _ in 0..BATCH {
                instance = world.echo_on(instance.take()).await?;
            }
            Ok(started.elapsed())
        })
        .await?;
        items.push(item(
            "no-op flow: run on a reused instance",
            reused,
            "Engine::invoke with the previous call's instance (runs reuse instances per flow)",
        ));

        let top = bench(200, || async {
            let started = Instant::now();
            for _ in 0..200 {
                world.echo_run().await?;
            }
            Ok(started.elapsed())
        })
        .await?;
        items.push(item(
            "top-level run of echo {}",
            top,
            "Runtime::run: history record (its own SQLite file), transaction, instance",
        ));

        items.push(item(
            "child call of echo via for-each, concurrency 1",
            probe_diff(
                &world,
                &micro_ops::for_each(BATCH, 1),
                &micro_ops::for_each(0, 1),
            )
            .await?,
            "per item: echo gets 16 items per run-many call (contract 0.1.3; one call per item before)",
        ));

        world.put_row().await?;
        items.push(item(
            "table get (existing row, by key)",
            probe_diff(&world, &micro_ops::gets(BATCH), &micro_ops::gets(0)).await?,
            "probe repeats one tables.get, keeps the last row: host call + row JSON + guest parse (target <= 3 µs)",
        ));
        items.push(item(
            "nested call of echo (flows.call)",
            probe_diff(&world, &micro_ops::calls(BATCH), &micro_ops::calls(0)).await?,
            "probe repeats one flows.call, keeps the last output; instance reused after the first",
        ));
        let empty_steps = micro_ops::gets_as_steps(0);
        items.push(item(
            "  first method: table get as 1,000 probe steps",
            probe_diff(&world, &micro_ops::gets_as_steps(BATCH), &empty_steps).await?,
            "also probe parsing each step and the run's 1,000-row output (the figure before the repeat op)",
        ));
        items.push(item(
            "  first method: nested call as 1,000 probe steps",
            probe_diff(&world, &micro_ops::calls_as_steps(BATCH), &empty_steps).await?,
            "as above, for flows.call",
        ));
        items.push(item(
            "for-each of 1,000 items, concurrency 8 (per item)",
            probe_diff(
                &world,
                &micro_ops::for_each(BATCH, 8),
                &micro_ops::for_each(0, 8),
            )
            .await?,
            "wall per item on this machine's cores; x1000 = the whole for-each",
        ));
        Ok(items)
    })
}
