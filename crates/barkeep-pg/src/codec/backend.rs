//! Server → client messages: framing and decoding from a byte buffer.
//!
//! [`decode`] takes one complete message off the front of a buffer, or returns `None`
//! when more bytes are needed. Any malformed input is a [`ProtocolError`], never a panic
//! (fuzzed: `fuzz/fuzz_targets/backend.rs`).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::ProtocolError;

/// Largest message accepted (PostgreSQL's own limit for most messages is 1 GiB).
pub const MAX_MESSAGE: usize = 1 << 30;

/// An `Authentication` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    /// Authentication succeeded.
    Ok,
    /// Send the password in clear text.
    CleartextPassword,
    /// Send `md5(md5(password ‖ user) ‖ salt)`.
    Md5Password([u8; 4]),
    /// SASL: these mechanisms are offered.
    Sasl(Vec<String>),
    /// SASL server-first (or later) message.
    SaslContinue(Bytes),
    /// SASL server-final message.
    SaslFinal(Bytes),
    /// A method barkeep does not implement (GSS, SSPI, Kerberos…), by code.
    Unsupported(i32),
}

/// One column of a `RowDescription`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDescription {
    /// Column name.
    pub name: String,
    /// Table OID (0 if none).
    pub table_oid: u32,
    /// Column number in the table.
    pub column: i16,
    /// Type OID.
    pub type_oid: u32,
    /// Type length.
    pub type_len: i16,
    /// Type modifier.
    pub type_modifier: i32,
    /// 0 text, 1 binary.
    pub format: i16,
}

/// The fields of an `ErrorResponse` / `NoticeResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorFields(pub Vec<(u8, String)>);

impl ErrorFields {
    /// A field by its code (`C` SQLSTATE, `M` message, `D` detail, `H` hint…).
    pub fn get(&self, code: u8) -> Option<&str> {
        self.0
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_str())
    }
    /// Severity, non-localised when the server sent it (`V`), else `S`.
    pub fn severity(&self) -> &str {
        self.get(b'V').or_else(|| self.get(b'S')).unwrap_or("ERROR")
    }
    /// SQLSTATE.
    pub fn code(&self) -> &str {
        self.get(b'C').unwrap_or("XX000")
    }
    /// Primary message.
    pub fn message(&self) -> &str {
        self.get(b'M').unwrap_or("")
    }
    /// Detail.
    pub fn detail(&self) -> Option<&str> {
        self.get(b'D')
    }
    /// Hint.
    pub fn hint(&self) -> Option<&str> {
        self.get(b'H')
    }
}

impl std::fmt::Display for ErrorFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} (SQLSTATE {})",
            self.severity(),
            self.message(),
            self.code()
        )?;
        if let Some(d) = self.detail() {
            write!(f, "\ndetail: {d}")?;
        }
        if let Some(h) = self.hint() {
            write!(f, "\nhint: {h}")?;
        }
        Ok(())
    }
}

/// A decoded backend message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendMessage {
    /// `R`.
    Authentication(Authentication),
    /// `S`.
    ParameterStatus {
        /// Setting name.
        name: String,
        /// Value.
        value: String,
    },
    /// `K`: process id and cancel secret (4 bytes under protocol 3.0).
    BackendKeyData {
        /// Backend PID.
        pid: i32,
        /// Cancel key.
        secret: Bytes,
    },
    /// `v`.
    NegotiateProtocolVersion {
        /// Newest minor version the server supports.
        minor: i32,
        /// Options it did not recognise.
        options: Vec<String>,
    },
    /// `Z`: transaction status `I`, `T` or `E`.
    ReadyForQuery(u8),
    /// `T`.
    RowDescription(Vec<FieldDescription>),
    /// `D`: column values, `None` = NULL.
    DataRow(Vec<Option<Bytes>>),
    /// `C`: the command tag.
    CommandComplete(String),
    /// `I`.
    EmptyQueryResponse,
    /// `E`.
    ErrorResponse(ErrorFields),
    /// `N`.
    NoticeResponse(ErrorFields),
    /// `A`: LISTEN/NOTIFY (never used by barkeep; decoded to be skipped safely).
    NotificationResponse {
        /// Sender PID.
        pid: i32,
        /// Channel.
        channel: String,
        /// Payload.
        payload: String,
    },
    /// `G`.
    CopyInResponse(CopyFormat),
    /// `H`.
    CopyOutResponse(CopyFormat),
    /// `W` (replication streams).
    CopyBothResponse(CopyFormat),
    /// `d`.
    CopyData(Bytes),
    /// `c`.
    CopyDone,
}

