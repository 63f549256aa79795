//! `serve`'s HTTP listener through the binary: `/healthz`, `/readyz` and `/metrics` scraped over
//! loopback while `serve` runs (the metrics read with a Prometheus text-format parser and
//! checked against run history and the tables), readiness following M10's last run, health
//! following the scheduler loop rather than the process, and a port in use refused at start.

mod common;

use std::path::Path;
use std::time::Duration;

use common::process::Flowhost;
use common::{text, wait_until, TestEnv, PATIENCE};
use flowhost::history::{History, RunStatus};

/// `flowhost serve ARGS` (log level info), its stderr read line by line.
fn serve(config: &Path, args: &[&str]) -> Flowhost {
    let args: Vec<&str> = std::iter::once("serve")
        .chain(args.iter().copied())
        .collect();
    Flowhost::spawn(config, &args, &[("RUST_LOG", "info")])
}

/// `GET origin+path`: status and body.
async fn get(origin: &str, path: &str) -> (u16, String) {
    let resp = reqwest::get(format!("{origin}{path}")).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// `/metrics`, parsed by a Prometheus text-format parser.
async fn scrape(origin: &str) -> prometheus_parse::Scrape {
    let (status, body) = get(origin, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    let lines = body.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).unwrap()
}

/// The value of the sample `metric` whose labels include `labels` (`None`: no such sample).
fn value(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    use prometheus_parse::Value;
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            other => panic!("{metric} is not a number: {other:?}"),
        })
}

/// The number of observations of the histogram `metric` with `labels` (its `+Inf` bucket).
fn observations(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    use prometheus_parse::Value;
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no histogram {metric} {labels:?}"));
    let Value::Histogram(buckets) = &sample.value else {
        panic!("{metric} is not a histogram: {:?}", sample.value)
    };
    buckets
        .iter()
        .find(|b| b.less_than.is_infinite())
        .map(|b| b.count)
        .unwrap()
}

fn runs(history: &History, flow: &str) -> Vec<flowhost::history::RunRecord> {
    history.list(Some(flow), 1000).unwrap()
}

