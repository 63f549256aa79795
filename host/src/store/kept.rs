//! The rows a unit of work inserted into `keep_on_failure` tables, kept so that a failed run's
//! rollback can write them again in a unit of their own (the same rule for every backend).

use serde_json::{Map, Value};

use super::{TableError, MAX_KEPT_ROWS};
use crate::schema::TableSchema;

/// Rows inserted into `keep_on_failure` tables, in insertion order, at most [`MAX_KEPT_ROWS`].
#[derive(Default)]
pub struct KeptRows(Vec<(String, Map<String, Value>)>);

impl KeptRows {
    /// Remembers `rows` inserted into the table of `schema`, if its schema keeps them.
    pub fn keep<'a>(
        &mut self,
        schema: &TableSchema,
        rows: impl IntoIterator<Item = &'a Map<String, Value>>,
    ) {
        if !schema.keep_on_failure {
            return;
        }
        for row in rows {
            if self.0.len() >= MAX_KEPT_ROWS {
                tracing::warn!(
                    table = schema.name.as_str(),
                    "more than {MAX_KEPT_ROWS} rows inserted by one run: the rest are not kept if it fails"
                );
                return;
            }
            self.0.push((schema.name.clone(), row.clone()));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Inserts every kept row into `unit` with `insert`, in order; a row that cannot be
    /// written (its key is taken meanwhile) is skipped with a warning, and once `aborted` says
    /// the unit can take no more, the rest are left. Returns how many were written.
    pub fn write_again<U>(
        &self,
        unit: &mut U,
        mut insert: impl FnMut(&mut U, &str, &Map<String, Value>) -> Result<String, TableError>,
        aborted: impl Fn(&U) -> bool,
    ) -> usize {
        let mut written = 0;
        for (table, row) in &self.0 {
            match insert(unit, table, row) {
                Ok(_) => written += 1,
                Err(e) => tracing::warn!(
                    table = table.as_str(),
                    error = %e,
                    "a failed run's kept row could not be written"
                ),
            }
            if aborted(unit) {
                break;
            }
        }
        written
    }
}
