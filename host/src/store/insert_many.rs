//! What an `insert-many` means in every backend: the rows are all checked before any is
//! written, a refused row is named by its number, and nothing is then inserted.

use serde_json::{Map, Value};

use super::TableError;

/// Every row of an insert-many into `table` bound by `bind` (a backend's check of one row),
/// before any is written, and how many there are as the contract counts them. The first row
/// refused fails the whole insert, named by its number.
pub(crate) fn bind_all<'a, B>(
    table: &str,
    rows: &'a [Map<String, Value>],
    bind: impl Fn(&'a Map<String, Value>) -> Result<B, TableError>,
) -> Result<(u32, Vec<B>), TableError> {
    let total = rows.len();
    let Ok(count) = u32::try_from(total) else {
        return Err(TableError::InvalidInput(format!(
            "table `{table}`: {total} rows in one insert-many is too many"
        )));
    };
    let bound = rows
        .iter()
        .enumerate()
        .map(|(i, row)| bind(row).map_err(|e| row_failed(e, i, total)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((count, bound))
}

/// `error` as the failure of row `i` (from 0) of an insert-many of `total` rows: the row's
/// number in front, and that nothing was inserted.
pub(crate) fn row_failed(error: TableError, i: usize, total: usize) -> TableError {
    error
        .prefixed(&format!("row {} of {total}: ", i + 1))
        .suffixed(" (nothing was inserted)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(n: usize) -> Vec<Map<String, Value>> {
        (0..n)
            .map(|i| json!({"n": i}).as_object().cloned().unwrap_or_default())
            .collect()
    }

    #[test]
    fn every_row_is_bound_in_order() {
        let (count, bound) = bind_all("T", &rows(3), |r| Ok(r["n"].clone())).unwrap();
        assert_eq!(count, 3);
        assert_eq!(bound, [json!(0), json!(1), json!(2)]);
    }

    #[test]
    fn the_first_refused_row_is_named_and_nothing_is_kept() {
        let refuse_odd = |r: &Map<String, Value>| match r["n"].as_u64() {
            Some(n) if n % 2 == 1 => Err(TableError::InvalidInput(format!("odd {n}"))),
            _ => Ok(()),
        };
        let err = bind_all("T", &rows(4), refuse_odd).unwrap_err();
        assert_eq!(
            err,
            TableError::InvalidInput("row 2 of 4: odd 1 (nothing was inserted)".into())
        );
    }
}
