//! Several nodes on one PostgreSQL database (issue 18.2): ticks claimed once per cluster,
//! exclusive groups held across nodes (and freed when the holder dies), the nodes table.
//! Each test has a throwaway server of its own; "nodes" are `Cluster`s on pools whose
//! sessions carry different node names, as separate processes' would.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use std::sync::Arc;

use common::pg::PgServer;
use common::{drop_probe, wait_until, PATIENCE};
use flowhost::cluster::{group_key, Cluster, NodeRun};
use flowhost::engine::{Engine, EngineOptions};
use flowhost::history::postgres::PgHistory;
use flowhost::history::History;
use flowhost::lease::{LeaseError, Leases};
use flowhost::pg::{Pg, PgUrl};
use flowhost::runtime::{Limits, Runtime};
use flowhost::scheduler::{serve, ServeOptions};
use flowhost::store::postgres::PgTables;
use flowhost::store::Store;

fn node(url: &str, name: &str) -> Cluster {
    let pg = Pg::connect(PgUrl::parse(url).unwrap().for_node(name)).unwrap();
    Cluster::join(pg).unwrap()
}

fn far() -> Instant {
    Instant::now() + PATIENCE
}

#[test]
fn nodes_joining_together_each_get_one_row() {
    let server = PgServer::start();
    let url = server.create_db("join");
    // Four nodes create the tables at the same moment: none fails on the race.
    let joined: Vec<Cluster> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let url = url.clone();
                s.spawn(move || node(&url, &format!("n{i}")))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        server.psql(
            "join",
            "SELECT string_agg(node, ',' ORDER BY node) FROM _flowhost_nodes"
        ),
        "n0,n1,n2,n3"
    );
    drop(joined);
}

