//! `flowhost serve`: runs every flow that has a schedule, honours `request-run` (catch-up),
//! applies each flow's overlap policy and exclusive group, picks up flows added, changed or
//! removed in the flow folders, and shuts down cleanly on SIGINT/SIGTERM.
//!
//! One task owns all scheduling state (no locks): it starts runs as tokio tasks and hears back
//! from them on a channel. Decisions:
//! - `every: D` flows run once at start, then every D; cron flows at their next tick.
//! - A tick that finds the same flow still running follows the flow's `overlap`: `skip`
//!   records a skipped run in history, `queue` runs it once the current run ends (at most one
//!   waiting), `allow` starts it at once.
//! - A run whose exclusive group is busy waits (first come, first served; one waiting entry
//!   per flow and input), so M10 and the offload flows take turns instead of skipping.
//! - Shutdown stops starting runs and waits for the running ones: each commits or rolls back
//!   (a second signal exits at once; SQLite rolls an unfinished transaction back on its own).
//! - Reload polls the folders (every 2 s by default) and swaps in a new registry. A flow whose
//!   files are still there but no longer load, or whose new component does not compile,
//!   keeps serving its previous version; the error is logged.
//! - Run history older than `history.retention` is pruned at start and then every hour, so a
//!   `serve` that runs for months keeps a bounded history.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use crate::config::Config;
use crate::history::Trigger;
use crate::manifest::{Overlap, Schedule};
use crate::registry::Registry;
use crate::runtime::{RunReport, Runtime};

/// How `serve` behaves; `Default` is what the CLI uses.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// How often the flow folders are checked for changes (`None`: never).
    pub reload_every: Option<Duration>,
    /// How often run history older than the config's `retention` is pruned (`None`: never;
    /// opening the runtime prunes once).
    pub prune_every: Option<Duration>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            reload_every: Some(Duration::from_secs(2)),
            prune_every: Some(Duration::from_secs(3600)),
        }
    }
}

/// A timer ticking every `period`, first one period from now (`None`: never).
fn every(period: Option<Duration>) -> Option<tokio::time::Interval> {
    let period = period?;
    let mut i = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    Some(i)
}

