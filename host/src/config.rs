//! The config file (`--config`, or `flowhost.yaml` in the working directory if present) and
//! the defaults that work from the repository root; CLI flags override it. Also assembles a
//! `Runtime` from a config: schemas, store, history, secrets, engine and registry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::manifest::{Grants, RawGrants};

#[derive(Debug, Clone)]
pub struct Config {
    pub db: PathBuf,
    pub flows: Vec<PathBuf>,
    pub tables: Vec<PathBuf>,
    pub secrets_file: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    pub retention: Duration,
    pub grants: BTreeMap<String, Grants>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            db: PathBuf::from(".flowhost/flowhost.db"),
            flows: vec![PathBuf::from("flows/dist")],
            tables: vec![PathBuf::from("tables")],
            secrets_file: None,
            cache_dir: Some(PathBuf::from(".flowhost/cache")),
            retention: Duration::from_secs(30 * 86400),
            grants: BTreeMap::new(),
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
    db: Option<PathBuf>,
    flows: Option<Vec<PathBuf>>,
    tables: Option<Vec<PathBuf>>,
    secrets_file: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    history: Option<RawHistory>,
    #[serde(default)]
    grants: BTreeMap<String, RawGrants>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHistory {
    retention: Option<String>,
}

impl Config {
    /// Reads `path`; relative paths in it are relative to the file's folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let err = |message: String| ConfigError::File {
            path: shown.clone(),
            message,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(format!("cannot read the config file: {e}")))?;
        let raw: RawConfig = crate::yaml::from_str(&text).map_err(err)?;
        let base = path.parent().unwrap_or(Path::new(""));
        let rel = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let mut c = Config::default();
        if let Some(db) = raw.db {
            c.db = rel(db);
        }
        if let Some(f) = raw.flows {
            c.flows = f.into_iter().map(rel).collect();
        }
        if let Some(t) = raw.tables {
            c.tables = t.into_iter().map(rel).collect();
        }
        c.secrets_file = raw.secrets_file.map(rel);
        if let Some(d) = raw.cache_dir {
            c.cache_dir = Some(rel(d));
        }
        if let Some(r) = raw.history.and_then(|h| h.retention) {
            c.retention = crate::manifest::parse_duration(&r)
                .map_err(|e| err(format!("history.retention: {e}")))?;
        }
        for (flow, g) in raw.grants {
            let g = g.resolve(&format!("grants.{flow}")).map_err(err)?;
            c.grants.insert(flow, g);
        }
        Ok(c)
    }

    /// Opens everything a run needs. Errors are one line naming the file at fault.
    pub fn open_runtime(&self) -> Result<Arc<crate::runtime::Runtime>, ConfigError> {
        let open = |e: String| ConfigError::Open(e);
        let schemas = Arc::new(
            crate::schema::Schemas::load_dirs(&self.tables).map_err(|e| open(e.to_string()))?,
        );
        if let Some(dir) = self.db.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                open(format!(
                    "{}: cannot create the database folder: {e}",
                    dir.display()
                ))
            })?;
        }
        let store = crate::store::Store::open(&self.db, schemas.clone())
            .map_err(|e| open(e.to_string()))?;
        // History has its own file: it must not wait for a run's table write lock.
        let history = crate::history::History::open(&crate::history::history_path_for(&self.db))
            .map_err(|e| open(e.to_string()))?;
        if let Err(e) = history.mark_interrupted() {
            tracing::warn!(error = %e, "cannot mark interrupted runs");
        }
        if let Err(e) = history.prune_older_than(self.retention) {
            tracing::warn!(error = %e, "cannot prune run history");
        }
        let secrets = crate::secrets::Secrets::load(self.secrets_file.as_deref())
            .map_err(|e| open(e.to_string()))?;
        let engine = crate::engine::Engine::new(&crate::engine::EngineOptions {
            cache_dir: self.cache_dir.clone(),
            ..Default::default()
        })
        .map_err(|e| open(e.to_string()))?;
        let registry = crate::registry::Registry::load(&self.flows, &schemas, &self.grants);
        for e in &registry.errors {
            tracing::warn!("{e}");
        }
        crate::runtime::Runtime::new(
            engine,
            registry,
            store,
            history,
            secrets,
            Default::default(),
        )
        .map_err(open)
    }
}
