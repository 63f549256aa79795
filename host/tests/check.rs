//! `flowhost check [--connect] [--json]` through the binary: each kind of problem is found and
//! named (exit 1; a dropped-in component that does not compile or link included), a sound
//! setup passes (exit 0), the ASA base URL's missing grant comes with
//! the config lines that fix it, and `--connect` says what the simulator answered without
//! ever printing the token.

mod common;

use std::path::Path;
use std::process::Output;

use common::{text, TestEnv};

/// `flowhost --config CONFIG ARGS…` (RUST_LOG=trace: whatever the binary logs is checked too).
fn flowhost(config: &Path, args: &[&str]) -> Output {
    common::flowhost_cmd(config, args)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap()
}

/// `check` (with `extra` arguments) and its exit code and stdout.
fn check(config: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["check"];
    args.extend_from_slice(extra);
    let out = flowhost(config, &args);
    (out.status.code().unwrap_or(-1), text(&out.stdout))
}

/// `check --json`, parsed.
fn check_json(config: &Path) -> (i32, serde_json::Value) {
    let (code, out) = check(config, &["--json"]);
    let json = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    (code, json)
}

/// The `error:` lines of a report.
fn errors(report: &str) -> Vec<&str> {
    report
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect()
}

/// A test world with the ASA key pair set (what a sound setup has).
fn sound() -> TestEnv {
    TestEnv::new().with_secrets(&[
        ("ASA_KEY_ID", "id"),
        ("ASA_KEY_SECRET", "s3cr3t-v4lue"),
        ("PROBE_TOKEN", "p"),
    ])
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p.clone());
            }
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
        }
    }
    out.sort();
    out
}

#[test]
fn a_sound_setup_passes_writes_nothing_and_json_parses() {
    let env = sound();
    let config = env.config_file("");
    let before = files(env.dir.path());
    let (code, out) = check(&config, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(errors(&out), Vec::<&str>::new(), "{out}");
    // O20 is not run by `serve`: its missing HEC_TOKEN is a warning, not a failure.
    assert!(
        out.lines().any(|l| l.starts_with("warning: ")
            && l.contains("O20.yaml: grants.secrets: the secret `HEC_TOKEN` of O20 is not set")),
        "{out}"
    );
    assert!(out.trim_end().ends_with(" tables"), "{out}");
    assert!(
        out.lines()
            .last()
            .unwrap()
            .starts_with(&format!("ok: {}", config.display())),
        "{out}"
    );

    let (code, json) = check_json(&config);
    assert_eq!(code, 0);
    assert_eq!(json["ok"], true, "{json}");
    assert_eq!(json["asa"]["base_url"], "https://app.scaleft.com", "{json}");
    assert!(json["flows"].as_u64().unwrap() > 20, "{json}");
    let findings = json["findings"].as_array().unwrap();
    assert!(
        findings.iter().all(|f| f["severity"] == "warning"),
        "{json}"
    );
    // Nothing was created: no database, no cache, no archive folder.
    assert_eq!(files(env.dir.path()), before);
}

#[test]
fn a_config_that_does_not_load_is_a_finding() {
    let env = sound();
    let config = env.config_file("flowz: []\n");
    let (code, out) = check(&config, &[]);
    assert_eq!(code, 1, "{out}");
    let errs = errors(&out);
    assert_eq!(errs.len(), 1, "{out}");
    assert!(
        errs[0].contains(&format!("{}: ", config.display()))
            && errs[0].contains("unknown field `flowz`"),
        "{out}"
    );
    let (code, json) = check_json(&config);
    assert_eq!(code, 1);
    assert_eq!(json["findings"][0]["kind"], "config", "{json}");
    assert_eq!(
        json["findings"][0]["file"],
        config.display().to_string(),
        "{json}"
    );
}

#[test]
fn a_broken_manifest_and_a_broken_schema_are_named() {
    let mut env = sound();
    let flows = env.dir.path().join("flows");
    common::asa_flows_with(&flows, &[("M10", "timeout", "forever")], &[]);
    env.config.flows = vec![flows.clone()];
    let config = env.config_file("");
    let (code, out) = check(&config, &[]);
    assert_eq!(code, 1, "{out}");
    let want = format!(
        "error: {}: timeout: `forever` is not a duration",
        flows.join("M10.yaml").display()
    );
    assert!(errors(&out).iter().any(|l| l.starts_with(&want)), "{out}");
    let (_, json) = check_json(&config);
    let f = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "manifest")
        .unwrap()
        .clone();
    assert_eq!(
        f["file"],
        flows.join("M10.yaml").display().to_string(),
        "{json}"
    );

    // A table schema with an unknown column type: named, and the flows are not checked.
    let tables = env.dir.path().join("tables");
    common::copy_flows(&common::root().join("tables"), &tables, |_| true);
    let bad = tables.join("audit-checkpoints.yaml");
    let text = std::fs::read_to_string(&bad)
        .unwrap()
        .replace("type: number", "type: numbr");
    std::fs::write(&bad, text).unwrap();
    env.config.tables = vec![tables];
    let config = env.config_file("");
    let (code, out) = check(&config, &[]);
    assert_eq!(code, 1, "{out}");
    let errs = errors(&out);
    assert_eq!(errs.len(), 1, "{out}");
    assert!(
        errs[0].contains(&bad.display().to_string()) && errs[0].contains("numbr"),
        "{out}"
    );
    assert!(out.contains("warning: flows not checked"), "{out}");
}

