//! An established connection: transport (TCP or Unix socket), startup, authentication
//! (trust, cleartext, md5, SCRAM-SHA-256), and the simple query protocol. Replication
//! commands run on the same connection when it was opened with `replication=true`.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use postgres_protocol::authentication::sasl;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::codec::backend::Authentication;
use crate::codec::{BackendMessage, FieldDescription, ProtocolError, decode, frontend};
use crate::conninfo::{ChannelBinding, ConnParams, Host, SslMode, describe_endpoint};
use crate::error::PgError;

trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

/// The result of one statement of a simple query.
#[derive(Debug, Clone, Default)]
pub struct QueryResult {
    /// Column descriptions (empty for statements without rows).
    pub columns: Vec<FieldDescription>,
    /// Rows, each column as raw text bytes (`None` = NULL).
    pub rows: Vec<Vec<Option<Bytes>>>,
    /// The command tag (`SELECT 1`, `IDENTIFY_SYSTEM`…).
    pub tag: String,
}

impl QueryResult {
    /// Column `col` of row `row` as text.
    pub fn text(&self, row: usize, col: usize) -> Option<String> {
        self.rows
            .get(row)?
            .get(col)?
            .as_ref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
    /// Column named `name` of row `row` as text.
    pub fn get(&self, row: usize, name: &str) -> Option<String> {
        let col = self.columns.iter().position(|c| c.name == name)?;
        self.text(row, col)
    }
}

/// A connection to a PostgreSQL server.
pub struct Connection {
    io: Box<dyn Transport>,
    rbuf: BytesMut,
    wbuf: BytesMut,
    target: String,
    user: String,
    params: HashMap<String, String>,
    pid: i32,
    notices: Vec<crate::codec::ErrorFields>,
    /// `Some` when the connection is encrypted: the channel-binding data, or why the
    /// server certificate does not allow it.
    tls_end_point: Option<Result<Vec<u8>, String>>,
    /// Opened with `replication=true` (a physical walsender: no SQL).
    walsender: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("target", &self.target)
            .field("user", &self.user)
            .field("pid", &self.pid)
            .finish()
    }
}

impl Connection {
    /// Connects with `params`, trying each host in turn; the last error is returned.
    pub async fn connect(params: &ConnParams) -> Result<Connection, PgError> {
        let mut last = None;
        for (host, port) in &params.hosts {
            let attempt = Self::connect_one(params, host, *port);
            let result = match params.connect_timeout {
                Some(t) => match tokio::time::timeout(t, attempt).await {
                    Ok(r) => r,
                    Err(_) => Err(PgError::Timeout {
                        target: describe_endpoint(host, *port),
                        secs: t.as_secs(),
                    }),
                },
                None => attempt.await,
            };
            match result {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::debug!("connection attempt failed: {e}");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| PgError::Closed {
            target: "(no host)".into(),
            while_doing: Some("connecting".into()),
        }))
    }

    /// One endpoint, with libpq's `sslmode` policy: `allow` tries cleartext first and TLS
    /// when the server refuses; `prefer` tries TLS first and cleartext when the server does
    /// not offer TLS or the handshake fails. Unix sockets never use TLS (as libpq).
    async fn connect_one(
        params: &ConnParams,
        host: &Host,
        port: u16,
    ) -> Result<Connection, PgError> {
        let tcp = matches!(host, Host::Tcp(_));
        let tls_first = tcp && !matches!(params.sslmode, SslMode::Disable | SslMode::Allow);
        match Self::attempt(params, host, port, tls_first).await {
            Err(e @ PgError::Server { .. }) if tcp && params.sslmode == SslMode::Allow => {
                tracing::debug!(
                    "cleartext attempt refused ({e}); retrying with TLS (sslmode=allow)"
                );
                Self::attempt(params, host, port, true).await
            }
            Err(e @ PgError::Tls { .. }) if tcp && params.sslmode == SslMode::Prefer => {
                tracing::debug!("TLS attempt failed ({e}); retrying without TLS (sslmode=prefer)");
                Self::attempt(params, host, port, false).await
            }
            other => other,
        }
    }

