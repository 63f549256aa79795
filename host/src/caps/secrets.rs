//! `secrets.get`: a granted secret's value, from the environment or the secrets file.

use crate::engine::flowhost::flow::secrets::Host;
use crate::engine::{RunState, WitError};

impl Host for RunState {
    async fn get(&mut self, name: String) -> Result<String, WitError> {
        self.ctx.not_a_read();
        let ctx = &self.ctx;
        if !ctx.flow.manifest.grants.secrets.contains(&name) {
            return Err(WitError::AccessDenied(format!(
                "secret `{name}` is not granted to {} (grants.secrets)",
                ctx.name()
            )));
        }
        ctx.rt.secrets.get(&name).ok_or_else(|| {
            WitError::NotFound(format!(
                "secret `{name}` is not set (set FLOWHOST_SECRET_{name} or add it to the secrets file)"
            ))
        })
    }
}
