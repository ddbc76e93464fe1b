//! `cron`: the maintenance pass Barman users run every minute — per server, start the
//! WAL receiver when it is not running (never two: it holds its lock), archive what
//! `incoming/` and `streaming/` hold, re-check backups waiting for WAL, apply retention;
//! then remove lock files nothing uses. Each server has its own lock and its own errors:
//! one that is unreachable or broken never stops the others. Quick when there is nothing
//! to do: nothing here talks to PostgreSQL.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use barkeep_archive::lock::LockFile;
use barkeep_catalog::CatalogOps;
use serde::Serialize;

use crate::error::{EngineError, Result};
use crate::{Engine, Server, server};

/// `cron` options.
#[derive(Debug, Clone, Default)]
pub struct CronOpts {
    /// `--keep-descriptors`: a started receiver keeps this process's stdout and stderr
    /// (containers); otherwise they go to /dev/null (its log goes to `log_file`).
    pub keep_descriptors: bool,
}

/// What `cron` did on one server.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CronServer {
    /// Server.
    pub server: String,
    /// Why the server was skipped (inactive, disabled, another cron on it).
    pub skipped: Option<String>,
    /// The receiver: PID of the one started, or of the one already running.
    pub receiver_started: Option<u32>,
    /// The receiver that was already running.
    pub receiver_running: Option<u32>,
    /// WAL files archived.
    pub wal_archived: usize,
    /// Backups whose status changed (WAITING_FOR_WALS → DONE or FAILED).
    pub backups_checked: Vec<(String, String)>,
    /// Backups removed by retention.
    pub retention_deleted: Vec<String>,
    /// WAL files removed by retention.
    pub retention_wal_removed: usize,
    /// What failed (each step on its own; the others still ran).
    pub errors: Vec<String>,
}

/// What `cron` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CronDone {
    /// Per server, in configuration order.
    pub servers: Vec<CronServer>,
    /// Lock files removed.
    pub lock_files_removed: usize,
}

impl Engine {
    /// Runs one maintenance pass over every server.
    pub fn cron(&self, o: &CronOpts) -> Result<CronDone> {
        let mut done = CronDone::default();
        for s in self.all_servers() {
            done.servers.push(s.cron(o));
        }
        if self.config().global.bool("lock_directory_cleanup") != Some(false) {
            done.lock_files_removed = self.lock_directory_cleanup()?;
        }
        Ok(done)
    }

