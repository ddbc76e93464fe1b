//! Typed configuration values and their grammars, as Barman spells them.
//!
//! Each parser returns the typed value or a short description of what is accepted; the
//! loader adds file, line and key. `Display` writes a value back in a form the parser
//! accepts again (property-tested), so `show-servers` output can be pasted into a file.

use std::fmt;
use std::path::PathBuf;

/// A parsed configuration value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `true|t|yes|1|on` / `false|f|no|0|off`, any case.
    Bool(bool),
    /// A decimal integer.
    Int(i64),
    /// Free text (conninfo, commands, names).
    Str(String),
    /// A file system path.
    Path(PathBuf),
    /// One of a fixed set of lower-case words.
    Choice(&'static str),
    /// A comma-separated set of fixed words (`backup_options`, `recovery_options`).
    List(Vec<&'static str>),
    /// `retention_policy`.
    Retention(RetentionPolicy),
    /// `retention_gfs`.
    Gfs(GfsCounts),
    /// `retention_gfs_timezone`.
    TimeZone(chrono_tz::Tz),
    /// `last_backup_maximum_age`, `last_wal_maximum_age`.
    Interval(TimeInterval),
    /// `last_backup_minimum_size`.
    Size(Size),
    /// `compression_level`.
    Level(CompressionLevel),
    /// `custom_compression_magic`: bytes written as `0x…`.
    Magic(Vec<u8>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => f.write_str(if *b { "true" } else { "false" }),
            Value::Int(i) => write!(f, "{i}"),
            Value::Str(s) => f.write_str(s),
            Value::Path(p) => write!(f, "{}", p.display()),
            Value::Choice(c) => f.write_str(c),
            Value::List(l) => f.write_str(&l.join(",")),
            Value::Retention(r) => write!(f, "{r}"),
            Value::Gfs(g) => write!(f, "{g}"),
            Value::TimeZone(z) => f.write_str(z.name()),
            Value::Interval(i) => write!(f, "{i}"),
            Value::Size(s) => write!(f, "{s}"),
            Value::Level(l) => write!(f, "{l}"),
            Value::Magic(m) => {
                f.write_str("0x")?;
                m.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

impl Value {
    /// The value as JSON: booleans and integers keep their type, everything else is text.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::List(l) => serde_json::Value::String(l.join(",")),
            other => serde_json::Value::String(other.to_string()),
        }
    }
}

/// Parses a Barman boolean.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "1" | "on" => Ok(true),
        "false" | "f" | "no" | "0" | "off" => Ok(false),
        _ => Err("a boolean: true, t, yes, 1, on, false, f, no, 0 or off".into()),
    }
}

/// Parses a decimal integer within `[min, max]`.
pub fn parse_int(s: &str, min: i64, max: i64) -> Result<i64, String> {
    let accepted = || {
        if max == i64::MAX {
            format!("an integer >= {min}")
        } else {
            format!("an integer from {min} to {max}")
        }
    };
    let v: i64 = s.trim().parse().map_err(|_| accepted())?;
    if v < min || v > max {
        return Err(accepted());
    }
    Ok(v)
}

/// A retention policy (Barman §5): `REDUNDANCY N` or `RECOVERY WINDOW OF N UNIT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionPolicy {
    /// Keep the newest `n` full backups.
    Redundancy(u32),
    /// Keep what is needed to recover to any point in the last `n` units.
    RecoveryWindow {
        /// How many units.
        n: u32,
        /// The unit.
        unit: WindowUnit,
    },
}

/// The unit of a recovery window (a month is 31 days, as in Barman).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowUnit {
    /// 1 day.
    Day,
    /// 7 days.
    Week,
    /// 31 days.
    Month,
}

impl WindowUnit {
    /// Length of one unit in days.
    pub fn days(self) -> u64 {
        match self {
            WindowUnit::Day => 1,
            WindowUnit::Week => 7,
            WindowUnit::Month => 31,
        }
    }
    fn word(self) -> &'static str {
        match self {
            WindowUnit::Day => "DAY",
            WindowUnit::Week => "WEEK",
            WindowUnit::Month => "MONTH",
        }
    }
}

/// What `retention_policy` accepts, for error messages.
pub const RETENTION_ACCEPTED: &str =
    "`REDUNDANCY <n>` or `RECOVERY WINDOW OF <n> DAYS|WEEKS|MONTHS` (n a positive integer)";

