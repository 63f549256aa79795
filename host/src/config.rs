//! The config file (found as [`crate::paths`] says) and the defaults, which put every file
//! in the state folder (also [`crate::paths`]) and take flows and tables from the built-in
//! package ([`crate::package`]) after the configured folders; CLI flags override it. Also
//! assembles a `Runtime` from a config: schemas, store, history, secrets, blob stores, engine
//! and registry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::manifest::{Grants, RawGrants};

#[derive(Debug, Clone)]
pub struct Config {
    /// `db:`: an SQLite file or a PostgreSQL URL.
    pub db: crate::database::Database,
    /// The flows folders, before the built-in package (which always comes last).
    pub flows: Vec<PathBuf>,
    /// The table-schema folders, before the built-in package's tables.
    pub tables: Vec<PathBuf>,
    pub secrets_file: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    /// `builtin`: whether the built-in ASA package ([`crate::package`]) comes after the
    /// folders (default `true`); off, only the configured flows and tables exist.
    pub builtin: bool,
    /// `cache_max_size`: the compile cache is kept under this many bytes (least recently used
    /// entries go first); within [`CACHE_MAX_SIZE_RANGE`] when read from a file.
    pub cache_max_size: u64,
    /// Within [`RETENTION_RANGE`] when read from a file.
    pub retention: Duration,
    pub grants: BTreeMap<String, Grants>,
    /// Named object stores (`blobs:`); by default one local store `archive`.
    pub blobs: BTreeMap<String, BlobStoreConfig>,
    /// `http.prefetch`: whether a flow's `http.prefetch` sends its request ahead (default
    /// `true`); off, the call is checked and then does nothing.
    pub http_prefetch: bool,
    /// `listen:`: where `serve`'s HTTP listener (`/healthz`, `/readyz`, `/metrics`) listens;
    /// `None`: no listener (`--listen` overrides).
    pub listen: Option<std::net::SocketAddr>,
    /// `readiness.max_lag`: `/readyz` answers 503 while the newest stored ASA event is
    /// further behind now than this (`None`: the lag does not count).
    pub max_lag: Option<Duration>,
    /// `api_max_body:`: the largest request body an API endpoint flow accepts (413 above);
    /// within [`API_MAX_BODY_RANGE`], [`DEFAULT_API_MAX_BODY`] by default.
    pub api_max_body: usize,
    /// `console:`: `serve`'s web console on the listener (`None`: off, every console route is
    /// 404).
    pub console: Option<ConsoleAccess>,
    /// `trusted_proxies:`: the reverse proxies whose `X-Forwarded-For` names the client
    /// ([`crate::client_addr`]); none by default.
    pub trusted_proxies: crate::client_addr::TrustedProxies,
}

/// Who may open the web console ([`crate::console`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleAccess {
    /// `console: true`: clients on loopback only, no token.
    Loopback,
    /// `console: { token_secret: NAME }`: any client that presents the operator token, the
    /// value of secret `NAME`.
    Token { secret: String },
}

/// `console:` as written: `true`, `false` or `{ token_secret: NAME }`.
fn parse_console(value: serde_yaml::Value) -> Result<Option<ConsoleAccess>, String> {
    use serde_yaml::Value;
    let shape = "console: expected true, false or { token_secret: NAME }";
    match value {
        Value::Bool(true) => Ok(Some(ConsoleAccess::Loopback)),
        Value::Bool(false) | Value::Null => Ok(None),
        Value::Mapping(m) => {
            let mut secret = None;
            for (k, v) in m {
                match (k.as_str(), v) {
                    (Some("token_secret"), Value::String(name)) => secret = Some(name),
                    (Some("token_secret"), _) => {
                        return Err("console.token_secret: expected a secret name".into())
                    }
                    (Some(other), _) => {
                        return Err(format!(
                            "console: unknown field `{other}` (expected token_secret)"
                        ))
                    }
                    (None, _) => return Err(shape.into()),
                }
            }
            match secret {
                Some(s) if !s.is_empty()
                    && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                {
                    Ok(Some(ConsoleAccess::Token { secret: s }))
                }
                Some(s) => Err(format!(
                    "console.token_secret: `{s}` is not a secret name (letters, digits and _ \
                     only; the token goes in the secrets file or FLOWHOST_SECRET_<NAME>, never here)"
                )),
                None => Err("console.token_secret: required in the { token_secret: NAME } form".into()),
            }
        }
        _ => Err(shape.into()),
    }
}

