//! Locks between processes, with real `flowhost` processes on one database: SQLite's write
//! lock held by another connection (a run ends at its deadline; the reading commands neither
//! wait nor fail), and the leases of `serve` and of exclusive groups.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{text, TestEnv};

/// How long any awaited event may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(120);

/// `flowhost --config <env's config> args...`, nothing inherited from the caller's RUST_LOG.
fn flowhost(config: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_flowhost"));
    c.arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    c
}

fn output(config: &Path, args: &[&str]) -> Output {
    flowhost(config, args).output().unwrap()
}

/// A folder with copies of the probe flow under other names, each with its manifest edited.
fn probe_copies(env: &TestEnv, copies: &[(&str, &str)]) -> PathBuf {
    let src = common::flows_dir("dist-test");
    let dir = env.dir.path().join("flows-copies");
    std::fs::create_dir_all(&dir).unwrap();
    let yaml = std::fs::read_to_string(src.join("probe.yaml")).unwrap();
    for (name, edit) in copies {
        std::fs::copy(src.join("probe.wasm"), dir.join(format!("{name}.wasm"))).unwrap();
        let edited = yaml.replace("timeout: 5s\n", edit);
        assert_ne!(
            edited, yaml,
            "probe.yaml has no `timeout: 5s` line to replace"
        );
        std::fs::write(dir.join(format!("{name}.yaml")), edited).unwrap();
    }
    dir
}

