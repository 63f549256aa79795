//! The ASA package's tables and the JSON that its flows pass to each other.
//!
//! Field names are the tables' column names and the template's card names (`asaTeam`,
//! `LastOffset`, `eventswritten`, …). Reading is lenient, as Workflows' loose typing is: a
//! `null` or absent column reads as `""`/`0`, and a number where text is expected (or the reverse)
//! is converted.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{de, Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::api::null_as_default;
use crate::canonical;

/// Table names (`tables/*.yaml`).
pub const ENVIRONMENT_VARIABLES: &str = "Environment Variables";
pub const AUDIT_CHECKPOINTS: &str = "Audit Checkpoints";
pub const AUDIT_EVENTS: &str = "Audit Events";
pub const AUDIT_RELATED_OBJECTS: &str = "Audit Related Objects";
pub const EXECUTION_LOG: &str = "Execution Log";

/// Text from a string, number or boolean; `null` reads as `""`.
pub fn lenient_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s),
        v @ (Value::Number(_) | Value::Bool(_)) => Ok(v.to_string()),
        other => Err(de::Error::custom(format!("expected text, found {other}"))),
    }
}

/// A count from a whole non-negative number (`6`, `6.0`) or numeric text (`"6"`); `null` reads as 0.
pub fn lenient_count<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = Value::deserialize(d)?;
    count_of(&v).ok_or_else(|| {
        de::Error::custom(format!("expected a whole number of 0 or more, found {v}"))
    })
}

/// See [`lenient_count`].
pub fn count_of(v: &Value) -> Option<u64> {
    fn whole(f: f64) -> Option<u64> {
        (f.fract() == 0.0 && (0.0..9.0e15).contains(&f)).then_some(f as u64)
    }
    match v {
        Value::Null => Some(0),
        Value::Number(n) => n.as_u64().or_else(|| whole(n.as_f64()?)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<u64>().ok().or_else(|| whole(s.parse::<f64>().ok()?))
        }
        _ => None,
    }
}

/// An input with no fields (`{}`; unknown fields are ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// The Environment Variables row, and U01's output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Env {
    #[serde(default, deserialize_with = "lenient_text")]
    pub asa_team: String,
    #[serde(default, deserialize_with = "lenient_text")]
    pub search_count: String,
    #[serde(default, deserialize_with = "lenient_text")]
    pub asa_base_url: String,
    /// The blob store O10 writes to (`"archive"` by default).
    #[serde(default, deserialize_with = "lenient_text")]
    pub offload_store: String,
    /// The object-name prefix O10 writes under (`"asa/audit-events/"` by default).
    #[serde(default, deserialize_with = "lenient_text")]
    pub offload_prefix: String,
    /// Rows per O10 object (`"5000"` by default, 1..=50000).
    #[serde(default, deserialize_with = "lenient_text")]
    pub offload_batch: String,
    /// O20's Splunk HEC endpoint (`""` = not set).
    #[serde(default, deserialize_with = "lenient_text")]
    pub hec_url: String,
    /// The name of the secret holding this team's API key id (`""` = `ASA_KEY_ID`).
    #[serde(default, deserialize_with = "lenient_text")]
    pub key_id_secret: String,
    /// The name of the secret holding this team's API key secret (`""` = `ASA_KEY_SECRET`).
    #[serde(default, deserialize_with = "lenient_text")]
    pub key_secret_secret: String,
    /// What M10 does with a checkpoint offset auditsV2 no longer knows: `fail` (default) or
    /// `restart` (see `asa_lib::lost_offset`).
    #[serde(default, deserialize_with = "lenient_text")]
    pub on_lost_offset: String,
}

/// The Audit Checkpoints row, and U10's output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Checkpoint {
    #[serde(default, deserialize_with = "lenient_text")]
    pub last_offset: String,
    #[serde(default, deserialize_with = "lenient_text")]
    pub last_date_time: String,
    #[serde(default, deserialize_with = "lenient_count")]
    pub last_count: u64,
}

/// U20's input: one Execution Log entry (`eventswritten` may be given as a number).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecLogIn {
    #[serde(default, deserialize_with = "lenient_text")]
    pub eventswritten: String,
    #[serde(default, deserialize_with = "lenient_text")]
    pub notes: String,
    /// The ASA team the entry is about (`""`: none, e.g. an offload).
    #[serde(default, deserialize_with = "lenient_text", skip_serializing_if = "String::is_empty")]
    pub team: String,
    /// Events newly put into Rejected Events by this run (absent = 0; a number or numeric text).
    #[serde(default, deserialize_with = "lenient_count")]
    pub eventsrejected: u64,
}

