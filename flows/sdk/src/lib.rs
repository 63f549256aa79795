//! # flowhost-sdk — what a flow is written with
//!
//! The one place that generates the bindings of the `flowhost:flow@0.1.3` world (`wit/flow.wit`)
//! and wraps them in typed helpers, so that a flow reads like a Workflows flow: a short sequence
//! of named steps (`call("U10", …)`, `tables::find(…)`, `http::get(…).send()`).
//!
//! ```ignore
//! use flowhost_sdk::{call, tables, FlowError};
//!
//! flowhost_sdk::flow!(run);
//!
//! fn run(input: In) -> Result<Out, FlowError> {
//!     let env: Env = call("U01", &serde_json::json!({}))?;
//!     let rows: Vec<Row> = tables::find("Audit Events", &serde_json::json!({"type": input.kind}), Some(10))?;
//!     Ok(Out { team: env.team, rows: rows.len() })
//! }
//! ```
//!
//! Modules:
//! - [`mod@error`]: [`Error`] (the WIT `error` variant as a Rust enum) and [`FlowError`] (what `run`
//!   returns; everything converts into it with `?`);
//! - [`flows`]: [`call`], [`for_each`], [`for_each_all`] (and `_raw` forms for items that are JSON
//!   text already) — child flows;
//! - [`tables`]: typed rows over the tables capability (or a row's cells, borrowed);
//! - [`http`]: a request builder and its [`http::Response`];
//! - [`blobs`]: `put`, `get`, `list`, `delete` on the named object stores the manifest grants;
//! - [`schedule`], [`secrets`], [`cache`], [`log`]: thin typed wrappers of the other capabilities;
//! - [`grants`]: whether other flows may reach a URL (before storing one for them);
//! - [`flow!`]: the entry-point macro (JSON in, JSON out); [`input`] decodes an input as it does.

pub mod blobs;
pub mod cache;
mod cells;
pub mod error;
pub mod flows;
pub mod grants;
pub mod http;
pub mod log;
pub mod schedule;
pub mod secrets;
pub mod tables;

pub use error::{Context, Error, FlowError};
pub use flows::{call, for_each, for_each_all, for_each_all_raw, for_each_raw};

/// The generated bindings of world `flow-many` (world `flow` plus `run-many`). Flow crates
/// never use them directly; [`flow!`] exports through them.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "flow-many",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_flow_world",
        default_bindings_module: "flowhost_sdk::bindings",
        ownership: Borrowing { duplicate_if_necessary: true },
    });
}

/// Declares the flow's entry point.
///
/// It exports `run` and `run-many` (several items of a for-each in one call: `run` on each in
/// turn, on the same instance, as the host would have called it item by item).
///
/// `flow!(run)` with `fn run(input: In) -> Result<Out, FlowError>` where `In: DeserializeOwned`
/// and `Out: Serialize`: the input JSON is decoded into `In` (an empty input counts as `{}`;
/// bad JSON fails the run with `invalid input for flow: …`) and `Out` is encoded as the output.
///
/// `flow!(raw run)` with `fn run(input: String) -> Result<String, FlowError>` passes the JSON
/// text through untouched (for flows that must not re-encode it, like `echo`).
///
/// `flow!(text run)` with `fn run(input: String) -> Result<Out, FlowError>`: the input as JSON
/// text (for a flow that keeps it, parses only part of it, or reads it in more than one way:
/// [`input`] decodes it as `flow!(run)` would), the output encoded from `Out`.
#[macro_export]
macro_rules! flow {
    // The exports every form shares: `run` evaluates `$body` with the input text as
    // `$input`, and `run-many` is that `run` on each item.
    (@export $input:ident => $body:expr) => {
        struct __FlowhostFlow;
        impl $crate::bindings::Guest for __FlowhostFlow {
            fn run(
                $input: ::std::string::String,
            ) -> ::std::result::Result<::std::string::String, ::std::string::String> {
                $body
            }
            fn run_many(inputs: ::std::vec::Vec<::std::string::String>) {
                $crate::__run_many(inputs, <Self as $crate::bindings::Guest>::run)
            }
        }
        $crate::bindings::__export_flow_world!(__FlowhostFlow);
    };
    (text $run:path) => {
        $crate::flow!(@export input => $crate::__run_text(input, $run));
    };
    (raw $run:path) => {
        $crate::flow!(@export input => $run(input).map_err(|e| e.into_message()));
    };
    ($run:path) => {
        $crate::flow!(@export input => $crate::__run_json(&input, $run));
    };
}

/// The body of every flow's `run-many`: `run` on each input in turn, each result handed to
/// the host as soon as it is there (`flows.item-result`); it stops when the host takes no
/// more.
#[doc(hidden)]
pub fn __run_many(inputs: Vec<String>, run: fn(String) -> Result<String, String>) {
    use bindings::flowhost::flow::flows::item_result;
    for input in inputs {
        let outcome = run(input);
        let outcome = match &outcome {
            Ok(out) => Ok(out.as_str()),
            Err(message) => Err(message.as_str()),
        };
        if !item_result(outcome) {
            return;
        }
    }
}

/// The body of `flow!(text …)`: run on the text, encode.
#[doc(hidden)]
pub fn __run_text<O>(
    input: String,
    run: fn(String) -> Result<O, FlowError>,
) -> Result<String, String>
where
    O: serde::Serialize,
{
    let output = run(input).map_err(FlowError::into_message)?;
    encode_output(&output)
}

fn encode_output<O: serde::Serialize>(output: &O) -> Result<String, String> {
    serde_json::to_string(output).map_err(|e| format!("invalid output of flow: {e}"))
}

/// The body of [`flow!`]: decode, run, encode.
#[doc(hidden)]
pub fn __run_json<I, O>(input: &str, run: fn(I) -> Result<O, FlowError>) -> Result<String, String>
where
    I: serde::de::DeserializeOwned,
    O: serde::Serialize,
{
    let input: I = self::input(input).map_err(FlowError::into_message)?;
    let output = run(input).map_err(FlowError::into_message)?;
    encode_output(&output)
}

/// A flow's input decoded as [`flow!`] decodes it, for a `flow!(text …)` that reads its input
/// itself (`I` may borrow from the text): an empty input counts as `{}`, and bad JSON (or JSON
/// that is no `I`) fails with `invalid input for flow: …`.
pub fn input<'a, I: serde::Deserialize<'a>>(text: &'a str) -> Result<I, FlowError> {
    let text = if text.trim().is_empty() { "{}" } else { text };
    serde_json::from_str(text).map_err(|e| FlowError::new(format!("invalid input for flow: {e}")))
}
