//! Exclusive groups held across the nodes of a cluster: a run holds its flow's group as a
//! session advisory lock (`pg_try_advisory_lock`) on a connection of its own
//! ([`crate::pg::Pg::dedicated`]). The lock goes with the run: [`GroupLock`]'s drop unlocks
//! it and closes the connection; if the node dies instead, the server ends its session and
//! the lock with it (keepalives bound how long that takes, see [`crate::pg`]).
//!
//! A busy group is polled with an exponential backoff (with jitter, from `backon`) on the
//! async runtime until the run's deadline, with the same outcomes as the file leases of one
//! machine ([`crate::lease::LeaseError`]: `Busy` when not waiting, `Timeout` at the deadline).
//! The holder is named from the server's view: the node whose session holds the lock.

use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use super::Cluster;
use crate::lease::LeaseError;

/// The first pause between two tries of a busy group.
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
/// The longest pause between two tries of a busy group.
const MAX_BACKOFF: Duration = Duration::from_millis(250);

/// The advisory lock key of `name` in `namespace`: the first 8 bytes of SHA-256 over both,
/// so that the same name gives the same key on every node and every version.
pub(super) fn namespaced_key(namespace: &str, name: &str) -> i64 {
    let mut h = Sha256::new();
    h.update(namespace.as_bytes());
    h.update([0u8]);
    h.update(name.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// The advisory lock key of exclusive group `group`.
pub fn group_key(group: &str) -> i64 {
    namespaced_key("flowhost exclusive group", group)
}

/// An exclusive group held for one run; released when dropped.
pub struct GroupLock {
    client: Option<Client>,
    key: i64,
}

impl std::fmt::Debug for GroupLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GroupLock({})", self.key)
    }
}

impl Drop for GroupLock {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let key = self.key;
        // Unlock, then the connection closes as the client goes. Without a runtime to do it
        // on, closing the connection alone makes the server release the lock.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = client
                    .execute("SELECT pg_advisory_unlock($1)", &[&key])
                    .await
                {
                    tracing::debug!(error = %e, "unlocking an exclusive group; its session ends anyway");
                }
            });
        }
    }
}

impl Cluster {
    /// Takes exclusive group `group` for one run. While another session holds it: with
    /// `wait`, polls until `deadline` (then [`LeaseError::Timeout`]); without, fails at once
    /// with [`LeaseError::Busy`]. Says on the log, once, that it waits and for whom.
    pub async fn lock_group(
        &self,
        group: &str,
        deadline: Instant,
        wait: bool,
    ) -> Result<GroupLock, LeaseError> {
        let pg = self.pg();
        let key = group_key(group);
        let what = format!("exclusive group `{group}`");
        // Connecting blocks: not on a worker of the async runtime.
        let opener = pg.clone();
        let client = match tokio::task::spawn_blocking(move || opener.dedicated()).await {
            Ok(client) => client?,
            Err(e) => {
                return Err(LeaseError::Postgres(crate::pg::PgError::Connect {
                    shown: pg.url().shown().to_string(),
                    reason: format!("the connecting thread failed: {e}"),
                }))
            }
        };
        let started = Instant::now();
        let mut backoff = backon::ExponentialBuilder::default()
            .with_min_delay(FIRST_BACKOFF)
            .with_max_delay(MAX_BACKOFF)
            .with_jitter()
            .without_max_times()
            .build();
        let mut said = false;
        loop {
            let row = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
                .await
                .map_err(|e| pg.error(&format!("taking {what}"), &e))?;
            let got: bool = row
                .try_get(0)
                .map_err(|e| pg.error(&format!("taking {what}"), &e))?;
            if got {
                return Ok(GroupLock {
                    client: Some(client),
                    key,
                });
            }
            if !wait {
                let holder = holder(&client, key).await;
                return Err(LeaseError::Busy { what, holder });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(LeaseError::Timeout {
                    holder: holder(&client, key).await,
                    what,
                    waited: now.saturating_duration_since(started),
                });
            }
            if !said {
                said = true;
                tracing::warn!(
                    "waiting for {what}, held by {}...",
                    holder(&client, key).await
                );
            }
            let pause = backoff
                .next()
                .unwrap_or(MAX_BACKOFF)
                .min(deadline.saturating_duration_since(now));
            tokio::time::sleep(pause).await;
        }
    }
}

/// Who holds advisory lock `key` in this database, from the server's view: "node NODE" for
/// a flowhost node, else "PostgreSQL session PID (APPLICATION)".
async fn holder(client: &Client, key: i64) -> String {
    // A bigint advisory lock shows its high half as `classid`, its low half as `objid`.
    let high = key >> 32;
    let low = key & 0xffff_ffff;
    let row = client
        .query_opt(
            "SELECT a.application_name, l.pid
             FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND l.classid::bigint = ($1::bigint & 4294967295) AND l.objid::bigint = $2
             LIMIT 1",
            &[&high, &low],
        )
        .await;
    let Ok(Some(row)) = row else {
        return "another session".into();
    };
    let app: Option<String> = row.try_get(0).ok().flatten();
    let pid: Option<i32> = row.try_get(1).ok().flatten();
    let app: String = app
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    match (app.strip_prefix("flowhost "), pid) {
        (Some(node), _) => format!("node {node}"),
        (None, Some(pid)) if app.is_empty() => format!("PostgreSQL session {pid}"),
        (None, Some(pid)) => format!("PostgreSQL session {pid} ({app})"),
        (None, None) => "another session".into(),
    }
}