impl ExecLogIn {
    pub fn new(eventswritten: impl ToString, notes: &str) -> Self {
        ExecLogIn {
            eventswritten: eventswritten.to_string(),
            notes: notes.to_string(),
            ..ExecLogIn::default()
        }
    }

    /// The entry with `eventsrejected` set (M10's runs).
    pub fn with_rejected(self, eventsrejected: u64) -> Self {
        ExecLogIn { eventsrejected, ..self }
    }
}

/// An Execution Log row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecLogRow {
    #[serde(default, deserialize_with = "lenient_text")]
    pub datetime: String,
    #[serde(default, deserialize_with = "lenient_text")]
    pub eventswritten: String,
    #[serde(default, deserialize_with = "lenient_text")]
    pub notes: String,
    /// The ASA team (`""` = none).
    #[serde(default, deserialize_with = "lenient_text")]
    pub team: String,
    /// Events newly put into Rejected Events (text, like `eventswritten`; `""` on rows written
    /// before the column existed).
    #[serde(default, deserialize_with = "lenient_text")]
    pub eventsrejected: String,
}

/// An Audit Related Objects row: the page's `related_objects` entry `id → {type, object}`,
/// with `object` kept as JSON text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelatedObjectRow {
    pub id: String,
    #[serde(rename = "type", default, deserialize_with = "lenient_text")]
    pub kind: String,
    #[serde(default, deserialize_with = "lenient_text")]
    pub object: String,
}

/// S20's input: a page's `related_objects` (`null` or absent = none).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RelatedObjectsIn {
    #[serde(default, deserialize_with = "null_as_default")]
    pub related_objects: Map<String, Value>,
}

impl RelatedObjectsIn {
    /// S21's input for each entry, in id order: [`RelatedItem::from_entry`], encoded.
    pub fn items(self) -> Result<Vec<String>, serde_json::Error> {
        let entries = self.related_objects.into_iter();
        entries
            .map(|(id, value)| serde_json::to_string(&RelatedItem::from_entry(id, value)))
            .collect()
    }
}

/// [`RelatedObjectsIn`] as M10 sends it, and as S20 reads it first: the page's text, not
/// re-encoded (`None` = `null`).
#[derive(Debug, Serialize, Deserialize)]
pub struct RelatedObjectsText<'a> {
    #[serde(default, borrow)]
    pub related_objects: Option<&'a RawValue>,
}

impl RelatedObjectsText<'_> {
    /// [`RelatedObjectsText::items`] of S20's input `text` when it is `{"related_objects":…}`
    /// with a page as `serde_json` writes it (as M10 passes the server's text on): the page is
    /// checked and split, down to its entries' members, in one pass, and nothing is copied but
    /// the items. `None` for any other text: read it as a [`RelatedObjectsText`].
    pub fn items_of(text: &str) -> Option<Vec<String>> {
        let page = text.strip_prefix(r#"{"related_objects":"#)?.strip_suffix('}')?;
        if !page.starts_with('{') {
            return None;
        }
        let mut items = Vec::new();
        let (mut kind, mut object) = (None, None);
        for member in canonical::members(page, 2)? {
            match (member.depth, member.key) {
                (2, "type") => kind = Some(member.value),
                (2, "object") => object = Some(member.value),
                (2, _) => {}
                _ => {
                    // An entry: the members just before it were its own (only an object's
                    // members are two deep).
                    let (kind, object) = (kind.take(), object.take());
                    items.push(RelatedItemText::of_parts(member.key, kind, object)?.encoded()?);
                }
            }
        }
        Some(items)
    }

    /// [`RelatedObjectsIn::items`] of the same input, without building any object, when the
    /// page's text is as `serde_json` writes it ([`canonical`]: then each object's text is
    /// what encoding its `Value` gives). `None` for any other text: read it as a
    /// [`RelatedObjectsIn`].
    pub fn items(&self) -> Option<Vec<String>> {
        let Some(page) = self.related_objects.map(RawValue::get) else {
            return Some(Vec::new());
        };
        if !page.starts_with('{') || !canonical::is_canonical(page) {
            return None;
        }
        // A canonical object's keys come once each, without escapes.
        let entries: BTreeMap<&str, &RawValue> = serde_json::from_str(page).ok()?;
        entries
            .into_iter()
            .map(|(id, entry)| RelatedItemText::of_entry(id, entry)?.encoded())
            .collect()
    }
}

