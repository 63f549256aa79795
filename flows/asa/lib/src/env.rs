//! The Environment Variables row (the template's "env vars"): defaults and validation.
//!
//! U01 reads it: `searchCount` defaults to `"100"`, `asaBaseUrl` to `https://app.scaleft.com`,
//! and a missing `asaTeam` is an error that says how to set it. The offload settings are
//! optional: `offloadStore` defaults to `"archive"`, `offloadPrefix` to `"asa/audit-events/"`,
//! `offloadBatch` to `"5000"` (1..=50000), and `hecUrl` may stay unset (O20 needs it; it says
//! so). `onLostOffset` (M10, see [`crate::lost_offset`]) is `fail` (default) or `restart`.
//! U02 validates and writes the row.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::lost_offset::{OnLostOffset, DEFAULT_ON_LOST_OFFSET};
use crate::model::Env;

/// A setting that is missing or wrong; the text says which and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSetting(pub String);

impl std::fmt::Display for InvalidSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidSetting {}

pub const DEFAULT_SEARCH_COUNT: &str = "100";
pub const DEFAULT_BASE_URL: &str = "https://app.scaleft.com";
/// The largest page `auditsV2` serves.
pub const MAX_SEARCH_COUNT: u32 = 1000;
pub const DEFAULT_OFFLOAD_STORE: &str = "archive";
pub const DEFAULT_OFFLOAD_PREFIX: &str = "asa/audit-events/";
pub const DEFAULT_OFFLOAD_BATCH: &str = "5000";
/// The most rows O10 puts in one object.
pub const MAX_OFFLOAD_BATCH: u32 = 50_000;

/// The error U01 gives while no team is set.
pub const TEAM_NOT_SET: &str =
    "Environment Variables: asaTeam is not set; run U02 with {\"asaTeam\": \"your-team\"}";

impl Env {
    /// The row with defaults for empty settings (the team and `hecUrl` may stay empty).
    pub fn with_defaults(self) -> Env {
        let or = |v: String, default: &str| {
            if v.trim().is_empty() {
                default.to_string()
            } else {
                v.trim().to_string()
            }
        };
        Env {
            asa_team: self.asa_team.trim().to_string(),
            search_count: or(self.search_count, DEFAULT_SEARCH_COUNT),
            asa_base_url: or(self.asa_base_url, DEFAULT_BASE_URL).trim_end_matches('/').to_string(),
            offload_store: or(self.offload_store, DEFAULT_OFFLOAD_STORE),
            offload_prefix: or(self.offload_prefix, DEFAULT_OFFLOAD_PREFIX),
            offload_batch: or(self.offload_batch, DEFAULT_OFFLOAD_BATCH),
            hec_url: self.hec_url.trim().to_string(),
            key_id_secret: or(self.key_id_secret, crate::teams::DEFAULT_KEY_ID_SECRET),
            key_secret_secret: or(self.key_secret_secret, crate::teams::DEFAULT_KEY_SECRET_SECRET),
            on_lost_offset: or(self.on_lost_offset, DEFAULT_ON_LOST_OFFSET),
        }
    }

    /// The row with defaults, checked: a team is set, the count is 1..=1000, the URL is http(s);
    /// the offload store is a name, the prefix a relative object path (given a trailing `/`),
    /// the batch 1..=50000, and `hecUrl`, when set, an http(s) URL.
    pub fn checked(self) -> Result<Env, InvalidSetting> {
        let mut env = self.with_defaults();
        if env.asa_team.is_empty() {
            return Err(InvalidSetting(TEAM_NOT_SET.to_string()));
        }
        let bad = |e: InvalidSetting| {
            InvalidSetting(format!("Environment Variables: {}; fix it with U02", e.0))
        };
        // A row written before U02 stored the normal forms is read in them.
        env.asa_team = validate_team(&env.asa_team).map_err(bad)?;
        parse_search_count(&Value::String(env.search_count.clone())).map_err(bad)?;
        env.asa_base_url = normalize_base_url(&env.asa_base_url).map_err(bad)?;
        env.offload_store = validate_store("offloadStore", &env.offload_store).map_err(bad)?;
        env.offload_prefix = normalize_prefix("offloadPrefix", &env.offload_prefix).map_err(bad)?;
        parse_offload_batch(&Value::String(env.offload_batch.clone())).map_err(bad)?;
        if !env.hec_url.is_empty() {
            env.hec_url = normalize_hec_url(&env.hec_url).map_err(bad)?;
        }
        crate::teams::validate_secret_name("keyIdSecret", &env.key_id_secret).map_err(bad)?;
        crate::teams::validate_secret_name("keySecretSecret", &env.key_secret_secret)
            .map_err(bad)?;
        env.on_lost_offset = OnLostOffset::parse(&env.on_lost_offset).map_err(bad)?.as_str().into();
        Ok(env)
    }

