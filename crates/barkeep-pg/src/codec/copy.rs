//! Payloads carried inside `CopyData` by replication streams, sans I/O:
//!
//! - WAL streaming (`START_REPLICATION … PHYSICAL`): XLogData `'w'` and primary keepalive
//!   `'k'` (protocol reference §6.2);
//! - BASE_BACKUP on 15+: new archive `'n'`, data `'d'`, progress `'p'`, manifest `'m'`
//!   (§3.3).
//!
//! Parsers take the whole payload and return a typed value or a [`ProtocolError`] naming
//! what was expected and what arrived; they never panic (fuzzed in `fuzz/`).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::ProtocolError;

/// A server → client message of a physical WAL stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalMessage {
    /// `'w'`: WAL bytes starting at `start`.
    XLogData {
        /// LSN of the first byte of `data`.
        start: u64,
        /// The server's current end of WAL (flush position, or the end of a historic
        /// timeline).
        wal_end: u64,
        /// Server clock, µs since 2000-01-01 UTC.
        send_time: i64,
        /// The WAL bytes (at most 128 KiB, may straddle a segment boundary).
        data: Bytes,
    },
    /// `'k'`: keepalive.
    Keepalive {
        /// The server's sent position.
        wal_end: u64,
        /// Server clock, µs since 2000-01-01 UTC.
        send_time: i64,
        /// The server disconnects unless a status update follows soon.
        reply_requested: bool,
    },
}

fn short(what: &str, need: usize, got: usize) -> ProtocolError {
    ProtocolError(format!(
        "{what}: expected {need} bytes, got {got} (truncated CopyData)"
    ))
}

impl WalMessage {
    /// Parses one CopyData payload of a WAL stream.
    pub fn parse(mut payload: Bytes) -> Result<WalMessage, ProtocolError> {
        let len = payload.len();
        match payload.first().copied() {
            Some(b'w') => {
                if len < 25 {
                    return Err(short("XLogData header", 25, len));
                }
                payload.advance(1);
                let start = payload.get_u64();
                let wal_end = payload.get_u64();
                let send_time = payload.get_i64();
                Ok(WalMessage::XLogData {
                    start,
                    wal_end,
                    send_time,
                    data: payload,
                })
            }
            Some(b'k') => {
                if len != 18 {
                    return Err(ProtocolError(format!(
                        "primary keepalive: expected 18 bytes, got {len}"
                    )));
                }
                payload.advance(1);
                let wal_end = payload.get_u64();
                let send_time = payload.get_i64();
                let reply = payload.get_u8();
                if reply > 1 {
                    return Err(ProtocolError(format!(
                        "primary keepalive: reply-requested flag must be 0 or 1, got {reply}"
                    )));
                }
                Ok(WalMessage::Keepalive {
                    wal_end,
                    send_time,
                    reply_requested: reply == 1,
                })
            }
            Some(other) => Err(ProtocolError(format!(
                "WAL stream: expected XLogData ('w') or keepalive ('k'), got message type 0x{other:02x}"
            ))),
            None => Err(ProtocolError(
                "WAL stream: expected XLogData or keepalive, got an empty CopyData".into(),
            )),
        }
    }

    /// Encodes the payload as a server would (tests and fuzzing).
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            WalMessage::XLogData {
                start,
                wal_end,
                send_time,
                data,
            } => {
                out.put_u8(b'w');
                out.put_u64(*start);
                out.put_u64(*wal_end);
                out.put_i64(*send_time);
                out.put_slice(data);
            }
            WalMessage::Keepalive {
                wal_end,
                send_time,
                reply_requested,
            } => {
                out.put_u8(b'k');
                out.put_u64(*wal_end);
                out.put_i64(*send_time);
                out.put_u8(u8::from(*reply_requested));
            }
        }
    }
}

/// A typed CopyData payload of a BASE_BACKUP stream on PostgreSQL 15+.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupCopyData {
    /// `'n'`: a new archive begins.
    NewArchive {
        /// `base.tar`, `<oid>.tar`, with a compression suffix when compressed on the server.
        name: String,
        /// Tablespace location (empty for the main data directory).
        path: String,
    },
    /// `'d'`: archive (or, after `'m'`, manifest) bytes.
    Data(Bytes),
    /// `'p'`: uncompressed bytes sent so far, over the whole backup.
    Progress(u64),
    /// `'m'`: the manifest follows.
    Manifest,
}

fn take_cstr(buf: &mut Bytes, what: &str) -> Result<String, ProtocolError> {
    let nul = buf
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| ProtocolError(format!("{what}: missing NUL terminator")))?;
    let s = buf.split_to(nul);
    buf.advance(1);
    String::from_utf8(s.to_vec()).map_err(|_| ProtocolError(format!("{what}: not valid UTF-8")))
}

