//! The `blobs` capability through the `probe` test flow: on a real S3-compatible server
//! (moto's `moto_server`, started here on loopback) and on a local folder; grant checks, name
//! checks, the `blobs:` config section and the load-time grant check.
//!
//! Without `moto_server` on PATH the S3 tests fail, naming what to install (`cargo xtask test`
//! installs it). Two S3 tests run moto with its signature checks on, so a wrongly signed
//! request is refused as it would be by S3: one checks the configured key, one that a reload
//! opens a store again with its rotated secrets.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{ok, run, TestEnv};
use flowhost::config::{BlobStoreConfig, Config};
use flowhost::manifest::Grants;
use flowhost::runtime::Runtime;
use serde_json::{json, Value};

use common::moto::{
    moto, moto_checking_signatures, s3_client, s3_store, Moto, BUCKET, KEY_ID, KEY_SECRET,
};

/// A test world whose `scratch` store is [`BUCKET`] on `moto`, with these credentials.
fn s3_env_with(moto: &Moto, key_id: &str, secret: &str) -> TestEnv {
    let mut env =
        TestEnv::new().with_secrets(&[("MOTO_KEY_ID", key_id), ("MOTO_KEY_SECRET", secret)]);
    env.config
        .blobs
        .insert("scratch".into(), s3_store(moto, BUCKET));
    env
}

fn s3_env(moto: &Moto) -> TestEnv {
    s3_env_with(moto, KEY_ID, KEY_SECRET)
}

/// The host error of a probe run that must fail (without the `probe: ` the run adds).
async fn err(rt: &Arc<Runtime>, flow: &str, input: Value) -> String {
    let e = common::err(rt, flow, input).await;
    e.strip_prefix("probe: ").unwrap_or(&e).to_string()
}

fn put(store: &str, key: &str, data: &str) -> Value {
    json!({"op": "blob_put", "store": store, "key": key, "data": data})
}
fn get(store: &str, key: &str) -> Value {
    json!({"op": "blob_get", "store": store, "key": key})
}
fn list(store: &str, prefix: &str, limit: u32) -> Value {
    json!({"op": "blob_list", "store": store, "prefix": prefix, "limit": limit})
}
fn delete(store: &str, key: &str) -> Value {
    json!({"op": "blob_delete", "store": store, "key": key})
}

