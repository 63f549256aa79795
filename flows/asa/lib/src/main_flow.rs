//! M10's branch decision (asa-api.md §8.3): what to do with a page, given the next offset
//! from its `Link` header, how many events it holds and the checkpoint's `LastCount`.

/// What M10 does with the page it fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Branch {
    /// There is a next page: move the offset, store every event (S30), log `n` as "Full page",
    /// and ask to run again at once.
    FullPage,
    /// The last page, unchanged since the previous run: log "0", "No new events".
    NoNewEvents,
    /// The last page with new events: store the new ones (S31 skips the known ids) and log
    /// `written` with `note`.
    PartPage { written: u64, note: &'static str },
}

pub const FULL_PAGE: &str = "Full page";
pub const NO_NEW_EVENTS: &str = "No new events";
pub const FIRST_PART_PAGE: &str = "First part page";
pub const SUBSEQUENT_PART_PAGE: &str = "Subsequent part page";

/// The template's branches: a next offset means a full page; otherwise, `n == LastCount` means
/// nothing new; otherwise `d = n - LastCount` events are new ("Subsequent part page"), or, when
/// `d < 0` (the page is the first part after a full page), all `n` ("First part page").
pub fn decide(next_offset: &str, n: u64, last_count: u64) -> Branch {
    if !next_offset.is_empty() {
        Branch::FullPage
    } else if n == last_count {
        Branch::NoNewEvents
    } else if n < last_count {
        Branch::PartPage { written: n, note: FIRST_PART_PAGE }
    } else {
        Branch::PartPage { written: n - last_count, note: SUBSEQUENT_PART_PAGE }
    }
}

impl Branch {
    /// The Execution Log entry: (eventswritten, notes).
    pub fn log_entry(&self, n: u64) -> (u64, &'static str) {
        match self {
            Branch::FullPage => (n, FULL_PAGE),
            Branch::NoNewEvents => (0, NO_NEW_EVENTS),
            Branch::PartPage { written, note } => (*written, note),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_branches() {
        assert_eq!(decide("wuFhR8Dz1GtA1RR4BL-KDQ==", 6, 0), Branch::FullPage);
        assert_eq!(decide("wuFhR8Dz1GtA1RR4BL-KDQ==", 6, 0).log_entry(6), (6, "Full page"));
        assert_eq!(decide("", 4, 4), Branch::NoNewEvents);
        assert_eq!(decide("", 0, 0).log_entry(0), (0, "No new events"));
        assert_eq!(decide("", 3, 6), Branch::PartPage { written: 3, note: "First part page" });
        assert_eq!(decide("", 5, 3).log_entry(5), (2, "Subsequent part page"));
        // After U03 (LastCount 0) the first last-page run counts as "Subsequent", as in the template.
        assert_eq!(decide("", 5, 0).log_entry(5), (5, "Subsequent part page"));
    }
}
