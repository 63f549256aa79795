//! API endpoint flows through the binary: a real `flowhost serve` on loopback called with a
//! real HTTP client (reqwest). A good token runs the flow (trigger `api` in run history), a
//! wrong or missing one is 401 and counted in `/metrics`, a flow without `api:` is 404 like an
//! unknown name, a body over `api_max_body` is 413 and records no run, `?async=true` answers
//! 202 and the run is polled at `/api/runs/ID`, a failed run is 500 with its error, a
//! switched-off flow is 409; wrong tokens are limited per address (429 with `Retry-After`,
//! the right token never slowed); O10, exposed through the config's `grants:`, moves Audit Events
//! to a blob store and the runs it requests are run by `serve`. Also: `list` and `check`
//! about API flows, and the listener's header-read timeout.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::process::Flowhost;
use common::{drop_flow, env_with_flows, flowhost, text, wait_until, TestEnv, PATIENCE};
use flowhost::history::{History, RunStatus, Trigger};
use serde_json::{json, Value};

const TOKEN: &str = "tok-4d1e9c2b7a";
const TOKEN_HEADER: &str = "x-api-client-token";

/// A `flowhost serve --listen 127.0.0.1:0` and its `http://ADDR` (killed when dropped, so a
/// failed test leaves no process behind).
struct Api {
    serve: Option<Flowhost>,
    origin: String,
    http: reqwest::Client,
}

impl Api {
    fn start(config: &Path) -> Api {
        let mut serve = Flowhost::spawn(
            config,
            &["serve", "--listen", "127.0.0.1:0"],
            &[("RUST_LOG", "info")],
        );
        let origin = serve.listening();
        Api {
            serve: Some(serve),
            origin,
            http: reqwest::Client::new(),
        }
    }

    fn serve(&mut self) -> &mut Flowhost {
        self.serve.as_mut().unwrap()
    }

    /// `POST /api/flows/FLOW/invoke[?QUERY]` with `body` and `token` (if any).
    async fn invoke(
        &self,
        flow: &str,
        query: &str,
        body: impl Into<reqwest::Body>,
        token: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/api/flows/{flow}/invoke{query}", self.origin))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.header(TOKEN_HEADER, t);
        }
        req.send().await.unwrap()
    }

    /// `GET path` with `token` (if any): status and body as JSON.
    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.get(format!("{}{path}", self.origin));
        if let Some(t) = token {
            req = req.header(TOKEN_HEADER, t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    /// `flowhost_api_requests_total{flow, code}` on `/metrics` (0 when absent).
    async fn api_requests(&self, flow: &str, code: &str) -> f64 {
        let body = reqwest::get(format!("{}/metrics", self.origin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let scrape =
            prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap();
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == "flowhost_api_requests_total")
            .filter(|s| s.labels.get("flow") == Some(flow) && s.labels.get("code") == Some(code))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                ref other => panic!("not a counter: {other:?}"),
            })
            .sum()
    }

    /// SIGTERM, the exit status and every stderr line.
    fn stop(self) -> (std::process::ExitStatus, Vec<String>) {
        self.serve.as_ref().unwrap().signal(libc::SIGTERM);
        self.stop_waiting()
    }

    /// Waits for `serve` to exit (after a signal sent already): its status and stderr lines.
    fn stop_waiting(mut self) -> (std::process::ExitStatus, Vec<String>) {
        self.serve.take().unwrap().finish()
    }
}

