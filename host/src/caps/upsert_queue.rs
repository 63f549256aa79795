//! A run's queue of upserts into keyed tables: checked when the flow asks (the flow gets the
//! key at once), written into the run's transaction later, in batches, in the order asked.
//!
//! - **Why.** The children of a for-each (one per event) would otherwise each take the
//!   transaction for one row; SQLite would then run on whichever thread a child ran on.
//! - **Who writes them.** When a batch ([`BATCH`] rows) waits, a blocking task of the async
//!   runtime (the *applier*, one at a time per run) takes the transaction and writes every
//!   waiting row while the children go on. Every other table call of the run first writes the
//!   rows waiting for its table, on its own thread, so a flow always reads what it (or any
//!   child) wrote; the rows of other tables stay for the applier (the helpers' reads of Audit
//!   Related Objects no longer write S30's Audit Events rows on the flows' thread). The end of
//!   the run writes the rest before the commit. The rows of one table are written in the
//!   order they were queued; tables do not depend on each other.
//! - **Back-pressure.** Past [`MAX_WAITING`] rows (the applier is behind, or busy waiting for
//!   another writer's lock), the child that queues one more waits for the transaction and
//!   writes them itself.
//! - **Failures.** A row that cannot be written fails the unit of work: every table call of the
//!   run after the failed write and its commit fail (`store::Txn::upsert_deferred`), so a run
//!   that was told "stored" never commits without the row.
//! - **Memory.** The waiting rows hold their JSON size of the run's memory budget until they
//!   are written.

use std::sync::Arc;

use crate::budget::Charge;
use crate::engine::WitError;
use crate::runtime::{lock, RunShared};
use crate::store::{DeferredUpsert, TableError, Txn};

/// Waiting rows that start the applier.
const BATCH: usize = 64;
/// Past this many waiting rows, the next upsert waits for the transaction rather than leave
/// the rows to the applier.
const MAX_WAITING: usize = 8 * BATCH;

/// The rows of one run waiting to be written (in [`RunShared::deferred`]).
#[derive(Default)]
pub struct Deferred {
    rows: Vec<DeferredUpsert>,
    /// Per table with waiting rows, the run memory they hold (their JSON text's size); given
    /// back when they are written.
    held: Vec<(String, Charge)>,
    /// Set when the run has ended: a straggling child's upsert is then refused, never lost.
    closed: bool,
    /// An applier is on its way or writing.
    applying: bool,
}

impl Deferred {
    /// An empty queue; a `closed` one refuses every row (a run without a transaction).
    pub fn new(closed: bool) -> Deferred {
        Deferred {
            closed,
            ..Deferred::default()
        }
    }

    /// Whether the queue refuses rows.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Closes the queue and hands over what still waits (the end of the run writes it).
    pub fn close(&mut self) -> Vec<DeferredUpsert> {
        self.closed = true;
        self.held.clear();
        std::mem::take(&mut self.rows)
    }
}

/// Queues `row` (checked already) in `run`, holding `bytes` of its memory budget; starts the
/// applier when a batch waits.
pub fn push(run: &Arc<RunShared>, row: DeferredUpsert, bytes: usize) -> Result<(), WitError> {
    let waiting = {
        let mut d = lock(&run.deferred);
        if d.closed {
            return Err(ended());
        }
        match d.held.iter_mut().find(|(t, _)| *t == row.table) {
            Some((_, held)) => held.grow(bytes, "the queued upserts")?,
            None => {
                let held = run.budget.charge(bytes, "the queued upserts")?;
                d.held.push((row.table.clone(), held));
            }
        }
        d.rows.push(row);
        d.rows.len()
    };
    if waiting >= MAX_WAITING {
        let mut guard = lock(&run.txn);
        if let Some(txn) = guard.as_mut() {
            write_waiting(run, txn)?;
        }
    } else if waiting >= BATCH {
        start_applier(run);
    }
    Ok(())
}

/// Writes all of `run`'s waiting rows into `txn`, whose lock the caller holds (so nothing
/// reads between taking them and writing them).
pub fn write_waiting(run: &RunShared, txn: &mut Txn) -> Result<(), TableError> {
    let (rows, _held) = {
        let mut d = lock(&run.deferred);
        // The next batch's room at once, not grown a row at a time after every batch.
        let rows = std::mem::replace(&mut d.rows, Vec::with_capacity(BATCH));
        (rows, std::mem::take(&mut d.held))
    };
    txn.upsert_deferred(rows)
}

