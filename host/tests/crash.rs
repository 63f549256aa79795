//! Crash safety: the real `flowhost` binary, killed with SIGKILL at many pseudo-random moments
//! during a backfill from the simulator, restarted each time. The backlog starts at 200,000
//! events and is topped up between kills whenever fewer than 100,000 are left, so every kill
//! lands before it is done however fast the machine is. Nothing may be lost or stored twice,
//! the checkpoint must always match what is stored, the database must pass
//! `PRAGMA integrity_check`, and no run may be left `running` in history.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::asa::{asa_with, checkpoint, sim_ids, stored_ids, Asa};
use flowhost::history::{RunStatus, INTERRUPTED};

const EVENTS: u64 = 200_000;
const PAGE: u32 = 1000;
/// Before each kill, at least this many events are waiting to be fetched: far more than the
/// fastest machine stores in the longest delay between a start and its kill.
const BACKLOG: u64 = 100_000;

/// A fixed-seed LCG (Knuth's MMIX constants): the kill moments are the same on every run.
struct Lcg(u64);

impl Lcg {
    /// The next value in `lo..=hi`.
    fn next_in(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        lo + (self.0 >> 33) % (hi - lo + 1)
    }
}

/// The ASA flows with M10 every 300 ms, and without the offload flows (whose schedule would
/// move events out of the table).
fn fast_flows(dir: &Path) {
    common::copy_flows(&common::flows_dir("dist"), dir, |name| {
        !name.starts_with("O10.") && !name.starts_with("O20.")
    });
    common::set_every(dir, "M10", "300ms");
}

struct World {
    a: Asa,
    config: PathBuf,
    log: PathBuf,
    _flows: tempfile::TempDir,
}

async fn world() -> World {
    let flows = tempfile::tempdir().unwrap();
    let dir = flows.path().join("flows");
    fast_flows(&dir);
    // Only these flows: the built-in package would bring the offload flows back.
    let a = asa_with(EVENTS, PAGE, &[], |env| {
        env.config.flows = vec![dir.clone()];
        env.config.builtin = false;
    })
    .await;
    let config = a.config_granting_sim(&[], "");
    // `serve` runs M10 only once it is switched on.
    common::enable(&config, "M10");
    let log = a.env.dir.path().join("children.log");
    World {
        a,
        config,
        log,
        _flows: flows,
    }
}