    /// `searchCount` as a number (call on a [`checked`](Env::checked) env).
    pub fn count(&self) -> Result<u32, InvalidSetting> {
        parse_search_count(&Value::String(self.search_count.clone()))
    }

    /// `onLostOffset` (call on a [`checked`](Env::checked) env).
    pub fn lost_offset_policy(&self) -> Result<OnLostOffset, InvalidSetting> {
        OnLostOffset::parse(&self.on_lost_offset)
    }

    /// `offloadBatch` as a number (call on a [`checked`](Env::checked) env).
    pub fn batch(&self) -> Result<u32, InvalidSetting> {
        parse_offload_batch(&Value::String(self.offload_batch.clone()))
    }
}

/// U02's input: any of the settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetEnv {
    #[serde(default)]
    pub asa_team: Option<String>,
    /// Text or a number.
    #[serde(default)]
    pub search_count: Option<Value>,
    #[serde(default)]
    pub asa_base_url: Option<String>,
    /// `""` goes back to the default.
    #[serde(default)]
    pub offload_store: Option<String>,
    /// `""` goes back to the default.
    #[serde(default)]
    pub offload_prefix: Option<String>,
    /// Text or a number; `""` goes back to the default.
    #[serde(default)]
    pub offload_batch: Option<Value>,
    /// `""` unsets it.
    #[serde(default)]
    pub hec_url: Option<String>,
    /// The secret with this team's key id; `""` goes back to `ASA_KEY_ID`.
    #[serde(default)]
    pub key_id_secret: Option<String>,
    /// The secret with this team's key secret; `""` goes back to `ASA_KEY_SECRET`.
    #[serde(default)]
    pub key_secret_secret: Option<String>,
    /// Which team's row to set (absent = the default team's); see `crate::teams`.
    #[serde(default)]
    pub team: Option<String>,
    /// With `team`: delete that team's row.
    #[serde(default)]
    pub remove: bool,
    /// `fail` or `restart`; `""` goes back to the default (`fail`).
    #[serde(default)]
    pub on_lost_offset: Option<String>,
}

/// The validated columns U02 writes (absent ones are left as they are).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvChanges {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asa_team: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search_count: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asa_base_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offload_store: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offload_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offload_batch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hec_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_secret_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_lost_offset: Option<String>,
}

impl EnvChanges {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self == &EnvChanges::default()
    }
}

/// `""` (after trimming) as `""`, anything else through `check`.
fn empty_or(
    v: &str,
    check: impl FnOnce(&str) -> Result<String, InvalidSetting>,
) -> Result<String, InvalidSetting> {
    if v.trim().is_empty() {
        Ok(String::new())
    } else {
        check(v)
    }
}

