//! `flowhost check`: everything that can be validated without running a flow or writing a
//! file, as a list of findings (one line each, naming the file and the field).
//!
//! What is checked, in order: the config file; the table schemas; the secrets file; every
//! manifest (the registry's load errors: grants against tables, flows and blob stores); that
//! every component in a flows folder compiles and links (`check_components`); that every secret a manifest grants or a `blobs:` store names is set; the database (opened
//! read-only when it exists, never created); and, for every team (one row each of the
//! `Environment Variables` table, the default team first), that the ASA base URL U02 stored
//! (`asaBaseUrl`, `https://app.scaleft.com` when unset, as U01 reads it) is granted to M10 and
//! U00 (asked of [`Registry::check_url`]) and that the secrets its row names for its key pair
//! (`keyIdSecret`, `keySecretSecret`; `ASA_KEY_ID`, `ASA_KEY_SECRET` when unset) are granted
//! to U00; when not, the finding carries the config lines that grant them
//! ([`crate::registry::grant_lines`]). With `--connect`, [`connect`] then asks ASA for a token
//! and one page for each team.
//!
//! Decisions:
//! - A missing secret is an error for a flow `serve` runs (one with a schedule, or one such a
//!   flow calls, directly or not) and a warning for the others: an operator who never offloads
//!   to Splunk need not invent an `HEC_TOKEN`. A `blobs:` store's secrets are always required.
//! - An API endpoint flow (`api: { token_secret: NAME }`) is one `serve` runs too: its token
//!   secret must be set (without it every request is refused), and so must the secrets it
//!   and the flows it calls are granted. The finding names the secret, never a value.
//! - The console's operator token secret (`console: { token_secret: NAME }`) must be set.
//! - When the table schemas do not load, the manifests are not checked (every grant of a table
//!   would fail with them); a secrets file that does not load leaves the secrets unchecked.
//! - Nothing here creates, migrates or locks anything: the database is read through the
//!   read-only openers the `history` and `table` commands use.

pub mod connect;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::config::{BlobStoreConfig, Config};
use crate::engine::{Engine, EngineOptions};
use crate::registry::{FlowSource, Registry, UrlGrantError};
use crate::schema::Schemas;
use crate::secrets::Secrets;

/// The ASA package's settings table and its columns `check` reads.
pub const ENV_TABLE: &str = "Environment Variables";
pub const BASE_URL_COLUMN: &str = "asaBaseUrl";
pub const TEAM_COLUMN: &str = "asaTeam";
pub const KEY_ID_SECRET_COLUMN: &str = "keyIdSecret";
pub const KEY_SECRET_SECRET_COLUMN: &str = "keySecretSecret";
/// The secrets holding a team's key pair while its row names none.
pub const DEFAULT_KEY_ID_SECRET: &str = "ASA_KEY_ID";
pub const DEFAULT_KEY_SECRET_SECRET: &str = "ASA_KEY_SECRET";
/// The base URL U01 uses while `asaBaseUrl` is empty.
pub const DEFAULT_BASE_URL: &str = "https://app.scaleft.com";
/// The flows that send requests to the ASA base URL.
pub const ASA_FLOWS: [&str; 2] = ["M10", "U00"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// `check` exits 1.
    Error,
    /// Shown; `check` still exits 0.
    Warning,
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Config,
    Schema,
    Manifest,
    /// A flow's `.wasm` that does not compile or link.
    Component,
    Secret,
    Database,
    Grant,
    Connect,
}

/// One problem.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub kind: Kind,
    /// The file at fault, when one is.
    pub file: Option<String>,
    /// The field at fault (`grants.M10.hosts`, `blobs.s3.access_key_id_secret`), when known.
    pub field: Option<String>,
    /// One line naming the file and the field, and the fix.
    pub message: String,
    /// Lines to put in `file` (the `grants:` section that grants the ASA base URL).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fix: Vec<String>,
}

impl Finding {
    fn new(severity: Severity, kind: Kind, message: impl Into<String>) -> Finding {
        Finding {
            severity,
            kind,
            file: None,
            field: None,
            message: crate::yaml::one_line(&message.into()),
            fix: Vec::new(),
        }
    }

    fn error(kind: Kind, message: impl Into<String>) -> Finding {
        Finding::new(Severity::Error, kind, message)
    }