/// A simulator whose 250 events end about now, the ASA flows (without the offload, which would
/// move the events away) with M10 on an hourly schedule (it drains at start through its own
/// catch-up requests, then stays idle), settings stored, and a config granting the simulator.
async fn asa_world() -> (common::asa::Asa, std::path::PathBuf) {
    let now = jiff::Timestamp::now();
    let cfg = asa_sim::SimConfig {
        events: 250,
        start_time: now - jiff::SignedDuration::from_secs(300),
        ..Default::default()
    };
    let sim = asa_sim::Sim::start(cfg).await.unwrap();
    let asa = common::asa::asa_on(sim, 100, &[], |env| {
        let dir = env.dir.path().join("flows");
        common::asa_flows_with(&dir, &[("M10", "every", "1h")], &["O10"]);
        env.config.flows = vec![dir];
        // Without the built-in package: its O10 would offload the events at start.
        env.config.builtin = false;
    })
    .await;
    let base = asa.sim.base_url();
    let config = asa.env.config_file(&format!(
        "grants:\n  M10: {{hosts: [\"{base}\"]}}\n  U00: {{hosts: [\"{base}\"]}}\n"
    ));
    // On for `serve` (a fresh install has it off).
    common::enable(&config, "M10");
    (asa, config)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_three_endpoints_answer_while_serve_runs_and_metrics_match_history_and_tables() {
    let (asa, config) = asa_world().await;
    let mut serving = serve(&config, &["--listen", "127.0.0.1:0"]);
    let origin = serving.listening();
    let history =
        History::open_read_only(&flowhost::history::history_path_for(asa.env.db())).unwrap();

    // M10 drains the simulator at start: done once the last (part) page is logged and no M10
    // run is still going.
    let rt = asa.rt.clone();
    wait_until(PATIENCE, "M10 to store every event and finish", || {
        let logged_last = common::asa::notes(&rt)
            .iter()
            .any(|(_, n)| n.contains("part page"));
        let m10 = runs(&history, "M10");
        logged_last && !m10.is_empty() && m10.iter().all(|r| r.status != RunStatus::Running)
    })
    .await;
    let m10 = runs(&history, "M10");
    assert!(m10.iter().all(|r| r.status == RunStatus::Ok), "{m10:?}");
    assert_eq!(
        common::asa::stored_ids(&asa.rt),
        common::asa::sim_ids(&asa.sim)
    );

    let (status, body) = get(&origin, "/healthz").await;
    assert_eq!((status, body.trim()), (200, "ok: the scheduler is running"));
    let (status, body) = get(&origin, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with(&format!("ready: M10's last run (run {}) is ok", m10[0].id)),
        "{body}"
    );

    let s = scrape(&origin).await;
    let ok = m10.len() as f64;
    assert_eq!(
        value(
            &s,
            "flowhost_runs_total",
            &[("flow", "M10"), ("status", "ok")]
        ),
        Some(ok)
    );
    assert_eq!(
        value(
            &s,
            "flowhost_runs_total",
            &[("flow", "M10"), ("status", "error")]
        ),
        None
    );
    assert_eq!(
        observations(&s, "flowhost_run_duration_seconds", &[("flow", "M10")]),
        ok
    );
    for table in [
        "Audit Events",
        "Audit Related Objects",
        "Audit Checkpoints",
        "Execution Log",
        "Environment Variables",
    ] {
        let rows = common::asa::rows(&asa.rt, table).len() as f64;
        assert_eq!(
            value(&s, "flowhost_table_rows", &[("table", table)]),
            Some(rows),
            "{table}"
        );
    }
    assert_eq!(value(&s, "flowhost_asa_events_stored", &[]), Some(250.0));
    // The last success is when the newest M10 run ended, as history has it (milliseconds).
    let ended: jiff::Timestamp = m10[0].ended.as_deref().unwrap().parse().unwrap();
    let last_success = value(
        &s,
        "flowhost_last_success_timestamp_seconds",
        &[("flow", "M10")],
    )
    .unwrap();
    assert!(
        (last_success - ended.as_millisecond() as f64 / 1000.0).abs() < 0.001,
        "{last_success} vs {ended}"
    );
    // The lag is the newest stored event's age: checked against the stored timestamp, with a
    // wide margin for the time between the scrape and this line.
    let newest = common::asa::rows(&asa.rt, "Audit Events")
        .iter()
        .map(|r| r["timestamp"].as_str().unwrap().to_string())
        .max()
        .unwrap();
    let age = jiff::Timestamp::now()
        .duration_since(newest.parse::<jiff::Timestamp>().unwrap())
        .as_secs() as f64;
    let lag = value(&s, "flowhost_asa_checkpoint_lag_seconds", &[]).unwrap();
    assert!(
        lag <= age + 1.0 && lag >= age - 60.0,
        "lag {lag}, age {age}"
    );
    // What ASA's last response said: every request the simulator answered counted against
    // its budget of 10 000 (M10's last run sent the last request).
    let st = asa.sim.stats();
    let sent = st.token_requests + st.audit_requests + st.other_requests;
    let remaining = value(
        &s,
        "flowhost_asa_rate_limit_remaining",
        &[("origin", &asa.sim.base_url())],
    );
    assert_eq!(remaining, Some((10_000 - sent) as f64), "{st:?}");

    // The simulator makes M10 fail (a run from the CLI while serve runs): not ready, saying
    // why; a good run afterwards: ready again.
    asa.sim.inject(asa_sim::Fault::Status(400), 1);
    let out = common::flowhost(&config, &["run", "M10"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let failed = runs(&history, "M10")[0].clone();
    assert_eq!(failed.status, RunStatus::Error);
    let (status, body) = get(&origin, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.starts_with(&format!(
            "not ready: M10's last run (run {}) ended error: ",
            failed.id
        )) && body.contains("400"),
        "{body}"
    );
    // Health is the scheduler's, not M10's.
    assert_eq!(get(&origin, "/healthz").await.0, 200);
    let out = common::flowhost(&config, &["run", "M10"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (status, body) = get(&origin, "/readyz").await;
    assert_eq!(status, 200, "{body}");

    let exit = tokio::task::spawn_blocking(move || serving.stop().0)
        .await
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

/// A flow that sleeps `ms` when `serve` starts (then once an hour).
fn sleeper(ms: u64) -> String {
    format!("title: Sleeper\nschedule:\n  every: 1h\n  input: {{\"op\": \"sleep\", \"ms\": {ms}}}\ntimeout: 20m\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_follows_the_scheduler_loop_not_the_process() {
    let (env, dir) = common::env_with_flows();
    common::drop_probe(&dir, "sleeper", &sleeper(600_000));
    let config = env.config_file("listen: \"127.0.0.1:0\"\n");
    let mut serving = serve(&config, &[]);
    let origin = serving.listening();
    let history = History::open_read_only(&flowhost::history::history_path_for(env.db())).unwrap();
    wait_until(PATIENCE, "the sleeper to start", || {
        runs(&history, "sleeper")
            .iter()
            .any(|r| r.status == RunStatus::Running)
    })
    .await;
    assert_eq!(
        get(&origin, "/healthz").await,
        (200, "ok: the scheduler is running\n".into())
    );

    // SIGTERM: the loop stops starting runs and waits for the sleeper; the process (and its
    // listener) live on, but the scheduler is no longer healthy, nor ready.
    serving.signal(libc::SIGTERM);
    serving.wait_line("the stopping line", |l| {
        l.contains("stopping after the running flows finish")
    });
    let start = std::time::Instant::now();
    while get(&origin, "/healthz").await.0 != 503 {
        assert!(
            start.elapsed() < PATIENCE,
            "healthz stayed 200 after the loop stopped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, body) = get(&origin, "/healthz").await;
    assert_eq!(
        (status, body.trim()),
        (503, "the scheduler is stopping: it starts no more runs")
    );
    let (status, body) = get(&origin, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    // A second signal ends it at once.
    serving.signal(libc::SIGTERM);
    let exit = tokio::task::spawn_blocking(move || serving.stop().0)
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(130));
}

#[test]
fn a_port_in_use_is_a_one_line_error_at_start() {
    let env = TestEnv::new();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap();
    let config = env.config_file(&format!("listen: {}\n", addr.port()));
    let out = common::flowhost(&config, &["serve"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("error: cannot listen on {addr}: ")) && err.contains("--listen"),
        "{err}"
    );
    // Nothing ran: the database was not even created.
    assert!(!env.db().exists());

    let out = common::flowhost(&config, &["serve", "--listen", "nowhere"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: --listen: `nowhere` is not a port or an IP:PORT address"),
        "{err}"
    );
    drop(held);
}

#[test]
fn a_bad_listen_setting_names_the_config_field() {
    let env = TestEnv::new();
    for (setting, want) in [
        (
            "listen: \"1.2.3\"\n",
            "listen: `1.2.3` is not a port or an IP:PORT address",
        ),
        (
            "listen: 70000\n",
            "listen: port `70000` is out of range (0 to 65535)",
        ),
        (
            "listen: true\n",
            "listen: `true` is not a port or an IP:PORT address",
        ),
        (
            "readiness: {max_lag: 5s}\n",
            "readiness.max_lag: 5s is out of range (1m to 365d)",
        ),
    ] {
        let config = env.config_file(setting);
        let out = common::flowhost(&config, &["serve"]);
        assert_eq!(out.status.code(), Some(2), "{setting}");
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("{}: {want}", config.display())),
            "{setting}: {err}"
        );
    }
}
