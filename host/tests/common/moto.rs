//! A real S3-compatible server for tests: `moto_server` on a free loopback port (installed by
//! `.ci/run`), with one bucket, killed on drop.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flowhost::config::BlobStoreConfig;

pub const BUCKET: &str = "flowhost-test";
pub const KEY_ID: &str = "moto-key-id-4711";
pub const KEY_SECRET: &str = "moto-secret-key-0815";

/// A `moto_server` child process on a free loopback port; killed (with its process group) on
/// drop.
pub struct Moto {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Moto {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // The child leads its own process group: end it and anything it started.
        let pid = self.child.id() as libc::pid_t;
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            let p = dir.join(program);
            p.is_file()
                && std::fs::metadata(&p).is_ok_and(|m| {
                    use std::os::unix::fs::PermissionsExt;
                    m.permissions().mode() & 0o111 != 0
                })
        })
    })
}

/// Starts moto_server, or returns `None` (after saying so loudly) when it is not installed
/// and this is not CI.
pub async fn moto() -> Option<Moto> {
    if !on_path("moto_server") {
        if std::env::var_os("CI").is_some() {
            panic!(
                "moto_server is not on PATH, and CI is set: the S3 blob tests must run in CI \
                 (.ci/run installs it: python3 -m pip install 'moto[server]')"
            );
        }
        // Straight to stderr: the test harness captures `eprintln!` of passing tests.
        use std::io::Write;
        let _ = std::io::stderr().write_all(
            b"\n==========================================================================\n\
              SKIPPED: the S3 blob tests did not run: `moto_server` is not on PATH.\n\
              Install it with: python3 -m pip install 'moto[server]'\n\
              ==========================================================================\n",
        );
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("moto.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = {
        use std::os::unix::process::CommandExt;
        Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("cannot start moto_server")
    };
    let mut moto = Moto {
        child,
        port,
        log,
        _dir: dir,
    };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let started = Instant::now();
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            break;
        }
        if let Ok(Some(status)) = moto.child.try_wait() {
            panic!("moto_server exited ({status}):\n{}", read_log(&moto.log));
        }
        if started.elapsed() > Duration::from_secs(60) {
            panic!(
                "moto_server did not listen on {addr} within 60s:\n{}",
                read_log(&moto.log)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Make the bucket (moto takes any request as authorised).
    let resp = reqwest::Client::new()
        .put(format!("{}/{BUCKET}", moto.url()))
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_success(),
        "creating the bucket: {}",
        resp.status()
    );
    Some(moto)
}

pub fn read_log(path: &Path) -> String {
    let mut s = String::new();
    let _ = std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut s));
    s
}

pub fn s3_store(moto: &Moto, bucket: &str) -> BlobStoreConfig {
    BlobStoreConfig::S3 {
        bucket: bucket.into(),
        endpoint: Some(moto.url()),
        region: "us-east-1".into(),
        access_key_id_secret: "MOTO_KEY_ID".into(),
        secret_access_key_secret: "MOTO_KEY_SECRET".into(),
        allow_http: true,
    }
}
