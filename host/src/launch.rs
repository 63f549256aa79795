//! Top-level runs that `serve`'s listener starts itself (an API endpoint call, the console's
//! run form), beside the scheduler's: the same [`Runtime::run`] (one transaction, history,
//! grants, exclusive groups through [`crate::lease`]) with the trigger that says where it
//! came from.
//!
//! The run is recorded before it is spawned, so its history id is known at once (the API's
//! `?async=true` answers with it). Whatever happens in it, its end reaches the
//! [`Watch`]: it is counted in the metrics, the runs it requests go to the scheduler, and
//! shutdown waits for it. No run starts once shutdown began.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;

use crate::history::Trigger;
use crate::runtime::{RunError, RunReport, Runtime};
use crate::watch::Watch;

/// Why a run was not launched.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("serve is shutting down: it starts no more runs")]
    ShuttingDown,
    #[error(transparent)]
    Run(#[from] RunError),
}

/// A run recorded in history and running on its own task.
pub struct Launched {
    /// Its id in run history.
    pub id: i64,
    /// Its report once it ended (`None`: it could not start, or it panicked; history says
    /// how it ended).
    pub done: tokio::task::JoinHandle<Option<RunReport>>,
}

/// The input of a run started from outside: `text`, or `{}` when it is blank; strict JSON
/// (a repeated field is refused), else the parse error with its line and column.
pub fn input(text: &str) -> serde_json::Result<String> {
    if text.trim().is_empty() {
        return Ok("{}".into());
    }
    crate::json::parse(text)?;
    Ok(text.to_owned())
}

/// Records a top-level run of `flow` with `input` and starts it on its own task.
pub fn launch(
    rt: &Arc<Runtime>,
    watch: &Arc<Watch>,
    flow: &str,
    input: &str,
    trigger: Trigger,
) -> Result<Launched, LaunchError> {
    if watch.stopped() {
        return Err(LaunchError::ShuttingDown);
    }
    let begun = rt.begin(flow, input, trigger)?;
    let id = begun.id;
    let (rt, watch, flow) = (rt.clone(), watch.clone(), flow.to_owned());
    watch.outside_started();
    let done = tokio::spawn(async move {
        let report = match AssertUnwindSafe(rt.complete(begun)).catch_unwind().await {
            Ok(Ok(r)) => Some(r),
            Ok(Err(e)) => {
                tracing::error!(run = id, flow, error = %e, "the run could not go on");
                None
            }
            Err(panic) => {
                let what = crate::runtime::panic_text(panic.as_ref());
                tracing::error!(run = id, flow, panic = what, "a run panicked");
                None
            }
        };
        watch.outside_finished(&flow, report.clone());
        report
    });
    Ok(Launched { id, done })
}
