//! An ASA audit event → its Audit Events row (asa-api.md §8.6), with the template's bugs fixed.
//!
//! Which `details` key feeds which column:
//!
//! | column      | value                                                                      |
//! |-------------|----------------------------------------------------------------------------|
//! | `id`        | `event.id` (required)                                                      |
//! | `timestamp` | `event.timestamp` as the millisecond "isoString" (kept as is if unparsable)|
//! | `type`      | `details.type`                                                             |
//! | `actor`     | S37(`actor`)                                                               |
//! | `user`      | S37(`target_user`), or S37(`user`) when that gives nothing                 |
//! | `client`    | S32(`client`)                                                              |
//! | `group`     | S34(`group_id`), or S34(`group`) when that gives nothing                   |
//! | `project`   | S35(`project_id`), or S35(`project`) when that gives nothing               |
//! | `hostname`  | `details.hostname` as text                                                 |
//! | `server`    | S36(`server`), or when that gives nothing, S36 of each `servers[]` (each reference once, in order), joined with `"; "` |
//! | `gateway`   | S33(`gateway`) — new column; the template never called S33                 |
//! | `from_addr` | `details.from_address` as text                                             |
//! | `raw_event` | the whole event, as the JSON text ASA sent (the template stored `details` only) |
//!
//! A "reference" is a non-empty string; empty, `null`, non-string or unknown references give
//! `""`. "Gives nothing" is exactly that: a `target_user` that is no reference, or one that is
//! missing from the page's related objects, falls back to `user` (issue 16.6; the template only
//! fell back when the first key was no reference). Other `details` keys are ignored (they stay
//! in `raw_event`).
//!
//! An event that cannot become a row ([`InvalidEvent`]: not JSON, not an object, no non-empty
//! string `id`) is not stored: S30/S31 answer with the reason and M10 quarantines it in
//! Rejected Events ([`crate::reject`]).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::enrich::Kind;
use crate::{event_scan, ref_id, text_of, time};

/// An Audit Events row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRow {
    pub id: String,
    pub timestamp: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub actor: String,
    pub user: String,
    pub client: String,
    pub group: String,
    pub project: String,
    pub hostname: String,
    pub server: String,
    pub gateway: String,
    pub from_addr: String,
    pub raw_event: String,
}

/// A column filled by a helper flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Actor,
    User,
    Client,
    Group,
    Project,
    Server,
    Gateway,
}

/// One helper lookup: `kind` of each reference in `refs`, the texts joined with `"; "`; when
/// they give no text at all, the same with `fallback` (the second key of a pair).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub column: Column,
    pub kind: Kind,
    pub refs: Vec<String>,
    pub fallback: Vec<String>,
}

/// An event's row with its enrichment still to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The row with the raw columns filled and the helper columns empty.
    pub row: EventRow,
    /// The helper lookups, in column order.
    pub lookups: Vec<Lookup>,
}

/// An event that cannot become a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEvent(pub String);

impl fmt::Display for InvalidEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid audit event: {}", self.0)
    }
}

impl std::error::Error for InvalidEvent {}

impl InvalidEvent {
    /// What is wrong, without the "invalid audit event" prefix (Rejected Events' `reason`).
    pub fn reason(&self) -> &str {
        &self.0
    }
}

/// The `id` of an event given as JSON text, refused for the same reasons as [`plan_text`]
/// (S31 checks this before it looks the id up).
pub fn checked_id(text: &str) -> Result<String, InvalidEvent> {
    let event: Value =
        serde_json::from_str(text).map_err(|e| InvalidEvent(format!("not JSON ({e})")))?;
    if !event.is_object() {
        return Err(not_an_object(&event));
    }
    event_id(&event).map(str::to_string)
}

fn not_an_object(event: &Value) -> InvalidEvent {
    InvalidEvent(format!("expected a JSON object, not {event}"))
}

/// The event's `id`: a non-empty string.
pub fn event_id(event: &Value) -> Result<&str, InvalidEvent> {
    match event.get("id") {
        Some(Value::String(id)) if !id.is_empty() => Ok(id),
        other => Err(bad_id(other)),
    }
}

/// Why `id` (a member's value, or none) is no event id.
fn bad_id(id: Option<&Value>) -> InvalidEvent {
    match id {
        Some(other) => InvalidEvent(format!("`id` must be a non-empty string, not {other}")),
        None => InvalidEvent("no `id`".to_string()),
    }
}

