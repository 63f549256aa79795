//! Secrets stay secret: the ASA backfill and its error paths, run through the `flowhost`
//! binary at the most verbose log level, leave no secret value (nor the bearer token the
//! simulator issues) in the database files, the run history, the logs or any error message.
//! And a secrets file that others can read is refused.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::asa::{asa_with, stored_ids};
use common::{error_line, text, TestEnv};

const HEC_TOKEN: &str = "hec-Zq7Kx9-never-print-f00dfeed";
/// What `FLOWHOST_SECRET_ASA_KEY_SECRET` is set to for the wrong-key run.
const WRONG_KEY_SECRET: &str = "wrong-key-secret-Vb81Tq0sZ";

/// `flowhost -vvv ARGS` with `RUST_LOG=trace` and `env` added; the output has stdout and
/// stderr together.
async fn flowhost(config: &Path, args: &[&str], env: &[(&str, &str)]) -> (Output, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_flowhost"));
    cmd.env_clear()
        .env("RUST_LOG", "trace")
        .arg("--config")
        .arg(config)
        .arg("-vvv")
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    (out, all)
}

/// The last lines of a long log, for assertion messages.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// `s` percent-encoded as a query value (how a secret would look in a URL).
fn percent_encoded(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Every file under `dir`, but the secrets file itself.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != "secrets.yaml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_values_appear_nowhere() {
    let started = std::time::Instant::now();
    // O20 posts to a port this test holds (bound, never listening: connections are refused,
    // and no other process can take the port meanwhile).
    let (_held, closed) = common::closed_port();
    let a = asa_with(3000, 500, &[("HEC_TOKEN", HEC_TOKEN)], |_| {}).await;
    let origin = a.sim.base_url();
    let config = a.config_granting_sim(&[], &format!("  O20: {{hosts: [\"{closed}\"]}}\n"));
    // Compile every flow now (into the shared cache), so that the trace-level runs below log
    // what the flows do rather than Cranelift's work.
    for f in a.rt.registry().iter() {
        f.prepare(&a.rt.engine).unwrap();
    }

    // A bearer token of our own: tokens differ per issue, their JOSE header does not.
    let token: serde_json::Value = reqwest::Client::new()
        .post(format!("{origin}/v1/teams/{}/service_token", a.sim.team()))
        .json(&serde_json::json!({"key_id": a.sim.key_id(), "key_secret": a.sim.key_secret()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["bearer_token"].as_str().unwrap().to_string();
    let token_header = token.split('.').next().unwrap().to_string();
    assert!(token_header.len() > 20, "{token}");

    let mut outputs: Vec<(String, String)> = Vec::new();
    // The backfill: 3000 events in pages of 500.
    let (out, all) = flowhost(&config, &["run", "M10", "--until-idle"], &[]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(stored_ids(&a.rt).len(), 3000);
    assert!(
        all.contains("TRACE") && all.contains("DEBUG"),
        "not at the most verbose level"
    );
    outputs.push(("run M10 --until-idle".into(), all));

    // O20 against a closed port: fails, with the connection error.
    let hec = format!("{closed}/services/collector/event");
    let input = serde_json::json!({ "hecUrl": hec }).to_string();
    let (out, all) = flowhost(&config, &["run", "U02", "--input", &input], &[]).await;
    assert!(out.status.success(), "{}", tail(&all));
    outputs.push(("run U02".into(), all));
    let (out, all) = flowhost(&config, &["run", "O20", "--input", "{\"batch\": 100}"], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", tail(&all));
    let err = error_line(&text(&out.stderr));
    assert!(err.starts_with("error: O20 failed"), "{err}");
    println!("O20 against a closed port: {err}");
    outputs.push(("run O20 (closed port)".into(), all));

    // The wrong key secret: U00's 401 fails M10 (and U00 run alone).
    let wrong = [("FLOWHOST_SECRET_ASA_KEY_SECRET", WRONG_KEY_SECRET)];
    for flow in ["M10", "U00"] {
        let (out, all) = flowhost(&config, &["run", flow], &wrong).await;
        assert_eq!(out.status.code(), Some(1), "{}", tail(&all));
        let err = error_line(&text(&out.stderr));
        assert!(err.contains("401"), "{err}");
        println!("{flow} with a wrong key secret: {err}");
        outputs.push((format!("run {flow} (wrong key secret)"), all));
    }

    // The whole run history, as the CLI shows it.
    let (out, all) = flowhost(&config, &["history", "--json", "--limit", "10000"], &[]).await;
    assert!(out.status.success(), "{all}");
    let ids: Vec<i64> = text(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert!(ids.len() >= 10, "{ids:?}");
    let mut history = all;
    for id in &ids {
        let (out, all) = flowhost(&config, &["history", "show", &id.to_string()], &[]).await;
        assert!(out.status.success(), "{all}");
        history.push_str(&all);
    }
    assert!(history.contains("401"), "the failed runs are in history");
    outputs.push((
        "history --json and history show of every run".into(),
        history,
    ));

    // Every file the runs wrote: both databases and their -wal/-shm, the blob stores.
    let files = files_under(a.env.dir.path());
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for db in ["flowhost.db", "flowhost-history.db"] {
        assert!(names.iter().any(|n| n == db), "{names:?}");
    }
    let mut haystacks: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|p| (p.display().to_string(), std::fs::read(p).unwrap()))
        .collect();
    haystacks.extend(outputs.into_iter().map(|(k, v)| (k, v.into_bytes())));

    // The search sees what the runs stored: the team, an event id, a log line.
    let found = |needle: &str, in_source: &str| {
        haystacks.iter().any(|(source, bytes)| {
            source.contains(in_source)
                && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        })
    };
    let event = a.sim.event_ids()[1234].clone();
    assert!(found(a.sim.team(), "flowhost.db"));
    assert!(found(&event, "flowhost.db"));
    assert!(found(" events, ", "history"));
    assert!(found(" events, ", "run M10 --until-idle"));

    let mut needles: Vec<(&str, String)> = vec![
        ("ASA_KEY_ID", a.sim.key_id().to_string()),
        ("ASA_KEY_SECRET", a.sim.key_secret().to_string()),
        ("HEC_TOKEN", HEC_TOKEN.to_string()),
        ("the wrong key secret", WRONG_KEY_SECRET.to_string()),
        ("a bearer token's header", token_header),
        ("our bearer token", token),
        ("the field bearer_token", "bearer_token".to_string()),
    ];
    for (what, v) in needles.clone() {
        let enc = percent_encoded(&v);
        if enc != v {
            needles.push((what, enc));
        }
    }
    let mut hits = Vec::new();
    for (source, bytes) in &haystacks {
        for (what, needle) in &needles {
            let n = bytes
                .windows(needle.len())
                .filter(|w| *w == needle.as_bytes())
                .count();
            if n > 0 {
                hits.push(format!("{what} ({needle}) {n}x in {source}"));
            }
        }
    }
    let searched: usize = haystacks.iter().map(|(_, b)| b.len()).sum();
    println!(
        "searched {} sources ({searched} bytes: {}) for {} values: {} hits",
        haystacks.len(),
        haystacks
            .iter()
            .map(|(s, b)| format!("{} {}", s.rsplit('/').next().unwrap_or(s), b.len()))
            .collect::<Vec<_>>()
            .join(", "),
        needles.len(),
        hits.len()
    );
    assert!(hits.is_empty(), "secrets found:\n{}", hits.join("\n"));
    println!("took {:?}", started.elapsed());
}

/// A Splunk HEC stand-in that refuses every token and echoes it in its answer, as a server
/// may: the failed run's error text then holds the secret.
async fn echoing_hec() -> String {
    async fn refuse(headers: axum::http::HeaderMap) -> (axum::http::StatusCode, String) {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let body = serde_json::json!({"text": format!("Invalid token: {auth}"), "code": 4});
        (axum::http::StatusCode::FORBIDDEN, body.to_string())
    }
    let app = axum::Router::new().route("/services/collector/event", axum::routing::post(refuse));
    common::serve(app).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_in_a_failed_runs_error_is_redacted_in_history_and_on_stderr() {
    let origin = echoing_hec().await;
    let a = asa_with(200, 100, &[("HEC_TOKEN", HEC_TOKEN)], |_| {}).await;
    common::asa::drain(&a.rt).await;
    let hec = format!("{origin}/services/collector/event");
    common::ok(&a.rt, "U02", serde_json::json!({ "hecUrl": hec })).await;
    let config = a
        .env
        .config_file(&format!("grants:\n  O20: {{ hosts: [\"{origin}\"] }}\n"));

    let (out, all) = flowhost(&config, &["run", "O20", "--input", "{\"batch\": 100}"], &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", tail(&all));
    let err = error_line(&text(&out.stderr));
    // The server's answer is in the error, with the token blanked out.
    assert!(err.starts_with("error: O20 failed"), "{}", tail(&all));
    assert!(err.contains("403"), "{err}");
    assert!(err.contains("Invalid token: Splunk [REDACTED]"), "{err}");
    assert!(
        !all.contains(HEC_TOKEN),
        "the token on stdout or stderr:\n{}",
        tail(&all)
    );

    // History holds the same redacted error, in the record and as the CLI shows it.
    let runs = a.rt.history.list(Some("O20"), 10).unwrap();
    let failed = runs
        .iter()
        .find(|r| r.status == flowhost::history::RunStatus::Error)
        .unwrap_or_else(|| panic!("no failed O20 run in history: {runs:?}"));
    let error = failed.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("Invalid token: Splunk [REDACTED]"),
        "{error}"
    );
    assert!(!error.contains(HEC_TOKEN), "{error}");
    let (out, shown) = flowhost(&config, &["history", "show", &failed.id.to_string()], &[]).await;
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("[REDACTED]"), "{shown}");
    assert!(!shown.contains(HEC_TOKEN), "{shown}");
}

#[test]
fn a_secrets_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let value = "s3cr3t-in-a-file-9c2e";
    let env = TestEnv::new().with_secrets(&[("PROBE_TOKEN", value)]);
    let secrets = env.config.secrets_file.clone().unwrap();
    let config = env.config_file("");
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_flowhost"))
            .env_clear()
            .arg("--config")
            .arg(&config)
            .args([
                "run",
                "probe",
                "--input",
                r#"{"op": "secret", "name": "PROBE_TOKEN"}"#,
            ])
            .output()
            .unwrap()
    };
    // Readable by others: refused. (Group-readable, 0640, is accepted when the file's group is
    // one of the process's groups, as here: see tests/deploy.rs for the other cases.)
    for mode in [0o644, 0o604, 0o666] {
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = run();
        let err = text(&out.stderr);
        println!("mode {mode:o}: {}", err.trim_end());
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(
            err.trim_end(),
            format!(
                "error: {0}: secrets file is readable by others (mode {mode:o}); run `chmod 600 {0}` (or 640 with the service's group)",
                secrets.display()
            )
        );
        assert!(!err.contains(value) && out.stdout.is_empty());
        assert!(!env.db().exists(), "nothing is written");
    }
    for mode in [0o600, 0o400, 0o640] {
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = run();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        // The flow was granted the secret and returns it: that is the one place it may appear.
        assert!(text(&out.stdout).contains(value));
    }
}
