//! Flows written in Python (issue 19) under the real `flowhost` binary: the template
//! (`templates/python/`), the SDK (`sdks/python/flowhost_sdk/`, exercised by the fixture
//! `host/tests/fixtures/python/pysdk/`) and the offload example (`examples/python-offload/`).
//!
//! Projects are made with `flowhost new` and built with `flowhost build` (componentize-py
//! 0.25.1, which `cargo xtask test` installs) under `target/flowhost-test-py/NAME`, each once
//! per test binary (a build takes 10-20 s, the first compile of its 18 MB component as long
//! again), then installed into a flows folder as `flowhost build --install` does.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use common::process::Flowhost;
use common::{
    drop_flow, env_with_flows, error_line, flowhost, flowhost_async, root, serve, text, wait_until,
    TestEnv, PATIENCE,
};
use flowhost::history::{History, RunRecord, RunStatus};
use serde_json::{json, Value};

/// A built Python flow project: `dir/dist/NAME.wasm` and `dir/NAME.yaml`.
struct Project {
    dir: PathBuf,
    name: String,
}

impl Project {
    /// Installs the built flow into the flows folder `flows` the way `flowhost build
    /// --install` does (the host's own install: temporary names renamed into place).
    fn install(&self, flows: &Path) {
        std::fs::create_dir_all(flows).unwrap();
        let wasm = self.dir.join("dist").join(format!("{}.wasm", self.name));
        let manifest = self.dir.join(format!("{}.yaml", self.name));
        flowhost::scaffold::install::install(&self.name, &wasm, &manifest, flows).unwrap();
    }
}

/// The `flowhost` binary with `args` (no config: `new` and `build` need none).
fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flowhost"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// A fresh, empty place for project `name`: `target/flowhost-test-py/NAME` (kept after the
/// test, to look at; replaced by the next run).
fn fresh_dir(name: &str) -> PathBuf {
    let dir = root().join("target/flowhost-test-py").join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    dir
}

/// `flowhost new NAME --lang python --dir DIR`, which must succeed.
fn scaffold(name: &str) -> PathBuf {
    let dir = fresh_dir(name);
    let out = cli(&[
        "new",
        name,
        "--lang",
        "python",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "flowhost new: {}", text(&out.stderr));
    dir
}

/// `flowhost build DIR [--install FOLDER]`, which must succeed (componentize-py 0.25.1 must be
/// installed: `cargo xtask test` installs it).
fn build(dir: &Path, name: &str, install: Option<&Path>) -> Project {
    let mut args = vec!["build", dir.to_str().unwrap()];
    if let Some(folder) = install {
        args.extend(["--install", folder.to_str().unwrap()]);
    }
    let out = cli(&args);
    assert!(
        out.status.success(),
        "flowhost build {}: {}\n{}",
        dir.display(),
        text(&out.stdout),
        text(&out.stderr)
    );
    Project {
        dir: dir.to_path_buf(),
        name: name.to_string(),
    }
}

/// Copies the files of the folder `from` (not recursive) into `to`.
fn copy_files(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.path().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The SDK probe `pysdk`: a project from `flowhost new` whose app.py and manifest are the
/// fixture's (host/tests/fixtures/python/pysdk), built once.
fn pysdk() -> &'static Project {
    static BUILT: OnceLock<Project> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = scaffold("pysdk");
        copy_files(&root().join("host/tests/fixtures/python/pysdk"), &dir);
        build(&dir, "pysdk", None)
    })
}

/// The offload example as a user copies it (`examples/python-offload`: no SDK, no WIT; the
/// build writes them), with the schedule its manifest says to add to run it from `serve`
/// (its scheduled input: batches of 3). Built once.
fn offload() -> &'static Project {
    static BUILT: OnceLock<Project> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = fresh_dir("offload");
        copy_files(&root().join("examples/python-offload"), &dir);
        assert!(!dir.join("flowhost_sdk").exists() && !dir.join("wit").exists());
        let manifest = dir.join("offload.yaml");
        let mut text = std::fs::read_to_string(&manifest).unwrap();
        text.push_str("schedule:\n  every: 1h\n  input: {batch: 3}\n");
        std::fs::write(&manifest, text).unwrap();
        build(&dir, "offload", None)
    })
}

