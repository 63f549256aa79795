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
//! - Waiting runs are indexed by what they wait for (their flow's previous run, or a group):
//!   a run that ends wakes only the runs waiting for it, and a waiting run is looked up by
//!   flow and input in a set, so no event scans the whole queue.
//! - `request-run` needs no grant for the flow itself, so requests are bounded: one that is
//!   identical (flow and input) to a run already waiting is coalesced with it, and at most
//!   [`MAX_WAITING_PER_FLOW`] distinct runs of a flow wait (queued or delayed); requests past
//!   that are dropped, with a warning and a `skipped` row in run history saying how many.
//! - A run that panics still reports back (as failed), so its group is released and shutdown
//!   does not wait for it; `Runtime::run` records such a run as `error`.
//! - Shutdown stops starting runs and waits for the running ones: each commits or rolls back
//!   (a second signal exits at once; SQLite rolls an unfinished transaction back on its own).
//! - Reload polls the folders (every 2 s by default) on a blocking thread, never on this task,
//!   so a slow or odd file cannot stall the schedules, and swaps in a new registry. A flow whose
//!   files are still there but no longer load, or whose new component does not compile,
//!   keeps serving its previous version; the error is logged.
//! - Run history older than `history.retention` is pruned at start and then every hour, so a
//!   `serve` that runs for months keeps a bounded history.
//! - A config reload (SIGHUP: [`crate::reload`]) is handled on this task: the new config
//!   replaces the old one only once [`crate::reload::apply`] accepted it, then the flow folders
//!   are loaded again with its grants, even if no file changed.
//! - systemd hears `READY=1` once the ticks are planned, `WATCHDOG=1` from this loop (a
//!   stalled loop stops them) and `STOPPING=1` when shutdown begins ([`crate::notify`]).
//! - With a [`crate::watch::Watch`] (`serve`'s HTTP listener), the loop beats every
//!   [`crate::watch::HEARTBEAT`] even when nothing is due, says when it stops, and reports
//!   every run's end and every skip to it.
//! - Runs the listener starts ([`crate::launch`]) are not this loop's, but the runs they
//!   request are handed to it through the [`crate::watch::Watch`], and shutdown waits for them.
//! - A disabled flow (see [`crate::switches`]) gets no scheduled run and no requested one: its
//!   ticks go on, and each reads the switch, so enabling it from another process needs no
//!   restart; a run already going finishes.
//! - In a cluster ([`crate::lease::Leases::cluster`]: several `serve` nodes on one PostgreSQL
//!   database) a scheduled tick first claims its slot ([`crate::cluster::ticks::tick_slot`])
//!   with [`crate::cluster::Cluster::claim_tick`]: a claim another node won is not a run here,
//!   not even a skipped one (that node runs it); a claim that cannot be made is left to the
//!   other nodes, with a warning. The loop beats the node's heartbeat every
//!   [`CLUSTER_HEARTBEAT`] on a blocking thread, with the top-level runs it has going, and
//!   then marks the runs of nodes that are gone (no session left) as interrupted.
//!   `request-run` catch-up runs stay on the node whose run asked for them, and each of them
//!   takes (or re-takes) its exclusive group, an advisory lock held across the cluster.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::FutureExt;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::history::Trigger;
use crate::manifest::{Overlap, Schedule};
use crate::registry::Registry;
use crate::runtime::{RunReport, Runtime};

/// How often a node of a cluster writes its heartbeat.
pub const CLUSTER_HEARTBEAT: Duration = Duration::from_secs(3);

/// Distinct runs of one flow that may wait (for its previous run, its group, or their delay)
/// when a `request-run` asks for another; further requests are dropped and recorded.
pub const MAX_WAITING_PER_FLOW: usize = 8;

/// How `serve` behaves; `Default` is what the CLI uses.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// How often the flow folders are checked for changes (`None`: never).
    pub reload_every: Option<Duration>,
    /// How often run history older than the config's `retention` is pruned (`None`: never;
    /// opening the runtime prunes once).
    pub prune_every: Option<Duration>,
    /// Where a config reload reads the config from, and when (`None`: never).
    pub config_reload: Option<Arc<crate::reload::ConfigReload>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            reload_every: Some(Duration::from_secs(2)),
            prune_every: Some(Duration::from_secs(3600)),
            config_reload: None,
        }
    }
}

