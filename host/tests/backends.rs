//! The table and history contract, written once over `&dyn TableBackend` /
//! `&dyn HistoryBackend` and run against every backend: each contract test is a function
//! taking a [`Db`] (a fresh database), and [`contract!`] makes one `#[test]` per backend of it
//! (`sqlite::NAME` against a file in a temporary folder, `postgres::NAME` against a throwaway
//! PostgreSQL server).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::pg::PgServer;
use flowhost::history::postgres::PgHistory;
use flowhost::history::sqlite::SqliteHistory;
use flowhost::history::{HistoryBackend, LogLine, RunStatus, Trigger, INTERRUPTED};
use flowhost::pg::{Pg, PgUrl};
use flowhost::rate_limits::RateLimitSeen;
use flowhost::schema::{Schemas, TableSchema};
use flowhost::store::postgres::PgTables;
use flowhost::store::sqlite::SqliteTables;
use flowhost::store::{
    CheckedUpsert, ColumnSearch, DeferredUpsert, RowWindow, StoreError, TableBackend, TableError,
    UpsertRow,
};
use serde_json::{json, Map, Value};

/// A fresh, empty database of one backend.
trait Db {
    fn tables(&self, schemas: Vec<TableSchema>) -> Result<Arc<dyn TableBackend>, StoreError>;
    fn history(&self) -> Arc<dyn HistoryBackend>;
}

struct PgDb {
    server: PgServer,
    url: String,
}

impl PgDb {
    fn new() -> PgDb {
        let server = PgServer::start();
        let url = server.create_db("contract");
        PgDb { server, url }
    }

    fn pg(&self) -> Pg {
        Pg::connect(PgUrl::parse(&self.url).unwrap()).unwrap()
    }
}

impl Db for PgDb {
    fn tables(&self, schemas: Vec<TableSchema>) -> Result<Arc<dyn TableBackend>, StoreError> {
        let schemas = Arc::new(Schemas::from_schemas(schemas).unwrap());
        Ok(Arc::new(PgTables::open(self.pg(), schemas)?))
    }

    fn history(&self) -> Arc<dyn HistoryBackend> {
        Arc::new(PgHistory::open(self.pg()).unwrap())
    }
}

/// An SQLite file in a temporary folder (history in a file of its own, as `serve` keeps it).
struct SqliteDb {
    dir: tempfile::TempDir,
}

impl SqliteDb {
    fn new() -> SqliteDb {
        SqliteDb {
            dir: tempfile::tempdir().unwrap(),
        }
    }
}

impl Db for SqliteDb {
    fn tables(&self, schemas: Vec<TableSchema>) -> Result<Arc<dyn TableBackend>, StoreError> {
        let schemas = Arc::new(Schemas::from_schemas(schemas).unwrap());
        Ok(Arc::new(SqliteTables::open(
            &self.dir.path().join("flowhost.db"),
            schemas,
        )?))
    }

    fn history(&self) -> Arc<dyn HistoryBackend> {
        Arc::new(SqliteHistory::open(&self.dir.path().join("flowhost-history.db")).unwrap())
    }
}

/// One `#[test]` per backend for each contract function.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$name(&super::SqliteDb::new());
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                super::$name(&super::PgDb::new());
            })*
        }
    };
}

contract!(
    tables_are_created_and_migrated_additively_and_a_retype_is_refused,
    every_operation_on_a_keyed_table,
    keyless_rows_are_numbered_by_id_never_reused,
    values_come_back_as_they_went_in,
    deferred_upserts_apply_in_order_and_the_last_wins,
    insert_many_is_all_or_nothing,
    a_rolled_back_unit_leaves_nothing_and_a_commit_shows_all_at_once,
    a_failed_runs_inserts_into_a_keep_on_failure_table_survive,
    export_and_count_search_literally_within_a_window,
    history_runs_from_start_to_prune,
    switches_and_rate_limits_are_kept,
    a_lock_wait_ends_at_the_deadline_as_a_timeout,
    import_and_export_through_the_store_are_all_or_nothing,
    find_returns_1000_rows_unless_asked_and_never_more_than_10000,
    an_export_reads_one_snapshot_while_others_write,
);

