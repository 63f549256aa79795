//! `tables.upsert-row`'s typed rows: a list of `(column, cell)` pairs turned into the fields
//! the store checks, in name order, exactly as the same row given as a JSON object would hold
//! them (a text cell is borrowed, never escaped or parsed; the store copies it once, into the
//! row it keeps), without building the object. Owns the refusals particular to the typed form: a column given twice, a number
//! that is not finite, a `json` cell that is not JSON.
//!
//! It also links `upsert-row`: the bindings would lift every column name and text into a
//! `String` of its own through wasmtime's generic list lift; [`link_upsert_row`] defines
//! `upsert-row` over the bindings' with a function that takes the row as a
//! [`GuestRow`], read from the flow's memory in one pass into one
//! buffer. A name is borrowed from it for the call, a text is copied from it into the row the
//! store keeps.

use std::borrow::Cow;

use serde_json::{Number, Value};
use wasmtime::component::{ComponentType, Linker, WasmStr};
use wasmtime::StoreContextMut;

use crate::engine::flowhost::flow::tables::Cell;
use crate::engine::{RunState, WitError};
use crate::store::{FieldValue, UpsertRow};

use super::guest_row::GuestRow;

/// One column's value, its text borrowed where it can be (from the flow's memory).
#[derive(Debug, Clone, PartialEq)]
pub enum CellRef<'a> {
    Null,
    Boolean(bool),
    Integer(i64),
    Number(f64),
    Text(Cow<'a, str>),
    Json(Cow<'a, str>),
}

impl From<Cell> for CellRef<'static> {
    fn from(cell: Cell) -> Self {
        match cell {
            Cell::Null => CellRef::Null,
            Cell::Boolean(b) => CellRef::Boolean(b),
            Cell::Integer(n) => CellRef::Integer(n),
            Cell::Number(n) => CellRef::Number(n),
            Cell::Text(s) => CellRef::Text(Cow::Owned(s)),
            Cell::Json(s) => CellRef::Json(Cow::Owned(s)),
        }
    }
}

/// The WIT `cell` as it lies in the flow's memory, as a type only (never built): the same
/// cases as the bindings' [`Cell`]. wasmtime checks it against the contract's `cell` when the
/// flow is linked, and [`GuestRow`] reads the list by its layout.
#[derive(ComponentType)]
#[component(variant)]
pub enum GuestCell {
    #[component(name = "null")]
    Null,
    #[component(name = "boolean")]
    Boolean(bool),
    #[component(name = "integer")]
    Integer(i64),
    #[component(name = "number")]
    Number(f64),
    #[component(name = "text")]
    Text(WasmStr),
    #[component(name = "json")]
    Json(WasmStr),
}

/// Defines `tables.upsert-row` of the contract the host provides (older contracts link to it
/// too) over the bindings' definition, with `upsert_row_in_one_pass`. Call it after the
/// bindings' `add_to_linker`.
pub fn link_upsert_row(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    let package = crate::engine::contract_package();
    let interface = match package.split_once('@') {
        Some((name, version)) => format!("{name}/tables@{version}"),
        None => format!("{package}/tables"),
    };
    linker.allow_shadowing(true);
    let linked = linker
        .instance(&interface)
        .and_then(|mut tables| tables.func_wrap("upsert-row", upsert_row_in_one_pass));
    linker.allow_shadowing(false);
    linked
}

/// `upsert-row(table, row)`, its row read from the flow's memory in one pass.
fn upsert_row_in_one_pass(
    store: StoreContextMut<'_, RunState>,
    (table, row): (WasmStr, GuestRow),
) -> wasmtime::Result<(Result<String, WitError>,)> {
    let table = table.to_str(&store)?;
    Ok((super::tables::upsert_typed(
        &store.data().ctx,
        &table,
        row.cells(),
    ),))
}