impl std::str::FromStr for RetentionPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let words: Vec<String> = s.split_whitespace().map(str::to_ascii_uppercase).collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let count = |w: &str| -> Result<u32, String> {
            match w.parse::<u32>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(RETENTION_ACCEPTED.to_string()),
            }
        };
        match words.as_slice() {
            ["REDUNDANCY", n] => Ok(RetentionPolicy::Redundancy(count(n)?)),
            ["RECOVERY", "WINDOW", "OF", n, unit] => {
                let n = count(n)?;
                let unit = match unit.strip_suffix('S').unwrap_or(unit) {
                    "DAY" => WindowUnit::Day,
                    "WEEK" => WindowUnit::Week,
                    "MONTH" => WindowUnit::Month,
                    _ => return Err(RETENTION_ACCEPTED.to_string()),
                };
                Ok(RetentionPolicy::RecoveryWindow { n, unit })
            }
            _ => Err(RETENTION_ACCEPTED.to_string()),
        }
    }
}

impl fmt::Display for RetentionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetentionPolicy::Redundancy(n) => write!(f, "REDUNDANCY {n}"),
            RetentionPolicy::RecoveryWindow { n, unit } => {
                let plural = if *n == 1 { "" } else { "S" };
                write!(f, "RECOVERY WINDOW OF {n} {}{plural}", unit.word())
            }
        }
    }
}

/// `retention_gfs`: how many of the last days, ISO weeks, calendar months and calendar
/// years keep their first backup (0 = that kind is not used).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GfsCounts {
    /// `N DAILY`.
    pub daily: u32,
    /// `N WEEKLY`.
    pub weekly: u32,
    /// `N MONTHLY`.
    pub monthly: u32,
    /// `N YEARLY`.
    pub yearly: u32,
}

/// What `retention_gfs` accepts, for error messages.
pub const GFS_ACCEPTED: &str = "a comma-separated list of `<n> DAILY`, `<n> WEEKLY`, `<n> MONTHLY`, `<n> YEARLY` (any subset, any order, each kind once, n a positive integer), e.g. `7 DAILY, 4 WEEKLY, 12 MONTHLY`";

impl std::str::FromStr for GfsCounts {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut g = GfsCounts::default();
        let mut seen = Vec::new();
        for item in s.split(',') {
            let words: Vec<String> = item
                .split_whitespace()
                .map(str::to_ascii_uppercase)
                .collect();
            let [n, kind] = words.as_slice() else {
                return Err(GFS_ACCEPTED.into());
            };
            let n = match n.parse::<u32>() {
                Ok(n) if n > 0 => n,
                _ => return Err(GFS_ACCEPTED.into()),
            };
            let slot = match kind.as_str() {
                "DAILY" => &mut g.daily,
                "WEEKLY" => &mut g.weekly,
                "MONTHLY" => &mut g.monthly,
                "YEARLY" => &mut g.yearly,
                _ => return Err(GFS_ACCEPTED.into()),
            };
            if seen.contains(kind) {
                return Err(format!("{kind} is given twice; {GFS_ACCEPTED}"));
            }
            seen.push(kind.clone());
            *slot = n;
        }
        Ok(g)
    }
}

impl fmt::Display for GfsCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = [
            (self.daily, "DAILY"),
            (self.weekly, "WEEKLY"),
            (self.monthly, "MONTHLY"),
            (self.yearly, "YEARLY"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, k)| format!("{n} {k}"))
        .collect();
        f.write_str(&parts.join(", "))
    }
}

/// A cron expression as the daemon reads it (croner: 5 fields, or 6 with seconds
/// first; `@hourly`, `@daily`, `@weekly`…); the text, checked.
pub fn parse_schedule(s: &str) -> Result<String, String> {
    let t = s.trim();
    t.parse::<croner::Cron>().map(|_| t.to_string()).map_err(|e| {
        format!("a cron expression (5 fields, or 6 with seconds first; @hourly, @daily, @weekly): {e}")
    })
}

/// A jitter: `auto` (5 % of the schedule's interval, at most 5 minutes), `N%` of the
/// interval, or `N`, `Ns`, `Nm` (a fixed maximum).
pub fn parse_jitter(s: &str) -> Result<String, String> {
    let t = s.trim();
    let accepted = || {
        "`auto`, `N%%` of the interval (0–100; `%` is written `%%` in these files), or `N`, `Ns`, `Nm` (seconds, minutes)"
            .to_string()
    };
    let ok = if t.eq_ignore_ascii_case("auto") {
        true
    } else if let Some(p) = t.strip_suffix('%') {
        p.trim().parse::<u32>().is_ok_and(|n| n <= 100)
    } else {
        let digits = t.trim_end_matches(['s', 'm']);
        digits.parse::<u64>().is_ok() && t.len() - digits.len() <= 1
    };
    if ok {
        Ok(t.to_string())
    } else {
        Err(accepted())
    }
}

