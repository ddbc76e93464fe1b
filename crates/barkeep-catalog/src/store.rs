//! The catalog interface: what a server's catalog stores, however it stores it. Two
//! implementations: [`crate::LocalCatalog`] (Barman's layout on a local file system) and
//! [`crate::MemoryCatalog`] (in memory, with none of POSIX's rename, hard links or
//! append — the proof the interface does not lean on them). The barman-cloud layout on
//! object storage is the third to come; the operations in [`crate::CatalogOps`] are
//! written against this trait only.
//!
//! Durability is the implementation's promise: when a method returns `Ok`, what it wrote
//! survives a crash (and a reader sees either the old or the new whole value).

use barkeep_archive::Identity;
use barkeep_archive::xlogdb::XlogEntry;

use crate::error::Result;
use crate::info::BackupInfo;

/// A keep annotation (`barman keep --target`): the backup is never deleted by `delete` or
/// retention while it is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeepTarget {
    /// Keep it with all the WAL after it (point-in-time recovery from it onwards).
    Full,
    /// Keep it with only the WAL that makes it consistent.
    Standalone,
}

impl KeepTarget {
    /// Barman's spelling (`full`, `standalone`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeepTarget::Full => "full",
            KeepTarget::Standalone => "standalone",
        }
    }

    /// Parses Barman's spelling.
    pub fn parse(s: &str) -> Option<KeepTarget> {
        match s.trim() {
            "full" => Some(KeepTarget::Full),
            "standalone" => Some(KeepTarget::Standalone),
            _ => None,
        }
    }
}

/// The backups of a catalog: those offered, and those marked for deletion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Backups with metadata and no deletion mark, oldest first.
    pub live: Vec<String>,
    /// Backups marked for deletion (an interrupted delete).
    pub marked: Vec<String>,
}

/// A held lock of the catalog; released on drop.
pub type Guard = Box<dyn std::any::Any + Send>;

/// What a catalog stores for one server.
pub trait CatalogStore: Send + Sync + std::fmt::Debug {
    /// The server's name.
    fn server(&self) -> &str;

    /// The ids of every backup with metadata, sorted (oldest first), those marked for
    /// deletion included.
    fn backup_ids(&self) -> Result<Vec<String>>;
    /// The backups not marked for deletion, sorted, and those marked — one listing
    /// where the store can.
    fn listing(&self) -> Result<Listing> {
        let marked = self.marked_for_deletion()?;
        Ok(Listing {
            live: self
                .backup_ids()?
                .into_iter()
                .filter(|i| !marked.contains(i))
                .collect(),
            marked,
        })
    }
    /// A backup's metadata, `None` when there is none.
    fn read_info(&self, id: &str) -> Result<Option<BackupInfo>>;
    /// Stores a backup's metadata, replacing what was there as a whole.
    fn write_info(&self, info: &BackupInfo) -> Result<()>;

    /// A backup's keep annotation.
    fn keep(&self, id: &str) -> Result<Option<KeepTarget>>;
    /// Sets or (with `None`) releases a backup's keep annotation.
    fn set_keep(&self, id: &str, target: Option<KeepTarget>) -> Result<()>;

    /// Marks a backup as being deleted (Barman's `delete_this`): from then on it is never
    /// offered, and an interrupted delete is finished by the next command.
    fn mark_for_deletion(&self, id: &str) -> Result<()>;
    /// Backups marked for deletion.
    fn marked_for_deletion(&self) -> Result<Vec<String>>;
    /// Removes a backup's data files (not its metadata). Idempotent.
    fn remove_backup_data(&self, id: &str) -> Result<()>;
    /// Removes a backup entirely: data, metadata, keep annotation, then the deletion
    /// mark. Idempotent.
    fn remove_backup(&self, id: &str) -> Result<()>;

    /// The index of archived WAL (`xlog.db`), in archive order.
    fn wal_index(&self) -> Result<Vec<XlogEntry>>;
    /// Files of the WAL index in `range` and their stored bytes.
    fn wal_stats(&self, range: &crate::WalRange) -> Result<(u64, u64)> {
        Ok(self
            .wal_index()?
            .iter()
            .filter(|e| range.contains(&e.name))
            .fold((0, 0), |(n, b), e| (n + 1, b + e.size)))
    }
    /// Whether a WAL file (segment, `.partial`, `.history`, `.backup`) is archived.
    fn has_wal(&self, name: &str) -> Result<bool>;
    /// Removes archived WAL files (and their index entries); returns how many were
    /// removed.
    fn remove_wal(&self, names: &[String]) -> Result<usize>;

    /// The identity of the server the catalog belongs to (`identity.json`).
    fn identity(&self) -> Result<Option<Identity>>;
    /// Records the identity.
    fn write_identity(&self, identity: &Identity) -> Result<()>;

    /// Takes the server's lock for `task` (`backup`…) without waiting.
    fn lock(&self, task: &str) -> Result<Guard>;
    /// Whether another holder has the lock for `task` right now.
    fn is_locked(&self, task: &str) -> bool;
}
