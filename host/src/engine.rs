//! The wasmtime engine: configuration (pooling allocator, epochs), the WIT bindings for the
//! whole `flow` world (one `bindgen!`), the linker, lazy compilation with an on-disk cache of
//! compiled components, the per-store limits (memory cap, deadline), and one invocation of
//! `run` or of `run-many` (several items of a for-each in one call into the component).
//!
//! The compile cache is keyed on the component's bytes (and the engine's compatibility hash)
//! and bounded: after each new entry, the least recently used entries (by modification time,
//! which a cache hit refreshes) are removed until the folder's entries fit `cache_max_size`.
//! It is done here, at once, rather than by wasmtime's own cache, whose cleanup runs later in
//! a background thread against soft limits.
//!
//! Everything about *what* a host call does lives in `caps/`; everything about *when* and
//! *with which transaction* a flow runs lives in `runtime`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{
    Component, ComponentExportIndex, HasSelf, Linker, ResourceTable, Type as WitType,
};
use wasmtime::{
    Config, Enabled, InstanceAllocationStrategy, PoolingAllocationConfig, ProfilingStrategy,
    ResourceLimiter, Store, UpdateDeadline,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::caps::for_each::Batch;
use crate::runtime::CallCtx;

wasmtime::component::bindgen!({
    world: "flow",
    path: "../wit",
    // `item-result` never waits: a plain call, with no future to allocate and poll for each
    // item of a `run-many`.
    imports: { "flowhost:flow/flows.item-result": exact, default: async },
    exports: { default: async },
});

pub use self::flowhost::flow::types::Error as WitError;

/// A host-call error as one line, `kind: message` (the kind is the WIT case name).
pub fn error_text(e: &WitError) -> String {
    let (kind, msg) = match e {
        WitError::NotFound(m) => ("not-found", m),
        WitError::AccessDenied(m) => ("access-denied", m),
        WitError::InvalidInput(m) => ("invalid-input", m),
        WitError::LimitExceeded(m) => ("limit-exceeded", m),
        WitError::Timeout(m) => ("timeout", m),
        WitError::Other(m) => ("other", m),
    };
    format!("{kind}: {msg}")
}

/// How often the epoch advances; the granularity of CPU deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Component sizes and pool slots. Size the pool for concurrency x nesting depth.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Where compiled components are cached (`None` disables the cache).
    pub cache_dir: Option<PathBuf>,
    /// The most bytes of compiled components kept in `cache_dir`.
    pub cache_max_size: u64,
    /// Read `cache_dir` but never change it (`flowhost check`): nothing stored, no entry
    /// marked used, none evicted.
    pub cache_read_only: bool,
    /// Instances that may exist at once, across all runs.
    pub max_instances: u32,
    /// The largest memory cap a manifest may set.
    pub max_memory: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            cache_dir: None,
            cache_max_size: crate::config::DEFAULT_CACHE_MAX_SIZE,
            cache_read_only: false,
            max_instances: 1000,
            max_memory: crate::manifest::MAX_MEMORY,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot set up the WebAssembly engine: {0}")]
    Setup(String),
    #[error("{path}: not a WebAssembly component: {message}")]
    Compile { path: PathBuf, message: String },
    #[error("{path}: cannot read: {message}")]
    Read { path: PathBuf, message: String },
    /// The component imports an interface the host's linker lacks (e.g. `wasi:http`, or the
    /// flowhost contract at another version).
    #[error("{path}: imports `{import}`, which flowhost does not provide{hint}")]
    MissingImport {
        path: PathBuf,
        import: String,
        hint: String,
    },
}

/// The WIT package the host provides, e.g. `flowhost:flow@0.1.2` (from `wit/flow.wit`).
pub fn contract_package() -> &'static str {
    static PACKAGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        include_str!("../../wit/flow.wit")
            .lines()
            .find_map(|l| l.trim().strip_prefix("package "))
            .map(|p| p.trim_end_matches(';').trim().to_string())
            .unwrap_or_default()
    });
    &PACKAGE
}

