//! Several ASA teams: which Environment Variables row and which Audit Checkpoints row belong
//! to a team, the team-carrying inputs of the per-team flows, and the envelope M10 wraps each
//! event in so that S30 can fill the `team` column of Audit Events.
//!
//! The rules (issue 16.8):
//! - one Environment Variables row per team; the oldest row is the **default team**, so a
//!   one-team setup needs nothing new. A flow input without `team` means the default team;
//! - each team names the secrets holding its key pair (`keyIdSecret`, `keySecretSecret`;
//!   empty = `ASA_KEY_ID` / `ASA_KEY_SECRET`);
//! - one Audit Checkpoints row per team (column `team`). A row with an empty `team`, written
//!   before teams existed, is the default team's until the first write for the default team
//!   claims it (sets `team`);
//! - at most [`MAX_TEAMS`] teams: `serve` runs one M10 per team, and the host keeps at most 8
//!   distinct waiting runs of one flow (`scheduler::MAX_WAITING_PER_FLOW`).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::env::{validate_team, InvalidSetting};
use crate::event::{self, InvalidEvent, Plan};
use crate::model::Env;

/// The most teams U02 accepts: the host lets at most 8 distinct runs of one flow wait, and M10
/// requests one run per team.
pub const MAX_TEAMS: usize = 8;
/// The secret holding the key id when a team's row names none.
pub const DEFAULT_KEY_ID_SECRET: &str = "ASA_KEY_ID";
/// The secret holding the key secret when a team's row names none.
pub const DEFAULT_KEY_SECRET_SECRET: &str = "ASA_KEY_SECRET";

/// A secret's name as the host's secrets are named: letters, digits and `_`; the error names
/// setting `name`.
pub fn validate_secret_name(name: &str, secret: &str) -> Result<String, InvalidSetting> {
    let s = secret.trim();
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(InvalidSetting(format!(
            "{name} {s:?} must be a secret's name (letters, digits and '_')"
        )));
    }
    Ok(s.to_string())
}

/// The input of the flows that act on one team (U01, U03, U10, M10): `{}` or `{"team": "t"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamIn {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
}

impl TeamIn {
    /// The named team in its canonical (lower-case) form, `None` for the default team.
    pub fn name(&self) -> Result<Option<String>, InvalidSetting> {
        self.team.as_deref().map(validate_team).transpose()
    }

    /// The input naming `team`.
    pub fn of(team: &str) -> TeamIn {
        TeamIn { team: Some(team.to_string()) }
    }
}

/// U12's input (and output): the offset of the next page, for a team.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamOffset {
    #[serde(default, deserialize_with = "crate::model::lenient_text")]
    pub offset: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
}

/// U13's input (and output): how many events of the page at the checkpoint are stored, for a
/// team.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamCount {
    #[serde(deserialize_with = "crate::model::lenient_count")]
    pub count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
}

/// U05's output (and M10's when it requested one run per team): the teams, default first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamsOut {
    pub teams: Vec<String>,
}

/// A row's team in its canonical form (`""` for a row without one; an invalid name is kept
/// lower-cased, so that it is still found and U01 reports it).
pub fn canonical(team: &str) -> String {
    validate_team(team).unwrap_or_else(|_| team.trim().to_ascii_lowercase())
}

/// The teams of the Environment Variables rows (oldest first), without empty names.
pub fn team_names(rows: &[Env]) -> Vec<String> {
    rows.iter().map(|r| canonical(&r.asa_team)).filter(|t| !t.is_empty()).collect()
}

/// The error for a team that has no Environment Variables row.
fn unknown_team(team: &str, rows: &[Env]) -> InvalidSetting {
    let names = team_names(rows);
    let known = if names.is_empty() { "none".to_string() } else { names.join(", ") };
    InvalidSetting(format!(
        "Environment Variables: ASA team {team:?} has no row (teams: {known}); add it with U02 {{\"team\": \"{team}\", ...}}"
    ))
}

/// The index of team `team`'s row (`None` = the default team, the oldest row). `Ok(None)`:
/// there is no row at all and the default team was asked for (U01 then says how to set one).
pub fn find_row(rows: &[Env], team: Option<&str>) -> Result<Option<usize>, InvalidSetting> {
    match team {
        None => Ok((!rows.is_empty()).then_some(0)),
        Some(t) => match rows.iter().position(|r| canonical(&r.asa_team) == t) {
            Some(i) => Ok(Some(i)),
            None => Err(unknown_team(t, rows)),
        },
    }
}

