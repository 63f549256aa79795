//! RFC 8288 `Link` headers and the offset of the next `auditsV2` page (U11, U11a).
//!
//! The template's U11 cut the text between `offset=` and `rel=` and only worked for one exact
//! layout. This parser follows RFC 8288 instead:
//! - entries are split on commas outside `<…>` and outside quoted strings;
//! - the next page is the first entry whose `rel` list (`rel="prev next"`, `rel=next`, any
//!   case) contains `next`, wherever the entry is in the header;
//! - its URL may be absolute or relative; the `offset` query parameter may be anywhere in the
//!   query and is percent-decoded (`%3D%3D` → `==`; a `+` stays a `+`, since ASA ids are
//!   base64 and never contain spaces);
//! - no next entry → `Ok(None)`; a next entry without a usable `offset` → an error. Nothing
//!   here panics on any input.

use std::fmt;

use crate::url::percent_decode;

/// One entry of a `Link` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The URL between `<` and `>`, as written.
    pub target: String,
    /// Parameters in order: lower-cased names, unquoted values (`""` for a bare name).
    pub params: Vec<(String, String)>,
}

impl Link {
    /// The value of the first parameter `name` (RFC 8288 ignores later ones).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Whether the `rel` list contains `rel` (case-insensitive).
    pub fn has_rel(&self, rel: &str) -> bool {
        self.param("rel")
            .map(|list| list.split_ascii_whitespace().any(|r| r.eq_ignore_ascii_case(rel)))
            .unwrap_or(false)
    }

    /// The value of query parameter `name` of the target, percent-decoded.
    pub fn query_param(&self, name: &str) -> Result<Option<String>, LinkError> {
        let query = match self.target.split_once('?') {
            Some((_, q)) => q.split('#').next().unwrap_or(""),
            None => return Ok(None),
        };
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key =
                percent_decode(key).map_err(|_| LinkError::BadEncoding(self.target.clone()))?;
            if key == name {
                return percent_decode(value)
                    .map(Some)
                    .map_err(|_| LinkError::BadEncoding(self.target.clone()));
            }
        }
        Ok(None)
    }
}

/// Why the next page's offset could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// The `rel="next"` URL has no (or an empty) `offset` parameter.
    NoOffset(String),
    /// The `rel="next"` URL has a malformed percent-encoding (or is not UTF-8 once decoded).
    BadEncoding(String),
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::NoOffset(url) => {
                write!(f, "Link header: the rel=\"next\" URL has no offset parameter: {url}")
            }
            LinkError::BadEncoding(url) => {
                write!(f, "Link header: the rel=\"next\" URL is not validly percent-encoded: {url}")
            }
        }
    }
}

impl std::error::Error for LinkError {}