    async fn attempt(
        params: &ConnParams,
        host: &Host,
        port: u16,
        try_tls: bool,
    ) -> Result<Connection, PgError> {
        let target = describe_endpoint(host, port);
        let connect_err = |source| PgError::Connect {
            target: target.clone(),
            user: params.user.clone(),
            database: params.dbname.clone(),
            source,
        };
        let mut tls_end_point = None;
        let io: Box<dyn Transport> = match host {
            Host::Tcp(name) => {
                let mut s = tokio::net::TcpStream::connect((name.as_str(), port))
                    .await
                    .map_err(connect_err)?;
                let _ = s.set_nodelay(true);
                if params.keepalives {
                    // Best effort, as libpq: a failure only loses early dead-peer detection.
                    let _ = socket2_keepalive(&s);
                }
                if try_tls && Self::ssl_request(&mut s, params, &target).await? {
                    let tls_err = |reason: String| PgError::Tls {
                        target: target.clone(),
                        reason,
                    };
                    let config = crate::tls::client_config(params).map_err(tls_err)?;
                    let name = crate::tls::server_name(name).map_err(tls_err)?;
                    let stream = tokio_rustls::TlsConnector::from(config)
                        .connect(name, s)
                        .await
                        .map_err(|e| tls_err(format!("handshake failed: {e}")))?;
                    let leaf = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| c.as_ref().to_vec());
                    tls_end_point = Some(match leaf {
                        Some(der) => crate::tls::server_end_point(&der),
                        None => Err("the server sent no certificate".to_string()),
                    });
                    Box::new(stream)
                } else {
                    Box::new(s)
                }
            }
            Host::Unix(dir) => {
                let path = dir.join(format!(".s.PGSQL.{port}"));
                Box::new(
                    tokio::net::UnixStream::connect(&path)
                        .await
                        .map_err(connect_err)?,
                )
            }
        };
        let mut conn = Connection {
            io,
            rbuf: BytesMut::with_capacity(64 * 1024),
            wbuf: BytesMut::with_capacity(1024),
            target,
            user: params.user.clone(),
            params: HashMap::new(),
            pid: 0,
            notices: Vec::new(),
            tls_end_point,
            walsender: params
                .replication
                .as_deref()
                .is_some_and(|r| r != "database" && r != "0" && r != "false" && r != "off"),
        };
        conn.startup(params).await?;
        Ok(conn)
    }

    /// Sends SSLRequest and reads the one-byte answer: `true` to go on with TLS, `false`
    /// to continue in cleartext (only when the policy allows it). Exactly one byte is read
    /// from the socket, so no cleartext sent by a man in the middle after the `S` can be
    /// taken for part of the TLS session (CVE-2021-23222).
    async fn ssl_request(
        s: &mut tokio::net::TcpStream,
        params: &ConnParams,
        target: &str,
    ) -> Result<bool, PgError> {
        let io_err = |source| PgError::Io {
            target: target.to_string(),
            source,
        };
        let mut buf = BytesMut::new();
        frontend::ssl_request(&mut buf);
        s.write_all(&buf).await.map_err(io_err)?;
        let mut answer = [0u8; 1];
        s.read_exact(&mut answer).await.map_err(io_err)?;
        match answer[0] {
            b'S' => Ok(true),
            b'N' if matches!(params.sslmode, SslMode::Prefer | SslMode::Allow) => Ok(false),
            b'N' => Err(PgError::Tls {
                target: target.to_string(),
                reason: "the server does not support SSL, but SSL was required (sslmode); enable `ssl` on the server or lower sslmode".into(),
            }),
            other => Err(PgError::Protocol {
                target: target.to_string(),
                source: ProtocolError(format!(
                    "expected `S` or `N` in answer to SSLRequest, got byte 0x{other:02x}"
                )),
            }),
        }
    }

    async fn startup(&mut self, params: &ConnParams) -> Result<(), PgError> {
        let mut startup: Vec<(&str, &str)> = vec![
            ("user", &params.user),
            ("database", &params.dbname),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO"),
        ];
        if let Some(app) = &params.application_name {
            startup.push(("application_name", app));
        }
        if let Some(opts) = &params.options {
            startup.push(("options", opts));
        }
        if let Some(r) = &params.replication {
            startup.push(("replication", r));
        }
        frontend::startup(&startup, &mut self.wbuf);
        self.flush().await?;
        self.authenticate(params).await?;
        loop {
            match self.read().await? {
                BackendMessage::BackendKeyData { pid, .. } => self.pid = pid,
                BackendMessage::ReadyForQuery(_) => return Ok(()),
                BackendMessage::NegotiateProtocolVersion { .. } => {}
                BackendMessage::ErrorResponse(fields) => {
                    return Err(self.server_error(fields, None));
                }
                other => {
                    return Err(self.unexpected("BackendKeyData or ReadyForQuery", &other));
                }
            }
        }
    }

    fn password(&self, params: &ConnParams) -> Result<String, PgError> {
        params
            .password
            .as_ref()
            .map(|p| p.expose().to_string())
            .ok_or_else(|| PgError::Auth {
                target: self.target.clone(),
                user: self.user.clone(),
                reason: "the server asks for a password and none was given (conninfo `password`, PGPASSWORD or the password file)".into(),
            })
    }

    async fn authenticate(&mut self, params: &ConnParams) -> Result<(), PgError> {
        let mut used_binding = false;
        loop {
            let auth = match self.read().await? {
                BackendMessage::Authentication(a) => a,
                BackendMessage::ErrorResponse(fields) => {
                    return Err(self.server_error(fields, None));
                }
                other => return Err(self.unexpected("Authentication", &other)),
            };
            match auth {
                Authentication::Ok => {
                    if !used_binding {
                        self.refuse_without_binding(params, "trust or certificate")?;
                    }
                    return Ok(());
                }
                Authentication::CleartextPassword => {
                    self.refuse_without_binding(params, "password")?;
                    let pw = self.password(params)?;
                    frontend::password(pw.as_bytes(), &mut self.wbuf);
                    self.flush().await?;
                }
                Authentication::Md5Password(salt) => {
                    self.refuse_without_binding(params, "md5")?;
                    let pw = self.password(params)?;
                    let hash = postgres_protocol::authentication::md5_hash(
                        params.user.as_bytes(),
                        pw.as_bytes(),
                        salt,
                    );
                    frontend::password(hash.as_bytes(), &mut self.wbuf);
                    self.flush().await?;
                }
                Authentication::Sasl(mechanisms) => {
                    let pw = self.password(params)?;
                    let (mechanism, binding) = self.choose_sasl(params, &mechanisms)?;
                    used_binding = mechanism == sasl::SCRAM_SHA_256_PLUS;
                    let mut scram = sasl::ScramSha256::new(pw.as_bytes(), binding);
                    frontend::sasl_initial_response(mechanism, scram.message(), &mut self.wbuf);
                    self.flush().await?;
                    self.scram_exchange(&mut scram).await?;
                }
                Authentication::SaslContinue(_) | Authentication::SaslFinal(_) => {
                    return Err(PgError::Protocol {
                        target: self.target.clone(),
                        source: ProtocolError("SASL continuation without a SASL exchange".into()),
                    });
                }
                Authentication::Unsupported(code) => {
                    return Err(PgError::Auth {
                        target: self.target.clone(),
                        user: self.user.clone(),
                        reason: format!(
                            "the server asks for authentication method {code} (GSSAPI/SSPI/Kerberos), which barkeep does not support; use scram-sha-256, md5 or trust in pg_hba.conf"
                        ),
                    });
                }
            }
        }
    }

    /// With `channel_binding=require`, any authentication but SCRAM-SHA-256-PLUS is refused
    /// before a password or hash is sent (a man in the middle could be asking).
    fn refuse_without_binding(&self, params: &ConnParams, method: &str) -> Result<(), PgError> {
        if params.channel_binding != ChannelBinding::Require {
            return Ok(());
        }
        Err(PgError::Auth {
            target: self.target.clone(),
            user: self.user.clone(),
            reason: format!(
                "channel binding required (channel_binding=require), but the server asked for {method} authentication, which has no channel binding{}; use scram-sha-256 in pg_hba.conf over TLS",
                if self.is_tls() {
                    ""
                } else {
                    ", and the connection is not encrypted (Unix socket or sslmode=disable)"
                }
            ),
        })
    }

    /// Picks SCRAM-SHA-256-PLUS with `tls-server-end-point` binding when the connection is
    /// encrypted and the server offers it (unless `channel_binding=disable`), plain
    /// SCRAM-SHA-256 otherwise; `channel_binding=require` fails closed.
    fn choose_sasl(
        &self,
        params: &ConnParams,
        mechanisms: &[String],
    ) -> Result<(&'static str, sasl::ChannelBinding), PgError> {
        let auth_err = |reason: String| PgError::Auth {
            target: self.target.clone(),
            user: self.user.clone(),
            reason,
        };
        let offers = |m: &str| mechanisms.iter().any(|x| x == m);
        let policy = params.channel_binding;
        if offers(sasl::SCRAM_SHA_256_PLUS) && policy != ChannelBinding::Disable {
            match &self.tls_end_point {
                Some(Ok(hash)) => {
                    return Ok((
                        sasl::SCRAM_SHA_256_PLUS,
                        sasl::ChannelBinding::tls_server_end_point(hash.clone()),
                    ));
                }
                Some(Err(why)) if policy == ChannelBinding::Require => {
                    return Err(auth_err(format!("channel binding required, but {why}")));
                }
                _ => {}
            }
        }
        if policy == ChannelBinding::Require {
            return Err(auth_err(match self.tls_end_point {
                None => "channel binding required (channel_binding=require), but the connection is not encrypted (Unix socket or sslmode=disable)".into(),
                Some(_) => format!("channel binding required, but the server offers only {mechanisms:?}"),
            }));
        }
        if !offers(sasl::SCRAM_SHA_256) {
            return Err(auth_err(format!(
                "the server offers SASL mechanisms {mechanisms:?}; barkeep supports SCRAM-SHA-256 and SCRAM-SHA-256-PLUS"
            )));
        }
        // `y`: we could bind but the server did not offer it (lets the server detect a
        // downgrade); `n`: no TLS, or the certificate gives no binding data.
        let binding = match (&self.tls_end_point, policy) {
            (Some(Ok(_)), ChannelBinding::Prefer) => sasl::ChannelBinding::unrequested(),
            _ => sasl::ChannelBinding::unsupported(),
        };
        Ok((sasl::SCRAM_SHA_256, binding))
    }

    /// Whether the connection is encrypted with TLS.
    pub fn is_tls(&self) -> bool {
        self.tls_end_point.is_some()
    }

    async fn scram_exchange(&mut self, scram: &mut sasl::ScramSha256) -> Result<(), PgError> {
        let auth_err = |this: &Self, e: std::io::Error| PgError::Auth {
            target: this.target.clone(),
            user: this.user.clone(),
            reason: format!("SCRAM-SHA-256: {e}"),
        };
        match self.read().await? {
            BackendMessage::Authentication(Authentication::SaslContinue(data)) => {
                scram.update(&data).map_err(|e| auth_err(self, e))?;
                frontend::sasl_response(scram.message(), &mut self.wbuf);
                self.flush().await?;
            }
            BackendMessage::ErrorResponse(fields) => return Err(self.server_error(fields, None)),
            other => return Err(self.unexpected("SASL continue", &other)),
        }
        match self.read().await? {
            BackendMessage::Authentication(Authentication::SaslFinal(data)) => {
                // Verifies the server signature: a server that does not know the password
                // cannot impersonate the real one.
                scram.finish(&data).map_err(|e| auth_err(self, e))
            }
            BackendMessage::ErrorResponse(fields) => Err(self.server_error(fields, None)),
            other => Err(self.unexpected("SASL final", &other)),
        }
    }

    /// The endpoint (host:port or socket path).
    pub fn target(&self) -> &str {
        &self.target
    }
    /// A `ParameterStatus` value reported by the server (`server_version`…).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
    /// Backend process id.
    pub fn backend_pid(&self) -> i32 {
        self.pid
    }
    /// The server's major version (13, 14 … 18) from its `server_version` report.
    pub fn server_major(&self) -> Option<u32> {
        let v = self.parameter("server_version")?;
        let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    }
    /// Whether this is a physical replication (walsender) connection.
    pub fn is_walsender(&self) -> bool {
        self.walsender
    }
    /// Queues a simple query and sends it.
    pub(crate) async fn send_query(&mut self, sql: &str) -> Result<(), PgError> {
        frontend::query(sql, &mut self.wbuf);
        self.flush().await
    }
    /// Sends one CopyData message.
    pub(crate) async fn send_copy_data(&mut self, data: &[u8]) -> Result<(), PgError> {
        frontend::copy_data(data, &mut self.wbuf);
        self.flush().await
    }
    /// Sends CopyDone.
    pub(crate) async fn send_copy_done(&mut self) -> Result<(), PgError> {
        frontend::copy_done(&mut self.wbuf);
        self.flush().await
    }
    /// Sends a standby status update.
    pub(crate) async fn send_standby_status(
        &mut self,
        write: u64,
        flush: u64,
        reply_requested: bool,
    ) -> Result<(), PgError> {
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        frontend::standby_status_update(write, flush, 0, now_us, reply_requested, &mut self.wbuf);
        self.flush().await
    }
    /// After an ErrorResponse: reads to ReadyForQuery so the connection stays usable, and
    /// returns the error. A connection that closes meanwhile returns the error too.
    pub(crate) async fn finish_with_error(&mut self, error: PgError) -> PgError {
        loop {
            match self.read().await {
                Ok(BackendMessage::ReadyForQuery(_)) | Err(_) => return error,
                Ok(_) => {}
            }
        }
    }
    /// Notices received since the last call (checksum warnings during BASE_BACKUP…).
    pub fn take_notices(&mut self) -> Vec<crate::codec::ErrorFields> {
        std::mem::take(&mut self.notices)
    }

    pub(crate) fn server_error(
        &self,
        fields: crate::codec::ErrorFields,
        query: Option<&str>,
    ) -> PgError {
        PgError::Server {
            target: self.target.clone(),
            fields,
            query: query.map(str::to_string),
        }
    }

    pub(crate) fn unexpected(&self, expected: &str, got: &BackendMessage) -> PgError {
        let name = format!("{got:?}");
        let name = name
            .split(['(', ' ', '{'])
            .next()
            .unwrap_or("?")
            .to_string();
        PgError::Protocol {
            target: self.target.clone(),
            source: ProtocolError(format!("expected {expected}, got {name}")),
        }
    }

    /// Writes the pending output.
    pub(crate) async fn flush(&mut self) -> Result<(), PgError> {
        let res = async {
            self.io.write_all(&self.wbuf).await?;
            self.io.flush().await
        }
        .await;
        self.wbuf.clear();
        res.map_err(|source| PgError::Io {
            target: self.target.clone(),
            source,
        })
    }

    /// Reads the next message; notices are collected and logged, parameter reports
    /// (at startup and whenever a setting changes) are kept for [`Connection::parameter`].
    pub async fn read(&mut self) -> Result<BackendMessage, PgError> {
        loop {
            match decode(&mut self.rbuf) {
                Ok(Some(BackendMessage::NoticeResponse(n))) => {
                    tracing::warn!(target = %self.target, "server notice: {n}");
                    self.notices.push(n);
                    continue;
                }
                Ok(Some(BackendMessage::ParameterStatus { name, value })) => {
                    self.params.insert(name, value);
                    continue;
                }
                Ok(Some(m)) => return Ok(m),
                Ok(None) => {}
                Err(source) => {
                    return Err(PgError::Protocol {
                        target: self.target.clone(),
                        source,
                    });
                }
            }
            if self.rbuf.capacity() - self.rbuf.len() < 8192 {
                self.rbuf.reserve(64 * 1024);
            }
            let n = self
                .io
                .read_buf(&mut self.rbuf)
                .await
                .map_err(|source| PgError::Io {
                    target: self.target.clone(),
                    source,
                })?;
            if n == 0 {
                return Err(PgError::Closed {
                    target: self.target.clone(),
                    while_doing: None,
                });
            }
        }
    }

    /// Runs `sql` with the simple query protocol; returns one result per statement. A
    /// server error is returned after the connection is back at ReadyForQuery, so the
    /// connection stays usable.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<QueryResult>, PgError> {
        frontend::query(sql, &mut self.wbuf);
        self.flush().await?;
        let mut results = Vec::new();
        let mut current = QueryResult::default();
        let mut error = None;
        loop {
            match self.read().await? {
                BackendMessage::RowDescription(cols) => current.columns = cols,
                BackendMessage::DataRow(row) => current.rows.push(row),
                BackendMessage::CommandComplete(tag) => {
                    current.tag = tag;
                    results.push(std::mem::take(&mut current));
                }
                BackendMessage::EmptyQueryResponse => {}
                BackendMessage::ErrorResponse(fields) => {
                    error = Some(self.server_error(fields, Some(sql)))
                }
                BackendMessage::ReadyForQuery(_) => {
                    // Replication commands such as IDENTIFY_SYSTEM or TIMELINE_HISTORY may
                    // send rows and no CommandComplete of their own in some versions.
                    if !current.columns.is_empty() {
                        results.push(current);
                    }
                    return match error {
                        Some(e) => Err(e),
                        None => Ok(results),
                    };
                }
                other => {
                    return Err(self.unexpected("query results", &other));
                }
            }
        }
    }

    /// Runs one statement and returns its result.
    pub async fn query(&mut self, sql: &str) -> Result<QueryResult, PgError> {
        let mut r = self.simple_query(sql).await?;
        Ok(if r.is_empty() {
            QueryResult::default()
        } else {
            r.swap_remove(0)
        })
    }

    /// The first column of the first row, as text.
    pub async fn query_value(&mut self, sql: &str) -> Result<Option<String>, PgError> {
        Ok(self.query(sql).await?.text(0, 0))
    }

    /// Sends Terminate and closes.
    pub async fn close(mut self) -> Result<(), PgError> {
        frontend::terminate(&mut self.wbuf);
        self.flush().await?;
        let _ = self.io.shutdown().await;
        Ok(())
    }
}

/// TCP keepalives as libpq enables them by default (`keepalives=1`).
fn socket2_keepalive(s: &tokio::net::TcpStream) -> std::io::Result<()> {
    let sock = socket2::SockRef::from(s);
    sock.set_keepalive(true)
}