/// S21's input: one `related_objects` entry as Map-to-List gives it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RelatedItem {
    pub id: String,
    #[serde(rename = "type", default, deserialize_with = "lenient_text")]
    pub kind: String,
    #[serde(default)]
    pub object: Value,
}

impl RelatedItem {
    /// The item for entry `id → value` (`value` = `{"type": …, "object": …}`).
    pub fn from_entry(id: String, value: Value) -> Self {
        let (kind, object) = match value {
            Value::Object(mut entry) => {
                (crate::text_of(entry.get("type")), entry.remove("object").unwrap_or(Value::Null))
            }
            _ => (String::new(), Value::Null),
        };
        RelatedItem { id, kind, object }
    }

    /// The row S21 stores (`object` as compact JSON).
    pub fn into_row(self) -> RelatedObjectRow {
        // `to_string` of a `Value` is the same text, written through `fmt` a piece at a time.
        let object = serde_json::to_string(&self.object).unwrap_or_else(|_| "null".into());
        RelatedObjectRow { id: self.id, kind: self.kind, object }
    }
}

/// S21's input (a [`RelatedItem`]) with its object kept as JSON text: how S21 reads an input
/// not laid out as S20 writes it ([`RelatedItemText::row_of`]), and how S20 reads an entry of
/// a page it cannot split in one pass.
#[derive(Debug, Deserialize)]
pub struct RelatedItemText<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(rename = "type", default, deserialize_with = "lenient_cow")]
    pub kind: Cow<'a, str>,
    #[serde(default, borrow)]
    pub object: Option<&'a RawValue>,
}

/// A `related_objects` entry's members that S21 takes, as their texts.
#[derive(Deserialize)]
struct EntryText<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<&'a RawValue>,
    #[serde(default, borrow)]
    object: Option<&'a RawValue>,
}