fn schema(yaml: &str) -> TableSchema {
    TableSchema::from_yaml(yaml, Path::new("tables/test.yaml")).unwrap()
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn typed() -> TableSchema {
    schema(
        "name: Typed\nkey: id\ncolumns:\n  - { name: id, type: text }\n  - { name: n, type: number }\n  - { name: i, type: integer }\n  - { name: b, type: boolean }\n  - { name: j, type: json }\n  - { name: s, type: text }\nindexes: [s]\n",
    )
}

fn keyless() -> TableSchema {
    schema("name: Log\ncolumns:\n  - { name: msg, type: text }\n")
}

fn all_rows(tables: &dyn TableBackend, table: &str) -> Vec<Map<String, Value>> {
    let mut rows = Vec::new();
    tables
        .export_matching(table, None, RowWindow::ALL, &mut |r| {
            rows.push(r);
            true
        })
        .unwrap();
    rows
}

fn tables_are_created_and_migrated_additively_and_a_retype_is_refused(db: &dyn Db) {
    let v1 = schema(
        "name: M\nkey: a\ncolumns:\n  - { name: a, type: text }\n  - { name: b, type: number }\n",
    );
    let t = db.tables(vec![v1]).unwrap();
    let mut u = t.begin().unwrap();
    u.insert("M", &obj(json!({"a": "x", "b": 1.5}))).unwrap();
    u.commit().unwrap();
    drop(t);
    let v2 = schema(
        "name: M\nkey: a\ncolumns:\n  - { name: a, type: text }\n  - { name: b, type: number }\n  - { name: c, type: boolean }\nindexes: [c]\n",
    );
    let t = db.tables(vec![v2.clone()]).unwrap();
    assert_eq!(
        all_rows(t.as_ref(), "M"),
        vec![obj(json!({"a": "x", "b": 1.5, "c": null}))],
        "the row stays and gains the new column"
    );
    let mut u = t.begin().unwrap();
    assert!(u.update("M", "x", &obj(json!({"c": true}))).unwrap());
    u.commit().unwrap();
    drop(t);
    // Opening again with the same schema changes nothing.
    let t = db.tables(vec![v2]).unwrap();
    assert_eq!(all_rows(t.as_ref(), "M")[0]["c"], json!(true));
    drop(t);
    let retyped = schema(
        "name: M\nkey: a\ncolumns:\n  - { name: a, type: text }\n  - { name: b, type: text }\n  - { name: c, type: boolean }\n",
    );
    let err = db.tables(vec![retyped]).unwrap_err().to_string();
    assert!(
        err.contains(
            "table `M`: column `b` is number in the database but text in tables/test.yaml; changing a column's type is not migrated (restore the type, or add a new column)"
        ),
        "{err}"
    );
    let removed = schema(
        "name: M\nkey: a\ncolumns:\n  - { name: a, type: text }\n  - { name: c, type: boolean }\n",
    );
    let err = db.tables(vec![removed]).unwrap_err().to_string();
    assert!(
        err.contains("table `M`: column `b` (number) is in the database but not in tables/test.yaml; removing a column is not migrated"),
        "{err}"
    );
}

fn every_operation_on_a_keyed_table(db: &dyn Db) {
    let t = db.tables(vec![typed()]).unwrap();
    let mut u = t.begin().unwrap();
    assert_eq!(
        u.insert("Typed", &obj(json!({"id": "a", "n": 1, "s": "x"})))
            .unwrap(),
        "a"
    );
    assert_eq!(
        u.insert("Typed", &obj(json!({"id": "b", "s": "y"})))
            .unwrap(),
        "b"
    );
    u.insert("Typed", &obj(json!({"id": "c"}))).unwrap();
    let dup = u.insert("Typed", &obj(json!({"id": "a"}))).unwrap_err();
    assert_eq!(
        dup,
        TableError::Conflict("table `Typed`: a row with key `a` already exists".into())
    );
    // A conflict leaves the unit usable.
    assert_eq!(u.get("Typed", "a").unwrap().unwrap()["n"], json!(1));
    assert_eq!(u.get("Typed", "zz").unwrap(), None);
    let found = u.find("Typed", &obj(json!({"s": null})), None).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["id"], json!("c"));
    assert_eq!(u.find("Typed", &Map::new(), Some(2)).unwrap().len(), 2);
    assert_eq!(u.count("Typed", &obj(json!({"s": "x"}))).unwrap(), 1);
    assert_eq!(u.count("Typed", &Map::new()).unwrap(), 3);
    assert!(matches!(
        u.find("Typed", &obj(json!({"nope": 1})), None),
        Err(TableError::InvalidInput(_))
    ));
    assert!(matches!(u.get("Nope", "a"), Err(TableError::NotFound(_))));
    assert!(u
        .update("Typed", "a", &obj(json!({"n": 2.5, "id": "a"})))
        .unwrap());
    assert!(!u.update("Typed", "zz", &obj(json!({"n": 2}))).unwrap());
    let rename = u
        .update("Typed", "a", &obj(json!({"id": "z"})))
        .unwrap_err();
    assert!(
        matches!(&rename, TableError::InvalidInput(m) if m.contains("update cannot change the key `id` of row `a`")),
        "{rename:?}"
    );
    assert_eq!(
        u.upsert("Typed", &obj(json!({"id": "a", "s": "new"})))
            .unwrap(),
        "a"
    );
    assert_eq!(
        u.get("Typed", "a").unwrap().unwrap(),
        obj(json!({"id": "a", "n": null, "i": null, "b": null, "j": null, "s": "new"})),
        "an upsert replaces every column"
    );
    assert!(u.delete("Typed", "b").unwrap());
    assert!(!u.delete("Typed", "b").unwrap());
    assert!(u.wrote());
    u.commit().unwrap();
    let mut u = t.begin().unwrap();
    assert_eq!(u.clear("Typed").unwrap(), 2);
    u.commit().unwrap();
    assert_eq!(t.count_matching("Typed", None).unwrap(), 0);
}

