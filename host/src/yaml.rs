//! The one place YAML is read (manifests, table schemas, the config file, the secrets file),
//! so that the archived `serde_yaml` can be swapped without touching the loaders.

use serde::de::DeserializeOwned;

/// Parses `text`; the error is one line naming the field and the position.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_yaml::from_str(text).map_err(|e| e.to_string().replace('\n', " "))
}
