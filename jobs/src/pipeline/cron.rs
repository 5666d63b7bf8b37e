//! Cron expressions in a time zone (croner, with chrono-tz's database), and which slots are due
//! under a catch-up policy.
//!
//! Daylight saving follows croner 3.0 (as measured by the tests below): a fixed time inside a
//! spring-forward gap fires once, at the first valid time after the gap (02:30 in Berlin on the
//! last Sunday of March fires at 03:00 CEST); in a fall-back overlap every wall-clock time fires
//! once, in the first pass (02:30 fires at 02:30 CEST, and `*/30` fires at 02:00 and 02:30 CEST,
//! then 03:00 CET: the repeated hour is not run twice). Slots are kept as UTC instants.

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, SubsecRound, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};

/// A parsed cron expression and its time zone.
#[derive(Debug, Clone)]
pub struct Cron {
    cron: croner::Cron,
    tz: Tz,
}

impl Cron {
    /// Parses `pattern` (5 fields, or 6 with seconds first) read in `timezone` (IANA name).
    pub fn new(pattern: &str, timezone: &str) -> Result<Self> {
        let tz: Tz = timezone.parse().map_err(|_| anyhow::anyhow!("unknown time zone '{timezone}' (an IANA name such as Europe/Berlin or UTC)"))?;
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(pattern)
            .map_err(|e| anyhow::anyhow!("cron expression '{pattern}': {e}"))?;
        Ok(Self { cron, tz })
    }

    /// The first slot strictly after `after`. Slots are whole seconds: croner keeps the
    /// sub-second part of its starting point, and two processes must agree on a slot's instant.
    pub fn next_after(&self, after: DateTime<Utc>) -> Result<DateTime<Utc>> {
        let local = after.trunc_subsecs(0).with_timezone(&self.tz);
        let next = self.cron.find_next_occurrence(&local, false).map_err(|e| anyhow::anyhow!("no next slot after {after}: {e}"))?;
        Ok(next.with_timezone(&Utc).trunc_subsecs(0))
    }

    /// The slots in `(from, to]`, at most `limit` of them (the latest ones when there are more).
    pub fn slots_between(&self, from: DateTime<Utc>, to: DateTime<Utc>, limit: usize) -> Result<Vec<DateTime<Utc>>> {
        let mut slots = std::collections::VecDeque::new();
        let mut t = from;
        loop {
            let next = self.next_after(t)?;
            if next > to {
                break;
            }
            if slots.len() == limit {
                slots.pop_front();
            }
            slots.push_back(next);
            t = next;
        }
        Ok(slots.into())
    }

    /// The slot's date in the schedule's time zone (what `{{ ds }}` is for a scheduled run).
    pub fn local_date(&self, slot: DateTime<Utc>) -> chrono::NaiveDate {
        slot.with_timezone(&self.tz).date_naive()
    }
}

/// What happens to slots that passed while no schedule process ran (or while a run was longer
/// than the interval).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Run only the latest missed slot.
    Latest,
    /// Run every missed slot, oldest first.
    All,
    /// Run none; wait for the next slot.
    None,
}

impl CatchUp {
    /// `latest`, `all` or `none`.
    pub fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "latest" => Self::Latest,
            "all" => Self::All,
            "none" => Self::None,
            other => bail!("catch-up policy '{other}' (latest, all or none)"),
        })
    }

    /// The slots to run now: `missed` are the slots in `(last done, now]`, oldest first; `fresh` is
    /// whether the latest of them is the slot that just came due (rather than one missed while
    /// nothing ran).
    pub fn due(self, missed: &[DateTime<Utc>], newest_is_current: bool) -> Vec<DateTime<Utc>> {
        match self {
            Self::All => missed.to_vec(),
            Self::Latest => missed.last().copied().into_iter().collect(),
            Self::None if newest_is_current => missed.last().copied().into_iter().collect(),
            Self::None => vec![],
        }
    }
}

/// `text` as a UTC instant (RFC 3339), for slot markers.
pub fn parse_slot(text: &str) -> Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(text).with_context(|| format!("'{text}' is not an RFC 3339 time"))?.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        parse_slot(s).unwrap()
    }

    #[test]
    fn spring_forward_in_berlin_fires_once_after_the_gap() {
        // 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that day.
        let cron = Cron::new("30 2 * * *", "Europe/Berlin").unwrap();
        let slots = cron.slots_between(utc("2026-03-27T12:00:00Z"), utc("2026-03-30T12:00:00Z"), 100).unwrap();
        let got: Vec<String> = slots.iter().map(|s| s.to_rfc3339()).collect();
        assert_eq!(got, ["2026-03-28T01:30:00+00:00", "2026-03-29T01:00:00+00:00", "2026-03-30T00:30:00+00:00"]);
        assert_eq!(cron.local_date(slots[1]).to_string(), "2026-03-29");
    }

    #[test]
    fn fall_back_in_berlin_fires_each_wall_clock_time_once() {
        // 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:00-02:59 happens twice.
        let cron = Cron::new("30 2 * * *", "Europe/Berlin").unwrap();
        let slots = cron.slots_between(utc("2026-10-24T12:00:00Z"), utc("2026-10-26T12:00:00Z"), 100).unwrap();
        let got: Vec<String> = slots.iter().map(|s| s.to_rfc3339()).collect();
        assert_eq!(got, ["2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00"]);
        let every_half_hour = Cron::new("*/30 * * * *", "Europe/Berlin").unwrap();
        let got = every_half_hour.slots_between(utc("2026-10-24T23:45:00Z"), utc("2026-10-25T02:15:00Z"), 100).unwrap();
        // 02:00 and 02:30 CEST, then 03:00 CET: the second pass through 02:xx does not fire again.
        assert_eq!(got, [utc("2026-10-25T00:00:00Z"), utc("2026-10-25T00:30:00Z"), utc("2026-10-25T02:00:00Z")]);
    }

    #[test]
    fn seconds_and_bad_input() {
        let cron = Cron::new("* * * * * *", "UTC").unwrap();
        assert_eq!(cron.slots_between(utc("2026-01-01T00:00:00Z"), utc("2026-01-01T00:00:05Z"), 100).unwrap().len(), 5);
        assert_eq!(cron.slots_between(utc("2026-01-01T00:00:00Z"), utc("2026-01-01T00:00:05Z"), 2).unwrap()[0], utc("2026-01-01T00:00:04Z"));
        let odd = utc("2026-01-01T00:00:00.734Z");
        assert_eq!(cron.next_after(odd).unwrap(), utc("2026-01-01T00:00:01Z"), "slots are whole seconds whatever the start");
        assert!(Cron::new("61 * * * *", "UTC").is_err());
        assert!(Cron::new("0 3 * * *", "Mars/Olympus").unwrap_err().to_string().contains("unknown time zone"));
    }

    #[test]
    fn catch_up_policies() {
        let missed = [utc("2026-01-01T01:00:00Z"), utc("2026-01-01T02:00:00Z"), utc("2026-01-01T03:00:00Z")];
        assert_eq!(CatchUp::All.due(&missed, false).len(), 3);
        assert_eq!(CatchUp::Latest.due(&missed, false), vec![missed[2]]);
        assert!(CatchUp::None.due(&missed, false).is_empty());
        assert_eq!(CatchUp::None.due(&missed[2..], true), vec![missed[2]]);
    }
}
