//! Where secret values come from, first match wins:
//! 1. `FLOWHOST_SECRET_<NAME>` environment variables;
//! 2. systemd credentials (`LoadCredential=` in the unit): every file of the folder
//!    `$CREDENTIALS_DIRECTORY` is the secret named after the file, its value the file's text
//!    less one trailing newline;
//! 3. an optional YAML secrets file (`NAME: value`): mode 0600, or 0640 when the file's group
//!    is one of this process's groups (a root-owned file the service's group may read); never
//!    readable by others, never writable by its group.
//!
//! Values are read at start and again at each config reload of `serve` (SIGHUP:
//! [`Secrets::replace`]), and the [`Redactor`] of every form of them is built then
//! ([`Secrets::redact`], [`Secrets::follow`]): history, logs and printed errors use it. A value
//! replaced or removed by a reload is still redacted until the process ends: a rotated token
//! may still be valid somewhere, and it is still in the memory of runs that started before.
//!
//! The secrets file's errors name the file, the line and what was expected, and never quote a
//! value (an error message reaches logs and terminals): a dotenv line (`NAME=value`) is
//! refused as "line 3: expected `NAME: value`, found `NAME=...`", a name set twice names both
//! lines, a YAML error quotes no string ([`crate::yaml::from_untrusted_str`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use crate::redact::{RedactError, Redactor};

const ENV_PREFIX: &str = "FLOWHOST_SECRET_";

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("{path}: secrets file is readable by others (mode {mode:o}); run `chmod 600 {path}` (or 640 with the service's group)")]
    Exposed { path: String, mode: u32 },
    #[error("{path}: secrets file is writable or executable by its group (mode {mode:o}); run `chmod 640 {path}`")]
    GroupWritable { path: String, mode: u32 },
    #[error("{path}: secrets file is readable by its group (gid {gid}), which is not one of this process's groups (mode {mode:o}); run `chgrp` to the service's group or `chmod 600 {path}`")]
    ForeignGroup { path: String, mode: u32, gid: u32 },
    #[error("{path}: cannot read the credential: {message} (systemd's LoadCredential=, in $CREDENTIALS_DIRECTORY)")]
    Credential { path: String, message: String },
    #[error("{path}: cannot read the secrets file: {message} (fix the `secrets_file:` setting)")]
    Read { path: String, message: String },
    #[error("{path}: {message} (expected `NAME: value` lines)")]
    Format { path: String, message: String },
    #[error(transparent)]
    Redaction(#[from] RedactError),
}

/// The secrets of one process: swapped whole by [`Secrets::replace`], so a reader sees the old
/// set or the new one, never a mix.
#[derive(Default)]
pub struct Secrets {
    now: RwLock<Arc<Loaded>>,
    /// Called with the redactor at [`Secrets::follow`] and after each replacement.
    followers: Mutex<Vec<Follower>>,
}

/// Told the new redactor after each replacement.
type Follower = Box<dyn Fn(Arc<Redactor>) + Send + Sync>;

/// One set of secrets and its redactor.
#[derive(Default)]
struct Loaded {
    by_name: BTreeMap<String, String>,
    /// Every value loaded since the process started: what the redactor redacts.
    redacted: BTreeSet<String>,
    redactor: Arc<Redactor>,
}

/// What a [`Secrets::replace`] changed, by name (never a value).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SecretChanges {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

impl SecretChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

