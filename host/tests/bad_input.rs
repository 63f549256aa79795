//! Bad input through the `flowhost` binary: a malformed or missing config, table schema,
//! manifest, component, flow name, input or database path. Each is one line on stderr that
//! names the file or field and the fix, exit code 2, and nothing written: the world's files
//! are byte for byte what they were (with no database yet, and with one).
//!
//! A bad manifest or component does not stop the host: `flowhost list` reports it under
//! "not loaded" and the other flows still run. A full disk fails the run with SQLite's error
//! and leaves a database that passes `PRAGMA integrity_check`.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{integrity, text};

/// A folder with its own config, flows (echo, probe), tables and blob stores; the config and
/// every path in it are relative, so messages show the paths a user would type.
struct World {
    dir: tempfile::TempDir,
}

const CONFIG: &str = "flowhost.yaml";

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let w = World { dir };
        common::copy_flows(&common::flows_dir("dist-test"), &w.path("flows"), |_| true);
        for d in ["tables", "tests/tables"] {
            common::copy_flows(&common::root().join(d), &w.path("tables"), |_| true);
        }
        w.config("");
        w
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).unwrap();
    }

    /// The world's config with `extra` appended (a later key replaces nothing: serde_yaml
    /// refuses duplicates, so callers replace whole configs with [`World::config_text`]).
    fn config(&self, extra: &str) {
        self.config_text(&format!("{}{extra}", self.base_config()));
    }

    fn base_config(&self) -> String {
        format!(
            "db: db/flowhost.db\nflows: [flows]\ntables: [tables]\ncache_dir: \"{}\"\n\
             blobs:\n  archive: {{kind: local, path: blobs/archive}}\n  scratch: {{kind: local, path: blobs/scratch}}\n",
            common::root().join("target/flowhost-test-cache").display()
        )
    }

    fn config_text(&self, text: &str) {
        self.write(CONFIG, text);
    }

    fn flowhost<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_flowhost"))
            .current_dir(self.dir.path())
            .env_clear()
            .arg("--config")
            .arg(CONFIG)
            .args(args)
            .output()
            .unwrap()
    }

    /// Every file and folder under the world, with the files' bytes.
    fn snapshot(&self) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![self.dir.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let rel = p.strip_prefix(self.dir.path()).unwrap().to_path_buf();
                if p.is_dir() {
                    out.insert(rel, None);
                    stack.push(p);
                } else {
                    out.insert(rel, Some(std::fs::read(&p).unwrap()));
                }
            }
        }
        out
    }
}

/// One bad input: `setup` changes the world and returns the arguments after `--config`.
struct Case {
    name: &'static str,
    setup: fn(&World) -> Vec<OsString>,
    /// Substrings of the one stderr line.
    want: &'static [&'static str],
}

fn args(a: &[&str]) -> Vec<OsString> {
    a.iter().map(OsString::from).collect()
}

