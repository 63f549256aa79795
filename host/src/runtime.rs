//! Runs: the shared `Runtime` (engine, registry, store, history, secrets, HTTP client), the
//! lifecycle of a top-level run, and child calls.
//!
//! A top-level run owns one table transaction; its children (`flows.call`, `flows.for-each`)
//! write into the same one. The transaction commits only when the top-level flow returns `Ok`
//! and rolls back on an error, a trap, a timeout or a crash (DESIGN.md §4), except for what it
//! inserted into `keep_on_failure` tables, written after the rollback ([`Txn`]). Run history is
//! written outside that transaction so a failed run's record survives its rollback; child calls
//! are aggregated per flow, and only failed children (the first few of a run) get a history
//! row of their own.

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::FutureExt;

use crate::budget::Budget;
use crate::caps::upsert_queue::Deferred;
use crate::engine::{Engine, Instance, Outcome, WitError};
use crate::history::{ChildStats, History, LogLine, RunStatus, Trigger, MAX_FAILED_CHILD_ROWS};
use crate::memo::{Kept, Memo, Recorder};
use crate::registry::{FlowEntry, Registry};
use crate::secrets::Secrets;
use crate::store::{DeferredUpsert, Store, Txn};

/// Limits that apply to every run (the manifest adds timeout and memory per flow).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Nesting depth of flow calls (the top-level flow is depth 0).
    pub max_depth: u32,
    /// Items in one `for-each`.
    pub max_items: usize,
    /// Upper bound on a `for-each`'s concurrency.
    pub max_concurrency: u32,
    /// Size of a flow's output (and of a child's output handed to its parent).
    pub max_output: usize,
    /// Size of an HTTP response body.
    pub max_response: usize,
    /// Default per-attempt HTTP timeout.
    pub http_timeout: Duration,
    /// Log lines kept per run (the rest are counted).
    pub max_log_lines: usize,
    /// Worker tasks a `for-each` spreads its children over (default:
    /// [`default_for_each_workers`]).
    pub for_each_workers: usize,
    /// Whether `http.prefetch` sends anything (config `http.prefetch`, default on).
    pub http_prefetch: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 16,
            max_items: 100_000,
            max_concurrency: 64,
            max_output: 16 << 20,
            max_response: 64 << 20,
            http_timeout: Duration::from_secs(30),
            max_log_lines: 1000,
            for_each_workers: default_for_each_workers(),
            http_prefetch: true,
        }
    }
}

/// A for-each's worker tasks by default: half the cores, at least one. The other half is left
/// to the rest of the run (its parent flow, HTTP, the transaction's writes and commit, SQLite's
/// checkpoints) and of the process. On two cores, the ASA drain with one worker instead of two
/// spent 8-10% less CPU per event at the same rate (1,000,000 events; 13% at 200,000; issue
/// 20): the second worker's children mostly waited for the run's transaction and moved its
/// data between the cores' caches.
pub fn default_for_each_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// Why a run could not start (a run that starts and fails is a `RunReport` with an error).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{}", match (load_error, suggestion) {
        (Some(e), _) => format!("flow `{name}` is not loaded: {e}"),
        (None, Some(s)) => format!("no flow named `{name}` (did you mean `{s}`?)"),
        (None, None) => format!("no flow named `{name}` (`flowhost list` shows the flows)"),
    })]
    UnknownFlow {
        name: String,
        suggestion: Option<String>,
        /// Why a flow of that name was refused at load time, if one was.
        load_error: Option<String>,
    },
    #[error("input for {flow} is not valid JSON: {message}")]
    BadInput { flow: String, message: String },
    #[error("{0}")]
    Storage(String),
    #[error("{flow}: a timeout of {timeout} is past what this system's clock can represent")]
    Deadline { flow: String, timeout: String },
}

impl RunError {
    /// The error for a name that `registry` has no flow for.
    pub fn unknown_flow(registry: &Registry, name: &str) -> RunError {
        RunError::UnknownFlow {
            name: name.to_string(),
            suggestion: registry.suggest(name).map(str::to_string),
            load_error: registry.load_error(name).map(str::to_string),
        }
    }
}