fn keyless_rows_are_numbered_by_id_never_reused(db: &dyn Db) {
    let t = db.tables(vec![keyless()]).unwrap();
    let mut u = t.begin().unwrap();
    let first = u.insert("Log", &obj(json!({"msg": "one"}))).unwrap();
    let second = u
        .insert("Log", &obj(json!({"msg": "two", "_id": 99})))
        .unwrap();
    let first_id: i64 = first.parse().unwrap();
    assert_eq!(
        second.parse::<i64>().unwrap(),
        first_id + 1,
        "`_id` given is ignored"
    );
    assert_eq!(
        u.get("Log", &first).unwrap().unwrap(),
        obj(json!({"_id": first_id, "msg": "one"}))
    );
    assert_eq!(u.get("Log", "not a number").unwrap(), None);
    assert_eq!(
        u.find("Log", &obj(json!({"_id": first_id + 1})), None)
            .unwrap()[0]["msg"],
        json!("two")
    );
    assert!(u.delete("Log", &second).unwrap());
    u.commit().unwrap();
    let mut u = t.begin().unwrap();
    let third = u.insert("Log", &obj(json!({"msg": "three"}))).unwrap();
    assert_eq!(
        third.parse::<i64>().unwrap(),
        first_id + 2,
        "a deleted `_id` is not reused"
    );
    u.commit().unwrap();
}

fn values_come_back_as_they_went_in(db: &dyn Db) {
    let t = db.tables(vec![typed()]).unwrap();
    let rows = [
        json!({"id": "ints", "n": 3.0, "i": 9_007_199_254_740_993_i64, "b": true, "j": {"a": [1, "x", null]}, "s": "true"}),
        json!({"id": "big", "n": 1e300, "i": -5, "b": false, "j": "just text", "s": ""}),
        json!({"id": "frac", "n": -0.25, "i": null, "b": null, "j": null, "s": "ünïcødé 日本 🦀"}),
        json!({"id": "huge", "n": 1e17, "i": 0, "b": true, "j": [], "s": "'; DROP TABLE t_typed; --"}),
    ];
    let mut u = t.begin().unwrap();
    for r in &rows {
        u.insert("Typed", &obj(r.clone())).unwrap();
    }
    u.commit().unwrap();
    let mut u = t.begin().unwrap();
    let got = |u: &mut Box<dyn flowhost::store::UnitOfWork>, k: &str| {
        Value::Object(u.get("Typed", k).unwrap().unwrap())
    };
    assert_eq!(
        got(&mut u, "ints"),
        json!({"id": "ints", "n": 3, "i": 9_007_199_254_740_993_i64, "b": true, "j": {"a": [1, "x", null]}, "s": "true"})
    );
    assert_eq!(got(&mut u, "big"), rows[1]);
    assert_eq!(got(&mut u, "frac"), rows[2]);
    assert_eq!(
        got(&mut u, "huge")["n"],
        json!(1e17),
        "beyond 2^53 a number stays a float"
    );
    assert_eq!(got(&mut u, "huge")["s"], json!("'; DROP TABLE t_typed; --"));
    // Values filter with the same mapping (json by value).
    assert_eq!(
        u.count("Typed", &obj(json!({"j": {"a": [1, "x", null]}})))
            .unwrap(),
        1
    );
    assert_eq!(u.count("Typed", &obj(json!({"b": true}))).unwrap(), 2);
    assert_eq!(u.count("Typed", &obj(json!({"n": 3}))).unwrap(), 1);
    assert_eq!(u.count("Typed", &obj(json!({"i": null}))).unwrap(), 1);
    let wrong = u
        .insert("Typed", &obj(json!({"id": "w", "i": 1.5})))
        .unwrap_err();
    assert!(matches!(wrong, TableError::InvalidInput(_)), "{wrong:?}");
    let no_key = u.insert("Typed", &obj(json!({"s": "x"}))).unwrap_err();
    assert!(
        matches!(&no_key, TableError::InvalidInput(m) if m.contains("no value for the key column `id`")),
        "{no_key:?}"
    );
    assert_eq!(
        t.max_text("Typed", "s").unwrap().as_deref(),
        Some("ünïcødé 日本 🦀")
    );
    assert!(matches!(
        t.max_text("Typed", "nope"),
        Err(TableError::InvalidInput(_))
    ));
}

