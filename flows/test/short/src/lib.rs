//! short — a flow whose `run-many` returns before every item of the call has a result, which
//! no flow built with the SDK can do (its loop gives each item one): the host must fail the
//! items left, each alone, and go on with the rest of the for-each. Bare wit-bindgen bindings
//! of world `flow-many` (contract 0.1.3), not the SDK.
//!
//! `run`: returns its input. `run-many`: hands back each input as its result, in order, and
//! returns at once, with no result for it or the items after it, at an input that contains
//! the text `stop`.

wit_bindgen::generate!({
    world: "flow-many",
    path: "../../../wit",
});

use flowhost::flow::flows::item_result;

struct Short;

impl Guest for Short {
    fn run(input: String) -> Result<String, String> {
        Ok(input)
    }

    fn run_many(inputs: Vec<String>) {
        for input in inputs {
            if input.contains("stop") || !item_result(Ok(&input)) {
                return;
            }
        }
    }
}

export!(Short);