impl Secrets {
    /// Reads the environment, systemd's credentials and, if given, the secrets file (in this
    /// order of precedence: see the module doc).
    pub fn load(file: Option<&Path>) -> Result<Secrets, SecretsError> {
        let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty());
        Self::load_from(
            file,
            credentials.as_deref().map(Path::new),
            std::env::vars(),
        )
    }

    /// [`Secrets::load`] from the given sources: the secrets file, the credentials folder and
    /// the environment's variables, each winning over the one before.
    pub fn load_from(
        file: Option<&Path>,
        credentials: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Secrets, SecretsError> {
        let mut by_name = BTreeMap::new();
        if let Some(path) = file {
            by_name = read_file(path)?;
        }
        if let Some(dir) = credentials {
            by_name.extend(read_credentials(dir)?);
        }
        for (k, v) in env {
            if let Some(name) = k.strip_prefix(ENV_PREFIX) {
                if !name.is_empty() {
                    by_name.insert(name.to_string(), v);
                }
            }
        }
        Self::from_map(by_name)
    }

    /// Only the `FLOWHOST_SECRET_*` environment variables (what the binary can redact before
    /// it has read its config).
    pub fn from_env() -> Result<Secrets, SecretsError> {
        Self::load(None)
    }

    pub fn from_map(by_name: BTreeMap<String, String>) -> Result<Secrets, SecretsError> {
        let redacted: BTreeSet<String> = by_name.values().cloned().collect();
        let redactor = Arc::new(Redactor::new(&redacted.iter().collect::<Vec<_>>())?);
        Ok(Secrets {
            now: RwLock::new(Arc::new(Loaded {
                by_name,
                redacted,
                redactor,
            })),
            followers: Mutex::default(),
        })
    }

    fn loaded(&self) -> Arc<Loaded> {
        self.now.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.loaded().by_name.get(name).cloned()
    }

    /// `text` with every form of every secret value replaced (see [`crate::redact`]).
    pub fn redact<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        self.loaded().redactor.redact(text)
    }

    /// The redactor of the secrets as they are now.
    pub fn redactor(&self) -> Arc<Redactor> {
        self.loaded().redactor.clone()
    }

    /// Calls `follower` with the redactor now and after each [`Secrets::replace`] (the
    /// terminal's, which redacts every log line).
    pub fn follow(&self, follower: impl Fn(Arc<Redactor>) + Send + Sync + 'static) {
        follower(self.redactor());
        crate::runtime::lock(&self.followers).push(Box::new(follower));
    }

    /// From now on, `new`'s values; the replaced and removed values stay redacted. Returns
    /// which names changed. On an error nothing has changed.
    pub fn replace(&self, new: Secrets) -> Result<SecretChanges, SecretsError> {
        let mut now = self.now.write().unwrap_or_else(|p| p.into_inner());
        let by_name = new.loaded().by_name.clone();
        let mut changes = SecretChanges::default();
        for (name, value) in &by_name {
            match now.by_name.get(name) {
                None => changes.added.push(name.clone()),
                Some(old) if old != value => changes.changed.push(name.clone()),
                Some(_) => {}
            }
        }
        changes.removed = now
            .by_name
            .keys()
            .filter(|n| !by_name.contains_key(*n))
            .cloned()
            .collect();
        let mut redacted = now.redacted.clone();
        redacted.extend(by_name.values().cloned());
        let redactor = if redacted.len() == now.redacted.len() {
            now.redactor.clone()
        } else {
            Arc::new(Redactor::new(&redacted.iter().collect::<Vec<_>>())?)
        };
        *now = Arc::new(Loaded {
            by_name,
            redacted,
            redactor: redactor.clone(),
        });
        drop(now);
        for follower in crate::runtime::lock(&self.followers).iter() {
            follower(redactor.clone());
        }
        Ok(changes)
    }
}

