//! The status snapshot (`flowhost status`, and `serve`'s `/metrics` and `/readyz`): per flow,
//! whether `serve` runs it, its schedule, its last run and outcome, its consecutive failures,
//! its last success and its next tick; for the ASA package, how far collection has got.
//!
//! [`snapshot`] only reads: the registry, the run-history database and the table store, each
//! opened read-only by the caller (a missing database is passed as `None`: nothing ran yet).
//! It never waits for a writer and works while `serve` runs.
//!
//! Decisions:
//! - **Next tick** is what `serve` would compute ([`crate::scheduler::next_tick_at`]) from the
//!   schedule and the last scheduled tick in history; none for a disabled or unscheduled flow.
//!   While no `serve` runs, an overdue `every` flow shows as due now (a `serve` would run it at
//!   start).
//! - **Consecutive failures** count top-level runs ending `error` or `timeout` since the last
//!   `ok`; skipped ticks and running runs count neither way.
//! - **ASA package** (present only when the database has table [`AUDIT_EVENTS`]): the newest
//!   `timestamp` of Audit Events (the largest as text, served by its index: ASA writes RFC
//!   3339 in UTC), the lag of that behind `now` in whole seconds (0 if it is ahead), the rows of
//!   each ASA table the database has, and the rate-limit figures each origin last sent (see
//!   [`crate::rate_limits`]), the most recent first; and, on a line of its own, how many
//!   events M10 could not store and quarantined in [`REJECTED_EVENTS`] (docs/asa-rejected-events.md).
//! - **Several ASA teams** (two or more Environment Variables rows with a team): per team, the
//!   rows of Audit Events it owns (its `team`; rows from before teams existed are the default
//!   team's), its checkpoint (offset, how many events of that page are stored) and when the
//!   checkpoint was last written (`LastDateTime`: the last run that stored new events) and how
//!   long ago. The newest event per team would need a filtered `max` the store does not offer;
//!   the last write of the checkpoint says the same for a team that is collected. With one
//!   team the section is as it always was.
//! - **Cluster nodes** (only on a PostgreSQL database that nodes have joined: [`nodes`]):
//!   each node's id, host, pid, last heartbeat, whether it is alive (the server has a session
//!   of it) and the runs it said it has going at that heartbeat. A node that is gone shows
//!   `gone` and no runs: what it had going rolled back with its session.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::history::{History, RunStatus, Trigger};
use crate::rate_limits::RateLimitSeen;
use crate::registry::Registry;
use crate::store::{Store, StoreError, TableError};

/// The table whose newest row says how far collection has got.
pub const AUDIT_EVENTS: &str = "Audit Events";
/// The table of the events M10 could not store (issue 16.4).
pub const REJECTED_EVENTS: &str = "Rejected Events";
/// The ASA package's tables (rows counted when the database has them).
pub const ASA_TABLES: [&str; 6] = [
    "Audit Events",
    "Audit Related Objects",
    "Audit Checkpoints",
    "Environment Variables",
    "Execution Log",
    REJECTED_EVENTS,
];

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Table(#[from] TableError),
}

/// Everything `flowhost status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// When the snapshot was taken (RFC 3339, UTC).
    pub at: String,
    /// Every loaded flow, by name.
    pub flows: Vec<FlowStatus>,
    /// `None` unless the database has the ASA package's Audit Events table.
    pub asa: Option<AsaStatus>,
    /// The nodes of the cluster on this database (empty outside a cluster).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<crate::cluster::Node>,
}

