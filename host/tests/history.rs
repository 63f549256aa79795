//! Run history's retention: `history.retention` in the config prunes, when a runtime opens
//! (`flowhost run`, `serve`; the reading commands open history read-only and prune nothing),
//! every finished run that started longer ago than the retention (with its log lines), and
//! keeps the newer ones. The old runs are written straight into the history file with SQLite,
//! as an older process would have left them.

mod common;

use std::path::Path;

use common::{text, TestEnv};
use flowhost::history::{format_timestamp, history_path_for};

/// `flowhost --config CONFIG ARGS`, which must succeed; its stdout.
fn flowhost(config: &Path, args: &[&str]) -> String {
    let out = common::flowhost(config, args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// The ids of the runs `flowhost history --json` lists, newest first.
fn listed(config: &Path) -> Vec<i64> {
    flowhost(config, &["history", "--json", "--limit", "100"])
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect()
}

/// Writes a finished `echo` run that started `hours_ago`, with one log line; returns its id.
fn old_run(history: &Path, hours_ago: i64) -> i64 {
    let started = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_hours(hours_ago))
        .unwrap();
    let (started, ended) = (
        format_timestamp(started),
        format_timestamp(
            started
                .checked_add(jiff::SignedDuration::from_millis(5))
                .unwrap(),
        ),
    );
    let conn = rusqlite::Connection::open(history).unwrap();
    conn.execute(
        "INSERT INTO _flowhost_runs (flow, trigger, started, ended, status, input, output) \
         VALUES ('echo', 'cli', ?1, ?2, 'ok', '{}', '{}')",
        [&started, &ended],
    )
    .unwrap();
    let id = conn.last_insert_rowid();
    conn.execute(
        "INSERT INTO _flowhost_run_logs (run, seq, at, level, flow, message) \
         VALUES (?1, 0, ?2, 'info', 'echo', 'an old line')",
        rusqlite::params![id, started],
    )
    .unwrap();
    id
}

fn log_lines(history: &Path, run: i64) -> i64 {
    let conn = rusqlite::Connection::open(history).unwrap();
    conn.query_row(
        "SELECT count(*) FROM _flowhost_run_logs WHERE run = ?1",
        [run],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn runs_older_than_the_retention_are_pruned_when_the_runtime_opens() {
    let env = TestEnv::new();
    let config = env.config_file("history:\n  retention: 2d\n");
    // A run of today (this also creates the history file).
    flowhost(&config, &["run", "echo", "--input", "{}"]);
    let today = listed(&config);
    assert_eq!(today.len(), 1, "{today:?}");

    let history = history_path_for(env.db());
    let ten_days = old_run(&history, 240);
    let three_days = old_run(&history, 72);
    let one_day = old_run(&history, 24);
    assert_eq!(log_lines(&history, ten_days), 1);

    // Reading history changes nothing (it opens the file read-only, so it never waits for a
    // writer); the next start of a runtime prunes what is older than 2 days, and their log
    // lines, before its own run.
    assert_eq!(listed(&config).len(), 4);
    flowhost(&config, &["run", "echo", "--input", "{}"]);
    let after = listed(&config);
    assert_eq!(after.len(), 3, "{after:?}");
    assert_eq!(
        after[1..],
        [one_day, today[0]],
        "kept: one day old and today's, after the new run"
    );
    for gone in [ten_days, three_days] {
        assert_eq!(log_lines(&history, gone), 0, "run {gone}'s log lines");
    }
    assert_eq!(log_lines(&history, one_day), 1);
}
