//! Backup errors: each names the backup, the file or the server, and the cause.

use std::path::PathBuf;

/// An error of the backup machinery.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A file system operation failed.
    #[error("cannot {action} `{}`", path.display())]
    Io {
        /// What was being done.
        action: String,
        /// The file.
        path: PathBuf,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// PostgreSQL said no, or the connection failed.
    #[error("server `{server}`")]
    Pg {
        /// Server name.
        server: String,
        /// The client error.
        #[source]
        source: barkeep_pg::PgError,
    },
    /// The archive layer failed.
    #[error(transparent)]
    Archive(#[from] barkeep_archive::ArchiveError),
    /// The catalog failed.
    #[error(transparent)]
    Store(#[from] barkeep_catalog::CatalogError),
    /// A catalog file is damaged or from a newer version.
    #[error("{0}")]
    Catalog(String),
    /// Verification found a difference.
    #[error("{0}")]
    Verify(String),
    /// Anything else, with its explanation.
    #[error("{0}")]
    Other(String),
}

impl BackupError {
    /// An I/O error on `path` while doing `action`.
    pub fn io(action: impl Into<String>, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BackupError::Io {
            action: action.into(),
            path: path.into(),
            source,
        }
    }
}

/// Shorthand.
pub type Result<T, E = BackupError> = std::result::Result<T, E>;
