//! "Write your own flow" exactly as README.md tells a user: the steps are read from the
//! README's section (its code blocks), not from a copy, so the README cannot drift from what
//! works. `cargo new` makes the crate, the Cargo.toml lines the README names are added, the
//! README's `lib.rs` is built for wasm32-wasip2, copied with the README's manifest into a
//! flows folder, then listed and run by the already-built `flowhost` binary, and the run's
//! output must be the one the README shows. The host is not rebuilt.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{root, text, TestEnv};

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
    blocks
}

/// Splits `a = {…}, b = {…}` at its top-level commas.
fn top_level_items(text: &str) -> Vec<String> {
    let (mut items, mut depth, mut cur) = (Vec::new(), 0i32, String::new());
    for c in text.chars() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            ',' if depth == 0 => {
                items.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        items.push(cur.trim().to_string());
    }
    items
}

/// What the README's `# Cargo.toml: …` comment says to add, as TOML: its `[lib]` line and
/// its dependencies, with the SDK's `.../flows/sdk` made this checkout's.
fn cargo_toml_additions(setup: &str) -> String {
    let comment: Vec<&str> = setup
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('#'))
        .map(str::trim)
        .collect();
    let comment = comment.join(" ");
    let spec = comment
        .strip_prefix("Cargo.toml:")
        .unwrap_or_else(|| panic!("no `# Cargo.toml:` comment in {setup}"));
    let (lib, deps) = spec
        .split_once("; dependencies:")
        .unwrap_or_else(|| panic!("no `; dependencies:` in {spec}"));
    let lib = lib
        .trim()
        .strip_prefix("[lib]")
        .unwrap_or_else(|| panic!("no `[lib]` in {spec}"));
    let sdk = root().join("flows/sdk");
    let deps: Vec<String> = top_level_items(deps)
        .into_iter()
        .map(|d| d.replace(".../flows/sdk", sdk.to_str().unwrap()))
        .collect();
    format!("\n[lib]\n{}\n", lib.trim()) + &deps.join("\n") + "\n"
}

/// Adds `deps` under the `[dependencies]` header `cargo new` wrote, and `lib` at the end.
fn edit_cargo_toml(path: &Path, additions: &str) {
    let (lib, deps) = additions
        .split_once("\n[lib]\n")
        .map(|(_, rest)| rest.split_once('\n').unwrap())
        .unwrap();
    let toml = std::fs::read_to_string(path).unwrap();
    assert!(toml.contains("[dependencies]\n"), "{toml}");
    let toml = toml.replace("[dependencies]\n", &format!("[dependencies]\n{deps}"));
    std::fs::write(path, format!("{toml}\n[lib]\n{lib}\n")).unwrap();
}

/// The words of a shell command line, honouring single quotes, without its `# comment`.
fn words(line: &str) -> (Vec<String>, Option<String>) {
    let (mut out, mut cur, mut quoted, mut in_word) = (Vec::new(), String::new(), false, false);
    let mut chars = line.chars();
    let mut comment = None;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            '#' if !quoted && !in_word => {
                comment = Some(chars.as_str().trim().to_string());
                break;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    (out, comment)
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn must(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn a_new_flow_is_built_dropped_in_listed_and_run_as_the_readme_says() {
    let blocks = readme_blocks();
    let langs: Vec<&str> = blocks.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(langs, ["sh", "rust", "sh"], "the section's code blocks");
    let (setup, lib_rs, steps) = (&blocks[0].1, &blocks[1].1, &blocks[2].1);

    let env = TestEnv::new();
    let work = env.dir.path();
    // Block 1: `cargo new --lib hello && cd hello`, then the Cargo.toml lines it names.
    let first = setup.lines().next().unwrap();
    let (new, cd) = first.split_once("&&").unwrap();
    let (new, _) = words(new);
    assert_eq!(new[..2], ["cargo", "new"], "{first}");
    must(cargo().current_dir(work).args(&new[1..]));
    let (cd, _) = words(cd);
    assert_eq!(cd[0], "cd", "{first}");
    let krate = work.join(&cd[1]);
    edit_cargo_toml(&krate.join("Cargo.toml"), &cargo_toml_additions(setup));
    // Block 2: the flow's code.
    std::fs::write(krate.join("src/lib.rs"), lib_rs).unwrap();

    // Block 3, line by line. The README's flows folder is `~/flows`; here it is a folder of
    // the test's own, and `flowhost` is the built binary on the test's database, with the
    // built-in tables only.
    let flows = work.join("my-flows");
    std::fs::create_dir_all(&flows).unwrap();
    let to_flows = |p: &str| -> PathBuf {
        assert!(
            p.starts_with("~/flows"),
            "the README's flows folder is ~/flows: {p}"
        );
        let name = p.trim_end_matches('/').rsplit('/').next().unwrap();
        if p.ends_with('/') || p == "~/flows" {
            flows.clone()
        } else {
            flows.join(name)
        }
    };
    // `~/flows` as the shell would expand it (to the test's folder).
    let expand = |w: &[String]| -> Vec<String> {
        w.iter()
            .map(|a| match a.starts_with("~/") {
                true => to_flows(a).display().to_string(),
                false => a.clone(),
            })
            .collect()
    };
    // The flows' own target folder: the SDK and serde are compiled already (or once).
    let target = root().join("flows/target");
    let flowhost = |args: &[String]| {
        must(
            Command::new(env!("CARGO_BIN_EXE_flowhost"))
                .arg("--db")
                .arg(work.join("f.db"))
                .arg("--state-dir")
                .arg(work.join("state"))
                .args(expand(args)),
        )
    };
    let mut lines = steps.lines();
    let (mut built, mut ran, mut listed) = (false, false, false);
    while let Some(line) = lines.next() {
        let (w, comment) = words(line);
        match w.first().map(String::as_str) {
            Some("cargo") => {
                must(
                    cargo()
                        .current_dir(&krate)
                        .args(&w[1..])
                        .env("CARGO_TARGET_DIR", &target),
                );
                built = true;
            }
            Some("cp") => {
                let from = w[1].strip_prefix("target/").unwrap();
                let to = to_flows(&w[2]);
                let to = if to.is_dir() {
                    to.join(Path::new(from).file_name().unwrap())
                } else {
                    to
                };
                std::fs::copy(target.join(from), to).unwrap();
            }
            Some("cat") => {
                // `cat > FILE <<'END'`: the lines up to END are the file.
                let end = line.rsplit("<<").next().unwrap().trim().trim_matches('\'');
                let file = to_flows(&w[2]);
                let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != end).collect();
                std::fs::write(file, body.join("\n") + "\n").unwrap();
            }
            Some("flowhost") if w.iter().any(|a| a == "list") => {
                let list = flowhost(&w[1..]);
                // "hello is there, with its grants".
                assert!(
                    list.contains("hello") && list.contains("read: Execution Log"),
                    "{list}"
                );
                listed = true;
            }
            Some("flowhost") => {
                let got: serde_json::Value = serde_json::from_str(&flowhost(&w[1..])).unwrap();
                let want: serde_json::Value =
                    serde_json::from_str(&comment.expect("the expected output, as a comment"))
                        .unwrap();
                assert_eq!(got, want, "{line}");
                ran = true;
            }
            None => {}
            Some(other) => panic!("the README has a step this test does not know: {other}: {line}"),
        }
    }
    assert!(built && listed && ran, "README steps: {steps}");
}
