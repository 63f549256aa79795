//! The nodes of a cluster (`_flowhost_nodes`): each registers itself when it joins and beats
//! every few seconds with the runs it has going; `flowhost status` lists them.
//!
//! Decisions:
//! - **Alive** means the server has a session of the node now (`pg_stat_activity`), not that
//!   its heartbeat is recent: a node that is SIGKILLed stops being alive as soon as the server
//!   notices its connections are gone (keepalives bound that, see [`crate::pg`]), and a node
//!   whose loop is busy is not declared dead. The heartbeat shows when it last reported.
//! - A node that has not beaten for more than [`PRUNE_AFTER_HOURS`] hours and is not alive
//!   is removed (at join and at each heartbeat), so the table stays small.

use serde::{Deserialize, Serialize};

use super::{Cluster, NODES_TABLE, TICKS_TABLE};
use crate::pg::PgError;

/// Nodes silent and gone for longer than this are pruned.
pub const PRUNE_AFTER_HOURS: u32 = 24;

/// One node of the cluster, as `flowhost status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The node id (`HOST-PID-XXXX`).
    pub id: String,
    pub host: String,
    pub pid: i64,
    /// The flowhost version it runs.
    pub version: String,
    /// When it joined (RFC 3339, UTC).
    pub started: String,
    /// Its last heartbeat (RFC 3339, UTC).
    pub heartbeat: String,
    /// Whether the server has a session of it now.
    pub alive: bool,
    /// The top-level runs it said it has going, at its last heartbeat.
    pub running: Vec<NodeRun>,
}

/// A run a node has going.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRun {
    pub flow: String,
    pub run: i64,
}

/// The node's host name, as the kernel has it.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Milliseconds since the epoch to RFC 3339 (as run history writes times).
fn timestamp(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(crate::history::format_timestamp)
        .unwrap_or_default()
}

impl Cluster {
    /// Registers this node (again, if it was there), with no runs going.
    pub(super) fn register(&self) -> Result<(), PgError> {
        let pg = self.pg();
        let sql = format!(
            "INSERT INTO \"{NODES_TABLE}\" (\"node\", \"host\", \"pid\", \"version\")
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (\"node\") DO UPDATE SET \"host\" = $2, \"pid\" = $3, \"version\" = $4,
                 \"started\" = now(), \"heartbeat\" = now(), \"running\" = '[]'"
        );
        let conn = pg.get()?;
        let pid = i64::from(std::process::id());
        let version = env!("CARGO_PKG_VERSION");
        pg.wait(conn.execute(&sql, &[&self.node(), &host_name(), &pid, &version]))
            .map_err(|e| pg.error("registering this node", &e))?;
        drop(conn);
        self.prune()
    }

    /// Says this node is here and has `running` (flow, run id) going; prunes what is stale.
    pub fn heartbeat(&self, running: &[(String, i64)]) -> Result<(), PgError> {
        let pg = self.pg();
        let runs: Vec<NodeRun> = running
            .iter()
            .map(|(flow, run)| NodeRun {
                flow: flow.clone(),
                run: *run,
            })
            .collect();
        let runs = serde_json::to_value(&runs).unwrap_or_default();
        let sql = format!(
            "INSERT INTO \"{NODES_TABLE}\" (\"node\", \"host\", \"pid\", \"version\", \"running\")
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (\"node\") DO UPDATE SET \"heartbeat\" = now(), \"running\" = $5"
        );
        let conn = pg.get()?;
        let pid = i64::from(std::process::id());
        let version = env!("CARGO_PKG_VERSION");
        pg.wait(conn.execute(&sql, &[&self.node(), &host_name(), &pid, &version, &runs]))
            .map_err(|e| pg.error("writing this node's heartbeat", &e))?;
        drop(conn);
        self.prune()
    }

    /// Every node of the cluster, the earliest joined first.
    pub fn nodes(&self) -> Result<Vec<Node>, PgError> {
        list(self.pg())
    }

    /// Removes nodes gone (no session) and silent for more than a day, and tick claims older
    /// than a day (no node plans a tick that far back).
    fn prune(&self) -> Result<(), PgError> {
        let pg = self.pg();
        let sql = format!(
            "DELETE FROM \"{NODES_TABLE}\" n
             WHERE n.\"heartbeat\" < now() - interval '{PRUNE_AFTER_HOURS} hours'
               AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                               WHERE a.application_name = 'flowhost ' || n.\"node\");
             DELETE FROM \"{TICKS_TABLE}\"
             WHERE \"claimed\" < now() - interval '{PRUNE_AFTER_HOURS} hours';"
        );
        let conn = pg.get()?;
        pg.wait(conn.batch_execute(&sql))
            .map_err(|e| pg.error("pruning the cluster's old nodes and ticks", &e))
    }
}

/// Every node of the cluster on `pg`'s database, the earliest joined first; none when no
/// node ever joined. Only reads (`flowhost status` uses it without joining).
pub fn list(pg: &crate::pg::Pg) -> Result<Vec<Node>, PgError> {
    let conn = pg.get()?;
    let exists = pg
        .wait(conn.query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("\"{NODES_TABLE}\"")],
        ))
        .and_then(|row| row.try_get::<_, bool>(0))
        .map_err(|e| pg.error("reading the cluster's nodes", &e))?;
    if !exists {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT n.\"node\", n.\"host\", n.\"pid\", n.\"version\",
                (extract(epoch FROM n.\"started\") * 1000)::bigint,
                (extract(epoch FROM n.\"heartbeat\") * 1000)::bigint,
                EXISTS (SELECT 1 FROM pg_stat_activity a
                        WHERE a.application_name = 'flowhost ' || n.\"node\"),
                n.\"running\"
         FROM \"{NODES_TABLE}\" n ORDER BY n.\"started\", n.\"node\""
    );
    let rows = pg
        .wait(conn.query(&sql, &[]))
        .map_err(|e| pg.error("reading the cluster's nodes", &e))?;
    let mut nodes = Vec::with_capacity(rows.len());
    for row in rows {
        let read = || -> Result<Node, tokio_postgres::Error> {
            let running: serde_json::Value = row.try_get(7)?;
            Ok(Node {
                id: row.try_get(0)?,
                host: row.try_get(1)?,
                pid: row.try_get(2)?,
                version: row.try_get(3)?,
                started: timestamp(row.try_get(4)?),
                heartbeat: timestamp(row.try_get(5)?),
                alive: row.try_get(6)?,
                // A row some other program wrote oddly shows no runs rather than failing.
                running: serde_json::from_value(running).unwrap_or_default(),
            })
        };
        nodes.push(read().map_err(|e| pg.error("reading the cluster's nodes", &e))?);
    }
    Ok(nodes)
}
