//! The one place YAML is read (manifests, table schemas, the config file, the secrets file),
//! so that the archived `serde_yaml` can be swapped without touching the loaders.
//!
//! Errors are one line naming the field and the position. [`from_untrusted_str`] is for files
//! that may hold anything: a secrets file, and a manifest (a drop-in folder's `NAME.yaml` may
//! be a symlink to any file, `/etc/passwd` say). Its errors never quote a value from the text
//! (serde's `invalid type: string "…"` becomes `invalid type: a string`); names (keys, the
//! unknown field or variant, for the "did you mean" hint) and numbers stay. The config file
//! and table schemas still quote values: they are the operator's own, named files.

use serde::de::DeserializeOwned;

/// Flow collections (`[`, `{`) nested deeper than this are refused before parsing: the YAML
/// scanner's time grows with the square of the nesting (100,000 levels take minutes), and
/// serde_yaml refuses more than 128 levels anyway, only after scanning all of them.
pub const MAX_FLOW_DEPTH: usize = 128;

/// Parses `text`; the error is one line naming the field and the position.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    check_flow_depth(text)?;
    serde_yaml::from_str(text).map_err(|e| message(&e))
}

/// [`from_str`] whose error quotes no string value from `text` (see the module doc).
pub fn from_untrusted_str<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    from_str(text).map_err(|m| without_values(&m))
}

/// `message` with every serde `string "…"` (a value from the file, Debug-quoted) replaced by
/// `a string`.
pub fn without_values(message: &str) -> String {
    const QUOTED: &str = "string \"";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(QUOTED) {
        out.push_str(&rest[..at]);
        out.push_str("a string");
        let mut chars = rest[at + QUOTED.len()..].char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    end = Some(at + QUOTED.len() + i + 1);
                    break;
                }
                _ => {}
            }
        }
        // An unterminated quote drops the rest: it can only be the value.
        rest = end.map_or("", |e| &rest[e..]);
    }
    out.push_str(rest);
    out
}

/// A `serde_yaml` error as one line, with a "did you mean" hint for an unknown field or
/// variant that is close to one of the expected ones.
pub fn message(e: &serde_yaml::Error) -> String {
    let text = e
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    with_hint(one_line(&text))
}

/// `text` with its control characters escaped (`\n`, `\r`, `\t`, `\u{1b}`): a value from a
/// file (a quoted YAML string may hold a newline) cannot break a message into several lines.
pub fn one_line(text: &str) -> String {
    crate::terminal::escape_controls(text).into_owned()
}

