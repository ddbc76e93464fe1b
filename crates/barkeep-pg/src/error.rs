//! Client errors. Each names the endpoint (host:port or socket), the user and database
//! where it matters, keeps PostgreSQL's severity, SQLSTATE, message, detail and hint, and
//! says whether a retry can help ([`PgError::is_transient`]).

use crate::codec::{ErrorFields, ProtocolError};
use crate::conninfo::ConninfoError;

/// A PostgreSQL client error.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// Bad connection settings.
    #[error(transparent)]
    Conninfo(#[from] ConninfoError),
    /// The endpoint could not be reached.
    #[error("cannot connect to {target} as user `{user}` (database `{database}`)")]
    Connect {
        /// host:port or socket path.
        target: String,
        /// Role.
        user: String,
        /// Database.
        database: String,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// No answer within `connect_timeout`.
    #[error("timed out after {secs} s connecting to {target}")]
    Timeout {
        /// host:port or socket path.
        target: String,
        /// The timeout.
        secs: u64,
    },
    /// The server refused or failed the TLS requirements.
    #[error("TLS with {target}: {reason}")]
    Tls {
        /// host:port.
        target: String,
        /// What went wrong.
        reason: String,
    },
    /// Authentication could not proceed on the client side.
    #[error("authentication of user `{user}` at {target}: {reason}")]
    Auth {
        /// Endpoint.
        target: String,
        /// Role.
        user: String,
        /// Why.
        reason: String,
    },
    /// The server answered with an error.
    #[error("{target}: {fields}{}", query.as_ref().map(|q| format!("\nwhile running: {q}")).unwrap_or_default())]
    Server {
        /// Endpoint.
        target: String,
        /// PostgreSQL's error fields.
        fields: ErrorFields,
        /// The statement, when it was a query.
        query: Option<String>,
    },
    /// The server sent something the protocol does not allow here.
    #[error("{target}: {source}")]
    Protocol {
        /// Endpoint.
        target: String,
        /// What was expected and what arrived.
        #[source]
        source: ProtocolError,
    },
    /// I/O on an established connection.
    #[error("I/O error on the connection to {target}")]
    Io {
        /// Endpoint.
        target: String,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// The server closed the connection.
    #[error("connection to {target} closed by the server{}", while_doing.as_ref().map(|w| format!(" while {w}")).unwrap_or_default())]
    Closed {
        /// Endpoint.
        target: String,
        /// What we were doing.
        while_doing: Option<String>,
    },
}

impl PgError {
    /// Whether retrying later can help: network trouble, server restarts, "too many
    /// connections" — not authentication, configuration or protocol violations.
    pub fn is_transient(&self) -> bool {
        match self {
            PgError::Connect { .. }
            | PgError::Timeout { .. }
            | PgError::Io { .. }
            | PgError::Closed { .. } => true,
            PgError::Server { fields, .. } => {
                let code = fields.code();
                code.starts_with("08")
                    || code.starts_with("57P")
                    || code == "53300"
                    || code == "53400"
                    || code == "55006"
            }
            PgError::Conninfo(_)
            | PgError::Tls { .. }
            | PgError::Auth { .. }
            | PgError::Protocol { .. } => false,
        }
    }

    /// The SQLSTATE of a server error.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            PgError::Server { fields, .. } => Some(fields.code()),
            _ => None,
        }
    }
}
