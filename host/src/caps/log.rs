//! `log.log`: a flow's messages go to `tracing` (target `flow`) and into its run's history.
//!
//! A run keeps its first `Limits::max_log_lines` lines; the cap is applied before anything
//! else, so a flow that logs in a loop neither floods the host's log nor its history: the
//! lines past the cap are only counted (the run's `logs_dropped` in history), and one warning
//! says that the run's log was cut.

use std::sync::atomic::Ordering;

use crate::engine::flowhost::flow::log::{Host, Level};
use crate::engine::RunState;
use crate::history::LogLine;
use crate::runtime::lock;

/// Longest message kept; the rest is cut with a mark.
const MAX_MESSAGE: usize = 4096;

/// Test builds only (cargo feature `test-hooks`): a flow logging exactly this message makes
/// the host call panic, so tests can check that a panic inside a run ends that run as `error`
/// and never jams `serve`. Production builds do not contain the hook.
#[cfg(feature = "test-hooks")]
pub const PANIC_HOOK: &str = "flowhost-test-hook: panic in a host call";

impl Host for RunState {
    async fn log(&mut self, level: Level, message: String) {
        self.ctx.not_a_read();
        let ctx = &self.ctx;
        #[cfg(feature = "test-hooks")]
        if message == PANIC_HOOK {
            panic!("test hook: a host call panicked on purpose");
        }
        let flow = ctx.name();
        let run = ctx.run.id;
        let mut logs = lock(&ctx.run.logs);
        if logs.len() >= ctx.rt.limits.max_log_lines {
            let before = ctx.run.dropped_logs.fetch_add(1, Ordering::Relaxed);
            if before == 0 {
                tracing::warn!(
                    run,
                    flow,
                    max = ctx.rt.limits.max_log_lines,
                    "the run logged more lines than it may keep: the rest are counted, not logged"
                );
            }
            return;
        }
        let mut message = match ctx.rt.secrets.redact(&message) {
            std::borrow::Cow::Owned(redacted) => redacted,
            std::borrow::Cow::Borrowed(_) => message,
        };
        if message.len() > MAX_MESSAGE {
            let cut = message.floor_char_boundary(MAX_MESSAGE);
            message.truncate(cut);
            message.push_str("…(cut)");
        }
        let level_name = match level {
            Level::Trace => {
                tracing::trace!(target: "flow", run, flow, "{message}");
                "trace"
            }
            Level::Debug => {
                tracing::debug!(target: "flow", run, flow, "{message}");
                "debug"
            }
            Level::Info => {
                tracing::info!(target: "flow", run, flow, "{message}");
                "info"
            }
            Level::Warn => {
                tracing::warn!(target: "flow", run, flow, "{message}");
                "warn"
            }
            Level::Error => {
                tracing::error!(target: "flow", run, flow, "{message}");
                "error"
            }
        };
        // Kept lines stay in memory until the run ends: they count against its budget. A
        // refusal fails the run (see `crate::budget`); the line itself is dropped.
        let what = format!("the log lines of {flow}");
        let mut held = lock(&ctx.run.logs_held);
        let charged = match held.as_mut() {
            Some(charge) => charge.grow(message.len(), &what),
            None => ctx
                .run
                .budget
                .charge(message.len(), &what)
                .map(|c| *held = Some(c)),
        };
        if charged.is_err() {
            return;
        }
        logs.push(LogLine {
            at: crate::history::now_rfc3339(),
            level: level_name.into(),
            flow: flow.into(),
            message,
        });
    }
}