/// Refuses flow collections nested deeper than [`MAX_FLOW_DEPTH`] (outside quoted strings and
/// comments; a bracket inside a plain scalar counts too, which only errs on the safe side).
fn check_flow_depth(text: &str) -> Result<(), String> {
    let (mut depth, mut line, mut column) = (0usize, 1usize, 0usize);
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut prev = '\n';
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        column += 1;
        if c == '\n' {
            (line, column, comment) = (line + 1, 0, false);
            if quote.is_none() {
                prev = c;
                continue;
            }
        }
        match quote {
            Some('"') if c == '\\' => {
                if chars.next() == Some('\n') {
                    (line, column) = (line + 1, 0);
                } else {
                    column += 1;
                }
            }
            Some(q) if c == q => {
                if q == '\'' && chars.peek() == Some(&'\'') {
                    chars.next();
                    column += 1;
                } else {
                    quote = None;
                }
            }
            Some(_) => {}
            None if comment => {}
            None => match c {
                '#' if prev.is_whitespace() => comment = true,
                '"' | '\'' => quote = Some(c),
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_FLOW_DEPTH {
                        return Err(format!(
                            "`[` and `{{` are nested more than {MAX_FLOW_DEPTH} levels deep at line {line} column {column}"
                        ));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        prev = c;
    }
    Ok(())
}

/// `unknown field `tablez`, expected one of `hosts`, `tables` …` gets ` (did you mean
/// `tables`?)` after the unknown name.
fn with_hint(text: String) -> String {
    for what in ["unknown field `", "unknown variant `"] {
        let Some(start) = text.find(what).map(|i| i + what.len()) else {
            continue;
        };
        let Some(len) = text[start..].find("`, expected ") else {
            continue;
        };
        let unknown = &text[start..start + len];
        let expected = &text[start + len + "`, expected ".len()..];
        let expected = expected.split(" at line ").next().unwrap_or(expected);
        // The names are the backquoted parts: `a`, `b` or `c`.
        let names = expected.split('`').skip(1).step_by(2);
        if let Some(hint) = close_name(unknown, names) {
            let at = start + len + 1;
            return format!("{} (did you mean `{hint}`?){}", &text[..at], &text[at..]);
        }
    }
    text
}

/// The candidate a typo of `name` most likely meant: at most one edit (a swap of neighbours
/// counts as one) per three characters, at least one; case is ignored.
fn close_name<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_lowercase();
    let allowed = (lower.chars().count() / 3).max(1);
    candidates
        .map(|c| (strsim::damerau_levenshtein(&lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= allowed)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_for_unknown_fields_and_variants() {
        assert_eq!(
            with_hint("grants: unknown field `tablez`, expected one of `hosts`, `tables`, `flows` at line 3 column 3".into()),
            "grants: unknown field `tablez` (did you mean `tables`?), expected one of `hosts`, `tables`, `flows` at line 3 column 3"
        );
        assert_eq!(
            with_hint("unknown field `raed`, expected `read` or `write` at line 4 column 5".into()),
            "unknown field `raed` (did you mean `read`?), expected `read` or `write` at line 4 column 5"
        );
        assert_eq!(
            with_hint("overlap: unknown variant `skp`, expected one of `skip`, `queue`, `allow`".into()),
            "overlap: unknown variant `skp` (did you mean `skip`?), expected one of `skip`, `queue`, `allow`"
        );
        for far in [
            "unknown field `zzzz`, expected `read` or `write` at line 4 column 5",
            "unknown field `a`, expected one of `db`, `tables`, `grants`",
        ] {
            assert_eq!(with_hint(far.into()), far);
        }
        for odd in [
            "unknown field `",
            "unknown field ``, expected ",
            "unknown field `a`, expected `",
        ] {
            let _ = with_hint(odd.into());
        }
    }

    #[test]
    fn untrusted_errors_quote_no_values() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/bin/sh\n";
        let e =
            from_untrusted_str::<std::collections::BTreeMap<String, String>>(passwd).unwrap_err();
        assert_eq!(e, "invalid type: a string, expected a map");
        let e = from_str::<std::collections::BTreeMap<String, String>>(passwd).unwrap_err();
        assert!(
            e.contains("root:x:0:0"),
            "the trusted form still quotes: {e}"
        );
        assert_eq!(
            without_values(r#"a: invalid value: string "x\"y, \\", expected b; string "z"#),
            "a: invalid value: a string, expected b; a string"
        );
        assert_eq!(without_values("no value here"), "no value here");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(one_line("plain `x`"), "plain `x`");
        assert_eq!(one_line("`a\nb\r\t\u{1b}c`"), "`a\\nb\\r\\t\\u{1b}c`");
    }

    #[test]
    fn deep_flow_nesting_is_refused_before_parsing() {
        let deep = format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        let started = std::time::Instant::now();
        let e = from_str::<serde_yaml::Value>(&deep).unwrap_err();
        assert_eq!(
            e,
            "`[` and `{` are nested more than 128 levels deep at line 1 column 132"
        );
        assert!(started.elapsed().as_millis() < 500);
        let ok = format!("a: {}{}", "[".repeat(100), "]".repeat(100));
        assert!(from_str::<serde_yaml::Value>(&ok).is_ok());
        // Brackets in quoted strings and comments do not count.
        let quoted = format!(
            "a: \"{0}\"\nb: '{0}'' {0}'\nc: 1 # {0}\nd: \"\\\"{0}\"\n",
            "[".repeat(300)
        );
        assert!(from_str::<serde_yaml::Value>(&quoted).is_ok(), "{quoted}");
    }
}
