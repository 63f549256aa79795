//! Where secret values come from: `FLOWHOST_SECRET_<NAME>` environment variables (first) and an
//! optional YAML secrets file (`NAME: value`) that must not be readable by group or others.
//! Values are read once at start; `values()` feeds the redaction of history and logs.

use std::collections::BTreeMap;
use std::path::Path;

const ENV_PREFIX: &str = "FLOWHOST_SECRET_";

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("{path}: secrets file is readable by others (mode {mode:o}); run `chmod 600 {path}`")]
    Exposed { path: String, mode: u32 },
    #[error("{path}: cannot read the secrets file: {message} (fix the `secrets_file:` setting)")]
    Read { path: String, message: String },
    #[error("{path}: {message} (expected `NAME: value` lines)")]
    Format { path: String, message: String },
}

#[derive(Default)]
pub struct Secrets {
    by_name: BTreeMap<String, String>,
    values: Vec<String>,
}

impl Secrets {
    /// Reads the environment and, if given, the secrets file (environment wins).
    pub fn load(file: Option<&Path>) -> Result<Secrets, SecretsError> {
        let mut by_name = BTreeMap::new();
        if let Some(path) = file {
            by_name = read_file(path)?;
        }
        for (k, v) in std::env::vars() {
            if let Some(name) = k.strip_prefix(ENV_PREFIX) {
                if !name.is_empty() {
                    by_name.insert(name.to_string(), v);
                }
            }
        }
        Ok(Self::from_map(by_name))
    }

    pub fn from_map(by_name: BTreeMap<String, String>) -> Secrets {
        // Longest first, so that a secret containing another is redacted whole.
        let mut values: Vec<String> = by_name
            .values()
            .filter(|v| !v.is_empty())
            .cloned()
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Secrets { by_name, values }
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.by_name.get(name).cloned()
    }

    /// Every known secret value, for redaction.
    pub fn values(&self) -> &[String] {
        &self.values
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
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretsError::Exposed { path: shown, mode });
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text = std::fs::read_to_string(path).map_err(|e| SecretsError::Read {
        path: shown.clone(),
        message: e.to_string(),
    })?;
    let map: BTreeMap<String, serde_yaml::Value> =
        crate::yaml::from_str(&text).map_err(|m| SecretsError::Format {
            path: shown.clone(),
            message: m,
        })?;
    map.into_iter()
        .map(|(k, v)| match v {
            serde_yaml::Value::String(s) => Ok((k, s)),
            serde_yaml::Value::Number(n) => Ok((k, n.to_string())),
            _ => Err(SecretsError::Format {
                path: shown.clone(),
                message: format!("`{}` is not a text value", crate::yaml::one_line(&k)),
            }),
        })
        .collect()
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
        assert!(s.values().contains(&"abc-123".to_string()));
    }
}
