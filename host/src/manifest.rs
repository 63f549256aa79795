//! Flow manifests (`NAME.yaml` beside `NAME.wasm`): parsing and the checks that need no other
//! file. Owns the grant types (hosts, tables, flows, secrets, blob stores) and the one place where an
//! outbound URL is matched against a flow's allowed hosts.
//!
//! Checks that need the rest of the world (does a granted table or flow exist?) are done by
//! the registry once every manifest is read. The format is documented in `docs/manifests.md`.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::yaml;

/// A manifest problem, always naming the file and the field.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ManifestError {
    pub path: PathBuf,
    pub message: String,
}

impl ManifestError {
    /// `message` with control characters escaped: it stays one line whatever the file holds.
    pub fn new(path: &Path, message: impl Into<String>) -> Self {
        ManifestError {
            path: path.to_path_buf(),
            message: crate::yaml::one_line(&message.into()),
        }
    }
}

/// What happens when a scheduled tick arrives while the previous run is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overlap {
    /// Skip the tick (recorded in run history as skipped).
    #[default]
    Skip,
    /// Run it as soon as the previous run ends.
    Queue,
    /// Run it concurrently.
    Allow,
}

/// When a flow runs by itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Every(Duration),
    Cron { line: String, timezone: String },
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(d) => write!(f, "every {}", format_duration(*d)),
            Schedule::Cron { line, timezone } => write!(f, "cron \"{line}\" ({timezone})"),
        }
    }
}

/// A `scheme://host[:port]` pattern; `*` may stand for the leftmost labels or for the port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostPattern {
    scheme: String,
    /// Lower-case host; a leading `*.` matches any subdomain, a lone `*` any host.
    host: String,
    /// `None` = any port.
    port: Option<u16>,
    text: String,
}

impl HostPattern {
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let bad = |why: &str| {
            format!("host `{text}` {why} (expected scheme://host[:port], e.g. https://*.scaleft.com or http://127.0.0.1:*)")
        };
        let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("has no scheme"))?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return Err(bad("has a scheme other than http or https")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() || rest.contains('/') || rest.contains('?') || rest.contains('@') {
            return Err(bad("must be a bare origin"));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, "*")) => (h, None),
            Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => {
                let port = p.parse::<u16>().map_err(|_| bad("has a bad port"))?;
                (h, Some(port))
            }
            _ => (rest, Some(default_port)),
        };
        let host = host.to_ascii_lowercase();
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '[' || c == ']')
        };
        let plain = host.strip_prefix("*.").unwrap_or(&host);
        if host != "*" && !plain.split('.').all(label_ok) {
            return Err(bad("has a bad host name"));
        }
        Ok(HostPattern {
            scheme,
            host,
            port,
            text: text.to_string(),
        })
    }

    /// Whether `url` (already parsed) is allowed by this pattern.
    pub fn allows(&self, url: &reqwest::Url) -> bool {
        if url.scheme() != self.scheme {
            return false;
        }
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        let host_ok = if self.host == "*" {
            true
        } else if let Some(suffix) = self.host.strip_prefix("*.") {
            host.len() > suffix.len()
                && host.ends_with(suffix)
                && host[..host.len() - suffix.len()].ends_with('.')
        } else {
            host == self.host
        };
        host_ok
            && self
                .port
                .is_none_or(|p| url.port_or_known_default() == Some(p))
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What a flow may touch. Deny by default; `write` on a table or a blob store implies read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grants {
    pub hosts: Vec<HostPattern>,
    pub tables_read: BTreeSet<String>,
    pub tables_write: BTreeSet<String>,
    pub flows: BTreeSet<String>,
    pub secrets: BTreeSet<String>,
    /// Blob stores (configured under `blobs:` in the config file) it may read.
    pub blobs_read: BTreeSet<String>,
    /// Blob stores it may write (put, delete) and read.
    pub blobs_write: BTreeSet<String>,
    /// Exposed as an API endpoint on `serve`'s listener (the manifest's top-level `api:`, or
    /// the config's `grants.FLOW.api`, which wins): see [`crate::api`].
    pub api: Option<ApiEndpoint>,
}

/// `api: { token_secret: NAME }`: the flow is an API endpoint; callers present the value of
/// the secret `NAME` in `x-api-client-token` (the value is never in a file that is committed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiEndpoint {
    pub token_secret: String,
}

