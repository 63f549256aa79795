//! What the host remembers of `pure: true` flows' calls (docs/manifests.md, `pure`): within a
//! run ([`Memo`], checked against the run's own writes) and across runs ([`Kept`], checked
//! against the rows each call read).
//!
//! A pure flow promises that its output depends only on its input and on the tables it reads
//! (the registry refuses it any other grant). Within a run the host sees every write, so it
//! only has to count them. Across runs it cannot: another run, another process or an operator
//! may change a table in between. So the host records what each call of a pure flow read
//! ([`Read`]: every `get`, `find` and `count`, with its answer), and a later run reuses the
//! output only after reading the same again, in its own transaction, and getting the same
//! answers (`caps::tables::reads_the_same`). A row the run has upserted itself (and not
//! written otherwise since) is what a get gives, so a read of it is checked against that row
//! without reading the table ([`Memo::upserted`]). In the ASA job, S20 writes the helpers'
//! Audit Related Objects afresh every page, with the same text for the same reference: a
//! helper's call then costs one comparison with the row S21 just upserted instead of a run of
//! the helper.
//!
//! A call that did anything else the host can see (a log line, the cache, the clock, a sleep,
//! a grants query) is not kept across runs ([`Recorder::other`]): what it did is not a read to
//! check again, and a reused output would skip it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock, Weak};

use crate::manifest::Manifest;
use crate::registry::FlowEntry;
use crate::runtime::lock;
use crate::store::BoundRow;

/// Outputs of pure flows within one run, so that the same reference looked up for the
/// thousandth event of a page does not run the helper again.
///
/// An output is reused only while none of the flow's tables has been written in this run since
/// it was computed: every table write bumps that table's count, and an entry remembers the sum
/// of the counts of its flow's tables. Per run, like the transaction, so it never sees another
/// run's writes; bounded by `MEMO_BYTES`.
#[derive(Default)]
pub struct Memo {
    /// Writes this run has made, per table.
    writes: HashMap<String, u64>,
    /// Per flow, per input: the version it was computed at and the output.
    outputs: HashMap<String, HashMap<String, (u64, String)>>,
    bytes: usize,
    /// This run's own upserts (see [`Memo::upserted`]).
    rows: RunRows,
}

/// The rows this run has upserted into tables whose rows a kept call read, by key, for as long
/// as nothing else in the run has written the table: a get of such a key in this run gives
/// that row (an upsert sets every column, in the run's transaction, whatever was there), so a
/// kept call's read of it is checked against the row instead of read again. Bounded by
/// `RUN_ROWS_BYTES`; past it, a key upserted again is forgotten rather than kept.
#[derive(Default)]
struct RunRows {
    tables: HashMap<String, HashMap<String, Arc<BoundRow>>>,
    bytes: usize,
}

/// What one run may hold of its own upserted rows.
const RUN_ROWS_BYTES: usize = 4 << 20;

/// What a run's memo may hold (inputs and outputs); past it, it starts over.
const MEMO_BYTES: usize = 16 << 20;

impl Memo {
    /// Records a write to `table` (before it happens: a failed write still counts).
    pub fn wrote(&mut self, table: &str) {
        match self.writes.get_mut(table) {
            Some(n) => *n += 1,
            None => {
                self.writes.insert(table.to_string(), 1);
            }
        }
    }

    /// An upsert this run made at `key` of `table`, a table whose rows a kept call read
    /// ([`Kept::tracks`]): `row` as the table will store it, or `None` when that is not known
    /// (the backend binds no row, or the upsert failed), which forgets the key.
    pub fn upserted(&mut self, table: &str, key: &str, row: Option<BoundRow>) {
        let rows = &mut self.rows;
        let size = row.as_ref().map_or(0, |r| key.len() + r.size());
        let old = match row {
            Some(row) if rows.bytes + size <= RUN_ROWS_BYTES => {
                rows.bytes += size;
                let per_table = rows.tables.entry(table.to_string()).or_default();
                per_table.insert(key.to_string(), Arc::new(row))
            }
            _ => rows.tables.get_mut(table).and_then(|t| t.remove(key)),
        };
        if let Some(old) = old {
            rows.bytes -= key.len() + old.size();
        }
    }