/// A flow asked (through `schedule.request-run`) to be run again.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    pub flow: String,
    pub input: String,
    pub delay: Duration,
}

/// A top-level run recorded in history but not yet run ([`Runtime::begin`]).
pub struct Begun {
    pub id: i64,
    flow: Arc<FlowEntry>,
    input: String,
    started: Instant,
    deadline: Instant,
}

/// What a top-level run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub id: i64,
    pub flow: String,
    pub status: RunStatus,
    pub output: Option<String>,
    pub error: Option<String>,
    /// Runs requested by the flow; empty unless the run committed.
    pub requests: Vec<RunRequest>,
    pub elapsed: Duration,
}

impl RunReport {
    pub fn ok(&self) -> bool {
        self.status == RunStatus::Ok
    }
}

/// Everything shared by all runs of one process.
pub struct Runtime {
    pub engine: Engine,
    registry: RwLock<Arc<Registry>>,
    pub store: Store,
    pub history: History,
    pub secrets: Secrets,
    pub http: reqwest::Client,
    pub cache: crate::caps::cache::FlowCache,
    /// The configured blob stores by name (`blobs:` in the config file); swapped by a
    /// config reload ([`Runtime::set_blobs`]).
    blobs: RwLock<Arc<crate::caps::blobs::BlobStores>>,
    /// `limits.http_prefetch`, as a config reload last set it.
    http_prefetch: std::sync::atomic::AtomicBool,
    pub limits: Limits,
    /// Per origin, the rate-limit budget the last HTTP response reported.
    pub rate_limits: crate::caps::http::RateLimits,
    /// GETs sent ahead for a later run (`http.prefetch`).
    pub prefetches: crate::caps::prefetch::Prefetches,
    /// Exclusive groups across processes (and who may `serve` the database).
    pub leases: crate::lease::Leases,
    /// Pure flows' calls kept across runs ([`crate::memo`]).
    pub kept: Kept,
}

/// State of one top-level run, shared with its children.
pub struct RunShared {
    pub id: i64,
    /// `None` once the run has ended (a straggling child then gets an error, never a write).
    pub txn: Mutex<Option<Txn>>,
    pub logs: Mutex<Vec<LogLine>>,
    pub dropped_logs: std::sync::atomic::AtomicU64,
    /// Failed child calls so far (the first few get history rows of their own).
    pub failed_children: std::sync::atomic::AtomicU64,
    pub children: Mutex<BTreeMap<String, ChildStats>>,
    pub requests: Mutex<Vec<RunRequest>>,
    pub pool: Mutex<InstancePool>,
    pub memo: Mutex<Memo>,
    /// Upserts accepted but not yet applied to `txn` (see [`crate::caps::upsert_queue`]).
    pub deferred: Mutex<Deferred>,
    /// What the host may buffer for this run (see [`crate::budget`]).
    pub budget: Arc<Budget>,
    /// The budget the kept log lines hold.
    pub logs_held: Mutex<Option<crate::budget::Charge>>,
}

impl RunShared {
    /// Run `id` writing into `txn` (`None`: a context with no tables, as benchmarks use).
    pub fn new(id: i64, txn: Option<Txn>) -> RunShared {
        let txn_missing = txn.is_none();
        RunShared {
            id,
            txn: Mutex::new(txn),
            logs: Mutex::new(Vec::new()),
            dropped_logs: Default::default(),
            failed_children: Default::default(),
            children: Mutex::new(BTreeMap::new()),
            requests: Mutex::new(Vec::new()),
            pool: Mutex::new(InstancePool::default()),
            memo: Mutex::new(Memo::default()),
            // Without a transaction nothing would ever write the queue: refuse upserts at once.
            deferred: Mutex::new(Deferred::new(txn_missing)),
            budget: Budget::new(crate::manifest::DEFAULT_RUN_MEMORY),
            logs_held: Mutex::new(None),
        }
    }