/// `api:` as written in a manifest or in the config's `grants.FLOW`.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    token_secret: String,
}

impl RawApi {
    /// Checks the secret's name; `field` prefixes messages (`api`, `grants.O10.api`).
    pub fn resolve(self, field: &str) -> Result<ApiEndpoint, String> {
        let s = self.token_secret;
        if !is_secret_name(&s) {
            return Err(format!(
                "{field}.token_secret: `{s}` is not a secret name (letters, digits and _ only; \
                 the token goes in the secrets file or FLOWHOST_SECRET_<NAME>, never here)"
            ));
        }
        Ok(ApiEndpoint { token_secret: s })
    }
}

/// Letters, digits and `_`: what a secret's name may hold (`FLOWHOST_SECRET_<NAME>`).
pub fn is_secret_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Grants {
    /// The grants as JSON, in the manifest's layout (`flowhost list --json`).
    pub fn to_json(&self) -> serde_json::Value {
        let hosts: Vec<String> = self.hosts.iter().map(|h| h.to_string()).collect();
        serde_json::json!({
            "hosts": hosts,
            "tables": {"read": self.tables_read, "write": self.tables_write},
            "flows": self.flows,
            "secrets": self.secrets,
            "blobs": {"read": self.blobs_read, "write": self.blobs_write},
        })
    }

    pub fn can_read(&self, table: &str) -> bool {
        self.tables_read.contains(table) || self.tables_write.contains(table)
    }
    pub fn can_write(&self, table: &str) -> bool {
        self.tables_write.contains(table)
    }
    pub fn can_read_blob(&self, store: &str) -> bool {
        self.blobs_read.contains(store) || self.blobs_write.contains(store)
    }
    pub fn can_write_blob(&self, store: &str) -> bool {
        self.blobs_write.contains(store)
    }
    pub fn allows_url(&self, url: &reqwest::Url) -> bool {
        self.hosts.iter().any(|p| p.allows(url))
    }
    /// Adds the operator's extra grants (from the config file) to the manifest's.
    pub fn merge(&mut self, extra: &Grants) {
        for h in &extra.hosts {
            if !self.hosts.contains(h) {
                self.hosts.push(h.clone());
            }
        }
        self.tables_read.extend(extra.tables_read.iter().cloned());
        self.tables_write.extend(extra.tables_write.iter().cloned());
        self.flows.extend(extra.flows.iter().cloned());
        self.secrets.extend(extra.secrets.iter().cloned());
        self.blobs_read.extend(extra.blobs_read.iter().cloned());
        self.blobs_write.extend(extra.blobs_write.iter().cloned());
        if extra.api.is_some() {
            self.api = extra.api.clone();
        }
    }
    /// The first grant a `pure: true` flow may not hold, as `field: value`. A pure flow may
    /// only read tables: anything else (HTTP, writes, other flows, secrets, blobs) could make
    /// a repeated call differ from the first one or have effects of its own.
    pub fn impure(&self) -> Option<String> {
        let first = |field: &str, set: &BTreeSet<String>| {
            set.iter().next().map(|v| format!("{field}: `{v}`"))
        };
        self.hosts
            .first()
            .map(|h| format!("grants.hosts: `{h}`"))
            .or_else(|| first("grants.tables.write", &self.tables_write))
            .or_else(|| first("grants.flows", &self.flows))
            .or_else(|| first("grants.secrets", &self.secrets))
            .or_else(|| first("grants.blobs.read", &self.blobs_read))
            .or_else(|| first("grants.blobs.write", &self.blobs_write))
    }

    /// A one-line summary for `flowhost list`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.hosts.is_empty() {
            let h: Vec<String> = self.hosts.iter().map(|h| h.to_string()).collect();
            parts.push(format!("hosts: {}", h.join(", ")));
        }
        let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
        if !self.tables_read.is_empty() {
            parts.push(format!("read: {}", join(&self.tables_read)));
        }
        if !self.tables_write.is_empty() {
            parts.push(format!("write: {}", join(&self.tables_write)));
        }
        if !self.flows.is_empty() {
            parts.push(format!("calls: {}", join(&self.flows)));
        }
        if !self.secrets.is_empty() {
            parts.push(format!("secrets: {}", join(&self.secrets)));
        }
        if !self.blobs_read.is_empty() {
            parts.push(format!("blobs read: {}", join(&self.blobs_read)));
        }
        if !self.blobs_write.is_empty() {
            parts.push(format!("blobs write: {}", join(&self.blobs_write)));
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join("; ")
        }
    }
}