/// The error line of `flowhost list` on a config it refuses (exit 2).
fn refused_config(config: &Path) -> String {
    let out = flowhost(config, &["list"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    common::error_line(&text(&out.stderr))
}

/// Run history of `db`, read-only.
fn history(db: &Path) -> History {
    History::open_read_only(&flowhost::history::history_path_for(db)).unwrap()
}

/// A world with the flows `hello` (echo, an API flow), `plain` (echo, not one) and `prober`
/// (probe, an API flow), the token in the secrets file, a 1 KiB body cap; and its config.
fn small_world() -> (TestEnv, PathBuf) {
    let (env, dir) = env_with_flows();
    let env = env.with_secrets(&[("HELLO_TOKEN", TOKEN)]);
    drop_flow(
        &dir,
        "hello",
        "echo",
        "title: Hello\napi: {token_secret: HELLO_TOKEN}\n",
    );
    drop_flow(&dir, "plain", "echo", "title: Plain\n");
    drop_flow(
        &dir,
        "prober",
        "probe",
        "title: Prober\ntimeout: 30s\napi: {token_secret: HELLO_TOKEN}\n",
    );
    let config = env.config_file("api_max_body: 1KiB\n");
    (env, config)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_good_token_runs_the_flow_and_wrong_or_missing_ones_are_401_and_counted() {
    let (env, config) = small_world();
    let mut api = Api::start(&config);

    // A good token: the flow's output, the run's id, and the row in history (trigger api).
    let input = json!({"greeting": "hi", "n": 3});
    let resp = api
        .invoke("hello", "", input.to_string(), Some(TOKEN))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let id: i64 = resp.headers()["x-flowhost-run-id"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap(), input);
    let row = history(env.db()).get(id).unwrap().unwrap();
    assert_eq!(
        (row.flow.as_str(), row.trigger, row.status),
        ("hello", Trigger::Api, RunStatus::Ok)
    );
    assert_eq!(serde_json::from_str::<Value>(&row.input).unwrap(), input);

    // An empty body is the input {}.
    let resp = api.invoke("hello", "", "", Some(TOKEN)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "{}");

    // A wrong token and no token: 401, the same body, no hint, counted twice.
    let before = api.api_requests("hello", "401").await;
    let wrong = api.invoke("hello", "", "{}", Some("tok-wrong-0000")).await;
    let missing = api.invoke("hello", "", "{}", None).await;
    let mut bodies = Vec::new();
    for resp in [wrong, missing] {
        assert_eq!(resp.status(), 401);
        assert!(resp.headers().get("www-authenticate").is_none());
        assert!(resp.headers().get("x-flowhost-run-id").is_none());
        bodies.push(resp.json::<Value>().await.unwrap());
    }
    assert_eq!(
        bodies[0],
        json!({"error": "missing or wrong x-api-client-token"})
    );
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(api.api_requests("hello", "401").await, before + 2.0);
    assert_eq!(api.api_requests("hello", "200").await, 2.0);
    // Logged at warn with the client's address, never the token presented.
    let line = api
        .serve()
        .wait_line("the refusal", |l| l.contains("API request refused"));
    assert!(
        line.contains("WARN") && line.contains("127.0.0.1"),
        "{line}"
    );
    // Only the two good calls ran.
    let runs = history(env.db()).list(Some("hello"), 100).unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");

    let (status, lines) = api.stop();
    assert!(status.success(), "{lines:?}");
    let all = lines.join("\n");
    assert!(
        !all.contains("tok-wrong-0000") && !all.contains(TOKEN),
        "{all}"
    );
}

/// Wrong tokens are limited per client address: the right token spends nothing however often
/// it comes; ten wrong ones are each answered 401; past them the address is refused, and its
/// requests are 429 with `Retry-After` before their token is looked at, the right one
/// included, on every route and on the console's `Authorization: Bearer` (one budget). The
/// refusal is logged once, with the address and never a token; nothing refused runs.
#[tokio::test(flavor = "multi_thread")]
async fn wrong_tokens_are_limited_per_address_and_the_right_one_is_never_slowed() {
    let (env, _) = small_world();
    let config = env.config_file("console: {token_secret: HELLO_TOKEN}\n");
    let mut api = Api::start(&config);
    let resp = api.invoke("hello", "", "{}", Some(TOKEN)).await;
    assert_eq!(resp.status(), 200);
    let run = resp.headers()["x-flowhost-run-id"]
        .to_str()
        .unwrap()
        .to_string();
    for _ in 0..30 {
        let (status, _) = api.get("/api/flows/hello/openapi.json", Some(TOKEN)).await;
        assert_eq!(status, 200);
    }
    // Ten wrong guesses are checked and refused (401); the next spends what is left of the
    // budget (one more may come back while they are sent: one every 6 s).
    let mut answers = Vec::new();
    for i in 0..14 {
        let resp = api
            .invoke("hello", "", "{}", Some(&format!("tok-guess-{i:04}")))
            .await;
        answers.push(resp.status().as_u16());
        if resp.status() == 429 {
            break;
        }
    }
    assert_eq!(answers[..10], [401; 10], "{answers:?}");
    assert_eq!(answers.last(), Some(&429), "{answers:?}");
    assert!((12..=13).contains(&answers.len()), "{answers:?}");

    // Now the right token is refused too, before it is looked at, on every route.
    let resp = api.invoke("hello", "", "{}", Some(TOKEN)).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().get("x-flowhost-run-id").is_none());
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=6).contains(&wait), "Retry-After {wait}");
    let body = resp.json::<Value>().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with("too many wrong x-api-client-token from this address: try again in "),
        "{body}"
    );
    for path in [
        "/api/flows/hello/openapi.json".to_string(),
        format!("/api/runs/{run}"),
    ] {
        let (status, _) = api.get(&path, Some(TOKEN)).await;
        assert_eq!(status, 429, "{path}");
    }
    let console = api
        .http
        .get(format!("{}/", api.origin))
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(console.status(), 429);
    assert!(console.headers().get("retry-after").is_some());
    assert_eq!(api.api_requests("hello", "429").await, 4.0);
    // Only the first call ran: the guesses were refused, the right call throttled.
    assert_eq!(history(env.db()).list(Some("hello"), 10).unwrap().len(), 1);
    let line = api
        .serve()
        .wait_line("the refusal", |l| l.contains("too many wrong tokens"));
    assert!(
        line.contains("WARN") && line.contains("127.0.0.1"),
        "{line}"
    );

    let (status, lines) = api.stop();
    assert!(status.success(), "{lines:?}");
    let all = lines.join("\n");
    assert_eq!(
        all.matches("too many wrong tokens").count(),
        1,
        "logged once per refusal: {all}"
    );
    assert!(!all.contains("tok-guess-") && !all.contains(TOKEN), "{all}");
}

