//! The members of an event that its Audit Events row reads (`id`, `timestamp` and the mapped
//! `details` keys), each as a `serde_json::Value` of the event holds it (a repeated member keeps
//! its last value, a `details` that is no object counts as empty), but with its strings
//! borrowed from the event's text (a string with escapes is decoded into one of its own).
//!
//! [`scan`] takes them from the text in one pass, skipping every other member without building
//! it: S30 handles an event per call, and building the whole event as a `Value` tree (a map node
//! and a string for every member) was most of its allocations. A text that is no JSON object
//! is refused; [`crate::event`] then parses it as a `Value` to say exactly what is wrong.
//! [`Members::of_value`] takes the same members from an event parsed already.

use std::borrow::Cow;
use std::fmt;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

use crate::json_skim::Cursor;

/// The `details` keys the row reads (asa_lib::event's table).
const DETAIL_KEYS: [&str; 14] = [
    "type",
    "hostname",
    "from_address",
    "actor",
    "target_user",
    "user",
    "client",
    "group_id",
    "group",
    "project_id",
    "project",
    "server",
    "servers",
    "gateway",
];

/// A member's value: a string or a list as read, anything else as the `Value` it is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Member<'a> {
    Str(Cow<'a, str>),
    List(Vec<Member<'a>>),
    Other(Cow<'a, Value>),
}

impl<'a> Member<'a> {
    /// The member `value` (borrowed).
    fn of_value(value: &'a Value) -> Member<'a> {
        match value {
            Value::String(s) => Member::Str(Cow::Borrowed(s)),
            Value::Array(list) => Member::List(list.iter().map(Member::of_value).collect()),
            other => Member::Other(Cow::Borrowed(other)),
        }
    }

    /// The member as a `Value`.
    pub(crate) fn into_value(self) -> Value {
        match self {
            Member::Str(s) => Value::String(s.into_owned()),
            Member::List(list) => Value::Array(list.into_iter().map(Member::into_value).collect()),
            Member::Other(v) => v.into_owned(),
        }
    }

    /// The member as [`crate::text_of`] gives it: a string as it is (still borrowed), `null` as
    /// `""`, anything else as its JSON.
    pub(crate) fn text(self) -> Cow<'a, str> {
        match self {
            Member::Str(s) => s,
            Member::Other(v) if v.is_null() => Cow::Borrowed(""),
            other => Cow::Owned(other.into_value().to_string()),
        }
    }

    /// The reference id it is, as [`crate::ref_id`] reads one: a non-empty string.
    pub(crate) fn reference(self) -> Option<Cow<'a, str>> {
        match self {
            Member::Str(s) if !s.is_empty() => Some(s),
            _ => None,
        }
    }

    /// The references of a list (`servers`), each once, in the order of first appearance;
    /// entries that are no reference are skipped, and so is anything that is no list.
    pub(crate) fn references_once(self) -> Vec<Cow<'a, str>> {
        let Member::List(list) = self else {
            return Vec::new();
        };
        let mut refs: Vec<Cow<'a, str>> = Vec::new();
        for r in list.into_iter().filter_map(Member::reference) {
            if !refs.contains(&r) {
                refs.push(r);
            }
        }
        refs
    }
}

/// The members of an event that its row reads.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Members<'a> {
    pub(crate) id: Option<Member<'a>>,
    pub(crate) timestamp: Option<Member<'a>>,
    details: Details<'a>,
}

/// The read `details` keys, as [`DETAIL_KEYS`] lists them (`None`: absent).
#[derive(Debug, Default, PartialEq)]
struct Details<'a>([Option<Member<'a>>; DETAIL_KEYS.len()]);

impl<'a> Members<'a> {
    /// The members of `event` (an object), borrowed from it.
    pub(crate) fn of_value(event: &'a Value) -> Members<'a> {
        let member = |name: &str| event.get(name).map(Member::of_value);
        let mut details = Details::default();
        if let Some(Value::Object(read)) = event.get("details") {
            for (slot, key) in details.0.iter_mut().zip(DETAIL_KEYS) {
                *slot = read.get(key).map(Member::of_value);
            }
        }
        Members { id: member("id"), timestamp: member("timestamp"), details }
    }

    /// `details.<key>`, taken out (`None` for a key the row does not read).
    pub(crate) fn take_detail(&mut self, key: &str) -> Option<Member<'a>> {
        let i = DETAIL_KEYS.iter().position(|k| *k == key)?;
        self.details.0.get_mut(i)?.take()
    }
}

