//! The Environment Variables row (the template's "env vars"): defaults and validation.
//!
//! U01 reads it: `searchCount` defaults to `"100"`, `asaBaseUrl` to `https://app.scaleft.com`,
//! and a missing `asaTeam` is an error that says how to set it. U02 validates and writes it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

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

/// The error U01 gives while no team is set.
pub const TEAM_NOT_SET: &str =
    "Environment Variables: asaTeam is not set; run U02 with {\"asaTeam\": \"your-team\"}";

impl Env {
    /// The row with defaults for empty `searchCount`/`asaBaseUrl` (the team may stay empty).
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
        }
    }

    /// The row with defaults, checked: a team is set, the count is 1..=1000, the URL is http(s).
    pub fn checked(self) -> Result<Env, InvalidSetting> {
        let env = self.with_defaults();
        if env.asa_team.is_empty() {
            return Err(InvalidSetting(TEAM_NOT_SET.to_string()));
        }
        let bad = |e: InvalidSetting| {
            InvalidSetting(format!("Environment Variables: {}; fix it with U02", e.0))
        };
        validate_team(&env.asa_team).map_err(bad)?;
        parse_search_count(&Value::String(env.search_count.clone())).map_err(bad)?;
        normalize_base_url(&env.asa_base_url).map_err(bad)?;
        Ok(env)
    }

    /// `searchCount` as a number (call on a [`checked`](Env::checked) env).
    pub fn count(&self) -> Result<u32, InvalidSetting> {
        parse_search_count(&Value::String(self.search_count.clone()))
    }
}

/// U02's input: any of the three settings.
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
}

impl EnvChanges {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self == &EnvChanges::default()
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
        })
    }
}

/// A team name: trimmed, non-empty, letters, digits, `-`, `_` and `.` only.
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
    Ok(t.to_string())
}

/// A page size: a whole number from 1 to 1000, as a number or text.
pub fn parse_search_count(v: &Value) -> Result<u32, InvalidSetting> {
    let n = match v {
        Value::String(s) => s.trim().parse::<u64>().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    };
    match n {
        Some(n @ 1..=1000) => Ok(n as u32),
        _ => Err(InvalidSetting(format!(
            "searchCount must be a whole number from 1 to {MAX_SEARCH_COUNT}, not {v}"
        ))),
    }
}

/// An API base URL: `http://` or `https://`, a host, an optional path; no query, fragment,
/// credentials or spaces. Trailing slashes are trimmed.
pub fn normalize_base_url(url: &str) -> Result<String, InvalidSetting> {
    let u = url.trim();
    let bad = |why: &str| InvalidSetting(format!("asaBaseUrl {u:?} {why}"));
    let lower = u.to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &u[8..]
    } else if lower.starts_with("http://") {
        &u[7..]
    } else {
        return Err(bad("must start with http:// or https://"));
    };
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err(bad("has no host"));
    }
    if u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("must not contain spaces"));
    }
    if u.contains(['?', '#']) {
        return Err(bad("must not have a query or fragment"));
    }
    if host.contains('@') {
        return Err(bad("must not hold credentials"));
    }
    Ok(u.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(team: &str, count: &str, base: &str) -> Env {
        Env { asa_team: team.into(), search_count: count.into(), asa_base_url: base.into() }
    }

    #[test]
    fn defaults_apply() {
        let e = env("william-faulkner", "", "").checked().unwrap();
        assert_eq!(e, env("william-faulkner", "100", "https://app.scaleft.com"));
        assert_eq!(e.count().unwrap(), 100);
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
}
