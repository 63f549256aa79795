//! Child flows, as the Workflows Call Flow and For Each cards run them.
//!
//! Inputs are serialized to JSON and outputs decoded from it; a child's failure comes back as
//! the host's [`Error`] (a `call`) or as that item's `Err(text)` (a `for_each`).

use serde::{de::DeserializeOwned, Serialize};

use crate::bindings::flowhost::flow::flows as wit;
use crate::Error;

/// Runs flow `name` with `input` as a child of this run and decodes its output.
pub fn call<I, O>(name: &str, input: &I) -> Result<O, Error>
where
    I: Serialize + ?Sized,
    O: DeserializeOwned,
{
    let input = serde_json::to_string(input)
        .map_err(|e| Error::json(format!("input for flow {name}"), e))?;
    let output = wit::call(name, &input)?;
    serde_json::from_str(&output).map_err(|e| Error::json(format!("output of flow {name}"), e))
}

/// Runs flow `name` once per item, at most `concurrency` at a time (0 counts as 1).
///
/// Results come in input order: each the decoded output or the child's error text (an output
/// that does not decode as `O` is that item's error). The call itself fails only when the
/// flow cannot be called at all (not granted, unknown, too deep, too many items).
pub fn for_each<I, O>(
    name: &str,
    items: &[I],
    concurrency: u32,
) -> Result<Vec<Result<O, String>>, Error>
where
    I: Serialize,
    O: DeserializeOwned,
{
    let inputs = items
        .iter()
        .map(|item| serde_json::to_string(item))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::json(format!("item for flow {name}"), e))?;
    for_each_raw(name, &inputs, concurrency)
}

/// [`for_each`] of items that are JSON text already, handed to the flow as they are (not
/// checked here: an item that is no JSON fails in the child, as that item's error).
pub fn for_each_raw<S, O>(
    name: &str,
    items: &[S],
    concurrency: u32,
) -> Result<Vec<Result<O, String>>, Error>
where
    S: AsRef<str>,
    O: DeserializeOwned,
{
    let inputs: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    let results = wit::for_each(name, &inputs, concurrency.max(1))?;
    Ok(results
        .into_iter()
        .map(|r| {
            r.and_then(|out| {
                serde_json::from_str(&out)
                    .map_err(|e| format!("invalid output of flow {name}: {e}"))
            })
        })
        .collect())
}

/// [`for_each`] where every item must succeed: the first failure (in input order) fails the
/// whole call with `other: flow NAME failed on item I of N: TEXT`.
pub fn for_each_all<I, O>(name: &str, items: &[I], concurrency: u32) -> Result<Vec<O>, Error>
where
    I: Serialize,
    O: DeserializeOwned,
{
    all_ok(name, for_each(name, items, concurrency)?)
}

/// [`for_each_raw`] where every item must succeed, as [`for_each_all`].
pub fn for_each_all_raw<S, O>(name: &str, items: &[S], concurrency: u32) -> Result<Vec<O>, Error>
where
    S: AsRef<str>,
    O: DeserializeOwned,
{
    all_ok(name, for_each_raw(name, items, concurrency)?)
}

/// Every item's output, or the first item's failure as [`for_each_all`] words it.
fn all_ok<O>(name: &str, results: Vec<Result<O, String>>) -> Result<Vec<O>, Error> {
    let total = results.len();
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.map_err(|e| {
                Error::Other(format!("flow {name} failed on item {} of {total}: {e}", i + 1))
            })
        })
        .collect()
}