fn read_file(path: &Path) -> Result<BTreeMap<String, String>, SecretsError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| SecretsError::Read {
        path: shown.clone(),
        message: e.to_string(),
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o007 != 0 {
            return Err(SecretsError::Exposed { path: shown, mode });
        }
        if mode & 0o030 != 0 {
            return Err(SecretsError::GroupWritable { path: shown, mode });
        }
        if mode & 0o040 != 0 && !process_groups().contains(&meta.gid()) {
            let gid = meta.gid();
            return Err(SecretsError::ForeignGroup {
                path: shown,
                mode,
                gid,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text = std::fs::read_to_string(path).map_err(|e| SecretsError::Read {
        path: shown.clone(),
        message: e.to_string(),
    })?;
    let format = |message: String| SecretsError::Format {
        path: shown.clone(),
        message,
    };
    check_lines(&text).map_err(format)?;
    // A `Mapping` refuses a repeated key in any YAML form (the line check above names both
    // lines of the usual form).
    let map: serde_yaml::Mapping = crate::yaml::from_untrusted_str(&text).map_err(format)?;
    map.into_iter()
        .map(|(k, v)| {
            let serde_yaml::Value::String(k) = k else {
                return Err(format("a secret's name is not text".into()));
            };
            let name = crate::yaml::one_line(&k);
            match v {
                serde_yaml::Value::String(s) => Ok((k, s)),
                serde_yaml::Value::Number(n) => Ok((k, n.to_string())),
                _ => Err(format(format!("`{name}` is not a text value"))),
            }
        })
        .collect()
}

/// This process's effective group and supplementary groups.
#[cfg(unix)]
fn process_groups() -> Vec<u32> {
    // SAFETY: getegid cannot fail; getgroups writes at most `n` ids into a buffer of `n`.
    let mut groups = vec![unsafe { libc::getegid() }];
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    if let Ok(len) = usize::try_from(n) {
        let mut buf: Vec<libc::gid_t> = vec![0; len];
        let got = unsafe { libc::getgroups(n, buf.as_mut_ptr()) };
        if let Ok(got) = usize::try_from(got) {
            buf.truncate(got);
            groups.extend(buf);
        }
    }
    groups
}

/// systemd's credentials: every regular file of `dir` is a secret named after the file.
fn read_credentials(dir: &Path) -> Result<BTreeMap<String, String>, SecretsError> {
    let err = |path: &Path, message: String| SecretsError::Credential {
        path: path.display().to_string(),
        message,
    };
    let entries = std::fs::read_dir(dir).map_err(|e| err(dir, e.to_string()))?;
    let mut out = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| err(dir, e.to_string()))?;
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_name(&name) {
            return Err(err(
                &path,
                "a credential's name is a secret's name (letters, digits and _ only)".into(),
            ));
        }
        let value = std::fs::read_to_string(&path).map_err(|e| err(&path, e.to_string()))?;
        let value = value.strip_suffix('\n').unwrap_or(&value);
        out.insert(name, value.to_string());
    }
    Ok(out)
}

/// Line by line, before YAML sees the text: dotenv lines and names set twice, naming lines
/// and names, never values.
fn check_lines(text: &str) -> Result<(), String> {
    let mut first_line: HashMap<&str, usize> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        // Only top-level `NAME: value` lines: not indented, not a comment or a document mark.
        if line.starts_with([' ', '\t', '#', '-', '.', '"', '\'', '{', '[']) || line.is_empty() {
            continue;
        }
        let colon = line
            .find(": ")
            .or_else(|| line.strip_suffix(':').map(str::len));
        let equals = line.find('=');
        match (colon, equals) {
            (Some(c), _) if equals.is_none_or(|e| c < e) => {
                let name = line[..c].trim_end();
                if let Some(first) = first_line.insert(name, number) {
                    return Err(format!(
                        "lines {first} and {number} both set `{}`; keep one",
                        crate::yaml::one_line(name)
                    ));
                }
            }
            (_, Some(e)) => {
                let name = line[..e].trim().trim_start_matches("export ").trim();
                let shown = if is_name(name) { name } else { "NAME" };
                return Err(format!(
                    "line {number}: expected `NAME: value`, found `{shown}=...`"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A plausible secret name: letters, digits and `_`.
fn is_name(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_readable_by_others_is_refused_and_0600_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secrets.yaml");
        std::fs::write(&p, "ASA_KEY_ID: abc-123\nASA_KEY_SECRET: \"s3cr3t==\"\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = Secrets::load(Some(&p)).err().unwrap().to_string();
            assert!(
                e.contains("readable by others") && e.contains("chmod 600"),
                "{e}"
            );
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let s = Secrets::load(Some(&p)).unwrap();
        assert_eq!(s.get("ASA_KEY_SECRET").as_deref(), Some("s3cr3t=="));
        assert_eq!(s.redact("id abc-123"), "id [REDACTED]");
    }

    #[test]
    fn environment_wins_over_credentials_which_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secrets.yaml");
        std::fs::write(&file, "A: from-file\nB: from-file\nC: from-file\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let creds = dir.path().join("creds");
        std::fs::create_dir(&creds).unwrap();
        std::fs::write(creds.join("B"), "from-credential\n").unwrap();
        std::fs::write(creds.join("C"), "from-credential\n\n").unwrap();
        let env = [("FLOWHOST_SECRET_C".to_string(), "from-env".to_string())];
        let s = Secrets::load_from(Some(&file), Some(&creds), env).unwrap();
        assert_eq!(s.get("A").as_deref(), Some("from-file"));
        assert_eq!(
            s.get("B").as_deref(),
            Some("from-credential"),
            "one newline trimmed"
        );
        assert_eq!(s.get("C").as_deref(), Some("from-env"));
        let s = Secrets::load_from(None, Some(&creds), []).unwrap();
        assert_eq!(
            s.get("C").as_deref(),
            Some("from-credential\n"),
            "only one newline"
        );

        std::fs::write(creds.join("bad.name"), "x").unwrap();
        let e = Secrets::load_from(None, Some(&creds), [])
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains(
                "bad.name: cannot read the credential: a credential's name is a secret's name"
            ),
            "{e}"
        );
    }

    fn file_error(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secrets.yaml");
        std::fs::write(&p, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let e = Secrets::load(Some(&p)).err().unwrap().to_string();
        e.replace(&p.display().to_string(), "secrets.yaml")
    }

    #[test]
    fn file_errors_name_lines_never_values() {
        assert_eq!(
            file_error("# mine\nA: ok-value\nTOKEN=hunter2-Zq\n"),
            "secrets.yaml: line 3: expected `NAME: value`, found `TOKEN=...` (expected `NAME: value` lines)"
        );
        assert_eq!(
            file_error("export TOKEN=\"hunter2 Zq\"\n"),
            "secrets.yaml: line 1: expected `NAME: value`, found `TOKEN=...` (expected `NAME: value` lines)"
        );
        assert_eq!(
            file_error("A: one-Zq\nB: two-Zq\n\nA: three-Zq\n"),
            "secrets.yaml: lines 1 and 4 both set `A`; keep one (expected `NAME: value` lines)"
        );
        // Other YAML forms: serde_yaml's own checks, quoting no value.
        for (text, leaked) in [
            ("{A: one-Zq, A: two-Zq}", "Zq"),
            ("\"multi word value-Zq\"", "Zq"),
            ("A: [x-Zq]", "Zq"),
            ("A: 'unterminated-Zq\n", "Zq"),
        ] {
            let e = file_error(text);
            assert!(e.starts_with("secrets.yaml: "), "{e}");
            assert!(!e.contains(leaked), "{text:?} → {e}");
        }
        // A value with `=` or `: ` is fine.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.yaml");
        std::fs::write(&p, "A: \"x=y: z\"\nB: b=c\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let s = Secrets::load(Some(&p)).unwrap();
        assert_eq!(s.get("A").as_deref(), Some("x=y: z"));
        assert_eq!(s.get("B").as_deref(), Some("b=c"));
    }

    #[test]
    fn a_replacement_is_seen_by_readers_and_followers_and_old_values_stay_redacted() {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let s = Secrets::from_map(map(&[("A", "alpha-old-1"), ("B", "bravo-same-2")])).unwrap();
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let log = seen.clone();
        s.follow(move |r| {
            log.lock()
                .unwrap()
                .push(r.redact("alpha-old-1 alpha-new-1 charlie-3").into_owned())
        });
        let changes = s
            .replace(
                Secrets::from_map(map(&[
                    ("A", "alpha-new-1"),
                    ("B", "bravo-same-2"),
                    ("C", "charlie-3"),
                ]))
                .unwrap(),
            )
            .unwrap();
        assert_eq!(
            changes,
            SecretChanges {
                added: vec!["C".into()],
                changed: vec!["A".into()],
                removed: vec![],
            }
        );
        assert_eq!(s.get("A").as_deref(), Some("alpha-new-1"));
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "[REDACTED] alpha-new-1 charlie-3",
                "[REDACTED] [REDACTED] [REDACTED]"
            ]
        );
        let changes = s
            .replace(Secrets::from_map(map(&[("B", "bravo-same-2")])).unwrap())
            .unwrap();
        assert_eq!(changes.removed, ["A", "C"]);
        assert_eq!(s.get("C"), None);
        assert_eq!(
            s.redact("alpha-old-1 alpha-new-1 charlie-3 bravo-same-2"),
            "[REDACTED] [REDACTED] [REDACTED] [REDACTED]",
            "a value once loaded stays redacted"
        );
        let changes = s
            .replace(Secrets::from_map(map(&[("B", "bravo-same-2")])).unwrap())
            .unwrap();
        assert!(changes.is_empty());
    }
}