/// A linker error as the user should read it: an import the host lacks names the import
/// (and, for the flowhost contract at another version, the version the host provides);
/// anything else is a compile error.
fn link_error(path: &Path, e: &wasmtime::Error) -> EngineError {
    let missing = e.chain().find_map(|cause| {
        let text = cause.to_string();
        let rest = text.strip_prefix("component imports ")?;
        if !rest.contains("a matching implementation was not found") {
            return None;
        }
        rest.split('`').nth(1).map(str::to_string)
    });
    let Some(import) = missing else {
        return EngineError::Compile {
            path: path.into(),
            message: one_line(e),
        };
    };
    let provided = contract_package();
    let (package, _) = provided.split_once('@').unwrap_or((provided, ""));
    let hint = match import.strip_prefix(package) {
        Some(rest) if rest.starts_with('/') => {
            format!(" (it provides {provided}: build the flow against the host's wit/flow.wit)")
        }
        _ => String::new(),
    };
    EngineError::MissingImport {
        path: path.into(),
        import,
        hint,
    }
}

/// Checks a component the way the host loads one, without running it: it is a component,
/// it compiles, and the host's linker provides every import it names (`flowhost build`).
pub fn check_component(bytes: &[u8], path: &Path) -> Result<(), EngineError> {
    looks_like_component(bytes).map_err(|m| EngineError::Compile {
        path: path.into(),
        message: m.into(),
    })?;
    let engine = Engine::new(&EngineOptions {
        max_instances: 1,
        ..EngineOptions::default()
    })?;
    engine.prepare_bytes(bytes, path).map(|_| ())
}

/// The per-store state: WASI (no files, env or sockets), the memory cap, and the call context
/// the capabilities read their grants and transaction from.
pub struct RunState {
    /// Made at the first WASI call: most flows make none (building one seeds two random
    /// generators, about a twentieth of a fresh instance's cost).
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    pub(crate) limits: MemoryCap,
    pub(crate) ctx: CallCtx,
    /// When the current call (or the current item of a `run-many`) must end (read by the
    /// epoch callback).
    pub(crate) deadline: Instant,
    /// The items of the `run-many` call in progress, which `flows.item-result` reports on.
    pub(crate) batch: Option<Arc<Batch>>,
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self.wasi.get_or_insert_with(|| WasiCtx::builder().build()),
            table: &mut self.table,
        }
    }
}

/// Caps linear memory per store and remembers whether the cap was hit, so the run's error
/// can say "memory limit" instead of a bare trap. It also adds up the linear memory the
/// store's memories were given (wasmtime asks it for a memory's initial size too), which the
/// benchmark reports per language.
pub(crate) struct MemoryCap {
    pub max: usize,
    pub hit: bool,
    pub total: usize,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.hit = true;
            return Err(wasmtime::Error::msg(format!(
                "memory limit of {} exceeded (asked for {})",
                crate::manifest::format_size(self.max),
                crate::manifest::format_size(desired.next_multiple_of(1024))
            )));
        }
        self.total = self.total.saturating_add(desired.saturating_sub(current));
        Ok(true)
    }
    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// How one instance's `run` ended, before the runtime turns it into a run status.
#[derive(Debug)]
pub enum Outcome {
    Ok(String),
    /// The flow returned an error.
    Failed(String),
    /// A trap: a panic, an out-of-bounds access, the memory cap, or a host call that trapped.
    Trapped(String),
    /// The deadline passed (CPU through epochs, or wall-clock around host I/O).
    TimedOut,
}

/// A compiled, linked flow: the bindings of its `run`, and its `run-many` when it has one.
#[derive(Clone)]
pub struct Prepared {
    pre: wasmtime::component::InstancePre<RunState>,
    indices: FlowIndices,
    run_many: Option<ComponentExportIndex>,
}

impl Prepared {
    /// Whether the flow exports `run-many` (world `flow-many`), with the contract's type.
    pub fn has_run_many(&self) -> bool {
        self.run_many.is_some()
    }
}