fn deferred_upserts_apply_in_order_and_the_last_wins(db: &dyn Db) {
    let t = db.tables(vec![typed(), keyless()]).unwrap();
    let mut batch = Vec::new();
    for i in 0..64 {
        let row = obj(json!({"id": format!("k{}", i % 40), "i": i}));
        // Every other row as the typed form's fields, the rest as JSON objects.
        let row = match i % 2 {
            0 => UpsertRow::Json(row.clone()),
            _ => UpsertRow::typed_of(&row),
        };
        match t.check_upsert("Typed", row).unwrap() {
            CheckedUpsert::Later { key, row } => {
                assert_eq!(key, format!("k{}", i % 40));
                batch.push(DeferredUpsert {
                    table: "Typed".into(),
                    row,
                });
            }
            CheckedUpsert::Now(row) => panic!("a keyed table's upsert must wait: {row:?}"),
        }
    }
    assert!(matches!(
        t.check_upsert("Log", UpsertRow::Json(obj(json!({"msg": "x"})))),
        Ok(CheckedUpsert::Now(_))
    ));
    assert!(matches!(
        t.check_upsert("Typed", UpsertRow::Json(obj(json!({"id": "x", "i": "no"})))),
        Err(TableError::InvalidInput(_))
    ));
    let mut u = t.begin().unwrap();
    u.upsert_deferred(batch).unwrap();
    u.commit().unwrap();
    assert_eq!(t.count_matching("Typed", None).unwrap(), 40);
    let mut u = t.begin().unwrap();
    assert_eq!(
        u.get("Typed", "k0").unwrap().unwrap()["i"],
        json!(40),
        "the later upsert wins"
    );
    assert_eq!(u.get("Typed", "k39").unwrap().unwrap()["i"], json!(39));
}

fn insert_many_is_all_or_nothing(db: &dyn Db) {
    let t = db.tables(vec![typed()]).unwrap();
    let mut u = t.begin().unwrap();
    u.insert("Typed", &obj(json!({"id": "taken"}))).unwrap();
    let rows: Vec<_> = ["a", "b", "taken", "c"]
        .iter()
        .map(|k| obj(json!({"id": k})))
        .collect();
    let err = u.insert_many("Typed", &rows).unwrap_err();
    assert_eq!(
        err,
        TableError::Conflict(
            "row 3 of 4: table `Typed`: a row with key `taken` already exists (nothing was inserted)".into()
        )
    );
    assert_eq!(
        u.count("Typed", &Map::new()).unwrap(),
        1,
        "nothing of the batch stays"
    );
    let ok: Vec<_> = ["a", "b"].iter().map(|k| obj(json!({"id": k}))).collect();
    assert_eq!(u.insert_many("Typed", &ok).unwrap(), 2);
    u.commit().unwrap();
    assert_eq!(t.count_matching("Typed", None).unwrap(), 3);
}

fn a_rolled_back_unit_leaves_nothing_and_a_commit_shows_all_at_once(db: &dyn Db) {
    let t = db.tables(vec![typed()]).unwrap();
    let mut a = t.begin().unwrap();
    a.insert("Typed", &obj(json!({"id": "1"}))).unwrap();
    a.insert("Typed", &obj(json!({"id": "2"}))).unwrap();
    a.rollback();
    assert_eq!(t.count_matching("Typed", None).unwrap(), 0);
    {
        let mut dropped = t.begin().unwrap();
        dropped.insert("Typed", &obj(json!({"id": "3"}))).unwrap();
    }
    assert_eq!(
        t.count_matching("Typed", None).unwrap(),
        0,
        "dropping a unit rolls back"
    );
    let mut a = t.begin().unwrap();
    a.insert("Typed", &obj(json!({"id": "1"}))).unwrap();
    a.insert("Typed", &obj(json!({"id": "2"}))).unwrap();
    let mut b = t.begin().unwrap();
    assert_eq!(
        b.count("Typed", &Map::new()).unwrap(),
        0,
        "uncommitted rows are not seen"
    );
    assert_eq!(b.get("Typed", "1").unwrap(), None);
    a.commit().unwrap();
    assert_eq!(
        b.count("Typed", &Map::new()).unwrap(),
        2,
        "both appear together"
    );
    b.rollback();
}

fn a_failed_runs_inserts_into_a_keep_on_failure_table_survive(db: &dyn Db) {
    let kept = schema(
        "name: Execution Log\nkeep_on_failure: true\ncolumns:\n  - { name: msg, type: text }\n",
    );
    let t = db.tables(vec![kept, typed()]).unwrap();
    let mut setup = t.begin().unwrap();
    setup
        .insert("Execution Log", &obj(json!({"msg": "earlier"})))
        .unwrap();
    setup.commit().unwrap();
    let mut u = t.begin().unwrap();
    u.insert("Execution Log", &obj(json!({"msg": "failing run"})))
        .unwrap();
    u.insert("Typed", &obj(json!({"id": "gone"}))).unwrap();
    let first = all_rows(t.as_ref(), "Execution Log")[0]["_id"].clone();
    assert!(u.delete("Execution Log", &first.to_string()).unwrap());
    assert_eq!(u.rollback_keeping_inserts().unwrap(), 1);
    let msgs: Vec<Value> = all_rows(t.as_ref(), "Execution Log")
        .into_iter()
        .map(|r| r["msg"].clone())
        .collect();
    assert_eq!(
        msgs,
        vec![json!("earlier"), json!("failing run")],
        "its delete rolled back, its insert kept"
    );
    assert_eq!(t.count_matching("Typed", None).unwrap(), 0);
}

