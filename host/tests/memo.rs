//! `pure: true` flows: within one run the host answers a repeated call from the first one, and
//! only while the tables the flow reads are unchanged; across runs, only when reading the same
//! rows again gives the same answers; a pure flow holding any grant but table reads is refused
//! at load.

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

    // A second run sees the committed row (what peek read was written since its last call).
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

/// `peek`'s calls and memo hits in the last run of `driver`.
fn peek_stats(rt: &Runtime) -> (u64, u64) {
    let run = &rt.history.list(Some("driver"), 1).unwrap()[0];
    let stats = run.children.iter().find(|c| c.flow == "peek").unwrap();
    (stats.calls, stats.memo_hits)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pure_flows_call_is_kept_across_runs_while_what_it_read_is_unchanged() {
    let env = TestEnv::new();
    let rt = runtime(&env, folder(&env, &[]));
    let one = |step: Value| json!({"op": "steps", "steps": [step]});
    ok(&rt, "driver", one(upsert("a", "first"))).await;

    // The first run of the call runs peek; the next run's is answered from it after one read.
    let first = ok(&rt, "driver", one(peek("a"))).await;
    assert_eq!(first[0]["note"], json!("first"));
    assert_eq!(peek_stats(&rt), (1, 0));
    let again = ok(&rt, "driver", one(peek("a"))).await;
    assert_eq!(again, first);
    assert_eq!(peek_stats(&rt), (1, 1));

    // The row peek read was written with the same text: still the same answer.
    ok(&rt, "driver", one(upsert("a", "first"))).await;
    ok(&rt, "driver", one(peek("a"))).await;
    assert_eq!(peek_stats(&rt), (1, 1));

    // Another process changes the row: the next call runs peek again and sees it.
    let db = rusqlite::Connection::open(env.config.db.sqlite_path().unwrap()).unwrap();
    let changed = db
        .execute(
            "UPDATE t_probe_items SET note = 'second' WHERE id = 'a'",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    let after = ok(&rt, "driver", one(peek("a"))).await;
    assert_eq!(after[0]["note"], json!("second"));
    assert_eq!(peek_stats(&rt), (1, 0));

    // A row that was missing when the call was kept, and is there now.
    assert_eq!(ok(&rt, "driver", one(peek("b"))).await[0], Value::Null);
    ok(&rt, "driver", one(upsert("b", "new"))).await;
    assert_eq!(
        ok(&rt, "driver", one(peek("b"))).await[0]["note"],
        json!("new")
    );
    assert_eq!(peek_stats(&rt), (1, 0));

    // The run's own write, not yet committed, is read too.
    let steps = json!({"op": "steps", "steps": [upsert("a", "third"), peek("a")]});
    assert_eq!(ok(&rt, "driver", steps).await[1]["note"], json!("third"));
    assert_eq!(peek_stats(&rt), (1, 0));
}

/// A kept call that read a row the run has since upserted is checked against that row (the
/// upsert sets every column in the run's transaction, so it is what a get gives, whatever
/// another process wrote before); after any other write to the table, against the table.
#[tokio::test(flavor = "multi_thread")]
async fn a_kept_calls_read_of_a_row_the_run_upserted_is_checked_against_that_row() {
    let env = TestEnv::new();
    let rt = runtime(&env, folder(&env, &[]));
    let steps = |s: &[Value]| json!({"op": "steps", "steps": s});
    let table = |f: &str, more: Value| {
        let mut op = json!({"op": "table", "fn": f, "table": "Probe Items"});
        op.as_object_mut()
            .unwrap()
            .extend(more.as_object().unwrap().clone());
        op
    };
    let note = |out: &Value, i: usize| out[i]["note"].clone();
    let db = rusqlite::Connection::open(env.config.db.sqlite_path().unwrap()).unwrap();

    // peek runs once; from then on its call is kept, and the run follows its own upserts.
    let out = ok(&rt, "driver", steps(&[upsert("a", "first"), peek("a")])).await;
    assert_eq!((note(&out, 1), peek_stats(&rt)), (json!("first"), (1, 0)));
    let out = ok(&rt, "driver", steps(&[upsert("a", "first"), peek("a")])).await;
    assert_eq!((note(&out, 1), peek_stats(&rt)), (json!("first"), (1, 1)));

    // Another process changes the row; the run's upsert writes it back as the call read it.
    db.execute("UPDATE t_probe_items SET note = 'other' WHERE id = 'a'", [])
        .unwrap();
    let out = ok(&rt, "driver", steps(&[upsert("a", "first"), peek("a")])).await;
    assert_eq!((note(&out, 1), peek_stats(&rt)), (json!("first"), (1, 1)));

    // The run upserts another text: peek runs again and reads it.
    let out = ok(&rt, "driver", steps(&[upsert("a", "second"), peek("a")])).await;
    assert_eq!((note(&out, 1), peek_stats(&rt)), (json!("second"), (1, 0)));

    // Any other write to the table after the upsert: the check reads the table.
    let writes = [
        (table("delete", json!({"key": "a"})), Value::Null),
        (
            table("update", json!({"key": "a", "changes": {"note": "third"}})),
            json!("third"),
        ),
        (table("clear", json!({})), Value::Null),
    ];
    for (write, want) in writes {
        let out = ok(
            &rt,
            "driver",
            steps(&[upsert("a", "second"), write.clone(), peek("a")]),
        )
        .await;
        assert_eq!(note(&out, 2), want, "{write}: {out}");
        // What the table holds, as another connection sees it once the run committed.
        let stored: Option<String> = db
            .query_row("SELECT note FROM t_probe_items WHERE id = 'a'", [], |r| {
                r.get(0)
            })
            .ok();
        assert_eq!(
            stored.map(Value::from).unwrap_or(Value::Null),
            want,
            "{write}"
        );
        // Put back what peek's kept call read, for the next write.
        ok(&rt, "driver", steps(&[upsert("a", "second"), peek("a")])).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pure_call_that_did_more_than_read_tables_is_not_kept_across_runs() {
    let env = TestEnv::new();
    let rt = runtime(&env, folder(&env, &[]));
    let get = json!({"op": "table", "fn": "get", "table": "Probe Items", "key": "a"});
    for extra in [
        json!({"op": "log", "level": "info", "message": "looked"}),
        json!({"op": "now"}),
        json!({"op": "cache_get", "key": "k"}),
    ] {
        let call = json!({"op": "call", "flow": "peek",
                          "input": {"op": "steps", "steps": [get, extra]}});
        let steps = json!({"op": "steps", "steps": [call]});
        for _ in 0..2 {
            ok(&rt, "driver", steps.clone()).await;
            assert_eq!(peek_stats(&rt), (1, 0), "{extra}");
        }
    }
    // Reads alone (a get, a find and a count) are kept.
    let reads = json!({"op": "call", "flow": "peek", "input": {"op": "steps", "steps": [
        get,
        {"op": "table", "fn": "find", "table": "Probe Items", "filter": {}},
        {"op": "table", "fn": "count", "table": "Probe Items", "filter": {}},
    ]}});
    let steps = json!({"op": "steps", "steps": [reads]});
    ok(&rt, "driver", steps.clone()).await;
    assert_eq!(peek_stats(&rt), (1, 0));
    ok(&rt, "driver", steps.clone()).await;
    assert_eq!(peek_stats(&rt), (1, 1));
    // A row added changes the find and the count: run again.
    ok(
        &rt,
        "driver",
        json!({"op": "steps", "steps": [upsert("z", "other")]}),
    )
    .await;
    let out = ok(&rt, "driver", steps).await;
    assert_eq!(peek_stats(&rt), (1, 0));
    assert_eq!(out[0][2], json!(1), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replaced_pure_flow_does_not_reuse_the_calls_of_the_one_before() {
    let env = TestEnv::new();
    let dir = folder(&env, &[]);
    let rt = runtime(&env, dir.clone());
    let steps = json!({"op": "steps", "steps": [peek("a")]});
    ok(&rt, "driver", steps.clone()).await;
    ok(&rt, "driver", steps.clone()).await;
    assert_eq!(peek_stats(&rt), (1, 1));

    // peek becomes the echo flow (its manifest unchanged): a call runs it.
    let echo = common::root().join("flows/dist-test/echo.wasm");
    std::fs::copy(echo, dir.join("peek.wasm")).unwrap();
    let mut config = env.config.clone();
    config.flows = vec![dir];
    config.builtin = false;
    rt.set_registry(config.load_registry().unwrap());
    let out = ok(&rt, "driver", steps).await;
    assert_eq!(peek_stats(&rt), (1, 0));
    assert_eq!(out[0]["fn"], json!("get"), "{out}");
}
