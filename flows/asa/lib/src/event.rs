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
//! | `team`      | the ASA team the event came from (set by S30; unset when there is none)    |
//!
//! A "reference" is a non-empty string; empty, `null`, non-string or unknown references give
//! `""`. "Gives nothing" is exactly that: a `target_user` that is no reference, or one that is
//! missing from the page's related objects, falls back to `user` (issue 16.6; the template only
//! fell back when the first key was no reference). Other `details` keys are ignored (they stay
//! in `raw_event`).
//!
//! A row borrows its texts: from the event's text (a string member without escapes, and
//! `raw_event` itself) and from the helpers' [`Answers`] (a column of one answer), so S30 stores
//! an event with the event copied nowhere in the flow.
//!
//! An event that cannot become a row ([`InvalidEvent`]: not JSON, not an object, no non-empty
//! string `id`) is not stored: S30/S31 answer with the reason and M10 quarantines it in
//! Rejected Events ([`crate::reject`]).

use std::borrow::Cow;
use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::answers::Answers;
use crate::enrich::Kind;
use crate::event_scan::{self, Member, Members};
use crate::time;

/// An Audit Events row, each column's text borrowed where it can be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventRow<'a> {
    pub id: Cow<'a, str>,
    pub timestamp: Cow<'a, str>,
    pub event_type: Cow<'a, str>,
    pub actor: Cow<'a, str>,
    pub user: Cow<'a, str>,
    pub client: Cow<'a, str>,
    pub group: Cow<'a, str>,
    pub project: Cow<'a, str>,
    pub hostname: Cow<'a, str>,
    pub server: Cow<'a, str>,
    pub gateway: Cow<'a, str>,
    pub from_addr: Cow<'a, str>,
    pub raw_event: Cow<'a, str>,
    /// `""`: none, and the column is left unset, as on rows stored before teams existed.
    pub team: Cow<'a, str>,
}

impl<'r> EventRow<'r> {
    /// `f` of the columns to store, `(name, cell(text))` in name order (the order the host
    /// matches them with the table's columns in, so it need not sort them), `team` only when
    /// the row has one.
    pub fn with_columns<'s, C, R>(
        &'s self,
        cell: impl Fn(&'s str) -> C,
        f: impl FnOnce(&[(&'static str, C)]) -> R,
    ) -> R {
        let all: [(&'static str, &'s str); 14] = [
            ("actor", &self.actor),
            ("client", &self.client),
            ("from_addr", &self.from_addr),
            ("gateway", &self.gateway),
            ("group", &self.group),
            ("hostname", &self.hostname),
            ("id", &self.id),
            ("project", &self.project),
            ("raw_event", &self.raw_event),
            ("server", &self.server),
            ("team", &self.team),
            ("timestamp", &self.timestamp),
            ("type", &self.event_type),
            ("user", &self.user),
        ];
        if self.team.is_empty() {
            // The columns but `team` (at 10).
            let stored: [(&'static str, C); 13] = std::array::from_fn(|i| {
                let (name, text) = all[if i < 10 { i } else { i + 1 }];
                (name, cell(text))
            });
            f(&stored)
        } else {
            f(&all.map(|(name, text)| (name, cell(text))))
        }
    }

    /// The column a helper fills.
    fn column_mut(&mut self, column: Column) -> &mut Cow<'r, str> {
        match column {
            Column::Actor => &mut self.actor,
            Column::User => &mut self.user,
            Column::Client => &mut self.client,
            Column::Group => &mut self.group,
            Column::Project => &mut self.project,
            Column::Server => &mut self.server,
            Column::Gateway => &mut self.gateway,
        }
    }
}

/// The row as a JSON object of its stored columns ([`EventRow::with_columns`]).
impl Serialize for EventRow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.with_columns(|text| text, |columns| s.collect_map(columns.iter().copied()))
    }
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
pub struct Lookup<'a> {
    pub column: Column,
    pub kind: Kind,
    pub refs: Refs<'a>,
    pub fallback: Refs<'a>,
}

