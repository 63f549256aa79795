//! The quarantine of events that cannot become an Audit Events row (issue 16.4): what S30/S31
//! answer for such an event, and the Rejected Events rows M10 writes from their answers.
//!
//! An event is rejected for exactly the reasons of [`crate::event::InvalidEvent`] (not a JSON
//! object, no non-empty string `id`). S30/S31 then write nothing and answer
//! `{"stored": false, "rejected": "<reason>"}`; M10 keeps the rest of the page, moves the
//! offset as usual and puts each rejected event into Rejected Events, whole, as ASA sent it.
//!
//! The row's key is `<team>/<page offset>#<index in page>`: the ASA team, the offset the page
//! was fetched with (the checkpoint's `LastOffset`, `""` for the first page, so the team is
//! needed to tell first pages apart) and the event's 0-based position in the page's `list`. M10 fetches the last page again on every run, so the same event comes back
//! at the same key and is recorded once: a key that is already in the table is left as it is
//! (its first `rejected_at` is kept) and is not counted again.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::event::InvalidEvent;
use crate::model::{lenient_count, lenient_text, StoredFlags, StoredOut};

/// The table (tables/rejected-events.yaml).
pub const REJECTED_EVENTS: &str = "Rejected Events";

/// A Rejected Events row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedRow {
    /// [`key`] of the team, the page offset and the index.
    pub id: String,
    /// The ASA team whose page it came from.
    #[serde(default, deserialize_with = "lenient_text")]
    pub team: String,
    /// The checkpoint offset the page was fetched with (`""`: the first page).
    #[serde(default, deserialize_with = "lenient_text")]
    pub page_offset: String,
    /// The event's position in the page's `list` (0 = first).
    #[serde(default, deserialize_with = "lenient_count")]
    pub page_index: u64,
    /// Why it was rejected, e.g. ``no `id` ``.
    #[serde(default, deserialize_with = "lenient_text")]
    pub reason: String,
    /// The whole event, exactly as ASA sent it.
    #[serde(default, deserialize_with = "lenient_text")]
    pub raw_event: String,
    /// When it was first rejected (RFC 3339, UTC).
    #[serde(default, deserialize_with = "lenient_text")]
    pub rejected_at: String,
}

/// The key of the event at `index` of team `team`'s page fetched with `page_offset`.
pub fn key(team: &str, page_offset: &str, index: usize) -> String {
    format!("{team}/{page_offset}#{index}")
}

/// S30's and S31's answer for an event they refuse.
pub fn rejected_out(invalid: &InvalidEvent) -> StoredOut {
    StoredOut { stored: false, id: String::new(), rejected: Some(invalid.reason().to_string()) }
}

/// The Rejected Events rows of a page: one per result that says `rejected`, paired with the
/// event at the same index (`results` are S30/S31's answers in the order of `events`).
pub fn rejected_rows(
    team: &str,
    page_offset: &str,
    events: &[&RawValue],
    results: &[StoredFlags],
    now: &str,
) -> Vec<RejectedRow> {
    events
        .iter()
        .zip(results)
        .enumerate()
        .filter_map(|(index, (event, result))| {
            let reason = result.rejected.as_ref()?;
            Some(RejectedRow {
                id: key(team, page_offset, index),
                team: team.to_string(),
                page_offset: page_offset.to_string(),
                page_index: index as u64,
                reason: reason.clone(),
                raw_event: event.get().to_string(),
                rejected_at: now.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_string()).unwrap()
    }

    #[test]
    fn the_rows_of_a_page_keep_each_event_as_sent_at_a_stable_key() {
        let page: Box<RawValue> = serde_json::from_str(
            r#"[{"id": "a"}, {"details": {"type": "x"}},  "text", {"id" :  7}, {"id": "b"}]"#,
        )
        .unwrap();
        let events: Vec<&RawValue> = serde_json::from_str(page.get()).unwrap();
        let results: Vec<StoredFlags> = events
            .iter()
            .map(|e| match event::checked_id(e.get()) {
                Ok(id) => StoredOut { stored: true, id, rejected: None },
                Err(e) => rejected_out(&e),
            })
            .map(StoredFlags::from)
            .collect();
        let rows = rejected_rows("acme", "AbC==", &events, &results, "2026-01-01T00:00:00.000Z");
        let got: Vec<(&str, u64, &str, &str)> = rows
            .iter()
            .map(|r| (r.id.as_str(), r.page_index, r.reason.as_str(), r.raw_event.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("acme/AbC==#1", 1, "no `id`", r#"{"details": {"type": "x"}}"#),
                ("acme/AbC==#2", 2, r#"expected a JSON object, not "text""#, r#""text""#),
                ("acme/AbC==#3", 3, "`id` must be a non-empty string, not 7", r#"{"id" :  7}"#),
            ]
        );
        assert!(rows.iter().all(|r| r.page_offset == "AbC==" && r.rejected_at.starts_with("2026")));
        // The first page is fetched without an offset.
        let rows = rejected_rows(
            "acme",
            "",
            &[&*raw("null")],
            &[rejected_out(&event::checked_id("null").unwrap_err()).into()],
            "t",
        );
        assert_eq!(
            (rows[0].id.as_str(), rows[0].reason.as_str()),
            ("acme/#0", "expected a JSON object, not null")
        );
    }

    /// U20's `eventsrejected` is optional (0), a number or numeric text, never negative.
    #[test]
    fn execution_log_input_counts_rejected_events() {
        use crate::model::ExecLogIn;
        use serde_json::json;
        let read = |v| serde_json::from_value::<ExecLogIn>(v);
        assert_eq!(
            read(json!({"eventswritten": "3", "notes": "Full page"})).unwrap().eventsrejected,
            0
        );
        assert_eq!(read(json!({"eventsrejected": "2"})).unwrap().eventsrejected, 2);
        assert_eq!(read(json!({"eventsrejected": 4})).unwrap().eventsrejected, 4);
        assert!(read(json!({"eventsrejected": -1})).is_err());
        assert_eq!(
            serde_json::to_value(ExecLogIn::new(5, "Full page").with_rejected(1)).unwrap(),
            json!({"eventswritten": "5", "notes": "Full page", "eventsrejected": 1})
        );
    }

    #[test]
    fn stored_out_says_rejected_only_when_it_is() {
        let out = rejected_out(&event::checked_id("{}").unwrap_err());
        assert_eq!(
            serde_json::to_value(&out).unwrap(),
            serde_json::json!({"stored": false, "rejected": "no `id`"})
        );
        let ok = StoredOut { stored: true, id: "e1".into(), rejected: None };
        assert_eq!(
            serde_json::to_value(&ok).unwrap(),
            serde_json::json!({"stored": true, "id": "e1"})
        );
        let old: StoredOut = serde_json::from_str(r#"{"stored": false, "id": "e1"}"#).unwrap();
        assert_eq!(old.rejected, None);
    }
}
