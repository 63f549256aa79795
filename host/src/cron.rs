//! Cron lines with an IANA time zone: checking them at load time and finding the next tick.
//! `croner` parses the line (seconds optional), `chrono-tz` supplies the zone rules.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use croner::Cron;

fn parse(line: &str, timezone: &str) -> Result<(Cron, chrono_tz::Tz), String> {
    let cron = Cron::new(line)
        .with_seconds_optional()
        .parse()
        .map_err(|e| format!("cron `{line}`: {e}"))?;
    let tz: chrono_tz::Tz = timezone.parse().map_err(|_| {
        format!("timezone `{timezone}` is not an IANA zone name (e.g. Australia/Melbourne, UTC)")
    })?;
    Ok((cron, tz))
}

/// Checks that `line` and `timezone` parse.
pub fn check(line: &str, timezone: &str) -> Result<(), String> {
    parse(line, timezone).map(|_| ())
}

/// The first tick strictly after `after`.
pub fn next_after(line: &str, timezone: &str, after: SystemTime) -> Result<SystemTime, String> {
    let (cron, tz) = parse(line, timezone)?;
    let after: DateTime<Utc> = after.into();
    let next = cron
        .find_next_occurrence(&after.with_timezone(&tz), false)
        .map_err(|e| format!("cron `{line}`: no next tick: {e}"))?;
    Ok(next.with_timezone(&Utc).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn next_tick_respects_the_time_zone() {
        // 2024-03-05T01:00:00Z is 12:00 in Melbourne (AEDT, +11).
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_600_400);
        let next = next_after("0 0 13 * * *", "Australia/Melbourne", t).unwrap();
        assert_eq!(next.duration_since(t).unwrap(), Duration::from_secs(3600));
        let next = next_after("*/5 * * * *", "UTC", t).unwrap();
        assert_eq!(next.duration_since(t).unwrap(), Duration::from_secs(300));
    }

    #[test]
    fn bad_lines_and_zones_are_named() {
        assert!(check("61 * * * *", "UTC")
            .unwrap_err()
            .contains("cron `61 * * * *`"));
        assert!(check("* * * * *", "Mars/Olympus")
            .unwrap_err()
            .contains("Mars/Olympus"));
    }
}
