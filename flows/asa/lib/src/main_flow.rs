//! M10's branch decision (asa-api.md §8.3): what to do with a page, given the next offset
//! from its `Link` header, how many events it holds and the checkpoint's `LastCount`.
//!
//! Fix over the template: there `LastCount` is the size of the last page fetched, full or
//! not, and "no new events" is `n == LastCount`. A last page that happens to be as long as the
//! full page before it (ASA gives no `next` link on a full page that ends at the newest
//! event) was then never stored. Here `LastCount` is *how many events of the page at
//! `LastOffset` are already stored*: a full page moves the offset and sets it to 0, a last
//! page sets it to `n`. `n == LastCount` then really means "the same page as last time".

/// What M10 does with the page it fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Branch {
    /// There is a next page: move the offset, store every event, log "Full page", and ask to
    /// run again at once.
    FullPage,
    /// The last page, unchanged since the previous run: log "0", "No new events".
    NoNewEvents,
    /// The last page with new events: store the new ones (S31 skips the known ids). `first`
    /// when this offset's page is seen for the first time ("First part page"), else
    /// "Subsequent part page".
    PartPage { first: bool },
}

pub const FULL_PAGE: &str = "Full page";
pub const NO_NEW_EVENTS: &str = "No new events";
pub const FIRST_PART_PAGE: &str = "First part page";
pub const SUBSEQUENT_PART_PAGE: &str = "Subsequent part page";

pub fn decide(next_offset: &str, n: u64, last_count: u64) -> Branch {
    if !next_offset.is_empty() {
        Branch::FullPage
    } else if n == last_count {
        Branch::NoNewEvents
    } else {
        Branch::PartPage { first: last_count == 0 }
    }
}

impl Branch {
    /// The Execution Log note.
    pub fn note(&self) -> &'static str {
        match self {
            Branch::FullPage => FULL_PAGE,
            Branch::NoNewEvents => NO_NEW_EVENTS,
            Branch::PartPage { first: true } => FIRST_PART_PAGE,
            Branch::PartPage { first: false } => SUBSEQUENT_PART_PAGE,
        }
    }

    /// `LastCount` after this branch: how many events of the page at the (new) offset are stored.
    pub fn next_count(&self, n: u64, last_count: u64) -> u64 {
        match self {
            Branch::FullPage => 0,
            Branch::NoNewEvents => last_count,
            Branch::PartPage { .. } => n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_branches() {
        assert_eq!(decide("wuFhR8Dz1GtA1RR4BL-KDQ==", 6, 0), Branch::FullPage);
        assert_eq!(Branch::FullPage.note(), "Full page");
        assert_eq!(Branch::FullPage.next_count(6, 4), 0);
        assert_eq!(decide("", 4, 4), Branch::NoNewEvents);
        assert_eq!(decide("", 0, 0).note(), "No new events");
        assert_eq!(decide("", 3, 0), Branch::PartPage { first: true });
        assert_eq!(decide("", 3, 0).note(), "First part page");
        assert_eq!(decide("", 5, 3).note(), "Subsequent part page");
        assert_eq!(decide("", 5, 3).next_count(5, 3), 5);
    }

    #[test]
    fn a_full_last_page_is_stored_not_skipped() {
        // A full page of 1000 moved the offset (LastCount 0); the next page is also 1000 long
        // but has no `next` link: the template logged "No new events" and lost it.
        assert_eq!(
            decide("", 1000, Branch::FullPage.next_count(1000, 0)),
            Branch::PartPage { first: true }
        );
    }
}
