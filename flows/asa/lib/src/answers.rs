//! The answers of the pure helper flows (S32–S37) that one S30 instance keeps for the rest of
//! a batch: M10 hands a page's events to S30 in one for-each and names it (the envelope's
//! `batch`, unique to one run of M10 and one page), and within it a reference always has the
//! same description (the helpers are pure, and read only the page's related objects, which S20
//! stored before the batch began). An event of another batch, or of none, starts afresh, so
//! nothing kept can outlive the page it was read for.
//!
//! The host keeps the answers of pure flows for a run too (docs/manifests.md, `pure`); asking
//! it still costs a call across the component boundary per reference and event (2.9 per event
//! in the benchmark's pages). Kept here, a page's repeated references cost a lookup.

use rustc_hash::FxHashMap;

use crate::enrich::Kind;

/// The answers kept for the current batch, per kind (a reference is an ASA id, which a fast
/// hash suits: the map never outlives one page).
#[derive(Debug, Default)]
pub struct Answers {
    batch: String,
    texts: [FxHashMap<String, String>; Kind::ALL.len()],
}

impl Answers {
    /// Makes `batch` the current batch: the answers kept for another batch are dropped (`""`:
    /// none is kept until the next batch). Called once per event, so that each reference's
    /// lookup does not compare the batch's name again.
    pub fn start(&mut self, batch: &str) {
        if self.batch != batch {
            self.texts.iter_mut().for_each(FxHashMap::clear);
            self.batch.clear();
            self.batch.push_str(batch);
        }
    }

    /// `describe(kind, reference)`, or the answer kept for it in the current batch.
    pub fn describe<E>(
        &mut self,
        kind: Kind,
        reference: &str,
        describe: impl FnOnce(Kind, &str) -> Result<String, E>,
    ) -> Result<String, E> {
        if self.batch.is_empty() {
            return describe(kind, reference);
        }
        let Some(texts) = self.texts.get_mut(kind as usize) else {
            return describe(kind, reference);
        };
        if let Some(text) = texts.get(reference) {
            return Ok(text.clone());
        }
        let text = describe(kind, reference)?;
        texts.insert(reference.to_string(), text.clone());
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_kept_within_a_batch_only() {
        let mut a = Answers::default();
        let mut asked = Vec::new();
        let mut ask = |batch: &str, kind, r: &str, answer: &str| {
            a.start(batch);
            a.describe(kind, r, |k, r| -> Result<String, ()> {
                asked.push(format!("{k:?} {r}"));
                Ok(answer.to_string())
            })
            .unwrap()
        };
        assert_eq!(ask("b1", Kind::User, "u1", "Jason"), "Jason");
        assert_eq!(ask("b1", Kind::User, "u1", "other"), "Jason");
        assert_eq!(ask("b1", Kind::Client, "u1", "Laptop"), "Laptop");
        // Another batch starts afresh, and so does the first one coming back.
        assert_eq!(ask("b2", Kind::User, "u1", "Quentin"), "Quentin");
        assert_eq!(ask("b1", Kind::User, "u1", "Caddy"), "Caddy");
        // No batch: every call asks.
        assert_eq!(ask("", Kind::User, "u1", "Benjy"), "Benjy");
        assert_eq!(ask("", Kind::User, "u1", "Benjy"), "Benjy");
        assert_eq!(asked, ["User u1", "Client u1", "User u1", "User u1", "User u1", "User u1"]);
    }

    #[test]
    fn a_failed_answer_is_not_kept() {
        let mut a = Answers::default();
        a.start("b");
        let failed = a.describe(Kind::Server, "s1", |_, _| Err("down"));
        assert_eq!(failed, Err("down"));
        let again = a.describe(Kind::Server, "s1", |_, _| Ok::<_, &str>("s1 (up)".into()));
        assert_eq!(again, Ok("s1 (up)".to_string()));
    }
}
