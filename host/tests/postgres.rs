//! PostgreSQL through flowhost's pool ([`flowhost::pg`]) against a real throwaway server.

mod common;

use common::pg::PgServer;
use flowhost::pg::{Pg, PgUrl};

#[test]
fn the_pool_reaches_a_throwaway_server_from_inside_and_outside_tokio() {
    let server = PgServer::start();
    let url = server.create_db("smoke");
    let pg = Pg::connect(PgUrl::parse(&url).unwrap()).unwrap();
    let conn = pg.get().unwrap();
    let row = pg.wait(conn.query_one("SELECT 40 + 2", &[])).unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    drop(conn);
    // From a tokio worker, as a host call waits for a table call.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let from_worker = {
        let pg = pg.clone();
        rt.block_on(async move {
            tokio::spawn(async move {
                let conn = pg.get().unwrap();
                let row = pg
                    .wait(conn.query_one("SELECT current_setting('tcp_keepalives_idle')", &[]))
                    .unwrap();
                row.get::<_, String>(0)
            })
            .await
            .unwrap()
        })
    };
    // The server keeps probing the connection, so a vanished node's session ends.
    assert_eq!(
        from_worker,
        flowhost::pg::KEEPALIVE_IDLE.as_secs().to_string()
    );
}

#[test]
fn a_wrong_password_names_the_server_but_never_the_password() {
    let server = PgServer::start();
    let url = format!(
        "postgres://nobody:hunter2@127.0.0.1:{}/postgres",
        server.port()
    );
    // trust authentication lets any user name in: a missing role is the refusal here.
    let err = Pg::connect(PgUrl::parse(&url).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("nobody:***@127.0.0.1"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains("nobody"), "{err}");
}
