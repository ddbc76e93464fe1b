//! WAL compression codecs, as Barman stores them: the file keeps its plain segment name
//! and the codec is recognised by its magic bytes (and recorded in xlog.db).
//!
//! | codec | magic | crate |
//! | --- | --- | --- |
//! | gzip | `1f 8b 08` | flate2 |
//! | bzip2 | `42 5a 68` (`BZh`) | bzip2 |
//! | xz | `fd 37 7a 58 5a 00` | liblzma |
//! | zstd | `28 b5 2f fd` | zstd |
//! | lz4 (frame) | `04 22 4d 18` | lz4_flex |
//! | snappy (framed) | `ff 06 00 00 73 4e 61 50 70 59` | snap |
//!
//! Uncompressed WAL starts with a page header (`xlp_magic`, e.g. `10 d1`), which matches
//! none of them.

use std::io::{self, Read, Write};

/// A compression codec of stored WAL (or `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Stored as is.
    None,
    /// gzip.
    Gzip,
    /// bzip2.
    Bzip2,
    /// xz.
    Xz,
    /// Zstandard.
    Zstd,
    /// LZ4 frame format.
    Lz4,
    /// Snappy framing format.
    Snappy,
}

const MAGICS: &[(Codec, &[u8])] = &[
    (Codec::Gzip, &[0x1f, 0x8b, 0x08]),
    (Codec::Bzip2, b"BZh"),
    (Codec::Xz, &[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]),
    (Codec::Zstd, &[0x28, 0xb5, 0x2f, 0xfd]),
    (Codec::Lz4, &[0x04, 0x22, 0x4d, 0x18]),
    (
        Codec::Snappy,
        &[0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59],
    ),
];

/// How many leading bytes [`Codec::detect`] needs.
pub const MAGIC_LEN: usize = 10;

impl Codec {
    /// The codec of data starting with `head` (at least [`MAGIC_LEN`] bytes when
    /// available).
    pub fn detect(head: &[u8]) -> Codec {
        MAGICS
            .iter()
            .find(|(_, m)| head.starts_with(m))
            .map(|(c, _)| *c)
            .unwrap_or(Codec::None)
    }

    /// The name in configuration files and xlog.db (`None` for uncompressed, Barman's
    /// literal).
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "None",
            Codec::Gzip => "gzip",
            Codec::Bzip2 => "bzip2",
            Codec::Xz => "xz",
            Codec::Zstd => "zstd",
            Codec::Lz4 => "lz4",
            Codec::Snappy => "snappy",
        }
    }

    /// The codec for a `compression` setting (Barman's `pigz`/`pygzip` write gzip,
    /// `pybzip2` writes bzip2); `None` for unset/`none`; an error for `custom`.
    pub fn from_setting(value: Option<&str>) -> Result<Codec, String> {
        Ok(match value {
            None | Some("none") => Codec::None,
            Some("gzip" | "pigz" | "pygzip") => Codec::Gzip,
            Some("bzip2" | "pybzip2") => Codec::Bzip2,
            Some("xz") => Codec::Xz,
            Some("zstd") => Codec::Zstd,
            Some("lz4") => Codec::Lz4,
            Some("snappy") => Codec::Snappy,
            Some(other) => {
                return Err(format!(
                    "compression `{other}` is not supported by barkeep (use gzip, bzip2, xz, zstd, lz4, snappy or none)"
                ));
            }
        })
    }

    /// Parses an xlog.db compression column.
    pub fn from_xlogdb(value: &str) -> Option<Codec> {
        match value {
            "None" | "none" | "" => Some(Codec::None),
            other => Codec::from_setting(Some(other)).ok(),
        }
    }

    /// The codec's level for Barman's `low`/`medium`/`high` (or a number, clamped to the
    /// codec's range).
    pub fn level(self, level: Level) -> i32 {
        let (low, medium, high, min, max) = match self {
            Codec::Gzip | Codec::Bzip2 => (1, 6, 9, 1, 9),
            Codec::Xz => (1, 6, 9, 0, 9),
            Codec::Zstd => (1, 3, 19, 1, 22),
            Codec::None | Codec::Lz4 | Codec::Snappy => (0, 0, 0, 0, 0),
        };
        match level {
            Level::Low => low,
            Level::Medium => medium,
            Level::High => high,
            Level::Number(n) => n.clamp(min, max),
        }
    }

    /// Compresses everything from `input` into `output`; returns the bytes written.
    pub fn compress(
        self,
        level: Level,
        input: &mut dyn Read,
        output: &mut dyn Write,
    ) -> io::Result<u64> {
        self.compress_with(self.level(level), 1, input, output)
    }

    /// Compresses with the codec's own numeric `level` (clamped to its range) and, for
    /// zstd, `workers` threads; returns the bytes written. WAL and backups share it.
    pub fn compress_with(
        self,
        level: i32,
        workers: u32,
        input: &mut dyn Read,
        output: &mut dyn Write,
    ) -> io::Result<u64> {
        let mut counted = Counting {
            inner: output,
            n: 0,
        };
        let lvl = self.level(Level::Number(level));
        match self {
            Codec::None => {
                io::copy(input, &mut counted)?;
            }
            Codec::Gzip => {
                let mut e = flate2::write::GzEncoder::new(
                    &mut counted,
                    flate2::Compression::new(lvl as u32),
                );
                io::copy(input, &mut e)?;
                e.finish()?;
            }
            Codec::Bzip2 => {
                let mut e =
                    bzip2::write::BzEncoder::new(&mut counted, bzip2::Compression::new(lvl as u32));
                io::copy(input, &mut e)?;
                e.finish()?;
            }
            Codec::Xz => {
                let mut e = liblzma::write::XzEncoder::new(&mut counted, lvl as u32);
                io::copy(input, &mut e)?;
                e.finish()?;
            }
            Codec::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(&mut counted, lvl)?;
                if workers > 1 {
                    e.multithread(workers)?;
                }
                e.include_checksum(true)?;
                io::copy(input, &mut e)?;
                e.finish()?;
            }
            Codec::Lz4 => {
                let mut e = lz4_flex::frame::FrameEncoder::new(&mut counted);
                io::copy(input, &mut e)?;
                e.finish().map_err(io::Error::other)?;
            }
            Codec::Snappy => {
                let mut e = snap::write::FrameEncoder::new(&mut counted);
                io::copy(input, &mut e)?;
                e.flush()?;
                e.into_inner()
                    .map_err(|e| io::Error::other(e.to_string()))?;
            }
        }
        Ok(counted.n)
    }

    /// A reader of the decompressed bytes of `input`, the codec chosen by the magic bytes
    /// it starts with (uncompressed data passes through).
    pub fn sniff<'a, R: Read + 'a>(mut input: R) -> io::Result<Box<dyn Read + 'a>> {
        let mut head = Vec::with_capacity(MAGIC_LEN);
        let mut buf = [0u8; MAGIC_LEN];
        while head.len() < MAGIC_LEN {
            match input.read(&mut buf[..MAGIC_LEN - head.len()]) {
                Ok(0) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let codec = Codec::detect(&head);
        codec.decoder(io::Cursor::new(head).chain(input))
    }

    /// A reader of the decompressed bytes of `input`.
    pub fn decoder<'a, R: Read + 'a>(self, input: R) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Codec::None => Box::new(input),
            Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
            Codec::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(input)),
            Codec::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(input)),
            Codec::Zstd => Box::new(zstd::stream::read::Decoder::new(input)?),
            Codec::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(input)),
            Codec::Snappy => Box::new(snap::read::FrameDecoder::new(input)),
        })
    }
}

