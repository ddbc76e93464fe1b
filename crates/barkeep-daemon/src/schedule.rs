//! Schedules: a cron expression (croner: 5 fields, or 6 with seconds first; `@hourly`,
//! `@daily`, `@weekly`) read in a time zone (`schedule_timezone`, default the host's),
//! and the jitter that spreads a fleet's backups.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Local, Utc};
use croner::Cron;

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    tz: Option<chrono_tz::Tz>,
}

impl Schedule {
    /// Parses `text` (already checked when the configuration was loaded).
    pub fn parse(text: &str, tz: Option<chrono_tz::Tz>) -> Result<Schedule, String> {
        Cron::from_str(text.trim())
            .map(|cron| Schedule { cron, tz })
            .map_err(|e| e.to_string())
    }

    /// The first occurrence strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.tz {
            Some(tz) => self
                .cron
                .find_next_occurrence(&t.with_timezone(&tz), false)
                .ok()
                .map(|n| n.with_timezone(&Utc)),
            None => self
                .cron
                .find_next_occurrence(&t.with_timezone(&Local), false)
                .ok()
                .map(|n| n.with_timezone(&Utc)),
        }
    }

    /// The interval between `next` and the occurrence after it.
    pub fn interval_at(&self, next: DateTime<Utc>) -> Duration {
        self.next_after(next)
            .and_then(|after| (after - next).to_std().ok())
            .unwrap_or_default()
    }
}

/// A random delay for the occurrence at `next`: `auto` is up to 5 % of the interval and at
/// most 5 minutes; `N%` up to N % of it; `N`, `Ns`, `Nm` up to that long.
pub fn jitter_for(spec: &str, sched: &Schedule, next: DateTime<Utc>) -> Duration {
    let spec = spec.trim();
    let max = if spec.eq_ignore_ascii_case("auto") {
        (sched.interval_at(next) / 20).min(Duration::from_secs(300))
    } else if let Some(p) = spec.strip_suffix('%') {
        let p: u32 = p.trim().parse().unwrap_or(0);
        sched.interval_at(next) * p.min(100) / 100
    } else if let Some(m) = spec.strip_suffix('m') {
        Duration::from_secs(m.parse::<u64>().unwrap_or(0) * 60)
    } else {
        Duration::from_secs(spec.trim_end_matches('s').parse().unwrap_or(0))
    };
    if max.is_zero() {
        return max;
    }
    // Spread, not secrecy: a hash of the time and the process is random enough.
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i64(next.timestamp_nanos_opt().unwrap_or_default());
    let frac = (h.finish() % 10_000) as u32;
    max * frac / 10_000
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn schedules_follow_their_zone_and_seconds() {
        let s = Schedule::parse("0 2 * * *", Some(chrono_tz::Europe::Madrid)).expect("parse");
        let t = Utc
            .with_ymd_and_hms(2026, 12, 1, 12, 0, 0)
            .single()
            .expect("t");
        // 02:00 in Madrid (UTC+1 in winter) is 01:00 UTC.
        assert_eq!(
            s.next_after(t),
            Utc.with_ymd_and_hms(2026, 12, 2, 1, 0, 0).single()
        );
        let s = Schedule::parse("*/5 * * * * *", Some(chrono_tz::UTC)).expect("seconds");
        assert_eq!(s.interval_at(t), Duration::from_secs(5));
        let s = Schedule::parse("@hourly", Some(chrono_tz::UTC)).expect("hourly");
        assert_eq!(s.interval_at(t), Duration::from_secs(3600));
    }

    #[test]
    fn jitter_stays_within_its_bound() {
        let s = Schedule::parse("@daily", Some(chrono_tz::UTC)).expect("daily");
        let t = Utc
            .with_ymd_and_hms(2026, 12, 2, 0, 0, 0)
            .single()
            .expect("t");
        for _ in 0..100 {
            assert!(jitter_for("auto", &s, t) <= Duration::from_secs(300));
            assert!(jitter_for("10s", &s, t) <= Duration::from_secs(10));
            assert!(jitter_for("1%", &s, t) <= Duration::from_secs(864));
        }
        assert_eq!(jitter_for("0", &s, t), Duration::ZERO);
    }
}