/// The body of `CopyIn/Out/BothResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopyFormat {
    /// Overall format (0 text, 1 binary).
    pub format: i8,
    /// Per-column formats.
    pub columns: Vec<i16>,
}

struct Body {
    tag: u8,
    buf: Bytes,
}

impl Body {
    fn err(&self, what: &str) -> ProtocolError {
        ProtocolError(format!(
            "malformed `{}` message: {what}",
            char::from(self.tag).escape_default()
        ))
    }
    fn need(&self, n: usize, what: &str) -> Result<(), ProtocolError> {
        if self.buf.remaining() < n {
            Err(self.err(&format!("truncated {what}")))
        } else {
            Ok(())
        }
    }
    fn u8(&mut self, what: &str) -> Result<u8, ProtocolError> {
        self.need(1, what)?;
        Ok(self.buf.get_u8())
    }
    fn i16(&mut self, what: &str) -> Result<i16, ProtocolError> {
        self.need(2, what)?;
        Ok(self.buf.get_i16())
    }
    fn i32(&mut self, what: &str) -> Result<i32, ProtocolError> {
        self.need(4, what)?;
        Ok(self.buf.get_i32())
    }
    fn bytes(&mut self, n: usize, what: &str) -> Result<Bytes, ProtocolError> {
        self.need(n, what)?;
        Ok(self.buf.split_to(n))
    }
    fn cstr(&mut self, what: &str) -> Result<String, ProtocolError> {
        let Some(pos) = self.buf.iter().position(|b| *b == 0) else {
            return Err(self.err(&format!("{what} is not NUL-terminated")));
        };
        let s = self.buf.split_to(pos);
        self.buf.advance(1);
        // Servers send text in the client encoding (UTF8 by our startup); be lenient.
        Ok(String::from_utf8_lossy(&s).into_owned())
    }
    fn rest(&mut self) -> Bytes {
        self.buf.split_to(self.buf.remaining())
    }
    fn end(&self) -> Result<(), ProtocolError> {
        if self.buf.has_remaining() {
            Err(self.err(&format!(
                "{} unexpected trailing bytes",
                self.buf.remaining()
            )))
        } else {
            Ok(())
        }
    }
    fn error_fields(&mut self) -> Result<ErrorFields, ProtocolError> {
        let mut fields = Vec::new();
        loop {
            let code = self.u8("field code")?;
            if code == 0 {
                return Ok(ErrorFields(fields));
            }
            fields.push((code, self.cstr("field value")?));
        }
    }
    fn copy_format(&mut self) -> Result<CopyFormat, ProtocolError> {
        let format = i8::from_be_bytes([self.u8("copy format")?]);
        let n = self.i16("column count")?;
        let n = usize::try_from(n).map_err(|_| self.err("negative column count"))?;
        let mut columns = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            columns.push(self.i16("column format")?);
        }
        Ok(CopyFormat { format, columns })
    }
}