/// The row of `event` and the lookups that complete it; `raw_event` is `event` encoded.
pub fn plan(event: &Value) -> Result<Plan, InvalidEvent> {
    plan_with_raw(event, || event.to_string())
}

/// [`plan`] of an event given as JSON text, which becomes `raw_event` as it is (M10 passes each
/// event on exactly as ASA sent it, so it is never re-encoded).
///
/// The members the row reads are taken in one pass over the text ([`crate::event_scan`]); only
/// a text that is no JSON object is parsed whole, to say what is wrong with it.
pub fn plan_text(text: &str) -> Result<Plan, InvalidEvent> {
    if let Some(mut scanned) = event_scan::scan(text) {
        let id = match scanned.take_id() {
            Some(Value::String(id)) if !id.is_empty() => id,
            other => return Err(bad_id(other.as_ref())),
        };
        return Ok(plan_members(
            id,
            scanned.timestamp(),
            |k| scanned.detail(k),
            text.trim().to_string(),
        ));
    }
    let event: Value =
        serde_json::from_str(text).map_err(|e| InvalidEvent(format!("not JSON ({e})")))?;
    plan_with_raw(&event, || text.trim().to_string())
}

fn plan_with_raw(event: &Value, raw: impl FnOnce() -> String) -> Result<Plan, InvalidEvent> {
    if !event.is_object() {
        return Err(not_an_object(event));
    }
    let id = event_id(event)?.to_string();
    let empty = Map::new();
    let details = event.get("details").and_then(Value::as_object).unwrap_or(&empty);
    Ok(plan_members(id, event.get("timestamp"), |k| details.get(k), raw()))
}

/// The plan of an event whose `id` is checked, given its `timestamp` and a reader of its
/// `details` keys.
fn plan_members<'a>(
    id: String,
    timestamp: Option<&Value>,
    details: impl Fn(&str) -> Option<&'a Value>,
    raw_event: String,
) -> Plan {
    let timestamp = match timestamp {
        Some(Value::String(raw)) => time::iso_ms(raw).unwrap_or_else(|| raw.clone()),
        other => {
            let raw = text_of(other);
            time::iso_ms(&raw).unwrap_or(raw)
        }
    };
    let row = EventRow {
        id,
        timestamp,
        event_type: text_of(details("type")),
        hostname: text_of(details("hostname")),
        from_addr: text_of(details("from_address")),
        raw_event,
        ..EventRow::default()
    };

    let one = |key: &str| ref_id(details(key)).map(|r| vec![r.to_string()]).unwrap_or_default();
    let servers = servers_once(details("servers"));
    let lookups = [
        (Column::Actor, Kind::User, one("actor"), Vec::new()),
        (Column::User, Kind::User, one("target_user"), one("user")),
        (Column::Client, Kind::Client, one("client"), Vec::new()),
        (Column::Group, Kind::Group, one("group_id"), one("group")),
        (Column::Project, Kind::Project, one("project_id"), one("project")),
        (Column::Server, Kind::Server, one("server"), servers),
        (Column::Gateway, Kind::Gateway, one("gateway"), Vec::new()),
    ]
    .into_iter()
    .filter_map(|(column, kind, refs, fallback)| pair(column, kind, refs, fallback))
    .collect();
    Plan { row, lookups }
}

/// The lookup of a pair of keys: the first's references, falling back to the second's; `None`
/// when neither has any. A first key without references makes the second the first.
fn pair(column: Column, kind: Kind, refs: Vec<String>, fallback: Vec<String>) -> Option<Lookup> {
    match (refs.is_empty(), fallback.is_empty()) {
        (true, true) => None,
        (true, false) => Some(Lookup { column, kind, refs: fallback, fallback: Vec::new() }),
        (false, _) => Some(Lookup { column, kind, refs, fallback }),
    }
}

/// The references of a `servers` list, each once, in the order of first appearance (ASA may
/// list a server twice); entries that are no reference are skipped.
fn servers_once(list: Option<&Value>) -> Vec<String> {
    let mut refs: Vec<String> = Vec::new();
    for r in list.and_then(Value::as_array).into_iter().flatten().filter_map(|s| ref_id(Some(s))) {
        if !refs.iter().any(|seen| seen == r) {
            refs.push(r.to_string());
        }
    }
    refs
}

