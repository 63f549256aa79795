//! The flow registry: which flows exist, from which folders, with which manifest, and which
//! ones failed to load and why.
//!
//! Loading reads manifests and checks grants against the table schemas and the other flows
//! (deny by default, errors name the file and line), and sniffs each `.wasm` header; it does
//! not compile. Components are compiled on first use and cached (see `engine`), so `flowhost
//! list` and a one-off utility run start fast. A broken flow is reported and skipped; it never
//! takes the others down.
//!
//! Only regular files are read (a symlink to a regular file counts as one: it is followed), and
//! only up to [`MAX_MANIFEST_BYTES`] for a manifest and [`MAX_COMPONENT_BYTES`] for a component.
//! A FIFO, device or folder named `x.yaml` is reported and skipped, never opened for a
//! blocking read, so it cannot freeze `flowhost list` or `serve`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::engine::{Engine, Prepared};
use crate::manifest::{Grants, Manifest, ManifestError};
use crate::schema::Schemas;

/// The largest manifest read.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;
/// The largest component loaded.
pub const MAX_COMPONENT_BYTES: u64 = 256 << 20;

/// Opens `path` for reading if it is a regular file (or a symlink to one) of at most `cap`
/// bytes; the error does not repeat the path. Never blocks on a FIFO: the file is opened
/// non-blocking and checked before any read.
pub fn open_regular(path: &Path, cap: u64) -> Result<std::fs::File, String> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let file = opts.open(path).map_err(|e| format!("cannot read: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err(
            "not a regular file (flows are read from regular files or symlinks to them)".into(),
        );
    }
    if meta.len() > cap {
        return Err(format!(
            "{} bytes is over the limit of {}",
            meta.len(),
            crate::manifest::format_size(usize::try_from(cap).unwrap_or(usize::MAX))
        ));
    }
    Ok(file)
}