    /// The same run with a budget of `limit` bytes for what the host buffers for it.
    pub fn with_run_memory(mut self, limit: usize) -> RunShared {
        self.budget = Budget::new(limit);
        self
    }

    /// Closes the queue of deferred upserts and returns what is left in it.
    fn close_deferred(&self) -> Vec<DeferredUpsert> {
        lock(&self.deferred).close()
    }
}

/// What a host call knows about its caller.
#[derive(Clone)]
pub struct CallCtx {
    pub rt: Arc<Runtime>,
    pub flow: Arc<FlowEntry>,
    pub run: Arc<RunShared>,
    pub depth: u32,
    pub deadline: Instant,
    /// What a call of a pure flow reads, to keep it across runs ([`crate::memo`]).
    pub reads: Option<Arc<Mutex<Recorder>>>,
}

impl CallCtx {
    pub fn name(&self) -> &str {
        &self.flow.manifest.name
    }
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// The call did something besides reading tables (a pure flow's call is then not kept
    /// across runs).
    pub fn not_a_read(&self) {
        if let Some(reads) = &self.reads {
            lock(reads).other();
        }
    }
}

/// Locks a mutex even if a panicking thread poisoned it (the data is still consistent for our
/// uses: append-only vectors and a transaction that rolls back on drop).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Runtime {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        engine: Engine,
        registry: Registry,
        store: Store,
        history: History,
        leases: crate::lease::Leases,
        secrets: Secrets,
        blobs: crate::caps::blobs::BlobStores,
        limits: Limits,
    ) -> Result<Arc<Runtime>, String> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("flowhost/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(Arc::new(Runtime {
            leases,
            engine,
            registry: RwLock::new(Arc::new(registry)),
            store,
            history,
            secrets,
            http,
            cache: Default::default(),
            blobs: RwLock::new(Arc::new(blobs)),
            http_prefetch: limits.http_prefetch.into(),
            limits,
            rate_limits: Default::default(),
            prefetches: Default::default(),
            kept: Kept::default(),
        }))
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Swaps in a newly loaded registry (runs in progress keep the flows they started with).
    pub fn set_registry(&self, registry: Registry) {
        *self.registry.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(registry);
    }

    /// The blob stores by name.
    pub fn blobs(&self) -> Arc<crate::caps::blobs::BlobStores> {
        self.blobs.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Swaps in the blob stores of a reloaded config (a running call keeps the store it has).
    pub fn set_blobs(&self, blobs: crate::caps::blobs::BlobStores) {
        *self.blobs.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(blobs);
    }

    /// Whether `http.prefetch` sends its request ahead (`http.prefetch` in the config).
    pub fn http_prefetch(&self) -> bool {
        self.http_prefetch
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets `http.prefetch` from a reloaded config.
    pub fn set_http_prefetch(&self, on: bool) {
        self.http_prefetch
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Looks up a flow, suggesting the closest name when there is none.
    pub fn flow(&self, name: &str) -> Result<Arc<FlowEntry>, RunError> {
        let reg = self.registry();
        reg.get(name)
            .cloned()
            .ok_or_else(|| RunError::unknown_flow(&reg, name))
    }

    /// Runs `name` as a top-level run: one transaction, one history record.
    pub async fn run(
        self: &Arc<Self>,
        name: &str,
        input: &str,
        trigger: Trigger,
    ) -> Result<RunReport, RunError> {
        let begun = self.begin(name, input, trigger)?;
        self.complete(begun).await
    }

    /// The first half of [`Runtime::run`]: checks the flow and its input and records the run
    /// in history (status `running`), so that its id is known before it runs (the HTTP API's
    /// `?async=true` answers with it at once). [`Runtime::complete`] runs it.
    pub fn begin(&self, name: &str, input: &str, trigger: Trigger) -> Result<Begun, RunError> {
        let flow = self.flow(name)?;
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(input) {
            return Err(RunError::BadInput {
                flow: name.into(),
                message: e.to_string(),
            });
        }
        let started = Instant::now();
        // The manifest bounds the timeout (`manifest::TIMEOUT_RANGE`); this only guards
        // against a clock that cannot represent it.
        let deadline =
            started
                .checked_add(flow.manifest.timeout)
                .ok_or_else(|| RunError::Deadline {
                    flow: name.into(),
                    timeout: crate::manifest::format_duration(flow.manifest.timeout),
                })?;
        let input_for_history = self.history_text(&flow, input);
        let id = self
            .history
            .start(name, trigger, None, &input_for_history)
            .map_err(|e| RunError::Storage(e.to_string()))?;
        Ok(Begun {
            id,
            flow,
            input: input.to_owned(),
            started,
            deadline,
        })
    }

    /// Runs a run [`Runtime::begin`] recorded: waits for its exclusive group, invokes the
    /// flow in one transaction, commits or rolls back, and records the outcome.
    pub async fn complete(self: &Arc<Self>, begun: Begun) -> Result<RunReport, RunError> {
        let Begun {
            id,
            flow,
            input,
            started,
            deadline,
        } = begun;
        let (name, input) = (flow.manifest.name.as_str(), input.as_str());
        // Held until the run is recorded: no other run of the group, in any process, meanwhile.
        let _group = match &flow.manifest.exclusive {
            Some(g) => match self.leases.group(g, deadline).await {
                Ok(lease) => {
                    // A run that waited for its group starts now, not when it was begun: two
                    // runs of a group never overlap in history (across a cluster's nodes too).
                    if let Err(e) = self.history.mark_started(id) {
                        tracing::warn!(run = id, error = %e, "cannot record a run's start");
                    }
                    Some(lease)
                }
                Err(e) => return Ok(self.not_started(id, name, started, e)),
            },
            None => None,
        };
        let mut txn = self
            .store
            .begin()
            .map_err(|e| RunError::Storage(e.to_string()))?;
        txn.set_deadline(deadline);
        let run = Arc::new(RunShared::new(id, Some(txn)).with_run_memory(flow.manifest.run_memory));
        let ctx = CallCtx {
            rt: self.clone(),
            flow: flow.clone(),
            run: run.clone(),
            depth: 0,
            deadline,
            reads: None,
        };
        // A panic anywhere in the invocation (a host call, the engine) ends this run as an
        // error: the transaction below rolls back and history records it, so nothing waits
        // for a run that will never report.
        let mut outcome = match AssertUnwindSafe(invoke(ctx, input, false))
            .catch_unwind()
            .await
        {
            Ok(outcome) => outcome,
            Err(panic) => {
                let what = panic_text(panic.as_ref());
                tracing::error!(run = id, flow = name, panic = what, "a run panicked");
                Err(Failure {
                    message: format!("{name}: internal error in the host (a panic: {what})"),
                    timed_out: false,
                })
            }
        };
        drop(lock(&run.pool).close());
        // A refused buffer fails the run even if the flow went on without it.
        if let (Ok(_), Some(refusal)) = (&outcome, run.budget.refusal()) {
            outcome = Err(Failure {
                message: format!("{name}: {refusal}"),
                timed_out: false,
            });
        }

        // Take the transaction out: a child task still unwinding after a timeout finds `None`.
        let Some(mut txn) = lock(&run.txn).take() else {
            return Err(RunError::Storage(
                "internal: the run's transaction is gone".into(),
            ));
        };
        let deferred = run.close_deferred();
        let applied = match (&outcome, txn.lock_wait_expired()) {
            (Ok(_), None) => txn.upsert_deferred(deferred).map_err(|e| e.to_string()),
            _ => Ok(()),
        };
        // A wait for the write lock that the deadline ended makes the run a timeout.
        let outcome = match txn.lock_wait_expired() {
            Some(m) => Err(Failure {
                message: format!("{name}: timed out: {m}"),
                timed_out: true,
            }),
            None => outcome,
        };
        let (status, output, error) = match outcome {
            Ok(out) => match applied.and_then(|()| txn.commit().map_err(|e| e.to_string())) {
                Ok(()) => (RunStatus::Ok, Some(out), None),
                Err(e) => (
                    RunStatus::Error,
                    None,
                    Some(format!("could not commit the run's table writes: {e}")),
                ),
            },
            Err(failure) => {
                // Tables with `keep_on_failure` (the Execution Log) keep this run's inserts.
                match txn.rollback_keeping_inserts() {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::debug!(run = id, rows = n, "a failed run's kept rows written")
                    }
                    Err(e) => {
                        tracing::warn!(run = id, error = %e, "cannot write a failed run's kept rows")
                    }
                }
                let status = if failure.timed_out {
                    RunStatus::Timeout
                } else {
                    RunStatus::Error
                };
                (status, None, Some(failure.message))
            }
        };
        let requests = if status == RunStatus::Ok {
            std::mem::take(&mut *lock(&run.requests))
        } else {
            Vec::new()
        };
        let mut logs = std::mem::take(&mut *lock(&run.logs));
        let children: Vec<ChildStats> = std::mem::take(&mut *lock(&run.children))
            .into_values()
            .collect();
        let secrets = &self.secrets;
        let out_h = output.as_deref().map(|o| self.history_text(&flow, o));
        let err_h = error.as_deref().map(|e| secrets.redact(e).into_owned());
        for l in &mut logs {
            if let std::borrow::Cow::Owned(m) = secrets.redact(&l.message) {
                l.message = m;
            }
        }
        let dropped_logs = run.dropped_logs.load(std::sync::atomic::Ordering::Relaxed);
        if let Err(e) = self.history.finish_with_dropped_logs(
            id,
            status,
            out_h.as_deref(),
            err_h.as_deref(),
            &logs,
            dropped_logs,
            &children,
        ) {
            tracing::error!(run = id, error = %e, "cannot record the run in history");
        }
        // The rate-limit figures this run's responses (and any other's since) carried: one
        // small write per run, never per request.
        let seen = self.rate_limits.sent.take_unsaved();
        if !seen.is_empty() {
            if let Err(e) = self.history.record_rate_limits(&seen) {
                tracing::warn!(run = id, error = %e, "cannot record the rate-limit figures");
            }
        }
        match status {
            RunStatus::Ok => tracing::info!(
                target: crate::logging::OUTCOME_TARGET,
                run = id,
                flow = name,
                ms = started.elapsed().as_millis() as u64,
                "run ok"
            ),
            _ => tracing::warn!(
                target: crate::logging::OUTCOME_TARGET,
                run = id,
                flow = name,
                error = err_h.as_deref().unwrap_or(""),
                "run failed"
            ),
        }
        Ok(RunReport {
            id,
            flow: name.into(),
            status,
            output,
            error: error.map(|e| secrets.redact(&e).into_owned()),
            requests,
            elapsed: started.elapsed(),
        })
    }

    /// Records run `id`, which did not start because its exclusive group was busy: `skipped`
    /// when it was not to wait, `timeout` when the wait reached its deadline.
    fn not_started(
        &self,
        id: i64,
        name: &str,
        started: Instant,
        e: crate::lease::LeaseError,
    ) -> RunReport {
        use crate::lease::LeaseError;
        let status = match e {
            LeaseError::Busy { .. } => RunStatus::Skipped,
            LeaseError::Timeout { .. } => RunStatus::Timeout,
            LeaseError::Io { .. } | LeaseError::Postgres(_) => RunStatus::Error,
        };
        let error = format!("{name}: {e}");
        if let Err(h) = self
            .history
            .finish(id, status, None, Some(&error), &[], &[])
        {
            tracing::error!(run = id, error = %h, "cannot record the run in history");
        }
        RunReport {
            id,
            flow: name.into(),
            status,
            output: None,
            error: Some(error),
            requests: Vec::new(),
            elapsed: started.elapsed(),
        }
    }

    /// What history may keep of a flow's input or output: redacted, and nothing at all for
    /// flows whose manifest says `sensitive: true` (U00 returns a bearer token).
    fn history_text(&self, flow: &FlowEntry, text: &str) -> String {
        if flow.manifest.sensitive {
            return "[sensitive: not recorded]".into();
        }
        self.secrets.redact(text).into_owned()
    }
}

/// The message of a caught panic (`panic!` payloads are a `&str` or a `String`).
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// Why an invocation failed, as the caller will see it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub message: String,
    pub timed_out: bool,
}