/// Run history of the test's database.
fn history(env: &TestEnv) -> History {
    History::open_read_only(&flowhost::history::history_path_for(env.db())).unwrap()
}

/// The newest run of `flow`, as `history show --json` gives it.
fn last_run(config: &Path) -> Value {
    let out = flowhost(config, &["history", "--json", "--limit", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = line["id"].as_i64().unwrap().to_string();
    let out = flowhost(config, &["history", "show", &id, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Imports `rows` (JSON objects) into `table` with `flowhost table import`.
fn import(env: &TestEnv, config: &Path, table: &str, rows: &[Value]) {
    let file = env.dir.path().join("rows.jsonl");
    let body: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(&file, body).unwrap();
    let out = flowhost(config, &["table", "import", table, file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// The rows of `table`, as `flowhost table export` gives them.
fn export(config: &Path, table: &str) -> Vec<Value> {
    let out = flowhost(config, &["table", "export", table]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_template_is_refused_its_table_read_until_the_grant_is_added() {
    let (env, flows) = env_with_flows();
    let config = env.config_file("");
    // As docs/python.md says: new, then build with --install into the flows folder.
    let dir = scaffold("hello");
    for file in [
        "hello.yaml",
        "app.py",
        "flowhost_sdk/__init__.py",
        "wit/flow.wit",
    ] {
        assert!(dir.join(file).is_file(), "flowhost new wrote no {file}");
    }
    build(&dir, "hello", Some(&flows));

    let out = flowhost(&config, &["run", "hello", "--input", r#"{"a": 1}"#]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let line = error_line(&text(&out.stderr));
    assert!(
        line.contains("access-denied: ") && line.contains("Execution Log"),
        "{line}"
    );
    let run = last_run(&config);
    assert_eq!(run["flow"], "hello");
    assert_eq!(run["status"], "error");
    let error = run["error"].as_str().unwrap();
    assert!(
        error.contains("access-denied: ") && error.contains("`Execution Log`"),
        "{error}"
    );

    // The grant the template's comment names, added to the installed manifest.
    let installed = flows.join("hello.yaml");
    let mut manifest = std::fs::read_to_string(&installed).unwrap();
    assert!(
        !manifest.lines().any(|l| l.starts_with("grants:")),
        "{manifest}"
    );
    manifest.push_str("grants:\n  tables:\n    read: [Execution Log]\n");
    std::fs::write(&installed, manifest).unwrap();
    import(
        &env,
        &config,
        "Execution Log",
        &[json!({"notes": "one"}), json!({"notes": "two"})],
    );
    let out = flowhost(&config, &["run", "hello", "--input", r#"{"a": 1}"#]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got, json!({"input": {"a": 1}, "log_rows": 2}));
    // No input counts as `{}`.
    let out = flowhost(&config, &["run", "hello"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got, json!({"input": {}, "log_rows": 2}));
}

/// What the loopback server of the SDK test saw: one `(headers, body)` per request.
type Seen = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

async fn collect(
    State(seen): State<Seen>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let reply = json!({"got": serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null)});
    seen.lock().unwrap().push((headers, body.to_vec()));
    (StatusCode::CREATED, [("X-Reply", "yes")], reply.to_string())
}

/// A world with `pysdk` and the test flow `echo` in its flows folder and the secret PY_TOKEN.
fn sdk_world() -> (TestEnv, PathBuf) {
    let (env, flows) = env_with_flows();
    let env = env.with_secrets(&[("PY_TOKEN", "tok-123")]);
    drop_flow(&flows, "echo", "echo", "title: Echo\n");
    pysdk().install(&flows);
    let config = env.config_file("");
    (env, config)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_verbs_work_against_the_real_host() {
    let (_env, config) = tokio::task::spawn_blocking(sdk_world).await.unwrap();
    let seen: Seen = Arc::default();
    let origin = serve(
        Router::new()
            .route("/collect", post(collect))
            .with_state(seen.clone()),
    )
    .await;

    let input = json!({"op": "verbs", "url": origin}).to_string();
    let out = flowhost_async(&config, &["run", "pysdk", "--input", &input]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();

    // Tables.
    assert_eq!(got["insert"], "a");
    assert_eq!(got["insert_many"], 2);
    assert_eq!(
        got["get"],
        json!({"id": "a", "n": 1, "note": "first", "flag": true, "data": {"x": [1, 2]}})
    );
    assert_eq!(got["get_missing"], Value::Null);
    assert_eq!(got["find"], json!(["b"]));
    assert_eq!(got["find_all"], json!(["a", "b", "c"]));
    assert_eq!(got["update"], true);
    assert_eq!(got["update_missing"], false);
    assert_eq!(got["upsert"], "c");
    assert_eq!(got["delete"], true);
    assert_eq!(got["delete_again"], false);
    assert_eq!(got["delete_many"], 2);
    assert_eq!(got["count"], 2);
    assert_eq!(got["count_n30"], 1);
    assert_eq!(got["first"], "b");
    assert_eq!(got["bad_column"], "invalid-input");
    let rows = export(&config, "Probe Items");
    let notes: Vec<(&str, &Value)> = rows
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), &r["note"]))
        .collect();
    assert_eq!(notes, [("b", &json!("second")), ("c", &Value::Null)]);

    // Child flows.
    assert_eq!(got["echo"], json!({"hello": [1, 2]}));
    assert_eq!(
        got["for_each"],
        json!([
            {"ok": true, "value": 1},
            {"ok": true, "value": {"b": 2}},
            {"ok": true, "value": "three"}
        ])
    );

    // Blobs and the cache.
    assert_eq!(
        got["blobs"],
        json!({
            "list": ["py/one.txt", "py/two.bin"],
            "get": "one",
            "missing": null,
            "delete": true,
            "after": ["py/one.txt"]
        })
    );
    assert_eq!(got["cache"], json!(["v", null]));
    assert_eq!(got["cache_removed"], Value::Null);

    // HTTP with headers and a JSON body, the secret sent but never returned.
    assert_eq!(
        got["http"],
        json!({"status": 201, "json": {"got": {"rows": 2}}, "x_reply": "yes"})
    );
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let (headers, body) = &requests[0];
    assert_eq!(headers["authorization"], "Bearer tok-123");
    assert_eq!(headers["x-flow"], "pysdk");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        serde_json::from_slice::<Value>(body).unwrap(),
        json!({"rows": 2})
    );

    // AccessDenied caught as an exception carrying the WIT case.
    assert_eq!(got["denied"]["kind"], "access-denied");
    let message = got["denied"]["message"].as_str().unwrap();
    assert!(message.contains("`Execution Log`"), "{message}");
    assert_eq!(got["denied"]["text"], format!("access-denied: {message}"));

    // Grants of other flows: pysdk may reach the server, echo may not.
    assert_eq!(got["echo_may_not_reach"], "access-denied");

    // schedule.now: RFC 3339 in UTC.
    let now = got["now"].as_str().unwrap();
    assert!(
        now.parse::<jiff::Timestamp>().is_ok() && now.ends_with('Z'),
        "{now}"
    );

    // The log line is in the run's history, and the secret is nowhere in it.
    let run = last_run(&config);
    assert_eq!(run["flow"], "pysdk");
    let logs = run["logs"].to_string();
    assert!(logs.contains("pysdk: 2 rows in Probe Items"), "{logs}");
    let warned = run["logs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["level"] == "warn" && l["message"] == "pysdk: a warning");
    assert!(warned, "{logs}");
    assert!(!run.to_string().contains("tok-123"), "{run}");
}

#[tokio::test(flavor = "multi_thread")]
async fn uncaught_errors_end_the_run_with_one_line() {
    let (_env, config) = tokio::task::spawn_blocking(sdk_world).await.unwrap();
    let fails = |op: &'static str| {
        let config = config.clone();
        async move {
            let input = json!({ "op": op }).to_string();
            let out = flowhost_async(&config, &["run", "pysdk", "--input", &input]).await;
            assert_eq!(out.status.code(), Some(1), "{op}: {}", text(&out.stdout));
            let run = tokio::task::spawn_blocking(move || last_run(&config))
                .await
                .unwrap();
            assert_eq!(run["status"], "error", "{op}: {run}");
            run["error"].as_str().unwrap().to_string()
        }
    };

    // A FlowhostError: `kind: message`, as the Rust SDK's FlowError gives it.
    let denied = fails("denied").await;
    assert!(
        denied.contains("access-denied: pysdk may not read table `Execution Log`"),
        "{denied}"
    );
    // A FlowError: its text.
    let failed = fails("fail").await;
    assert!(failed.ends_with("batch must be positive"), "{failed}");
    // Any other exception: its type, message and where, not a traceback.
    let crashed = fails("crash").await;
    assert!(
        crashed.contains("ZeroDivisionError: ") && crashed.contains("(at app.py:"),
        "{crashed}"
    );
    assert!(
        !crashed.contains("Traceback") && !crashed.contains('\n'),
        "{crashed}"
    );
}

/// What the offload test's collector saw (every POST body) and answers with.
#[derive(Clone)]
struct Collector {
    bodies: Arc<Mutex<Vec<String>>>,
    status: StatusCode,
}

async fn receive(State(c): State<Collector>, headers: HeaderMap, body: String) -> StatusCode {
    assert_eq!(headers["content-type"], "application/x-ndjson");
    c.bodies.lock().unwrap().push(body);
    c.status
}

/// Seven Audit Events, oldest first.
fn audit_events() -> Vec<Value> {
    (0..7)
        .map(|i| json!({"id": format!("ev-{i}"), "timestamp": format!("2026-01-01T00:00:0{i}Z"), "type": "user.login"}))
        .collect()
}

/// A `serve` over a flows folder with U10 and U14 (the offloadable count), Audit Events
/// seeded, the collector at `collector` as secret OFFLOAD_URL and granted; then the example
/// is installed into the running `serve`, which runs it at once (its schedule).
fn serve_with_offload(collector: &str) -> (TestEnv, PathBuf, Flowhost) {
    let (env, flows) = env_with_flows();
    let env = env.with_secrets(&[("OFFLOAD_URL", &format!("{collector}/ingest"))]);
    common::copy_flows(&common::flows_dir("dist"), &flows, |f| {
        f.starts_with("U10.") || f.starts_with("U14.")
    });
    let config = env.config_file("grants:\n  offload: { hosts: [\"http://127.0.0.1:*\"] }\n");
    import(&env, &config, "Audit Events", &audit_events());
    let mut serve = Flowhost::spawn(&config, &["serve"], &[]);
    serve.wait_line("serving", |l| l.contains("serving scheduled flows"));
    offload().install(&flows);
    (env, config, serve)
}

/// A collector answering `status` on loopback, and `serve` running the offload example
/// against it.
async fn offload_against(status: StatusCode) -> (Collector, TestEnv, PathBuf, Flowhost) {
    let collector = Collector {
        bodies: Arc::default(),
        status,
    };
    let origin = serve(
        Router::new()
            .route("/ingest", post(receive))
            .with_state(collector.clone()),
    )
    .await;
    let (env, config, serve) = tokio::task::spawn_blocking(move || serve_with_offload(&origin))
        .await
        .unwrap();
    (collector, env, config, serve)
}

fn offload_runs(env: &TestEnv) -> Vec<RunRecord> {
    let mut runs = history(env).list(Some("offload"), 50).unwrap();
    runs.sort_by_key(|r| r.id);
    runs
}

#[tokio::test(flavor = "multi_thread")]
async fn the_offload_example_posts_the_oldest_rows_and_deletes_exactly_those() {
    // Batches of 3 (the scheduled input): 3 + 3 + 1, each run asking for the next.
    let (collector, env, config, serve) = offload_against(StatusCode::OK).await;

    // Until a run ends with nothing more to do (or one fails: the asserts below say which).
    wait_until(PATIENCE, "the last offload run", || {
        offload_runs(&env).iter().any(|r| {
            r.ended.is_some()
                && (r.status != RunStatus::Ok
                    || r.output
                        .as_deref()
                        .is_some_and(|o| o.contains(r#""more":false"#)))
        })
    })
    .await;
    let runs = offload_runs(&env);
    let outputs: Vec<Value> = runs
        .iter()
        .map(|r| {
            assert_eq!(r.status, RunStatus::Ok, "{r:?}");
            serde_json::from_str(r.output.as_deref().unwrap()).unwrap()
        })
        .collect();
    assert_eq!(
        outputs,
        [
            json!({"offloaded": 3, "more": true}),
            json!({"offloaded": 3, "more": true}),
            json!({"offloaded": 1, "more": false}),
        ]
    );

    // The collector got every row once, oldest first, as NDJSON of the stored rows.
    let bodies = collector.bodies.lock().unwrap().clone();
    let posted: Vec<Vec<Value>> = bodies
        .iter()
        .map(|b| {
            assert!(b.ends_with('\n'), "{b:?}");
            b.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        })
        .collect();
    let ids = |rows: &[Value]| -> Vec<String> {
        rows.iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        posted.iter().map(|p| ids(p)).collect::<Vec<_>>(),
        [
            vec!["ev-0", "ev-1", "ev-2"],
            vec!["ev-3", "ev-4", "ev-5"],
            vec!["ev-6"]
        ]
    );
    for (row, want) in posted.iter().flatten().zip(audit_events()) {
        assert_eq!(row["timestamp"], want["timestamp"]);
        assert_eq!(row["type"], want["type"]);
    }
    // And they are gone from the table.
    let left = tokio::task::spawn_blocking(move || export(&config, "Audit Events"))
        .await
        .unwrap();
    assert_eq!(left, Vec::<Value>::new());
    let (status, _) = tokio::task::spawn_blocking(move || serve.stop())
        .await
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collector_that_fails_gets_nothing_deleted_and_the_run_fails() {
    let (collector, env, config, serve) = offload_against(StatusCode::INTERNAL_SERVER_ERROR).await;

    wait_until(PATIENCE, "the failed offload run", || {
        offload_runs(&env).iter().any(|r| r.ended.is_some())
    })
    .await;
    let runs = offload_runs(&env);
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].status, RunStatus::Error);
    let error = runs[0].error.as_deref().unwrap();
    assert!(
        error.contains("secret OFFLOAD_URL") && error.contains("HTTP 500"),
        "{error}"
    );
    // The host retried (3 attempts in all), each time with the same three oldest rows.
    let bodies = collector.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    for body in &bodies {
        let ids: Vec<String> = body
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(ids, ["ev-0", "ev-1", "ev-2"], "{body}");
    }
    let left = tokio::task::spawn_blocking(move || export(&config, "Audit Events"))
        .await
        .unwrap();
    let ids: Vec<&str> = left.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["ev-0", "ev-1", "ev-2", "ev-3", "ev-4", "ev-5", "ev-6"]
    );
    let (status, _) = tokio::task::spawn_blocking(move || serve.stop())
        .await
        .unwrap();
    assert!(status.success());
}