/// `run-many`'s index when the component exports it as the contract says
/// (`func(inputs: list<string>)`); under any other type the flow is run through `run` alone.
fn run_many_export(component: &Component) -> Option<ComponentExportIndex> {
    let (ComponentItem::ComponentFunc(f), index) = component.get_export(None, "run-many")? else {
        return None;
    };
    let mut params = f.params();
    let one_list_of_strings = params.len() == 1
        && matches!(params.next(), Some((_, WitType::List(l))) if matches!(l.ty(), WitType::String));
    (one_list_of_strings && f.results().len() == 0).then_some(index)
}

/// How a `run-many` call ended. The items it gave a result for are in its [`Batch`].
#[derive(Debug)]
pub enum ManyOutcome {
    /// It returned (whether or not every item had a result).
    Returned,
    /// A trap, as for [`Outcome::Trapped`]: the item it was running fails with it.
    Trapped(String),
    /// The current item's deadline passed.
    TimedOut,
}

/// Set (to anything) in the environment, the engine writes `/tmp/perf-<pid>.map`: where each
/// compiled function of each flow is, by name (a flow built without `strip` has its names), so
/// that a `perf` profile can say which of a flow's functions the time went to
/// (`tests/bench/perf-guest.py` reads it).
pub const PERFMAP_ENV: &str = "FLOWHOST_PERFMAP";

/// Empties this process's `/tmp/perf-PID.map` once, before its first engine writes to it.
/// wasmtime appends to the file (several engines may share it), and pids are reused: a file
/// left by an earlier process of the same pid named this process's code after that one's
/// (a profile showed a flow's functions under the names, or the missing names, of another
/// build loaded at the same addresses).
fn fresh_perf_map() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let path = perf_map_path(std::process::id());
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove an old perf map")
            }
        }
    });
}

/// Where wasmtime writes the perf map of process `pid`.
fn perf_map_path(pid: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/perf-{pid}.map"))
}

/// The engine shared by every run.
pub struct Engine {
    engine: wasmtime::Engine,
    linker: Linker<RunState>,
    cache_dir: Option<PathBuf>,
    cache_max_size: u64,
    cache_read_only: bool,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

impl Engine {
    pub fn new(opts: &EngineOptions) -> Result<Engine, EngineError> {
        let setup = |e: wasmtime::Error| EngineError::Setup(e.to_string());
        let mut pool = PoolingAllocationConfig::new();
        let n = opts.max_instances;
        pool.total_component_instances(n)
            .total_core_instances(n * 4)
            .total_memories(n * 2)
            .total_tables(n * 4)
            .total_stacks(n)
            .max_memory_size(opts.max_memory)
            .max_memories_per_component(4)
            .max_tables_per_component(16)
            .max_core_instances_per_component(32)
            .max_component_instance_size(1 << 20)
            .max_core_instance_size(1 << 20)
            // Keep the hot pages of reused slots resident (engine-notes: 4x faster calls).
            .linear_memory_keep_resident(4 << 20)
            .table_keep_resident(1 << 20)
            .async_stack_keep_resident(1 << 20)
            .pagemap_scan(Enabled::Auto);
        let mut config = Config::new();
        config
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .epoch_interruption(true)
            .wasm_component_model(true)
            .max_wasm_stack(1 << 20)
            .async_stack_size(2 << 20);
        if std::env::var_os(PERFMAP_ENV).is_some() {
            fresh_perf_map();
            config.profiler(ProfilingStrategy::PerfMap);
        }
        let engine = wasmtime::Engine::new(&config).map_err(setup)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(setup)?;
        Flow::add_to_linker::<RunState, HasSelf<RunState>>(&mut linker, |s| s).map_err(setup)?;
        crate::caps::cells::link_upsert_row(&mut linker).map_err(setup)?;

        let stop_ticker = Arc::new(AtomicBool::new(false));
        let (weak, stop) = (engine.weak(), stop_ticker.clone());
        std::thread::Builder::new()
            .name("flowhost-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| EngineError::Setup(format!("cannot start the epoch thread: {e}")))?;
        Ok(Engine {
            engine,
            linker,
            cache_dir: opts.cache_dir.clone(),
            cache_max_size: opts.cache_max_size,
            cache_read_only: opts.cache_read_only,
            stop_ticker,
        })
    }

    /// Compiles (or loads from the cache) the component at `path` and links it.
    pub fn prepare(&self, path: &Path) -> Result<Prepared, EngineError> {
        let bytes = std::fs::read(path).map_err(|e| EngineError::Read {
            path: path.into(),
            message: e.to_string(),
        })?;
        self.prepare_bytes(&bytes, path)
    }

    /// Compiles (or loads from the cache, keyed on the bytes) the component `bytes` and links
    /// it; `path` names it in errors (a built-in flow's is `built-in/NAME.wasm`).
    pub fn prepare_bytes(&self, bytes: &[u8], path: &Path) -> Result<Prepared, EngineError> {
        let compile_err = |e: wasmtime::Error| EngineError::Compile {
            path: path.into(),
            message: one_line(&e),
        };
        let component = self.load_cached(bytes).map_or_else(
            || {
                let c = Component::new(&self.engine, bytes).map_err(compile_err)?;
                self.store_cached(bytes, &c);
                Ok::<_, EngineError>(c)
            },
            Ok,
        )?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| link_error(path, &e))?;
        let indices = FlowIndices::new(&pre).map_err(compile_err)?;
        Ok(Prepared {
            pre,
            indices,
            run_many: run_many_export(&component),
        })
    }