/// Writes the rows waiting for `table` into `txn` (whose lock the caller holds), before a
/// call on that table; the other tables' rows keep waiting, in their order.
pub fn write_waiting_for(run: &RunShared, txn: &mut Txn, table: &str) -> Result<(), TableError> {
    let (rows, _held) = {
        let mut d = lock(&run.deferred);
        let Some(at) = d.held.iter().position(|(t, _)| t == table) else {
            return Ok(());
        };
        let held = d.held.swap_remove(at);
        if d.held.is_empty() {
            (std::mem::take(&mut d.rows), held)
        } else {
            let (mine, rest) = std::mem::take(&mut d.rows)
                .into_iter()
                .partition(|r| r.table == table);
            d.rows = rest;
            (mine, held)
        }
    };
    txn.upsert_deferred(rows)
}

/// The error for a call that comes after its run ended.
pub fn ended() -> WitError {
    WitError::Other("the run has already ended".into())
}

/// Starts `run`'s applier on the async runtime's blocking threads, unless one is on its way;
/// it writes until less than a batch waits. Without an async runtime the caller writes.
fn start_applier(run: &Arc<RunShared>) {
    {
        let mut d = lock(&run.deferred);
        if d.applying {
            return;
        }
        d.applying = true;
    }
    let applier = Applier {
        run: Arc::clone(run),
        stopped: false,
    };
    match tokio::runtime::Handle::try_current() {
        Ok(tokio) => drop(tokio.spawn_blocking(move || applier.write())),
        Err(_) => applier.write(),
    }
}

/// One run's applier.
struct Applier {
    run: Arc<RunShared>,
    /// It said it stopped; if it did not (a panic), dropping it says so.
    stopped: bool,
}

impl Applier {
    fn write(mut self) {
        let run = Arc::clone(&self.run);
        loop {
            let stop = match lock(&run.txn).as_mut() {
                // A failure stays in the unit of work: the run's next table call and its
                // commit fail with it, and so would every later write.
                Some(txn) => write_waiting(&run, txn).is_err(),
                // The run has ended; its end writes what waits.
                None => true,
            };
            let mut d = lock(&run.deferred);
            if stop || d.closed || d.rows.len() < BATCH {
                // In the same critical section as the check: a row queued after it starts
                // another applier.
                d.applying = false;
                self.stopped = true;
                return;
            }
        }
    }
}

impl Drop for Applier {
    fn drop(&mut self) {
        if !self.stopped {
            lock(&self.run.deferred).applying = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Schemas, TableSchema};
    use crate::store::Store;
    use serde_json::json;
    use std::time::{Duration, Instant};

    fn store(dir: &std::path::Path) -> Store {
        let schema = |name: &str| {
            TableSchema::from_yaml(
                &format!("name: {name}\nkey: id\ncolumns:\n  - {{ name: id, type: text }}\n  - {{ name: n, type: integer }}\n"),
                std::path::Path::new("t.yaml"),
            )
            .unwrap()
        };
        let schemas = Arc::new(Schemas::from_schemas(vec![schema("T"), schema("U")]).unwrap());
        Store::open(&dir.join("t.db"), schemas).unwrap()
    }

    /// A run writing into a new unit of work of `store`.
    fn run_on(store: &Store) -> Arc<RunShared> {
        Arc::new(RunShared::new(1, Some(store.begin().unwrap())))
    }

    fn row(i: usize) -> DeferredUpsert {
        keyed("T", i, i)
    }

    fn keyed(table: &str, key: usize, n: usize) -> DeferredUpsert {
        let row = json!({"id": format!("k{key}"), "n": n});
        DeferredUpsert::json(table, row.as_object().unwrap().clone())
    }

    /// Waits until `done` holds (each look is an event the applier caused), failing after
    /// 10 s.
    async fn until(what: &str, done: impl Fn() -> bool) {
        let give_up = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < give_up, "never happened: {what}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn idle(run: &RunShared) -> bool {
        let d = lock(&run.deferred);
        d.rows.is_empty() && !d.applying
    }

    /// A child that fills a batch goes on at once, even while the transaction is busy; the
    /// applier writes the batch when the transaction is free, and the run reads every row.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_batch_is_written_by_the_applier_while_the_child_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let run = run_on(&store);
        let busy = lock(&run.txn);
        for i in 0..BATCH {
            push(&run, row(i), 10).unwrap();
        }
        // Every push returned although the transaction was held: nobody wrote yet.
        assert_eq!(lock(&run.deferred).rows.len(), BATCH);
        assert!(lock(&run.deferred).applying);
        assert_eq!(run.budget.held(), BATCH * 10);
        drop(busy);
        until("the applier wrote the batch", || idle(&run)).await;
        assert_eq!(run.budget.held(), 0);
        let mut txn = lock(&run.txn).take().unwrap();
        assert_eq!(
            txn.count("T", &serde_json::Map::new()).unwrap(),
            BATCH as u64
        );
        assert_eq!(txn.get("T", "k63").unwrap().unwrap()["n"], json!(63));
        txn.commit().unwrap();
        assert_eq!(store.row_count("T").unwrap(), BATCH as u64);
    }

