//! `blobs.*`: named object stores (an S3 bucket, an S3-compatible server, a local folder) that
//! the operator configures under `blobs:` in the config file, through the `object_store` crate.
//!
//! Every call checks the flow's grant first (`grants.blobs.read` / `.write`; write implies
//! read), then the object name, then runs the store operation inside the run's deadline.
//! Errors name the store (and key); store errors never carry a secret value.
//!
//! **Blob writes are not transactional.** Unlike table writes they are not part of the run's
//! transaction: a run that puts an object and then fails (or times out, or traps) leaves the
//! object in place, and a rolled-back run may have deleted objects. A flow that offloads rows
//! relies on deterministic object names (a retried put overwrites itself) and on deleting the
//! offloaded rows in the same run after the put, in the run's one atomic table transaction: if
//! the run fails, the rows stay and the next run writes the same object again.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};

use crate::config::BlobStoreConfig;
use crate::engine::flowhost::flow::blobs::Host;
use crate::engine::{RunState, WitError};
use crate::runtime::CallCtx;
use crate::secrets::Secrets;

/// The configured stores by name, as held by the `Runtime`.
pub type BlobStores = BTreeMap<String, Arc<dyn ObjectStore>>;

/// Largest object a flow may put or get.
pub const MAX_BLOB: u64 = 256 << 20;
/// Largest object name, in bytes (S3's limit).
pub const MAX_KEY: usize = 1024;
/// Most names one `list` returns (a larger `limit` is capped).
pub const MAX_LIST: u32 = 10_000;

/// Builds every configured store. Local folders are created if missing; S3 credentials are
/// looked up by secret name. Errors are one line naming `blobs.NAME.FIELD`.
pub fn open_stores(
    configs: &BTreeMap<String, BlobStoreConfig>,
    secrets: &Secrets,
) -> Result<BlobStores, String> {
    let mut stores = BlobStores::new();
    for (name, config) in configs {
        let store: Arc<dyn ObjectStore> = match config {
            BlobStoreConfig::Local { path } => {
                std::fs::create_dir_all(path).map_err(|e| {
                    format!(
                        "blobs.{name}.path: cannot create the folder {}: {e}",
                        path.display()
                    )
                })?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(path)
                    .map_err(|e| {
                        format!(
                            "blobs.{name}.path: cannot use the folder {}: {}",
                            path.display(),
                            one_line(&e.to_string())
                        )
                    })?
                    .with_automatic_cleanup(true);
                Arc::new(fs)
            }
            BlobStoreConfig::S3 {
                bucket,
                endpoint,
                region,
                access_key_id_secret,
                secret_access_key_secret,
                allow_http,
            } => {
                let secret = |field: &str, secret: &str| {
                    secrets.get(secret).ok_or_else(|| {
                        format!(
                            "blobs.{name}.{field}: secret `{secret}` is not set (set \
                             FLOWHOST_SECRET_{secret} or add it to the secrets file)"
                        )
                    })
                };
                let key_id = secret("access_key_id_secret", access_key_id_secret)?;
                let key_secret = secret("secret_access_key_secret", secret_access_key_secret)?;
                let retry = object_store::RetryConfig {
                    max_retries: 3,
                    retry_timeout: std::time::Duration::from_secs(60),
                    ..Default::default()
                };
                let mut builder = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_access_key_id(key_id)
                    .with_secret_access_key(key_secret)
                    .with_allow_http(*allow_http)
                    // Path-style requests (`endpoint/bucket/key`): what S3-compatible servers
                    // expect, and still accepted by AWS.
                    .with_virtual_hosted_style_request(false)
                    .with_retry(retry);
                if let Some(endpoint) = endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                let s3 = builder.build().map_err(|e| {
                    format!(
                        "blobs.{name}: cannot set up the S3 store: {}",
                        secrets.redact(&one_line(&e.to_string()))
                    )
                })?;
                Arc::new(s3)
            }
        };
        stores.insert(name.clone(), store);
    }
    Ok(stores)
}

#[derive(Clone, Copy, PartialEq)]
enum Access {
    Read,
    Write,
}

/// Checks the grant and finds the store.
fn store(
    ctx: &CallCtx,
    op: &str,
    name: &str,
    access: Access,
) -> Result<Arc<dyn ObjectStore>, WitError> {
    let grants = &ctx.flow.manifest.grants;
    let allowed = match access {
        Access::Read => grants.can_read_blob(name),
        Access::Write => grants.can_write_blob(name),
    };
    // A store the flow may not use is answered `access-denied` alone, whether it exists or
    // not: a flow learns no store names beyond its grants.
    if !allowed {
        let (what, field) = match access {
            Access::Read => ("read", "grants.blobs.read"),
            Access::Write => ("write", "grants.blobs.write"),
        };
        return Err(WitError::AccessDenied(format!(
            "blobs.{op}: {} may not {what} blob store `{name}` ({field})",
            ctx.name()
        )));
    }
    ctx.rt.blobs().get(name).cloned().ok_or_else(|| {
        WitError::NotFound(format!("blobs.{op}: no blob store `{name}` in the config"))
    })
}