/// `systemctl reload` (SIGHUP) changes the listener's settings from the next request on: a
/// larger `api_max_body:`, the console turned on and off, a proxy now trusted. A new `listen:`
/// waits for a restart, and a warning says so.
#[tokio::test(flavor = "multi_thread")]
async fn a_reload_changes_the_listeners_settings_for_the_next_request() {
    let (env, config) = small_world();
    let mut api = Api::start(&config);
    let big = format!(r#"{{"pad": "{}"}}"#, "x".repeat(4000));
    assert_eq!(invoke_status(&api, &big).await, 413);
    assert_eq!(console_page(&api, None).await, 404);

    // A larger body cap and the loopback console.
    env.config_file("api_max_body: 64KiB\nconsole: true\n");
    reload(
        &mut api,
        &["settings=api_max_body, console", "console on http://"],
    );
    assert_eq!(invoke_status(&api, &big).await, 200);
    assert_eq!(console_page(&api, None).await, 200);
    // A request a proxy forwarded (here the test is the proxy), while no proxy is trusted:
    // the console cannot tell where its client is, wherever the header says it is.
    assert_eq!(console_page(&api, Some("203.0.113.7")).await, 403);
    assert_eq!(console_page(&api, Some("127.0.0.1")).await, 403);
    let refusal = api
        .http
        .get(format!("{}/", api.origin))
        .header("x-real-ip", "127.0.0.1")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        refusal.contains("a proxy that `trusted_proxies:` does not list"),
        "{refusal}"
    );

    // The proxy on this machine trusted, and another address to listen on (not applied).
    env.config_file(
        "api_max_body: 64KiB\nconsole: true\ntrusted_proxies: [127.0.0.1]\nlisten: 127.0.0.1:1\n",
    );
    reload(&mut api, &["`listen:` changed", "settings=trusted_proxies"]);
    assert_eq!(console_page(&api, Some("203.0.113.7")).await, 403);
    assert_eq!(console_page(&api, Some("127.0.0.1")).await, 200);
    assert_eq!(console_page(&api, None).await, 200);

    // The console off again; the cap stays.
    env.config_file("api_max_body: 64KiB\n");
    reload(
        &mut api,
        &["settings=console, trusted_proxies", "console off"],
    );
    assert_eq!(console_page(&api, None).await, 404);
    assert_eq!(invoke_status(&api, &big).await, 200);
    let (status, lines) = api.stop();
    assert!(status.success(), "{lines:?}");
}

/// SIGHUP to `api`'s serve; waits for each of `lines` in turn, then for the reload's end.
fn reload(api: &mut Api, lines: &[&str]) {
    let serve = api.serve();
    serve.signal(libc::SIGHUP);
    for want in lines {
        serve.wait_line(want, |l| l.contains(want));
    }
    serve.wait_line("the reload's end", |l| l.contains("reloaded the config"));
}

/// The status of `hello` called with `body` and the right token.
async fn invoke_status(api: &Api, body: &str) -> u16 {
    let resp = api.invoke("hello", "", body.to_string(), Some(TOKEN)).await;
    resp.status().as_u16()
}