impl Failure {
    /// Flow `name` failed with `message` (not a timeout).
    pub(crate) fn of(name: &str, message: impl std::fmt::Display) -> Failure {
        Failure {
            message: format!("{name}: {message}"),
            timed_out: false,
        }
    }

    /// Flow `name` ran out of time.
    pub(crate) fn timed_out(name: &str) -> Failure {
        Failure {
            message: format!("{name}: timed out"),
            timed_out: true,
        }
    }
}

/// Compiles (lazily) and runs one flow instance in `ctx`.
pub(crate) async fn invoke(ctx: CallCtx, input: &str, reuse: bool) -> Result<String, Failure> {
    let pre = ctx
        .flow
        .prepare(&ctx.rt.engine)
        .map_err(|message| Failure {
            message,
            timed_out: false,
        })?;
    let (rt, run, flow) = (ctx.rt.clone(), ctx.run.clone(), ctx.flow.clone());
    let name = &flow.manifest.name;
    let (memory, deadline, max_output) = (flow.manifest.memory, ctx.deadline, rt.limits.max_output);
    let idle = if reuse {
        lock(&run.pool).take(&flow)
    } else {
        None
    };
    let (outcome, instance) = rt
        .engine
        .invoke(&pre, idle, ctx, input, memory, deadline)
        .await;
    if let (true, Some(i)) = (reuse, instance) {
        lock(&run.pool).put(&flow, i);
    }
    outcome_result(name, outcome, max_output)
}

