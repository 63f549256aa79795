//! Each schedule tick runs on one node of the cluster: before running a scheduled tick, a
//! node claims it with a row in `_flowhost_ticks` (flow, tick). The row's primary key lets
//! exactly one claim in; the nodes whose claim finds the row taken leave the tick to the
//! node that has it (not a run, not even a skipped one). Claims older than a day are pruned
//! with the heartbeats ([`super::nodes`]).
//!
//! Nodes must name a tick alike although they started at different times, so a tick is named
//! by [`tick_slot`]: for `every: D`, the D-long slot of wall-clock time since the epoch it falls
//! in (whichever node comes first in a slot runs it; a node that joins late or takes over
//! runs the next slot); for a cron line, its time to the nearest second (every node computes
//! the same cron times; the rounding absorbs a timer that fires a little early or late).

use std::time::{Duration, SystemTime};

use super::{Cluster, TICKS_TABLE};
use crate::manifest::Schedule;
use crate::pg::PgError;

/// The name of the tick of schedule `s` that fires at `at`, as a time (see the module doc).
pub fn tick_slot(s: &Schedule, at: SystemTime) -> SystemTime {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let slot = match s {
        Schedule::Every(d) if !d.is_zero() => {
            let period = d.as_millis().max(1);
            let ms = since.as_millis();
            ms.checked_div(period).unwrap_or(0).saturating_mul(period)
        }
        _ => since
            .as_millis()
            .saturating_add(500)
            .checked_div(1000)
            .unwrap_or(0)
            .saturating_mul(1000),
    };
    let slot = u64::try_from(slot).unwrap_or(u64::MAX);
    SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_millis(slot))
        .unwrap_or(at)
}

impl Cluster {
    /// Claims tick `tick` of `flow` for this node: `true` if this node runs it, `false` if
    /// another node claimed it first.
    pub fn claim_tick(&self, flow: &str, tick: SystemTime) -> Result<bool, PgError> {
        let pg = self.pg();
        let ms = tick
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let ms = i64::try_from(ms).unwrap_or(i64::MAX);
        let sql = format!(
            "INSERT INTO \"{TICKS_TABLE}\" (\"flow\", \"tick\", \"node\") VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING"
        );
        let conn = pg.get()?;
        let inserted = pg
            .wait(conn.execute(&sql, &[&flow, &ms, &self.node()]))
            .map_err(|e| pg.error(&format!("claiming a tick of flow `{flow}`"), &e))?;
        Ok(inserted == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn nodes_that_fire_apart_name_the_same_tick() {
        let every = Schedule::Every(Duration::from_secs(60));
        // Two nodes started 20 s apart fire in the same minute: one tick.
        assert_eq!(tick_slot(&every, at(120_300)), at(120_000));
        assert_eq!(tick_slot(&every, at(179_999)), at(120_000));
        assert_eq!(tick_slot(&every, at(180_000)), at(180_000));
        let cron = Schedule::Cron {
            line: "0 * * * * *".into(),
            timezone: "UTC".into(),
        };
        // A timer a little early or late names the same cron time.
        assert_eq!(tick_slot(&cron, at(59_998)), at(60_000));
        assert_eq!(tick_slot(&cron, at(60_040)), at(60_000));
    }
}
