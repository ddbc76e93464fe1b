//! barkeep's base backups: taken natively over the replication protocol, stored in
//! Barman's layout (`base/<ID>/data`, `meta/<ID>-backup.info`), verified against their
//! manifests.
//!
//! - [`info`]: `backup.info` in Barman's format;
//! - [`manifest`]: `backup_manifest` parsing and native verification;
//! - [`extract`]: unpacking or storing the stream with bounded memory, deduplication;
//! - [`catalog`]: listing, shortcuts, WAL checks, interrupted backups;
//! - [`archiver`]: archiving as segments complete, promoting waiting backups;
//! - [`take`]: the backup itself.

pub mod archiver;
pub mod catalog;
pub mod error;
pub mod extract;
pub mod info;
pub mod manifest;
pub mod restore;
pub mod take;

pub use catalog::Catalog;
pub use error::{BackupError, Result};
pub use info::{BackupInfo, Status};
