//! divan micro-benchmarks of the runtime (`cargo bench -p flowhost-bench`, after
//! `cargo xtask flows`): the operations of `flowhost_bench::micro_ops`, each timed by divan.
//!
//! The probe benchmarks are whole top-level runs; `probe_empty_run` is the same run doing
//! nothing, so (a run of n operations − the empty run) / n is the cost of one operation.
//! `flowhost-bench --only micro` prints those differences as medians.

use std::sync::LazyLock;

use divan::counter::ItemsCount;
use divan::Bencher;
use flowhost_bench::micro_ops::{self, MicroWorld};
use flowhost_bench::setup::tokio_runtime;

fn main() {
    divan::main();
}

/// Built once: the runtime, the compiled test flows, the row the gets read.
static WORLD: LazyLock<(tokio::runtime::Runtime, MicroWorld)> = LazyLock::new(|| {
    let tokio = tokio_runtime().expect("a tokio runtime");
    let world =
        MicroWorld::for_cargo_bench().expect("the test flows (run `cargo xtask flows` first)");
    tokio.block_on(world.put_row()).expect("a row to get");
    (tokio, world)
});

fn block_on<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> T {
    match WORLD.0.block_on(f) {
        Ok(v) => v,
        Err(e) => panic!("{e:#}"),
    }
}

/// Instantiate + run of a no-op flow (`echo`) on a fresh Store: the ≤ 15 µs target.
#[divan::bench]
fn noop_flow_fresh_instance(b: Bencher) {
    let world = &WORLD.1;
    b.bench_local(|| block_on(world.echo_fresh()));
}

/// The same flow on a kept instance: what a repeated child call in a run pays.
#[divan::bench]
fn noop_flow_reused_instance(b: Bencher) {
    let world = &WORLD.1;
    let mut instance = block_on(world.echo_on(None));
    b.bench_local(|| instance = block_on(world.echo_on(instance.take())));
}

/// A whole top-level run of `echo`: history record, transaction, instance.
#[divan::bench]
fn top_level_run(b: Bencher) {
    let world = &WORLD.1;
    b.bench_local(|| block_on(world.echo_run()));
}

/// Times top-level runs of `probe` with `input`, counting `items` operations per run.
fn probe_runs(b: Bencher, input: serde_json::Value, items: usize) {
    let world = &WORLD.1;
    b.counter(ItemsCount::new(items))
        .bench_local(|| block_on(world.probe(&input)));
}

/// A top-level run of `probe` that does nothing: the baseline of the three below.
#[divan::bench]
fn probe_empty_run(b: Bencher) {
    let (world, input) = (&WORLD.1, micro_ops::gets(0));
    b.bench_local(|| block_on(world.probe(&input)));
}

/// 1,000 table gets (an existing row by key) from a guest, in one run.
#[divan::bench]
fn table_get_x1000(b: Bencher) {
    probe_runs(b, micro_ops::gets(1000), 1000);
}

/// 1,000 nested calls (`flows.call` of `echo`), in one run.
#[divan::bench]
fn nested_call_x1000(b: Bencher) {
    probe_runs(b, micro_ops::calls(1000), 1000);
}

/// A for-each of 1,000 items (`echo`), at concurrency 1 and 8.
#[divan::bench(args = [1, 8])]
fn for_each_1000_items(b: Bencher, concurrency: u32) {
    probe_runs(b, micro_ops::for_each(1000, concurrency), 1000);
}
