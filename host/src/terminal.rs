//! What the binary writes to the terminal: every formatted tracing line (a [`MakeWriter`] over
//! stderr) and every error it prints goes through a [`Terminal`], which redacts secrets
//! ([`crate::redact`]) and escapes control characters.
//!
//! What was decided:
//! - **One writer.** The tracing subscriber's writer buffers one event's formatted text and
//!   writes it redacted, so no log line at any level (a `debug` line with a URL, a flow's
//!   `trace` message) reaches stderr unredacted, whatever the code that emitted it forgot.
//!   The secrets are known only once the config is read: until then the terminal redacts the
//!   `FLOWHOST_SECRET_*` values of the environment, then [`Terminal::set_redactor`] gives it
//!   every secret.
//! - **Control characters.** Every control character (C0, DEL, C1; an event's text or a
//!   printed error is one line, so newline, CR and tab too) is written escaped
//!   (`\u{1b}`, `\r`, `\n`, `\t`): a flow's log message, an error text or a file name cannot move
//!   the cursor, recolour the terminal or forge a log line.
//! - **Colours.** Only on a terminal without `NO_COLOR` ([`crate::logging`]); then the writer
//!   lets the formatter's own colour codes through ([`Terminal::coloured`]) and every field's
//!   value is escaped before it is formatted ([`escaping_fields`]), so a flow's text still
//!   cannot colour anything.

use std::borrow::Cow;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use tracing_subscriber::fmt::MakeWriter;

use crate::redact::Redactor;

/// Redacting, escaping stderr (cloned handles share the redactor).
#[derive(Clone, Default)]
pub struct Terminal {
    redactor: Arc<RwLock<Arc<Redactor>>>,
    /// Log lines keep their control characters: the formatter's colours (field values are
    /// escaped by [`escaping_fields`] instead).
    coloured: bool,
    /// `--log-format json`: [`Terminal::eprintln`] writes a JSON log object.
    json: Arc<AtomicBool>,
}

impl Terminal {
    pub fn new(redactor: Arc<Redactor>) -> Terminal {
        Terminal {
            redactor: Arc::new(RwLock::new(redactor)),
            coloured: false,
            json: Arc::default(),
        }
    }

    /// The same terminal (same redactor) as a log writer that keeps the formatter's colour
    /// codes; use it only with [`escaping_fields`].
    pub fn coloured(&self) -> Terminal {
        Terminal {
            redactor: self.redactor.clone(),
            coloured: true,
            json: self.json.clone(),
        }
    }

    /// From now on, redacts `redactor`'s secrets.
    pub fn set_redactor(&self, redactor: Arc<Redactor>) {
        *self.redactor.write().unwrap_or_else(|p| p.into_inner()) = redactor;
    }

    fn redactor(&self) -> Arc<Redactor> {
        self.redactor
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `text` as it may be shown: secrets redacted, control characters escaped.
    pub fn clean(&self, text: &str) -> String {
        clean(&self.redactor(), text)
    }

    /// From now on, [`Terminal::eprintln`] writes JSON log lines (`--log-format json`).
    pub fn set_json(&self, on: bool) {
        self.json.store(on, Ordering::Relaxed);
    }

    /// Prints `text` cleaned, as one line on stderr (a closed stderr is ignored). With JSON
    /// logs, the line is a log object as tracing writes them: level `ERROR` for a text that
    /// starts with `error: `, else `INFO`, and the text as `fields.message`.
    pub fn eprintln(&self, text: &str) {
        let mut line = if self.json.load(Ordering::Relaxed) {
            let level = if text.starts_with("error: ") {
                "ERROR"
            } else {
                "INFO"
            };
            let object = serde_json::json!({
                "timestamp": crate::history::now_rfc3339(),
                "level": level,
                "fields": {"message": self.redactor().redact(text)},
                "target": "flowhost",
            });
            object.to_string()
        } else {
            self.clean(text)
        };
        line.push('\n');
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

fn clean(redactor: &Redactor, text: &str) -> String {
    escape_controls(&redactor.redact(text)).into_owned()
}

/// `text` with its control characters escaped (`\n`, `\r`, `\t`, `\u{1b}`, `\u{9b}`).
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

impl<'a> MakeWriter<'a> for Terminal {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> EventWriter {
        EventWriter {
            buf: Vec::new(),
            redactor: self.redactor(),
            escape: !self.coloured,
        }
    }
}

/// One tracing event's text; written cleaned to stderr when dropped.
pub struct EventWriter {
    buf: Vec<u8>,
    redactor: Arc<Redactor>,
    escape: bool,
}

impl Write for EventWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.buf);
        let line = text.strip_suffix('\n').unwrap_or(&text);
        let mut out = if self.escape {
            clean(&self.redactor, line)
        } else {
            self.redactor.redact(line).into_owned()
        };
        out.push('\n');
        let _ = std::io::stderr().lock().write_all(out.as_bytes());
    }
}

/// Text log fields whose values have their control characters escaped as they are formatted
/// (the message bare, other fields `name=value`), for a [`Terminal::coloured`] writer.
pub fn escaping_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> {
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let text = format!("{value:?}");
        let text = escape_controls(&text);
        if field.name() == "message" {
            write!(w, "{text}")
        } else {
            write!(w, "{field}={text}")
        }
    })
    .delimited(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls() {
        assert!(matches!(escape_controls("plain line"), Cow::Borrowed(_)));
        assert_eq!(
            escape_controls("a\u{1b}[2Jb\rc\nd\u{9b}e\u{7f}"),
            "a\\u{1b}[2Jb\\rc\\nd\\u{9b}e\\u{7f}"
        );
    }

    #[test]
    fn cleans_secrets_then_controls() {
        let t = Terminal::default();
        assert_eq!(t.clean("k=s3cr3t\u{1b}"), "k=s3cr3t\\u{1b}");
        t.set_redactor(Arc::new(Redactor::new(&["s3cr3t"]).unwrap()));
        assert_eq!(t.clean("k=s3cr3t\u{1b}"), "k=[REDACTED]\\u{1b}");
    }
}
