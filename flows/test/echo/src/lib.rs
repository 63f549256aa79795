//! echo — returns its input unchanged (the JSON text as given, byte for byte). No grants.
//! A test flow for the host's integration tests (calls, for-each, limits on sizes).

use flowhost_sdk::FlowError;

flowhost_sdk::flow!(raw run);

fn run(input: String) -> Result<String, FlowError> {
    Ok(input)
}
