//! `flows.for-each` and `flows.item-result`: a flow's children over a list of items, on a
//! worker task per two cores (one on a machine of two), at most `concurrency` at a time,
//! their results in input order.
//!
//! A child that exports `run-many` (world `flow-many`: every Rust flow) is given several
//! consecutive items per call into the component, a [`Batch`], and hands each result back
//! through `flows.item-result` as soon as it has it. Each item is still a call of its own to
//! everything outside the component: it has its own deadline, its own line in the parent's
//! per-flow statistics, its own history row if it fails, and its output counts against the
//! run's memory as it arrives. If the child traps or times out, the item it was running fails
//! with that error and the items after it are given to a new instance, so every item ends as
//! one `run` of it would have. A child without `run-many`, and a `pure` one (whose calls the
//! run's memo answers one by one), gets one `run` per item.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::budget::Charge;
use crate::engine::{error_text, ManyOutcome, Outcome, Prepared, WitError};
use crate::registry::FlowEntry;
use crate::runtime::{
    call_child, child_ctx, child_deadline, child_ended, lock, outcome_result, Call, CallCtx,
    Failure,
};

/// The most items given to one `run-many` call. Past about this many, the per-call cost is
/// a small part of an item's; fewer keep the items spread over the workers (a for-each of
/// `n` items at concurrency `c` gives each call at most `n / c` of them).
pub const MAX_BATCH: usize = 16;

/// What an item gets that a `run-many` call returned without giving a result.
const NO_RESULT: &str = "run-many returned without a result for this item";

/// One `result` per item of `items`, each from a child run of `child` in `ctx`'s run.
pub(crate) async fn run(
    ctx: &CallCtx,
    child: Arc<FlowEntry>,
    items: Vec<String>,
    concurrency: u32,
) -> Result<Vec<Result<String, String>>, WitError> {
    let name = &child.manifest.name;
    let limits = &ctx.rt.limits;
    if items.len() > limits.max_items {
        return Err(WitError::LimitExceeded(format!(
            "for-each of {} items is over the limit of {}",
            items.len(),
            limits.max_items
        )));
    }
    if ctx.depth + 1 > limits.max_depth {
        return Err(WitError::LimitExceeded(format!(
            "call depth limit of {} reached calling {name} from {}",
            limits.max_depth,
            ctx.name()
        )));
    }
    // The items wait in the host until their child takes them.
    let _items = ctx.run.budget.charge(
        items.iter().map(String::len).sum(),
        format_args!("the items of a for-each over {name}"),
    )?;
    let concurrency = concurrency.clamp(1, limits.max_concurrency) as usize;
    let workers = concurrency
        .min(limits.for_each_workers)
        .min(items.len())
        .max(1);
    let n = items.len();
    let batching = batching(ctx, &child, n, concurrency);
    let work = Arc::new(Work {
        queue: Mutex::new(items.into_iter().enumerate()),
        results: Mutex::new(vec![None; n]),
        held: Mutex::new(None),
        refused: Mutex::new(None),
        batching,
    });
    // `workers` tasks (`Limits::for_each_workers`), each running its share of `concurrency`
    // children as futures that take the next items when done: no item pays for a task of its
    // own (a task per item cost more in cross-thread wake-ups than the second core gave back).
    // With one worker nothing is spawned.
    let share = move |w: usize| concurrency / workers + usize::from(w < concurrency % workers);
    if workers == 1 {
        work.run(ctx, &child, share(0)).await;
    } else {
        // Dropping the set (this run timed out) aborts the workers and their children.
        let mut set = tokio::task::JoinSet::new();
        for w in 0..workers {
            let (ctx, child, work) = (ctx.clone(), child.clone(), work.clone());
            let slots = share(w);
            set.spawn(async move { work.run(&ctx, &child, slots).await });
        }
        while let Some(done) = set.join_next().await {
            if let Err(e) = done {
                return Err(WitError::Other(format!("a for-each worker failed: {e}")));
            }
        }
    }
    if let Some(e) = lock(&work.refused).take() {
        return Err(e);
    }
    let results = std::mem::take(&mut *lock(&work.results));
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("internal: the item was not run".into())))
        .collect())
}