/// The references of one `details` key (each a non-empty string, borrowed where it can be):
/// one, or the list of `servers` (each once, in order). Used as the slice of them.
#[derive(Debug, Clone, Eq)]
pub enum Refs<'a> {
    One(Option<Cow<'a, str>>),
    List(Vec<Cow<'a, str>>),
}

impl<'a> std::ops::Deref for Refs<'a> {
    type Target = [Cow<'a, str>];

    fn deref(&self) -> &[Cow<'a, str>] {
        match self {
            Refs::One(one) => one.as_slice(),
            Refs::List(list) => list,
        }
    }
}

impl PartialEq for Refs<'_> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

/// An event's row with its enrichment still to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan<'a> {
    /// The row with the raw columns filled, the helper columns and `team` empty.
    pub row: EventRow<'a>,
    /// The helper lookups, in column order (`None`: neither key holds a reference).
    pub lookups: [Option<Lookup<'a>>; 7],
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
pub fn plan(event: &Value) -> Result<Plan<'_>, InvalidEvent> {
    if !event.is_object() {
        return Err(not_an_object(event));
    }
    plan_members(Members::of_value(event), Cow::Owned(event.to_string()))
}

/// [`plan`] of an event given as JSON text, which becomes `raw_event` as it is (M10 passes each
/// event on exactly as ASA sent it, so it is never re-encoded).
///
/// The members the row reads are taken in one pass over the text (`event_scan`); only
/// a text the scan refuses is parsed whole, to say what is wrong with it (the scan reads every
/// object a parse reads, so that is no JSON or no object; should a parse ever read an object
/// the scan refused, the scan's reason is the answer).
pub fn plan_text(text: &str) -> Result<Plan<'_>, InvalidEvent> {
    let refused = match event_scan::scan(text) {
        Ok(members) => return plan_members(members, Cow::Borrowed(text.trim())),
        Err(e) => e,
    };
    match serde_json::from_str::<Value>(text) {
        Err(e) => Err(InvalidEvent(format!("not JSON ({e})"))),
        Ok(event) if !event.is_object() => Err(not_an_object(&event)),
        Ok(_) => Err(InvalidEvent(format!("not JSON ({refused})"))),
    }
}

/// The plan of an event (an object) from its members, with `raw_event`.
fn plan_members<'a>(
    mut members: Members<'a>,
    raw_event: Cow<'a, str>,
) -> Result<Plan<'a>, InvalidEvent> {
    let id = match members.id.take() {
        Some(Member::Str(id)) if !id.is_empty() => id,
        other => return Err(bad_id(other.map(Member::into_value).as_ref())),
    };
    let timestamp = members.timestamp.take().map_or(Cow::Borrowed(""), Member::text);
    let timestamp = time::iso_ms(&timestamp).map_or(timestamp, Cow::Owned);
    let mut text = |key| members.take_detail(key).map_or(Cow::Borrowed(""), Member::text);
    let row = EventRow {
        id,
        timestamp,
        event_type: text("type"),
        hostname: text("hostname"),
        from_addr: text("from_address"),
        raw_event,
        ..EventRow::default()
    };

    let servers = members.take_detail("servers").map_or_else(Vec::new, Member::references_once);
    let mut one = |key| Refs::One(members.take_detail(key).and_then(Member::reference));
    let none = || Refs::One(None);
    let lookups = [
        (Column::Actor, Kind::User, one("actor"), none()),
        (Column::User, Kind::User, one("target_user"), one("user")),
        (Column::Client, Kind::Client, one("client"), none()),
        (Column::Group, Kind::Group, one("group_id"), one("group")),
        (Column::Project, Kind::Project, one("project_id"), one("project")),
        (Column::Server, Kind::Server, one("server"), Refs::List(servers)),
        (Column::Gateway, Kind::Gateway, one("gateway"), none()),
    ]
    .map(|(column, kind, refs, fallback)| pair(column, kind, refs, fallback));
    Ok(Plan { row, lookups })
}

