//! One run's host buffers are bounded by `run_memory:` (issue 14.3): child outputs gathered by
//! a for-each, HTTP bodies and queued upserts all count against one budget per top-level run;
//! past it the call fails with `limit-exceeded` and the run rolls back, even when the flow
//! carries on after the error.

mod common;

use std::process::{Command, Stdio};

use common::TestEnv;
use serde_json::json;

/// Runs `flowhost` to its end and returns (exit code, stderr, peak RSS in MiB), the peak taken
/// from the kernel's accounting for exactly that process.
#[allow(clippy::zombie_processes)] // reaped by `wait4`, which also gives its peak RSS
fn run_measured(args: &[&str]) -> (i32, String, u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowhost"))
        .args(args)
        .env("RUST_LIB_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let mut status = 0;
    // SAFETY: plain FFI calls on a child we own and have not reaped.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        let pid = libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage);
        assert_eq!(pid, child.id() as libc::pid_t, "wait4 failed");
        usage
    };
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, stderr, usage.ru_maxrss as u64 / 1024)
}

/// 100 children of 10 MiB each: 1,000 MiB of results, four times the default budget. The
/// run fails naming the budget, what it wrote before rolls back although the flow caught the
/// error, and the process never holds the whole gathered output.
#[test]
fn a_for_each_past_the_run_memory_fails_and_rolls_back() {
    let mut env = TestEnv::new();
    // Probes with room for their output, and time for 1 GB of it on a busy machine.
    let dir = env.dir.path().join("flows");
    common::drop_probe(
        &dir,
        "gather",
        "title: Gather\ntimeout: 5m\ngrants:\n  flows: [big]\n  tables: {write: [Probe Items]}\n",
    );
    common::drop_probe(&dir, "big", "title: Big\ntimeout: 1m\nmemory: 128MiB\n");
    env.config.flows.insert(0, dir);
    let cfg = env.config_file("");
    let cfg = cfg.to_str().unwrap();
    let input = json!({"op": "steps", "steps": [
        {"op": "table", "fn": "insert", "table": "Probe Items", "row": {"id": "before"}},
        {"op": "try", "try": {"op": "for_each", "flow": "big", "concurrency": 4,
            "items": vec![json!({"op": "big_output", "mb": 10}); 100]}},
    ]})
    .to_string();
    let (code, stderr, peak_mib) =
        run_measured(&["--config", cfg, "run", "gather", "--input", &input]);
    assert_eq!(code, 1, "the run must fail: {stderr}");
    assert!(
        stderr.contains("run memory: the results of a for-each over big would take"),
        "{stderr}"
    );
    assert!(
        stderr.contains("of its 256.0 MiB (`run_memory:`"),
        "{stderr}"
    );
    // Before the budget, this run held every output at once: 1.35 GB resident, measured.
    eprintln!("peak RSS {peak_mib} MiB");
    assert!(peak_mib < 700, "peak RSS {peak_mib} MiB");

    let rt = env.runtime();
    assert_eq!(
        rt.store.row_count("Probe Items").unwrap(),
        0,
        "the insert rolled back"
    );
    let last = rt.history.list(Some("gather"), 1).unwrap();
    assert_eq!(last[0].status, flowhost::history::RunStatus::Error);
}

/// A flow's own `run_memory:` sets the budget: a 1 MiB budget refuses a 2 MiB response body
/// and a queue of upserts past 1 MiB, each with the part that asked named.
#[tokio::test(flavor = "multi_thread")]
async fn run_memory_from_the_manifest_bounds_http_bodies_and_queued_upserts() {
    let mut env = TestEnv::new();
    let dir = env.dir.path().join("flows");
    common::drop_probe(
        &dir,
        "tight",
        "title: Tight\nrun_memory: 1MiB\ngrants:\n  hosts: [\"http://127.0.0.1:*\"]\n  \
         tables: {write: [Probe Items]}\n",
    );
    env.config.flows.insert(0, dir);
    let rt = env.runtime();

    let app =
        axum::Router::new().route("/big", axum::routing::get(|| async { "y".repeat(2 << 20) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/big", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let e = common::err(&rt, "tight", json!({"op": "http", "url": url})).await;
    assert!(e.contains("limit-exceeded"), "{e}");
    assert!(
        e.contains("run memory: the response body from http://127.0.0.1:"),
        "{e}"
    );
    assert!(e.contains("of its 1.0 MiB"), "{e}");

    // Sent in chunks without a declared length, the body is charged as it arrives: refused
    // the same way once it passes the budget.
    let chunks = futures::stream::iter(
        (0..32).map(|_| Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b'y'; 64 << 10]))),
    );
    let app = axum::Router::new().route(
        "/chunked",
        axum::routing::get(move || async move { axum::body::Body::from_stream(chunks) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let chunked = format!("http://{}/chunked", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let e = common::err(&rt, "tight", json!({"op": "http", "url": chunked})).await;
    assert!(
        e.contains("run memory: the response body from http://127.0.0.1:"),
        "{e}"
    );
    assert!(e.contains("of its 1.0 MiB"), "{e}");

    // 40 upserts of 100 KB: 4 MB queued in batches of 64 would pass through the queue whole.
    let row = |i: usize| {
        json!({"op": "table", "fn": "upsert", "table": "Probe Items",
        "row": {"id": format!("r{i}"), "note": "z".repeat(100_000)}})
    };
    let steps: Vec<_> = (0..40).map(row).collect();
    let e = common::err(&rt, "tight", json!({"op": "steps", "steps": steps})).await;
    assert!(
        e.contains("run memory: the queued upserts would take"),
        "{e}"
    );
    assert_eq!(rt.store.row_count("Probe Items").unwrap(), 0);

    // Within the budget the same flow works.
    let out = common::ok(
        &rt,
        "tight",
        json!({"op": "steps", "steps": [row(1), row(2)]}),
    )
    .await;
    assert_eq!(out.as_array().map(Vec::len), Some(2));
    assert_eq!(rt.store.row_count("Probe Items").unwrap(), 2);
}
