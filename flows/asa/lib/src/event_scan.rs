//! One pass over an event's JSON text that keeps only the members its Audit Events row reads
//! (`id`, `timestamp` and the mapped `details` keys), each parsed as a `serde_json::Value` would
//! hold it: a repeated member keeps its last value, a `details` that is no object counts as
//! empty, every other member is skipped without being built. S30 handles an event per call, and
//! building the whole event as a `Value` tree (a map node and a string for every member) was
//! most of its allocations.
//!
//! A text that is no JSON object gives `None`; [`crate::event`] then parses it as a `Value` to
//! say exactly what is wrong.

use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

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

/// The members of an event that its row reads.
#[derive(Debug, Default)]
pub(crate) struct Scanned {
    id: Option<Value>,
    timestamp: Option<Value>,
    /// The read `details` keys in the order met (a repeated key: the last one counts).
    details: Vec<(&'static str, Value)>,
}

impl Scanned {
    /// The event's `id` member, taken out.
    pub(crate) fn take_id(&mut self) -> Option<Value> {
        self.id.take()
    }

    /// The event's `timestamp` member.
    pub(crate) fn timestamp(&self) -> Option<&Value> {
        self.timestamp.as_ref()
    }

    /// `details.<key>` (`None` for a key the row does not read).
    pub(crate) fn detail(&self, key: &str) -> Option<&Value> {
        self.details.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

/// The members of `text`, or `None` when it is not one JSON object.
pub(crate) fn scan(text: &str) -> Option<Scanned> {
    serde_json::from_str(text).ok()
}

impl<'de> Deserialize<'de> for Scanned {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scanned, D::Error> {
        d.deserialize_map(EventVisitor)
    }
}

/// A member name: one the row reads, or any other.
enum Key {
    Id,
    Timestamp,
    Details,
    Detail(&'static str),
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
            DETAIL_KEYS.iter().find(|k| **k == name).map_or(Key::Other, |k| Key::Detail(k))
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
    type Value = Scanned;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an audit event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scanned, A::Error> {
        let mut s = Scanned::default();
        while let Some(Named(key)) = map.next_key::<Named<false>>()? {
            match key {
                Key::Id => s.id = Some(map.next_value()?),
                Key::Timestamp => s.timestamp = Some(map.next_value()?),
                Key::Details => s.details = map.next_value::<Details>()?.0,
                Key::Detail(_) | Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(s)
    }
}

/// `details`: its read keys when it is an object, none when it is anything else.
struct Details(Vec<(&'static str, Value)>);

impl<'de> Deserialize<'de> for Details {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Details, D::Error> {
        d.deserialize_any(DetailsVisitor)
    }
}

struct DetailsVisitor;

impl<'de> Visitor<'de> for DetailsVisitor {
    type Value = Details;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Details, A::Error> {
        let mut read = Vec::with_capacity(8);
        while let Some(Named(key)) = map.next_key::<Named<true>>()? {
            match key {
                Key::Detail(k) => read.push((k, map.next_value()?)),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Details(read))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Details, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Details(Vec::new()))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Details, E> {
        Ok(Details(Vec::new()))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Details, E> {
        Ok(Details(Vec::new()))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Details, E> {
        Ok(Details(Vec::new()))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Details, E> {
        Ok(Details(Vec::new()))
    }

    fn visit_str<E>(self, _: &str) -> Result<Details, E> {
        Ok(Details(Vec::new()))
    }

    fn visit_unit<E>(self) -> Result<Details, E> {
        Ok(Details(Vec::new()))
    }
}
