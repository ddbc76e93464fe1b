//! What a running `barkeep daemon` tells the other commands: a state file beside its lock
//! in the lock directory (`.barkeep-daemon.state`, JSON, private, replaced atomically),
//! read by `status` only while the daemon's lock (`.barkeep-daemon.lock`) is held — a
//! file left by a daemon that died says nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;

use barkeep_archive::lock::LockFile;
use barkeep_config::Config;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::server;

/// The daemon's lock name: `.barkeep-daemon.lock` in the lock directory.
pub const DAEMON_LOCK: &str = "barkeep-daemon";

/// What the daemon is doing for one server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerState {
    /// The receiver: `running`, `restarting (…)`, `off`.
    pub receiver: String,
    /// When the next scheduled backup starts (jitter included).
    pub next_backup: Option<DateTime<Utc>>,
    /// When retention runs next.
    pub next_retention: Option<DateTime<Utc>>,
    /// When `check` runs next.
    pub next_check: Option<DateTime<Utc>>,
    /// When the next restore drill runs (`drill_schedule`).
    #[serde(default)]
    pub next_drill: Option<DateTime<Utc>>,
    /// The last scheduled backup: id and status, or the error.
    pub last_backup: Option<String>,
    /// The last check: the failed items (empty: all OK).
    pub last_check_failed: Option<Vec<String>>,
    /// Why the daemon leaves this server alone (inactive, disabled).
    pub left_alone: Option<String>,
}

/// The daemon's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DaemonState {
    /// Its PID.
    pub pid: u32,
    /// When it started.
    pub started: Option<DateTime<Utc>>,
    /// Per server.
    pub servers: BTreeMap<String, ServerState>,
}

/// The state file of the daemon of `config`.
pub fn daemon_state_path(config: &Config) -> PathBuf {
    server::lock_dir(config).join(".barkeep-daemon.state")
}

/// Writes the state, atomically and privately.
pub fn write_daemon_state(config: &Config, state: &DaemonState) -> Result<()> {
    let text = serde_json::to_vec_pretty(state).unwrap_or_default();
    barkeep_archive::durable::write_file_atomic(&daemon_state_path(config), &text)?;
    Ok(())
}

/// The running daemon's state: `None` unless a daemon holds its lock now.
pub fn running_daemon(config: &Config) -> Option<DaemonState> {
    let dir = server::lock_dir(config);
    let lock = dir.join(format!(".{DAEMON_LOCK}.lock"));
    if !lock.exists() || !LockFile::is_held(&lock) {
        return None;
    }
    let text = std::fs::read(daemon_state_path(config)).ok()?;
    serde_json::from_slice(&text).ok()
}
