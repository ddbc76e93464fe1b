//! Client → server messages.

use bytes::{BufMut, BytesMut};

/// `SSLRequest` code.
pub const SSL_REQUEST_CODE: i32 = 80_877_103;
/// Protocol 3.0.
pub const PROTOCOL_3_0: i32 = 196_608;

fn with_length(buf: &mut BytesMut, tag: Option<u8>, body: impl FnOnce(&mut BytesMut)) {
    if let Some(t) = tag {
        buf.put_u8(t);
    }
    let start = buf.len();
    buf.put_i32(0);
    body(buf);
    let len = i32::try_from(buf.len() - start).unwrap_or(i32::MAX);
    buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

fn cstr(buf: &mut BytesMut, s: &[u8]) {
    buf.put_slice(s);
    buf.put_u8(0);
}

/// `StartupMessage` with protocol 3.0 and `params` (name, value) pairs.
pub fn startup(params: &[(&str, &str)], buf: &mut BytesMut) {
    with_length(buf, None, |b| {
        b.put_i32(PROTOCOL_3_0);
        for (k, v) in params {
            cstr(b, k.as_bytes());
            cstr(b, v.as_bytes());
        }
        b.put_u8(0);
    });
}

/// `SSLRequest`.
pub fn ssl_request(buf: &mut BytesMut) {
    buf.put_i32(8);
    buf.put_i32(SSL_REQUEST_CODE);
}

/// `Query` (simple query protocol).
pub fn query(sql: &str, buf: &mut BytesMut) {
    with_length(buf, Some(b'Q'), |b| cstr(b, sql.as_bytes()));
}

/// `PasswordMessage` (cleartext or md5 hash).
pub fn password(pw: &[u8], buf: &mut BytesMut) {
    with_length(buf, Some(b'p'), |b| cstr(b, pw));
}

/// `SASLInitialResponse`.
pub fn sasl_initial_response(mechanism: &str, data: &[u8], buf: &mut BytesMut) {
    with_length(buf, Some(b'p'), |b| {
        cstr(b, mechanism.as_bytes());
        b.put_i32(i32::try_from(data.len()).unwrap_or(i32::MAX));
        b.put_slice(data);
    });
}

/// `SASLResponse`.
pub fn sasl_response(data: &[u8], buf: &mut BytesMut) {
    with_length(buf, Some(b'p'), |b| b.put_slice(data));
}

/// `CopyData`.
pub fn copy_data(data: &[u8], buf: &mut BytesMut) {
    with_length(buf, Some(b'd'), |b| b.put_slice(data));
}

/// `CopyDone`.
pub fn copy_done(buf: &mut BytesMut) {
    with_length(buf, Some(b'c'), |_| {});
}

/// `Terminate`.
pub fn terminate(buf: &mut BytesMut) {
    with_length(buf, Some(b'X'), |_| {});
}

/// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01 UTC).
pub const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// A standby status update (`'r'`), wrapped in `CopyData`: positions are "byte after the
/// last one written / flushed / applied"; `now_us` is microseconds since the Unix epoch.
pub fn standby_status_update(
    write: u64,
    flush: u64,
    apply: u64,
    now_us: i64,
    reply_requested: bool,
    buf: &mut BytesMut,
) {
    let mut payload = [0u8; 34];
    payload[0] = b'r';
    payload[1..9].copy_from_slice(&write.to_be_bytes());
    payload[9..17].copy_from_slice(&flush.to_be_bytes());
    payload[17..25].copy_from_slice(&apply.to_be_bytes());
    payload[25..33].copy_from_slice(&(now_us - PG_EPOCH_OFFSET_US).to_be_bytes());
    payload[33] = u8::from(reply_requested);
    copy_data(&payload, buf);
}

/// Quotes a string literal for replication commands and SQL: `'…'` with `'` doubled. The
/// replication grammar has no backslash escapes, and `standard_conforming_strings` is on
/// by default since 9.1, so doubling quotes is the whole rule. NUL bytes are dropped.
pub fn quote_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars().filter(|c| *c != '\0') {
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// Quotes an identifier (`"…"` with `"` doubled).
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('\0', "").replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_bytes() {
        let mut b = BytesMut::new();
        startup(&[("user", "u"), ("replication", "true")], &mut b);
        let expected: &[u8] = b"\0\0\0\x21\0\x03\0\0user\0u\0replication\0true\0\0";
        assert_eq!(&b[..], expected);
    }

    #[test]
    fn simple_messages() {
        let mut b = BytesMut::new();
        query("SELECT 1", &mut b);
        assert_eq!(&b[..], b"Q\0\0\0\x0dSELECT 1\0");
        b.clear();
        ssl_request(&mut b);
        assert_eq!(&b[..], &[0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F]);
        b.clear();
        copy_done(&mut b);
        assert_eq!(&b[..], b"c\0\0\0\x04");
        b.clear();
        terminate(&mut b);
        assert_eq!(&b[..], b"X\0\0\0\x04");
        b.clear();
        sasl_initial_response("SCRAM-SHA-256", b"abc", &mut b);
        assert_eq!(&b[..], b"p\0\0\0\x19SCRAM-SHA-256\0\0\0\0\x03abc");
    }

    #[test]
    fn status_update_layout() {
        let mut b = BytesMut::new();
        standby_status_update(0x10, 0x20, 0, PG_EPOCH_OFFSET_US + 5, true, &mut b);
        assert_eq!(b[0], b'd');
        assert_eq!(&b[1..5], &38i32.to_be_bytes());
        assert_eq!(b[5], b'r');
        assert_eq!(&b[6..14], &0x10u64.to_be_bytes());
        assert_eq!(&b[14..22], &0x20u64.to_be_bytes());
        assert_eq!(&b[30..38], &5i64.to_be_bytes());
        assert_eq!(b[38], 1);
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b"), "'a\\b'");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
