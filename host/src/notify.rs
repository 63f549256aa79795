//! systemd's service notifications for `serve` under `Type=notify` (the `sd-notify` crate):
//! `READY=1` once the scheduler runs, `WATCHDOG=1` every half `WATCHDOG_USEC` from the
//! scheduler's own loop (so a stalled loop stops them and systemd restarts the service), and
//! `STOPPING=1` when shutdown begins. Without `NOTIFY_SOCKET` every call does nothing.
//!
//! A failed notification is logged once as a warning and never stops `serve`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;

static WARNED: AtomicBool = AtomicBool::new(false);

fn send(state: NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(false, &[state]) {
        if !WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %e, "cannot notify systemd (NOTIFY_SOCKET)");
        }
    }
}

/// `READY=1`: the scheduler has planned its ticks and is running.
pub fn ready() {
    send(NotifyState::Ready);
}

/// `WATCHDOG=1`: the scheduler's loop is alive.
pub fn watchdog() {
    send(NotifyState::Watchdog);
}

/// `STOPPING=1`: shutdown has begun (running flows finish first).
pub fn stopping() {
    send(NotifyState::Stopping);
}

/// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, when it is set, positive, and
/// meant for this process (`WATCHDOG_PID` unset or this process's id), as
/// `sd_watchdog_enabled(3)` says.
pub fn watchdog_period() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2)).filter(|d| !d.is_zero())
}
