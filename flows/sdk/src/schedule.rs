//! Time and scheduling.

use crate::bindings::flowhost::flow::schedule as wit;
use crate::Error;

/// The current time, RFC 3339 in UTC with millisecond precision (`2024-03-05T01:02:03.123Z`).
pub fn now() -> String {
    wit::now()
}

/// Sleeps; counts against the run's deadline.
pub fn sleep_ms(ms: u64) {
    wit::sleep(ms)
}

/// Asks the host to run `flow` with the JSON text `input` after `delay_ms` (0 = as soon as
/// this run has committed), e.g. to drain a backlog without waiting for the next tick.
pub fn request_run(flow: &str, input: &str, delay_ms: u64) -> Result<(), Error> {
    Ok(wit::request_run(flow, input, delay_ms)?)
}
