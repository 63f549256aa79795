//! probe — runs one operation given as JSON and returns its result: a test flow through which
//! the host's integration tests exercise every capability, grant and limit.
//!
//! Operations (`{"op": ..., ...}` → output; a failure is the run's error):
//! - `{"op":"echo","value":x}` → `x`
//! - `{"op":"http","method":"GET","url":"...","headers":{"k":"v"},"body":"text" | <json>,
//!   "timeout_ms":n,"retry":{"attempts":n,"initial_ms":n,"max_ms":n}}` →
//!   `{"status":n,"headers":{"name":"value"},"body":"text"}` (header names lower-case; a repeated
//!   header's values joined with `", "`; a JSON `body` is sent with `Content-Type:
//!   application/json`; `retry` also takes the WIT names `max_attempts`, `initial_backoff_ms`,
//!   `max_backoff_ms`); with `"prefetch":true` the request is prefetched instead
//!   (`http.prefetch`) → `{"prefetched":true}`
//! - `{"op":"table","fn":"get|find|insert|insert_many|upsert|update|delete|delete_many|clear|count",
//!   "table":"...","key":"...","keys":[],"row":{},"rows":[],"filter":{},"limit":n,"changes":{}}` →
//!   get: the row or `null`; find: the rows; insert/upsert: the key; insert_many: the count;
//!   update/delete: `true`/`false`; delete_many/clear: rows deleted; count: the count
//! - `{"op":"secret","name":"..."}` → the value
//! - `{"op":"call","flow":"...","input":{}}` → the child's output
//! - `{"op":"for_each","flow":"...","items":[...],"concurrency":n}` →
//!   `[{"ok": output} | {"err": "text"}, ...]` in input order
//! - `{"op":"fail","message":"..."}` → fails with the message
//! - `{"op":"loop"}` spins forever; `{"op":"alloc","mb":n}` allocates and touches n MiB (an
//!   allocation the memory cap refuses aborts, i.e. traps, as in any Rust flow) →
//!   `{"allocated_mb":n}`; `{"op":"panic"}` panics (a trap: `panic = "abort"`);
//!   `{"op":"recurse"}` calls probe with `{"op":"recurse"}` forever;
//!   `{"op":"big_output","mb":n}` → a string of n MiB
//! - `{"op":"sleep","ms":n}` → `null`; `{"op":"now"}` → the host's time;
//!   `{"op":"request_run","flow":"...","input":{},"delay_ms":n}` → `null`
//! - `{"op":"log","level":"trace|debug|info|warn|error","message":"..."}` → `null`
//! - `{"op":"cache_set","key":"...","value":"...","ttl_ms":n}` → `null`;
//!   `{"op":"cache_get","key":"..."}` → the value or `null`
//! - `{"op":"blob_put","store":"...","key":"...","data":"text"}` → `null`;
//!   `{"op":"blob_get","store":"...","key":"..."}` → the object as text (invalid UTF-8
//!   replaced) or `null`; `{"op":"blob_list","store":"...","prefix":"...","limit":n}` → the
//!   names (`prefix` defaults to `""`, `limit` to 1000); `{"op":"blob_delete","store":"...",
//!   "key":"..."}` → `true`/`false`
//! - `{"op":"steps","steps":[op, ...]}` → the array of results, stopping at the first failure
//! - `{"op":"repeat","n":n,"step":op}` → runs `op` n times and keeps only the last result
//!   (`null` when n is 0), stopping at the first failure: the cost of n ops without the
//!   parsing and collecting of n step objects (the micro-benchmarks use it)
//! - `{"op":"try","try":op}` → `{"ok": result}` or `{"err": "text"}`: the flow goes on after
//!   a failed op, as a flow that handles an error would
//! - `{"op":"item_result","value":"text"}` → whether the host took it: hands the host
//!   `value` as an item's output through `flows.item-result` itself, which only the SDK's
//!   `run-many` should do (the host's tests check what a flow that misuses it gets)
//!
//! Host errors fail the run with their display text, `"<kind>: <text>"` (e.g.
//! `access-denied: ...`); a malformed op fails with `probe: ...`.

use flowhost_sdk::{blobs, cache, call, for_each, http, log, schedule, secrets, tables, FlowError};
use serde_json::{json, Map, Value};

flowhost_sdk::flow!(run);

const MIB: usize = 1024 * 1024;

fn run(op: Value) -> Result<Value, FlowError> {
    exec(&op)
}