/// Waits for `child` to exit, up to [`PATIENCE`].
fn wait_exit(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let until = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < until, "{what} did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `path` holds `want` (a lease's holder line), up to [`PATIENCE`].
fn wait_for_file(path: &Path, want: &str) {
    let until = Instant::now() + PATIENCE;
    loop {
        if std::fs::read_to_string(path).is_ok_and(|t| t == want) {
            return;
        }
        assert!(
            Instant::now() < until,
            "{} never held {want:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_run_ends_at_its_deadline_while_another_process_holds_the_write_lock_and_readers_go_on() {
    let mut env = TestEnv::new();
    let copies = probe_copies(&env, &[("quick", "timeout: 1s\n")]);
    env.config.flows.insert(0, copies);
    let config = env.config_file("");
    // Create the database and a row to read back.
    let out = output(
        &config,
        &[
            "run",
            "probe",
            "--input",
            r#"{"op": "table", "table": "Probe Items", "fn": "insert", "row": {"id": "before"}}"#,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Another process's connection (here: this test's) holds SQLite's write lock.
    let holder = flowhost::store::open_connection(env.db()).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    holder
        .execute_batch("DELETE FROM t_probe_items WHERE 0")
        .unwrap();

    let out = output(
        &config,
        &[
            "run",
            "quick",
            "--input",
            r#"{"op": "table", "table": "Probe Items", "fn": "insert", "row": {"id": "late"}}"#,
        ],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("error: quick timed out (run ")
            && err.contains("waited")
            && err.contains("for the database's write lock"),
        "{err}"
    );

    // Still held: every reading command answers.
    let history = output(&config, &["history", "--json"]);
    assert!(history.status.success(), "{}", text(&history.stderr));
    let last: serde_json::Value =
        serde_json::from_str(text(&history.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(last["flow"], "quick");
    assert_eq!(last["status"], "timeout");
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("for the database's write lock"),
        "{last}"
    );
    let id = last["id"].to_string();
    let show = output(&config, &["history", "show", &id]);
    assert!(show.status.success(), "{}", text(&show.stderr));

    let list = output(&config, &["table", "list"]);
    assert!(list.status.success(), "{}", text(&list.stderr));
    assert!(
        text(&list.stdout)
            .lines()
            .any(|l| l.starts_with("Probe Items") && l.trim_end().ends_with(" 1 rows")),
        "{}",
        text(&list.stdout)
    );
    for args in [
        &["table", "show", "Probe Items"][..],
        &["table", "export", "Probe Items"][..],
        &["table", "export", "Probe Items", "--format", "csv"][..],
    ] {
        let out = output(&config, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("before"), "{args:?}");
        assert!(!text(&out.stdout).contains("late"), "{args:?}");
    }
    let out = output(&config, &["list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("quick"));

    // Only now does the holder let go: the run above ended before it did.
    holder.execute_batch("ROLLBACK").unwrap();
}

#[test]
fn reading_commands_name_a_missing_database_or_table() {
    let env = TestEnv::new();
    let config = env.config_file("");
    for args in [&["history"][..], &["table", "list"][..]] {
        let out = output(&config, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("does not exist: nothing has been written yet"),
            "{args:?}: {err}"
        );
    }
    assert!(!env.db().exists(), "a reading command created the database");

    // A database made before a table's schema existed: that table is named as not there yet.
    let probe = r#"{"op": "table", "table": "Probe Items", "fn": "count"}"#;
    let out = output(&config, &["run", "echo"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let conn = flowhost::store::open_connection(env.db()).unwrap();
    conn.execute_batch("DROP TABLE t_probe_items").unwrap();
    drop(conn);
    let out = output(&config, &["table", "export", "Probe Items"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("table `Probe Items` is not in database"),
        "{}",
        text(&out.stderr)
    );
    let out = output(&config, &["table", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("(not in the database yet)"),
        "{}",
        text(&out.stdout)
    );
    // A run (which migrates) creates it again.
    let out = output(&config, &["run", "probe", "--input", probe]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn a_second_serve_on_one_database_is_refused_naming_the_first() {
    let mut env = TestEnv::new();
    // A flows folder with nothing scheduled: `serve` only holds its lease.
    let copies = probe_copies(&env, &[("idle", "timeout: 6s\n")]);
    env.config.flows = vec![copies];
    env.config.builtin = false;
    let config = env.config_file("");
    let lock = PathBuf::from(format!("{}.locks/serve.lock", env.db().display()));

    let mut first = flowhost(&config, &["serve", "--no-reload"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_file(&lock, &format!("{} flowhost serve\n", first.id()));
    let out = output(&config, &["serve", "--no-reload"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "is held by pid {} (flowhost serve) (one `flowhost serve` per database",
            first.id()
        )),
        "{err}"
    );

    // SIGKILL: the kernel releases the lease; the next serve starts.
    first.kill().unwrap();
    wait_exit(&mut first, "the first serve");
    let mut second = flowhost(&config, &["serve", "--no-reload"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_file(&lock, &format!("{} flowhost serve\n", second.id()));
    second.kill().unwrap();
    wait_exit(&mut second, "the second serve");
}

#[test]
fn an_exclusive_group_holds_across_processes() {
    let mut env = TestEnv::new();
    let copies = probe_copies(
        &env,
        &[
            ("holder", "timeout: 10m\nexclusive: g1\n"),
            ("other", "timeout: 10m\nexclusive: g1\n"),
        ],
    );
    env.config.flows.insert(0, copies);
    let config = env.config_file("");
    let out = output(&config, &["run", "echo"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lock = PathBuf::from(format!("{}.locks/group-g1.lock", env.db().display()));

    // One process runs `holder` (it sleeps until killed) and so holds group g1.
    let mut holder = flowhost(
        &config,
        &[
            "run",
            "holder",
            "--input",
            r#"{"op": "sleep", "ms": 600000}"#,
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let pid = holder.id();
    wait_for_file(&lock, &format!("{pid} flowhost run holder\n"));

    // --no-wait: refused at once, naming the holder, and recorded as skipped.
    let insert =
        r#"{"op": "table", "table": "Probe Items", "fn": "insert", "row": {"id": "other"}}"#;
    let out = output(&config, &["run", "other", "--no-wait", "--input", insert]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error: other not run (run ")
            && err.contains(&format!(
                "): other: exclusive group `g1` is held by pid {pid} (flowhost run holder)"
            )),
        "{err}"
    );
    let history = output(&config, &["history", "other", "--json"]);
    let last: serde_json::Value =
        serde_json::from_str(text(&history.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(last["status"], "skipped", "{last}");

    // Without --no-wait it says it waits, and runs once the holder is gone.
    let mut waiting = flowhost(&config, &["run", "other", "--input", insert])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(waiting.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(
        line.contains(&format!(
            "waiting for exclusive group `g1`, held by pid {pid} (flowhost run holder)..."
        )),
        "{line}"
    );
    let rows = output(&config, &["table", "export", "Probe Items"]);
    assert!(!text(&rows.stdout).contains("other"), "it did not wait");
    holder.kill().unwrap();
    wait_exit(&mut holder, "the holder");
    let status = wait_exit(&mut waiting, "the waiting run");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(status.success(), "{rest}");
    let rows = output(&config, &["table", "export", "Probe Items"]);
    assert!(text(&rows.stdout).contains("\"other\""));
}
