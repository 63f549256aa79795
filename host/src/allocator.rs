//! The process allocator's settings: flowhost's binaries allocate with mimalloc (their
//! `#[global_allocator]`), and [`configure`] sets the one option flowhost changes.
//!
//! mimalloc gives memory that has been free for its purge delay (1 s by default) back to the
//! operating system, and a later allocation faults it in again, zeroed. A backfill frees and
//! reallocates a page's worth of buffers (the response, the items, the rows) for every page,
//! so with 1 s a purge came every second and was undone at once: the kernel's page zeroing
//! on those faults (`clear_page_erms`, under `mi_page_free_list_extend`) took 2-5% of a
//! drain's CPU samples in this project's benchmark (287-730 samples of 12,500-14,000 in
//! 200,000-event drains), about 1% with 10 s (98-165). Idle memory is still given back, 10 s
//! after a run instead of 1 s.

/// How long memory stays free in mimalloc before it goes back to the operating system.
pub const PURGE_DELAY_MS: i64 = 10_000;

/// `mi_option_purge_delay` of mimalloc v3's `mi_option_t` (mimalloc.h), which the Rust
/// bindings do not name (they stop at its neighbour `mi_option_use_numa_nodes`, 16). The test
/// `the_option_is_mimallocs_purge_delay` checks that mimalloc reads `MIMALLOC_PURGE_DELAY`
/// into it, so an upgrade that moves it cannot go unnoticed.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets mimalloc's purge delay to [`PURGE_DELAY_MS`], unless `MIMALLOC_PURGE_DELAY` sets it
/// (mimalloc reads its `MIMALLOC_*` variables itself). Call it first thing in `main`.
pub fn configure() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: `mi_option_set` only stores the value in mimalloc's option table (an atomic
    // store); the purge delay is read whenever memory is scheduled for purging.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS as _);
    }
}

/// mimalloc's purge delay now, in milliseconds (-1: never).
pub fn purge_delay_ms() -> i64 {
    // SAFETY: reads mimalloc's option table (initialising the option from the environment
    // on its first read).
    let delay: std::ffi::c_long = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
    delay as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set in the child process of `the_option_is_mimallocs_purge_delay`.
    const CHILD: &str = "FLOWHOST_TEST_PURGE_DELAY_CHILD";

    #[test]
    fn the_option_is_mimallocs_purge_delay() {
        if std::env::var_os(CHILD).is_some() {
            // mimalloc read MIMALLOC_PURGE_DELAY into the option this module sets, and
            // `configure` leaves a delay the environment sets alone.
            assert_eq!(purge_delay_ms(), 4321);
            configure();
            assert_eq!(purge_delay_ms(), 4321);
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "allocator::tests::the_option_is_mimallocs_purge_delay",
            ])
            .env(CHILD, "1")
            .env("MIMALLOC_PURGE_DELAY", "4321")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
    }

    #[test]
    fn configure_sets_the_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        configure();
        assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
    }
}
