//! The contract's versioning rule (docs/versioning.md): a flow built against an earlier 0.1.x
//! of `flowhost:flow` keeps loading and running on a host of a later 0.1.x, and what 0.1.1
//! added (`tables.delete-many`) and 0.1.2 (`tables.upsert-row`, which the Rust SDK's `upsert` uses)
//! work through a real component.

mod common;

use common::{err, ok, root, TestEnv};
use serde_json::json;

/// The version in `package flowhost:flow@X;` of a WIT file.
fn package_version(wit: &std::path::Path) -> String {
    let text = std::fs::read_to_string(wit).unwrap();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("package flowhost:flow@"))
        .and_then(|v| v.strip_suffix(';'))
        .unwrap_or_else(|| panic!("{}: no `package flowhost:flow@…;` line", wit.display()))
        .to_string()
}

/// The names of the instances a component imports.
fn imports(component: &std::path::Path) -> Vec<String> {
    let engine = wasmtime::Engine::default();
    let c = wasmtime::component::Component::from_file(&engine, component).unwrap();
    c.component_type()
        .imports(&engine)
        .map(|(name, _)| name.to_string())
        .collect()
}

fn probe_table(f: &str, args: serde_json::Value) -> serde_json::Value {
    let mut v = json!({"op": "table", "fn": f, "table": "Probe Items"});
    v.as_object_mut()
        .unwrap()
        .extend(args.as_object().unwrap().clone());
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flow_built_for_0_1_0_runs_on_a_later_0_1_host() {
    // The host is of a later 0.1.x than the frozen copy the test flow was built against.
    let current = package_version(&root().join("wit/flow.wit"));
    let frozen = package_version(&root().join("wit/released/0.1.0/flow.wit"));
    assert_eq!(frozen, "0.1.0");
    assert!(
        current.starts_with("0.1.") && current != "0.1.0",
        "wit/flow.wit is {current}: this test is about a host newer than 0.1.0"
    );
    // The component really imports the old version (not a rebuild against the current WIT).
    let old = imports(&common::flows_dir("dist-test").join("v010.wasm"));
    let ours: Vec<&String> = old
        .iter()
        .filter(|n| n.starts_with("flowhost:flow/"))
        .collect();
    assert!(
        !ours.is_empty(),
        "v010 imports nothing of flowhost:flow: {old:?}"
    );
    assert!(
        ours.iter().all(|n| n.ends_with("@0.1.0")),
        "v010 must import only 0.1.0 interfaces: {ours:?}"
    );
    let new = imports(&common::flows_dir("dist-test").join("probe.wasm"));
    assert!(
        new.contains(&format!("flowhost:flow/tables@{current}")),
        "probe (built with the SDK) imports tables@{current}: {new:?}"
    );

    // And it runs: its table read and its call go through the host's current implementation.
    let env = TestEnv::new();
    let rt = env.runtime();
    let rows = json!({"rows": [{"id": "a", "n": 1}, {"id": "b", "n": 2}]});
    assert_eq!(
        ok(&rt, "probe", probe_table("insert_many", rows)).await,
        json!(2)
    );
    let out = ok(&rt, "v010", json!({"hello": "0.1.0"})).await;
    assert_eq!(
        out,
        json!({"input": {"hello": "0.1.0"}, "probe_items": 2, "echo": {"hello": "0.1.0"}})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_many_deletes_the_rows_it_names_and_counts_them() {
    let env = TestEnv::new();
    let rt = env.runtime();
    let rows = json!({"rows": [{"id": "a"}, {"id": "b"}, {"id": "c"}, {"id": "d"}]});
    assert_eq!(
        ok(&rt, "probe", probe_table("insert_many", rows)).await,
        json!(4)
    );
    // Two keys that exist, one that does not: it counts only what it deleted.
    let n = ok(
        &rt,
        "probe",
        probe_table("delete_many", json!({"keys": ["a", "c", "zz"]})),
    )
    .await;
    assert_eq!(n, json!(2));
    let left = ok(&rt, "probe", probe_table("find", json!({}))).await;
    let ids: Vec<&str> = left
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["b", "d"]);
    // No keys: nothing to do.
    let n = ok(
        &rt,
        "probe",
        probe_table("delete_many", json!({"keys": []})),
    )
    .await;
    assert_eq!(n, json!(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_many_is_refused_past_its_limit_and_without_a_write_grant() {
    let env = TestEnv::new();
    let rt = env.runtime();
    let rows = json!({"rows": [{"id": "a"}]});
    assert_eq!(
        ok(&rt, "probe", probe_table("insert_many", rows)).await,
        json!(1)
    );
    let keys: Vec<String> = (0..10_001).map(|i| format!("k{i}")).collect();
    let e = err(
        &rt,
        "probe",
        probe_table("delete_many", json!({"keys": keys})),
    )
    .await;
    assert!(
        e.contains("limit-exceeded") && e.contains("10000") && e.contains("10001"),
        "{e}"
    );
    // Nothing was deleted by the refused call.
    assert_eq!(
        ok(&rt, "probe", probe_table("count", json!({}))).await,
        json!(1)
    );

    // probe may only read Environment Variables.
    let op = json!({"op": "table", "fn": "delete_many", "table": "Environment Variables", "keys": ["x"]});
    let e = err(&rt, "probe", op).await;
    assert!(
        e.contains("access-denied") && e.contains("Environment Variables"),
        "{e}"
    );
}

#[test]
fn the_current_contract_is_kept_among_the_released_ones() {
    let current = package_version(&root().join("wit/flow.wit"));
    let kept = root().join(format!("wit/released/{current}/flow.wit"));
    let (now, then) = (
        std::fs::read_to_string(root().join("wit/flow.wit")).unwrap(),
        std::fs::read_to_string(&kept)
            .unwrap_or_else(|e| panic!("{}: {e} (docs/versioning.md: copy it)", kept.display())),
    );
    assert!(
        now == then,
        "wit/flow.wit differs from {}: a change needs a new version (docs/versioning.md)",
        kept.display()
    );
}

/// What 0.1.2 added: the SDK's `upsert` sends a struct or map row as typed cells
/// (`tables.upsert-row`), `insert` sends JSON text. The same row stores the same values either
/// way (a text with quotes and a newline, an integer, a boolean, a nested `json` value), and a
/// row the table refuses is refused with the same words.
#[tokio::test(flavor = "multi_thread")]
async fn typed_upsert_rows_store_and_refuse_like_json_rows() {
    // The probe's `upsert` goes through `upsert-row`: its tables import has that function.
    let engine = wasmtime::Engine::default();
    let probe = common::flows_dir("dist-test").join("probe.wasm");
    let c = wasmtime::component::Component::from_file(&engine, &probe).unwrap();
    let tables: Vec<String> = c
        .component_type()
        .imports(&engine)
        .filter(|(name, _)| name.starts_with("flowhost:flow/tables@"))
        .flat_map(|(_, item)| match item.ty {
            wasmtime::component::types::ComponentItem::ComponentInstance(i) => {
                i.exports(&engine).map(|(f, _)| f.to_string()).collect()
            }
            _ => Vec::new(),
        })
        .collect();
    assert!(tables.iter().any(|f| f == "upsert-row"), "{tables:?}");
    let env = TestEnv::new();
    let rt = env.runtime();
    let fields = json!({"n": -42, "note": "say \"hi\"\n\ttab é", "flag": true,
                        "data": {"list": [1, 2.5, null], "s": "x"}});
    let row = |id: &str| {
        let mut r = fields.clone();
        r["id"] = json!(id);
        json!({"row": r})
    };
    assert_eq!(
        ok(&rt, "probe", probe_table("upsert", row("typed"))).await,
        json!("typed")
    );
    assert_eq!(
        ok(&rt, "probe", probe_table("insert", row("text"))).await,
        json!("text")
    );
    let typed = ok(&rt, "probe", probe_table("get", json!({"key": "typed"}))).await;
    let text = ok(&rt, "probe", probe_table("get", json!({"key": "text"}))).await;
    assert_eq!(typed, row("typed")["row"]);
    assert_eq!(text, row("text")["row"]);

    // The same refusals: a value of the wrong type, a column the table lacks.
    for bad in [
        json!({"n": "seven"}),
        json!({"colour": "red"}),
        json!({"n": 1.5}),
    ] {
        let mut r = bad.clone();
        r["id"] = json!("bad");
        let typed = err(
            &rt,
            "probe",
            probe_table("upsert", json!({"row": r.clone()})),
        )
        .await;
        let text = err(&rt, "probe", probe_table("insert", json!({"row": r}))).await;
        assert_eq!(typed, text, "{bad}");
        assert!(typed.contains("invalid-input"), "{typed}");
    }
    let bad = ok(&rt, "probe", probe_table("get", json!({"key": "bad"}))).await;
    assert_eq!(bad, json!(null));
}
