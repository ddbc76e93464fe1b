//! Log sequence numbers: byte positions in the WAL stream, written `H/L` in hex.

use std::fmt;
use std::str::FromStr;

use crate::{SegmentSize, WalError};

/// A WAL position (PostgreSQL's `XLogRecPtr`). `0/0` is the invalid position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// The invalid position `0/0`.
    pub const INVALID: Lsn = Lsn(0);

    /// The segment number holding this position.
    pub fn segno(self, size: SegmentSize) -> u64 {
        self.0 / size.bytes()
    }
    /// Offset of this position inside its segment.
    pub fn segment_offset(self, size: SegmentSize) -> u64 {
        self.0 % size.bytes()
    }
    /// The start of the segment holding this position.
    pub fn segment_start(self, size: SegmentSize) -> Lsn {
        Lsn(self.0 - self.segment_offset(size))
    }
    /// Whether this is a valid (non-zero) position.
    pub fn is_valid(self) -> bool {
        self.0 != 0
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = WalError;
    fn from_str(s: &str) -> Result<Lsn, WalError> {
        let bad = || WalError::Lsn(s.to_string());
        let (hi, lo) = s.split_once('/').ok_or_else(bad)?;
        let half = |h: &str| -> Result<u64, WalError> {
            if h.is_empty() || h.len() > 8 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            u64::from_str_radix(h, 16).map_err(|_| bad())
        };
        Ok(Lsn((half(hi)? << 32) | half(lo)?))
    }
}

impl From<u64> for Lsn {
    fn from(v: u64) -> Lsn {
        Lsn(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn text_forms() {
        assert_eq!("0/2000028".parse::<Lsn>(), Ok(Lsn(0x0200_0028)));
        assert_eq!("1/a3".parse::<Lsn>(), Ok(Lsn((1 << 32) | 0xA3)));
        assert_eq!(Lsn((1 << 32) | 0xA3).to_string(), "1/A3");
        assert_eq!("00000001/00000002".parse::<Lsn>(), Ok(Lsn((1 << 32) | 2)));
        for bad in [
            "",
            "/",
            "1/",
            "/1",
            "1-2",
            "123456789/0",
            "g/0",
            "1/2/3",
            " 1/2",
        ] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn round_trip(v in any::<u64>()) {
            let lsn = Lsn(v);
            prop_assert_eq!(lsn.to_string().parse::<Lsn>(), Ok(lsn));
            prop_assert_eq!(lsn.to_string().to_lowercase().parse::<Lsn>(), Ok(lsn));
        }

        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = s.parse::<Lsn>();
        }
    }
}
