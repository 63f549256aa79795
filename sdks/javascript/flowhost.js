// flowhost.js: the flowhost SDK for flows written in JavaScript (an ES module).
//
// Thin wrappers over the `flowhost:flow` WIT imports that componentize-js generates, with the
// verbs of the Rust SDK (flows/sdk): `call`, `forEach`, `tables`, `http`, `secrets`, `log`,
// `schedule`, `blobs`, `cache`, `grants`, and `flow`, the entry point:
//
//   import { flow, tables } from './flowhost.js';
//   export const run = flow((input) => ({ rows: tables.count('Audit Events') }));
//
// JSON in and out: rows, filters, inputs and outputs are plain values, encoded and decoded
// here. Counts (u64 in the WIT) come back as Numbers (a count past 2^53 - 1, which no table
// reaches, is an error rather than a rounded number). A host call that fails throws a
// `FlowhostError` whose `kind` is the WIT error case (`access-denied`, `not-found`, ...).
//
// The WIT version appears only in the import block below; it must be the version of the
// host's `wit/flow.wit` (the project's copy), which `host/tests/lang_javascript.rs` checks.

import * as witTables from 'flowhost:flow/tables@0.1.3';
import * as witHttp from 'flowhost:flow/http@0.1.3';
import * as witFlows from 'flowhost:flow/flows@0.1.3';
import * as witSchedule from 'flowhost:flow/schedule@0.1.3';
import * as witSecrets from 'flowhost:flow/secrets@0.1.3';
import * as witBlobs from 'flowhost:flow/blobs@0.1.3';
import * as witCache from 'flowhost:flow/cache@0.1.3';
import * as witLog from 'flowhost:flow/log@0.1.3';
import * as witGrants from 'flowhost:flow/grants@0.1.3';

// ---------------------------------------------------------------------------------------------
// Errors

/** The cases of the WIT `error` variant, as the WIT spells them. */
export const ERROR_KINDS = Object.freeze([
  'not-found',
  'access-denied',
  'invalid-input',
  'limit-exceeded',
  'timeout',
  'other',
]);

/**
 * A host call failed: `kind` is the WIT error case, `message` its text. `String(e)` is
 * `"kind: message"`, the text a run fails with when the error is not caught (as in Rust).
 */
export class FlowhostError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = 'FlowhostError';
    this.kind = ERROR_KINDS.includes(kind) ? kind : 'other';
  }

  toString() {
    return `${this.kind}: ${this.message}`;
  }
}

/** A flow's own failure: the run fails with exactly `message` (Rust's `FlowError::new`). */
export class FlowError extends Error {
  constructor(message) {
    super(message);
    this.name = 'FlowError';
  }

  toString() {
    return this.message;
  }
}

// componentize-js throws a `ComponentError` whose `payload` is the WIT error `{tag, val}`.
function fromHost(e) {
  const p = e !== null && typeof e === 'object' ? e.payload : undefined;
  if (p !== null && typeof p === 'object' && typeof p.tag === 'string') {
    return new FlowhostError(p.tag, String(p.val));
  }
  return e;
}

function host(call) {
  try {
    return call();
  } catch (e) {
    throw fromHost(e);
  }
}

function invalid(message) {
  return new FlowhostError('invalid-input', message);
}

// ---------------------------------------------------------------------------------------------
// Values crossing the WIT boundary

function toJson(value, what) {
  let text;
  try {
    text = JSON.stringify(value);
  } catch (e) {
    throw invalid(`${what}: ${e.message}`);
  }
  if (text === undefined) throw invalid(`${what}: ${typeof value} is not JSON`);
  return text;
}

function fromJson(text, what) {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw invalid(`${what}: ${e.message}`);
  }
}

function u32(value, what) {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw invalid(`${what}: ${value} is not an integer from 0 to 4294967295`);
  }
  return value;
}

const U64_MAX = 18446744073709551615n;

