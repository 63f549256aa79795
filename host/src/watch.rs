//! What `serve` tells its HTTP listener about itself while it runs: the scheduler's heartbeat
//! (`/healthz` answers from it, not from the process being alive) and the end of every run it
//! started (counted into [`crate::metrics::Metrics`]).
//!
//! The scheduler loop beats at least every [`HEARTBEAT`] (it wakes for that even when no
//! flow is due) and says when it stops starting runs (shutdown). The loop is healthy while
//! its last beat is at most [`STALE_AFTER`] old: a loop stuck on something (a blocked
//! runtime thread, a deadlock) stops beating, and `/healthz` turns 503 although the process
//! lives and its listener still answers.
//!
//! Runs the listener starts itself ([`crate::launch`]: the API, the console) go the other
//! way: their ends are counted here too, the runs they request are handed to the scheduler
//! ([`Watch::take_requests`]), and shutdown waits for them as for its own
//! ([`Watch::outside_idle`]).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::history::RunStatus;
use crate::metrics::Metrics;
use crate::runtime::RunReport;

/// How often the scheduler loop beats, at the least.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A beat older than this means the scheduler loop is not running.
pub const STALE_AFTER: Duration = Duration::from_secs(15);

/// Shared between the scheduler (which beats and records) and the listener (which reads).
#[derive(Debug)]
pub struct Watch {
    started: Instant,
    /// Milliseconds from `started` to the last beat (`u64::MAX`: none yet).
    last_beat_ms: AtomicU64,
    stopped: AtomicBool,
    pub metrics: Metrics,
    /// Reports of runs started outside the scheduler whose requests it has not taken yet.
    handed_over: Mutex<Vec<RunReport>>,
    /// Runs started outside the scheduler and not ended yet.
    outside_running: AtomicUsize,
    /// Woken when a report is handed over or an outside run ends.
    changed: Notify,
}

/// The scheduler loop's state, as `/healthz` reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Health {
    /// It beat this long ago.
    Running(Duration),
    /// It has not beaten since the given time (or ever, since start).
    Stalled(Duration),
    /// Shutdown began: it starts no more runs.
    Stopped,
}

impl Default for Watch {
    fn default() -> Self {
        Watch {
            started: Instant::now(),
            last_beat_ms: AtomicU64::new(u64::MAX),
            stopped: AtomicBool::new(false),
            metrics: Metrics::default(),
            handed_over: Mutex::new(Vec::new()),
            outside_running: AtomicUsize::new(0),
            changed: Notify::new(),
        }
    }
}

impl Watch {
    /// The scheduler loop is going round.
    pub fn beat(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.last_beat_ms.store(ms, Ordering::Relaxed);
    }

    /// The scheduler loop ended (shutdown).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    pub fn health(&self) -> Health {
        if self.stopped.load(Ordering::Relaxed) {
            return Health::Stopped;
        }
        let now = self.started.elapsed();
        let since = match self.last_beat_ms.load(Ordering::Relaxed) {
            u64::MAX => now,
            ms => now.saturating_sub(Duration::from_millis(ms)),
        };
        if since <= STALE_AFTER {
            Health::Running(since)
        } else {
            Health::Stalled(since)
        }
    }

    /// A run of `flow` that `serve` started has ended (`None`: it could not start, or
    /// panicked: counted as an error).
    pub fn finished(&self, flow: &str, report: Option<&RunReport>) {
        match report {
            Some(r) => self.metrics.record_run(flow, r.status, Some(r.elapsed)),
            None => self.metrics.record_run(flow, RunStatus::Error, None),
        }
    }

    /// A tick or request of `flow` that `serve` did not run (recorded as skipped).
    pub fn skipped(&self, flow: &str) {
        self.metrics.record_run(flow, RunStatus::Skipped, None);
    }

    /// Whether shutdown began (the listener then starts no runs either).
    pub fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// A run is about to start outside the scheduler; [`Watch::outside_finished`] must follow.
    pub fn outside_started(&self) {
        self.outside_running.fetch_add(1, Ordering::SeqCst);
    }

    /// A run started outside the scheduler ended: it is counted, and the runs it requested
    /// go to the scheduler (`None`: it could not start, or panicked).
    pub fn outside_finished(&self, flow: &str, report: Option<RunReport>) {
        self.finished(flow, report.as_ref());
        if let Some(r) = report.filter(|r| !r.requests.is_empty()) {
            self.handed_over
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(r);
        }
        self.outside_running.fetch_sub(1, Ordering::SeqCst);
        // Wakes every `notified()` created before, polled yet or not.
        self.changed.notify_waiters();
    }

    /// The reports whose requests the scheduler should take, once there are any.
    pub async fn take_requests(&self) -> Vec<RunReport> {
        loop {
            let notified = self.changed.notified();
            let taken =
                std::mem::take(&mut *self.handed_over.lock().unwrap_or_else(|p| p.into_inner()));
            if !taken.is_empty() {
                return taken;
            }
            notified.await;
        }
    }

    /// Once no run started outside the scheduler is going.
    pub async fn outside_idle(&self) {
        loop {
            let notified = self.changed.notified();
            if self.outside_running.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}