    fn at(mut self, file: Option<&Path>, field: Option<&str>) -> Finding {
        self.file = file.map(|f| f.display().to_string());
        self.field = field.map(str::to_string);
        self
    }

    /// At the database: its file, or its URL without password.
    fn at_db(mut self, db: &crate::database::Database, field: Option<&str>) -> Finding {
        self.file = Some(db.to_string());
        self.field = field.map(str::to_string);
        self
    }
}

/// What `check` looked at and found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// No finding of severity error.
    pub ok: bool,
    /// The config file read (`None`: defaults only).
    pub config: Option<String>,
    pub flows: usize,
    pub tables: usize,
    /// The default team's ASA settings as U01 would read them, when the ASA package is loaded
    /// (the first of `teams`).
    pub asa: Option<AsaSettings>,
    /// Every team's settings, the default team first (one row each in `Environment Variables`).
    pub teams: Vec<AsaSettings>,
    pub findings: Vec<Finding>,
    /// What ASA answered the default team (`check --connect`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect: Option<connect::Answer>,
    /// What ASA answered every team, the default team first (`check --connect`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connect_teams: Vec<connect::Answer>,
}

/// The ASA settings of one team, as `check` reads them from the `Environment Variables` table.
#[derive(Debug, Clone, Serialize)]
pub struct AsaSettings {
    pub base_url: String,
    /// `""` while U02 has not set it.
    pub team: String,
    /// The names of the secrets holding the team's key pair (never their values).
    pub key_id_secret: String,
    pub key_secret_secret: String,
}

impl Report {
    /// A report of a config file that does not load (`error` names the file).
    pub fn config_error(path: Option<&Path>, error: &str) -> Report {
        let mut r = Report {
            config: path.map(|p| p.display().to_string()),
            ..Default::default()
        };
        r.push(Finding::error(Kind::Config, error).at(path, None));
        r
    }

    fn push(&mut self, f: Finding) {
        self.findings.push(f);
        self.ok = !self.findings.iter().any(|f| f.severity == Severity::Error);
    }

    /// Adds what `--connect` found for each team, the default team first (their problems
    /// become findings).
    pub fn add_connect(&mut self, answers: Vec<connect::Answer>) {
        for answer in &answers {
            for problem in &answer.problems {
                self.push(Finding::error(Kind::Connect, problem.clone()));
            }
        }
        self.connect = answers.first().cloned();
        self.connect_teams = answers;
    }

    /// The report for people: one line per finding (`error: …` / `warning: …`), each fix's
    /// lines after its finding, then what answered (`--connect`) and a last line saying
    /// whether all is well.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for f in &self.findings {
            let level = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            out.push(format!("{level}: {}", f.message));
            out.extend(f.fix.iter().cloned());
        }
        for c in &self.connect_teams {
            out.extend(c.lines());
        }
        let errors = self
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count();
        let config = self
            .config
            .as_deref()
            .unwrap_or("no config file (defaults)");
        out.push(if errors == 0 {
            format!("ok: {config}, {} flows, {} tables", self.flows, self.tables)
        } else {
            format!("{errors} problem(s) in {config} and the files it names")
        });
        out
    }
}

/// Checks `config` (read from `config_path`, if from a file) without running a flow or writing
/// anything.
pub fn check(config: &Config, config_path: Option<&Path>) -> Report {
    inspect(config, config_path).report
}

/// [`check`], then (unless the ASA settings could not be read) asks ASA for a token and one
/// page as U00 and M10 would ([`connect::probe`]).
pub async fn check_and_connect(config: &Config, config_path: Option<&Path>) -> Report {
    let Inspected {
        mut report,
        registry,
        secrets,
    } = inspect(config, config_path);
    let answers = connect::probe_teams(&report.teams, registry.as_ref(), secrets.as_ref()).await;
    report.add_connect(answers);
    report
}

/// What [`inspect`] found, and what it loaded for `--connect`.
struct Inspected {
    report: Report,
    registry: Option<Registry>,
    secrets: Option<Secrets>,
}