/// The compiled child and how many items each of its calls takes, when the items go to it a
/// few at a time: it exports `run-many`, it is not `pure`, and there are at least two items
/// per concurrent slot.
fn batching(
    ctx: &CallCtx,
    child: &FlowEntry,
    items: usize,
    concurrency: usize,
) -> Option<(Prepared, usize)> {
    let size = (items / concurrency).min(MAX_BATCH);
    if child.manifest.pure || size < 2 {
        return None;
    }
    // A child that does not compile fails item by item, with the error `run` gives.
    let prepared = child.prepare(&ctx.rt.engine).ok()?;
    prepared.has_run_many().then_some((prepared, size))
}

/// "the results of a for-each over `child`", written only if the run's memory refuses them.
#[derive(Clone, Copy)]
struct Over<'a>(&'a str);

impl std::fmt::Display for Over<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the results of a for-each over {}", self.0)
    }
}

/// The items of one for-each still to run, and the results so far (by item).
struct Work {
    queue: Mutex<std::iter::Enumerate<std::vec::IntoIter<String>>>,
    results: Mutex<Vec<Option<Result<String, String>>>>,
    /// The run memory the results gathered so far hold, until the caller has them.
    held: Mutex<Option<Charge>>,
    /// Set when the run's memory refused a result: no further item is started.
    refused: Mutex<Option<WitError>>,
    /// The child, and the items per call, when it takes them a few at a time.
    batching: Option<(Prepared, usize)>,
}

impl Work {
    /// Holds `size` more bytes of results against the run's memory.
    fn hold(&self, ctx: &CallCtx, child: &str, size: usize) -> Result<(), WitError> {
        let what = Over(child);
        let mut held = lock(&self.held);
        match held.as_mut() {
            Some(charge) => charge.grow(size, what),
            None => {
                *held = Some(ctx.run.budget.charge(size, what)?);
                Ok(())
            }
        }
    }

    /// Keeps item `i`'s result, unless the run's memory refuses it: then no further item is
    /// started and the whole for-each fails with the refusal, which this returns too.
    fn deliver(
        &self,
        ctx: &CallCtx,
        child: &FlowEntry,
        i: usize,
        result: Result<String, String>,
    ) -> Result<(), WitError> {
        let size = match &result {
            Ok(s) | Err(s) => s.len(),
        };
        if let Err(e) = self.hold(ctx, &child.manifest.name, size) {
            for _ in lock(&self.queue).by_ref() {}
            lock(&self.refused).get_or_insert_with(|| e.clone());
            return Err(e);
        }
        if let Some(slot) = lock(&self.results).get_mut(i) {
            *slot = Some(result);
        }
        Ok(())
    }

    /// Whether the run's memory refused a result.
    fn stopped(&self) -> bool {
        lock(&self.refused).is_some()
    }