/// What the caller of flow `name` sees of how its `run` (or one item of its `run-many`)
/// ended: the output (at most `max_output` bytes), or the failure named after the flow.
pub(crate) fn outcome_result(
    name: &str,
    outcome: Outcome,
    max_output: usize,
) -> Result<String, Failure> {
    match outcome {
        Outcome::Ok(out) if out.len() > max_output => Err(Failure::of(
            name,
            format_args!(
                "output of {} bytes is over the limit of {max_output} bytes",
                out.len()
            ),
        )),
        Outcome::Ok(out) => Ok(out),
        Outcome::Failed(msg) | Outcome::Trapped(msg) => Err(Failure::of(name, msg)),
        Outcome::TimedOut => Err(Failure::timed_out(name)),
    }
}

/// Idle instances of the flows a run has called, so later calls skip instantiation (the
/// engine-notes figures: instantiation is most of a small call's cost). Per run, never shared:
/// a run sees no other run's memory. Closed when the run ends, which also breaks the cycle
/// instance → context → run.
#[derive(Default)]
pub struct InstancePool {
    closed: bool,
    idle: HashMap<String, Vec<(Arc<FlowEntry>, Instance)>>,
}

/// Idle instances kept per flow (the largest for-each concurrency needs no more).
const MAX_IDLE_PER_FLOW: usize = 64;

