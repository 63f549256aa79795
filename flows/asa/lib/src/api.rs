//! ASA response bodies and error texts.
//!
//! Error bodies are `{"type": "authentication_error", "code": 401, "message": "…"}` (pam-sdk
//! models; other shapes may have `error`), so an error text names the HTTP status first, then
//! the ASA `type` and `message` when there are any. Nothing else of the body is quoted, so a
//! server that echoed a request can never leak a secret into an error.

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::Value;

/// A `null` (or absent, with `#[serde(default)]`) field as its type's default.
pub fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The body of a `200` from `POST …/service_token`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ServiceToken {
    pub bearer_token: String,
    /// RFC 3339; absent on some servers (then the token is not cached).
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// The body of a `200` from `GET …/auditsV2`: a missing or `null` `list` or
/// `related_objects` counts as empty. Both stay the JSON text the server sent: M10 hands each
/// event to S30, and the related objects to S20, as they are, so a page is parsed into values
/// once (in S30 and S20), never re-encoded.
/// Each text is borrowed from the body (M10 holds a page of a thousand events: no copy each).
#[derive(Debug, Default, Deserialize)]
pub struct Page<'a> {
    #[serde(default, borrow, deserialize_with = "null_as_default")]
    pub list: Vec<&'a RawValue>,
    /// A JSON object, or `None` for missing or `null`.
    #[serde(default, borrow, deserialize_with = "raw_object")]
    pub related_objects: Option<&'a RawValue>,
}

/// A JSON object kept as text (`null` is `None`); anything else is refused, as a `Map` would.
fn raw_object<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    let raw = Option::<&'de RawValue>::deserialize(d)?;
    match raw {
        Some(r) if r.get() == "null" => Ok(None),
        Some(r) if !r.get().starts_with('{') => {
            let found = match r.get().as_bytes().first() {
                Some(b'[') => "an array",
                Some(b'"') => "a string",
                Some(b't' | b'f') => "a boolean",
                _ => "a number",
            };
            Err(serde::de::Error::invalid_type(
                serde::de::Unexpected::Other(found),
                &"a JSON object",
            ))
        }
        other => Ok(other),
    }
}

/// `HTTP 401 (authentication_error): token expired` — the status, then what the ASA error body
/// says (its `type` and `message`, or `error`), if it is one.
pub fn error_text(status: u16, body: &[u8]) -> String {
    let mut text = format!("HTTP {status}");
    if let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) {
        let field = |k: &str| obj.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        if let Some(kind) = field("type") {
            text.push_str(&format!(" ({kind})"));
        }
        if let Some(message) = field("message").or_else(|| field("error")) {
            text.push_str(": ");
            text.push_str(message);
        }
    }
    text
}

/// `text` with every occurrence of each non-empty secret replaced by `***`.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    secrets.iter().filter(|s| !s.is_empty()).fold(text.to_string(), |t, s| t.replace(s, "***"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_text_names_status_type_and_message() {
        let body = br#"{"type":"authentication_error","code":401,"message":"token expired"}"#;
        assert_eq!(error_text(401, body), "HTTP 401 (authentication_error): token expired");
        assert_eq!(error_text(500, br#"{"code":500,"error":"boom"}"#), "HTTP 500: boom");
        assert_eq!(error_text(502, b"<html>bad gateway</html>"), "HTTP 502");
        assert_eq!(error_text(503, b""), "HTTP 503");
    }

    #[test]
    fn redact_hides_secrets() {
        assert_eq!(redact("bad key abc and abc", &["abc", ""]), "bad key *** and ***");
    }

    #[test]
    fn page_tolerates_null_and_missing() {
        let empty = |p: &Page| p.list.is_empty() && p.related_objects.is_none();
        let p: Page = serde_json::from_str(r#"{"list": null, "related_objects": null}"#).unwrap();
        assert!(empty(&p));
        let p: Page = serde_json::from_str("{}").unwrap();
        assert!(empty(&p));
        let p: Page = serde_json::from_str(
            r#"{"list": [{"id": "a",  "details": {}}], "related_objects": {"r": {"type": "user"}}}"#,
        )
        .unwrap();
        // Each event is kept as sent, spacing included.
        assert_eq!(
            p.list.iter().map(|e| e.get()).collect::<Vec<_>>(),
            [r#"{"id": "a",  "details": {}}"#]
        );
        assert_eq!(
            p.related_objects.map(|r| r.get().to_string()),
            Some(r#"{"r": {"type": "user"}}"#.into())
        );
        for (bad, found) in
            [("[]", "an array"), ("3", "a number"), ("\"x\"", "a string"), ("true", "a boolean")]
        {
            let err = serde_json::from_str::<Page>(&format!(r#"{{"related_objects": {bad}}}"#))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("invalid type: {found}, expected a JSON object")),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn service_token_from_the_docs() {
        let t: ServiceToken = serde_json::from_value(json!({
            "bearer_token": "eyJhbGciOiJSUzI1NiJ9.e30.sig", "expires_at": "2016-10-18T17:26:30Z", "team_name": "scaleft"
        }))
        .unwrap();
        assert_eq!(t.expires_at.as_deref(), Some("2016-10-18T17:26:30Z"));
    }
}