/// The lookup of a pair of keys: the first's references, falling back to the second's; `None`
/// when neither has any. A first key without references makes the second the first.
fn pair<'a>(column: Column, kind: Kind, refs: Refs<'a>, fallback: Refs<'a>) -> Option<Lookup<'a>> {
    match (refs.is_empty(), fallback.is_empty()) {
        (true, true) => None,
        (true, false) => Some(Lookup { column, kind, refs: fallback, fallback: Refs::One(None) }),
        (false, _) => Some(Lookup { column, kind, refs, fallback }),
    }
}

impl<'a> Plan<'a> {
    /// The row with its helper columns filled: `kind` of each reference as `answers` keeps it,
    /// or as `describe` gives it (then kept, so each distinct pair is asked once while
    /// `answers` keeps its batch), the non-empty texts joined with `"; "`. A column of one text
    /// borrows it from `answers`.
    pub fn resolve<'r, E>(
        self,
        answers: &'r mut Answers,
        mut describe: impl FnMut(Kind, &str) -> Result<String, E>,
    ) -> Result<EventRow<'r>, E>
    where
        'a: 'r,
    {
        // Every text the row needs is asked for first, in column order: a column's references,
        // then its fallback's when they give no text.
        for lookup in self.lookups.iter().flatten() {
            if !learn(answers, lookup.kind, &lookup.refs, &mut describe)? {
                learn(answers, lookup.kind, &lookup.fallback, &mut describe)?;
            }
        }
        let answers: &'r Answers = answers;
        let mut row: EventRow<'r> = self.row;
        for lookup in self.lookups.into_iter().flatten() {
            let mut text = joined(answers, lookup.kind, &lookup.refs);
            if text.is_empty() {
                text = joined(answers, lookup.kind, &lookup.fallback);
            }
            *row.column_mut(lookup.column) = text;
        }
        Ok(row)
    }
}