/// The members of `text`; an error when it is not one JSON object.
pub(crate) fn scan(text: &str) -> Result<Members<'_>, serde_json::Error> {
    match scan_plain(text) {
        Some(members) => Ok(members),
        None => serde_json::from_str(text),
    }
}

/// The position of a `details` key in [`DETAIL_KEYS`] (a `match`, which compares a name's
/// length before its bytes, rather than a search through the list).
fn detail_index(name: &str) -> Option<usize> {
    Some(match name {
        "type" => 0,
        "hostname" => 1,
        "from_address" => 2,
        "actor" => 3,
        "target_user" => 4,
        "user" => 5,
        "client" => 6,
        "group_id" => 7,
        "group" => 8,
        "project_id" => 9,
        "project" => 10,
        "server" => 11,
        "servers" => 12,
        "gateway" => 13,
        _ => return None,
    })
}

/// [`scan`] of an event as ASA writes them, by hand ([`json_skim`]): the members the row reads
/// are strings without escapes, `null`, booleans, or lists of those; `details` is an object;
/// no member name has an escape. `None` for any other text: `serde_json` reads it then, and
/// gives the same members or the error (the skim takes no text `serde_json` refuses). Reading
/// through `serde_json` cost a visitor call for every member and name of every event (issue 20).
fn scan_plain(text: &str) -> Option<Members<'_>> {
    let mut c = Cursor::new(text);
    let mut members = Members::default();
    c.object(|c, name| {
        match name {
            "id" => members.id = Some(plain_member(c)?),
            "timestamp" => members.timestamp = Some(plain_member(c)?),
            "details" => members.details = plain_details(c)?,
            _ => c.skip_value()?,
        }
        Some(())
    })?;
    c.at_end().then_some(members)
}

/// `details`, an object (anything else is left to `serde_json`).
fn plain_details<'a>(c: &mut Cursor<'a>) -> Option<Details<'a>> {
    let mut read = Details::default();
    c.object(|c, name| {
        match detail_index(name).and_then(|i| read.0.get_mut(i)) {
            Some(slot) => *slot = Some(plain_member(c)?),
            None => c.skip_value()?,
        }
        Some(())
    })?;
    Some(read)
}

/// A read member: a string without escapes, `null`, a boolean, or a list of those.
fn plain_member<'a>(c: &mut Cursor<'a>) -> Option<Member<'a>> {
    if c.peek()? != b'[' {
        return plain_leaf(c);
    }
    c.expect(b'[')?;
    let mut list = Vec::new();
    if c.peek()? == b']' {
        c.expect(b']')?;
        return Some(Member::List(list));
    }
    loop {
        list.push(plain_leaf(c)?);
        match c.peek()? {
            b',' => c.expect(b',')?,
            b']' => {
                c.expect(b']')?;
                return Some(Member::List(list));
            }
            _ => return None,
        }
    }
}

/// A string without escapes, `null` or a boolean.
fn plain_leaf<'a>(c: &mut Cursor<'a>) -> Option<Member<'a>> {
    let other = |v| Some(Member::Other(Cow::Owned(v)));
    match c.peek()? {
        b'"' => c.plain_string().map(|s| Member::Str(Cow::Borrowed(s))),
        b'n' if c.literal("null") => other(Value::Null),
        b't' if c.literal("true") => other(Value::Bool(true)),
        b'f' if c.literal("false") => other(Value::Bool(false)),
        _ => None,
    }
}

impl<'de> Deserialize<'de> for Member<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Member<'de>, D::Error> {
        d.deserialize_any(MemberVisitor)
    }
}

/// Reads a [`Member`]: what a `Value` would be made of, but strings and lists kept as read.
struct MemberVisitor;

