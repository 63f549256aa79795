//! `flows.call`, `flows.for-each` and `flows.item-result`: child runs inside the caller's run
//! (same transaction), checked against `grants.flows`. How a for-each runs its children, and
//! what `item-result` reports on, is [`super::for_each`].

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
        self.ctx.not_a_read();
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
        self.ctx.not_a_read();
        let child = callee(&self.ctx, &name)?;
        super::for_each::run(&self.ctx, child, items, concurrency).await
    }

    fn item_result(&mut self, outcome: Result<String, String>) -> bool {
        self.ctx.not_a_read();
        let Some(batch) = &self.batch else {
            tracing::debug!(flow = self.ctx.name(), "flows.item-result outside run-many");
            return false;
        };
        let taken = batch.item_result(outcome, &mut self.deadline);
        self.ctx.deadline = self.deadline;
        taken
    }
}