    /// `lock-directory-cleanup`: removes lock files nothing will use again — those of
    /// backups that no longer exist (Barman's per-backup locks) and of servers no longer
    /// configured — each only while holding its lock. The locks of configured servers'
    /// tasks are left in place: removing a lock file another process is opening would let
    /// two processes hold "the same" lock.
    pub fn lock_directory_cleanup(&self) -> Result<usize> {
        let dir = server::lock_dir(self.config());
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(0);
        };
        let servers: Vec<&str> = self
            .config()
            .servers
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        let mut removed = 0;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(stem) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".lock")) else {
                continue;
            };
            if !unused_lock(stem, &servers, |srv, id| {
                self.server(srv)
                    .ok()
                    .and_then(|s| s.catalog().ok())
                    .is_some_and(|c| c.info_path(id).exists())
            }) {
                continue;
            }
            if LockFile::remove_unused(&e.path())? {
                tracing::debug!("removed unused lock file {}", e.path().display());
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Whether the lock `.<stem>.lock` belongs to nothing barkeep or Barman will lock again.
fn unused_lock(stem: &str, servers: &[&str], backup_exists: impl Fn(&str, &str) -> bool) -> bool {
    const GLOBAL: [&str; 3] = ["cron", "config-update", "barman"];
    if GLOBAL.contains(&stem) {
        return false;
    }
    // `<server>-<task>`: the server is the longest configured name that prefixes it.
    let Some(server) = servers
        .iter()
        .filter(|s| {
            stem.strip_prefix(**s)
                .is_some_and(|rest| rest.starts_with('-'))
        })
        .max_by_key(|s| s.len())
    else {
        // No configured server: a removed one.
        return stem.contains('-');
    };
    let task = &stem[server.len() + 1..];
    // A per-backup lock (`<server>-<backup id>`), for a backup that is gone.
    let is_backup_id = task.len() == 15
        && task.as_bytes()[8] == b'T'
        && task
            .bytes()
            .enumerate()
            .all(|(i, c)| i == 8 || c.is_ascii_digit());
    is_backup_id && !backup_exists(server, task)
}

impl Server {
    /// One server's part of `cron`.
    fn cron(&self, o: &CronOpts) -> CronServer {
        let name = self.name().to_string();
        let mut r = CronServer {
            server: name.clone(),
            ..CronServer::default()
        };
        let s = self.settings();
        if s.disabled() || !s.active() {
            r.skipped = Some(if s.disabled() {
                format!(
                    "server `{name}` is disabled: {}",
                    s.disabled_reasons.join("; ")
                )
            } else {
                format!("server `{name}` is inactive")
            });
            return r;
        }
        let locks = server::lock_dir(self.config());
        let _cron_lock = match LockFile::try_acquire(&locks, &name, "cron") {
            Ok(l) => l,
            Err(barkeep_archive::ArchiveError::Locked { .. }) => {
                r.skipped = Some(format!(
                    "Another cron process is already running on server {name}. Skipping to the next server"
                ));
                self.events
                    .step(&name, r.skipped.clone().unwrap_or_default());
                return r;
            }
            Err(e) => {
                r.errors.push(crate::render(&e));
                return r;
            }
        };
        // WAL archiving (incoming/ and streaming/); a pass already running does the work.
        self.events
            .step(&name, format!("Starting WAL archiving for server {name}"));
        match self.archive_wal_waiting(0) {
            Ok(a) => r.wal_archived = a.archived.len(),
            Err(e) if e.is_locked() => {}
            Err(e) => r.errors.push(format!("archive-wal: {}", crate::render(&e))),
        }
        // The receiver.
        if self.typed().streaming_archiver {
            match LockFile::holder(&locks, &name, "receive-wal") {
                Some(pid) => r.receiver_running = Some(pid),
                None => {
                    self.events.step(
                        &name,
                        format!("Starting streaming archiver for server {name}"),
                    );
                    match self.spawn_receiver(o.keep_descriptors) {
                        Ok(pid) => r.receiver_started = Some(pid),
                        Err(e) => r.errors.push(format!("receive-wal: {}", crate::render(&e))),
                    }
                }
            }
        }
        // Backups waiting for their WAL.
        match self.catalog().and_then(|c| Ok(c.promote_waiting()?)) {
            Ok(changed) => {
                r.backups_checked = changed
                    .into_iter()
                    .map(|(id, st)| (id, st.as_str().to_string()))
                    .collect();
            }
            Err(e) => r
                .errors
                .push(format!("check-backup: {}", crate::render(&e))),
        }
        // Retention (`retention_policy_mode = auto`, the only mode).
        if self.retention_policy().enforced() {
            match self.retention(false) {
                Ok(d) => {
                    r.retention_deleted = d.deleted;
                    r.retention_wal_removed = d.wal_removed;
                }
                Err(e) if e.is_locked() => {
                    tracing::info!(server = %name, "a backup or a delete is running: retention is applied at the next cron");
                }
                Err(e) => r.errors.push(format!("retention: {}", crate::render(&e))),
            }
        }
        for e in &r.errors {
            self.events.warning(&name, e.clone());
        }
        r
    }

    /// Starts `barkeep receive-wal SERVER` as a process of its own (it outlives `cron`),
    /// and waits a moment for it to take its lock. Its PID.
    fn spawn_receiver(&self, keep_descriptors: bool) -> Result<u32> {
        let name = self.name();
        let exe = std::env::current_exe()
            .map_err(|e| EngineError::io("find the barkeep executable", PathBuf::new(), e))?;
        let mut cmd = Command::new(&exe);
        cmd.arg("-c")
            .arg(&self.config().main_file)
            .arg("receive-wal")
            .arg(name)
            .stdin(Stdio::null());
        if !keep_descriptors {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        // Its own process group: a signal to cron's (a terminal's Ctrl-C) does not stop it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().map_err(|e| {
            EngineError::io(
                format!("start receive-wal for server `{name}`"),
                exe.clone(),
                e,
            )
        })?;
        let pid = child.id();
        let locks = server::lock_dir(self.config());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(EngineError::Failed(format!(
                    "receive-wal for server `{name}` exited at once ({status}); run `barkeep receive-wal {name}` to see why"
                )));
            }
            if LockFile::holder(&locks, name, "receive-wal") == Some(pid) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Not waited for: once cron exits, init reaps it.
        drop(child);
        Ok(pid)
    }
}