    fn cache_path(&self, bytes: &[u8]) -> Option<PathBuf> {
        use std::hash::{Hash, Hasher};
        let dir = self.cache_dir.as_ref()?;
        let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let mut h = Sha256::new();
        h.update(engine_hash.finish().to_le_bytes());
        h.update(env!("CARGO_PKG_VERSION"));
        h.update(bytes);
        let digest = h.finalize();
        let name: String = digest.iter().take(20).map(|b| format!("{b:02x}")).collect();
        Some(dir.join(format!("{name}.cwasm")))
    }

    fn load_cached(&self, bytes: &[u8]) -> Option<Component> {
        let path = self.cache_path(bytes)?;
        if !path.exists() {
            return None;
        }
        // SAFETY: the file was written by `store_cached` with this engine's compatibility hash
        // in its name, into a cache directory the operator owns; wasmtime checks the header too.
        match unsafe { Component::deserialize_file(&self.engine, &path) } {
            Ok(c) if self.cache_read_only => Some(c),
            Ok(c) => {
                // Recently used: the last to be evicted. A read-only cache stays as it is.
                let touched = std::fs::File::options()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                if let Err(e) = touched {
                    tracing::debug!(path = %path.display(), error = %e, "cannot mark a cache entry used");
                }
                Some(c)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring a bad cache entry");
                None
            }
        }
    }

