//! The statements both history backends write the same way but for their parameters (`?1` in
//! SQLite, `$1` in PostgreSQL): the columns of a run, and the page of runs the console and
//! `flowhost history` list.

/// The columns of `_flowhost_runs` a [`super::RunRecord`] is read from, in its order.
pub(super) const RUN_COLUMNS: &str =
    "id, parent, flow, trigger, started, ended, status, input, output, error, children, logs_dropped";

/// How a backend writes its `n`-th parameter (from 1) where it stands for a text.
pub(super) type TextParam = fn(usize) -> String;

/// One page of the runs [`super::History::list`] shows, newest first: parameter 1 the flow,
/// 2 the status, 3 the limit, 4 the offset, written by `text` (1 and 2) and `param`. Each
/// filter combination is its own statement (served by an index); an absent filter's
/// parameter is bound all the same, as null.
pub(super) fn page_sql(flow: bool, status: bool, text: TextParam, param: TextParam) -> String {
    let test = |given: bool, column: &str, n: usize| match given {
        true => format!("{column} = {}", text(n)),
        false => format!("{} IS NULL", text(n)),
    };
    format!(
        "SELECT {RUN_COLUMNS} FROM _flowhost_runs WHERE {} AND {} AND (parent IS NULL OR status <> 'ok') ORDER BY id DESC LIMIT {} OFFSET {}",
        test(flow, "flow", 1),
        test(status, "status", 2),
        param(3),
        param(4)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_filters_only_by_what_is_given() {
        let sql = page_sql(true, false, |n| format!("${n}::text"), |n| format!("${n}"));
        assert!(
            sql.contains("WHERE flow = $1::text AND $2::text IS NULL AND (parent IS NULL"),
            "{sql}"
        );
        assert!(
            sql.ends_with("ORDER BY id DESC LIMIT $3 OFFSET $4"),
            "{sql}"
        );
        let sql = page_sql(false, true, |n| format!("?{n}"), |n| format!("?{n}"));
        assert!(
            sql.contains("WHERE ?1 IS NULL AND status = ?2 AND"),
            "{sql}"
        );
    }
}
