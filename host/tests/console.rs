//! `serve`'s web console through the binary, over loopback with a real HTTP client: off by
//! default, loopback-only and token modes, the CSRF guard, the on/off switches and the run
//! form (checked against `flowhost list` and run history), run pages (errors, escaping,
//! redaction), table paging, search and CSV (checked against `flowhost table export`), and the
//! ASA page. Pages are read with CSS selectors: the DOM contract the browser tests rely on.

mod common;

use std::path::{Path, PathBuf};

use common::process::Flowhost;
use common::{flowhost, text, wait_until, TestEnv, PATIENCE};
use flowhost::history::{History, RunRecord, RunStatus, Trigger};
use reqwest::header;
use scraper::{Html, Selector};

/// The secret the token-mode tests protect the console with.
const TOKEN: &str = "console-operator-token-5f2a";

/// A `flowhost serve` with the console on `--listen ADDR`, and a client that follows no
/// redirect (the tests check each 303).
struct Console {
    /// `None` once stopped.
    serve: Option<Flowhost>,
    origin: String,
    client: reqwest::Client,
}

impl Console {
    /// `flowhost serve --listen ADDR` over `config`, once it listens.
    fn open(config: &Path, listen: &str) -> Console {
        let mut serve = Flowhost::spawn(
            config,
            &["serve", "--listen", listen],
            &[("RUST_LOG", "info")],
        );
        let origin = serve.listening();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Console {
            serve: Some(serve),
            origin,
            client,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// `GET path` with `headers`: status, headers and body.
    async fn get_with(&self, path: &str, headers: &[(header::HeaderName, &str)]) -> Page {
        let mut req = self.client.get(self.url(path));
        for (k, v) in headers {
            req = req.header(k, *v);
        }
        Page::from(req.send().await.unwrap()).await
    }

    async fn get(&self, path: &str) -> Page {
        self.get_with(path, &[]).await
    }

    /// `POST path` with the form `fields` and `headers` (no Origin unless given).
    async fn post_with(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(header::HeaderName, &str)],
    ) -> Page {
        let mut req = self.client.post(self.url(path)).form(fields);
        for (k, v) in headers {
            req = req.header(k, *v);
        }
        Page::from(req.send().await.unwrap()).await
    }

    /// A POST as the console's own form sends it (Origin: the console).
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let origin = self.origin.clone();
        self.post_with(path, fields, &[(header::ORIGIN, &origin)])
            .await
    }

    /// The lines `serve` wrote so far.
    fn seen(&self) -> &[String] {
        &self.serve.as_ref().unwrap().seen
    }

    /// Stops `serve` (SIGTERM) and waits for it.
    fn stop(mut self) {
        let serve = self.serve.take().unwrap();
        serve.signal(libc::SIGTERM);
        let (status, lines) = serve.finish();
        assert!(
            status.success(),
            "serve ended {status}:\n{}",
            lines.join("\n")
        );
    }
}

/// A response, its body parsed as HTML.
struct Page {
    status: u16,
    headers: header::HeaderMap,
    body: String,
    html: Html,
}

impl Page {
    async fn from(resp: reqwest::Response) -> Page {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap();
        let html = Html::parse_document(&body);
        Page {
            status,
            headers,
            body,
            html,
        }
    }

    /// The text of every element `selector` matches.
    fn texts(&self, selector: &str) -> Vec<String> {
        let s = Selector::parse(selector).unwrap();
        self.html
            .select(&s)
            .map(|e| e.text().collect::<String>().trim().to_string())
            .collect()
    }

    /// The text of the one element `selector` matches.
    fn text(&self, selector: &str) -> String {
        let all = self.texts(selector);
        assert_eq!(
            all.len(),
            1,
            "{selector} matched {all:?} in:\n{}",
            self.body
        );
        all.into_iter().next().unwrap()
    }

    fn count(&self, selector: &str) -> usize {
        self.texts(selector).len()
    }

    /// Attribute `attr` of the one element `selector` matches.
    fn attr(&self, selector: &str, attr: &str) -> String {
        let s = Selector::parse(selector).unwrap();
        let all: Vec<_> = self.html.select(&s).collect();
        assert_eq!(all.len(), 1, "{selector} in:\n{}", self.body);
        all[0].value().attr(attr).unwrap_or_default().to_string()
    }