/// One named object store under `blobs:`. Credentials are never in the config file: an S3
/// store names the secrets (environment or secrets file) that hold them.
#[derive(Debug, Clone, PartialEq)]
pub enum BlobStoreConfig {
    /// A folder (created if missing); object names are relative paths under it.
    Local { path: PathBuf },
    /// An S3 bucket, on AWS or an S3-compatible server (path-style requests).
    S3 {
        bucket: String,
        /// e.g. `http://127.0.0.1:9000`; AWS's regional endpoint when absent.
        endpoint: Option<String>,
        region: String,
        access_key_id_secret: String,
        secret_access_key_secret: String,
        /// Allow a plain-http endpoint.
        allow_http: bool,
    },
}

/// The store a config without a `blobs:` section gets.
/// `history.retention`: from a minute to ten years.
pub const RETENTION_RANGE: crate::manifest::DurationRange = crate::manifest::DurationRange {
    min: Duration::from_secs(60),
    max: Duration::from_secs(3650 * 86400),
    text: "1m to 3650d",
};

pub const DEFAULT_BLOB_STORE: &str = "archive";
/// Its folder, in the state folder.
pub const DEFAULT_BLOB_DIR: &str = "archive";
/// The database's file name in the state folder.
pub const DEFAULT_DB: &str = "flowhost.db";
/// The compile cache's folder in the state folder.
pub const DEFAULT_CACHE_DIR: &str = "cache";
/// The compile cache's default size cap: room for the ASA package (about 15 MiB compiled)
/// many times over, so upgrades and flows of one's own rarely evict anything.
pub const DEFAULT_CACHE_MAX_SIZE: u64 = 256 << 20;
/// `cache_max_size`: from 1 MiB (a few components) to 1 TiB.
pub const CACHE_MAX_SIZE_RANGE: std::ops::RangeInclusive<u64> = (1 << 20)..=(1 << 40);

fn default_blobs(dir: PathBuf) -> BTreeMap<String, BlobStoreConfig> {
    BTreeMap::from([(
        DEFAULT_BLOB_STORE.to_string(),
        BlobStoreConfig::Local { path: dir },
    )])
}

