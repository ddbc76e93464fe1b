//! barkeep's base backups: taken natively over the replication protocol, stored in
//! Barman's layout (`base/<ID>/data`, `meta/<ID>-backup.info`), verified against their
//! manifests.
//!
//! - [`info`]: `backup.info` in Barman's format;
//! - [`manifest`]: `backup_manifest` parsing and native verification;
//! - [`extract`]: unpacking or storing the stream with bounded memory, deduplication.

pub mod error;
pub mod extract;
pub mod info;
pub mod manifest;

pub use error::{BackupError, Result};
pub use info::{BackupInfo, Status};