    /// Runs `slots` children at a time until the queue is empty.
    async fn run(self: &Arc<Self>, ctx: &CallCtx, child: &Arc<FlowEntry>, slots: usize) {
        use futures::StreamExt;
        let per_call = self.batching.as_ref().map_or(1, |(_, size)| *size);
        futures::stream::iter(0..slots)
            .for_each_concurrent(None, |_| async move {
                loop {
                    let taken: Vec<(usize, String)> =
                        lock(&self.queue).by_ref().take(per_call).collect();
                    let Some(&(first, _)) = taken.first() else {
                        break;
                    };
                    let mut items: Vec<String> = taken.into_iter().map(|(_, s)| s).collect();
                    match (&self.batching, items.len()) {
                        (Some((prepared, _)), 2..) => {
                            self.run_batch(ctx, child, prepared, first, items).await
                        }
                        _ => {
                            for (i, item) in (first..).zip(items.drain(..)) {
                                let result = call_child(ctx, child.clone(), item)
                                    .await
                                    .map_err(|e| error_text(&e));
                                if self.deliver(ctx, child, i, result).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    if self.stopped() {
                        break;
                    }
                }
            })
            .await;
    }

    /// Runs items `first..first + items.len()` through `run-many` calls: one, unless the
    /// child traps or times out, when the item it was running fails and a new instance takes
    /// the rest.
    async fn run_batch(
        self: &Arc<Self>,
        ctx: &CallCtx,
        child: &Arc<FlowEntry>,
        prepared: &Prepared,
        first: usize,
        items: Vec<String>,
    ) {
        let rt = &ctx.rt;
        let name = &child.manifest.name;
        let items = Arc::new(items);
        let mut from = 0;
        while from < items.len() && !self.stopped() {
            let started = Instant::now();
            let child_ctx = child_ctx(ctx, child, started);
            let deadline = child_ctx.deadline;
            let batch = Arc::new(Batch {
                work: self.clone(),
                parent: ctx.clone(),
                child: child.clone(),
                items: items.clone(),
                first,
                state: Mutex::new(BatchState {
                    next: from,
                    started,
                    deadline,
                }),
            });
            let idle = lock(&ctx.run.pool).take(child);
            let slice = items.get(from..).unwrap_or_default();
            let (outcome, instance) = rt
                .engine
                .invoke_many(
                    prepared,
                    idle,
                    child_ctx,
                    slice,
                    child.manifest.memory,
                    batch.clone(),
                )
                .await;
            if let Some(instance) = instance {
                lock(&ctx.run.pool).put(child, instance);
            }
            let (next, started) = {
                let state = lock(&batch.state);
                (state.next, state.started)
            };
            if self.stopped() || next >= items.len() {
                return;
            }
            // A trap or a timeout fails the item that was running, and a new instance takes
            // the rest. A run-many that returned without a result for every item is broken:
            // the items left fail alike.
            let (failure, last) = match outcome {
                ManyOutcome::Trapped(msg) => (Failure::of(name, msg), next + 1),
                ManyOutcome::TimedOut => (Failure::timed_out(name), next + 1),
                ManyOutcome::Returned => (Failure::of(name, NO_RESULT), items.len()),
            };
            let elapsed = started.elapsed();
            for (i, input) in items.iter().enumerate().take(last).skip(next) {
                let failed = Err(failure.clone());
                let result = child_ended(ctx, child, input, failed, elapsed, Call::Batched)
                    .map_err(|e| error_text(&e));
                if self.deliver(ctx, child, first + i, result).is_err() {
                    return;
                }
            }
            from = last;
        }
    }
}

/// The items of one `run-many` call, which its `flows.item-result` calls report on.
pub struct Batch {
    work: Arc<Work>,
    /// The for-each's caller.
    parent: CallCtx,
    child: Arc<FlowEntry>,
    /// The items this call and the ones before it for the same part of the for-each were
    /// given (this call's start at `state.next`).
    items: Arc<Vec<String>>,
    /// The for-each's index of `items[0]`.
    first: usize,
    state: Mutex<BatchState>,
}

/// Where a `run-many` call has got to.
struct BatchState {
    /// The index in `items` of the item running now.
    next: usize,
    /// When it started.
    started: Instant,
    /// When it must end.
    deadline: Instant,
}

impl Batch {
    /// When the item running now must end (wall clock).
    pub fn deadline(&self) -> Instant {
        lock(&self.state).deadline
    }

    /// `flows.item-result`: the running item's result, as its own `run` would have ended
    /// (the output size limit, statistics, a history row if it failed, the run's memory).
    /// Then the next item's clock starts: its deadline goes to `deadline` (the store's, for
    /// the CPU) and to the wall clock this batch keeps. `false` when the result is not taken
    /// (every item has one, or the for-each stopped): the flow should return.
    pub(crate) fn item_result(
        &self,
        result: Result<String, String>,
        deadline: &mut Instant,
    ) -> bool {
        let name = &self.child.manifest.name;
        let (i, started) = {
            let mut state = lock(&self.state);
            let i = state.next;
            if i >= self.items.len() {
                tracing::debug!(flow = %name, "run-many gave more results than it had items");
                return false;
            }
            state.next += 1;
            (i, state.started)
        };
        if self.work.stopped() {
            return false;
        }
        let outcome = match result {
            Ok(out) => Outcome::Ok(out),
            Err(message) => Outcome::Failed(message),
        };
        let max_output = self.parent.rt.limits.max_output;
        let result = outcome_result(name, outcome, max_output);
        let input = self.items.get(i).map_or("", String::as_str);
        // One reading of the clock per item: this item's end is the next one's start.
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(started);
        let result = child_ended(
            &self.parent,
            &self.child,
            input,
            result,
            elapsed,
            Call::Batched,
        )
        .map_err(|e| error_text(&e));
        if self
            .work
            .deliver(&self.parent, &self.child, self.first + i, result)
            .is_err()
        {
            return false;
        }
        let next = child_deadline(&self.parent, &self.child, now);
        {
            let mut state = lock(&self.state);
            state.started = now;
            state.deadline = next;
        }
        *deadline = next;
        true
    }
}
