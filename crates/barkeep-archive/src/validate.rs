//! Page-level validation of WAL segments (protocol reference §7.3): cheap checks that
//! catch files of another cluster or major, misplaced or recycled segments and truncated
//! or damaged files before they enter the archive. Reads page by page: memory stays flat.

use std::io::Read;

use barkeep_wal::TimeLineId;

/// `XLOG_PAGE_MAGIC` of each supported major.
pub const PAGE_MAGICS: &[(u32, u16)] = &[
    (13, 0xD106),
    (14, 0xD10D),
    (15, 0xD110),
    (16, 0xD113),
    (17, 0xD116),
    (18, 0xD118),
];

/// The page magic of `major`, if supported.
pub fn page_magic(major: u32) -> Option<u16> {
    PAGE_MAGICS
        .iter()
        .find(|(m, _)| *m == major)
        .map(|(_, x)| *x)
}

const XLP_LONG_HEADER: u16 = 0x0002;
const XLP_ALL_FLAGS: u16 = 0x000F;

/// What a segment must be.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    /// Timeline of the file name.
    pub tli: TimeLineId,
    /// Segment number of the file name.
    pub segno: u64,
    /// Segment size of the cluster.
    pub segment_size: u64,
    /// The cluster's system identifier, when known (identity.json).
    pub system_id: Option<u64>,
    /// The server's major, when known: fixes the page magic.
    pub major: Option<u32>,
    /// A complete segment must be exactly `segment_size` bytes; a partial one may be shorter.
    pub complete: bool,
}