fn inspect(config: &Config, config_path: Option<&Path>) -> Inspected {
    let mut r = Report {
        ok: true,
        config: config_path.map(|p| p.display().to_string()),
        ..Default::default()
    };
    // The configured folders and, unless `builtin: false`, the built-in package's tables.
    let schemas = match config.schemas() {
        Ok(s) => Some(Arc::new(s)),
        Err(e) => {
            r.push(Finding::error(Kind::Schema, e.to_string()));
            None
        }
    };
    let secrets = match Secrets::load(config.secrets_file.as_deref()) {
        Ok(s) => Some(s),
        Err(e) => {
            let f = Finding::error(Kind::Secret, e.to_string());
            r.push(f.at(config.secrets_file.as_deref(), None));
            None
        }
    };
    if let Some(secrets) = &secrets {
        check_blob_secrets(&mut r, config, config_path, secrets);
        check_console_token(&mut r, config, config_path, secrets);
    }
    let Some(schemas) = schemas else {
        r.push(Finding::new(
            Severity::Warning,
            Kind::Manifest,
            "flows not checked: their grants need the table schemas (fix the error above)",
        ));
        return Inspected {
            report: r,
            registry: None,
            secrets,
        };
    };
    r.tables = schemas.len();
    let blob_names: BTreeSet<String> = config.blobs.keys().cloned().collect();
    let registry = config.registry(&schemas, &blob_names);
    r.flows = registry.len();
    for e in &registry.errors {
        let kind = if e.starts_with("config:") {
            Kind::Config
        } else {
            Kind::Manifest
        };
        let file = if kind == Kind::Config {
            config_path.map(Path::to_path_buf)
        } else {
            file_of(e)
        };
        r.push(Finding::error(kind, e.clone()).at(file.as_deref(), None));
    }
    check_components(&mut r, &registry, config);
    if let Some(secrets) = &secrets {
        check_flow_secrets(&mut r, &registry, config, config_path, secrets);
        check_api_tokens(&mut r, &registry, config, config_path, secrets);
    }
    let store = open_store(&mut r, config, &schemas);
    check_asa_grants(&mut r, &registry, config, config_path, store.as_ref());
    Inspected {
        report: r,
        registry: Some(registry),
        secrets,
    }
}

/// Every component from a flows folder compiles and links: it is a component, and the host
/// provides every import it names (a flow built against another contract version is found
/// here, not at its first run). The compile cache is read, never written: a component it does
/// not hold is compiled and thrown away (tens of milliseconds each). The built-in package's
/// components are the binary's own and are not compiled again.
fn check_components(r: &mut Report, registry: &Registry, config: &Config) {
    let mut from_folders = registry
        .iter()
        .filter_map(|e| match &e.source {
            FlowSource::File(wasm) => Some((e, wasm)),
            FlowSource::BuiltIn(_) => None,
        })
        .peekable();
    if from_folders.peek().is_none() {
        return;
    }
    let engine = match Engine::new(&EngineOptions {
        cache_dir: config.cache_dir.clone(),
        cache_max_size: config.cache_max_size,
        cache_read_only: true,
        max_instances: 1,
        ..EngineOptions::default()
    }) {
        Ok(engine) => engine,
        Err(e) => {
            r.push(Finding::error(
                Kind::Component,
                format!("components not checked: {e}"),
            ));
            return;
        }
    };
    for (entry, wasm) in from_folders {
        if let Err(e) = entry.prepare(&engine) {
            r.push(Finding::error(Kind::Component, e).at(Some(wasm), None));
        }
    }
}

/// The file an error line of the registry starts with (`…/M10.yaml:12: …`).
fn file_of(error: &str) -> Option<PathBuf> {
    [".yaml", ".yml", ".wasm"]
        .iter()
        .filter_map(|ext| error.find(&format!("{ext}:")).map(|i| i + ext.len()))
        .min()
        .map(|end| PathBuf::from(&error[..end]))
}

/// The console's operator token, in token mode, must be set: without it nobody can open it.
fn check_console_token(r: &mut Report, config: &Config, path: Option<&Path>, secrets: &Secrets) {
    let Some(crate::config::ConsoleAccess::Token { secret }) = &config.console else {
        return;
    };
    if secrets.get(secret).is_some_and(|v| !v.is_empty()) {
        return;
    }
    let field = "console.token_secret";
    let msg = format!(
        "{}: {field}: the operator token secret `{secret}` is not set, so the console lets \
         nobody in ({})",
        shown(path),
        where_secrets_go(secret, config)
    );
    r.push(Finding::error(Kind::Secret, msg).at(path, Some(field)));
}

