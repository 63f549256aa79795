//! Flows switched on and off (`flowhost flow enable|disable NAME`), kept in the run-history
//! database (table `_flowhost_flow_switches`, created by [`crate::history::History::open`],
//! so an existing database gains it the first time a writer opens it).
//!
//! What this module decides:
//! - A flow's manifest gives its initial state (`enabled: false`, default on); a row written by
//!   `flow enable|disable` wins over it from then on, whatever the manifest says later.
//! - Only `serve` obeys it: a disabled flow gets no schedule tick and no `request-run`
//!   catch-up there. `flowhost run NAME` runs it anyway (like a test run in Workflows).
//! - `serve` reads the state whenever it is about to start a run, so a switch made by another
//!   process takes effect without a restart or reload; a run already going finishes.
//! - Reading works on a read-only connection and on a database from before this table (every
//!   flow then has its manifest's state).

use std::collections::BTreeMap;

use rusqlite::{params, OptionalExtension};

use crate::history::{now_rfc3339, History};
use crate::manifest::Manifest;
use crate::store::StoreError;

/// Created with the run-history tables.
pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS "_flowhost_flow_switches" (
    flow TEXT PRIMARY KEY,
    enabled INTEGER NOT NULL,
    changed TEXT NOT NULL
) WITHOUT ROWID;
"#;

/// Whether a flow with `manifest` is enabled for `serve`, given its stored switch.
pub fn effective(manifest: &Manifest, switch: Option<bool>) -> bool {
    switch.unwrap_or(manifest.enabled)
}

impl History {
    /// Switches `flow` on or off for `serve` (the row wins over the manifest from now on).
    pub fn set_enabled(&self, flow: &str, enabled: bool) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.prepare_cached(
            "INSERT INTO _flowhost_flow_switches (flow, enabled, changed) VALUES (?1, ?2, ?3) \
             ON CONFLICT (flow) DO UPDATE SET enabled = excluded.enabled, changed = excluded.changed",
        )
        .and_then(|mut s| s.execute(params![flow, enabled, now_rfc3339()]))
        .map_err(self.err(&format!("cannot switch flow `{flow}` on or off")))?;
        Ok(())
    }

    /// The stored switch of `flow` (`None`: never switched; its manifest decides).
    pub fn switch(&self, flow: &str) -> Result<Option<bool>, StoreError> {
        let conn = self.lock();
        if !switches_table_exists(&conn).map_err(self.err("cannot read the flow switches"))? {
            return Ok(None);
        }
        conn.prepare_cached("SELECT enabled FROM _flowhost_flow_switches WHERE flow = ?1")
            .and_then(|mut s| s.query_row([flow], |r| r.get::<_, bool>(0)).optional())
            .map_err(self.err(&format!("cannot read the switch of flow `{flow}`")))
    }

    /// Every stored switch, by flow.
    pub fn switches(&self) -> Result<BTreeMap<String, bool>, StoreError> {
        let conn = self.lock();
        let context = "cannot read the flow switches";
        if !switches_table_exists(&conn).map_err(self.err(context))? {
            return Ok(BTreeMap::new());
        }
        let mut stmt = conn
            .prepare_cached("SELECT flow, enabled FROM _flowhost_flow_switches")
            .map_err(self.err(context))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)))
            .map_err(self.err(context))?;
        rows.collect::<Result<_, _>>().map_err(self.err(context))
    }
}

/// Whether the database has the switches table (a read-only open of an older database does
/// not).
fn switches_table_exists(conn: &rusqlite::Connection) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_flowhost_flow_switches'",
    )?
    .exists([])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_switch_is_kept_and_the_last_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let h = History::open(&path).unwrap();
        assert_eq!(h.switch("M10").unwrap(), None);
        h.set_enabled("M10", true).unwrap();
        h.set_enabled("M10", false).unwrap();
        h.set_enabled("U02", true).unwrap();
        drop(h);
        let ro = History::open_read_only(&path).unwrap();
        assert_eq!(ro.switch("M10").unwrap(), Some(false));
        assert_eq!(
            ro.switches().unwrap(),
            BTreeMap::from([("M10".into(), false), ("U02".into(), true)])
        );
    }

    #[test]
    fn an_older_database_is_read_without_switches_and_migrated_by_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        {
            let h = History::open(&path).unwrap();
            h.lock()
                .execute_batch("DROP TABLE _flowhost_flow_switches")
                .unwrap();
        }
        let ro = History::open_read_only(&path).unwrap();
        assert_eq!(ro.switch("M10").unwrap(), None);
        assert!(ro.switches().unwrap().is_empty());
        drop(ro);
        let h = History::open(&path).unwrap();
        h.set_enabled("M10", true).unwrap();
        assert_eq!(h.switch("M10").unwrap(), Some(true));
    }
}
