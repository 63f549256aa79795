//! Named object stores (an S3-compatible bucket, a local folder, ...) that the operator
//! configures under `blobs:` in the config file; a flow uses the ones its manifest grants
//! (`grants: { blobs: { read: [..], write: [..] } }`, write implies read).
//!
//! Writes are not part of the run's table transaction: a run that fails after a [`put`] leaves
//! the object behind. Name objects deterministically (from the data they hold) so that a
//! retried run overwrites what the failed one wrote instead of adding a copy.
//!
//! ```ignore
//! blobs::put("archive", "asa/2024/03/05/batch.jsonl.gz", &bytes)?;
//! let names = blobs::list("archive", "asa/2024/", 100)?;
//! ```

use crate::bindings::flowhost::flow::blobs as wit;
use crate::Error;

/// Writes `data` as object `key` of `store`, replacing any object of that name.
pub fn put(store: &str, key: &str, data: &[u8]) -> Result<(), Error> {
    Ok(wit::put(store, key, data)?)
}

/// The object's bytes, or `None` if there is no such object.
pub fn get(store: &str, key: &str) -> Result<Option<Vec<u8>>, Error> {
    Ok(wit::get(store, key)?)
}

/// Names of the objects whose name starts with `prefix` (`""` = all), sorted, at most `limit`.
pub fn list(store: &str, prefix: &str, limit: u32) -> Result<Vec<String>, Error> {
    Ok(wit::list(store, prefix, limit)?)
}

/// Deletes the object; `false` if there was none.
pub fn delete(store: &str, key: &str) -> Result<bool, Error> {
    Ok(wit::delete(store, key)?)
}
