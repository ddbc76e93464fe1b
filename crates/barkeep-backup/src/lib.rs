//! barkeep's base backups: taken natively over the replication protocol, stored in
//! Barman's layout (`base/<ID>/data`, `meta/<ID>-backup.info`), verified against their
//! manifests, restored to a point in time. The catalog they are recorded in is
//! `barkeep-catalog`'s.
//!
//! - [`manifest`]: `backup_manifest` parsing and native verification;
//! - [`extract`]: unpacking or storing the stream with bounded memory, deduplication,
//!   tablespace links, unpacking tar-format backups;
//! - [`archiver`]: archiving as segments complete, promoting waiting backups;
//! - [`take`]: the backup itself (full, or incremental to a parent on PostgreSQL 17+);
//! - [`combine`]: an incremental chain combined natively into a full data directory;
//! - [`restore`]: a backup plus WAL → a data directory that stops at the target.

pub mod archiver;
pub mod combine;
pub mod error;
pub mod extract;
pub mod manifest;
pub mod restore;
pub mod take;

pub use barkeep_catalog::{BackupInfo, LocalCatalog, Status};
pub use error::{BackupError, Result};
