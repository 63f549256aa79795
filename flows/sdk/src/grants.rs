//! What other flows are granted: a flow that stores a URL for others to call checks it first.

use crate::bindings::flowhost::flow::grants as wit;
use crate::Error;

/// Ok when each `(flow, url)` is within that flow's effective `grants.hosts`; otherwise
/// `Error::AccessDenied` whose text names the flows and origins and gives the config file's
/// `grants:` section as it must read (on one line).
pub fn granted_urls(checks: &[(&str, &str)]) -> Result<(), Error> {
    Ok(wit::granted_urls(checks)?)
}
