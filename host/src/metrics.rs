//! The metrics `serve` exposes on `GET /metrics`, with `prometheus-client` (the Prometheus
//! project's Rust client), in the OpenMetrics text format that Prometheus scrapes.
//!
//! Two kinds of figures:
//! - counted by this `serve` as its runs end ([`Metrics::record_run`], through
//!   [`crate::watch::Watch`]): `flowhost_runs_total{flow, status}` and
//!   `flowhost_run_duration_seconds{flow}` (a histogram);
//! - read at each scrape from the status snapshot ([`crate::status`]), so they are right
//!   whoever wrote the database (another `flowhost run`, an import): per flow
//!   `flowhost_last_success_timestamp_seconds`, per table `flowhost_table_rows`, and for the
//!   ASA package `flowhost_asa_events_stored`, `flowhost_asa_checkpoint_lag_seconds`,
//!   `flowhost_asa_rejected_events` and, per origin, `flowhost_asa_rate_limit_remaining`;
//! - counted by the API routes ([`crate::api`]) as they answer:
//!   `flowhost_api_requests_total{flow, code}`, where `flow` is the name of an API endpoint
//!   flow or `""` for anything else (so a scanner's made-up names cannot grow the label set).

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::history::RunStatus;

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the run duration buckets, in seconds: 10 ms to about 20 minutes.
const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1200.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    flow: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlowLabel {
    flow: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabel {
    table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OriginLabel {
    origin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    flow: String,
    code: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// Every metric, registered once.
pub struct Metrics {
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    duration: Family<FlowLabel, Histogram, fn() -> Histogram>,
    last_success: Family<FlowLabel, FloatGauge>,
    table_rows: Family<TableLabel, Gauge>,
    events_stored: Gauge,
    lag: FloatGauge,
    rate_limit_remaining: Family<OriginLabel, Gauge>,
    rejected_events: Gauge,
    api_requests: Family<ApiLabels, Counter>,
    /// One scrape at a time: a scrape clears and sets the snapshot figures, then encodes.
    scrape: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let runs = Family::<RunLabels, Counter>::default();
        registry.register(
            "flowhost_runs",
            "Runs started by this serve that ended, by flow and status (ok, error, timeout, skipped)",
            runs.clone(),
        );
        let duration = Family::<FlowLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        registry.register(
            "flowhost_run_duration_seconds",
            "How long the runs this serve started took, by flow",
            duration.clone(),
        );
        let last_success = Family::<FlowLabel, FloatGauge>::default();
        registry.register(
            "flowhost_last_success_timestamp_seconds",
            "When each flow's last successful run ended (unix seconds), from run history",
            last_success.clone(),
        );
        let table_rows = Family::<TableLabel, Gauge>::default();
        registry.register(
            "flowhost_table_rows",
            "Rows in each table",
            table_rows.clone(),
        );
        let events_stored = Gauge::default();
        registry.register(
            "flowhost_asa_events_stored",
            "ASA audit events stored (rows of Audit Events)",
            events_stored.clone(),
        );
        let lag = FloatGauge::default();
        registry.register(
            "flowhost_asa_checkpoint_lag_seconds",
            "How far the newest stored ASA audit event is behind now, in seconds",
            lag.clone(),
        );
        let rate_limit_remaining = Family::<OriginLabel, Gauge>::default();
        registry.register(
            "flowhost_asa_rate_limit_remaining",
            "Requests left in ASA's rate-limit window, as its last response said (X-RateLimit-Remaining)",
            rate_limit_remaining.clone(),
        );
        let rejected_events = Gauge::default();
        registry.register(
            "flowhost_asa_rejected_events",
            "ASA audit events that could not be stored and are in Rejected Events (its rows)",
            rejected_events.clone(),
        );
        let api_requests = Family::<ApiLabels, Counter>::default();
        registry.register(
            "flowhost_api_requests",
            "Requests to the API routes, by API endpoint flow (\"\" for any other name) and HTTP status code",
            api_requests.clone(),
        );
        Metrics {
            registry,
            runs,
            duration,
            last_success,
            table_rows,
            events_stored,
            lag,
            rate_limit_remaining,
            rejected_events,
            api_requests,
            scrape: Mutex::new(()),
        }
    }
}

impl Metrics {
    /// Counts a run of `flow` that ended with `status` after `elapsed` (`None`: not run).
    pub fn record_run(&self, flow: &str, status: RunStatus, elapsed: Option<Duration>) {
        let labels = RunLabels {
            flow: flow.to_string(),
            status: status.as_str().to_string(),
        };
        self.runs.get_or_create(&labels).inc();
        if let Some(d) = elapsed {
            let flow = FlowLabel {
                flow: flow.to_string(),
            };
            self.duration.get_or_create(&flow).observe(d.as_secs_f64());
        }
    }

    /// Counts an API request about `flow` (an API endpoint flow's name, or `""`) answered
    /// with `code`.
    pub fn record_api(&self, flow: &str, code: u16) {
        let labels = ApiLabels {
            flow: flow.to_string(),
            code: code.to_string(),
        };
        self.api_requests.get_or_create(&labels).inc();
    }

    /// The text of every metric, with the snapshot figures set from `snapshot` first.
    pub fn encode(&self, snapshot: &Snapshot) -> Result<String, std::fmt::Error> {
        let _one = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        self.last_success.clear();
        for (flow, at) in &snapshot.last_success {
            self.last_success
                .get_or_create(&FlowLabel { flow: flow.clone() })
                .set(*at);
        }
        self.table_rows.clear();
        for (table, rows) in &snapshot.table_rows {
            self.table_rows
                .get_or_create(&TableLabel {
                    table: table.clone(),
                })
                .set(i64::try_from(*rows).unwrap_or(i64::MAX));
        }
        self.events_stored
            .set(i64::try_from(snapshot.events_stored.unwrap_or(0)).unwrap_or(i64::MAX));
        self.rejected_events
            .set(i64::try_from(snapshot.rejected_events.unwrap_or(0)).unwrap_or(i64::MAX));
        // NaN: no stored event, so no lag to tell.
        self.lag.set(snapshot.lag_seconds.unwrap_or(f64::NAN));
        self.rate_limit_remaining.clear();
        for (origin, remaining) in &snapshot.rate_limit_remaining {
            self.rate_limit_remaining
                .get_or_create(&OriginLabel {
                    origin: origin.clone(),
                })
                .set(*remaining);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// The figures read at each scrape (from [`crate::status`]).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Per flow, when its last successful run ended (unix seconds).
    pub last_success: Vec<(String, f64)>,
    pub table_rows: Vec<(String, u64)>,
    pub events_stored: Option<u64>,
    pub lag_seconds: Option<f64>,
    /// Per origin, `X-RateLimit-Remaining`.
    pub rate_limit_remaining: Vec<(String, i64)>,
    /// Rows of Rejected Events.
    pub rejected_events: Option<u64>,
}