/// A parsed, self-consistent manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub name: String,
    pub title: String,
    pub description: String,
    pub schedule: Option<Schedule>,
    /// Input (JSON text) of scheduled runs.
    pub schedule_input: String,
    pub overlap: Overlap,
    pub exclusive: Option<String>,
    pub timeout: Duration,
    pub memory: usize,
    /// What the host may buffer for a run of this flow, its children included (see
    /// [`crate::budget`]); only the top-level flow's value counts.
    pub run_memory: usize,
    pub grants: Grants,
    /// Input and output are never recorded in run history (U00 returns a bearer token).
    pub sensitive: bool,
    /// The output depends only on the input and the tables the flow reads, so within one run
    /// a repeated child call may be answered from an earlier one (see [`crate::memo`]).
    pub pure: bool,
    /// Whether `serve` runs the flow before `flowhost flow enable|disable` says otherwise
    /// (`enabled: false` in the manifest; see [`crate::switches`]).
    pub enabled: bool,
    pub path: PathBuf,
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// A duration field's allowed range (inclusive), and how messages write it.
#[derive(Debug, Clone, Copy)]
pub struct DurationRange {
    pub min: Duration,
    pub max: Duration,
    /// `1s to 24h`.
    pub text: &'static str,
}

impl DurationRange {
    /// `d` (written `text` by the user) if it is in range, or `FIELD: TEXT is out of range
    /// (MIN to MAX)`.
    pub fn check(&self, field: &str, text: &str, d: Duration) -> Result<Duration, String> {
        if d < self.min || d > self.max {
            return Err(format!(
                "{field}: {} is out of range ({})",
                text.trim(),
                self.text
            ));
        }
        Ok(d)
    }
}

const HOUR: u64 = 3600;
const DAY: u64 = 86400;

/// `timeout`: a run gets at least a second and at most a day.
pub const TIMEOUT_RANGE: DurationRange = DurationRange {
    min: Duration::from_secs(1),
    max: Duration::from_secs(24 * HOUR),
    text: "1s to 24h",
};

/// `schedule.every`: from 100 ms to 30 days.
pub const EVERY_RANGE: DurationRange = DurationRange {
    min: Duration::from_millis(100),
    max: Duration::from_secs(30 * DAY),
    text: "100ms to 30d",
};
pub const DEFAULT_MEMORY: usize = 64 << 20;
/// The largest memory cap a manifest may ask for (the pooling allocator reserves this much
/// address space per slot).
pub const MAX_MEMORY: usize = 1 << 30;
/// Default and bounds of `run_memory:`.
pub const DEFAULT_RUN_MEMORY: usize = 256 << 20;
pub const MIN_RUN_MEMORY: usize = 1 << 20;
pub const MAX_RUN_MEMORY: usize = 16 << 30;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    title: String,
    #[serde(default)]
    description: String,
    schedule: Option<RawSchedule>,
    #[serde(default)]
    overlap: Overlap,
    exclusive: Option<String>,
    timeout: Option<String>,
    memory: Option<String>,
    run_memory: Option<String>,
    #[serde(default)]
    grants: RawGrants,
    #[serde(default)]
    sensitive: bool,
    #[serde(default)]
    pure: bool,
    #[serde(default = "enabled_by_default")]
    enabled: bool,
    api: Option<RawApi>,
}

fn enabled_by_default() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    every: Option<String>,
    cron: Option<String>,
    timezone: Option<String>,
    /// Input of scheduled runs (default `{}`).
    input: Option<serde_json::Value>,
}

/// Grants as written in a manifest or in the config file's `grants:` section.
#[derive(Deserialize, Default, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawGrants {
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    tables: RawTableGrants,
    #[serde(default)]
    flows: Vec<String>,
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default)]
    blobs: RawTableGrants,
    /// Only in the config's `grants.FLOW` (a manifest writes `api:` at its top level).
    api: Option<RawApi>,
}

