//! Logs an operator can ship (issue 15.6), through the real binary: JSON lines that parse one
//! by one, secrets redacted and no raw control character in either format, failed runs shown
//! under `-q`, and SIGHUP reloading the config of a running `serve` (a broken one reported
//! and the running one kept).

mod common;

use std::path::Path;

use common::process::Flowhost;
use common::{drop_probe, env_with_flows, wait_until, TestEnv, PATIENCE};
use flowhost::history::{History, RunStatus};
use serde_json::Value;

/// The secret the failing flow's error quotes.
const SECRET: &str = "hunter2-Zq";

/// `bad` fails every hour (its error has an ESC sequence and the secret), `good` answers.
fn failing_and_ok_flows() -> TestEnv {
    let (env, dir) = env_with_flows();
    drop_probe(
        &dir,
        "bad",
        &format!("title: Bad\nschedule:\n  every: 1h\n  input: {{\"op\": \"fail\", \"message\": \"on purpose \\u001b[31m red {SECRET}\"}}\n"),
    );
    drop_probe(
        &dir,
        "good",
        "title: Good\nschedule:\n  every: 1h\n  input: {\"op\": \"echo\", \"value\": \"fine\"}\n",
    );
    env
}

fn history(env: &TestEnv) -> History {
    History::open(&flowhost::history::history_path_for(env.db())).unwrap()
}

fn count(h: &History, flow: &str, status: RunStatus) -> usize {
    h.list(Some(flow), 1000)
        .unwrap()
        .iter()
        .filter(|r| r.status == status)
        .count()
}

async fn wait_for_runs(env: &TestEnv, flow: &str, status: RunStatus, n: usize) {
    let h = history(env);
    wait_until(PATIENCE, &format!("{n} {status} runs of {flow}"), || {
        count(&h, flow, status) >= n
    })
    .await;
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"))
}

