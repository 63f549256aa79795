//! Issue 18's cluster test: three `flowhost serve` nodes on one PostgreSQL database drain a
//! 100,000-event ASA backfill while the node running M10 is SIGKILLed again and again (a
//! replacement node joins after each kill). Nothing may be lost or doubled, no two runs of
//! exclusive group `asa` may overlap in the history all nodes share, and another node must
//! take the schedule over after each kill (the takeover times are printed).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use common::asa::{asa_with, checkpoint, sim_ids, stored_ids};
use common::pg::PgServer;
use common::process::Flowhost;
use flowhost::database::Database;
use flowhost::history::{RunStatus, INTERRUPTED};

const EVENTS: u64 = 100_000;
const PAGE: u32 = 1000;
const KILLS: usize = 4;
/// How long any one step may take (the whole backfill takes well under a minute here).
const LONG: Duration = Duration::from_secs(300);

/// M10 runs of the shared history, oldest first: (id, node, started, ended, status, error).
fn m10_runs(server: &PgServer) -> Vec<(i64, String, String, Option<String>, String, String)> {
    server
        .psql(
            "asa",
            "SELECT id, node, started, coalesce(ended, ''), status, coalesce(error, '') \
             FROM _flowhost_runs WHERE flow = 'M10' AND parent IS NULL ORDER BY id",
        )
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            let ended = (!f[3].is_empty()).then(|| f[3].to_string());
            (
                f[0].parse().unwrap(),
                f[1].to_string(),
                f[2].to_string(),
                ended,
                f[4].to_string(),
                f[5].to_string(),
            )
        })
        .collect()
}

/// The node holding exclusive group `asa` (the node running M10 right now), from the
/// server's advisory locks and the holding session's `application_name`.
fn group_holder(server: &PgServer) -> Option<String> {
    let key = flowhost::cluster::group_key("asa");
    let (class, obj) = ((key >> 32) as u32, key as u32);
    let name = server.psql(
        "asa",
        &format!(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.classid = {class} \
             AND l.objid = {obj} AND l.objsubid = 1"
        ),
    );
    name.strip_prefix("flowhost ").map(str::to_string)
}

fn stored(server: &PgServer) -> u64 {
    server
        .psql("asa", "SELECT count(*) FROM t_audit_events")
        .parse()
        .unwrap()
}

fn ts(text: &str) -> SystemTime {
    SystemTime::from(text.parse::<jiff::Timestamp>().unwrap())
}

/// `t` rounded down to the millisecond, as history timestamps are.
fn ms(t: SystemTime) -> SystemTime {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    SystemTime::UNIX_EPOCH + Duration::from_millis(since.as_millis() as u64)
}

