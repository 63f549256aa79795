//! A cursor over JSON text that steps over values checking them exactly as far as
//! `serde_json` checks a value it skips, and reads strings that need no decoding as slices of
//! the text: what a one-pass reader of a few members needs, without `serde_json`'s visitor for
//! every member and every name.
//!
//! It plans for the common case only, and gives up (`None`) on anything else: a string with a
//! `\u` escape of a surrogate, nesting deeper than [`MAX_DEPTH`], and every syntax error. A
//! caller that gets `None` reads the text with `serde_json` instead, which either takes it or
//! says what is wrong with it; so a text this takes is one `serde_json` takes too.

/// Nesting past this is left to `serde_json` (whose own limit is 128).
pub(crate) const MAX_DEPTH: usize = 64;

/// A position in a JSON text.
pub(crate) struct Cursor<'a> {
    text: &'a str,
    at: usize,
    depth: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Cursor { text, at: 0, depth: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The next byte that is not whitespace (stepped over the whitespace, not the byte).
    pub(crate) fn peek(&mut self) -> Option<u8> {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes().get(self.at) {
            self.at += 1;
        }
        self.bytes().get(self.at).copied()
    }

    /// Steps over `byte` (after any whitespace), or gives up.
    pub(crate) fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// Whether only whitespace is left.
    pub(crate) fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// An object (after any whitespace), up to and past its `}`: `member(self, name)` for each
    /// member, which must step over the member's value (a name without escapes; anything
    /// else gives up).
    pub(crate) fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, &'a str) -> Option<()>,
    ) -> Option<()> {
        self.expect(b'{')?;
        if self.empty_object()? {
            return Some(());
        }
        loop {
            let name = self.name()?;
            member(self, name)?;
            if self.object_end()? {
                return Some(());
            }
        }
    }

    /// After an object's `{`: `true` if it is empty (its `}` stepped over), `false` if a
    /// member follows.
    fn empty_object(&mut self) -> Option<bool> {
        match self.peek()? {
            b'}' => {
                self.at += 1;
                Some(true)
            }
            b'"' => Some(false),
            _ => None,
        }
    }

    /// A member's name without escapes, and its `:`.
    fn name(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let name = self.plain_rest()?;
        self.expect(b':')?;
        Some(name)
    }

    /// After a member: `true` at the object's end (its `}` stepped over), `false` if another
    /// member follows (its `,` stepped over).
    fn object_end(&mut self) -> Option<bool> {
        match self.peek()? {
            b',' => {
                self.at += 1;
                Some(false)
            }
            b'}' => {
                self.at += 1;
                Some(true)
            }
            _ => None,
        }
    }

    /// A string without escapes (at its opening quote), as a slice of the text.
    pub(crate) fn plain_string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        self.plain_rest()
    }

    /// The rest of a string that has no escapes (after its opening quote), up to and past its
    /// closing quote.
    fn plain_rest(&mut self) -> Option<&'a str> {
        let start = self.at;
        self.at = skip_plain(self.bytes(), self.at);
        if self.bytes().get(self.at) != Some(&b'"') {
            return None;
        }
        self.at += 1;
        self.text.get(start..self.at - 1)
    }

    /// `literal` (after any whitespace), stepped over; `false` (nothing stepped over) if it
    /// is not there.
    pub(crate) fn literal(&mut self, literal: &str) -> bool {
        self.peek();
        let found = self.bytes().get(self.at..self.at + literal.len()) == Some(literal.as_bytes());
        if found {
            self.at += literal.len();
        }
        found
    }

    /// Steps over one value, checking it as `serde_json` checks a value it ignores.
    pub(crate) fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.at += 1;
                self.skip_string_rest()
            }
            b'{' => self.skip_nested(b'}', true),
            b'[' => self.skip_nested(b']', false),
            b't' => self.literal("true").then_some(()),
            b'f' => self.literal("false").then_some(()),
            b'n' => self.literal("null").then_some(()),
            b'-' | b'0'..=b'9' => self.skip_number(),
            _ => None,
        }
    }

    /// An object (`members`) or an array, at its opening bracket, up to `close`.
    fn skip_nested(&mut self, close: u8, members: bool) -> Option<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        self.at += 1;
        if self.peek()? == close {
            self.at += 1;
            self.depth -= 1;
            return Some(());
        }
        loop {
            if members {
                self.expect(b'"')?;
                self.skip_string_rest()?;
                self.expect(b':')?;
            }
            self.skip_value()?;
            match self.peek()? {
                b',' => self.at += 1,
                b if b == close => {
                    self.at += 1;
                    self.depth -= 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A number ([`number_end`]); what follows it is the caller's to check.
    fn skip_number(&mut self) -> Option<()> {
        self.at = number_end(self.bytes(), self.at)?;
        Some(())
    }

    /// The rest of a string (after its opening quote), escapes and all, up to and past its
    /// closing quote. Control characters are refused, as JSON says.
    fn skip_string_rest(&mut self) -> Option<()> {
        loop {
            self.at = skip_plain(self.bytes(), self.at);
            match self.bytes().get(self.at)? {
                b'"' => {
                    self.at += 1;
                    return Some(());
                }
                b'\\' => self.skip_escape()?,
                _ => return None,
            }
        }
    }

    /// An escape (at its backslash); a `\u` of a surrogate is left to `serde_json`.
    fn skip_escape(&mut self) -> Option<()> {
        let bytes = self.bytes();
        match bytes.get(self.at + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 2,
            b'u' => {
                let hex = self.text.get(self.at + 2..self.at + 6)?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                let unit = u16::from_str_radix(hex, 16).ok()?;
                if (0xD800..=0xDFFF).contains(&unit) {
                    return None;
                }
                self.at += 6;
            }
            _ => return None,
        }
        Some(())
    }
}

/// Where the number that starts at `at` of `bytes` ends, if it is one as JSON writes
/// numbers: `-`, an integer part without leading zeros (a `0` ends it), a fraction, an
/// exponent. What follows it is not looked at.
pub(crate) fn number_end(bytes: &[u8], mut at: usize) -> Option<usize> {
    let digits = |mut at: usize| {
        while let Some(b'0'..=b'9') = bytes.get(at) {
            at += 1;
        }
        at
    };
    // At least one digit.
    let some_digits = |at: usize| Some(digits(at)).filter(|&end| end > at);
    if bytes.get(at) == Some(&b'-') {
        at += 1;
    }
    at = match bytes.get(at)? {
        b'0' => at + 1,
        b'1'..=b'9' => digits(at),
        _ => return None,
    };
    if bytes.get(at) == Some(&b'.') {
        at = some_digits(at + 1)?;
    }
    if let Some(b'e' | b'E') = bytes.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = bytes.get(at) {
            at += 1;
        }
        at = some_digits(at)?;
    }
    Some(at)
}

/// The position of the first byte at or after `at` that ends a plain run of a string: a
/// quote, a backslash or a control character (or the end of `bytes`). Eight bytes at a time.
pub(crate) fn skip_plain(bytes: &[u8], mut at: usize) -> usize {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    /// The high bit of each byte of `w` equal to `b` (and maybe of bytes above one that is:
    /// only the lowest flagged byte is sure, and only it is used).
    fn equal(w: u64, b: u8) -> u64 {
        let x = w ^ (ONES * u64::from(b));
        x.wrapping_sub(ONES) & !x
    }
    while let Some(chunk) = bytes.get(at..at + 8) {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let control = w.wrapping_sub(ONES * 0x20) & !w;
        let found = (control | equal(w, b'"') | equal(w, b'\\')) & HIGH;
        if found != 0 {
            return at + found.trailing_zeros() as usize / 8;
        }
        at += 8;
    }
    while let Some(&b) = bytes.get(at) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            break;
        }
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `text` is one value the cursor steps over, with nothing after it.
    fn skims(text: &str) -> bool {
        let mut c = Cursor::new(text);
        c.skip_value().is_some() && c.at_end()
    }

    #[test]
    fn values_serde_json_takes_are_stepped_over() {
        for text in [
            r#" {"a": [1, -0.5e+3, 0, 10E2, true, false, null], "b": {}, "c": [], "d": ""} "#,
            r#""\"\\\/\b\f\n\r\t\u00e9\uFFFF é€😀""#,
            "-0",
            "[[[]]]",
        ] {
            assert!(skims(text), "{text}");
            assert!(serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok(), "{text}");
        }
    }

    #[test]
    fn it_gives_up_on_what_serde_json_refuses_and_on_surrogates() {
        for text in [
            "",
            "01",
            "1.",
            "-",
            "1e",
            "1e+",
            ".5",
            "+1",
            "tru",
            "nul",
            "[1,]",
            "[1 2]",
            "{\"a\"}",
            "{\"a\":1,}",
            "{a:1}",
            "\"a\nb\"",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\u12g4\"",
            "\"abc",
            "\"\\ud83d\\ude00\"",
        ] {
            assert!(!skims(text), "{text}");
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(!skims(&deep));
        let fine = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(skims(&fine));
    }

    #[test]
    fn plain_strings_are_slices_and_escaped_ones_are_not_taken() {
        let mut c = Cursor::new(r#" "abc" "a\"b" "#);
        assert_eq!(c.plain_string(), Some("abc"));
        assert_eq!(c.plain_string(), None);
        let mut c = Cursor::new(r#" {"id": 7, "x": "y"} "#);
        let mut names = Vec::new();
        c.object(|c, name| {
            names.push(name);
            c.skip_value()
        })
        .unwrap();
        assert_eq!(names, ["id", "x"]);
        assert!(c.at_end());
        for text in ["{}", " { } "] {
            assert_eq!(Cursor::new(text).object(|_, _| None), Some(()));
        }
        for text in [r#"{"a\u0041": 1}"#, r#"{"a" 1}"#, r#"{"a": 1,}"#, "[]"] {
            assert_eq!(Cursor::new(text).object(|c, _| c.skip_value()), None, "{text}");
        }
    }

    #[test]
    fn skip_plain_stops_at_the_first_special_byte() {
        let text = b"abcdefghijklmnop\"q";
        for at in 0..text.len() {
            assert_eq!(skip_plain(text, at), if at <= 16 { 16 } else { 18 });
        }
        for special in [b'"', b'\\', 0x1f, 0x00, b'\n'] {
            for at in 0..20 {
                let mut text = vec![b'a'; 20];
                text[at] = special;
                assert_eq!(skip_plain(&text, 0), at);
            }
        }
        assert_eq!(skip_plain("é€😀 ~\u{7f}".as_bytes(), 0), "é€😀 ~\u{7f}".len());
    }
}
