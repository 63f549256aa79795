//! JSON text exactly as `serde_json` writes the `Value` it reads from that text: compact,
//! object keys sorted and each once, strings with `serde_json`'s own escapes, numbers in the form
//! it writes them. Such a text can be kept or passed on as it is wherever reading it and writing
//! it again was the point (S21 stores each related object that way, and S20 hands them on): the
//! bytes would come out the same.

use crate::json_skim::{number_end, skip_plain};

/// Nesting deeper than this is not checked (`serde_json` reads at most 128 levels).
const MAX_DEPTH: usize = 100;

/// Whether `text` is one JSON value written exactly as `serde_json::to_string` writes the
/// `Value` that `serde_json::from_str` reads from it. Cautious: `false` for anything it does not
/// know to be so (a key with an escape, nesting deeper than 100 levels, …), and the text is
/// then read and written again.
pub fn is_canonical(text: &str) -> bool {
    let mut at = Cursor { bytes: text.as_bytes(), i: 0, depth: 0, found: Vec::new() };
    at.value(0) && at.i == at.bytes.len()
}

/// A member of an object in a canonical text: its key (never escaped in such a text, so its
/// text is the key) and its value's text, `depth` objects deep (1: the outermost object's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member<'a> {
    pub depth: usize,
    pub key: &'a str,
    pub value: &'a str,
}

/// If `text` is canonical ([`is_canonical`]), the members of every object in it that is at
/// most `depth` containers deep (an array counts), each after the members of its own value:
/// so the members of an object value come just before the member that holds it. One pass.
pub fn members(text: &str, depth: usize) -> Option<Vec<Member<'_>>> {
    let mut at = Cursor { bytes: text.as_bytes(), i: 0, depth, found: Vec::new() };
    if !(at.value(0) && at.i == at.bytes.len()) {
        return None;
    }
    at.found
        .into_iter()
        .map(|(depth, key, value)| {
            Some(Member { depth, key: text.get(key)?, value: text.get(value)? })
        })
        .collect()
}

/// A position in the text being checked.
struct Cursor<'a> {
    bytes: &'a [u8],
    i: usize,
    /// Members of objects this deep or less are noted in `found` (0: none).
    depth: usize,
    /// Each noted member's depth, key and value, as byte ranges of the text.
    found: Vec<(usize, std::ops::Range<usize>, std::ops::Range<usize>)>,
}

impl<'a> Cursor<'a> {
    /// Moves past `b` if it comes next.
    fn eat(&mut self, b: u8) -> bool {
        let next = self.bytes.get(self.i) == Some(&b);
        self.i += usize::from(next);
        next
    }

    /// Moves past `word` if it comes next.
    fn word(&mut self, word: &[u8]) -> bool {
        let next = self.bytes.get(self.i..).is_some_and(|rest| rest.starts_with(word));
        self.i += if next { word.len() } else { 0 };
        next
    }

    /// A value, `depth` containers deep.
    fn value(&mut self, depth: usize) -> bool {
        match self.bytes.get(self.i) {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().is_some(),
            Some(b'n') => self.word(b"null"),
            Some(b't') => self.word(b"true"),
            Some(b'f') => self.word(b"false"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => false,
        }
    }

    /// An array: values separated by commas, nothing else.
    fn array(&mut self, depth: usize) -> bool {
        if depth > MAX_DEPTH || !self.eat(b'[') {
            return false;
        }
        if self.eat(b']') {
            return true;
        }
        loop {
            if !self.value(depth) {
                return false;
            }
            if !self.eat(b',') {
                return self.eat(b']');
            }
        }
    }

    /// An object: its keys without escapes (so their text is the key) and in strictly
    /// ascending order (a map's order, each key once), none of them the name `serde_json`
    /// reads a `RawValue` by.
    fn object(&mut self, depth: usize) -> bool {
        if depth > MAX_DEPTH || !self.eat(b'{') {
            return false;
        }
        if self.eat(b'}') {
            return true;
        }
        let mut last: Option<&[u8]> = None;
        loop {
            let key_start = self.i + 1;
            let Some((key, false)) = self.string() else {
                return false;
            };
            if last.is_some_and(|last| last >= key) || key == b"$serde_json::private::RawValue" {
                return false;
            }
            last = Some(key);
            let key = key_start..key_start + key.len();
            if !self.eat(b':') {
                return false;
            }
            let value_start = self.i;
            if !self.value(depth) {
                return false;
            }
            if depth <= self.depth {
                self.found.push((depth, key, value_start..self.i));
            }
            if !self.eat(b',') {
                return self.eat(b'}');
            }
        }
    }

    /// A string with only the escapes `serde_json` writes (`\"`, `\\`, the short forms of
    /// control characters, `\u00xx` in lower-case for the others): its text between the
    /// quotes, and whether it has an escape.
    fn string(&mut self) -> Option<(&'a [u8], bool)> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.i;
        let mut escaped = false;
        loop {
            self.i = skip_plain(self.bytes, self.i);
            match *self.bytes.get(self.i)? {
                b'"' => {
                    let text = self.bytes.get(start..self.i)?;
                    self.i += 1;
                    return Some((text, escaped));
                }
                b'\\' => {
                    escaped = true;
                    let len = match *self.bytes.get(self.i + 1)? {
                        b'"' | b'\\' | b'b' | b't' | b'n' | b'f' | b'r' => 2,
                        b'u' => {
                            let hex = self.bytes.get(self.i + 2..self.i + 6)?;
                            let code = hex.iter().try_fold(0u32, |code, d| {
                                let digit = match d {
                                    b'0'..=b'9' => d - b'0',
                                    b'a'..=b'f' => d - b'a' + 10,
                                    _ => return None,
                                };
                                Some(code * 16 + u32::from(digit))
                            })?;
                            if code >= 0x20 || matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                                return None;
                            }
                            6
                        }
                        _ => return None,
                    };
                    self.i += len;
                }
                // A control character (`skip_plain` stops at nothing else).
                _ => return None,
            }
        }
    }