/// A timer ticking every `period`, first one period from now (`None`: never).
fn every(period: Option<Duration>) -> Option<tokio::time::Interval> {
    let period = period?;
    let first = tokio::time::Instant::now().checked_add(period)?;
    let mut i = tokio::time::interval_at(first, period);
    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    Some(i)
}

/// The next config reload request, or never.
async fn reload_requested(reload: &Option<Arc<crate::reload::ConfigReload>>) {
    match reload {
        Some(r) => r.requested().await,
        None => std::future::pending().await,
    }
}

/// The reports of runs the listener started whose requests are waiting, or never.
async fn handed_over(watch: Option<&Arc<crate::watch::Watch>>) -> Vec<RunReport> {
    match watch {
        Some(w) => w.take_requests().await,
        None => std::future::pending().await,
    }
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

impl Job {
    fn key(&self) -> (String, String) {
        (self.flow.clone(), self.input.clone())
    }
}

/// What a waiting job waits for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum WaitFor {
    /// The running run(s) of this flow (overlap `queue`, or a request).
    Flow(String),
    /// This exclusive group.
    Group(String),
}

/// What became of a job handed to [`State::try_start`].
enum Start {
    Started,
    /// Not run and not waiting (skipped, or its flow is gone).
    Dropped,
    Blocked(WaitFor, Job),
}

/// Whether a new job may wait.
enum Admit {
    /// Booked: it waits.
    New,
    /// The same flow and input already waits: this one is that one.
    Coalesced,
    /// Its flow has [`MAX_WAITING_PER_FLOW`] jobs waiting.
    Full,
}

enum Event {
    Done {
        job: Job,
        report: Option<RunReport>,
    },
    /// A reload finished on its blocking thread (`None`: nothing changed, or it failed).
    Reloaded(Option<Box<Reloaded>>),
}

/// A registry loaded from changed flow folders.
struct Reloaded {
    fingerprint: Fingerprint,
    registry: Registry,
}

type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

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
    /// Jobs waiting, by what they wait for.
    waiting: HashMap<WaitFor, VecDeque<Job>>,
    /// Delayed requests, by due time (and arrival, to keep equal times apart).
    delayed: BTreeMap<(Instant, u64), Job>,
    delayed_seq: u64,
    /// Flow and input of every job in `waiting` or `delayed` (to coalesce identical ones).
    queued: HashSet<(String, String)>,
    /// Per flow, how many of its jobs are in `waiting` or `delayed`.
    queued_per_flow: HashMap<String, usize>,
    next_tick: BTreeMap<String, Instant>,
    summary: ServeSummary,
    fingerprint: Fingerprint,
    /// A reload is running on a blocking thread.
    reloading: bool,
    /// The config changed since the running (or last) reload started: load the flow folders
    /// again even if no file changed.
    stale: bool,
    tx: mpsc::UnboundedSender<Event>,
    /// `serve`'s HTTP listener: its [`crate::watch::Watch`], and its settings, which a
    /// reload changes.
    listener: Option<crate::listener::Started>,
    /// The top-level runs this loop has going (run id → flow), for the cluster's heartbeat.
    going: Going,
}

/// Run id → flow of the runs a scheduler has going.
type Going = Arc<std::sync::Mutex<BTreeMap<i64, String>>>;

/// Keeps a run in [`Going`] while it runs, however its task ends.
struct GoingRun {
    going: Going,
    id: i64,
}

