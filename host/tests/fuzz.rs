//! Property-based fuzzing (proptest) of the loaders a user's files go through: flow manifests
//! (`Manifest::parse`, then the registry's checks against tables and flows), table schemas
//! (`TableSchema::from_yaml`) and the config file (`Config::load`), on arbitrary text, on
//! random YAML built from their own vocabulary, and on mutations of the shipped files.
//!
//! The properties: nothing panics, and every error is one line that starts with the file's
//! path. Each property runs 1,000 to 10,000 cases by default (about a second in CI); set
//! `PROPTEST_CASES` for a longer run (see docs/fuzzing.md). A failure prints the shrunk
//! input; fix the bug and add that input to the regression tests at the end of this file.

mod common;

use std::path::{Path, PathBuf};

use flowhost::config::Config;
use flowhost::manifest::Manifest;
use flowhost::schema::{Schemas, TableSchema};
use proptest::prelude::*;
use proptest::sample::Index;

/// `default` cases, or `PROPTEST_CASES` when set. No failure files are written into the
/// source tree: a failure is turned into a regression test by hand.
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The files of `dirs` (relative to the repository) whose names end with `.yaml`.
fn corpus(dirs: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for d in dirs {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(common::root().join(d))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        paths.sort();
        out.extend(paths.iter().map(|p| std::fs::read_to_string(p).unwrap()));
    }
    assert!(!out.is_empty(), "no files in {dirs:?}");
    out
}

/// A manifest with every field, as docs/manifests.md shows it.
const FULL_MANIFEST: &str = r#"title: Recurring Audit Collection
description: Pulls ASA audit events
schedule:
  cron: "0 */5 9-18 * * *"
  timezone: Australia/Melbourne
  input: {}
overlap: skip
exclusive: asa
timeout: 10m
memory: 64MiB
sensitive: false
grants:
  hosts:
    - https://app.scaleft.com
    - https://*.scaleft.com
    - http://127.0.0.1:*
  tables:
    read: [Environment Variables]
    write: [Audit Checkpoints]
  flows: [F1, U00, U01]
  secrets: [ASA_KEY_ID, ASA_KEY_SECRET]
  blobs:
    read: [archive]
    write: [scratch]
"#;

/// The docs' config file, without the S3 store (whose secrets are not set here).
const FULL_CONFIG: &str = r#"db: flowhost.db
flows: [flows/dist]
tables: [tables]
secrets_file: secrets.yaml
cache_dir: .flowhost/cache
history:
  retention: 30d
grants:
  M10: { hosts: ["http://127.0.0.1:*"] }
  U00: { hosts: ["http://127.0.0.1:*"], tables: {read: [Audit Events]}, secrets: [A_B] }
blobs:
  archive:
    kind: local
    path: .flowhost/archive
  offload:
    kind: s3
    bucket: asa-audit
    endpoint: http://127.0.0.1:9000
    region: us-east-1
    access_key_id_secret: OFFLOAD_KEY_ID
    secret_access_key_secret: OFFLOAD_KEY_SECRET
    allow_http: true
"#;

/// Keys the three file kinds know (and a few they do not).
const KEYS: &[&str] = &[
    "title",
    "description",
    "schedule",
    "every",
    "cron",
    "timezone",
    "input",
    "overlap",
    "exclusive",
    "timeout",
    "memory",
    "sensitive",
    "grants",
    "hosts",
    "tables",
    "read",
    "write",
    "flows",
    "secrets",
    "blobs",
    "name",
    "key",
    "columns",
    "type",
    "indexes",
    "db",
    "secrets_file",
    "cache_dir",
    "history",
    "retention",
    "kind",
    "path",
    "bucket",
    "endpoint",
    "region",
    "access_key_id_secret",
    "secret_access_key_secret",
    "allow_http",
    "M10",
    "tablez",
    "- name",
    "- { name: id, type: text }",
    "-",
    "? complex",
    "<<",
    "",
];

