//! Catalog errors: each names the backup, the file or the server, and the cause.

use std::path::PathBuf;

/// An error of the catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The storage failed (a file system operation, with its path, or the archive).
    #[error(transparent)]
    Archive(#[from] barkeep_archive::ArchiveError),
    /// A catalog file is damaged or from a newer version.
    #[error("{0}")]
    Corrupt(String),
    /// No such backup.
    #[error("Unknown backup '{spec}' for server '{server}'")]
    UnknownBackup {
        /// What was asked for (id, name or shortcut).
        spec: String,
        /// Server.
        server: String,
    },
    /// A rule refuses the operation (keep annotation, minimum redundancy…).
    #[error("{0}")]
    Refused(String),
}

impl CatalogError {
    /// An I/O error on `path` while doing `action` (the archive's error type, which names
    /// the path and carries the OS error).
    pub fn io(action: impl Into<String>, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CatalogError::Archive(barkeep_archive::ArchiveError::io(action, path, source))
    }
}

/// Shorthand.
pub type Result<T, E = CatalogError> = std::result::Result<T, E>;