/// What U02 does with the Environment Variables rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetPlan {
    /// Update row `index` (set `asaTeam` too when it is `Some`: a new team's name, or the
    /// team of a row that had none).
    Update { index: usize, asa_team: Option<String> },
    /// Insert a row for a new team.
    Insert { asa_team: Option<String> },
    /// Delete row `index`.
    Delete { index: usize },
}

/// U02's decision. `team`: the input's `team` (canonical), `renamed`: the input's `asaTeam`
/// (canonical), `remove`: the input's `remove`.
pub fn plan_set(
    rows: &[Env],
    team: Option<&str>,
    renamed: Option<&str>,
    remove: bool,
) -> Result<SetPlan, InvalidSetting> {
    let names: Vec<String> = rows.iter().map(|r| canonical(&r.asa_team)).collect();
    let Some(team) = team else {
        if remove {
            return Err(InvalidSetting(
                "U02: remove needs the team to remove: {\"team\": \"name\", \"remove\": true}"
                    .to_string(),
            ));
        }
        // The default team's row, as before teams existed.
        if let Some(new) = renamed {
            if names.iter().skip(1).any(|n| n == new) {
                return Err(InvalidSetting(format!(
                    "asaTeam {new:?} is already another team's row; change that one with {{\"team\": \"{new}\", ...}}"
                )));
            }
        }
        return Ok(match rows.is_empty() {
            true => SetPlan::Insert { asa_team: None },
            false => SetPlan::Update { index: 0, asa_team: None },
        });
    };
    let index = names.iter().position(|n| n == team);
    if remove {
        return match index {
            None => Err(unknown_team(team, rows)),
            Some(0) if rows.len() > 1 => Err(InvalidSetting(format!(
                "team {team:?} is the default team (the oldest row) and other teams exist ({}); remove those first",
                names[1..].join(", ")
            ))),
            Some(index) => Ok(SetPlan::Delete { index }),
        };
    }
    let new_name = renamed.filter(|r| *r != team);
    if let Some(new) = new_name {
        if names.iter().any(|n| n == new) {
            return Err(InvalidSetting(format!("asaTeam {new:?} is already another team's row")));
        }
    }
    match index {
        Some(index) => {
            Ok(SetPlan::Update { index, asa_team: new_name.map(str::to_string) })
        }
        // The oldest row without a team yet becomes this team's (a first U02 with a team).
        None if names.first().is_some_and(String::is_empty) => Ok(SetPlan::Update {
            index: 0,
            asa_team: Some(new_name.unwrap_or(team).to_string()),
        }),
        None if rows.len() >= MAX_TEAMS => Err(InvalidSetting(format!(
            "at most {MAX_TEAMS} ASA teams (serve runs one M10 per team); remove one with {{\"team\": \"name\", \"remove\": true}}"
        ))),
        None => Ok(SetPlan::Insert { asa_team: Some(new_name.unwrap_or(team).to_string()) }),
    }
}

/// The index of team `team`'s Audit Checkpoints row, given each row's `team` column: the row
/// with that team; for the default team, else the row written before teams existed (empty
/// `team`).
pub fn checkpoint_row(row_teams: &[String], team: &str, default_team: &str) -> Option<usize> {
    row_teams.iter().position(|t| canonical(t) == team).or_else(|| {
        (team == default_team || team.is_empty())
            .then(|| row_teams.iter().position(|t| t.trim().is_empty()))
            .flatten()
    })
}

/// The team an Audit Events row (or checkpoint row) belongs to: its `team`, or the default
/// team for rows stored before teams existed.
pub fn owner<'a>(team: &'a str, default_team: &'a str) -> &'a str {
    if team.trim().is_empty() {
        default_team
    } else {
        team
    }
}