#[test]
fn each_tick_is_claimed_by_exactly_one_of_two_nodes() {
    let server = PgServer::start();
    let url = server.create_db("ticks");
    let (a, b) = (node(&url, "a"), node(&url, "b"));
    let ticks: Vec<SystemTime> = (0..50u64)
        .map(|i| SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + i * 60))
        .collect();
    // Both nodes claim every tick at the same time, from two threads.
    let claim = |c: &Cluster| -> Vec<bool> {
        ticks
            .iter()
            .map(|t| c.claim_tick("M10", *t).unwrap())
            .collect()
    };
    let (won_a, won_b) = std::thread::scope(|s| {
        let ha = s.spawn(|| claim(&a));
        let hb = s.spawn(|| claim(&b));
        (ha.join().unwrap(), hb.join().unwrap())
    });
    for (i, (x, y)) in won_a.iter().zip(&won_b).enumerate() {
        assert!(x ^ y, "tick {i}: node a won {x}, node b won {y}");
    }
    // The table says the same: one row per tick, naming the winner.
    let rows = server.psql(
        "ticks",
        "SELECT count(*), count(DISTINCT tick) FROM _flowhost_ticks",
    );
    assert_eq!(rows, "50|50");
    let a_rows = server.psql(
        "ticks",
        "SELECT count(*) FROM _flowhost_ticks WHERE node = 'a'",
    );
    assert_eq!(a_rows, won_a.iter().filter(|w| **w).count().to_string());
    // Another flow's tick at the same time is a tick of its own.
    assert!(a.claim_tick("U20", ticks[0]).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_held_on_one_node_is_busy_on_another_until_released() {
    let server = PgServer::start();
    let url = server.create_db("groups");
    let (a, b) = (node(&url, "a"), node(&url, "b"));
    let (on_a, on_b) = (Leases::cluster(a), Leases::cluster(b));
    // Several serves on one database are fine in a cluster.
    let _serving_a = on_a.serve().unwrap();
    let _serving_b = on_b.serve().unwrap();

    let held = on_a.group("asa", far()).await.unwrap();
    on_b.set_wait(false);
    let err = on_b.group("asa", far()).await.unwrap_err();
    assert!(matches!(err, LeaseError::Busy { .. }), "{err}");
    assert_eq!(err.to_string(), "exclusive group `asa` is held by node a");
    on_b.set_wait(true);
    let err = on_b.group("asa", Instant::now()).await.unwrap_err();
    assert!(matches!(err, LeaseError::Timeout { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("held by node a, until the run's deadline"),
        "{err}"
    );
    // Another group is free meanwhile.
    drop(on_b.group("offload", far()).await.unwrap());

    // B waits; A's run ends; B gets the group.
    let waiting = tokio::spawn(async move { on_b.group("asa", far()).await.map(|_| ()) });
    drop(held);
    waiting.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_held_by_a_killed_process_becomes_free() {
    let server = PgServer::start();
    let url = server.create_db("killed");
    let b = node(&url, "b");
    // A process of its own holds the group's lock, as a node mid-run would; its session asks
    // the server to check the client's socket, as flowhost's sessions do.
    let key = group_key("asa");
    let mut holder = Command::new(common::pg::bin_dir().join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &url])
        .args(["-c", &format!("SELECT pg_advisory_lock({key})")])
        .args(["-c", "SELECT pg_sleep(600)"])
        .env("PGOPTIONS", "-c client_connection_check_interval=200")
        .env("PGAPPNAME", "holder")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the server shows the lock granted to it.
    let granted = format!(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
         WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = 'holder' \
         AND ((l.classid::bigint << 32) | l.objid::bigint) = {key}"
    );
    wait_until(PATIENCE, "psql holding the lock", || {
        server.psql("killed", &granted) == "1"
    })
    .await;
    let leases = Leases::cluster(b);
    leases.set_wait(false);
    let err = leases.group("asa", far()).await.unwrap_err().to_string();
    assert!(
        err.starts_with("exclusive group `asa` is held by PostgreSQL session ")
            && err.ends_with("(holder)"),
        "{err}"
    );

    let killed = Instant::now();
    holder.kill().unwrap(); // SIGKILL
    holder.wait().unwrap();
    leases.set_wait(true);
    let got = leases.group("asa", far()).await;
    assert!(got.is_ok(), "{:?}", got.err().map(|e| e.to_string()));
    // What a takeover costs here (the test's bound is PATIENCE; the figure is for the README).
    eprintln!(
        "group free for another node {:?} after its holder's SIGKILL",
        killed.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_table_lists_every_node_with_its_heartbeat_and_liveness() {
    let server = PgServer::start();
    let url = server.create_db("nodes");
    // Before any node joined, status reads no nodes (and creates nothing).
    let reader = Pg::connect(PgUrl::parse(&url).unwrap().for_node("status")).unwrap();
    assert!(flowhost::status::nodes(&reader).unwrap().is_empty());
    let (a, b) = (node(&url, "a"), node(&url, "b"));
    a.heartbeat(&[("M10".into(), 7), ("U20".into(), 9)])
        .unwrap();
    b.heartbeat(&[]).unwrap();

    let nodes = a.nodes().unwrap();
    let ids: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    for n in &nodes {
        assert!(n.alive, "{n:?}");
        assert_eq!(n.pid, i64::from(std::process::id()));
        assert!(n.heartbeat.parse::<jiff::Timestamp>().is_ok(), "{n:?}");
        assert!(n.heartbeat >= n.started, "{n:?}");
    }
    assert_eq!(
        nodes[0].running,
        [
            NodeRun {
                flow: "M10".into(),
                run: 7
            },
            NodeRun {
                flow: "U20".into(),
                run: 9
            }
        ]
    );
    assert!(nodes[1].running.is_empty());
    assert_eq!(flowhost::status::nodes(&reader).unwrap(), nodes);

    // B's connections close (its process is gone): it stays listed, no longer alive.
    drop(b);
    wait_until(PATIENCE, "node b no longer alive", || {
        let nodes = a.nodes().unwrap();
        !nodes.iter().any(|n| n.id == "b" && n.alive) && nodes.iter().any(|n| n.id == "b")
    })
    .await;
    assert!(a.nodes().unwrap().iter().any(|n| n.id == "a" && n.alive));
}

/// A runtime whose tables and run history are in the PostgreSQL database at `url` and whose
/// leases are those of node `name` of its cluster (what `serve` on `db: postgres://...` has).
fn node_runtime(env: &common::TestEnv, url: &str, name: &str) -> Arc<Runtime> {
    let cfg = &env.config;
    let (schemas, secrets) = cfg.check().unwrap();
    let pg = Pg::connect(PgUrl::parse(url).unwrap().for_node(name)).unwrap();
    let tables = PgTables::open(pg.clone(), schemas.clone()).unwrap();
    let history = PgHistory::open(pg.clone()).unwrap();
    let engine = Engine::new(&EngineOptions {
        cache_dir: cfg.cache_dir.clone(),
        ..Default::default()
    })
    .unwrap();
    let blobs = flowhost::caps::blobs::open_stores(&cfg.blobs, &secrets).unwrap();
    let registry = cfg.registry(&schemas, &blobs.keys().cloned().collect());
    Runtime::new(
        engine,
        registry,
        Store::from_backend(Arc::new(tables)),
        History::from_backend(Arc::new(history)),
        Leases::cluster(Cluster::join(pg).unwrap()),
        secrets,
        blobs,
        Limits::default(),
    )
    .unwrap()
}

/// Two `serve` loops on one database, each with the same flow every 200 ms: every tick runs
/// on the node that claimed it and on no other (one history row per claimed tick, written by
/// that node); each node's heartbeat names the runs it has going.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serving_nodes_run_each_tick_once_and_beat_with_their_runs() {
    let server = PgServer::start();
    let url = server.create_db("serve");
    let manifest = "title: Ticker\nschedule:\n  every: 200ms\n  input: {\"op\": \"sleep\", \"ms\": 150}\ntimeout: 1m\n";
    let (env_a, dir_a) = common::env_with_flows();
    let (env_b, dir_b) = common::env_with_flows();
    drop_probe(&dir_a, "ticker", manifest);
    drop_probe(&dir_b, "ticker", manifest);
    let (rt_a, rt_b) = (
        node_runtime(&env_a, &url, "a"),
        node_runtime(&env_b, &url, "b"),
    );
    // A node that died mid-run left a run `running`.
    let ghost = server.psql(
        "serve",
        "INSERT INTO _flowhost_runs (flow, trigger, started, status, input, node) \
         VALUES ('M10', 'schedule', '2026-01-01T00:00:00.000Z', 'running', '{}', 'ghost') RETURNING id",
    );
    // psql prints the id, then the command tag.
    let ghost = ghost.lines().next().unwrap().to_string();
    let ghost_status = || {
        server.psql(
            "serve",
            &format!("SELECT status FROM _flowhost_runs WHERE id = {ghost}"),
        )
    };
    let opts = ServeOptions {
        reload_every: None,
        prune_every: None,
        ..Default::default()
    };
    let count = |sql: &str| -> usize { server.psql("serve", sql).parse().unwrap() };
    let claims = |node: &str| {
        count(&format!(
            "SELECT count(*) FROM _flowhost_ticks WHERE flow = 'ticker' AND node = '{node}'"
        ))
    };
    // Until both have claimed ticks and a heartbeat showed a run going on one of them.
    let observer = node(&url, "observer");
    let beat_with_run = std::sync::Mutex::new(None);
    let stop = async {
        wait_until(
            PATIENCE,
            "ticks on both nodes, a heartbeat naming a run, the gone node's run marked",
            || {
                let beat = observer
                    .nodes()
                    .unwrap()
                    .into_iter()
                    .find_map(|n| n.running.first().map(|r| (n.id.clone(), r.clone())));
                if let Some(b) = beat {
                    *beat_with_run.lock().unwrap() = Some(b);
                }
                claims("a") >= 3
                    && claims("b") >= 3
                    && beat_with_run.lock().unwrap().is_some()
                    && ghost_status() != "running"
            },
        )
        .await
    };
    let stop = futures::future::FutureExt::shared(Box::pin(stop));
    let (sa, sb) = tokio::join!(
        serve(
            rt_a.clone(),
            env_a.config.clone(),
            opts.clone(),
            stop.clone()
        ),
        serve(rt_b.clone(), env_b.config.clone(), opts, stop),
    );
    assert_eq!((sa.failed, sb.failed), (0, 0), "{sa:?} {sb:?}");
    // Every claimed tick is one scheduled run (or skipped row) of its node; none ran twice.
    let runs_of = |node: &str| {
        count(&format!(
            "SELECT count(*) FROM _flowhost_runs WHERE flow = 'ticker' AND trigger = 'schedule' AND node = '{node}'"
        ))
    };
    assert_eq!(runs_of("a"), claims("a"));
    assert_eq!(runs_of("b"), claims("b"));
    let all = count("SELECT count(*) FROM _flowhost_runs WHERE flow = 'ticker'");
    assert_eq!(
        all,
        count("SELECT count(DISTINCT tick) FROM _flowhost_ticks WHERE flow = 'ticker'")
    );
    assert_eq!(rt_a.history.list(Some("ticker"), 1000).unwrap().len(), all);

    // The gone node's run was marked interrupted by a live node's heartbeat.
    assert_eq!(ghost_status(), "error");

    // The run a heartbeat named is that node's run of the shared history.
    let (id, run) = beat_with_run.lock().unwrap().clone().unwrap();
    assert_eq!(run.flow, "ticker");
    let by = server.psql(
        "serve",
        &format!("SELECT node FROM _flowhost_runs WHERE id = {}", run.run),
    );
    assert_eq!(by, id, "{run:?}");
}