/// put / get / list / delete on store `scratch`, whatever its kind.
async fn round_trip(rt: &Arc<Runtime>) {
    let s = "scratch";
    let keys = [
        "runs/2024/b.jsonl",
        "runs/2024/a.jsonl",
        "runs/2025/c.jsonl",
        "runsheet.csv",
        "other.txt",
    ];
    for k in keys {
        assert_eq!(
            ok(rt, "probe", put(s, k, &format!("data of {k}"))).await,
            Value::Null
        );
    }
    assert_eq!(
        ok(rt, "probe", get(s, "runs/2024/a.jsonl")).await,
        json!("data of runs/2024/a.jsonl")
    );
    assert_eq!(
        ok(rt, "probe", get(s, "runs/2024/zz.jsonl")).await,
        Value::Null
    );
    assert_eq!(ok(rt, "probe", get(s, "nothing-here")).await, Value::Null);
    // Sorted names, by string prefix (not only whole folders), at most `limit`.
    assert_eq!(
        ok(rt, "probe", list(s, "runs/2024/", 100)).await,
        json!(["runs/2024/a.jsonl", "runs/2024/b.jsonl"])
    );
    assert_eq!(
        ok(rt, "probe", list(s, "runs", 100)).await,
        json!([
            "runs/2024/a.jsonl",
            "runs/2024/b.jsonl",
            "runs/2025/c.jsonl",
            "runsheet.csv"
        ])
    );
    assert_eq!(
        ok(rt, "probe", list(s, "runs/20", 2)).await,
        json!(["runs/2024/a.jsonl", "runs/2024/b.jsonl"])
    );
    assert_eq!(
        ok(rt, "probe", list(s, "", 100)).await,
        json!([
            "other.txt",
            "runs/2024/a.jsonl",
            "runs/2024/b.jsonl",
            "runs/2025/c.jsonl",
            "runsheet.csv"
        ])
    );
    assert_eq!(ok(rt, "probe", list(s, "nope/", 100)).await, json!([]));
    assert_eq!(ok(rt, "probe", list(s, "", 0)).await, json!([]));
    // A put with the same name replaces the object (a retried offload overwrites itself).
    ok(rt, "probe", put(s, "runs/2024/a.jsonl", "second version")).await;
    assert_eq!(
        ok(rt, "probe", get(s, "runs/2024/a.jsonl")).await,
        json!("second version")
    );
    assert_eq!(
        ok(rt, "probe", delete(s, "runs/2024/a.jsonl")).await,
        json!(true)
    );
    assert_eq!(
        ok(rt, "probe", delete(s, "runs/2024/a.jsonl")).await,
        json!(false)
    );
    assert_eq!(
        ok(rt, "probe", get(s, "runs/2024/a.jsonl")).await,
        Value::Null
    );
    assert_eq!(
        ok(rt, "probe", list(s, "runs/2024/", 100)).await,
        json!(["runs/2024/b.jsonl"])
    );
    // Several ops in one run.
    let out = ok(
        rt,
        "probe",
        json!({"op": "steps", "steps": [
            put(s, "batch/1", "one"),
            get(s, "batch/1"),
            delete(s, "batch/1"),
            get(s, "batch/1"),
        ]}),
    )
    .await;
    assert_eq!(out, json!([null, "one", true, null]));
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_round_trip_on_moto() {
    let moto = moto().await;
    let env = s3_env(&moto);
    let rt = env.runtime();
    round_trip(&rt).await;
    // The objects are in the bucket (read back with a client of our own), not in a folder.
    use object_store::ObjectStore;
    let body = s3_client(&moto)
        .get(&object_store::path::Path::from("runs/2024/b.jsonl"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&body[..], b"data of runs/2024/b.jsonl");
    assert!(!env.dir.path().join("blobs/scratch/runs").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_errors_name_the_store_and_never_a_secret() {
    let moto = moto().await;
    let mut env = s3_env(&moto);
    env.config
        .blobs
        .insert("nobucket".into(), s3_store(&moto, "no-such-bucket"));
    env.config.grants.insert(
        "probe".into(),
        Grants {
            blobs_write: ["nobucket".to_string()].into(),
            ..Default::default()
        },
    );
    let rt = env.runtime();
    let e = err(&rt, "probe", put("nobucket", "k", "x")).await;
    assert!(e.contains("other: blobs.put `nobucket`/`k`: "), "{e}");
    assert!(!e.contains(KEY_SECRET) && !e.contains(KEY_ID), "{e}");
    assert!(!e.contains('\n'), "one line: {e}");
}

/// Needs no server: the runtime does not open.
#[test]
fn a_missing_s3_credential_secret_stops_the_runtime_naming_store_and_field() {
    let mut env = TestEnv::new().with_secrets(&[("MOTO_KEY_ID", KEY_ID)]);
    env.config.blobs.insert(
        "scratch".into(),
        BlobStoreConfig::S3 {
            bucket: BUCKET.into(),
            endpoint: None,
            region: "us-east-1".into(),
            access_key_id_secret: "MOTO_KEY_ID".into(),
            secret_access_key_secret: "MOTO_KEY_SECRET".into(),
            allow_http: false,
        },
    );
    let e = env.config.open_runtime().err().unwrap().to_string();
    assert!(
        e.contains("blobs.scratch.secret_access_key_secret: secret `MOTO_KEY_SECRET` is not set"),
        "{e}"
    );
    assert!(!e.contains(KEY_ID), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_requests_are_signed_with_the_configured_key() {
    let signed = moto_checking_signatures().await;
    let moto = &signed.moto;
    // A wrong secret: the server refuses the signature; the error names the store and the
    // object, is one line, and shows neither the key id nor any secret.
    let wrong = "wrong-secret-Qx81vT0-never-shown";
    let env = s3_env_with(moto, &signed.key_id, wrong);
    let rt = env.runtime();
    let e = err(&rt, "probe", put("scratch", "signed/k", "x")).await;
    assert!(
        e.starts_with("other: blobs.put `scratch`/`signed/k`: "),
        "{e}\n{}",
        moto.log()
    );
    assert!(e.contains("403"), "{e}");
    for secret in [wrong, signed.secret.as_str(), signed.key_id.as_str()] {
        assert!(!e.contains(secret), "{e}");
    }
    assert!(!e.contains('\n'), "one line: {e}");
    let e = err(&rt, "probe", get("scratch", "signed/k")).await;
    assert!(
        e.starts_with("other: blobs.get `scratch`/`signed/k`: "),
        "{e}"
    );

    // The right key: accepted, and only its object is in the bucket.
    let env = s3_env_with(moto, &signed.key_id, &signed.secret);
    let rt = env.runtime();
    ok(&rt, "probe", put("scratch", "signed/k", "signed data")).await;
    assert_eq!(
        ok(&rt, "probe", get("scratch", "signed/k")).await,
        json!("signed data")
    );
    assert_eq!(
        ok(&rt, "probe", list("scratch", "", 10)).await,
        json!(["signed/k"])
    );
    assert_eq!(
        ok(&rt, "probe", delete("scratch", "signed/k")).await,
        json!(true)
    );
}

/// A reload (SIGHUP, `systemctl reload`) after the S3 key's secrets changed opens the store
/// again with the new values: a fixed or rotated key works without a restart, and a revoked
/// one stops working. moto checks every signature here, so the old and the new secret are
/// told apart by the server, not by flowhost.
#[tokio::test(flavor = "multi_thread")]
async fn a_reload_opens_an_s3_store_again_when_its_credential_secrets_changed() {
    let signed = moto_checking_signatures().await;
    let moto = &signed.moto;
    let wrong = "wrong-secret-Zr51d-never-shown";
    let env = s3_env_with(moto, &signed.key_id, wrong);
    let rt = env.runtime();
    let e = err(&rt, "probe", put("scratch", "rotated/k", "x")).await;
    assert!(e.contains("403"), "{e}\n{}", moto.log());

    // The right secret written to the secrets file, then a reload of the same config: the
    // running runtime signs with it from then on.
    let file = env.config.secrets_file.clone().unwrap();
    let write_secret = |secret: &str| {
        let text = format!(
            "MOTO_KEY_ID: \"{}\"\nMOTO_KEY_SECRET: \"{secret}\"\n",
            signed.key_id
        );
        std::fs::write(&file, text).unwrap();
    };
    write_secret(&signed.secret);
    flowhost::reload::apply(&rt, &env.config, &env.config).unwrap();
    ok(
        &rt,
        "probe",
        put("scratch", "rotated/k", "after the reload"),
    )
    .await;
    assert_eq!(
        ok(&rt, "probe", get("scratch", "rotated/k")).await,
        json!("after the reload")
    );

    // A reload that changes nothing the store uses keeps it working.
    flowhost::reload::apply(&rt, &env.config, &env.config).unwrap();
    ok(&rt, "probe", get("scratch", "rotated/k")).await;

    // The key's secret replaced by one the server does not know: refused after the reload.
    write_secret(wrong);
    flowhost::reload::apply(&rt, &env.config, &env.config).unwrap();
    let e = err(&rt, "probe", get("scratch", "rotated/k")).await;
    assert!(e.contains("403"), "{e}");
    assert!(!e.contains(wrong) && !e.contains(&signed.secret), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn object_size_name_length_and_list_length_are_limited() {
    use flowhost::caps::blobs::{MAX_BLOB, MAX_KEY, MAX_LIST};
    let env = TestEnv::new();
    let rt = env.runtime();
    let folder = env.dir.path().join("blobs/scratch");

    // An object over the size limit (a sparse file: no disk is used) is refused, not read.
    std::fs::create_dir_all(folder.join("big")).unwrap();
    std::fs::File::create(folder.join("big/huge"))
        .unwrap()
        .set_len(MAX_BLOB + 1)
        .unwrap();
    let e = err(&rt, "probe", get("scratch", "big/huge")).await;
    assert_eq!(
        e,
        format!(
            "limit-exceeded: blobs.get `scratch`/`big/huge`: the object is {} bytes, over the \
             limit of {MAX_BLOB} bytes",
            MAX_BLOB + 1
        )
    );

    // Object names: MAX_KEY bytes is fine, one more is refused with the limit. (Segments of
    // 200 bytes: a local folder holds no file name over 255 bytes.)
    let mut longest = String::new();
    while longest.len() < MAX_KEY {
        if !longest.is_empty() {
            longest.push('/');
        }
        let room = MAX_KEY - longest.len();
        longest.push_str(&"k".repeat(room.min(200)));
    }
    assert_eq!(longest.len(), MAX_KEY);
    ok(&rt, "probe", put("scratch", &longest, "x")).await;
    assert_eq!(ok(&rt, "probe", get("scratch", &longest)).await, json!("x"));
    let e = err(&rt, "probe", put("scratch", &format!("{longest}k"), "x")).await;
    assert!(
        e.starts_with(&format!(
            "invalid-input: blobs.put: the object name is {} bytes, over the limit of {MAX_KEY}",
            MAX_KEY + 1
        )),
        "{e}"
    );

    // A list returns at most MAX_LIST names, the smallest, however large the `limit`.
    let many = folder.join("many");
    std::fs::create_dir_all(&many).unwrap();
    let count = MAX_LIST as usize + 5;
    for i in 0..count {
        std::fs::File::create(many.join(format!("{i:05}"))).unwrap();
    }
    let names = ok(&rt, "probe", list("scratch", "many/", MAX_LIST * 3)).await;
    let names: Vec<&str> = names
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(names.len(), MAX_LIST as usize);
    let want: Vec<String> = (0..MAX_LIST).map(|i| format!("many/{i:05}")).collect();
    assert_eq!(names, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn local_round_trip() {
    let env = TestEnv::new();
    let rt = env.runtime();
    round_trip(&rt).await;
    let file = env.dir.path().join("blobs/scratch/runs/2024/b.jsonl");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "data of runs/2024/b.jsonl"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn grants_names_and_unknown_stores() {
    let env = TestEnv::new();
    let rt = env.runtime();
    // `archive` is configured but not granted to probe.
    let e = err(&rt, "probe", put("archive", "k", "x")).await;
    assert_eq!(
        e,
        "access-denied: blobs.put: probe may not write blob store `archive` (grants.blobs.write)"
    );
    let e = err(&rt, "probe", get("archive", "k")).await;
    assert!(
        e.starts_with(
            "access-denied: blobs.get: probe may not read blob store `archive` (grants.blobs.read)"
        ),
        "{e}"
    );
    let e = err(&rt, "probe", list("archive", "", 10)).await;
    assert!(e.starts_with("access-denied: "), "{e}");
    // Not configured at all: denied alone, never a "did you mean" naming a store (issue 14).
    let e = err(&rt, "probe", put("scrach", "k", "x")).await;
    assert_eq!(
        e,
        "access-denied: blobs.put: probe may not write blob store `scrach` (grants.blobs.write)"
    );
    let e = err(&rt, "probe", get("elsewhere", "k")).await;
    assert!(
        e.starts_with("access-denied: blobs.get: probe may not read blob store `elsewhere`"),
        "{e}"
    );
    // Bad object names.
    for (op, why) in [
        (put("scratch", "", "x"), "empty"),
        (
            put("scratch", "/etc/passwd", "x"),
            "must not start or end with `/`",
        ),
        (put("scratch", "a/../../b", "x"), "`..`"),
        (get("scratch", "../b"), "`..`"),
        (delete("scratch", "a//b"), "empty"),
        (list("scratch", "../", 10), "`..`"),
        (list("scratch", "/abs", 10), "must not start with `/`"),
    ] {
        let e = err(&rt, "probe", op.clone()).await;
        assert!(e.starts_with("invalid-input: blobs."), "{op}: {e}");
        assert!(e.contains(why), "{op}: {e}");
    }
    // Nothing escaped the store's folder.
    assert!(!env.dir.path().join("blobs/b").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn blob_writes_are_not_rolled_back() {
    let env = TestEnv::new();
    let rt = env.runtime();
    let r = run(
        &rt,
        "probe",
        json!({"op": "steps", "steps": [
            {"op": "table", "fn": "insert", "table": "Probe Items", "row": {"id": "t1"}},
            put("scratch", "kept/after-failure", "written"),
            {"op": "fail", "message": "probe: failing after the put"},
        ]}),
    )
    .await;
    assert!(!r.ok());
    // The table write rolled back with the run; the object did not (documented).
    let row = ok(
        &rt,
        "probe",
        json!({"op": "table", "fn": "get", "table": "Probe Items", "key": "t1"}),
    )
    .await;
    assert_eq!(row, Value::Null);
    assert_eq!(
        ok(&rt, "probe", get("scratch", "kept/after-failure")).await,
        json!("written")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grant_of_an_unknown_store_is_a_load_error() {
    let env = TestEnv::new();
    let dir = env.dir.path().join("flows");
    common::drop_flow(
        &dir,
        "typo",
        "echo",
        "# grants:\n#   blobs: {write: [scrach]}\ntitle: Typo\ndescription: writes to scrach\n\
         grants:\n  blobs:\n    read: [archive]\n    write: [scrach]\n",
    );
    common::drop_flow(
        &dir,
        "fine",
        "echo",
        "title: Fine\ngrants:\n  blobs: {read: [archive], write: [scratch]}\n",
    );
    let mut config = env.config.clone();
    config.flows = vec![dir.clone()];
    let rt = config.open_runtime().unwrap();
    let reg = rt.registry();
    let errors = reg.errors.join("\n");
    assert!(
        reg.get("typo").is_none() && reg.get("fine").is_some(),
        "{errors}"
    );
    let want = format!(
        "{}:8: grants.blobs.write: no blob store `scrach` in the config (did you mean `scratch`?)",
        dir.join("typo.yaml").display()
    );
    assert!(errors.contains(&want), "{errors}");
    let fine = &reg.get("fine").unwrap().manifest.grants;
    assert!(fine.can_read_blob("archive") && !fine.can_write_blob("archive"));
    assert!(fine.can_write_blob("scratch"));
}

fn load(dir: &Path, text: &str) -> Result<Config, String> {
    let p = dir.join("flowhost.yaml");
    std::fs::write(&p, text).unwrap();
    Config::load(&p).map_err(|e| e.to_string())
}

#[test]
fn the_blobs_config_section() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let file = dir.join("flowhost.yaml").display().to_string();

    // No section: one local store `archive` in the state folder, which is the config file's
    // folder unless --state-dir says otherwise.
    let c = load(dir, "db: x.db\n").unwrap();
    assert_eq!(
        c.blobs.into_iter().collect::<Vec<_>>(),
        vec![(
            "archive".to_string(),
            BlobStoreConfig::Local {
                path: dir.join("archive")
            }
        )]
    );
    let state = dir.join("state");
    let p = dir.join("flowhost.yaml");
    let c = Config::load_in(&p, Some(&state)).unwrap();
    assert_eq!(
        c.blobs.into_iter().collect::<Vec<_>>(),
        vec![(
            "archive".to_string(),
            BlobStoreConfig::Local {
                path: state.join("archive")
            }
        )]
    );
    assert!(load(dir, "blobs: {}\n").unwrap().blobs.is_empty());

    let c = load(
        dir,
        "blobs:\n  local1: {kind: local, path: store}\n  s3:\n    kind: s3\n    bucket: b\n    \
         access_key_id_secret: KEY_ID\n    secret_access_key_secret: KEY_SECRET\n",
    )
    .unwrap();
    assert_eq!(
        c.blobs["local1"],
        BlobStoreConfig::Local {
            path: dir.join("store")
        }
    );
    assert_eq!(
        c.blobs["s3"],
        BlobStoreConfig::S3 {
            bucket: "b".into(),
            endpoint: None,
            region: "us-east-1".into(),
            access_key_id_secret: "KEY_ID".into(),
            secret_access_key_secret: "KEY_SECRET".into(),
            allow_http: false,
        }
    );

    let s3 = "kind: s3, bucket: b, access_key_id_secret: K, secret_access_key_secret: S";
    for (text, want) in [
        (
            "blobs:\n  s3: {kind: s4}\n".to_string(),
            "blobs.s3.kind: unknown kind `s4` (expected local or s3)",
        ),
        ("blobs:\n  a: {kind: local}\n".into(), "blobs.a.path: required for kind local"),
        (
            "blobs:\n  a: {kind: local, path: p, bucket: b}\n".into(),
            "blobs.a.bucket: only applies to kind s3",
        ),
        (
            "blobs:\n  a: {kind: local, paht: p}\n".into(),
            "unknown field `paht`",
        ),
        (
            "blobs:\n  a: {kind: s3, access_key_id_secret: K, secret_access_key_secret: S}\n"
                .into(),
            "blobs.a.bucket: required for kind s3",
        ),
        (
            "blobs:\n  a: {kind: s3, bucket: b, secret_access_key_secret: S}\n".into(),
            "blobs.a.access_key_id_secret: required for kind s3",
        ),
        (
            "blobs:\n  a: {kind: s3, bucket: b, access_key_id_secret: \"AKIA/abc+\", secret_access_key_secret: S}\n".into(),
            "blobs.a.access_key_id_secret: `AKIA/abc+` is not a secret name",
        ),
        (
            format!("blobs:\n  a: {{{s3}, endpoint: \"http://127.0.0.1:9000\"}}\n"),
            "blobs.a.endpoint: `http://127.0.0.1:9000` is plain http; set allow_http: true",
        ),
        (
            format!("blobs:\n  a: {{{s3}, endpoint: \"ftp://h\", allow_http: true}}\n"),
            "blobs.a.endpoint: `ftp://h` is not an http or https URL",
        ),
        (
            format!("blobs:\n  a: {{{s3}, path: p}}\n"),
            "blobs.a.path: only applies to kind local",
        ),
        (
            "blobs:\n  \"a b\": {kind: local, path: p}\n".into(),
            "blobs: `a b` is not a store name",
        ),
    ] {
        let e = load(dir, &text).unwrap_err();
        assert!(e.starts_with(&format!("{file}: ")), "{text:?}: {e}");
        assert!(e.contains(want), "{text:?}: {e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }
    let ok = load(
        dir,
        &format!("blobs:\n  a: {{{s3}, endpoint: \"http://127.0.0.1:9000\", allow_http: true}}\n"),
    );
    assert!(ok.is_ok(), "{ok:?}");
}