/// Values that reach the checks behind the YAML: durations, sizes, hosts, cron lines, names.
const VALUES: &[&str] = &[
    "",
    "x",
    "5m",
    "0ms",
    "1h 30m",
    "99999999999999999999h",
    "18446744073709551615d",
    "-1s",
    "5 minutes",
    "64MiB",
    "0",
    "1GiB",
    "2GiB",
    "99999999999999999999GiB",
    "18446744073709551615KiB",
    "64 furlongs",
    "http://127.0.0.1:*",
    "https://*.scaleft.com",
    "ftp://x",
    "http://[::1]:80",
    "http://[::1",
    "https://x:99999",
    "https://*",
    "http://a..b",
    "[a, b]",
    "{read: [x]}",
    "{read: [Probe Item]}",
    "[Probe Items]",
    "[Environment Variables]",
    "'quoted'",
    "~",
    "null",
    "true",
    "3",
    "3.5",
    "-7",
    "1e400",
    ".nan",
    "*a",
    "&a x",
    "!!str 3",
    "!!binary aGk=",
    "\"0 */5 * * * *\"",
    "\"* * * * *\"",
    "\"61 * * * * *\"",
    "\"*/0 * * * * *\"",
    "\"0 0 0 31 2 *\"",
    "\"@hourly\"",
    "Australia/Melbourne",
    "Mars/Olympus",
    "skip",
    "queue",
    "bogus",
    "text",
    "json",
    "decimal",
    "local",
    "s3",
    "id",
    "_id",
    "ID",
    "\"a\\nb\"",
    "\"tab\\there\"",
    "\"nul\\0x\"",
    "\"\\u2028sep\"",
    "\"\\r\"",
    "|\n  block\n  text",
    ">-\n  folded",
    "[\"a\\nb\"]",
    "{hosts: [\"http://a\\n\"]}",
    "[[[[[[[[]]]]]]]]",
];

/// Random YAML from [`KEYS`] and [`VALUES`]: `indent key: value` lines.
fn vocabulary_yaml() -> impl Strategy<Value = String> {
    let line = (
        0usize..4,
        prop::sample::select(KEYS),
        prop::sample::select(VALUES),
        prop::bool::weighted(0.8),
    )
        .prop_map(|(indent, key, value, colon)| {
            let sep = if colon { ": " } else { " " };
            format!("{}{key}{sep}{value}", "  ".repeat(indent))
        });
    prop::collection::vec(line, 0..16).prop_map(|l| l.join("\n"))
}

/// Names a manifest grants or a schema declares, known and unknown to the test's world.
const NAMES: &[&str] = &[
    "Probe Items",
    "Probe Item",
    "Audit Events",
    "Environment Variables",
    "F1",
    "U00",
    "U01",
    "U99",
    "archive",
    "scratch",
    "nope",
    "PROBE_TOKEN",
    "id",
    "n",
    "\"Probe\\nItems\"",
    "\"a\\tb\"",
    "\"\\e[31m\"",
    "\"\"",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(VALUES).prop_map(String::from),
        prop::sample::select(NAMES).prop_map(String::from),
    ]
}

fn list_of_values() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(value(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
        value(),
    ]
}

/// A manifest with the right shape and random values: reaches the checks behind the YAML
/// (durations, sizes, cron lines, host patterns, names; then the registry's grant checks).
fn manifest_shaped() -> impl Strategy<Value = String> {
    let top = prop::collection::vec(
        (
            prop::sample::select(
                &[
                    "description",
                    "timeout",
                    "memory",
                    "overlap",
                    "exclusive",
                    "sensitive",
                ][..],
            ),
            value(),
        ),
        0..4,
    );
    let schedule = prop::option::of((
        prop::sample::select(&["every", "cron"][..]),
        value(),
        prop::option::of(value()),
        prop::option::of(value()),
    ));
    let grants = prop::collection::vec(
        (
            prop::sample::select(
                &[
                    "hosts",
                    "tables.read",
                    "tables.write",
                    "flows",
                    "secrets",
                    "blobs.read",
                    "blobs.write",
                ][..],
            ),
            list_of_values(),
        ),
        0..5,
    );
    (value(), top, schedule, grants).prop_map(|(title, top, schedule, grants)| {
        let mut t = format!("title: {title}\n");
        for (k, v) in top {
            t.push_str(&format!("{k}: {v}\n"));
        }
        if let Some((kind, v, tz, input)) = schedule {
            t.push_str(&format!("schedule:\n  {kind}: {v}\n"));
            if let Some(tz) = tz {
                t.push_str(&format!("  timezone: {tz}\n"));
            }
            if let Some(input) = input {
                t.push_str(&format!("  input: {input}\n"));
            }
        }
        if !grants.is_empty() {
            t.push_str("grants:\n");
            let mut seen = std::collections::BTreeSet::new();
            for (k, v) in grants {
                match k.split_once('.') {
                    Some((outer, inner)) if seen.insert(k) => {
                        t.push_str(&format!("  {outer}: {{{inner}: {v}}}\n"))
                    }
                    None if seen.insert(k) => t.push_str(&format!("  {k}: {v}\n")),
                    _ => {}
                }
            }
        }
        t
    })
}

