//! Redaction: the one place that knows every form a secret value can take on its way out.
//!
//! A [`Redactor`] is built once from the secret values (by [`crate::secrets::Secrets`] at
//! start) and replaces every form of every secret with [`MARK`]. What leaves the process
//! passes through it: history records (input, output, error and log lines, in
//! [`crate::runtime`]), flow log lines ([`crate::caps::log`]), blob store errors, and at the
//! binary's edge every formatted tracing line and every printed error
//! ([`crate::terminal`]), at every log level.
//!
//! What was decided:
//! - **Forms.** Raw; JSON-escaped (`\"`, `\\`, `\/`, `\n`…, and `\u00XX` for any character
//!   that is not a letter or a digit, as some encoders write `<` or `&`), at any depth (JSON
//!   text inside a JSON string, as a flow's input holds it, doubles the backslashes: any run
//!   of backslashes is taken as an escape); percent-encoded
//!   character by character in any mix (the `url` crate encodes only a few characters of a
//!   query, form encoding nearly all), with hex digits in either case and a space also as
//!   `+`; base64, standard and URL-safe, padded or not, at each of the three offsets a secret
//!   can start at inside a longer encoded text (`Basic base64(user:secret)`): the characters
//!   that depend on the secret's bytes alone are matched, so at most two characters at each
//!   edge (which carry a few bits of it) remain.
//! - **Length.** Secrets shorter than [`MIN_LEN`] bytes are not redacted: they would match
//!   everywhere and carry too little to protect.
//! - **One automaton.** Every form of every secret is one alternation compiled once with
//!   regex-automata's meta regex (the engine behind `regex`), longest secret first, so a
//!   secret containing another is redacted whole and a text is scanned once whatever the
//!   number of secrets. A text with no match is returned as is, without a copy.

use std::borrow::Cow;

use base64::Engine;
use regex_automata::meta::Regex;

/// What a secret is replaced with.
pub const MARK: &str = "[REDACTED]";
/// Shorter secrets (in bytes) are left alone.
pub const MIN_LEN: usize = 4;
/// Bound on the compiled automaton: a few large secrets (PEM keys) fit with room to spare.
const NFA_SIZE_LIMIT: usize = 256 << 20;

/// Why the patterns could not be built (a secret too large for the automaton's limit).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the redaction patterns for {count} secret values: {message}")]
pub struct RedactError {
    count: usize,
    message: String,
}

/// Replaces every form of a fixed set of secret values with [`MARK`].
#[derive(Debug, Default)]
pub struct Redactor {
    /// `None` when there is nothing to redact.
    re: Option<Regex>,
}

impl Redactor {
    /// Compiles the forms of `values` (empty and short values are ignored).
    pub fn new<S: AsRef<str>>(values: &[S]) -> Result<Redactor, RedactError> {
        let mut values: Vec<&str> = values
            .iter()
            .map(AsRef::as_ref)
            .filter(|v| v.len() >= MIN_LEN)
            .collect();
        if values.is_empty() {
            return Ok(Redactor { re: None });
        }
        // Longest first: at one position the first alternative that matches wins.
        values.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        values.dedup();
        let alternatives: Vec<String> = values.iter().map(|v| secret_pattern(v)).collect();
        let pattern = alternatives.join("|");
        let re = Regex::builder()
            .configure(Regex::config().nfa_size_limit(Some(NFA_SIZE_LIMIT)))
            .build(&pattern)
            .map_err(|e| RedactError {
                count: values.len(),
                message: e.to_string(),
            })?;
        Ok(Redactor { re: Some(re) })
    }

    /// `text` with every form of every secret replaced by [`MARK`].
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let Some(re) = &self.re else {
            return Cow::Borrowed(text);
        };
        let mut out: Option<String> = None;
        let mut last = 0;
        for m in re.find_iter(text) {
            let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
            o.push_str(&text[last..m.start()]);
            o.push_str(MARK);
            last = m.end();
        }
        match out {
            None => Cow::Borrowed(text),
            Some(mut o) => {
                o.push_str(&text[last..]);
                Cow::Owned(o)
            }
        }
    }

    /// Whether there is anything to redact.
    pub fn is_empty(&self) -> bool {
        self.re.is_none()
    }
}

