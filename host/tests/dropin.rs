//! "Write your own flow" exactly as the README tells a user: a new flow crate outside the
//! project's workspace, built for wasm32-wasip2, dropped with its manifest into a flows
//! folder, then listed and run by the already-built `flowhost` binary. The host is not
//! rebuilt: the test only runs `CARGO_BIN_EXE_flowhost`.

mod common;

use std::process::Command;

use common::{root, TestEnv};

const CARGO_TOML: &str = r#"[package]
name = "hello"
version = "0.1.0"
edition = "2021"

[lib]
crate-type = ["cdylib"]

[dependencies]
flowhost-sdk = { path = "SDK" }
serde = { version = "1", features = ["derive"] }

[profile.release]
opt-level = "s"
lto = true
strip = true
panic = "abort"
codegen-units = 1

[workspace]
"#;

const LIB_RS: &str = r#"use flowhost_sdk::{tables, FlowError};
use serde::{Deserialize, Serialize};

flowhost_sdk::flow!(run);

#[derive(Deserialize)]
struct In { name: String }

#[derive(Serialize)]
struct Out { greeting: String, logged_runs: u64 }

fn run(input: In) -> Result<Out, FlowError> {
    let logged_runs = tables::count("Execution Log", &())?;
    Ok(Out { greeting: format!("hello {}", input.name), logged_runs })
}
"#;

const MANIFEST: &str = "title: Hello\ndescription: Greets and counts the Execution Log\n\
grants:\n  tables:\n    read: [Execution Log]\n";

#[test]
fn a_new_flow_is_built_dropped_in_listed_and_run_without_rebuilding_the_host() {
    let env = TestEnv::new();
    let krate = env.dir.path().join("hello");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    let sdk = root().join("flows/sdk");
    std::fs::write(
        krate.join("Cargo.toml"),
        CARGO_TOML.replace("SDK", sdk.to_str().unwrap()),
    )
    .unwrap();
    std::fs::write(krate.join("src/lib.rs"), LIB_RS).unwrap();

    // Share the flows' target dir so the SDK and serde are not compiled again.
    let target = root().join("flows/target");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&krate)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .unwrap();
    assert!(status.success());

    let flows = env.dir.path().join("my-flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::copy(
        target.join("wasm32-wasip2/release/hello.wasm"),
        flows.join("hello.wasm"),
    )
    .unwrap();
    std::fs::write(flows.join("hello.yaml"), MANIFEST).unwrap();

    let flowhost = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_flowhost"))
            .arg("--db")
            .arg(env.dir.path().join("f.db"))
            .arg("--flows")
            .arg(&flows)
            .arg("--tables")
            .arg(root().join("tables"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let list = flowhost(&["list"]);
    assert!(
        list.contains("hello") && list.contains("Hello") && list.contains("read: Execution Log"),
        "{list}"
    );
    let out: serde_json::Value = serde_json::from_str(&flowhost(&[
        "run",
        "hello",
        "--input",
        r#"{"name": "ASA"}"#,
    ]))
    .unwrap();
    assert_eq!(
        out,
        serde_json::json!({"greeting": "hello ASA", "logged_runs": 0})
    );
}