function u64(value, what) {
  if (typeof value === 'bigint' && value >= 0n && value <= U64_MAX) return value;
  if (Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  throw invalid(`${what}: ${value} is not a non-negative integer`);
}

function count(value, what) {
  if (typeof value === 'bigint' && value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new FlowhostError('limit-exceeded', `${what}: ${value} is past 2^53 - 1`);
  }
  return Number(value);
}

function key(value, what) {
  if (typeof value === 'string') return value;
  if (Number.isSafeInteger(value)) return String(value);
  throw invalid(`${what}: key ${value} is not a string or an integer row id`);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function bytes(value, what) {
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string') return encoder.encode(value);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  throw invalid(`${what}: expected a string or a Uint8Array`);
}

// ---------------------------------------------------------------------------------------------
// Child flows

/** Runs flow `name` with `input` as a child of this run; returns its decoded output. */
export function call(name, input = {}) {
  const output = host(() => witFlows.call(name, toJson(input, `input for flow ${name}`)));
  return fromJson(output, `output of flow ${name}`);
}

/**
 * Runs flow `name` once per item, at most `concurrency` at a time (0 counts as 1). Results in
 * input order: `{ok: true, value}` or `{ok: false, error}` (the child's error text). Throws
 * only when the flow cannot be called at all (not granted, unknown, too deep, too many items).
 */
export function forEach(name, items, concurrency = 1) {
  const inputs = Array.from(items, (item, i) => toJson(item, `item ${i + 1} for flow ${name}`));
  const limit = Math.max(1, u32(concurrency, 'forEach concurrency'));
  const results = host(() => witFlows.forEach(name, inputs, limit));
  return results.map((r) => {
    if (r.tag !== 'ok') return { ok: false, error: String(r.val) };
    try {
      return { ok: true, value: JSON.parse(r.val) };
    } catch (e) {
      return { ok: false, error: `invalid output of flow ${name}: ${e.message}` };
    }
  });
}

/**
 * `forEach` where every item must succeed: the outputs, or a FlowhostError `other: flow NAME
 * failed on item I of N: TEXT` for the first failure.
 */
export function forEachAll(name, items, concurrency = 1) {
  const results = forEach(name, items, concurrency);
  return results.map((r, i) => {
    if (r.ok) return r.value;
    throw new FlowhostError(
      'other',
      `flow ${name} failed on item ${i + 1} of ${results.length}: ${r.error}`,
    );
  });
}

// ---------------------------------------------------------------------------------------------
// Tables: rows are objects keyed by column name; a keyless table's rows carry `_id`.

export const tables = Object.freeze({
  /** The row with key `key`, or null. */
  get(table, rowKey) {
    const row = host(() => witTables.get(table, key(rowKey, `table ${table}`)));
    return row === undefined || row === null ? null : fromJson(row, `row of table ${table}`);
  },
  /** Rows matching every `column: value` of `filter`, oldest first, at most `limit`. */
  find(table, filter = {}, limit = undefined) {
    const max = limit === undefined || limit === null ? undefined : u32(limit, 'find limit');
    const filterJson = toJson(filter, `filter for table ${table}`);
    return fromJson(
      host(() => witTables.find(table, filterJson, max)),
      `rows of table ${table}`,
    );
  },
  /** The oldest row matching `filter`, or null. */
  first(table, filter = {}) {
    return tables.find(table, filter, 1)[0] ?? null;
  },
  /** Inserts one row; fails (`invalid-input`) if the key exists. Returns the row's key. */
  insert(table, row) {
    const json = toJson(row, `row for table ${table}`);
    return host(() => witTables.insert(table, json));
  },
  /** Inserts an array of rows in one step; returns how many were written. */
  insertMany(table, rows) {
    const json = toJson(Array.from(rows), `rows for table ${table}`);
    return host(() => witTables.insertMany(table, json));
  },
  /** Inserts the row or replaces the one with the same key. Returns the row's key. */
  upsert(table, row) {
    const json = toJson(row, `row for table ${table}`);
    return host(() => witTables.upsert(table, json));
  },
  /** Sets the columns of `changes` on the row with `key`; false if there is none. */
  update(table, rowKey, changes) {
    const json = toJson(changes, `changes for table ${table}`);
    return host(() => witTables.update(table, key(rowKey, `table ${table}`), json));
  },
  /** Deletes the row with `key`; false if there was none. */
  delete(table, rowKey) {
    return host(() => witTables.delete(table, key(rowKey, `table ${table}`)));
  },
  /** Deletes the rows with these keys (at most 10,000 per call) in one step; returns how many
   * there were (WIT 0.1.1). */
  deleteMany(table, keys) {
    const list = Array.from(keys, (k) => key(k, `table ${table}`));
    return count(
      host(() => witTables.deleteMany(table, list)),
      `rows deleted from ${table}`,
    );
  },
  /** Deletes every row; returns how many. */
  clear(table) {
    return count(
      host(() => witTables.clear(table)),
      `rows cleared from ${table}`,
    );
  },
  /** How many rows match `filter` (`{}` = all). */
  count(table, filter = {}) {
    const json = toJson(filter, `filter for table ${table}`);
    return count(
      host(() => witTables.count(table, json)),
      `row count of ${table}`,
    );
  },
  /** The key of a row of a table without a key column (its `_id`), as text. */
  rowId(row) {
    const id = row === null || row === undefined ? undefined : row._id;
    return typeof id === 'string' || typeof id === 'number' ? String(id) : null;
  },
});

// ---------------------------------------------------------------------------------------------
// HTTP

/** An HTTP response: any status. Header names are lower-case. */
export class Response {
  constructor(status, headers, body) {
    this.status = status;
    this.headers = headers;
    this.body = body;
  }

  /** True for a 2xx status. */
  get ok() {
    return this.status >= 200 && this.status < 300;
  }

  /** The first value of header `name` (case-insensitive), or null. */
  header(name) {
    const lower = name.toLowerCase();
    const found = this.headers.find(([k]) => k.toLowerCase() === lower);
    return found ? found[1] : null;
  }

  /** Every value of header `name` (case-insensitive), in order. */
  headerAll(name) {
    const lower = name.toLowerCase();
    return this.headers.filter(([k]) => k.toLowerCase() === lower).map(([, v]) => v);
  }

  /** The body as text (invalid UTF-8 replaced). */
  text() {
    return decoder.decode(this.body);
  }

  /** The body decoded as JSON. */
  json() {
    return fromJson(this.text(), `HTTP ${this.status} response body`);
  }
}

function headerPairs(headers) {
  if (headers === undefined || headers === null) return [];
  const pairs = Array.isArray(headers) ? headers : Object.entries(headers);
  return pairs.map(([k, v]) => [String(k), String(v)]);
}

function witRequest(req) {
  if (req === null || typeof req !== 'object' || typeof req.url !== 'string') {
    throw invalid('HTTP request: expected an object with a `url` string');
  }
  const headers = headerPairs(req.headers);
  let body;
  if (req.json !== undefined) {
    body = encoder.encode(toJson(req.json, 'HTTP request body'));
    if (!headers.some(([k]) => k.toLowerCase() === 'content-type')) {
      headers.push(['Content-Type', 'application/json']);
    }
  } else if (req.body !== undefined && req.body !== null) {
    body = bytes(req.body, 'HTTP request body');
  }
  let retry;
  if (req.retry !== undefined && req.retry !== null) {
    const { attempts, initialMs, maxMs } = req.retry;
    retry = {
      maxAttempts: u32(attempts, 'HTTP retry attempts'),
      initialBackoffMs: u32(initialMs ?? 500, 'HTTP retry initialMs'),
      maxBackoffMs: u32(maxMs ?? 8000, 'HTTP retry maxMs'),
    };
  }
  return {
    method: String(req.method ?? 'GET').toUpperCase(),
    url: req.url,
    headers,
    body,
    timeoutMs: req.timeoutMs === undefined ? undefined : u32(req.timeoutMs, 'HTTP timeoutMs'),
    retry,
  };
}

function withMethod(method) {
  return (url, options = {}) => http.send({ ...options, method, url });
}

export const http = Object.freeze({
  /**
   * Sends a request to a host the manifest grants:
   * `{method, url, headers, json | body, timeoutMs, retry: {attempts, initialMs, maxMs}}`.
   * Any status is a Response; transport failures, denial, limits and timeouts throw.
   */
  send(request) {
    const req = witRequest(request);
    const r = host(() => witHttp.send(req));
    return new Response(r.status, r.headers, r.body);
  },
  /** Starts a GET (or HEAD) now for this flow's next run (`http.prefetch` in the WIT). */
  prefetch(request) {
    const req = witRequest(request);
    host(() => witHttp.prefetch(req));
  },
  get: withMethod('GET'),
  post: withMethod('POST'),
  put: withMethod('PUT'),
  patch: withMethod('PATCH'),
  delete: withMethod('DELETE'),
});

// ---------------------------------------------------------------------------------------------
// Secrets, logging, time

export const secrets = Object.freeze({
  /** The value of a secret the manifest grants. */
  get(name) {
    return host(() => witSecrets.get(name));
  },
});

function logAt(level) {
  return (message) =>
    witLog.log(level, typeof message === 'string' ? message : toJson(message, 'log message'));
}

export const log = Object.freeze({
  trace: logAt('trace'),
  debug: logAt('debug'),
  info: logAt('info'),
  warn: logAt('warn'),
  error: logAt('error'),
});

export const schedule = Object.freeze({
  /** The current time, RFC 3339 in UTC with millisecond precision. */
  now() {
    return witSchedule.now();
  },
  /** Sleeps `ms` milliseconds (counts against the run's deadline). */
  sleep(ms) {
    witSchedule.sleep(u64(ms, 'sleep ms'));
  },
  /** Asks the host to run `flowName` with `input` after `delayMs` (0: once this run commits). */
  requestRun(flowName, input = {}, delayMs = 0) {
    const json = toJson(input, `input for flow ${flowName}`);
    const delay = u64(delayMs, 'requestRun delayMs');
    host(() => witSchedule.requestRun(flowName, json, delay));
  },
});

// ---------------------------------------------------------------------------------------------
// Blobs, cache, grants

export const blobs = Object.freeze({
  /** Writes `data` (a string or a Uint8Array) as object `key` of `store`. */
  put(store, name, data) {
    const b = bytes(data, `blob ${name}`);
    host(() => witBlobs.put(store, name, b));
  },
  /** The object's bytes (a Uint8Array), or null. */
  get(store, name) {
    return host(() => witBlobs.get(store, name)) ?? null;
  },
  /** Names of the objects whose name starts with `prefix`, sorted, at most `limit`. */
  list(store, prefix = '', limit = 1000) {
    const max = u32(limit, 'blobs.list limit');
    return host(() => witBlobs.list(store, prefix, max));
  },
  /** Deletes the object; false if there was none. */
  delete(store, name) {
    return host(() => witBlobs.delete(store, name));
  },
});

export const cache = Object.freeze({
  /** The string under `key`, or null when absent or expired. */
  get(name) {
    return witCache.get(name) ?? null;
  },
  /** Stores the string `value` under `key` for `ttlMs` milliseconds. */
  set(name, value, ttlMs) {
    witCache.set(name, String(value), u64(ttlMs, 'cache ttlMs'));
  },
  /** Forgets `key`. */
  remove(name) {
    witCache.remove(name);
  },
});

export const grants = Object.freeze({
  /** Returns when every `[flow, url]` is allowed by that flow's grants; throws otherwise. */
  grantedUrls(checks) {
    const pairs = Array.from(checks, ([f, u]) => [String(f), String(u)]);
    host(() => witGrants.grantedUrls(pairs));
  },
});

// ---------------------------------------------------------------------------------------------
// The entry point

/** The text a run fails with for a thrown value. */
export function errorText(e) {
  if (e instanceof FlowhostError || e instanceof FlowError) return e.toString();
  const h = fromHost(e);
  if (h instanceof FlowhostError) return h.toString();
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  if (typeof e === 'string') return e;
  try {
    return JSON.stringify(e) ?? String(e);
  } catch {
    return String(e);
  }
}

/**
 * Wraps `handler(input) => output` as the flow's `run`: `export const run = flow(handler)`.
 * The input is decoded from JSON (`{}` when empty; bad JSON fails the run with `invalid input
 * for flow: …`), the output encoded (`undefined` as `null`). A thrown FlowhostError ends the
 * run with `kind: message`, a FlowError with its message, any other error with its name and
 * message. With `{raw: true}` the handler gets and returns the JSON text untouched.
 */
export function flow(handler, options = {}) {
  const raw = options.raw === true;
  return function run(inputText) {
    // componentize-js turns a thrown string into `run`'s `err` (a thrown Error would trap).
    let input;
    if (raw) {
      input = inputText;
    } else {
      const text = inputText.trim() === '' ? '{}' : inputText;
      try {
        input = JSON.parse(text);
      } catch (e) {
        throw `invalid input for flow: ${e.message}`;
      }
    }
    let output;
    try {
      output = handler(input);
    } catch (e) {
      throw errorText(e);
    }
    if (output !== null && typeof output === 'object' && typeof output.then === 'function') {
      throw 'invalid output of flow: the handler returned a Promise (host calls are synchronous: write it without async)';
    }
    if (raw) {
      if (typeof output !== 'string') throw 'invalid output of flow: a raw flow returns text';
      return output;
    }
    try {
      return JSON.stringify(output) ?? 'null';
    } catch (e) {
      throw `invalid output of flow: ${e.message}`;
    }
  };
}