fn exec(op: &Value) -> Result<Value, FlowError> {
    let name = text(op, "op")?;
    match name {
        "echo" => Ok(op.get("value").cloned().unwrap_or(Value::Null)),
        "http" => http_op(op),
        "table" => table_op(op),
        "secret" => Ok(Value::String(secrets::get(text(op, "name")?)?)),
        "call" => Ok(call::<Value, Value>(text(op, "flow")?, &input_of(op))?),
        "for_each" => for_each_op(op),
        "fail" => Err(FlowError::new(
            op.get("message").and_then(Value::as_str).unwrap_or("probe: failed as asked"),
        )),
        "loop" => spin(),
        "alloc" => alloc(number(op, "mb")? as usize),
        "panic" => panic!("probe: panic as asked"),
        "item_result" => {
            use flowhost_sdk::bindings::flowhost::flow::flows::item_result;
            Ok(Value::Bool(item_result(Ok(text(op, "value")?))))
        }
        "recurse" => Ok(call::<Value, Value>("probe", &json!({ "op": "recurse" }))?),
        "big_output" => Ok(Value::String("x".repeat(number(op, "mb")? as usize * MIB))),
        "sleep" => {
            schedule::sleep_ms(number(op, "ms")?);
            Ok(Value::Null)
        }
        "now" => Ok(Value::String(schedule::now())),
        "request_run" => {
            let delay = op.get("delay_ms").and_then(Value::as_u64).unwrap_or(0);
            schedule::request_run(text(op, "flow")?, &input_of(op).to_string(), delay)?;
            Ok(Value::Null)
        }
        "log" => log_op(op),
        "cache_set" => {
            let ttl = op.get("ttl_ms").and_then(Value::as_u64).unwrap_or(60_000);
            cache::set(text(op, "key")?, text(op, "value")?, ttl);
            Ok(Value::Null)
        }
        "cache_get" => Ok(cache::get(text(op, "key")?).map_or(Value::Null, Value::String)),
        "blob_put" => {
            blobs::put(text(op, "store")?, text(op, "key")?, text(op, "data")?.as_bytes())?;
            Ok(Value::Null)
        }
        "blob_get" => Ok(blobs::get(text(op, "store")?, text(op, "key")?)?
            .map_or(Value::Null, |data| {
                Value::String(String::from_utf8_lossy(&data).into_owned())
            })),
        "blob_list" => {
            let prefix = op.get("prefix").and_then(Value::as_str).unwrap_or("");
            let limit =
                op.get("limit").and_then(Value::as_u64).unwrap_or(1000).min(u64::from(u32::MAX));
            Ok(json!(blobs::list(text(op, "store")?, prefix, limit as u32)?))
        }
        "blob_delete" => Ok(json!(blobs::delete(text(op, "store")?, text(op, "key")?)?)),
        "steps" => {
            let steps = op
                .get("steps")
                .and_then(Value::as_array)
                .ok_or_else(|| missing("steps", "an array"))?;
            steps.iter().map(exec).collect::<Result<Vec<_>, _>>().map(Value::Array)
        }
        "repeat" => {
            let step = op.get("step").ok_or_else(|| missing("step", "an op"))?;
            let mut last = Value::Null;
            for _ in 0..number(op, "n")? {
                last = exec(step)?;
            }
            Ok(last)
        }
        "try" => {
            let inner = op.get("try").ok_or_else(|| missing("try", "an op"))?;
            Ok(match exec(inner) {
                Ok(v) => json!({ "ok": v }),
                Err(e) => json!({ "err": e.to_string() }),
            })
        }
        other => Err(FlowError::new(format!("probe: unknown op {other:?}"))),
    }
}

fn missing(field: &str, what: &str) -> FlowError {
    FlowError::new(format!("probe: `{field}` must be {what}"))
}

fn text<'a>(op: &'a Value, field: &str) -> Result<&'a str, FlowError> {
    op.get(field).and_then(Value::as_str).ok_or_else(|| missing(field, "a string"))
}

fn number(op: &Value, field: &str) -> Result<u64, FlowError> {
    op.get(field).and_then(Value::as_u64).ok_or_else(|| missing(field, "a whole number"))
}

/// A table key: text, or a number (a row id) written as text.
fn key(op: &Value) -> Result<String, FlowError> {
    match op.get("key") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(missing("key", "a string or a number")),
    }
}

/// `keys`: an array of strings (for `delete_many`).
fn keys(op: &Value) -> Result<Vec<String>, FlowError> {
    op.get("keys")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(|k| k.as_str().map(str::to_owned)).collect())
        .ok_or_else(|| missing("keys", "an array of strings"))
}

/// The `input` to pass on (`{}` when absent).
fn input_of(op: &Value) -> Value {
    op.get("input").cloned().unwrap_or_else(|| json!({}))
}

fn field_or_empty_object(op: &Value, field: &str) -> Value {
    op.get(field).cloned().unwrap_or_else(|| json!({}))
}

