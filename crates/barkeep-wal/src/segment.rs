//! Segment sizes and segment file names (`TTTTTTTTXXXXXXXXYYYYYYYY`).

use std::fmt;

use crate::{Lsn, TimeLineId, WalError};

/// A WAL segment size: a power of two from 1 MiB to 1 GiB (`wal_segment_size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SegmentSize(u64);

impl SegmentSize {
    /// PostgreSQL's default, 16 MiB.
    pub const DEFAULT: SegmentSize = SegmentSize(16 << 20);

    /// Validates a size in bytes.
    pub fn new(bytes: u64) -> Result<SegmentSize, WalError> {
        if bytes.is_power_of_two() && ((1 << 20)..=(1 << 30)).contains(&bytes) {
            Ok(SegmentSize(bytes))
        } else {
            Err(WalError::SegmentSize(bytes))
        }
    }
    /// Parses `SHOW wal_segment_size` output (`16MB`, `1GB`, or bytes).
    pub fn from_setting(text: &str) -> Result<SegmentSize, WalError> {
        let t = text.trim();
        let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let n: u64 = t[..digits].parse().map_err(|_| WalError::SegmentSize(0))?;
        let mult = match t[digits..].trim() {
            "" | "B" => 1,
            "kB" => 1 << 10,
            "MB" => 1 << 20,
            "GB" => 1 << 30,
            _ => return Err(WalError::SegmentSize(0)),
        };
        SegmentSize::new(n.saturating_mul(mult))
    }
    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
    /// Segments per 4 GiB "xlogid" (`XLogSegmentsPerXLogId`).
    pub fn segments_per_xlogid(self) -> u64 {
        0x1_0000_0000 / self.0
    }
    /// First LSN of segment `segno`.
    pub fn segment_start(self, segno: u64) -> Lsn {
        Lsn(segno.saturating_mul(self.0))
    }
    /// The file name of segment `segno` on timeline `tli` (`XLogFileName`).
    pub fn segment_name(self, tli: TimeLineId, segno: u64) -> String {
        let per = self.segments_per_xlogid();
        format!("{tli:08X}{:08X}{:08X}", segno / per, segno % per)
    }
    /// Parses a 24-character segment name into timeline and segment number.
    pub fn parse_segment_name(self, name: &str) -> Result<SegmentName, WalError> {
        let bad = |reason: &str| WalError::SegmentName {
            name: name.to_string(),
            reason: reason.to_string(),
        };
        if name.len() != 24
            || !name
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase())
        {
            return Err(bad("expected 24 upper-case hexadecimal digits"));
        }
        let field = |r: std::ops::Range<usize>| u64::from_str_radix(&name[r], 16).unwrap_or(0);
        let tli = field(0..8);
        let log = field(8..16);
        let seg = field(16..24);
        if tli == 0 {
            return Err(bad("timeline 0 does not exist"));
        }
        if seg >= self.segments_per_xlogid() {
            return Err(bad(&format!(
                "segment part {seg:X} is too large for {} MiB segments",
                self.0 >> 20
            )));
        }
        Ok(SegmentName {
            tli: u32::try_from(tli).map_err(|_| bad("timeline out of range"))?,
            segno: log * self.segments_per_xlogid() + seg,
        })
    }
}

impl fmt::Display for SegmentSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 1 << 30 {
            write!(f, "{}GB", self.0 >> 30)
        } else {
            write!(f, "{}MB", self.0 >> 20)
        }
    }
}

/// A parsed segment file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentName {
    /// Timeline.
    pub tli: TimeLineId,
    /// Segment number.
    pub segno: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_from_the_reference() {
        let lsn: Lsn = "1/23456789".parse().expect("lsn");
        let s16 = SegmentSize::DEFAULT;
        assert_eq!(
            s16.segment_name(1, lsn.segno(s16)),
            "000000010000000100000023"
        );
        let s64 = SegmentSize::new(64 << 20).expect("size");
        assert_eq!(
            s64.segment_name(1, lsn.segno(s64)),
            "000000010000000100000008"
        );
        let s1g = SegmentSize::new(1 << 30).expect("size");
        assert_eq!(
            s1g.segment_name(1, lsn.segno(s1g)),
            "000000010000000100000000"
        );
        let early: Lsn = "0/2000028".parse().expect("lsn");
        assert_eq!(
            s16.segment_name(1, early.segno(s16)),
            "000000010000000000000002"
        );
        assert_eq!(early.segment_start(s16), Lsn(0x0200_0000));
    }

    #[test]
    fn bad_names_and_sizes() {
        let s = SegmentSize::DEFAULT;
        assert!(s.parse_segment_name("00000000000000000000000A").is_err());
        assert!(s.parse_segment_name("000000010000000000000100").is_err());
        assert!(s.parse_segment_name("00000001000000000000000a").is_err());
        assert!(s.parse_segment_name("0000000100000000000000").is_err());
        assert!(SegmentSize::new(3 << 20).is_err());
        assert!(SegmentSize::new(2 << 30).is_err());
        assert_eq!(SegmentSize::from_setting("16MB"), Ok(SegmentSize::DEFAULT));
        assert_eq!(
            SegmentSize::from_setting("1GB").map(SegmentSize::bytes),
            Ok(1 << 30)
        );
        assert!(SegmentSize::from_setting("16 furlongs").is_err());
    }

    proptest! {
        #[test]
        fn name_round_trip(tli in 1u32.., shift in 20u32..=30, raw in any::<u64>()) {
            let size = SegmentSize::new(1 << shift).expect("size");
            // Every segment of the 64-bit LSN space.
            let segno = raw >> shift;
            let name = size.segment_name(tli, segno);
            prop_assert_eq!(size.parse_segment_name(&name), Ok(SegmentName { tli, segno }));
        }

        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = SegmentSize::DEFAULT.parse_segment_name(&s);
        }
    }
}
