//! `log.log`: a flow's messages go to `tracing` (target `flow`) and into its run's history.

use crate::engine::flowhost::flow::log::{Host, Level};
use crate::engine::RunState;
use crate::history::LogLine;
use crate::runtime::lock;

/// Longest message kept; the rest is cut with a mark.
const MAX_MESSAGE: usize = 4096;

impl Host for RunState {
    async fn log(&mut self, level: Level, message: String) {
        let ctx = &self.ctx;
        let mut message = match ctx.rt.secrets.redact(&message) {
            std::borrow::Cow::Owned(redacted) => redacted,
            std::borrow::Cow::Borrowed(_) => message,
        };
        if message.len() > MAX_MESSAGE {
            let cut = message.floor_char_boundary(MAX_MESSAGE);
            message.truncate(cut);
            message.push_str("…(cut)");
        }
        let flow = ctx.name();
        let run = ctx.run.id;
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
        let mut logs = lock(&ctx.run.logs);
        if logs.len() >= ctx.rt.limits.max_log_lines {
            ctx.run
                .dropped_logs
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
