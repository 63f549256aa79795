// Types of flowhost.js, the flowhost SDK for JavaScript flows (docs/javascript.md).

/** Any JSON value: what inputs, outputs, rows and filters are. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
/** A table row: columns by name (`_id` for a table without a key column). */
export type Row = { [column: string]: Json };

/** The cases of the WIT `error` variant. */
export type ErrorKind =
  | 'not-found'
  | 'access-denied'
  | 'invalid-input'
  | 'limit-exceeded'
  | 'timeout'
  | 'other';

export const ERROR_KINDS: readonly ErrorKind[];

/** A host call failed. `String(e)` is `"kind: message"`, the text an uncaught one ends the run with. */
export class FlowhostError extends Error {
  constructor(kind: ErrorKind, message: string);
  readonly kind: ErrorKind;
}

/** A flow's own failure: the run fails with exactly `message`. */
export class FlowError extends Error {
  constructor(message: string);
}

/** The text a run fails with for a thrown value. */
export function errorText(e: unknown): string;

/**
 * The flow's entry point: `export const run = flow((input) => output)`. Input decoded from
 * JSON (`{}` when empty), output encoded. With `{raw: true}` the handler gets and returns text.
 * Synchronous: host calls are synchronous, a returned Promise fails the run.
 */
export function flow<I = any, O = Json>(handler: (input: I) => O): (input: string) => string;
export function flow(handler: (input: string) => string, options: { raw: true }): (input: string) => string;

/** Runs flow `name` with `input` as a child of this run; its decoded output. */
export function call<O = any>(name: string, input?: unknown): O;

export type ItemResult<O> = { ok: true; value: O } | { ok: false; error: string };
/** Runs flow `name` once per item, at most `concurrency` at a time; results in input order. */
export function forEach<O = any>(name: string, items: Iterable<unknown>, concurrency?: number): ItemResult<O>[];
/** `forEach` where every item must succeed (else `other: flow NAME failed on item I of N: …`). */
export function forEachAll<O = any>(name: string, items: Iterable<unknown>, concurrency?: number): O[];

/** A key: text, or a keyless table's integer `_id`. */
export type Key = string | number;

export const tables: {
  get<R = Row>(table: string, key: Key): R | null;
  find<R = Row>(table: string, filter?: Row, limit?: number): R[];
  first<R = Row>(table: string, filter?: Row): R | null;
  insert(table: string, row: Row): string;
  insertMany(table: string, rows: Iterable<Row>): number;
  upsert(table: string, row: Row): string;
  update(table: string, key: Key, changes: Row): boolean;
  delete(table: string, key: Key): boolean;
  deleteMany(table: string, keys: Iterable<Key>): number;
  clear(table: string): number;
  count(table: string, filter?: Row): number;
  rowId(row: Row | null | undefined): string | null;
};

export type Headers = { [name: string]: string } | [string, string][];

export interface Request {
  method?: string;
  url: string;
  headers?: Headers;
  /** A JSON body (sets `Content-Type: application/json` unless given). */
  json?: unknown;
  /** A raw body, when there is no `json`. */
  body?: string | Uint8Array | ArrayBuffer;
  /** Per-attempt timeout (the host's default, 30 s, otherwise). */
  timeoutMs?: number;
  /** Host-side retries: attempts in all, backoff from initialMs (500) to maxMs (8000). */
  retry?: { attempts: number; initialMs?: number; maxMs?: number };
}

export class Response {
  readonly status: number;
  /** Lower-case names, in order. */
  readonly headers: [string, string][];
  readonly body: Uint8Array;
  readonly ok: boolean;
  header(name: string): string | null;
  headerAll(name: string): string[];
  text(): string;
  json<T = any>(): T;
}

type Send = (url: string, options?: Omit<Request, 'url' | 'method'>) => Response;

export const http: {
  send(request: Request): Response;
  prefetch(request: Request): void;
  get: Send;
  post: Send;
  put: Send;
  patch: Send;
  delete: Send;
};

export const secrets: { get(name: string): string };

type Log = (message: string | Json) => void;
export const log: { trace: Log; debug: Log; info: Log; warn: Log; error: Log };

export const schedule: {
  /** RFC 3339, UTC, milliseconds. */
  now(): string;
  sleep(ms: number | bigint): void;
  requestRun(flow: string, input?: unknown, delayMs?: number | bigint): void;
};

export const blobs: {
  put(store: string, key: string, data: string | Uint8Array | ArrayBuffer): void;
  get(store: string, key: string): Uint8Array | null;
  list(store: string, prefix?: string, limit?: number): string[];
  delete(store: string, key: string): boolean;
};

export const cache: {
  get(key: string): string | null;
  set(key: string, value: string, ttlMs: number | bigint): void;
  remove(key: string): void;
};

export const grants: {
  grantedUrls(checks: Iterable<[string, string]>): void;
};
