//! M10's linear memory starts at 4 MiB instead of the linker's default (its data and 1 MiB
//! stack, ~1.1 MiB): M10 holds a whole page of events, their envelopes and S30's results,
//! which Rust's allocator would grow into 64 KiB at a time, ~30 times per page. Each
//! `memory.grow` of a pooled instance is an `mprotect` of its slot (with a TLB flush on the
//! other core), and another when the slot is reused. 4 MiB holds a page of 1,000 events with
//! room to spare; pages M10 does not touch are never resident. The other flows stay at the
//! default: they grow rarely, and a larger memory costs a little on every fresh instance
//! (the pool scans it for dirty pages when the instance ends).

fn main() {
    println!("cargo:rustc-link-arg-cdylib=--initial-memory=4194304");
}