fn export_and_count_search_literally_within_a_window(db: &dyn Db) {
    let t = db.tables(vec![typed()]).unwrap();
    let mut u = t.begin().unwrap();
    for (k, s) in [
        ("1", "100% sure"),
        ("2", "a_b"),
        ("3", "AxB"),
        ("4", "x'); DROP--"),
        ("5", "plain"),
    ] {
        u.insert(
            "Typed",
            &obj(json!({"id": k, "s": s, "i": k.parse::<i64>().unwrap()})),
        )
        .unwrap();
    }
    u.commit().unwrap();
    let search = |column: &str, contains: &str| ColumnSearch {
        column: column.into(),
        contains: contains.into(),
    };
    let keys = |s: Option<&ColumnSearch>, w: RowWindow| {
        let mut out = Vec::new();
        let n = t
            .export_matching("Typed", s, w, &mut |r| {
                out.push(r["id"].as_str().unwrap().to_string());
                true
            })
            .unwrap();
        assert_eq!(n as usize, out.len());
        out
    };
    assert_eq!(
        keys(Some(&search("s", "%")), RowWindow::ALL),
        ["1"],
        "% is a character, not a wildcard"
    );
    assert_eq!(keys(Some(&search("s", "_")), RowWindow::ALL), ["2"]);
    assert_eq!(
        keys(Some(&search("s", "ab")), RowWindow::ALL),
        Vec::<String>::new()
    );
    assert_eq!(
        keys(Some(&search("s", "axb")), RowWindow::ALL),
        ["3"],
        "case is ignored"
    );
    assert_eq!(keys(Some(&search("s", "'); DROP")), RowWindow::ALL), ["4"]);
    assert_eq!(
        keys(Some(&search("i", "3")), RowWindow::ALL),
        ["3"],
        "numbers match as text"
    );
    assert_eq!(
        t.count_matching("Typed", Some(&search("s", "A"))).unwrap(),
        3
    );
    assert_eq!(
        keys(
            None,
            RowWindow {
                offset: 1,
                limit: Some(2)
            }
        ),
        ["2", "3"]
    );
    assert_eq!(
        keys(
            None,
            RowWindow {
                offset: 4,
                limit: None
            }
        ),
        ["5"]
    );
    let mut seen = 0;
    let n = t
        .export_matching("Typed", None, RowWindow::ALL, &mut |_| {
            seen += 1;
            seen < 2
        })
        .unwrap();
    assert_eq!((n, seen), (2, 2), "export stops when told");
    let err = t
        .count_matching("Typed", Some(&search("nope", "x")))
        .unwrap_err();
    assert!(
        matches!(&err, TableError::InvalidInput(m) if m.contains("has no column `nope`")),
        "{err:?}"
    );
    // Still usable afterwards (the early stop left no session behind in a bad state).
    assert_eq!(t.count_matching("Typed", None).unwrap(), 5);
}

fn line(i: usize) -> LogLine {
    LogLine {
        at: flowhost::history::now_rfc3339(),
        level: "info".into(),
        flow: "M10".into(),
        message: format!("line {i}"),
    }
}

