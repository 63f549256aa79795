//! The binary's log lines: which levels show (`-v`, `-q`, `RUST_LOG`), text or JSON lines
//! (`--log-format`), and colours. Every line goes through a [`Terminal`], whatever the format:
//! secrets redacted, control characters escaped.
//!
//! What was decided:
//! - **JSON lines** are tracing-subscriber's JSON format, one object a line: `timestamp`
//!   (RFC 3339), `level`, `fields` (the event's fields, its text in `fields.message`) and
//!   `target`. A log shipper (Vector, Filebeat, journald's JSON) reads them as they are.
//! - **Colours** only when stderr is a terminal and `NO_COLOR` is unset or empty (JSON lines
//!   never have any); a pipe, a file or journald gets plain text.
//! - **A failed run is reported even with `-q`**: the runtime logs a run's outcome under the
//!   target [`OUTCOME_TARGET`], which `-q` keeps at `warn` while everything else is at `error`.

use std::io::IsTerminal;

use crate::terminal::Terminal;

/// The target of the "run ok" / "run failed" lines (see the module doc).
pub const OUTCOME_TARGET: &str = "flowhost::outcome";

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text an event: time, level, message, fields.
    #[default]
    Text,
    /// One JSON object a line: timestamp, level, fields (with the message), target.
    Json,
}

/// What the command line asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogOptions {
    pub format: LogFormat,
    /// `-v` count (plus one for `serve`, whose log is its output).
    pub verbose: u8,
    /// `-q`: errors and failed runs only.
    pub quiet: bool,
}

/// The level filter: `RUST_LOG` if set, else from `-v` / `-q`.
pub fn filter(opts: &LogOptions) -> tracing_subscriber::EnvFilter {
    let default = match (opts.quiet, opts.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "{default},{OUTCOME_TARGET}={},cranelift=warn,wasmtime=warn",
            if opts.quiet { "warn" } else { default }
        ))
    })
}

/// Whether text log lines may be coloured: stderr is a terminal and `NO_COLOR` is unset or
/// empty (<https://no-color.org>).
pub fn colours_wanted() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber writing to `terminal` (whose own lines, errors included,
/// become JSON objects too with `--log-format json`).
pub fn init(terminal: &Terminal, opts: &LogOptions) {
    terminal.set_json(opts.format == LogFormat::Json);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(opts))
        .with_target(false);
    match opts.format {
        LogFormat::Json => builder
            .json()
            .with_target(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_ansi(false)
            .with_writer(terminal.clone())
            .init(),
        LogFormat::Text if colours_wanted() => builder
            .fmt_fields(crate::terminal::escaping_fields())
            .with_ansi(true)
            .with_writer(terminal.coloured())
            .init(),
        LogFormat::Text => builder
            .with_ansi(false)
            .with_writer(terminal.clone())
            .init(),
    }
}
