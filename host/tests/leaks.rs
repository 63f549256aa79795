//! Secrets never leak (issue 14, item 4), through the real `flowhost` binary:
//! - a secret with a space, `<`, `"`, `\`, `+` and a non-ASCII letter, used in a URL, in log
//!   lines and in an error, in every form it can take (raw, JSON-escaped, percent-encoded
//!   with `%20` or `+`, upper or lower hex, base64 standard inside a Basic credential and
//!   URL-safe), appears in no form in run history (`flowhost history show`), in the WARN
//!   line, in the error line, or anywhere on stderr at `RUST_LOG=debug` and `trace` (the
//!   "retrying" and "using the prefetched response" lines included);
//! - control characters in a flow's error and in a flow file's name reach the terminal
//!   escaped;
//! - a secrets file in dotenv form, or setting a name twice, is refused naming the file and
//!   the lines, never the values;
//! - a manifest symlinked to a system file is reported in `flowhost list` without its
//!   contents.

mod common;

use std::path::Path;
use std::process::Output;

use base64::Engine;
use common::{text, TestEnv};
use serde_json::{json, Value};

/// The secret: every character that has an escaped form, around a marker word.
const SECRET: &str = "Zq9 <hunter2>&\"x\\y+z/é~Kw";
/// Part of every textual form of [`SECRET`] (raw, JSON, percent-encoded).
const MARKER: &str = "hunter2";

/// `flowhost --config CONFIG ARGS` with `RUST_LOG=rust_log` and the secret in the environment.
async fn flowhost(config: &Path, args: &[&str], rust_log: &str) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_flowhost"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", rust_log)
        .env("FLOWHOST_SECRET_PROBE_TOKEN", SECRET)
        .output()
        .await
        .unwrap()
}

