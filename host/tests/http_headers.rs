//! Hostile numbers in response headers (issue 14, item 1): a granted server answering with
//! `Retry-After`, `X-RateLimit-Reset` or `X-RateLimit-Retry-At` values past every limit
//! (`18446744073709551615`, `1e300`, a date in 9999), or with nonsense (`NaN`, `inf`,
//! negative) never panics the host. Each case runs the `probe` flow through the `flowhost`
//! binary against a real axum server on loopback: the run ends with exit code 1 (a flow
//! error, not 101, a panic) and the error names the origin and the header as sent, or the run
//! succeeds when the header is ignored.

mod common;

use std::collections::HashMap;
use std::process::Output;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use common::{text, TestEnv};
use serde_json::{json, Value};

/// What the server answers on `/s/{name}`: a status and headers.
type Scenarios = HashMap<String, (u16, Vec<(&'static str, &'static str)>)>;

async fn answer(
    State(scenarios): State<Arc<Scenarios>>,
    Path(name): Path<String>,
) -> (StatusCode, HeaderMap, &'static str) {
    let Some((status, headers)) = scenarios.get(&name) else {
        return (StatusCode::NOT_FOUND, HeaderMap::new(), "no such scenario");
    };
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.insert(
            HeaderName::from_static(k),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    (StatusCode::from_u16(*status).unwrap(), map, "body")
}

/// Starts the server; returns its origin (`http://127.0.0.1:PORT`).
async fn server(scenarios: Scenarios) -> String {
    let app = axum::Router::new()
        .route("/s/{name}", axum::routing::get(answer))
        .with_state(Arc::new(scenarios));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// `flowhost run probe --input INPUT`.
async fn run_probe(env: &TestEnv, input: &Value) -> Output {
    let config = env.config_file("");
    tokio::process::Command::new(env!("CARGO_BIN_EXE_flowhost"))
        .arg("--config")
        .arg(&config)
        .args(["run", "probe", "--input", &input.to_string()])
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap()
}

/// The `error: ` line of a failed run's stderr.
fn error_line(out: &Output) -> String {
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a flow failure, not a crash: {err}"
    );
    err.lines()
        .find(|l| l.starts_with("error: probe failed"))
        .unwrap_or_else(|| panic!("no error line in {err}"))
        .to_string()
}

fn get(url: String) -> Value {
    json!({"op": "http", "method": "GET", "url": url})
}

fn get_retrying(url: String) -> Value {
    json!({"op": "http", "method": "GET", "url": url,
           "retry": {"attempts": 3, "initial_ms": 1, "max_ms": 5}})
}

fn steps(steps: Vec<Value>) -> Value {
    json!({"op": "steps", "steps": steps})
}

const HUGE: &str = "18446744073709551615";

#[tokio::test(flavor = "multi_thread")]
async fn a_429_asking_for_a_wait_past_the_deadline_fails_the_call_at_once_with_timeout() {
    let cases: Vec<(&str, &'static str, &'static str)> = vec![
        ("retry-after", "retry-after", HUGE),
        ("reset-1e300", "x-ratelimit-reset", "1e300"),
        ("reset-huge", "x-ratelimit-reset", HUGE),
        ("retry-at-huge", "x-ratelimit-retry-at", HUGE),
        ("date-9999", "retry-after", "Thu, 30 Dec 9999 00:00:00 GMT"),
    ];
    let scenarios = cases
        .iter()
        .map(|(name, k, v)| (name.to_string(), (429, vec![(*k, *v)])))
        .collect();
    let origin = server(scenarios).await;
    let env = TestEnv::new();
    for (name, header, value) in &cases {
        let out = run_probe(&env, &get_retrying(format!("{origin}/s/{name}"))).await;
        let err = error_line(&out);
        assert!(
            err.contains(&format!(
                "timeout: http: {origin} answered 429 and asks to wait 86400 s"
            )),
            "{name}: {err}"
        );
        // The header as the server sent it.
        let shown = format!("{header}: {value}").to_lowercase();
        assert!(err.to_lowercase().contains(&shown), "{name}: {err}");
        assert!(err.contains("past this run's deadline"), "{name}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nonsense_numbers_in_a_429_are_ignored_and_backoff_applies() {
    let cases: Vec<(&str, &'static str, &'static str)> = vec![
        ("nan", "x-ratelimit-reset", "NaN"),
        ("inf", "x-ratelimit-reset", "inf"),
        ("negative", "x-ratelimit-retry-at", "-5"),
        ("negative-retry-after", "retry-after", "-5"),
        ("float-retry-after", "retry-after", "1e300"),
        (
            "date-99999",
            "retry-after",
            "Fri, 31 Dec 99999 23:59:59 GMT",
        ),
    ];
    let scenarios = cases
        .iter()
        .map(|(name, k, v)| (name.to_string(), (429, vec![(*k, *v)])))
        .collect();
    let origin = server(scenarios).await;
    let env = TestEnv::new();
    for (name, _, _) in &cases {
        let out = run_probe(&env, &get_retrying(format!("{origin}/s/{name}"))).await;
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["status"], 429, "{name}: the last 429 goes to the flow");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limit_budget_resetting_at_the_end_of_time_fails_with_limit_exceeded() {
    let scenarios: Scenarios = [
        (
            "plenty",
            200,
            vec![("x-ratelimit-remaining", "50"), ("x-ratelimit-reset", HUGE)],
        ),
        (
            "low-1e300",
            200,
            vec![
                ("x-ratelimit-limit", "100"),
                ("x-ratelimit-remaining", "1"),
                ("x-ratelimit-reset", "1e300"),
            ],
        ),
        ("429-huge", 429, vec![("retry-after", HUGE)]),
    ]
    .into_iter()
    .map(|(n, s, h)| (n.to_string(), (s, h)))
    .collect();
    let origin = server(scenarios).await;
    let env = TestEnv::new();

    // The crash: 50 left, a reset at u64::MAX. 50 is well above the margin: both go.
    let url = format!("{origin}/s/plenty");
    let out = run_probe(&env, &steps(vec![get(url.clone()), get(url)])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v[0]["status"].clone(), v[1]["status"].clone()),
        (json!(200), json!(200))
    );

    // Within the margin until a reset past the deadline: the second call fails at once.
    let url = format!("{origin}/s/low-1e300");
    let out = run_probe(&env, &steps(vec![get(url.clone()), get(url)])).await;
    let err = error_line(&out);
    assert!(
        err.contains(&format!(
            "limit-exceeded: http: {origin} rate limit: 1 of 100 requests left"
        )),
        "{err}"
    );
    assert!(err.contains("(X-RateLimit-Reset: 1e300)"), "{err}");

    // A 429 without retries goes to the flow; the origin is then held: the next call fails.
    let url = format!("{origin}/s/429-huge");
    let out = run_probe(&env, &steps(vec![get(url.clone()), get(url)])).await;
    let err = error_line(&out);
    assert!(
        err.contains(&format!(
            "limit-exceeded: http: {origin} rate limit: 0 of 0 requests left"
        )),
        "{err}"
    );
    assert!(err.contains(&format!("(Retry-After: {HUGE})")), "{err}");
}