impl<'de> Visitor<'de> for MemberVisitor {
    type Value = Member<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Member<'de>, E> {
        Ok(Member::Str(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Member<'de>, E> {
        Ok(Member::Str(Cow::Owned(s.to_string())))
    }

    fn visit_string<E>(self, s: String) -> Result<Member<'de>, E> {
        Ok(Member::Str(Cow::Owned(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Member<'de>, A::Error> {
        let mut list = Vec::new();
        while let Some(member) = seq.next_element()? {
            list.push(member);
        }
        Ok(Member::List(list))
    }

    /// An object: built as a `Value` builds it (its members are never read).
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Member<'de>, A::Error> {
        Value::deserialize(MapAccessDeserializer::new(map)).map(|v| Member::Other(Cow::Owned(v)))
    }

    fn visit_bool<E>(self, b: bool) -> Result<Member<'de>, E> {
        Ok(Member::Other(Cow::Owned(Value::Bool(b))))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Member<'de>, E> {
        Ok(Member::Other(Cow::Owned(Value::Number(n.into()))))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Member<'de>, E> {
        Ok(Member::Other(Cow::Owned(Value::Number(n.into()))))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Member<'de>, E> {
        Ok(Member::Other(Cow::Owned(Number::from_f64(n).map_or(Value::Null, Value::Number))))
    }

    fn visit_unit<E>(self) -> Result<Member<'de>, E> {
        Ok(Member::Other(Cow::Owned(Value::Null)))
    }

    fn visit_none<E>(self) -> Result<Member<'de>, E> {
        Ok(Member::Other(Cow::Owned(Value::Null)))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Member<'de>, D::Error> {
        Member::deserialize(d)
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Members<'de>, D::Error> {
        d.deserialize_map(EventVisitor)
    }
}

/// A member name: one the row reads, or any other.
enum Key {
    Id,
    Timestamp,
    Details,
    /// The index of a `details` key in [`DETAIL_KEYS`].
    Detail(usize),
    Other,
}

/// Reads a member name as `Key` (`details` keys only inside `details`).
struct KeyVisitor {
    in_details: bool,
}

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Key, E> {
        Ok(if self.in_details {
            detail_index(name).map_or(Key::Other, Key::Detail)
        } else {
            match name {
                "id" => Key::Id,
                "timestamp" => Key::Timestamp,
                "details" => Key::Details,
                _ => Key::Other,
            }
        })
    }
}

/// A member name read with [`KeyVisitor`].
struct Named<const DETAILS: bool>(Key);

impl<'de, const DETAILS: bool> Deserialize<'de> for Named<DETAILS> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_identifier(KeyVisitor { in_details: DETAILS }).map(Named)
    }
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Members<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an audit event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
        let mut s = Members::default();
        while let Some(Named(key)) = map.next_key::<Named<false>>()? {
            match key {
                Key::Id => s.id = Some(map.next_value()?),
                Key::Timestamp => s.timestamp = Some(map.next_value()?),
                Key::Details => s.details = map.next_value()?,
                Key::Detail(_) | Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(s)
    }
}

impl<'de> Deserialize<'de> for Details<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Details<'de>, D::Error> {
        d.deserialize_any(DetailsVisitor)
    }
}

/// `details`: its read keys when it is an object, none when it is anything else.
struct DetailsVisitor;

impl<'de> Visitor<'de> for DetailsVisitor {
    type Value = Details<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Details<'de>, A::Error> {
        let mut read = Details::default();
        while let Some(Named(key)) = map.next_key::<Named<true>>()? {
            match key {
                Key::Detail(i) => {
                    let member = map.next_value()?;
                    if let Some(slot) = read.0.get_mut(i) {
                        *slot = Some(member);
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(read)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Details<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Details::default())
    }

    fn visit_bool<E>(self, _: bool) -> Result<Details<'de>, E> {
        Ok(Details::default())
    }

    fn visit_i64<E>(self, _: i64) -> Result<Details<'de>, E> {
        Ok(Details::default())
    }