impl InstancePool {
    pub(crate) fn take(&mut self, flow: &Arc<FlowEntry>) -> Option<Instance> {
        let list = self.idle.get_mut(&flow.manifest.name)?;
        // A reload may have replaced the flow: only reuse the same version.
        let pos = list.iter().rposition(|(f, _)| Arc::ptr_eq(f, flow))?;
        Some(list.swap_remove(pos).1)
    }

    pub(crate) fn put(&mut self, flow: &Arc<FlowEntry>, instance: Instance) {
        if self.closed {
            return;
        }
        // The flow's list exists after its first call: no key is built per call.
        let list = match self.idle.get_mut(&flow.manifest.name) {
            Some(list) => list,
            None => self.idle.entry(flow.manifest.name.clone()).or_default(),
        };
        if list.len() < MAX_IDLE_PER_FLOW {
            list.push((flow.clone(), instance));
        }
    }

    fn close(&mut self) -> HashMap<String, Vec<(Arc<FlowEntry>, Instance)>> {
        self.closed = true;
        std::mem::take(&mut self.idle)
    }
}

/// Runs `child` as a child of `parent`'s run: depth limit, a share of the parent's remaining
/// time, per-flow aggregates, and a history row if it fails.
pub(crate) async fn call_child(
    parent: &CallCtx,
    child: Arc<FlowEntry>,
    input: String,
) -> Result<String, WitError> {
    let rt = &parent.rt;
    let depth = parent.depth + 1;
    if depth > rt.limits.max_depth {
        return Err(WitError::LimitExceeded(format!(
            "call depth limit of {} reached calling {} from {}",
            rt.limits.max_depth,
            child.manifest.name,
            parent.name()
        )));
    }
    // A pure flow called again with the same input, its tables unchanged: the same output.
    let memo_version = if child.manifest.pure {
        match lock(&parent.run.memo).lookup(&child.manifest, &input) {
            Ok(out) => {
                count_call(parent, &child, Duration::ZERO, Call::MemoHit, true);
                return Ok(out);
            }
            Err(version) => Some(version),
        }
    } else {
        None
    };
    let started = Instant::now();
    let mut ctx = child_ctx(parent, &child, started);
    if let Some(version) = memo_version {
        // Or the same call in an earlier run, if it reads the same now.
        if let Some(out) = kept_output(&ctx, &child, &input) {
            lock(&parent.run.memo).put(&child.manifest, input, version, &out);
            count_call(parent, &child, Duration::ZERO, Call::MemoHit, true);
            return Ok(out);
        }
        ctx.reads = Some(Arc::default());
    }
    let reads = ctx.reads.clone();
    let result = Box::pin(invoke(ctx, &input, true)).await;
    let out = child_ended(parent, &child, &input, result, started.elapsed(), Call::Run)?;
    if let Some(version) = memo_version {
        if let Some(reads) = reads {
            let recorder = std::mem::take(&mut *lock(&reads));
            parent.rt.kept.keep(&child, input.clone(), recorder, &out);
        }
        lock(&parent.run.memo).put(&child.manifest, input, version, &out);
    }
    Ok(out)
}