fn u16le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64le(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// Reads up to `buf.len()` bytes; returns how many (short only at end of input).
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Validates a segment read from `input`; the error says what is wrong and where.
pub fn validate_segment(input: &mut dyn Read, expect: &Expect) -> Result<(), String> {
    let seg_start = expect.segno * expect.segment_size;
    let mut first = [0u8; 40];
    let n = read_full(input, &mut first).map_err(|e| format!("read error: {e}"))?;
    if n < 40 {
        return Err(format!(
            "truncated: {n} bytes, not even a page header (a segment is {} bytes)",
            expect.segment_size
        ));
    }
    let magic = u16le(&first, 0);
    match expect.major.and_then(page_magic) {
        Some(m) if m != magic => {
            let other = PAGE_MAGICS
                .iter()
                .find(|(_, x)| *x == magic)
                .map(|(v, _)| format!(" (the magic of PostgreSQL {v})"))
                .unwrap_or_default();
            return Err(format!(
                "page magic 0x{magic:04X}{other}, expected 0x{m:04X} for PostgreSQL {}",
                expect.major.unwrap_or_default()
            ));
        }
        None if !PAGE_MAGICS.iter().any(|(_, x)| *x == magic) => {
            return Err(format!(
                "page magic 0x{magic:04X} is not the magic of any supported PostgreSQL major (not WAL, or damaged)"
            ));
        }
        _ => {}
    }
    let info = u16le(&first, 2);
    if info & XLP_LONG_HEADER == 0 {
        return Err("the first page has no long header (not the start of a segment)".into());
    }
    let sysid = u64le(&first, 24);
    if let Some(want) = expect.system_id
        && sysid != want
    {
        return Err(format!(
            "system identifier {sysid} in the page header, the archive belongs to {want} (WAL of another cluster)"
        ));
    }
    let seg_size = u64::from(u32le(&first, 32));
    if seg_size != expect.segment_size {
        return Err(format!(
            "segment size {seg_size} in the page header, expected {}",
            expect.segment_size
        ));
    }
    let blcksz = u32le(&first, 36) as usize;
    if !blcksz.is_power_of_two() || !(1024..=65536).contains(&blcksz) {
        return Err(format!(
            "implausible WAL block size {blcksz} in the page header"
        ));
    }

    let mut page = vec![0u8; blcksz];
    page[..40].copy_from_slice(&first);
    let got = read_full(input, &mut page[40..]).map_err(|e| format!("read error: {e}"))?;
    let mut total = 40 + got as u64;
    let mut filled = 40 + got;
    let mut k: u64 = 0;
    let mut zero_from: Option<u64> = None;
    let mut last_tli = 0u32;
    loop {
        if filled < blcksz {
            if filled == 0 {
                break;
            }
            if expect.complete {
                break; // reported as a size error below
            }
        }
        let offset = k * blcksz as u64;
        let body = &page[..filled];
        if body.iter().all(|b| *b == 0) {
            zero_from.get_or_insert(offset);
        } else {
            if let Some(z) = zero_from {
                return Err(format!(
                    "data at offset {offset} after an empty page at offset {z} (damaged or a stale recycled segment)"
                ));
            }
            if filled < 24 {
                return Err(format!("truncated page header at offset {offset}"));
            }
            let m = u16le(body, 0);
            if m != magic {
                return Err(format!(
                    "page at offset {offset}: magic 0x{m:04X}, the segment's is 0x{magic:04X}"
                ));
            }
            let info = u16le(body, 2);
            if info & !XLP_ALL_FLAGS != 0 {
                return Err(format!(
                    "page at offset {offset}: unknown flags 0x{info:04X}"
                ));
            }
            if k > 0 && info & XLP_LONG_HEADER != 0 {
                return Err(format!("page at offset {offset}: unexpected long header"));
            }
            let tli = u32le(body, 4);
            if tli > expect.tli || tli < last_tli || tli == 0 {
                return Err(format!(
                    "page at offset {offset}: timeline {tli} (file is on timeline {}, previous page on {last_tli})",
                    expect.tli
                ));
            }
            last_tli = tli;
            let addr = u64le(body, 8);
            let want = seg_start + offset;
            if addr != want {
                return Err(format!(
                    "page at offset {offset}: page address {:X}/{:X}, expected {:X}/{:X} (a misplaced or recycled segment)",
                    addr >> 32,
                    addr as u32,
                    want >> 32,
                    want as u32
                ));
            }
        }
        if filled < blcksz {
            break;
        }
        k += 1;
        filled = read_full(input, &mut page).map_err(|e| format!("read error: {e}"))?;
        total += filled as u64;
    }
    if expect.complete && total != expect.segment_size {
        return Err(format!(
            "size {total} bytes, a segment is {} bytes (truncated or padded)",
            expect.segment_size
        ));
    }
    if total > expect.segment_size {
        return Err(format!(
            "size {total} bytes is larger than a segment ({} bytes)",
            expect.segment_size
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const SEG: u64 = 1 << 20;

    /// A synthetic segment: valid headers on `used` pages, zeros after.
    pub(crate) fn segment(tli: u32, segno: u64, sysid: u64, magic: u16, used: usize) -> Vec<u8> {
        let mut s = vec![0u8; SEG as usize];
        for k in 0..used {
            let p = &mut s[k * 8192..];
            p[0..2].copy_from_slice(&magic.to_le_bytes());
            let info: u16 = if k == 0 { XLP_LONG_HEADER } else { 1 };
            p[2..4].copy_from_slice(&info.to_le_bytes());
            p[4..8].copy_from_slice(&tli.to_le_bytes());
            p[8..16].copy_from_slice(&(segno * SEG + k as u64 * 8192).to_le_bytes());
            if k == 0 {
                p[24..32].copy_from_slice(&sysid.to_le_bytes());
                p[32..36].copy_from_slice(&(SEG as u32).to_le_bytes());
                p[36..40].copy_from_slice(&8192u32.to_le_bytes());
            }
            p[100] = 0xAB; // some record bytes
        }
        s
    }

    fn expect(complete: bool) -> Expect {
        Expect {
            tli: 1,
            segno: 3,
            segment_size: SEG,
            system_id: Some(42),
            major: Some(15),
            complete,
        }
    }

    fn check(data: &[u8], e: &Expect) -> Result<(), String> {
        validate_segment(&mut &data[..], e)
    }

    #[test]
    fn good_segments_pass() {
        let s = segment(1, 3, 42, 0xD110, 128);
        check(&s, &expect(true)).expect("full");
        let s = segment(1, 3, 42, 0xD110, 7); // switch: zeros after
        check(&s, &expect(true)).expect("switched");
        check(&s[..8192 * 9], &expect(false)).expect("partial shorter");
    }

    #[test]
    fn bad_segments_say_why() {
        let e = expect(true);
        let err = check(&segment(1, 3, 42, 0xD116, 5), &e).expect_err("magic");
        assert!(err.contains("PostgreSQL 17"), "{err}");
        let err = check(&segment(1, 3, 7, 0xD110, 5), &e).expect_err("sysid");
        assert!(err.contains("another cluster"), "{err}");
        let err = check(&segment(1, 4, 42, 0xD110, 5), &e).expect_err("address");
        assert!(err.contains("page address"), "{err}");
        let err = check(&segment(2, 3, 42, 0xD110, 5), &e).expect_err("tli");
        assert!(err.contains("timeline 2"), "{err}");
        let s = segment(1, 3, 42, 0xD110, 5);
        let err = check(&s[..SEG as usize - 100], &e).expect_err("short");
        assert!(err.contains("truncated or padded"), "{err}");
        let err = check(&s[..20], &e).expect_err("tiny");
        assert!(err.contains("truncated"), "{err}");
        let mut s = segment(1, 3, 42, 0xD110, 5);
        s[8192 * 20 + 5] = 1;
        let err = check(&s, &e).expect_err("data after zeros");
        assert!(err.contains("after an empty page"), "{err}");
        let err = check(&[0x55u8; 100_000], &expect(false)).expect_err("garbage");
        assert!(err.contains("magic"), "{err}");
    }

    #[test]
    fn never_panics_on_random_input() {
        use proptest::prelude::*;
        proptest!(|(data: Vec<u8>, complete: bool)| {
            let e = Expect { complete, ..expect(complete) };
            let _ = check(&data, &e);
        });
    }
}