#[cfg(test)]
mod tests {
    use super::unused_lock;

    #[test]
    fn only_locks_of_gone_backups_and_removed_servers_are_unused() {
        let servers = ["pg", "pg-2"];
        let exists = |_: &str, id: &str| id == "20260101T000000";
        assert!(!unused_lock("cron", &servers, exists));
        assert!(!unused_lock("pg-receive-wal", &servers, exists));
        assert!(!unused_lock("pg-2-backup", &servers, exists));
        assert!(!unused_lock("pg-20260101T000000", &servers, exists));
        assert!(unused_lock("pg-20250101T000000", &servers, exists));
        assert!(unused_lock("pg-2-20250101T000000", &servers, exists));
        assert!(unused_lock("old-receive-wal", &servers, exists));
    }
}

/// The tasks whose locks Barman's `list-processes` and `terminate-process` know.
const TASKS: [&str; 6] = [
    "backup",
    "cron",
    "archive-wal",
    "receive-wal",
    "sync-backup",
    "sync-wals",
];

/// A process working for a server (the holder of one of its task locks).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerProcess {
    /// Its PID.
    pub pid: u32,
    /// The task (`backup`, `receive-wal`…).
    pub name: String,
    /// Whether it is the daemon (the task is one of its own).
    pub daemon: bool,
}

impl Server {
    /// `list-processes`: who holds this server's task locks now.
    pub fn processes(&self) -> Vec<ServerProcess> {
        let locks = server::lock_dir(self.config());
        let daemon = crate::running_daemon(self.config()).map(|d| d.pid);
        TASKS
            .iter()
            .filter_map(|t| {
                LockFile::holder(&locks, self.name(), t).map(|pid| ServerProcess {
                    pid,
                    name: t.to_string(),
                    daemon: Some(pid) == daemon,
                })
            })
            .collect()
    }

    /// `terminate-process TASK`: SIGTERM to the process holding the task's lock. A task of
    /// the running daemon is not stopped this way (the signal would stop the whole
    /// daemon): change its configuration and send it SIGHUP, or stop the daemon.
    pub fn terminate(&self, task: &str) -> Result<ServerProcess> {
        let name = self.name();
        let Some(p) = self.processes().into_iter().find(|p| p.name == task) else {
            return Err(EngineError::Failed(format!(
                "Termination of {task} failed: no such process for server {name}"
            )));
        };
        if p.daemon {
            return Err(EngineError::Refused(format!(
                "{task} of server {name} is a task of the running barkeep daemon (PID {}): stop it by changing the configuration and sending SIGHUP, or stop the daemon",
                p.pid
            )));
        }
        let pid = i32::try_from(p.pid)
            .map_err(|_| EngineError::Failed(format!("bad PID {} in the {task} lock", p.pid)))?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .map_err(|e| {
            EngineError::Failed(format!("Cannot terminate process {task}({}): {e}", p.pid))
        })?;
        Ok(p)
    }
}