/// The output of `child`'s call with `input` that an earlier run kept, if every read it made
/// gives the same answer in `ctx`'s run now.
fn kept_output(ctx: &CallCtx, child: &Arc<FlowEntry>, input: &str) -> Option<String> {
    let kept = ctx.rt.kept.get(child, input)?;
    let same = kept
        .reads
        .iter()
        .all(|read| crate::caps::tables::reads_the_same(ctx, read));
    same.then(|| kept.output.clone())
}

/// The context of a run of `child` as a child of `parent`, starting at `started`: one level
/// deeper, in the same run, until [`child_deadline`].
pub(crate) fn child_ctx(parent: &CallCtx, child: &Arc<FlowEntry>, started: Instant) -> CallCtx {
    CallCtx {
        rt: parent.rt.clone(),
        flow: child.clone(),
        run: parent.run.clone(),
        depth: parent.depth + 1,
        deadline: child_deadline(parent, child, started),
        reads: None,
    }
}

/// When a child of `parent` that starts at `started` (now: the callers have just read the
/// clock, which this does not read again) must end: the child fails first, so it gets 90% of
/// what its parent has left then (or its own timeout, if shorter).
pub(crate) fn child_deadline(parent: &CallCtx, child: &FlowEntry, started: Instant) -> Instant {
    let left = parent.deadline.saturating_duration_since(started);
    let share = left.mul_f64(0.9).min(child.manifest.timeout);
    started.checked_add(share).unwrap_or(parent.deadline)
}

/// How a child call was answered, for its flow's [`ChildStats`].
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Call {
    /// A call of `run`.
    Run,
    /// An item of a `run-many` call.
    Batched,
    /// From the run's memo, without running the flow.
    MemoHit,
}

