//! Progress display for long CLI work (`run --until-idle`, table export): an `indicatif`
//! spinner on standard error when it is a terminal, nothing otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::runtime::RunReport;

/// Counts runs (and the `events` a flow reports in its output, if any) while draining.
pub struct RunProgress {
    bar: Option<ProgressBar>,
    runs: std::cell::Cell<u64>,
    events: std::cell::Cell<u64>,
}

impl RunProgress {
    pub fn new(flow: &str) -> RunProgress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} {prefix} [{elapsed_precise}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.set_prefix(flow.to_string());
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        RunProgress {
            bar,
            runs: Default::default(),
            events: Default::default(),
        }
    }

    pub fn record(&self, report: &RunReport) {
        self.runs.set(self.runs.get() + 1);
        let events = report
            .output
            .as_deref()
            .and_then(|o| serde_json::from_str::<serde_json::Value>(o).ok())
            .and_then(|v| v.get("events").and_then(|e| e.as_u64()));
        if let Some(n) = events {
            self.events.set(self.events.get() + n);
        }
        if let Some(b) = &self.bar {
            let rate = self.events.get() as f64 / b.elapsed().as_secs_f64().max(0.001);
            b.set_message(format!(
                "{} runs, {} events ({rate:.0}/s)",
                self.runs.get(),
                self.events.get()
            ));
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}

/// A bar over `len` rows on standard error when it is a terminal.
pub fn rows_bar(len: u64, what: &str) -> Option<ProgressBar> {
    std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new(len);
        b.set_style(
            ProgressStyle::with_template(
                "{prefix} {bar:40} {pos}/{len} rows [{elapsed_precise}, eta {eta}]",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b.set_prefix(what.to_string());
        b
    })
}