const EXTRA_TABLE: &str = "tables/extra.yaml";

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "config: unknown field",
            setup: |w| {
                w.config("flowz: [flows]\n");
                args(&["list"])
            },
            want: &[
                "error: flowhost.yaml: unknown field `flowz` (did you mean `flows`?), expected one of `db`, `flows`",
                "at line 8 column 1",
            ],
        },
        Case {
            name: "config: compile cache cap out of range",
            setup: |w| {
                w.config("cache_max_size: 10KiB\n");
                args(&["list"])
            },
            want: &["error: flowhost.yaml: cache_max_size: `10KiB` is out of range (1MiB to 1024GiB)"],
        },
        Case {
            name: "config: wrong type",
            setup: |w| {
                w.config_text(&w.base_config().replace("flows: [flows]", "flows: 3"));
                args(&["list"])
            },
            want: &["error: flowhost.yaml: flows: invalid type: integer `3`, expected a sequence at line 2 column 8"],
        },
        Case {
            name: "config: bad duration",
            setup: |w| {
                w.config("history: {retention: soon}\n");
                args(&["list"])
            },
            want: &["error: flowhost.yaml: history.retention: `soon` is not a duration (e.g. 500ms, 30s, 5m, 1h 30m)"],
        },
        Case {
            name: "config: http.prefetch not a boolean",
            setup: |w| {
                w.config("http: {prefetch: sometimes}\n");
                args(&["list"])
            },
            want: &["error: flowhost.yaml: http.prefetch: invalid type: string \"sometimes\", expected a boolean"],
        },
        Case {
            name: "config: not YAML",
            setup: |w| {
                w.config_text("db: \"db/flowhost.db\nflows: [flows]\n");
                args(&["list"])
            },
            want: &["error: flowhost.yaml: found unexpected end of stream at line 3 column 1, while scanning a quoted scalar at line 1 column 5"],
        },
        Case {
            name: "config: unknown blob store kind",
            setup: |w| {
                w.config_text(&w.base_config().replace("kind: local, path: blobs/scratch", "kind: ftp"));
                args(&["list"])
            },
            want: &["error: flowhost.yaml: blobs.scratch.kind: unknown kind `ftp` (expected local or s3)"],
        },
        Case {
            name: "config: missing --config file",
            setup: |w| {
                std::fs::remove_file(w.path(CONFIG)).unwrap();
                args(&["list"])
            },
            want: &["error: flowhost.yaml: cannot read the config file: No such file or directory (os error 2) (check the --config path or FLOWHOST_CONFIG)"],
        },
        Case {
            name: "config: missing secrets file",
            setup: |w| {
                w.config("secrets_file: secrets.yaml\n");
                args(&["list"])
            },
            want: &["error: secrets.yaml: cannot read the secrets file: No such file or directory (os error 2) (fix the `secrets_file:` setting)"],
        },
        Case {
            name: "config: missing table folder",
            setup: |w| {
                w.config_text(&w.base_config().replace("tables: [tables]", "tables: [tabels]"));
                args(&["list"])
            },
            want: &["error: table schema folder `tabels` does not exist (create it or fix the `tables:` setting)"],
        },
        Case {
            name: "table schema: unknown type",
            setup: |w| {
                w.write(EXTRA_TABLE, "name: Extra\nkey: id\ncolumns:\n  - { name: id, type: text }\n  - { name: amount, type: decimal }\n");
                args(&["list"])
            },
            want: &["error: tables/extra.yaml: column `amount`: unknown type `decimal` (expected text, number, integer, boolean or json)"],
        },
        Case {
            name: "table schema: unknown field",
            setup: |w| {
                w.write(EXTRA_TABLE, "name: Extra\ncolumns:\n  - { name: id, type: text }\nindexs: [id]\n");
                args(&["list"])
            },
            want: &["error: tables/extra.yaml: unknown field `indexs` (did you mean `indexes`?), expected one of `name`, `description`, `key`, `columns`, `indexes`, `keep_on_failure` at line 4 column 1"],
        },
        Case {
            name: "table schema: wrong type",
            setup: |w| {
                w.write(EXTRA_TABLE, "name: Extra\ncolumns: 3\n");
                args(&["list"])
            },
            want: &["error: tables/extra.yaml: columns: invalid type: integer `3`, expected a sequence"],
        },
        Case {
            name: "table schema: key not a column",
            setup: |w| {
                w.write(EXTRA_TABLE, "name: Extra\nkey: idd\ncolumns:\n  - { name: id, type: text }\n");
                args(&["list"])
            },
            want: &["error: tables/extra.yaml: key `idd` is not one of the columns (did you mean `id`?)"],
        },
        Case {
            name: "table schema: duplicate table name",
            setup: |w| {
                w.write(EXTRA_TABLE, "name: Probe Items\ncolumns:\n  - { name: id, type: text }\n");
                args(&["list"])
            },
            want: &["error: table `Probe Items` is defined twice: in tables/extra.yaml and in tables/probe-items.yaml (rename or remove one)"],
        },
        Case {
            name: "run: unknown flow, a close one exists",
            setup: |_| args(&["run", "ehco"]),
            want: &["error: no flow named `ehco` (did you mean `echo`?)"],
        },
        Case {
            name: "run: unknown flow, nothing close",
            setup: |_| args(&["run", "zzzzzz"]),
            want: &["error: no flow named `zzzzzz` (`flowhost list` shows the flows)"],
        },
        Case {
            name: "run: a flow whose manifest was refused",
            setup: |w| {
                w.write("flows/echo.yaml", "title: Echo\ngrants:\n  tables:\n    raed: [Probe Items]\n");
                args(&["run", "echo"])
            },
            want: &["error: flow `echo` is not loaded: flows/echo.yaml: grants.tables: unknown field `raed` (did you mean `read`?), expected `read` or `write` at line 4 column 5"],
        },
        Case {
            name: "run: a .wasm that is not WebAssembly",
            setup: |w| {
                w.write("flows/junk.wasm", "#!/bin/sh\necho not wasm\n");
                w.write("flows/junk.yaml", "title: Junk\n");
                args(&["run", "junk"])
            },
            want: &["error: flow `junk` is not loaded: flows/junk.wasm: not a WebAssembly file (a flow is a component built for wasm32-wasip2)"],
        },
        Case {
            name: "run: a core module, not a component",
            setup: |w| {
                std::fs::write(w.path("flows/core.wasm"), b"\0asm\x01\0\0\0").unwrap();
                w.write("flows/core.yaml", "title: Core\n");
                args(&["run", "core"])
            },
            want: &["error: flow `core` is not loaded: flows/core.wasm: a core WebAssembly module, not a component (build for wasm32-wasip2)"],
        },
        Case {
            name: "run: --input is not JSON",
            setup: |_| args(&["run", "echo", "--input", "{asaTeam: x}"]),
            want: &["error: --input is not valid JSON: key must be a string at line 1 column 2 (give one JSON value, e.g. '{\"asaTeam\": \"my-team\"}')"],
        },
        Case {
            name: "run: --input-file is missing",
            setup: |_| args(&["run", "echo", "--input-file", "input.json"]),
            want: &["error: input.json: cannot read the input file (fix the --input-file path): No such file or directory (os error 2)"],
        },
        Case {
            name: "run: --input-file is not JSON",
            setup: |w| {
                w.write("input.json", "{\"a\": 1,}\n");
                args(&["run", "echo", "--input-file", "input.json"])
            },
            want: &["error: input.json: --input-file is not valid JSON: trailing comma at line 1 column 9"],
        },
        Case {
            name: "db: a path under a regular file",
            setup: |w| {
                w.write("afile", "");
                args(&["--db", "afile/flowhost.db", "list"])
            },
            want: &["error: afile/flowhost.db: the database folder `afile` is a file, not a folder (fix the `db:` setting or --db)"],
        },
        Case {
            name: "db: a folder that cannot be created",
            setup: |_| args(&["--db", "/proc/flowhost-test/flowhost.db", "list"]),
            want: &["error: /proc/flowhost-test: cannot create the database folder: No such file or directory (os error 2) (fix the `db:` setting or --db)"],
        },
        Case {
            name: "db: a folder that is not writable",
            setup: |_| args(&["--db", "/proc/flowhost.db", "list"]),
            want: &["error: database folder `/proc` is not writable (", "SQLite must create `/proc/flowhost.db` and its -wal and -shm files there (fix the permissions or the `db:` setting)"],
        },
    ]
}

