//! `flows.call` and `flows.for-each`: child runs inside the caller's run (same transaction),
//! checked against `grants.flows`. For-each runs children on one worker task per core, at
//! most `concurrency` at a time, and returns their results in input order.

use std::sync::{Arc, Mutex};

use crate::budget::Charge;
use crate::engine::flowhost::flow::flows::Host;
use crate::engine::{RunState, WitError};
use crate::registry::FlowEntry;
use crate::runtime::{call_child, lock, CallCtx};

/// The granted, loaded flow `name`, or the error the caller should see.
fn callee(ctx: &CallCtx, name: &str) -> Result<Arc<FlowEntry>, WitError> {
    if !ctx.flow.manifest.grants.flows.contains(name) {
        return Err(WitError::AccessDenied(format!(
            "flow `{name}` is not granted to {} (grants.flows)",
            ctx.name()
        )));
    }
    ctx.rt
        .registry()
        .get(name)
        .cloned()
        .ok_or_else(|| WitError::NotFound(format!("no flow named `{name}` is loaded")))
}

impl Host for RunState {
    async fn call(&mut self, name: String, input: String) -> Result<String, WitError> {
        let child = callee(&self.ctx, &name)?;
        let out = call_child(&self.ctx, child, input).await?;
        // Held only until the caller has it, but counted with everything else held now.
        let _held = self
            .ctx
            .run
            .budget
            .charge(out.len(), format_args!("the output of {name}"))?;
        Ok(out)
    }

    async fn for_each(
        &mut self,
        name: String,
        items: Vec<String>,
        concurrency: u32,
    ) -> Result<Vec<Result<String, String>>, WitError> {
        let ctx = &self.ctx;
        let child = callee(ctx, &name)?;
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
        let work = Arc::new(Work {
            queue: Mutex::new(items.into_iter().enumerate()),
            results: Mutex::new(vec![None; n]),
            held: Mutex::new(None),
            refused: Mutex::new(None),
        });
        // `workers` tasks (one per core by default), each running its share of `concurrency`
        // children as futures that take the next item when done: the children use every core,
        // yet no item pays for a task of its own (a task per item cost more in cross-thread
        // wake-ups than the second core gave back). With one worker nothing is spawned.
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

    /// Runs `slots` children at a time until the queue is empty.
    async fn run(&self, ctx: &CallCtx, child: &Arc<FlowEntry>, slots: usize) {
        use futures::StreamExt;
        futures::stream::iter(0..slots)
            .for_each_concurrent(None, |_| async {
                loop {
                    let Some((i, item)) = lock(&self.queue).next() else {
                        break;
                    };
                    let result = call_child(ctx, child.clone(), item)
                        .await
                        .map_err(|e| crate::engine::error_text(&e));
                    let size = match &result {
                        Ok(s) | Err(s) => s.len(),
                    };
                    if let Err(e) = self.hold(ctx, &child.manifest.name, size) {
                        // Leave the rest of the queue unrun: the call fails as a whole.
                        for _ in lock(&self.queue).by_ref() {}
                        lock(&self.refused).get_or_insert(e);
                        break;
                    }
                    lock(&self.results)[i] = Some(result);
                }
            })
            .await;
    }
}
