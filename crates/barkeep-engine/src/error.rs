//! Engine errors: what failed (server, backup, file) and why, and whether trying again can
//! help. Front ends never match on messages: they ask [`EngineError::is_usage`] (exit code
//! 2), [`EngineError::is_transient`] (the daemon backs off and retries) and
//! [`EngineError::exit_code`].

use barkeep_archive::ArchiveError;
use barkeep_backup::BackupError;
use barkeep_pg::PgError;

/// An error of an engine operation.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The configuration or the request is wrong (a key, a server name, an option): nothing
    /// was attempted. Exit code 2.
    #[error("{0}")]
    Usage(String),
    /// The operation was refused by a rule (server disabled, backup kept, streaming off…).
    #[error("{0}")]
    Refused(String),
    /// The operation ran and failed for the reason given.
    #[error("{0}")]
    Failed(String),
    /// A WAL client (`wal-archive`/`wal-restore`) failed with the exit code Barman's client
    /// uses for that case.
    #[error("{message}")]
    Exit {
        /// Process exit code.
        code: u8,
        /// What failed.
        message: String,
    },
    /// The WAL archive failed.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The backup machinery failed.
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// PostgreSQL said no, or the connection failed.
    #[error(transparent)]
    Pg(#[from] PgError),
    /// The catalog failed, or refused (a kept backup, minimum redundancy).
    #[error(transparent)]
    Catalog(#[from] barkeep_catalog::CatalogError),
    /// A file operation of the engine itself failed.
    #[error("cannot {action} `{}`", path.display())]
    Io {
        /// What was being done.
        action: String,
        /// The file.
        path: std::path::PathBuf,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// An error with what was being done around it.
    #[error("{context}")]
    Context {
        /// What was being done (`backup of server `pg` failed`).
        context: String,
        /// The cause.
        #[source]
        source: Box<EngineError>,
    },
}

/// Shorthand.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl EngineError {
    /// A file error on `path` while doing `action`.
    pub fn io(
        action: impl Into<String>,
        path: impl Into<std::path::PathBuf>,
        e: std::io::Error,
    ) -> Self {
        EngineError::Io {
            action: action.into(),
            path: path.into(),
            source: e,
        }
    }

    /// Wraps the error with what was being done.
    pub fn context(self, context: impl Into<String>) -> Self {
        EngineError::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }

    /// The innermost engine error (below every [`EngineError::Context`]).
    pub fn root(&self) -> &EngineError {
        match self {
            EngineError::Context { source, .. } => source.root(),
            e => e,
        }
    }

    /// Whether the configuration or the request is at fault (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(self.root(), EngineError::Usage(_))
    }

    /// Whether the same operation may succeed later without anyone changing anything: a
    /// network reset, a server restarting, a full disk, a lock held by another process.
    /// Corruption, configuration errors and refusals are never transient.
    pub fn is_transient(&self) -> bool {
        match self.root() {
            EngineError::Pg(e) => e.is_transient(),
            EngineError::Archive(e) => archive_transient(e),
            EngineError::Backup(BackupError::Pg { source, .. }) => source.is_transient(),
            EngineError::Backup(BackupError::Archive(e))
            | EngineError::Catalog(barkeep_catalog::CatalogError::Archive(e))
            | EngineError::Backup(BackupError::Store(barkeep_catalog::CatalogError::Archive(e))) => {
                archive_transient(e)
            }
            EngineError::Backup(BackupError::Io { source, .. })
            | EngineError::Io { source, .. } => io_transient(source),
            _ => false,
        }
    }

    /// Whether another process holds the lock this operation needs.
    pub fn is_locked(&self) -> bool {
        matches!(
            self.root(),
            EngineError::Archive(ArchiveError::Locked { .. })
                | EngineError::Backup(BackupError::Archive(ArchiveError::Locked { .. }))
                | EngineError::Catalog(barkeep_catalog::CatalogError::Archive(
                    ArchiveError::Locked { .. }
                ))
                | EngineError::Backup(BackupError::Store(barkeep_catalog::CatalogError::Archive(
                    ArchiveError::Locked { .. }
                )))
        )
    }

    /// The process exit code a front end should use: 2 for usage errors, the WAL client's
    /// own code, else 1.
    pub fn exit_code(&self) -> u8 {
        match self.root() {
            EngineError::Usage(_) => 2,
            EngineError::Exit { code, .. } => *code,
            _ => 1,
        }
    }
}

fn archive_transient(e: &ArchiveError) -> bool {
    match e {
        ArchiveError::Locked { .. } => true,
        ArchiveError::Io { source, .. } => io_transient(source),
        _ => false,
    }
}

fn io_transient(e: &std::io::Error) -> bool {
    use nix::errno::Errno;
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::ENOSPC | Errno::EDQUOT | Errno::EAGAIN | Errno::EINTR | Errno::ETIMEDOUT)
    ) || matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::Interrupted
    )
}

/// `what: cause: cause…`, every cause of the chain on one line.
pub fn render(e: &dyn std::error::Error) -> String {
    barkeep_archive::error::chain(e)
}

/// Shorthand for usage errors.
pub(crate) fn usage(msg: impl Into<String>) -> EngineError {
    EngineError::Usage(msg.into())
}

/// Shorthand for failures.
pub(crate) fn failed(msg: impl Into<String>) -> EngineError {
    EngineError::Failed(msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_looks_through_context() {
        let e = usage("bad key").context("server `pg`");
        assert!(e.is_usage());
        assert_eq!(e.exit_code(), 2);
        assert_eq!(render(&e), "server `pg`: bad key");
        let full = EngineError::io(
            "write",
            "/x",
            std::io::Error::from_raw_os_error(nix::errno::Errno::ENOSPC as i32),
        )
        .context("archiving");
        assert!(full.is_transient());
        let corrupt = EngineError::Archive(ArchiveError::InvalidWal {
            path: "/w".into(),
            reason: "bad magic".into(),
        });
        assert!(!corrupt.is_transient());
        assert_eq!(corrupt.exit_code(), 1);
        let locked = EngineError::Archive(ArchiveError::Locked {
            what: "backup".into(),
            server: "pg".into(),
            path: "/l".into(),
            pid: Some(7),
        });
        assert!(locked.is_locked() && locked.is_transient());
    }
}
