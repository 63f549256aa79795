//! Shared set-up for the integration tests: a temporary database, the built flows
//! (`cargo xtask flows` lays them out), and a `Runtime` or the `flowhost` binary over them.
#![allow(dead_code)]

pub mod asa;
pub mod held;
pub mod moto;
pub mod pg;
pub mod process;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use flowhost::config::{BlobStoreConfig, Config};
use flowhost::history::Trigger;
use flowhost::runtime::{RunReport, Runtime};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A built flows folder; panics with the fix if the flows were not built.
pub fn flows_dir(which: &str) -> PathBuf {
    let dir = root().join("flows").join(which);
    assert!(
        dir.join(if which == "dist" {
            "M10.wasm"
        } else {
            "probe.wasm"
        })
        .exists(),
        "{} has no built flows: run `cargo xtask flows` (or `cargo xtask test`)",
        dir.display()
    );
    dir
}

/// One test's world: its own database and secrets file in a temp dir.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub config: Config,
}

impl TestEnv {
    /// The test flows and the ASA flows, the shipped tables and the test tables, and two local
    /// blob stores in the temp dir: `archive` (the default store) and `scratch` (probe's).
    pub fn new() -> TestEnv {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            db: dir.path().join("flowhost.db").into(),
            flows: vec![flows_dir("dist-test"), flows_dir("dist")],
            tables: vec![root().join("tables"), root().join("tests/tables")],
            secrets_file: None,
            // Shared across tests so each component is compiled once per test binary run.
            cache_dir: Some(root().join("target/flowhost-test-cache")),
            blobs: ["archive", "scratch"]
                .into_iter()
                .map(|name| {
                    let path = dir.path().join("blobs").join(name);
                    (name.to_string(), BlobStoreConfig::Local { path })
                })
                .collect(),
            ..Config::with_state_dir(dir.path())
        };
        TestEnv { dir, config }
    }

    /// The SQLite file the config names.
    pub fn db(&self) -> &Path {
        self.config
            .db
            .sqlite_path()
            .expect("a test database is an SQLite file")
    }

    /// Writes a 0600 secrets file and uses it.
    pub fn with_secrets(mut self, pairs: &[(&str, &str)]) -> TestEnv {
        let p = self.dir.path().join("secrets.yaml");
        let text: String = pairs
            .iter()
            .map(|(k, v)| format!("{k}: \"{v}\"\n"))
            .collect();
        std::fs::write(&p, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        self.config.secrets_file = Some(p);
        self
    }

    pub fn runtime(&self) -> Arc<Runtime> {
        self.config.open_runtime().unwrap()
    }

    /// Writes the config as a file for the CLI.
    pub fn config_file(&self, extra: &str) -> PathBuf {
        let p = self.dir.path().join("flowhost.yaml");
        let list = |v: &[PathBuf]| {
            v.iter()
                .map(|p| format!("\"{}\"", p.display()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut text = format!(
            "db: \"{}\"\nflows: [{}]\ntables: [{}]\ncache_dir: \"{}\"\n",
            self.config.db,
            list(&self.config.flows),
            list(&self.config.tables),
            self.config.cache_dir.as_ref().unwrap().display()
        );
        if let Some(s) = &self.config.secrets_file {
            text.push_str(&format!("secrets_file: \"{}\"\n", s.display()));
        }
        if !self.config.builtin {
            text.push_str("builtin: false\n");
        }
        // The stores, unless `extra` has its own `blobs:` section.
        if !extra.lines().any(|l| l.starts_with("blobs:")) {
            text.push_str("blobs:\n");
            for (name, store) in &self.config.blobs {
                text.push_str(&match store {
                    BlobStoreConfig::Local { path } => {
                        format!("  {name}: {{kind: local, path: \"{}\"}}\n", path.display())
                    }
                    s3 => panic!("config_file: give {s3:?} as a `blobs:` section in `extra`"),
                });
            }
        }
        text.push_str(extra);
        std::fs::write(&p, text).unwrap();
        p
    }
}

/// A test world whose only flows are those of an empty `flows/` in its temp dir (returned),
/// for tests that drop in flows of their own: the built-in package is left out
/// (`builtin: false`), so no ASA flow is scheduled beside them.
pub fn env_with_flows() -> (TestEnv, PathBuf) {
    let mut env = TestEnv::new();
    let dir = env.dir.path().join("flows");
    std::fs::create_dir_all(&dir).unwrap();
    env.config.flows = vec![dir.clone()];
    env.config.builtin = false;
    (env, dir)
}

/// Runs `flow` with `input` (JSON) at top level.
pub async fn run(rt: &Arc<Runtime>, flow: &str, input: serde_json::Value) -> RunReport {
    rt.run(flow, &input.to_string(), Trigger::Cli)
        .await
        .unwrap()
}

/// The output of a run that must succeed, as JSON.
pub async fn ok(rt: &Arc<Runtime>, flow: &str, input: serde_json::Value) -> serde_json::Value {
    let r = run(rt, flow, input).await;
    assert!(r.ok(), "{flow} failed: {:?}", r.error);
    serde_json::from_str(r.output.as_deref().unwrap()).unwrap()
}

/// The error of a run that must fail.
pub async fn err(rt: &Arc<Runtime>, flow: &str, input: serde_json::Value) -> String {
    let r = run(rt, flow, input).await;
    assert!(!r.ok(), "{flow} should have failed, output {:?}", r.output);
    r.error.unwrap()
}

/// Waits until `condition` holds, checking every 10 ms; panics naming `what` if it still does
/// not after `within` (a generous bound: a slow machine only makes a test slower). Tests wait
/// for the event itself with this, never for the clock.
pub async fn wait_until(
    within: std::time::Duration,
    what: &str,
    mut condition: impl FnMut() -> bool,
) {
    let started = std::time::Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < within,
            "gave up after {within:?} waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The deadline tests give [`wait_until`]: far beyond what any event here takes.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// A process's output bytes as text (lossy).
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The output of a run, as JSON (the run must have produced one).
pub fn out(r: &RunReport) -> serde_json::Value {
    let output = r
        .output
        .as_deref()
        .unwrap_or_else(|| panic!("the run has no output: {:?}", r.error));
    serde_json::from_str(output).unwrap()
}

/// `PRAGMA integrity_check` of the SQLite file `db`: `ok` when it is sound.
pub fn integrity(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
        .unwrap()
}

/// Copies the files of the folder `from` whose names `keep` accepts into `to` (created): a
/// flows folder of a test's own, to change manifests in or leave flows out of.
pub fn copy_flows(from: &Path, to: &Path, keep: impl Fn(&str) -> bool) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.path().is_file() && keep(&name) {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

/// Sets the `every:` of the schedule in `dir/FLOW.yaml` (a fast schedule for a test).
pub fn set_every(dir: &Path, flow: &str, every: &str) {
    set_manifest_line(dir, flow, "every", every);
}

/// Replaces the line `key: …` of `dir/FLOW.yaml` (at any indentation, e.g. `every` under
/// `schedule`) by `key: value`. Panics if there is no such line, so a renamed setting cannot
/// turn a fast-schedule test into a slow one unnoticed.
pub fn set_manifest_line(dir: &Path, flow: &str, key: &str, value: &str) {
    let p = dir.join(format!("{flow}.yaml"));
    let text = std::fs::read_to_string(&p).unwrap();
    let mut found = false;
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let body = l.trim_start();
            if body.starts_with(&format!("{key}:")) {
                found = true;
                format!("{}{key}: {value}", &l[..l.len() - body.len()])
            } else {
                l.to_string()
            }
        })
        .collect();
    assert!(found, "{} has no `{key}:` line", p.display());
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
}

/// The lines of `flowhost list`'s `not loaded:` section, trimmed and sorted; panics (showing
/// the list) when there is no such section.
pub fn not_loaded(list: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = list
        .split("\nnot loaded:\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no `not loaded:` section:\n{list}"))
        .lines()
        .map(str::trim)
        .collect();
    lines.sort();
    lines
}

/// The first `error: ` line of a command's stderr (empty if there is none).
pub fn error_line(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default()
        .to_string()
}

/// A loopback port this test holds without listening: connections to it are refused, and no
/// other process can take it meanwhile. Keep the socket alive as long as the URL is used.
pub fn closed_port() -> (tokio::net::TcpSocket, String) {
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind(([127, 0, 0, 1], 0).into()).unwrap();
    let url = format!("http://{}", held.local_addr().unwrap());
    (held, url)
}

/// Serves `app` on a loopback port it holds for the test's life; returns `http://ADDR`.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    origin
}

/// Drops a flow into the folder `dir` (created): the built test flow `component` (`probe` or
/// `echo`, from `flows/dist-test`) as `NAME.wasm`, with `manifest` as `NAME.yaml`.
pub fn drop_flow(dir: &Path, name: &str, component: &str, manifest: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let wasm = flows_dir("dist-test").join(format!("{component}.wasm"));
    std::fs::copy(wasm, dir.join(format!("{name}.wasm"))).unwrap();
    std::fs::write(dir.join(format!("{name}.yaml")), manifest).unwrap();
}

/// Copies the `probe` test component into `dir` as flow `name`, with `manifest` as its
/// manifest (the way a user drops a flow into a folder).
pub fn drop_probe(dir: &Path, name: &str, manifest: &str) {
    drop_flow(dir, name, "probe", manifest);
}

/// Copies the ASA flows (`flows/dist`) into `dir`, leaving out the flows in `without`, and in
/// each `(flow, key, value)` of `changes` replaces the manifest line `key: …` (at any
/// indentation, e.g. `every` under `schedule`) by `key: value`. Panics if a key is missing, so
/// a renamed setting cannot turn a fast-schedule test into a slow one unnoticed. (A flow left
/// out comes back from the built-in package unless the config has `builtin = false`.)
pub fn asa_flows_with(dir: &Path, changes: &[(&str, &str, &str)], without: &[&str]) {
    copy_flows(&flows_dir("dist"), dir, |name| {
        !without.contains(&name.split('.').next().unwrap_or_default())
    });
    for (flow, key, value) in changes {
        set_manifest_line(dir, flow, key, value);
    }
}

/// When a finished run started and ended.
pub fn span(r: &flowhost::history::RunRecord) -> (jiff::Timestamp, jiff::Timestamp) {
    let ended = r
        .ended
        .as_deref()
        .unwrap_or_else(|| panic!("run {} has not ended: {r:?}", r.id));
    (r.started.parse().unwrap(), ended.parse().unwrap())
}

/// Asserts that no two of `runs` (finished runs) overlapped in time, whatever their order.
pub fn assert_no_overlap(runs: &[flowhost::history::RunRecord]) {
    let mut sorted: Vec<_> = runs.iter().collect();
    sorted.sort_by_key(|r| span(r).0);
    for w in sorted.windows(2) {
        let (first, second) = (span(w[0]), span(w[1]));
        assert!(
            first.1 <= second.0,
            "run {} ({}) and run {} ({}) overlapped: {first:?} {second:?}",
            w[0].id,
            w[0].flow,
            w[1].id,
            w[1].flow
        );
    }
}

/// The command `flowhost --config CONFIG ARGS`, with `RUST_LOG` unset so that its stderr is
/// what a user sees (add environment variables before running it).
pub fn flowhost_cmd(config: &Path, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_flowhost"));
    c.arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG");
    c
}

/// `flowhost --config CONFIG ARGS`, run to its end.
pub fn flowhost(config: &Path, args: &[&str]) -> std::process::Output {
    flowhost_cmd(config, args).output().unwrap()
}

/// [`flowhost`] without blocking the test's runtime (which may be serving the simulator the
/// command talks to).
pub async fn flowhost_async(config: &Path, args: &[&str]) -> std::process::Output {
    tokio::process::Command::from(flowhost_cmd(config, args))
        .output()
        .await
        .unwrap()
}

/// `flowhost --config CONFIG flow enable FLOW`, which must succeed: a fresh install has M10
/// off, and `serve` runs no disabled flow.
pub fn enable(config: &Path, flow: &str) {
    let out = flowhost(config, &["flow", "enable", flow]);
    assert!(
        out.status.success(),
        "flow enable {flow}: {}",
        text(&out.stderr)
    );
}