/// U14 with several teams: how many of the oldest Audit Events may leave the table, given the
/// team each of the oldest rows belongs to (`oldest_owners`, oldest first) and, per team with a
/// checkpoint, how many of its rows are not on the page at its checkpoint (`allowed`: its
/// stored rows minus its `LastCount`; a team's rows are in the table in the order they were
/// stored, so its pending page is its newest `LastCount` rows). The count stops before the
/// first row that is on some team's pending page; teams without a checkpoint have none.
pub fn offloadable_prefix(oldest_owners: &[&str], allowed: &[(String, u64)]) -> u64 {
    let mut seen: Vec<u64> = vec![0; allowed.len()];
    for (n, owner) in oldest_owners.iter().enumerate() {
        if let Some(i) = allowed.iter().position(|(t, _)| t == owner) {
            seen[i] = seen[i].saturating_add(1);
            if seen[i] > allowed[i].1 {
                return n as u64;
            }
        }
    }
    oldest_owners.len() as u64
}

/// S30's and S31's input: `{"team": "t", "batch": "b", "event": <the event as ASA sent it>}`
/// (`batch`: see [`Opened::batch`]; absent counts as `""`). A bare event is accepted too (team
/// and batch `""`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    team: Cow<'a, str>,
    #[serde(default, borrow)]
    batch: Cow<'a, str>,
    #[serde(borrow)]
    event: &'a RawValue,
}

/// The envelope as M10 writes it.
#[derive(Serialize)]
struct EnvelopeOut<'a> {
    team: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    batch: &'a str,
    event: &'a RawValue,
}

/// S30's input, opened.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened<'a> {
    /// Borrowed from the input unless it has escapes (so are `batch` and `event`).
    pub team: Cow<'a, str>,
    /// M10's name for the for-each the event came in: unique to one run of M10 and one page,
    /// so the answers of the pure helpers (S32–S37, over that page's related objects) may be
    /// kept for the batch's other events. `""`: keep nothing.
    pub batch: Cow<'a, str>,
    /// The event's text, exactly as ASA sent it.
    pub event: &'a str,
}

/// The team, the batch and the event's text of S30's input.
pub fn open_envelope(text: &str) -> Opened<'_> {
    match serde_json::from_str::<Envelope>(text) {
        Ok(env) => Opened { team: env.team, batch: env.batch, event: env.event.get() },
        Err(_) => Opened { team: Cow::Borrowed(""), batch: Cow::Borrowed(""), event: text },
    }
}

/// S30's input opened and its event planned: [`open_envelope`], then [`event::plan_text`] of the
/// event. An envelope as M10 writes it is split without reading the event first, so the event's
/// text is read once (a third of S30's JSON work was finding where the event ends); whenever
/// that split does not plan, the input is opened as [`open_envelope`] does, so the answer is
/// always the same as theirs.
pub fn open_and_plan(text: &str) -> (Opened<'_>, Result<Plan<'_>, InvalidEvent>) {
    if let Some(opened) = open_as_written(text) {
        if let Ok(plan) = event::plan_text(opened.event) {
            return (opened, Ok(plan));
        }
    }
    let opened = open_envelope(text);
    let plan = event::plan_text(opened.event);
    (opened, plan)
}

