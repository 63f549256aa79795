//! Flows switched on and off (`flowhost flow enable|disable`) and `flowhost status`, through
//! the binary as an operator uses them: the state kept in the database, `serve` leaving a
//! disabled flow alone until another process enables it, `run` running it anyway with a
//! warning, and the status snapshot after a drain of the ASA simulator.
//!
//! Nothing here waits for the clock: `serve` is watched through its log lines and the history
//! rows it writes.

mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;

use common::asa::{asa_with, rows};
use common::{drop_flow, drop_probe, env_with_flows, flowhost, text, TestEnv, PATIENCE};
use flowhost::history::{History, RunStatus};
use serde_json::Value;

/// `flowhost status --json`, parsed.
fn status(config: &Path) -> Value {
    let out = flowhost(config, &["status", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The entry of `flow` in a `status --json` document.
fn flow<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no flow {name} in {status:#}"))
}

/// The line of `flowhost list` that names `flow`.
fn list_line(config: &Path, name: &str) -> String {
    let out = flowhost(config, &["list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in list"))
        .to_string()
}

#[test]
fn a_fresh_database_has_m10_off_and_list_and_status_say_so() {
    let env = TestEnv::new();
    let config = env.config_file("");
    assert!(list_line(&config, "M10").ends_with(" disabled"));
    assert!(list_line(&config, "O10").ends_with(" enabled"));
    // No database yet: status reads the manifests and creates nothing.
    let s = status(&config);
    assert!(!env.db().exists(), "status created the database");
    let m10 = flow(&s, "M10");
    assert_eq!(m10["enabled"], false);
    assert_eq!(m10["schedule"], "every 5m");
    assert_eq!(
        m10["next_tick"],
        Value::Null,
        "a disabled flow has no next tick"
    );
    assert_eq!(m10["last_run"], Value::Null);
    assert_eq!(flow(&s, "O10")["enabled"], true);
    let table = text(&flowhost(&config, &["status"]).stdout);
    let m10_row = table.lines().find(|l| l.starts_with("M10 ")).unwrap();
    assert!(m10_row.contains(" disabled "), "{table}");
}

#[test]
fn enable_and_disable_are_kept_and_an_unknown_name_is_refused() {
    let env = TestEnv::new();
    let config = env.config_file("");

    let out = flowhost(&config, &["flow", "enable", "M1O"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("`M1O`") && err.contains("did you mean `M10`?"),
        "{err}"
    );

    let out = flowhost(&config, &["flow", "enable", "M10"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "M10 enabled for `serve`");
    assert!(list_line(&config, "M10").ends_with(" enabled"));
    let s = status(&config);
    assert_eq!(flow(&s, "M10")["enabled"], true);
    assert!(flow(&s, "M10")["next_tick"].is_string(), "{s:#}");

    let out = flowhost(&config, &["flow", "disable", "O10"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "O10 disabled for `serve`");
    let s = status(&config);
    assert_eq!(flow(&s, "O10")["enabled"], false);
    assert_eq!(
        flow(&s, "M10")["enabled"],
        true,
        "one switch leaves the others"
    );

    let out = flowhost(&config, &["flow", "disable", "M10"]);
    assert!(out.status.success());
    assert!(list_line(&config, "M10").ends_with(" disabled"));
}

#[test]
fn run_runs_a_disabled_flow_and_says_it_is_disabled_for_serve() {
    let (env, dir) = env_with_flows();
    drop_flow(&dir, "quiet", "echo", "title: Quiet\nenabled: false\n");
    let config = env.config_file("");
    let out = flowhost(&config, &["run", "quiet", "--input", r#"{"a": 1}"#]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, serde_json::json!({"a": 1}));
    let err = text(&out.stderr);
    assert!(
        err.contains("warning: quiet is disabled for `serve`")
            && err.contains("flowhost flow enable quiet"),
        "{err}"
    );
    let h = History::open_read_only(&flowhost::history::history_path_for(env.db())).unwrap();
    let runs = h.list(Some("quiet"), 10).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Ok);

    // Enabled, it runs without the warning.
    assert!(flowhost(&config, &["flow", "enable", "quiet"])
        .status
        .success());
    let out = flowhost(&config, &["run", "quiet"]);
    assert!(out.status.success());
    assert!(
        !text(&out.stderr).contains("disabled"),
        "{}",
        text(&out.stderr)
    );
}

/// A child process killed when dropped, so a failing test leaves no `serve` behind.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `flowhost -vv serve` (debug: it logs each tick it does not run), stderr line by line.
fn spawn_serve(config: &Path) -> (Serving, Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowhost"))
        .arg("--config")
        .arg(config)
        .args(["-vv", "serve", "--no-reload"])
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (Serving(child), rx)
}

/// Reads lines until `n` of them (counted over everything read so far) satisfy `want`.
fn read_until(
    lines: &Receiver<String>,
    seen: &mut Vec<String>,
    n: usize,
    want: impl Fn(&str) -> bool,
) {
    let started = std::time::Instant::now();
    while seen.iter().filter(|l| want(l)).count() < n {
        let left = PATIENCE.saturating_sub(started.elapsed());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(e) => panic!(
                "waited for {n} lines ({e}); stderr so far:\n{}",
                seen.join("\n")
            ),
        }
    }
}

fn dropped(line: &str, flow: &str, trigger: &str) -> bool {
    line.contains("not running a disabled flow")
        && line.contains(flow)
        && line.contains(&format!("trigger={trigger}"))
}

/// Runs of `flow` recorded in history (top level and failed children), any status.
fn count_runs(h: &History, flow: &str) -> usize {
    h.list(Some(flow), 10_000).unwrap().len()
}

async fn wait_runs(h: &History, flow: &str, n: usize) {
    common::wait_until(PATIENCE, &format!("{n} runs of {flow}"), || {
        count_runs(h, flow) >= n
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_runs_no_disabled_flow_until_another_process_enables_it() {
    let (env, dir) = env_with_flows();
    // `caller` ticks every 100 ms and each run requests a run of `idle`; `idle` has the same
    // schedule but its manifest has it off.
    drop_probe(
        &dir,
        "caller",
        "title: Caller\nschedule:\n  every: 100ms\n  input: {\"op\": \"request_run\", \"flow\": \"idle\", \"input\": {\"op\": \"echo\", \"value\": 1}}\ngrants:\n  flows: [idle]\n",
    );
    drop_probe(
        &dir,
        "idle",
        "title: Idle\nenabled: false\nschedule:\n  every: 100ms\n  input: {\"op\": \"echo\", \"value\": 2}\n",
    );
    let config = env.config_file("");
    let (mut child, lines) = spawn_serve(&config);
    let mut seen = Vec::new();
    read_until(&lines, &mut seen, 1, |l| {
        l.contains("disabled: not run until `flowhost flow enable idle`")
    });
    // Three of idle's own ticks and three of caller's requests reached the scheduler and were
    // not run.
    read_until(&lines, &mut seen, 3, |l| dropped(l, "idle", "schedule"));
    read_until(&lines, &mut seen, 3, |l| dropped(l, "idle", "request"));
    let h = History::open_read_only(&flowhost::history::history_path_for(env.db())).unwrap();
    assert!(count_runs(&h, "caller") >= 3);
    assert_eq!(count_runs(&h, "idle"), 0, "a disabled flow ran");

    // Switched on from another process: serve picks it up without a restart or reload.
    assert!(flowhost(&config, &["flow", "enable", "idle"])
        .status
        .success());
    // Three that finished ok (a tick that meets a run still going is recorded as skipped, and
    // the newest may still be running); none failed.
    common::wait_until(PATIENCE, "3 ok runs of idle", || {
        h.list(Some("idle"), 100)
            .unwrap()
            .iter()
            .filter(|r| r.status == RunStatus::Ok)
            .count()
            >= 3
    })
    .await;
    assert!(h.list(Some("idle"), 100).unwrap().iter().all(|r| matches!(
        r.status,
        RunStatus::Ok | RunStatus::Skipped | RunStatus::Running
    )));

    // And off again: caller stops; at most the run already going (or the tick that read the
    // switch just before) still ends.
    assert!(flowhost(&config, &["flow", "disable", "caller"])
        .status
        .success());
    read_until(&lines, &mut seen, 1, |l| dropped(l, "caller", "schedule"));
    let caller_then = count_runs(&h, "caller");
    let idle_then = count_runs(&h, "idle");
    wait_runs(&h, "idle", idle_then + 5).await;
    assert!(
        count_runs(&h, "caller") <= caller_then + 1,
        "caller kept running after it was disabled: {} → {}",
        caller_then,
        count_runs(&h, "caller")
    );

    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    assert!(child.0.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn status_after_a_drain_matches_the_simulator() {
    let before = jiff::Timestamp::now().as_second();
    let a = asa_with(1000, 300, &[], |_| {}).await;
    let after = jiff::Timestamp::now().as_second();
    let origin = a.sim.base_url().trim_end_matches('/').to_string();
    let config = a.config_granting_sim(&[], "");

    let out = flowhost(&config, &["run", "M10", "--until-idle"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("warning: M10 is disabled for `serve`"),
        "{}",
        text(&out.stderr)
    );

    let s = status(&config);
    let asa = &s["asa"];
    // The newest event: the simulator's newest, as stored (milliseconds, UTC).
    let newest_sim = a
        .sim
        .event_ids()
        .iter()
        .map(|id| {
            a.sim.event(id).unwrap()["timestamp"]
                .as_str()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .unwrap()
        })
        .max()
        .unwrap();
    let newest: jiff::Timestamp = asa["newest_event"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        newest,
        newest_sim
            .round(
                jiff::TimestampRound::new()
                    .smallest(jiff::Unit::Millisecond)
                    .mode(jiff::RoundMode::Trunc)
            )
            .unwrap()
    );
    let at: jiff::Timestamp = s["at"].as_str().unwrap().parse().unwrap();
    let lag = asa["lag_seconds"].as_u64().unwrap();
    let expected = at.duration_since(newest).as_secs();
    assert!(
        lag.abs_diff(expected as u64) <= 1,
        "lag {lag}, expected {expected}"
    );

    // Rows per table, exactly.
    let counts = asa["rows"].as_object().unwrap();
    assert_eq!(counts["Audit Events"], a.sim.event_count());
    for table in [
        "Audit Related Objects",
        "Audit Checkpoints",
        "Execution Log",
        "Environment Variables",
    ] {
        assert_eq!(counts[table], rows(&a.rt, table).len() as u64, "{table}");
    }

    // The rate-limit figures: what the simulator's last response said.
    assert_rate_limits_are_the_last_sent(&a.sim, asa, &origin, (before, after));

    // Failing runs count up; an ok run resets the count.
    for n in 1..=2u64 {
        a.sim.inject(asa_sim::Fault::Status(400), 1);
        let out = flowhost(&config, &["run", "M10"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        let s = status(&config);
        let m10 = flow(&s, "M10");
        assert_eq!(m10["consecutive_failures"], n, "{m10:#}");
        assert_eq!(m10["last_run"]["status"], "error");
        assert!(m10["last_success"].is_string());
        assert_rate_limits_are_the_last_sent(&a.sim, &s["asa"], &origin, (before, after));
    }
    let out = flowhost(&config, &["run", "M10"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = status(&config);
    let m10 = flow(&s, "M10");
    assert_eq!(m10["consecutive_failures"], 0);
    assert_eq!(m10["last_run"]["status"], "ok");
    assert_eq!(m10["last_run"]["ended"], m10["last_success"]);
    assert!(m10["last_run"]["duration_ms"].is_u64());
    let table = text(&flowhost(&config, &["status"]).stdout);
    assert!(
        table.contains(&format!(
            "newest event: {}",
            asa["newest_event"].as_str().unwrap()
        )),
        "{table}"
    );
}

/// `asa.rate_limits` holds one entry, for `origin`, with the figures of the simulator's last
/// response: its limit, the requests left after everything it answered, and a reset one
/// window (1 h) after it started (between `started.0` and `started.1`, unix seconds, the
/// latter rounded up).
fn assert_rate_limits_are_the_last_sent(
    sim: &asa_sim::Sim,
    asa: &Value,
    origin: &str,
    started: (i64, i64),
) {
    let limits = asa["rate_limits"].as_array().unwrap();
    assert_eq!(limits.len(), 1, "{limits:?}");
    let r = &limits[0];
    assert_eq!(r["origin"], origin);
    let st = sim.stats();
    let answered = st.token_requests + st.audit_requests + st.other_requests;
    assert_eq!(r["limit"], 10_000);
    assert_eq!(r["remaining"], 10_000 - answered, "{st:?}");
    let reset = r["reset"].as_i64().unwrap();
    // The simulator's window starts at its start time rounded up to the second.
    assert!(
        (started.0 + 3600..=started.1 + 3601).contains(&reset),
        "reset {reset}, simulator started in {started:?}"
    );
}

/// A `db:` naming a PostgreSQL server that does not answer is refused in one line naming
/// the URL as `u:***` (never the password), with a non-zero exit and no SQLite file written.
#[test]
fn a_postgres_url_is_named_without_its_password() {
    let env = TestEnv::new();
    let config = env.config_file("");
    let text_of = std::fs::read_to_string(&config).unwrap();
    let sqlite_line = format!("db: \"{}\"", env.db().display());
    assert!(text_of.contains(&sqlite_line), "{text_of}");
    let url = "postgres://u:pw@127.0.0.1:1/x";
    std::fs::write(
        &config,
        text_of.replace(&sqlite_line, &format!("db: \"{url}\"")),
    )
    .unwrap();
    let out = flowhost(&config, &["status"]);
    assert!(!out.status.success(), "status succeeded on {url}");
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("`postgres://u:***@127.0.0.1:1/x`"),
        "{err}"
    );
    assert!(!err.contains("pw"), "the password is shown: {err}");
    assert!(!env.db().exists(), "an SQLite file was written");
}
