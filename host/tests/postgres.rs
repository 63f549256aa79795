//! PostgreSQL through flowhost's pool ([`flowhost::pg`]) against a real throwaway server,
//! over TLS as `sslmode` and `sslrootcert` ask.

mod common;

use std::path::Path;

use common::pg::{PgServer, ServerTls};
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

/// A CA named `name` (its certificate, PEM) and a server certificate for `localhost` that it
/// signed.
fn ca_and_server(name: &str) -> (String, ServerTls) {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, name);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca.self_signed(&ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    let tls = ServerTls {
        cert_pem: server.pem(),
        key_pem: server_key.serialize_pem(),
    };
    (ca.pem(), tls)
}

/// Connects to `url` and asks the server whether this session is encrypted.
fn encrypted(url: &str) -> Result<bool, String> {
    let pg =
        Pg::connect(PgUrl::parse(url).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let conn = pg.get().map_err(|e| e.to_string())?;
    let row = pg
        .wait(conn.query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        ))
        .map_err(|e| e.to_string())?;
    Ok(row.get::<_, bool>(0))
}

/// A server that takes TCP clients over TLS only, with a certificate for `localhost` from a
/// CA of the test's own: each `sslmode` connects (encrypted) or is refused as libpq's would
/// be, the error naming what was wrong and never the password.
#[test]
fn sslmode_and_sslrootcert_are_honoured_against_a_tls_only_server() {
    let (ca_pem, tls) = ca_and_server("flowhost test CA");
    let (other_ca_pem, _) = ca_and_server("another CA");
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    std::fs::write(&other_ca, other_ca_pem).unwrap();
    let server = PgServer::start_tls(&tls);
    let port = server.port();
    let url = |host: &str, query: &str| {
        format!("postgres://flowhost:pw-7f3a@{host}:{port}/postgres?{query}")
    };
    let root = |p: &Path| format!("sslrootcert={}", p.display());

    // Plain TCP is refused by the server itself: it takes TLS only.
    let err = encrypted(&url("127.0.0.1", "sslmode=disable")).unwrap_err();
    assert!(err.contains("no encryption"), "{err}");
    // Encrypted, the certificate not checked: prefer (the default) and require.
    for query in ["", "sslmode=prefer", "sslmode=require"] {
        assert_eq!(encrypted(&url("127.0.0.1", query)), Ok(true), "{query}");
    }
    // Checked against the test's CA: the chain (verify-ca), and the name too (verify-full).
    let q = format!("sslmode=verify-ca&{}", root(&ca));
    assert_eq!(encrypted(&url("127.0.0.1", &q)), Ok(true));
    let q = format!("sslmode=verify-full&{}", root(&ca));
    assert_eq!(encrypted(&url("localhost", &q)), Ok(true));
    // The certificate names localhost, not 127.0.0.1.
    let err = encrypted(&url("127.0.0.1", &q)).unwrap_err();
    assert!(
        err.contains("flowhost:***@127.0.0.1") && err.contains("not valid for name"),
        "{err}"
    );
    // Another CA's roots: refused by verify-ca, verify-full and require given them.
    for mode in ["verify-ca", "verify-full", "require"] {
        let q = format!("sslmode={mode}&{}", root(&other_ca));
        let err = encrypted(&url("localhost", &q)).unwrap_err();
        assert!(err.contains("UnknownIssuer"), "{mode}: {err}");
        assert!(!err.contains("pw-7f3a"), "{err}");
    }
    // A root file that is not there is named when the URL is read.
    let missing = dir.path().join("missing.pem");
    let q = format!("sslmode=verify-full&{}", root(&missing));
    let err = encrypted(&url("localhost", &q)).unwrap_err();
    assert!(
        err.contains(&format!("sslrootcert `{}`: cannot read", missing.display()))
            && !err.contains("pw-7f3a"),
        "{err}"
    );
}