/// The next tick of `timer`, or never.
async fn tick(timer: &mut Option<tokio::time::Interval>) {
    match timer {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Job {
    flow: String,
    input: String,
    trigger: Trigger,
}

enum Event {
    Done { job: Job, report: Option<RunReport> },
}

/// What `serve` did, for the caller's last log line.
#[derive(Debug, Default, Clone)]
pub struct ServeSummary {
    pub runs: u64,
    pub failed: u64,
    pub skipped: u64,
}

struct State {
    rt: Arc<Runtime>,
    config: Config,
    running: HashMap<String, usize>,
    /// Exclusive group → the flow holding it.
    groups: HashMap<String, String>,
    pending: VecDeque<Job>,
    /// Delayed requests, by due time.
    delayed: Vec<(Instant, Job)>,
    next_tick: BTreeMap<String, Instant>,
    summary: ServeSummary,
    fingerprint: Vec<(PathBuf, u64, Option<SystemTime>)>,
    tx: mpsc::UnboundedSender<Event>,
}

/// Serves until `shutdown` resolves (then drains the running runs) and returns a summary.
pub async fn serve(
    rt: Arc<Runtime>,
    config: Config,
    opts: ServeOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> ServeSummary {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let fingerprint = fingerprint(&config.flows);
    let mut st = State {
        rt,
        config,
        running: HashMap::new(),
        groups: HashMap::new(),
        pending: VecDeque::new(),
        delayed: Vec::new(),
        next_tick: BTreeMap::new(),
        summary: ServeSummary::default(),
        fingerprint,
        tx,
    };
    st.plan_ticks(true);
    tracing::info!(flows = st.next_tick.len(), "serving scheduled flows");
    let mut reload = every(opts.reload_every);
    let mut prune = every(opts.prune_every);
    tokio::pin!(shutdown);
    loop {
        let now = Instant::now();
        st.fire_due(now);
        let wake = st.next_wake().unwrap_or(now + Duration::from_secs(3600));
        tokio::select! {
            _ = &mut shutdown => break,
            Some(ev) = rx.recv() => st.on_event(ev),
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = tick(&mut reload) => st.maybe_reload(),
            _ = tick(&mut prune) => st.prune_history(),
        }
    }
    let running: usize = st.running.values().sum();
    if running > 0 {
        tracing::info!(
            running,
            "shutting down: waiting for running flows to finish or roll back"
        );
    }
    while st.running.values().sum::<usize>() > 0 {
        match rx.recv().await {
            Some(ev) => {
                let Event::Done { job, report } = ev;
                st.finish(&job, report.as_ref());
            }
            None => break,
        }
    }
    tracing::info!(
        runs = st.summary.runs,
        failed = st.summary.failed,
        skipped = st.summary.skipped,
        "stopped"
    );
    st.summary
}

impl State {
    /// Deletes the runs older than the retention, on a blocking thread (the scheduler goes on).
    fn prune_history(&self) {
        let (rt, retention) = (self.rt.clone(), self.config.retention);
        tokio::task::spawn_blocking(move || match rt.history.prune_older_than(retention) {
            Ok(0) => {}
            Ok(n) => tracing::info!(runs = n, "pruned run history"),
            Err(e) => tracing::warn!(error = %e, "cannot prune run history"),
        });
    }

    /// (Re)computes the next tick of every scheduled flow. At start, `every` flows are due now.
    fn plan_ticks(&mut self, at_start: bool) {
        let reg = self.rt.registry();
        let now = Instant::now();
        let mut next = BTreeMap::new();
        for f in reg.iter() {
            let name = &f.manifest.name;
            let Some(schedule) = &f.manifest.schedule else {
                continue;
            };
            let keep = self.next_tick.get(name).copied();
            let due = match (keep, at_start) {
                (Some(t), false) => Some(t),
                _ => first_tick(schedule, now, at_start),
            };
            if let Some(t) = due {
                next.insert(name.clone(), t);
            }
        }
        self.next_tick = next;
    }

    fn next_wake(&self) -> Option<Instant> {
        let ticks = self.next_tick.values().copied();
        let delayed = self.delayed.iter().map(|(t, _)| *t);
        ticks.chain(delayed).min()
    }

    fn fire_due(&mut self, now: Instant) {
        let due: Vec<String> = self
            .next_tick
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(n, _)| n.clone())
            .collect();
        let reg = self.rt.registry();
        for name in due {
            let Some(f) = reg.get(&name) else {
                self.next_tick.remove(&name);
                continue;
            };
            if let Some(s) = &f.manifest.schedule {
                match following_tick(s, now) {
                    Some(t) => self.next_tick.insert(name.clone(), t),
                    None => self.next_tick.remove(&name),
                };
            }
            let input = f.manifest.schedule_input.clone();
            self.submit(Job {
                flow: name,
                input,
                trigger: Trigger::Schedule,
            });
        }
        let (ready, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.delayed)
            .into_iter()
            .partition(|(t, _)| *t <= now);
        self.delayed = later;
        for (_, job) in ready {
            self.submit(job);
        }
    }

    /// Starts `job` now, queues it, or records it as skipped.
    fn submit(&mut self, job: Job) {
        let reg = self.rt.registry();
        let Some(flow) = reg.get(&job.flow).cloned() else {
            tracing::warn!(
                flow = job.flow,
                "not starting a flow that is no longer loaded"
            );
            return;
        };
        let m = &flow.manifest;
        if self.running.get(&job.flow).copied().unwrap_or(0) > 0 {
            match (m.overlap, job.trigger) {
                (Overlap::Allow, _) => {}
                (Overlap::Skip, Trigger::Schedule) => {
                    self.skip(&job, "the previous run is still going (overlap: skip)");
                    return;
                }
                _ => {
                    self.enqueue(job);
                    return;
                }
            }
        }
        if let Some(g) = &m.exclusive {
            if let Some(holder) = self.groups.get(g) {
                tracing::debug!(
                    flow = job.flow,
                    group = g,
                    holder,
                    "waiting for the exclusive group"
                );
                self.enqueue(job);
                return;
            }
            self.groups.insert(g.clone(), job.flow.clone());
        }
        *self.running.entry(job.flow.clone()).or_default() += 1;
        let (rt, tx) = (self.rt.clone(), self.tx.clone());
        tokio::spawn(async move {
            let report = match rt.run(&job.flow, &job.input, job.trigger).await {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::error!(flow = job.flow, error = %e, "could not start a run");
                    None
                }
            };
            let _ = tx.send(Event::Done { job, report });
        });
    }

    fn enqueue(&mut self, job: Job) {
        if !self
            .pending
            .iter()
            .any(|p| p.flow == job.flow && p.input == job.input)
        {
            self.pending.push_back(job);
        }
    }

    fn skip(&mut self, job: &Job, reason: &str) {
        self.summary.skipped += 1;
        tracing::info!(flow = job.flow, reason, "skipped a tick");
        if let Err(e) = self
            .rt
            .history
            .record_skipped(&job.flow, job.trigger, reason)
        {
            tracing::warn!(error = %e, "cannot record a skipped run");
        }
    }

    fn on_event(&mut self, ev: Event) {
        let Event::Done { job, report } = ev;
        self.finish(&job, report.as_ref());
        if let Some(r) = report {
            for req in r.requests {
                let job = Job {
                    flow: req.flow,
                    input: req.input,
                    trigger: Trigger::Request,
                };
                if req.delay.is_zero() {
                    self.pending.push_front(job);
                } else {
                    self.delayed.push((Instant::now() + req.delay, job));
                }
            }
        }
        let waiting: Vec<Job> = self.pending.drain(..).collect();
        for job in waiting {
            self.submit(job);
        }
    }

    fn finish(&mut self, job: &Job, report: Option<&RunReport>) {
        if let Some(n) = self.running.get_mut(&job.flow) {
            *n = n.saturating_sub(1);
        }
        self.groups.retain(|_, holder| {
            holder != &job.flow || self.running.get(&job.flow).copied().unwrap_or(0) > 0
        });
        self.summary.runs += 1;
        match report {
            Some(r) if r.ok() => {}
            _ => self.summary.failed += 1,
        }
    }

    /// Swaps in a new registry when the flow folders changed.
    fn maybe_reload(&mut self) {
        let now = fingerprint(&self.config.flows);
        if now == self.fingerprint {
            return;
        }
        self.fingerprint = now;
        let old = self.rt.registry();
        let schemas = self.rt.store.schemas().clone();
        let blob_stores = self.rt.blobs.keys().cloned().collect();
        let mut fresh = Registry::load(
            &self.config.flows,
            &schemas,
            &self.config.grants,
            &blob_stores,
        );
        for e in &fresh.errors {
            tracing::warn!("{e}");
        }
        // Compile what changed now, so a bad component is caught here and not at its next run.
        for f in fresh.iter().cloned().collect::<Vec<_>>() {
            let unchanged = old.get(&f.manifest.name).is_some_and(|o| o.same_files(&f));
            if unchanged {
                if let Some(o) = old.get(&f.manifest.name) {
                    fresh.keep(o.clone());
                }
                continue;
            }
            if let Err(e) = f.prepare(&self.rt.engine) {
                tracing::warn!(
                    flow = f.manifest.name,
                    "new version does not load, keeping the old one: {e}"
                );
                match old.get(&f.manifest.name) {
                    Some(o) => fresh.keep(o.clone()),
                    None => fresh.remove(&f.manifest.name),
                }
            }
        }
        // Still on disk but no longer loading: keep serving the old version.
        for o in old.iter() {
            if fresh.get(&o.manifest.name).is_none() && o.manifest.path.exists() && o.wasm.exists()
            {
                tracing::warn!(
                    flow = o.manifest.name,
                    "keeping the previous version until the new one loads"
                );
                fresh.keep(o.clone());
            }
        }
        let (before, after) = (old.len(), fresh.len());
        self.rt.set_registry(fresh);
        self.plan_ticks(false);
        // Newly scheduled flows start as at start-up.
        let reg = self.rt.registry();
        for f in reg.iter() {
            if let (Some(s), None) = (&f.manifest.schedule, old.get(&f.manifest.name)) {
                if let Some(t) = first_tick(s, Instant::now(), true) {
                    self.next_tick.insert(f.manifest.name.clone(), t);
                }
            }
        }
        tracing::info!(before, after, "reloaded the flow folders");
    }
}

/// Name, size and modification time of every file in the flow folders.
fn fingerprint(dirs: &[PathBuf]) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut v = Vec::new();
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(d) else {
            continue;
        };
        for e in entries.flatten() {
            if let Ok(m) = e.metadata() {
                v.push((e.path(), m.len(), m.modified().ok()));
            }
        }
    }
    v.sort();
    v
}

fn first_tick(s: &Schedule, now: Instant, at_start: bool) -> Option<Instant> {
    match s {
        Schedule::Every(_) if at_start => Some(now),
        Schedule::Every(d) => Some(now + *d),
        Schedule::Cron { .. } => following_tick(s, now),
    }
}

fn following_tick(s: &Schedule, now: Instant) -> Option<Instant> {
    match s {
        Schedule::Every(d) => Some(now + *d),
        Schedule::Cron { line, timezone } => {
            let wall = SystemTime::now();
            let next = crate::cron::next_after(line, timezone, wall).ok()?;
            Some(now + next.duration_since(wall).unwrap_or_default())
        }
    }
}