    fn visit_u64<E>(self, _: u64) -> Result<Details<'de>, E> {
        Ok(Details::default())
    }

    fn visit_f64<E>(self, _: f64) -> Result<Details<'de>, E> {
        Ok(Details::default())
    }

    fn visit_str<E>(self, _: &str) -> Result<Details<'de>, E> {
        Ok(Details::default())
    }

    fn visit_unit<E>(self) -> Result<Details<'de>, E> {
        Ok(Details::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::Index;

    #[test]
    fn detail_index_is_the_keys_place_in_the_list() {
        for (i, key) in DETAIL_KEYS.iter().enumerate() {
            assert_eq!(detail_index(key), Some(i), "{key}");
        }
        for other in ["", "types", "Type", "server_id", "via"] {
            assert_eq!(detail_index(other), None, "{other}");
        }
    }

    /// Events as ASA writes them, and near them: every shape of read member the skim takes
    /// or leaves, repeated members, escapes and numbers where nothing is read.
    const EVENTS: &[&str] = &[
        r#"{"id":"ag801Wtj58WV8rIF2-HDkw==","timestamp":"2024-03-05T01:02:03.123456789Z","details":{"actor":"18TGDjrSCM5QZkQQNunxkeC3UDanf2Xi6qR1JEMjP74=","client":"ErWhDzoR5wjcVBKDPEerfDaKIbnv4ZKTeT7Iec5oMBg=","session_type":"authenticated_client","target_server":"","team_id":"","team_name":"william-faulkner","trace_id":"Xk3p9QaB","type":"auth_token.issue","via":null}}"#,
        r#" { "id" : "e2" , "details" : { "servers" : [ "s1" , "s2", "s1", null, true ] , "server" : false, "n": -1.5e-3, "o": {"a": [1, {"b": "\"\\\/\b\f\n\r\t\u00e9"}]} } , "timestamp" : null } "#,
        r#"{"id": "e3", "details": {}, "details": {"user": "u1", "user": "u2"}, "id": "e4"}"#,
        r#"{"id": "e\"scaped", "details": "not an object", "timestamp": 17}"#,
        r#"{"id": "é€😀", "details": {"servers": [], "group": "g", "x": [[], {}, 0, 10, 0.5]}}"#,
        r#"{"details": [1, 2], "id": ["a", "b"], "timestamp": {"t": 1}}"#,
        r#"{"id": "e5", "detai\u006cs": {"user": "u"}, "details": {"servers": ["a", ["nested"]]}}"#,
        r#"{}"#,
        r#"[{"id": "not an object"}]"#,
    ];

    /// What `serde_json` makes of `text`, as [`Members`] (the path before the skim).
    fn by_serde(text: &str) -> Result<Members<'_>, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn the_events_asa_writes_are_skimmed() {
        for (i, text) in EVENTS.iter().enumerate() {
            let plain = scan_plain(text);
            assert_eq!(plain.is_some(), matches!(i, 0..=2 | 4 | 7), "{text}");
            if let Some(members) = plain {
                assert_eq!(Ok(members), by_serde(text), "{text}");
            }
        }
    }

    proptest! {
        // No failure files in the source tree (as in tests/fuzz.rs): a failure becomes a case
        // of `EVENTS` by hand.
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        /// Whatever the skim takes, cut short or with junk spliced in anywhere, it takes as
        /// `serde_json` does.
        #[test]
        fn what_the_skim_takes_serde_json_reads_the_same(
            text in prop::sample::select(EVENTS),
            at in any::<Index>(),
            junk in prop_oneof![
                r#"[ {}\[\]",:0-9a-z.eE+\t\n\\-]{1,3}"#,
                Just(r#""id":"x","#.to_string()),
                Just(r#""servers":["a"],"#.to_string()),
                Just(r#"\ud800"#.to_string()),
                Just(r#"\x"#.to_string()),
                Just("\u{1}".to_string()),
            ],
        ) {
            let cut = (0..=at.index(text.len() + 1)).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
            let spliced = format!("{}{junk}{}", &text[..cut], &text[cut..]);
            for text in [text, &text[..cut], &spliced] {
                if let Some(members) = scan_plain(text) {
                    prop_assert_eq!(Ok(members), by_serde(text), "{}", text);
                }
            }
        }
    }
}