/// The pid in a node id `HOST-PID-XXXX`.
fn node_pid(node: &str) -> Option<u32> {
    let mut parts = node.rsplitn(3, '-');
    parts.next()?;
    parts.next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_lose_nothing_when_the_node_running_m10_is_killed_during_a_backfill() {
    let server = PgServer::start();
    let url = server.create_db("asa");
    let flows = tempfile::tempdir().unwrap();
    let dir: PathBuf = flows.path().join("flows");
    common::copy_flows(&common::flows_dir("dist"), &dir, |name| {
        !name.starts_with("O10.") && !name.starts_with("O20.")
    });
    common::set_every(&dir, "M10", "300ms");
    let a = asa_with(EVENTS, PAGE, &[], |env| {
        env.config.flows = vec![dir.clone()];
        env.config.builtin = false;
        env.config.db = Database::parse(&url).unwrap();
    })
    .await;
    let config = a.config_granting_sim(&[], "");
    common::enable(&config, "M10");

    let spawn = || Flowhost::spawn(&config, &["serve"], &[]);
    let mut nodes: Vec<Flowhost> = (0..3).map(|_| spawn()).collect();
    let t0 = Instant::now();
    let mut killed_at: HashMap<String, SystemTime> = HashMap::new();
    let mut takeovers = Vec::new();
    // Kills that landed inside an M10 run. The holder is looked up, then killed: its run may
    // end in between (between two runs it holds nothing), so a kill that missed is made again,
    // up to three times as many as asked.
    let (mut hits, mut kills) = (0, 0);
    while hits < KILLS {
        assert!(
            kills < 3 * KILLS,
            "{kills} kills, only {hits} of them inside an M10 run"
        );
        // Let the backfill move on (a fifth of it more per kill), then find M10's node.
        let goal = EVENTS * (hits as u64 + 1) / (KILLS as u64 + 2);
        common::wait_until(LONG, "the backfill to move on", || stored(&server) >= goal).await;
        let (victim_node, victim) = loop {
            if let Some(node) = group_holder(&server) {
                let pid = node_pid(&node).unwrap();
                if let Some(i) = nodes.iter().position(|n| n.child.id() == pid) {
                    break (node, i);
                }
            }
            assert!(t0.elapsed() < LONG, "nobody holds group asa");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let before = stored(&server);
        let mut dead = nodes.remove(victim);
        // History keeps milliseconds: the kill's moment, as history would write it, taken
        // before the signal (so every run that got the group after the death starts later).
        let at = ms(SystemTime::now());
        let _ = dead.child.kill(); // SIGKILL
        let _ = dead.child.wait();
        killed_at.insert(victim_node.clone(), at);
        // Taken over: a run of M10 on another node starts (holding the group) after the kill,
        // and commits events.
        let took = Instant::now();
        common::wait_until(LONG, "another node to take M10 over", || {
            m10_runs(&server)
                .iter()
                .any(|r| r.1 != victim_node && r.4 == "ok" && ts(&r.2) >= at)
        })
        .await;
        takeovers.push(took.elapsed());
        assert!(
            stored(&server) >= before,
            "events went missing after a kill"
        );
        // Inside a run: the victim has a run that did not end `ok` (running until another
        // node marks it interrupted; checked below).
        kills += 1;
        let skipped = RunStatus::Skipped.as_str();
        let interrupted_one = m10_runs(&server)
            .iter()
            .any(|r| r.1 == victim_node && r.4 != "ok" && r.4 != skipped);
        hits += usize::from(interrupted_one);
        nodes.push(spawn());
    }
    common::wait_until(LONG, "the backfill to finish", || {
        stored(&server) >= a.sim.event_count()
    })
    .await;
    let elapsed = t0.elapsed();
    for n in nodes {
        let (status, lines) = n.stop();
        assert!(status.success(), "{}", lines.join("\n"));
    }

    // Exactly the simulator's ids, each once, and the checkpoint covering them all (its
    // offset is a stored event; everything up to it plus its page's `LastCount` is stored).
    let ids = stored_ids(&a.rt);
    let mut distinct = ids.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), ids.len(), "an event is stored twice");
    assert_eq!(ids, sim_ids(&a.sim), "events lost or foreign");
    let (offset, last_count) = checkpoint(&a.rt);
    let covered = a
        .sim
        .event_index(&offset)
        .map(|i| i + 1 + last_count as u64);
    assert_eq!(covered, Some(a.sim.event_count()), "checkpoint {offset:?}");

    // No two runs of group `asa` overlap, whichever node ran them. A killed node's run ended
    // when it was killed (its row was marked interrupted later, by another node).
    let runs = m10_runs(&server);
    let mut spans: Vec<(SystemTime, SystemTime, i64)> = Vec::new();
    let mut interrupted = 0;
    for (id, node, started, ended, status, error) in &runs {
        if status == RunStatus::Skipped.as_str() {
            continue;
        }
        let end = match killed_at.get(node) {
            Some(k) if status == "error" && error == INTERRUPTED => {
                interrupted += 1;
                *k
            }
            _ => {
                assert_eq!(status, "ok", "run {id} on {node}: {status} {error}");
                ts(ended.as_deref().unwrap())
            }
        };
        spans.push((ts(started), end, *id));
    }
    spans.sort();
    for w in spans.windows(2) {
        assert!(
            w[0].1 <= w[1].0,
            "runs {} and {} of group asa overlap: {:?}",
            w[0].2,
            w[1].2,
            w
        );
    }
    let by_node = runs.iter().fold(HashMap::<&str, usize>::new(), |mut m, r| {
        *m.entry(r.1.as_str()).or_default() += 1;
        m
    });
    eprintln!(
        "{EVENTS} events by {} nodes in {elapsed:?} ({:.0} events/s); {interrupted} runs killed; \
         {kills} kills; takeovers after a kill: {takeovers:?}; M10 runs per node: {by_node:?}",
        by_node.len(),
        EVENTS as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(
        interrupted, hits,
        "each kill that landed inside an M10 run interrupted it"
    );
    assert!(
        by_node.len() >= 3,
        "the work moved between nodes: {by_node:?}"
    );
}