/// Every secret a `blobs:` store names must be set.
fn check_blob_secrets(r: &mut Report, config: &Config, path: Option<&Path>, secrets: &Secrets) {
    for (name, store) in &config.blobs {
        let BlobStoreConfig::S3 {
            access_key_id_secret,
            secret_access_key_secret,
            ..
        } = store
        else {
            continue;
        };
        for (field, secret) in [
            ("access_key_id_secret", access_key_id_secret),
            ("secret_access_key_secret", secret_access_key_secret),
        ] {
            if secrets.get(secret).is_none() {
                let field = format!("blobs.{name}.{field}");
                let msg = format!(
                    "{}: {field}: the secret `{secret}` is not set ({})",
                    shown(path),
                    where_secrets_go(secret, config)
                );
                r.push(Finding::error(Kind::Secret, msg).at(path, Some(&field)));
            }
        }
    }
}

/// Every secret a flow is granted must be set: an error for the flows `serve` runs, a
/// warning for the others (see the module doc).
fn check_flow_secrets(
    r: &mut Report,
    registry: &Registry,
    config: &Config,
    config_path: Option<&Path>,
    secrets: &Secrets,
) {
    let served = served_flows(registry);
    for f in registry.iter() {
        let m = &f.manifest;
        for secret in &m.grants.secrets {
            if secrets.get(secret).is_some() {
                continue;
            }
            // Granted by the config file's `grants:` rather than the manifest?
            let by_config = config
                .grants
                .get(&m.name)
                .is_some_and(|g| g.secrets.contains(secret));
            let (file, field) = if by_config {
                (config_path, format!("grants.{}.secrets", m.name))
            } else {
                (Some(m.path.as_path()), "grants.secrets".to_string())
            };
            let (severity, when) = if served.contains(m.name.as_str()) {
                (Severity::Error, "")
            } else {
                (
                    Severity::Warning,
                    "; `serve` does not run this flow, so only a run of it needs it",
                )
            };
            let msg = format!(
                "{}: {field}: the secret `{secret}` of {} is not set ({}){when}",
                shown(file),
                m.name,
                where_secrets_go(secret, config)
            );
            r.push(Finding::new(severity, Kind::Secret, msg).at(file, Some(&field)));
        }
    }
}

/// Every API endpoint flow's token secret must be set.
fn check_api_tokens(
    r: &mut Report,
    registry: &Registry,
    config: &Config,
    config_path: Option<&Path>,
    secrets: &Secrets,
) {
    for f in registry.iter() {
        let m = &f.manifest;
        let Some(api) = &m.grants.api else { continue };
        let secret = &api.token_secret;
        if secrets.get(secret).is_some_and(|v| !v.is_empty()) {
            continue;
        }
        let by_config = config.grants.get(&m.name).is_some_and(|g| g.api.is_some());
        let (file, field) = if by_config {
            (config_path, format!("grants.{}.api.token_secret", m.name))
        } else {
            (Some(m.path.as_path()), "api.token_secret".to_string())
        };
        let msg = format!(
            "{}: {field}: the client token secret `{secret}` of API endpoint flow {} is not set, \
             so `serve` refuses every request to it ({})",
            shown(file),
            m.name,
            where_secrets_go(secret, config)
        );
        r.push(Finding::error(Kind::Secret, msg).at(file, Some(&field)));
    }
}

/// The flows `serve` starts (a schedule, or an API endpoint) and every flow they may call,
/// directly or not.
fn served_flows(registry: &Registry) -> BTreeSet<&str> {
    let mut served = BTreeSet::new();
    let mut todo: Vec<&str> = registry
        .iter()
        .filter(|f| f.manifest.schedule.is_some() || f.manifest.grants.api.is_some())
        .map(|f| f.manifest.name.as_str())
        .collect();
    while let Some(name) = todo.pop() {
        if !served.insert(name) {
            continue;
        }
        if let Some(f) = registry.get(name) {
            todo.extend(f.manifest.grants.flows.iter().map(String::as_str));
        }
    }
    served
}

fn where_secrets_go(secret: &str, config: &Config) -> String {
    match &config.secrets_file {
        Some(file) => format!(
            "set FLOWHOST_SECRET_{secret} or add `{secret}: …` to {}",
            file.display()
        ),
        None => format!(
            "set FLOWHOST_SECRET_{secret}, or name a secrets file (`secrets_file:`) that has `{secret}: …`"
        ),
    }
}

