//! barkeep's catalog: what is known about a server's backups and WAL, behind one
//! interface.
//!
//! - [`BackupInfo`]: `backup.info`, typed (status, LSNs, times, sizes, tablespaces,
//!   parent/children), read from any file Barman 3.x writes and written with Barman's
//!   keys only.
//! - [`CatalogStore`]: the storage interface — backup metadata, keep annotations, the
//!   delete mark, the WAL index (`xlog.db`), the identity, locks. [`LocalCatalog`] is
//!   Barman's layout on a local file system; [`MemoryCatalog`] keeps it in memory without
//!   any POSIX-only operation, as an object store would.
//! - [`CatalogOps`]: list, backup id shortcuts, neighbours, check-backup, promotion of
//!   waiting backups, crash recovery and Barman's delete, written once for any store.
//! - [`WalRange`]: the one answer to "which WAL does this backup need".
//!
//! ```
//! use barkeep_catalog::{BackupInfo, CatalogOps, CatalogStore, MemoryCatalog, Status};
//! let cat = MemoryCatalog::new("pg");
//! let mut b = BackupInfo::new("20260101T000000", "pg");
//! b.status = Status::Done;
//! cat.write_info(&b).unwrap();
//! assert_eq!(cat.resolve("latest").unwrap().backup_id, "20260101T000000");
//! ```

mod error;
mod info;
mod local;
mod memory;
mod ops;
pub mod retention;
mod store;
mod walrange;

pub use error::{CatalogError, Result};
pub use info::{
    BackupInfo, DEFAULT_SEGMENT_SIZE, KEYS, Status, Tablespace, format_time, parse_time, py_repr,
};
pub use local::LocalCatalog;
pub use memory::MemoryCatalog;
pub use ops::{CatalogOps, DeleteReport, Neighbours, segment_before};
pub use store::{CatalogStore, Guard, KeepTarget, Listing};
pub use walrange::{SegPos, WalRange};

/// Barman's human-readable sizes (`23.4 MiB`).
pub fn human_size(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut size = bytes as f64;
    for unit in ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] {
        if size.abs() < 1024.0 {
            return format!("{size:.1} {unit}");
        }
        size /= 1024.0;
    }
    format!("{size:.1} EiB")
}