/// The row of `cells` ([`UpsertRow::Fields`], its names borrowed from `cells`), and its size
/// in bytes (what a JSON row's text length is for the run's memory budget: the names and
/// texts, 8 per other value). Of several faults, the one refused is the first in the order the
/// cells were given.
pub fn row_of<'a, 'c: 'a>(
    table: &str,
    cells: impl IntoIterator<Item = (&'a str, CellRef<'c>)>,
) -> Result<(UpsertRow<'a>, usize), WitError> {
    let refused = |column: &str, what: &str| {
        WitError::InvalidInput(format!("table `{table}`, column `{column}`: {what}"))
    };
    let cells = cells.into_iter();
    let mut fields = Vec::with_capacity(cells.size_hint().0);
    let mut bytes = 0usize;
    // The first cell whose value is refused: only a column given twice before it can be
    // refused instead.
    let mut bad_value = None;
    for (at, (column, cell)) in cells.enumerate() {
        let (value, size) = match cell {
            CellRef::Null => (FieldValue::Json(Value::Null), 8),
            CellRef::Boolean(b) => (FieldValue::Json(Value::Bool(b)), 8),
            CellRef::Integer(n) => (FieldValue::Json(Value::from(n)), 8),
            CellRef::Number(n) => match Number::from_f64(n) {
                Some(n) => (FieldValue::Json(Value::Number(n)), 8),
                None => {
                    bad_value = Some((at, refused(column, &format!("{n} is not a finite number"))));
                    break;
                }
            },
            CellRef::Text(s) => {
                let size = s.len();
                (FieldValue::Text(s), size)
            }
            CellRef::Json(text) => match crate::json::parse(&text) {
                Ok(v) => (FieldValue::Json(v), text.len()),
                Err(e) => {
                    let what = format!("the json cell is not JSON: {e}");
                    bad_value = Some((at, refused(column, &what)));
                    break;
                }
            },
        };
        bytes = bytes.saturating_add(column.len()).saturating_add(size);
        fields.push((column, value, at));
    }
    // A row given in name order (S30's) has no name twice, which one pass says. Any other is
    // put in name order (stable: a name's cells stay in the order given), where each name's
    // second cell is where it was given twice.
    let mut twice = None;
    if !fields.windows(2).all(|w| w[0].0 < w[1].0) {
        fields.sort_by(|a, b| a.0.cmp(b.0));
        twice = fields
            .windows(2)
            .filter(|w| w[0].0 == w[1].0)
            .min_by_key(|w| w[1].2)
            .map(|w| (w[1].2, w[1].0));
    }
    match (twice, bad_value) {
        (Some((at, column)), bad) if bad.as_ref().is_none_or(|(b, _)| at < *b) => {
            return Err(refused(column, "given twice"));
        }
        (_, Some((_, e))) => return Err(e),
        _ => {}
    }
    let fields = fields.into_iter().map(|(c, v, _)| (c, v)).collect();
    Ok((UpsertRow::Fields(fields), bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cells<'a>(list: &'a [(&'a str, Cell)]) -> impl Iterator<Item = (&'a str, CellRef<'static>)> {
        list.iter().map(|(c, v)| (*c, CellRef::from(v.clone())))
    }

    /// `link_upsert_row` must replace the bindings' `upsert-row`, not define a name nobody
    /// imports: defined first, it makes the bindings' own definition of the same name clash.
    #[test]
    fn the_in_place_upsert_row_takes_the_bindings_name() {
        use crate::engine::Flow;
        use wasmtime::component::HasSelf;
        let engine = wasmtime::Engine::default();
        let mut linker: Linker<RunState> = Linker::new(&engine);
        link_upsert_row(&mut linker).unwrap();
        let clash = Flow::add_to_linker::<RunState, HasSelf<RunState>>(&mut linker, |s| s)
            .err()
            .map(|e| format!("{e:#}"));
        assert!(
            clash.as_deref().is_some_and(|e| e.contains("upsert-row")),
            "{clash:?}"
        );
        // Over the bindings, it is defined without complaint.
        let mut linker: Linker<RunState> = Linker::new(&engine);
        Flow::add_to_linker::<RunState, HasSelf<RunState>>(&mut linker, |s| s).unwrap();
        link_upsert_row(&mut linker).unwrap();
    }

    #[test]
    fn cells_give_the_row_their_json_would() {
        let list = [
            ("id", Cell::Text("e1".into())),
            ("n", Cell::Integer(-3)),
            ("x", Cell::Number(1.5)),
            ("ok", Cell::Boolean(true)),
            ("gone", Cell::Null),
            ("doc", Cell::Json(r#"{"a": [1, "two"]}"#.into())),
            ("quoted", Cell::Text("say \"hi\"\n".into())),
        ];
        let (row, bytes) = row_of("T", cells(&list)).unwrap();
        assert_eq!(
            Value::Object(row.into_map()),
            json!({"id": "e1", "n": -3, "x": 1.5, "ok": true, "gone": null,
                   "doc": {"a": [1, "two"]}, "quoted": "say \"hi\"\n"})
        );
        // The store merges the fields with the columns by name: they come in name order.
        let list = [("b", Cell::Null), ("a", Cell::Null), ("c", Cell::Null)];
        let (UpsertRow::Fields(fields), _) = row_of("T", cells(&list)).unwrap() else {
            panic!("the typed form gives fields")
        };
        let names: Vec<&str> = fields.iter().map(|(c, _)| *c).collect();
        assert_eq!(names, ["a", "b", "c"]);
        // Given in name order already, they stay so; a name twice is still refused.
        let list = [
            ("a", Cell::Null),
            ("b", Cell::Integer(1)),
            ("c", Cell::Null),
        ];
        let (row, _) = row_of("T", cells(&list)).unwrap();
        assert_eq!(
            Value::Object(row.into_map()),
            json!({"a": null, "b": 1, "c": null})
        );
        let list = [("a", Cell::Null), ("b", Cell::Null), ("b", Cell::Null)];
        assert!(row_of("T", cells(&list)).is_err());
        // names 2+1+1+2+4+3+6, texts 2+17+9, 8 for each of the other four
        assert_eq!(bytes, 19 + 28 + 32);
    }

    #[test]
    fn what_the_typed_form_refuses_is_named() {
        let err = |list: &[(&str, Cell)]| match row_of("Audit Events", cells(list)) {
            Err(WitError::InvalidInput(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            err(&[
                ("id", Cell::Text("a".into())),
                ("id", Cell::Text("b".into()))
            ]),
            "table `Audit Events`, column `id`: given twice"
        );
        assert_eq!(
            err(&[("x", Cell::Number(f64::NAN))]),
            "table `Audit Events`, column `x`: NaN is not a finite number"
        );
        // Of several faults, the first in the order given is refused, as one cell at a time.
        assert_eq!(
            err(&[
                ("x", Cell::Number(f64::INFINITY)),
                ("id", Cell::Text("a".into())),
                ("id", Cell::Text("b".into()))
            ]),
            "table `Audit Events`, column `x`: inf is not a finite number"
        );
        assert_eq!(
            err(&[
                ("z", Cell::Null),
                ("b", Cell::Null),
                ("z", Cell::Null),
                ("b", Cell::Null),
                ("x", Cell::Number(f64::NAN)),
            ]),
            "table `Audit Events`, column `z`: given twice"
        );
        assert_eq!(
            err(&[
                ("b", Cell::Null),
                ("z", Cell::Null),
                ("b", Cell::Null),
                ("z", Cell::Null),
            ]),
            "table `Audit Events`, column `b`: given twice"
        );
        assert!(err(&[("doc", Cell::Json("{".into()))])
            .starts_with("table `Audit Events`, column `doc`: the json cell is not JSON: "));
        assert!(err(&[("doc", Cell::Json(r#"{"a":1,"a":2}"#.into()))]).contains("`a`"));
    }
}
