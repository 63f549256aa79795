//! The offload flows end to end: events backfilled from the simulator leave the Audit Events
//! table only once their destination has them, and every event ends up in the table or at the
//! destination exactly once — across failures.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::asa::{asa_with, drain, rows, sim_ids, stored_ids};
use common::{ok, run};
use flowhost::manifest::{Grants, HostPattern};
use serde_json::{json, Value};

/// A Splunk HEC stand-in on loopback: answers `status` (503 while `fail` > 0), and records the
/// events of the requests it acknowledged.
#[derive(Clone, Default)]
struct Hec {
    fail: Arc<Mutex<u32>>,
    accepted: Arc<Mutex<Vec<Value>>>,
    auth: Arc<Mutex<Vec<String>>>,
}

async fn collector(
    State(hec): State<Hec>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    hec.auth.lock().unwrap().push(auth);
    {
        let mut fail = hec.fail.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"text":"Server is busy","code":9}"#.into(),
            );
        }
    }
    let events: Vec<Value> = serde_json::Deserializer::from_str(&body)
        .into_iter()
        .map(|v| v.unwrap())
        .collect();
    hec.accepted.lock().unwrap().extend(events);
    (StatusCode::OK, r#"{"text":"Success","code":0}"#.into())
}

async fn start_hec() -> (Hec, String) {
    let hec = Hec::default();
    let app = axum::Router::new()
        .route("/services/collector/event", axum::routing::post(collector))
        .with_state(hec.clone());
    (hec, common::serve(app).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn hec_rows_leave_the_table_only_after_a_200() {
    let (hec, origin) = start_hec().await;
    // Pages of 100: two full pages behind the checkpoint, the last page (100) at it.
    let a = asa_with(300, 100, &[("HEC_TOKEN", "hec-tok-8d1f")], |env| {
        let g = Grants {
            hosts: vec![HostPattern::parse(&origin).unwrap()],
            ..Default::default()
        };
        env.config.grants.insert("O20".into(), g);
    })
    .await;
    drain(&a.rt).await;
    assert_eq!(stored_ids(&a.rt).len(), 300);
    ok(
        &a.rt,
        "U02",
        json!({"hecUrl": format!("{origin}/services/collector/event")}),
    )
    .await;

    // The collector is down for longer than O20's retries: nothing is deleted.
    *hec.fail.lock().unwrap() = 10;
    let r = run(&a.rt, "O20", json!({"batch": 100})).await;
    assert!(!r.ok());
    assert!(r.error.as_deref().unwrap().contains("503"), "{:?}", r.error);
    assert_eq!(stored_ids(&a.rt).len(), 300, "rows are kept after a 503");
    assert!(!r.error.as_deref().unwrap().contains("hec-tok-8d1f"));

    // Back up: drain in batches of 100; every event arrives once and leaves the table.
    *hec.fail.lock().unwrap() = 0;
    let mut pending = vec![json!({"batch": 100})];
    while let Some(input) = pending.pop() {
        let r = run(&a.rt, "O20", input).await;
        assert!(r.ok(), "{:?}", r.error);
        pending.extend(
            r.requests
                .iter()
                .map(|q| serde_json::from_str::<Value>(&q.input).unwrap()),
        );
    }
    // The page at the checkpoint stays (M10 polls it again); everything older was delivered.
    let kept = stored_ids(&a.rt);
    assert_eq!(kept.len(), 100);
    let accepted = hec.accepted.lock().unwrap().clone();
    let mut ids: Vec<String> = accepted
        .iter()
        .map(|e| e["event"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 200);
    ids.extend(kept);
    ids.sort();
    assert_eq!(
        ids,
        sim_ids(&a.sim),
        "each event delivered or kept, exactly once"
    );
    let first = &accepted[0];
    assert_eq!(first["sourcetype"], "okta:asa:audit");
    assert!(first["time"].as_f64().unwrap() > 1.0e9);
    assert!(hec
        .auth
        .lock()
        .unwrap()
        .iter()
        .all(|h| h == "Splunk hec-tok-8d1f"));
}

/// Adds the event ids of one offloaded object (gzip JSON lines) to `seen`.
fn count_object_ids(gz: &[u8], seen: &mut BTreeMap<String, usize>) {
    let mut text = String::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_string(&mut text)
        .unwrap();
    for line in text.lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        *seen
            .entry(row["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
}

/// The offloaded objects (`.jsonl.gz`, not a store's half-written staging files) under a
/// local store folder.
fn object_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".jsonl.gz") {
                out.push(p);
            }
        }
    }
    out
}

/// Reads every object of a local store folder: event id → how many objects hold it.
fn archived_ids(dir: &Path) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for p in object_files(dir) {
        count_object_ids(&std::fs::read(&p).unwrap(), &mut seen);
    }
    seen
}

/// What one SIGKILL of an offload left behind.
#[derive(Debug)]
struct Kill {
    /// Rows in Audit Events after it.
    rows: usize,
    /// An object holds events that are still in the table: the kill landed after the killed
    /// run's put and before it committed its deletes.
    between_put_and_commit: bool,
}

