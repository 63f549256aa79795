//! One top-level run's budget for what the host buffers on its behalf.
//!
//! A flow instance's own memory is capped by its manifest's `memory:`; this caps the rest,
//! what the host holds for the run outside any instance: child outputs and the results a
//! `for-each` gathers before handing them over, HTTP response bodies being read, upserts
//! queued for the next batch, and the log lines kept for history (a refused log line is
//! dropped, and the run fails like any other refusal). Each holding takes a
//! [`Charge`] that gives its bytes back when dropped, so the budget bounds what is held at one
//! time, not what passes through.
//!
//! The budget belongs to the top-level run: its children share it, whatever their own
//! manifests say. Its size is the top-level flow's `run_memory:` (default
//! [`crate::manifest::DEFAULT_RUN_MEMORY`]). A charge that would go past it fails with
//! `limit-exceeded`, and the run is marked: whatever the flow does with that error, the run
//! ends as `error` and its table writes roll back, because part of what it asked for was
//! refused.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::engine::WitError;

/// What one top-level run may hold in host buffers at a time.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    held: AtomicUsize,
    exceeded: AtomicBool,
    /// The first refusal, as the run's error.
    first_refusal: Mutex<Option<String>>,
}

/// Bytes held against a [`Budget`] until dropped.
#[derive(Debug)]
#[must_use = "a charge gives its bytes back when dropped"]
pub struct Charge {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Budget {
    pub fn new(limit: usize) -> Arc<Budget> {
        Arc::new(Budget {
            limit,
            held: AtomicUsize::new(0),
            exceeded: AtomicBool::new(false),
            first_refusal: Mutex::new(None),
        })
    }

    /// The budget's size in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Holds `bytes` for `what` (e.g. "the output of S30") until the charge is dropped, or
    /// refuses with `limit-exceeded` and marks the run as failed. `what` is written out only
    /// for a refusal: give `format_args!(..)` rather than a `format!`ed text.
    pub fn charge(self: &Arc<Self>, bytes: usize, what: impl Display) -> Result<Charge, WitError> {
        let mut held = self.held.load(Ordering::Relaxed);
        loop {
            let next = match held.checked_add(bytes) {
                Some(n) if n <= self.limit => n,
                _ => return Err(self.refuse(bytes, held, what)),
            };
            match self
                .held
                .compare_exchange_weak(held, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    return Ok(Charge {
                        budget: self.clone(),
                        bytes,
                    })
                }
                Err(now) => held = now,
            }
        }
    }

    fn refuse(&self, bytes: usize, held: usize, what: impl Display) -> WitError {
        let message = format!(
            "run memory: {what} would take {} more while the run's host buffers hold {} of \
             its {} (`run_memory:` in the top-level flow's manifest)",
            human(bytes),
            human(held),
            human(self.limit),
        );
        self.exceeded.store(true, Ordering::Release);
        let mut first = crate::runtime::lock(&self.first_refusal);
        if first.is_none() {
            *first = Some(message.clone());
        }
        WitError::LimitExceeded(message)
    }

    /// The first refusal, if the budget ever refused a charge: the run must not commit.
    pub fn refusal(&self) -> Option<String> {
        if !self.exceeded.load(Ordering::Acquire) {
            return None;
        }
        crate::runtime::lock(&self.first_refusal).clone()
    }
}

/// `41 B`, `15.0 MiB`: a size for a message.
fn human(n: usize) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

impl Charge {
    /// Bytes this charge holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds `more` bytes for `what` to this charge (an HTTP body growing chunk by chunk);
    /// `what` as for [`Budget::charge`].
    pub fn grow(&mut self, more: usize, what: impl Display) -> Result<(), WitError> {
        let extra = self.budget.charge(more, what)?;
        self.bytes += extra.bytes;
        // The extra charge's bytes now belong to `self`.
        std::mem::forget(extra);
        Ok(())
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_given_back_when_dropped() {
        let b = Budget::new(100);
        let a = b.charge(60, "a").unwrap();
        assert_eq!(b.held(), 60);
        let err = b.charge(41, "the output of X").unwrap_err();
        let WitError::LimitExceeded(msg) = err else {
            panic!("not limit-exceeded: {err:?}")
        };
        assert!(
            msg.contains("the output of X would take 41 B more"),
            "{msg}"
        );
        assert!(msg.contains("run_memory"), "{msg}");
        drop(a);
        assert_eq!(b.held(), 0);
        // The refusal sticks: the run must fail even though the bytes were given back.
        assert!(b.refusal().is_some_and(|m| m.contains("the output of X")));
        let c = b.charge(100, "all").unwrap();
        assert_eq!(c.bytes(), 100);
    }

    /// What a charge is for is written out only when it is refused (no text is made for
    /// the charges that succeed, once per call on the hot paths).
    #[test]
    fn a_charges_description_is_written_only_for_a_refusal() {
        struct Counted<'a>(&'a std::cell::Cell<u32>);
        impl Display for Counted<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.set(self.0.get() + 1);
                f.write_str("the queued upserts")
            }
        }
        let written = std::cell::Cell::new(0);
        let b = Budget::new(10);
        let mut c = b.charge(4, Counted(&written)).unwrap();
        c.grow(6, Counted(&written)).unwrap();
        assert_eq!(written.get(), 0);
        let err = c.grow(1, Counted(&written)).unwrap_err();
        assert_eq!(written.get(), 1);
        let WitError::LimitExceeded(msg) = err else {
            panic!("not limit-exceeded: {err:?}")
        };
        assert!(
            msg.contains("the queued upserts would take 1 B more"),
            "{msg}"
        );
    }

    #[test]
    fn a_charge_grows_and_never_overflows() {
        let b = Budget::new(10);
        let mut c = b.charge(4, "body").unwrap();
        c.grow(6, "body").unwrap();
        assert_eq!((c.bytes(), b.held()), (10, 10));
        assert!(c.grow(1, "body").is_err());
        assert!(b.charge(usize::MAX, "huge").is_err());
        drop(c);
        assert_eq!(b.held(), 0);
        assert!(Budget::new(0).refusal().is_none());
        assert_eq!(human(15 << 20), "15.0 MiB");
        assert_eq!(human(256 << 20), "256.0 MiB");
    }
}
