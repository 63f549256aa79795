//! `serve` keeps serving whatever a flow or a flows folder does: a run that panics (in a host
//! call or in the flow) ends as `error` and frees its exclusive group, a flow flooding
//! `request-run` gets a bounded number of runs while the other schedules keep firing, and a
//! FIFO named like a flow file neither freezes `flowhost list` nor `serve`.
//!
//! Tests wait for history rows, log lines and process exits, each with a generous deadline.

mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestEnv;
use flowhost::history::{History, RunRecord, RunStatus};
use flowhost::runtime::Runtime;
use flowhost::scheduler::{serve, ServeOptions, MAX_WAITING_PER_FLOW};

/// How long any one awaited event may take on a loaded 2-core machine.
const DEADLINE: Duration = Duration::from_secs(120);

/// A probe manifest scheduled `every`, running `input` (JSON), with `extra` lines.
fn scheduled(every: &str, input: &serde_json::Value, extra: &str) -> String {
    format!("title: Robust\nschedule:\n  every: {every}\n  input: {input}\ntimeout: 20s\n{extra}")
}

fn runs(history: &History, flow: &str) -> Vec<RunRecord> {
    history.list(Some(flow), 1000).unwrap()
}

fn count(history: &History, flow: &str, status: RunStatus) -> usize {
    runs(history, flow)
        .iter()
        .filter(|r| r.status == status && r.parent.is_none())
        .count()
}

