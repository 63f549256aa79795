//! Flows in JavaScript (issue 19), through the real `flowhost` binary: a project made by
//! `flowhost new --lang javascript` and built (and installed) by `flowhost build`, refused its
//! table read until granted; the SDK (`sdks/javascript/flowhost.js`) against the real host;
//! the `examples/js-alert` flow built from the example and installed into a running `serve`.
//!
//! npm installs the template's package.json and package-lock.json once, into
//! `target/flowhost-test-js/` (again only when they change); every project here links its
//! `node_modules` there, so `flowhost build` skips its own `npm install`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use axum::http::HeaderMap;
use axum::routing::post;
use common::process::Flowhost;
use common::{drop_flow, env_with_flows, error_line, flowhost, flowhost_async, root, text};
use flowhost::history::{History, RunRecord, RunStatus};
use serde_json::{json, Value};

/// Where the shared npm install and the projects of this test binary live.
fn work_dir() -> PathBuf {
    root().join("target/flowhost-test-js")
}

/// Runs `cmd`, which must succeed; panics with its output otherwise.
fn must(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {cmd:?} failed ({}):\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// The shared `node_modules`: the template's package.json and package-lock.json (the pinned
/// componentize-js and everything under it), installed when they changed.
fn node_modules() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = work_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let files = ["package.json", "package-lock.json"].map(|f| {
            let template = std::fs::read_to_string(root().join("templates/javascript").join(f));
            (f, template.unwrap().replace("{{name}}", "flowhost-test-js"))
        });
        let installed = dir.join("node_modules/.bin/componentize-js").exists()
            && files
                .iter()
                .all(|(f, body)| std::fs::read_to_string(dir.join(f)).ok().as_ref() == Some(body));
        if !installed {
            for (f, body) in &files {
                std::fs::write(dir.join(f), body).unwrap();
            }
            must(
                Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund"])
                    .current_dir(&dir),
                "the JavaScript tests need Node.js 20+ with npm",
            );
        }
        dir.join("node_modules")
    })
}

/// A built JavaScript project: `DIR/dist/NAME.wasm` and `DIR/NAME.yaml`.
struct Built {
    dir: PathBuf,
    name: String,
}

impl Built {
    fn wasm(&self) -> PathBuf {
        self.dir.join("dist").join(format!("{}.wasm", self.name))
    }

    fn manifest(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}.yaml", self.name))).unwrap()
    }
}

/// A fresh project folder `target/flowhost-test-js/projects/NAME` (its last run's removed).
fn project_dir(name: &str) -> PathBuf {
    let dir = work_dir().join("projects").join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    dir
}

/// `flowhost ARGS` (no config: `new` and `build` need none), which must succeed; what it
/// printed (stdout, then stderr).
fn flowhost_cli(args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowhost"));
    cmd.args(args).env_remove("RUST_LOG");
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "flowhost {args:?} failed ({}):\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout) + &text(&out.stderr)
}

