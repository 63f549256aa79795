//! `flows.call` and `flows.for-each`: child runs inside the caller's run (same transaction),
//! checked against `grants.flows`. For-each runs children as futures of the call, at most
//! `concurrency` at a time, and returns their results in input order.

use std::sync::Arc;

use crate::engine::flowhost::flow::flows::Host;
use crate::engine::{RunState, WitError};
use crate::registry::FlowEntry;
use crate::runtime::{call_child, CallCtx};

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
        call_child(&self.ctx, child, input).await
    }

    async fn for_each(
        &mut self,
        name: String,
        items: Vec<String>,
        concurrency: u32,
    ) -> Result<Vec<Result<String, String>>, WitError> {
        use futures::StreamExt;
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
        let concurrency = concurrency.clamp(1, limits.max_concurrency) as usize;
        // The children are futures of this call, not tasks: they interleave at their host
        // I/O (HTTP, sleeps) and a timeout that drops this run drops them too. Spawning a task
        // per item cost more in cross-thread wake-ups than it gained from the second core.
        let calls = items.into_iter().map(|item| {
            let child = child.clone();
            async move {
                call_child(ctx, child, item)
                    .await
                    .map_err(|e| crate::engine::error_text(&e))
            }
        });
        Ok(futures::stream::iter(calls)
            .buffered(concurrency)
            .collect()
            .await)
    }
}