#[test]
fn bad_input_is_one_line_exit_2_and_writes_nothing() {
    let mut failures = Vec::new();
    for case in cases() {
        // Once in a world without a database, once with one.
        for with_db in [false, true] {
            let w = World::new();
            if with_db {
                let out = w.flowhost(&["run", "echo", "--input", "{\"n\": 1}"]);
                assert!(out.status.success(), "{}", text(&out.stderr));
                assert!(w.path("db/flowhost.db").exists());
            }
            let run_args = (case.setup)(&w);
            let before = w.snapshot();
            let out = w.flowhost(&run_args);
            let err = text(&out.stderr);
            let label = format!(
                "{} ({})",
                case.name,
                if with_db {
                    "existing database"
                } else {
                    "no database"
                }
            );
            if !with_db {
                println!("{:<45} {}", case.name, err.trim_end());
            }
            let mut problems = Vec::new();
            if out.status.code() != Some(2) {
                problems.push(format!("exit {:?}, not 2", out.status.code()));
            }
            if err.lines().count() != 1 || !err.starts_with("error: ") {
                problems.push("stderr is not one `error:` line".to_string());
            }
            for want in case.want {
                if !err.contains(want) {
                    problems.push(format!("stderr lacks {want:?}"));
                }
            }
            if !out.stdout.is_empty() {
                problems.push(format!("stdout not empty: {}", text(&out.stdout)));
            }
            let after = w.snapshot();
            if after != before {
                let changed: Vec<_> = after
                    .iter()
                    .filter(|(p, v)| before.get(*p) != Some(*v))
                    .map(|(p, _)| p.display().to_string())
                    .chain(
                        before
                            .keys()
                            .filter(|p| !after.contains_key(*p))
                            .map(|p| format!("{} (removed)", p.display())),
                    )
                    .collect();
                problems.push(format!("files written: {changed:?}"));
            }
            if !problems.is_empty() {
                failures.push(format!(
                    "{label}: {}\n    stderr: {err}",
                    problems.join("; ")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn a_bad_manifest_or_component_is_listed_and_the_other_flows_run() {
    let w = World::new();
    // Three flows that cannot load, each for its own reason; echo and probe are fine.
    w.write(
        "flows/typo.yaml",
        "title: Typo\ngrants:\n  tablez:\n    read: [Probe Items]\n",
    );
    std::fs::copy(w.path("flows/echo.wasm"), w.path("flows/typo.wasm")).unwrap();
    w.write(
        "flows/notable.yaml",
        "title: No table\ngrants:\n  tables:\n    read: [Environment Variables]\n    write: [Probe Item]\n",
    );
    std::fs::copy(w.path("flows/echo.wasm"), w.path("flows/notable.wasm")).unwrap();
    w.write("flows/junk.yaml", "title: Junk\n");
    w.write("flows/junk.wasm", "not a component");

    let out = w.flowhost(&["list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let list = text(&out.stdout);
    let not_loaded = common::not_loaded(&list);
    println!("{list}");
    assert_eq!(
        not_loaded,
        [
            "flows/junk.wasm: not a WebAssembly file (a flow is a component built for wasm32-wasip2)",
            "flows/notable.yaml:5: grants.tables.write: no table `Probe Item` in the table folders (did you mean `Probe Items`?)",
            "flows/typo.yaml: grants: unknown field `tablez` (did you mean `tables`?), expected one of `hosts`, `tables`, `flows`, `secrets`, `blobs`, `api` at line 3 column 3",
        ],
        "{list}"
    );
    // echo and probe are listed (with the built-in ASA flows, sorted by name).
    assert!(
        list.contains("\necho ") && list.contains("\nprobe "),
        "{list}"
    );
    // The same problems are logged as warnings, one line each.
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 3, "{stderr}");
    assert!(stderr.lines().all(|l| l.contains("WARN")), "{stderr}");

    // The others run.
    let out = w.flowhost(&["-q", "run", "echo", "--input", "{\"still\": \"works\"}"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("\"still\": \"works\""));
    let out = w.flowhost(&[
        "-q",
        "run",
        "probe",
        "--input",
        r#"{"op": "table", "fn": "insert", "table": "Probe Items", "row": {"id": "a"}}"#,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Asking for a broken one says why it is not there.
    let out = w.flowhost(&["-q", "run", "notable"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).trim_end(),
        "error: flow `notable` is not loaded: flows/notable.yaml:5: grants.tables.write: no table `Probe Item` in the table folders (did you mean `Probe Items`?)"
    );
}

/// A tmpfs mounted for the test, unmounted (lazily, so a straggler cannot block it) on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root, cannot mount a tmpfs".into());
        }
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                text(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes `path` until the file system is full; returns its size.
fn fill(path: &Path) -> u64 {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 4096];
    let mut n = 0u64;
    while f.write_all(&chunk).is_ok() {
        n += chunk.len() as u64;
    }
    let _ = f.sync_all();
    n
}

#[test]
fn a_full_disk_fails_the_run_with_sqlites_error_and_corrupts_nothing() {
    let w = World::new();
    let mnt = w.path("mnt");
    // A real full file system, not a simulated error: this needs a tmpfs, so root (or a
    // machine where `mount -t tmpfs` is allowed). Without it the test fails: it never passes
    // without running. (RLIMIT_FSIZE would need no root, but gives EFBIG on one file, which
    // SQLite reports as an I/O error: not the "disk is full" this promises.)
    let _tmpfs = Tmpfs::mount(&mnt, "1m").unwrap_or_else(|why| {
        panic!(
            "the full-disk test needs a 1 MiB tmpfs and could not mount one ({why}): run the \
             tests as root, or where `mount -t tmpfs` is allowed"
        )
    });
    w.config_text(
        &w.base_config()
            .replace("db: db/flowhost.db", "db: mnt/flowhost.db"),
    );
    let insert = |id: &str| {
        format!(
            r#"{{"op": "table", "fn": "insert", "table": "Probe Items", "row": {{"id": "{id}", "n": 1}}}}"#
        )
    };
    let out = w.flowhost(&["run", "probe", "--input", &insert("kept")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let export = || text(&w.flowhost(&["table", "export", "Probe Items"]).stdout);
    let rows_before = export();
    assert_eq!(rows_before.lines().count(), 1, "{rows_before}");

    // Entirely full: the database cannot even be opened.
    let filler = mnt.join("filler");
    let size = fill(&filler);
    let out = w.flowhost(&["run", "probe", "--input", &insert("lost")]);
    let err = text(&out.stderr);
    println!(
        "disk full at start: exit {:?}: {}",
        out.status.code(),
        err.trim_end()
    );
    assert!(matches!(out.status.code(), Some(1 | 2)), "{err}");
    assert!(
        err.contains("disk I/O error") || err.contains("database or disk is full"),
        "{err}"
    );
    assert!(err.contains("free space"), "{err}");

    // Room to open and start, not to write 1 MB: the run fails and rolls back.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap()
        .set_len(size.saturating_sub(256 << 10))
        .unwrap();
    let rows: Vec<serde_json::Value> = (0..500)
        .map(|i| serde_json::json!({"id": format!("big{i}"), "note": "x".repeat(2000)}))
        .collect();
    let big = serde_json::json!({"op": "table", "fn": "insert_many", "table": "Probe Items", "rows": rows});
    w.write("big.json", &big.to_string());
    let out = w.flowhost(&["run", "probe", "--input-file", "big.json"]);
    let err = text(&out.stderr);
    println!(
        "disk full in a run: exit {:?}: {}",
        out.status.code(),
        err.trim_end()
    );
    assert!(matches!(out.status.code(), Some(1 | 2)), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: "), "{err}");
    assert!(last.contains("database or disk is full"), "{err}");
    assert!(last.contains("mnt/flowhost.db"), "{err}");

    // With space again: nothing of the failed runs, the old row intact, both files sound.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(export(), rows_before);
    for db in ["flowhost.db", "flowhost-history.db"] {
        assert_eq!(integrity(&mnt.join(db)), "ok", "{db}");
    }
    let out = w.flowhost(&["run", "probe", "--input", &insert("after")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(export().lines().count(), 2);
}