impl Drop for GoingRun {
    fn drop(&mut self) {
        self.going
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// Serves until `shutdown` resolves (then drains the running runs) and returns a summary.
pub async fn serve(
    rt: Arc<Runtime>,
    config: Config,
    opts: ServeOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> ServeSummary {
    serve_watched(rt, config, opts, None, shutdown).await
}

/// [`serve`], telling `serve`'s HTTP listener (its [`crate::watch::Watch`]) of the loop's
/// heartbeat, its end, and the end of every run it started, and giving it the listener's
/// settings of each reloaded config.
pub async fn serve_watched(
    rt: Arc<Runtime>,
    config: Config,
    opts: ServeOptions,
    listener: Option<crate::listener::Started>,
    shutdown: impl std::future::Future<Output = ()>,
) -> ServeSummary {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dirs = config.flows.clone();
    let fingerprint = tokio::task::spawn_blocking(move || fingerprint(&dirs))
        .await
        .unwrap_or_default();
    let mut st = State {
        rt,
        config,
        running: HashMap::new(),
        groups: HashMap::new(),
        waiting: HashMap::new(),
        delayed: BTreeMap::new(),
        delayed_seq: 0,
        queued: HashSet::new(),
        queued_per_flow: HashMap::new(),
        next_tick: BTreeMap::new(),
        summary: ServeSummary::default(),
        fingerprint,
        reloading: false,
        stale: false,
        tx,
        listener,
        going: Going::default(),
    };
    st.plan_ticks(true);
    tracing::info!(flows = st.next_tick.len(), "serving scheduled flows");
    crate::notify::ready();
    for f in st.rt.registry().iter() {
        let m = &f.manifest;
        if m.schedule.is_some() && !st.enabled(m) {
            tracing::info!(
                flow = m.name,
                "disabled: not run until `flowhost flow enable {}`",
                m.name
            );
        }
    }
    let mut reload = every(opts.reload_every);
    let mut prune = every(opts.prune_every);
    let mut watchdog = every(crate::notify::watchdog_period());
    let mut heartbeat = every(st.watch().map(|_| crate::watch::HEARTBEAT));
    let mut cluster_beat = every(st.rt.leases.in_cluster().map(|_| CLUSTER_HEARTBEAT));
    tokio::pin!(shutdown);
    loop {
        if let Some(w) = st.watch() {
            w.beat();
        }
        let now = Instant::now();
        st.fire_due(now);
        let wake = st.next_wake().map_or(Duration::from_secs(3600), |w| {
            w.saturating_duration_since(now)
        });
        tokio::select! {
            _ = &mut shutdown => break,
            Some(ev) = rx.recv() => st.on_event(ev),
            _ = tokio::time::sleep(wake) => {}
            _ = tick(&mut reload) => st.maybe_reload(),
            _ = tick(&mut prune) => st.prune_history(),
            _ = tick(&mut watchdog) => crate::notify::watchdog(),
            _ = tick(&mut heartbeat) => {}
            _ = tick(&mut cluster_beat) => st.cluster_heartbeat(),
            reports = handed_over(st.watch()) => {
                for r in reports {
                    st.take_requests(r);
                }
            }
            _ = reload_requested(&opts.config_reload) => {
                if let Some(r) = &opts.config_reload {
                    st.reload_config(r);
                }
            }
        }
    }
    crate::notify::stopping();
    if let Some(w) = st.watch() {
        w.stop();
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
            Some(Event::Done { job, report }) => {
                st.finish(&job, report.as_ref());
            }
            Some(Event::Reloaded(_)) => {}
            None => break,
        }
    }
    if let Some(w) = st.watch() {
        // Runs the listener started (API, console) commit or roll back too.
        w.outside_idle().await;
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
    /// The listener's [`crate::watch::Watch`], if `serve` has a listener.
    fn watch(&self) -> Option<&Arc<crate::watch::Watch>> {
        self.listener.as_ref().map(|l| &l.watch)
    }

    /// Reads the config file again; applies it, or logs why not and keeps the running one.
    fn reload_config(&mut self, source: &crate::reload::ConfigReload) {
        let path = source.shown();
        let new = match source
            .load()
            .and_then(|new| crate::reload::apply(&self.rt, &self.config, &new).map(|()| new))
        {
            Ok(new) => new,
            Err(e) => {
                tracing::error!(
                    config = path,
                    "config not reloaded, keeping the running one: {e}"
                );
                return;
            }
        };
        if let Some(listener) = &self.listener {
            listener.reload(&self.rt, &new);
        }
        self.config = new;
        self.stale = true;
        tracing::info!(config = path, "reloaded the config");
        self.maybe_reload();
    }

    /// Deletes the runs older than the retention, on a blocking thread (the scheduler goes on).
    fn prune_history(&self) {
        let (rt, retention) = (self.rt.clone(), self.config.retention);
        tokio::task::spawn_blocking(move || match rt.history.prune_older_than(retention) {
            Ok(0) => {}
            Ok(n) => tracing::info!(runs = n, "pruned run history"),
            Err(e) => tracing::warn!(error = %e, "cannot prune run history"),
        });
    }

    /// Writes this node's heartbeat, with the runs it has going, on a blocking thread.
    fn cluster_heartbeat(&self) {
        let Some(cluster) = self.rt.leases.in_cluster().cloned() else {
            return;
        };
        let running: Vec<(String, i64)> = self
            .going
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, flow)| (flow.clone(), *id))
            .collect();
        let rt = self.rt.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = cluster.heartbeat(&running) {
                tracing::warn!(error = %e, "cannot write this node's heartbeat");
            }
            // A node that died mid-run left it `running`: its session is gone, so say so.
            match rt.history.mark_interrupted() {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    runs = n,
                    "marked runs of nodes that are gone as interrupted"
                ),
                Err(e) => tracing::warn!(error = %e, "cannot mark the runs of nodes that are gone"),
            }
        });
    }

    /// Whether this node runs the tick of `flow` (schedule `s`) firing now: always outside a
    /// cluster; in one, when this node's claim of the tick won.
    fn claimed(&self, flow: &str, s: &Schedule) -> bool {
        let Some(cluster) = self.rt.leases.in_cluster() else {
            return true;
        };
        let slot = crate::cluster::ticks::tick_slot(s, SystemTime::now());
        match cluster.claim_tick(flow, slot) {
            Ok(true) => true,
            Ok(false) => {
                tracing::debug!(flow, "another node runs this tick");
                false
            }
            Err(e) => {
                tracing::warn!(flow, error = %e, "cannot claim the tick: leaving it to the other nodes");
                false
            }
        }
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
        let delayed = self.delayed.keys().next().map(|(t, _)| *t);
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
                    None => {
                        tracing::warn!(flow = name, schedule = %s, "no next tick: not scheduling it again");
                        self.next_tick.remove(&name)
                    }
                };
                if !self.claimed(&name, s) {
                    continue;
                }
            }
            let input = f.manifest.schedule_input.clone();
            self.submit(
                Job {
                    flow: name,
                    input,
                    trigger: Trigger::Schedule,
                },
                false,
            );
        }
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            // Still counted as queued until it starts or is dropped.
            let job = entry.remove();
            self.place(job);
        }
    }

    /// Starts a new `job` now, or makes it wait, or records it as skipped. With `capped` (a
    /// request), it is dropped instead of waiting when its flow already has
    /// [`MAX_WAITING_PER_FLOW`] runs waiting; returns false then.
    fn submit(&mut self, job: Job, capped: bool) -> bool {
        match self.try_start(job) {
            Start::Started | Start::Dropped => true,
            Start::Blocked(wait_for, job) => self.add_waiting(wait_for, job, capped),
        }
    }

    /// Puts a new job in the queue for `wait_for` (or nowhere: see [`State::submit`]).
    fn add_waiting(&mut self, wait_for: WaitFor, job: Job, capped: bool) -> bool {
        match self.admit(&job, capped) {
            Admit::New => self.waiting.entry(wait_for).or_default().push_back(job),
            Admit::Coalesced => {}
            Admit::Full => return false,
        }
        true
    }

    /// Books a new job as queued, unless an identical one is or, with `capped`, its flow has
    /// no room left.
    fn admit(&mut self, job: &Job, capped: bool) -> Admit {
        let key = job.key();
        if self.queued.contains(&key) {
            tracing::debug!(flow = job.flow, "the same run is already waiting");
            return Admit::Coalesced;
        }
        let n = self.queued_per_flow.entry(job.flow.clone()).or_default();
        if capped && *n >= MAX_WAITING_PER_FLOW {
            return Admit::Full;
        }
        *n += 1;
        self.queued.insert(key);
        Admit::New
    }

    /// Takes a job (flow and input) off the books of waiting jobs: it started, or will
    /// never run.
    fn unqueue(&mut self, key: &(String, String)) {
        self.queued.remove(key);
        if let Some(n) = self.queued_per_flow.get_mut(&key.0) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.queued_per_flow.remove(&key.0);
            }
        }
    }

    /// Starts an already queued job, or moves it to the queue of what it now waits for.
    fn place(&mut self, job: Job) {
        let key = job.key();
        match self.try_start(job) {
            Start::Started | Start::Dropped => self.unqueue(&key),
            Start::Blocked(wait_for, job) => {
                self.waiting.entry(wait_for).or_default().push_back(job);
            }
        }
    }

    /// Starts the jobs waiting for `wait_for` that can start now, in order, stopping at the
    /// first one that still has to wait for the same thing.
    fn wake(&mut self, wait_for: &WaitFor) {
        loop {
            let Some(job) = self.waiting.get_mut(wait_for).and_then(VecDeque::pop_front) else {
                self.waiting.remove(wait_for);
                return;
            };
            let key = job.key();
            match self.try_start(job) {
                Start::Started | Start::Dropped => self.unqueue(&key),
                Start::Blocked(w, job) if &w == wait_for => {
                    self.waiting.entry(w).or_default().push_front(job);
                    return;
                }
                Start::Blocked(w, job) => {
                    self.waiting.entry(w).or_default().push_back(job);
                }
            }
        }
    }

    /// Starts `job` if its flow is loaded and neither its overlap policy nor its exclusive
    /// group stops it.
    fn try_start(&mut self, job: Job) -> Start {
        let reg = self.rt.registry();
        let Some(flow) = reg.get(&job.flow).cloned() else {
            tracing::warn!(
                flow = job.flow,
                "not starting a flow that is no longer loaded"
            );
            return Start::Dropped;
        };
        let m = &flow.manifest;
        if matches!(job.trigger, Trigger::Schedule | Trigger::Request) && !self.enabled(m) {
            tracing::debug!(flow = job.flow, trigger = %job.trigger, "not running a disabled flow");
            return Start::Dropped;
        }
        if self.running.get(&job.flow).copied().unwrap_or(0) > 0 {
            match (m.overlap, job.trigger) {
                (Overlap::Allow, _) => {}
                (Overlap::Skip, Trigger::Schedule) => {
                    self.skip(&job, "the previous run is still going (overlap: skip)");
                    return Start::Dropped;
                }
                _ => return Start::Blocked(WaitFor::Flow(job.flow.clone()), job),
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
                return Start::Blocked(WaitFor::Group(g.clone()), job);
            }
            self.groups.insert(g.clone(), job.flow.clone());
        }
        *self.running.entry(job.flow.clone()).or_default() += 1;
        let (rt, tx, going) = (self.rt.clone(), self.tx.clone(), self.going.clone());
        tokio::spawn(async move {
            // Whatever happens in the run, the scheduler hears back: a run that never reported
            // would hold its group and stall shutdown forever.
            let run = AssertUnwindSafe(async {
                let begun = rt.begin(&job.flow, &job.input, job.trigger)?;
                going
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(begun.id, job.flow.clone());
                let _going = GoingRun {
                    going: going.clone(),
                    id: begun.id,
                };
                rt.complete(begun).await
            })
            .catch_unwind();
            let report = match run.await {
                Ok(Ok(r)) => Some(r),
                Ok(Err(e)) => {
                    tracing::error!(flow = job.flow, error = %e, "could not start a run");
                    None
                }
                Err(panic) => {
                    let what = crate::runtime::panic_text(panic.as_ref());
                    tracing::error!(flow = job.flow, panic = what, "a run panicked");
                    None
                }
            };
            let _ = tx.send(Event::Done { job, report });
        });
        Start::Started
    }

    /// Whether `serve` may run the flow of `m` now: its switch is read from the database each
    /// time (`flowhost flow disable` in another process counts from the next tick). A switch
    /// that cannot be read leaves the manifest's state.
    fn enabled(&self, m: &crate::manifest::Manifest) -> bool {
        let switch = self.rt.history.switch(&m.name).unwrap_or_else(|e| {
            tracing::warn!(flow = m.name, error = %e, "cannot read the flow's switch");
            None
        });
        crate::switches::effective(m, switch)
    }

    fn skip(&mut self, job: &Job, reason: &str) {
        self.summary.skipped += 1;
        if let Some(w) = self.watch() {
            w.skipped(&job.flow);
        }
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
        let (job, report) = match ev {
            Event::Done { job, report } => (job, report),
            Event::Reloaded(r) => {
                self.reloading = false;
                if let Some(r) = r {
                    self.swap_registry(*r);
                }
                if self.stale {
                    self.maybe_reload();
                }
                return;
            }
        };
        for wait_for in self.finish(&job, report.as_ref()) {
            self.wake(&wait_for);
        }
        if let Some(r) = report {
            self.take_requests(r);
        }
    }

    /// Schedules the runs that run `r` requested (one of this scheduler's, or one the
    /// listener started), within the per-flow cap.
    fn take_requests(&mut self, r: RunReport) {
        // Requests past the per-flow cap, by flow.
        let mut dropped: BTreeMap<String, usize> = BTreeMap::new();
        for req in r.requests {
            let job = Job {
                flow: req.flow,
                input: req.input,
                trigger: Trigger::Request,
            };
            let admitted = if req.delay.is_zero() {
                self.submit(job.clone(), true)
            } else {
                match Instant::now().checked_add(req.delay) {
                    Some(due) => match self.admit(&job, true) {
                        Admit::New => {
                            self.delayed_seq = self.delayed_seq.wrapping_add(1);
                            self.delayed.insert((due, self.delayed_seq), job.clone());
                            true
                        }
                        Admit::Coalesced => true,
                        Admit::Full => false,
                    },
                    None => false,
                }
            };
            if !admitted {
                *dropped.entry(job.flow).or_default() += 1;
            }
        }
        for (flow, n) in dropped {
            let reason = format!(
                "dropped {n} run request(s) from run {} of {}: at most {MAX_WAITING_PER_FLOW} distinct runs of a flow may wait",
                r.id, r.flow
            );
            tracing::warn!(flow, dropped = n, "{reason}");
            self.skip(
                &Job {
                    flow,
                    input: String::new(),
                    trigger: Trigger::Request,
                },
                &reason,
            );
        }
    }

    /// Books the end of `job`'s run; returns what that run's end may let start.
    fn finish(&mut self, job: &Job, report: Option<&RunReport>) -> Vec<WaitFor> {
        if let Some(n) = self.running.get_mut(&job.flow) {
            *n = n.saturating_sub(1);
        }
        let still_running = self.running.get(&job.flow).copied().unwrap_or(0) > 0;
        let mut wake = vec![WaitFor::Flow(job.flow.clone())];
        if !still_running {
            self.running.remove(&job.flow);
            let released: Vec<String> = self
                .groups
                .iter()
                .filter(|(_, holder)| **holder == job.flow)
                .map(|(g, _)| g.clone())
                .collect();
            for g in released {
                self.groups.remove(&g);
                wake.push(WaitFor::Group(g));
            }
        }
        self.summary.runs += 1;
        if let Some(w) = self.watch() {
            w.finished(&job.flow, report);
        }
        match report {
            Some(r) if r.ok() => {}
            _ => self.summary.failed += 1,
        }
        wake
    }

    /// Starts a reload on a blocking thread unless one is running; it reports back as
    /// [`Event::Reloaded`].
    fn maybe_reload(&mut self) {
        if self.reloading {
            return;
        }
        self.reloading = true;
        if std::mem::take(&mut self.stale) {
            // Whatever the files: the grants or the folders changed. No folder has this
            // fingerprint (an empty one has an empty list), so the folders load again.
            self.fingerprint = vec![(PathBuf::new(), u64::MAX, None)];
        }
        let (rt, config) = (self.rt.clone(), self.config.clone());
        let (seen, tx) = (self.fingerprint.clone(), self.tx.clone());
        tokio::task::spawn_blocking(move || {
            let load = || load_if_changed(&rt, &config, &seen);
            let result = match std::panic::catch_unwind(AssertUnwindSafe(load)) {
                Ok(r) => r,
                Err(panic) => {
                    let what = crate::runtime::panic_text(panic.as_ref());
                    tracing::error!(panic = what, "reloading the flow folders panicked");
                    None
                }
            };
            let _ = tx.send(Event::Reloaded(result.map(Box::new)));
        });
    }

    /// Swaps in a reloaded registry and plans the ticks of its flows.
    fn swap_registry(&mut self, r: Reloaded) {
        self.fingerprint = r.fingerprint;
        let old = self.rt.registry();
        let (before, after) = (old.len(), r.registry.len());
        self.rt.set_registry(r.registry);
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
        // A changed manifest may have changed what a waiting run waits for (or removed its
        // flow): place every waiting run again, once per reload.
        let waiting: Vec<Job> = std::mem::take(&mut self.waiting)
            .into_values()
            .flatten()
            .collect();
        for job in waiting {
            self.place(job);
        }
        tracing::info!(before, after, "reloaded the flow folders");
    }
}

