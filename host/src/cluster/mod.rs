//! A cluster of `serve` nodes on one PostgreSQL database (`db: postgres://...`, issue 18.2):
//! who the nodes are, which node runs each schedule tick, and exclusive groups held across
//! nodes.
//!
//! [`Cluster::join`] creates the cluster's tables if they are missing (under a transaction
//! advisory lock, so that nodes starting together do not race) and registers this node.
//! The parts, one file each:
//! - [`nodes`]: the node table `_flowhost_nodes`: each node's heartbeat and the runs it has
//!   going. A node is *alive* while the server has a session of it (`pg_stat_activity`'s
//!   `application_name` is `flowhost NODE`); the heartbeat is what `flowhost status` shows.
//! - [`ticks`]: `_flowhost_ticks`, one claimed row per flow and tick, so that each tick runs
//!   on exactly one node.
//! - [`groups`]: an exclusive group held by a run is a session advisory lock on a connection
//!   of its own; the server releases it when the run ends or when the node's connection dies.
//!
//! Every identifier is quoted, every value bound; errors show the URL without its password.

pub mod groups;
pub mod nodes;
pub mod ticks;

use std::sync::Arc;

use crate::pg::{Pg, PgError};

pub use groups::{group_key, GroupLock};
pub use nodes::{Node, NodeRun};

/// The node table.
pub const NODES_TABLE: &str = "_flowhost_nodes";
/// The table of claimed ticks.
pub const TICKS_TABLE: &str = "_flowhost_ticks";

/// The transaction advisory lock that serialises creating the cluster's tables.
fn schema_lock_key() -> i64 {
    groups::namespaced_key("flowhost cluster schema", "")
}

/// This process's membership of the cluster on one database. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct Cluster {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pg: Pg,
    node: String,
}

impl Cluster {
    /// Joins the cluster on `pg`'s database as node [`crate::pg::PgUrl::node`] (this
    /// process's [`crate::pg::node_id`]): creates the cluster's tables if missing, registers
    /// the node (host, pid, start, version) and prunes nodes gone for more than a day.
    pub fn join(pg: Pg) -> Result<Cluster, PgError> {
        let node = pg.url().node().to_string();
        let cluster = Cluster {
            inner: Arc::new(Inner { pg, node }),
        };
        cluster.create_tables()?;
        cluster.register()?;
        Ok(cluster)
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    pub fn pg(&self) -> &Pg {
        &self.inner.pg
    }

    fn create_tables(&self) -> Result<(), PgError> {
        let pg = self.pg();
        let sql = format!(
            "BEGIN;
             SELECT pg_advisory_xact_lock({lock});
             CREATE TABLE IF NOT EXISTS \"{NODES_TABLE}\" (
                 \"node\" text PRIMARY KEY,
                 \"host\" text NOT NULL,
                 \"pid\" bigint NOT NULL,
                 \"version\" text NOT NULL,
                 \"started\" timestamptz NOT NULL DEFAULT now(),
                 \"heartbeat\" timestamptz NOT NULL DEFAULT now(),
                 \"running\" jsonb NOT NULL DEFAULT '[]'
             );
             CREATE TABLE IF NOT EXISTS \"{TICKS_TABLE}\" (
                 \"flow\" text NOT NULL,
                 \"tick\" bigint NOT NULL,
                 \"node\" text NOT NULL,
                 \"claimed\" timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (\"flow\", \"tick\")
             );
             CREATE INDEX IF NOT EXISTS \"{TICKS_TABLE}_claimed\" ON \"{TICKS_TABLE}\" (\"claimed\");
             COMMIT;",
            lock = schema_lock_key()
        );
        let conn = pg.get()?;
        match pg.wait(conn.batch_execute(&sql)) {
            Ok(()) => Ok(()),
            Err(e) => {
                conn.discard();
                Err(pg.error("creating the cluster's tables", &e))
            }
        }
    }
}