/// `flowhost new NAME --lang javascript --dir target/flowhost-test-js/projects/NAME`; the
/// folder and what `new` printed.
fn scaffold(name: &str) -> (PathBuf, String) {
    let dir = project_dir(name);
    let said = flowhost_cli(&[
        "new",
        name,
        "--lang",
        "javascript",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    (dir, said)
}

/// `flowhost build DIR [--install FOLDER]`, with the shared `node_modules` linked in (so its
/// `npm install` is skipped).
fn build(dir: &Path, name: &str, install: Option<&Path>) -> Built {
    let modules = dir.join("node_modules");
    if !modules.exists() {
        std::os::unix::fs::symlink(node_modules(), modules).unwrap();
    }
    let mut args = vec!["build", dir.to_str().unwrap()];
    if let Some(folder) = install {
        args.extend(["--install", folder.to_str().unwrap()]);
    }
    flowhost_cli(&args);
    let built = Built {
        dir: dir.to_path_buf(),
        name: name.to_string(),
    };
    assert!(built.wasm().exists(), "no {}", built.wasm().display());
    built
}

/// The flow `sdkprobe`: a scaffolded project with `lang_javascript/sdk_probe.js` as its app,
/// built once.
fn sdk_probe() -> &'static Built {
    static B: OnceLock<Built> = OnceLock::new();
    B.get_or_init(|| {
        let (dir, _) = scaffold("sdkprobe");
        std::fs::copy(
            root().join("host/tests/lang_javascript/sdk_probe.js"),
            dir.join("app.js"),
        )
        .unwrap();
        build(&dir, "sdkprobe", None)
    })
}

/// Puts the component and then `manifest` into the flows folder `flows`, each under a
/// temporary name first, as `--install` does.
fn install(built: &Built, flows: &Path, manifest: &str) {
    let wasm = flows.join(format!(".{}.wasm.part", built.name));
    std::fs::copy(built.wasm(), &wasm).unwrap();
    std::fs::rename(&wasm, flows.join(format!("{}.wasm", built.name))).unwrap();
    let yaml = flows.join(format!(".{}.yaml.part", built.name));
    std::fs::write(&yaml, manifest).unwrap();
    std::fs::rename(&yaml, flows.join(format!("{}.yaml", built.name))).unwrap();
}

/// The newest run of `flow` in the history beside `db`.
/// The newest top-level run of `flow` (a failed child run of it has a history row too).
fn last_run(db: &Path, flow: &str) -> RunRecord {
    let history = History::open_read_only(&flowhost::history::history_path_for(db)).unwrap();
    history
        .list(Some(flow), 50)
        .unwrap()
        .into_iter()
        .find(|r| r.parent.is_none())
        .unwrap_or_else(|| panic!("no top-level run of {flow} in history"))
}

#[test]
fn the_sdk_imports_the_wit_version_the_host_provides() {
    let wit = std::fs::read_to_string(root().join("wit/flow.wit")).unwrap();
    let version = wit
        .lines()
        .find_map(|l| l.trim().strip_prefix("package flowhost:flow@"))
        .and_then(|v| v.strip_suffix(';'))
        .expect("wit/flow.wit names its package");
    let sdk = std::fs::read_to_string(root().join("sdks/javascript/flowhost.js")).unwrap();
    let specifiers: Vec<&str> = sdk
        .split('\'')
        .filter(|s| s.starts_with("flowhost:flow/"))
        .collect();
    assert_eq!(
        specifiers.len(),
        9,
        "one import per interface: {specifiers:?}"
    );
    for s in specifiers {
        assert!(
            s.ends_with(&format!("@{version}")),
            "{s} is not at the host's version {version}"
        );
    }
}

#[test]
fn a_scaffolded_flow_is_refused_its_table_read_until_the_manifest_grants_it() {
    let (env, flows) = env_with_flows();
    let config = env.config_file("");
    let (dir, said) = scaffold("hello");
    // `new` names the grant the template's read needs.
    assert!(said.contains("read: [Execution Log]"), "{said}");
    for f in [
        "app.js",
        "package.json",
        "package-lock.json",
        "flowhost.js",
        "flowhost.d.ts",
    ] {
        assert!(dir.join(f).is_file(), "flowhost new wrote no {f}");
    }
    let built = &build(&dir, "hello", Some(&flows));
    assert!(flows.join("hello.wasm").is_file() && flows.join("hello.yaml").is_file());

    // No grant: the template lets the host's error end the run, with the WIT case.
    let out = flowhost(&config, &["run", "hello", "--input", r#"{"a": 1}"#]);
    assert!(!out.status.success(), "ran without the grant");
    let denied = "access-denied: hello may not read table `Execution Log`";
    let stderr = text(&out.stderr);
    assert!(error_line(&stderr).contains(denied), "{stderr}");
    let run = last_run(env.db(), "hello");
    assert_eq!(run.status, RunStatus::Error);
    assert!(
        run.error.as_deref().unwrap_or_default().contains(denied),
        "{:?}",
        run.error
    );

    // The grant `flowhost new` tells the user to add: the same component now reads the table.
    let granted = format!(
        "{}grants:\n  tables:\n    read: [Execution Log]\n",
        built.manifest()
    );
    install(built, &flows, &granted);
    let out = flowhost(&config, &["run", "hello", "--input", r#"{"a": 1}"#]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let output: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(output, json!({"input": {"a": 1}, "log_rows": 0}));
    // An empty input is `{}`.
    let out = flowhost(&config, &["run", "hello"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let output: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(output, json!({"input": {}, "log_rows": 0}));
}

/// What the loopback server was sent: `x-probe`, `content-type` and the body.
type Seen = Arc<Mutex<Vec<(String, String, Value)>>>;

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// A loopback server recording each POST body (JSON) and answering `{"received": body.n}`.
async fn recording_server(path: &str) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        path,
        post(move |h: HeaderMap, body: String| async move {
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
            let n = v.get("n").cloned().unwrap_or(Value::Null);
            s.lock()
                .unwrap()
                .push((header(&h, "x-probe"), header(&h, "content-type"), v));
            (
                [("x-server", "axum-test")],
                axum::Json(json!({"received": n})),
            )
        }),
    );
    (common::serve(app).await, seen)
}

const PROBE_SECRET: &str = "js-probe-secret-7f3a9c";

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_verbs_work_against_the_real_host_and_errors_carry_their_wit_case() {
    let built = sdk_probe();
    let (origin, seen) = recording_server("/hook").await;
    let (env, flows) = env_with_flows();
    let env = env.with_secrets(&[("JS_PROBE_SECRET", PROBE_SECRET)]);
    drop_flow(&flows, "echo", "echo", "title: Echo\n");
    install(
        built,
        &flows,
        "title: SDK probe\ngrants:\n  hosts: [\"http://127.0.0.1:*\"]\n  tables:\n    write: [Probe Items]\n  flows: [echo, sdkprobe]\n  secrets: [JS_PROBE_SECRET]\n  blobs:\n    write: [scratch]\n",
    );
    let config = env.config_file("");

    let input = json!({"url": origin, "tag": "t1"}).to_string();
    let out = flowhost_async(&config, &["run", "sdkprobe", "--input", &input]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let o: Value = serde_json::from_slice(&out.stdout).unwrap();

    // Tables.
    assert_eq!(o["inserted"], "a");
    assert_eq!(o["insertedMany"], 2);
    assert_eq!(o["upserted"], "c");
    assert_eq!(
        o["got"],
        json!({"id": "a", "n": 1, "note": "first", "flag": true, "data": {"x": [1, 2]}})
    );
    assert_eq!(o["missing"], Value::Null);
    assert_eq!(o["foundTwos"], json!(["b"]));
    assert_eq!(
        (&o["updated"], &o["updatedMissing"]),
        (&json!(true), &json!(false))
    );
    assert_eq!(o["afterUpdate"], "changed");
    assert_eq!(
        (&o["deleted"], &o["deletedAgain"]),
        (&json!(true), &json!(false))
    );
    assert_eq!(o["deletedMany"], 2);
    assert_eq!(
        (&o["count"], &o["countTypeof"]),
        (&json!(2), &json!("number"))
    );
    // Other flows.
    assert_eq!(o["echoed"], json!({"hello": "from js", "n": 7}));
    assert_eq!(
        o["each"],
        json!([{"ok": true, "value": 1}, {"ok": true, "value": "two"}, {"ok": true, "value": {"three": 3}}])
    );
    assert_eq!(o["eachAll"], json!([{"a": 1}, "b"]));
    // forEachAll throws for the first item that failed, naming it and the child's error.
    assert_eq!(o["eachAllFailed"]["kind"], "other");
    let failed = o["eachAllFailed"]["message"].as_str().unwrap();
    assert!(
        failed.contains("flow sdkprobe failed on item 1 of 1")
            && failed.contains("the probe gave up early"),
        "{failed}"
    );
    // HTTP: what the server was sent, and what the flow read of its answer.
    assert_eq!(
        *seen.lock().unwrap(),
        [(
            "js".to_string(),
            "application/json".to_string(),
            json!({"event": "probe", "n": 42})
        )]
    );
    assert_eq!(
        o["http"],
        json!({"status": 200, "ok": true, "json": {"received": 42}, "server": "axum-test"})
    );
    // Secrets, cache, clock; the denial caught with its WIT case.
    assert_eq!(o["secretLength"], PROBE_SECRET.len());
    assert_eq!(o["cached"], "v");
    assert_eq!(o["cachedAfterRemove"], Value::Null);
    assert_eq!(o["nowLooksRfc3339"], true);
    assert_eq!(
        o["denied"],
        json!({
            "kind": "access-denied",
            "message": "sdkprobe may not read table `Execution Log` (grants.tables.read)",
            "isFlowhostError": true
        })
    );
    assert_eq!(o["secretDenied"], "access-denied");
    // Blobs, and another flow's grants.
    assert_eq!(o["blobList"], json!(["js/a.txt", "js/b.bin"]));
    assert_eq!(o["blobText"], "hello blob");
    assert_eq!(o["blobBytes"], json!([0, 255, 7]));
    assert_eq!(
        (&o["blobMissing"], &o["blobDeleted"]),
        (&Value::Null, &json!(true))
    );
    assert_eq!(o["echoReaches"], "access-denied");
    // The log line is in the run's history; the secret is nowhere.
    let run = last_run(env.db(), "sdkprobe");
    assert_eq!(run.status, RunStatus::Ok);
    assert!(
        run.logs
            .iter()
            .any(|l| l.level == "info" && l.message == "sdkprobe starts: t1"),
        "{:?}",
        run.logs
    );
    let everything = format!("{run:?}{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!everything.contains(PROBE_SECRET), "the secret leaked");

    // Uncaught: a host error ends the run with `kind: message`, any other with its name.
    for (fail, want) in [
        (
            "host",
            "access-denied: sdkprobe may not read table `Execution Log`",
        ),
        ("error", "TypeError: a plain error"),
        ("flow", "sdkprobe: the probe gave up"),
        (
            "async",
            "invalid output of flow: the handler returned a Promise",
        ),
    ] {
        let input = json!({"url": origin, "tag": fail, "failWith": fail}).to_string();
        let out = flowhost_async(&config, &["run", "sdkprobe", "--input", &input]).await;
        assert!(!out.status.success(), "failWith {fail} succeeded");
        let stderr = text(&out.stderr);
        assert!(error_line(&stderr).contains(want), "{stderr}");
        let run = last_run(env.db(), "sdkprobe");
        assert_eq!(run.status, RunStatus::Error);
        assert!(
            run.error.as_deref().unwrap_or_default().contains(want),
            "{:?}",
            run.error
        );
    }
}

/// How long `serve` may take to pick up a new JavaScript flow: it compiles the 12 MB component
/// first, which took 34 s on a 2-core machine busy with other builds (a generous bound).
const FIRST_COMPILE: std::time::Duration = std::time::Duration::from_secs(600);

const ALERT_TOKEN: &str = "tok-js-alert-5e8d1b";

#[tokio::test(flavor = "multi_thread")]
async fn the_alert_example_drops_into_a_running_serve_and_posts_matching_events() {
    let (origin, seen) = recording_server("/slack").await;
    let (env, flows) = env_with_flows();
    let webhook = format!("{origin}/slack");
    let env = env.with_secrets(&[
        ("ALERT_API_TOKEN", ALERT_TOKEN),
        ("ALERT_WEBHOOK_URL", webhook.as_str()),
    ]);
    // The operator's grants: the loopback webhook, and `alert` as an API endpoint to call it.
    let config = env.config_file(
        "grants:\n  alert:\n    hosts: [\"http://127.0.0.1:*\"]\n    api: {token_secret: ALERT_API_TOKEN}\n",
    );
    // One stored event, for an input that names it by id.
    let rows = env.dir.path().join("events.jsonl");
    let stored = json!({"id": "e-3", "type": "apikey.rotate", "actor": "herbert.head",
        "timestamp": "2026-12-05T11:00:00Z", "project": "prod"});
    std::fs::write(&rows, format!("{stored}\n")).unwrap();
    let out = flowhost(
        &config,
        &["table", "import", "Audit Events", rows.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut serve = Flowhost::spawn(
        &config,
        &["serve", "--listen", "127.0.0.1:0"],
        &[("RUST_LOG", "info")],
    );
    let listener = serve.listening();

    // Built from the example as checked out (no SDK, no WIT: `build` writes them) and
    // installed while `serve` runs.
    let dir = project_dir("alert");
    std::fs::create_dir_all(&dir).unwrap();
    let example = root().join("examples/js-alert");
    for f in [
        "app.js",
        "alert.yaml",
        "package.json",
        "package-lock.json",
        "README.md",
    ] {
        std::fs::copy(example.join(f), dir.join(f)).unwrap();
    }
    build(&dir, "alert", Some(&flows));
    let client = reqwest::Client::new();
    let invoke = |input: Value| {
        client
            .post(format!("{listener}/api/flows/alert/invoke"))
            .header("x-api-client-token", ALERT_TOKEN)
            .header("content-type", "application/json")
            .body(input.to_string())
            .send()
    };

    // A login is not an alert type: `null`, nothing posted. Until `serve` has picked the flow
    // up, the endpoint is 404.
    let quiet = json!({"row": {"id": "e-1", "type": "server.ssh_login", "actor": "gerald.bland"}});
    let started = std::time::Instant::now();
    let resp = loop {
        let resp = invoke(quiet.clone()).await.unwrap();
        if resp.status() != 404 {
            break resp;
        }
        assert!(
            started.elapsed() < FIRST_COMPILE,
            "serve never picked up alert: {:?}",
            serve.seen
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), Value::Null);
    assert!(seen.lock().unwrap().is_empty(), "posted a non-alert");

    // A member added: the message, and the same message at the webhook.
    let row = json!({
        "id": "e-2", "type": "member.add", "actor": "dalton.ames", "user": "lump.snopes",
        "group": "admins", "timestamp": "2026-12-05T10:00:00Z", "team": "acme"
    });
    let resp = invoke(json!({ "row": row })).await.unwrap();
    assert_eq!(resp.status(), 200);
    let message: Value = resp.json().await.unwrap();
    assert_eq!(
        message["text"],
        "ASA member.add by dalton.ames (team acme) at 2026-12-05T10:00:00Z"
    );
    assert_eq!(
        message["blocks"][0]["text"]["text"],
        "ASA alert: member.add"
    );
    let fields = message["blocks"][1]["fields"].as_array().unwrap();
    assert!(
        fields.contains(&json!({"type": "mrkdwn", "text": "*User*\nlump.snopes"})),
        "{fields:?}"
    );
    let posted = seen.lock().unwrap().clone();
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert_eq!(posted[0].1, "application/json");
    assert_eq!(posted[0].2, message);

    // A type list in the input: the login is an alert now.
    let resp = invoke(json!({"row": quiet["row"], "types": ["server.ssh_login"]}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let message: Value = resp.json().await.unwrap();
    assert_eq!(
        message["text"],
        "ASA server.ssh_login by gerald.bland at an unknown time"
    );
    assert_eq!(seen.lock().unwrap().len(), 2);

    // By id, from the Audit Events table; an unknown id fails the run, naming it.
    let resp = invoke(json!({"id": "e-3"})).await.unwrap();
    assert_eq!(resp.status(), 200);
    let message: Value = resp.json().await.unwrap();
    assert_eq!(
        message["text"],
        "ASA apikey.rotate by herbert.head (project prod) at 2026-12-05T11:00:00Z"
    );
    assert_eq!(seen.lock().unwrap().len(), 3);
    let resp = invoke(json!({"id": "e-404"})).await.unwrap();
    assert_eq!(resp.status(), 500);
    let failed: Value = resp.json().await.unwrap();
    assert!(
        failed["error"]
            .as_str()
            .unwrap_or_default()
            .contains("Audit Events has no event e-404"),
        "{failed}"
    );

    let (status, _) = serve.stop();
    assert!(status.success(), "serve after SIGTERM: {status}");
}
