//! Archive errors: each names the file (or server) and the cause.

use std::path::PathBuf;

/// An error of the WAL archive.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A file system operation failed.
    #[error("cannot {action} `{}`", path.display())]
    Io {
        /// What was being done (`create`, `fsync`, `rename to …`).
        action: String,
        /// The file.
        path: PathBuf,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds a lock.
    #[error("{what} is already running for server `{server}` (lock `{}` held{})", path.display(), pid.map(|p| format!(" by PID {p}")).unwrap_or_default())]
    Locked {
        /// The activity (`receive-wal`, `archive-wal`…).
        what: String,
        /// Server.
        server: String,
        /// The lock file.
        path: PathBuf,
        /// PID written in the lock file, when readable.
        pid: Option<u32>,
    },
    /// A WAL file failed validation.
    #[error("WAL file `{}` is invalid: {reason}", path.display())]
    InvalidWal {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Compressed data that does not decode.
    #[error("cannot decompress `{}` ({codec})", path.display())]
    Decompress {
        /// The file.
        path: PathBuf,
        /// Codec detected.
        codec: &'static str,
        /// Decoder error.
        #[source]
        source: std::io::Error,
    },
    /// Anything else, with its explanation.
    #[error("{0}")]
    Other(String),
}

impl ArchiveError {
    /// An I/O error on `path` while doing `action`.
    pub fn io(action: impl Into<String>, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ArchiveError::Io {
            action: action.into(),
            path: path.into(),
            source,
        }
    }
}

impl ArchiveError {
    /// Whether the cause is a full file system (ENOSPC, EDQUOT): nothing is wrong with the
    /// data, and the same work succeeds once space is freed — retry, never give up.
    pub fn is_disk_full(&self) -> bool {
        match self {
            ArchiveError::Io { source, .. } => matches!(
                source.raw_os_error(),
                Some(code) if code == nix::errno::Errno::ENOSPC as i32
                    || code == nix::errno::Errno::EDQUOT as i32
            ),
            _ => false,
        }
    }
}

/// Shorthand.
pub type Result<T, E = ArchiveError> = std::result::Result<T, E>;

/// An error and all its causes on one line: `what: cause: cause`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
