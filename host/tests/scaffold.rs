//! `flowhost new` and `flowhost build` through the real binary: the layout each language gets,
//! what `new` refuses, the missing-tool messages, a component importing what the host lacks,
//! and Rust and Python flows scaffolded, built, refused a table they were not granted, granted
//! it, installed and run (from `--flows` and dropped into a running `serve`).
//!
//! Builds are slow (componentize-py, cargo with LTO): each project is built once per test
//! binary ([`OnceLock`] fixtures); the Rust one into a target folder under the workspace's
//! `target/`, shared across runs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::{error_line, root, text};

/// `flowhost ARGS` in `cwd`, with `RUST_LOG` unset.
fn fh(cwd: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_flowhost"));
    c.current_dir(cwd).args(args).env_remove("RUST_LOG");
    c
}

fn out(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

fn must(cmd: &mut Command) -> String {
    let o = out(cmd);
    assert!(
        o.status.success(),
        "{cmd:?}: {}\n{}\n{}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// Every file under `dir`, relative to it, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    v.sort();
    v
}

/// Uncomments the grant the template's table read needs in `project/NAME.yaml`.
fn grant_execution_log(project: &Path, name: &str) {
    let p = project.join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&p).unwrap();
    let mut done = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|l| match l {
            "# grants:" | "#   tables:" => {
                done += 1;
                l[2..].to_string()
            }
            l if l.starts_with("#     read: [Execution Log]") => {
                done += 1;
                l[2..].to_string()
            }
            l => l.to_string(),
        })
        .collect();
    assert_eq!(done, 3, "the grant's three lines in {}", p.display());
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
}

/// `flowhost --state-dir STATE --flows FLOWS run NAME --input '{"x":1}'`.
fn run_flow(state: &Path, flows: &Path, name: &str) -> Output {
    out(fh(state, &["--flows"])
        .arg(flows)
        .arg("--state-dir")
        .arg(state)
        .args(["run", name, "--input", r#"{"x":1}"#]))
}

/// The run of `name` from `flows` must fail, refused the Execution Log.
fn assert_refused(flows: &Path, name: &str) {
    let state = tempfile::tempdir().unwrap();
    let o = run_flow(state.path(), flows, name);
    let err = error_line(&text(&o.stderr));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        err.contains("access-denied: ")
            && err.contains("may not read table `Execution Log` (grants.tables.read)"),
        "{err}"
    );
}

/// The run of `name` from `flows` must succeed with the template's output.
fn assert_echoes(flows: &Path, name: &str) {
    let state = tempfile::tempdir().unwrap();
    let o = run_flow(state.path(), flows, name);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let got: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // A fresh database: the Execution Log has no rows.
    assert_eq!(got, serde_json::json!({"input": {"x": 1}, "log_rows": 0}));
}

#[test]
fn new_writes_each_languages_layout_and_its_manifest_loads() {
    let d = tempfile::tempdir().unwrap();
    let want: [(&str, &[&str]); 3] = [
        (
            "rust",
            &[
                "Cargo.toml",
                "src/lib.rs",
                "vendor/flowhost-sdk/Cargo.toml",
                "vendor/flowhost-sdk/src/lib.rs",
                "vendor/flowhost-sdk/src/tables.rs",
            ],
        ),
        ("python", &["app.py", "flowhost_sdk/__init__.py"]),
        (
            "javascript",
            &["app.js", "package.json", "flowhost.js", "flowhost.d.ts"],
        ),
    ];
    for (lang, files) in want {
        let name = format!("flow_{lang}");
        let dir = d.path().join(lang);
        let said = must(fh(d.path(), &["new", &name, "--lang", lang, "--dir"]).arg(&dir));
        assert!(said.contains("read: [Execution Log]"), "{said}");
        assert!(
            said.contains(&format!(
                "flowhost build {} --install FOLDER",
                dir.display()
            )),
            "{said}"
        );
        let have = tree(&dir);
        for f in files
            .iter()
            .chain(&[".gitignore", "wit/flow.wit"])
            .map(|f| f.to_string())
            .chain([format!("{name}.yaml")])
        {
            assert!(have.contains(&f), "{lang}: no {f} in {have:?}");
        }
        for f in &have {
            let body = std::fs::read_to_string(dir.join(f)).unwrap();
            assert!(
                !body.contains("{{name}}"),
                "{lang}: {f} still has {{{{name}}}}"
            );
        }
        let source = std::fs::read_to_string(dir.join(files[0])).unwrap()
            + &std::fs::read_to_string(dir.join(format!("{name}.yaml"))).unwrap();
        assert!(
            source.contains(&name),
            "{lang}: the name is not in the files"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("wit/flow.wit")).unwrap(),
            std::fs::read_to_string(root().join("wit/flow.wit")).unwrap()
        );
        // The manifest loads: the only complaint is the component not built yet.
        let listed = must(
            fh(d.path(), &["--flows"])
                .arg(&dir)
                .arg("--state-dir")
                .arg(d.path().join("state"))
                .arg("list"),
        );
        let yaml = dir.join(format!("{name}.yaml"));
        assert_eq!(
            common::not_loaded(&listed),
            [format!(
                "{}: no {} beside the manifest",
                yaml.display(),
                yaml.with_extension("wasm").display()
            )],
            "{lang}"
        );
    }
}

#[test]
fn new_refuses_a_bad_name_an_unknown_language_and_a_folder_in_use() {
    let d = tempfile::tempdir().unwrap();
    let used = d.path().join("used");
    std::fs::create_dir(&used).unwrap();
    std::fs::write(used.join("keep.txt"), "mine").unwrap();
    let cases: [(&[&str], String); 4] = [
        (
            &["new", "bad name", "--lang", "python"],
            "error: `bad name` is not a flow name (use letters, digits, - and _)".into(),
        ),
        (
            &["new", "a/b", "--lang", "rust"],
            "error: `a/b` is not a flow name (use letters, digits, - and _)".into(),
        ),
        (
            &["new", "ok", "--lang", "go"],
            "error: unknown language `go` (use rust, python or javascript)".into(),
        ),
        (
            &["new", "ok", "--lang", "rust", "--dir", "used"],
            "error: used: exists and is not empty (choose another --dir, or empty it)".into(),
        ),
    ];
    for (args, want) in cases {
        let o = out(&mut fh(d.path(), args));
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert_eq!(error_line(&text(&o.stderr)), want, "{args:?}");
        assert_eq!(text(&o.stderr).lines().count(), 1, "{}", text(&o.stderr));
        assert_eq!(
            tree(d.path()),
            ["used/keep.txt"],
            "{args:?} wrote something"
        );
    }
}

/// A folder of symlinks to the programs in `keep` (found on this PATH), as a PATH value.
fn path_with(dir: &Path, keep: &[&str]) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let path = std::env::var_os("PATH").unwrap();
    for prog in keep {
        let found = std::env::split_paths(&path)
            .map(|p| p.join(prog))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("{prog} is not on PATH"));
        std::os::unix::fs::symlink(found, bin.join(prog)).unwrap();
    }
    bin
}