/// A table schema with the right shape and random names, types, key and indexes.
fn schema_shaped() -> impl Strategy<Value = String> {
    let column = (
        value(),
        prop_oneof![
            prop::sample::select(
                &["text", "number", "integer", "boolean", "json", "Text", "JSON"][..]
            )
            .prop_map(String::from),
            value(),
        ],
    );
    (
        value(),
        prop::option::of(value()),
        prop::collection::vec(column, 0..5),
        prop::option::of(list_of_values()),
    )
        .prop_map(|(name, key, columns, indexes)| {
            let mut t = format!("name: {name}\n");
            if let Some(k) = key {
                t.push_str(&format!("key: {k}\n"));
            }
            t.push_str("columns:\n");
            for (n, ty) in columns {
                t.push_str(&format!("  - {{ name: {n}, type: {ty} }}\n"));
            }
            if let Some(i) = indexes {
                t.push_str(&format!("indexes: {i}\n"));
            }
            t
        })
}

/// Text of any kind: any characters (control characters too), YAML punctuation, vocabulary.
fn arbitrary_text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..200).prop_map(String::from_iter),
        "[a-z_:\\- \n\t\\[\\]{},'\"#&*!|>%@`0-9.?<=~\\\\]{0,200}",
        vocabulary_yaml(),
    ]
}

/// What a mutation inserts.
fn snippet() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(VALUES).prop_map(String::from),
        prop::sample::select(KEYS).prop_map(|k| format!("{k}: ")),
        prop::sample::select(
            &[
                ":", "- ", "[", "]", "{", "}", "\n", "  ", "\t", "#", "'", "\"", ",", "&a ", "*a",
                "!", "%", "@", "`", "|", ">", "?", "\u{0}", "\u{feff}", "\r\n", "\\", "---\n",
                "...\n",
            ][..]
        )
        .prop_map(String::from),
        "\\PC{0,6}",
        prop::collection::vec(any::<char>(), 0..4).prop_map(String::from_iter),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(Index, usize),
    Insert(Index, String),
    Replace(Index, usize, String),
    DuplicateLine(Index),
    DeleteLine(Index),
    SwapLines(Index, Index),
    Indent(Index, i8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 1usize..24).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<Index>(), snippet()).prop_map(|(i, s)| Mutation::Insert(i, s)),
        (any::<Index>(), 1usize..12, snippet()).prop_map(|(i, n, s)| Mutation::Replace(i, n, s)),
        any::<Index>().prop_map(Mutation::DuplicateLine),
        any::<Index>().prop_map(Mutation::DeleteLine),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<Index>(), -4i8..5).prop_map(|(i, d)| Mutation::Indent(i, d)),
    ]
}

fn apply(text: &str, mutations: &[Mutation]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for m in mutations {
        let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len + 1) };
        match m {
            Mutation::Delete(i, n) => {
                let start = at(i, chars.len()).min(chars.len());
                let end = (start + n).min(chars.len());
                chars.drain(start..end);
            }
            Mutation::Insert(i, s) => {
                let pos = at(i, chars.len()).min(chars.len());
                chars.splice(pos..pos, s.chars());
            }
            Mutation::Replace(i, n, s) => {
                let start = at(i, chars.len()).min(chars.len());
                let end = (start + n).min(chars.len());
                chars.splice(start..end, s.chars());
            }
            _ => {
                let text: String = chars.iter().collect();
                let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
                let n = lines.len();
                match m {
                    Mutation::DuplicateLine(i) => {
                        let k = i.index(n);
                        lines.insert(k, lines[k].clone());
                    }
                    Mutation::DeleteLine(i) => {
                        lines.remove(i.index(n));
                    }
                    Mutation::SwapLines(a, b) => lines.swap(a.index(n), b.index(n)),
                    Mutation::Indent(i, d) => {
                        let k = i.index(n);
                        let l = &lines[k];
                        lines[k] = if *d >= 0 {
                            format!("{}{l}", " ".repeat(*d as usize))
                        } else {
                            let strip = l.len() - l.trim_start_matches(' ').len();
                            l[strip.min(d.unsigned_abs() as usize)..].to_string()
                        };
                    }
                    _ => unreachable!(),
                }
                chars = lines.join("\n").chars().collect();
            }
        }
    }
    chars.into_iter().collect()
}

