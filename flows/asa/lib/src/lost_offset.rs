//! A checkpoint offset that `auditsV2` no longer knows (its event aged out of ASA's
//! retention), and what M10 does about it (`onLostOffset`).
//!
//! The real API's answer is undocumented (asa-api.md); the simulator, and this rule, take it
//! to be `400` (type `invalid_request`, or a body without a type) to a request that had an
//! `offset`. A 400 to a request without one is some other mistake and fails as before.

use serde_json::Value;

use crate::env::InvalidSetting;

/// What M10 does when the checkpoint offset is lost (the `onLostOffset` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnLostOffset {
    /// The run fails, saying to run U03 or set `restart` (the default).
    Fail,
    /// Collection starts again from the oldest retained event, in the same run.
    Restart,
}

/// The default setting.
pub const DEFAULT_ON_LOST_OFFSET: &str = "fail";

impl OnLostOffset {
    /// `fail` or `restart` (trimmed, any case); `""` is the default, `fail`.
    pub fn parse(v: &str) -> Result<OnLostOffset, InvalidSetting> {
        match v.trim().to_ascii_lowercase().as_str() {
            "" | "fail" => Ok(OnLostOffset::Fail),
            "restart" => Ok(OnLostOffset::Restart),
            _ => Err(InvalidSetting(format!(
                "onLostOffset {:?} must be \"fail\" or \"restart\"",
                v.trim()
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OnLostOffset::Fail => "fail",
            OnLostOffset::Restart => "restart",
        }
    }
}

/// Whether the answer `status`/`body` to a page request sent with checkpoint offset `offset`
/// says the offset is unknown: a 400 to a request that had an offset, whose ASA error type
/// (if the body has one) is `invalid_request`.
pub fn is_lost_offset(status: u16, body: &[u8], offset: &str) -> bool {
    if status != 400 || offset.is_empty() {
        return false;
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(obj)) => match obj.get("type") {
            Some(Value::String(t)) => t == "invalid_request",
            _ => true,
        },
        _ => true,
    }
}

/// The one line a run fails with (and the Execution Log says) under `fail`; `answer` is the
/// server's (`HTTP 400 (invalid_request): ...`).
pub fn fail_message(offset: &str, answer: &str) -> String {
    format!(
        "auditsV2 no longer knows the checkpoint offset {offset:?} ({answer}; its event has probably aged out of ASA's retention): run U03 to start again from the oldest event, or set onLostOffset to restart with U02"
    )
}

/// The Execution Log note under `restart`.
pub fn restart_note(offset: &str) -> String {
    format!(
        "Lost offset {offset:?} (auditsV2 no longer knows it): onLostOffset is restart, collecting again from the oldest event"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_400_to_a_request_with_an_offset_is_a_lost_offset() {
        let invalid = br#"{"type":"invalid_request","code":400,"message":"invalid offset \"x\""}"#;
        assert!(is_lost_offset(400, invalid, "x"));
        assert!(is_lost_offset(400, b"not json", "x"));
        assert!(is_lost_offset(400, br#"{"message":"bad offset"}"#, "x"));
        // Without an offset, another status or another error type: not this.
        assert!(!is_lost_offset(400, invalid, ""));
        assert!(!is_lost_offset(404, invalid, "x"));
        assert!(!is_lost_offset(500, b"", "x"));
        assert!(!is_lost_offset(400, br#"{"type":"authentication_error"}"#, "x"));
    }

    #[test]
    fn the_setting_is_fail_or_restart() {
        assert_eq!(OnLostOffset::parse("").unwrap(), OnLostOffset::Fail);
        assert_eq!(OnLostOffset::parse(" Fail ").unwrap(), OnLostOffset::Fail);
        assert_eq!(OnLostOffset::parse("RESTART").unwrap(), OnLostOffset::Restart);
        let e = OnLostOffset::parse("retry").unwrap_err().0;
        assert!(e.contains("onLostOffset") && e.contains("\"fail\" or \"restart\""), "{e}");
    }

    #[test]
    fn the_failure_names_the_offset_u03_and_the_setting() {
        let m = fail_message("abc==", "HTTP 400 (invalid_request): invalid offset");
        assert!(m.contains("\"abc==\"") && m.contains("HTTP 400"), "{m}");
        assert!(
            m.ends_with(
                "run U03 to start again from the oldest event, or set onLostOffset to restart with U02"
            ),
            "{m}"
        );
        assert!(!m.contains('\n'));
        assert!(restart_note("abc==").contains("\"abc==\""));
    }
}