impl Plan {
    /// Fills the helper columns with `describe(kind, reference)` (each distinct pair asked
    /// once; empty texts are left out of a `"; "` list).
    pub fn resolve<E>(
        self,
        mut describe: impl FnMut(Kind, &str) -> Result<String, E>,
    ) -> Result<EventRow, E> {
        let mut memo = Vec::new();
        let mut row = self.row;
        for lookup in self.lookups {
            let mut value = describe_all(lookup.kind, lookup.refs, &mut memo, &mut describe)?;
            if value.is_empty() && !lookup.fallback.is_empty() {
                value = describe_all(lookup.kind, lookup.fallback, &mut memo, &mut describe)?;
            }
            match lookup.column {
                Column::Actor => row.actor = value,
                Column::User => row.user = value,
                Column::Client => row.client = value,
                Column::Group => row.group = value,
                Column::Project => row.project = value,
                Column::Server => row.server = value,
                Column::Gateway => row.gateway = value,
            }
        }
        Ok(row)
    }
}

/// `describe` of each reference (each distinct pair asked once across the event, through
/// `memo`: an event has a handful of references, so a list searched in order serves), the
/// non-empty texts joined with `"; "`.
fn describe_all<E>(
    kind: Kind,
    refs: Vec<String>,
    memo: &mut Vec<(Kind, String, String)>,
    describe: &mut impl FnMut(Kind, &str) -> Result<String, E>,
) -> Result<String, E> {
    let mut joined = String::new();
    for r in refs {
        let known = memo.iter().position(|(k, m, _)| *k == kind && *m == r);
        let text = match known.and_then(|i| memo.get(i)) {
            Some((_, _, t)) => t,
            None => {
                let t = describe(kind, &r)?;
                memo.push((kind, r, t));
                memo.last().map_or("", |(_, _, t)| t.as_str())
            }
        };
        if !text.is_empty() {
            if !joined.is_empty() {
                joined.push_str("; ");
            }
            joined.push_str(text);
        }
    }
    Ok(joined)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::tests::doc_lookup;
    use serde_json::json;

    fn row_of(event: Value) -> EventRow {
        plan(&event).unwrap().resolve(|kind, r| kind.describe_ref(&json!(r), doc_lookup)).unwrap()
    }

    const JASON: &str = "Jason.Compson.IV (status: ACTIVE , usertype: human)";
    const SHREVE: &str = "shreve (status: ACTIVE , usertype: service)";
    const LAPTOP: &str = "Jason.Compson.IV (hostname: Absalom, OS: macOS 10.14.6, state: ACTIVE)";
    const HARVARD: &str =
        "harvard (project: the-sound-and-the-fury, canonical name: , access address: , OS: Ubuntu 16.04, OS type: linux)";

    /// The members that are read are read like a parsed `Value` would give them: the last of
    /// a repeated member, `details` that is no object as empty, everything else skipped.
    #[test]
    fn only_the_mapped_members_are_read() {
        let text = r#"{"id": "first", "extra": {"nested": [1, {"id": "no"}]}, "id": "e2",
            "timestamp": 1709600523, "details": {"type": 7, "type": "user.updated",
            "hostname": null, "from_address": ["10.0.0.1"], "servers": ["s1", "", 5, "s2"],
            "unknown": {"details": {"type": "no"}}, "actor": "", "user": "u1"}}"#;
        let p = plan_text(text).unwrap();
        assert_eq!(p.row.id, "e2");
        assert_eq!(p.row.timestamp, "1709600523");
        assert_eq!(p.row.event_type, "user.updated");
        assert_eq!(p.row.hostname, "");
        assert_eq!(p.row.from_addr, r#"["10.0.0.1"]"#);
        let lookups: Vec<(Column, Vec<&str>)> = p
            .lookups
            .iter()
            .map(|l| (l.column, l.refs.iter().map(|r| r.as_str()).collect()))
            .collect();
        assert_eq!(lookups, [(Column::User, vec!["u1"]), (Column::Server, vec!["s1", "s2"])]);
        for details in ["null", "[1, {\"a\": 2}]", "\"text\"", "3.5", "true"] {
            let text = format!(r#"{{"id": "e3", "details": {details}}}"#);
            let p = plan_text(&text).unwrap();
            assert_eq!((p.row.event_type.as_str(), p.lookups.len()), ("", 0), "{details}");
        }
        assert_eq!(
            plan_text("[1]").unwrap_err().to_string(),
            "invalid audit event: expected a JSON object, not [1]"
        );
        assert_eq!(
            plan(&json!("x")).unwrap_err().to_string(),
            "invalid audit event: expected a JSON object, not \"x\""
        );
        assert_eq!(
            plan_text(r#"{"id": null}"#).unwrap_err().to_string(),
            "invalid audit event: `id` must be a non-empty string, not null"
        );
        // The same event as a Value or as text: the same row but for raw_event.
        let event: Value = serde_json::from_str(text).unwrap();
        let mut from_value = plan(&event).unwrap();
        from_value.row.raw_event = plan_text(text).unwrap().row.raw_event;
        assert_eq!(from_value, plan_text(text).unwrap());
    }

    #[test]
    fn plan_text_keeps_the_event_as_sent() {
        let text = r#" {"timestamp": "2024-03-05T01:02:03Z", "id": "e1",
            "details": {"type": "user.created", "hostname": "h"}} "#;
        let plan = plan_text(text).unwrap();
        assert_eq!(plan.row.raw_event, text.trim());
        assert_eq!(plan.row.id, "e1");
        assert_eq!(plan.row.event_type, "user.created");
        assert_eq!(plan.row.timestamp, "2024-03-05T01:02:03.000Z");
        let err = plan_text(r#"{"id": "e1""#).unwrap_err().to_string();
        assert!(err.starts_with("invalid audit event: not JSON ("), "{err}");
    }

    #[test]
    fn auth_token_issue() {
        let event = json!({"id": "ag801Wtj58WV8rIF2-HDkw==", "timestamp": "2024-03-05T01:02:03.123456789Z",
            "details": {"actor": "18TGDjrSCM5QZkQQNunxkeC3UDanf2Xi6qR1JEMjP74=", "client": "ErWhDzoR5wjcVBKDPEerfDaKIbnv4ZKTeT7Iec5oMBg=",
                        "session_type": "authenticated_client", "target_server": "", "team_id": "", "team_name": "william-faulkner",
                        "trace_id": "Xk3p9QaB", "type": "auth_token.issue", "via": null}});
        let row = row_of(event.clone());
        assert_eq!(
            row,
            EventRow {
                id: "ag801Wtj58WV8rIF2-HDkw==".into(),
                timestamp: "2024-03-05T01:02:03.123Z".into(),
                event_type: "auth_token.issue".into(),
                actor: JASON.into(),
                client: LAPTOP.into(),
                raw_event: event.to_string(),
                ..EventRow::default()
            }
        );
        assert_eq!(serde_json::from_str::<Value>(&row.raw_event).unwrap(), event);
    }

    #[test]
    fn servers_list_fills_server_and_gateway_is_enriched() {
        let row = row_of(
            json!({"id": "i8ya5Th8OEVvfAdjVqutzA==", "timestamp": "2024-03-05T01:02:05.002113977Z",
            "details": {"actor": "18TGDjrSCM5QZkQQNunxkeC3UDanf2Xi6qR1JEMjP74=", "client": "ErWhDzoR5wjcVBKDPEerfDaKIbnv4ZKTeT7Iec5oMBg=",
                        "gateway": "1OiMcuUovtx5c0LAP9ejRsTHhXygPUZwE7ZJPEVVUeQ=", "servers": ["3Sn5zM8t4WkGLbzsVcjuac2r3bzPP0QoybMbYd8J23g="],
                        "team_id": "", "team_name": "william-faulkner", "trace_id": "Xk3p9QaB", "type": "gateway_creds.issue"}}),
        );
        assert_eq!(row.server, HARVARD);
        assert_eq!(
            row.gateway,
            "gw-jefferson (access_address: gw.example.com, default_address: 10.0.0.5)"
        );
        assert_eq!(row.timestamp, "2024-03-05T01:02:05.002Z");
        let row = row_of(json!({"id": "x", "details": {"server": "", "servers": [
            "3Sn5zM8t4WkGLbzsVcjuac2r3bzPP0QoybMbYd8J23g=", "unknown-ref", null, 7, "3Sn5zM8t4WkGLbzsVcjuac2r3bzPP0QoybMbYd8J23g="]}}));
        // Listed twice, shown once (issue 16.6).
        assert_eq!(row.server, HARVARD);
    }

    #[test]
    fn ssh_login_uses_user_server_project_and_raw_fields() {
        let row = row_of(
            json!({"id": "Z7kq13frIPufiAboZJeQqQ==", "timestamp": "2024-03-05T01:02:06.734950120Z",
            "details": {"from_address": "203.0.113.24", "project": "caw2gnnL5vXLvCuoFUiDqaKeVRfR88A8rE85zjIlBgs=",
                        "server": "3Sn5zM8t4WkGLbzsVcjuac2r3bzPP0QoybMbYd8J23g=", "ssh_algorithm": "ecdsa-sha2-nistp256-cert-v01@openssh.com",
                        "team_id": "", "team_name": "william-faulkner", "trace_id": "Lm4Qr7Tz", "type": "server.ssh_login",
                        "unix_user_name": "jason_compson_iv", "user": "18TGDjrSCM5QZkQQNunxkeC3UDanf2Xi6qR1JEMjP74=", "hostname": "harvard"}}),
        );
        assert_eq!(row.user, JASON);
        assert_eq!(row.actor, "");
        assert_eq!(row.server, HARVARD);
        assert_eq!(row.project, "the-sound-and-the-fury");
        assert_eq!(row.from_addr, "203.0.113.24");
        assert_eq!(row.hostname, "harvard");
        assert_eq!(row.event_type, "server.ssh_login");
    }

    #[test]
    fn target_user_wins_over_user_and_group_id_over_group() {
        let row = row_of(
            json!({"id": "BhWkbSLddi4MQmFTNnRTVg==", "timestamp": "2024-03-05T01:10:00.000000001Z",
            "details": {"actor": "4PzUzk49Dj3gkfIUFbt80BH6wojEICCoefKMKkOH35s=", "group": "Pvt5nNnEEnRq4qGTMbeyYn5mPiWnsAHkwNzF4hvHbDg=",
                        "target_user": "gMMtgekb3qBM16OBmzInX8MpivTH7IfrAJlSfQQc7Vw=", "user": "18TGDjrSCM5QZkQQNunxkeC3UDanf2Xi6qR1JEMjP74=",
                        "team_id": "", "team_name": "william-faulkner", "trace_id": "Pq8Wn2Ds", "type": "member.add"}}),
        );
        assert_eq!(row.actor, SHREVE);
        assert_eq!(row.user, "Quentin.Compson (status: ACTIVE , usertype: human)");
        assert_eq!(row.group, "compsons");
        assert_eq!(row.timestamp, "2024-03-05T01:10:00.000Z");
        let row = row_of(
            json!({"id": "x", "details": {"target_user": "", "user": "18TGDjrSCM5QZkQQNunxkeC3UDanf2Xi6qR1JEMjP74=",
            "group_id": null, "group": "Pvt5nNnEEnRq4qGTMbeyYn5mPiWnsAHkwNzF4hvHbDg=", "project_id": 3,
            "project": "caw2gnnL5vXLvCuoFUiDqaKeVRfR88A8rE85zjIlBgs="}}),
        );
        assert_eq!((row.user.as_str(), row.group.as_str()), (JASON, "compsons"));
        assert_eq!(row.project, "the-sound-and-the-fury");
    }

    #[test]
    fn bad_references_and_odd_events() {
        let row = row_of(
            json!({"id": "x", "timestamp": "not a time", "details": {"actor": "missing", "client": 12,
            "hostname": null, "from_address": 42, "extra": {"a": 1}}}),
        );
        assert_eq!((row.actor.as_str(), row.client.as_str(), row.hostname.as_str()), ("", "", ""));
        assert_eq!(row.from_addr, "42");
        assert_eq!(row.timestamp, "not a time");
        let row = row_of(json!({"id": "y", "details": null}));
        assert_eq!(row.event_type, "");
        assert!(plan(&json!({"timestamp": "x"})).is_err());
        assert!(plan(&json!({"id": ""})).is_err());
        assert!(plan(&json!({"id": 5})).is_err());
        assert!(plan(&json!([1])).is_err());
        assert!(plan(&json!({"id": 5}))
            .unwrap_err()
            .to_string()
            .starts_with("invalid audit event"));
    }

    #[test]
    fn each_reference_is_described_once() {
        let event =
            json!({"id": "x", "details": {"actor": "a", "user": "a", "servers": ["s", "s"]}});
        let mut asked = Vec::new();
        let row = plan(&event)
            .unwrap()
            .resolve(|kind, r| {
                asked.push((kind, r.to_string()));
                Ok::<_, ()>(format!("{}:{r}", kind.flow()))
            })
            .unwrap();
        assert_eq!(asked, vec![(Kind::User, "a".to_string()), (Kind::Server, "s".to_string())]);
        assert_eq!(
            (row.actor.as_str(), row.user.as_str(), row.server.as_str()),
            ("S37:a", "S37:a", "S36:s")
        );
    }

    /// Issue 16.6: a `target_user` (or `group_id`, `project_id`, `server`) that is a reference
    /// but not among the page's related objects falls back to the second key of its pair.
    #[test]
    fn a_first_key_missing_from_the_related_objects_falls_back_to_the_second() {
        let row = row_of(json!({"id": "x", "details": {
            "target_user": "not-in-related-objects", "user": "18TGDjrSCM5QZkQQNunxkeC3UDanf2Xi6qR1JEMjP74=",
            "group_id": "gone", "group": "Pvt5nNnEEnRq4qGTMbeyYn5mPiWnsAHkwNzF4hvHbDg=",
            "project_id": "gone", "project": "caw2gnnL5vXLvCuoFUiDqaKeVRfR88A8rE85zjIlBgs=",
            "server": "gone", "servers": ["3Sn5zM8t4WkGLbzsVcjuac2r3bzPP0QoybMbYd8J23g="]}}));
        assert_eq!(row.user, JASON);
        assert_eq!(row.group, "compsons");
        assert_eq!(row.project, "the-sound-and-the-fury");
        assert_eq!(row.server, HARVARD);
        // Both missing: empty, as before; the first found wins over the second.
        let row =
            row_of(json!({"id": "x", "details": {"target_user": "gone", "user": "gone too"}}));
        assert_eq!(row.user, "");
        let row = row_of(json!({"id": "x", "details": {
            "target_user": "gMMtgekb3qBM16OBmzInX8MpivTH7IfrAJlSfQQc7Vw=", "user": "18TGDjrSCM5QZkQQNunxkeC3UDanf2Xi6qR1JEMjP74="}}));
        assert_eq!(row.user, "Quentin.Compson (status: ACTIVE , usertype: human)");
    }

    /// Issue 16.6: a server listed twice in `servers[]` appears once, in first-seen order.
    #[test]
    fn a_server_listed_twice_appears_once_in_order() {
        let plan = plan(&json!({"id": "x", "details": {"servers": ["b", "a", "b", "", "a", "c"]}}))
            .unwrap();
        assert_eq!(plan.lookups.len(), 1);
        assert_eq!(plan.lookups[0].refs, ["b", "a", "c"]);
        let harvard = "3Sn5zM8t4WkGLbzsVcjuac2r3bzPP0QoybMbYd8J23g=";
        let row = row_of(json!({"id": "x", "details": {"servers": [harvard, "unknown", harvard]}}));
        assert_eq!(row.server, HARVARD);
    }

    /// The reasons Rejected Events shows; S31 (`checked_id`) and S30 (`plan_text`) agree.
    #[test]
    fn checked_id_refuses_what_plan_text_refuses() {
        assert_eq!(checked_id(r#"{"id": "e1", "details": {}}"#).unwrap(), "e1");
        for (text, reason) in [
            (r#"{"details": {}}"#, "no `id`"),
            (r#"{"id": 42}"#, "`id` must be a non-empty string, not 42"),
            (r#"{"id": ""}"#, r#"`id` must be a non-empty string, not """#),
            (r#""text""#, r#"expected a JSON object, not "text""#),
            ("[1]", "expected a JSON object, not [1]"),
            ("null", "expected a JSON object, not null"),
        ] {
            assert_eq!(checked_id(text).unwrap_err().reason(), reason, "{text}");
            assert_eq!(plan_text(text).unwrap_err().reason(), reason, "{text}");
        }
        assert!(checked_id("{").unwrap_err().reason().starts_with("not JSON ("));
    }

    #[test]
    fn row_serializes_with_the_column_names() {
        let v = serde_json::to_value(EventRow::default()).unwrap();
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "actor",
                "client",
                "from_addr",
                "gateway",
                "group",
                "hostname",
                "id",
                "project",
                "raw_event",
                "server",
                "timestamp",
                "type",
                "user"
            ]
        );
    }
}