impl Config {
    /// The defaults: every file in `state_dir`, no flows or tables but the built-in package.
    pub fn with_state_dir(state_dir: &Path) -> Config {
        Config {
            db: state_dir.join(DEFAULT_DB).into(),
            flows: Vec::new(),
            tables: Vec::new(),
            builtin: true,
            secrets_file: None,
            cache_dir: Some(state_dir.join(DEFAULT_CACHE_DIR)),
            cache_max_size: DEFAULT_CACHE_MAX_SIZE,
            retention: Duration::from_secs(30 * 86400),
            grants: BTreeMap::new(),
            blobs: default_blobs(state_dir.join(DEFAULT_BLOB_DIR)),
            http_prefetch: true,
            listen: None,
            max_lag: None,
            api_max_body: DEFAULT_API_MAX_BODY,
            console: None,
            trusted_proxies: Default::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{0}")]
    Open(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    db: Option<String>,
    flows: Option<Vec<PathBuf>>,
    tables: Option<Vec<PathBuf>>,
    builtin: Option<bool>,
    secrets_file: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    cache_max_size: Option<String>,
    state_dir: Option<PathBuf>,
    history: Option<RawHistory>,
    #[serde(default)]
    grants: BTreeMap<String, RawGrants>,
    blobs: Option<BTreeMap<String, RawBlobStore>>,
    http: Option<RawHttp>,
    listen: Option<serde_yaml::Value>,
    readiness: Option<RawReadiness>,
    api_max_body: Option<String>,
    console: Option<serde_yaml::Value>,
    trusted_proxies: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReadiness {
    max_lag: Option<String>,
}

/// `api_max_body:` by default.
pub const DEFAULT_API_MAX_BODY: usize = 1 << 20;
/// `api_max_body:`: from 1 KiB to 1 GiB.
pub const API_MAX_BODY_RANGE: std::ops::RangeInclusive<usize> = (1 << 10)..=(1 << 30);

/// `readiness.max_lag`: from a minute to a year.
pub const MAX_LAG_RANGE: crate::manifest::DurationRange = crate::manifest::DurationRange {
    min: Duration::from_secs(60),
    max: Duration::from_secs(365 * 86400),
    text: "1m to 365d",
};

/// One `blobs:` entry as written; which fields apply depends on `kind`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBlobStore {
    kind: String,
    path: Option<PathBuf>,
    bucket: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    access_key_id_secret: Option<String>,
    secret_access_key_secret: Option<String>,
    allow_http: Option<bool>,
}

impl RawBlobStore {
    /// Checks the entry; errors start with `blobs.NAME.FIELD:`. `rel` resolves a local path.
    fn resolve(
        self,
        name: &str,
        rel: impl Fn(PathBuf) -> PathBuf,
    ) -> Result<BlobStoreConfig, String> {
        let field = |f: &str| format!("blobs.{name}.{f}");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "blobs: `{name}` is not a store name (letters, digits, - and _ only)"
            ));
        }
        match self.kind.as_str() {
            "local" => {
                for (f, given) in [
                    ("bucket", self.bucket.is_some()),
                    ("endpoint", self.endpoint.is_some()),
                    ("region", self.region.is_some()),
                    ("access_key_id_secret", self.access_key_id_secret.is_some()),
                    (
                        "secret_access_key_secret",
                        self.secret_access_key_secret.is_some(),
                    ),
                    ("allow_http", self.allow_http.is_some()),
                ] {
                    if given {
                        return Err(format!("{}: only applies to kind s3", field(f)));
                    }
                }
                match self.path {
                    Some(p) if !p.as_os_str().is_empty() => {
                        Ok(BlobStoreConfig::Local { path: rel(p) })
                    }
                    _ => Err(format!(
                        "{}: required for kind local (the store's folder)",
                        field("path")
                    )),
                }
            }
            "s3" => {
                if self.path.is_some() {
                    return Err(format!("{}: only applies to kind local", field("path")));
                }
                let bucket = self
                    .bucket
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| format!("{}: required for kind s3", field("bucket")))?;
                let secret = |f: &str, v: Option<String>| match v {
                    Some(s)
                        if !s.is_empty()
                            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                    {
                        Ok(s)
                    }
                    Some(s) => Err(format!(
                        "{}: `{s}` is not a secret name (letters, digits and _ only; the value \
                         goes in the secrets file or FLOWHOST_SECRET_<NAME>, never here)",
                        field(f)
                    )),
                    None => Err(format!(
                        "{}: required for kind s3 (the name of the secret that holds it)",
                        field(f)
                    )),
                };
                let access_key_id_secret =
                    secret("access_key_id_secret", self.access_key_id_secret)?;
                let secret_access_key_secret =
                    secret("secret_access_key_secret", self.secret_access_key_secret)?;
                let allow_http = self.allow_http.unwrap_or(false);
                if let Some(e) = &self.endpoint {
                    let url = reqwest::Url::parse(e).map_err(|err| {
                        format!("{}: `{e}` is not a URL: {err}", field("endpoint"))
                    })?;
                    match url.scheme() {
                        "https" => {}
                        "http" if allow_http => {}
                        "http" => {
                            return Err(format!(
                                "{}: `{e}` is plain http; set allow_http: true to use it",
                                field("endpoint")
                            ))
                        }
                        _ => {
                            return Err(format!(
                                "{}: `{e}` is not an http or https URL",
                                field("endpoint")
                            ))
                        }
                    }
                }
                Ok(BlobStoreConfig::S3 {
                    bucket,
                    endpoint: self.endpoint,
                    region: self
                        .region
                        .filter(|r| !r.is_empty())
                        .unwrap_or_else(|| "us-east-1".into()),
                    access_key_id_secret,
                    secret_access_key_secret,
                    allow_http,
                })
            }
            other => Err(format!(
                "{}: unknown kind `{other}` (expected local or s3)",
                field("kind")
            )),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHistory {
    retention: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    prefetch: Option<bool>,
}

impl Config {
    /// Reads `path` with the state in the file's folder; relative paths in it are relative to
    /// the file's folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_in(path, None)
    }

    /// Reads `path`, with what it does not set in the state folder: `state_dir` (the
    /// `--state-dir` flag) if given, else the file's `state_dir:`, else the file's folder.
    /// Relative paths in it are relative to the file's folder.
    pub fn load_in(path: &Path, state_dir: Option<&Path>) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let err = |message: String| ConfigError::File {
            path: shown.clone(),
            message: crate::yaml::one_line(&message),
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                " (check the --config path or FLOWHOST_CONFIG)"
            } else {
                ""
            };
            err(format!("cannot read the config file: {e}{hint}"))
        })?;
        let raw: RawConfig = crate::yaml::from_str(&text).map_err(err)?;
        let base = path.parent().unwrap_or(Path::new(""));
        let rel = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let state_dir = match (state_dir, raw.state_dir) {
            (Some(flag), _) => flag.to_path_buf(),
            (None, Some(d)) if !d.as_os_str().is_empty() => rel(d),
            (None, Some(_)) => {
                return Err(err(
                    "state_dir: empty (give the state folder, or leave the setting out)".into(),
                ))
            }
            (None, None) => crate::paths::config_folder(path),
        };
        let mut c = Config::with_state_dir(&state_dir);
        if let Some(db) = raw.db {
            c.db = match crate::database::Database::parse(&db).map_err(|e| err(e.to_string()))? {
                crate::database::Database::Sqlite(p) => rel(p).into(),
                pg => pg,
            };
        }
        if let Some(f) = raw.flows {
            c.flows = f.into_iter().map(rel).collect();
        }
        if let Some(t) = raw.tables {
            c.tables = t.into_iter().map(rel).collect();
        }
        if let Some(b) = raw.builtin {
            c.builtin = b;
        }
        c.secrets_file = raw.secrets_file.map(rel);
        if let Some(d) = raw.cache_dir {
            c.cache_dir = Some(rel(d));
        }
        if let Some(size) = raw.cache_max_size {
            c.cache_max_size = parse_cache_max_size(&size).map_err(err)?;
        }
        if let Some(r) = raw.history.and_then(|h| h.retention) {
            c.retention = crate::manifest::parse_duration(&r)
                .map_err(|e| format!("history.retention: {e}"))
                .and_then(|d| RETENTION_RANGE.check("history.retention", &r, d))
                .map_err(err)?;
        }
        if let Some(l) = raw.listen {
            // A bare port may be written as a number.
            let text = match l {
                serde_yaml::Value::Number(n) => n.to_string(),
                serde_yaml::Value::String(s) => s,
                other => serde_yaml::to_string(&other)
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            };
            c.listen =
                Some(crate::listener::parse_addr(&text).map_err(|e| err(format!("listen: {e}")))?);
        }
        if let Some(m) = raw.readiness.and_then(|r| r.max_lag) {
            c.max_lag = Some(
                crate::manifest::parse_duration(&m)
                    .map_err(|e| format!("readiness.max_lag: {e}"))
                    .and_then(|d| MAX_LAG_RANGE.check("readiness.max_lag", &m, d))
                    .map_err(err)?,
            );
        }
        if let Some(size) = raw.api_max_body {
            c.api_max_body = crate::manifest::parse_size(&size)
                .map_err(|e| format!("api_max_body: {e}"))
                .and_then(|n| {
                    if API_MAX_BODY_RANGE.contains(&n) {
                        Ok(n)
                    } else {
                        Err(format!(
                            "api_max_body: `{size}` is out of range (1KiB to 1GiB)"
                        ))
                    }
                })
                .map_err(err)?;
        }
        if let Some(v) = raw.console {
            c.console = parse_console(v).map_err(err)?;
        }
        if let Some(t) = raw.trusted_proxies {
            c.trusted_proxies = crate::client_addr::TrustedProxies::parse(&t).map_err(err)?;
        }
        if let Some(p) = raw.http.and_then(|h| h.prefetch) {
            c.http_prefetch = p;
        }
        for (flow, g) in raw.grants {
            let g = g.resolve(&format!("grants.{flow}")).map_err(err)?;
            c.grants.insert(flow, g);
        }
        c.blobs = match raw.blobs {
            None => c.blobs,
            Some(stores) => stores
                .into_iter()
                .map(|(name, s)| {
                    let store = s.resolve(&name, rel).map_err(&err)?;
                    Ok((name, store))
                })
                .collect::<Result<_, ConfigError>>()?,
        };
        Ok(c)
    }

    /// The table schemas: the configured folders', then the built-in package's (unless
    /// `builtin: false`).
    pub fn schemas(&self) -> Result<crate::schema::Schemas, crate::schema::SchemaError> {
        if self.builtin {
            crate::schema::Schemas::load_with_package(&self.tables)
        } else {
            crate::schema::Schemas::load_dirs(&self.tables)
        }
    }

    /// The flows of the configured folders, then the built-in package's (unless
    /// `builtin: false`), with the config's grants, checked against `schemas` and the blob
    /// stores `blob_names`. Loading errors are in the registry's `errors`.
    pub fn registry(
        &self,
        schemas: &crate::schema::Schemas,
        blob_names: &std::collections::BTreeSet<String>,
    ) -> crate::registry::Registry {
        let package = if self.builtin {
            crate::package::flows()
        } else {
            &[]
        };
        crate::registry::Registry::load_from(
            &self.flows,
            package,
            schemas,
            &self.grants,
            blob_names,
        )
    }

    /// Loads the table schemas and the secrets and checks (creating it if needed) the
    /// database's folder: everything that can be refused before the first file is written.
    pub fn check(
        &self,
    ) -> Result<(Arc<crate::schema::Schemas>, crate::secrets::Secrets), ConfigError> {
        let open = |e: String| ConfigError::Open(e);
        let schemas = Arc::new(self.schemas().map_err(|e| open(e.to_string()))?);
        let secrets = crate::secrets::Secrets::load(self.secrets_file.as_deref())
            .map_err(|e| open(e.to_string()))?;
        let Some(db) = self.db.sqlite_path() else {
            return Ok((schemas, secrets));
        };
        if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
            if dir.exists() && !dir.is_dir() {
                return Err(open(format!(
                    "{}: the database folder `{}` is a file, not a folder (fix the `db:` setting or --db)",
                    db.display(),
                    dir.display()
                )));
            }
            std::fs::create_dir_all(dir).map_err(|e| {
                open(format!(
                    "{}: cannot create the database folder: {e} (fix the `db:` setting or --db)",
                    dir.display()
                ))
            })?;
        }
        crate::store::check_db_dir(db).map_err(|e| open(e.to_string()))?;
        Ok((schemas, secrets))
    }

    /// The flows (and the load errors, logged as warnings as [`Config::open_runtime`] does) as
    /// a run would see them, after the checks of [`Config::check`]; opens no database
    /// (`flowhost list`).
    pub fn load_registry(&self) -> Result<crate::registry::Registry, ConfigError> {
        let (schemas, _) = self.check()?;
        let blob_names = self.blobs.keys().cloned().collect();
        let registry = self.registry(&schemas, &blob_names);
        for e in &registry.errors {
            tracing::warn!("{e}");
        }
        Ok(registry)
    }

    /// Opens everything a run needs. Errors are one line naming the file at fault.
    pub fn open_runtime(&self) -> Result<Arc<crate::runtime::Runtime>, ConfigError> {
        let open = |e: String| ConfigError::Open(e);
        // Everything that can be refused is checked before the first file is written.
        let (schemas, secrets) = self.check()?;
        let crate::database::OpenDatabase {
            store,
            history,
            leases,
            ..
        } = self
            .db
            .open(schemas.clone())
            .map_err(|e| open(e.to_string()))?;
        let leases = match leases {
            crate::database::LeaseSlot::Files(l) => l,
            // One cluster per PostgreSQL database: this process becomes one of its nodes.
            crate::database::LeaseSlot::Cluster(pg) => crate::lease::Leases::cluster(
                crate::cluster::Cluster::join(pg).map_err(|e| open(e.to_string()))?,
            ),
        };
        if let Err(e) = history.mark_interrupted() {
            tracing::warn!(error = %e, "cannot mark interrupted runs");
        }
        if let Err(e) = history.prune_older_than(self.retention) {
            tracing::warn!(error = %e, "cannot prune run history");
        }
        let engine = crate::engine::Engine::new(&crate::engine::EngineOptions {
            cache_dir: self.cache_dir.clone(),
            cache_max_size: self.cache_max_size,
            ..Default::default()
        })
        .map_err(|e| open(e.to_string()))?;
        let blobs = crate::caps::blobs::open_stores(&self.blobs, &secrets).map_err(open)?;
        let blob_names = blobs.keys().cloned().collect();
        let registry = self.registry(&schemas, &blob_names);
        for e in &registry.errors {
            tracing::warn!("{e}");
        }
        crate::runtime::Runtime::new(
            engine,
            registry,
            store,
            history,
            leases,
            secrets,
            blobs,
            crate::runtime::Limits {
                http_prefetch: self.http_prefetch,
                ..Default::default()
            },
        )
        .map_err(open)
    }
}

