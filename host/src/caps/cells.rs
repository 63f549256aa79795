//! `tables.upsert-row`'s typed rows: a list of `(column, cell)` pairs turned into the JSON
//! object the store checks, exactly as the same row given as JSON text would be (a text cell
//! is moved into the row, never escaped or parsed). Owns the refusals particular to the typed
//! form: a column given twice, a number that is not finite, a `json` cell that is not JSON.

use serde_json::{Map, Number, Value};

use crate::engine::flowhost::flow::tables::Cell;
use crate::engine::WitError;

/// The row of `cells`, and its size in bytes (what a JSON row's text length is for the run's
/// memory budget: the names and texts, 8 per other value).
pub fn row_of(
    table: &str,
    cells: Vec<(String, Cell)>,
) -> Result<(Map<String, Value>, usize), WitError> {
    let mut row = Map::new();
    let mut bytes = 0usize;
    for (column, cell) in cells {
        let refused = |what: &str| {
            WitError::InvalidInput(format!("table `{table}`, column `{column}`: {what}"))
        };
        let (value, size) = match cell {
            Cell::Null => (Value::Null, 8),
            Cell::Boolean(b) => (Value::Bool(b), 8),
            Cell::Integer(n) => (Value::from(n), 8),
            Cell::Number(n) => match Number::from_f64(n) {
                Some(n) => (Value::Number(n), 8),
                None => return Err(refused(&format!("{n} is not a finite number"))),
            },
            Cell::Text(s) => {
                let size = s.len();
                (Value::String(s), size)
            }
            Cell::Json(text) => match crate::json::parse(&text) {
                Ok(v) => (v, text.len()),
                Err(e) => return Err(refused(&format!("the json cell is not JSON: {e}"))),
            },
        };
        bytes = bytes.saturating_add(column.len()).saturating_add(size);
        if row.contains_key(&column) {
            return Err(refused("given twice"));
        }
        row.insert(column, value);
    }
    Ok((row, bytes))
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
            Value::Object(row),
            json!({"id": "e1", "n": -3, "x": 1.5, "ok": true, "gone": null,
                   "doc": {"a": [1, "two"]}, "quoted": "say \"hi\"\n"})
        );
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
        assert!(err(&[("doc", Cell::Json("{".into()))])
            .starts_with("table `Audit Events`, column `doc`: the json cell is not JSON: "));
        assert!(err(&[("doc", Cell::Json(r#"{"a":1,"a":2}"#.into()))]).contains("`a`"));
    }
}
