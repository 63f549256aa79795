//! `flowhost serve`: schedules, overlap, exclusive groups, reload, and a clean stop on SIGTERM.
//! The flows are copies of the `probe` test flow with their own manifests, dropped into a
//! folder the way a user adds a flow.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::TestEnv;
use flowhost::history::{RunRecord, RunStatus};
use flowhost::runtime::Runtime;
use flowhost::scheduler::{serve, ServeOptions, ServeSummary};

/// Writes `NAME.wasm` (the probe component) and `NAME.yaml` into `dir`.
fn drop_flow(dir: &Path, name: &str, manifest: &str) {
    let probe = common::flows_dir("dist-test").join("probe.wasm");
    std::fs::copy(probe, dir.join(format!("{name}.wasm"))).unwrap();
    std::fs::write(dir.join(format!("{name}.yaml")), manifest).unwrap();
}

fn sleeper(every: &str, ms: u64, extra: &str) -> String {
    format!("title: Sleeper\nschedule:\n  every: {every}\n  input: {{\"op\": \"sleep\", \"ms\": {ms}}}\ntimeout: 10s\n{extra}")
}

fn env_with_flows() -> (TestEnv, std::path::PathBuf) {
    let mut env = TestEnv::new();
    let dir = env.dir.path().join("flows");
    std::fs::create_dir_all(&dir).unwrap();
    env.config.flows = vec![dir.clone()];
    (env, dir)
}

fn runs(rt: &flowhost::runtime::Runtime, flow: &str) -> Vec<RunRecord> {
    rt.history.list(Some(flow), 1000).unwrap()
}

/// Serves `env`'s flows for `how_long`, without reloading, pruning history every `prune_every`.
async fn serve_for(
    env: &TestEnv,
    rt: &Arc<Runtime>,
    prune_every: Option<Duration>,
    how_long: Duration,
) -> ServeSummary {
    let opts = ServeOptions {
        reload_every: None,
        prune_every,
    };
    serve(
        rt.clone(),
        env.config.clone(),
        opts,
        tokio::time::sleep(how_long),
    )
    .await
}

fn interval(r: &RunRecord) -> (jiff::Timestamp, jiff::Timestamp) {
    (
        r.started.parse().unwrap(),
        r.ended.as_deref().unwrap().parse().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn exclusive_group_members_never_overlap_and_busy_ticks_are_skipped() {
    let (env, dir) = env_with_flows();
    drop_flow(&dir, "a", &sleeper("1s", 300, "exclusive: grp\n"));
    drop_flow(&dir, "b", &sleeper("1s", 300, "exclusive: grp\n"));
    // Runs 1.5 s every 500 ms: most ticks find it busy and are skipped (overlap: skip).
    drop_flow(&dir, "slow", &sleeper("500ms", 1500, "overlap: skip\n"));
    let rt = env.config.open_runtime().unwrap();
    let summary = serve_for(&env, &rt, None, Duration::from_secs(4)).await;
    assert_eq!(summary.failed, 0);

    let mut group: Vec<RunRecord> = runs(&rt, "a").into_iter().chain(runs(&rt, "b")).collect();
    assert!(
        group.len() >= 4,
        "a and b each ran about 4 times: {}",
        group.len()
    );
    assert!(group.iter().all(|r| r.status == RunStatus::Ok), "{group:?}");
    group.sort_by_key(|r| interval(r).0);
    for w in group.windows(2) {
        let (first, second) = (interval(&w[0]), interval(&w[1]));
        assert!(
            first.1 <= second.0,
            "{} and {} overlapped: {first:?} {second:?}",
            w[0].flow,
            w[1].flow
        );
    }

    let slow = runs(&rt, "slow");
    let skipped = slow
        .iter()
        .filter(|r| r.status == RunStatus::Skipped)
        .count();
    let ok = slow.iter().filter(|r| r.status == RunStatus::Ok).count();
    assert!(ok >= 2 && skipped >= 2, "slow: {ok} ok, {skipped} skipped");
    assert!(slow
        .iter()
        .filter(|r| r.status == RunStatus::Ok)
        .collect::<Vec<_>>()
        .windows(2)
        .all(|w| {
            let (x, y) = (interval(w[0]), interval(w[1]));
            x.0 >= y.1 || y.0 >= x.1
        }));
}

#[tokio::test(flavor = "multi_thread")]
async fn flows_dropped_in_changed_or_broken_while_serving() {
    let (env, dir) = env_with_flows();
    let rt = env.config.open_runtime().unwrap();
    let opts = ServeOptions {
        reload_every: Some(Duration::from_millis(200)),
        prune_every: None,
    };
    let handle = tokio::spawn(serve(
        rt.clone(),
        env.config.clone(),
        opts,
        tokio::time::sleep(Duration::from_secs(5)),
    ));

    tokio::time::sleep(Duration::from_millis(500)).await;
    drop_flow(&dir, "late", &sleeper("300ms", 10, ""));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = runs(&rt, "late").len();
    assert!(
        before >= 2,
        "a flow dropped in while serving runs on its schedule ({before} runs)"
    );

    // A broken replacement is reported and the old version keeps running.
    std::fs::write(dir.join("late.wasm"), b"not a component").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = runs(&rt, "late");
    assert!(
        after.len() > before + 2,
        "still running after a broken update"
    );
    assert!(after.iter().all(|r| r.status == RunStatus::Ok));

    // Removed: it stops.
    std::fs::remove_file(dir.join("late.wasm")).unwrap();
    std::fs::remove_file(dir.join("late.yaml")).unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let n = runs(&rt, "late").len();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(runs(&rt, "late").len(), n, "a removed flow no longer runs");
    handle.await.unwrap();
}

/// A `serve` that runs for months must not keep every run: history older than the retention
/// is pruned while it serves, not only when it starts.
#[tokio::test(flavor = "multi_thread")]
async fn history_is_pruned_while_serving() {
    let (mut env, dir) = env_with_flows();
    drop_flow(&dir, "tick", &sleeper("200ms", 0, ""));
    env.config.retention = Duration::from_secs(1);
    let rt = env.config.open_runtime().unwrap();
    let prune_every = Some(Duration::from_millis(300));
    let summary = serve_for(&env, &rt, prune_every, Duration::from_millis(3500)).await;
    assert_eq!(summary.failed, 0);
    assert!(
        summary.runs >= 12,
        "it ran every 200 ms: {} runs",
        summary.runs
    );

    let kept = runs(&rt, "tick");
    assert!(
        kept.len() < summary.runs as usize / 2,
        "{} of {} runs are still in history",
        kept.len(),
        summary.runs
    );
    // The oldest run kept started within the retention plus one pruning interval (and some
    // slack for a busy machine), while the first runs are 3.5 s old.
    let now = jiff::Timestamp::now();
    let oldest = kept.iter().map(|r| interval(r).0).min().unwrap();
    let age = now.duration_since(oldest);
    assert!(
        age < jiff::SignedDuration::from_millis(2500),
        "the oldest run kept is {age:?} old"
    );
}

#[test]
fn sigterm_lets_the_running_flow_finish_and_exits_cleanly() {
    let (env, dir) = env_with_flows();
    drop_flow(&dir, "long", &sleeper("1h", 1500, ""));
    let config = env.config_file("");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_flowhost"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("waiting for running flows"), "{err}");
    let rt = env.config.open_runtime().unwrap();
    let long = runs(&rt, "long");
    assert_eq!(long.len(), 1);
    assert_eq!(
        long[0].status,
        RunStatus::Ok,
        "the run in progress finished: {:?}",
        long[0]
    );
}
