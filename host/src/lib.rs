//! flowhost: runs Okta-Workflows-style flows compiled to WebAssembly components.
//!
//! A flow is a component (`NAME.wasm`) with a manifest (`NAME.yaml`) that grants it hosts,
//! tables, other flows and secrets. The host gives it those capabilities through the WIT
//! package `flowhost:flow@0.1.3` (`wit/flow.wit`; versioning: docs/versioning.md) and runs it
//! from the CLI or a schedule.
//! Every top-level run commits its table writes (its children's included) atomically.
//!
//! Module map:
//!
//! | module | owns |
//! |---|---|
//! | [`allocator`] | the process allocator's settings (mimalloc's purge delay) |
//! | [`config`] | the config file, defaults, and assembling a [`runtime::Runtime`] |
//! | [`database`] | which database `db:` names (SQLite file or PostgreSQL URL) and opening it for a process |
//! | [`paths`] | where the config file is found and where state goes (`--state-dir`, XDG) |
//! | [`pg`] | PostgreSQL URLs (shown without password), TLS as `sslmode` says ([`pg::tls`]), a pool of connections, waiting for them |
//! | [`manifest`] | flow manifests: parsing, grants, host patterns, durations and sizes |
//! | [`registry`] | which flows exist, load errors, grant checks against tables and flows |
//! | [`package`] | the ASA package built into the binary: the lowest-priority flows and tables |
//! | [`engine`] | wasmtime: pooling allocator, epochs, bindings, compile cache, one invocation |
//! | [`runtime`] | top-level runs (one transaction each), child calls, limits |
//! | [`memo`] | what the host remembers of pure flows' calls: within a run, and across runs checked against what they read |
//! | [`budget`] | one run's budget for what the host buffers for it (`run_memory:`) |
//! | [`scheduler`] | `serve`: schedules, overlap, exclusive groups, catch-up, reload, shutdown |
//! | [`launch`] | runs `serve`'s listener starts itself (API, console), handed to the scheduler |
//! | [`caps`] | the capabilities: http, tables, flows, schedule, secrets, blobs, cache, log, grants |
//! | [`schema`] | table schemas (`tables/*.yaml`) and row validation |
//! | [`store`] | tables behind a backend seam ([`store::backend`]): errors, the `Store`/`Txn` wrappers, export/import, upserts checked once and queued (`store/upsert.rs`); SQLite in [`store::sqlite`] (connections, value mapping, migration, units of work, checkpoints), PostgreSQL in [`store::postgres`] |
//! | [`walvfs`] | the SQLite VFS that gathers a commit's WAL writes into large writes |
//! | [`json`] | strict JSON for rows and inputs: a repeated field is refused |
//! | [`lease`] | leases: one `serve` per SQLite database and exclusive groups (files beside it), or a cluster's advisory locks |
//! | [`cluster`] | several `serve` nodes on one PostgreSQL database: nodes, ticks, groups |
//! | [`history`] | run history behind a backend seam ([`history::backend`]): records, caps, the `History` wrapper; SQLite in [`history::sqlite`], PostgreSQL in [`history::postgres`] |
//! | [`switches`] | flows switched on and off for `serve` (`flow enable|disable`), beside history |
//! | [`rate_limits`] | the rate-limit figures servers last sent, per origin, beside history |
//! | [`status`] | the status snapshot: per flow and for the ASA package (`flowhost status`) |
//! | [`secrets`] | secret values from the environment and the 0600 secrets file |
//! | [`redact`] | every form a secret can take (raw, JSON, percent-encoded, base64), replaced |
//! | [`logging`] | log levels, text or JSON lines, colours (`--log-format`, `-q`, `NO_COLOR`) |
//! | [`notify`] | systemd's `sd_notify`: ready, watchdog, stopping |
//! | [`reload`] | SIGHUP in `serve`: the config file read again, what of it changes live |
//! | [`terminal`] | what the binary writes to stderr: log lines and errors, redacted and escaped |
//! | [`cron`] | cron lines with time zones |
//! | [`export`] | CSV / JSON-lines export and import of tables |
//! | [`progress`] | progress display on a terminal |
//! | [`yaml`] | the one place YAML is parsed |
//! | [`check`] | `flowhost check`: config, schemas, manifests, secrets, ASA grants; `--connect` |
//! | [`listener`] | `serve`'s HTTP listener: `/healthz`, `/readyz`, `/metrics` (axum) |
//! | [`console`] | `serve`'s web console: flows, runs, tables, ASA pages; who may open it |
//! | [`metrics`] | the Prometheus metrics `/metrics` shows (prometheus-client) |
//! | [`watch`] | what `serve`'s scheduler tells the listener: heartbeat, stop, each run's end |
//! | [`scaffold`] | `flowhost new` / `flowhost build`: flow projects in Rust, Python and JavaScript (templates and SDKs embedded), building and checking them, installing into a flows folder |
//! | [`api`] | API endpoint flows on the listener: invoke, runs, OpenAPI, client tokens |
//! | [`client_addr`] | who a listener request comes from: the peer, or `X-Forwarded-For` from `trusted_proxies` |
//! | [`throttle`] | token guesses per client address: the console's log-ins, wrong API and Bearer tokens |

pub mod allocator;
pub mod api;
pub mod budget;
pub mod caps;
pub mod check;
pub mod client_addr;
pub mod cluster;
pub mod config;
pub mod console;
pub mod cron;
pub mod database;
pub mod engine;
pub mod export;
pub mod history;
pub mod json;
pub mod launch;
pub mod lease;
pub mod listener;
pub mod logging;
pub mod manifest;
pub mod memo;
pub mod metrics;
pub mod notify;
pub mod package;
pub mod paths;
pub mod pg;
pub mod progress;
pub mod rate_limits;
pub mod redact;
pub mod registry;
pub mod reload;
pub mod runtime;
pub mod scaffold;
pub mod scheduler;
pub mod schema;
pub mod secrets;
pub mod status;
pub mod store;
pub mod switches;
pub mod terminal;
pub mod throttle;
pub mod walvfs;
pub mod watch;
pub mod yaml;
