//! A for-each over a Rust flow gives it its items a few per call (`run-many`, contract 0.1.3),
//! and every item still ends as one `run` of it would: in input order, failing alone (an error,
//! a trap, a timeout), with its own deadline, its writes, its count in the parent's statistics
//! and its own history row when it fails.

mod common;

use std::sync::Arc;

use common::{drop_probe, env_with_flows, ok, TestEnv};
use flowhost::history::{ChildStats, RunRecord, RunStatus, MAX_FAILED_CHILD_ROWS};
use flowhost::runtime::Runtime;
use serde_json::{json, Value};

/// The flow the for-each runs: the probe with a short timeout, writing the probe's table.
const CHILD: &str =
    "title: Child\ntimeout: 1s\nmemory: 32MiB\ngrants:\n  tables:\n    write: [Probe Items]\n";
/// The same probe as a `pure` flow: its calls go through the run's memo one by one.
const PURE: &str = "title: Pure child\npure: true\n";
/// The test flow built against contract 0.1.0 (`flows/test/v010`): it has no `run-many`.
const OLD: &str = "title: Old\ngrants:\n  tables:\n    read: [Probe Items]\n  flows: [echo]\n";
/// The test flow whose run-many returns early (`flows/test/short`).
const SHORT: &str = "title: Short\n";
const PARENT: &str = "title: Parent\ntimeout: 60s\ngrants:\n  flows: [child, pure, old, short]\n  tables:\n    read: [Probe Items]\n";

fn world() -> (TestEnv, Arc<Runtime>) {
    let (env, dir) = env_with_flows();
    drop_probe(&dir, "parent", PARENT);
    drop_probe(&dir, "child", CHILD);
    drop_probe(&dir, "pure", PURE);
    common::drop_flow(&dir, "old", "v010", OLD);
    common::drop_flow(&dir, "echo", "echo", "title: Echo\n");
    common::drop_flow(&dir, "short", "short", SHORT);
    let rt = env.runtime();
    (env, rt)
}

fn for_each(flow: &str, items: &[Value], concurrency: u32) -> Value {
    json!({"op": "for_each", "flow": flow, "items": items, "concurrency": concurrency})
}

/// An item that writes row `r{i}` and then returns `i`.
fn write_and_echo(i: usize) -> Value {
    json!({"op": "steps", "steps": [
        {"op": "table", "fn": "upsert", "table": "Probe Items", "row": {"id": format!("r{i}"), "n": i}},
        {"op": "echo", "value": i},
    ]})
}

/// The newest top-level run and its failed children's history rows.
fn last_run(rt: &Runtime) -> (RunRecord, Vec<RunRecord>) {
    let all = rt.history.list(None, 1000).unwrap();
    let top = all.iter().find(|r| r.parent.is_none()).unwrap().clone();
    let children = all
        .into_iter()
        .filter(|r| r.parent == Some(top.id))
        .collect();
    (top, children)
}

fn stats<'a>(run: &'a RunRecord, flow: &str) -> &'a ChildStats {
    run.children
        .iter()
        .find(|s| s.flow == flow)
        .unwrap_or_else(|| panic!("no statistics for {flow}: {:?}", run.children))
}