/// Takes one message off the front of `buf`; `Ok(None)` when it is not complete yet.
pub fn decode(buf: &mut BytesMut) -> Result<Option<BackendMessage>, ProtocolError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let tag = buf[0];
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    let len = usize::try_from(len)
        .ok()
        .filter(|l| *l >= 4 && *l <= MAX_MESSAGE)
        .ok_or_else(|| {
            ProtocolError(format!(
                "message `{}` declares length {len}, expected 4 to {MAX_MESSAGE}",
                char::from(tag).escape_default()
            ))
        })?;
    if buf.len() < 1 + len {
        buf.reserve(1 + len - buf.len());
        return Ok(None);
    }
    let mut frame = buf.split_to(1 + len);
    frame.advance(5);
    let mut b = Body {
        tag,
        buf: frame.freeze(),
    };
    let msg = match tag {
        b'R' => {
            let code = b.i32("authentication code")?;
            let auth = match code {
                0 => Authentication::Ok,
                3 => Authentication::CleartextPassword,
                5 => {
                    let s = b.bytes(4, "md5 salt")?;
                    Authentication::Md5Password([s[0], s[1], s[2], s[3]])
                }
                10 => {
                    let mut mechs = Vec::new();
                    loop {
                        let m = b.cstr("SASL mechanism")?;
                        if m.is_empty() {
                            break;
                        }
                        mechs.push(m);
                    }
                    Authentication::Sasl(mechs)
                }
                11 => Authentication::SaslContinue(b.rest()),
                12 => Authentication::SaslFinal(b.rest()),
                other => {
                    b.rest();
                    Authentication::Unsupported(other)
                }
            };
            BackendMessage::Authentication(auth)
        }
        b'S' => BackendMessage::ParameterStatus {
            name: b.cstr("parameter name")?,
            value: b.cstr("parameter value")?,
        },
        b'K' => BackendMessage::BackendKeyData {
            pid: b.i32("pid")?,
            secret: b.rest(),
        },
        b'v' => {
            let minor = b.i32("minor version")?;
            let n = b.i32("option count")?;
            let n = usize::try_from(n).map_err(|_| b.err("negative option count"))?;
            let mut options = Vec::new();
            for _ in 0..n {
                options.push(b.cstr("option")?);
            }
            BackendMessage::NegotiateProtocolVersion { minor, options }
        }
        b'Z' => BackendMessage::ReadyForQuery(b.u8("transaction status")?),
        b'T' => {
            let n = b.i16("field count")?;
            let n = usize::try_from(n).map_err(|_| b.err("negative field count"))?;
            let mut fields = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                fields.push(FieldDescription {
                    name: b.cstr("field name")?,
                    table_oid: b.i32("table oid")? as u32,
                    column: b.i16("column number")?,
                    type_oid: b.i32("type oid")? as u32,
                    type_len: b.i16("type length")?,
                    type_modifier: b.i32("type modifier")?,
                    format: b.i16("format")?,
                });
            }
            BackendMessage::RowDescription(fields)
        }
        b'D' => {
            let n = b.i16("column count")?;
            let n = usize::try_from(n).map_err(|_| b.err("negative column count"))?;
            let mut cols = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                let len = b.i32("value length")?;
                if len == -1 {
                    cols.push(None);
                } else {
                    let len = usize::try_from(len).map_err(|_| b.err("negative value length"))?;
                    cols.push(Some(b.bytes(len, "column value")?));
                }
            }
            BackendMessage::DataRow(cols)
        }
        b'C' => BackendMessage::CommandComplete(b.cstr("command tag")?),
        b'I' => BackendMessage::EmptyQueryResponse,
        b'E' => BackendMessage::ErrorResponse(b.error_fields()?),
        b'N' => BackendMessage::NoticeResponse(b.error_fields()?),
        b'A' => BackendMessage::NotificationResponse {
            pid: b.i32("pid")?,
            channel: b.cstr("channel")?,
            payload: b.cstr("payload")?,
        },
        b'G' => BackendMessage::CopyInResponse(b.copy_format()?),
        b'H' => BackendMessage::CopyOutResponse(b.copy_format()?),
        b'W' => BackendMessage::CopyBothResponse(b.copy_format()?),
        b'd' => BackendMessage::CopyData(b.rest()),
        b'c' => BackendMessage::CopyDone,
        other => {
            return Err(ProtocolError(format!(
                "unknown message type `{}` ({len} bytes)",
                char::from(other).escape_default()
            )));
        }
    };
    b.end()?;
    Ok(Some(msg))
}

impl BackendMessage {
    /// Encodes the message as a server would (tests, fuzz seeds, protocol fakes).
    pub fn encode(&self, out: &mut BytesMut) {
        let (tag, body) = self.body();
        out.put_u8(tag);
        out.put_i32(i32::try_from(body.len() + 4).unwrap_or(i32::MAX));
        out.put_slice(&body);
    }

