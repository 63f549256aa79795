//! A throwaway server starts, answers psql on its URL, and reports a failing statement as an
//! error naming it (the form the benchmark uses) rather than a panic.

use pg_throwaway::PgServer;

#[test]
fn a_server_answers_and_a_bad_statement_is_an_error_naming_it() {
    let server = PgServer::try_start().unwrap();
    let url = server.try_create_db("probe").unwrap();
    assert_eq!(url, server.url("probe"));
    assert_eq!(server.try_psql("probe", "SELECT 40 + 2").unwrap(), "42");
    let err = server
        .try_psql("probe", "SELECT * FROM no_such_table")
        .unwrap_err()
        .to_string();
    assert!(err.contains("SELECT * FROM no_such_table"), "{err}");
    assert!(err.contains("no_such_table\" does not exist"), "{err}");
}