/// The status of the console's front page, with `X-Forwarded-For: xff` if given.
async fn console_page(api: &Api, xff: Option<&str>) -> u16 {
    let mut req = api.http.get(format!("{}/", api.origin));
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget_and_loopback_means_it() {
    let (env, _) = small_world();
    let config = env.config_file("trusted_proxies: [127.0.0.1, \"10.0.0.0/8\"]\n");
    let mut api = Api::start(&config);
    // This test is the proxy: it connects from 127.0.0.1 and says whom it forwards.
    let call = |xff: Option<&'static str>, token: String| {
        let mut req = api
            .http
            .post(format!("{}/api/flows/hello/invoke", api.origin))
            .header("content-type", "application/json")
            .header(TOKEN_HEADER, token)
            .body("{}");
        if let Some(x) = xff {
            req = req.header("x-forwarded-for", x);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let mut answers = Vec::new();
    for i in 0..14 {
        let status = call(Some("203.0.113.7"), format!("tok-guess-{i:04}")).await;
        answers.push(status);
        if status == 429 {
            break;
        }
    }
    assert_eq!(answers[..10], [401; 10], "{answers:?}");
    assert_eq!(answers.last(), Some(&429), "{answers:?}");
    // What a client writes left of its own address proves nothing: still the same client.
    assert_eq!(
        call(Some("198.51.100.9, 203.0.113.7"), "tok-guess-x".into()).await,
        429
    );
    assert_eq!(call(Some("203.0.113.7"), TOKEN.into()).await, 429);
    // Another client behind the same proxy, through a second trusted hop, and the proxy
    // itself each have their own budget.
    assert_eq!(call(Some("203.0.113.8"), "tok-guess-y".into()).await, 401);
    assert_eq!(call(Some("203.0.113.8, 10.1.2.3"), TOKEN.into()).await, 200);
    assert_eq!(call(None, "tok-guess-z".into()).await, 401);
    assert_eq!(call(None, TOKEN.into()).await, 200);
    let line = api
        .serve()
        .wait_line("the refusal", |l| l.contains("too many wrong tokens"));
    assert!(
        line.contains("203.0.113.7 (via 127.0.0.1:"),
        "the log names the client and the proxy: {line}"
    );
    let (status, lines) = api.stop();
    assert!(status.success(), "{lines:?}");

    // The loopback-only console behind a proxy on this machine: a forwarded client is not
    // on this machine.
    let config = env.config_file("console: true\ntrusted_proxies: [127.0.0.1]\n");
    let api = Api::start(&config);
    assert_eq!(console_page(&api, Some("203.0.113.7")).await, 403);
    assert_eq!(console_page(&api, Some("127.0.0.1")).await, 200);
    assert_eq!(console_page(&api, None).await, 200);
    let (status, lines) = api.stop();
    assert!(status.success(), "{lines:?}");

    // An entry that is not an address or a range is refused, named.
    let config = env.config_file("trusted_proxies: [127.0.0.1, proxy.example.com]\n");
    let error = refused_config(&config);
    assert!(
        error.contains(&format!(
            "{}: trusted_proxies[1]: `proxy.example.com` is not an IP address or a CIDR range",
            config.display()
        )),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn flows_without_api_are_404_like_unknown_names_and_bodies_are_checked() {
    let (env, config) = small_world();
    let api = Api::start(&config);

    // `plain` exists but has no `api:`: the same answer as a name that does not exist.
    let mut answers = Vec::new();
    for name in ["plain", "nosuch"] {
        let resp = api.invoke(name, "", "{}", Some(TOKEN)).await;
        assert_eq!(resp.status(), 404);
        let body: Value = resp.json().await.unwrap();
        answers.push(body.to_string().replace(name, "NAME"));
        let (status, _) = api
            .get(&format!("/api/flows/{name}/openapi.json"), Some(TOKEN))
            .await;
        assert_eq!(status, 404);
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(
        answers[0],
        r#"{"error":"no API endpoint flow named `NAME`"}"#
    );
    // Counted under flow "", not under the made-up name.
    assert_eq!(api.api_requests("", "404").await, 4.0);
    assert_eq!(api.api_requests("nosuch", "404").await, 0.0);

    // A body over `api_max_body` (1KiB here): 413, and no run recorded.
    let big = json!({"pad": "x".repeat(2048)}).to_string();
    let resp = api.invoke("hello", "", big, Some(TOKEN)).await;
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"],
        "the body is over the limit of 1KiB (`api_max_body:` in the config)"
    );
    // Not JSON: 400 naming the line and column; nothing recorded either.
    let resp = api.invoke("hello", "", "{\"a\": }", Some(TOKEN)).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with("the body is not valid JSON: ") && error.contains("line 1 column 7"),
        "{error}"
    );
    assert!(history(env.db())
        .list(Some("hello"), 10)
        .unwrap()
        .is_empty());

    // A run of a flow that is not an API flow is not there for the API either.
    let out = flowhost(&config, &["run", "plain", "--input", "{}"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plain_run = history(env.db()).list(Some("plain"), 1).unwrap()[0].id;
    // Without an API flow's token a run id that is not there (or not an API flow's) gets the
    // same 401 as a wrong token: ids cannot be probed. With one, 404.
    for path in [
        format!("/api/runs/{plain_run}"),
        "/api/runs/99999".to_string(),
        "/api/runs/not-a-number".to_string(),
    ] {
        for token in [None, Some("tok-wrong-0000")] {
            let (status, body) = api.get(&path, token).await;
            assert_eq!(
                (status, body),
                (401, json!({"error": "missing or wrong x-api-client-token"})),
                "{path} {token:?}"
            );
        }
    }
    let (status, _) = api.get("/api/runs/99999", Some(TOKEN)).await;
    assert_eq!(status, 404);
    let (status, body) = api
        .get(&format!("/api/runs/{plain_run}"), Some(TOKEN))
        .await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"error": format!("no run `{plain_run}` of an API endpoint flow")})
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn async_runs_are_polled_failed_runs_are_500_and_switched_off_flows_409() {
    let (env, config) = small_world();
    let api = Api::start(&config);

    // ?async=true: 202 with the run's id at once, then polled until it ended.
    let input = json!({"op": "echo", "value": {"answer": 42}});
    let resp = api
        .invoke("prober", "?async=true", input.to_string(), Some(TOKEN))
        .await;
    assert_eq!(resp.status(), 202);
    let started: Value = resp.json().await.unwrap();
    let id = started["run"].as_i64().unwrap();
    assert_eq!(
        started,
        json!({"run": id, "status": "running", "href": format!("/api/runs/{id}")})
    );
    let href = started["href"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + PATIENCE;
    let run = loop {
        let (status, body) = api.get(&href, Some(TOKEN)).await;
        assert_eq!(status, 200, "{body}");
        if body["status"] != "running" {
            break body;
        }
        assert!(std::time::Instant::now() < deadline, "run {id} never ended");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(run["status"], "ok", "{run}");
    assert_eq!(
        (&run["flow"], &run["trigger"], &run["output"]),
        (&json!("prober"), &json!("api"), &json!({"answer": 42}))
    );
    assert!(run["ended"].is_string(), "{run}");
    // The run's route needs the token of its flow.
    let (status, _) = api.get(&href, Some("tok-wrong-0000")).await;
    assert_eq!(status, 401);
    let (status, _) = api.get(&href, None).await;
    assert_eq!(status, 401);

    // A failed run: 500 with its status and error (as history holds them).
    let resp = api
        .invoke(
            "prober",
            "",
            json!({"op": "fail", "message": "probe: the backend said no"}).to_string(),
            Some(TOKEN),
        )
        .await;
    assert_eq!(resp.status(), 500);
    let body: Value = resp.json().await.unwrap();
    let failed = body["run"].as_i64().unwrap();
    assert_eq!(body["status"], "error", "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("probe: the backend said no"),
        "{body}"
    );
    let row = history(env.db()).get(failed).unwrap().unwrap();
    assert_eq!((row.trigger, row.status), (Trigger::Api, RunStatus::Error));
    assert_eq!(row.error.as_deref(), body["error"].as_str());

    // Switched off: 409 naming the command that switches it on; on again, it runs.
    let off = flowhost(&config, &["flow", "disable", "hello"]);
    assert!(off.status.success(), "{}", text(&off.stderr));
    let before = history(env.db()).list(Some("hello"), 10).unwrap().len();
    let resp = api.invoke("hello", "", "{}", Some(TOKEN)).await;
    assert_eq!(resp.status(), 409);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("`flowhost flow enable hello`"),
        "{body}"
    );
    assert_eq!(
        history(env.db()).list(Some("hello"), 10).unwrap().len(),
        before
    );
    let on = flowhost(&config, &["flow", "enable", "hello"]);
    assert!(on.status.success(), "{}", text(&on.stderr));
    let resp = api.invoke("hello", "", "{}", Some(TOKEN)).await;
    assert_eq!(resp.status(), 200);

    // The endpoint's OpenAPI document, for the token holder only.
    let (status, _) = api.get("/api/flows/hello/openapi.json", None).await;
    assert_eq!(status, 401);
    let (status, doc) = api.get("/api/flows/hello/openapi.json", Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    assert_eq!(doc["info"]["title"], "Hello");
    let invoke = &doc["paths"]["/api/flows/hello/invoke"]["post"];
    for code in [
        "200", "202", "400", "401", "404", "409", "413", "500", "503",
    ] {
        assert!(invoke["responses"][code].is_object(), "{code}: {invoke}");
    }
    assert_eq!(invoke["parameters"][0]["name"], "async");
    assert!(doc["paths"]["/api/runs/{id}"]["get"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["clientToken"],
        json!({"type": "apiKey", "in": "header", "name": "x-api-client-token"})
    );
}

#[test]
fn list_shows_api_flows_and_check_names_a_missing_token_secret() {
    let (env, dir) = env_with_flows();
    drop_flow(
        &dir,
        "hello",
        "echo",
        "title: Hello\napi: {token_secret: HELLO_TOKEN}\n",
    );
    drop_flow(&dir, "plain", "echo", "title: Plain\n");
    let config = env.config_file("");

    let out = flowhost(&config, &["list", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let api_of = |name: &str| {
        doc["flows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap()["api"]
            .clone()
    };
    assert_eq!(
        api_of("hello"),
        json!({"token_secret": "HELLO_TOKEN", "invoke": "/api/flows/hello/invoke"})
    );
    assert_eq!(api_of("plain"), Value::Null);
    let out = flowhost(&config, &["list"]);
    let list = text(&out.stdout);
    assert!(
        list.contains("api: POST /api/flows/hello/invoke (token: secret HELLO_TOKEN)"),
        "{list}"
    );

    // The token secret is not set: an error naming the manifest, the field and the fix.
    let out = flowhost(&config, &["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let report = text(&out.stdout);
    let manifest = dir.join("hello.yaml");
    let want = format!(
        "error: {}: api.token_secret: the client token secret `HELLO_TOKEN` of API endpoint \
         flow hello is not set, so `serve` refuses every request to it (set \
         FLOWHOST_SECRET_HELLO_TOKEN",
        manifest.display()
    );
    assert!(report.contains(&want), "{report}");
    // Set: no finding, and the value is never printed.
    let out = common::flowhost_cmd(&config, &["check"])
        .env("FLOWHOST_SECRET_HELLO_TOKEN", TOKEN)
        .output()
        .unwrap();
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(
        !report.contains(TOKEN) && !report.contains("HELLO_TOKEN"),
        "{report}"
    );

    // A bad secret name in the config's grants: exit 2 naming the file and the field.
    let bad = env.config_file("grants:\n  plain:\n    api: {token_secret: \"my token\"}\n");
    let error = refused_config(&bad);
    assert!(
        error.contains(&format!(
            "{}: grants.plain.api.token_secret: `my token` is not a secret name",
            bad.display()
        )),
        "{error}"
    );
}

#[test]
fn a_bad_api_max_body_is_refused_naming_the_field_and_range() {
    let (env, _dir) = env_with_flows();
    for (value, want) in [
        ("100", "api_max_body: `100` is out of range (1KiB to 1GiB)"),
        (
            "2GiB",
            "api_max_body: `2GiB` is out of range (1KiB to 1GiB)",
        ),
        ("lots", "api_max_body: `lots` is not a size"),
    ] {
        let config = env.config_file(&format!("api_max_body: {value}\n"));
        let error = refused_config(&config);
        assert!(
            error.contains(&format!("{}: {want}", config.display())),
            "{value}: {error}"
        );
    }
}

/// Rows for Audit Events, as JSON lines.
fn audit_events(n: usize) -> String {
    (0..n)
        .map(|i| {
            json!({"id": format!("ev-{i:03}"), "timestamp": format!("2026-01-01T00:00:{i:02}Z"), "type": "test"})
                .to_string()
                + "\n"
        })
        .collect()
}

fn audit_event_rows(env: &TestEnv) -> u64 {
    let schemas = Arc::new(env.config.schemas().unwrap());
    flowhost::store::Store::open_read_only(env.db(), schemas)
        .unwrap()
        .row_count("Audit Events")
        .unwrap()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        if e.path().is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn o10_exposed_through_the_config_moves_audit_events_and_serve_runs_what_it_requests() {
    let env = TestEnv::new().with_secrets(&[("O10_TOKEN", TOKEN)]);
    // The README's way: the built-in O10 exposed by the config's grants.
    let config = env.config_file("grants:\n  O10:\n    api: {token_secret: O10_TOKEN}\n");
    let rows = env.dir.path().join("events.jsonl");
    std::fs::write(&rows, audit_events(5)).unwrap();
    let out = flowhost(
        &config,
        &["table", "import", "Audit Events", rows.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // O10 reads the team from the settings U02 stores.
    let out = flowhost(
        &config,
        &["run", "U02", "--input", r#"{"asaTeam": "acme"}"#],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Off, so its tick at serve's start leaves the rows to the API call.
    let out = flowhost(&config, &["flow", "disable", "O10"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let api = Api::start(&config);

    let resp = api.invoke("O10", "", "{}", Some(TOKEN)).await;
    assert_eq!(resp.status(), 409);
    assert_eq!(audit_event_rows(&env), 5);

    let out = flowhost(&config, &["flow", "enable", "O10"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Two rows per run: this run asks to run again while rows remain, and serve runs that.
    let resp = api
        .invoke("O10", "", json!({"batch": 2}).to_string(), Some(TOKEN))
        .await;
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let h = history(env.db());
    wait_until(PATIENCE, "Audit Events emptied", || {
        audit_event_rows(&env) == 0
    })
    .await;
    let runs = h.list(Some("O10"), 20).unwrap();
    let by = |t: Trigger| {
        runs.iter()
            .filter(|r| r.trigger == t && r.status == RunStatus::Ok)
            .count()
    };
    assert_eq!(by(Trigger::Api), 1, "{runs:?}");
    assert!(by(Trigger::Request) >= 2, "{runs:?}");
    let objects = files_under(&env.dir.path().join("blobs").join("archive"));
    assert_eq!(objects.len(), 3, "{objects:?}");
    drop(api);
}

#[test]
fn a_client_that_sends_half_a_header_has_its_connection_closed() {
    let (_env, config) = small_world();
    let api = Api::start(&config);
    let addr = api.origin.trim_start_matches("http://").to_string();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .unwrap();
    // The server closes it (after its header-read timeout); the test's own read timeout only
    // bounds the wait for that.
    conn.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut got = Vec::new();
    let read = conn.read_to_end(&mut got);
    assert!(
        read.is_ok()
            || read
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the connection was not closed: {read:?}"
    );
    // Whatever it wrote is no answer to the half request but a refusal (or nothing).
    let answer = String::from_utf8_lossy(&got);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // A whole request on a new connection is still answered.
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.write_all(b"GET /api/runs/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    conn.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut got = String::new();
    conn.read_to_string(&mut got).unwrap();
    // (Without a token: the run route says no more than 401.)
    assert!(got.starts_with("HTTP/1.1 401"), "{got}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_config_reload_exposes_a_flow_without_a_restart() {
    let (env, _config) = small_world();
    let config = env.config_file("");
    let mut api = Api::start(&config);
    let resp = api.invoke("plain", "", "{}", Some(TOKEN)).await;
    assert_eq!(resp.status(), 404);
    // The config's grants gain `plain`'s endpoint; SIGHUP reads it again.
    env.config_file("grants:\n  plain:\n    api: {token_secret: HELLO_TOKEN}\n");
    api.serve().signal(libc::SIGHUP);
    api.serve()
        .wait_line("the reload", |l| l.contains("reloaded the flow folders"));
    let resp = api.invoke("plain", "", r#"{"x": 1}"#, Some(TOKEN)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), r#"{"x": 1}"#);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_token_takes_effect_at_a_reload_and_a_bad_secrets_file_changes_nothing() {
    const NEW_TOKEN: &str = "tok-rotated-8f3a61";
    let (env, config) = small_world();
    let secrets = env.config.secrets_file.clone().unwrap();
    let mut api = Api::start(&config);
    assert_eq!(answers(&api, [TOKEN, NEW_TOKEN]).await, [200, 401]);

    // A secrets file others may read is refused at the reload: the old token still works.
    std::fs::write(&secrets, format!("HELLO_TOKEN: \"{NEW_TOKEN}\"\n")).unwrap();
    set_mode(&secrets, 0o644);
    api.serve().signal(libc::SIGHUP);
    let line = api
        .serve()
        .wait_line("the refusal", |l| l.contains("config not reloaded"));
    assert!(line.contains("readable by others"), "{line}");
    assert_eq!(answers(&api, [TOKEN, NEW_TOKEN]).await, [200, 401]);

    // Fixed: the next reload swaps the token, and says which name changed.
    set_mode(&secrets, 0o600);
    api.serve().signal(libc::SIGHUP);
    let line = api
        .serve()
        .wait_line("the swap", |l| l.contains("secrets changed"));
    assert!(line.contains("changed=HELLO_TOKEN"), "{line}");
    assert_eq!(answers(&api, [TOKEN, NEW_TOKEN]).await, [401, 200]);

    // Both values stay secret: a run's output that holds them is redacted in its history.
    let resp = api
        .invoke(
            "hello",
            "",
            format!(r#"{{"old": "{TOKEN}", "new": "{NEW_TOKEN}"}}"#),
            Some(NEW_TOKEN),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let run: i64 = resp.headers()["x-flowhost-run-id"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let (status, lines) = api.stop();
    assert!(status.success(), "{lines:?}");
    let all = lines.join("\n");
    assert!(!all.contains(TOKEN) && !all.contains(NEW_TOKEN), "{all}");
    let record = history(env.db()).get(run).unwrap().unwrap();
    let stored = format!("{:?} {:?}", record.input, record.output);
    assert!(
        !stored.contains(TOKEN) && !stored.contains(NEW_TOKEN) && stored.contains("[REDACTED]"),
        "{stored}"
    );
}

/// The status `hello` answers with each of `tokens`.
async fn answers<const N: usize>(api: &Api, tokens: [&str; N]) -> Vec<u16> {
    let mut out = Vec::new();
    for t in tokens {
        out.push(
            api.invoke("hello", "", "{}", Some(t))
                .await
                .status()
                .as_u16(),
        );
    }
    out
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn once_shutdown_began_no_run_starts_and_the_running_one_finishes() {
    let (env, config) = small_world();
    let api = Api::start(&config);
    // A run that lasts long enough to be going while serve shuts down.
    let resp = api
        .invoke(
            "prober",
            "?async=true",
            json!({"op": "sleep", "ms": 15000}).to_string(),
            Some(TOKEN),
        )
        .await;
    assert_eq!(resp.status(), 202);
    let going = resp.json::<Value>().await.unwrap()["run"].as_i64().unwrap();
    api.serve.as_ref().unwrap().signal(libc::SIGTERM);
    // /healthz turns 503 once the scheduler stopped starting runs.
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let status = reqwest::get(format!("{}/healthz", api.origin))
            .await
            .unwrap()
            .status();
        if status == 503 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "healthz never 503");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let resp = api.invoke("hello", "", "{}", Some(TOKEN)).await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": "serve is shutting down: it starts no more runs"})
    );
    // serve waits for the run the API started, then exits 0.
    let (status, lines) = api.stop_waiting();
    assert!(status.success(), "{lines:?}");
    let row = history(env.db()).get(going).unwrap().unwrap();
    assert_eq!((row.trigger, row.status), (Trigger::Api, RunStatus::Ok));
    assert!(history(env.db())
        .list(Some("hello"), 10)
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_leave_through_the_api_and_a_sensitive_output_is_not_in_its_run() {
    let (env, dir) = env_with_flows();
    let secret = "p-9a7c55e1d0";
    let env = env.with_secrets(&[("HELLO_TOKEN", TOKEN), ("PROBE_TOKEN", secret)]);
    drop_flow(
        &dir,
        "teller",
        "probe",
        "title: Teller\napi: {token_secret: HELLO_TOKEN}\ngrants: {secrets: [PROBE_TOKEN]}\n",
    );
    drop_flow(
        &dir,
        "private",
        "echo",
        "title: Private\nsensitive: true\napi: {token_secret: HELLO_TOKEN}\n",
    );
    let config = env.config_file("");
    let api = Api::start(&config);

    // A flow that returns a secret's value: the answer carries the redaction mark instead.
    let resp = api
        .invoke(
            "teller",
            "",
            json!({"op": "secret", "name": "PROBE_TOKEN"}).to_string(),
            Some(TOKEN),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), r#""[REDACTED]""#);

    // A sensitive flow answers its caller, but its run does not keep the output.
    let input = json!({"card": "4111"});
    let resp = api
        .invoke("private", "", input.to_string(), Some(TOKEN))
        .await;
    assert_eq!(resp.status(), 200);
    let id: i64 = resp.headers()["x-flowhost-run-id"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap(), input);
    let (status, run) = api.get(&format!("/api/runs/{id}"), Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(run["status"], "ok");
    assert!(!run.to_string().contains("4111"), "{run}");
}
