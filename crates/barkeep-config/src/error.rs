//! Configuration errors and warnings. Every one names the file, line, section and key.

use std::path::PathBuf;

use crate::ini::{IniError, Origin};

/// A fatal configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read configuration file `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `configuration_files_directory` could not be listed.
    #[error("cannot list configuration_files_directory `{}`", path.display())]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// No configuration file was found in the default locations.
    #[error(
        "no configuration file found; tried {}\nhint: pass `-c FILE` or set `BARKEEP_CONFIG`",
        tried.iter().map(|p| format!("`{}`", p.display())).collect::<Vec<_>>().join(", ")
    )]
    NotFound {
        /// Every path that was looked at, in order.
        tried: Vec<PathBuf>,
    },
    /// A file named explicitly (by `-c` or an environment variable) does not exist.
    #[error("configuration file `{}` (from {origin}) does not exist", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
        /// What named it (`-c`, `BARKEEP_CONFIG`, `BARMAN_CONFIG_FILE`).
        origin: String,
    },
    /// INI syntax error.
    #[error(transparent)]
    Syntax(#[from] IniError),
    /// A value does not follow its key's grammar.
    #[error("{at}: invalid value `{value}` for `{key}` in [{section}]: expected {accepted}")]
    Invalid {
        /// Where the value (or the reference that produced it) was written.
        at: At,
        /// The section.
        section: String,
        /// The key.
        key: String,
        /// The value after interpolation and unquoting.
        value: String,
        /// What the key accepts.
        accepted: String,
    },
    /// `%(name)s` interpolation failed.
    #[error("{at}: cannot expand `{key}` in [{section}]: {reason}")]
    Interpolation {
        /// Where the value was written.
        at: At,
        /// The section.
        section: String,
        /// The key.
        key: String,
        /// What went wrong.
        reason: String,
    },
    /// An included file changes the global section (fatal in Barman too).
    #[error(
        "{origin}: included file defines the global section [{section}]; only the main configuration file may\nhint: move these keys to the main configuration file"
    )]
    GlobalInInclude {
        /// Where the header was written.
        origin: Origin,
        /// `barman` or `barkeep`.
        section: String,
    },
    /// A server is named with a reserved word or a name unusable as a directory.
    #[error("{origin}: `{name}` cannot be a server name: {reason}")]
    BadServerName {
        /// Where the header was written.
        origin: Origin,
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
}

/// Where a resolved value came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum At {
    /// A line in a file.
    File(Origin),
    /// Barman's built-in default.
    Default,
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            At::File(o) => write!(f, "`{}` line {}", o.path.display(), o.line),
            At::Default => f.write_str("built-in default"),
        }
    }
}

/// All fatal problems found while loading (loading goes on after the first one so the
/// user can fix them all at once).
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
            let mut src = std::error::Error::source(e);
            while let Some(s) = src {
                write!(f, ": {s}")?;
                src = s.source();
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

/// A non-fatal problem: the configuration loads, the user should still fix it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigWarning {
    /// `path:line`, or empty when not tied to a line.
    pub at: String,
    /// The message.
    pub message: String,
}

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.at.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.at, self.message)
        }
    }
}