    fn store_cached(&self, bytes: &[u8], component: &Component) {
        if self.cache_read_only {
            return;
        }
        let Some(path) = self.cache_path(bytes) else {
            return;
        };
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let data = component
                .serialize()
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, data)?;
            std::fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            tracing::debug!(path = %path.display(), error = %e, "cannot cache a compiled component");
        }
        if let Some(dir) = path.parent() {
            evict_least_recently_used(dir, self.cache_max_size);
        }
    }

    /// `reuse` (an instance this run used before) given `ctx` and `deadline`, or a new store
    /// for a fresh instance with `memory` bytes of linear memory at most.
    fn store_for(
        &self,
        reuse: Option<Instance>,
        ctx: CallCtx,
        memory: usize,
        deadline: Instant,
    ) -> Instance {
        let mut inst = match reuse {
            Some(mut i) => {
                let data = i.store.data_mut();
                data.ctx = ctx;
                data.deadline = deadline;
                i
            }
            None => {
                let state = RunState {
                    wasi: None,
                    table: ResourceTable::new(),
                    limits: MemoryCap {
                        max: memory,
                        hit: false,
                        total: 0,
                    },
                    ctx,
                    deadline,
                    batch: None,
                };
                let mut store = Store::new(&self.engine, state);
                store.limiter(|s| &mut s.limits);
                store.epoch_deadline_callback(|s| {
                    if Instant::now() >= s.data().deadline {
                        Ok(UpdateDeadline::Interrupt)
                    } else {
                        Ok(UpdateDeadline::Yield(1))
                    }
                });
                Instance { store, live: None }
            }
        };
        inst.store.set_epoch_deadline(1);
        inst
    }

    /// Calls `run(input)` on `reuse` (an instance this run used before) or on a fresh
    /// instance of `prepared`, within `deadline` (CPU and wall clock) and `memory` bytes of
    /// linear memory. Gives the instance back when it may be used again: the call returned
    /// (with `Ok` or `Err`) and nothing trapped.
    pub async fn invoke(
        &self,
        prepared: &Prepared,
        reuse: Option<Instance>,
        ctx: CallCtx,
        input: &str,
        memory: usize,
        deadline: Instant,
    ) -> (Outcome, Option<Instance>) {
        let mut inst = self.store_for(reuse, ctx, memory, deadline);
        let call = async {
            inst.instantiate(prepared).await?;
            match &inst.live {
                Some((flow, _)) => flow.call_run(&mut inst.store, input).await,
                None => Err(wasmtime::Error::msg("no instance")),
            }
        };
        let result = match tokio::time::timeout_at(deadline.into(), call).await {
            Err(_) => return (Outcome::TimedOut, None),
            Ok(r) => r,
        };
        match result {
            Ok(Ok(out)) => (Outcome::Ok(out), Some(inst)),
            Ok(Err(msg)) => (Outcome::Failed(msg), Some(inst)),
            Err(e) => match inst.trap(&e) {
                Some(msg) => (Outcome::Trapped(msg), None),
                None => (Outcome::TimedOut, None),
            },
        }
    }

    /// Calls `run-many(items)` on `reuse` or on a fresh instance of `prepared` (which must
    /// export it), with `batch` in the store for `flows.item-result` to hand each item's
    /// result to. Each item has a deadline of its own, which `item-result` moves on (the CPU
    /// one in [`RunState::deadline`], the wall-clock one in the batch). Gives the instance
    /// back when it may be used again; the batch knows which items have a result.
    pub async fn invoke_many(
        &self,
        prepared: &Prepared,
        reuse: Option<Instance>,
        ctx: CallCtx,
        items: &[String],
        memory: usize,
        batch: Arc<Batch>,
    ) -> (ManyOutcome, Option<Instance>) {
        let Some(index) = prepared.run_many else {
            return (
                ManyOutcome::Trapped("the flow has no run-many".into()),
                None,
            );
        };
        let mut inst = self.store_for(reuse, ctx, memory, batch.deadline());
        inst.store.data_mut().batch = Some(batch.clone());
        let call = async {
            inst.instantiate(prepared).await?;
            let Some((_, raw)) = inst.live else {
                return Err(wasmtime::Error::msg("no instance"));
            };
            let run_many = raw.get_typed_func::<(&[String],), ()>(&mut inst.store, index)?;
            run_many.call_async(&mut inst.store, (items,)).await
        };
        let Some(result) = until(|| batch.deadline(), call).await else {
            return (ManyOutcome::TimedOut, None);
        };
        match result {
            Ok(()) => {
                inst.store.data_mut().batch = None;
                (ManyOutcome::Returned, Some(inst))
            }
            Err(e) => match inst.trap(&e) {
                Some(msg) => (ManyOutcome::Trapped(msg), None),
                None => (ManyOutcome::TimedOut, None),
            },
        }
    }
}

/// `fut`'s output, unless the time `deadline()` gives passes first. The deadline may move
/// later while `fut` runs (each item of a `run-many` has its own): it is read again whenever
/// the earlier one passes.
async fn until<F: std::future::Future>(
    deadline: impl Fn() -> Instant,
    fut: F,
) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    loop {
        let at = deadline();
        if let Ok(out) = tokio::time::timeout_at(at.into(), fut.as_mut()).await {
            return Some(out);
        }
        if deadline() <= Instant::now() {
            return None;
        }
    }
}

/// The extension of a compile-cache entry.
const CACHE_EXT: &str = "cwasm";

