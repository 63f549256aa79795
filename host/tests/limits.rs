//! Bounds a manifest, a config file or a flow cannot get past: durations out of range are
//! refused at load (file, field, range), a run that logs in a loop keeps a bounded log (and
//! counts what it dropped right), and a for-each whose children all fail writes a bounded
//! number of history rows.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{text, TestEnv};
use flowhost::history::{RunStatus, MAX_FAILED_CHILD_ROWS, MAX_LOG_LINES};
use serde_json::json;

/// `env` with its own flows folder holding copies of echo and probe.
fn env_with_flows() -> (TestEnv, PathBuf) {
    let mut env = TestEnv::new();
    let dir = env.dir.path().join("flows");
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(common::flows_dir("dist-test")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    env.config.flows = vec![dir.clone()];
    env.config.builtin = false;
    (env, dir)
}

fn flowhost(env: &TestEnv, config: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowhost"))
        .current_dir(env.dir.path())
        .env_remove("RUST_LOG")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn out_of_range_durations_are_refused_at_load_naming_file_field_and_range() {
    let (env, dir) = env_with_flows();
    let probe = dir.join("probe.wasm");
    for (name, manifest) in [
        ("t0", "title: T\ntimeout: 0s\n"),
        ("tbig", "title: T\ntimeout: 18446744073709551615s\n"),
        (
            "ebig",
            "title: T\nschedule:\n  every: 18446744073709551615s\n",
        ),
        ("tday", "title: T\ntimeout: 2d\n"),
    ] {
        std::fs::write(dir.join(format!("{name}.yaml")), manifest).unwrap();
        std::fs::copy(&probe, dir.join(format!("{name}.wasm"))).unwrap();
    }
    let out = flowhost(&env, &env.config_file(""), &["list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let list = text(&out.stdout);
    let not_loaded = common::not_loaded(&list);
    let at = |f: &str| dir.join(f).display().to_string();
    assert_eq!(
        not_loaded,
        [
            format!(
                "{}: schedule.every: 18446744073709551615s is out of range (100ms to 30d)",
                at("ebig.yaml")
            ),
            format!("{}: timeout: 0s is out of range (1s to 24h)", at("t0.yaml")),
            format!(
                "{}: timeout: 18446744073709551615s is out of range (1s to 24h)",
                at("tbig.yaml")
            ),
            format!(
                "{}: timeout: 2d is out of range (1s to 24h)",
                at("tday.yaml")
            ),
        ],
        "{list}"
    );
    assert!(
        list.starts_with("echo ") && list.contains("\nprobe "),
        "{list}"
    );

    // The config file's duration too: one line, exit 2.
    let config = env.config_file("history: {retention: 0s}\n");
    let out = flowhost(&env, &config, &["list"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.trim_end().ends_with(&format!(
            "{}: history.retention: 0s is out of range (1m to 3650d)",
            config.display()
        )),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_request_delay_out_of_range_is_refused() {
    let env = TestEnv::new();
    let rt = env.runtime();
    let e = common::err(
        &rt,
        "probe",
        json!({"op": "request_run", "flow": "probe", "delay_ms": u64::MAX}),
    )
    .await;
    assert!(
        e.contains("invalid-input: request-run delay of 18446744073709551615 ms is out of range (0 to 720h)"),
        "{e}"
    );
}

/// 5,000 warnings: history keeps the first [`MAX_LOG_LINES`] and counts the other 4,800, and
/// only the lines within the run's cap (1,000) reach the host's log, plus one warning saying
/// the rest were dropped.
#[test]
fn a_run_that_logs_in_a_loop_keeps_a_bounded_log_and_counts_the_rest() {
    let (env, _dir) = env_with_flows();
    let steps: Vec<serde_json::Value> = (0..5000)
        .map(|i| json!({"op": "log", "level": "warn", "message": format!("line {i}")}))
        .collect();
    let input = env.dir.path().join("input.json");
    std::fs::write(&input, json!({"op": "steps", "steps": steps}).to_string()).unwrap();
    let config = env.config_file("");
    let out = flowhost(
        &env,
        &config,
        &["run", "probe", "--input-file", input.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let flow_lines = stderr.lines().filter(|l| l.contains("line ")).count();
    assert_eq!(flow_lines, 1000, "lines past the cap reached the log");
    assert!(stderr.contains("line 999") && !stderr.contains("line 1000"));
    let cut = stderr
        .lines()
        .filter(|l| l.contains("the rest are counted, not logged"))
        .count();
    assert_eq!(cut, 1, "{}", &stderr[stderr.len().saturating_sub(2000)..]);

    let history =
        flowhost::history::History::open(&flowhost::history::history_path_for(env.db())).unwrap();
    let run = &history.list(Some("probe"), 10).unwrap()[0];
    assert_eq!(run.status, RunStatus::Ok);
    assert_eq!(run.logs.len(), MAX_LOG_LINES);
    assert_eq!(run.logs_dropped, 5000 - MAX_LOG_LINES as u64);
}

/// 200 failing children: the first [`MAX_FAILED_CHILD_ROWS`] have rows of their own (input
/// and error), the rest are counted in the parent's per-child statistics.
#[tokio::test(flavor = "multi_thread")]
async fn failed_children_past_the_first_few_are_aggregated_not_recorded_one_by_one() {
    let env = TestEnv::new();
    let rt = env.runtime();
    let items: Vec<serde_json::Value> = (0..200)
        .map(|i| json!({"op": "fail", "message": format!("item {i} failed")}))
        .collect();
    let out = common::ok(
        &rt,
        "probe",
        json!({"op": "for_each", "flow": "probe", "items": items, "concurrency": 4}),
    )
    .await;
    assert_eq!(out.as_array().unwrap().len(), 200);
    let all = rt.history.list(None, 1000).unwrap();
    let parent = all.iter().find(|r| r.parent.is_none()).unwrap();
    let children: Vec<_> = all.iter().filter(|r| r.parent == Some(parent.id)).collect();
    assert_eq!(children.len() as u64, MAX_FAILED_CHILD_ROWS);
    assert!(children.iter().all(|c| c.status == RunStatus::Error
        && c.error.as_deref().unwrap_or("").contains("failed")
        && c.input.contains("\"op\":\"fail\"")));
    let stats = parent.children.iter().find(|s| s.flow == "probe").unwrap();
    assert_eq!((stats.calls, stats.failures), (200, 200));
    assert_eq!(stats.failures_not_recorded, 200 - MAX_FAILED_CHILD_ROWS);
}