    fn body(&self) -> (u8, BytesMut) {
        let mut b = BytesMut::new();
        let cstr = |b: &mut BytesMut, s: &str| {
            b.put_slice(s.as_bytes());
            b.put_u8(0);
        };
        let copy = |b: &mut BytesMut, f: &CopyFormat| {
            b.put_i8(f.format);
            b.put_i16(i16::try_from(f.columns.len()).unwrap_or(i16::MAX));
            f.columns.iter().for_each(|c| b.put_i16(*c));
        };
        let fields = |b: &mut BytesMut, e: &ErrorFields| {
            for (c, v) in &e.0 {
                b.put_u8(*c);
                cstr(b, v);
            }
            b.put_u8(0);
        };
        let tag = match self {
            BackendMessage::Authentication(a) => {
                match a {
                    Authentication::Ok => b.put_i32(0),
                    Authentication::CleartextPassword => b.put_i32(3),
                    Authentication::Md5Password(s) => {
                        b.put_i32(5);
                        b.put_slice(s);
                    }
                    Authentication::Sasl(m) => {
                        b.put_i32(10);
                        m.iter().for_each(|m| cstr(&mut b, m));
                        b.put_u8(0);
                    }
                    Authentication::SaslContinue(d) => {
                        b.put_i32(11);
                        b.put_slice(d);
                    }
                    Authentication::SaslFinal(d) => {
                        b.put_i32(12);
                        b.put_slice(d);
                    }
                    Authentication::Unsupported(c) => b.put_i32(*c),
                }
                b'R'
            }
            BackendMessage::ParameterStatus { name, value } => {
                cstr(&mut b, name);
                cstr(&mut b, value);
                b'S'
            }
            BackendMessage::BackendKeyData { pid, secret } => {
                b.put_i32(*pid);
                b.put_slice(secret);
                b'K'
            }
            BackendMessage::NegotiateProtocolVersion { minor, options } => {
                b.put_i32(*minor);
                b.put_i32(i32::try_from(options.len()).unwrap_or(i32::MAX));
                options.iter().for_each(|o| cstr(&mut b, o));
                b'v'
            }
            BackendMessage::ReadyForQuery(s) => {
                b.put_u8(*s);
                b'Z'
            }
            BackendMessage::RowDescription(f) => {
                b.put_i16(i16::try_from(f.len()).unwrap_or(i16::MAX));
                for d in f {
                    cstr(&mut b, &d.name);
                    b.put_u32(d.table_oid);
                    b.put_i16(d.column);
                    b.put_u32(d.type_oid);
                    b.put_i16(d.type_len);
                    b.put_i32(d.type_modifier);
                    b.put_i16(d.format);
                }
                b'T'
            }
            BackendMessage::DataRow(cols) => {
                b.put_i16(i16::try_from(cols.len()).unwrap_or(i16::MAX));
                for c in cols {
                    match c {
                        None => b.put_i32(-1),
                        Some(v) => {
                            b.put_i32(i32::try_from(v.len()).unwrap_or(i32::MAX));
                            b.put_slice(v);
                        }
                    }
                }
                b'D'
            }
            BackendMessage::CommandComplete(t) => {
                cstr(&mut b, t);
                b'C'
            }
            BackendMessage::EmptyQueryResponse => b'I',
            BackendMessage::ErrorResponse(e) => {
                fields(&mut b, e);
                b'E'
            }
            BackendMessage::NoticeResponse(e) => {
                fields(&mut b, e);
                b'N'
            }
            BackendMessage::NotificationResponse {
                pid,
                channel,
                payload,
            } => {
                b.put_i32(*pid);
                cstr(&mut b, channel);
                cstr(&mut b, payload);
                b'A'
            }
            BackendMessage::CopyInResponse(f) => {
                copy(&mut b, f);
                b'G'
            }
            BackendMessage::CopyOutResponse(f) => {
                copy(&mut b, f);
                b'H'
            }
            BackendMessage::CopyBothResponse(f) => {
                copy(&mut b, f);
                b'W'
            }
            BackendMessage::CopyData(d) => {
                b.put_slice(d);
                b'd'
            }
            BackendMessage::CopyDone => b'c',
        };
        (tag, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(bytes: &[u8]) -> Result<Option<BackendMessage>, ProtocolError> {
        let mut b = BytesMut::from(bytes);
        decode(&mut b)
    }

    #[test]
    fn observed_copy_both_response() {
        assert_eq!(
            one(b"W\0\0\0\x07\0\0\0").expect("ok"),
            Some(BackendMessage::CopyBothResponse(CopyFormat::default()))
        );
    }

    #[test]
    fn partial_frames_wait_for_more() {
        let mut full = BytesMut::new();
        BackendMessage::CommandComplete("SELECT 1".into()).encode(&mut full);
        for cut in 0..full.len() {
            let mut part = BytesMut::from(&full[..cut]);
            assert_eq!(decode(&mut part).expect("no error"), None, "cut {cut}");
        }
        let mut two = full.clone();
        two.extend_from_slice(&full);
        assert!(decode(&mut two).expect("ok").is_some());
        assert!(decode(&mut two).expect("ok").is_some());
        assert!(two.is_empty());
    }

    #[test]
    fn malformed_messages_are_errors() {
        assert!(one(b"Z\0\0\0\x03").is_err(), "length below 4");
        assert!(one(b"Z\0\0\0\x06II").is_err(), "trailing bytes");
        assert!(one(b"C\0\0\0\x06ab").is_err(), "unterminated string");
        assert!(one(b"?\0\0\0\x04").is_err(), "unknown tag");
        assert!(one(b"D\0\0\0\x06\xff\xff").is_err(), "negative count");
        assert!(
            one(b"D\0\0\0\x0a\0\x01\0\0\0\x09").is_err(),
            "value past end"
        );
        assert!(one(b"d\x7f\xff\xff\xff").is_err(), "oversized length");
        let e = one(b"Q\0\0\0\x04").expect_err("frontend tag");
        assert!(e.to_string().contains("unknown message type `Q`"), "{e}");
    }

    #[test]
    fn error_fields_display() {
        let e = ErrorFields(vec![
            (b'S', "FATAL".into()),
            (b'V', "FATAL".into()),
            (b'C', "28P01".into()),
            (b'M', "password authentication failed for user \"x\"".into()),
        ]);
        assert_eq!(
            e.to_string(),
            "FATAL: password authentication failed for user \"x\" (SQLSTATE 28P01)"
        );
    }

    fn text() -> impl Strategy<Value = String> {
        "[^\0]{0,20}"
    }

    fn bytes() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
    }

    fn copy_format() -> impl Strategy<Value = CopyFormat> {
        (any::<i8>(), proptest::collection::vec(any::<i16>(), 0..4))
            .prop_map(|(format, columns)| CopyFormat { format, columns })
    }

    fn fields() -> impl Strategy<Value = ErrorFields> {
        proptest::collection::vec((1u8.., text()), 0..5).prop_map(ErrorFields)
    }

    fn message() -> impl Strategy<Value = BackendMessage> {
        prop_oneof![
            Just(BackendMessage::Authentication(Authentication::Ok)),
            Just(BackendMessage::Authentication(
                Authentication::CleartextPassword
            )),
            any::<[u8; 4]>()
                .prop_map(|s| BackendMessage::Authentication(Authentication::Md5Password(s))),
            proptest::collection::vec("[^\0]{1,20}", 0..3)
                .prop_map(|m| BackendMessage::Authentication(Authentication::Sasl(m))),
            bytes().prop_map(|d| BackendMessage::Authentication(Authentication::SaslContinue(d))),
            bytes().prop_map(|d| BackendMessage::Authentication(Authentication::SaslFinal(d))),
            (text(), text())
                .prop_map(|(name, value)| BackendMessage::ParameterStatus { name, value }),
            (any::<i32>(), bytes())
                .prop_map(|(pid, secret)| BackendMessage::BackendKeyData { pid, secret }),
            (any::<i32>(), proptest::collection::vec(text(), 0..3)).prop_map(|(minor, options)| {
                BackendMessage::NegotiateProtocolVersion { minor, options }
            }),
            any::<u8>().prop_map(BackendMessage::ReadyForQuery),
            proptest::collection::vec(
                (
                    text(),
                    any::<u32>(),
                    any::<i16>(),
                    any::<u32>(),
                    any::<i16>(),
                    any::<i32>(),
                    any::<i16>()
                ),
                0..4
            )
            .prop_map(|v| BackendMessage::RowDescription(
                v.into_iter()
                    .map(
                        |(name, table_oid, column, type_oid, type_len, type_modifier, format)| {
                            FieldDescription {
                                name,
                                table_oid,
                                column,
                                type_oid,
                                type_len,
                                type_modifier,
                                format,
                            }
                        }
                    )
                    .collect()
            )),
            proptest::collection::vec(proptest::option::of(bytes()), 0..5)
                .prop_map(BackendMessage::DataRow),
            text().prop_map(BackendMessage::CommandComplete),
            Just(BackendMessage::EmptyQueryResponse),
            fields().prop_map(BackendMessage::ErrorResponse),
            fields().prop_map(BackendMessage::NoticeResponse),
            (any::<i32>(), text(), text()).prop_map(|(pid, channel, payload)| {
                BackendMessage::NotificationResponse {
                    pid,
                    channel,
                    payload,
                }
            }),
            copy_format().prop_map(BackendMessage::CopyInResponse),
            copy_format().prop_map(BackendMessage::CopyOutResponse),
            copy_format().prop_map(BackendMessage::CopyBothResponse),
            bytes().prop_map(BackendMessage::CopyData),
            Just(BackendMessage::CopyDone),
        ]
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(msgs in proptest::collection::vec(message(), 1..6)) {
            let mut buf = BytesMut::new();
            msgs.iter().for_each(|m| m.encode(&mut buf));
            for m in &msgs {
                prop_assert_eq!(decode(&mut buf).expect("decodes"), Some(m.clone()));
            }
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = decode(&mut buf) {}
        }
    }
}