#[test]
fn missing_secrets_are_named_with_their_flow_or_store() {
    // No ASA key pair: U00 (run by serve, through M10) cannot work.
    let env = TestEnv::new().with_secrets(&[("PROBE_TOKEN", "p")]);
    let config = env.config_file(
        "blobs:\n  archive: {kind: local, path: archive}\n  scratch: {kind: local, path: scratch}\n  lake: {kind: s3, bucket: b, access_key_id_secret: LAKE_ID, secret_access_key_secret: LAKE_KEY}\n\
         grants:\n  M10: {secrets: [M10_EXTRA]}\n",
    );
    let (code, out) = check(&config, &[]);
    assert_eq!(code, 1, "{out}");
    let errs = errors(&out);
    let u00 = common::flows_dir("dist").join("U00.yaml");
    for secret in ["ASA_KEY_ID", "ASA_KEY_SECRET"] {
        let want = format!(
            "error: {}: grants.secrets: the secret `{secret}` of U00 is not set",
            u00.display()
        );
        assert!(errs.iter().any(|l| l.starts_with(&want)), "{secret}: {out}");
    }
    for (field, secret) in [
        ("access_key_id_secret", "LAKE_ID"),
        ("secret_access_key_secret", "LAKE_KEY"),
    ] {
        let want = format!(
            "error: {}: blobs.lake.{field}: the secret `{secret}` is not set",
            config.display()
        );
        assert!(errs.iter().any(|l| l.starts_with(&want)), "{secret}: {out}");
    }
    // A secret the config's `grants:` gives is the config file's to fix.
    let want = format!(
        "error: {}: grants.M10.secrets: the secret `M10_EXTRA` of M10 is not set",
        config.display()
    );
    assert!(errs.iter().any(|l| l.starts_with(&want)), "{out}");
    assert_eq!(errs.len(), 5, "{out}");
    let (_, json) = check_json(&config);
    let kinds: Vec<&str> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["secret"; 5], "{json}");
}

/// A dropped-in component that the host could load but not run is found by `check`, not at
/// its first run: one built against a contract version the host lacks (its imports name
/// `flowhost:flow@9.…`), and one cut short (its header is a component's, the rest is not).
/// Each is named with its file; a sound one beside them is not; the compile cache is read
/// and never written.
#[test]
fn components_that_do_not_compile_or_link_are_named() {
    let mut env = sound();
    let mine = env.dir.path().join("mine");
    let echo = std::fs::read_to_string(common::flows_dir("dist-test").join("echo.yaml")).unwrap();
    for name in ["sound", "newer", "cut"] {
        common::drop_flow(&mine, name, "echo", &echo);
    }
    let ours = flowhost::engine::contract_package();
    let version = ours.rsplit_once('@').unwrap().1;
    let theirs = format!("9{}", &version[1..]);
    let newer = mine.join("newer.wasm");
    let bytes = std::fs::read(&newer).unwrap();
    let (from, to) = (format!("@{version}"), format!("@{theirs}"));
    let replaced = replace_all(&bytes, from.as_bytes(), to.as_bytes());
    assert_ne!(replaced, bytes, "echo.wasm names no `@{version}`");
    std::fs::write(&newer, replaced).unwrap();
    let cut = mine.join("cut.wasm");
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    // Only this folder (the ASA flows are the built-in package's, which are not compiled
    // again), and a cache of its own that must stay as it was: absent.
    env.config.flows = vec![mine.clone()];
    let cache = env.dir.path().join("cache");
    env.config.cache_dir = Some(cache.clone());
    let config = env.config_file("");

    let (code, out) = check(&config, &[]);
    assert_eq!(code, 1, "{out}");
    let errs = errors(&out);
    assert_eq!(errs.len(), 2, "{out}");
    let want = format!("error: {}: imports `flowhost:flow/", newer.display());
    let want_end = format!("@{theirs}`, which flowhost does not provide (it provides {ours}: build the flow against the host's wit/flow.wit)");
    assert!(
        errs.iter()
            .any(|l| l.starts_with(&want) && l.ends_with(&want_end)),
        "{out}"
    );
    let want = format!("error: {}: not a WebAssembly component: ", cut.display());
    assert!(errs.iter().any(|l| l.starts_with(&want)), "{out}");
    let (_, json) = check_json(&config);
    let mut named: Vec<(String, String)> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["file"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    named.sort();
    let mut want = vec![
        ("component".to_string(), cut.display().to_string()),
        ("component".to_string(), newer.display().to_string()),
    ];
    want.sort();
    assert_eq!(named, want, "{json}");
    // Read-only: the cache it was given was never created.
    assert!(!cache.exists(), "check wrote {}", cache.display());
}

/// `bytes` with every `from` replaced by `to` (of the same length).
fn replace_all(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = bytes.to_vec();
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            i += from.len();
        } else {
            i += 1;
        }
    }
    out
}