/// Removes the least recently used (oldest modification time) compile-cache entries of `dir`
/// until the rest take at most `max` bytes. Another process may be evicting too: an entry
/// already gone is not an error. Returns how many entries it removed.
pub fn evict_least_recently_used(dir: &Path, max: u64) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
        .flatten()
        .filter(|e| e.path().extension().and_then(|x| x.to_str()) == Some(CACHE_EXT))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            let when = m.modified().unwrap_or(std::time::UNIX_EPOCH);
            m.is_file().then(|| (when, m.len(), e.path()))
        })
        .collect();
    let mut total: u64 = files.iter().map(|f| f.1).fold(0, u64::saturating_add);
    if total <= max {
        return 0;
    }
    files.sort();
    let mut removed = 0;
    for (_, size, path) in files {
        if total <= max {
            break;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "cannot evict a cache entry");
                continue;
            }
        }
        total = total.saturating_sub(size);
    }
    tracing::debug!(
        removed,
        dir = %dir.display(),
        "evicted least recently used compiled components"
    );
    removed
}

/// A flow instance with its store, kept by a run so that later calls of the same flow in the
/// same run skip instantiation. Never shared between runs.
pub struct Instance {
    store: Store<RunState>,
    /// The instance once instantiated (lazily, on the first call), with `run`'s bindings.
    live: Option<(Flow, wasmtime::component::Instance)>,
}

impl Instance {
    /// Instantiates `prepared` in the store, unless an earlier call did.
    async fn instantiate(&mut self, prepared: &Prepared) -> wasmtime::Result<()> {
        if self.live.is_none() {
            let raw = prepared.pre.instantiate_async(&mut self.store).await?;
            let flow = prepared.indices.load(&mut self.store, &raw)?;
            self.live = Some((flow, raw));
        }
        Ok(())
    }

    /// What a call that failed with `e` says: the memory cap or another trap; `None` when
    /// it was the deadline (an epoch interrupt).
    fn trap(&self, e: &wasmtime::Error) -> Option<String> {
        let limits = &self.store.data().limits;
        if limits.hit {
            let max = crate::manifest::format_size(limits.max);
            return Some(format!("memory limit of {max} exceeded"));
        }
        if let Some(wasmtime::Trap::Interrupt) = e.downcast_ref::<wasmtime::Trap>() {
            return None;
        }
        Some(describe_trap(e))
    }

    /// The linear memory this instance's memories hold, in bytes (all of its core modules').
    pub fn linear_memory(&self) -> usize {
        self.store.data().limits.total
    }
}

/// A trap as one line: the trap kind and, for host errors, their message (no backtrace).
fn describe_trap(e: &wasmtime::Error) -> String {
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        let what = match trap {
            wasmtime::Trap::UnreachableCodeReached => {
                "the flow panicked or aborted (unreachable)".to_string()
            }
            wasmtime::Trap::StackOverflow => "stack overflow".to_string(),
            wasmtime::Trap::AllocationTooLarge => "allocation too large".to_string(),
            other => other.to_string(),
        };
        return format!("trap: {what}");
    }
    format!("trap: {}", one_line(e))
}

