//! The answers of the pure helper flows (S32–S37) that one S30 instance keeps: for the event
//! it is handling, and for the rest of its batch. M10 hands a page's events to S30 in one
//! for-each and names it (the envelope's `batch`, unique to one run of M10 and one page), and
//! within it a reference always has the same description (the helpers are pure, and read only
//! the page's related objects, which S20 stored before the batch began). An event of another
//! batch, or of none, starts afresh, so nothing kept can outlive the page it was read for.
//!
//! The host keeps the answers of pure flows for a run too (docs/manifests.md, `pure`); asking
//! it still costs a call across the component boundary per reference and event (2.9 per event
//! in the benchmark's pages). Kept here, a page's repeated references cost a lookup, and an
//! event's row borrows its texts from here instead of copying them.
//!
//! A lookup compares the reference it finds with the one asked for a word at a time
//! ([`same`]): the wasm target's `memcmp` goes a byte at a time, and every event looks up each
//! of its 44-byte references twice (once to learn it, once for the row), which made those
//! compares an eighth of S30's time. Each event's check of its batch's name compares the same
//! way.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use crate::enrich::Kind;

/// The answers kept for the current batch (or event), per kind: (reference, text) pairs by
/// the reference's hash (an ASA id, which a fast hash suits: the table never outlives one
/// page).
#[derive(Debug, Default)]
pub struct Answers {
    batch: String,
    texts: [HashTable<(String, String)>; Kind::ALL.len()],
}

impl Answers {
    /// Starts an event of batch `batch`: the answers kept for another batch are dropped, and
    /// so are those of the last event when there is no batch (`""`). Called once per event, so
    /// that each reference's lookup does not compare the batch's name again.
    pub fn start(&mut self, batch: &str) {
        if batch.is_empty() || !same(&self.batch, batch) {
            self.texts.iter_mut().for_each(HashTable::clear);
            self.batch.clear();
            self.batch.push_str(batch);
        }
    }

    /// The answer kept for `kind` of `reference`.
    pub fn text(&self, kind: Kind, reference: &str) -> Option<&str> {
        let texts = of_kind(self.texts.each_ref(), kind);
        texts.find(hash(reference), |(r, _)| same(r, reference)).map(|(_, t)| t.as_str())
    }

    /// Keeps the answer for `kind` of `reference`, asking `describe(kind, reference)` when
    /// there is none yet (a failure is not kept); whether the answer is a text (not empty).
    pub fn learn<E>(
        &mut self,
        kind: Kind,
        reference: &str,
        describe: impl FnOnce(Kind, &str) -> Result<String, E>,
    ) -> Result<bool, E> {
        let texts = of_kind(self.texts.each_mut(), kind);
        let h = hash(reference);
        if let Some((_, text)) = texts.find(h, |(r, _)| same(r, reference)) {
            return Ok(!text.is_empty());
        }
        let text = describe(kind, reference)?;
        let is_text = !text.is_empty();
        texts.insert_unique(h, (reference.to_string(), text), |(r, _)| hash(r));
        Ok(is_text)
    }
}

fn hash(reference: &str) -> u64 {
    FxBuildHasher.hash_one(reference)
}

/// Whether `a` and `b` are the same text, compared eight bytes at a time (see the module doc).
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let (a_words, a_rest) = a.as_chunks::<8>();
    let (b_words, b_rest) = b.as_chunks::<8>();
    a_words.iter().zip(b_words).all(|(x, y)| u64::from_ne_bytes(*x) == u64::from_ne_bytes(*y))
        && a_rest.iter().zip(b_rest).all(|(x, y)| x == y)
}

/// The entry of `kind` in a per-kind array (in [`Kind::ALL`]'s order).
fn of_kind<T>(per_kind: [T; Kind::ALL.len()], kind: Kind) -> T {
    let [client, gateway, group, project, server, user] = per_kind;
    match kind {
        Kind::Client => client,
        Kind::Gateway => gateway,
        Kind::Group => group,
        Kind::Project => project,
        Kind::Server => server,
        Kind::User => user,
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
            let is_text = a
                .learn(kind, r, |k, r| -> Result<String, ()> {
                    asked.push(format!("{k:?} {r}"));
                    Ok(answer.to_string())
                })
                .unwrap();
            let text = a.text(kind, r).unwrap().to_string();
            assert_eq!(is_text, !text.is_empty());
            text
        };
        assert_eq!(ask("b1", Kind::User, "u1", "Jason"), "Jason");
        assert_eq!(ask("b1", Kind::User, "u1", "other"), "Jason");
        assert_eq!(ask("b1", Kind::Client, "u1", "Laptop"), "Laptop");
        assert_eq!(ask("b1", Kind::Group, "g1", ""), "");
        assert_eq!(ask("b1", Kind::Group, "g1", "other"), "");
        // Another batch starts afresh, and so does the first one coming back.
        assert_eq!(ask("b2", Kind::User, "u1", "Quentin"), "Quentin");
        assert_eq!(ask("b1", Kind::User, "u1", "Caddy"), "Caddy");
        // No batch: every event asks.
        assert_eq!(ask("", Kind::User, "u1", "Benjy"), "Benjy");
        assert_eq!(ask("", Kind::User, "u1", "Benjy"), "Benjy");
        assert_eq!(
            asked,
            ["User u1", "Client u1", "Group g1", "User u1", "User u1", "User u1", "User u1"]
        );
        // Within an event without a batch, an answer is kept.
        a.start("");
        assert_eq!(a.learn(Kind::User, "u2", |_, _| Ok::<_, ()>("Dilsey".into())), Ok(true));
        assert_eq!(a.learn(Kind::User, "u2", |_, _| Err(())), Ok(true));
        assert_eq!(a.text(Kind::User, "u2"), Some("Dilsey"));
        assert_eq!(a.text(Kind::Client, "u2"), None);
    }

    #[test]
    fn same_compares_every_byte() {
        let id = "18TGDjrSCM5QZkQQNunxkeC3UDanf2Xi6qR1JEMjP74=";
        assert!(same(id, id) && same("", ""));
        for i in 0..id.len() {
            let mut other = id.as_bytes().to_vec();
            other[i] ^= 1;
            let other = String::from_utf8(other).unwrap();
            assert!(!same(id, &other), "byte {i}");
            assert!(!same(&id[..i], id), "prefix of {i} bytes");
        }
        assert!(same(&id[..7], &id[..7]) && !same("abcdefgh1", "abcdefgh2"));
    }

    #[test]
    fn a_failed_answer_is_not_kept() {
        let mut a = Answers::default();
        a.start("b");
        let failed = a.learn(Kind::Server, "s1", |_, _| Err("down"));
        assert_eq!(failed, Err("down"));
        assert_eq!(a.text(Kind::Server, "s1"), None);
        let again = a.learn(Kind::Server, "s1", |_, _| Ok::<_, &str>("s1 (up)".into()));
        assert_eq!(again, Ok(true));
        assert_eq!(a.text(Kind::Server, "s1"), Some("s1 (up)"));
    }
}
