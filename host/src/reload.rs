//! SIGHUP in `serve`: the config file it started with is read again (with the same command
//! line overrides) and what can change while serving is applied; the scheduler
//! ([`crate::scheduler`]) then reloads the flows with the new grants and folders.
//!
//! What was decided:
//! - **Live:** `grants:`, `flows:` folders, `blobs:`, `history.retention`, `http.prefetch`,
//!   the listener's `console:`, `api_max_body:`, `readiness:` and `trusted_proxies:` (applied
//!   by the scheduler to the listener it was given, [`crate::listener::Started::reload`], for
//!   the next requests), and the secrets: the secrets file (`secrets_file:`, which may name
//!   another file now), systemd's credentials and the `FLOWHOST_SECRET_*` environment are
//!   read again, so a rotated API token, console token or ASA key takes effect without a
//!   restart (runs already going keep what they read). The names that changed are logged,
//!   never a value. The secrets and the blob stores are read and opened before anything is
//!   swapped, so a secrets file that does not load, or a store that cannot be opened, refuses
//!   the whole new config.
//! - **At restart:** `db:`, `tables:`, `cache_dir:` (the open database and its migrated
//!   tables belong to the running process), and the listener's `listen:` (the bound socket).
//!   A change of one of them is logged as a warning naming it; the rest of the new config is
//!   applied.
//! - **A bad new config** (unreadable, not YAML, a bad field, a secrets file that does not
//!   load, a store that does not open) is logged as one error line naming the file and the
//!   fault, and the running config is kept.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{Config, ConfigError};
use crate::runtime::Runtime;

/// The config file `serve` started with, how to read it again (its state folder and the
/// command line's overrides), and the pending reload requests (a SIGHUP, or
/// [`ConfigReload::request`]).
pub struct ConfigReload {
    /// `None`: `serve` runs on the defaults (no config file), which a reload reads again.
    path: Option<PathBuf>,
    read: Box<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>,
    requested: tokio::sync::Notify,
}

impl std::fmt::Debug for ConfigReload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigReload")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ConfigReload {
    /// Reloads by calling `read`, which reads `path` (shown in log lines) the way the
    /// command line did at start: the same state folder and overrides (`--db`, `--flows`, ...).
    pub fn new(
        path: Option<&Path>,
        read: impl Fn() -> Result<Config, ConfigError> + Send + Sync + 'static,
    ) -> Arc<ConfigReload> {
        Arc::new(ConfigReload {
            path: path.map(Path::to_path_buf),
            read: Box::new(read),
            requested: tokio::sync::Notify::new(),
        })
    }

    /// The config file, as shown in log lines.
    pub fn shown(&self) -> String {
        self.path.as_ref().map_or_else(
            || "(defaults: no config file)".to_string(),
            |p| p.display().to_string(),
        )
    }

    /// Asks for a reload (one request is kept while another is being handled).
    pub fn request(&self) {
        self.requested.notify_one();
    }

    /// Resolves at the next request.
    pub async fn requested(&self) {
        self.requested.notified().await;
    }

    /// Requests a reload on every SIGHUP from now on (call it inside the tokio runtime).
    pub fn listen_for_sighup(self: &Arc<Self>) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup())?;
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                match me.upgrade() {
                    Some(me) => me.request(),
                    None => return,
                }
            }
        });
        Ok(())
    }

    /// The config file as it is now, with the overrides.
    pub fn load(&self) -> Result<Config, ConfigError> {
        (self.read)()
    }
}

/// Applies to `rt` what of `new` can change live (see the module doc) and logs what needs a
/// restart; on an error nothing has changed. The caller then serves with `new`.
pub fn apply(rt: &Runtime, old: &Config, new: &Config) -> Result<(), ConfigError> {
    let secrets = crate::secrets::Secrets::load(new.secrets_file.as_deref())
        .map_err(|e| ConfigError::Open(e.to_string()))?;
    // The stores take their credentials from the secrets: reopened when either changed.
    let blobs = if new.blobs == old.blobs && same_secrets(&rt.secrets, &secrets, &new.blobs) {
        None
    } else {
        Some(crate::caps::blobs::open_stores(&new.blobs, &secrets).map_err(ConfigError::Open)?)
    };
    for (setting, changed) in [
        ("db", new.db != old.db),
        ("tables", new.tables != old.tables),
        ("cache_dir", new.cache_dir != old.cache_dir),
        // The socket that is bound and serving.
        ("listen", new.listen != old.listen),
    ] {
        if changed {
            tracing::warn!(
                setting,
                "config reload: `{setting}:` changed; it takes effect when serve restarts"
            );
        }
    }
    let changes = rt
        .secrets
        .replace(secrets)
        .map_err(|e| ConfigError::Open(e.to_string()))?;
    if !changes.is_empty() {
        let names = |v: &[String]| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.join(", ")
            }
        };
        tracing::info!(
            added = %names(&changes.added),
            changed = %names(&changes.changed),
            removed = %names(&changes.removed),
            "config reload: secrets changed"
        );
    }
    if let Some(b) = blobs {
        rt.set_blobs(b);
    }
    rt.set_http_prefetch(new.http_prefetch);
    Ok(())
}

/// Whether every secret the S3 stores of `blobs` name has the same value in `old` and `new`.
fn same_secrets(
    old: &crate::secrets::Secrets,
    new: &crate::secrets::Secrets,
    blobs: &std::collections::BTreeMap<String, crate::config::BlobStoreConfig>,
) -> bool {
    blobs.values().all(|store| match store {
        crate::config::BlobStoreConfig::Local { .. } => true,
        crate::config::BlobStoreConfig::S3 {
            access_key_id_secret,
            secret_access_key_secret,
            ..
        } => [access_key_id_secret, secret_access_key_secret]
            .iter()
            .all(|name| old.get(name) == new.get(name)),
    })
}