    fn header(&self, name: header::HeaderName) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    /// The `Location` of a 303.
    fn see_other(&self) -> String {
        assert_eq!(self.status, 303, "{}", self.body);
        self.header(header::LOCATION)
    }
}

/// Whether `flowhost list --json` says `flow` is enabled.
fn listed_enabled(config: &Path, flow: &str) -> bool {
    let out = flowhost(config, &["list", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let flows = doc["flows"].as_array().expect("list --json has flows");
    flows
        .iter()
        .find(|f| f["name"] == flow)
        .unwrap_or_else(|| panic!("{flow} not listed: {doc}"))["enabled"]
        .as_bool()
        .unwrap()
}

fn history_of(env: &TestEnv) -> PathBuf {
    flowhost::history::history_path_for(env.db())
}

/// Waits until run `id` has ended and returns it.
async fn ended(env: &TestEnv, id: i64) -> RunRecord {
    let path = history_of(env);
    let mut run = None;
    wait_until(PATIENCE, &format!("run {id} to end"), || {
        let h = History::open_read_only(&path).unwrap();
        run = h
            .get(id)
            .unwrap()
            .filter(|r| r.status != RunStatus::Running);
        run.is_some()
    })
    .await;
    run.unwrap()
}

/// The run id of a run page's path (`/runs/ID`).
fn run_id(location: &str) -> i64 {
    location
        .strip_prefix("/runs/")
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("not a run page: {location}"))
}

/// Imports JSON-lines `rows` into `table` with `flowhost table import`.
fn import(env: &TestEnv, config: &Path, table: &str, rows: &[serde_json::Value]) {
    let file = env
        .dir
        .path()
        .join(format!("{}.jsonl", table.replace(' ', "-")));
    let body: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(&file, body).unwrap();
    let out = flowhost(config, &["table", "import", table, file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "import {table}: {}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn off_by_default_every_console_route_is_404() {
    let env = TestEnv::new();
    let config = env.config_file("");
    let c = Console::open(&config, "127.0.0.1:0");
    for path in [
        "/",
        "/flows/M10",
        "/runs",
        "/runs/1",
        "/tables",
        "/tables/Probe%20Items",
        "/tables/Probe%20Items/csv",
        "/asa",
        "/login",
        "/console.css",
    ] {
        assert_eq!(c.get(path).await.status, 404, "{path}");
    }
    let p = c.post("/flows/M10/enable", &[("back", "/")]).await;
    assert_eq!(p.status, 404);
    assert!(
        !listed_enabled(&config, "M10"),
        "a console that is off switched M10 on"
    );
    // The listener itself is there.
    assert_eq!(c.get("/healthz").await.status, 200);
    c.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn loopback_mode_serves_this_machine_only_and_posts_only_from_its_own_pages() {
    let env = TestEnv::new();
    let config = env.config_file("console: true\n");
    let c = Console::open(&config, "127.0.0.1:0");

    let flows = c.get("/").await;
    assert_eq!(flows.status, 200, "{}", flows.body);
    // Every page carries the security headers.
    let csp = flows.header(header::CONTENT_SECURITY_POLICY);
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("script-src 'none'"), "{csp}");
    assert_eq!(flows.header(header::X_FRAME_OPTIONS), "DENY");
    assert_eq!(flows.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert_eq!(flows.header(header::REFERRER_POLICY), "same-origin");
    assert_eq!(flows.count("script"), 0, "no script on the page");
    // The DOM contract of the flow list.
    let m10 = r#"table#flows tr[data-flow="M10"]"#;
    assert_eq!(flows.text(&format!("{m10} td.state")), "off");
    assert_eq!(
        flows.text(&format!("{m10} td.title")),
        "Recurring Audit Collection"
    );
    assert_eq!(flows.text(&format!("{m10} td.schedule")), "every 5m");
    assert_eq!(flows.attr(&format!("{m10} a.flow"), "href"), "/flows/M10");
    assert_eq!(
        flows.count(&format!("{m10} button[data-action=\"enable\"]")),
        1
    );
    let css = c.get("/console.css").await;
    assert_eq!(css.status, 200);
    assert!(css.header(header::CONTENT_TYPE).starts_with("text/css"));

    // A page of another site whose name resolves here (DNS rebinding) reads nothing.
    let rebound = c.get_with("/", &[(header::HOST, "evil.example:80")]).await;
    assert_eq!(rebound.status, 403);
    assert!(rebound
        .text("#error")
        .contains("Host `evil.example:80` is not a loopback address"));

    // A POST without the console's Origin changes nothing.
    for headers in [
        vec![],
        vec![(header::ORIGIN, "http://evil.example")],
        vec![(header::REFERER, "http://evil.example/page")],
    ] {
        let p = c
            .post_with("/flows/M10/enable", &[("back", "/")], &headers)
            .await;
        assert_eq!(p.status, 403, "{headers:?}: {}", p.body);
        assert!(p.text("#error").starts_with("refused: "), "{}", p.body);
        assert!(
            !listed_enabled(&config, "M10"),
            "{headers:?} switched M10 on"
        );
    }

    // From its own page, the switch works as `flowhost flow enable` does, and goes back.
    let p = c.post("/flows/M10/enable", &[("back", "/flows/M10")]).await;
    assert_eq!(p.see_other(), "/flows/M10");
    assert!(listed_enabled(&config, "M10"));
    let flows = c.get("/").await;
    assert_eq!(flows.text(&format!("{m10} td.state")), "on");
    assert_eq!(
        flows.count(&format!("{m10} button[data-action=\"disable\"]")),
        1
    );
    // A `back` elsewhere goes to the flows instead (no open redirect).
    let p = c
        .post("/flows/M10/disable", &[("back", "//evil.example/")])
        .await;
    assert_eq!(p.see_other(), "/");
    assert!(!listed_enabled(&config, "M10"));
    // There is no login in this mode.
    assert_eq!(c.get("/login").await.status, 404);
    c.stop();
}

/// A non-loopback address of this machine (the one its default route leaves from).
fn outward_address() -> std::net::IpAddr {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    // Connecting a UDP socket sends nothing; it only picks the local address.
    s.connect("192.0.2.1:9")
        .or_else(|_| s.connect("8.8.8.8:53"))
        .expect("this test needs a network interface besides loopback");
    let ip = s.local_addr().unwrap().ip();
    assert!(!ip.is_loopback() && !ip.is_unspecified(), "{ip}");
    ip
}

#[tokio::test(flavor = "multi_thread")]
async fn loopback_mode_refuses_other_machines_and_says_how_to_set_a_token() {
    let env = TestEnv::new();
    let config = env.config_file("console: true\n");
    let c = Console::open(&config, "0.0.0.0:0");
    let port = c.origin.rsplit(':').next().unwrap().to_string();
    let outside = format!("http://{}:{port}", outward_address());
    let resp = reqwest::get(format!("{outside}/")).await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let page = Page::from(resp).await;
    assert!(
        page.text("#error")
            .contains("set `console: { token_secret: NAME }`"),
        "{}",
        page.body
    );
    // The same console from loopback.
    let local = reqwest::get(format!("http://127.0.0.1:{port}/"))
        .await
        .unwrap();
    assert_eq!(local.status().as_u16(), 200);
    c.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn token_mode_needs_the_operator_token_by_login_or_bearer() {
    let env = TestEnv::new().with_secrets(&[("CONSOLE_TOKEN", TOKEN)]);
    let config = env.config_file("console: { token_secret: CONSOLE_TOKEN }\n");
    let c = Console::open(&config, "127.0.0.1:0");

    // No session: pages go to the login form, anything else is 401.
    for path in ["/", "/runs", "/tables", "/asa", "/flows/M10"] {
        assert_eq!(c.get(path).await.see_other(), "/login", "{path}");
    }
    let p = c.post("/flows/M10/enable", &[("back", "/")]).await;
    assert_eq!(p.status, 401);
    assert!(!listed_enabled(&config, "M10"));
    let login = c.get("/login").await;
    assert_eq!(login.status, 200);
    assert_eq!(login.count(r#"form#login input[name="token"]"#), 1);

    // A wrong token, a Bearer included, is refused.
    let wrong = c.post("/login", &[("token", "not-the-token")]).await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.header(header::SET_COOKIE).is_empty());
    let bearer_wrong = c
        .get_with("/", &[(header::AUTHORIZATION, "Bearer not-the-token")])
        .await;
    assert_eq!(bearer_wrong.status, 401);
    // A login from another site is refused like any POST.
    let forged = c
        .post_with(
            "/login",
            &[("token", TOKEN)],
            &[(header::ORIGIN, "http://evil.example")],
        )
        .await;
    assert_eq!(forged.status, 403);

    // The right token: a session cookie that is not the token.
    let ok = c.post("/login", &[("token", TOKEN)]).await;
    assert_eq!(ok.see_other(), "/");
    let set = ok.header(header::SET_COOKIE);
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains(TOKEN), "the cookie holds the token: {set}");
    let cookie = set.split(';').next().unwrap().to_string();
    let with_cookie = [(header::COOKIE, cookie.as_str())];
    for path in ["/", "/runs", "/tables", "/asa", "/flows/M10"] {
        let p = c.get_with(path, &with_cookie).await;
        assert_eq!(p.status, 200, "{path}: {}", p.body);
        assert!(!p.body.contains(TOKEN), "{path} shows the token");
    }
    assert_eq!(c.get_with("/", &with_cookie).await.count("form.logout"), 1);
    // A forged cookie is no session.
    let forged = c
        .get_with("/", &[(header::COOKIE, "flowhost_console=00ff")])
        .await;
    assert_eq!(forged.see_other(), "/login");
    // The session switches flows, from the console's own pages only.
    let origin = c.origin.clone();
    let p = c
        .post_with(
            "/flows/M10/enable",
            &[("back", "/")],
            &[(header::COOKIE, cookie.as_str()), (header::ORIGIN, &origin)],
        )
        .await;
    assert_eq!(p.see_other(), "/");
    assert!(listed_enabled(&config, "M10"));

    // Bearer works without a cookie.
    let bearer = format!("Bearer {TOKEN}");
    let p = c
        .get_with("/runs", &[(header::AUTHORIZATION, bearer.as_str())])
        .await;
    assert_eq!(p.status, 200);
    assert_eq!(p.count("table#runs"), 1);

    // Log out clears the cookie.
    let out = c
        .post_with(
            "/logout",
            &[],
            &[(header::COOKIE, cookie.as_str()), (header::ORIGIN, &origin)],
        )
        .await;
    assert_eq!(out.see_other(), "/login");
    assert!(out.header(header::SET_COOKIE).contains("Max-Age=0"));
    c.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn log_ins_and_wrong_bearer_tokens_are_limited_per_address_and_the_cookie_is_secure_behind_https(
) {
    let env = TestEnv::new().with_secrets(&[("CONSOLE_TOKEN", TOKEN)]);
    let config = env.config_file("console: { token_secret: CONSOLE_TOKEN }\n");
    let mut c = Console::open(&config, "127.0.0.1:0");
    let origin = c.origin.clone();
    let proto = header::HeaderName::from_static("x-forwarded-proto");

    // Through a proxy that took the client's HTTPS, the session cookie is Secure; directly
    // over HTTP it is not (a browser would then never send it).
    let https = c
        .post_with(
            "/login",
            &[("token", TOKEN)],
            &[(header::ORIGIN, &origin), (proto, "https")],
        )
        .await;
    assert_eq!(https.see_other(), "/");
    let set = https.header(header::SET_COOKIE);
    assert!(set.ends_with("; Secure"), "{set}");
    let plain = c.post("/login", &[("token", TOKEN)]).await;
    assert_eq!(plain.see_other(), "/");
    let set = plain.header(header::SET_COOKIE);
    assert!(!set.contains("Secure"), "{set}");
    let cookie = set.split(';').next().unwrap().to_string();

    // Someone guessing: the rest of the burst of ten gets its 401s...
    for i in 2..10 {
        let wrong = c.post("/login", &[("token", &format!("guess-{i}"))]).await;
        assert_eq!(wrong.status, 401, "attempt {i}");
    }
    // ... then this address is told to wait, and not even the right token is checked.
    for token in ["guess-10", TOKEN] {
        let refused = c.post("/login", &[("token", token)]).await;
        assert_eq!(refused.status, 429, "{token}");
        let after: u64 = refused.header(header::RETRY_AFTER).parse().unwrap();
        assert!((1..=6).contains(&after), "Retry-After: {after}");
        assert!(refused.header(header::SET_COOKIE).is_empty());
        let said = refused.text("#login-error");
        assert!(
            said.contains("Too many log-in attempts") && said.contains(&format!("{after} s")),
            "{said}"
        );
    }
    // A session and the Bearer token are not log-ins: they still work.
    let p = c
        .get_with("/runs", &[(header::COOKIE, cookie.as_str())])
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    let bearer = format!("Bearer {TOKEN}");
    let p = c
        .get_with("/runs", &[(header::AUTHORIZATION, bearer.as_str())])
        .await;
    assert_eq!(p.status, 200);

    // Wrong Bearer tokens have a budget of their own (the right one spent none of it): ten
    // are 401, then the address's Bearer requests are 429 before the token is checked, the
    // right one included; the session cookie still works.
    let mut statuses = Vec::new();
    for i in 0..14 {
        let guess = format!("Bearer guess-b{i}");
        let p = c
            .get_with("/runs", &[(header::AUTHORIZATION, guess.as_str())])
            .await;
        statuses.push(p.status);
        if p.status == 429 {
            break;
        }
    }
    assert_eq!(statuses[..10], [401; 10], "{statuses:?}");
    assert!(
        statuses.len() >= 12 && statuses.last() == Some(&429),
        "{statuses:?}"
    );
    let p = c
        .get_with("/runs", &[(header::AUTHORIZATION, bearer.as_str())])
        .await;
    assert_eq!(p.status, 429);
    let after: u64 = p.header(header::RETRY_AFTER).parse().unwrap();
    assert!((1..=6).contains(&after), "Retry-After: {after}");
    assert!(
        p.text("#error").contains("Too many wrong tokens"),
        "{}",
        p.body
    );
    let p = c
        .get_with("/runs", &[(header::COOKIE, cookie.as_str())])
        .await;
    assert_eq!(p.status, 200);

    // The log says who was refused and why, and never holds a token tried.
    let serve = c.serve.as_mut().unwrap();
    serve.wait_line("the refusal's log line", |l| {
        l.contains("too many attempts")
    });
    serve.wait_line("the Bearer refusal's log line", |l| {
        l.contains("too many wrong console Bearer tokens")
    });
    let lines = c.seen().join("\n");
    assert!(lines.contains("127.0.0.1"), "{lines}");
    assert!(lines.contains("wrong token"), "{lines}");
    for secret in [TOKEN, "guess-"] {
        assert!(
            !lines.contains(secret),
            "the log holds `{secret}`:\n{lines}"
        );
    }
    c.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn token_mode_without_the_secret_lets_nobody_in_and_says_which_secret() {
    let env = TestEnv::new();
    let config = env.config_file("console: { token_secret: CONSOLE_TOKEN }\n");
    let c = Console::open(&config, "127.0.0.1:0");
    let p = c.get("/login").await;
    assert_eq!(p.status, 200);
    let p = c.post("/login", &[("token", "")]).await;
    assert_eq!(p.status, 503);
    assert!(
        p.text("#error")
            .starts_with("console.token_secret: the secret `CONSOLE_TOKEN` is not set"),
        "{}",
        p.body
    );
    assert_eq!(c.get("/").await.status, 503);
    // `serve` said so when it started (before its "listening on" line).
    assert!(
        c.seen()
            .iter()
            .any(|l| l.contains("the secret `CONSOLE_TOKEN` is not set")),
        "{}",
        c.seen().join("\n")
    );
    c.stop();

    // `flowhost check` says so too, naming the config's field, and passes once it is set.
    let out = flowhost(&config, &["check"]);
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let want = format!(
        "error: {}: console.token_secret: the operator token secret `CONSOLE_TOKEN` is not set",
        config.display()
    );
    assert!(report.contains(&want), "{report}");
    let out = common::flowhost_cmd(&config, &["check"])
        .env("FLOWHOST_SECRET_CONSOLE_TOKEN", "operator-token-1234")
        .output()
        .unwrap();
    let report = text(&out.stdout);
    assert!(!report.contains("CONSOLE_TOKEN"), "{report}");
    assert!(!report.contains("operator-token-1234"), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_run_form_runs_a_flow_with_trigger_console_and_refuses_bad_input() {
    let env = TestEnv::new();
    let config = env.config_file("console: true\n");
    let c = Console::open(&config, "127.0.0.1:0");

    let page = c.get("/flows/U03").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.text("form#run textarea[name=\"input\"]"), "{}");
    assert_eq!(page.count("form#run button[type=\"submit\"]"), 1);
    assert_eq!(page.text("#flow-title"), "Reset Checkpoint");
    assert!(page.text("#grants").contains("Audit Checkpoints"));

    // Input that is not JSON: the form again, with the error, and nothing run.
    let before = History::open_read_only(&history_of(&env))
        .unwrap()
        .page(Some("U03"), None, 0, 10)
        .unwrap();
    assert!(before.is_empty());
    let bad = c.post("/flows/U03/run", &[("input", "{\"team\": ")]).await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.text("#input-error").starts_with("input: not JSON: "),
        "{}",
        bad.body
    );
    assert_eq!(bad.text("form#run textarea[name=\"input\"]"), "{\"team\":");
    let after = History::open_read_only(&history_of(&env))
        .unwrap()
        .page(Some("U03"), None, 0, 10)
        .unwrap();
    assert!(after.is_empty(), "a refused input ran: {after:?}");

    // The form runs U03 (switched off or not, like `flowhost run`).
    let go = c.post("/flows/U03/run", &[("input", "{}")]).await;
    let id = run_id(&go.see_other());
    let run = ended(&env, id).await;
    assert_eq!(run.flow, "U03");
    assert_eq!(run.trigger, Trigger::Console);
    assert_eq!(run.parent, None);
    let page = c.get(&format!("/runs/{id}")).await;
    assert_eq!(page.text("#run-trigger"), "console");
    assert_eq!(page.text("#run-status"), run.status.as_str());
    assert_eq!(page.text("#run-flow"), "U03");
    assert_eq!(
        page.count("meta[http-equiv=\"refresh\"]"),
        0,
        "an ended run does not reload"
    );
    // An unknown flow has no page and no form.
    assert_eq!(c.get("/flows/NOPE").await.status, 404);
    assert_eq!(
        c.post("/flows/NOPE/run", &[("input", "{}")]).await.status,
        404
    );
    c.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_runs_page_shows_its_error_escaped_and_the_run_list_filters() {
    let env = TestEnv::new();
    let config = env.config_file("console: true\n");
    let c = Console::open(&config, "127.0.0.1:0");

    let input = r#"{"op": "fail", "message": "boom <script>alert(1)</script>"}"#;
    let go = c.post("/flows/probe/run", &[("input", input)]).await;
    let failed = run_id(&go.see_other());
    assert_eq!(ended(&env, failed).await.status, RunStatus::Error);
    let go = c
        .post(
            "/flows/probe/run",
            &[("input", r#"{"op": "echo", "value": 7}"#)],
        )
        .await;
    let fine = run_id(&go.see_other());
    assert_eq!(ended(&env, fine).await.status, RunStatus::Ok);

    let page = c.get(&format!("/runs/{failed}")).await;
    assert_eq!(page.text("#run-status"), "error");
    let error = page.text("pre#run-error");
    assert!(error.contains("boom <script>alert(1)</script>"), "{error}");
    // The text came back escaped: the page has no script element.
    assert!(page
        .body
        .contains("boom &lt;script&gt;alert(1)&lt;/script&gt;"));
    assert_eq!(page.count("script"), 0);
    assert!(page.text("pre#run-input").contains("\"op\": \"fail\""));
    assert_eq!(page.count("#run-logs"), 1);
    assert_eq!(page.count("table#run-children"), 1);
    let page = c.get(&format!("/runs/{fine}")).await;
    assert_eq!(page.text("pre#run-output"), "7");
    assert_eq!(page.text("pre#run-error"), "");

    // The list, filtered by flow and status.
    let runs = c.get("/runs?flow=probe&status=error").await;
    assert_eq!(runs.status, 200);
    let ids = runs.texts("table#runs tr[data-run] a.run");
    assert_eq!(ids, [failed.to_string()]);
    assert_eq!(
        runs.attr(&format!("tr[data-run=\"{failed}\"]"), "data-status"),
        "error"
    );
    assert_eq!(
        runs.attr(&format!("tr[data-run=\"{failed}\"] a.run"), "href"),
        format!("/runs/{failed}")
    );
    assert_eq!(
        runs.count("form#filter select[name=\"flow\"] option[selected][value=\"probe\"]"),
        1
    );
    assert_eq!(
        runs.count("form#filter select[name=\"status\"] option[selected][value=\"error\"]"),
        1
    );
    let all = c.get("/runs?flow=probe").await;
    assert_eq!(
        all.texts("table#runs tr[data-run] a.run"),
        [fine.to_string(), failed.to_string()]
    );
    let bad = c.get("/runs?status=broken").await;
    assert_eq!(bad.status, 400);
    assert!(bad
        .text("#error")
        .starts_with("status: `broken` is not a run status"));
    assert_eq!(c.get("/runs/999999").await.status, 404);
    c.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_value_reaches_a_page() {
    let secret = "hunter2-console-secret-value";
    let env = TestEnv::new().with_secrets(&[("PROBE_TOKEN", secret)]);
    let config = env.config_file("console: true\n");
    let c = Console::open(&config, "127.0.0.1:0");
    let input = format!(
        r#"{{"op": "steps", "steps": [{{"op": "log", "level": "info", "message": "the token is {secret}"}}, {{"op": "secret", "name": "PROBE_TOKEN"}}]}}"#
    );
    let go = c.post("/flows/probe/run", &[("input", &input)]).await;
    let id = run_id(&go.see_other());
    assert_eq!(ended(&env, id).await.status, RunStatus::Ok);
    let page = c.get(&format!("/runs/{id}")).await;
    assert!(!page.body.contains(secret), "the run page shows the secret");
    assert!(
        page.text("#run-logs").contains("the token is [REDACTED]"),
        "{}",
        page.body
    );
    assert!(page.text("pre#run-output").contains("[REDACTED]"));
    assert!(page.text("pre#run-input").contains("[REDACTED]"));
    for path in ["/", "/runs", "/flows/probe", "/asa", "/tables"] {
        let p = c.get(path).await;
        assert_eq!(p.status, 200, "{path}");
        assert!(!p.body.contains(secret), "{path} shows the secret");
    }
    c.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn tables_page_search_escape_and_export_the_csv_flowhost_export_writes() {
    let env = TestEnv::new();
    let config = env.config_file("console: true\n");
    let mut rows: Vec<serde_json::Value> = (0..120)
        .map(|i| serde_json::json!({"id": format!("r{i:03}"), "n": i, "note": format!("row {i}"), "flag": i % 2 == 0}))
        .collect();
    rows.push(serde_json::json!({"id": "x1", "n": 1000, "note": "<script>alert('x')</script>", "data": {"a": [1, 2]}}));
    import(&env, &config, "Probe Items", &rows);
    let c = Console::open(&config, "127.0.0.1:0");

    let list = c.get("/tables").await;
    assert_eq!(list.status, 200);
    assert_eq!(
        list.attr(
            r#"table#tables tr[data-table="Probe Items"] a.table"#,
            "href"
        ),
        "/tables/Probe%20Items"
    );
    assert_eq!(list.text(r#"tr[data-table="Probe Items"] td.rows"#), "121");

    // Paging: 50 rows a page.
    let first = c.get("/tables/Probe%20Items").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.text("#row-count"), "121");
    assert_eq!(first.count("table#rows tr.row"), 50);
    assert_eq!(first.count("a#prev"), 0);
    let next = first.attr("a#next", "href");
    let second = c.get(&next).await;
    assert_eq!(second.count("table#rows tr.row"), 50);
    let third = c.get("/tables/Probe%20Items?page=3").await;
    assert_eq!(third.count("table#rows tr.row"), 21);
    assert_eq!(third.count("a#next"), 0);
    assert_eq!(third.attr("a#prev", "href"), "/tables/Probe%20Items?page=2");
    assert_eq!(c.get("/tables/Probe%20Items?page=0").await.status, 400);

    // A value `<script>` comes back escaped.
    let found = c
        .get("/tables/Probe%20Items?column=note&q=%3Cscript%3E")
        .await;
    assert_eq!(found.text("#row-count"), "1");
    assert!(found
        .texts("table#rows tr.row td")
        .contains(&"<script>alert('x')</script>".to_string()));
    assert!(found
        .body
        .contains("&lt;script&gt;alert('x')&lt;/script&gt;"));
    assert_eq!(found.count("script"), 0);

    // A substring on the chosen column; a hostile `q` matches only itself (nothing here).
    let some = c.get("/tables/Probe%20Items?column=note&q=row%201").await;
    assert_eq!(some.text("#row-count"), "31", "row 1, 10-19, 100-119");
    for q in ["%25'%20OR%201%3D1%20--", "%25", "_", "'%20OR%20''%3D'"] {
        let p = c
            .get(&format!("/tables/Probe%20Items?column=note&q={q}"))
            .await;
        assert_eq!(p.status, 200, "{q}");
        assert_eq!(p.text("#row-count"), "0", "q={q}");
        assert_eq!(p.count("table#rows tr.row"), 0, "q={q}");
    }
    // The column is checked against the schema, never put into the SQL.
    let bad = c
        .get("/tables/Probe%20Items?column=note%22%20OR%201%3D1%20--&q=x")
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad
        .text("#error")
        .starts_with("column: table `Probe Items` has no column `note\" OR 1=1 --`"));
    assert_eq!(c.get("/tables/Nope").await.status, 404);

    // The CSV is the one `flowhost table export` writes, as an attachment.
    let export = flowhost(
        &config,
        &["table", "export", "Probe Items", "--format", "csv"],
    );
    assert!(export.status.success(), "{}", text(&export.stderr));
    let link = first.attr("a#csv", "href");
    assert_eq!(link, "/tables/Probe%20Items/csv");
    let resp = c.client.get(c.url(&link)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()[header::CONTENT_DISPOSITION],
        "attachment; filename=\"Probe Items.csv\""
    );
    assert!(resp.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert_eq!(resp.bytes().await.unwrap(), export.stdout);
    // With the page's filter: the header and the matching rows.
    let link = some.attr("a#csv", "href");
    assert_eq!(link, "/tables/Probe%20Items/csv?column=note&q=row%201");
    let csv = c
        .client
        .get(c.url(&link))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], text(&export.stdout).lines().next().unwrap());
    assert_eq!(lines.len(), 32);
    assert!(lines[1..].iter().all(|l| l.contains(",row 1")), "{csv}");
    c.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_asa_page_shows_the_checkpoint_newest_event_lag_and_execution_log() {
    let env = TestEnv::new();
    let config = env.config_file("console: true\n");
    import(
        &env,
        &config,
        "Audit Checkpoints",
        &[
            serde_json::json!({"LastOffset": "offset-abc", "LastDateTime": "2026-01-02T03:04:05Z", "LastCount": 3, "team": ""}),
        ],
    );
    import(
        &env,
        &config,
        "Audit Events",
        &[
            serde_json::json!({"id": "e1", "timestamp": "2026-01-01T00:00:00Z", "type": "t"}),
            serde_json::json!({"id": "e2", "timestamp": "2026-01-02T00:00:00Z", "type": "t"}),
        ],
    );
    let log: Vec<serde_json::Value> = (0..25)
        .map(|i| serde_json::json!({"datetime": format!("2026-01-02T00:{i:02}:00Z"), "eventswritten": i.to_string(), "notes": format!("run {i}")}))
        .collect();
    import(&env, &config, "Execution Log", &log);
    let c = Console::open(&config, "127.0.0.1:0");
    let p = c.get("/asa").await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.text("#asa-checkpoint").contains("offset-abc"));
    assert_eq!(p.text("#asa-newest-event"), "2026-01-02T00:00:00Z");
    let lag = p.text("#asa-lag");
    let secs: u64 = lag
        .trim_end_matches(" s")
        .parse()
        .unwrap_or_else(|_| panic!("{lag}"));
    assert!(secs > 0, "{lag}");
    // The newest 20 rows, newest first.
    let notes: Vec<String> = p
        .texts("table#execution-log tr.row td:last-child")
        .into_iter()
        .collect();
    let want: Vec<String> = (5..25).rev().map(|i| format!("run {i}")).collect();
    assert_eq!(notes, want);
    c.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_still_going_says_running_and_reloads_itself_until_it_ends() {
    let env = TestEnv::new();
    let config = env.config_file("console: true\n");
    let c = Console::open(&config, "127.0.0.1:0");
    // The run waits on an HTTP answer the test holds.
    let held = common::held::Held::start(1).await;
    let input = serde_json::json!({"op": "http", "method": "GET", "url": held.url}).to_string();
    let go = c.post("/flows/probe/run", &[("input", &input)]).await;
    let id = run_id(&go.see_other());
    wait_until(PATIENCE, "the run's request", || held.received() == 1).await;
    let page = c.get(&format!("/runs/{id}")).await;
    assert_eq!(page.text("#run-status"), "running");
    assert_eq!(page.attr("meta[http-equiv=\"refresh\"]", "content"), "2");
    held.release();
    assert_eq!(ended(&env, id).await.status, RunStatus::Ok);
    let page = c.get(&format!("/runs/{id}")).await;
    assert_eq!(page.text("#run-status"), "ok");
    assert_eq!(page.count("meta[http-equiv=\"refresh\"]"), 0);
    c.stop();
}