fn shown(file: Option<&Path>) -> String {
    file.map_or_else(
        || "config (no file)".to_string(),
        |f| f.display().to_string(),
    )
}

/// The existing database, opened read-only (`None` when there is none yet, or on an error,
/// which becomes a finding). A database that does not exist yet is no problem: `serve` and
/// `run` create it, provided its folder can be made.
fn open_store(
    r: &mut Report,
    config: &Config,
    schemas: &Arc<Schemas>,
) -> Option<crate::store::Store> {
    let Some(db) = config.db.sqlite_path() else {
        return match config.db.open_store_read_only(schemas.clone()) {
            Ok(s) => s,
            Err(e) => {
                r.push(Finding::error(Kind::Database, e.to_string()).at_db(&config.db, None));
                None
            }
        };
    };
    let dir = db.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(file) = dir.and_then(|d| d.ancestors().find(|a| a.exists())) {
        if !file.is_dir() {
            let msg = format!(
                "{}: the database folder `{}` is a file, not a folder (fix the `db:` setting or --db)",
                db.display(),
                file.display()
            );
            r.push(Finding::error(Kind::Database, msg).at(Some(db), Some("db")));
            return None;
        }
    }
    if !db.exists() {
        return None;
    }
    match crate::store::Store::open_read_only(db, schemas.clone()) {
        Ok(s) => Some(s),
        Err(e) => {
            r.push(Finding::error(Kind::Database, e.to_string()).at(Some(db), None));
            None
        }
    }
}

/// The ASA settings U01 reads, one per row of [`ENV_TABLE`] in the order stored (the default
/// team first), defaults for what is unset; one row of defaults when the table is empty.
pub fn asa_teams(store: Option<&crate::store::Store>) -> Result<Vec<AsaSettings>, String> {
    let mut rows = Vec::new();
    if let Some(store) = store {
        let read = store.export_rows(ENV_TABLE, |r| -> Result<bool, crate::store::TableError> {
            rows.push(r);
            Ok(true)
        });
        match read {
            Ok(_) | Err(crate::store::TableError::NotFound(_)) => {}
            Err(e) => return Err(format!("{ENV_TABLE}: {e}")),
        }
    }
    if rows.is_empty() {
        rows.push(serde_json::Map::new());
    }
    Ok(rows.iter().map(settings_of).collect())
}