fn history_runs_from_start_to_prune(db: &dyn Db) {
    let h = db.history();
    let ok = h
        .start("M10", Trigger::Schedule, None, r#"{"a":1}"#)
        .unwrap();
    let child_ok = h.start("helper", Trigger::Call, Some(ok), "{}").unwrap();
    let child_bad = h.start("helper", Trigger::Call, Some(ok), "{}").unwrap();
    h.finish_with_dropped_logs(child_ok, RunStatus::Ok, Some("{}"), None, &[], 0, &[])
        .unwrap();
    h.finish_with_dropped_logs(child_bad, RunStatus::Error, None, Some("boom"), &[], 0, &[])
        .unwrap();
    let logs: Vec<LogLine> = (0..205).map(line).collect();
    let stats = flowhost::history::ChildStats {
        calls: 2,
        failures: 1,
        ..flowhost::history::ChildStats::new("helper")
    };
    h.finish_with_dropped_logs(
        ok,
        RunStatus::Ok,
        Some(&"x".repeat(5000)),
        None,
        &logs,
        3,
        std::slice::from_ref(&stats),
    )
    .unwrap();
    assert_eq!(
        h.get(child_ok).unwrap(),
        None,
        "a child that succeeded keeps no row"
    );
    let run = h.get(ok).unwrap().unwrap();
    assert_eq!(
        (run.status, run.trigger, run.logs.len(), run.logs_dropped),
        (RunStatus::Ok, Trigger::Schedule, 200, 8)
    );
    assert_eq!(run.logs[199].message, "line 199");
    assert!(
        run.output
            .as_deref()
            .unwrap()
            .ends_with("…(truncated 904 bytes)"),
        "{:?}",
        run.output
    );
    assert_eq!(run.children, vec![stats]);
    assert!(run.ended.is_some());
    let bad = h.start("M10", Trigger::Cli, None, "{}").unwrap();
    h.finish_with_dropped_logs(bad, RunStatus::Error, None, Some("failed"), &[], 0, &[])
        .unwrap();
    let skipped = h
        .record_skipped("M10", Trigger::Schedule, "overlap")
        .unwrap();
    let running = h.start("U02", Trigger::Api, None, "{}").unwrap();
    let ids = |runs: Vec<flowhost::history::RunRecord>| {
        runs.into_iter().map(|r| r.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(h.page(None, None, 0, 100).unwrap()),
        [running, skipped, bad, child_bad, ok]
    );
    assert_eq!(ids(h.page(Some("M10"), None, 1, 2).unwrap()), [bad, ok]);
    assert_eq!(
        ids(h.page(None, Some(RunStatus::Error), 0, 100).unwrap()),
        [bad, child_bad]
    );
    assert_eq!(
        ids(h
            .page(Some("U02"), Some(RunStatus::Running), 0, 100)
            .unwrap()),
        [running]
    );
    let fr = h.flow_runs("M10").unwrap();
    assert_eq!(fr.last.map(|r| r.id), Some(bad));
    assert_eq!(fr.consecutive_failures, 1);
    assert_eq!(fr.last_success, run.ended);
    assert!(fr.last_tick.is_some());
    let err = h
        .finish_with_dropped_logs(9_999_999, RunStatus::Ok, None, None, &[], 0, &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("no run with id 9999999 to finish"), "{err}");
    assert_eq!(
        h.mark_interrupted().unwrap(),
        0,
        "this process's running run is left alone"
    );
    assert_eq!(h.get(running).unwrap().unwrap().status, RunStatus::Running);
    assert_eq!(h.prune_older_than(Duration::from_secs(3600)).unwrap(), 0);
    // History keeps milliseconds and prunes what ended before the cutoff: wait until the
    // clock has left the millisecond the last run ended in (a fast machine finishes the
    // runs and prunes within one).
    let last_end = flowhost::history::now_rfc3339();
    while flowhost::history::now_rfc3339() <= last_end {
        std::thread::yield_now();
    }
    assert_eq!(
        h.prune_older_than(Duration::ZERO).unwrap(),
        4,
        "finished runs go, running ones stay"
    );
    assert_eq!(ids(h.page(None, None, 0, 100).unwrap()), [running]);
}

fn switches_and_rate_limits_are_kept(db: &dyn Db) {
    let h = db.history();
    assert_eq!(h.switch("M10").unwrap(), None);
    h.set_enabled("M10", true).unwrap();
    h.set_enabled("M10", false).unwrap();
    h.set_enabled("U02", true).unwrap();
    assert_eq!(h.switch("M10").unwrap(), Some(false));
    assert_eq!(
        h.switches().unwrap(),
        std::collections::BTreeMap::from([("M10".into(), false), ("U02".into(), true)])
    );
    assert!(h.rate_limits().unwrap().is_empty());
    let seen = |origin: &str, remaining: u64, at: &str| RateLimitSeen {
        origin: origin.into(),
        limit: Some(10_000),
        remaining: Some(remaining),
        reset: None,
        seen: at.into(),
    };
    h.record_rate_limits(&[
        seen("http://a", 9, "2026-01-01T00:00:00.000Z"),
        seen("http://b", u64::MAX, "2026-01-01T00:00:01.000Z"),
    ])
    .unwrap();
    h.record_rate_limits(&[seen("http://a", 8, "2026-01-01T00:00:02.000Z")])
        .unwrap();
    let stored = h.rate_limits().unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(
        (stored[0].origin.as_str(), stored[0].remaining),
        ("http://a", Some(8)),
        "newest first, latest wins"
    );
    assert_eq!(
        stored[1].remaining,
        Some(i64::MAX as u64),
        "clamped, not wrapped"
    );
}

fn a_lock_wait_ends_at_the_deadline_as_a_timeout(db: &dyn Db) {
    let t = db.tables(vec![typed()]).unwrap();
    let mut setup = t.begin().unwrap();
    setup.insert("Typed", &obj(json!({"id": "k"}))).unwrap();
    setup.commit().unwrap();
    let mut holder = t.begin().unwrap();
    holder
        .upsert("Typed", &obj(json!({"id": "k", "s": "first"})))
        .unwrap();
    // The deadline is shorter than the lock timeout: the wait ends there, as a timeout.
    let wait = Duration::from_millis(300);
    let mut waiter = t.begin().unwrap();
    waiter.set_lock_timeout(Duration::from_secs(30)).unwrap();
    let started = std::time::Instant::now();
    let deadline = started.checked_add(wait).unwrap();
    waiter.set_deadline(deadline);
    let err = waiter
        .upsert("Typed", &obj(json!({"id": "k", "s": "second"})))
        .unwrap_err();
    assert!(
        matches!(&err, TableError::Timeout(m) if m.contains("deadline")),
        "{err:?}"
    );
    assert!(waiter.lock_wait_expired().is_some());
    // The run counts as timed out, and a timed-out run rolls back.
    waiter.rollback();
    // Bounded by the deadline, not by the 30 s lock timeout.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    holder.commit().unwrap();
    let mut check = t.begin().unwrap();
    assert_eq!(
        check.get("Typed", "k").unwrap().unwrap()["s"],
        json!("first")
    );
}

fn import_and_export_through_the_store_are_all_or_nothing(db: &dyn Db) {
    let store = flowhost::store::Store::from_backend(db.tables(vec![typed(), keyless()]).unwrap());
    let rows = |keys: &[&str]| {
        keys.iter()
            .map(|k| obj(json!({"id": k, "s": k})))
            .collect::<Vec<_>>()
    };
    let err = store
        .import_rows("Typed", rows(&["a", "b", "a"]))
        .unwrap_err();
    assert_eq!(
        err,
        TableError::Conflict(
            "row 3: table `Typed`: a row with key `a` already exists (nothing was imported)".into()
        )
    );
    assert_eq!(store.row_count("Typed").unwrap(), 0);
    assert_eq!(
        store.import_rows("Typed", rows(&["a", "b", "c"])).unwrap(),
        3
    );
    assert_eq!(
        store
            .import_rows("Log", vec![obj(json!({"_id": 7, "msg": "x"}))])
            .unwrap(),
        1
    );
    let mut keys = Vec::new();
    let n = store
        .export_rows::<TableError>("Typed", |r| {
            keys.push(r["id"].clone());
            Ok(true)
        })
        .unwrap();
    assert_eq!((n, keys), (3, vec![json!("a"), json!("b"), json!("c")]));
    assert!(matches!(
        store.row_count("Nope"),
        Err(TableError::NotFound(_))
    ));
}

fn find_returns_1000_rows_unless_asked_and_never_more_than_10000(db: &dyn Db) {
    let t = db.tables(vec![keyless()]).unwrap();
    let rows: Vec<_> = (0..10_050)
        .map(|i| obj(json!({"msg": format!("m{i}")})))
        .collect();
    let mut u = t.begin().unwrap();
    assert_eq!(u.insert_many("Log", &rows).unwrap(), 10_050);
    u.commit().unwrap();
    let mut u = t.begin().unwrap();
    let default = u.find("Log", &Map::new(), None).unwrap();
    assert_eq!(default.len(), 1000);
    assert_eq!(default[0]["msg"], json!("m0"), "oldest first");
    assert_eq!(
        u.find("Log", &Map::new(), Some(20_000)).unwrap().len(),
        10_000
    );
    assert_eq!(u.find("Log", &Map::new(), Some(3)).unwrap().len(), 3);
    assert_eq!(u.count("Log", &Map::new()).unwrap(), 10_050);
}

fn an_export_reads_one_snapshot_while_others_write(db: &dyn Db) {
    let t = db.tables(vec![keyless()]).unwrap();
    let mut u = t.begin().unwrap();
    for i in 0..3 {
        u.insert("Log", &obj(json!({"msg": format!("before {i}")})))
            .unwrap();
    }
    u.commit().unwrap();
    let mut seen = Vec::new();
    let n = t
        .export_matching("Log", None, RowWindow::ALL, &mut |r| {
            if seen.is_empty() {
                // A writer commits while the export is under way: it is not blocked, and
                // the export does not see its row.
                let mut w = t.begin().unwrap();
                w.insert("Log", &obj(json!({"msg": "during"}))).unwrap();
                w.commit().unwrap();
            }
            seen.push(r["msg"].clone());
            true
        })
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(
        seen,
        [json!("before 0"), json!("before 1"), json!("before 2")]
    );
    assert_eq!(t.count_matching("Log", None).unwrap(), 4);
}

// PostgreSQL only: what SQLite has no counterpart for.

/// A lock timeout or deadline beyond what PostgreSQL's settings hold (about 24 days) waits
/// that long at most: the unit still works.
#[test]
fn postgres_a_far_deadline_and_a_long_lock_timeout_still_write() {
    let db = PgDb::new();
    let t = db.tables(vec![typed()]).unwrap();
    let mut u = t.begin().unwrap();
    let far = Duration::from_secs(365 * 24 * 3600);
    u.set_lock_timeout(far).unwrap();
    u.set_deadline(std::time::Instant::now().checked_add(far).unwrap());
    u.insert("Typed", &obj(json!({"id": "a"}))).unwrap();
    u.commit().unwrap();
    assert_eq!(t.count_matching("Typed", None).unwrap(), 1);
}

/// A refused migration names the database by its URL without the password.
#[test]
fn postgres_a_refused_migration_never_shows_the_password() {
    let db = PgDb::new();
    db.server
        .psql("contract", "ALTER ROLE flowhost PASSWORD 'hunter2'");
    let url = db.url.replacen("flowhost@", "flowhost:hunter2@", 1);
    let open = |s: TableSchema| {
        let pg = Pg::connect(PgUrl::parse(&url).unwrap()).unwrap();
        PgTables::open(pg, Arc::new(Schemas::from_schemas(vec![s]).unwrap()))
    };
    open(schema("name: M\ncolumns:\n  - { name: a, type: text }\n")).unwrap();
    let err = open(schema(
        "name: M\ncolumns:\n  - { name: a, type: integer }\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("flowhost:***@127.0.0.1"), "{err}");
    assert!(
        err.contains("column `a` is text in the database but integer"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

/// The per-event upsert is parsed once per connection, not once per run: 30 runs one after
/// the other, each upserting a row, make the server parse the upsert once (its log says so).
#[test]
fn postgres_runs_reuse_the_upsert_prepared_on_their_connection() {
    let db = PgDb::new();
    let t = db.tables(vec![typed()]).unwrap();
    db.server.psql(
        "postgres",
        "ALTER SYSTEM SET log_min_duration_statement = 0",
    );
    db.server.psql("postgres", "SELECT pg_reload_conf()");
    // The reload is noticed by new sessions and between statements: wait until ours logs.
    let marker = "SELECT 'flowhost-log-check'";
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !db.server.log().contains("flowhost-log-check") {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never logged statements"
        );
        db.server.psql("contract", marker);
        std::thread::sleep(Duration::from_millis(50));
    }
    for i in 0..30 {
        let mut u = t.begin().unwrap();
        u.upsert("Typed", &obj(json!({"id": format!("k{i}"), "i": i})))
            .unwrap();
        u.commit().unwrap();
    }
    assert_eq!(t.count_matching("Typed", None).unwrap(), 30);
    let log = db.server.log();
    let parses = log
        .lines()
        .filter(|l| l.contains("parse ") && l.contains("INSERT INTO \"t_typed\""))
        .count();
    assert_eq!(parses, 1, "upsert parses in the server log:\n{log}");
}

/// Several nodes opening one new database at once take turns migrating it (an advisory lock):
/// none fails on another's half-created tables.
#[test]
fn postgres_nodes_opening_at_once_migrate_in_turn() {
    let db = PgDb::new();
    let shipped = Schemas::load_dirs(&[common::root().join("tables")]).unwrap();
    let schemas: Vec<TableSchema> = shipped.iter().cloned().collect();
    let opened: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let schemas = schemas.clone();
                let db = &db;
                s.spawn(move || db.tables(schemas).map(drop).map_err(|e| e.to_string()))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(opened.iter().all(Result::is_ok), "{opened:?}");
    let tables = db
        .server
        .psql("contract", "SELECT count(*) FROM _flowhost_tables");
    assert_eq!(tables, schemas.len().to_string());
}

/// PostgreSQL cannot store a NUL in text: the flow is told which table and column, as bad
/// input, and nothing is written; history keeps the record with the NUL replaced.
#[test]
fn postgres_a_nul_in_text_is_invalid_input_naming_table_and_column() {
    let db = PgDb::new();
    let t = db.tables(vec![typed()]).unwrap();
    let mut u = t.begin().unwrap();
    for row in [
        json!({"id": "a\u{0}b"}),
        json!({"id": "a", "s": "x\u{0}"}),
        json!({"id": "a", "j": {"k": ["\u{0}"]}}),
    ] {
        let err = u.insert("Typed", &obj(row.clone())).unwrap_err();
        assert!(
            matches!(&err, TableError::InvalidInput(m) if m.starts_with("table `Typed`, column `") && m.contains("NUL")),
            "{row}: {err:?}"
        );
    }
    u.insert("Typed", &obj(json!({"id": "fine"}))).unwrap();
    u.commit().unwrap();
    assert_eq!(
        t.count_matching("Typed", None).unwrap(),
        1,
        "the unit stayed usable"
    );
    let h = db.history();
    let id = h.start("M10", Trigger::Cli, None, "in\u{0}put").unwrap();
    h.finish_with_dropped_logs(id, RunStatus::Error, None, Some("bad\u{0}"), &[], 0, &[])
        .unwrap();
    assert_eq!(
        h.get(id).unwrap().unwrap().error.as_deref(),
        Some("bad\u{FFFD}")
    );
}

/// `mark_interrupted` marks only runs of nodes with no live session: another node that is
/// still connected keeps its running run.
#[test]
fn postgres_mark_interrupted_leaves_a_live_nodes_run_alone() {
    let db = PgDb::new();
    let h = db.history();
    let live = h.start("M10", Trigger::Schedule, None, "{}").unwrap();
    let dead = h.start("U02", Trigger::Schedule, None, "{}").unwrap();
    let mine = h.start("S01", Trigger::Schedule, None, "{}").unwrap();
    db.server.psql(
        "contract",
        &format!("UPDATE _flowhost_runs SET node = 'other-live' WHERE id = {live}"),
    );
    db.server.psql(
        "contract",
        &format!("UPDATE _flowhost_runs SET node = 'other-gone' WHERE id = {dead}"),
    );
    // The other node's session: a connection named as flowhost names a node's connections.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (client, _keep) = rt.block_on(async {
        let mut config: tokio_postgres::Config = db.url.parse().unwrap();
        config.application_name("flowhost other-live");
        let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
        let task = tokio::spawn(conn);
        (client, task)
    });
    assert_eq!(h.mark_interrupted().unwrap(), 1);
    let status = |id| h.get(id).unwrap().unwrap();
    assert_eq!(status(live).status, RunStatus::Running);
    assert_eq!(status(mine).status, RunStatus::Running);
    let gone = status(dead);
    assert_eq!(
        (gone.status, gone.error.as_deref()),
        (RunStatus::Error, Some(INTERRUPTED))
    );
    drop(client);
    drop(rt);
}
