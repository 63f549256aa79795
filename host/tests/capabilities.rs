//! Each capability through a real compiled component (the `probe` test flow), with its grant
//! checks, and the run-level guarantees: atomic rollback, timeouts, memory cap, depth limit.

mod common;

use common::{err, ok, run, TestEnv};
use flowhost::history::RunStatus;
use flowhost::runtime::Runtime;
use serde_json::json;

fn table(f: &str, args: serde_json::Value) -> serde_json::Value {
    let mut v = json!({"op": "table", "fn": f, "table": "Probe Items"});
    v.as_object_mut()
        .unwrap()
        .extend(args.as_object().unwrap().clone());
    v
}

/// `op` (insert or upsert) of `row` into the probe's table fails on its own call with
/// `invalid-input` naming `what`.
async fn refused_row(
    rt: &std::sync::Arc<flowhost::runtime::Runtime>,
    op: &str,
    row: serde_json::Value,
    what: &str,
) {
    let e = err(rt, "probe", table(op, json!({ "row": row }))).await;
    assert!(
        e.contains("invalid-input") && e.contains(what),
        "{op} {row}: {e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tables_crud_through_a_component() {
    let env = TestEnv::new();
    let rt = env.runtime();
    let key = ok(&rt, "probe", table("insert", json!({"row": {"id": "a", "n": 1, "note": "first", "flag": true, "data": {"x": [1, 2]}}}))).await;
    assert_eq!(key, json!("a"));
    let n = ok(
        &rt,
        "probe",
        table(
            "insert_many",
            json!({"rows": [{"id": "b", "n": 2}, {"id": "c", "n": 3}]}),
        ),
    )
    .await;
    assert_eq!(n, json!(2));
    let row = ok(&rt, "probe", table("get", json!({"key": "a"}))).await;
    assert_eq!(row["note"], "first");
    assert_eq!(row["flag"], true);
    assert_eq!(row["data"], json!({"x": [1, 2]}));
    let found = ok(&rt, "probe", table("find", json!({"filter": {"n": 2}}))).await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["id"], "b");
    assert_eq!(
        ok(
            &rt,
            "probe",
            table(
                "update",
                json!({"key": "b", "changes": {"note": "changed"}})
            )
        )
        .await,
        json!(true)
    );
    assert_eq!(
        ok(
            &rt,
            "probe",
            table("update", json!({"key": "zz", "changes": {"note": "x"}}))
        )
        .await,
        json!(false)
    );
    ok(
        &rt,
        "probe",
        table("upsert", json!({"row": {"id": "c", "n": 30}})),
    )
    .await;
    assert_eq!(
        ok(&rt, "probe", table("get", json!({"key": "c"}))).await["n"],
        30
    );
    assert_eq!(
        ok(&rt, "probe", table("delete", json!({"key": "a"}))).await,
        json!(true)
    );
    assert_eq!(
        ok(&rt, "probe", table("count", json!({"filter": {}}))).await,
        json!(2)
    );
    assert_eq!(ok(&rt, "probe", table("clear", json!({}))).await, json!(2));
    assert_eq!(
        ok(&rt, "probe", table("count", json!({"filter": {}}))).await,
        json!(0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn table_errors_are_named_and_grants_enforced() {
    let env = TestEnv::new();
    let rt = env.runtime();
    refused_row(&rt, "insert", json!({"id": "a", "colour": "red"}), "colour").await;
    refused_row(&rt, "insert", json!({"id": "a", "n": "three"}), "`n`").await;
    let e = err(
        &rt,
        "probe",
        json!({"op": "table", "fn": "count", "table": "Nope", "filter": {}}),
    )
    .await;
    // An ungranted name is denied, whether a table of that name exists or not (issue 14).
    assert!(e.contains("access-denied") && e.contains("Nope"), "{e}");
    // Granted read only: Environment Variables.
    ok(
        &rt,
        "probe",
        json!({"op": "table", "fn": "count", "table": "Environment Variables", "filter": {}}),
    )
    .await;
    let e = err(
        &rt,
        "probe",
        json!({"op": "table", "fn": "clear", "table": "Environment Variables"}),
    )
    .await;
    assert!(
        e.contains("access-denied") && e.contains("grants.tables.write"),
        "{e}"
    );
    // Not granted at all.
    let e = err(
        &rt,
        "probe",
        json!({"op": "table", "fn": "count", "table": "Audit Events", "filter": {}}),
    )
    .await;
    assert!(
        e.contains("access-denied") && e.contains("Audit Events"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_run_rolls_back_every_write_including_childrens() {
    let env = TestEnv::new();
    let rt = env.runtime();
    let steps = json!({"op": "steps", "steps": [
        table("insert", json!({"row": {"id": "parent"}})),
        {"op": "call", "flow": "probe", "input": table("insert", json!({"row": {"id": "child"}}))},
        {"op": "fail", "message": "boom after writing"}
    ]});
    let e = err(&rt, "probe", steps).await;
    assert!(e.contains("boom after writing"), "{e}");
    assert_eq!(
        ok(&rt, "probe", table("count", json!({"filter": {}}))).await,
        json!(0)
    );

    // The same steps without the failure commit both rows together.
    let steps = json!({"op": "steps", "steps": [
        table("insert", json!({"row": {"id": "parent"}})),
        {"op": "call", "flow": "probe", "input": table("insert", json!({"row": {"id": "child"}}))}
    ]});
    ok(&rt, "probe", steps).await;
    assert_eq!(
        ok(&rt, "probe", table("count", json!({"filter": {}}))).await,
        json!(2)
    );
}

/// Repeated gets in one run (probe's `repeat`, as the micro benchmark times them) give the row
/// as written, every time; a write after them commits; a failing step stops the repeat.
#[tokio::test(flavor = "multi_thread")]
async fn repeated_gets_in_a_run_give_the_row_and_a_later_write_commits() {
    let env = TestEnv::new();
    let rt = env.runtime();
    let row = json!({"id": "k1", "n": 7, "note": "tab\t\"quoted\" ünï", "flag": true, "data": {"b": [1, null], "a": "x"}});
    ok(&rt, "probe", table("upsert", json!({"row": row}))).await;
    let get = table("get", json!({"key": "k1"}));
    let out = ok(
        &rt,
        "probe",
        json!({"op": "steps", "steps": [
            {"op": "repeat", "n": 500, "step": get},
            {"op": "repeat", "n": 0, "step": get},
            table("upsert", json!({"row": {"id": "k2", "n": 2}})),
            {"op": "repeat", "n": 3, "step": table("get", json!({"key": "k2"}))},
        ]}),
    )
    .await;
    assert_eq!(out[0], row);
    assert_eq!(out[1], json!(null));
    assert_eq!(out[3]["n"], json!(2));
    assert_eq!(
        ok(&rt, "probe", table("count", json!({"filter": {}}))).await,
        json!(2)
    );
    let e = err(
        &rt,
        "probe",
        json!({"op": "repeat", "n": 3, "step": {"op": "table", "fn": "get", "table": "Nope", "key": "k1"}}),
    )
    .await;
    assert!(e.contains("access-denied") && e.contains("Nope"), "{e}");
}

/// Upserts into keyed tables are queued and written in batches (`caps::upsert_queue`): the run
/// still reads every row its children upserted, the last upsert of a key wins, a bad row still
/// fails at its own call, and a failed run keeps none of them.
#[tokio::test(flavor = "multi_thread")]
async fn upserts_from_many_children_are_read_back_and_roll_back_together() {
    let env = TestEnv::new();
    let rt = env.runtime();
    let upserts = |prefix: &str| {
        let items: Vec<_> = (0..300)
            .map(|i| {
                table(
                    "upsert",
                    json!({"row": {"id": format!("{prefix}{i}"), "n": i}}),
                )
            })
            .collect();
        json!({"op": "for_each", "flow": "probe", "items": items, "concurrency": 8})
    };
    let out = ok(
        &rt,
        "probe",
        json!({"op": "steps", "steps": [
            upserts("k"),
            table("count", json!({"filter": {}})),
            table("get", json!({"key": "k299"})),
            table("upsert", json!({"row": {"id": "k0", "n": -1}})),
        ]}),
    )
    .await;
    assert_eq!(out[0].as_array().unwrap().len(), 300);
    assert_eq!(out[1], json!(300));
    assert_eq!(out[2]["n"], 299);
    assert_eq!(
        ok(&rt, "probe", table("get", json!({"key": "k0"}))).await["n"],
        -1
    );

    let e = err(
        &rt,
        "probe",
        json!({"op": "steps", "steps": [
            upserts("m"),
            {"op": "fail", "message": "boom after 300 upserts"},
        ]}),
    )
    .await;
    assert!(e.contains("boom after 300 upserts"), "{e}");
    assert_eq!(
        ok(&rt, "probe", table("count", json!({"filter": {}}))).await,
        json!(300)
    );

    refused_row(&rt, "upsert", json!({"id": "x", "n": "three"}), "`n`").await;
}

/// A simulator with 10 events, a runtime, and a bearer token asked for through the probe's
/// `http` (a POST).
async fn sim_with_token() -> (asa_sim::Sim, TestEnv, std::sync::Arc<Runtime>, String) {
    let sim = asa_sim::Sim::start(asa_sim::SimConfig {
        events: 10,
        ..Default::default()
    })
    .await
    .unwrap();
    let env = TestEnv::new();
    let rt = env.runtime();
    let url = format!("{}/v1/teams/{}/service_token", sim.base_url(), sim.team());
    let body = json!({"key_id": sim.key_id(), "key_secret": sim.key_secret()}).to_string();
    let resp = ok(&rt, "probe", json!({"op": "http", "method": "POST", "url": url, "body": body, "headers": {"content-type": "application/json"}})).await;
    assert_eq!(resp["status"], 200);
    let token: serde_json::Value = serde_json::from_str(resp["body"].as_str().unwrap()).unwrap();
    let token = token["bearer_token"].as_str().unwrap().to_string();
    (sim, env, rt, token)
}

#[tokio::test(flavor = "multi_thread")]
async fn http_goes_only_to_allowed_hosts_and_retries_5xx() {
    let (sim, _env, rt, token) = sim_with_token().await;

    // localhost is not 127.0.0.1 as far as the grant goes.
    let url = format!("{}/v1/teams/{}/service_token", sim.base_url(), sim.team());
    let other = url.replace("127.0.0.1", "localhost");
    let e = err(
        &rt,
        "probe",
        json!({"op": "http", "method": "GET", "url": other}),
    )
    .await;
    assert!(
        e.contains("access-denied") && e.contains("grants.hosts"),
        "{e}"
    );
    let e = err(
        &rt,
        "probe",
        json!({"op": "http", "method": "GET", "url": "https://example.com/"}),
    )
    .await;
    assert!(e.contains("access-denied"), "{e}");

    // Two 503s, then success, with a retry policy of 3 attempts.
    let audits = format!(
        "{}/v1/teams/{}/auditsV2?count=5",
        sim.base_url(),
        sim.team()
    );
    let bearer = format!("Bearer {token}");
    sim.inject(asa_sim::Fault::Status(503), 2);
    let before = sim.stats().audit_requests;
    let resp = ok(
        &rt,
        "probe",
        json!({"op": "http", "method": "GET", "url": audits,
        "headers": {"authorization": bearer},
        "retry": {"max_attempts": 3, "initial_backoff_ms": 10, "max_backoff_ms": 50}}),
    )
    .await;
    assert_eq!(resp["status"], 200);
    assert_eq!(sim.stats().audit_requests - before, 3);

    // An attempt slower than its own timeout is given up and retried: the caller gets the
    // second attempt's answer while the first is still unanswered.
    let slow_get = |url: &str, attempts: u32| {
        json!({"op": "http", "method": "GET", "url": url, "timeout_ms": 300,
        "retry": {"max_attempts": attempts, "initial_backoff_ms": 10, "max_backoff_ms": 10}})
    };
    let held = common::held::Held::start(1).await;
    let resp = ok(&rt, "probe", slow_get(&held.url, 2)).await;
    assert_eq!(
        (resp["status"].as_u64(), resp["body"].as_str()),
        (Some(200), Some("answer 1"))
    );
    assert_eq!(
        (held.received(), held.answered()),
        (2, 1),
        "the held answer was waited for"
    );
    // Every attempt too slow: the error says so, after the last attempt.
    let held = common::held::Held::start(2).await;
    let e = err(&rt, "probe", slow_get(&held.url, 2)).await;
    assert!(
        e.contains("timed out") && e.contains("after 2 attempts"),
        "{e}"
    );
    assert_eq!((held.received(), held.answered()), (2, 0));

    // Connection refused is an error after the attempts, not a hang.
    let (_held, closed) = common::closed_port();
    let e = err(
        &rt,
        "probe",
        json!({"op": "http", "method": "GET", "url": format!("{closed}/"),
        "retry": {"max_attempts": 2, "initial_backoff_ms": 10, "max_backoff_ms": 10}}),
    )
    .await;
    assert!(e.contains("after 2 attempts"), "{e}");
}

/// `http.prefetch`: the same request sent later by the same flow takes the prefetched
/// response (one request reaches the server); any other request is sent as usual.
#[tokio::test(flavor = "multi_thread")]
async fn a_prefetched_get_answers_the_same_request_once() {
    let (sim, _env, rt, token) = sim_with_token().await;
    let audits = format!(
        "{}/v1/teams/{}/auditsV2?count=5",
        sim.base_url(),
        sim.team()
    );
    let get = |url: &str, bearer: &str| {
        json!({"op": "http", "method": "GET", "url": url,
        "headers": {"authorization": format!("Bearer {bearer}")}})
    };
    let prefetch = |mut req: serde_json::Value| {
        req["prefetch"] = json!(true);
        req
    };
    let audit_requests = || sim.stats().audit_requests;

    // Sent in the background: the prefetching run returns while the server still holds the
    // answer; the later send waits for that answer instead of asking again: one request.
    let held = common::held::Held::start(1).await;
    let out = ok(&rt, "probe", prefetch(get(&held.url, &token))).await;
    assert_eq!(out, json!({"prefetched": true}));
    assert_eq!(held.answered(), 0, "the prefetch was waited for");
    common::wait_until(common::PATIENCE, "the prefetch to reach the server", || {
        held.received() == 1
    })
    .await;
    held.release();
    let resp = ok(&rt, "probe", get(&held.url, &token)).await;
    assert_eq!(
        (resp["status"].as_u64(), resp["body"].as_str()),
        (Some(200), Some("answer 0"))
    );
    assert_eq!(held.received(), 1, "the send went to the server again");
    // The same through the simulator: the page arrives whole.
    let n = audit_requests();
    ok(&rt, "probe", prefetch(get(&audits, &token))).await;
    let resp = ok(&rt, "probe", get(&audits, &token)).await;
    assert_eq!(resp["status"], 200);
    let page: serde_json::Value = serde_json::from_str(resp["body"].as_str().unwrap()).unwrap();
    assert_eq!(page["list"].as_array().map(Vec::len), Some(5), "{page}");
    assert_eq!(audit_requests(), n + 1, "the send went to the server again");
    // Used once: the same request again goes to the server.
    ok(&rt, "probe", get(&audits, &token)).await;
    assert_eq!(audit_requests(), n + 2);

    // Another URL or another header is another request: the prefetch is not used by them,
    // and is still there for its own request.
    let n = audit_requests();
    ok(&rt, "probe", prefetch(get(&audits, &token))).await;
    let other = audits.replace("count=5", "count=6");
    ok(&rt, "probe", get(&other, &token)).await;
    let resp = ok(&rt, "probe", get(&audits, "another-token")).await;
    assert_eq!(resp["status"], 401);
    ok(&rt, "probe", get(&audits, &token)).await;
    assert_eq!(audit_requests(), n + 3);

    // A 5xx is not handed over: the send sends again (and retries as it says).
    sim.inject(asa_sim::Fault::Status(503), 1);
    let n = audit_requests();
    ok(&rt, "probe", prefetch(get(&audits, &token))).await;
    common::wait_until(common::PATIENCE, "the prefetch to meet the 503", || {
        audit_requests() > n
    })
    .await;
    let resp = ok(&rt, "probe", get(&audits, &token)).await;
    assert_eq!(resp["status"], 200);
    assert_eq!(audit_requests(), n + 2);

    // Checked like a send; only GET and HEAD.
    let e = err(
        &rt,
        "probe",
        prefetch(get(&audits.replace("127.0.0.1", "localhost"), &token)),
    )
    .await;
    assert!(
        e.contains("access-denied") && e.contains("grants.hosts"),
        "{e}"
    );
    let mut post = prefetch(get(&audits, &token));
    post["method"] = json!("POST");
    let e = err(&rt, "probe", post).await;
    assert!(
        e.contains("invalid-input") && e.contains("only GET and HEAD"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn flows_call_and_for_each_keep_order_and_grants() {
    let env = TestEnv::new();
    let rt = env.runtime();
    let out = ok(
        &rt,
        "probe",
        json!({"op": "call", "flow": "echo", "input": {"hello": "world"}}),
    )
    .await;
    assert_eq!(out, json!({"hello": "world"}));
    let items: Vec<_> = (0..50).map(|i| json!({"op": "echo", "value": i})).collect();
    let out = ok(
        &rt,
        "probe",
        json!({"op": "for_each", "flow": "probe", "items": items, "concurrency": 8}),
    )
    .await;
    let got: Vec<_> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ok"].clone())
        .collect();
    assert_eq!(got, (0..50).map(|i| json!(i)).collect::<Vec<_>>());
    // One failing item fails alone.
    let items = json!([{"op": "echo", "value": 1}, {"op": "fail", "message": "item two"}, {"op": "echo", "value": 3}]);
    let out = ok(
        &rt,
        "probe",
        json!({"op": "for_each", "flow": "probe", "items": items, "concurrency": 2}),
    )
    .await;
    assert_eq!(out[0]["ok"], 1);
    assert!(out[1]["err"].as_str().unwrap().contains("item two"));
    assert_eq!(out[2]["ok"], 3);
    // Not granted: U01 exists but probe may not call it.
    let e = err(
        &rt,
        "probe",
        json!({"op": "call", "flow": "U01", "input": {}}),
    )
    .await;
    assert!(
        e.contains("access-denied") && e.contains("grants.flows"),
        "{e}"
    );
}

/// For-each runs its children side by side (as futures on its worker tasks), yet never more
/// than `concurrency` of them at once. Each child notes the time as it starts and as it ends (around
/// a 300 ms sleep); the most children running at one moment is counted from those notes.
#[tokio::test(flavor = "multi_thread")]
async fn for_each_runs_at_most_concurrency_children_at_once() {
    let env = TestEnv::new();
    let rt = env.runtime();
    let most_at_once = |out: &serde_json::Value| -> usize {
        let spans: Vec<(String, String)> = out
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let notes = &r["ok"];
                let at = |i: usize| {
                    notes[i]
                        .as_str()
                        .unwrap_or_else(|| panic!("{r}"))
                        .to_string()
                };
                (at(0), at(2))
            })
            .collect();
        // At each start, the children that started no later and had not yet ended (the
        // timestamps are fixed-width UTC text, so they compare as strings).
        spans
            .iter()
            .map(|(start, _)| {
                spans
                    .iter()
                    .filter(|(s, e)| s <= start && start < e)
                    .count()
            })
            .max()
            .unwrap()
    };
    let child =
        json!({"op": "steps", "steps": [{"op": "now"}, {"op": "sleep", "ms": 300}, {"op": "now"}]});
    for (concurrency, items) in [(3, 9), (1, 4)] {
        let out = ok(
            &rt,
            "probe",
            json!({"op": "for_each", "flow": "probe", "items": vec![child.clone(); items],
                   "concurrency": concurrency}),
        )
        .await;
        assert_eq!(out.as_array().unwrap().len(), items, "{out}");
        let most = most_at_once(&out);
        assert!(
            most <= concurrency,
            "{most} at once at concurrency {concurrency}: {out}"
        );
        if concurrency > 1 {
            assert!(most > 1, "the children ran one at a time: {out}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_only_when_granted_and_never_in_history() {
    let env = TestEnv::new().with_secrets(&[
        ("PROBE_TOKEN", "tok-5f2a9c"),
        ("ASA_KEY_SECRET", "never-for-probe"),
    ]);
    let rt = env.runtime();
    let r = run(
        &rt,
        "probe",
        json!({"op": "steps", "steps": [
            {"op": "secret", "name": "PROBE_TOKEN"},
            {"op": "log", "level": "info", "message": "the token is tok-5f2a9c"}
        ]}),
    )
    .await;
    assert!(r.ok(), "{:?}", r.error);
    assert!(
        r.output.as_deref().unwrap().contains("tok-5f2a9c"),
        "the flow itself gets the value"
    );
    let rec = rt.history.get(r.id).unwrap().unwrap();
    let text = serde_json::to_string(&rec).unwrap();
    assert!(
        !text.contains("tok-5f2a9c"),
        "history holds the secret: {text}"
    );
    assert!(text.contains("[REDACTED]"), "{text}");
    let e = err(
        &rt,
        "probe",
        json!({"op": "secret", "name": "ASA_KEY_SECRET"}),
    )
    .await;
    assert!(
        e.contains("access-denied") && !e.contains("never-for-probe"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn schedule_log_and_cache() {
    let env = TestEnv::new();
    let rt = env.runtime();
    let now = ok(&rt, "probe", json!({"op": "now"})).await;
    let now = now.as_str().unwrap();
    assert!(
        now.len() == 24 && now.ends_with('Z') && now.as_bytes()[19] == b'.',
        "{now}"
    );
    let r = run(
        &rt,
        "probe",
        json!({"op": "request_run", "flow": "echo", "input": {"again": true}, "delay_ms": 0}),
    )
    .await;
    assert!(r.ok(), "{:?}", r.error);
    assert_eq!(r.requests.len(), 1);
    assert_eq!(r.requests[0].flow, "echo");
    // A failed run's requests are dropped with its writes.
    let r = run(&rt, "probe", json!({"op": "steps", "steps": [
        {"op": "request_run", "flow": "echo", "input": {}, "delay_ms": 0}, {"op": "fail", "message": "no"}]}))
    .await;
    assert!(!r.ok() && r.requests.is_empty());
    let r = run(
        &rt,
        "probe",
        json!({"op": "log", "level": "warn", "message": "careful now"}),
    )
    .await;
    let rec = rt.history.get(r.id).unwrap().unwrap();
    assert!(
        rec.logs
            .iter()
            .any(|l| l.message == "careful now" && l.level == "warn"),
        "{:?}",
        rec.logs
    );
    // The cache answers within the ttl, and not after it: `short` (1 s) expires, `long`
    // (a minute) stays.
    let set = |key: &str, ttl_ms: u64| json!({"op": "cache_set", "key": key, "value": format!("{key}-value"), "ttl_ms": ttl_ms});
    let get = |key: &str| json!({"op": "cache_get", "key": key});
    let out = ok(
        &rt,
        "probe",
        json!({"op": "steps", "steps": [set("long", 60_000), set("short", 1000), get("short")]}),
    )
    .await;
    assert_eq!(out[2], json!("short-value"));
    common::wait_until(common::PATIENCE, "the 1 s cache entry to expire", || {
        rt.cache.get("probe", "short").is_none()
    })
    .await;
    assert_eq!(ok(&rt, "probe", get("short")).await, json!(null));
    assert_eq!(ok(&rt, "probe", get("long")).await, json!("long-value"));
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_flows_fail_alone_with_clear_errors() {
    let env = TestEnv::new();
    let rt = env.runtime();
    let r = run(&rt, "probe", json!({"op": "loop"})).await;
    assert_eq!(r.status, RunStatus::Timeout, "{:?}", r.error);
    assert!(r.error.as_deref().unwrap().contains("timed out"));

    let e = err(&rt, "probe", json!({"op": "alloc", "mb": 200})).await;
    assert!(e.contains("memory limit of 32MiB"), "{e}");

    let e = err(&rt, "probe", json!({"op": "recurse"})).await;
    assert!(e.contains("depth limit"), "{e}");

    let e = err(&rt, "probe", json!({"op": "panic"})).await;
    assert!(e.contains("panicked"), "{e}");

    // The host still runs flows after all that.
    assert_eq!(
        ok(&rt, "echo", json!({"still": "here"})).await,
        json!({"still": "here"})
    );
}

/// A folder with `roomy`: the probe component with more memory and a shorter timeout than
/// `probe` (so that a big output reaches the output cap, not the memory cap, and a loop ends
/// soon), granted the probe's table; the runtime sees it beside the test flows.
fn with_roomy_probe(mut env: TestEnv) -> (TestEnv, std::sync::Arc<Runtime>) {
    let dir = env.dir.path().join("roomy");
    common::drop_probe(
        &dir,
        "roomy",
        "title: Roomy probe\ntimeout: 2s\nmemory: 256MiB\ngrants:\n  tables:\n    write: [Probe Items]\n",
    );
    env.config.flows.push(dir);
    let rt = env.runtime();
    (env, rt)
}

/// Writes made before a trap or a timeout are rolled back with the run.
#[tokio::test(flavor = "multi_thread")]
async fn writes_before_a_trap_or_a_timeout_are_rolled_back() {
    let (_env, rt) = with_roomy_probe(TestEnv::new());
    let count = || table("count", json!({"filter": {}}));
    for (last, status, says) in [
        ("panic", RunStatus::Error, "panicked"),
        ("loop", RunStatus::Timeout, "timed out"),
    ] {
        let steps = json!({"op": "steps", "steps": [
            table("insert", json!({"row": {"id": format!("before-{last}")}})),
            count(),
            {"op": "log", "level": "info", "message": "inserted"},
            {"op": last}
        ]});
        let r = run(&rt, "roomy", steps).await;
        assert_eq!(r.status, status, "{last}: {:?}", r.error);
        assert!(
            r.error.as_deref().unwrap_or("").contains(says),
            "{last}: {:?}",
            r.error
        );
        // The insert happened (the step after it logged) before the run failed.
        let rec = rt.history.get(r.id).unwrap().unwrap();
        assert!(
            rec.logs.iter().any(|l| l.message == "inserted"),
            "{last}: {:?}",
            rec.logs
        );
        assert_eq!(ok(&rt, "probe", count()).await, json!(0), "after {last}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_files_are_skipped_and_the_rest_load() {
    let env = TestEnv::new();
    let dir = env.dir.path().join("flows");
    std::fs::create_dir_all(&dir).unwrap();
    let test_flows = common::flows_dir("dist-test");
    std::fs::copy(test_flows.join("echo.wasm"), dir.join("echo.wasm")).unwrap();
    std::fs::copy(test_flows.join("echo.yaml"), dir.join("echo.yaml")).unwrap();
    std::fs::write(dir.join("junk.wasm"), b"this is not wasm").unwrap();
    std::fs::write(dir.join("junk.yaml"), "title: Junk\n").unwrap();
    std::fs::write(
        dir.join("typo.wasm"),
        std::fs::read(test_flows.join("echo.wasm")).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("typo.yaml"),
        "title: Typo\ngrants:\n  tables:\n    read: [Audit Evnts]\n",
    )
    .unwrap();
    std::fs::write(dir.join("bad.yaml"), "title: [unclosed\n").unwrap();
    let mut config = env.config.clone();
    config.flows = vec![dir.clone()];
    let rt = config.open_runtime().unwrap();
    let reg = rt.registry();
    assert!(reg.get("echo").is_some());
    let errors = reg.errors.join("\n");
    assert!(
        errors.contains("junk.wasm: not a WebAssembly file"),
        "{errors}"
    );
    assert!(
        errors.contains("typo.yaml:4: grants.tables.read: no table `Audit Evnts`"),
        "{errors}"
    );
    assert!(
        errors.contains("(did you mean `Audit Events`?)"),
        "{errors}"
    );
    assert!(errors.contains("bad.yaml"), "{errors}");
    assert_eq!(ok(&rt, "echo", json!([1, 2])).await, json!([1, 2]));
}

/// Each size limit is reached on its own: an output over the 16 MiB cap (from a flow with
/// memory to spare), a for-each one item over the 100,000 limit, and memory over the cap.
#[tokio::test(flavor = "multi_thread")]
async fn a_huge_output_a_huge_for_each_and_a_huge_allocation_fail_alone() {
    let (_env, rt) = with_roomy_probe(TestEnv::new());
    let e = err(&rt, "roomy", json!({"op": "big_output", "mb": 20})).await;
    assert!(
        e.contains("roomy: output of 20971522 bytes is over the limit of 16777216 bytes"),
        "{e}"
    );
    let items = vec![json!(0); 100_001];
    let e = err(
        &rt,
        "probe",
        json!({"op": "for_each", "flow": "echo", "items": items, "concurrency": 8}),
    )
    .await;
    assert!(
        e.contains("limit-exceeded")
            && e.contains("for-each of 100001 items is over the limit of 100000"),
        "{e}"
    );
    let e = err(&rt, "probe", json!({"op": "alloc", "mb": 200})).await;
    assert!(e.contains("memory limit of 32MiB exceeded"), "{e}");
    assert_eq!(
        ok(&rt, "echo", json!({"after": true})).await,
        json!({"after": true})
    );
}

/// A flow controls a cache entry's ttl: the longest one (`u64::MAX` ms) means "kept", not an
/// overflow in the host.
#[tokio::test(flavor = "multi_thread")]
async fn a_cache_entry_with_the_longest_ttl_is_kept() {
    let env = TestEnv::new();
    let rt = env.runtime();
    let r = run(
        &rt,
        "probe",
        json!({"op": "steps", "steps": [
            {"op": "cache_set", "key": "forever", "value": "v", "ttl_ms": u64::MAX},
            {"op": "cache_get", "key": "forever"}
        ]}),
    )
    .await;
    assert!(r.ok(), "{:?}", r.error);
    assert_eq!(common::out(&r)[1], json!("v"));
}

/// A server controls a 429's wait: a time beyond any deadline (`X-RateLimit-Retry-At: 1e300`,
/// `Retry-After: 18446744073709551615`) fails the run with the deadline error naming the URL,
/// not a panic in the host (`caps/http.rs` `rate_limit_wait` used `Duration::from_secs_f64`
/// and added the jitter unchecked).
#[tokio::test(flavor = "multi_thread")]
async fn a_429_naming_a_time_beyond_any_deadline_fails_the_run_cleanly() {
    let env = TestEnv::new();
    let rt = env.runtime();
    for (name, value) in [
        ("x-ratelimit-retry-at", "1e300"),
        ("retry-after", "18446744073709551615"),
    ] {
        let app = axum::Router::new().fallback(move || async move {
            (
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                [(name, value)],
                "slow down",
            )
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/limited", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let e = err(
            &rt,
            "probe",
            json!({"op": "http", "method": "GET", "url": url,
                   "retry": {"max_attempts": 2, "initial_backoff_ms": 10, "max_backoff_ms": 10}}),
        )
        .await;
        assert!(
            e.contains("timeout: ") && e.contains(&url) && e.contains("past this run's deadline"),
            "{name}: {value}: {e}"
        );
        assert!(
            e.contains(value),
            "the error names what the server sent: {e}"
        );
    }
}