    /// A number in the form `serde_json` writes the number it reads: an integer that fits a
    /// `u64` (or, negative, an `i64`; `-0` reads as a float), or a float as `ryu` writes the
    /// nearest `f64` (which `serde_json` reads, with `float_roundtrip`).
    fn number(&mut self) -> bool {
        let start = self.i;
        let Some(end) = number_end(self.bytes, start) else {
            return false;
        };
        self.i = end;
        let Some(token) = self.bytes.get(start..end).and_then(|t| std::str::from_utf8(t).ok())
        else {
            return false;
        };
        let float = token.contains(['.', 'e', 'E']);
        if !float {
            return match token.strip_prefix('-') {
                Some("0") => false,
                Some(_) => token.parse::<i64>().is_ok(),
                None => token.parse::<u64>().is_ok(),
            };
        }
        let Ok(value) = token.parse::<f64>() else {
            return false;
        };
        let mut written = [0u8; 32];
        let mut rest: &mut [u8] = &mut written;
        if !value.is_finite() || serde_json::to_writer(&mut rest, &value).is_err() {
            return false;
        }
        let unused = rest.len();
        written.get(..written.len() - unused) == Some(token.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// What `serde_json` writes for the `Value` it reads from `text`.
    fn rewritten(text: &str) -> Option<String> {
        serde_json::from_str::<Value>(text).ok().map(|v| v.to_string())
    }

    #[test]
    fn texts_as_serde_json_writes_them() {
        for text in [
            "null",
            "true",
            "0",
            "-1",
            "18446744073709551615",
            "-9223372036854775808",
            "1.0",
            "-0.0",
            "100000.0",
            "100000",
            "1e+20",
            "1e-7",
            "1.7345744393415084e-34",
            r#""""#,
            r#""é 😀 \" \\ \n \t \b \f \r \u0000 \u001f""#,
            "\"\u{7f}\"",
            "[]",
            "{}",
            r#"[1,"a",null,[{}]]"#,
            r#"{"":1,"A":2,"a":{"b":[true,false]},"é":3}"#,
        ] {
            assert!(is_canonical(text), "{text}");
            assert_eq!(rewritten(text).as_deref(), Some(text));
        }
    }

    #[test]
    fn members_come_with_their_depth_after_their_values_members() {
        let text = r#"{"a":{"b":[{"z":1}],"c":"x\n"},"d":2}"#;
        let got: Vec<(usize, &str, &str)> =
            members(text, 2).unwrap().into_iter().map(|m| (m.depth, m.key, m.value)).collect();
        assert_eq!(
            got,
            [
                (2, "b", r#"[{"z":1}]"#),
                (2, "c", r#""x\n""#),
                (1, "a", r#"{"b":[{"z":1}],"c":"x\n"}"#),
                (1, "d", "2")
            ]
        );
        assert_eq!(members(text, 1).unwrap().len(), 2);
        assert_eq!(members(text, 0).unwrap(), []);
        assert_eq!(members(r#"{"b":1,"a":2}"#, 1), None);
        assert_eq!(members("[1]", 1).unwrap(), []);
    }

    #[test]
    fn anything_else_is_not() {
        for text in [
            "",
            " 1",
            "1 ",
            "nul",
            "01",
            "-0",
            "1.",
            ".5",
            "1e5",
            "1E5",
            "1.00",
            "1e20",
            "0.1e1",
            "18446744073709551616",
            "-9223372036854775809",
            "1e400",
            r#""\/""#,
            r#""\u0041""#,
            r#""\u00E9""#,
            r#""\u000a""#,
            r#""\u001F""#,
            r#""\u007f""#,
            r#""\ud83d\ude00""#,
            "\"\u{1}\"",
            r#"[1, 2]"#,
            r#"[1,]"#,
            r#"{"b":1,"a":2}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"a" :1}"#,
            r#"{"\u0041":1}"#,
            r#"{"$serde_json::private::RawValue":"1"}"#,
            "[1][2]",
        ] {
            assert!(!is_canonical(text), "{text}");
            assert_ne!(rewritten(text).as_deref(), Some(text), "{text}");
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(!is_canonical(&deep));
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(is_canonical(&deep));
    }
}
