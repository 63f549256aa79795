//! The one place YAML is read (manifests, table schemas, the config file, the secrets file),
//! so that the archived `serde_yaml` can be swapped without touching the loaders.

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
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
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