fn one_line(e: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        let s = s.lines().next().unwrap_or_default().trim().to_string();
        if !s.is_empty() && !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

/// True when `bytes` start like a WebAssembly component (not a core module, not garbage).
pub fn looks_like_component(bytes: &[u8]) -> Result<(), &'static str> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 0x0d, 0x00, 0x01, 0x00]) => Ok(()),
        Some([0, b'a', b's', b'm', 0x01, 0x00, 0x00, 0x00]) => {
            Err("a core WebAssembly module, not a component (build for wasm32-wasip2)")
        }
        _ => Err("not a WebAssembly file (a flow is a component built for wasm32-wasip2)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache entry of `size` bytes last used `age` seconds ago.
    fn entry(dir: &Path, name: &str, size: usize, age: u64) {
        let p = dir.join(format!("{name}.{CACHE_EXT}"));
        std::fs::write(&p, vec![0u8; size]).unwrap();
        let when = std::time::SystemTime::now() - Duration::from_secs(age);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// A perf map left by an earlier process of the same pid is gone before this process's
    /// first engine writes to it; what this process wrote is never removed.
    #[test]
    fn an_old_perf_map_of_the_same_pid_is_not_appended_to() {
        let path = perf_map_path(std::process::id());
        std::fs::write(&path, "0x1000 10 an earlier process's\n").unwrap();
        fresh_perf_map();
        assert!(!path.exists());
        std::fs::write(&path, "0x1000 10 this process's\n").unwrap();
        fresh_perf_map();
        let kept = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(kept, "0x1000 10 this process's\n");
    }

    /// wasmtime's error for an import its linker lacks, as `instantiate_pre` gives it.
    fn unlinked(import: &str) -> wasmtime::Error {
        wasmtime::Error::msg(format!("instance not found: {import}")).context(format!(
            "component imports instance `{import}`, but a matching implementation was not \
             found in the linker"
        ))
    }

    #[test]
    fn an_import_the_host_lacks_is_named_and_a_contract_version_the_host_has_is_said() {
        let path = Path::new("flows/hello.wasm");
        assert_eq!(
            link_error(path, &unlinked("wasi:http/types@0.2.10")).to_string(),
            "flows/hello.wasm: imports `wasi:http/types@0.2.10`, which flowhost does not provide"
        );
        assert!(
            contract_package().starts_with("flowhost:flow@"),
            "{}",
            contract_package()
        );
        assert_eq!(
            link_error(path, &unlinked("flowhost:flow/tables@9.0.0")).to_string(),
            format!(
                "flows/hello.wasm: imports `flowhost:flow/tables@9.0.0`, which flowhost does \
                 not provide (it provides {}: build the flow against the host's wit/flow.wit)",
                contract_package()
            )
        );
        // Anything else stays a compile error.
        let other = link_error(path, &wasmtime::Error::msg("bad section"));
        assert!(matches!(other, EngineError::Compile { .. }), "{other}");
    }

    #[test]
    fn eviction_removes_the_least_recently_used_until_the_rest_fit() {
        let d = tempfile::tempdir().unwrap();
        entry(d.path(), "old", 400, 300);
        entry(d.path(), "mid", 400, 200);
        entry(d.path(), "new", 400, 100);
        // Not an entry: never counted nor removed.
        std::fs::write(d.path().join("x.tmp123"), vec![0u8; 5000]).unwrap();
        assert_eq!(evict_least_recently_used(d.path(), 1200), 0);
        assert_eq!(evict_least_recently_used(d.path(), 1000), 1);
        assert_eq!(names(d.path()), ["mid.cwasm", "new.cwasm", "x.tmp123"]);
        assert_eq!(evict_least_recently_used(d.path(), 399), 2);
        assert_eq!(names(d.path()), ["x.tmp123"]);
        assert_eq!(evict_least_recently_used(&d.path().join("none"), 0), 0);
    }

    #[test]
    fn a_cache_hit_makes_an_entry_the_most_recently_used() {
        let d = tempfile::tempdir().unwrap();
        let engine = Engine::new(&EngineOptions {
            cache_dir: Some(d.path().to_path_buf()),
            max_instances: 4,
            ..Default::default()
        })
        .unwrap();
        let [first, second] = [&crate::package::flows()[0], &crate::package::flows()[1]];
        engine.prepare_bytes(first.wasm, Path::new("a")).unwrap();
        engine.prepare_bytes(second.wasm, Path::new("b")).unwrap();
        let (a, b) = (
            engine.cache_path(first.wasm).unwrap(),
            engine.cache_path(second.wasm).unwrap(),
        );
        // `a` looks old; using it again makes it the newest.
        let old = std::time::SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&a)
            .unwrap()
            .set_modified(old)
            .unwrap();
        engine.prepare_bytes(first.wasm, Path::new("a")).unwrap();
        let used = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
        assert!(used(&a) >= used(&b), "the hit did not refresh `a`");
        // A cap that holds one of them keeps the one used last.
        let size = std::fs::metadata(&a).unwrap().len();
        evict_least_recently_used(d.path(), size);
        assert!(a.exists() && !b.exists());
    }
}