impl Kill {
    fn after(table: Vec<String>, archived: &BTreeMap<String, usize>) -> Kill {
        Kill {
            between_put_and_commit: table.iter().any(|id| archived.contains_key(id)),
            rows: table.len(),
        }
    }
}

/// Waits (with a generous deadline) until `landed` says an object was written, or fails if
/// the offload process ends first.
async fn wait_for_an_object<F, Fut>(child: &mut std::process::Child, mut landed: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Duration::from_secs(120);
    let started = Instant::now();
    while !landed().await {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the offload ended ({status}) before it wrote an object");
        }
        assert!(
            started.elapsed() < deadline,
            "no object was written within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Each kill came after the offload wrote an object (the caller waited for one) and left work
/// to do (more rows than the page the offload keeps), and at least one landed between a put
/// and its run's commit: the case the offload's design is about.
fn assert_kills_landed_mid_offload(kills: &[Kill], kept: usize) {
    for (i, k) in kills.iter().enumerate() {
        assert!(
            k.rows > kept,
            "kill {i} came after the offload was done: {kills:?}"
        );
    }
    assert!(
        kills.iter().any(|k| k.between_put_and_commit),
        "no kill landed between a put and its commit: {kills:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn object_store_offload_is_exact_across_kills() {
    // 11,000 events behind the checkpoint: more than eight kills let the offload move (each
    // comes soon after a put), so every kill lands before it is done.
    let a = asa_with(12_000, 1000, &[], |_| {}).await;
    drain(&a.rt).await;
    let archive = a.env.dir.path().join("blobs").join("archive");
    let config = a.env.config_file("");

    // `flowhost run O10 --until-idle` killed with SIGKILL once an object has landed (at once,
    // or a few ms later): most kills land after a put but before the run committed its
    // deletes.
    let offload = |batch: u32| {
        std::process::Command::new(env!("CARGO_BIN_EXE_flowhost"))
            .arg("--config")
            .arg(&config)
            .args(["run", "O10", "--until-idle", "--input"])
            .arg(format!("{{\"batch\": {batch}}}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut kills = Vec::new();
    for (i, ms) in [0u64, 0, 3, 0, 10, 0, 1, 20].into_iter().enumerate() {
        let objects = object_files(&archive).len();
        let mut child = offload(250 + 50 * i as u32);
        wait_for_an_object(&mut child, || {
            let n = object_files(&archive).len();
            async move { n > objects }
        })
        .await;
        // Where in the run the kill lands, not a wait for anything.
        std::thread::sleep(Duration::from_millis(ms));
        let _ = child.kill();
        let _ = child.wait();
        kills.push(Kill::after(stored_ids(&a.rt), &archived_ids(&archive)));
    }
    eprintln!("after each kill: {kills:?}");
    assert_kills_landed_mid_offload(&kills, 1000);
    let status = offload(400).wait().unwrap();
    assert!(status.success());

    // Everything behind the checkpoint was archived; the page at it (1000) stays for M10.
    let kept = stored_ids(&a.rt);
    assert_eq!(kept.len(), 1000);
    let seen = archived_ids(&archive);
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "events in two objects: {twice:?}");
    assert!(kept.iter().all(|id| !seen.contains_key(id)));
    let mut all: Vec<String> = seen.keys().cloned().chain(kept).collect();
    all.sort();
    assert_eq!(all, sim_ids(&a.sim), "every event archived or kept, once");
    let log = rows(&a.rt, "Execution Log");
    assert!(log.iter().any(|r| r["notes"]
        .as_str()
        .unwrap()
        .starts_with("Offloaded to archive:")));
}

/// The ASA flows with M10 and O10 on short schedules, for `serve`.
fn fast_flows(dir: &Path) {
    common::copy_flows(&common::flows_dir("dist"), dir, |_| true);
    common::set_every(dir, "M10", "400ms");
    common::set_every(dir, "O10", "700ms");
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_collects_and_offloads_a_live_feed_without_overlap_or_loss() {
    let flows = tempfile::tempdir().unwrap();
    let flows_dir = flows.path().join("flows");
    fast_flows(&flows_dir);
    let a = asa_with(2000, 500, &[], |env| {
        env.config.flows = vec![flows_dir.clone()]
    })
    .await;
    let config = a.config_granting_sim(&[], "");
    // `serve` runs M10 only once it is switched on.
    common::enable(&config, "M10");
    // Events keep arriving while it serves.
    let sim = a.sim.clone();
    let feed = tokio::spawn(async move {
        for _ in 0..60 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            sim.append_events(7);
        }
    });
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_flowhost"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(7)).await;
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    feed.await.unwrap();

    // No two runs of the group `asa` overlapped.
    let mut group: Vec<_> = ["M10", "O10"]
        .iter()
        .flat_map(|f| a.rt.history.list(Some(f), 10_000).unwrap())
        .filter(|r| r.status != flowhost::history::RunStatus::Skipped)
        .collect();
    assert!(
        group.iter().filter(|r| r.flow == "M10").count() >= 5,
        "{log}"
    );
    assert!(
        group.iter().filter(|r| r.flow == "O10").count() >= 2,
        "{log}"
    );
    assert!(
        group
            .iter()
            .all(|r| r.status == flowhost::history::RunStatus::Ok),
        "{group:?}"
    );
    let span = |r: &flowhost::history::RunRecord| -> (jiff::Timestamp, jiff::Timestamp) {
        (
            r.started.parse().unwrap(),
            r.ended.as_deref().unwrap().parse().unwrap(),
        )
    };
    group.sort_by_key(|r| span(r).0);
    for w in group.windows(2) {
        assert!(
            span(&w[0]).1 <= span(&w[1]).0,
            "{} and {} overlapped",
            w[0].id,
            w[1].id
        );
    }

    // Every event is in the table or the archive, exactly once, once M10 has caught up.
    drain(&a.rt).await;
    let archived = archived_ids(&a.env.dir.path().join("blobs").join("archive"));
    assert!(
        archived.values().all(|n| *n == 1),
        "an event archived twice"
    );
    let table = stored_ids(&a.rt);
    assert!(
        table.iter().all(|id| !archived.contains_key(id)),
        "an event both archived and in the table"
    );
    let mut all: Vec<String> = table.into_iter().chain(archived.keys().cloned()).collect();
    all.sort();
    assert_eq!(all, sim_ids(&a.sim));
    assert!(!archived.is_empty());
}

/// Every object under the bucket of `moto`: event id → how many objects hold it.
async fn s3_archived_ids(moto: &common::moto::Moto) -> BTreeMap<String, usize> {
    use futures::TryStreamExt;
    use object_store::ObjectStore;
    let store = common::moto::s3_client(moto);
    let objects: Vec<_> = store.list(None).try_collect().await.unwrap();
    let mut seen = BTreeMap::new();
    for o in objects {
        let bytes = store.get(&o.location).await.unwrap().bytes().await.unwrap();
        count_object_ids(&bytes, &mut seen);
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn offload_to_s3_holds_exactly_the_events_that_left_the_table() {
    let moto = common::moto::moto().await;
    let secrets = [
        ("MOTO_KEY_ID", common::moto::KEY_ID),
        ("MOTO_KEY_SECRET", common::moto::KEY_SECRET),
    ];
    let a = asa_with(8000, 500, &secrets, |env| {
        env.config.blobs.insert(
            "archive".into(),
            common::moto::s3_store(&moto, common::moto::BUCKET),
        );
    })
    .await;
    drain(&a.rt).await;
    let config = a.env.config_file(&format!(
        "blobs:\n  archive: {{kind: s3, bucket: {}, endpoint: \"{}\", region: us-east-1, \
         access_key_id_secret: MOTO_KEY_ID, secret_access_key_secret: MOTO_KEY_SECRET, allow_http: true}}\n",
        common::moto::BUCKET,
        moto.url()
    ));
    let offload = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_flowhost"))
            .arg("--config")
            .arg(&config)
            .args(["run", "O10", "--until-idle", "--input", r#"{"batch": 400}"#])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Injected failures: the offload is killed a few times once an object has landed (7,500
    // events behind the checkpoint, batches of 400: each kill leaves work), then runs to the
    // end.
    // A put has landed once moto logs it (its log is read faster than the bucket is listed,
    // so the kill can come before the run commits).
    let puts = || {
        moto.log()
            .matches(&format!("\"PUT /{}/", common::moto::BUCKET))
            .count()
    };
    let mut kills = Vec::new();
    for ms in [0u64, 0, 2, 0, 5, 0] {
        let earlier = puts();
        let mut child = offload();
        wait_for_an_object(&mut child, || {
            let n = puts();
            async move { n > earlier }
        })
        .await;
        // Where in the run the kill lands, not a wait for anything.
        std::thread::sleep(Duration::from_millis(ms));
        let _ = child.kill();
        let _ = child.wait();
        kills.push(Kill::after(
            stored_ids(&a.rt),
            &s3_archived_ids(&moto).await,
        ));
    }
    eprintln!("after each kill: {kills:?}");
    assert_kills_landed_mid_offload(&kills, 500);
    let out = offload().wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let kept = stored_ids(&a.rt);
    assert_eq!(kept.len(), 500, "the page at the checkpoint stays for M10");
    let seen = s3_archived_ids(&moto).await;
    assert!(seen.values().all(|n| *n == 1), "an event in two objects");
    assert!(kept.iter().all(|id| !seen.contains_key(id)));
    let mut all: Vec<String> = seen.keys().cloned().chain(kept).collect();
    all.sort();
    assert_eq!(
        all,
        sim_ids(&a.sim),
        "the objects hold exactly the events that left the table"
    );
}