impl SetEnv {
    /// Checks every given setting; the first bad one is the error.
    pub fn validate(self) -> Result<EnvChanges, InvalidSetting> {
        Ok(EnvChanges {
            asa_team: self.asa_team.as_deref().map(validate_team).transpose()?,
            search_count: self
                .search_count
                .as_ref()
                .map(|v| parse_search_count(v).map(|n| n.to_string()))
                .transpose()?,
            asa_base_url: self.asa_base_url.as_deref().map(normalize_base_url).transpose()?,
            offload_store: self
                .offload_store
                .as_deref()
                .map(|s| empty_or(s, |s| validate_store("offloadStore", s)))
                .transpose()?,
            offload_prefix: self
                .offload_prefix
                .as_deref()
                .map(|p| empty_or(p, |p| normalize_prefix("offloadPrefix", p)))
                .transpose()?,
            offload_batch: self
                .offload_batch
                .as_ref()
                .map(|v| match v {
                    Value::String(s) if s.trim().is_empty() => Ok(String::new()),
                    v => parse_offload_batch(v).map(|n| n.to_string()),
                })
                .transpose()?,
            hec_url: self.hec_url.as_deref().map(|u| empty_or(u, normalize_hec_url)).transpose()?,
            key_id_secret: self
                .key_id_secret
                .as_deref()
                .map(|n| empty_or(n, |n| crate::teams::validate_secret_name("keyIdSecret", n)))
                .transpose()?,
            key_secret_secret: self
                .key_secret_secret
                .as_deref()
                .map(|n| empty_or(n, |n| crate::teams::validate_secret_name("keySecretSecret", n)))
                .transpose()?,
            on_lost_offset: self
                .on_lost_offset
                .as_deref()
                .map(|v| empty_or(v, |v| OnLostOffset::parse(v).map(|p| p.as_str().to_string())))
                .transpose()?,
        })
    }
}

/// A team name: trimmed, non-empty, letters, digits, `-`, `_` and `.` only; lower-cased.
pub fn validate_team(team: &str) -> Result<String, InvalidSetting> {
    let t = team.trim();
    if t.is_empty() {
        return Err(InvalidSetting("asaTeam must not be empty".to_string()));
    }
    if !t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(InvalidSetting(format!(
            "asaTeam {t:?} may only hold letters, digits, '-', '_' and '.'"
        )));
    }
    // ASA team names are case-insensitive, but some deployments match the API path exactly:
    // the canonical (lower-case) form is stored and sent.
    Ok(t.to_ascii_lowercase())
}

/// A blob store's name (setting or input `name`), as the config file's `blobs:` names them:
/// trimmed, non-empty, letters, digits, `-` and `_` only.
pub fn validate_store(name: &str, store: &str) -> Result<String, InvalidSetting> {
    let s = store.trim();
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')) {
        return Err(InvalidSetting(format!(
            "{name} {s:?} must be a blob store name (letters, digits, '-' and '_')"
        )));
    }
    Ok(s.to_string())
}

/// An object-name prefix (setting or input `name`): a relative path of non-empty segments
/// other than `.` and `..`, without backslashes or control characters; given a trailing `/`
/// so that objects land "in" it. `""` stays `""` (the store's root).
pub fn normalize_prefix(name: &str, prefix: &str) -> Result<String, InvalidSetting> {
    let p = prefix.trim();
    if p.is_empty() {
        return Ok(String::new());
    }
    let bad = |why: &str| InvalidSetting(format!("{name} {p:?} {why}"));
    if p.starts_with('/') {
        return Err(bad("must not start with '/'"));
    }
    if p.contains('\\') || p.chars().any(char::is_control) {
        return Err(bad("must not hold backslashes or control characters"));
    }
    let trimmed = p.strip_suffix('/').unwrap_or(p);
    if trimmed.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
        return Err(bad("must be a relative path without empty, '.' or '..' segments"));
    }
    Ok(format!("{trimmed}/"))
}

/// A whole number from 1 to `max`, as a number or text; the error names setting `name`.
pub fn parse_count(name: &str, v: &Value, max: u32) -> Result<u32, InvalidSetting> {
    let n = match v {
        Value::String(s) => s.trim().parse::<u64>().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    };
    match n {
        Some(n) if (1..=u64::from(max)).contains(&n) => Ok(n as u32),
        _ => Err(InvalidSetting(format!("{name} must be a whole number from 1 to {max}, not {v}"))),
    }
}

/// A page size: a whole number from 1 to 1000, as a number or text.
pub fn parse_search_count(v: &Value) -> Result<u32, InvalidSetting> {
    parse_count("searchCount", v, MAX_SEARCH_COUNT)
}

/// An offload batch: a whole number from 1 to 50000, as a number or text.
pub fn parse_offload_batch(v: &Value) -> Result<u32, InvalidSetting> {
    parse_count("offloadBatch", v, MAX_OFFLOAD_BATCH)
}