#[test]
fn build_without_the_languages_tools_says_what_to_install() {
    let d = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str], &str); 4] = [
        (
            "python",
            &[],
            "error: building a Python flow needs componentize-py, which is not on PATH: \
             install it with `python3 -m pip install componentize-py==0.25.1`",
        ),
        (
            "javascript",
            &[],
            "error: building a JavaScript flow needs Node.js 20+ with npm, and `node` is not \
             on PATH: install Node.js 20 or newer with npm",
        ),
        (
            "javascript",
            &["node"],
            "error: building a JavaScript flow needs Node.js 20+ with npm, and `npm` is not \
             on PATH: install npm (it comes with Node.js 20+)",
        ),
        (
            "rust",
            &[],
            "error: building a Rust flow needs cargo, which is not on PATH: install Rust with \
             rustup (https://rustup.rs), then `rustup target add wasm32-wasip2`",
        ),
    ];
    for (i, (lang, keep, want)) in cases.into_iter().enumerate() {
        let case = d.path().join(format!("case{i}"));
        std::fs::create_dir(&case).unwrap();
        let dir = case.join("p");
        must(fh(&case, &["new", "p", "--lang", lang, "--dir"]).arg(&dir));
        let before = tree(&dir);
        let o = out(fh(&case, &["build"])
            .arg(&dir)
            .env("PATH", path_with(&case, keep)));
        assert_eq!(
            o.status.code(),
            Some(2),
            "{lang} {keep:?}: {}",
            text(&o.stderr)
        );
        assert_eq!(error_line(&text(&o.stderr)), want);
        assert_eq!(tree(&dir), before, "{lang}: the build wrote something");
    }
}

/// The Python project `hello_py`, scaffolded and built once (no grant), with `--install` into
/// `denied/`: (temp dir, project, the install folder).
fn python_built() -> &'static (tempfile::TempDir, PathBuf, PathBuf) {
    static BUILT: OnceLock<(tempfile::TempDir, PathBuf, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let project = d.path().join("hello_py");
        must(&mut fh(d.path(), &["new", "hello_py", "--lang", "python"]));
        let denied = d.path().join("denied");
        std::fs::create_dir(&denied).unwrap();
        let said = must(fh(d.path(), &["build", "hello_py", "--install"]).arg(&denied));
        assert!(said.contains("installed hello_py into"), "{said}");
        (d, project, denied)
    })
}

#[test]
fn a_python_flow_is_refused_the_table_until_granted_then_runs() {
    let (d, project, denied) = python_built();
    assert!(project.join("dist/hello_py.wasm").is_file());
    assert_eq!(tree(denied), ["hello_py.wasm", "hello_py.yaml"]);
    assert_refused(denied, "hello_py");
    // The grant added to the manifest (the component is the same).
    let granted = d.path().join("granted");
    common::copy_flows(denied, &granted, |_| true);
    grant_execution_log(&granted, "hello_py");
    assert_echoes(&granted, "hello_py");
}

