//! The one WAL-range API: which WAL files a backup needs, from its begin to its end (to
//! be consistent) or onwards (for point-in-time recovery), or up to the next backup
//! (what `show-backup` and `list-backups` count), across timelines and for any segment
//! size. Backup, check-backup, delete, restore and list-files all ask it; none compares
//! file names by hand.

use barkeep_wal::SegmentSize;

use crate::error::{CatalogError, Result};
use crate::info::BackupInfo;

/// A position: timeline and segment number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SegPos {
    /// Timeline.
    pub tli: u32,
    /// Segment number (for the range's segment size).
    pub segno: u64,
}

/// A range of WAL segments, `first` to `last` (inclusive; open when `None`). A segment
/// belongs to it when its number is inside and its timeline is not older than `first`'s
/// (nor newer than `last`'s): after a promotion the same segment numbers continue on the
/// new timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalRange {
    /// Segment size of the server.
    pub seg: SegmentSize,
    /// First segment.
    pub first: SegPos,
    /// Last segment, or none for "everything from `first` on".
    pub last: Option<SegPos>,
}

fn pos(seg: SegmentSize, name: &str, b: &BackupInfo) -> Result<SegPos> {
    let p = seg
        .parse_segment_name(name)
        .map_err(|e| CatalogError::Corrupt(format!("backup {}: `{name}`: {e}", b.backup_id)))?;
    Ok(SegPos {
        tli: p.tli,
        segno: p.segno,
    })
}

fn seg_size(b: &BackupInfo) -> Result<SegmentSize> {
    SegmentSize::new(b.segment_size()).map_err(|e| {
        CatalogError::Corrupt(format!(
            "backup {}: xlog_segment_size {}: {e}",
            b.backup_id,
            b.segment_size()
        ))
    })
}

impl WalRange {
    /// Everything, for segments of size `seg` (to read positions with
    /// [`WalRange::position`]).
    pub fn all(seg: SegmentSize) -> WalRange {
        WalRange {
            seg,
            first: SegPos { tli: 0, segno: 0 },
            last: None,
        }
    }

    /// The WAL `b` needs to be consistent: `begin_wal` to `end_wal`. `None` when the
    /// backup does not say (it never got that far).
    pub fn of_backup(b: &BackupInfo) -> Result<Option<WalRange>> {
        let (Some(begin), Some(end)) = (&b.begin_wal, &b.end_wal) else {
            return Ok(None);
        };
        let seg = seg_size(b)?;
        Ok(Some(WalRange {
            seg,
            first: pos(seg, begin, b)?,
            last: Some(pos(seg, end, b)?),
        }))
    }

    /// Everything from `b`'s `begin_wal` on (what recovery to any later point replays).
    pub fn from_backup(b: &BackupInfo) -> Result<Option<WalRange>> {
        let Some(begin) = &b.begin_wal else {
            return Ok(None);
        };
        let seg = seg_size(b)?;
        Ok(Some(WalRange {
            seg,
            first: pos(seg, begin, b)?,
            last: None,
        }))
    }

    /// From `b`'s begin up to (not including) `next`'s begin: the WAL that belongs to `b`
    /// in `list-backups`/`show-backup`.
    pub fn until_next(b: &BackupInfo, next: Option<&BackupInfo>) -> Result<Option<WalRange>> {
        let Some(mut r) = WalRange::from_backup(b)? else {
            return Ok(None);
        };
        if let Some(n) = next.and_then(|n| n.begin_wal.as_deref()) {
            let p = pos(r.seg, n, b)?;
            if p.segno == 0 {
                return Ok(None);
            }
            r.last = Some(SegPos {
                tli: p.tli,
                segno: p.segno - 1,
            });
        }
        Ok(Some(r))
    }

    /// The position of a WAL file name: a segment, a `.partial` or a `.backup` label (by
    /// the segment it names); `None` for history files and other names.
    pub fn position(&self, name: &str) -> Option<SegPos> {
        let base = name.get(..24)?;
        let rest = &name[24..];
        if !(rest.is_empty() || rest == ".partial" || rest.ends_with(".backup")) {
            return None;
        }
        self.seg.parse_segment_name(base).ok().map(|p| SegPos {
            tli: p.tli,
            segno: p.segno,
        })
    }

