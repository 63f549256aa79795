//! `pure: true` flows: within one run the host answers a repeated call from the first one, and
//! only while the tables the flow reads are unchanged; a pure flow holding any grant but table
//! reads is refused at load.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{ok, TestEnv};
use flowhost::runtime::Runtime;
use serde_json::{json, Value};

/// A flows folder with two copies of the probe flow: `driver` (writes Probe Items, calls
/// `peek`) and `peek` (pure, reads Probe Items), plus `extra` manifests as given.
fn folder(env: &TestEnv, extra: &[(&str, &str)]) -> PathBuf {
    let dir = env.dir.path().join("flows");
    let manifests = [
        (
            "driver",
            "title: Driver\ngrants:\n  tables:\n    write: [Probe Items]\n  flows: [peek]\n",
        ),
        (
            "peek",
            "title: Peek\npure: true\ngrants:\n  tables:\n    read: [Probe Items]\n",
        ),
    ];
    for (name, text) in manifests.iter().chain(extra) {
        common::drop_probe(&dir, name, text);
    }
    dir
}

/// A runtime over [`folder`] alone.
fn runtime(env: &TestEnv, dir: PathBuf) -> Arc<Runtime> {
    let mut config = env.config.clone();
    config.flows = vec![dir];
    config.builtin = false;
    config.open_runtime().unwrap()
}

fn peek(key: &str) -> Value {
    json!({"op": "call", "flow": "peek",
           "input": {"op": "table", "fn": "get", "table": "Probe Items", "key": key}})
}

fn upsert(key: &str, note: &str) -> Value {
    json!({"op": "table", "fn": "upsert", "table": "Probe Items", "row": {"id": key, "note": note}})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pure_flow_runs_once_per_input_until_its_table_changes() {
    let env = TestEnv::new();
    let rt = runtime(&env, folder(&env, &[]));

    let steps = json!({"op": "steps", "steps": [
        peek("a"),                // runs: no row yet
        peek("a"),                // the same input, nothing written: answered from the first
        peek("b"),                // another input runs
        upsert("a", "first"),     // a write to the table peek reads
        peek("a"),                // runs again and sees the row
        peek("a"),                // answered again
        upsert("a", "second"),
        peek("a"),                // sees the second version
    ]});
    let out = ok(&rt, "driver", steps).await;
    let note = |i: usize| out[i]["note"].clone();
    assert_eq!(out[0], Value::Null);
    assert_eq!(out[1], Value::Null);
    assert_eq!(out[2], Value::Null);
    assert_eq!(note(4), json!("first"));
    assert_eq!(note(5), json!("first"));
    assert_eq!(note(7), json!("second"));

    let run = &rt.history.list(Some("driver"), 1).unwrap()[0];
    let stats = run.children.iter().find(|c| c.flow == "peek").unwrap();
    assert_eq!((stats.calls, stats.memo_hits, stats.failures), (6, 2, 0));

    // Each run starts with an empty memo: a second run sees the committed row afresh.
    let again = ok(&rt, "driver", json!({"op": "steps", "steps": [peek("a")]})).await;
    assert_eq!(again[0]["note"], json!("second"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_call_of_a_pure_flow_is_not_remembered() {
    let env = TestEnv::new();
    let rt = runtime(&env, folder(&env, &[]));
    let fail = json!({"op": "call", "flow": "peek", "input": {"op": "fail", "message": "no"}});
    let steps = json!({"op": "for_each", "flow": "peek", "concurrency": 1,
                       "items": [fail["input"], fail["input"]]});
    let out = ok(&rt, "driver", steps).await;
    assert_eq!(out[0]["err"], out[1]["err"], "{out}");
    assert!(out[1]["err"].as_str().unwrap().contains("no"), "{out}");
    let run = &rt.history.list(Some("driver"), 1).unwrap()[0];
    let stats = run.children.iter().find(|c| c.flow == "peek").unwrap();
    assert_eq!((stats.calls, stats.memo_hits, stats.failures), (2, 0, 2));
}

#[test]
fn a_pure_flow_with_more_than_table_reads_is_refused_at_load() {
    let env = TestEnv::new();
    let writer =
        "title: Writer\ndescription: x\npure: true\ngrants:\n  tables:\n    write: [Probe Items]\n";
    let caller = "title: Caller\npure: true\ngrants:\n  flows: [peek]\n";
    let fetcher = "title: Fetcher\npure: true\ngrants:\n  hosts: [\"http://127.0.0.1:*\"]\n";
    let dir = folder(
        &env,
        &[("writer", writer), ("caller", caller), ("fetcher", fetcher)],
    );
    let rt = runtime(&env, dir.clone());
    let reg = rt.registry();
    let errors = reg.errors.join("\n");
    for name in ["writer", "caller", "fetcher"] {
        assert!(reg.get(name).is_none(), "{name} loaded: {errors}");
    }
    assert!(
        reg.get("peek").is_some() && reg.get("driver").is_some(),
        "{errors}"
    );
    let at = |name: &str, line: usize, grant: &str| {
        format!(
            "{}:{line}: pure: a pure flow may only read tables, but it is granted {grant} \
             (drop `pure: true` or the grant)",
            dir.join(format!("{name}.yaml")).display()
        )
    };
    for want in [
        at("writer", 3, "grants.tables.write: `Probe Items`"),
        at("caller", 2, "grants.flows: `peek`"),
        at("fetcher", 2, "grants.hosts: `http://127.0.0.1:*`"),
    ] {
        assert!(errors.contains(&want), "want {want}\nin {errors}");
    }
}
