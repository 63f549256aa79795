//! The console in a real browser (issue 17.3): the ASA simulator and the real `flowhost serve`
//! with `console: true` on a loopback port, driven by tests/browser/console.mjs in headless
//! Chromium (playwright-core). The script switches M10 on, watches the Audit Events rows
//! appear, searches and exports the table as CSV, opens a failed run from the run list and
//! reads its error, runs U03 from its form; this side then checks the database: the rows are
//! the simulator's events, the CSV is `flowhost table export`'s, and history holds the two
//! runs the console started. A second test logs in to a console in token mode
//! (tests/browser/login.mjs): the browser must keep the session cookie the form sets. The
//! screenshots stay in `target/browser-artifacts/<test>/` (CI keeps them as artifacts). Needs
//! Node.js 20+, /usr/bin/chromium and `npm ci` in tests/browser: `cargo xtask test` sees to all
//! three.

mod common;

use std::path::{Path, PathBuf};

use common::asa::{asa_on, sim_grants, sim_ids, stored_ids};
use common::process::Flowhost;
use common::text;
use flowhost::history::{RunStatus, Trigger};

/// Events in the simulator, collected by M10 in pages of [`PAGE`].
const EVENTS: u64 = 120;
const PAGE: u32 = 50;

/// The run the script makes fail from U02's run form, and what its error must say.
const FAIL_INPUT: &str = r#"{"searchCount": 5000}"#;
const FAIL_ERROR: &str = "searchCount must be a whole number from 1 to 1000";

/// The test's screenshot folder, emptied: `target/browser-artifacts/NAME/`.
fn artifacts(name: &str) -> PathBuf {
    let dir = common::root().join("target/browser-artifacts").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The records of a CSV text (header first), parsed by the `csv` crate.
fn csv_records(csv: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(csv.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// `node tests/browser/SCRIPT --name=value...`, to its end (without blocking the runtime that
/// may serve the simulator); panics naming what to install when node or playwright-core is
/// missing, and with the script's output and the screenshots' folder when it fails.
async fn run_script(script: &str, args: &[(&str, &str)]) -> String {
    let dir = common::root().join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "{} has no node_modules/playwright-core: run `npm ci` there (cargo xtask test does)",
        dir.display()
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: apt-get install chromium (cargo xtask test does)"
    );
    // `--name=value`: a value may begin with a dash (the simulator's ids can).
    let args = args.iter().map(|(k, v)| format!("--{k}={v}"));
    let out = tokio::process::Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .current_dir(&dir)
        // Playwright's messages without colour codes, as they land in a test failure.
        .env("NO_COLOR", "1")
        .env("FORCE_COLOR", "0")
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("cannot run node ({e}): the browser tests need Node.js 20+ on PATH")
        });
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "{script} failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    stdout
}

/// `flowhost -v serve --listen 127.0.0.1:0` (killed if the test fails before stopping it)
/// and its `http://ADDR`.
fn serve(config: &Path) -> (Flowhost, String) {
    let mut serve = Flowhost::spawn(config, &["-v", "serve", "--listen", "127.0.0.1:0"], &[]);
    let base = serve.listening();
    (serve, base)
}