/// Polls `history` until `done` holds, failing with `what` after [`DEADLINE`].
async fn until(history: &History, what: &str, done: impl Fn(&History) -> bool) {
    let start = Instant::now();
    while !done(history) {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Serves `env`'s flows (no reload) until `done` holds for the history, then shuts down;
/// fails if either takes longer than [`DEADLINE`] (a jammed `serve` never returns).
async fn serve_until(
    env: &TestEnv,
    rt: &Arc<Runtime>,
    what: &str,
    done: impl Fn(&History) -> bool,
) -> flowhost::scheduler::ServeSummary {
    let opts = ServeOptions {
        reload_every: None,
        prune_every: None,
        ..Default::default()
    };
    let stop = until(&rt.history, what, done);
    let served = serve(rt.clone(), env.config.clone(), opts, stop);
    tokio::time::timeout(DEADLINE * 2, served)
        .await
        .unwrap_or_else(|_| panic!("serve did not shut down (waiting for {what})"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_run_ends_as_error_frees_its_group_and_shutdown_returns() {
    let (env, dir) = common::env_with_flows();
    let host_panic = serde_json::json!({"op": "log", "message": flowhost::caps::log::PANIC_HOOK});
    let guest_panic = serde_json::json!({"op": "panic"});
    let echo = serde_json::json!({"op": "echo", "value": 1});
    // All three share a group; `after` runs every 200 ms, so it needs the group back after
    // each panicking run.
    common::drop_probe(
        &dir,
        "boom",
        &scheduled("1h", &host_panic, "exclusive: grp\n"),
    );
    common::drop_probe(
        &dir,
        "guest",
        &scheduled("1h", &guest_panic, "exclusive: grp\n"),
    );
    common::drop_probe(
        &dir,
        "after",
        &scheduled("200ms", &echo, "exclusive: grp\n"),
    );
    let rt = env.config.open_runtime().unwrap();

    let summary = serve_until(&env, &rt, "both panics and 3 later runs", |h| {
        let ended = |flow| {
            runs(h, flow)
                .first()
                .and_then(|r| r.ended.clone())
                .unwrap_or_default()
        };
        let last_panic = ended("boom").max(ended("guest"));
        count(h, "boom", RunStatus::Error) == 1
            && count(h, "guest", RunStatus::Error) == 1
            && runs(h, "after")
                .iter()
                .filter(|r| r.status == RunStatus::Ok && r.started > last_panic)
                .count()
                >= 3
    })
    .await;

    let boom = &runs(&rt.history, "boom")[0];
    assert_eq!(boom.status, RunStatus::Error, "{boom:?}");
    let error = boom.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("boom: internal error in the host (a panic: test hook: a host call panicked on purpose)"),
        "{error}"
    );
    let guest = &runs(&rt.history, "guest")[0];
    assert_eq!(guest.status, RunStatus::Error, "{guest:?}");
    assert!(
        guest
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("guest:"),
        "{guest:?}"
    );
    // Nothing is left `running`, and serve counted both as failed.
    assert!(rt
        .history
        .list(None, 1000)
        .unwrap()
        .iter()
        .all(|r| r.status != RunStatus::Running));
    assert_eq!(summary.failed, 2, "{summary:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_run_requests_is_bounded_recorded_and_starves_nothing() {
    let (env, dir) = common::env_with_flows();
    // One run asks for 100 distinct reruns of itself (no grant needed for itself).
    let steps: Vec<serde_json::Value> = (0..100)
        .map(|i| {
            serde_json::json!({"op": "request_run", "flow": "flood",
                               "input": {"op": "echo", "value": i}})
        })
        .collect();
    let flood = serde_json::json!({"op": "steps", "steps": steps});
    common::drop_probe(&dir, "flood", &scheduled("1h", &flood, ""));
    let tick = serde_json::json!({"op": "echo", "value": "tick"});
    common::drop_probe(&dir, "ticker", &scheduled("200ms", &tick, ""));
    let rt = env.config.open_runtime().unwrap();

    let dropped_note = |h: &History| {
        runs(h, "flood")
            .into_iter()
            .find(|r| r.status == RunStatus::Skipped)
            .and_then(|r| r.error)
    };
    let dropped_count = |note: &str| -> usize {
        note.strip_prefix("dropped ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count in {note:?}"))
    };
    serve_until(&env, &rt, "the drop, every admitted rerun and ticks", |h| {
        let Some(note) = dropped_note(h) else {
            return false;
        };
        let admitted = 100 - dropped_count(&note);
        let note_at = runs(h, "flood")
            .into_iter()
            .find(|r| r.status == RunStatus::Skipped)
            .map(|r| r.started)
            .unwrap_or_default();
        count(h, "flood", RunStatus::Ok) == 1 + admitted
            && runs(h, "ticker")
                .iter()
                .filter(|r| r.status == RunStatus::Ok && r.started > note_at)
                .count()
                >= 3
    })
    .await;

    let note = dropped_note(&rt.history).unwrap();
    let dropped = dropped_count(&note);
    assert!(
        note.contains("at most 8 distinct runs of a flow may wait"),
        "{note}"
    );
    // At most the cap waits, plus the one that started at once.
    assert!(
        dropped >= 100 - 1 - MAX_WAITING_PER_FLOW,
        "only {dropped} dropped: {note}"
    );
    let ok = count(&rt.history, "flood", RunStatus::Ok);
    assert_eq!(ok, 1 + 100 - dropped, "{note}");
    assert!(ok <= 2 + MAX_WAITING_PER_FLOW, "{ok} runs of flood");
    assert_eq!(count(&rt.history, "flood", RunStatus::Error), 0);
}

/// Makes a FIFO at `path`.
fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
}

/// Waits for `child` to exit, killing it and failing after [`DEADLINE`].
fn wait_exit(child: &mut Child, what: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Flows folder with `echo` and a `ticker` (probe, every 200 ms) and FIFOs `x.yaml`, `x.wasm`.
fn env_with_fifos() -> (TestEnv, PathBuf) {
    let (env, dir) = common::env_with_flows();
    let echo = common::flows_dir("dist-test");
    for f in ["echo.wasm", "echo.yaml"] {
        std::fs::copy(echo.join(f), dir.join(f)).unwrap();
    }
    let tick = serde_json::json!({"op": "echo", "value": "tick"});
    common::drop_probe(&dir, "ticker", &scheduled("200ms", &tick, ""));
    mkfifo(&dir.join("x.yaml"));
    mkfifo(&dir.join("x.wasm"));
    (env, dir)
}

#[test]
fn a_fifo_in_the_flows_folder_is_listed_as_an_error_and_blocks_nothing() {
    let (env, dir) = env_with_fifos();
    let config = env.config_file("");
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowhost"))
        .arg("--config")
        .arg(&config)
        .arg("list")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child, "flowhost list");
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(status.code(), Some(0), "{stdout}");
    let not_loaded = stdout
        .split("\nnot loaded:\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no `not loaded:` section:\n{stdout}"));
    assert_eq!(
        not_loaded.trim(),
        format!(
            "{}: not a regular file (flows are read from regular files or symlinks to them)",
            dir.join("x.yaml").display()
        ),
        "{stdout}"
    );
    assert!(
        stdout.starts_with("echo ") && stdout.contains("\nticker "),
        "{stdout}"
    );
}

#[test]
fn serve_runs_its_schedules_and_stops_on_sigterm_with_fifos_in_the_flows_folder() {
    let (env, dir) = env_with_fifos();
    let config = env.config_file("");
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowhost"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_line = |want: &str| {
        let start = Instant::now();
        loop {
            let left = DEADLINE.saturating_sub(start.elapsed());
            match lines.recv_timeout(left) {
                Ok(l) if l.contains(want) => return l,
                Ok(_) => {}
                Err(e) => panic!("no log line with {want:?}: {e}"),
            }
        }
    };
    wait_line("serving scheduled flows");
    let history = History::open(&flowhost::history::history_path_for(env.db())).unwrap();
    let ticks = |n: usize| {
        let start = Instant::now();
        while count(&history, "ticker", RunStatus::Ok) < n {
            assert!(start.elapsed() < DEADLINE, "ticker did not reach {n} runs");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    ticks(2);
    // A new FIFO changes the folder: the reload must read it without blocking the schedules.
    mkfifo(&dir.join("y.yaml"));
    let warned = wait_line("y.yaml: not a regular file");
    assert!(warned.contains("WARN"), "{warned}");
    wait_line("reloaded the flow folders");
    let before = count(&history, "ticker", RunStatus::Ok);
    ticks(before + 3);

    // SAFETY: signalling the child process this test started.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let status = wait_exit(&mut child, "flowhost serve after SIGTERM");
    assert_eq!(status.code(), Some(0), "{status:?}");
    drop(lines);
    reader.join().unwrap();
}