    /// Past [`MAX_WAITING`] rows the child that queues one more writes them itself.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_child_writes_the_queue_itself_when_the_applier_is_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let run = run_on(&store);
        // An applier that never comes: the queue only grows.
        lock(&run.deferred).applying = true;
        for i in 0..MAX_WAITING - 1 {
            push(&run, row(i), 1).unwrap();
        }
        assert_eq!(lock(&run.deferred).rows.len(), MAX_WAITING - 1);
        push(&run, row(MAX_WAITING - 1), 1).unwrap();
        assert!(lock(&run.deferred).rows.is_empty());
        let txn = lock(&run.txn).take().unwrap();
        txn.commit().unwrap();
        assert_eq!(store.row_count("T").unwrap(), MAX_WAITING as u64);
    }

    /// When the applier cannot write (another writer holds SQLite's lock past the lock
    /// timeout), the child that queued the rows has been told they are stored: the run's next
    /// table call and its commit fail, and nothing of the run is written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_the_applier_cannot_write_fails_the_next_call_and_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let mut txn = store.begin().unwrap();
        txn.set_lock_timeout(Duration::from_millis(50)).unwrap();
        let run = Arc::new(RunShared::new(1, Some(txn)));
        let mut other = store.begin().unwrap();
        other.lock_for_write().unwrap();
        for i in 0..BATCH {
            push(&run, row(i), 1).unwrap();
        }
        until("the applier gave up", || idle(&run)).await;
        let mut txn = lock(&run.txn).take().unwrap();
        let err = txn.get("T", "k0").unwrap_err().to_string();
        assert!(err.contains("no more table calls are possible"), "{err}");
        assert!(err.contains("locked"), "{err}");
        let err = txn.commit().unwrap_err().to_string();
        assert!(err.contains("locked"), "{err}");
        other.commit().unwrap();
        assert_eq!(store.row_count("T").unwrap(), 0);
    }

    /// A call on one table writes that table's waiting rows (in their order: the last upsert
    /// of a key wins) and gives back their memory; the other table's rows keep waiting.
    #[test]
    fn a_table_call_writes_the_rows_of_its_own_table_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let run = run_on(&store);
        for (i, table) in ["T", "U", "T", "U"].into_iter().enumerate() {
            push(&run, keyed(table, i % 2, i), 100 + i).unwrap();
        }
        assert_eq!(run.budget.held(), 100 + 101 + 102 + 103);
        let mut guard = lock(&run.txn);
        let txn = guard.as_mut().unwrap();
        write_waiting_for(&run, txn, "T").unwrap();
        assert_eq!(txn.get("T", "k0").unwrap().unwrap()["n"], json!(2));
        assert_eq!(txn.count("T", &serde_json::Map::new()).unwrap(), 1);
        assert_eq!(txn.count("U", &serde_json::Map::new()).unwrap(), 0);
        assert_eq!(run.budget.held(), 101 + 103);
        let waiting: Vec<String> = lock(&run.deferred)
            .rows
            .iter()
            .map(|r| r.table.clone())
            .collect();
        assert_eq!(waiting, ["U", "U"]);
        // Nothing waits for `T` now: nothing is written.
        write_waiting_for(&run, txn, "T").unwrap();
        assert_eq!(lock(&run.deferred).rows.len(), 2);
        write_waiting_for(&run, txn, "U").unwrap();
        assert_eq!(txn.get("U", "k1").unwrap().unwrap()["n"], json!(3));
        assert!(lock(&run.deferred).rows.is_empty());
        assert_eq!(run.budget.held(), 0);
    }

    /// A row queued after the run ended is refused, never lost without a word.
    #[test]
    fn the_queue_refuses_rows_once_closed() {
        let run = Arc::new(RunShared::new(1, None));
        let err = push(&run, row(0), 1).unwrap_err();
        assert!(format!("{err:?}").contains("already ended"), "{err:?}");
        assert_eq!(run.budget.held(), 0);
    }
}