/// The nodes of the cluster on `pg`'s database, for [`Status::nodes`] (none if no node ever
/// joined); reads only: `flowhost status` does not join the cluster.
pub fn nodes(pg: &crate::pg::Pg) -> Result<Vec<crate::cluster::Node>, StatusError> {
    crate::cluster::nodes::list(pg).map_err(|e| StatusError::Store(StoreError::from(e)))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowStatus {
    pub name: String,
    /// Whether `serve` runs it (`flow enable|disable`, else its manifest).
    pub enabled: bool,
    /// `every 5m`, `cron "0 */5 * * * *" (UTC)`; `None`: on demand only.
    pub schedule: Option<String>,
    pub last_run: Option<LastRun>,
    /// Runs ending in error or timeout since the last ok one.
    pub consecutive_failures: u64,
    /// When the last ok run ended (RFC 3339, UTC).
    pub last_success: Option<String>,
    /// When `serve` runs it next (RFC 3339, UTC); `None` when disabled or unscheduled.
    pub next_tick: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    pub id: i64,
    pub trigger: Trigger,
    pub status: RunStatus,
    pub started: String,
    pub ended: Option<String>,
    /// `None` while it runs.
    pub duration_ms: Option<u64>,
    /// Why it failed (first line, as history keeps it; secrets were redacted before storing).
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsaStatus {
    /// The newest stored event's `timestamp`, as stored.
    pub newest_event: Option<String>,
    /// Seconds from that event to the snapshot (0 when it is ahead, `None` without events or
    /// when the timestamp does not parse).
    pub lag_seconds: Option<u64>,
    /// Rows per ASA table the database has.
    pub rows: BTreeMap<String, u64>,
    /// What each origin last sent in `X-RateLimit-*`, the most recent first.
    pub rate_limits: Vec<RateLimitSeen>,
    /// Per ASA team, when there are several (the default team first); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teams: Vec<TeamStatus>,
    /// Events M10 could not store and put into Rejected Events (its rows; 0 without the table).
    #[serde(default)]
    pub rejected_events: u64,
}

/// One ASA team's collection, when there are several teams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamStatus {
    pub team: String,
    /// The oldest Environment Variables row: also owns rows from before teams existed.
    pub default: bool,
    /// Audit Events rows of this team.
    pub events: u64,
    /// The checkpoint's `LastOffset` (`""`: from the oldest event).
    pub offset: String,
    /// How many events of the page at the offset are stored (`LastCount`).
    pub last_count: u64,
    /// When the checkpoint was last written (`LastDateTime`); `None` without a checkpoint.
    pub checkpoint_at: Option<String>,
    /// Seconds from then to the snapshot (0 when ahead; `None` when it does not parse).
    pub checkpoint_lag_seconds: Option<u64>,
}

/// Computes the snapshot at `now` from `registry`, `history` and `store` (both read-only;
/// `None` when the database does not exist yet).
pub fn snapshot(
    registry: &Registry,
    history: Option<&History>,
    store: Option<&Store>,
    now: SystemTime,
) -> Result<Status, StatusError> {
    let switches = match history {
        Some(h) => h.switches()?,
        None => BTreeMap::new(),
    };
    let mut flows = Vec::new();
    for f in registry.iter() {
        let m = &f.manifest;
        let enabled = crate::switches::effective(m, switches.get(&m.name).copied());
        let runs = match history {
            Some(h) => Some(h.flow_runs(&m.name)?),
            None => None,
        };
        let last_tick = runs
            .as_ref()
            .and_then(|r| r.last_tick.as_deref())
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(SystemTime::from);
        let next_tick = match &m.schedule {
            Some(s) if enabled => crate::scheduler::next_tick_at(s, last_tick, now)
                .and_then(|t| jiff::Timestamp::try_from(t).ok())
                .map(crate::history::format_timestamp),
            _ => None,
        };
        let runs = runs.unwrap_or(crate::history::FlowRuns {
            last: None,
            consecutive_failures: 0,
            last_success: None,
            last_tick: None,
        });
        flows.push(FlowStatus {
            name: m.name.clone(),
            enabled,
            schedule: m.schedule.as_ref().map(ToString::to_string),
            last_run: runs.last.map(|r| LastRun {
                duration_ms: crate::history::duration_ms(&r),
                id: r.id,
                trigger: r.trigger,
                status: r.status,
                started: r.started,
                ended: r.ended,
                error: r.error,
            }),
            consecutive_failures: runs.consecutive_failures,
            last_success: runs.last_success,
            next_tick,
        });
    }
    flows.sort_by(|a, b| a.name.cmp(&b.name));
    let asa = match store {
        Some(store) => asa_status(store, history, now)?,
        None => None,
    };
    let at = jiff::Timestamp::try_from(now)
        .map(crate::history::format_timestamp)
        .unwrap_or_default();
    Ok(Status {
        at,
        flows,
        asa,
        nodes: Vec::new(),
    })
}

/// The ASA section, if the database has Audit Events.
fn asa_status(
    store: &Store,
    history: Option<&History>,
    now: SystemTime,
) -> Result<Option<AsaStatus>, StatusError> {
    let mut rows = BTreeMap::new();
    for table in ASA_TABLES {
        match store.row_count(table) {
            Ok(n) => {
                rows.insert(table.to_string(), n);
            }
            // Not defined, or not in the database yet.
            Err(TableError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if !rows.contains_key(AUDIT_EVENTS) {
        return Ok(None);
    }
    let newest_event = store.max_text(AUDIT_EVENTS, "timestamp")?;
    let lag_seconds = newest_event
        .as_deref()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| {
            now.duration_since(SystemTime::from(t))
                .map_or(0, |d| d.as_secs())
        });
    let rate_limits = match history {
        Some(h) => h.rate_limits()?,
        None => Vec::new(),
    };
    let teams = team_status(store, now)?;
    let rejected_events = rows.get(REJECTED_EVENTS).copied().unwrap_or(0);
    Ok(Some(AsaStatus {
        newest_event,
        lag_seconds,
        rows,
        rate_limits,
        teams,
        rejected_events,
    }))
}

/// The per-team lines, when the Environment Variables table has two or more teams.
fn team_status(store: &Store, now: SystemTime) -> Result<Vec<TeamStatus>, StatusError> {
    use serde_json::{Map, Value};
    let text = |row: &Map<String, Value>, k: &str| match row.get(k) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let mut txn = store.begin()?;
    let settings = match txn.find("Environment Variables", &Map::new(), None) {
        Ok(rows) => rows,
        Err(TableError::NotFound(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let names: Vec<String> = settings
        .iter()
        .map(|r| text(r, "asaTeam").to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    if names.len() < 2 {
        return Ok(Vec::new());
    }
    let checkpoints = txn.find("Audit Checkpoints", &Map::new(), None)?;
    let mut out = Vec::new();
    for (i, team) in names.iter().enumerate() {
        let default = i == 0;
        let by_team = |t: Value| Map::from_iter([("team".to_string(), t)]);
        let mut events = txn.count(AUDIT_EVENTS, &by_team(Value::String(team.clone())))?;
        if default {
            let before_teams = txn.count(AUDIT_EVENTS, &by_team(Value::Null))?;
            events = events.saturating_add(before_teams);
        }
        let cp = checkpoints
            .iter()
            .find(|r| text(r, "team").eq_ignore_ascii_case(team))
            .or_else(|| {
                checkpoints
                    .iter()
                    .find(|r| default && text(r, "team").is_empty())
            });
        let checkpoint_at = cp
            .map(|r| text(r, "LastDateTime"))
            .filter(|t| !t.is_empty());
        let checkpoint_lag_seconds = checkpoint_at
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| {
                now.duration_since(SystemTime::from(t))
                    .map_or(0, |d| d.as_secs())
            });
        out.push(TeamStatus {
            team: team.clone(),
            default,
            events,
            offset: cp.map(|r| text(r, "LastOffset")).unwrap_or_default(),
            last_count: cp
                .and_then(|r| r.get("LastCount"))
                .and_then(Value::as_f64)
                .filter(|n| n.is_finite() && *n >= 0.0)
                .map_or(0, |n| n as u64),
            checkpoint_at,
            checkpoint_lag_seconds,
        });
    }
    Ok(out)
}

/// The state word `list` and `status` show.
pub fn state_word(enabled: bool) -> &'static str {
    if enabled {
        "enabled"
    } else {
        "disabled"
    }
}

impl Status {
    /// The snapshot for people: a table of flows, then the ASA section. Text from history
    /// (error lines) is as stored; the caller escapes what it prints.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let dash = || "-".to_string();
        let _ = writeln!(
            out,
            "{:<8} {:<8} {:<22} {:<44} {:>5}  {:<24}  NEXT TICK",
            "FLOW", "STATE", "SCHEDULE", "LAST RUN", "FAILS", "LAST OK"
        );
        for f in &self.flows {
            let last = f.last_run.as_ref().map_or_else(dash, |r| {
                let ms = r.duration_ms.map_or_else(dash, |ms| format!("{ms}ms"));
                format!("{} {} {} {}", r.id, r.status, r.started, ms)
            });
            let _ = writeln!(
                out,
                "{:<8} {:<8} {:<22} {:<44} {:>5}  {:<24}  {}",
                f.name,
                state_word(f.enabled),
                f.schedule.clone().unwrap_or_else(|| "on demand".into()),
                last,
                f.consecutive_failures,
                f.last_success.clone().unwrap_or_else(dash),
                f.next_tick.clone().unwrap_or_else(dash)
            );
            if let Some(r) = f
                .last_run
                .as_ref()
                .filter(|r| !matches!(r.status, RunStatus::Ok | RunStatus::Running))
            {
                let why = r
                    .error
                    .as_deref()
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("");
                let _ = writeln!(out, "         last error: {why}");
            }
        }
        self.nodes_text(&mut out);
        let Some(asa) = &self.asa else {
            return out;
        };
        let _ = writeln!(out, "\nASA audit collection");
        match (&asa.newest_event, asa.lag_seconds) {
            (Some(t), Some(lag)) => {
                let _ = writeln!(out, "  newest event: {t} ({lag} s behind)");
            }
            (Some(t), None) => {
                let _ = writeln!(out, "  newest event: {t}");
            }
            (None, _) => {
                let _ = writeln!(out, "  newest event: none yet");
            }
        }
        for t in &asa.teams {
            let moved = match (&t.checkpoint_at, t.checkpoint_lag_seconds) {
                (Some(at), Some(lag)) => format!("written {at} ({lag} s ago)"),
                (Some(at), None) => format!("written {at}"),
                (None, _) => "not written yet".to_string(),
            };
            let offset = if t.offset.is_empty() {
                "(oldest)"
            } else {
                &t.offset
            };
            let _ = writeln!(
                out,
                "  team {}{}: {} events; checkpoint {offset} ({} of its page stored), {moved}",
                t.team,
                if t.default { " (default)" } else { "" },
                t.events,
                t.last_count
            );
        }
        for (table, n) in &asa.rows {
            let _ = writeln!(out, "  {table:<24} {n:>10} rows");
        }
        let _ = match asa.rejected_events {
            0 => writeln!(out, "  rejected events: 0"),
            n => writeln!(
                out,
                "  rejected events: {n} (ASA sent them but they could not be stored: see table {REJECTED_EVENTS})"
            ),
        };
        for r in &asa.rate_limits {
            let n = |v: Option<u64>| v.map_or_else(dash, |v| v.to_string());
            let _ = writeln!(
                out,
                "  rate limit {}: {} of {} left, resets at {} (sent {})",
                r.origin,
                n(r.remaining),
                n(r.limit),
                r.reset
                    .and_then(|s| i64::try_from(s).ok())
                    .and_then(|s| jiff::Timestamp::from_second(s).ok())
                    .map_or_else(dash, |t| t.to_string()),
                r.seen
            );
        }
        out
    }
}

impl Status {
    /// The cluster section of [`Status::to_text`] (nothing outside a cluster).
    fn nodes_text(&self, out: &mut String) {
        if self.nodes.is_empty() {
            return;
        }
        let _ = writeln!(out, "\nCluster nodes");
        let _ = writeln!(
            out,
            "  {:<28} {:<20} {:>8}  {:<24}  {:<5}  RUNNING",
            "NODE", "HOST", "PID", "LAST HEARTBEAT", "STATE"
        );
        for n in &self.nodes {
            let running = if !n.alive || n.running.is_empty() {
                "-".to_string()
            } else {
                n.running
                    .iter()
                    .map(|r| format!("{} (run {})", r.flow, r.run))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                out,
                "  {:<28} {:<20} {:>8}  {:<24}  {:<5}  {running}",
                n.id,
                n.host,
                n.pid,
                n.heartbeat,
                if n.alive { "alive" } else { "gone" }
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Node, NodeRun};

    fn node(id: &str, alive: bool, running: &[(&str, i64)]) -> Node {
        Node {
            id: id.into(),
            host: "box".into(),
            pid: 42,
            version: "0.1.0".into(),
            started: "2026-01-01T00:00:00.000Z".into(),
            heartbeat: "2026-01-01T00:05:00.000Z".into(),
            alive,
            running: running
                .iter()
                .map(|(flow, run)| NodeRun {
                    flow: (*flow).into(),
                    run: *run,
                })
                .collect(),
        }
    }

    fn status(nodes: Vec<Node>) -> Status {
        Status {
            at: "2026-01-01T00:05:01.000Z".into(),
            flows: Vec::new(),
            asa: None,
            nodes,
        }
    }

    #[test]
    fn the_nodes_section_names_each_node_its_heartbeat_state_and_runs() {
        let s = status(vec![
            node("box-1-aaaa", true, &[("M10", 7), ("U20", 9)]),
            node("box-2-bbbb", false, &[("M10", 5)]),
        ]);
        let text = s.to_text();
        let lines: Vec<&str> = text.lines().collect();
        let at = lines.iter().position(|l| *l == "Cluster nodes").unwrap();
        let row = |id: &str| {
            lines[at..]
                .iter()
                .find(|l| l.trim_start().starts_with(id))
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .unwrap()
        };
        assert_eq!(
            row("box-1-aaaa"),
            [
                "box-1-aaaa",
                "box",
                "42",
                "2026-01-01T00:05:00.000Z",
                "alive",
                "M10",
                "(run",
                "7),",
                "U20",
                "(run",
                "9)"
            ]
        );
        // A gone node's runs rolled back with its session: none shown.
        assert_eq!(
            row("box-2-bbbb"),
            [
                "box-2-bbbb",
                "box",
                "42",
                "2026-01-01T00:05:00.000Z",
                "gone",
                "-"
            ]
        );
        // JSON has them; outside a cluster neither shows a section.
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["nodes"][0]["running"][1]["run"], 9);
        assert_eq!(json["nodes"][1]["alive"], false);
        let alone = status(Vec::new());
        assert!(!alone.to_text().contains("Cluster nodes"));
        assert!(serde_json::to_value(&alone).unwrap().get("nodes").is_none());
    }
}