/// Checks an http(s) URL for setting `name`: a host, an optional path (and query, if
/// `allow_query`); no fragment, credentials or spaces. Returns it trimmed.
fn check_http_url(name: &str, url: &str, allow_query: bool) -> Result<String, InvalidSetting> {
    let u = url.trim();
    let bad = |why: &str| InvalidSetting(format!("{name} {u:?} {why}"));
    let lower = u.to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &u[8..]
    } else if lower.starts_with("http://") {
        &u[7..]
    } else {
        return Err(bad("must start with http:// or https://"));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err(bad("has no host"));
    }
    if u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("must not contain spaces"));
    }
    if u.contains('#') || (!allow_query && u.contains('?')) {
        return Err(bad(if allow_query {
            "must not have a fragment"
        } else {
            "must not have a query or fragment"
        }));
    }
    if host.contains('@') {
        return Err(bad("must not hold credentials"));
    }
    Ok(u.to_string())
}

/// An API base URL: `http://` or `https://`, a host, an optional path; no query, fragment,
/// credentials or spaces. One normal form is stored: trailing slashes are trimmed, and so is a
/// final `/v1` segment (ASA's docs and Postman collection give the base as
/// `https://app.scaleft.com/v1/`; the flows add `/v1/teams/...` themselves).
pub fn normalize_base_url(url: &str) -> Result<String, InvalidSetting> {
    let url = check_http_url("asaBaseUrl", url, false)?;
    let url = url.trim_end_matches('/');
    let cut = url.len().saturating_sub(3);
    let url = match (url.get(..cut), url.get(cut..)) {
        (Some(base), Some(v1)) if v1.eq_ignore_ascii_case("/v1") && base.contains("://") => {
            base.trim_end_matches('/')
        }
        _ => url,
    };
    // What is left must still name a host (`https:///v1` does not).
    check_http_url("asaBaseUrl", url, false)?;
    Ok(url.to_string())
}