/// `cache_max_size:` as written (`512MiB`, `2GiB`), checked against [`CACHE_MAX_SIZE_RANGE`].
fn parse_cache_max_size(text: &str) -> Result<u64, String> {
    let n = crate::manifest::parse_size(text)
        .map_err(|e| format!("cache_max_size: {e}"))
        .and_then(|n| {
            u64::try_from(n).map_err(|_| format!("cache_max_size: `{text}` is too large"))
        })?;
    if !CACHE_MAX_SIZE_RANGE.contains(&n) {
        return Err(format!(
            "cache_max_size: `{text}` is out of range (1MiB to 1024GiB)"
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod console_tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<ConsoleAccess>, String> {
        parse_console(serde_yaml::from_str(text).unwrap())
    }

    #[test]
    fn console_takes_true_false_or_a_token_secret() {
        assert_eq!(parse("true"), Ok(Some(ConsoleAccess::Loopback)));
        assert_eq!(parse("false"), Ok(None));
        assert_eq!(
            parse("{ token_secret: CONSOLE_TOKEN }"),
            Ok(Some(ConsoleAccess::Token {
                secret: "CONSOLE_TOKEN".into()
            }))
        );
        let shape = "console: expected true, false or { token_secret: NAME }";
        assert_eq!(parse("yes please").unwrap_err(), shape);
        assert_eq!(parse("[1]").unwrap_err(), shape);
        assert!(parse("{ token: x }")
            .unwrap_err()
            .starts_with("console: unknown field `token`"));
        assert!(parse("{ token_secret: \"s3cr3t value\" }")
            .unwrap_err()
            .starts_with("console.token_secret: `s3cr3t value` is not a secret name"));
        assert!(parse("{ token_secret: [] }")
            .unwrap_err()
            .starts_with("console.token_secret: expected a secret name"));
    }
}