/// The envelope as M10 writes it (`{"team":"…","batch":"…","event":…}`: compact, in this
/// order, the event last) split into its parts without reading the event; `None` for any other
/// text. Only a plan of the event shows that the split is the one a parse would make.
fn open_as_written(text: &str) -> Option<Opened<'_>> {
    let rest = text.strip_prefix(r#"{"team":"#)?;
    let (team, rest) = json_string(rest)?;
    let rest = rest.strip_prefix(r#","batch":"#)?;
    let (batch, rest) = json_string(rest)?;
    let event = rest.strip_prefix(r#","event":"#)?.strip_suffix('}')?.trim_end();
    event.starts_with('{').then_some(Opened { team, batch, event })
}

/// The JSON string that `text` starts with, decoded, and the text after it: borrowed when it
/// has nothing to decode (no escape, no control character, which JSON refuses unescaped).
pub(crate) fn json_string(text: &str) -> Option<(Cow<'_, str>, &str)> {
    let bytes = text.as_bytes();
    if bytes.first() != Some(&b'"') {
        return None;
    }
    let mut plain = true;
    let mut i = 1;
    loop {
        i = next_special(bytes, i);
        match *bytes.get(i)? {
            // An escape: the next byte is not the end (never part of a multi-byte character).
            b'\\' => {
                plain = false;
                i += 2;
            }
            b'"' => {
                let (quoted, rest) = text.split_at_checked(i + 1)?;
                let decoded = match quoted.get(1..i) {
                    Some(inner) if plain => Cow::Borrowed(inner),
                    _ => Cow::Owned(serde_json::from_str(quoted).ok()?),
                };
                return Some((decoded, rest));
            }
            // A control character.
            _ => {
                plain = false;
                i += 1;
            }
        }
    }
}

/// The index of the first byte from `from` on that is `"`, `\` or a control character (below
/// 0x20), `bytes.len()` if none is. Eight bytes at a time: the batch names S30 reads from
/// every envelope are long, and a byte loop was a twentieth of S30's time.
fn next_special(bytes: &[u8], from: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte of `v` below `n` (n ≤ 0x80). A byte above one that is flagged
    // may be flagged wrongly (the borrow), so only the lowest flag is exact: enough here.
    let below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGH;
    let Some(tail) = bytes.get(from..) else {
        return bytes.len();
    };
    let (words, _) = tail.as_chunks::<8>();
    for (n, word) in words.iter().enumerate() {
        let v = u64::from_le_bytes(*word);
        let hits = below(v ^ (ONES * u64::from(b'"')), 1)
            | below(v ^ (ONES * u64::from(b'\\')), 1)
            | below(v, 0x20);
        if hits != 0 {
            return from + n * 8 + (hits.trailing_zeros() / 8) as usize;
        }
    }
    let checked = from + words.len() * 8;
    tail.get(words.len() * 8..)
        .and_then(|rest| rest.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20))
        .map_or(bytes.len(), |p| checked + p)
}

/// M10's envelopes for one team and batch: `{"team":…,"batch":…,"event":<event>}`, the
/// event's text (as ASA sent it) copied as it is, never parsed again. Everything before the
/// event is the same for a whole page, so it is written (and escaped) once.
#[derive(Debug, Clone)]
pub struct Envelopes {
    /// The envelope up to its event: what `serde_json` writes before the event's text.
    head: String,
}

impl Envelopes {
    /// The envelopes of `team`'s events in batch `batch` (`""`: no batch member).
    pub fn new(team: &str, batch: &str) -> Envelopes {
        // What serde_json writes for a one-character event, without that event and the `}`:
        // serializing strings cannot fail, and `0` is one character of JSON.
        let zero = RawValue::from_string("0".to_string()).ok();
        let whole = zero
            .and_then(|event| {
                serde_json::to_string(&EnvelopeOut { team, batch, event: &event }).ok()
            })
            .unwrap_or_default();
        let head = whole.strip_suffix("0}").unwrap_or_default().to_string();
        Envelopes { head }
    }

    /// The envelope of `event`.
    pub fn wrap(&self, event: &RawValue) -> String {
        let mut out = String::with_capacity(self.head.len() + event.get().len() + 1);
        self.write(&mut out, event);
        out
    }

    /// Appends the envelope of `event` to `out`.
    fn write(&self, out: &mut String, event: &RawValue) {
        let event = event.get();
        if self.head.is_empty() {
            out.push_str(event);
            return;
        }
        out.push_str(&self.head);
        out.push_str(event);
        out.push('}');
    }

    /// The envelopes of a page's `events`, in one buffer (a page is a thousand of them: one
    /// allocation instead of one each); [`Wrapped::get`] gives each one.
    pub fn wrap_all(&self, events: &[&RawValue]) -> Wrapped {
        let size = events.iter().map(|e| self.head.len() + e.get().len() + 1).sum();
        let mut text = String::with_capacity(size);
        let mut ends = Vec::with_capacity(events.len());
        for event in events {
            self.write(&mut text, event);
            ends.push(text.len());
        }
        Wrapped { text, ends }
    }
}

/// A page's envelopes, one after another in one text ([`Envelopes::wrap_all`]).
pub struct Wrapped {
    text: String,
    /// Where each envelope ends in `text` (the next one starts there).
    ends: Vec<usize>,
}

impl Wrapped {
    /// Every envelope, in the order of the events.
    pub fn get(&self) -> Vec<&str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, &end)| self.text.get(start..end).unwrap_or_default())
            .collect()
    }
}