fn http_op(op: &Value) -> Result<Value, FlowError> {
    let method = op.get("method").and_then(Value::as_str).unwrap_or("GET");
    let mut req = http::Request::new(method, text(op, "url")?);
    if let Some(headers) = op.get("headers").and_then(Value::as_object) {
        for (name, value) in headers {
            req = req.header(name, value.as_str().unwrap_or(&value.to_string()));
        }
    }
    req = match op.get("body") {
        None | Some(Value::Null) => req,
        Some(Value::String(s)) => req.body(s.as_bytes()),
        Some(other) => req.json(other),
    };
    if let Some(ms) = op.get("timeout_ms").and_then(Value::as_u64) {
        req = req.timeout_ms(ms.min(u64::from(u32::MAX)) as u32);
    }
    if let Some(retry) = op.get("retry").filter(|r| r.is_object()) {
        let get = |a: &str, b: &str, default: u64| {
            retry
                .get(a)
                .or_else(|| retry.get(b))
                .and_then(Value::as_u64)
                .unwrap_or(default)
                .min(u64::from(u32::MAX)) as u32
        };
        req = req.retry(
            get("attempts", "max_attempts", 1),
            get("initial_ms", "initial_backoff_ms", 100),
            get("max_ms", "max_backoff_ms", 1_000),
        );
    }
    if op.get("prefetch").and_then(Value::as_bool) == Some(true) {
        req.prefetch()?;
        return Ok(json!({ "prefetched": true }));
    }
    let resp = req.send()?;
    let mut headers = Map::new();
    for (name, value) in &resp.headers {
        let name = name.to_ascii_lowercase();
        let joined = match headers.get(&name).and_then(Value::as_str) {
            Some(prev) => format!("{prev}, {value}"),
            None => value.clone(),
        };
        headers.insert(name, Value::String(joined));
    }
    Ok(json!({ "status": resp.status, "headers": headers, "body": resp.text() }))
}

fn table_op(op: &Value) -> Result<Value, FlowError> {
    let table = text(op, "table")?;
    let limit = op.get("limit").and_then(Value::as_u64).map(|l| l.min(u64::from(u32::MAX)) as u32);
    let rows =
        || op.get("rows").and_then(Value::as_array).ok_or_else(|| missing("rows", "an array"));
    let row = || op.get("row").ok_or_else(|| missing("row", "given"));
    Ok(match text(op, "fn")? {
        "get" => tables::get::<Value>(table, &key(op)?)?.unwrap_or(Value::Null),
        "find" => Value::Array(tables::find::<Value, Value>(
            table,
            &field_or_empty_object(op, "filter"),
            limit,
        )?),
        "insert" => Value::String(tables::insert(table, row()?)?),
        "insert_many" => json!(tables::insert_many(table, rows()?)?),
        "upsert" => Value::String(tables::upsert(table, row()?)?),
        "update" => json!(tables::update(table, &key(op)?, &field_or_empty_object(op, "changes"))?),
        "delete" => json!(tables::delete(table, &key(op)?)?),
        "delete_many" => json!(tables::delete_many(table, &keys(op)?)?),
        "clear" => json!(tables::clear(table)?),
        "count" => json!(tables::count(table, &field_or_empty_object(op, "filter"))?),
        other => return Err(FlowError::new(format!("probe: unknown table fn {other:?}"))),
    })
}

fn for_each_op(op: &Value) -> Result<Value, FlowError> {
    let items =
        op.get("items").and_then(Value::as_array).ok_or_else(|| missing("items", "an array"))?;
    let concurrency =
        op.get("concurrency").and_then(Value::as_u64).unwrap_or(1).min(u64::from(u32::MAX)) as u32;
    let results = for_each::<Value, Value>(text(op, "flow")?, items, concurrency)?;
    Ok(Value::Array(
        results
            .into_iter()
            .map(|r| match r {
                Ok(v) => json!({ "ok": v }),
                Err(e) => json!({ "err": e }),
            })
            .collect(),
    ))
}

fn log_op(op: &Value) -> Result<Value, FlowError> {
    let message = text(op, "message")?;
    match op.get("level").and_then(Value::as_str).unwrap_or("info") {
        "trace" => log::trace(message),
        "debug" => log::debug(message),
        "info" => log::info(message),
        "warn" => log::warn(message),
        "error" => log::error(message),
        other => return Err(FlowError::new(format!("probe: unknown log level {other:?}"))),
    }
    Ok(Value::Null)
}

/// Spins until the host's deadline stops it (the counter keeps the optimizer from removing it).
fn spin() -> ! {
    let mut i: u64 = 0;
    loop {
        i = std::hint::black_box(i.wrapping_add(1));
    }
}

/// Allocates `mb` MiB and writes every byte.
fn alloc(mb: usize) -> Result<Value, FlowError> {
    let size = mb.checked_mul(MIB).ok_or_else(|| FlowError::new("probe: alloc size overflows"))?;
    let mut block: Vec<u8> = Vec::with_capacity(size);
    block.resize(size, 1);
    let touched =
        std::hint::black_box(&block).iter().step_by(4096).map(|&b| usize::from(b)).sum::<usize>();
    std::hint::black_box(touched);
    Ok(json!({ "allocated_mb": mb }))
}