/// Books one call of `child` (with `input`) that took `elapsed` in its parent's run: the
/// per-flow aggregates, and a history row if it failed; gives the result as the caller sees it.
pub(crate) fn child_ended(
    parent: &CallCtx,
    child: &FlowEntry,
    input: &str,
    result: Result<String, Failure>,
    elapsed: Duration,
    how: Call,
) -> Result<String, WitError> {
    count_call(parent, child, elapsed, how, result.is_ok());
    result.map_err(|f| {
        record_failed_child(parent, child, input, &f.message);
        if f.timed_out {
            WitError::Timeout(f.message)
        } else {
            WitError::Other(f.message)
        }
    })
}

/// Adds one call of `child` to its parent run's per-flow aggregates.
fn count_call(parent: &CallCtx, child: &FlowEntry, elapsed: Duration, how: Call, ok: bool) {
    let mut children = lock(&parent.run.children);
    let name = &child.manifest.name;
    let add = |s: &mut ChildStats| {
        s.calls = s.calls.saturating_add(1);
        s.memo_hits = s.memo_hits.saturating_add(u64::from(how == Call::MemoHit));
        s.batched = s.batched.saturating_add(u64::from(how == Call::Batched));
        s.failures = s.failures.saturating_add(u64::from(!ok));
        s.total_us = s
            .total_us
            .saturating_add(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
        s.total_ms = s.total_us / 1000;
    };
    // One lookup for every call but a flow's first (which alone clones the name).
    match children.get_mut(name) {
        Some(s) => add(s),
        None => {
            let mut s = ChildStats::new(name);
            add(&mut s);
            children.insert(name.clone(), s);
        }
    }
}

/// Gives a failed child call a history row of its own (input and error), for the first
/// [`MAX_FAILED_CHILD_ROWS`] failures of the run; later ones are only counted in the parent's
/// [`ChildStats`] (`failures_not_recorded`), so a for-each of a million failing items does not
/// write a million rows.
fn record_failed_child(parent: &CallCtx, child: &FlowEntry, input: &str, message: &str) {
    let rt = &parent.rt;
    let earlier = parent
        .run
        .failed_children
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if earlier >= MAX_FAILED_CHILD_ROWS {
        let mut children = lock(&parent.run.children);
        let name = &child.manifest.name;
        if !children.contains_key(name) {
            children.insert(name.clone(), ChildStats::new(name));
        }
        if let Some(s) = children.get_mut(name) {
            s.failures_not_recorded = s.failures_not_recorded.saturating_add(1);
        }
        return;
    }
    let input = rt.history_text(child, input);
    let message = rt.secrets.redact(message);
    let rec = rt
        .history
        .start(
            &child.manifest.name,
            Trigger::Call,
            Some(parent.run.id),
            &input,
        )
        .and_then(|id| {
            rt.history
                .finish(id, RunStatus::Error, None, Some(&message), &[], &[])
        });
    if let Err(e) = rec {
        tracing::error!(error = %e, "cannot record a failed child call");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run context without a transaction (the benchmarks') has no one to write queued
    /// upserts, so its queue refuses them; a run's queue closes when the run takes its
    /// transaction back, handing over what was still waiting.
    #[test]
    fn the_upsert_queue_is_closed_whenever_nothing_would_write_it() {
        assert!(lock(&RunShared::new(0, None).deferred).is_closed());

        let dir = tempfile::tempdir().unwrap();
        let schema = crate::schema::TableSchema::from_yaml(
            "name: T\nkey: id\ncolumns:\n  - { name: id, type: text }\n",
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        let schemas = Arc::new(crate::schema::Schemas::from_schemas(vec![schema]).unwrap());
        let store = Store::open(&dir.path().join("t.db"), schemas).unwrap();
        let run = Arc::new(RunShared::new(1, Some(store.begin().unwrap())));
        let row = serde_json::json!({"id": "a"}).as_object().unwrap().clone();
        assert!(!lock(&run.deferred).is_closed());
        crate::caps::upsert_queue::push(&run, DeferredUpsert::json("T", row), 10).unwrap();
        assert_eq!(run.close_deferred().len(), 1);
        assert!(lock(&run.deferred).is_closed());
    }
}
