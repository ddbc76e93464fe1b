//! barkeep's WAL archive, with Barman's on-disk format: `wals/<TTTTTTTTLLLLLLLL>/<segment>`
//! (compressed files keep the plain name; the codec is found by magic bytes),
//! `<server>-xlog.db`, `incoming/`, `streaming/`, `errors/`.
//!
//! - [`durable`]: temp + fsync + rename + directory fsync;
//! - [`lock`]: Barman-compatible `flock` lock files;
//! - [`codec`]: gzip, bzip2, xz, zstd, lz4, snappy, detected by magic;
//! - [`validate`]: page-level validation of segments;
//! - [`names`], [`xlogdb`]: archive file names and the WAL catalog;
//! - [`archive`]: the `archive-wal` engine;
//! - [`receiver`]: `receive-wal`, the streaming archiver.

pub mod archive;
pub mod codec;
pub mod durable;
pub mod error;
pub mod getwal;
pub mod lock;
pub mod names;
pub mod receiver;
pub mod share;
pub mod validate;
pub mod xlogdb;

pub use archive::{ArchiveHooks, ArchivedFile, Identity, Outcome, ServerArchive};
pub use codec::{Codec, Level};
pub use error::{ArchiveError, Result};