/// Checks an object name: not empty, no leading or trailing `/`, no empty, `.` or `..`
/// segment, no control characters, at most `MAX_KEY` bytes, and not ending in `#` + digits
/// (the local store's partial-write names).
pub fn check_key(key: &str) -> Result<ObjectPath, String> {
    if key.is_empty() {
        return Err("the object name is empty".into());
    }
    if key.len() > MAX_KEY {
        return Err(format!(
            "the object name is {} bytes, over the limit of {MAX_KEY}",
            key.len()
        ));
    }
    if key.starts_with('/') || key.ends_with('/') {
        return Err(format!(
            "object name `{key}` must not start or end with `/`"
        ));
    }
    check_segments(key, key.split('/'))?;
    if let Some((_, suffix)) = key.rsplit('/').next().and_then(|f| f.rsplit_once('#')) {
        if !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "object name `{key}` must not end in `#` and digits"
            ));
        }
    }
    ObjectPath::parse(key).map_err(|e| format!("object name `{key}`: {}", one_line(&e.to_string())))
}

fn check_segments<'a>(
    text: &str,
    mut segments: impl Iterator<Item = &'a str>,
) -> Result<(), String> {
    if text.chars().any(char::is_control) {
        return Err(format!(
            "`{}` contains a control character",
            text.escape_debug()
        ));
    }
    if segments.any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(format!("`{text}` has an empty, `.` or `..` segment"));
    }
    Ok(())
}

