//! M10's linear memory starts at 4 MiB instead of the linker's default (its data and 1 MiB
//! stack, ~1.1 MiB): M10 holds a whole page of events, their envelopes and S30's results,
//! which Rust's allocator would grow into 64 KiB at a time, ~30 times per page. Each
//! `memory.grow` of a pooled instance is an `mprotect` of its slot (with a TLB flush on the
//! other core), and another when the slot is reused. With 4 MiB, M10 made no `memory.grow`
//! in a 100,000-event drain of pages of 1,000; pages it does not touch are never resident.
//! The other flows stay at the default (S20 grows to ~1.5 MiB once per page, S30 by 64 KiB
//! once per instance): a larger memory costs a little on every fresh instance, as the pool
//! scans it for dirty pages when the instance ends.

fn main() {
    println!("cargo:rustc-link-arg-cdylib=--initial-memory=4194304");
}
