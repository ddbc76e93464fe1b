//! PostgreSQL WAL arithmetic: [`Lsn`], timeline ids, segment sizes and names, timeline
//! history files. Pure functions, no I/O.
//!
//! Follows PostgreSQL's `xlog_internal.h` (`XLogFileName`, `XLByteToSeg`) and
//! `timeline.c` (history file format).
//!
//! ```
//! use barkeep_wal::{Lsn, SegmentSize};
//! let lsn: Lsn = "1/23456789".parse().unwrap();
//! let size = SegmentSize::DEFAULT;
//! assert_eq!(size.segment_name(1, lsn.segno(size)), "000000010000000100000023");
//! ```

mod history;
mod lsn;
mod segment;

pub use history::{HistoryEntry, history_file_name, parse_history};
pub use lsn::Lsn;
pub use segment::{SegmentName, SegmentSize};

/// A timeline id (never 0).
pub type TimeLineId = u32;

/// Malformed WAL names, LSNs or history files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalError {
    /// An LSN not written `X/X` with 1–8 hex digits per half.
    #[error("invalid LSN `{0}`: expected `X/X` with 1 to 8 hexadecimal digits on each side")]
    Lsn(String),
    /// A segment size that is not a power of two between 1 MiB and 1 GiB.
    #[error("invalid WAL segment size {0} bytes: expected a power of two from 1 MiB to 1 GiB")]
    SegmentSize(u64),
    /// A segment file name that does not parse for this segment size.
    #[error("invalid WAL segment name `{name}`: {reason}")]
    SegmentName {
        /// The name.
        name: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A timeline history file line that does not parse.
    #[error("timeline history line {line}: {reason}")]
    History {
        /// 1-based line.
        line: usize,
        /// Why it is invalid.
        reason: String,
    },
}