/// Splits `s` on `sep` where it is outside `<…>` and outside double quotes.
fn split_outside(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut in_angle, mut in_quote, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if in_quote {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_quote = false,
                _ => {}
            }
            continue;
        }
        match c {
            '<' if !in_angle => in_angle = true,
            '>' if in_angle => in_angle = false,
            '"' if !in_angle => in_quote = true,
            c if c == sep && !in_angle => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Removes the quotes (and backslash escapes) of a quoted-string; other values are trimmed.
fn unquote(value: &str) -> String {
    let v = value.trim();
    match v.strip_prefix('"') {
        Some(inner) => {
            let inner = inner.strip_suffix('"').unwrap_or(inner);
            let mut out = String::with_capacity(inner.len());
            let mut escaped = false;
            for c in inner.chars() {
                if escaped || c != '\\' {
                    out.push(c);
                    escaped = false;
                } else {
                    escaped = true;
                }
            }
            out
        }
        None => v.to_string(),
    }
}

/// Parses one entry (`<url>; name=value; …`); `None` when it is malformed.
fn parse_entry(entry: &str) -> Option<Link> {
    let entry = entry.trim();
    let rest = entry.strip_prefix('<')?;
    let end = rest.find('>')?;
    let target = rest[..end].trim().to_string();
    let mut params = Vec::new();
    let tail = rest[end + 1..].trim();
    if !tail.is_empty() {
        // Everything after the target must be `; param` pieces.
        let tail = tail.strip_prefix(';')?;
        for piece in split_outside(tail, ';') {
            let piece = piece.trim();
            if piece.is_empty() {
                continue;
            }
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            let name = name.trim().to_ascii_lowercase();
            if name.is_empty() {
                return None;
            }
            params.push((name, unquote(value)));
        }
    }
    Some(Link { target, params })
}

/// Every well-formed entry of a `Link` header, in order (malformed entries are skipped).
pub fn parse(header: &str) -> Vec<Link> {
    split_outside(header, ',').into_iter().filter_map(parse_entry).collect()
}

/// The first entry whose `rel` contains `next`.
pub fn next_link(header: &str) -> Option<Link> {
    parse(header).into_iter().find(|l| l.has_rel("next"))
}

/// Whether the header announces a next page (U11a).
pub fn has_next(header: &str) -> bool {
    next_link(header).is_some()
}

/// The decoded `offset` of the next page (U11): `Ok(None)` on the last page.
pub fn next_offset(header: &str) -> Result<Option<String>, LinkError> {
    let Some(link) = next_link(header) else {
        return Ok(None);
    };
    match link.query_param("offset")? {
        Some(offset) if !offset.is_empty() => Ok(Some(offset)),
        _ => Err(LinkError::NoOffset(link.target)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `Link` header of the asa-api.md §7 example page.
    const DOC_EXAMPLE: &str = "<https://app.scaleft.com/v1/teams/william-faulkner/auditsV2?count=6&offset=ag801Wtj58WV8rIF2-HDkw%3D%3D&prev=true>; rel=\"prev\", <https://app.scaleft.com/v1/teams/william-faulkner/auditsV2?count=6&offset=wuFhR8Dz1GtA1RR4BL-KDQ%3D%3D>; rel=\"next\"";

    #[test]
    fn doc_example_next_after_prev() {
        assert_eq!(next_offset(DOC_EXAMPLE).unwrap().as_deref(), Some("wuFhR8Dz1GtA1RR4BL-KDQ=="));
        assert!(has_next(DOC_EXAMPLE));
        let links = parse(DOC_EXAMPLE);
        assert_eq!(links.len(), 2);
        assert!(links[0].has_rel("prev"));
    }

    #[test]
    fn next_only_and_next_first() {
        let h = "<https://app.scaleft.com/v1/teams/william-faulkner/auditsV2?count=100&offset=wuFhR8Dz1GtA1RR4BL-KDQ%3D%3D>; rel=\"next\"";
        assert_eq!(next_offset(h).unwrap().as_deref(), Some("wuFhR8Dz1GtA1RR4BL-KDQ=="));
        let h = "<https://x/a?offset=bmV4dA%3D%3D&count=6>; rel=next, <https://x/a?offset=cHJldg%3D%3D&prev=true>; rel=prev";
        assert_eq!(next_offset(h).unwrap().as_deref(), Some("bmV4dA=="));
    }

    #[test]
    fn offset_anywhere_in_the_query_and_relative_urls() {
        let h = "</v1/teams/william-faulkner/auditsV2?offset=i8ya5Th8OEVvfAdjVqutzA%3D%3D&count=6&descending=false>;rel=\"next\"";
        assert_eq!(next_offset(h).unwrap().as_deref(), Some("i8ya5Th8OEVvfAdjVqutzA=="));
        let h = "<auditsV2?count=6&offset=YXoB8VpMwGPa5PTVa4m_vA==>; rel=\"next\"";
        assert_eq!(next_offset(h).unwrap().as_deref(), Some("YXoB8VpMwGPa5PTVa4m_vA=="));
    }

    #[test]
    fn rel_lists_case_and_spacing() {
        let h = "<https://x/a?count=6&offset=Z7kq13frIPufiAboZJeQqQ%3d%3d>;REL=\"last NEXT\" ; title=\"a, b; c\"";
        assert_eq!(next_offset(h).unwrap().as_deref(), Some("Z7kq13frIPufiAboZJeQqQ=="));
        // A comma inside a quoted parameter or inside <> does not split entries.
        let h = "<https://x/a?count=6&offset=cHJldg%3D%3D>; rel=\"prev\"; title=\"x, rel=next\", <https://x/a?a=1,2&offset=BhWkbSLddi4MQmFTNnRTVg%3D%3D>; rel=\"next\"";
        assert_eq!(next_offset(h).unwrap().as_deref(), Some("BhWkbSLddi4MQmFTNnRTVg=="));
        // Only the first rel counts (RFC 8288 §3.3).
        let h = "<https://x/a?offset=AA%3D%3D>; rel=\"prev\"; rel=\"next\"";
        assert_eq!(next_offset(h).unwrap(), None);
    }

    #[test]
    fn no_next_is_none() {
        assert_eq!(next_offset("").unwrap(), None);
        assert_eq!(next_offset("   ").unwrap(), None);
        let prev_only = "<https://app.scaleft.com/v1/teams/william-faulkner/auditsV2?count=6&offset=ag801Wtj58WV8rIF2-HDkw%3D%3D&prev=true>; rel=\"prev\"";
        assert_eq!(next_offset(prev_only).unwrap(), None);
        assert!(!has_next(prev_only));
        // "next" only as part of another word is not next.
        assert_eq!(next_offset("<https://x/a?offset=AA>; rel=\"nextpage\"").unwrap(), None);
    }

    #[test]
    fn malformed_never_panics() {
        for h in [
            "<",
            ">",
            "<<>>",
            ",,,",
            ";;;",
            "<https://x/a?offset=%>; rel=next",
            "<https://x/a?offset=%zz>; rel=\"next\"",
            "<https://x/a?offset=%C3%28>; rel=next",
            "rel=\"next\"",
            "https://x/a?offset=AA; rel=next",
            "<https://x/a?offset=AA; rel=next",
            "<https://x/a?offset=AA>; rel=\"next",
            "<https://x/a>; =; rel=next",
            "<ü?offset=é>; rel=next",
            "\"<https://x/a?offset=AA>; rel=next",
            "<https://x/a?offset=AA>junk; rel=next",
        ] {
            let _ = parse(h);
            let _ = has_next(h);
            let _ = next_offset(h);
        }
        assert!(matches!(
            next_offset("<https://x/a?offset=%zz>; rel=\"next\""),
            Err(LinkError::BadEncoding(_))
        ));
        assert!(matches!(
            next_offset("<https://x/a?offset=%C3%28>; rel=next"),
            Err(LinkError::BadEncoding(_))
        ));
        assert_eq!(next_offset("https://x/a?offset=AA; rel=next").unwrap(), None);
        assert_eq!(next_offset("<https://x/a?offset=AA>junk; rel=next").unwrap(), None);
        assert_eq!(next_offset("<ü?offset=é>; rel=next").unwrap().as_deref(), Some("é"));
    }

    #[test]
    fn next_without_offset_is_an_error() {
        assert!(matches!(
            next_offset("<https://x/a?count=6>; rel=\"next\""),
            Err(LinkError::NoOffset(_))
        ));
        assert!(matches!(
            next_offset("<https://x/a?count=6&offset=>; rel=\"next\""),
            Err(LinkError::NoOffset(_))
        ));
        assert!(matches!(next_offset("<https://x/a>; rel=\"next\""), Err(LinkError::NoOffset(_))));
        assert!(next_offset("<https://x/a>; rel=\"next\"")
            .unwrap_err()
            .to_string()
            .contains("no offset"));
    }

    #[test]
    fn plus_stays_plus_and_fragment_is_ignored() {
        let h = "<https://x/a?offset=ab+c%2Fd%3D#frag>; rel=next";
        assert_eq!(next_offset(h).unwrap().as_deref(), Some("ab+c/d="));
    }
}