async fn rows(rt: &Arc<Runtime>) -> u64 {
    let count = json!({"op": "table", "fn": "count", "table": "Probe Items", "filter": {}});
    ok(rt, "parent", count).await.as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn items_go_to_a_rust_flow_a_few_per_call_and_come_back_in_order() {
    let (_env, rt) = world();
    let items: Vec<Value> = (0..100).map(write_and_echo).collect();
    let out = ok(&rt, "parent", for_each("child", &items, 4)).await;
    let got: Vec<Value> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ok"][1].clone())
        .collect();
    assert_eq!(got, (0..100).map(|i| json!(i)).collect::<Vec<_>>(), "{out}");
    let (top, failed) = last_run(&rt);
    let s = stats(&top, "child");
    assert_eq!((s.calls, s.failures, s.batched), (100, 0, 100), "{s:?}");
    assert!(failed.is_empty());
    assert_eq!(rows(&rt).await, 100);

    // A pure flow's items are looked up in the run's memo one by one: never batched, and the
    // repeated item is answered from the first.
    let items = vec![json!({"op": "echo", "value": 7}); 40];
    let out = ok(&rt, "parent", for_each("pure", &items, 1)).await;
    assert!(
        out.as_array().unwrap().iter().all(|r| r["ok"] == 7),
        "{out}"
    );
    let (top, _) = last_run(&rt);
    let s = stats(&top, "pure");
    assert_eq!((s.calls, s.memo_hits, s.batched), (40, 39, 0), "{s:?}");

    // A flow without run-many (built against contract 0.1.0): one `run` per item.
    let items: Vec<Value> = (0..40).map(|i| json!({ "n": i })).collect();
    let out = ok(&rt, "parent", for_each("old", &items, 1)).await;
    for (i, r) in out.as_array().unwrap().iter().enumerate() {
        assert_eq!(r["ok"]["echo"], json!({ "n": i }), "{r}");
    }
    let (top, _) = last_run(&rt);
    let s = stats(&top, "old");
    assert_eq!((s.calls, s.batched), (40, 0), "{s:?}");

    // No more items than concurrent slots: one call each, as before.
    let items: Vec<Value> = (0..3).map(|i| json!({"op": "echo", "value": i})).collect();
    let out = ok(&rt, "parent", for_each("child", &items, 8)).await;
    assert_eq!(out[2]["ok"], 2, "{out}");
    let (top, _) = last_run(&rt);
    assert_eq!(stats(&top, "child").batched, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trap_or_an_error_in_a_batch_fails_that_item_alone() {
    let (_env, rt) = world();
    // One slot, so 16 items per call: two traps in a row and an error inside the first call,
    // the rest after them on new instances.
    let items: Vec<Value> = (0..40)
        .map(|i| match i {
            5 | 6 => json!({"op": "panic"}),
            20 => json!({"op": "fail", "message": "item twenty"}),
            _ => write_and_echo(i),
        })
        .collect();
    let out = ok(&rt, "parent", for_each("child", &items, 1)).await;
    let out = out.as_array().unwrap();
    assert_eq!(out.len(), 40);
    for (i, r) in out.iter().enumerate() {
        match i {
            5 | 6 => {
                let e = r["err"].as_str().unwrap_or_else(|| panic!("item {i}: {r}"));
                assert!(
                    e.contains("child: trap: the flow panicked"),
                    "item {i}: {e}"
                );
            }
            20 => assert!(r["err"].as_str().unwrap().contains("item twenty"), "{r}"),
            _ => assert_eq!(r["ok"][1], i, "item {i}: {r}"),
        }
    }
    let (top, failed) = last_run(&rt);
    let s = stats(&top, "child");
    assert_eq!((s.calls, s.failures, s.batched), (40, 3, 40), "{s:?}");
    // Each failure has its own history row, with the item it was given.
    let mut inputs: Vec<&str> = failed.iter().map(|r| r.input.as_str()).collect();
    inputs.sort();
    assert_eq!(inputs.len(), 3, "{failed:?}");
    assert!(
        inputs[0].contains("\"fail\"") && inputs[1].contains("panic"),
        "{inputs:?}"
    );
    assert!(failed
        .iter()
        .all(|r| r.status == RunStatus::Error && r.flow == "child"));
    // Every item that did not fail wrote its row (the parent's run commits them).
    assert_eq!(rows(&rt).await, 37);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_many_that_returns_early_fails_the_items_it_left() {
    let (_env, rt) = world();
    // One slot, so the calls get items 0-15, 16-31 and 32-39. The first and the last call
    // return at their "stop" item: it and the items after it in that call have no result.
    let items: Vec<Value> = (0..40)
        .map(|i| match i {
            5 | 35 => json!({"stop": i}),
            _ => json!({ "n": i }),
        })
        .collect();
    let out = ok(&rt, "parent", for_each("short", &items, 1)).await;
    let out = out.as_array().unwrap();
    assert_eq!(out.len(), 40);
    let left = |i: usize| (5..16).contains(&i) || (35..40).contains(&i);
    for (i, r) in out.iter().enumerate() {
        if left(i) {
            let e = r["err"].as_str().unwrap_or_else(|| panic!("item {i}: {r}"));
            assert!(
                e.contains("short: run-many returned without a result for this item"),
                "item {i}: {e}"
            );
        } else {
            assert_eq!(r["ok"], json!({ "n": i }), "item {i}: {r}");
        }
    }
    let (top, failed) = last_run(&rt);
    let s = stats(&top, "short");
    assert_eq!((s.calls, s.failures, s.batched), (40, 16, 40), "{s:?}");
    // Each item left has its own history row, with its own input (the first ten of a run's
    // failures do; the rest are counted).
    assert_eq!(s.failures_not_recorded, 16 - MAX_FAILED_CHILD_ROWS, "{s:?}");
    let mut inputs: Vec<Value> = failed
        .iter()
        .map(|r| serde_json::from_str(&r.input).unwrap())
        .collect();
    inputs.sort_by_key(|v| v.as_object().unwrap().values().next().unwrap().as_u64());
    let want: Vec<Value> = (0..40)
        .filter(|&i| left(i))
        .take(MAX_FAILED_CHILD_ROWS as usize)
        .map(|i| items[i].clone())
        .collect();
    assert_eq!(inputs, want);
    assert!(failed
        .iter()
        .all(|r| r.status == RunStatus::Error && r.flow == "short"));
}

#[tokio::test(flavor = "multi_thread")]
async fn each_item_of_a_batch_has_its_own_deadline() {
    let (_env, rt) = world();
    // Six items in one call to a flow with a 1 s timeout: together they take about 3 s, each
    // well under 1 s but the third, which spins until its own deadline.
    let sleep = json!({"op": "sleep", "ms": 400});
    let mut items = vec![sleep; 6];
    items[2] = json!({"op": "loop"});
    let out = ok(&rt, "parent", for_each("child", &items, 1)).await;
    for (i, r) in out.as_array().unwrap().iter().enumerate() {
        if i == 2 {
            let e = r["err"].as_str().unwrap_or_else(|| panic!("{r}"));
            assert!(e.contains("timeout: child: timed out"), "{e}");
        } else {
            assert_eq!(r, &json!({"ok": null}), "item {i}");
        }
    }
    let (top, _) = last_run(&rt);
    let s = stats(&top, "child");
    assert_eq!((s.calls, s.failures, s.batched), (6, 1, 6), "{s:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn item_result_belongs_to_run_many_alone() {
    let (_env, rt) = world();
    // Called from `run`: not taken.
    let smuggle = json!({"op": "item_result", "value": "\"smuggled\""});
    assert_eq!(ok(&rt, "child", smuggle.clone()).await, json!(false));
    // Called by an item inside a batch, it is taken as that item's result and the results
    // after it move up by one; the host stays consistent: one result per item, none made up,
    // and the surplus result not taken.
    let items = vec![
        json!({"op": "echo", "value": 0}),
        smuggle,
        json!({"op": "echo", "value": 2}),
        json!({"op": "echo", "value": 3}),
    ];
    let out = ok(&rt, "parent", for_each("child", &items, 1)).await;
    assert_eq!(
        out,
        json!([{"ok": 0}, {"ok": "smuggled"}, {"ok": true}, {"ok": 2}])
    );
}
