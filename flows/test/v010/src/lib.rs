//! v010 — a flow built against the frozen contract `flowhost:flow@0.1.0`
//! (`wit/released/0.1.0/flow.wit`) with bare wit-bindgen bindings, not the SDK (which follows
//! the current contract). Its component imports `flowhost:flow/tables@0.1.0` and
//! `flowhost:flow/flows@0.1.0`; a host of a later 0.1.x must still satisfy them.
//!
//! Input: any JSON. Output: `{"input": <input>, "probe_items": <count>, "echo": <echo's output>}`.

wit_bindgen::generate!({
    world: "flow",
    path: "../../../wit/released/0.1.0",
});

use flowhost::flow::{flows, tables};

struct V010;

impl Guest for V010 {
    fn run(input: String) -> Result<String, String> {
        let text = if input.trim().is_empty() { "{}" } else { input.as_str() };
        let input: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("invalid input for flow: {e}"))?;
        let count = tables::count("Probe Items", "{}").map_err(|e| format!("{e:?}"))?;
        let echoed = flows::call("echo", &input.to_string()).map_err(|e| format!("{e:?}"))?;
        let echoed: serde_json::Value =
            serde_json::from_str(&echoed).map_err(|e| format!("echo's output: {e}"))?;
        Ok(serde_json::json!({"input": input, "probe_items": count, "echo": echoed}).to_string())
    }
}

export!(V010);
