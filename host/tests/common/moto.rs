//! A real S3-compatible server for tests: `moto_server` on a loopback port it picks itself
//! (`cargo xtask test` and `.ci/run` install it), with one bucket, killed on drop. A test that
//! needs it fails, naming what to install, when `moto_server` is not on PATH: it never passes
//! without running.
//!
//! [`moto`] accepts any credentials; [`moto_checking_signatures`] starts moto with its IAM
//! checks on, creates a user, a policy and an access key, and from then on verifies every
//! request's SigV4 signature against that key.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flowhost::config::BlobStoreConfig;

pub const BUCKET: &str = "flowhost-test";
pub const KEY_ID: &str = "moto-key-id-4711";
pub const KEY_SECRET: &str = "moto-secret-key-0815";

/// What to do when `moto_server` is missing.
pub const INSTALL: &str = "install it with: python3 -m pip install 'moto[server]>=5,<6' \
                           (then `pyenv rehash` if you use pyenv), or run `cargo xtask test`, \
                           which installs it";

/// A `moto_server` child process; killed (with its process group) on drop.
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

    pub fn log(&self) -> String {
        read_log(&self.log)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // The child leads its own process group: end it and anything it started.
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: a signal to our own child's process group.
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

/// Panics, naming what to install, unless `moto_server` is on PATH.
pub fn require_moto_server() {
    assert!(
        on_path("moto_server"),
        "the S3 tests need moto's S3 server, and `moto_server` is not on PATH: {INSTALL}"
    );
}

/// The port in werkzeug's "Running on http://127.0.0.1:PORT" line, once it is in the log.
fn listening_port(log: &str) -> Option<u16> {
    let rest = log.split("Running on http://127.0.0.1:").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Starts `moto_server` on a port of its own choosing (`-p 0`: no port is bound here and
/// released for it to race for) with `env` added, and waits until it listens.
async fn start(env: &[(&str, &str)]) -> Moto {
    require_moto_server();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("moto.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = {
        use std::os::unix::process::CommandExt;
        Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", "0"])
            .env("PYTHONUNBUFFERED", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto_server: {e}; {INSTALL}"))
    };
    let mut moto = Moto {
        child,
        port: 0,
        log,
        _dir: dir,
    };
    let deadline = Duration::from_secs(60);
    let started = Instant::now();
    loop {
        if let Some(port) = listening_port(&moto.log()) {
            moto.port = port;
            return moto;
        }
        if let Ok(Some(status)) = moto.child.try_wait() {
            panic!("moto_server exited ({status}):\n{}", moto.log());
        }
        assert!(
            started.elapsed() < deadline,
            "moto_server did not say where it listens within {deadline:?}:\n{}",
            moto.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates [`BUCKET`] (unsigned: on a moto that checks signatures, this is one of the
/// requests it lets through unchecked).
async fn create_bucket(moto: &Moto) {
    let resp = reqwest::Client::new()
        .put(format!("{}/{BUCKET}", moto.url()))
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_success(),
        "creating the bucket: {}: {}",
        resp.status(),
        resp.text().await.unwrap_or_default()
    );
}

/// Starts moto_server (which takes any request as authorised) with [`BUCKET`] in it; fails
/// the test, naming what to install, when moto is not installed.
pub async fn moto() -> Moto {
    let moto = start(&[]).await;
    create_bucket(&moto).await;
    moto
}

/// A moto that verifies signatures, and the one access key it accepts.
pub struct SignedMoto {
    pub moto: Moto,
    pub key_id: String,
    pub secret: String,
}

/// One IAM call (form-encoded, as the AWS query API takes it); returns the response body.
/// Only valid among the first unchecked requests: the signature is a placeholder.
async fn iam(moto: &Moto, params: &[(&str, &str)]) -> String {
    let resp = reqwest::Client::new()
        .post(format!("{}/", moto.url()))
        // moto routes by the service in the credential scope.
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=setup/20260101/us-east-1/iam/aws4_request, \
             SignedHeaders=host, Signature=0",
        )
        .form(&[params, &[("Version", "2010-05-08")]].concat())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert!(status.is_success(), "IAM {params:?}: {status}: {body}");
    body
}

/// The text of the first `<tag>…</tag>` in `xml`.
fn element<'a>(xml: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no <{tag}> in {xml}"))
        + open.len();
    let len = xml[start..]
        .find(&format!("</{tag}>"))
        .unwrap_or_else(|| panic!("no </{tag}> in {xml}"));
    &xml[start..start + len]
}

/// Starts moto_server with its IAM checks on: the first four requests (the bucket, an IAM
/// user, its S3 policy and its access key) go through unchecked, every later one must be
/// signed with that key and allowed by the policy.
pub async fn moto_checking_signatures() -> SignedMoto {
    let moto = start(&[("INITIAL_NO_AUTH_ACTION_COUNT", "4")]).await;
    create_bucket(&moto).await;
    let user = "flowhost-test";
    iam(&moto, &[("Action", "CreateUser"), ("UserName", user)]).await;
    let policy = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}"#;
    iam(
        &moto,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", user),
            ("PolicyName", "s3-all"),
            ("PolicyDocument", policy),
        ],
    )
    .await;
    let key = iam(&moto, &[("Action", "CreateAccessKey"), ("UserName", user)]).await;
    let (key_id, secret) = (
        element(&key, "AccessKeyId").to_string(),
        element(&key, "SecretAccessKey").to_string(),
    );
    SignedMoto {
        moto,
        key_id,
        secret,
    }
}

pub fn read_log(path: &Path) -> String {
    let mut s = String::new();
    let _ = std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut s));
    s
}

/// A store on `moto`'s `bucket` whose credentials are the secrets `MOTO_KEY_ID` and
/// `MOTO_KEY_SECRET`.
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

/// A client of the test's own (not flowhost's) for [`BUCKET`] on `moto`, to check what
/// flowhost wrote.
pub fn s3_client(moto: &Moto) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_endpoint(moto.url())
        .with_bucket_name(BUCKET)
        .with_region("us-east-1")
        .with_access_key_id(KEY_ID)
        .with_secret_access_key(KEY_SECRET)
        .with_allow_http(true)
        .build()
        .unwrap()
}
