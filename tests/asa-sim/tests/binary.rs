//! The `asa-sim` binary, as `cargo xtask demo` runs it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the simulator when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The status line of `GET path` on `addr` (`None` while nothing listens there).
fn status_line(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    answer.lines().next().map(str::to_string)
}

/// The demo reads only the first line the simulator prints and may close the pipe: the
/// simulator must go on serving. (It printed with `println!`, which panics on a closed pipe, so
/// a second banner line killed it and the demo's M10 found nothing listening.)
#[test]
fn a_closed_stdout_does_not_stop_the_simulator() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut child = Command::new(env!("CARGO_BIN_EXE_asa-sim"))
        .args([
            "--listen",
            &addr.to_string(),
            "--events",
            "10",
            "--print-secret",
        ])
        .args(["--extra-team", "acme:acme-id:acme-secret"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Nobody will read what it prints.
    drop(child.stdout.take());
    let mut sim = Running(child);

    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = loop {
        if let Some(exit) = sim.0.try_wait().unwrap() {
            let mut err = String::new();
            let _ = sim.0.stderr.take().unwrap().read_to_string(&mut err);
            panic!("asa-sim exited ({exit}) once its stdout was closed: {err}");
        }
        if let Some(line) = status_line(addr, "/v1/teams/acme/auditsV2") {
            break line;
        }
        assert!(
            Instant::now() < deadline,
            "asa-sim never listened on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Up and answering (no bearer token: 401); SIGINT then stops it cleanly: it has printed its
    // banner (before waiting for the signal) without dying of the closed pipe.
    assert!(answer.contains(" 401 "), "{answer}");
    let kill = Command::new("kill")
        .args(["-INT", &sim.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let exit = sim.0.wait().unwrap();
    let mut err = String::new();
    let _ = sim.0.stderr.take().unwrap().read_to_string(&mut err);
    assert!(exit.success(), "asa-sim: {exit}: {err}");
    assert!(err.contains("asa-sim: shutting down"), "{err}");
}
