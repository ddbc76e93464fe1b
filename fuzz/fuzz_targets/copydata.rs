//! CopyData payloads of replication streams: XLogData / keepalive (START_REPLICATION) and
//! the typed n/d/p/m messages of BASE_BACKUP on 15+. Parsing must never panic, and what
//! parses must re-encode to the same bytes.
#![no_main]

use barkeep_pg::codec::{BackupCopyData, WalMessage};
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let payload = Bytes::copy_from_slice(data);
    if let Ok(m) = WalMessage::parse(payload.clone()) {
        let mut again = BytesMut::new();
        m.encode(&mut again);
        assert_eq!(&again[..], data);
    }
    if let Ok(m) = BackupCopyData::parse(payload) {
        let mut again = BytesMut::new();
        m.encode(&mut again);
        assert_eq!(&again[..], data);
    }
});
