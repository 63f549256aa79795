//! The ASA API fault matrix: M10 against the simulator's fault injection (real flows, real
//! SQLite, loopback HTTP). Every test ends with the Audit Events table holding exactly the
//! simulator's ids, and after every run the checkpoint's `LastOffset` is a stored id with every
//! older event stored too (never ahead of the table). Runs that fail must say why. Prefetching
//! is off here (each fault must reach the run it is injected for), except in
//! `prefetches_that_meet_faults_lose_nothing`.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use asa_sim::{Fault, FaultTarget, LinkStyle, SimConfig};
use common::asa::{checkpoint, notes, sim_ids, stored_ids, Asa};
use common::{out, run, TestEnv, PATIENCE};
use flowhost::history::RunStatus;
use flowhost::runtime::RunReport;
use serde_json::json;

/// A simulator from `cfg` and a runtime set up for it (see `common::asa::asa_on`);
/// `key_secret` replaces the right secret (bad credentials).
async fn world(
    cfg: SimConfig,
    count: u32,
    key_secret: Option<&str>,
    configure: impl FnOnce(&mut TestEnv),
) -> Asa {
    let sim = asa_sim::Sim::start(cfg).await.unwrap();
    let secrets: Vec<(&str, &str)> = key_secret
        .map(|s| ("ASA_KEY_SECRET", s))
        .into_iter()
        .collect();
    common::asa::asa_on(sim, count, &secrets, |env| {
        // Each fault must reach the run it is injected for, not the page a run before it
        // fetched ahead (`prefetches_that_meet_faults_lose_nothing` has prefetching on).
        env.config.http_prefetch = false;
        configure(env)
    })
    .await
}

async fn sim(events: u64, count: u32) -> Asa {
    world(
        SimConfig {
            events,
            ..Default::default()
        },
        count,
        None,
        |_| {},
    )
    .await
}

/// The checkpoint is never ahead of the table: `LastOffset` is empty or a stored id, and every
/// event up to it is stored; no event is stored twice; every stored id is the simulator's.
fn assert_consistent(a: &Asa) {
    let stored = stored_ids(&a.rt);
    let set: HashSet<&str> = stored.iter().map(String::as_str).collect();
    assert_eq!(set.len(), stored.len(), "an event is stored twice");
    for id in &stored {
        assert!(a.sim.event_index(id).is_some(), "{id} is not the sim's");
    }
    let (offset, _) = checkpoint(&a.rt);
    if offset.is_empty() {
        return;
    }
    assert!(
        set.contains(offset.as_str()),
        "the checkpoint {offset} is ahead of the table"
    );
    let upto = a.sim.event_index(&offset).unwrap();
    for i in 0..=upto {
        let id = a.sim.event_id(i).unwrap();
        assert!(
            set.contains(id.as_str()),
            "event {i} ({id}) is behind the checkpoint but not stored"
        );
    }
}

/// Everything M10 writes: the checkpoint, the stored ids and the Execution Log.
type Snapshot = ((String, f64), Vec<String>, Vec<(String, String)>);

/// Everything M10 writes, to compare before and after a failed run.
fn snapshot(a: &Asa) -> Snapshot {
    (checkpoint(&a.rt), stored_ids(&a.rt), notes(&a.rt))
}

/// One M10 run, then the consistency check.
async fn m10(a: &Asa) -> RunReport {
    let r = run(&a.rt, "M10", json!({})).await;
    assert_consistent(a);
    r
}

/// An M10 run that must fail without writing anything; returns its error.
async fn m10_fails(a: &Asa) -> (String, RunReport) {
    let before = snapshot(a);
    let r = m10(a).await;
    assert!(!r.ok(), "M10 should have failed: {:?}", r.output);
    assert_eq!(snapshot(a), before, "a failed run wrote something");
    (r.error.clone().unwrap(), r)
}

/// Runs M10 (and what it requests) until idle, checking consistency after every run; then the
/// table must hold exactly the simulator's ids.
async fn recover(a: &Asa) -> usize {
    let mut runs = 0;
    let mut pending = vec!["M10".to_string()];
    while let Some(flow) = pending.pop() {
        let r = run(&a.rt, &flow, json!({})).await;
        assert!(r.ok(), "{flow} failed: {:?}", r.error);
        assert_consistent(a);
        pending.extend(r.requests.iter().map(|q| q.flow.clone()));
        runs += 1;
        assert!(runs < 10_000, "M10 keeps requesting runs");
    }
    assert_eq!(stored_ids(&a.rt), sim_ids(&a.sim));
    runs
}