/// A corpus file (by index) with up to 6 mutations.
fn mutated(corpus: Vec<String>) -> impl Strategy<Value = String> {
    (
        prop::sample::select(corpus),
        prop::collection::vec(mutation(), 1..6),
    )
        .prop_map(|(text, ms)| apply(&text, &ms))
}

/// The property every loader error must have.
fn check_error(err: &str, path: &Path) -> Result<(), TestCaseError> {
    let shown = path.display().to_string();
    prop_assert!(
        !err.contains('\n') && !err.contains('\r'),
        "not one line: {err:?}"
    );
    prop_assert!(
        err.starts_with(&format!("{shown}:")),
        "does not start with {shown}: {err:?}"
    );
    Ok(())
}

const MANIFEST_PATH: &str = "flows/F1.yaml";
const SCHEMA_PATH: &str = "tables/t.yaml";

fn check_manifest(text: &str) -> Result<(), TestCaseError> {
    let path = Path::new(MANIFEST_PATH);
    match Manifest::parse(path, text) {
        Ok(m) => {
            prop_assert_eq!(&m.name, "F1");
            prop_assert!(!m.title.trim().is_empty());
            prop_assert!(m.memory <= flowhost::manifest::MAX_MEMORY);
            let _ = m.grants.summary();
            if let Some(s) = &m.schedule {
                let _ = s.to_string();
            }
        }
        Err(e) => check_error(&e.to_string(), path)?,
    }
    Ok(())
}

fn check_schema(text: &str) -> Result<(), TestCaseError> {
    let path = Path::new(SCHEMA_PATH);
    match TableSchema::from_yaml(text, path) {
        Ok(s) => {
            prop_assert!(s.validate().is_ok());
            prop_assert!(!s.columns.is_empty());
            // A schema that loads can be used: on its own, and for SQL names.
            let _ = Schemas::from_schemas(vec![s.clone()]).map_err(|e| e.to_string());
            let _ = flowhost::schema::sql_table_name(&s.name);
        }
        Err(e) => check_error(&e.to_string(), path)?,
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(10_000))]

    #[test]
    fn manifest_arbitrary_text(text in arbitrary_text()) {
        check_manifest(&text)?;
    }

    #[test]
    fn schema_arbitrary_text(text in arbitrary_text()) {
        check_schema(&text)?;
    }

    #[test]
    fn manifest_shaped_random_values(text in manifest_shaped()) {
        check_manifest(&text)?;
    }

    #[test]
    fn schema_shaped_random_values(text in schema_shaped()) {
        check_schema(&text)?;
    }
}

proptest! {
    #![proptest_config(config(10_000))]

    #[test]
    fn manifest_mutated(text in mutated({
        let mut c = corpus(&["flows/dist", "flows/dist-test"]);
        c.push(FULL_MANIFEST.to_string());
        c
    })) {
        check_manifest(&text)?;
    }

    #[test]
    fn schema_mutated(text in mutated(corpus(&["tables", "tests/tables"]))) {
        check_schema(&text)?;
    }
}

/// A folder with the shipped tables and a flows folder holding echo's component, for the
/// registry's checks (tables, flows and blob stores a manifest names).
struct RegistryWorld {
    dir: tempfile::TempDir,
    schemas: Schemas,
}