/// One row of [`ENV_TABLE`] as U01 reads it.
fn settings_of(row: &serde_json::Map<String, serde_json::Value>) -> AsaSettings {
    let text = |col: &str| match row.get(col) {
        Some(serde_json::Value::String(s)) => s.trim().to_string(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let or = |col: &str, default: &str| {
        let t = text(col);
        if t.is_empty() {
            default.to_string()
        } else {
            t
        }
    };
    AsaSettings {
        base_url: or(BASE_URL_COLUMN, DEFAULT_BASE_URL)
            .trim_end_matches('/')
            .to_string(),
        team: text(TEAM_COLUMN),
        key_id_secret: or(KEY_ID_SECRET_COLUMN, DEFAULT_KEY_ID_SECRET),
        key_secret_secret: or(KEY_SECRET_SECRET_COLUMN, DEFAULT_KEY_SECRET_SECRET),
    }
}

/// Each team's stored ASA base URL must be granted to M10 and U00, and the secrets its row
/// names for its key pair to U00 (when the package is loaded).
fn check_asa_grants(
    r: &mut Report,
    registry: &Registry,
    config: &Config,
    config_path: Option<&Path>,
    store: Option<&crate::store::Store>,
) {
    let loaded: Vec<&str> = ASA_FLOWS
        .into_iter()
        .filter(|f| registry.get(f).is_some())
        .collect();
    if loaded.is_empty() {
        return;
    }
    let teams = match asa_teams(store) {
        Ok(t) => t,
        Err(e) => {
            r.push(Finding::error(Kind::Database, e).at_db(&config.db, None));
            return;
        }
    };
    let several = teams.len() > 1;
    for settings in &teams {
        // "team `acme`'s ASA base URL" with several teams; as before with one.
        let whose = if several {
            format!("team `{}`'s ", settings.team)
        } else {
            String::new()
        };
        check_base_url(r, registry, config, config_path, &loaded, settings, &whose);
        check_key_grants(r, registry, config, config_path, settings, &whose);
    }
    r.asa = teams.first().cloned();
    r.teams = teams;
}

/// `settings`' base URL is granted to every flow of `loaded`; else a finding with the config
/// lines that grant it.
fn check_base_url(
    r: &mut Report,
    registry: &Registry,
    config: &Config,
    config_path: Option<&Path>,
    loaded: &[&str],
    settings: &AsaSettings,
    whose: &str,
) {
    let mut missing = Vec::new();
    for flow in loaded {
        match registry.check_url(flow, &settings.base_url) {
            Ok(()) => {}
            Err(UrlGrantError::NotGranted { flow, origin }) => missing.push((flow, origin)),
            Err(e) => {
                let msg = format!(
                    "{}: {ENV_TABLE}.{BASE_URL_COLUMN}: {whose}{e}; fix it with U02 (e.g. {{\"asaBaseUrl\": \"{DEFAULT_BASE_URL}\"}})",
                    config.db
                );
                let field = format!("{ENV_TABLE}.{BASE_URL_COLUMN}");
                r.push(Finding::error(Kind::Grant, msg).at_db(&config.db, Some(&field)));
                return;
            }
        }
    }
    if missing.is_empty() {
        return;
    }
    let flows: Vec<&str> = missing.iter().map(|(f, _)| f.as_str()).collect();
    let origin = &missing[0].1;
    let field = format!("grants.{}.hosts", flows[0]);
    let msg = format!(
        "{}: {field}: {whose}ASA base URL {} ({ENV_TABLE}.{BASE_URL_COLUMN}) is not in the allowed hosts of {} ({origin} is granted to neither the manifest nor the config); {}:",
        shown(config_path),
        settings.base_url,
        flows.join(" and "),
        fix_target(config, config_path),
    );
    let msg = if whose.is_empty() {
        msg.replacen(": ASA base URL", ": the ASA base URL", 1)
    } else {
        msg
    };
    let mut f = Finding::error(Kind::Grant, msg).at(config_path, Some(&field));
    f.fix = crate::registry::grant_lines(&config.grants, &missing);
    r.push(f);
}

/// Where the config lines of a fix go.
fn fix_target(config: &Config, config_path: Option<&Path>) -> String {
    match config_path {
        Some(p) if config.grants.is_empty() => format!("add these lines to {}", p.display()),
        Some(p) => format!("make the `grants:` section of {} read", p.display()),
        None => "write a config file flowhost.yaml (or --config) with these lines".into(),
    }
}

/// The secrets of `settings`' key pair that U00 is not granted (none when U00 is not loaded:
/// nothing would read them).
pub(crate) fn ungranted_keys<'a>(registry: &Registry, settings: &'a AsaSettings) -> Vec<&'a str> {
    let Some(u00) = registry.get("U00") else {
        return Vec::new();
    };
    [&settings.key_id_secret, &settings.key_secret_secret]
        .into_iter()
        .filter(|name| !u00.manifest.grants.secrets.contains(*name))
        .map(String::as_str)
        .collect()
}

/// The secrets `settings` names for its key pair are granted to U00 (whether they are set is
/// [`check_flow_secrets`]'s question once they are granted); else a finding with the grant.
fn check_key_grants(
    r: &mut Report,
    registry: &Registry,
    config: &Config,
    config_path: Option<&Path>,
    settings: &AsaSettings,
    whose: &str,
) {
    let missing = ungranted_keys(registry, settings);
    if missing.is_empty() {
        return;
    }
    // The config's section with the missing names added to U00's secrets.
    let mut grants = config.grants.clone();
    grants
        .entry("U00".to_string())
        .or_default()
        .secrets
        .extend(missing.iter().map(|m| m.to_string()));
    let field = "grants.U00.secrets";
    let msg = format!(
        "{}: {field}: {whose}key pair is in the secrets {} ({ENV_TABLE}.{KEY_ID_SECRET_COLUMN}, {KEY_SECRET_SECRET_COLUMN}), which U00 is not granted, so its token requests fail; {}:",
        shown(config_path),
        missing
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(" and "),
        fix_target(config, config_path),
    );
    let mut f = Finding::error(Kind::Grant, msg).at(config_path, Some(field));
    f.fix = crate::registry::grant_lines(&grants, &[]);
    r.push(f);
}