impl BackupCopyData {
    /// Parses one CopyData payload of a 15+ BASE_BACKUP stream.
    pub fn parse(mut payload: Bytes) -> Result<BackupCopyData, ProtocolError> {
        let Some(kind) = payload.first().copied() else {
            return Err(ProtocolError(
                "BASE_BACKUP stream: empty CopyData (expected a type byte n/d/p/m)".into(),
            ));
        };
        payload.advance(1);
        match kind {
            b'n' => {
                let name = take_cstr(&mut payload, "new-archive message: archive name")?;
                let path = take_cstr(&mut payload, "new-archive message: tablespace path")?;
                if !payload.is_empty() {
                    return Err(ProtocolError(format!(
                        "new-archive message: {} unexpected trailing bytes",
                        payload.len()
                    )));
                }
                if name.is_empty() || name.contains('/') {
                    return Err(ProtocolError(format!(
                        "new-archive message: bad archive name `{name}`"
                    )));
                }
                Ok(BackupCopyData::NewArchive { name, path })
            }
            b'd' => Ok(BackupCopyData::Data(payload)),
            b'p' => {
                if payload.len() != 8 {
                    return Err(ProtocolError(format!(
                        "progress message: expected 8 bytes, got {}",
                        payload.len()
                    )));
                }
                Ok(BackupCopyData::Progress(payload.get_u64()))
            }
            b'm' => {
                if !payload.is_empty() {
                    return Err(ProtocolError(format!(
                        "manifest message: expected no payload, got {} bytes",
                        payload.len()
                    )));
                }
                Ok(BackupCopyData::Manifest)
            }
            other => Err(ProtocolError(format!(
                "BASE_BACKUP stream: expected a CopyData type n, d, p or m, got 0x{other:02x}"
            ))),
        }
    }

    /// Encodes the payload as a server would (tests and fuzzing).
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            BackupCopyData::NewArchive { name, path } => {
                out.put_u8(b'n');
                out.put_slice(name.as_bytes());
                out.put_u8(0);
                out.put_slice(path.as_bytes());
                out.put_u8(0);
            }
            BackupCopyData::Data(d) => {
                out.put_u8(b'd');
                out.put_slice(d);
            }
            BackupCopyData::Progress(n) => {
                out.put_u8(b'p');
                out.put_u64(*n);
            }
            BackupCopyData::Manifest => out.put_u8(b'm'),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip_wal(m: &WalMessage) -> WalMessage {
        let mut b = BytesMut::new();
        m.encode(&mut b);
        WalMessage::parse(b.freeze()).expect("parse")
    }

    #[test]
    fn xlogdata_layout() {
        let mut raw = vec![b'w'];
        raw.extend_from_slice(&0x0000_0001_0A00_0000u64.to_be_bytes());
        raw.extend_from_slice(&0x0000_0001_0A00_0090u64.to_be_bytes());
        raw.extend_from_slice(&5i64.to_be_bytes());
        raw.extend_from_slice(b"WAL!");
        let m = WalMessage::parse(Bytes::from(raw)).expect("xlogdata");
        assert_eq!(
            m,
            WalMessage::XLogData {
                start: 0x1_0A00_0000,
                wal_end: 0x1_0A00_0090,
                send_time: 5,
                data: Bytes::from_static(b"WAL!"),
            }
        );
    }

    #[test]
    fn bad_wal_messages_are_errors() {
        assert!(WalMessage::parse(Bytes::new()).is_err());
        assert!(WalMessage::parse(Bytes::from_static(b"w123")).is_err());
        assert!(WalMessage::parse(Bytes::from_static(b"k123")).is_err());
        let err = WalMessage::parse(Bytes::from_static(b"x")).expect_err("type");
        assert!(err.0.contains("0x78"), "{err}");
        let mut k = vec![b'k'];
        k.extend_from_slice(&[0; 16]);
        k.push(7);
        assert!(WalMessage::parse(Bytes::from(k)).is_err());
    }

    #[test]
    fn backup_messages_layout() {
        let m = BackupCopyData::parse(Bytes::from_static(b"nbase.tar\0\0")).expect("n");
        assert_eq!(
            m,
            BackupCopyData::NewArchive {
                name: "base.tar".into(),
                path: String::new()
            }
        );
        let mut p = vec![b'p'];
        p.extend_from_slice(&10752u64.to_be_bytes());
        assert_eq!(
            BackupCopyData::parse(Bytes::from(p)).expect("p"),
            BackupCopyData::Progress(10752)
        );
        assert_eq!(
            BackupCopyData::parse(Bytes::from_static(b"m")).expect("m"),
            BackupCopyData::Manifest
        );
        assert!(BackupCopyData::parse(Bytes::from_static(b"nbase.tar")).is_err());
        assert!(BackupCopyData::parse(Bytes::from_static(b"n../x\0\0")).is_err());
        assert!(BackupCopyData::parse(Bytes::from_static(b"p123")).is_err());
        assert!(BackupCopyData::parse(Bytes::from_static(b"mx")).is_err());
        assert!(BackupCopyData::parse(Bytes::from_static(b"z")).is_err());
        assert!(BackupCopyData::parse(Bytes::new()).is_err());
    }

    proptest! {
        #[test]
        fn wal_round_trip(start: u64, end: u64, t: i64, data: Vec<u8>, reply: bool) {
            let w = WalMessage::XLogData { start, wal_end: end, send_time: t, data: Bytes::from(data) };
            prop_assert_eq!(round_trip_wal(&w), w);
            let k = WalMessage::Keepalive { wal_end: end, send_time: t, reply_requested: reply };
            prop_assert_eq!(round_trip_wal(&k), k);
        }

        #[test]
        fn backup_round_trip(name in "[a-z0-9.]{1,20}", path in "[^\0]{0,40}", n: u64, data: Vec<u8>) {
            for m in [
                BackupCopyData::NewArchive { name: name.clone(), path: path.clone() },
                BackupCopyData::Progress(n),
                BackupCopyData::Data(Bytes::from(data.clone())),
                BackupCopyData::Manifest,
            ] {
                let mut b = BytesMut::new();
                m.encode(&mut b);
                prop_assert_eq!(BackupCopyData::parse(b.freeze()).expect("parse"), m);
            }
        }

        #[test]
        fn parsers_never_panic(data: Vec<u8>) {
            let _ = WalMessage::parse(Bytes::from(data.clone()));
            let _ = BackupCopyData::parse(Bytes::from(data));
        }
    }
}