/// `read` / `write` lists, for tables and for blob stores.
#[derive(Deserialize, Default, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct RawTableGrants {
    #[serde(default)]
    read: Vec<String>,
    #[serde(default)]
    write: Vec<String>,
}

impl RawGrants {
    /// Checks the host patterns; `field` prefixes messages (e.g. `grants.hosts[1]`).
    pub fn resolve(self, field: &str) -> Result<Grants, String> {
        let hosts = self
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| HostPattern::parse(h).map_err(|e| format!("{field}.hosts[{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, s) in self.secrets.iter().enumerate() {
            if !is_secret_name(s) {
                return Err(format!(
                    "{field}.secrets[{i}]: `{s}` is not a secret name (letters, digits and _ only)"
                ));
            }
        }
        Ok(Grants {
            hosts,
            tables_read: self.tables.read.into_iter().collect(),
            tables_write: self.tables.write.into_iter().collect(),
            flows: self.flows.into_iter().collect(),
            secrets: self.secrets.into_iter().collect(),
            blobs_read: self.blobs.read.into_iter().collect(),
            blobs_write: self.blobs.write.into_iter().collect(),
            api: self
                .api
                .map(|a| a.resolve(&format!("{field}.api")))
                .transpose()?,
        })
    }
}

impl Manifest {
    /// Reads and checks `path`; the flow's name is the file stem.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = crate::registry::read_manifest(path).map_err(|e| ManifestError::new(path, e))?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
        let err = |m: String| ManifestError::new(path, m);
        let name = flow_name_from_path(path).map_err(err)?;
        let raw: RawManifest = yaml::from_untrusted_str(text).map_err(err)?;
        if raw.title.trim().is_empty() {
            return Err(err("title: must not be empty".into()));
        }
        let schedule_input = raw
            .schedule
            .as_ref()
            .and_then(|s| s.input.as_ref())
            .map_or_else(|| "{}".to_string(), |v| v.to_string());
        let schedule = match raw.schedule {
            None => None,
            Some(s) => Some(parse_schedule(s).map_err(err)?),
        };
        let timeout = match raw.timeout {
            None => DEFAULT_TIMEOUT,
            Some(t) => parse_duration(&t)
                .map_err(|e| format!("timeout: {e}"))
                .and_then(|d| TIMEOUT_RANGE.check("timeout", &t, d))
                .map_err(err)?,
        };
        let memory = match raw.memory {
            None => DEFAULT_MEMORY,
            Some(m) => parse_size(&m).map_err(|e| err(format!("memory: {e}")))?,
        };
        if memory > MAX_MEMORY {
            return Err(err(format!(
                "memory: {} is over the limit of 1GiB",
                format_size(memory)
            )));
        }
        let run_memory = match raw.run_memory {
            None => DEFAULT_RUN_MEMORY,
            Some(m) => parse_size(&m).map_err(|e| err(format!("run_memory: {e}")))?,
        };
        if !(MIN_RUN_MEMORY..=MAX_RUN_MEMORY).contains(&run_memory) {
            return Err(err(format!(
                "run_memory: {} is out of range (1MiB to 16GiB)",
                format_size(run_memory)
            )));
        }
        if raw.grants.api.is_some() {
            return Err(err(
                "grants.api: an API endpoint is declared at the top level of a manifest \
                 (`api: {token_secret: NAME}`); `grants.FLOW.api` is the config file's form"
                    .into(),
            ));
        }
        let mut grants = raw.grants.resolve("grants").map_err(err)?;
        grants.api = raw.api.map(|a| a.resolve("api")).transpose().map_err(err)?;
        Ok(Manifest {
            name,
            title: raw.title,
            description: raw.description,
            schedule,
            schedule_input,
            overlap: raw.overlap,
            exclusive: raw.exclusive.filter(|e| !e.is_empty()),
            timeout,
            memory,
            run_memory,
            grants,
            sensitive: raw.sensitive,
            pure: raw.pure,
            enabled: raw.enabled,
            path: path.to_path_buf(),
        })
    }
}

/// `flows/dist/M10.yaml` → `M10`. Names are letters, digits, `-` and `_`.
pub fn flow_name_from_path(path: &Path) -> Result<String, String> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if stem.is_empty()
        || !stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "`{stem}` is not a flow name (use letters, digits, - and _)"
        ));
    }
    Ok(stem.to_string())
}