/// Loads the flow folders (and the built-in package, which never changes) again if their
/// files changed since `seen` (blocking: file I/O and compiling). A flow whose new version
/// does not load keeps its current one.
fn load_if_changed(rt: &Runtime, config: &Config, seen: &Fingerprint) -> Option<Reloaded> {
    let now = fingerprint(&config.flows);
    if &now == seen {
        return None;
    }
    let old = rt.registry();
    let schemas = rt.store.schemas().clone();
    let blob_stores = rt.blobs().keys().cloned().collect();
    let mut fresh = config.registry(&schemas, &blob_stores);
    for e in &fresh.errors {
        tracing::warn!("{e}");
    }
    // Compile what changed now, so a bad component is caught here and not at its next run.
    for f in fresh.iter().cloned().collect::<Vec<_>>() {
        // Unchanged files: the new entry (with the config's grants as they are now) takes the
        // compiled component of the old one.
        if let Some(o) = old.get(&f.manifest.name).filter(|o| o.same_files(&f)) {
            f.reuse_compiled(o);
            continue;
        }
        if let Err(e) = f.prepare(&rt.engine) {
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
        if fresh.get(&o.manifest.name).is_none() && o.still_there() {
            tracing::warn!(
                flow = o.manifest.name,
                "keeping the previous version until the new one loads"
            );
            fresh.keep(o.clone());
        }
    }
    Some(Reloaded {
        fingerprint: now,
        registry: fresh,
    })
}

/// Name, size and modification time of every file in the flow folders (from the directory
/// entries: no file is opened).
fn fingerprint(dirs: &[PathBuf]) -> Fingerprint {
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
        _ => following_tick(s, now),
    }
}

