//! `flowhost serve`: schedules (every and cron), overlap, exclusive groups, reload, and a clean
//! stop on SIGTERM (and an immediate one on a second signal). The flows are copies of the
//! `probe` test flow with their own manifests, dropped into a folder the way a user adds a flow.
//!
//! Nothing here waits for the clock: each serve stops once the history rows it is about exist
//! (so a slow machine only makes a test slower), and the tests assert order and counts.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::process::Flowhost;
use common::{assert_no_overlap, drop_probe, span, wait_until, TestEnv, PATIENCE};
use flowhost::history::{History, RunRecord, RunStatus, Trigger};
use flowhost::runtime::Runtime;
use flowhost::scheduler::{serve, ServeOptions, ServeSummary};

/// A manifest whose scheduled runs sleep `ms`, every `every`.
fn sleeper(every: &str, ms: u64, extra: &str) -> String {
    format!("title: Sleeper\nschedule:\n  every: {every}\n  input: {{\"op\": \"sleep\", \"ms\": {ms}}}\ntimeout: 20m\n{extra}")
}

/// A manifest whose scheduled runs answer `value` (the probe's `echo` op), every `every`.
fn echoer(every: &str, value: &str) -> String {
    format!("title: Echoer\nschedule:\n  every: {every}\n  input: {{\"op\": \"echo\", \"value\": \"{value}\"}}\n")
}

/// `flow`'s runs in history, newest first.
fn runs(rt: &Runtime, flow: &str) -> Vec<RunRecord> {
    rt.history.list(Some(flow), 1000).unwrap()
}

fn with_status(rt: &Runtime, flow: &str, status: RunStatus) -> Vec<RunRecord> {
    let mut v: Vec<_> = runs(rt, flow)
        .into_iter()
        .filter(|r| r.status == status)
        .collect();
    v.reverse();
    v
}

/// Serves `env`'s flows (no reload, no pruning unless `opts` says so) until `done` holds for
/// the history (checked with [`wait_until`]), then stops and lets the running runs finish.
async fn serve_until(
    env: &TestEnv,
    rt: &Arc<Runtime>,
    opts: ServeOptions,
    what: &str,
    done: impl Fn(&Runtime) -> bool,
) -> ServeSummary {
    let watched = rt.clone();
    let stop = async move { wait_until(PATIENCE, what, || done(&watched)).await };
    serve(rt.clone(), env.config.clone(), opts, stop).await
}

