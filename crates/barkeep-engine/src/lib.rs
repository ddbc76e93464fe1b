//! The engine: every barkeep operation, per server, as a library call — what the CLI, the
//! daemon and (later) object storage share.
//!
//! An [`Engine`] is built from a loaded [`Config`]; [`Engine::server`] picks exactly one
//! server (`all`, several names or none are refused with a clear error) and
//! [`Engine::servers`] several. A [`Server`] offers the operations: `backup`,
//! `receive_wal` (a cancellable task), `archive_wal`, `get_wal`/`put_wal`, `switch_wal`,
//! `check_backup`, `delete`, `list_backups`/`show_backup`/`list_files`, `verify_backup`,
//! `restore`. Each returns a typed, `Serialize` result or an [`EngineError`] that says
//! whether retrying can help; while running it reports [`Event`]s to the sink given to
//! [`Engine::with_events`]. The engine never prints.
//!
//! Threading: operations that talk to PostgreSQL are `async` and must run on a tokio
//! runtime (the binary owns one); operations bound to the file system are plain functions
//! — call them from `spawn_blocking` (or a thread) in async code. Long-running async
//! operations take a [`CancellationToken`] and stop at a durable point.
//!
//! ```no_run
//! # async fn demo() -> Result<(), barkeep_engine::EngineError> {
//! let config = barkeep_config::load(std::path::Path::new("/etc/barman.conf"))
//!     .map_err(|e| barkeep_engine::EngineError::Usage(e.to_string()))?;
//! let engine = barkeep_engine::Engine::new(config);
//! let pg = engine.server("pg")?;
//! let done = pg.backup(&Default::default()).await?;
//! println!("backup {} is {}", done.backup_id, done.status);
//! # Ok(()) }
//! ```

mod backup;
mod check;
mod cron;
mod daemon_state;
mod diagnose;
mod drill;
mod error;
mod events;
mod hooks;
mod restore;
mod retention;
mod server;
mod tools;
mod wal;
mod walclient;

use std::sync::Arc;

use barkeep_config::{Config, ServerConfig};

pub use backup::{
    BackupDetails, BackupDone, BackupOpts, BackupRow, CheckBackupReport, DeleteOutcome, FileList,
    VerifyReport, human_size,
};
pub use barkeep_catalog::retention::{Plan, RetentionStatus, Verdict};
pub use barkeep_catalog::{
    BackupInfo, CatalogOps, CatalogStore, KeepTarget, LocalCatalog, MemoryCatalog, Status,
    Tablespace, WalRange, format_time,
};
pub use barkeep_wal::Lsn;
pub use check::{
    CheckItem, CheckReport, ReceiverMetrics, StatusReport, StatusRow, human_timedelta,
};
pub use cron::{CronDone, CronOpts, CronServer, ServerProcess};
pub use daemon_state::{
    DAEMON_LOCK, DaemonState, ServerState, daemon_state_path, running_daemon, write_daemon_state,
};
pub use diagnose::{diagnose, effective_settings, setting_json, settings_json};
pub use drill::DrillReport;
pub use error::{EngineError, Result, render};
pub use events::{Discard, Event, EventSink, Events};
pub use restore::{RestoreDone, RestoreOpts, Target, describe_target};
pub use retention::{KeepAction, KeepDone, RetentionDone};
pub use server::{become_barman_user, catalog_group};
pub use tokio_util::sync::CancellationToken;
pub use wal::{
    ArchiveReport, GetWalOpts, ReceiveOpts, ReceiveWalDone, ReplicationStatus, SwitchWalDone,
    XlogdbRebuilt, shutdown_signal,
};
pub use walclient::{
    RemoteArgs, WalArchiveArgs, WalClientDone, WalRestoreArgs, wal_archive, wal_restore, wal_tar,
};

/// The engine of one configuration.
#[derive(Debug, Clone)]
pub struct Engine {
    config: Arc<Config>,
    events: Events,
}

impl Engine {
    /// An engine for `config`, dropping progress events.
    pub fn new(config: Config) -> Engine {
        Engine {
            config: Arc::new(config),
            events: Events::default(),
        }
    }

    /// The same engine, sending progress events to `sink`.
    pub fn with_events(mut self, sink: impl EventSink + 'static) -> Engine {
        self.events = Events::new(sink);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Exactly one server: `name` must be a configured server (not `all`).
    pub fn server(&self, name: &str) -> Result<Server> {
        if name == "all" {
            return Err(error::usage(
                "this command works on one server: name it (`all` is not accepted here)",
            ));
        }
        let i = self.index_of(name)?;
        Ok(self.server_at(i))
    }

    /// The servers named (`all` = every configured server), in configuration order.
    /// An empty list is refused: say which server, or `all`.
    pub fn servers(&self, names: &[String]) -> Result<Vec<Server>> {
        if names.is_empty() {
            return Err(error::usage("name at least one server, or `all`"));
        }
        if names.iter().any(|n| n == "all") {
            return Ok((0..self.config.servers.len())
                .map(|i| self.server_at(i))
                .collect());
        }
        names
            .iter()
            .map(|n| self.index_of(n).map(|i| self.server_at(i)))
            .collect()
    }

    /// Every configured server, in configuration order (none when there are none).
    pub fn all_servers(&self) -> Vec<Server> {
        (0..self.config.servers.len())
            .map(|i| self.server_at(i))
            .collect()
    }

    fn index_of(&self, name: &str) -> Result<usize> {
        self.config
            .servers
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self
                    .config
                    .servers
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect();
                EngineError::Failed(format!(
                    "unknown server `{name}` (configured: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ))
            })
    }

    fn server_at(&self, index: usize) -> Server {
        Server {
            typed: Arc::new(self.config.servers[index].typed()),
            config: self.config.clone(),
            index,
            events: self.events.clone(),
        }
    }
}

/// One configured server: the handle every operation hangs off. Cheap to clone; `Send`
/// and `'static`, so it can move into a task.
#[derive(Debug, Clone)]
pub struct Server {
    config: Arc<Config>,
    index: usize,
    typed: Arc<barkeep_config::ServerSettings>,
    events: Events,
}

impl Server {
    /// The server's name.
    pub fn name(&self) -> &str {
        &self.settings().name
    }

    /// The server's settings.
    pub fn settings(&self) -> &ServerConfig {
        &self.config.servers[self.index]
    }

    /// The server's settings, typed: what the operations read.
    pub fn typed(&self) -> &barkeep_config::ServerSettings {
        &self.typed
    }

    /// The whole configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }
}

/// Opens `log_file` for appending (created private if missing), for the front end's log
/// subscriber.
pub fn open_log_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}