/// `compression_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Level {
    /// Fastest.
    Low,
    /// The codec's usual default.
    #[default]
    Medium,
    /// Smallest.
    High,
    /// A codec-specific number.
    Number(i32),
}

struct Counting<'a> {
    inner: &'a mut dyn Write,
    n: u64,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [Codec; 7] = [
        Codec::None,
        Codec::Gzip,
        Codec::Bzip2,
        Codec::Xz,
        Codec::Zstd,
        Codec::Lz4,
        Codec::Snappy,
    ];

    fn round_trip(codec: Codec, data: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut packed = Vec::new();
        let n = codec
            .compress(Level::Low, &mut &data[..], &mut packed)
            .expect("compress");
        assert_eq!(n as usize, packed.len());
        let mut back = Vec::new();
        codec
            .decoder(&packed[..])
            .expect("decoder")
            .read_to_end(&mut back)
            .expect("decompress");
        (packed, back)
    }

    #[test]
    fn every_codec_round_trips_and_is_detected() {
        // Something that looks like WAL: a page header magic, then mixed content.
        let mut wal = vec![0x10, 0xd1, 0x02, 0x00];
        wal.extend((0..100_000u32).map(|i| (i % 251) as u8));
        for codec in ALL {
            let (packed, back) = round_trip(codec, &wal);
            assert_eq!(back, wal, "{codec:?}");
            assert_eq!(Codec::detect(&packed), codec, "{codec:?}");
        }
    }

    #[test]
    fn settings_and_xlogdb_names() {
        assert_eq!(Codec::from_setting(Some("pigz")), Ok(Codec::Gzip));
        assert_eq!(Codec::from_setting(None), Ok(Codec::None));
        assert!(Codec::from_setting(Some("custom")).is_err());
        for codec in ALL {
            assert_eq!(Codec::from_xlogdb(codec.name()), Some(codec));
        }
        assert_eq!(Codec::Zstd.level(Level::Number(99)), 22);
        assert_eq!(Codec::Gzip.level(Level::High), 9);
    }

    #[test]
    fn garbage_does_not_decode() {
        for codec in ALL.into_iter().filter(|c| *c != Codec::None) {
            let mut junk = MAGICS
                .iter()
                .find(|(c, _)| *c == codec)
                .expect("magic")
                .1
                .to_vec();
            junk.extend_from_slice(&[0x55; 64]);
            let mut out = Vec::new();
            let r = codec
                .decoder(&junk[..])
                .and_then(|mut d| d.read_to_end(&mut out));
            assert!(r.is_err(), "{codec:?} accepted garbage");
        }
    }

    proptest! {
        #[test]
        fn round_trips(data: Vec<u8>) {
            for codec in ALL {
                let (_, back) = round_trip(codec, &data);
                prop_assert_eq!(&back, &data);
            }
        }
    }
}