impl RegistryWorld {
    fn new() -> RegistryWorld {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("flows")).unwrap();
        let echo = common::flows_dir("dist-test").join("echo.wasm");
        for name in ["F1", "U00", "U01"] {
            std::fs::copy(&echo, dir.path().join(format!("flows/{name}.wasm"))).unwrap();
        }
        for name in ["U00", "U01"] {
            std::fs::write(dir.path().join(format!("flows/{name}.yaml")), "title: t\n").unwrap();
        }
        let schemas = Schemas::load_dirs(&[
            common::root().join("tables"),
            common::root().join("tests/tables"),
        ])
        .unwrap();
        RegistryWorld { dir, schemas }
    }

    /// Loads the flows folder with `text` as F1's manifest; checks every load error.
    fn check(&self, text: &str) -> Result<(), TestCaseError> {
        let flows = self.dir.path().join("flows");
        let path = flows.join("F1.yaml");
        std::fs::write(&path, text).unwrap();
        let blobs: std::collections::BTreeSet<String> =
            ["archive".to_string(), "scratch".to_string()].into();
        let reg = flowhost::registry::Registry::load(
            std::slice::from_ref(&flows),
            &self.schemas,
            &Default::default(),
            &blobs,
        );
        for e in &reg.errors {
            prop_assert!(
                !e.contains('\n') && !e.contains('\r'),
                "not one line: {e:?}"
            );
            let shown = path.display().to_string();
            prop_assert!(
                e.starts_with(&format!("{shown}:")),
                "does not name {shown}: {e:?}"
            );
        }
        prop_assert_eq!(reg.get("F1").is_some(), reg.errors.is_empty());
        if let Some(e) = reg.load_error("F1") {
            prop_assert!(reg.errors.iter().any(|x| x == e));
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn registry_checks_of_mutated_manifests(text in prop_oneof![
        mutated({
            let mut c = corpus(&["flows/dist"]);
            c.push(FULL_MANIFEST.to_string());
            c
        }),
        manifest_shaped(),
    ]) {
        thread_local!(static WORLD: RegistryWorld = RegistryWorld::new());
        WORLD.with(|w| w.check(&text))?;
    }

    #[test]
    fn config_mutated(text in prop_oneof![
        mutated(vec![FULL_CONFIG.to_string()]),
        vocabulary_yaml(),
    ]) {
        thread_local!(static DIR: tempfile::TempDir = tempfile::tempdir().unwrap());
        DIR.with(|d| -> Result<(), TestCaseError> {
            let path = d.path().join("flowhost.yaml");
            std::fs::write(&path, &text).unwrap();
            if let Err(e) = Config::load(&path) {
                check_error(&e.to_string(), &path)?;
            }
            Ok(())
        })?;
    }
}

/// Inputs that broke a property; each failed before the fix named beside it.
#[test]
fn regressions() {
    // A quoted YAML value may hold a newline (or any control character) that the message
    // quoted as it was, breaking the one-line rule. Fixed by `yaml::one_line` in
    // `ManifestError::new`, the schema errors, the registry's and the config's errors.
    let manifests = [
        (
            "title: t\ntimeout: \"a\\nb\"\n",
            "timeout: `a\\nb` is not a duration",
        ),
        (
            "title: t\nschedule: {every: \"5\\rm\"}\n",
            "`5\\rm` is not a duration",
        ),
        (
            "title: t\ngrants: {hosts: [\"http://a\\nb\"]}\n",
            "host `http://a\\nb` has a bad host name",
        ),
        (
            "title: t\ngrants: {secrets: [\"A\\nB\"]}\n",
            "`A\\nB` is not a secret name",
        ),
        (
            "title: t\nschedule: {cron: \"0 * * * * *\", timezone: \"Mars\\nX\"}\n",
            "timezone `Mars\\nX` is not an IANA zone name",
        ),
        (
            "title: t\nexclusive: [\"\\e\"]\n",
            "exclusive: invalid type: sequence",
        ),
    ];
    for (text, want) in manifests {
        check_manifest(text).unwrap();
        let e = Manifest::parse(Path::new(MANIFEST_PATH), text)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{e}");
    }
    let schemas = [
        (
            "name: X\ncolumns:\n  - { name: \"a\\nb\", type: decimal }\n",
            "column `a\\nb`: unknown type `decimal`",
        ),
        ("name: X\nkey: \"i\\nd\"\ncolumns:\n  - { name: id, type: text }\n", "key `i\\nd` is not one"),
        ("name: X\ncolumns:\n  - { name: a, type: \"te\\txt\" }\n", "unknown type `te\\txt`"),
        ("name: X\ncolumns:\n  - { name: a, type: text }\nindexes: [\"a\\nb\"]\n", "index `a\\nb`"),
        (
            "name: X\ncolumns:\n  - { name: \"A\\nb\", type: text }\n  - { name: \"a\\nB\", type: text }\n",
            "column `a\\nB` is listed twice",
        ),
        ("name: X\nkey: \"\\e[31mred\"\ncolumns:\n  - { name: id, type: text }\n", "key `\\u{1b}[31mred`"),
    ];
    for (text, want) in schemas {
        check_schema(text).unwrap();
        let e = TableSchema::from_yaml(text, Path::new(SCHEMA_PATH))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{e}");
    }
    // The registry quotes grant names from the manifest.
    let world = RegistryWorld::new();
    for text in [
        "title: t\ngrants: {tables: {read: [\"Probe\\nItems\"]}}\n",
        "title: t\ngrants: {flows: [\"U\\n00\"]}\n",
        "title: t\ngrants: {blobs: {write: [\"arch\\rive\"]}}\n",
    ] {
        world.check(text).unwrap();
    }
}

/// Nesting and aliases deep or wide enough to exhaust a naive parser.
#[test]
fn deep_and_exploding_yaml_is_an_error_not_a_crash() {
    let deep_seq = format!("title: {}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_map = format!(
        "title: t\ngrants: {}{}",
        "{a: ".repeat(50_000),
        "}".repeat(50_000)
    );
    let mut laughs = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h", "i"]
        .iter()
        .zip(["b", "c", "d", "e", "f", "g", "h", "i", "j"])
    {
        laughs.push_str(&format!(
            "{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
        ));
    }
    // schedule.input takes any value: serde_yaml expands the aliases until its repetition limit.
    let laughs_manifest = format!(
        "title: t\nschedule:\n  every: 5m\n  input:\n{}",
        laughs
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    // Found by this test: 100,000 nested `[` took 94 s in the YAML scanner (quadratic in the
    // depth). Fixed by `yaml::check_flow_depth`, which refuses more than 128 levels first.
    for text in [&deep_seq, &deep_map, &laughs, &laughs_manifest] {
        let started = std::time::Instant::now();
        let m = Manifest::parse(Path::new(MANIFEST_PATH), text);
        let s = TableSchema::from_yaml(text, Path::new(SCHEMA_PATH));
        let e = m.unwrap_err().to_string();
        assert!(e.starts_with("flows/F1.yaml: ") && !e.contains('\n'), "{e}");
        let e = s.unwrap_err().to_string();
        assert!(e.starts_with("tables/t.yaml: ") && !e.contains('\n'), "{e}");
        assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
    }
}

/// Found by the asa-lib fuzzing: serde_json's default float parser can be off by one in the
/// last digit, so a number a flow wrote into a table (or passed through `flowhost run`) came
/// back different. Fixed by serde_json's `float_roundtrip` (Cargo.toml). 2000 random finite
/// doubles go through a json column and back, exactly.
#[tokio::test(flavor = "multi_thread")]
async fn numbers_survive_a_table_round_trip_exactly() {
    let env = common::TestEnv::new();
    let rt = env.runtime();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut values = vec![
        1.7345744393415084e-34,
        1.6951895854829024e184,
        0.1,
        -0.0,
        5e-324,
    ];
    while values.len() < 2000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let f = f64::from_bits(state);
        if f.is_finite() {
            values.push(f);
        }
    }
    let rows: Vec<serde_json::Value> = values
        .chunks(100)
        .enumerate()
        .map(|(i, c)| serde_json::json!({"id": format!("r{i:02}"), "data": c}))
        .collect();
    common::ok(
        &rt,
        "probe",
        serde_json::json!({"op": "table", "fn": "insert_many", "table": "Probe Items", "rows": rows}),
    )
    .await;
    let mut back = Vec::new();
    rt.store
        .export_rows(
            "Probe Items",
            |r| -> Result<bool, flowhost::store::TableError> {
                back.push(r);
                Ok(true)
            },
        )
        .unwrap();
    back.sort_by_key(|r| r["id"].as_str().unwrap().to_string());
    let got: Vec<f64> = back
        .iter()
        .flat_map(|r| {
            r["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
        })
        .collect();
    assert_eq!(got.len(), values.len());
    for (g, v) in got.iter().zip(&values) {
        assert_eq!(g.to_bits(), v.to_bits(), "{v:e} came back as {g:e}");
    }
}