/// A Splunk HEC endpoint (`https://splunk.example.com:8088/services/collector/event`):
/// `http://` or `https://`, a host, a path and optionally a query (`?channel=…`); no fragment,
/// credentials or spaces.
pub fn normalize_hec_url(url: &str) -> Result<String, InvalidSetting> {
    check_http_url("hecUrl", url, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(team: &str, count: &str, base: &str) -> Env {
        Env {
            asa_team: team.into(),
            search_count: count.into(),
            asa_base_url: base.into(),
            ..Env::default()
        }
    }

    #[test]
    fn defaults_apply() {
        let e = env("william-faulkner", "", "").checked().unwrap();
        assert_eq!(
            e,
            Env {
                offload_store: "archive".into(),
                offload_prefix: "asa/audit-events/".into(),
                offload_batch: "5000".into(),
                key_id_secret: "ASA_KEY_ID".into(),
                key_secret_secret: "ASA_KEY_SECRET".into(),
                on_lost_offset: "fail".into(),
                ..env("william-faulkner", "100", "https://app.scaleft.com")
            }
        );
        assert_eq!((e.count().unwrap(), e.batch().unwrap()), (100, 5000));
        assert_eq!(e.hec_url, "");
        let e = env("william-faulkner", "6", "http://127.0.0.1:8080/").checked().unwrap();
        assert_eq!(e.asa_base_url, "http://127.0.0.1:8080");
    }

    #[test]
    fn missing_team_says_how_to_fix_it() {
        assert_eq!(
            Env::default().checked().unwrap_err().to_string(),
            "Environment Variables: asaTeam is not set; run U02 with {\"asaTeam\": \"your-team\"}"
        );
        assert!(env("william-faulkner", "0", "").checked().unwrap_err().0.contains("searchCount"));
        assert!(env("william-faulkner", "", "ftp://x")
            .checked()
            .unwrap_err()
            .0
            .contains("asaBaseUrl"));
    }

    #[test]
    fn set_env_validates_each_field() {
        let set: SetEnv =
            serde_json::from_value(json!({"asaTeam": " william-faulkner ", "searchCount": 1000}))
                .unwrap();
        let changes = set.validate().unwrap();
        assert_eq!(
            serde_json::to_value(&changes).unwrap(),
            json!({"asaTeam": "william-faulkner", "searchCount": "1000"})
        );
        let set: SetEnv = serde_json::from_value(
            json!({"searchCount": "6", "asaBaseUrl": "https://app.scaleft.com/"}),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(set.validate().unwrap()).unwrap(),
            json!({"searchCount": "6", "asaBaseUrl": "https://app.scaleft.com"})
        );
        for bad in [
            json!({"searchCount": 0}),
            json!({"searchCount": 1001}),
            json!({"searchCount": "ten"}),
            json!({"searchCount": 1.5}),
            json!({"asaTeam": ""}),
            json!({"asaTeam": "a b"}),
            json!({"asaBaseUrl": "app.scaleft.com"}),
            json!({"asaBaseUrl": "https://"}),
            json!({"asaBaseUrl": "https://u:p@h"}),
            json!({"asaBaseUrl": "https://h/?x=1"}),
        ] {
            let set: SetEnv = serde_json::from_value(bad.clone()).unwrap();
            assert!(set.validate().is_err(), "{bad}");
        }
        assert!(serde_json::from_value::<SetEnv>(json!({"asaTeem": "x"})).is_err());
    }

    #[test]
    fn base_urls_with_or_without_v1_and_slashes_store_one_form() {
        for given in [
            "https://app.scaleft.com",
            "https://app.scaleft.com/",
            "https://app.scaleft.com/v1",
            "https://app.scaleft.com/v1/",
            "https://app.scaleft.com/V1//",
        ] {
            assert_eq!(normalize_base_url(given).unwrap(), "https://app.scaleft.com", "{given}");
        }
        // A path before /v1 stays; a segment that merely ends in v1 is not /v1.
        assert_eq!(normalize_base_url("http://h:8080/asa/v1/").unwrap(), "http://h:8080/asa");
        assert_eq!(normalize_base_url("https://h/apiv1").unwrap(), "https://h/apiv1");
        // Nothing but /v1 after the scheme is no host.
        assert!(normalize_base_url("https:///v1").is_err());
        assert!(normalize_base_url("https://v1").is_ok());
    }

    #[test]
    fn team_names_are_stored_and_read_in_lower_case() {
        let set: SetEnv = serde_json::from_value(json!({"asaTeam": " William-Faulkner "})).unwrap();
        assert_eq!(set.validate().unwrap().asa_team.as_deref(), Some("william-faulkner"));
        // A row U02 wrote before, as typed and with the /v1 base, is read in the normal forms.
        let e = env("William-Faulkner", "", "https://app.scaleft.com/v1/").checked().unwrap();
        assert_eq!(
            (e.asa_team.as_str(), e.asa_base_url.as_str()),
            ("william-faulkner", "https://app.scaleft.com")
        );
    }

    #[test]
    fn offload_settings_are_optional_and_checked() {
        let e = Env {
            offload_store: " s3-prod ".into(),
            offload_prefix: "audit/asa".into(),
            offload_batch: "50000".into(),
            hec_url: " https://splunk.example.com:8088/services/collector/event ".into(),
            ..env("william-faulkner", "", "")
        }
        .checked()
        .unwrap();
        assert_eq!(e.offload_store, "s3-prod");
        assert_eq!(e.offload_prefix, "audit/asa/");
        assert_eq!(e.batch().unwrap(), 50_000);
        assert_eq!(e.hec_url, "https://splunk.example.com:8088/services/collector/event");
        for (bad, field) in [
            (Env { offload_batch: "0".into(), ..env("t", "", "") }, "offloadBatch"),
            (Env { offload_batch: "50001".into(), ..env("t", "", "") }, "offloadBatch"),
            (Env { offload_store: "a/b".into(), ..env("t", "", "") }, "offloadStore"),
            (Env { offload_store: "a.b".into(), ..env("t", "", "") }, "offloadStore"),
            (Env { offload_prefix: "/abs".into(), ..env("t", "", "") }, "offloadPrefix"),
            (Env { offload_prefix: "a/../b".into(), ..env("t", "", "") }, "offloadPrefix"),
            (Env { offload_prefix: "a//b".into(), ..env("t", "", "") }, "offloadPrefix"),
            (Env { hec_url: "splunk:8088".into(), ..env("t", "", "") }, "hecUrl"),
            (Env { hec_url: "https://x:y@splunk".into(), ..env("t", "", "") }, "hecUrl"),
        ] {
            let err = bad.clone().checked().unwrap_err().0;
            assert!(err.contains(field) && err.ends_with("fix it with U02"), "{bad:?}: {err}");
        }
        // The team is still the only required setting, also with offload settings present.
        assert_eq!(
            Env { offload_store: "archive".into(), ..Env::default() }.checked().unwrap_err().0,
            TEAM_NOT_SET
        );
    }

    #[test]
    fn set_env_takes_the_offload_settings() {
        let set: SetEnv = serde_json::from_value(json!({
            "offloadStore": "archive", "offloadPrefix": "asa/events", "offloadBatch": 100,
            "hecUrl": "http://127.0.0.1:8088/services/collector/event?channel=abc"
        }))
        .unwrap();
        assert_eq!(
            serde_json::to_value(set.validate().unwrap()).unwrap(),
            json!({"offloadStore": "archive", "offloadPrefix": "asa/events/", "offloadBatch": "100",
                   "hecUrl": "http://127.0.0.1:8088/services/collector/event?channel=abc"})
        );
        // "" goes back to the default (hecUrl: unset).
        let set: SetEnv = serde_json::from_value(
            json!({"offloadStore": "", "offloadPrefix": " ", "offloadBatch": "", "hecUrl": ""}),
        )
        .unwrap();
        let changes = set.validate().unwrap();
        assert_eq!(
            serde_json::to_value(&changes).unwrap(),
            json!({"offloadStore": "", "offloadPrefix": "", "offloadBatch": "", "hecUrl": ""})
        );
        for bad in [
            json!({"offloadBatch": 0}),
            json!({"offloadBatch": "many"}),
            json!({"offloadBatch": 50001}),
            json!({"offloadStore": "my store"}),
            json!({"offloadPrefix": "../x"}),
            json!({"hecUrl": "ftp://splunk"}),
            json!({"hecUrl": "https://splunk/#x"}),
        ] {
            let set: SetEnv = serde_json::from_value(bad.clone()).unwrap();
            assert!(set.validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn prefixes_are_relative_paths() {
        assert_eq!(normalize_prefix("p", "").unwrap(), "");
        assert_eq!(normalize_prefix("p", "a").unwrap(), "a/");
        assert_eq!(normalize_prefix("p", " a/b/ ").unwrap(), "a/b/");
        for bad in ["/", "a//", "./a", "a/./b", "a\\b", "a\tb", "a/.."] {
            assert!(normalize_prefix("p", bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod on_lost_offset_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn on_lost_offset_is_fail_by_default_and_validated() {
        let e = Env { asa_team: "t".into(), ..Env::default() }.checked().unwrap();
        assert_eq!(e.lost_offset_policy().unwrap(), OnLostOffset::Fail);
        let e = Env { asa_team: "t".into(), on_lost_offset: " Restart ".into(), ..Env::default() }
            .checked()
            .unwrap();
        assert_eq!(e.on_lost_offset, "restart");
        let err = Env { asa_team: "t".into(), on_lost_offset: "skip".into(), ..Env::default() }
            .checked()
            .unwrap_err()
            .0;
        assert!(err.contains("onLostOffset") && err.ends_with("fix it with U02"), "{err}");

        let set: SetEnv = serde_json::from_value(json!({"onLostOffset": "RESTART"})).unwrap();
        assert_eq!(
            serde_json::to_value(set.validate().unwrap()).unwrap(),
            json!({"onLostOffset": "restart"})
        );
        let set: SetEnv = serde_json::from_value(json!({"onLostOffset": ""})).unwrap();
        assert_eq!(set.validate().unwrap().on_lost_offset.as_deref(), Some(""));
        let set: SetEnv = serde_json::from_value(json!({"onLostOffset": "retry"})).unwrap();
        assert!(set.validate().unwrap_err().0.contains("onLostOffset"));
    }
}
