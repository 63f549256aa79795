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

/// The WebAssembly engine's crates: their debug and trace lines (the compiler's, one per
/// instruction: a million for one component) would drown flowhost's own, so they stay at warn
/// unless `RUST_LOG` names them.
const ENGINE_TARGETS: [&str; 3] = ["cranelift", "wasmtime", "regalloc2"];

/// The level filter: `RUST_LOG` if set (and valid), else from `-v` / `-q`.
pub fn filter(opts: &LogOptions) -> tracing_subscriber::EnvFilter {
    filter_from(std::env::var("RUST_LOG").ok().as_deref(), opts)
}

/// [`filter`] for the `RUST_LOG` value `rust_log`.
fn filter_from(rust_log: Option<&str>, opts: &LogOptions) -> tracing_subscriber::EnvFilter {
    let engine_quiet = |spec: &str| {
        ENGINE_TARGETS
            .iter()
            .filter(|t| !spec.contains(*t))
            .map(|t| format!(",{t}=warn"))
            .collect::<String>()
    };
    if let Some(spec) = rust_log.map(str::trim).filter(|s| !s.is_empty()) {
        if let Ok(f) =
            tracing_subscriber::EnvFilter::try_new(format!("{spec}{}", engine_quiet(spec)))
        {
            return f;
        }
    }
    let default = match (opts.quiet, opts.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let outcome = if opts.quiet { "warn" } else { default };
    tracing_subscriber::EnvFilter::new(format!(
        "{default},{OUTCOME_TARGET}={outcome}{}",
        engine_quiet("")
    ))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn directives(rust_log: Option<&str>) -> String {
        filter_from(rust_log, &LogOptions::default()).to_string()
    }

    #[test]
    fn the_engine_stays_at_warn_unless_rust_log_names_it() {
        let all = directives(Some("trace"));
        for t in ENGINE_TARGETS {
            assert!(all.contains(&format!("{t}=warn")), "{all}");
        }
        let named = directives(Some("info,wasmtime=debug"));
        assert!(named.contains("wasmtime=debug"), "{named}");
        assert!(!named.contains("wasmtime=warn"), "{named}");
        assert!(named.contains("cranelift=warn"), "{named}");
        // Unset, empty or unreadable: the -v / -q default, the engine at warn as well.
        for unset in [None, Some(""), Some("info,=no=such=")] {
            let d = directives(unset);
            assert!(
                d.contains("cranelift=warn") && d.contains("regalloc2=warn"),
                "{d}"
            );
            assert!(d.contains(&format!("{OUTCOME_TARGET}=warn")), "{d}");
        }
    }
}