/// The envelope of `event` for team `team`, in batch `batch` (one [`Envelopes::wrap`]).
pub fn envelope(team: &str, batch: &str, event: &RawValue) -> String {
    Envelopes::new(team, batch).wrap(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The word-at-a-time scan finds what a byte loop finds, from any start.
        #[test]
        fn next_special_is_the_first_special_byte(
            bytes in proptest::collection::vec(prop_oneof![Just(b'"'), Just(b'\\'), 0u8..0x20, 0x20u8..=0xff, Just(b'a')], 0..40),
            from in 0usize..45,
        ) {
            let naive = bytes.get(from..).and_then(|t| t.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)).map_or(bytes.len(), |p| from + p);
            prop_assert_eq!(next_special(&bytes, from), naive);
        }

        /// A JSON string at the start of a text reads as serde_json reads it.
        #[test]
        fn json_string_reads_as_serde_json(s in "\\PC{0,30}", tail in "[,}a-z]{0,3}") {
            let quoted = serde_json::to_string(&s).unwrap();
            let text = format!("{quoted}{tail}");
            let (read, rest) = json_string(&text).unwrap();
            prop_assert_eq!(read, s);
            prop_assert_eq!(rest, tail);
            // Cut anywhere inside, it is no string.
            for cut in 1..quoted.len() {
                if let Some(part) = text.get(..cut) {
                    prop_assert!(json_string(part).is_none(), "{part:?}");
                }
            }
        }
    }

    #[test]
    fn a_pages_envelopes_in_one_buffer_are_each_events_own() {
        let events: Vec<Box<RawValue>> = [r#"{"id": "a"}"#, "7", r#""é\"x""#, "{}"]
            .iter()
            .map(|t| RawValue::from_string(t.to_string()).unwrap())
            .collect();
        let events: Vec<&RawValue> = events.iter().map(|e| &**e).collect();
        for (team, batch) in [("acme", "b 1"), ("", ""), ("q\"uo\\te", "ü")] {
            let envelopes = Envelopes::new(team, batch);
            let one: Vec<String> = events.iter().map(|e| envelopes.wrap(e)).collect();
            assert_eq!(envelopes.wrap_all(&events).get(), one);
            assert!(envelopes.wrap_all(&[]).get().is_empty());
        }
    }

    #[test]
    fn json_string_decodes_escapes_and_control_characters() {
        assert_eq!(json_string(r#""a\"b\\c" x"#), Some((Cow::Owned(r#"a"b\c"#.to_string()), " x")));
        assert_eq!(
            json_string("\"plain-long-batch-name 2024-03-05 offset\",r"),
            Some((Cow::Borrowed("plain-long-batch-name 2024-03-05 offset"), ",r"))
        );
        // A raw control character is not JSON: serde_json refuses it, so the split is refused.
        assert_eq!(json_string("\"tab\there\""), None);
        assert_eq!(json_string("no quote"), None);
    }

    fn rows(teams: &[&str]) -> Vec<Env> {
        teams.iter().map(|t| Env { asa_team: t.to_string(), ..Env::default() }).collect()
    }

    #[test]
    fn the_oldest_row_is_the_default_team_and_others_are_found_by_name() {
        let r = rows(&["William-Faulkner", "acme"]);
        assert_eq!(find_row(&r, None), Ok(Some(0)));
        assert_eq!(find_row(&r, Some("acme")), Ok(Some(1)));
        assert_eq!(find_row(&r, Some("william-faulkner")), Ok(Some(0)));
        assert_eq!(
            find_row(&r, Some("globex")).unwrap_err().0,
            "Environment Variables: ASA team \"globex\" has no row (teams: william-faulkner, acme); add it with U02 {\"team\": \"globex\", ...}"
        );
        assert_eq!(find_row(&[], None), Ok(None));
        assert!(find_row(&[], Some("a")).unwrap_err().0.contains("(teams: none)"));
        assert_eq!(team_names(&rows(&["", "B"])), ["b"]);
    }

    #[test]
    fn u02_plans() {
        let r = rows(&["a", "b"]);
        assert_eq!(plan_set(&[], None, Some("a"), false), Ok(SetPlan::Insert { asa_team: None }));
        assert_eq!(
            plan_set(&r, None, None, false),
            Ok(SetPlan::Update { index: 0, asa_team: None })
        );
        assert!(plan_set(&r, None, Some("b"), false).unwrap_err().0.contains("already"));
        assert_eq!(
            plan_set(&r, Some("b"), None, false),
            Ok(SetPlan::Update { index: 1, asa_team: None })
        );
        assert_eq!(
            plan_set(&r, Some("c"), None, false),
            Ok(SetPlan::Insert { asa_team: Some("c".into()) })
        );
        assert_eq!(
            plan_set(&rows(&[""]), Some("c"), None, false),
            Ok(SetPlan::Update { index: 0, asa_team: Some("c".into()) })
        );
        assert_eq!(plan_set(&r, Some("b"), None, true), Ok(SetPlan::Delete { index: 1 }));
        assert_eq!(
            plan_set(&r, Some("a"), None, true).unwrap_err().0,
            "team \"a\" is the default team (the oldest row) and other teams exist (b); remove those first"
        );
        assert_eq!(
            plan_set(&rows(&["a"]), Some("a"), None, true),
            Ok(SetPlan::Delete { index: 0 })
        );
        assert!(plan_set(&r, Some("c"), None, true).unwrap_err().0.contains("has no row"));
        assert!(plan_set(&r, None, None, true).is_err());
        assert!(plan_set(&r, Some("b"), Some("a"), false).unwrap_err().0.contains("already"));
        let full = rows(&["a", "b", "c", "d", "e", "f", "g", "h"]);
        assert!(plan_set(&full, Some("i"), None, false).unwrap_err().0.starts_with("at most 8"));
    }

    #[test]
    fn a_checkpoint_written_before_teams_is_the_default_teams() {
        let old = vec![String::new()];
        assert_eq!(checkpoint_row(&old, "a", "a"), Some(0));
        assert_eq!(checkpoint_row(&old, "b", "a"), None);
        let both = vec![String::new(), "b".to_string(), "a".to_string()];
        assert_eq!(checkpoint_row(&both, "a", "a"), Some(2));
        assert_eq!(checkpoint_row(&both, "b", "a"), Some(1));
        assert_eq!(owner("", "a"), "a");
        assert_eq!(owner("b", "a"), "b");
    }

    #[test]
    fn the_envelope_keeps_the_event_byte_for_byte() {
        let raw = RawValue::from_string(r#"{"id": "e1",  "team":"x", "event": 1}"#.into()).unwrap();
        let opened = |team: &str, batch: &str, event| Opened {
            team: team.to_string().into(),
            batch: batch.to_string().into(),
            event,
        };
        let env = envelope("acme", "", &raw);
        assert_eq!(env, r#"{"team":"acme","event":{"id": "e1",  "team":"x", "event": 1}}"#);
        assert_eq!(open_envelope(&env), opened("acme", "", raw.get()));
        let env = envelope("acme", "2024-01-01T00:00:00.000Z offset", &raw);
        assert_eq!(
            open_envelope(&env),
            opened("acme", "2024-01-01T00:00:00.000Z offset", raw.get())
        );
        // A bare event (even one with `team` and `event` keys among others) is the event.
        assert_eq!(open_envelope(raw.get()), opened("", "", raw.get()));
        let quoted = envelope("a\"b", "c\\d", &raw);
        assert_eq!(open_envelope(&quoted), opened("a\"b", "c\\d", raw.get()));
        // The same as serde_json writes the envelope whole, for any team and batch text.
        for (team, batch) in [("", ""), ("a\"b", ""), ("\u{1}é", "c\\d\n")] {
            let whole = EnvelopeOut { team, batch, event: &raw };
            assert_eq!(envelope(team, batch, &raw), serde_json::to_string(&whole).unwrap());
        }
    }

    #[test]
    fn offloading_stops_at_the_first_row_of_any_teams_pending_page() {
        // a has 3 rows, its newest 1 pending; b has 3 rows, its newest 2 pending.
        let allowed = vec![("a".to_string(), 2), ("b".to_string(), 1)];
        assert_eq!(offloadable_prefix(&["a", "b", "a", "b", "b", "a"], &allowed), 3);
        assert_eq!(offloadable_prefix(&["a", "a", "c", "a"], &allowed), 3);
        assert_eq!(offloadable_prefix(&["c", "c"], &allowed), 2);
        assert_eq!(offloadable_prefix(&[], &allowed), 0);
    }

    #[test]
    fn secret_names_are_checked() {
        assert_eq!(validate_secret_name("keyIdSecret", " ACME_KEY_ID "), Ok("ACME_KEY_ID".into()));
        assert_eq!(
            validate_secret_name("keyIdSecret", "acme-key").unwrap_err().0,
            "keyIdSecret \"acme-key\" must be a secret's name (letters, digits and '_')"
        );
    }
}
