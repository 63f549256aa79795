//! {{name}}: a flowhost flow. `run` gets the input JSON and returns the output JSON;
//! `flowhost build .` makes `dist/{{name}}.wasm`. The SDK's API: vendor/flowhost-sdk/src/lib.rs.

use flowhost_sdk::{tables, FlowError};
use serde_json::{json, Value};

flowhost_sdk::flow!(run);

fn run(input: Value) -> Result<Value, FlowError> {
    // Refused with `access-denied` until {{name}}.yaml grants `tables: read: [Execution Log]`.
    let log_rows = tables::count("Execution Log", &())?;
    Ok(json!({ "input": input, "log_rows": log_rows }))
}
