//! Flows switched on and off (`flowhost flow enable|disable NAME`), kept in the run-history
//! database (table `_flowhost_flow_switches`, created with the history tables, so an existing
//! database gains it the first time a writer opens it; the SQL is in each history backend).
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

use crate::manifest::Manifest;

/// Whether a flow with `manifest` is enabled for `serve`, given its stored switch.
pub fn effective(manifest: &Manifest, switch: Option<bool>) -> bool {
    switch.unwrap_or(manifest.enabled)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::history::History;

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
        drop(History::open(&path).unwrap());
        crate::store::open_connection(&path)
            .unwrap()
            .execute_batch("DROP TABLE _flowhost_flow_switches")
            .unwrap();
        let ro = History::open_read_only(&path).unwrap();
        assert_eq!(ro.switch("M10").unwrap(), None);
        assert!(ro.switches().unwrap().is_empty());
        drop(ro);
        let h = History::open(&path).unwrap();
        h.set_enabled("M10", true).unwrap();
        assert_eq!(h.switch("M10").unwrap(), Some(true));
    }
}
