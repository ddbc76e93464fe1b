//! Connection strings and URIs from configuration files, and LSN text from the server.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = barkeep_pg::conninfo::parse(s);
        let _ = s.parse::<barkeep_wal::Lsn>();
    }
});
