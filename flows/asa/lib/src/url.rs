//! Percent-encoding and the ASA API URLs.
//!
//! The checkpoint keeps the offset decoded (an event id like `wuFhR8Dz1GtA1RR4BL-KDQ==`); it is
//! percent-encoded again when the next `auditsV2` URL is built, as Go's `url.Values.Encode()`
//! (and so ASA) writes it: `offset=wuFhR8Dz1GtA1RR4BL-KDQ%3D%3D`.

/// Percent-encodes everything but RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`), so the
/// result is safe as a query value or a path segment.
pub fn percent_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
    out
}

/// Decodes `%XX` escapes (either case); anything else is kept as is (`+` stays `+`).
/// Fails on a truncated or non-hex escape, or when the result is not UTF-8.
pub fn percent_decode(s: &str) -> Result<String, InvalidEncoding> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex).ok_or(InvalidEncoding)?;
            let lo = bytes.get(i + 2).copied().and_then(hex).ok_or(InvalidEncoding)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| InvalidEncoding)
}

/// A malformed percent-encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidEncoding;

impl std::fmt::Display for InvalidEncoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invalid percent-encoding")
    }
}

impl std::error::Error for InvalidEncoding {}

/// `{base}/v1/teams/{team}` with the base's trailing slashes trimmed and the team escaped.
fn team_url(base: &str, team: &str) -> String {
    format!("{}/v1/teams/{}", base.trim_end_matches('/'), percent_encode(team))
}

/// `POST` here for a service token.
pub fn service_token_url(base: &str, team: &str) -> String {
    format!("{}/service_token", team_url(base, team))
}

/// `GET` here for a page of audit events: `…/auditsV2?count=N`, plus
/// `&offset=PERCENT-ENCODED` unless the offset is empty (first run: oldest events first).
pub fn audits_url(base: &str, team: &str, count: u32, offset: &str) -> String {
    let mut url = format!("{}/auditsV2?count={count}", team_url(base, team));
    if !offset.is_empty() {
        url.push_str("&offset=");
        url.push_str(&percent_encode(offset));
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audits_url_as_the_docs_show_it() {
        assert_eq!(
            audits_url("https://app.scaleft.com", "william-faulkner", 6, "ihQjJjtisSe0NhBqaFSKdw=="),
            "https://app.scaleft.com/v1/teams/william-faulkner/auditsV2?count=6&offset=ihQjJjtisSe0NhBqaFSKdw%3D%3D"
        );
        assert_eq!(
            audits_url("https://app.scaleft.com/", "william-faulkner", 100, ""),
            "https://app.scaleft.com/v1/teams/william-faulkner/auditsV2?count=100"
        );
        assert_eq!(
            audits_url("http://127.0.0.1:8080//", "william-faulkner", 1000, "72H8i_PqrupQhBdw8-qu6g=="),
            "http://127.0.0.1:8080/v1/teams/william-faulkner/auditsV2?count=1000&offset=72H8i_PqrupQhBdw8-qu6g%3D%3D"
        );
        // Standard-alphabet base64 (`+`, `/`) is escaped too.
        assert_eq!(
            audits_url("https://h", "t", 1, "a+b/c="),
            "https://h/v1/teams/t/auditsV2?count=1&offset=a%2Bb%2Fc%3D"
        );
    }

    #[test]
    fn service_token_url_escapes_the_team() {
        assert_eq!(
            service_token_url("https://app.scaleft.com", "william-faulkner"),
            "https://app.scaleft.com/v1/teams/william-faulkner/service_token"
        );
        assert_eq!(
            service_token_url("https://h/", "a b/c"),
            "https://h/v1/teams/a%20b%2Fc/service_token"
        );
    }

    #[test]
    fn percent_round_trip() {
        for s in ["wuFhR8Dz1GtA1RR4BL-KDQ==", "a+b/c d%e", "ünï", ""] {
            assert_eq!(percent_decode(&percent_encode(s)).unwrap(), s);
        }
        assert_eq!(percent_decode("%3d%3D").unwrap(), "==");
        assert_eq!(percent_decode("%"), Err(InvalidEncoding));
        assert_eq!(percent_decode("%4"), Err(InvalidEncoding));
        assert_eq!(percent_decode("%g0"), Err(InvalidEncoding));
        assert_eq!(percent_decode("%FF"), Err(InvalidEncoding));
    }
}
