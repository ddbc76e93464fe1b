//! The wire format, sans I/O: frontend messages are encoded into a byte buffer, backend
//! messages are decoded from one. No sockets, no async — so every message can be unit-,
//! property- and fuzz-tested. (PostgreSQL docs, "Message Formats".)

pub mod backend;
pub mod copy;
pub mod frontend;

pub use backend::{BackendMessage, ErrorFields, FieldDescription, decode};
pub use copy::{BackupCopyData, WalMessage};

/// A protocol violation: what was expected and what arrived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("protocol violation: {0}")]
pub struct ProtocolError(pub String);
