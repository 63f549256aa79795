//! The `flowhost` binary as a user runs it: outputs, errors and exit codes.

mod common;

use std::process::{Command, Output};

use common::{text, TestEnv};

fn flowhost(env: &TestEnv, args: &[&str]) -> Output {
    let config = env.config_file("");
    Command::new(env!("CARGO_BIN_EXE_flowhost"))
        .arg("--config")
        .arg(&config)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
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
    let out = flowhost(&env, &["history", "show", &id]);
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
        &["list"][..],
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