/// Stores `base` as the ASA base URL with U02, through the binary. U02 stores only a base URL
/// that M10 and U00 may reach, so it runs with `config` (which has no `grants:`) plus the
/// grants for `base`; `config` itself then lacks them, as after an operator removed them.
fn set_base_url(config: &Path, base: &str) {
    let input = serde_json::json!({"asaTeam": "t", "asaBaseUrl": base}).to_string();
    let granting = config.with_file_name("granting.yaml");
    let current = std::fs::read_to_string(config).unwrap();
    let grants =
        format!("grants:\n  M10: {{hosts: [\"{base}\"]}}\n  U00: {{hosts: [\"{base}\"]}}\n");
    std::fs::write(&granting, current + &grants).unwrap();
    let out = flowhost(&granting, &["run", "U02", "--input", &input]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// The lines after the `grant` finding's line, up to the next finding or the last line.
fn fix_lines(report: &str) -> Vec<String> {
    let mut lines = report
        .lines()
        .skip_while(|l| !l.contains("is not in the allowed hosts of M10 and U00"));
    lines
        .next()
        .unwrap_or_else(|| panic!("no grant finding: {report}"));
    let mut fix: Vec<String> = lines.map(str::to_string).collect();
    fix.pop(); // the summary line
    fix
}

#[test]
fn an_ungranted_base_url_prints_the_lines_to_add_and_passes_once_they_are() {
    let env = sound();
    let config = env.config_file("");
    let base = "http://127.0.0.1:4567";
    set_base_url(&config, base);
    let (code, out) = check(&config, &[]);
    assert_eq!(code, 1, "{out}");
    let errs = errors(&out);
    assert_eq!(errs.len(), 1, "{out}");
    assert!(
        errs[0].starts_with(&format!("error: {}: grants.M10.hosts: the ASA base URL {base} (Environment Variables.asaBaseUrl) is not in the allowed hosts of M10 and U00", config.display())),
        "{out}"
    );
    assert!(
        errs[0].ends_with(&format!("add these lines to {}:", config.display())),
        "{out}"
    );
    let fix = fix_lines(&out);
    assert_eq!(
        fix,
        [
            "grants:",
            "  M10:",
            "    hosts: [\"http://127.0.0.1:4567\"]",
            "  U00:",
            "    hosts: [\"http://127.0.0.1:4567\"]"
        ],
        "{out}"
    );
    let (_, json) = check_json(&config);
    let grant = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "grant")
        .unwrap()
        .clone();
    assert_eq!(grant["fix"], serde_json::json!(fix), "{json}");
    assert_eq!(grant["field"], "grants.M10.hosts", "{json}");

    // The lines added as printed: all is well.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&(fix.join("\n") + "\n"));
    std::fs::write(&config, text).unwrap();
    let (code, out) = check(&config, &[]);
    assert_eq!(code, 0, "{out}");

    // A config that already has a `grants:` section: the section as it must read, with the
    // operator's other grants kept.
    let hec = "grants:\n  O20: {hosts: [\"https://splunk.example.com:8088\"]}\n";
    let config = env.config_file(hec);
    let (code, out) = check(&config, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        errors(&out)[0].ends_with(&format!(
            "make the `grants:` section of {} read:",
            config.display()
        )),
        "{out}"
    );
    let fix = fix_lines(&out);
    assert!(
        fix.contains(&"    hosts: [\"https://splunk.example.com:8088\"]".to_string()),
        "{out}"
    );
    let config = env.config_file(&(fix.join("\n") + "\n"));
    let (code, out) = check(&config, &[]);
    assert_eq!(code, 0, "{out}");
}

/// Sets up the simulator with the ASA settings stored and M10/U00 granted its URL, with
/// `secrets` over the right key pair.
async fn sim_setup(secrets: &[(&str, &str)]) -> (common::asa::Asa, std::path::PathBuf) {
    let asa = common::asa::asa_with(5, 100, secrets, |_| {}).await;
    let base = asa.sim.base_url();
    let grants =
        format!("grants:\n  M10: {{hosts: [\"{base}\"]}}\n  U00: {{hosts: [\"{base}\"]}}\n");
    let config = asa.env.config_file(&grants);
    (asa, config)
}

/// Neither any issued token nor any secret value appears in `out`.
fn shows_no_secret(asa: &common::asa::Asa, out: &Output, secrets: &[&str]) {
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let tokens = asa.sim.issued_tokens();
    for t in tokens
        .iter()
        .map(String::as_str)
        .chain(secrets.iter().copied())
    {
        assert!(!all.contains(t), "`{t}` was printed:\n{all}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_asks_for_a_token_and_one_page_and_never_prints_the_token() {
    let (asa, config) = sim_setup(&[("PROBE_TOKEN", "p")]).await;
    let base = asa.sim.base_url();
    let team = asa.sim.team().to_string();
    let tokens_before = asa.sim.stats().tokens_issued;
    let out = tokio::task::spawn_blocking({
        let config = config.clone();
        move || flowhost(&config, &["check", "--connect"])
    })
    .await
    .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let token_line = format!("connect: POST {base}/v1/teams/{team}/service_token: HTTP 200, a service token came back (not shown)");
    let page_line = format!(
        "connect: GET {base}/v1/teams/{team}/auditsV2?count=1: HTTP 200, a page with 1 event"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with(&token_line)),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(&page_line) && l.contains("X-RateLimit-Remaining: ")),
        "{stdout}"
    );
    assert_eq!(
        asa.sim.stats().tokens_issued,
        tokens_before + 1,
        "one token asked for"
    );
    shows_no_secret(&asa, &out, &[asa.sim.key_secret()]);

    let out = tokio::task::spawn_blocking({
        let config = config.clone();
        move || flowhost(&config, &["check", "--connect", "--json"])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["connect"]["token"]["status"], 200, "{json}");
    assert_eq!(json["connect"]["page"]["status"], 200, "{json}");
    assert_eq!(json["connect"]["page"]["events"], 1, "{json}");
    shows_no_secret(&asa, &out, &[asa.sim.key_secret()]);
    // Nothing was stored: the page's event is not in the table.
    assert_eq!(common::asa::rows(&asa.rt, "Audit Events").len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_with_a_wrong_key_says_what_answered() {
    let wrong = "wr0ng-s3cret-value";
    let (asa, config) = sim_setup(&[("ASA_KEY_SECRET", wrong), ("PROBE_TOKEN", "p")]).await;
    let base = asa.sim.base_url();
    let out = tokio::task::spawn_blocking(move || flowhost(&config, &["check", "--connect"]))
        .await
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let errs = errors(&stdout);
    assert_eq!(errs.len(), 1, "{stdout}");
    assert!(
        errs[0].starts_with(&format!(
            "error: connect: ASA refused the service token: POST {base}/v1/teams/"
        )) && errs[0].contains("HTTP 401: authentication_error"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("connect: POST ") && l.contains("HTTP 401")),
        "{stdout}"
    );
    assert!(
        !stdout.contains("auditsV2"),
        "no page without a token: {stdout}"
    );
    shows_no_secret(&asa, &out, &[wrong, asa.sim.key_secret()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_sends_nothing_to_a_url_the_flows_are_not_granted() {
    let asa = common::asa::asa_with(5, 100, &[("PROBE_TOKEN", "p")], |_| {}).await;
    // The config grants the simulator to neither M10 nor U00.
    let config = asa.env.config_file("");
    let before = asa.sim.stats();
    let out = tokio::task::spawn_blocking(move || flowhost(&config, &["check", "--connect"]))
        .await
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let errs = errors(&stdout);
    let origin = asa.sim.base_url();
    assert!(
        errs.iter()
            .any(|l| l.contains("is not in the allowed hosts of M10 and U00")),
        "{stdout}"
    );
    assert!(
        errs.iter().any(|l| l.starts_with(&format!(
            "error: connect: ASA not contacted: {origin} is not in U00's allowed hosts"
        ))),
        "{stdout}"
    );
    assert_eq!(
        asa.sim.stats(),
        before,
        "the key pair went to an ungranted host"
    );
}