/// An IANA time zone name.
pub fn parse_timezone(s: &str) -> Result<chrono_tz::Tz, String> {
    s.trim().parse::<chrono_tz::Tz>().map_err(|_| {
        "an IANA time zone name such as `UTC`, `Europe/Madrid` or `America/New_York`".to_string()
    })
}

/// A time interval `N {HOUR,DAY,WEEK,MONTH}[S]` (month = 31 days), as Barman parses
/// `last_backup_maximum_age` and `last_wal_maximum_age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeInterval {
    /// How many units.
    pub n: u32,
    /// The unit.
    pub unit: IntervalUnit,
}

/// Unit of a [`TimeInterval`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalUnit {
    /// 3600 s.
    Hour,
    /// 1 day.
    Day,
    /// 7 days.
    Week,
    /// 31 days.
    Month,
}

/// What an interval accepts, for error messages.
pub const INTERVAL_ACCEPTED: &str = "`<n> HOURS|DAYS|WEEKS|MONTHS` (a month is 31 days)";

impl TimeInterval {
    /// The interval in seconds.
    pub fn as_secs(&self) -> u64 {
        let unit = match self.unit {
            IntervalUnit::Hour => 3600,
            IntervalUnit::Day => 86_400,
            IntervalUnit::Week => 7 * 86_400,
            IntervalUnit::Month => 31 * 86_400,
        };
        u64::from(self.n) * unit
    }
}

impl std::str::FromStr for TimeInterval {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let n: u32 = s[..digits_end]
            .parse()
            .map_err(|_| INTERVAL_ACCEPTED.to_string())?;
        let unit = s[digits_end..].trim().to_ascii_lowercase();
        let unit = match unit.strip_suffix('s').unwrap_or(&unit) {
            "hour" => IntervalUnit::Hour,
            "day" => IntervalUnit::Day,
            "week" => IntervalUnit::Week,
            "month" => IntervalUnit::Month,
            _ => return Err(INTERVAL_ACCEPTED.to_string()),
        };
        Ok(TimeInterval { n, unit })
    }
}

impl fmt::Display for TimeInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self.unit {
            IntervalUnit::Hour => "HOUR",
            IntervalUnit::Day => "DAY",
            IntervalUnit::Week => "WEEK",
            IntervalUnit::Month => "MONTH",
        };
        let plural = if self.n == 1 { "" } else { "S" };
        write!(f, "{} {word}{plural}", self.n)
    }
}

/// A size `N[k|Ki|M|Mi|G|Gi|T|Ti]` (case-sensitive, as Barman's `parse_si_suffix`):
/// `k`, `M`, `G`, `T` are powers of 1000, `Ki`, `Mi`, `Gi`, `Ti` powers of 1024.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    /// The number as written.
    pub n: u64,
    /// The suffix as written (empty for bytes).
    pub suffix: &'static str,
}

const SIZE_SUFFIXES: [(&str, u64); 9] = [
    ("", 1),
    ("k", 1000),
    ("Ki", 1 << 10),
    ("M", 1_000_000),
    ("Mi", 1 << 20),
    ("G", 1_000_000_000),
    ("Gi", 1 << 30),
    ("T", 1_000_000_000_000),
    ("Ti", 1 << 40),
];

/// What a size accepts, for error messages.
pub const SIZE_ACCEPTED: &str =
    "a number of bytes with an optional suffix k, Ki, M, Mi, G, Gi, T or Ti (case-sensitive)";

impl Size {
    /// The size in bytes (saturating).
    pub fn bytes(&self) -> u64 {
        let mult = SIZE_SUFFIXES
            .iter()
            .find(|(s, _)| *s == self.suffix)
            .map_or(1, |(_, m)| *m);
        self.n.saturating_mul(mult)
    }
}

impl std::str::FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let n: u64 = s[..digits_end]
            .parse()
            .map_err(|_| SIZE_ACCEPTED.to_string())?;
        let suffix = s[digits_end..].trim();
        let (suffix, mult) = SIZE_SUFFIXES
            .iter()
            .find(|(x, _)| *x == suffix)
            .ok_or_else(|| SIZE_ACCEPTED.to_string())?;
        n.checked_mul(*mult)
            .ok_or_else(|| format!("{SIZE_ACCEPTED}, below 2^64 bytes"))?;
        Ok(Size { n, suffix })
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.n, self.suffix)
    }
}