/// Percent-encoding of everything but RFC 3986's unreserved characters.
fn percent(s: &str, lower_hex: bool) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else if lower_hex {
                format!("%{b:02x}")
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Every form of the secret, named.
fn forms() -> Vec<(&'static str, String)> {
    let json = serde_json::to_string(SECRET).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let b64_url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    vec![
        ("raw", SECRET.to_string()),
        ("json", json[1..json.len() - 1].to_string()),
        ("percent", percent(SECRET, false)),
        ("percent-lower", percent(SECRET, true)),
        ("form", percent(SECRET, false).replace("%20", "+")),
        ("basic", b64.encode(format!("svc:{SECRET}"))),
        ("base64url", b64_url.encode(SECRET)),
    ]
}

/// What must not appear in any output: the marker (in every textual form) and the parts of
/// the base64 forms that depend on the secret alone.
fn needles() -> Vec<String> {
    let mut out = vec![MARKER.to_string()];
    for (name, form) in forms() {
        match name {
            "basic" => out.push(form[8..form.len() - 4].to_string()),
            "base64url" => out.push(form[2..form.len() - 4].to_string()),
            _ => {}
        }
    }
    out
}

fn assert_clean(what: &str, output: &str) {
    for needle in needles() {
        assert!(
            !output.contains(&needle),
            "{what} shows the secret ({needle}):\n{output}"
        );
    }
}

/// The run id in `error: probe failed (run N): ...`.
fn run_id(stderr: &str) -> String {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: probe failed (run "))
        .unwrap_or_else(|| panic!("no error line in {stderr}"));
    line["error: probe failed (run ".len()..]
        .split(')')
        .next()
        .unwrap()
        .to_string()
}

/// Answers 200 to every GET.
async fn ok_server() -> String {
    let app = axum::Router::new().fallback(|| async { "fine" });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_in_a_url_leaks_into_no_history_warn_line_or_debug_line() {
    let env = TestEnv::new();
    let config = env.config_file("");
    let origin = ok_server().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    // The secret raw in the query: the url crate percent-encodes its space, `<`, `>`, `"` and
    // `é` (so the error text carries `Zq9%20%3Chunter2%3E...`).
    let ok_url = format!("{origin}/page?key={SECRET}");
    let closed_url = format!("{closed}/x?key={SECRET}");
    let input = json!({"op": "steps", "steps": [
        {"op": "http", "method": "GET", "url": ok_url, "prefetch": true},
        {"op": "http", "method": "GET", "url": ok_url},
        {"op": "http", "method": "GET", "url": closed_url,
         "retry": {"attempts": 2, "initial_ms": 1, "max_ms": 2}},
    ]});
    let out = flowhost(
        &config,
        &["run", "probe", "--input", &input.to_string()],
        "debug",
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // The lines the issue found leaking were written, and the run's failure with them.
    for line in [
        "retrying",
        "using the prefetched response",
        " WARN ",
        "run failed",
    ] {
        assert!(stderr.contains(line), "no {line:?} in:\n{stderr}");
    }
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: probe failed"))
        .unwrap();
    assert!(
        error.contains(&format!("{closed}/x?key=[REDACTED]")),
        "the error keeps the URL, redacted: {error}"
    );
    assert_clean("stderr at RUST_LOG=debug", &stderr);
    assert_clean("stdout", &text(&out.stdout));

    let id = run_id(&stderr);
    let shown = flowhost(&config, &["history", "show", &id, "--json"], "warn").await;
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    let record: Value = serde_json::from_slice(&shown.stdout).unwrap();
    let err = record["error"].as_str().unwrap();
    assert!(err.contains("?key=[REDACTED]"), "{err}");
    assert!(record["input"].to_string().contains("[REDACTED]"));
    assert_clean("history show", &text(&shown.stdout));
    let listed = flowhost(&config, &["history", "--json"], "warn").await;
    assert_clean("history --json", &text(&listed.stdout));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_form_of_a_secret_is_redacted_at_every_level_and_controls_are_escaped() {
    let env = TestEnv::new();
    let config = env.config_file("");
    let all: String = forms()
        .iter()
        .map(|(name, form)| format!("{name}={form} "))
        .collect();
    let mut steps: Vec<Value> = ["trace", "debug", "info", "warn", "error"]
        .iter()
        .map(|level| json!({"op": "log", "level": level, "message": format!("{level}: {all}")}))
        .collect();
    let message = format!("failing with {all}\u{1b}[2J\rforged line");
    steps.push(json!({"op": "fail", "message": message}));
    let input = json!({"op": "steps", "steps": steps}).to_string();
    // Every level (Cranelift's and wasmtime's own trace lines are only noise here).
    let log = "trace,cranelift=warn,wasmtime=warn";
    let out = flowhost(&config, &["run", "probe", "--input", &input], log).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for level in ["TRACE", "DEBUG", " INFO", " WARN", "ERROR"] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(level) && l.contains("[REDACTED]")),
            "no redacted {level} line in:\n{stderr}"
        );
    }
    assert_clean("stderr at RUST_LOG=trace", &stderr);
    // Seven forms, each redacted whole in the error line (base64 keeps at most a few
    // characters of its surroundings).
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error: probe failed"))
        .unwrap();
    for name in ["raw", "json", "percent", "percent-lower", "form"] {
        assert!(
            error.contains(&format!("{name}=[REDACTED] ")),
            "{name}: {error}"
        );
    }
    // Control characters: escaped on the terminal, never raw.
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\r'),
        "{stderr:?}"
    );
    assert!(error.contains("\\u{1b}[2J\\rforged line"), "{error}");

    let id = run_id(&stderr);
    let shown = flowhost(&config, &["history", "show", &id], "warn").await;
    let shown = text(&shown.stdout);
    assert!(shown.contains("[REDACTED]"), "{shown}");
    assert_clean("history show", &shown);
}

/// Writes a 0600 secrets file with `text` and returns `flowhost list`'s output with it.
async fn list_with_secrets_file(text_of_file: &str) -> (Output, String) {
    let env = TestEnv::new();
    let path = env.dir.path().join("secrets.env");
    std::fs::write(&path, text_of_file).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut env = env;
    env.config.secrets_file = Some(path.clone());
    let config = env.config_file("");
    let out = flowhost(&config, &["list"], "warn").await;
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    (out, all.replace(&path.display().to_string(), "secrets.env"))
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_file_errors_name_file_and_lines_never_values() {
    let (out, all) = list_with_secrets_file(
        "# exported from the vault\nASA_KEY_ID=id-hunter2\nASA_KEY_SECRET=sec-hunter2\n",
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert_eq!(
        all.trim_end(),
        "error: secrets.env: line 2: expected `NAME: value`, found `ASA_KEY_ID=...` (expected `NAME: value` lines)"
    );

    let (out, all) =
        list_with_secrets_file("TOKEN: first-hunter2\nOTHER: x-hunter2\nTOKEN: second-hunter2\n")
            .await;
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert_eq!(
        all.trim_end(),
        "error: secrets.env: lines 1 and 3 both set `TOKEN`; keep one (expected `NAME: value` lines)"
    );

    // YAML that is not `NAME: value`: serde_yaml's message, without the value.
    let (out, all) = list_with_secrets_file("just one line of hunter2 text\n").await;
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(
        all.starts_with("error: secrets.env: invalid type: a string"),
        "{all}"
    );
    assert!(!all.contains(MARKER), "{all}");
}

#[tokio::test(flavor = "multi_thread")]
async fn flowhost_list_shows_no_file_contents_and_escapes_file_names() {
    let mut env = TestEnv::new();
    let flows = env.dir.path().join("flows");
    std::fs::create_dir(&flows).unwrap();
    let system = env.dir.path().join("passwd");
    std::fs::write(
        &system,
        "root:x:0:0:root:/root:/bin/bash\nsvc:x:999:999:hunter2 account:/srv:/bin/false\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&system, flows.join("evil.yaml")).unwrap();
        if Path::new("/etc/passwd").exists() {
            std::os::unix::fs::symlink("/etc/passwd", flows.join("passwd.yaml")).unwrap();
        }
    }
    std::fs::write(flows.join("bad\u{1b}[31m.yaml"), "title: x\n").unwrap();
    env.config.flows.insert(0, flows);
    let config = env.config_file("");
    let out = flowhost(&config, &["list"], "warn").await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let evil = stdout
        .lines()
        .find(|l| l.contains("evil.yaml"))
        .unwrap_or_else(|| panic!("evil.yaml not reported:\n{stdout}"));
    assert!(
        evil.ends_with("evil.yaml: invalid type: a string, expected struct RawManifest"),
        "{evil}"
    );
    assert!(
        !stdout.contains("root:") && !stdout.contains(MARKER),
        "{stdout}"
    );
    let bad = stdout
        .lines()
        .find(|l| l.contains("bad\\u{1b}[31m"))
        .unwrap_or_else(|| panic!("the bad name is not shown escaped:\n{stdout:?}"));
    assert!(bad.contains("is not a flow name"), "{bad}");
    assert!(!stdout.contains('\u{1b}'), "{stdout:?}");
}