/// The text of the manifest at `path` (a regular file of at most [`MAX_MANIFEST_BYTES`]); the
/// error does not repeat the path.
pub fn read_manifest(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = open_regular(path, MAX_MANIFEST_BYTES)?;
    let mut text = String::new();
    // `take`: a file that grows after the check is still read only up to the cap.
    file.take(MAX_MANIFEST_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read: {e}"))?;
    Ok(text)
}

/// Where a flow's component comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowSource {
    /// `NAME.wasm` in a flows folder (beside the manifest).
    File(PathBuf),
    /// The package built into the binary ([`crate::package`]).
    BuiltIn(&'static [u8]),
}

/// One loadable flow.
pub struct FlowEntry {
    pub manifest: Manifest,
    pub source: FlowSource,
    /// Size and modification time of the manifest and the component when loaded.
    stamp: [(u64, Option<std::time::SystemTime>); 2],
    pre: OnceLock<Result<Prepared, String>>,
}

impl FlowEntry {
    /// The linked component, compiled (or loaded from the cache) on first use.
    pub fn prepare(&self, engine: &Engine) -> Result<Prepared, String> {
        self.pre
            .get_or_init(|| {
                let prepared = match &self.source {
                    FlowSource::File(wasm) => engine.prepare(wasm),
                    FlowSource::BuiltIn(bytes) => {
                        engine.prepare_bytes(bytes, &self.manifest.path.with_extension("wasm"))
                    }
                };
                prepared.map_err(|e| e.to_string())
            })
            .clone()
    }

    /// An entry for `manifest` with no component, for unit tests of what keeps entries.
    #[cfg(test)]
    pub(crate) fn without_component(manifest: Manifest) -> FlowEntry {
        FlowEntry {
            manifest,
            source: FlowSource::BuiltIn(&[]),
            stamp: [(0, None); 2],
            pre: OnceLock::new(),
        }
    }

    /// Whether `other` was loaded from the same, unchanged files (or is the same built-in).
    pub fn same_files(&self, other: &FlowEntry) -> bool {
        self.manifest.path == other.manifest.path
            && self.source == other.source
            && self.stamp == other.stamp
    }

    /// Whether its files are still there (a built-in always is).
    pub fn still_there(&self) -> bool {
        match &self.source {
            FlowSource::File(wasm) => self.manifest.path.exists() && wasm.exists(),
            FlowSource::BuiltIn(_) => true,
        }
    }

    /// Where it comes from, as `flowhost list` says it: `built-in` or its folder.
    pub fn origin(&self) -> String {
        match &self.source {
            FlowSource::BuiltIn(_) => crate::package::ORIGIN.to_string(),
            FlowSource::File(_) => self
                .manifest
                .path
                .parent()
                .map_or_else(|| ".".into(), |d| d.display().to_string()),
        }
    }

    /// Takes `old`'s compiled component when both were loaded from the same, unchanged files
    /// (a reload with new grants compiles nothing again).
    pub fn reuse_compiled(&self, old: &FlowEntry) {
        if self.same_files(old) {
            if let Some(pre) = old.pre.get() {
                let _ = self.pre.set(pre.clone());
            }
        }
    }

    /// True once `prepare` has run (successfully or not).
    pub fn is_prepared(&self) -> bool {
        self.pre.get().is_some()
    }
}

/// All flows found in the flow folders.
#[derive(Default)]
pub struct Registry {
    flows: BTreeMap<String, Arc<FlowEntry>>,
    /// One line per flow or file that could not be loaded.
    pub errors: Vec<String>,
    /// The config file's `grants:` section the flows were loaded with (what
    /// [`grant_lines`] starts from when it says what to add).
    pub configured_grants: BTreeMap<String, Grants>,
}

impl Registry {
    /// Loads every `NAME.yaml` + `NAME.wasm` pair in `dirs`, then the built-in package
    /// ([`crate::package`]) as the last folder (earlier folders win on a name clash), adds the
    /// operator's `extra` grants, and checks grants against `schemas` and the configured
    /// `blob_stores`.
    pub fn load(
        dirs: &[PathBuf],
        schemas: &Schemas,
        extra: &BTreeMap<String, Grants>,
        blob_stores: &BTreeSet<String>,
    ) -> Registry {
        Registry::load_from(dirs, crate::package::flows(), schemas, extra, blob_stores)
    }

    /// [`Registry::load`] with `builtin` as the built-in package.
    pub fn load_from(
        dirs: &[PathBuf],
        builtin: &[crate::package::BuiltinFlow],
        schemas: &Schemas,
        extra: &BTreeMap<String, Grants>,
        blob_stores: &BTreeSet<String>,
    ) -> Registry {
        let mut reg = Registry {
            configured_grants: extra.clone(),
            ..Registry::default()
        };
        let mut found: Vec<(Manifest, Option<&'static [u8]>, String)> = Vec::new();
        let mut names: BTreeSet<String> = BTreeSet::new();
        for dir in dirs {
            let entries = match std::fs::read_dir(dir) {
                Ok(e) => e,
                Err(e) => {
                    reg.errors.push(format!(
                        "{}: cannot read the flows folder: {e}",
                        dir.display()
                    ));
                    continue;
                }
            };
            let mut paths: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for path in &paths {
                match path.extension().and_then(|e| e.to_str()) {
                    Some("yaml") | Some("yml") => {}
                    Some("wasm") => {
                        if !path.with_extension("yaml").exists()
                            && !path.with_extension("yml").exists()
                        {
                            reg.errors.push(format!(
                                "{}: no manifest beside it (add {})",
                                path.display(),
                                path.with_extension("yaml").display()
                            ));
                        }
                        continue;
                    }
                    _ => continue,
                }
                let text = match read_manifest(path) {
                    Ok(t) => t,
                    Err(e) => {
                        reg.errors.push(ManifestError::new(path, e).to_string());
                        continue;
                    }
                };
                let stem = crate::manifest::flow_name_from_path(path).unwrap_or_default();
                if !stem.is_empty() && !names.insert(stem.clone()) {
                    tracing::debug!(path = %path.display(), "shadowed by a flow of the same name in an earlier folder");
                    continue;
                }
                match Manifest::parse(path, &text) {
                    Ok(m) => found.push((m, None, text)),
                    Err(e) => reg.errors.push(e.to_string()),
                }
            }
        }
        // The built-in package: the last folder, so every folder's flow of the same name wins.
        for f in builtin {
            if !names.insert(f.name.to_string()) {
                tracing::debug!(flow = f.name, "built-in flow replaced by a flows folder's");
                continue;
            }
            match Manifest::parse(&f.manifest_path(), f.manifest) {
                Ok(m) => found.push((m, Some(f.wasm), f.manifest.to_string())),
                Err(e) => reg.errors.push(e.to_string()),
            }
        }
        for (mut manifest, builtin, text) in found {
            if let Some(extra) = extra.get(&manifest.name) {
                manifest.grants.merge(extra);
            }
            let checked =
                check(&manifest, &text, schemas, &names, blob_stores).and_then(
                    |()| match builtin {
                        Some(bytes) => check_builtin(&manifest.path, bytes),
                        None => check_file(&manifest.path),
                    },
                );
            match checked {
                Ok(source) => {
                    let name = manifest.name.clone();
                    let stamp = match &source {
                        FlowSource::File(wasm) => [file_stamp(&manifest.path), file_stamp(wasm)],
                        FlowSource::BuiltIn(_) => [(0, None); 2],
                    };
                    let entry = FlowEntry {
                        manifest,
                        source,
                        stamp,
                        pre: OnceLock::new(),
                    };
                    reg.flows.insert(name, Arc::new(entry));
                }
                Err(e) => reg.errors.push(crate::yaml::one_line(&e)),
            }
        }
        for name in extra.keys() {
            if !names.contains(name) {
                reg.errors.push(format!(
                    "config: grants: `{name}` is not a flow in any flows folder \
                     (nor a built-in one)"
                ));
            }
        }
        reg
    }

    /// Puts `entry` in (replacing a flow of the same name): a reload keeps a working version.
    pub fn keep(&mut self, entry: Arc<FlowEntry>) {
        self.flows.insert(entry.manifest.name.clone(), entry);
    }

    pub fn remove(&mut self, name: &str) {
        self.flows.remove(name);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<FlowEntry>> {
        self.flows.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<FlowEntry>> {
        self.flows.values()
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Whether flow `flow` may send requests to `url` under its effective grants (its
    /// manifest's `grants.hosts` plus the config file's `grants.FLOW.hosts`): the check
    /// `http.send` makes, asked ahead of any run (`flowhost check`; a flow that stores a URL
    /// for others to call can ask it before storing one they cannot reach).
    pub fn check_url(&self, flow: &str, url: &str) -> Result<(), UrlGrantError> {
        let entry = self
            .get(flow)
            .ok_or_else(|| UrlGrantError::UnknownFlow(flow.to_string()))?;
        let parsed = reqwest::Url::parse(url).map_err(|e| UrlGrantError::BadUrl {
            url: url.to_string(),
            why: e.to_string(),
        })?;
        if entry.manifest.grants.allows_url(&parsed) {
            return Ok(());
        }
        Err(UrlGrantError::NotGranted {
            flow: flow.to_string(),
            origin: parsed.origin().ascii_serialization(),
        })
    }

    /// The `(flow, origin)` pairs of `checks` (each a flow and a URL) that
    /// [`Registry::check_url`] refuses as not granted, each once, in order; an unknown flow or a
    /// bad URL is the error.
    pub fn ungranted(
        &self,
        checks: &[(String, String)],
    ) -> Result<Vec<(String, String)>, UrlGrantError> {
        let mut missing: Vec<(String, String)> = Vec::new();
        for (flow, url) in checks {
            match self.check_url(flow, url) {
                Ok(()) => {}
                Err(UrlGrantError::NotGranted { flow, origin }) => {
                    if !missing.iter().any(|(f, o)| *f == flow && *o == origin) {
                        missing.push((flow, origin));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(missing)
    }

    /// The loaded flow whose name is closest to `name` (case-insensitive), if any is close.
    pub fn suggest(&self, name: &str) -> Option<&str> {
        closest(name, self.flows.keys().map(String::as_str))
    }

    /// Why flow `name` is not loaded, when its manifest or component was found but refused:
    /// the load error whose file (before the first `.yaml:`, `.yml:` or `.wasm:`) is `name`'s.
    pub fn load_error(&self, name: &str) -> Option<&str> {
        self.errors.iter().map(String::as_str).find(|e| {
            let file_end = [".yaml:", ".yml:", ".wasm:"]
                .iter()
                .filter_map(|ext| e.find(ext))
                .min();
            file_end.is_some_and(|end| e[..end].rsplit(['/', '\\']).next() == Some(name))
        })
    }
}

/// Why [`Registry::check_url`] refused a URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlGrantError {
    #[error("no flow `{0}` is loaded")]
    UnknownFlow(String),
    #[error("`{url}` is not a URL: {why}")]
    BadUrl { url: String, why: String },
    #[error(
        "{origin} is not in {flow}'s allowed hosts (its manifest's and the config's grants.hosts)"
    )]
    NotGranted { flow: String, origin: String },
}

/// The config file's `grants:` section as it must read for each `(flow, origin)` of `missing`
/// (an origin as `scheme://host[:port]`) to be granted: the section `configured` (the config's
/// current one) with those hosts added, one line per setting, ready to go into the file in
/// place of the current section (or at its end when it has none).
pub fn grant_lines(
    configured: &BTreeMap<String, Grants>,
    missing: &[(String, String)],
) -> Vec<String> {
    let mut lines = vec!["grants:".to_string()];
    for (flow, settings) in grant_entries(configured, missing) {
        lines.push(format!("  {flow}:"));
        lines.extend(settings.into_iter().map(|s| format!("    {s}")));
    }
    lines
}

/// The same section as [`grant_lines`] on one line, in YAML's flow style
/// (`grants: {M10: {hosts: ["http://h:1"]}}`), for an error text, which is one line.
pub fn grant_line(configured: &BTreeMap<String, Grants>, missing: &[(String, String)]) -> String {
    let flows: Vec<String> = grant_entries(configured, missing)
        .into_iter()
        .map(|(flow, settings)| format!("{flow}: {{{}}}", settings.join(", ")))
        .collect();
    format!("grants: {{{}}}", flows.join(", "))
}

/// Per flow of the merged section (its name as YAML writes it), its settings as YAML
/// (`hosts: [...]`, `tables: {read: [...]}`, ...).
fn grant_entries(
    configured: &BTreeMap<String, Grants>,
    missing: &[(String, String)],
) -> Vec<(String, Vec<String>)> {
    let mut merged: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (flow, g) in configured {
        merged.insert(
            flow.clone(),
            g.hosts.iter().map(|h| h.to_string()).collect(),
        );
    }
    for (flow, origin) in missing {
        let hosts = merged.entry(flow.clone()).or_default();
        if !hosts.contains(origin) {
            hosts.push(origin.clone());
        }
    }
    // JSON strings and lists are YAML flow scalars and sequences.
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    let list = |items: &mut dyn Iterator<Item = &String>| {
        let quoted: Vec<String> = items.map(|s| quote(s)).collect();
        format!("[{}]", quoted.join(", "))
    };
    let mut entries = Vec::new();
    for (flow, hosts) in &merged {
        let plain = !flow.is_empty()
            && flow
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let mut settings = Vec::new();
        if !hosts.is_empty() {
            settings.push(format!("hosts: {}", list(&mut hosts.iter())));
        }
        if let Some(g) = configured.get(flow) {
            for (field, read, write) in [
                ("tables", &g.tables_read, &g.tables_write),
                ("blobs", &g.blobs_read, &g.blobs_write),
            ] {
                let mut parts = Vec::new();
                if !read.is_empty() {
                    parts.push(format!("read: {}", list(&mut read.iter())));
                }
                if !write.is_empty() {
                    parts.push(format!("write: {}", list(&mut write.iter())));
                }
                if !parts.is_empty() {
                    settings.push(format!("{field}: {{{}}}", parts.join(", ")));
                }
            }
            for (field, set) in [("flows", &g.flows), ("secrets", &g.secrets)] {
                if !set.is_empty() {
                    settings.push(format!("{field}: {}", list(&mut set.iter())));
                }
            }
            if let Some(api) = &g.api {
                settings.push(format!(
                    "api: {{token_secret: {}}}",
                    quote(&api.token_secret)
                ));
            }
        }
        entries.push((if plain { flow.clone() } else { quote(flow) }, settings));
    }
    entries
}

/// The candidate closest to `name` by edit distance, ignoring case, if it is close enough.
pub fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_lowercase();
    candidates
        .map(|c| (strsim::levenshtein(&lower, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn file_stamp(path: &Path) -> (u64, Option<std::time::SystemTime>) {
    std::fs::metadata(path)
        .map(|m| (m.len(), m.modified().ok()))
        .unwrap_or((0, None))
}

/// 1-based line of the first line of `text` that mentions `needle`, for error messages.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map_or(1, |i| i + 1)
}

/// Checks what a manifest can only be checked against: the schemas, the other flows, the
/// configured blob stores.
fn check(
    m: &Manifest,
    text: &str,
    schemas: &Schemas,
    flows: &BTreeSet<String>,
    blob_stores: &BTreeSet<String>,
) -> Result<(), String> {
    let path = &m.path;
    let at = |needle: &str| format!("{}:{}", path.display(), line_of(text, needle));
    for (field, set) in [
        ("grants.tables.read", &m.grants.tables_read),
        ("grants.tables.write", &m.grants.tables_write),
    ] {
        for t in set {
            if schemas.get(t).is_none() {
                let hint = schemas
                    .suggest(t)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                return Err(format!(
                    "{}: {field}: no table `{t}` in the table folders{hint}",
                    at(t)
                ));
            }
        }
    }
    for f in &m.grants.flows {
        if !flows.contains(f) {
            let hint = closest(f, flows.iter().map(String::as_str))
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return Err(format!(
                "{}: grants.flows: no flow `{f}` in the flows folders{hint}",
                at(f)
            ));
        }
    }
    // The store's line under `blobs:` (not a comment or the description that mentions it).
    let blob_at = |needle: &str| {
        let code = |l: &str| !l.trim_start().starts_with('#');
        let lines: Vec<&str> = text.lines().collect();
        let start = lines
            .iter()
            .position(|l| code(l) && l.contains("blobs:"))
            .unwrap_or(0);
        let line = (start..lines.len())
            .find(|&i| code(lines[i]) && lines[i].contains(needle))
            .map_or(1, |i| i + 1);
        format!("{}:{line}", path.display())
    };
    for (field, set) in [
        ("grants.blobs.read", &m.grants.blobs_read),
        ("grants.blobs.write", &m.grants.blobs_write),
    ] {
        for b in set {
            if !blob_stores.contains(b) {
                let hint = crate::schema::closest(b, blob_stores.iter().map(String::as_str))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                return Err(format!(
                    "{}: {field}: no blob store `{b}` in the config{hint}",
                    blob_at(b)
                ));
            }
        }
    }
    if m.pure {
        if let Some(grant) = m.grants.impure() {
            return Err(format!(
                "{}: pure: a pure flow may only read tables, but it is granted {grant} \
                 (drop `pure: true` or the grant)",
                at("pure")
            ));
        }
    }
    Ok(())
}

/// A built-in component: it must look like one (it always does, unless the build broke).
fn check_builtin(manifest: &Path, bytes: &'static [u8]) -> Result<FlowSource, String> {
    crate::engine::looks_like_component(bytes)
        .map_err(|why| format!("{}: {why}", manifest.with_extension("wasm").display()))?;
    Ok(FlowSource::BuiltIn(bytes))
}

/// The `.wasm` beside the manifest at `path`: there, a regular file, and a component.
fn check_file(path: &Path) -> Result<FlowSource, String> {
    let wasm = path.with_extension("wasm");
    if !wasm.exists() && wasm.symlink_metadata().is_err() {
        return Err(format!(
            "{}: no {} beside the manifest",
            path.display(),
            wasm.display()
        ));
    }
    let mut head = [0u8; 8];
    let mut file =
        open_regular(&wasm, MAX_COMPONENT_BYTES).map_err(|e| format!("{}: {e}", wasm.display()))?;
    {
        use std::io::Read;
        file.read_exact(&mut head)
            .map_err(|e| format!("{}: cannot read: {e}", wasm.display()))?;
    }
    crate::engine::looks_like_component(&head)
        .map_err(|why| format!("{}: {why}", wasm.display()))?;
    Ok(FlowSource::File(wasm))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{HostPattern, RawGrants};

    /// What `lines` (a `grants:` section) grants, as the config file reads it.
    fn parse(lines: &[String]) -> BTreeMap<String, Grants> {
        #[derive(serde::Deserialize)]
        struct Section {
            grants: BTreeMap<String, RawGrants>,
        }
        let text = lines.join("\n");
        let s: Section = crate::yaml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        s.grants
            .into_iter()
            .map(|(k, g)| (k.clone(), g.resolve(&k).unwrap()))
            .collect()
    }

    #[test]
    fn grant_lines_add_the_hosts_and_keep_every_other_grant() {
        let origin = "http://127.0.0.1:4567".to_string();
        let missing = vec![
            ("M10".to_string(), origin.clone()),
            ("U00".to_string(), origin.clone()),
        ];
        let lines = grant_lines(&BTreeMap::new(), &missing);
        assert_eq!(
            lines,
            [
                "grants:",
                "  M10:",
                "    hosts: [\"http://127.0.0.1:4567\"]",
                "  U00:",
                "    hosts: [\"http://127.0.0.1:4567\"]",
            ]
        );
        let pattern = HostPattern::parse(&origin).unwrap();
        let want = Grants {
            hosts: vec![pattern.clone()],
            ..Default::default()
        };
        assert_eq!(
            parse(&lines),
            BTreeMap::from([("M10".into(), want.clone()), ("U00".into(), want)])
        );

        // A config that already grants U00 a host, tables, secrets and a blob store, and O20 a
        // host: the section keeps all of it and adds the new host to U00 and M10.
        let existing = Grants {
            hosts: vec![HostPattern::parse("https://asa.example.com").unwrap()],
            tables_read: ["Audit Events".to_string()].into(),
            tables_write: ["Probe Items".to_string()].into(),
            flows: ["U01".to_string()].into(),
            secrets: ["EXTRA".to_string()].into(),
            blobs_read: ["archive".to_string()].into(),
            blobs_write: ["scratch".to_string()].into(),
            api: Some(crate::manifest::ApiEndpoint {
                token_secret: "U00_API_TOKEN".to_string(),
            }),
        };
        let hec = Grants {
            hosts: vec![HostPattern::parse("https://splunk.example.com:8088").unwrap()],
            ..Default::default()
        };
        let configured = BTreeMap::from([
            ("U00".to_string(), existing.clone()),
            ("O20".to_string(), hec.clone()),
        ]);
        let parsed = parse(&grant_lines(&configured, &missing));
        let mut u00 = existing;
        u00.hosts.push(pattern.clone());
        assert_eq!(parsed["U00"], u00);
        assert_eq!(parsed["O20"], hec);
        assert_eq!(parsed["M10"].hosts, [pattern]);
        assert_eq!(parsed.len(), 3);

        // The one-line form (for a flow's error text) is the same section.
        let line = grant_line(&configured, &missing);
        assert!(!line.contains('\n'), "{line}");
        assert_eq!(parse(&[line]), parsed);
        assert_eq!(
            grant_line(&BTreeMap::new(), &missing[..1]),
            r#"grants: {M10: {hosts: ["http://127.0.0.1:4567"]}}"#
        );
    }
}