fn spawn(env: &TestEnv, args: &[&str]) -> Flowhost {
    let config = env.config_file("");
    Flowhost::spawn(&config, args, &[("FLOWHOST_SECRET_PROBE_TOKEN", SECRET)])
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_parse_line_by_line_and_a_failed_run_shows_under_quiet() {
    let env = failing_and_ok_flows();
    let mut serve = spawn(&env, &["-q", "--log-format", "json", "serve"]);
    let failed = serve.wait_line("the failed run, as JSON", |l| {
        l.contains("run failed") && l.contains("\"bad\"")
    });
    let failed = json(&failed);
    assert_eq!(failed["level"], "WARN", "{failed}");
    assert_eq!(failed["fields"]["message"], "run failed");
    assert_eq!(failed["fields"]["flow"], "bad");
    let error = failed["fields"]["error"].as_str().unwrap();
    assert!(
        error.contains("on purpose") && error.contains("[REDACTED]"),
        "{error}"
    );
    wait_for_runs(&env, "good", RunStatus::Ok, 1).await;
    serve.signal(libc::SIGTERM);
    let (status, lines) = serve.finish();
    assert!(status.success(), "{status:?}: {lines:?}");
    assert!(!lines.is_empty());
    for line in &lines {
        let v = json(line);
        let ts = v["timestamp"].as_str().unwrap_or_else(|| panic!("{line}"));
        assert!(ts.parse::<jiff::Timestamp>().is_ok(), "{line}");
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{line}"
        );
        assert!(
            !line.contains(SECRET) && !line.contains('\u{1b}'),
            "{line:?}"
        );
    }
    // -q: errors and failed runs only; the ok run and the info lines are not shown.
    assert!(
        lines
            .iter()
            .all(|l| !l.contains("run ok") && !l.contains("\"INFO\"")),
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn text_logs_on_a_pipe_have_no_escape_byte() {
    let env = failing_and_ok_flows();
    let mut serve = spawn(&env, &["serve"]);
    serve.wait_line("the failed run", |l| l.contains("run failed"));
    wait_for_runs(&env, "good", RunStatus::Ok, 1).await;
    serve.signal(libc::SIGTERM);
    let (status, lines) = serve.finish();
    assert!(status.success(), "{status:?}: {lines:?}");
    let all = lines.join("\n");
    assert!(!all.contains('\u{1b}'), "an ESC byte on a pipe: {all:?}");
    assert!(
        all.contains("on purpose \\u{1b}[31m red [REDACTED]"),
        "{all}"
    );
    assert!(all.contains(" INFO ") && all.contains("run ok"), "{all}");
}

/// Rewrites the config file of `env` with `extra` (as [`TestEnv::config_file`] does).
fn rewrite_config(env: &TestEnv, extra: &str) -> std::path::PathBuf {
    env.config_file(extra)
}

fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_config_and_a_broken_one_is_reported_and_ignored() {
    let (env, dir) = env_with_flows();
    // `needy` reads a secret its manifest does not grant: refused until the config grants it.
    drop_probe(
        &dir,
        "needy",
        "title: Needy\nschedule:\n  every: 200ms\n  input: {\"op\": \"secret\", \"name\": \"PROBE_TOKEN\"}\n",
    );
    let mut serve = spawn(&env, &["serve"]);
    serve.wait_line("a refused run of needy", |l| {
        l.contains("run failed") && l.contains("needy")
    });
    // `listen:` belongs to the socket bound at the start: a warning says it waits for a restart.
    let config = rewrite_config(
        &env,
        "grants:\n  needy:\n    secrets: [PROBE_TOKEN]\nlisten: 127.0.0.1:1\n",
    );
    serve.signal(libc::SIGHUP);
    let warned = serve.wait_line("the restart warning", |l| l.contains("`listen:` changed"));
    assert!(
        warned.contains(" WARN ") && warned.contains("it takes effect when serve restarts"),
        "{warned}"
    );
    serve.wait_line("the config reloaded", |l| l.contains("reloaded the config"));
    serve.wait_line("the flows reloaded with the new grants", |l| {
        l.contains("reloaded the flow folders")
    });
    wait_for_runs(&env, "needy", RunStatus::Ok, 1).await;

    // A broken config: one error line naming the file; the running config goes on.
    let good_config = std::fs::read_to_string(&config).unwrap();
    replace_file(
        &config,
        &format!("{good_config}history: {{retention: 1s}}\n"),
    );
    serve.signal(libc::SIGHUP);
    let refused = serve.wait_line("the refused reload", |l| l.contains("config not reloaded"));
    assert!(
        refused.contains(" ERROR ")
            && refused.contains(&config.display().to_string())
            && refused.contains("history.retention"),
        "{refused}"
    );
    let ok_before = count(&history(&env), "needy", RunStatus::Ok);
    wait_for_runs(&env, "needy", RunStatus::Ok, ok_before + 2).await;
    serve.signal(libc::SIGTERM);
    let (status, lines) = serve.finish();
    assert!(status.success(), "{status:?}: {lines:#?}");
}

/// Runs `flowhost ARGS` with its stderr on a new pseudo-terminal and returns what it wrote.
fn stderr_on_a_terminal(env: &TestEnv, args: &[&str], envs: &[(&str, &str)]) -> String {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two descriptors; the others may be null.
    let made = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(made, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are new and owned here.
    let (mut master, slave) = unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::fs::File::from_raw_fd(slave),
        )
    };
    let config = env.config_file("");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_flowhost"));
    cmd.arg("--config")
        .arg(&config)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdout(std::process::Stdio::null())
        .stderr(slave);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    // The child holds the only other end now: reading ends (EIO) once it exits.
    drop(cmd);
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    });
    child.wait().unwrap();
    String::from_utf8_lossy(&reader.join().unwrap()).into_owned()
}

/// On a terminal, log lines are coloured, but a flow's own escape sequence is still escaped;
/// `NO_COLOR` turns the colours off.
#[test]
fn colours_only_on_a_terminal_and_never_from_a_flow() {
    let env = TestEnv::new();
    let input = r#"{"op": "fail", "message": "boom\u001b[31mred"}"#;
    let coloured = stderr_on_a_terminal(&env, &["run", "probe", "--input", input], &[]);
    assert!(coloured.contains("\u{1b}[33m WARN"), "{coloured:?}");
    assert!(coloured.contains("boom\\u{1b}[31mred"), "{coloured:?}");
    assert!(!coloured.contains("boom\u{1b}"), "{coloured:?}");
    let plain = stderr_on_a_terminal(
        &env,
        &["run", "probe", "--input", input],
        &[("NO_COLOR", "1")],
    );
    assert!(plain.contains(" WARN run failed"), "{plain:?}");
    assert!(!plain.contains('\u{1b}'), "{plain:?}");
}
