//! The `flowhost` binary as a user runs it: outputs, errors and exit codes.

mod common;

use std::process::{Command, Output};

use common::{text, TestEnv};

fn flowhost(env: &TestEnv, args: &[&str]) -> Output {
    let config = env.config_file("");
    common::flowhost(&config, args)
}

#[test]
fn list_shows_flows_schedules_and_grants() {
    let env = TestEnv::new();
    let out = flowhost(&env, &["list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("M10") && s.contains("Recurring Audit Collection") && s.contains("every 5m"),
        "{s}"
    );
    assert!(
        s.contains("probe") && s.contains("write: Probe Items"),
        "{s}"
    );
    assert!(s.contains("secrets: ASA_KEY_ID, ASA_KEY_SECRET"), "{s}");
}

#[test]
fn run_prints_output_and_exit_codes_say_what_happened() {
    let env = TestEnv::new();
    let out = flowhost(&env, &["run", "echo", "--input", r#"{"a": 1}"#]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, serde_json::json!({"a": 1}));

    let out = flowhost(
        &env,
        &[
            "run",
            "probe",
            "--input",
            r#"{"op": "fail", "message": "on purpose"}"#,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("probe failed (run ") && err.contains("on purpose"),
        "{err}"
    );

    let out = flowhost(&env, &["run", "m10"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no flow named `m10` (did you mean `M10`?)"),
        "{}",
        text(&out.stderr)
    );

    let out = flowhost(&env, &["run", "echo", "--input", "{not json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--input is not valid JSON"),
        "{}",
        text(&out.stderr)
    );

    let out = flowhost(&env, &["run"]);
    assert_eq!(out.status.code(), Some(2), "clap usage errors exit 2");
}

#[test]
fn history_lists_and_shows_runs() {
    let env = TestEnv::new();
    assert!(flowhost(&env, &["run", "echo", "--input", r#"{"n": 7}"#])
        .status
        .success());
    let _ = flowhost(
        &env,
        &[
            "run",
            "probe",
            "--input",
            r#"{"op": "fail", "message": "nope"}"#,
        ],
    );
    let out = flowhost(&env, &["history"]);
    let s = text(&out.stdout);
    assert!(
        s.contains("echo") && s.contains("ok") && s.contains("probe") && s.contains("error"),
        "{s}"
    );
    let out = flowhost(&env, &["history", "--json", "--limit", "1"]);
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["flow"], "probe");
    let id = line["id"].as_i64().unwrap().to_string();
    let out = flowhost(&env, &["history", "show", &id, "--json"]);
    let rec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(rec["error"].as_str().unwrap().contains("nope"));
    let out = flowhost(&env, &["history", "show", "99999"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn tables_export_and_import_round_trip() {
    let env = TestEnv::new();
    let rows = r#"{"op": "table", "fn": "insert_many", "table": "Probe Items", "rows": [
        {"id": "a", "n": 1, "note": "comma, quote \" and newline\n", "flag": true, "data": {"k": [1]}},
        {"id": "b", "n": 2, "note": ""}]}"#;
    assert!(flowhost(&env, &["run", "probe", "--input", rows])
        .status
        .success());
    let csv = env.dir.path().join("items.csv");
    let out = flowhost(
        &env,
        &[
            "table",
            "export",
            "Probe Items",
            "--format",
            "csv",
            "--out",
            csv.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let jsonl = flowhost(&env, &["table", "export", "Probe Items"]);
    let exported = text(&jsonl.stdout);
    assert_eq!(exported.lines().count(), 2);

    // Into a fresh database: the same rows come back. (CSV cannot tell an empty text from
    // null; an empty text cell comes back as "", an empty cell of any other type as null.)
    let env2 = TestEnv::new();
    let out = flowhost(
        &env2,
        &["table", "import", "Probe Items", csv.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&flowhost(&env2, &["table", "export", "Probe Items"]).stdout),
        exported
    );

    // A bad file imports nothing and says where.
    let bad = env2.dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"id\": \"c\", \"n\": 3}\n{\"id\": \"d\", \"n\": \"four\"}\n",
    )
    .unwrap();
    let out = flowhost(
        &env2,
        &["table", "import", "Probe Items", bad.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("row 2") && err.contains("nothing was imported"),
        "{err}"
    );
    let count = text(&flowhost(&env2, &["table", "list"]).stdout);
    assert!(
        count
            .lines()
            .any(|l| l.starts_with("Probe Items") && l.contains(" 2 rows")),
        "{count}"
    );

    let out = flowhost(&env2, &["table", "show", "Probe Itemz"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("did you mean `Probe Items`"));
}

#[test]
fn bad_config_is_a_one_line_error_with_exit_2() {
    let env = TestEnv::new();
    let cfg = env.dir.path().join("broken.yaml");
    std::fs::write(&cfg, "db: x.db\nflowz: []\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_flowhost"))
        .arg("--config")
        .arg(&cfg)
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("broken.yaml") && err.contains("unknown field `flowz`"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_flowhost"))
        .args(["--db", "/proc/no/such/dir/x.db", "--flows"])
        .arg(common::flows_dir("dist-test"))
        .arg("--tables")
        .arg(common::root().join("tables"))
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("/proc/no/such/dir"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let env = TestEnv::new();
    let rows = r#"{"op": "table", "fn": "insert_many", "table": "Probe Items", "rows": [
        {"id": "a", "n": 1}, {"id": "b", "n": 2}]}"#;
    let out = flowhost(&env, &["run", "probe", "--input", rows]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config = env.config_file("");
    for args in [
        &["table", "export", "Probe Items"][..],
        &["table", "export", "Probe Items", "--format", "csv"][..],
        &["table", "show", "Probe Items"][..],
        &["table", "list"][..],
        &["history"][..],
        &["history", "--json"][..],
        &["history", "show", "1"][..],
        &["history", "show", "1", "--json"][..],
        &["list"][..],
        &["list", "--json"][..],
        &["table", "list", "--json"][..],
        &["run", "echo", "--input", r#"{"a": 1}"#][..],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_flowhost"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before anything is written: every write meets a closed pipe.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}

#[test]
fn imports_refuse_non_finite_numbers_and_repeated_columns_or_fields() {
    let env = TestEnv::new();
    let import = |table: &str, name: &str, content: &str| {
        let file = env.dir.path().join(name);
        std::fs::write(&file, content).unwrap();
        let out = flowhost(&env, &["table", "import", table, file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out.stderr));
        text(&out.stderr)
    };
    // `LastCount` is a number column.
    for (cell, line) in [("NaN", 2), ("inf", 3), ("1e999", 4)] {
        let mut csv = String::from("LastOffset,LastCount\n");
        for l in 2..line {
            csv.push_str(&format!("o{l},{l}\n"));
        }
        csv.push_str(&format!("bad,{cell}\n"));
        let err = import("Audit Checkpoints", "n.csv", &csv);
        assert!(
            err.contains(&format!(
                "n.csv:{line}: column 2 (`LastCount`): `{cell}` is not a finite number"
            )),
            "{cell}: {err}"
        );
    }
    let out = flowhost(&env, &["table", "export", "Audit Checkpoints"]);
    assert_eq!(text(&out.stdout), "", "a refused import wrote rows");
    let err = import("Probe Items", "dup.csv", "id,n,note,n\nx,1,a,2\n");
    assert!(
        err.contains("dup.csv:1: column `n` appears twice in the header (columns 2 and 4)"),
        "{err}"
    );
    let err = import(
        "Probe Items",
        "dup.jsonl",
        "{\"id\": \"x\"}\n{\"id\": \"y\", \"n\": 1, \"n\": 2}\n",
    );
    assert!(
        err.contains("dup.jsonl:2: field `n` appears twice in one object"),
        "{err}"
    );
    let out = flowhost(&env, &["table", "export", "Probe Items"]);
    assert_eq!(text(&out.stdout), "", "a refused import wrote rows");

    let out = flowhost(&env, &["run", "echo", "--input", r#"{"a": 1, "a": 2}"#]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--input is not valid JSON: field `a` appears twice"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn ungranted_tables_and_blob_stores_are_denied_without_naming_others() {
    let env = TestEnv::new();
    for (op, must) in [
        // Exists, not granted.
        (
            r#"{"op": "table", "fn": "count", "table": "Audit Events"}"#,
            "access-denied: probe may not read table `Audit Events` (grants.tables.read)",
        ),
        // Does not exist, one letter from a table that does.
        (
            r#"{"op": "table", "fn": "count", "table": "Audit Event"}"#,
            "access-denied: probe may not read table `Audit Event` (grants.tables.read)",
        ),
        (
            r#"{"op": "blob_get", "store": "archive", "key": "k"}"#,
            "access-denied: blobs.get: probe may not read blob store `archive` (grants.blobs.read)",
        ),
        (
            r#"{"op": "blob_get", "store": "archiv", "key": "k"}"#,
            "access-denied: blobs.get: probe may not read blob store `archiv` (grants.blobs.read)",
        ),
    ] {
        let out = flowhost(&env, &["run", "probe", "--input", op]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{op}: {err}");
        assert!(err.contains(must), "{op}: {err}");
        assert!(
            !err.contains("did you mean") && !err.contains("not-found"),
            "{op}: {err}"
        );
    }
}

/// `flowhost ARGS` with `stdin` as standard input.
fn flowhost_with_stdin(env: &TestEnv, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let config = env.config_file("");
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowhost"))
        .arg("--config")
        .arg(&config)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Issue 15.8: export picks its format from `--format`, else the `--out` extension, else JSON
/// lines; import reads the same formats, by `--format` or extension, and `-` for stdin.
#[test]
fn export_and_import_formats_follow_the_flag_then_the_extension() {
    let env = TestEnv::new();
    let rows = r#"{"op": "table", "fn": "insert_many", "table": "Probe Items", "rows": [
        {"id": "a", "n": 1, "note": "x"}, {"id": "b", "n": 2, "note": "y"}]}"#;
    assert!(flowhost(&env, &["run", "probe", "--input", rows])
        .status
        .success());
    let export = |out: &str, format: Option<&str>| -> String {
        let file = env.dir.path().join(out);
        let mut args = vec![
            "table",
            "export",
            "Probe Items",
            "--out",
            file.to_str().unwrap(),
        ];
        if let Some(f) = format {
            args.extend(["--format", f]);
        }
        let o = flowhost(&env, &args);
        assert!(o.status.success(), "{}", text(&o.stderr));
        std::fs::read_to_string(file).unwrap()
    };
    let is_csv = |t: &str| t.starts_with("id,") && t.lines().count() == 3;
    let is_jsonl = |t: &str| {
        t.lines().count() == 2
            && t.lines()
                .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
    };
    let csv = export("items.csv", None);
    assert!(is_csv(&csv), "{csv}");
    assert!(is_jsonl(&export("items.ndjson", None)));
    assert!(is_jsonl(&export("items.jsonl", None)));
    assert!(
        is_jsonl(&export("items.txt", None)),
        "unknown extension: jsonl"
    );
    assert!(is_csv(&export("items.jsonl", Some("csv"))), "--format wins");
    let stdout = flowhost(&env, &["table", "export", "Probe Items"]);
    assert!(is_jsonl(&text(&stdout.stdout)));
    let jsonl = export("all.jsonl", None);

    // Import: from standard input (JSON lines unless --format says otherwise), by extension.
    let env2 = TestEnv::new();
    let o = flowhost_with_stdin(&env2, &["table", "import", "Probe Items", "-"], &jsonl);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("imported 2 rows"),
        "{}",
        text(&o.stdout)
    );
    let env3 = TestEnv::new();
    let o = flowhost_with_stdin(
        &env3,
        &["table", "import", "Probe Items", "-", "--format", "csv"],
        &csv,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let nd = env3.dir.path().join("more.ndjson");
    std::fs::write(&nd, "{\"id\": \"c\", \"n\": 3}\n").unwrap();
    let o = flowhost(
        &env3,
        &["table", "import", "Probe Items", nd.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    // A .txt file needs --format; with it, it is read.
    let txt = env3.dir.path().join("more.txt");
    std::fs::write(&txt, "{\"id\": \"d\", \"n\": 4}\n").unwrap();
    let o = flowhost(
        &env3,
        &["table", "import", "Probe Items", txt.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains(
            "more.txt: unknown format (use a .csv or .jsonl file, or --format csv|jsonl)"
        ),
        "{}",
        text(&o.stderr)
    );
    let o = flowhost(
        &env3,
        &[
            "table",
            "import",
            "Probe Items",
            txt.to_str().unwrap(),
            "--format",
            "jsonl",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let list = flowhost(&env3, &["table", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let items = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Probe Items")
        .unwrap();
    assert_eq!(items["rows"], 4, "{v}");
    assert_eq!(items["in_database"], true, "{v}");
}

/// Issue 15.8: `history --json` and `history show --json` give input and output as JSON
/// values; `history show` is for people; `history NOPE` names the missing flow.
#[test]
fn history_json_has_json_values_and_unknown_flows_are_named() {
    let env = TestEnv::new();
    let out = flowhost(&env, &["run", "echo", "--input", r#"{"n": 7, "s": "x"}"#]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = flowhost(&env, &["history", "--json"]);
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["input"], serde_json::json!({"n": 7, "s": "x"}));
    assert_eq!(line["output"], serde_json::json!({"n": 7, "s": "x"}));
    let id = line["id"].to_string();
    let out = flowhost(&env, &["history", "show", &id, "--json"]);
    let rec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rec["output"]["n"], 7, "{rec}");
    assert_eq!(rec["status"], "ok");
    let out = flowhost(&env, &["history", "show", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.starts_with(&format!("run {id}: echo ok\n")) && shown.contains("input:\n  {"),
        "{shown}"
    );
    assert!(shown.contains("\"n\": 7"), "{shown}");

    // A flow with no run yet is fine; a name that is neither in history nor loaded is not.
    let out = flowhost(&env, &["history", "probe"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = flowhost(&env, &["history", "NOPE"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("no flow named `NOPE`"), "{err}");
    let out = flowhost(&env, &["history", "ech"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("(did you mean `echo`?)"),
        "{}",
        text(&out.stderr)
    );
    // Before any run (no history database yet), the same.
    let fresh = TestEnv::new();
    let out = flowhost(&fresh, &["history", "NOPE"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no flow named `NOPE`"),
        "{}",
        text(&out.stderr)
    );
}

/// Issue 15.8: `list --json` and `table show --limit 0`.
#[test]
fn list_json_and_table_show_limit_zero() {
    let env = TestEnv::new();
    let out = flowhost(&env, &["list", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let flows = v["flows"].as_array().unwrap();
    let probe = flows.iter().find(|f| f["name"] == "probe").unwrap();
    assert_eq!(
        probe["grants"]["secrets"],
        serde_json::json!(["PROBE_TOKEN"])
    );
    assert_eq!(
        probe["grants"]["tables"]["write"],
        serde_json::json!(["Probe Items"])
    );
    let m10 = flows.iter().find(|f| f["name"] == "M10").unwrap();
    assert_eq!(m10["schedule"], "every 5m");
    assert_eq!(v["not_loaded"], serde_json::json!([]));

    let rows = r#"{"op": "table", "fn": "insert_many", "table": "Probe Items", "rows": [
        {"id": "a", "n": 1}, {"id": "b", "n": 2}]}"#;
    assert!(flowhost(&env, &["run", "probe", "--input", rows])
        .status
        .success());
    for (limit, lines) in [("0", 0), ("1", 1), ("5", 2)] {
        let out = flowhost(&env, &["table", "show", "Probe Items", "--limit", limit]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout).lines().count(), lines, "--limit {limit}");
    }
}

/// Issue 15.8: `run M10 --until-idle` ends with the totals of all its runs on stderr; stdout
/// keeps the last run's output.
#[tokio::test(flavor = "multi_thread")]
async fn until_idle_ends_with_totals_over_all_runs() {
    let a = common::asa::asa(25, 10).await;
    let config = a.config_granting_sim(&[], "");
    let before = a.rt.history.list(None, 1).unwrap()[0].id;
    let out = common::flowhost_async(&config, &["run", "M10", "--until-idle"]).await;
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    // What each run of the command reports, from run history.
    let runs: Vec<_> =
        a.rt.history
            .list(None, 1000)
            .unwrap()
            .into_iter()
            .filter(|r| r.id > before && r.parent.is_none())
            .collect();
    assert!(runs.len() >= 3, "25 events in pages of 10: {runs:?}");
    let sum = |field: &str| -> u64 {
        runs.iter()
            .filter_map(|r| r.output.as_deref())
            .filter_map(|o| serde_json::from_str::<serde_json::Value>(o).ok())
            .filter_map(|v| v[field].as_u64())
            .sum()
    };
    assert_eq!(sum("written"), 25, "every event written once");
    let total_line = err
        .lines()
        .find(|l| l.starts_with("M10 --until-idle: "))
        .unwrap_or_else(|| panic!("no totals line in:\n{err}"));
    assert_eq!(
        total_line,
        format!(
            "M10 --until-idle: {} runs, {} events, 25 written",
            runs.len(),
            sum("events")
        )
    );
    // Stdout is the last run's output alone.
    let last: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(last["written"].as_u64().unwrap() < 25, "{last}");
}

/// `FLOWHOST_PERFMAP` makes the engine write where each compiled function of a flow is, as
/// `perf` reads it (`/tmp/perf-PID.map`); without it, no map.
#[test]
fn perfmap_says_where_a_flows_code_is_only_when_asked() {
    let env = TestEnv::new();
    let config = env.config_file("");
    let run = |perfmap: bool| {
        let mut cmd = common::flowhost_cmd(&config, &["run", "echo", "--input", "{}"]);
        if perfmap {
            cmd.env(flowhost::engine::PERFMAP_ENV, "1");
        } else {
            cmd.env_remove(flowhost::engine::PERFMAP_ENV);
        }
        let child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let map = std::path::PathBuf::from(format!("/tmp/perf-{}.map", child.id()));
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let lines = std::fs::read_to_string(&map).ok();
        let _ = std::fs::remove_file(&map);
        lines
    };
    let lines = run(true).expect("no perf map written");
    // `START SIZE NAME`, hex, for the functions of echo's first core module (`wasm[0]`).
    let echo: Vec<&str> = lines
        .lines()
        .filter(|l| l.contains("wasm[0]::function["))
        .collect();
    assert!(!echo.is_empty(), "{lines}");
    for l in &echo {
        let mut parts = l.splitn(3, ' ');
        let start = parts.next().unwrap().trim_start_matches("0x");
        assert!(u64::from_str_radix(start, 16).is_ok(), "{l}");
        assert!(
            u64::from_str_radix(parts.next().unwrap(), 16).is_ok(),
            "{l}"
        );
    }
    assert_eq!(run(false), None);
}