/// Every form of `secret` as one regex alternation.
fn secret_pattern(secret: &str) -> String {
    let mut alts = vec![secret.chars().map(char_pattern).collect::<String>()];
    for form in base64_forms(secret.as_bytes()) {
        alts.push(form.chars().map(literal).collect());
    }
    alts.join("|")
}

/// One character of a secret in any of its escaped forms.
fn char_pattern(c: char) -> String {
    if c.is_ascii_alphanumeric() {
        return c.to_string();
    }
    // JSON escapes at any depth (JSON text inside a JSON string doubles the backslashes):
    // one or more backslashes, then the escape's letter (or `"`, or nothing for a `\`).
    let backslashes = format!("{}+", literal('\\'));
    let mut alts = vec![literal(c)];
    let short = match c {
        '"' => Some('"'),
        '/' => Some('/'),
        '\n' => Some('n'),
        '\r' => Some('r'),
        '\t' => Some('t'),
        '\u{8}' => Some('b'),
        '\u{c}' => Some('f'),
        _ => None,
    };
    if c == '\\' {
        alts = vec![backslashes.clone()];
    } else if let Some(letter) = short {
        alts.push(format!("{backslashes}{}", literal(letter)));
    }
    let code = u32::from(c);
    if code <= 0xFFFF {
        let mut u = format!("{backslashes}u");
        for shift in [12, 8, 4, 0] {
            u.push_str(&hex_digit((code >> shift) & 0xF));
        }
        alts.push(u);
    }
    // Unreserved characters (RFC 3986) are never percent-encoded in practice.
    if !"-._~".contains(c) {
        let mut utf8 = [0u8; 4];
        let mut pct = String::new();
        for b in c.encode_utf8(&mut utf8).bytes() {
            pct.push('%');
            pct.push_str(&hex_digit(u32::from(b >> 4)));
            pct.push_str(&hex_digit(u32::from(b & 0xF)));
        }
        alts.push(pct);
    }
    if c == ' ' {
        alts.push(literal('+'));
    }
    format!("(?:{})", alts.join("|"))
}

/// A hex digit matching either case.
fn hex_digit(n: u32) -> String {
    match char::from_digit(n, 16) {
        Some(d) if d.is_ascii_digit() => d.to_string(),
        Some(d) => format!("[{}{}]", d, d.to_ascii_uppercase()),
        None => String::new(),
    }
}

/// `c` as a regex matching exactly it (every non-alphanumeric character as `\x{…}`: no
/// escape that could mean something else, like `\<`).
fn literal(c: char) -> String {
    if c.is_ascii_alphanumeric() {
        c.to_string()
    } else {
        format!("\\x{{{:X}}}", u32::from(c))
    }
}