fn parse_schedule(s: RawSchedule) -> Result<Schedule, String> {
    match (s.every, s.cron) {
        (Some(_), Some(_)) => Err("schedule: give either `every` or `cron`, not both".into()),
        (None, None) => Err("schedule: needs `every: 5m` or `cron: \"0 */5 * * * *\"`".into()),
        (Some(every), None) => {
            if s.timezone.is_some() {
                return Err("schedule.timezone: only applies to `cron`".into());
            }
            let d = parse_duration(&every).map_err(|e| format!("schedule.every: {e}"))?;
            Ok(Schedule::Every(EVERY_RANGE.check(
                "schedule.every",
                &every,
                d,
            )?))
        }
        (None, Some(line)) => {
            let timezone = s.timezone.unwrap_or_else(|| "UTC".into());
            crate::cron::check(&line, &timezone).map_err(|e| format!("schedule: {e}"))?;
            Ok(Schedule::Cron { line, timezone })
        }
    }
}

/// `500ms`, `30s`, `5m`, `1h 30m`, `2d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration (e.g. 500ms, 30s, 5m, 1h 30m)");
    let mut total = Duration::ZERO;
    let mut any = false;
    for part in text.split_whitespace() {
        let split = part.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (num, unit) = part.split_at(split);
        let n: u64 = num.parse().map_err(|_| bad())?;
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" | "min" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86400)),
            _ => return Err(bad()),
        };
        total = total.saturating_add(d);
        any = true;
    }
    if !any {
        return Err(bad());
    }
    Ok(total)
}

pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// `64MiB`, `512KiB`, `1GiB`, `1048576`.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("`{text}` is not a size (e.g. 64MiB)"))?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" => 1 << 10,
        "MiB" | "M" | "MB" => 1 << 20,
        "GiB" | "G" | "GB" => 1 << 30,
        other => {
            return Err(format!(
                "`{text}`: unknown unit `{other}` (use KiB, MiB or GiB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{text}` is too large"))
}