/// Checks a list prefix (empty = everything) and returns the folder to list under: the part
/// up to the last `/`. Names are then filtered by the whole prefix as a string.
fn check_prefix(prefix: &str) -> Result<Option<ObjectPath>, String> {
    if prefix.is_empty() {
        return Ok(None);
    }
    if prefix.len() > MAX_KEY {
        return Err(format!("the prefix is over the limit of {MAX_KEY} bytes"));
    }
    if prefix.starts_with('/') {
        return Err(format!("prefix `{prefix}` must not start with `/`"));
    }
    // Every segment but the last (which may be a partial name) must be a whole segment.
    let (folder, last) = prefix.rsplit_once('/').unwrap_or(("", prefix));
    let whole: Vec<&str> = if folder.is_empty() {
        Vec::new()
    } else {
        folder.split('/').collect()
    };
    let partial = Some(last).filter(|l| *l == "." || *l == "..");
    check_segments(prefix, whole.iter().copied().chain(partial))?;
    if folder.is_empty() {
        return Ok(None);
    }
    ObjectPath::parse(folder)
        .map(Some)
        .map_err(|e| format!("prefix `{prefix}`: {}", one_line(&e.to_string())))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A store error as `Other`, naming the call, store and key; secret values are redacted.
fn store_error(ctx: &CallCtx, what: &str, e: object_store::Error) -> WitError {
    let text = one_line(&format!("{what}: {e}"));
    WitError::Other(ctx.rt.secrets.redact(&text).into_owned())
}

/// Runs `fut` within the run's deadline.
async fn in_time<T>(
    ctx: &CallCtx,
    what: &str,
    fut: impl Future<Output = Result<T, WitError>>,
) -> Result<T, WitError> {
    let remaining = ctx.remaining();
    if remaining.is_zero() {
        return Err(WitError::Timeout(format!(
            "{what}: the run's deadline passed"
        )));
    }
    match tokio::time::timeout(remaining, fut).await {
        Ok(r) => r,
        Err(_) => Err(WitError::Timeout(format!(
            "{what}: the run's deadline passed"
        ))),
    }
}

fn is_not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

impl Host for RunState {
    async fn put(
        &mut self,
        store_name: String,
        key: String,
        data: Vec<u8>,
    ) -> Result<(), WitError> {
        self.ctx.not_a_read();
        let ctx = &self.ctx;
        let store = store(ctx, "put", &store_name, Access::Write)?;
        let path =
            check_key(&key).map_err(|e| WitError::InvalidInput(format!("blobs.put: {e}")))?;
        let what = format!("blobs.put `{store_name}`/`{key}`");
        if data.len() as u64 > MAX_BLOB {
            return Err(WitError::LimitExceeded(format!(
                "{what}: {} bytes is over the limit of {} bytes",
                data.len(),
                MAX_BLOB
            )));
        }
        let store = store.clone();
        in_time(ctx, &what, async {
            store
                .put(&path, PutPayload::from(data))
                .await
                .map(|_| ())
                .map_err(|e| store_error(ctx, &what, e))
        })
        .await
    }

    async fn get(&mut self, store_name: String, key: String) -> Result<Option<Vec<u8>>, WitError> {
        self.ctx.not_a_read();
        let ctx = &self.ctx;
        let store = store(ctx, "get", &store_name, Access::Read)?;
        let path =
            check_key(&key).map_err(|e| WitError::InvalidInput(format!("blobs.get: {e}")))?;
        let what = format!("blobs.get `{store_name}`/`{key}`");
        let store = store.clone();
        in_time(ctx, &what, async {
            let result = match store.get(&path).await {
                Ok(r) => r,
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) => return Err(store_error(ctx, &what, e)),
            };
            if result.meta.size > MAX_BLOB {
                return Err(WitError::LimitExceeded(format!(
                    "{what}: the object is {} bytes, over the limit of {} bytes",
                    result.meta.size, MAX_BLOB
                )));
            }
            match result.bytes().await {
                Ok(b) => Ok(Some(b.to_vec())),
                // Deleted between the request and the read.
                Err(e) if is_not_found(&e) => Ok(None),
                Err(e) => Err(store_error(ctx, &what, e)),
            }
        })
        .await
    }

    async fn list(
        &mut self,
        store_name: String,
        prefix: String,
        limit: u32,
    ) -> Result<Vec<String>, WitError> {
        self.ctx.not_a_read();
        let ctx = &self.ctx;
        let store = store(ctx, "list", &store_name, Access::Read)?;
        let folder = check_prefix(&prefix)
            .map_err(|e| WitError::InvalidInput(format!("blobs.list: {e}")))?;
        let limit = limit.min(MAX_LIST) as usize;
        let what = format!("blobs.list `{store_name}` prefix `{prefix}`");
        let store = store.clone();
        in_time(ctx, &what, async {
            // Stores list in no promised order: keep the `limit` smallest names.
            let mut names: BTreeSet<String> = BTreeSet::new();
            let mut stream = store.list(folder.as_ref());
            while let Some(item) = stream.next().await {
                let meta = match item {
                    Ok(m) => m,
                    // Removed while listing (local folders).
                    Err(e) if is_not_found(&e) => continue,
                    Err(e) => return Err(store_error(ctx, &what, e)),
                };
                let name = meta.location.as_ref();
                if !name.starts_with(prefix.as_str()) || limit == 0 {
                    continue;
                }
                if names.len() < limit {
                    names.insert(name.to_string());
                } else if names.last().is_some_and(|l| name < l.as_str()) {
                    names.insert(name.to_string());
                    names.pop_last();
                }
            }
            Ok(names.into_iter().collect())
        })
        .await
    }

    async fn delete(&mut self, store_name: String, key: String) -> Result<bool, WitError> {
        self.ctx.not_a_read();
        let ctx = &self.ctx;
        let store = store(ctx, "delete", &store_name, Access::Write)?;
        let path =
            check_key(&key).map_err(|e| WitError::InvalidInput(format!("blobs.delete: {e}")))?;
        let what = format!("blobs.delete `{store_name}`/`{key}`");
        let store = store.clone();
        in_time(ctx, &what, async {
            // S3 deletes a missing object without complaint: ask first, to answer `false`.
            match store.head(&path).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => return Ok(false),
                Err(e) => return Err(store_error(ctx, &what, e)),
            }
            match store.delete(&path).await {
                Ok(()) => Ok(true),
                Err(e) if is_not_found(&e) => Ok(false),
                Err(e) => Err(store_error(ctx, &what, e)),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names() {
        for good in [
            "a",
            "2024/01/02/events-000001.jsonl.gz",
            "a b/c-d_e.f",
            "x#y",
            "x#",
        ] {
            assert!(check_key(good).is_ok(), "{good}: {:?}", check_key(good));
        }
        for (bad, why) in [
            ("", "empty"),
            ("/a", "start or end"),
            ("a/", "start or end"),
            ("a//b", "empty, `.` or `..`"),
            ("a/../b", "empty, `.` or `..`"),
            ("..", "empty, `.` or `..`"),
            ("./a", "empty, `.` or `..`"),
            ("a\nb", "control"),
            ("a#12", "`#` and digits"),
        ] {
            let e = check_key(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert!(check_key(&"k".repeat(MAX_KEY + 1))
            .unwrap_err()
            .contains("limit"));
    }

    #[test]
    fn list_prefixes() {
        assert_eq!(check_prefix("").unwrap(), None);
        assert_eq!(check_prefix("2024").unwrap(), None);
        assert_eq!(
            check_prefix("2024/01/").unwrap().unwrap().as_ref(),
            "2024/01"
        );
        assert_eq!(
            check_prefix("2024/01/ev").unwrap().unwrap().as_ref(),
            "2024/01"
        );
        for bad in ["/a", "a/../b", "..", "a//b", "a/..", "a\u{7}"] {
            assert!(check_prefix(bad).is_err(), "{bad:?}");
        }
    }
}