impl World {
    /// `flowhost --config … ARGS`, stderr appended to the children's log.
    fn spawn(&self, args: &[&str]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        Command::new(env!("CARGO_BIN_EXE_flowhost"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// Tops the simulator's backlog up to at least [`BACKLOG`] unfetched events; returns
    /// how many events exist now.
    fn keep_backlog(&self) -> u64 {
        let stored = self.a.rt.store.row_count("Audit Events").unwrap();
        let total = self.a.sim.event_count();
        if total - stored < BACKLOG {
            self.a.sim.append_events(BACKLOG - (total - stored));
        }
        self.a.sim.event_count()
    }

    /// Starts `flowhost ARGS` on a topped-up backlog, kills it after `ms`, checks the
    /// committed state and returns (events stored, events that existed).
    async fn kill_after(&self, args: &[&str], ms: u64) -> (u64, u64) {
        let total = self.keep_backlog();
        let child = self.spawn(args);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        kill(child);
        (self.assert_checkpoint_matches_table(), total)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// After every kill: the committed state is one M10 left behind. The checkpoint's offset
    /// (if any) is a stored event; every event up to it is stored (their number is its index
    /// + 1) plus `LastCount` events of the page after it, and nothing else.
    fn assert_checkpoint_matches_table(&self) -> u64 {
        let a = &self.a;
        let stored = a.rt.store.row_count("Audit Events").unwrap();
        let (offset, last_count) = checkpoint(&a.rt);
        let behind = if offset.is_empty() {
            0
        } else {
            let i = a
                .sim
                .event_index(&offset)
                .unwrap_or_else(|| panic!("the checkpoint {offset} is no event"));
            let mut txn = a.rt.store.begin().unwrap();
            assert!(
                txn.get("Audit Events", &offset).unwrap().is_some(),
                "the checkpoint {offset} (event {i}) is not stored"
            );
            txn.rollback();
            i + 1
        };
        assert_eq!(
            stored,
            behind + last_count as u64,
            "stored events vs checkpoint ({offset:?}, {last_count})"
        );
        stored
    }

    /// The final state: exactly the simulator's ids, each once, the checkpoint on a stored
    /// event with everything before it stored, and both database files intact.
    fn assert_complete(&self) {
        let a = &self.a;
        let stored = stored_ids(&a.rt);
        let mut distinct = stored.clone();
        distinct.dedup();
        assert_eq!(stored.len() as u64, a.sim.event_count());
        assert_eq!(distinct.len(), stored.len(), "an event is stored twice");
        assert_eq!(stored, sim_ids(&a.sim), "events lost or foreign");
        self.assert_checkpoint_matches_table();
        let db = a.env.db().to_path_buf();
        for file in [db.clone(), flowhost::history::history_path_for(&db)] {
            assert_eq!(common::integrity(&file), "ok", "{}", file.display());
        }
    }

    /// M10 runs in history: none left `running`; every failure is a killed process's run,
    /// marked interrupted. Returns (ok, interrupted).
    fn m10_history(&self) -> (usize, usize) {
        let runs: Vec<_> = self
            .a
            .rt
            .history
            .list(Some("M10"), 100_000)
            .unwrap()
            .into_iter()
            .filter(|r| r.parent.is_none() && r.status != RunStatus::Skipped)
            .collect();
        let mut counts = (0, 0);
        for r in &runs {
            match r.status {
                RunStatus::Ok => counts.0 += 1,
                RunStatus::Error if r.error.as_deref() == Some(INTERRUPTED) => counts.1 += 1,
                _ => panic!("run {} is {:?}: {:?}", r.id, r.status, r.error),
            }
        }
        counts
    }
}

/// Each kill found events still waiting, and the backfill moved on between kills (so the
/// restarts really resumed it rather than dying at start).
fn assert_kills_landed_mid_backfill(progress: &[(u64, u64)]) {
    for (i, &(stored, total)) in progress.iter().enumerate() {
        assert!(
            stored < total,
            "kill {i} came after the backfill was done: {stored} of {total}"
        );
    }
    let first = progress.first().map_or(0, |p| p.0);
    let last = progress.last().map_or(0, |p| p.0);
    assert!(last > first, "no progress between kills: {progress:?}");
}

fn kill(mut child: Child) {
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_a_backfill_loses_and_doubles_nothing() {
    let t0 = Instant::now();
    let w = world().await;
    let mut lcg = Lcg(0x5eed_f10e_0001);

    // 1. `flowhost run M10 --until-idle`, killed after 50-700 ms, again and again.
    let mut delays = Vec::new();
    let mut progress = Vec::new();
    for _ in 0..24 {
        let ms = lcg.next_in(50, 700);
        delays.push(ms);
        progress.push(w.kill_after(&["run", "M10", "--until-idle"], ms).await);
    }
    eprintln!(
        "run --until-idle: {} SIGKILLs after {delays:?} ms",
        delays.len()
    );
    eprintln!("(stored, existing) after each kill: {progress:?}");
    assert_kills_landed_mid_backfill(&progress);
    let status = w.spawn(&["run", "M10", "--until-idle"]).wait().unwrap();
    assert!(status.success(), "{}", w.log_tail());
    w.assert_complete();
    let (ok, interrupted) = w.m10_history();
    eprintln!(
        "run --until-idle: done at {:?}; M10 runs ok {ok}, interrupted {interrupted}",
        t0.elapsed()
    );
    assert!(
        interrupted >= 10,
        "most kills land inside a run: {interrupted}"
    );

    // 2. `flowhost serve` (M10 every 300 ms, again at once after a full page) with a new
    // backlog, killed at several moments, then left to catch up and stopped with SIGTERM.
    let t1 = Instant::now();
    let mut delays = Vec::new();
    let mut progress = Vec::new();
    for _ in 0..8 {
        let ms = lcg.next_in(200, 1500);
        delays.push(ms);
        progress.push(w.kill_after(&["serve"], ms).await);
    }
    eprintln!("serve: {} SIGKILLs after {delays:?} ms", delays.len());
    eprintln!("(stored, existing) after each kill: {progress:?}");
    assert_kills_landed_mid_backfill(&progress);
    let child = w.spawn(&["serve"]);
    let deadline = Instant::now() + Duration::from_secs(90);
    while w.a.rt.store.row_count("Audit Events").unwrap() < w.a.sim.event_count() {
        assert!(
            Instant::now() < deadline,
            "serve did not catch up: {}",
            w.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "{}", w.log_tail());
    w.assert_complete();
    let (ok2, interrupted2) = w.m10_history();
    eprintln!(
        "serve: done in {:?}; M10 runs ok {}, interrupted {}",
        t1.elapsed(),
        ok2 - ok,
        interrupted2 - interrupted
    );
    assert!(
        interrupted2 > interrupted,
        "some serve kills land inside a run"
    );
    eprintln!("total {:?}", t0.elapsed());
}
