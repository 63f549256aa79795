//! # flowhost-bench (library part)
//!
//! What the `flowhost-bench` binary and the divan benchmarks (`benches/runtime.rs`) share: the
//! runtime set-up of the micro-benchmarks and the operations they time, so that both measure
//! exactly the same thing. The binary's `micro` mode takes medians of batches and checks them
//! against the targets; `cargo bench -p flowhost-bench` gives divan's statistics.
//!
//! Modules:
//! - [`setup`]: flow folders, blob stores, compiling ahead of the clock, the tokio runtime;
//! - [`micro_ops`]: [`micro_ops::MicroWorld`] and the operations (a no-op flow on a fresh or a
//!   reused instance, a top-level run, probe runs of table gets, nested calls, for-each).

pub mod micro_ops;
pub mod setup;