    /// Any write to `table` but an upsert: its rows as this run upserted them are no longer
    /// known.
    pub fn forget_rows(&mut self, table: &str) {
        if let Some(per_table) = self.rows.tables.remove(table) {
            let size: usize = per_table.iter().map(|(k, r)| k.len() + r.size()).sum();
            self.rows.bytes -= size;
        }
    }

    /// The row a get of `key` in `table` gives in this run, if this run upserted it and has
    /// not written the table otherwise since.
    pub fn own_row(&self, table: &str, key: &str) -> Option<Arc<BoundRow>> {
        self.rows.tables.get(table)?.get(key).cloned()
    }

    /// The state of the tables `flow` reads, as one number that grows with every write.
    fn version(&self, flow: &Manifest) -> u64 {
        let tables = flow.grants.tables_read.iter();
        tables
            .map(|t| self.writes.get(t).copied().unwrap_or(0))
            .sum()
    }

    /// The remembered output, or the current version to remember a new one under.
    pub(crate) fn lookup(&self, flow: &Manifest, input: &str) -> Result<String, u64> {
        let version = self.version(flow);
        match self.outputs.get(&flow.name).and_then(|m| m.get(input)) {
            Some((v, out)) if *v == version => Ok(out.clone()),
            _ => Err(version),
        }
    }

    pub(crate) fn put(&mut self, flow: &Manifest, input: String, version: u64, out: &str) {
        let size = input.len() + out.len();
        if size > MEMO_BYTES / 16 {
            return;
        }
        if self.bytes + size > MEMO_BYTES {
            self.outputs.clear();
            self.bytes = 0;
        }
        self.bytes += size;
        let input_len = input.len();
        let per_flow = self.outputs.entry(flow.name.clone()).or_default();
        if let Some((_, old)) = per_flow.insert(input, (version, out.to_string())) {
            // An entry computed again (its tables were written): the old one is gone.
            self.bytes -= input_len + old.len();
        }
    }
}

/// One table read of a call of a pure flow, with the answer the flow got.
#[derive(Debug, Clone, PartialEq)]
pub enum Read {
    Get {
        table: String,
        key: String,
        got: Option<String>,
    },
    Find {
        table: String,
        filter: String,
        limit: Option<u32>,
        got: String,
    },
    Count {
        table: String,
        filter: String,
        got: u64,
    },
}

impl Read {
    /// The bytes it holds.
    fn size(&self) -> usize {
        match self {
            Read::Get { table, key, got } => {
                table.len() + key.len() + got.as_ref().map_or(0, String::len)
            }
            Read::Find {
                table, filter, got, ..
            } => table.len() + filter.len() + got.len(),
            Read::Count { table, filter, .. } => table.len() + filter.len() + 8,
        }
    }
}

/// What one call of a pure flow did that the host saw: its reads, or that it did something
/// that is not a read (or read more than an entry of [`Kept`] may hold).
#[derive(Debug, Default)]
pub struct Recorder {
    reads: Vec<Read>,
    bytes: usize,
    unkeepable: bool,
}

/// The most reads one kept call may have.
const MAX_READS: usize = 64;

impl Recorder {
    /// Adds a read the call made.
    pub fn read(&mut self, read: Read) {
        if self.unkeepable {
            return;
        }
        self.bytes += read.size();
        if self.reads.len() == MAX_READS || self.bytes > MAX_ENTRY {
            self.other();
            return;
        }
        self.reads.push(read);
    }

    /// Whether a read whose answer is `answer` bytes long may still be recorded: checked before
    /// the answer is copied, so a call that cannot be kept (it did something else, or a `find`
    /// returned megabytes) costs no copy. A read that does not fit makes the call not kept.
    pub fn fits(&mut self, answer: usize) -> bool {
        if !self.unkeepable && self.bytes.saturating_add(answer) > MAX_ENTRY {
            self.other();
        }
        !self.unkeepable
    }