/// Asks `describe` for each of `refs` that `answers` does not know yet; whether any of them
/// has a text.
fn learn<E>(
    answers: &mut Answers,
    kind: Kind,
    refs: &[Cow<'_, str>],
    describe: &mut impl FnMut(Kind, &str) -> Result<String, E>,
) -> Result<bool, E> {
    let mut any = false;
    for r in refs {
        any |= answers.learn(kind, r, &mut *describe)?;
    }
    Ok(any)
}

/// The non-empty texts `answers` keeps for `kind` of `refs`, joined with `"; "` (a single text
/// borrowed).
fn joined<'r>(answers: &'r Answers, kind: Kind, refs: &[Cow<'_, str>]) -> Cow<'r, str> {
    let texts = || refs.iter().filter_map(|r| answers.text(kind, r)).filter(|t| !t.is_empty());
    let mut each = texts();
    match (each.next(), each.next()) {
        (None, _) => Cow::Borrowed(""),
        (Some(one), None) => Cow::Borrowed(one),
        (Some(_), Some(_)) => {
            let mut all = String::with_capacity(texts().map(|t| t.len() + 2).sum());
            for text in texts() {
                if !all.is_empty() {
                    all.push_str("; ");
                }
                all.push_str(text);
            }
            Cow::Owned(all)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::tests::doc_lookup;
    use serde_json::json;

    /// The row of `event`, its texts owned.
    fn row_of(event: Value) -> EventRow<'static> {
        let mut answers = Answers::default();
        let row = plan(&event)
            .unwrap()
            .resolve(&mut answers, |kind, r| kind.describe_ref(&json!(r), doc_lookup))
            .unwrap();
        let o = |text: Cow<'_, str>| Cow::Owned(text.into_owned());
        EventRow {
            id: o(row.id),
            timestamp: o(row.timestamp),
            event_type: o(row.event_type),
            actor: o(row.actor),
            user: o(row.user),
            client: o(row.client),
            group: o(row.group),
            project: o(row.project),
            hostname: o(row.hostname),
            server: o(row.server),
            gateway: o(row.gateway),
            from_addr: o(row.from_addr),
            raw_event: o(row.raw_event),
            team: o(row.team),
        }
    }

    /// The lookups of `plan`: each column's references.
    fn lookups<'p>(plan: &'p Plan<'_>) -> Vec<(Column, Vec<&'p str>)> {
        let refs = |l: &'p Lookup<'_>| l.refs.iter().map(|r| &**r).collect();
        plan.lookups.iter().flatten().map(|l| (l.column, refs(l))).collect()
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
        assert_eq!(lookups(&p), [(Column::User, vec!["u1"]), (Column::Server, vec!["s1", "s2"])]);
        for details in ["null", "[1, {\"a\": 2}]", "\"text\"", "3.5", "true"] {
            let text = format!(r#"{{"id": "e3", "details": {details}}}"#);
            let p = plan_text(&text).unwrap();
            assert_eq!((&*p.row.event_type, lookups(&p).len()), ("", 0), "{details}");
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
                raw_event: event.to_string().into(),
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
        assert_eq!((&*row.user, &*row.group), (JASON, "compsons"));
        assert_eq!(row.project, "the-sound-and-the-fury");
    }

    #[test]
    fn bad_references_and_odd_events() {
        let row = row_of(
            json!({"id": "x", "timestamp": "not a time", "details": {"actor": "missing", "client": 12,
            "hostname": null, "from_address": 42, "extra": {"a": 1}}}),
        );
        assert_eq!((&*row.actor, &*row.client, &*row.hostname), ("", "", ""));
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
        let mut answers = Answers::default();
        let describe = |kind: Kind, r: &str| {
            asked.push((kind, r.to_string()));
            Ok::<_, ()>(format!("{}:{r}", kind.flow()))
        };
        let row = plan(&event).unwrap().resolve(&mut answers, describe).unwrap();
        assert_eq!(asked, vec![(Kind::User, "a".to_string()), (Kind::Server, "s".to_string())]);
        assert_eq!((&*row.actor, &*row.user, &*row.server), ("S37:a", "S37:a", "S36:s"));
        // A column of one answer borrows it; several are joined.
        assert!(matches!(row.actor, Cow::Borrowed(_)));
        let event = json!({"id": "x", "details": {"servers": ["s", "", "t", "u", "s"]}});
        let describe = |_, r: &str| Ok::<_, ()>(if r == "t" { String::new() } else { r.into() });
        let row = plan(&event).unwrap().resolve(&mut answers, describe).unwrap();
        assert_eq!(row.server, "S36:s; u");
    }

    #[test]
    fn a_row_stores_its_team_only_when_it_has_one() {
        let names = |row: &EventRow| {
            row.with_columns(|t| t.len(), |c| c.iter().map(|(n, _)| *n).collect::<Vec<_>>())
        };
        // In name order, each once: the host matches them without sorting.
        let in_order = |names: &[&str]| names.windows(2).all(|w| w[0] < w[1]);
        let mut row = EventRow { id: "x".into(), ..EventRow::default() };
        assert_eq!(names(&row).len(), 13);
        assert!(in_order(&names(&row)), "{:?}", names(&row));
        assert!(!names(&row).contains(&"team"));
        assert!(serde_json::to_value(&row).unwrap().get("team").is_none());
        row.team = "acme".into();
        assert_eq!(names(&row).len(), 14);
        assert!(in_order(&names(&row)), "{:?}", names(&row));
        assert!(names(&row).contains(&"team"));
        let v = serde_json::to_value(&row).unwrap();
        assert_eq!((&v["team"], &v["id"]), (&json!("acme"), &json!("x")));
        // Each name with its own text.
        row.event_type = "t.y".into();
        row.user = "u".into();
        let texts = row.with_columns(|t| t, |c| c.to_vec());
        assert_eq!(texts.len(), 14);
        for (name, text) in texts {
            assert!(v.get(name).is_some(), "{name}");
            let want = match name {
                "type" => "t.y",
                "user" => "u",
                "id" => "x",
                "team" => "acme",
                _ => "",
            };
            assert_eq!(text, want, "{name}");
        }
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
        let event = json!({"id": "x", "details": {"servers": ["b", "a", "b", "", "a", "c"]}});
        let plan = plan(&event).unwrap();
        assert_eq!(lookups(&plan), [(Column::Server, vec!["b", "a", "c"])]);
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