    /// [`WalRange::position`] on raw bytes (a line of `xlog.db`), without allocating or
    /// validating more than the 24 hex digits: the hot loop of `show-backup`.
    pub fn position_bytes(&self, name: &[u8]) -> Option<SegPos> {
        fn hex(b: &[u8]) -> Option<u64> {
            let mut v: u64 = 0;
            for &c in b {
                let d = match c {
                    b'0'..=b'9' => c - b'0',
                    b'A'..=b'F' => c - b'A' + 10,
                    b'a'..=b'f' => c - b'a' + 10,
                    _ => return None,
                };
                v = (v << 4) | d as u64;
            }
            Some(v)
        }
        let head = name.get(..24)?;
        let rest = &name[24..];
        if !(rest.is_empty() || rest == b".partial" || rest.ends_with(b".backup")) {
            return None;
        }
        let tli = hex(&head[..8])? as u32;
        let log = hex(&head[8..16])?;
        let seg = hex(&head[16..24])?;
        let per_log = 0x1_0000_0000u64 / self.seg.bytes();
        if seg >= per_log {
            return None;
        }
        Some(SegPos {
            tli,
            segno: log * per_log + seg,
        })
    }

    /// Whether `name` is in the range.
    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some_and(|p| self.contains_pos(p))
    }

    /// Whether a position is in the range.
    pub fn contains_pos(&self, p: SegPos) -> bool {
        p.segno >= self.first.segno
            && p.tli >= self.first.tli
            && self
                .last
                .is_none_or(|l| p.segno <= l.segno && p.tli <= l.tli)
    }

    /// Whether `name` comes before the range (no backup from `first` on needs it).
    /// History files never do: they are needed whatever the target.
    pub fn precedes(&self, name: &str) -> bool {
        self.position(name)
            .is_some_and(|p| p.segno < self.first.segno && p.tli <= self.first.tli)
    }

    /// Segment numbers of a closed range, with the timelines a segment may be on (the last
    /// one's, then the first one's).
    pub fn segments(&self) -> impl Iterator<Item = (u64, [String; 2])> + '_ {
        let last = self.last.unwrap_or(self.first);
        (self.first.segno..=last.segno).map(move |segno| {
            (
                segno,
                [
                    self.seg.segment_name(last.tli, segno),
                    self.seg.segment_name(self.first.tli, segno),
                ],
            )
        })
    }

    /// Number of segments of a closed range.
    pub fn len(&self) -> u64 {
        self.last
            .map(|l| l.segno.saturating_sub(self.first.segno) + 1)
            .unwrap_or(0)
    }

    /// Whether a closed range holds no segment (never, for a range built from a backup).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(begin: &str, end: Option<&str>, seg: u64) -> BackupInfo {
        let mut b = BackupInfo::new("20260101T000000", "pg");
        b.begin_wal = Some(begin.into());
        b.end_wal = end.map(str::to_string);
        b.xlog_segment_size = Some(seg);
        b
    }

    #[test]
    fn a_backup_needs_begin_to_end_on_its_timelines() {
        let b = backup(
            "000000010000000000000004",
            Some("000000020000000000000006"),
            16 << 20,
        );
        let r = WalRange::of_backup(&b).expect("range").expect("some");
        assert_eq!(r.len(), 3);
        assert!(r.contains("000000010000000000000004"));
        assert!(r.contains("000000020000000000000005"));
        assert!(r.contains("000000020000000000000006.partial"));
        assert!(!r.contains("000000030000000000000005"), "newer timeline");
        assert!(!r.contains("000000010000000000000007"));
        assert!(!r.contains("00000002.history"));
        assert!(r.precedes("000000010000000000000003"));
        assert!(r.precedes("000000010000000000000003.00000028.backup"));
        assert!(!r.precedes("000000020000000000000003"), "later timeline");
        assert!(!r.precedes("00000002.history"));
        for name in [
            "000000020000000000000005",
            "000000010000000000000004.partial",
            "00000001000000000000000G",
            "00000002.history",
        ] {
            assert_eq!(
                r.position_bytes(name.as_bytes()),
                r.position(name),
                "{name}"
            );
        }
        let names: Vec<_> = r.segments().map(|(_, n)| n[0].clone()).collect();
        assert_eq!(names[0], "000000020000000000000004");
    }

    #[test]
    fn segment_sizes_change_the_numbers() {
        // 1 MiB segments: 4096 per "log"; segment 0x1000 is log 1, seg 0.
        let b = backup(
            "000000010000000000000FFF",
            Some("000000010000000100000000"),
            1 << 20,
        );
        let r = WalRange::of_backup(&b).expect("range").expect("some");
        assert_eq!(r.len(), 2);
        assert!(r.contains("000000010000000100000000"));
        let next = backup("000000010000000100000002", None, 1 << 20);
        let until = WalRange::until_next(&b, Some(&next))
            .expect("range")
            .expect("some");
        assert!(until.contains("000000010000000100000001"));
        assert!(!until.contains("000000010000000100000002"));
    }
}