    /// The call did something besides reading tables: it is not kept.
    pub fn other(&mut self) {
        self.unkeepable = true;
        self.reads = Vec::new();
    }

    /// The reads, if the call may be kept.
    fn into_reads(self) -> Option<Vec<Read>> {
        (!self.unkeepable).then_some(self.reads)
    }
}

/// Outputs of pure flows' calls kept across runs, each with the reads that made it; bounded
/// by `KEPT_BYTES`, past which it starts over.
#[derive(Default)]
pub struct Kept {
    inner: Mutex<KeptInner>,
    /// The tables kept calls have read rows of by key: a run follows its own upserts into
    /// these ([`Memo::upserted`]). It only grows (a handful of names).
    tracked: RwLock<HashSet<String>>,
}

#[derive(Default)]
struct KeptInner {
    /// Per flow name, per input.
    entries: HashMap<String, HashMap<String, Arc<KeptCall>>>,
    bytes: usize,
}

/// A kept call: which version of the flow made it, what it read and what it returned.
#[derive(Debug)]
pub struct KeptCall {
    flow: Weak<FlowEntry>,
    pub reads: Vec<Read>,
    pub output: String,
    size: usize,
}

/// What [`Kept`] may hold (inputs, outputs, reads), and one entry at most.
const KEPT_BYTES: usize = 16 << 20;
const MAX_ENTRY: usize = KEPT_BYTES / 64;

impl Kept {
    /// The call of `flow` (this version of it) with `input` kept from an earlier run, to be
    /// checked by reading its [`KeptCall::reads`] again.
    pub fn get(&self, flow: &Arc<FlowEntry>, input: &str) -> Option<Arc<KeptCall>> {
        let inner = lock(&self.inner);
        let call = inner.entries.get(&flow.manifest.name)?.get(input)?;
        Weak::ptr_eq(&call.flow, &Arc::downgrade(flow)).then(|| call.clone())
    }

    /// Whether kept calls have read rows of `table` by key.
    pub fn tracks(&self, table: &str) -> bool {
        let tracked = self.tracked.read().unwrap_or_else(|e| e.into_inner());
        tracked.contains(table)
    }

