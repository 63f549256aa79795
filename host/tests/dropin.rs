//! "Write your own flow" exactly as README.md tells a user. The steps are read from the README's
//! section (its code blocks), not from a copy, so the README cannot drift from what works.
//!
//! - The shell block runs as written, in bash, with a fresh `HOME` (so `~/flows` and the state
//!   folder are the test's) and the built `flowhost` first on PATH. The last command's output
//!   must be the JSON its `# …` comment shows.
//! - Each language's snippet (Python, JavaScript, Rust) replaces the source of a project
//!   `flowhost new` made in that language, gets the same grant, is built with `flowhost build
//!   --install` and run with the same input: the output must be the same JSON.
//!
//! The host is not rebuilt. The Python and JavaScript builds need componentize-py and Node.js
//! with npm (`cargo xtask test` installs the first and checks the second); the JavaScript
//! build's `npm install` and the Rust build's crates come from their registries.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{root, text};
use serde_json::Value;

const SECTION: &str = "### Write your own flow";

/// The fenced code blocks (language, text) of the README's "Write your own flow" section.
fn readme_blocks() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find(SECTION)
        .unwrap_or_else(|| panic!("README.md has no `{SECTION}` section"));
    let section = &readme[start + SECTION.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if let Some(lang) = line.strip_prefix("```") {
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            blocks.push((lang.trim().to_string(), body.join("\n") + "\n"));
        }
    }
    let langs: Vec<&str> = blocks.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        langs,
        ["sh", "python", "js", "rust"],
        "the section's code blocks"
    );
    blocks
}

/// The shell block split into its set-up (every line before the last command), the last
/// command, and the JSON its `# …` comment line below says it prints.
fn shell_steps() -> (String, String, Value) {
    let blocks = readme_blocks();
    let lines: Vec<&str> = blocks[0].1.lines().collect();
    let last = lines
        .iter()
        .rposition(|l| l.starts_with("flowhost ") && l.contains(" run "))
        .expect("the block ends with a `flowhost … run …` command");
    let expected = lines
        .get(last + 1)
        .and_then(|l| l.strip_prefix("# "))
        .expect("the run's output, as a `# …` comment line below it");
    let expected = serde_json::from_str(expected).expect("the comment is JSON");
    (
        lines[..last].join("\n") + "\n",
        lines[last].to_string(),
        expected,
    )
}

/// `bash -euo pipefail -c SCRIPT` in `dir` with `home` as HOME and the built `flowhost` first
/// on PATH; fails the test with its output when it fails.
fn bash(dir: &Path, home: &Path, script: &str) -> Output {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_flowhost"));
    let path = std::env::join_paths(std::iter::once(bin.parent().unwrap().to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    // The toolchains' own homes stay the machine's (rustup's toolchains, cargo's and npm's
    // caches): only flowhost's and the flows folder's `~` is the fresh one.
    let real_home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let keep = |var: &str, default: &str| {
        std::env::var_os(var).unwrap_or_else(|| real_home.join(default).into_os_string())
    };
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("CARGO_HOME", keep("CARGO_HOME", ".cargo"))
        .env("RUSTUP_HOME", keep("RUSTUP_HOME", ".rustup"))
        .env("npm_config_cache", keep("npm_config_cache", ".npm"))
        .env("HOME", home)
        .env("PATH", path)
        .env_remove("FLOWHOST_CONFIG")
        .env_remove("FLOWHOST_STATE_DIR")
        .env_remove("XDG_STATE_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}\n{}\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

#[test]
fn the_readme_shell_steps_go_from_nothing_to_a_running_python_flow() {
    let (setup, run, expected) = shell_steps();
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    bash(work.path(), &home, &setup);
    // The flow landed where the README says, and state stayed in the fresh HOME.
    assert!(home.join("flows/hello.wasm").is_file());
    assert!(home.join("flows/hello.yaml").is_file());
    let out = bash(work.path(), &home, &run);
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got, expected, "{run}");
}

/// Builds the README's snippet for `lang` as flow `name` and runs it as the shell block runs
/// its flow; the output must be the shell block's.
fn snippet_runs_as_the_shell_steps_show(lang: &str, block: usize, name: &str, source: &str) {
    let (_, run, expected) = shell_steps();
    let snippet = readme_blocks()[block].1.clone();
    let input = run
        .split_once("--input ")
        .map(|(_, i)| i.trim())
        .expect("the run has an --input");
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    std::fs::create_dir_all(home.join("flows")).unwrap();
    bash(
        work.path(),
        &home,
        &format!("flowhost new {name} --lang {lang} >/dev/null"),
    );
    std::fs::write(work.path().join(name).join(source), snippet).unwrap();
    let yaml = work.path().join(name).join(format!("{name}.yaml"));
    let manifest = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(
        &yaml,
        manifest + "grants:\n  tables:\n    read: [Execution Log]\n",
    )
    .unwrap();
    let mut build = format!("flowhost build {name} --install ~/flows");
    if lang == "rust" {
        // Shared with scaffold.rs: the SDK's dependencies are compiled once.
        let target = root().join("target/flowhost-test-scaffold-rust");
        build = format!("CARGO_TARGET_DIR='{}' {build}", target.display());
    }
    bash(work.path(), &home, &build);
    let out = bash(
        work.path(),
        &home,
        &format!("flowhost --flows ~/flows run {name} --input {input}"),
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got, expected, "the README's {lang} snippet");
}

#[test]
fn the_readme_python_snippet_gives_the_shown_output() {
    snippet_runs_as_the_shell_steps_show("python", 1, "hello_py", "app.py");
}

#[test]
fn the_readme_javascript_snippet_gives_the_shown_output() {
    snippet_runs_as_the_shell_steps_show("javascript", 2, "hello_js", "app.js");
}

#[test]
fn the_readme_rust_snippet_gives_the_shown_output() {
    snippet_runs_as_the_shell_steps_show("rust", 3, "hello_rs", "src/lib.rs");
}
