//! Odd events at chosen positions ([`crate::SimConfig::odd_events`]): poison events that a
//! consumer cannot store and must set aside (no `id`, a numeric `id`, not a JSON object), and
//! valid events with enrichment edge cases (a `target_user` missing from `related_objects`, a
//! server listed twice in `servers`).
//!
//! A poison event keeps its place in the stream and its id for paging: offsets in `Link`
//! headers still name it, as the real API's would name whatever it keys its pages by. Only
//! the JSON a client sees is broken. [`crate::Sim::stored_event_ids`] lists the events a
//! consumer should store (poison ones left out); [`crate::Sim::poison_events`] lists the
//! others with their exact text.

use serde_json::Value;

/// What is odd about the event at a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OddEvent {
    /// Poison: the event without its `id` member.
    NoId,
    /// Poison: `id` is the event's index as a JSON number.
    NumericId,
    /// Poison: a JSON string instead of an object.
    NotAnObject,
    /// Valid: `details.target_user` is a reference absent from `related_objects`, and
    /// `details.user` is a known user (a consumer should fall back to it).
    UnknownTargetUser,
    /// Valid: `details.servers` lists the same server twice (`[a, b, a]`), no `server`.
    RepeatedServer,
}

/// The `target_user` reference of [`OddEvent::UnknownTargetUser`]: in no pool.
pub const UNKNOWN_REF: &str = "unknownUnknownUnknownUnknownUnknownUnknown0=";

impl OddEvent {
    /// Whether a consumer cannot store it (it has no usable id).
    pub fn is_poison(self) -> bool {
        matches!(
            self,
            OddEvent::NoId | OddEvent::NumericId | OddEvent::NotAnObject
        )
    }

    /// The text served for poison event `index`, made from the normal event `event`; `None`
    /// for a valid odd event (it is served like any other).
    pub(crate) fn poison_text(self, index: u64, mut event: Value) -> Option<String> {
        match self {
            OddEvent::NoId => {
                if let Some(obj) = event.as_object_mut() {
                    obj.remove("id");
                }
            }
            OddEvent::NumericId => event["id"] = Value::from(index),
            OddEvent::NotAnObject => event = Value::from(format!("garbled audit event {index}")),
            OddEvent::UnknownTargetUser | OddEvent::RepeatedServer => return None,
        }
        Some(event.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn poison_texts_break_only_what_they_say() {
        let ev = json!({"id": "abc==", "timestamp": "t", "details": {"type": "x"}});
        let parse = |t: Option<String>| serde_json::from_str::<Value>(&t.unwrap()).unwrap();
        assert_eq!(
            parse(OddEvent::NoId.poison_text(3, ev.clone())),
            json!({"timestamp": "t", "details": {"type": "x"}})
        );
        assert_eq!(
            parse(OddEvent::NumericId.poison_text(3, ev.clone()))["id"],
            3
        );
        assert_eq!(
            parse(OddEvent::NotAnObject.poison_text(3, ev.clone())),
            "garbled audit event 3"
        );
        for valid in [OddEvent::UnknownTargetUser, OddEvent::RepeatedServer] {
            assert!(!valid.is_poison());
            assert_eq!(valid.poison_text(3, ev.clone()), None);
        }
    }
}