    /// Keeps a successful call of `flow` with `input`, unless what it did cannot be checked.
    pub fn keep(&self, flow: &Arc<FlowEntry>, input: String, recorder: Recorder, output: &str) {
        let Some(reads) = recorder.into_reads() else {
            return;
        };
        let size = input.len() + output.len() + reads.iter().map(Read::size).sum::<usize>();
        if size > MAX_ENTRY {
            return;
        }
        for read in &reads {
            if let Read::Get { table, .. } = read {
                if !self.tracks(table) {
                    let mut tracked = self.tracked.write().unwrap_or_else(|e| e.into_inner());
                    tracked.insert(table.clone());
                }
            }
        }
        let call = Arc::new(KeptCall {
            flow: Arc::downgrade(flow),
            reads,
            output: output.to_string(),
            size,
        });
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        if inner.bytes + size > KEPT_BYTES {
            inner.entries.clear();
            inner.bytes = 0;
        }
        inner.bytes += size;
        let name = &flow.manifest.name;
        if !inner.entries.contains_key(name) {
            inner.entries.insert(name.clone(), HashMap::new());
        }
        let replaced = inner
            .entries
            .get_mut(name)
            .and_then(|per_flow| per_flow.insert(input, call));
        if let Some(old) = replaced {
            inner.bytes -= old.size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pure_flow(tables: &[&str]) -> crate::manifest::Manifest {
        let text = format!(
            "title: Peek\npure: true\ngrants:\n  tables:\n    read: [{}]\n",
            tables.join(", ")
        );
        crate::manifest::Manifest::parse(std::path::Path::new("flows/peek.yaml"), &text).unwrap()
    }

    #[test]
    fn memo_entries_follow_writes_to_the_flows_tables_only() {
        let flow = pure_flow(&["A", "B"]);
        let mut memo = Memo::default();
        let v0 = memo.lookup(&flow, "in").unwrap_err();
        memo.put(&flow, "in".into(), v0, "out");
        assert_eq!(memo.lookup(&flow, "in"), Ok("out".to_string()));
        assert!(memo.lookup(&flow, "other").is_err());
        memo.wrote("C");
        assert_eq!(memo.lookup(&flow, "in"), Ok("out".to_string()));
        memo.wrote("B");
        let v1 = memo.lookup(&flow, "in").unwrap_err();
        assert!(v1 > v0);
        // Computed again under the new version: counted once, not twice.
        memo.put(&flow, "in".into(), v1, "out2");
        assert_eq!(memo.bytes, "in".len() + "out2".len());
        assert_eq!(memo.lookup(&flow, "in"), Ok("out2".to_string()));
    }

    #[test]
    fn a_runs_own_upserts_are_followed_until_another_write_to_their_table() {
        let row = |text: &str| {
            let mut row = BoundRow::new(1, text.len());
            row.set(0, crate::store::ColumnValue::Text(text));
            row
        };
        let text = |got: Option<Arc<BoundRow>>| got.and_then(|r| r.get(0).map(|v| v.key_text()));
        let mut memo = Memo::default();
        memo.upserted("A", "k", Some(row("one")));
        memo.upserted("A", "j", Some(row("j")));
        memo.upserted("B", "k", Some(row("b")));
        assert_eq!(text(memo.own_row("A", "k")).as_deref(), Some("one"));
        // Upserted again: the later row; not known (a JSON-bound backend, a failed upsert):
        // forgotten.
        memo.upserted("A", "k", Some(row("two")));
        assert_eq!(text(memo.own_row("A", "k")).as_deref(), Some("two"));
        memo.upserted("A", "k", None);
        assert!(memo.own_row("A", "k").is_none());
        assert!(memo.own_row("A", "j").is_some());
        // Any other write forgets the table's rows, and only that table's.
        memo.forget_rows("A");
        assert!(memo.own_row("A", "j").is_none());
        assert_eq!(text(memo.own_row("B", "k")).as_deref(), Some("b"));
        memo.forget_rows("B");
        assert_eq!(memo.rows.bytes, 0);
        // Past the bound, a row is not kept, and the key's older row is forgotten.
        memo.upserted("A", "k", Some(row("small")));
        memo.upserted("A", "k", Some(row(&"x".repeat(RUN_ROWS_BYTES))));
        assert!(memo.own_row("A", "k").is_none());
        assert_eq!(memo.rows.bytes, 0);
    }

    #[test]
    fn kept_calls_say_which_tables_they_read_rows_of() {
        let flow = Arc::new(FlowEntry::without_component(pure_flow(&["A", "B"])));
        let kept = Kept::default();
        assert!(!kept.tracks("A"));
        let find = Read::Find {
            table: "B".into(),
            filter: "{}".into(),
            limit: None,
            got: "[]".into(),
        };
        kept.keep(&flow, "in".into(), recorded([get("k", "row"), find]), "out");
        assert!(kept.tracks("A"));
        assert!(
            !kept.tracks("B"),
            "a find is checked by reading again, never by a row"
        );
        let mut logged = recorded([get("k", "row")]);
        logged.other();
        let other = Kept::default();
        other.keep(&flow, "in".into(), logged, "out");
        assert!(!other.tracks("A"), "a call that is not kept tracks nothing");
    }

    #[test]
    fn the_memo_starts_over_when_full() {
        let flow = pure_flow(&["A"]);
        let mut memo = Memo::default();
        let big = "x".repeat(MEMO_BYTES / 20);
        for i in 0..40 {
            memo.put(&flow, format!("in{i}"), 0, &big);
            assert!(memo.bytes <= MEMO_BYTES, "{} bytes", memo.bytes);
        }
        assert!(memo.lookup(&flow, "in39").is_ok());
        assert!(memo.lookup(&flow, "in0").is_err());
        // An output larger than a sixteenth of the memo is not kept at all.
        memo.put(&flow, "huge".into(), 0, &"y".repeat(MEMO_BYTES / 8));
        assert!(memo.lookup(&flow, "huge").is_err());
    }

    fn get(key: &str, got: &str) -> Read {
        Read::Get {
            table: "A".into(),
            key: key.into(),
            got: Some(got.into()),
        }
    }

    fn recorded(reads: impl IntoIterator<Item = Read>) -> Recorder {
        let mut recorder = Recorder::default();
        reads.into_iter().for_each(|r| recorder.read(r));
        recorder
    }

    #[test]
    fn a_kept_call_belongs_to_the_version_of_the_flow_that_made_it() {
        let flow = Arc::new(FlowEntry::without_component(pure_flow(&["A"])));
        let kept = Kept::default();
        kept.keep(&flow, "in".into(), recorded([get("k", "row")]), "out");
        let call = kept.get(&flow, "in").unwrap();
        assert_eq!(
            (call.reads.as_slice(), call.output.as_str()),
            (&[get("k", "row")][..], "out")
        );
        assert!(kept.get(&flow, "other").is_none());
        // The same manifest loaded again is another version.
        let reloaded = Arc::new(FlowEntry::without_component(pure_flow(&["A"])));
        assert!(kept.get(&reloaded, "in").is_none());
        // Kept again: replaced, counted once.
        kept.keep(&flow, "in".into(), recorded([get("k", "row2")]), "out2");
        let size = "in".len() + "out2".len() + get("k", "row2").size();
        assert_eq!(lock(&kept.inner).bytes, size);
    }

    #[test]
    fn a_call_that_did_more_than_read_or_read_too_much_is_not_kept() {
        let flow = Arc::new(FlowEntry::without_component(pure_flow(&["A"])));
        let kept = Kept::default();
        let mut other = recorded([get("k", "row")]);
        other.other();
        other.read(get("j", "row"));
        kept.keep(&flow, "logged".into(), other, "out");
        assert!(kept.get(&flow, "logged").is_none());

        let reads = |n: usize| (0..n).map(|i| get(&format!("k{i}"), "row"));
        kept.keep(&flow, "most".into(), recorded(reads(MAX_READS)), "out");
        assert_eq!(kept.get(&flow, "most").unwrap().reads.len(), MAX_READS);
        kept.keep(&flow, "more".into(), recorded(reads(MAX_READS + 1)), "out");
        assert!(kept.get(&flow, "more").is_none());
        let big = "x".repeat(MAX_ENTRY);
        kept.keep(&flow, "big read".into(), recorded([get("k", &big)]), "out");
        kept.keep(&flow, "big output".into(), Recorder::default(), &big);
        assert!(kept.get(&flow, "big read").is_none() && kept.get(&flow, "big output").is_none());

        // An answer too big is refused before it is copied, and so is any read after it.
        let mut recorder = recorded([get("k", "row")]);
        assert!(recorder.fits(MAX_ENTRY / 2));
        assert!(!recorder.fits(MAX_ENTRY));
        assert!(!recorder.fits(1));
        kept.keep(&flow, "too big".into(), recorder, "out");
        assert!(kept.get(&flow, "too big").is_none());
        let mut logged = Recorder::default();
        logged.other();
        assert!(!logged.fits(0));
    }

    #[test]
    fn kept_calls_start_over_when_full() {
        let flow = Arc::new(FlowEntry::without_component(pure_flow(&["A"])));
        let kept = Kept::default();
        let out = "x".repeat(MAX_ENTRY / 2);
        for i in 0..200 {
            kept.keep(&flow, format!("in{i}"), Recorder::default(), &out);
            assert!(lock(&kept.inner).bytes <= KEPT_BYTES);
        }
        assert!(kept.get(&flow, "in199").is_some());
        assert!(kept.get(&flow, "in0").is_none());
    }
}