impl<'a> RelatedItemText<'a> {
    /// [`RelatedItem::from_entry`] of entry `id → entry`, its texts borrowed; `entry` is as
    /// `serde_json` writes it ([`canonical`]), so the text of a member is that of its `Value`.
    fn of_entry(id: &'a str, entry: &'a RawValue) -> Option<ItemParts<'a>> {
        let entry = match entry.get().starts_with('{') {
            true => serde_json::from_str(entry.get()).ok()?,
            false => EntryText { kind: None, object: None },
        };
        Self::of_parts(id, entry.kind.map(RawValue::get), entry.object.map(RawValue::get))
    }

    /// The item for entry `id` with the texts of its `type` and `object` members (each as
    /// `serde_json` writes it; `null` reads as absent, as an `Option` member reads it).
    fn of_parts(
        id: &'a str,
        kind: Option<&'a str>,
        object: Option<&'a str>,
    ) -> Option<ItemParts<'a>> {
        // `text_of` the type: a string decoded, anything else as its JSON.
        let kind = match kind.filter(|k| *k != "null") {
            None => Cow::Borrowed(""),
            Some(text) if text.starts_with('"') => match crate::teams::json_string(text)? {
                (kind, "") => kind,
                _ => return None,
            },
            Some(other) => Cow::Borrowed(other),
        };
        Some(ItemParts { id, kind, object: object.filter(|o| *o != "null") })
    }

    /// S21's row for its input `text` when it is the item as S20 writes it
    /// (`{"id":…,"type":…,"object":…}`, the object as `serde_json` writes it), taken apart
    /// without reading the object more than to check it: [`RelatedItemText::into_row`] of the
    /// same text. `None` for any other text.
    pub fn row_of(text: &str) -> Option<RelatedObjectRow> {
        let rest = text.strip_prefix(r#"{"id":"#)?;
        let (id, rest) = crate::teams::json_string(rest)?;
        let (kind, rest) = crate::teams::json_string(rest.strip_prefix(r#","type":"#)?)?;
        let object = rest.strip_prefix(r#","object":"#)?.strip_suffix('}')?;
        canonical::is_canonical(object).then(|| RelatedObjectRow {
            id: id.into_owned(),
            kind: kind.into_owned(),
            object: object.to_string(),
        })
    }

    /// The row S21 stores, when the object's text is as `serde_json` writes it ([`canonical`],
    /// as S20 writes it): then it is the text [`RelatedItem::into_row`] gives, kept without
    /// being read. `None` for any other object: read the input as a [`RelatedItem`].
    pub fn into_row(self) -> Option<RelatedObjectRow> {
        let object = match self.object.map(RawValue::get) {
            None => "null".to_string(),
            Some(text) if canonical::is_canonical(text) => text.to_string(),
            Some(_) => return None,
        };
        Some(RelatedObjectRow { id: self.id.into_owned(), kind: self.kind.into_owned(), object })
    }
}

/// One item S20 hands to S21, its texts borrowed from the page.
struct ItemParts<'a> {
    id: &'a str,
    kind: Cow<'a, str>,
    /// The object's text as `serde_json` writes it; `None`: `null`.
    object: Option<&'a str>,
}

impl ItemParts<'_> {
    /// The item as JSON text (what encoding the [`RelatedItem`] gives):
    /// `{"id":…,"type":…,"object":…}`.
    fn encoded(&self) -> Option<String> {
        let object = self.object.unwrap_or("null");
        let mut text = Vec::with_capacity(self.id.len() + self.kind.len() + object.len() + 32);
        text.extend_from_slice(br#"{"id":"#);
        serde_json::to_writer(&mut text, self.id).ok()?;
        text.extend_from_slice(br#","type":"#);
        serde_json::to_writer(&mut text, &*self.kind).ok()?;
        text.extend_from_slice(br#","object":"#);
        text.extend_from_slice(object.as_bytes());
        text.push(b'}');
        String::from_utf8(text).ok()
    }
}

/// [`lenient_text`], as a `Cow`.
fn lenient_cow<'de, 'a, D: Deserializer<'de>>(d: D) -> Result<Cow<'a, str>, D::Error> {
    lenient_text(d).map(Cow::Owned)
}

/// S32–S37's input: a `details` value that should be a reference id (anything is accepted);
/// S30 writes it from the reference it holds (`RefIn<&str>`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RefIn<R = Value> {
    #[serde(rename = "ref", default)]
    pub reference: R,
}

/// S32–S37's output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextOut {
    pub text: String,
}

/// U00's input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthIn {
    /// Ignore a cached token and fetch a new one.
    #[serde(default)]
    pub refresh: bool,
    /// The ASA team (absent = the default team).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
}

/// U00's output: the header to send.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthHeader {
    #[serde(rename = "Authorization")]
    pub authorization: String,
}

/// U11's and U11a's input: the `link` header value (absent, `null` or `""` = none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkIn {
    #[serde(default, deserialize_with = "lenient_text")]
    pub link: String,
}

/// U11's output (and U12's input): the decoded offset, `""` on the last page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetIo {
    #[serde(default, deserialize_with = "lenient_text")]
    pub offset: String,
}

/// U11a's output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HasNextOut {
    #[serde(rename = "hasNext")]
    pub has_next: bool,
}

/// U13's input: the number of events of the last page (a number or numeric text).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountIo {
    #[serde(deserialize_with = "lenient_count")]
    pub count: u64,
}

/// U04's output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedOut {
    pub deleted: u64,
}

/// S30's and S31's output (and S21's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredOut {
    pub stored: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Why the event was refused and not stored (see [`crate::reject`]); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
}

/// What M10 reads of each S30 and S31 result ([`StoredOut`]): whether the event was stored,
/// and why not. Its `id` is skipped, not copied (a page has a thousand results).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct StoredFlags {
    pub stored: bool,
    #[serde(default)]
    pub rejected: Option<String>,
}

impl From<StoredOut> for StoredFlags {
    fn from(out: StoredOut) -> StoredFlags {
        StoredFlags { stored: out.stored, rejected: out.rejected }
    }
}

/// S20's output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCountOut {
    pub stored: u64,
}

/// M10's output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MainOut {
    /// Events on the page fetched.
    pub events: u64,
    /// The count written to the Execution Log.
    pub written: u64,
    /// The Execution Log note (the branch taken).
    pub note: String,
    /// The checkpoint's offset after the run.
    pub offset: String,
    /// Events of the page newly put into Rejected Events.
    #[serde(default)]
    pub rejected: u64,
}

/// O10's input: overrides of the offload settings, each optional (`{}` = the settings).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectOffloadIn {
    /// The blob store (instead of `offloadStore`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// The object-name prefix (instead of `offloadPrefix`; `""` = the store's root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Rows per object (instead of `offloadBatch`): a number or numeric text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<Value>,
}

