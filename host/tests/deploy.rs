//! Running as a service (issue 15.7), through the real binary: systemd's notifications
//! (READY, WATCHDOG, STOPPING) over a real datagram socket, secrets from
//! `$CREDENTIALS_DIRECTORY` (LoadCredential=), the secrets file's group rule, and the unit file
//! checked by `systemd-analyze verify`.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Output};

use common::process::Flowhost;
use common::{drop_probe, env_with_flows, error_line, text, TestEnv, PATIENCE};

#[test]
fn serve_tells_systemd_ready_watchdog_and_stopping() {
    let (env, dir) = env_with_flows();
    drop_probe(
        &dir,
        "tick",
        "title: Tick\nschedule:\n  every: 1h\n  input: {\"op\": \"echo\", \"value\": 1}\n",
    );
    let socket_path = env.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    let recv = || -> String {
        let mut buf = [0u8; 512];
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no notification within {PATIENCE:?}: {e}"));
        String::from_utf8_lossy(&buf[..n]).trim().to_string()
    };
    let config = env.config_file("");
    let mut serve = Flowhost::spawn(
        &config,
        &["serve"],
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            // 200 ms: a WATCHDOG=1 every 100 ms.
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    assert_eq!(recv(), "READY=1");
    assert_eq!(recv(), "WATCHDOG=1");
    assert_eq!(recv(), "WATCHDOG=1");
    serve.wait_line("serving", |l| l.contains("serving scheduled flows"));
    serve.signal(libc::SIGTERM);
    loop {
        match recv().as_str() {
            "WATCHDOG=1" => continue,
            "STOPPING=1" => break,
            other => panic!("unexpected notification {other:?}"),
        }
    }
    let (status, lines) = serve.finish();
    assert!(status.success(), "{status:?}: {lines:#?}");
}

/// `flowhost --config CONFIG ARGS` with `envs`.
fn flowhost(config: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowhost"));
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn a_credential_is_a_secret_named_after_its_file_and_redacted_from_history() {
    let env = TestEnv::new();
    let creds = env.dir.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("PROBE_TOKEN"), "cred-s3cret-Zq\n").unwrap();
    let config = env.config_file("");
    let input = r#"{"op": "steps", "steps": [{"op": "secret", "name": "PROBE_TOKEN"}]}"#;
    let out = flowhost(
        &config,
        &["run", "probe", "--input", input],
        &[("CREDENTIALS_DIRECTORY", creds.to_str().unwrap())],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // `run` prints the flow's output to the one who ran it: the value, one newline trimmed.
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, serde_json::json!(["cred-s3cret-Zq"]));
    // History (and every log line) has it redacted.
    let shown = flowhost(&config, &["history", "--json", "--limit", "1"], &[]);
    let logged = format!("{}{}", text(&out.stderr), text(&shown.stdout));
    assert!(!logged.contains("cred-s3cret-Zq"), "{logged}");
    let rec: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(rec["output"], serde_json::json!(["[REDACTED]"]), "{rec}");
    // Without the credential, the secret is not set.
    let out = flowhost(&config, &["run", "probe", "--input", input], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}

/// The secrets file may be 0640 when its group is one of the process's groups.
#[test]
fn secrets_file_0640_is_accepted_with_the_process_group_only() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new().with_secrets(&[("PROBE_TOKEN", "file-s3cret-Zq")]);
    let file = env.config.secrets_file.clone().unwrap();
    let config = env.config_file("");
    let run = || {
        flowhost(
            &config,
            &[
                "run",
                "probe",
                "--input",
                r#"{"op": "secret", "name": "PROBE_TOKEN"}"#,
            ],
            &[],
        )
    };
    let chmod =
        |mode: u32| std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    let chgrp = |gid: u32| -> bool {
        let c = std::ffi::CString::new(file.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path; uid -1 leaves the owner as it is.
        unsafe { libc::chown(c.as_ptr(), u32::MAX, gid) == 0 }
    };
    // SAFETY: getegid cannot fail.
    let own = unsafe { libc::getegid() };
    assert!(chgrp(own), "the test's own group");
    chmod(0o640);
    let out = run();
    assert!(
        out.status.success(),
        "0640 with our group: {}",
        text(&out.stderr)
    );

    let shown = file.display().to_string();
    chmod(0o644);
    let out = run();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        error_line(&text(&out.stderr)),
        format!("error: {shown}: secrets file is readable by others (mode 644); run `chmod 600 {shown}` (or 640 with the service's group)")
    );
    chmod(0o660);
    let out = run();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        error_line(&text(&out.stderr)).contains("writable or executable by its group (mode 660)"),
        "{}",
        text(&out.stderr)
    );

    // A group this process is not in (as root: any other group).
    let mut groups = vec![0 as libc::gid_t; 256];
    // SAFETY: the buffer holds 256 ids.
    let n = unsafe { libc::getgroups(256, groups.as_mut_ptr()) };
    groups.truncate(usize::try_from(n).unwrap());
    let other = (1..60_000u32)
        .find(|g| *g != own && !groups.contains(g))
        .unwrap();
    chmod(0o640);
    if !chgrp(other) {
        panic!(
            "cannot chgrp the secrets file to gid {other}: this test needs root (as the \
             full-disk test in bad_input.rs does); run the tests as root"
        );
    }
    let out = run();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        error_line(&text(&out.stderr)),
        format!("error: {shown}: secrets file is readable by its group (gid {other}), which is not one of this process's groups (mode 640); run `chgrp` to the service's group or `chmod 600 {shown}`")
    );
}

/// The unit file is what systemd accepts, with the settings the README promises.
#[test]
fn the_systemd_unit_verifies() {
    let unit = common::root().join("deploy/flowhost.service");
    let text_of_unit = std::fs::read_to_string(&unit).unwrap();
    for line in [
        "Type=notify",
        "WatchdogSec=60s",
        "User=flowhost",
        "StateDirectory=flowhost",
        "ConfigurationDirectory=flowhost",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "LoadCredential=ASA_KEY_SECRET:/etc/flowhost/credentials/ASA_KEY_SECRET",
    ] {
        assert!(
            text_of_unit.lines().any(|l| l == line),
            "no `{line}` in {}",
            unit.display()
        );
    }
    assert!(text_of_unit.contains(
        "ExecStart=/usr/local/bin/flowhost --config /etc/flowhost/flowhost.yaml --state-dir ${STATE_DIRECTORY} serve"
    ));
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    assert!(
        analyze.is_ok(),
        "systemd-analyze is not installed: install Debian's `systemd` package (`cargo xtask \
         test` does when apt-get is there)"
    );
    // verify checks that ExecStart's binary exists: point it at the one under test.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("flowhost.service");
    std::fs::write(
        &copy,
        text_of_unit.replace("/usr/local/bin/flowhost", env!("CARGO_BIN_EXE_flowhost")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    // Unknown settings or values are only warnings: any output is a failure here.
    assert!(
        out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
        "systemd-analyze verify: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}