/// SIGTERM to `serve`, which must exit 0; its stderr lines.
fn stop(serve: Flowhost) -> Vec<String> {
    serve.signal(libc::SIGTERM);
    let (status, lines) = serve.finish();
    assert!(status.success(), "{}", lines.join("\n"));
    lines
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_in_a_real_browser_switches_m10_on_shows_rows_runs_and_exports() {
    let shots = artifacts("the_console_in_a_real_browser");
    // Events of the last minutes, so that the ASA page (and the README's picture) shows a
    // lag of minutes, not years.
    let sim = asa_sim::Sim::start(asa_sim::SimConfig {
        events: EVENTS,
        start_time: jiff::Timestamp::now() - jiff::SignedDuration::from_secs(600),
        ..Default::default()
    })
    .await
    .unwrap();
    // The ASA flows without the offloads (O10 would move the rows away), M10 every second
    // once the console switches it on; U02's settings stored and the checkpoint reset.
    let flows = tempfile::tempdir().unwrap();
    let dir = flows.path().join("flows");
    common::copy_flows(&common::flows_dir("dist"), &dir, |name| {
        !name.starts_with("O10.") && !name.starts_with("O20.")
    });
    common::set_every(&dir, "M10", "1s");
    let a = asa_on(sim, PAGE, &[], |env| {
        env.config.flows = vec![dir.clone()];
        env.config.builtin = false;
    })
    .await;
    let config = a.env.config_file(&format!(
        "{}console: true\n",
        sim_grants(&a.sim.base_url(), &[])
    ));
    let export = || {
        let out = common::flowhost(
            &config,
            &["table", "export", "Audit Events", "--format", "csv"],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    // The header `flowhost table export` writes, before any row is there.
    let header = export().lines().next().unwrap_or_default().to_string();
    assert!(header.starts_with("id,"), "{header}");

    let (serving, base) = serve(&config);
    let stdout = run_script(
        "console.mjs",
        &[
            ("base", &base),
            ("artifacts", shots.to_str().unwrap()),
            ("events", &EVENTS.to_string()),
            ("event-id", &sim_ids(&a.sim)[0]),
            ("csv-header", &header),
            ("fail-flow", "U02"),
            ("fail-input", FAIL_INPUT),
            ("error-contains", FAIL_ERROR),
        ],
    )
    .await;
    let result: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("console.mjs printed no result line:\n{stdout}"));

    // The rows the browser watched appear are the simulator's events.
    assert_eq!(stored_ids(&a.rt), sim_ids(&a.sim));
    // The CSV the browser downloaded holds what `flowhost table export` writes (as a set of
    // records: U03's reset lets M10 rewrite the rows, which may reorder them).
    let downloaded = std::fs::read_to_string(result["csv"].as_str().unwrap()).unwrap();
    let (mut got, mut want) = (csv_records(&downloaded), csv_records(&export()));
    assert_eq!(got.first(), want.first(), "CSV header");
    got.sort();
    want.sort();
    assert_eq!(got.len(), EVENTS as usize + 1);
    assert_eq!(
        got, want,
        "the downloaded CSV differs from flowhost table export's"
    );

    // History holds the two runs the console started, with trigger `console`.
    let run = |key: &str| {
        let id = result[key].as_i64().unwrap();
        a.rt.history
            .get(id)
            .unwrap()
            .unwrap_or_else(|| panic!("no run {id} in history"))
    };
    let failed = run("failed_run");
    assert_eq!(
        (failed.flow.as_str(), failed.trigger, failed.status),
        ("U02", Trigger::Console, RunStatus::Error)
    );
    assert!(
        failed
            .error
            .as_deref()
            .unwrap_or_default()
            .contains(FAIL_ERROR),
        "{failed:?}"
    );
    let u03 = run("u03_run");
    assert_eq!(
        (u03.flow.as_str(), u03.trigger, u03.status),
        ("U03", Trigger::Console, RunStatus::Ok)
    );

    stop(serving);
    for png in [
        "flows-m10-on",
        "table-audit-events",
        "run-error",
        "run-u03",
        "asa",
        "console",
    ] {
        assert!(
            shots.join(format!("{png}.png")).is_file(),
            "no screenshot {png}.png in {}",
            shots.display()
        );
    }
}

/// The operator token of the token-mode test (a secret: it must reach no log line).
const TOKEN: &str = "op-token-3f9c2a7d51e84b06";

#[tokio::test(flavor = "multi_thread")]
async fn in_token_mode_the_browser_logs_in_and_keeps_the_session_cookie() {
    let shots = artifacts("in_token_mode_the_browser_logs_in");
    let (env, dir) = common::env_with_flows();
    common::drop_probe(&dir, "hello", "title: Hello\n");
    let env = env.with_secrets(&[("CONSOLE_TOKEN", TOKEN)]);
    let config = env.config_file("console: { token_secret: CONSOLE_TOKEN }\n");
    let (serving, base) = serve(&config);
    run_script(
        "login.mjs",
        &[
            ("base", &base),
            ("token", TOKEN),
            ("artifacts", shots.to_str().unwrap()),
        ],
    )
    .await;
    let lines = stop(serving);
    assert!(
        lines.iter().all(|l| !l.contains(TOKEN)),
        "the token reached serve's log:\n{}",
        lines.join("\n")
    );
}