/// `compression_level`: a word or a codec-specific integer (clamped by the codec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionLevel {
    /// Fastest.
    Low,
    /// The codec's default.
    Medium,
    /// Smallest.
    High,
    /// A codec level.
    Level(i32),
}

impl fmt::Display for CompressionLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompressionLevel::Low => f.write_str("low"),
            CompressionLevel::Medium => f.write_str("medium"),
            CompressionLevel::High => f.write_str("high"),
            CompressionLevel::Level(l) => write!(f, "{l}"),
        }
    }
}

/// Parses `compression_level`.
pub fn parse_level(s: &str) -> Result<CompressionLevel, String> {
    match s.to_ascii_lowercase().as_str() {
        "low" => Ok(CompressionLevel::Low),
        "medium" => Ok(CompressionLevel::Medium),
        "high" => Ok(CompressionLevel::High),
        other => other
            .parse::<i32>()
            .map(CompressionLevel::Level)
            .map_err(|_| "`low`, `medium`, `high` or an integer level".to_string()),
    }
}

/// Parses `0x…` hex bytes (`custom_compression_magic`).
pub fn parse_magic(s: &str) -> Result<Vec<u8>, String> {
    let accepted = || "hex bytes written as `0x…` (e.g. `0x28b52ffd`)".to_string();
    let hex = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .ok_or_else(accepted)?;
    if hex.is_empty() || hex.len() % 2 != 0 {
        return Err(accepted());
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| accepted()))
        .collect()
}

/// Parses one of `choices` (case-insensitive); returns the canonical spelling.
pub fn parse_choice(s: &str, choices: &'static [&'static str]) -> Result<&'static str, String> {
    let lower = s.to_ascii_lowercase();
    choices
        .iter()
        .copied()
        .find(|c| *c == lower)
        .ok_or_else(|| one_of(choices))
}

