//! Secrets the manifest grants (from `FLOWHOST_SECRET_<NAME>` or the secrets file).
//! Keep them out of outputs, logs and error texts.

use crate::bindings::flowhost::flow::secrets as wit;
use crate::Error;

/// The value of secret `name`.
pub fn get(name: &str) -> Result<String, Error> {
    Ok(wit::get(name)?)
}
