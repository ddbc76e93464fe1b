//! Backend message decoding (everything a server, or a man in the middle, can send):
//! must return messages or a ProtocolError, never panic, never loop.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = bytes::BytesMut::from(data);
    while let Ok(Some(msg)) = barkeep_pg::codec::decode(&mut buf) {
        // Re-encoding a decoded message must decode to the same message.
        let mut again = bytes::BytesMut::new();
        msg.encode(&mut again);
        let back = barkeep_pg::codec::decode(&mut again).expect("re-encoded message decodes");
        assert_eq!(back, Some(msg));
    }
});