/// U14's output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffloadableOut {
    /// How many of the oldest rows may be offloaded now.
    pub offloadable: u64,
    /// Rows in Audit Events.
    pub stored: u64,
    /// Rows of the page at the checkpoint (kept until the checkpoint moves).
    pub pending: u64,
}

/// O10's output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectOffloadOut {
    /// Rows written to the object and deleted from Audit Events.
    pub offloaded: u64,
    /// The object's name (`""` when there was nothing to offload).
    pub object: String,
    /// The batch was full and rows remain (another run has been requested).
    pub more: bool,
}

/// O20's input: `{}` or `{"batch": n}` (a number or numeric text).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HecOffloadIn {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<Value>,
}

/// O20's output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HecOffloadOut {
    /// Rows sent, acknowledged and deleted from Audit Events.
    pub offloaded: u64,
    /// The batch was full and rows remain (another run has been requested).
    pub more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_read_leniently() {
        let cp: Checkpoint =
            serde_json::from_value(json!({"_id": 1, "LastOffset": null, "LastCount": 6.0}))
                .unwrap();
        assert_eq!(
            cp,
            Checkpoint { last_offset: String::new(), last_date_time: String::new(), last_count: 6 }
        );
        let cp: Checkpoint = serde_json::from_value(json!({"LastCount": "100"})).unwrap();
        assert_eq!(cp.last_count, 100);
        assert!(serde_json::from_value::<Checkpoint>(json!({"LastCount": -1})).is_err());
        assert!(serde_json::from_value::<Checkpoint>(json!({"LastCount": 1.5})).is_err());
        let env: Env =
            serde_json::from_value(json!({"asaTeam": "william-faulkner", "searchCount": 100}))
                .unwrap();
        assert_eq!(env.search_count, "100");
        assert_eq!(env.asa_base_url, "");
        let c: CountIo = serde_json::from_value(json!({"count": "6"})).unwrap();
        assert_eq!(c.count, 6);
        assert_eq!(count_of(&json!("6.0")), Some(6));
    }

    #[test]
    fn outputs_use_the_template_names() {
        assert_eq!(
            serde_json::to_value(Checkpoint {
                last_offset: "a".into(),
                last_date_time: String::new(),
                last_count: 3
            })
            .unwrap(),
            json!({"LastOffset": "a", "LastDateTime": "", "LastCount": 3})
        );
        assert_eq!(
            serde_json::to_value(AuthHeader { authorization: "Bearer t".into() }).unwrap(),
            json!({"Authorization": "Bearer t"})
        );
        assert_eq!(
            serde_json::to_value(HasNextOut { has_next: true }).unwrap(),
            json!({"hasNext": true})
        );
        assert_eq!(
            serde_json::to_value(Env {
                asa_team: "t".into(),
                search_count: "100".into(),
                asa_base_url: "u".into(),
                offload_store: "archive".into(),
                offload_prefix: "p/".into(),
                offload_batch: "5000".into(),
                hec_url: String::new(),
                key_id_secret: "ASA_KEY_ID".into(),
                key_secret_secret: "ASA_KEY_SECRET".into(),
                on_lost_offset: "fail".into(),
            })
            .unwrap(),
            json!({"asaTeam": "t", "searchCount": "100", "asaBaseUrl": "u", "offloadStore": "archive",
                   "offloadPrefix": "p/", "offloadBatch": "5000", "hecUrl": "",
                   "keyIdSecret": "ASA_KEY_ID", "keySecretSecret": "ASA_KEY_SECRET",
                   "onLostOffset": "fail"})
        );
    }

    #[test]
    fn related_entry_to_row() {
        let value =
            json!({"type": "group", "object": {"name": "compsons", "roles": ["access_user"]}});
        let row = RelatedItem::from_entry(
            "Pvt5nNnEEnRq4qGTMbeyYn5mPiWnsAHkwNzF4hvHbDg=".into(),
            value.clone(),
        )
        .into_row();
        assert_eq!(row.kind, "group");
        assert_eq!(serde_json::from_str::<Value>(&row.object).unwrap(), value["object"]);
        let row = RelatedItem::from_entry("x".into(), Value::Null).into_row();
        assert_eq!((row.kind.as_str(), row.object.as_str()), ("", "null"));
    }
}