/// A burst of `statuses` on the next auditsV2 requests, then one M10 run.
async fn burst(a: &Asa, statuses: &[u16]) -> (RunReport, Duration) {
    for s in statuses {
        a.sim.inject(Fault::Status(*s), 1);
    }
    let served = a.sim.stats().faults_served;
    let t = Instant::now();
    let r = m10(a).await;
    let took = t.elapsed();
    assert_eq!(
        a.sim.stats().faults_served - served,
        statuses.len() as u64,
        "the whole burst was served to this run"
    );
    assert_eq!(a.sim.pending_faults(), 0);
    (r, took)
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_within_the_retry_budget_are_absorbed() {
    let a = sim(400, 50).await;
    // M10 asks for 5 attempts (500 ms to 10 s backoff with jitter): up to 4 failures in a row
    // are absorbed within the run.
    for statuses in [&[500][..], &[502, 503], &[504, 500, 502, 503]] {
        let (r, took) = burst(&a, statuses).await;
        assert!(r.ok(), "{statuses:?}: {:?}", r.error);
        assert_eq!(out(&r)["note"], "Full page", "{statuses:?}");
        // The backoff really waited: at least 500 ms, 1 s, 2 s ... before the retries.
        let least: u64 = (0..statuses.len()).map(|i| 500 << i).sum();
        assert!(
            took >= Duration::from_millis(least),
            "{statuses:?} took {took:?}"
        );
        eprintln!("5xx burst {statuses:?}: run ok after {took:?}");
    }
    // The token endpoint too: U00 retries a 503 burst (4 attempts) while renewing the token.
    a.sim.expire_tokens();
    a.sim.inject_for(FaultTarget::Token, Fault::Status(503), 2);
    let issued = a.sim.stats().tokens_issued;
    let r = m10(&a).await;
    assert!(r.ok(), "{:?}", r.error);
    assert_eq!(a.sim.stats().tokens_issued, issued + 1);
    recover(&a).await;
    assert_eq!(a.sim.stats().status_429, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_beyond_the_retry_budget_fail_the_run_cleanly() {
    let a = sim(300, 50).await;
    assert!(m10(&a).await.ok());
    // Five failures: every attempt M10 asked for; the run fails and names the last status.
    for (statuses, named) in [
        (&[500, 502, 503, 504, 502][..], "HTTP 502"),
        (
            &[503; 5][..],
            "HTTP 503 (service_offline): injected failure",
        ),
    ] {
        let before = snapshot(&a);
        let (r, took) = burst(&a, statuses).await;
        assert!(!r.ok());
        let e = r.error.as_deref().unwrap();
        assert!(e.contains(named), "{e}");
        assert!(e.contains("auditsV2"), "the error names the request: {e}");
        assert_eq!(snapshot(&a), before, "a failed run wrote something");
        eprintln!("5xx burst {statuses:?}: failed after {took:?}: {e}");
    }
    // A single 504 (e.g. a gateway timing out) after that: absorbed.
    let (r, _) = burst(&a, &[504]).await;
    assert!(r.ok(), "{:?}", r.error);
    recover(&a).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_429_waits_for_retry_at_or_reset() {
    let a = sim(300, 50).await;
    assert!(m10(&a).await.ok());
    // `RateLimited`: Retry-At = the next second, while X-RateLimit-Reset is the end of the
    // hourly window (which must not be what the host waits for). `RateLimitedResetOnly`:
    // only X-RateLimit-Reset, the next second.
    for (fault, times) in [
        (Fault::RateLimited, 1),
        (Fault::RateLimitedResetOnly, 1),
        (Fault::RateLimited, 2),
    ] {
        let before = a.sim.stats();
        a.sim.inject(fault.clone(), times);
        let started = SystemTime::now();
        let r = m10(&a).await;
        let ended = SystemTime::now();
        // The window's reset is an hour away, past M10's 10-minute deadline: had the host
        // waited for it, the run would have failed at once ("past the run's deadline").
        assert!(r.ok(), "{fault:?}: {:?}", r.error);
        let after = a.sim.stats();
        assert_eq!(
            after.status_429 - before.status_429,
            u64::from(times),
            "{fault:?}"
        );
        assert_eq!(
            after.audit_requests - before.audit_requests,
            u64::from(times) + 1,
            "{fault:?}: the 429s and one successful retry"
        );
        // Each 429 names the whole second after it was sent (Retry-At, or Reset for
        // `RateLimitedResetOnly`), and the retry waits for that second plus 50-500 ms of
        // jitter: the run cannot end before the `times`-th whole second after it started.
        let unix = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        let first_allowed = unix(started).as_secs() + u64::from(times);
        assert!(
            unix(ended) >= Duration::from_secs(first_allowed) + Duration::from_millis(50),
            "{fault:?}: the retry did not wait for the second the server named: started {:?}, ended {:?}",
            unix(started),
            unix(ended)
        );
        eprintln!(
            "{fault:?} x{times}: run ok after {:?}",
            ended.duration_since(started).unwrap_or_default()
        );
    }
    recover(&a).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_responses_below_and_past_the_timeout() {
    // Slower than usual but within the per-attempt timeout (30 s by default): just slow.
    let a = sim(120, 50).await;
    a.sim.inject(Fault::Latency(Duration::from_millis(1500)), 1);
    let t = Instant::now();
    let r = m10(&a).await;
    assert!(r.ok(), "{:?}", r.error);
    assert!(t.elapsed() >= Duration::from_millis(1500));
    eprintln!("latency 1.5 s: run ok after {:?}", t.elapsed());
    recover(&a).await;

    // Past the timeout. M10 uses the host's default per-attempt timeout (30 s), bounded by the
    // run's deadline; a copy of M10 with a 4 s run timeout meets a response that would take an
    // hour: the run ends at its deadline, while the server still holds the answer.
    let flows = tempfile::tempdir().unwrap();
    let dir = flows.path().join("flows");
    common::asa_flows_with(&dir, &[("M10", "timeout", "4s")], &[]);
    let a = world(
        SimConfig {
            events: 160,
            ..Default::default()
        },
        50,
        None,
        |env| env.config.flows = vec![dir.clone()],
    )
    .await;
    assert!(m10(&a).await.ok(), "a run without the fault fits in 4 s");
    a.sim.inject(Fault::Latency(Duration::from_secs(3600)), 1);
    let answered = a.sim.stats().status_2xx;
    let (e, r) = tokio::time::timeout(PATIENCE, m10_fails(&a))
        .await
        .expect("the run waited for the server, past its deadline");
    assert_eq!(a.sim.stats().status_2xx, answered, "the slow answer came");
    assert_eq!(r.status, RunStatus::Timeout, "{e}");
    assert!(e.contains("timed out"), "{e}");
    eprintln!("latency 1 h past a 4 s run timeout: {:?}: {e}", r.status);
    recover(&a).await;
}

/// With prefetching on (as `serve` and `--until-idle` run M10), faults land on pages fetched
/// ahead: a 5xx ahead is fetched again, a page cut short or a 401 ahead is handed to the run
/// that asked for it, which fails or renews its token as if it had sent the request itself.
/// Nothing is lost or stored twice, and every run leaves the checkpoint consistent.
#[tokio::test(flavor = "multi_thread")]
async fn prefetches_that_meet_faults_lose_nothing() {
    let cfg = SimConfig {
        events: 1000,
        ..Default::default()
    };
    let a = world(cfg, 50, None, |env| env.config.http_prefetch = true).await;
    let mut faults = vec![
        Fault::Status(503),
        Fault::Truncated,
        Fault::Latency(Duration::from_millis(300)),
        Fault::ExpireToken,
        Fault::Malformed,
        Fault::Status(500),
        Fault::NoLink,
    ];
    let injected = faults.len() as u64;
    let served = a.sim.stats().faults_served;
    let (mut runs, mut failed) = (0, 0);
    while stored_ids(&a.rt) != sim_ids(&a.sim) || a.sim.pending_faults() > 0 {
        // One fault every other run: it meets this run's own request or the one it prefetches.
        if runs % 2 == 1 {
            if let Some(f) = faults.pop() {
                a.sim.inject(f, 1);
            }
        }
        let r = m10(&a).await;
        failed += usize::from(!r.ok());
        runs += 1;
        assert!(runs < 200, "no progress after {runs} runs");
    }
    assert_eq!(a.sim.stats().faults_served - served, injected);
    assert!(failed >= 1, "a page cut short fails the run that takes it");
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_and_malformed_bodies_fail_the_run_and_lose_nothing() {
    let a = sim(300, 50).await;
    assert!(m10(&a).await.ok());
    for fault in [Fault::Truncated, Fault::Malformed] {
        a.sim.inject(fault.clone(), 1);
        let (e, _) = m10_fails(&a).await;
        assert!(
            e.contains("auditsV2") && e.contains("is not an auditsV2 page: HTTP 200 response body"),
            "{fault:?}: {e}"
        );
        eprintln!("{fault:?}: {e}");
        assert!(m10(&a).await.ok(), "the next run reads the page");
    }
    // On the very first page too (no checkpoint yet).
    let b = sim(120, 50).await;
    b.sim.inject(Fault::Truncated, 1);
    m10_fails(&b).await;
    assert_eq!(checkpoint(&b.rt), (String::new(), 0.0));
    recover(&b).await;
    recover(&a).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn link_header_missing_malformed_or_relative() {
    let a = sim(300, 50).await;
    assert!(m10(&a).await.ok());
    let (offset, _) = checkpoint(&a.rt);

    // A full page without its Link header looks like the last page: it is stored as one
    // (LastCount = 50, the offset stays), and the next run, with the link, moves on without
    // storing the page twice.
    a.sim.inject(Fault::NoLink, 1);
    let r = m10(&a).await;
    assert!(r.ok(), "{:?}", r.error);
    assert_eq!(
        (out(&r)["note"].as_str(), out(&r)["written"].as_u64()),
        (Some("First part page"), Some(50))
    );
    assert!(
        r.requests.is_empty(),
        "a last page asks for no catch-up run"
    );
    assert_eq!(checkpoint(&a.rt), (offset.clone(), 50.0));
    assert_eq!(stored_ids(&a.rt).len(), 100);
    let r = m10(&a).await;
    assert!(r.ok(), "{:?}", r.error);
    assert_eq!(
        (out(&r)["note"].as_str(), out(&r)["written"].as_u64()),
        (Some("Full page"), Some(0)),
        "the page was stored already"
    );

    // Garbage in the Link header: U11 finds a rel=next URL with an empty offset and fails the
    // run (rather than taking the page for the last one or skipping ahead); the next run
    // (with a good header) carries on.
    a.sim.inject(Fault::MalformedLink, 1);
    let (e, _) = m10_fails(&a).await;
    assert!(e.contains("Link header"), "{e}");
    assert!(e.contains("offset"), "{e}");
    eprintln!("MalformedLink: {e}");
    // Twice in a row, and on a page that is the last one.
    a.sim.inject(Fault::MalformedLink, 2);
    m10_fails(&a).await;
    m10_fails(&a).await;
    recover(&a).await;
    a.sim.append_events(20);
    a.sim.inject(Fault::MalformedLink, 1);
    m10_fails(&a).await;
    // Without its link, the stored last page (full, 50) now followed by 20 new events reads
    // as "no new events": they wait for the next run, nothing is skipped.
    a.sim.inject(Fault::NoLink, 1);
    let r = m10(&a).await;
    assert_eq!(out(&r)["note"], "No new events");
    recover(&a).await;

    // Relative links (`/v1/teams/...`) are followed the same way.
    let b = world(
        SimConfig {
            events: 230,
            link_style: LinkStyle::Relative,
            ..Default::default()
        },
        50,
        None,
        |_| {},
    )
    .await;
    assert_eq!(recover(&b).await, 5);
    assert_eq!(checkpoint(&b.rt).1, 30.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_expiring_mid_backfill_is_renewed() {
    let a = sim(400, 50).await;
    assert!(m10(&a).await.ok());
    assert!(m10(&a).await.ok());
    // The bearer token is revoked by the next page request: M10 gets a new one (U00 refresh)
    // and tries once more, within the same run.
    a.sim.inject(Fault::ExpireToken, 1);
    let r = m10(&a).await;
    assert!(r.ok(), "{:?}", r.error);
    assert_eq!(a.sim.stats().tokens_issued, 2);
    assert!(m10(&a).await.ok());
    assert_eq!(a.sim.stats().tokens_issued, 2, "the new token is cached");
    // A 401 again after the renewal: the run fails and says so; the next run recovers.
    a.sim.inject(Fault::ExpireToken, 2);
    let (e, _) = m10_fails(&a).await;
    assert!(e.contains("HTTP 401 (authentication_error)"), "{e}");
    assert_eq!(a.sim.stats().tokens_issued, 3);
    eprintln!("ExpireToken x2: {e}");
    recover(&a).await;
    assert_eq!(a.sim.stats().tokens_issued, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_credentials_fail_clearly_without_a_retry_storm() {
    let wrong = "d3JvbmctYnV0LXdlbGwtZm9ybWVkLWtleS1zZWNyZXQtZm9yLWZsb3dob3N0LXRlc3Rz";
    let a = world(
        SimConfig {
            events: 100,
            ..Default::default()
        },
        50,
        Some(wrong),
        |_| {},
    )
    .await;
    for _ in 0..3 {
        let (e, _) = m10_fails(&a).await;
        assert!(
            e.contains("HTTP 401 (authentication_error)") && e.contains("service token"),
            "{e}"
        );
        assert!(!e.contains(wrong) && !e.contains("***"), "{e}");
        eprintln!("bad credentials: {e}");
    }
    let s = a.sim.stats();
    assert_eq!(s.token_requests, 3, "one token request per run: {s:?}");
    assert_eq!(s.audit_requests, 0);
    let history = a.rt.history.list(Some("M10"), 10).unwrap();
    assert!(history
        .iter()
        .all(|r| !r.error.as_deref().unwrap_or("").contains(wrong)));
    assert!(stored_ids(&a.rt).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_margin_waits_for_the_window_instead_of_429s() {
    // 12 requests per 3 s window; the host keeps max(2, 1%) = 2 in reserve, so 10 go per
    // window. 150 events in pages of 10 take 16 page requests and a token request.
    let a = world(
        SimConfig {
            events: 150,
            rate_limit_per_hour: 12,
            rate_limit_window: Duration::from_secs(3),
            ..Default::default()
        },
        10,
        None,
        |_| {},
    )
    .await;
    let t = Instant::now();
    let runs = recover(&a).await;
    let took = t.elapsed();
    let s = a.sim.stats();
    assert_eq!(s.status_429, 0, "{s:?}");
    // 14 full pages and the last page of 10.
    assert_eq!(runs, 15);
    assert!(
        s.audit_requests + s.token_requests > 10,
        "more than one window's worth: {s:?}"
    );
    assert!(took >= Duration::from_secs(1), "it waited: {took:?}");
    eprintln!(
        "rate limit 12 per 3 s: {} requests in {took:?}, no 429",
        s.audit_requests + s.token_requests
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_margin_fails_cleanly_when_the_reset_is_past_the_deadline() {
    // 30 requests an hour: the window resets long after M10's 10-minute deadline.
    let a = world(
        SimConfig {
            events: 400,
            rate_limit_per_hour: 30,
            ..Default::default()
        },
        10,
        None,
        |_| {},
    )
    .await;
    let mut failed = None;
    for _ in 0..100 {
        let before = snapshot(&a);
        let r = m10(&a).await;
        if !r.ok() {
            assert_eq!(snapshot(&a), before, "a failed run wrote something");
            failed = Some(r.error.unwrap());
            break;
        }
    }
    let e = failed.expect("the budget runs out before 400 events in pages of 10");
    let origin = a.sim.base_url();
    assert!(e.contains("limit-exceeded"), "{e}");
    assert!(e.contains(&format!("{origin} rate limit")), "{e}");
    assert!(e.contains("resets at"), "{e}");
    eprintln!("rate limit 30 per hour: {e}");
    let s = a.sim.stats();
    assert_eq!(s.status_429, 0, "{s:?}");
    // Every request but the margin of 2 was used.
    assert_eq!(s.audit_requests + s.token_requests, 28, "{s:?}");
    // Later runs fail the same way without sending anything.
    let (e2, _) = m10_fails(&a).await;
    assert!(e2.contains("limit-exceeded"), "{e2}");
    assert_eq!(a.sim.stats(), s);
    // Nothing was lost: what is stored is exactly the events up to the checkpoint's page.
    let stored = stored_ids(&a.rt);
    assert_eq!(stored.len(), 27 * 10);
    let mut want: Vec<String> = (0..270).map(|i| a.sim.event_id(i).unwrap()).collect();
    want.sort();
    assert_eq!(stored, want);
}