pub fn format_size(n: usize) -> String {
    if n.is_multiple_of(1 << 30) {
        format!("{}GiB", n >> 30)
    } else if n.is_multiple_of(1 << 20) {
        format!("{}MiB", n >> 20)
    } else {
        format!("{}KiB", n >> 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).unwrap()
    }

    #[test]
    fn host_patterns_match_scheme_host_and_port() {
        let p = HostPattern::parse("https://*.scaleft.com").unwrap();
        assert!(p.allows(&url("https://app.scaleft.com/v1/x")));
        assert!(!p.allows(&url("https://scaleft.com/")));
        assert!(!p.allows(&url("https://evilscaleft.com/")));
        assert!(!p.allows(&url("http://app.scaleft.com/")));
        assert!(!p.allows(&url("https://app.scaleft.com:8443/")));
        let p = HostPattern::parse("http://127.0.0.1:*").unwrap();
        assert!(p.allows(&url("http://127.0.0.1:39123/v1")));
        assert!(!p.allows(&url("http://127.0.0.2:39123/v1")));
        let p = HostPattern::parse("http://localhost:8080").unwrap();
        assert!(p.allows(&url("http://LOCALHOST:8080/")));
        assert!(!p.allows(&url("http://localhost:8081/")));
    }

    #[test]
    fn bad_host_patterns_say_what_is_wrong() {
        for (text, want) in [
            ("app.scaleft.com", "has no scheme"),
            ("ftp://x.com", "other than http"),
            ("https://x.com/path", "bare origin"),
            ("https://x.com:99999", "bad port"),
            ("https://bad host", "bad host name"),
        ] {
            let e = HostPattern::parse(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert!(parse_size("64 furlongs")
            .unwrap_err()
            .contains("unknown unit"));
        assert_eq!(format_duration(Duration::from_secs(300)), "5m");
    }

    #[test]
    fn manifest_errors_name_file_and_field() {
        let p = Path::new("flows/X1.yaml");
        let cases = [
            (
                "title: t\ntimeout: forever\n",
                "flows/X1.yaml: timeout: `forever` is not a duration",
            ),
            (
                "title: t\ngrants:\n  hostz: []\n",
                "flows/X1.yaml: grants: unknown field `hostz`",
            ),
            (
                "title: t\nschedule: {every: 5m, cron: \"* * * * *\"}\n",
                "either `every` or `cron`",
            ),
            ("title: t\nmemory: 2GiB\n", "over the limit"),
            (
                "title: t\nrun_memory: 512KiB\n",
                "flows/X1.yaml: run_memory: 512KiB is out of range (1MiB to 16GiB)",
            ),
            (
                "title: t\ngrants: {hosts: [\"example.com\"]}\n",
                "grants.hosts[0]: host `example.com` has no scheme",
            ),
            (
                "title: t\ngrants: {secrets: [\"A-B\"]}\n",
                "grants.secrets[0]",
            ),
            ("description: d\n", "missing field `title`"),
            (
                "title: t\ntimeout: 0s\n",
                "timeout: 0s is out of range (1s to 24h)",
            ),
            (
                "title: t\ntimeout: 18446744073709551615s\n",
                "timeout: 18446744073709551615s is out of range (1s to 24h)",
            ),
            (
                "title: t\nschedule: {every: 18446744073709551615s}\n",
                "schedule.every: 18446744073709551615s is out of range (100ms to 30d)",
            ),
            (
                "title: t\nschedule: {every: 50ms}\n",
                "schedule.every: 50ms is out of range (100ms to 30d)",
            ),
            (
                "title: t\napi: {token_secret: \"O10 token\"}\n",
                "flows/X1.yaml: api.token_secret: `O10 token` is not a secret name",
            ),
            (
                "title: t\napi: {token: X}\n",
                "flows/X1.yaml: api: unknown field `token`",
            ),
            (
                "title: t\ngrants: {api: {token_secret: X}}\n",
                "flows/X1.yaml: grants.api: an API endpoint is declared at the top level",
            ),
        ];
        for (text, want) in cases {
            let e = Manifest::parse(p, text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: got {e}");
            assert!(e.starts_with("flows/X1.yaml"), "{e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn full_manifest_parses() {
        let text = "title: Main\nschedule: {cron: \"0 */5 9-18 * * *\", timezone: Australia/Melbourne}\n\
                    overlap: skip\nexclusive: asa\ntimeout: 10m\nmemory: 32MiB\ngrants:\n  hosts: [https://app.scaleft.com]\n  \
                    tables: {read: [A], write: [B]}\n  flows: [U00]\n  secrets: [ASA_KEY_ID]\n  \
                    blobs: {read: [archive], write: [scratch]}\n";
        let m = Manifest::parse(Path::new("M10.yaml"), text).unwrap();
        assert_eq!(m.name, "M10");
        assert_eq!(m.exclusive.as_deref(), Some("asa"));
        assert_eq!(m.memory, 32 << 20);
        assert!(
            m.grants.can_read("B")
                && m.grants.can_write("B")
                && m.grants.can_read("A")
                && !m.grants.can_write("A")
        );
        assert!(matches!(m.schedule, Some(Schedule::Cron { .. })));
        assert_eq!(m.grants.api, None);
        let api = Manifest::parse(
            Path::new("O10.yaml"),
            "title: t\napi: {token_secret: O10_TOKEN}\n",
        )
        .unwrap();
        let endpoint = ApiEndpoint {
            token_secret: "O10_TOKEN".into(),
        };
        assert_eq!(api.grants.api.as_ref(), Some(&endpoint));
        // The config's `grants.O10.api` wins over the manifest's.
        let mut merged = api.grants.clone();
        let other = ApiEndpoint {
            token_secret: "OTHER".into(),
        };
        merged.merge(&Grants {
            api: Some(other.clone()),
            ..Default::default()
        });
        assert_eq!(merged.api, Some(other));
        merged.merge(&Grants::default());
        assert!(
            merged.api.is_some(),
            "a config entry without api: keeps the manifest's"
        );
        let g = &m.grants;
        assert!(g.can_read_blob("archive") && !g.can_write_blob("archive"));
        assert!(g.can_read_blob("scratch") && g.can_write_blob("scratch"));
        assert!(!g.can_read_blob("other"));
        assert!(
            g.summary().contains("blobs write: scratch"),
            "{}",
            g.summary()
        );
    }
}