/// The base64 text that depends on `secret`'s bytes alone, for each offset (0, 1, 2 bytes
/// into a 3-byte group) it may start at, in the standard and the URL-safe alphabet.
fn base64_forms(secret: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for offset in 0..3usize {
        let mut buf = vec![0u8; offset];
        buf.extend_from_slice(secret);
        let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&buf);
        // Character i covers bits [6i, 6i + 6); the secret covers [8 * offset, 8 * len).
        let start = (8 * offset).div_ceil(6);
        let end = 8 * buf.len() / 6;
        let Some(core) = encoded.get(start..end) else {
            continue;
        };
        if core.len() < MIN_LEN {
            continue;
        }
        let url_safe = core.replace('+', "-").replace('/', "_");
        out.push(core.to_string());
        if url_safe != core {
            out.push(url_safe);
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    fn r(values: &[&str]) -> Redactor {
        Redactor::new(values).unwrap()
    }

    #[test]
    fn raw_and_json_escaped() {
        let red = r(&["s3cr3t-value", "abc", "s3cr3t", "quo\"te"]);
        assert_eq!(
            red.redact("token s3cr3t-value and s3cr3t, abc"),
            "token [REDACTED] and [REDACTED], abc"
        );
        assert_eq!(red.redact(r#"{"k":"quo\"te"}"#), r#"{"k":"[REDACTED]"}"#);
        assert!(matches!(red.redact("nothing here"), Cow::Borrowed(_)));
        assert_eq!(red.redact("ünïcødé s3cr3t ✓"), "ünïcødé [REDACTED] ✓");
        // A secret that is part of the replacement text does not mangle it.
        assert_eq!(r(&["REDA"]).redact("REDA x"), "[REDACTED] x");
        assert!(r(&["abc", ""]).is_empty());
        let red = r(&["a<b>&c\\d/e\nf"]);
        for form in [
            r"a\\\u003cb>&c\\\\d\\/e\\nf",
            r"a\u003cb\u003e\u0026c\\d\/e\nf",
            r"a\u003Cb>&c\\d/e\u000af",
            "a<b>&c\\d/e\nf",
        ] {
            assert_eq!(
                red.redact(&format!("x {form} y")),
                "x [REDACTED] y",
                "{form}"
            );
        }
    }

    #[test]
    fn percent_encoded_in_any_mix_and_case() {
        let red = r(&["p a<ss+wörd"]);
        for form in [
            "p%20a%3Css%2Bw%C3%B6rd",
            "p+a%3css%2bw%c3%b6rd",
            "p%20a%3Css+w%C3%B6rd",
            "p a%3Css%2Bwörd",
        ] {
            assert_eq!(
                red.redact(&format!("?k={form}&x=1")),
                "?k=[REDACTED]&x=1",
                "{form}"
            );
        }
        // What the url crate and form encoding make of it.
        let url = reqwest::Url::parse_with_params("http://h/p", &[("k", "p a<ss+wörd")]).unwrap();
        assert_eq!(red.redact(url.as_str()), "http://h/p?k=[REDACTED]");
        let url = reqwest::Url::parse("http://h/p?k=p a<ss+wörd").unwrap();
        assert_eq!(red.redact(url.as_str()), "http://h/p?k=[REDACTED]");
        // The plus of the secret stays a plus or %2B, not a space.
        assert_eq!(red.redact("p a<ss wörd"), "p a<ss wörd");
    }

    #[test]
    fn base64_at_every_offset_and_alphabet() {
        let secret = "s3cr3t?>~value";
        let red = r(&[secret]);
        for user in ["", "u", "us", "use", "user"] {
            let plain = format!("{user}:{secret}");
            for encoded in [STANDARD.encode(&plain), URL_SAFE_NO_PAD.encode(&plain)] {
                let out = red.redact(&encoded);
                assert!(out.contains(MARK), "{user}: {encoded} → {out}");
                // At most two characters either side of the mark remain of the encoding.
                let left = out.find(MARK).unwrap();
                let right = out.len() - left - MARK.len();
                let prefix = (user.len() + 1) * 4 / 3;
                assert!(left <= prefix + 2, "{encoded} → {out}");
                assert!(right <= 4, "{encoded} → {out}");
            }
        }
        assert!(base64_forms(b"abc").iter().all(|f| f.len() >= MIN_LEN));
    }

    #[test]
    fn longest_secret_first_and_many_secrets() {
        let red = r(&["abcd", "abcdefgh"]);
        assert_eq!(red.redact("abcdefghij abcdx"), "[REDACTED]ij [REDACTED]x");
        let many: Vec<String> = (0..200).map(|i| format!("secret-{i:04}-Zq")).collect();
        let red = Redactor::new(&many).unwrap();
        assert_eq!(red.redact("a secret-0199-Zq b"), "a [REDACTED] b");
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----",
            "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC".repeat(100)
        );
        let red = Redactor::new(std::slice::from_ref(&pem)).unwrap();
        let json = serde_json::to_string(&pem).unwrap();
        assert_eq!(red.redact(&json), format!("\"{MARK}\""));
    }
}
