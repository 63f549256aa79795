//! `schedule.*`: the time, sleeping within the run's deadline, and `request-run`, which the
//! runtime honours only if the run commits. `serve` coalesces identical requests and keeps at
//! most a few waiting per flow (see `scheduler`).

use std::time::Duration;

use crate::engine::flowhost::flow::schedule::Host;
use crate::engine::{RunState, WitError};
use crate::runtime::{lock, RunRequest};

/// How many runs one run may request.
const MAX_REQUESTS: usize = 100;

/// The longest `delay-ms` a request may ask for (as `schedule.every`'s longest interval).
const MAX_DELAY: Duration = crate::manifest::EVERY_RANGE.max;

impl Host for RunState {
    async fn now(&mut self) -> String {
        self.ctx.not_a_read();
        // RFC 3339 in UTC with millisecond precision, as history writes it.
        crate::history::now_rfc3339()
    }

    async fn sleep(&mut self, ms: u64) {
        self.ctx.not_a_read();
        // Sleeping past the deadline is pointless: the run is interrupted at the deadline.
        let d = Duration::from_millis(ms).min(self.ctx.remaining());
        tokio::time::sleep(d).await;
    }

    async fn request_run(
        &mut self,
        flow: String,
        input: String,
        delay_ms: u64,
    ) -> Result<(), WitError> {
        self.ctx.not_a_read();
        let ctx = &self.ctx;
        if flow != ctx.name() && !ctx.flow.manifest.grants.flows.contains(&flow) {
            return Err(WitError::AccessDenied(format!(
                "{} may not request runs of `{flow}` (grants.flows)",
                ctx.name()
            )));
        }
        if ctx.rt.registry().get(&flow).is_none() {
            return Err(WitError::NotFound(format!("no flow named `{flow}`")));
        }
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&input) {
            return Err(WitError::InvalidInput(format!(
                "request-run input is not JSON: {e}"
            )));
        }
        let delay = Duration::from_millis(delay_ms);
        if delay > MAX_DELAY {
            return Err(WitError::InvalidInput(format!(
                "request-run delay of {delay_ms} ms is out of range (0 to {})",
                crate::manifest::format_duration(MAX_DELAY)
            )));
        }
        let mut reqs = lock(&ctx.run.requests);
        if reqs.len() >= MAX_REQUESTS {
            return Err(WitError::LimitExceeded(format!(
                "a run may request at most {MAX_REQUESTS} runs"
            )));
        }
        let req = RunRequest { flow, input, delay };
        if !reqs.contains(&req) {
            reqs.push(req);
        }
        Ok(())
    }
}