fn no_reload() -> ServeOptions {
    ServeOptions {
        reload_every: None,
        prune_every: None,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exclusive_group_members_never_overlap_and_busy_ticks_are_skipped() {
    let (env, dir) = common::env_with_flows();
    drop_probe(&dir, "a", &sleeper("1s", 300, "exclusive: grp\n"));
    drop_probe(&dir, "b", &sleeper("1s", 300, "exclusive: grp\n"));
    // Runs 1.5 s every 500 ms: most ticks find it busy and are skipped (overlap: skip).
    drop_probe(&dir, "slow", &sleeper("500ms", 1500, "overlap: skip\n"));
    let rt = env.config.open_runtime().unwrap();
    let summary = serve_until(
        &env,
        &rt,
        no_reload(),
        "a and b to run twice each, and slow to run twice and skip twice",
        |rt| {
            let n = |f, s| with_status(rt, f, s).len();
            n("a", RunStatus::Ok) >= 2
                && n("b", RunStatus::Ok) >= 2
                && n("slow", RunStatus::Ok) >= 2
                && n("slow", RunStatus::Skipped) >= 2
        },
    )
    .await;
    assert_eq!(summary.failed, 0);

    // a and b are both due at start: one of them waited for the other, every time. (A tick
    // may also find its own flow still running, e.g. while the first run compiles: skipped.)
    let group: Vec<RunRecord> = runs(&rt, "a")
        .into_iter()
        .chain(runs(&rt, "b"))
        .filter(|r| r.status != RunStatus::Skipped)
        .collect();
    assert!(group.iter().all(|r| r.status == RunStatus::Ok), "{group:?}");
    assert_no_overlap(&group);

    let slow = runs(&rt, "slow");
    assert_no_overlap(&with_status(&rt, "slow", RunStatus::Ok));
    for r in slow.iter().filter(|r| r.status == RunStatus::Skipped) {
        let why = r.error.as_deref().unwrap_or_default();
        assert!(why.contains("overlap: skip"), "{r:?}");
    }
}

/// `overlap: queue`: a tick that finds the flow running waits for it and then runs (nothing is
/// skipped, no two runs overlap); `overlap: allow`: it starts at once, beside the running one.
#[tokio::test(flavor = "multi_thread")]
async fn overlap_queue_waits_its_turn_and_overlap_allow_runs_beside() {
    let (env, dir) = common::env_with_flows();
    // Every 100 ms, 600 ms each: every run but the first starts while another is running.
    drop_probe(&dir, "queued", &sleeper("100ms", 600, "overlap: queue\n"));
    drop_probe(&dir, "allowed", &sleeper("100ms", 600, "overlap: allow\n"));
    let rt = env.config.open_runtime().unwrap();
    let summary = serve_until(&env, &rt, no_reload(), "three runs of each", |rt| {
        with_status(rt, "queued", RunStatus::Ok).len() >= 3
            && with_status(rt, "allowed", RunStatus::Ok).len() >= 3
    })
    .await;
    assert_eq!((summary.failed, summary.skipped), (0, 0), "{summary:?}");

    let queued = runs(&rt, "queued");
    assert!(
        queued.iter().all(|r| r.status == RunStatus::Ok),
        "{queued:?}"
    );
    assert_no_overlap(&queued);

    let allowed = with_status(&rt, "allowed", RunStatus::Ok);
    assert_eq!(allowed.len(), runs(&rt, "allowed").len(), "none skipped");
    // The second run started while the first was still going.
    let (first, second) = (span(&allowed[0]), span(&allowed[1]));
    assert!(
        second.0 < first.1,
        "overlap: allow started the second run only after the first ended: {first:?} {second:?}"
    );
}

/// A cron line with seconds fires under `serve`, once per matching second.
#[tokio::test(flavor = "multi_thread")]
async fn a_cron_schedule_fires_under_serve() {
    let (env, dir) = common::env_with_flows();
    let manifest = "title: Cron\nschedule:\n  cron: \"*/1 * * * * *\"\n  input: {\"op\": \"echo\", \"value\": \"tick\"}\n";
    drop_probe(&dir, "cron", manifest);
    let rt = env.config.open_runtime().unwrap();
    serve_until(&env, &rt, no_reload(), "three cron runs", |rt| {
        with_status(rt, "cron", RunStatus::Ok).len() >= 3
    })
    .await;
    // Every row is a scheduled run that answered, or a tick skipped while the previous run
    // was still going (the first run compiles the component).
    let fired = runs(&rt, "cron");
    for r in &fired {
        assert_eq!(r.trigger, Trigger::Schedule, "{r:?}");
        match r.status {
            RunStatus::Ok => assert_eq!(r.output.as_deref(), Some("\"tick\""), "{r:?}"),
            RunStatus::Skipped => {}
            _ => panic!("{r:?}"),
        }
    }
    // One tick per second: no two in the same second.
    let mut seconds: Vec<i64> = fired.iter().map(|r| span(r).0.as_second()).collect();
    seconds.dedup();
    assert_eq!(seconds.len(), fired.len(), "{fired:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn flows_dropped_in_changed_or_broken_while_serving() {
    let (env, dir) = common::env_with_flows();
    // `clock` runs throughout: its runs are the events that say "time went by" below.
    drop_probe(&dir, "clock", &echoer("200ms", "tick"));
    let rt = env.config.open_runtime().unwrap();
    let opts = ServeOptions {
        reload_every: Some(Duration::from_millis(200)),
        prune_every: None,
        ..Default::default()
    };
    // The outputs of the finished runs of `late`, newest first.
    let outputs = |rt: &Runtime| -> Vec<Option<String>> {
        runs(rt, "late")
            .into_iter()
            .filter(|r| r.status != RunStatus::Running)
            .map(|r| r.output)
            .collect()
    };
    let clock = |rt: &Runtime| runs(rt, "clock").len();
    let script = async {
        // Dropped in while serving: it runs on its schedule.
        drop_probe(&dir, "late", &echoer("200ms", "v1"));
        wait_until(PATIENCE, "two runs of the dropped-in flow", || {
            outputs(&rt).len() >= 2
        })
        .await;

        // Changed (another component, another input): the next runs use the new version.
        std::fs::copy(
            common::flows_dir("dist-test").join("echo.wasm"),
            dir.join("late.wasm"),
        )
        .unwrap();
        std::fs::write(
            dir.join("late.yaml"),
            "title: Late v2\nschedule:\n  every: 200ms\n  input: {\"v\": 2}\n",
        )
        .unwrap();
        wait_until(PATIENCE, "a run of the changed flow", || {
            outputs(&rt).contains(&Some("{\"v\":2}".into()))
        })
        .await;
        let newest = outputs(&rt);
        let first_v2 = newest
            .iter()
            .rposition(|o| o.as_deref() == Some("{\"v\":2}"))
            .unwrap();
        assert!(
            newest[..=first_v2]
                .iter()
                .all(|o| o.as_deref() == Some("{\"v\":2}")),
            "the old version ran after the new one: {newest:?}"
        );

        // A broken replacement is reported and the last good version keeps running.
        std::fs::write(dir.join("late.wasm"), b"not a component").unwrap();
        wait_until(
            PATIENCE,
            "the broken replacement in the load errors",
            || {
                rt.registry()
                    .errors
                    .iter()
                    .any(|e| e.contains("late.wasm") && e.contains("not a WebAssembly file"))
            },
        )
        .await;
        let before = outputs(&rt).len();
        wait_until(PATIENCE, "three more runs after the broken update", || {
            outputs(&rt).len() >= before + 3
        })
        .await;
        let all = runs(&rt, "late");
        assert!(all.iter().all(|r| r.status == RunStatus::Ok), "{all:?}");
        assert_eq!(all[0].output.as_deref(), Some("{\"v\":2}"));

        // Removed: it stops. Once it has left the registry, `clock` runs three more times and
        // `late` not once more.
        std::fs::remove_file(dir.join("late.wasm")).unwrap();
        std::fs::remove_file(dir.join("late.yaml")).unwrap();
        wait_until(PATIENCE, "the removed flow to leave the registry", || {
            rt.registry().get("late").is_none()
        })
        .await;
        wait_until(PATIENCE, "the removed flow's last run to end", || {
            runs(&rt, "late")
                .iter()
                .all(|r| r.status != RunStatus::Running)
        })
        .await;
        let n = outputs(&rt).len();
        let ticks = clock(&rt);
        wait_until(PATIENCE, "three more runs of clock", || {
            clock(&rt) >= ticks + 3
        })
        .await;
        assert_eq!(outputs(&rt).len(), n, "a removed flow no longer runs");
    };
    serve(rt.clone(), env.config.clone(), opts, script).await;
}

/// A `serve` that runs for months must not keep every run: history older than the retention
/// is pruned while it serves, not only when it starts.
#[tokio::test(flavor = "multi_thread")]
async fn history_is_pruned_while_serving() {
    let (mut env, dir) = common::env_with_flows();
    drop_probe(&dir, "tick", &echoer("100ms", "tick"));
    env.config.retention = Duration::from_secs(1);
    let rt = env.config.open_runtime().unwrap();
    let opts = ServeOptions {
        reload_every: None,
        prune_every: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    // The first run's row is the oldest: serve until it is gone, while later ones are kept.
    let first = std::sync::OnceLock::new();
    let summary = serve_until(&env, &rt, opts, "the first run to be pruned", |rt| {
        let Some(oldest) = runs(rt, "tick").last().map(|r| r.id) else {
            return false;
        };
        oldest != *first.get_or_init(|| oldest)
    })
    .await;
    assert_eq!(summary.failed, 0);
    let kept = runs(&rt, "tick");
    assert!(
        (kept.len() as u64) < summary.runs,
        "{} of {} runs are still in history",
        kept.len(),
        summary.runs
    );
    // What is kept is the newest runs, with no gap: pruning removes from the oldest end.
    let ids: Vec<i64> = kept.iter().map(|r| r.id).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
}

/// `flowhost -v serve` on `env`'s flows, its stderr read line by line.
fn spawn_serve(env: &TestEnv) -> Flowhost {
    Flowhost::spawn(&env.config_file(""), &["-v", "serve"], &[])
}

/// History as the serving process writes it, read beside it.
fn history(env: &TestEnv) -> History {
    History::open(&flowhost::history::history_path_for(env.db())).unwrap()
}

/// Waits until `flow` has a running run. `serve` listens for signals before it starts any
/// run, so from then on a SIGTERM is a clean stop.
async fn wait_for_running(env: &TestEnv, flow: &str) {
    let h = history(env);
    wait_until(PATIENCE, &format!("a running row of {flow}"), || {
        h.list(Some(flow), 10)
            .unwrap()
            .iter()
            .any(|r| r.status == RunStatus::Running)
    })
    .await;
}

/// A SIGTERM that comes as soon as `serve` says it is serving (before its loop has waited
/// once) is a clean stop, not death by the signal's default action: the handlers are in place
/// before the first run starts.
#[tokio::test(flavor = "multi_thread")]
async fn a_sigterm_right_at_start_is_a_clean_stop() {
    let (env, dir) = common::env_with_flows();
    drop_probe(&dir, "long", &sleeper("1h", 1500, ""));
    let mut serve = spawn_serve(&env);
    serve.wait_line("serving", |l| l.contains("serving scheduled flows"));
    serve.signal(libc::SIGTERM);
    serve.wait_line("the summary", |l| l.contains("flowhost serve: "));
    let (status, seen) = serve.finish();
    assert!(status.success(), "{status:?}; stderr:\n{}", seen.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_the_running_flow_finish_and_exits_cleanly() {
    let (env, dir) = common::env_with_flows();
    // Long enough to outlast the reload below (every 2 s) by far.
    drop_probe(&dir, "long", &sleeper("1h", 8000, ""));
    let serve = spawn_serve(&env);
    wait_for_running(&env, "long").await;
    serve.signal(libc::SIGTERM);
    let (status, seen) = tokio::task::spawn_blocking(move || serve.finish())
        .await
        .unwrap();
    let err = seen.join("\n");
    assert!(status.success(), "{err}");
    assert!(err.contains("waiting for running flows"), "{err}");
    assert!(
        err.contains("flowhost serve: 1 runs (0 failed, 0 skipped)"),
        "{err}"
    );
    let long = history(&env).list(Some("long"), 10).unwrap();
    assert_eq!(long.len(), 1, "{long:?}");
    assert_eq!(
        long[0].status,
        RunStatus::Ok,
        "the run in progress finished: {:?}",
        long[0]
    );
}

/// A second signal stops `serve` at once: the running flow (which sleeps ten minutes) does not
/// finish, and its run is not `ok` in history.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_stops_serve_at_once() {
    let (env, dir) = common::env_with_flows();
    drop_probe(&dir, "long", &sleeper("1h", 600_000, ""));
    let mut serve = spawn_serve(&env);
    wait_for_running(&env, "long").await;
    serve.signal(libc::SIGTERM);
    serve.wait_line("the first signal heard", |l| {
        l.contains("stopping after the running flows finish")
    });
    serve.signal(libc::SIGTERM);
    let mut status = None;
    wait_until(PATIENCE, "serve to exit after the second signal", || {
        status = serve.child.try_wait().unwrap();
        status.is_some()
    })
    .await;
    let status = status.unwrap();
    assert!(!status.success(), "{status:?}");
    assert_eq!(status.code(), Some(130), "{status:?}");
    let long = history(&env).list(Some("long"), 10).unwrap();
    assert_eq!(long.len(), 1, "{long:?}");
    assert_ne!(long[0].status, RunStatus::Ok, "{:?}", long[0]);
    // The next start marks it interrupted.
    let rt = env.config.open_runtime().unwrap();
    let long = runs(&rt, "long");
    assert_eq!(long[0].status, RunStatus::Error, "{:?}", long[0]);
    assert_eq!(
        long[0].error.as_deref(),
        Some(flowhost::history::INTERRUPTED)
    );
}

/// A flow controls the delay of the runs it requests: the longest one (`u64::MAX` ms) must not
/// take `serve` down (one task schedules everything); the other flows go on running.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_requested_an_eternity_ahead_does_not_stop_serve() {
    let (env, dir) = common::env_with_flows();
    drop_probe(&dir, "clock", &echoer("200ms", "tick"));
    drop_probe(
        &dir,
        "requester",
        "title: Requester\nschedule:\n  every: 1h\n  input: {\"op\": \"request_run\", \"flow\": \"clock\", \"input\": {}, \"delay_ms\": 18446744073709551615}\ngrants:\n  flows: [clock]\n",
    );
    let rt = env.config.open_runtime().unwrap();
    let done = std::sync::OnceLock::new();
    let summary = serve_until(
        &env,
        &rt,
        no_reload(),
        "three runs of clock after the requester's run",
        |rt| {
            let Some(ended) = runs(rt, "requester")
                .iter()
                .find(|r| r.status != RunStatus::Running)
                .map(|r| r.id)
            else {
                return false;
            };
            let after = *done.get_or_init(|| ended);
            runs(rt, "clock").iter().filter(|r| r.id > after).count() >= 3
        },
    )
    .await;
    let requester = runs(&rt, "requester");
    assert_eq!(requester.len(), 1, "{requester:?}");
    assert!(summary.runs >= 4, "{summary:?}");
}
