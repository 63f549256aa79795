//! `grants.granted-urls`: whether URLs are granted to named flows, asked of the registry the
//! run uses ([`crate::registry::Registry::ungranted`]), with the config lines that would grant
//! them ([`crate::registry::grant_line`]). No grant is needed to ask.

use crate::engine::flowhost::flow::grants::Host;
use crate::engine::{RunState, WitError};
use crate::registry::{Registry, UrlGrantError};

impl Host for RunState {
    async fn granted_urls(&mut self, checks: Vec<(String, String)>) -> Result<(), WitError> {
        self.ctx.not_a_read();
        granted_urls(&self.ctx.rt.registry(), &checks)
    }
}

/// The answer to `granted-urls` from `registry`.
pub fn granted_urls(registry: &Registry, checks: &[(String, String)]) -> Result<(), WitError> {
    let missing = registry.ungranted(checks).map_err(|e| match e {
        UrlGrantError::UnknownFlow(_) => WitError::NotFound(e.to_string()),
        UrlGrantError::BadUrl { .. } => WitError::InvalidInput(e.to_string()),
        UrlGrantError::NotGranted { .. } => WitError::AccessDenied(e.to_string()),
    })?;
    if missing.is_empty() {
        return Ok(());
    }
    let mut flows: Vec<&str> = Vec::new();
    let mut origins: Vec<&str> = Vec::new();
    for (flow, origin) in &missing {
        if !flows.contains(&flow.as_str()) {
            flows.push(flow);
        }
        if !origins.contains(&origin.as_str()) {
            origins.push(origin);
        }
    }
    Err(WitError::AccessDenied(format!(
        "{} is not in the allowed hosts of {} (neither the manifest's nor the config's grants.hosts); make the `grants:` section of the config file read (or add it): {}",
        origins.join(" and "),
        flows.join(" and "),
        crate::registry::grant_line(&registry.configured_grants, &missing)
    )))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::manifest::{Grants, HostPattern};
    use crate::schema::Schemas;

    /// The built-in ASA package, with `configured` as the config file's grants.
    fn package(configured: &BTreeMap<String, Grants>) -> Registry {
        let schemas = Schemas::load_with_package(&[]).unwrap();
        Registry::load(&[], &schemas, configured, &BTreeSet::new())
    }

    fn asks(url: &str) -> Vec<(String, String)> {
        vec![("M10".into(), url.into()), ("U00".into(), url.into())]
    }

    #[test]
    fn a_granted_url_is_ok_and_an_ungranted_one_names_the_config_line() {
        let reg = package(&BTreeMap::new());
        let ok = granted_urls(&reg, &asks("https://app.scaleft.com/v1/teams/t/auditsV2"));
        assert!(ok.is_ok(), "{ok:?}");
        let e = granted_urls(
            &reg,
            &asks("http://127.0.0.1:4567/v1/teams/t/service_token"),
        );
        let Err(WitError::AccessDenied(text)) = e else {
            panic!("{e:?}")
        };
        assert!(
            text.starts_with("http://127.0.0.1:4567 is not in the allowed hosts of M10 and U00"),
            "{text}"
        );
        assert!(
            text.ends_with(
                r#": grants: {M10: {hosts: ["http://127.0.0.1:4567"]}, U00: {hosts: ["http://127.0.0.1:4567"]}}"#
            ),
            "{text}"
        );
    }

    #[test]
    fn the_line_keeps_what_the_config_grants_and_adds_only_what_is_missing() {
        let configured = BTreeMap::from([(
            "M10".to_string(),
            Grants {
                hosts: vec![HostPattern::parse("http://127.0.0.1:4567").unwrap()],
                ..Default::default()
            },
        )]);
        let reg = package(&configured);
        let e = granted_urls(&reg, &asks("http://127.0.0.1:4567/v1"));
        let Err(WitError::AccessDenied(text)) = e else {
            panic!("{e:?}")
        };
        assert!(text.contains("allowed hosts of U00 ("), "{text}");
        assert!(
            text.ends_with(
                r#"grants: {M10: {hosts: ["http://127.0.0.1:4567"]}, U00: {hosts: ["http://127.0.0.1:4567"]}}"#
            ),
            "{text}"
        );
        // With both granted, the same question is answered yes.
        let both = BTreeMap::from([
            ("M10".to_string(), configured["M10"].clone()),
            ("U00".to_string(), configured["M10"].clone()),
        ]);
        let ok = granted_urls(&package(&both), &asks("http://127.0.0.1:4567/v1"));
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn an_unknown_flow_or_a_bad_url_is_its_own_error() {
        let reg = package(&BTreeMap::new());
        let e = granted_urls(&reg, &[("M99".into(), "https://app.scaleft.com".into())]);
        assert!(
            matches!(&e, Err(WitError::NotFound(m)) if m.contains("M99")),
            "{e:?}"
        );
        let e = granted_urls(&reg, &[("M10".into(), "not a url".into())]);
        assert!(
            matches!(&e, Err(WitError::InvalidInput(m)) if m.contains("not a url")),
            "{e:?}"
        );
    }
}