/// The tick after `now` (`None` if there is none, or it is past what `Instant` can hold).
fn following_tick(s: &Schedule, now: Instant) -> Option<Instant> {
    let wall = SystemTime::now();
    let next = next_tick_at(s, Some(wall), wall)?;
    now.checked_add(next.duration_since(wall).unwrap_or_default())
}

/// When `serve` runs a flow with schedule `s` next, in wall-clock time, given when its
/// previous tick was (`last`; `None`: never): an `every: D` flow D after its previous tick
/// (at once when it never ran or that is past: `serve` runs `every` flows at start), a cron
/// flow at its first tick after `now`. `None` when there is no such time. The one place both
/// `serve` and `flowhost status` compute it.
pub fn next_tick_at(s: &Schedule, last: Option<SystemTime>, now: SystemTime) -> Option<SystemTime> {
    match s {
        Schedule::Every(d) => match last {
            Some(last) => last.checked_add(*d).map(|t| t.max(now)),
            None => Some(now),
        },
        Schedule::Cron { line, timezone } => crate::cron::next_after(line, timezone, now).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_tick_follows_the_previous_tick_or_the_cron_line() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let every = Schedule::Every(Duration::from_secs(300));
        assert_eq!(
            next_tick_at(&every, None, now),
            Some(now),
            "never ran: at once"
        );
        let last = now - Duration::from_secs(100);
        assert_eq!(
            next_tick_at(&every, Some(last), now),
            Some(now + Duration::from_secs(200))
        );
        let long_ago = now - Duration::from_secs(10_000);
        assert_eq!(
            next_tick_at(&every, Some(long_ago), now),
            Some(now),
            "overdue: due now"
        );
        let cron = Schedule::Cron {
            line: "0 */5 * * * *".into(),
            timezone: "UTC".into(),
        };
        // 1_700_000_000 is 22:13:20 UTC; the next five-minute mark is 22:15:00.
        assert_eq!(
            next_tick_at(&cron, Some(long_ago), now),
            Some(now + Duration::from_secs(100))
        );
    }
}
