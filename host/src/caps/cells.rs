//! `tables.upsert-row`'s typed rows: a list of `(column, cell)` pairs turned into the fields
//! the store checks, in name order, exactly as the same row given as a JSON object would hold
//! them (a text cell is moved into its field, never escaped or parsed), without building the
//! object. Owns the refusals particular to the typed form: a column given twice, a number that
//! is not finite, a `json` cell that is not JSON.

use serde_json::{Number, Value};

use crate::engine::flowhost::flow::tables::Cell;
use crate::engine::WitError;
use crate::store::UpsertRow;

/// The row of `cells` ([`UpsertRow::Fields`]), and its size in bytes (what a JSON row's text
/// length is for the run's memory budget: the names and texts, 8 per other value). Of several
/// faults, the one refused is the first in the order the cells were given.
pub fn row_of(table: &str, cells: Vec<(String, Cell)>) -> Result<(UpsertRow, usize), WitError> {
    let refused = |column: &str, what: &str| {
        WitError::InvalidInput(format!("table `{table}`, column `{column}`: {what}"))
    };
    let mut fields = Vec::with_capacity(cells.len());
    let mut bytes = 0usize;
    // The first cell whose value is refused: only a column given twice before it can be
    // refused instead.
    let mut bad_value = None;
    for (at, (column, cell)) in cells.into_iter().enumerate() {
        let (value, size) = match cell {
            Cell::Null => (Value::Null, 8),
            Cell::Boolean(b) => (Value::Bool(b), 8),
            Cell::Integer(n) => (Value::from(n), 8),
            Cell::Number(n) => match Number::from_f64(n) {
                Some(n) => (Value::Number(n), 8),
                None => {
                    bad_value =
                        Some((at, refused(&column, &format!("{n} is not a finite number"))));
                    break;
                }
            },
            Cell::Text(s) => {
                let size = s.len();
                (Value::String(s), size)
            }
            Cell::Json(text) => match crate::json::parse(&text) {
                Ok(v) => (v, text.len()),
                Err(e) => {
                    let what = format!("the json cell is not JSON: {e}");
                    bad_value = Some((at, refused(&column, &what)));
                    break;
                }
            },
        };
        bytes = bytes.saturating_add(column.len()).saturating_add(size);
        fields.push((column, value, at));
    }
    // In name order (stable: a name's cells stay in the order given), each name's second cell
    // is where it was given twice.
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    let twice = fields
        .windows(2)
        .filter(|w| w[0].0 == w[1].0)
        .min_by_key(|w| w[1].2)
        .map(|w| (w[1].2, w[1].0.as_str()));
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

    fn cells(list: &[(&str, Cell)]) -> Vec<(String, Cell)> {
        list.iter()
            .map(|(c, v)| (c.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn cells_give_the_row_their_json_would() {
        let (row, bytes) = row_of(
            "T",
            cells(&[
                ("id", Cell::Text("e1".into())),
                ("n", Cell::Integer(-3)),
                ("x", Cell::Number(1.5)),
                ("ok", Cell::Boolean(true)),
                ("gone", Cell::Null),
                ("doc", Cell::Json(r#"{"a": [1, "two"]}"#.into())),
                ("quoted", Cell::Text("say \"hi\"\n".into())),
            ]),
        )
        .unwrap();
        assert_eq!(
            Value::Object(row.into_map()),
            json!({"id": "e1", "n": -3, "x": 1.5, "ok": true, "gone": null,
                   "doc": {"a": [1, "two"]}, "quoted": "say \"hi\"\n"})
        );
        // The store merges the fields with the columns by name: they come in name order.
        let (UpsertRow::Fields(fields), _) = row_of(
            "T",
            cells(&[("b", Cell::Null), ("a", Cell::Null), ("c", Cell::Null)]),
        )
        .unwrap() else {
            panic!("the typed form gives fields")
        };
        let names: Vec<&str> = fields.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
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