/// Parses a comma-separated set of `choices`; `conflicts` lists pairs that exclude each other.
pub fn parse_list(
    s: &str,
    choices: &'static [&'static str],
    conflicts: &[(&str, &str)],
) -> Result<Vec<&'static str>, String> {
    let mut out: Vec<&'static str> = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let c = parse_choice(item, choices)
            .map_err(|_| format!("a comma-separated list of {}", one_of(choices)))?;
        if !out.contains(&c) {
            out.push(c);
        }
    }
    for (a, b) in conflicts {
        if out.contains(a) && out.contains(b) {
            return Err(format!("a list that does not hold both `{a}` and `{b}`"));
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn one_of(choices: &[&str]) -> String {
    let quoted: Vec<String> = choices.iter().map(|c| format!("`{c}`")).collect();
    format!("one of {}", quoted.join(", "))
}

/// Parses a replication slot name: Barman lower-cases it and accepts `[0-9a-z_]+`
/// (PostgreSQL's own rule, at most 63 bytes).
pub fn parse_slot_name(s: &str) -> Result<String, String> {
    let lower = s.to_ascii_lowercase();
    if !lower.is_empty()
        && lower.len() <= 63
        && lower
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Ok(lower)
    } else {
        Err("letters, digits and `_` only, at most 63 characters".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn booleans_as_barman_spells_them() {
        for t in ["true", "T", "yes", "1", "ON"] {
            assert_eq!(parse_bool(t), Ok(true), "{t}");
        }
        for f in ["false", "F", "no", "0", "Off"] {
            assert_eq!(parse_bool(f), Ok(false), "{f}");
        }
        assert!(parse_bool("maybe").is_err());
        assert!(parse_bool("").is_err());
    }

    #[test]
    fn retention_policies() {
        assert_eq!(
            "redundancy 3".parse::<RetentionPolicy>(),
            Ok(RetentionPolicy::Redundancy(3))
        );
        assert_eq!(
            "RECOVERY WINDOW OF 2 weeks".parse::<RetentionPolicy>(),
            Ok(RetentionPolicy::RecoveryWindow {
                n: 2,
                unit: WindowUnit::Week
            })
        );
        assert_eq!(
            "recovery  window of 1 MONTH".parse::<RetentionPolicy>(),
            Ok(RetentionPolicy::RecoveryWindow {
                n: 1,
                unit: WindowUnit::Month
            })
        );
        for bad in [
            "REDUNDANCY x",
            "REDUNDANCY 0",
            "REDUNDANCY",
            "RECOVERY WINDOW 2 DAYS",
            "RECOVERY WINDOW OF 2 YEARS",
            "",
        ] {
            assert!(bad.parse::<RetentionPolicy>().is_err(), "{bad}");
        }
    }

    #[test]
    fn intervals() {
        let i: TimeInterval = "1 WEEK".parse().expect("valid");
        assert_eq!(i.as_secs(), 7 * 86_400);
        let i: TimeInterval = "2 months".parse().expect("valid");
        assert_eq!(i.as_secs(), 62 * 86_400);
        let i: TimeInterval = "6 hours".parse().expect("valid");
        assert_eq!(i.as_secs(), 6 * 3600);
        assert!("1 year".parse::<TimeInterval>().is_err());
        assert!("week".parse::<TimeInterval>().is_err());
    }

    #[test]
    fn sizes_are_case_sensitive() {
        assert_eq!("1Gi".parse::<Size>().map(|s| s.bytes()), Ok(1 << 30));
        assert_eq!("5k".parse::<Size>().map(|s| s.bytes()), Ok(5000));
        assert_eq!("42".parse::<Size>().map(|s| s.bytes()), Ok(42));
        assert!("1gi".parse::<Size>().is_err());
        assert!("1K".parse::<Size>().is_err());
        assert!("99999999999999Ti".parse::<Size>().is_err());
    }

    #[test]
    fn lists_reject_conflicts_and_unknowns() {
        let choices: &'static [&'static str] = &[
            "concurrent_backup",
            "exclusive_backup",
            "external_configuration",
        ];
        let conflicts = [("concurrent_backup", "exclusive_backup")];
        assert_eq!(
            parse_list(
                "external_configuration, concurrent_backup",
                choices,
                &conflicts
            ),
            Ok(vec!["concurrent_backup", "external_configuration"])
        );
        assert!(parse_list("concurrent_backup,exclusive_backup", choices, &conflicts).is_err());
        assert!(parse_list("bogus", choices, &conflicts).is_err());
        assert_eq!(parse_list("", choices, &conflicts), Ok(vec![]));
    }

    #[test]
    fn magic_and_slot() {
        assert_eq!(parse_magic("0x28b52ffd"), Ok(vec![0x28, 0xb5, 0x2f, 0xfd]));
        assert!(parse_magic("28b5").is_err());
        assert!(parse_magic("0x2").is_err());
        assert_eq!(parse_slot_name("Barman_1"), Ok("barman_1".into()));
        assert!(parse_slot_name("bad-name").is_err());
    }

    fn window_unit() -> impl Strategy<Value = WindowUnit> {
        prop_oneof![
            Just(WindowUnit::Day),
            Just(WindowUnit::Week),
            Just(WindowUnit::Month)
        ]
    }

    fn interval_unit() -> impl Strategy<Value = IntervalUnit> {
        prop_oneof![
            Just(IntervalUnit::Hour),
            Just(IntervalUnit::Day),
            Just(IntervalUnit::Week),
            Just(IntervalUnit::Month)
        ]
    }

    proptest! {
        #[test]
        fn retention_round_trip(n in 1u32.., unit in window_unit(), redundancy in any::<bool>()) {
            let policy = if redundancy {
                RetentionPolicy::Redundancy(n)
            } else {
                RetentionPolicy::RecoveryWindow { n, unit }
            };
            let text = policy.to_string();
            prop_assert_eq!(text.parse::<RetentionPolicy>(), Ok(policy));
            // Barman's grammar is case-insensitive.
            prop_assert_eq!(text.to_lowercase().parse::<RetentionPolicy>(), Ok(policy));
        }

        #[test]
        fn interval_round_trip(n in any::<u32>(), unit in interval_unit()) {
            let i = TimeInterval { n, unit };
            prop_assert_eq!(i.to_string().parse::<TimeInterval>(), Ok(i));
            prop_assert_eq!(i.to_string().to_lowercase().parse::<TimeInterval>(), Ok(i));
        }

        #[test]
        fn size_round_trip(n in 0u64..1_000_000, idx in 0usize..SIZE_SUFFIXES.len()) {
            let s = Size { n, suffix: SIZE_SUFFIXES[idx].0 };
            prop_assert_eq!(s.to_string().parse::<Size>(), Ok(s));
        }

        #[test]
        fn parsers_never_panic(s in ".*") {
            let _ = s.parse::<RetentionPolicy>();
            let _ = s.parse::<TimeInterval>();
            let _ = s.parse::<Size>();
            let _ = parse_magic(&s);
            let _ = parse_level(&s);
        }
    }
}