#[test]
fn a_component_importing_what_the_host_lacks_fails_the_build_and_the_run_readably() {
    let (_d, project, _) = python_built();
    let d = tempfile::tempdir().unwrap();
    let copy = d.path().join("hello_py");
    std::fs::create_dir_all(copy.join("wit")).unwrap();
    for f in ["hello_py.yaml", "app.py"] {
        std::fs::copy(project.join(f), copy.join(f)).unwrap();
    }
    // The contract at a version this host does not have.
    let wit = std::fs::read_to_string(project.join("wit/flow.wit")).unwrap();
    let ours = flowhost::engine::contract_package();
    let theirs = "flowhost:flow@9.0.0";
    std::fs::write(copy.join("wit/flow.wit"), wit.replace(ours, theirs)).unwrap();
    let o = out(fh(d.path(), &["build"]).arg(&copy));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = error_line(&text(&o.stderr));
    let wasm = copy.join("dist/hello_py.wasm");
    let want_start = format!("error: {}: imports `flowhost:flow/", wasm.display());
    let want_end = format!(
        "@9.0.0`, which flowhost does not provide (it provides {ours}: build the flow against \
         the host's wit/flow.wit)"
    );
    assert!(
        err.starts_with(&want_start) && err.ends_with(&want_end),
        "{err}"
    );
    // The host says the same when the component is run anyway.
    let flows = d.path().join("flows");
    std::fs::create_dir(&flows).unwrap();
    std::fs::copy(&wasm, flows.join("hello_py.wasm")).unwrap();
    std::fs::copy(copy.join("hello_py.yaml"), flows.join("hello_py.yaml")).unwrap();
    let o = run_flow(d.path(), &flows, "hello_py");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = error_line(&text(&o.stderr));
    assert!(
        err.contains(&format!(
            "{}: imports `flowhost:flow/",
            flows.join("hello_py.wasm").display()
        )) && err.ends_with(&want_end),
        "{err}"
    );
}

/// Where the scaffolded Rust flows are built: shared across test runs, so only the first
/// downloads and compiles wit-bindgen and serde.
fn rust_target() -> PathBuf {
    root().join("target/flowhost-test-scaffold-rust")
}

/// The Rust project `hello_rs`, scaffolded and built once with no grant (its component and
/// manifest then copied into `denied/`), then given the Execution Log grant and a 1s schedule
/// in its manifest: (temp dir, project, denied).
fn rust_built() -> &'static (tempfile::TempDir, PathBuf, PathBuf) {
    static BUILT: OnceLock<(tempfile::TempDir, PathBuf, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let project = d.path().join("hello_rs");
        must(&mut fh(d.path(), &["new", "hello_rs", "--lang", "rust"]));
        let said =
            must(fh(d.path(), &["build", "hello_rs"]).env("CARGO_TARGET_DIR", rust_target()));
        assert!(said.contains("built hello_rs/dist/hello_rs.wasm"), "{said}");
        let denied = d.path().join("denied");
        common::copy_flows(&project.join("dist"), &denied, |_| true);
        std::fs::copy(project.join("hello_rs.yaml"), denied.join("hello_rs.yaml")).unwrap();
        grant_execution_log(&project, "hello_rs");
        let yaml = project.join("hello_rs.yaml");
        let text = std::fs::read_to_string(&yaml).unwrap();
        std::fs::write(&yaml, text + "schedule:\n  every: 1s\n").unwrap();
        (d, project, denied)
    })
}

/// `flowhost build . --install FOLDER` in the Rust project (one at a time: two builds of one
/// project would write its `dist/` at once).
fn build_install(project: &Path, folder: &Path) {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let said = must(
        fh(project, &["build", ".", "--install"])
            .arg(folder)
            .env("CARGO_TARGET_DIR", rust_target()),
    );
    assert!(said.contains("installed hello_rs into"), "{said}");
}

#[test]
fn a_rust_flow_is_refused_the_table_until_granted_then_runs() {
    let (d, project, denied) = rust_built();
    assert_refused(denied, "hello_rs");
    let installed = d.path().join("installed");
    std::fs::create_dir(&installed).unwrap();
    build_install(project, &installed);
    assert_eq!(tree(&installed), ["hello_rs.wasm", "hello_rs.yaml"]);
    assert_echoes(&installed, "hello_rs");
}

#[test]
fn a_flow_installed_into_a_folder_serve_watches_appears_and_runs() {
    let (_d, project, _) = rust_built();
    let (env, flows) = common::env_with_flows();
    let config = env.config_file("");
    let mut serve = common::process::Flowhost::spawn(&config, &["serve"], &[]);
    serve.wait_line("serve started", |l| l.contains("serving scheduled flows"));
    build_install(project, &flows);
    serve.wait_line("the reload", |l| l.contains("reloaded the flow folders"));
    serve.wait_line("a run of hello_rs", |l| {
        l.contains("run ok") && l.contains("hello_rs")
    });
    let (status, lines) = serve.stop();
    assert!(status.success(), "{}", lines.join("\n"));
}
