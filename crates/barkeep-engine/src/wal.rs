//! WAL operations: `receive-wal` (a cancellable task, with slots and synchronous mode),
//! `archive-wal`, `get-wal`, `put-wal`, `switch-wal`, `replication-status`,
//! `rebuild-xlogdb`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use barkeep_archive::receiver::{Receiver, ReceiverConfig};
use barkeep_archive::{ArchiveError, Codec, Outcome, lock::LockFile};
use barkeep_pg::Connection;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::Server;
use barkeep_catalog::CatalogOps;

use crate::backup::blocking;
use crate::error::{EngineError, Result, failed, usage};
use crate::events::Event;

/// Options of `receive-wal`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReceiveOpts {
    /// `--stop`.
    pub stop: bool,
    /// `--reset`.
    pub reset: bool,
    /// `--create-slot`.
    pub create_slot: bool,
    /// `--if-not-exists`.
    pub if_not_exists: bool,
    /// `--drop-slot`.
    pub drop_slot: bool,
}

/// What a `receive-wal` invocation did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ReceiveWalDone {
    /// Streamed until cancelled.
    Streamed,
    /// `--stop`: the running receiver was signalled.
    Stopped {
        /// Its PID.
        pid: u32,
    },
    /// `--reset`: the `.partial` files were removed.
    Reset {
        /// How many.
        removed: usize,
    },
    /// `--create-slot`.
    SlotCreated {
        /// Slot name.
        slot: String,
        /// Whether it was there already (`--if-not-exists`).
        existed: bool,
    },
    /// `--drop-slot`.
    SlotDropped {
        /// Slot name.
        slot: String,
    },
}

/// What `archive-wal` did.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveReport {
    /// Server.
    pub server: String,
    /// Files stored in the archive, in order.
    pub archived: Vec<String>,
}

/// Options of `get-wal`.
#[derive(Debug, Clone, Default)]
pub struct GetWalOpts {
    /// `-o`: write into this directory (atomically) instead of the writer.
    pub output_directory: Option<PathBuf>,
    /// `-P`: a `.partial` segment may answer.
    pub partial: bool,
    /// `--keep-compression`.
    pub keep_compression: bool,
    /// `-z`/`-j`: compress the output with `gzip` or `bzip2`.
    pub compress: Option<String>,
}

/// What `switch-wal` did.
#[derive(Debug, Clone, Serialize)]
pub struct SwitchWalDone {
    /// Server.
    pub server: String,
    /// Whether a segment was closed.
    pub switched: bool,
    /// The segment closed.
    pub wal: Option<String>,
}

/// One client of `pg_stat_replication`.
#[derive(Debug, Clone, Serialize)]
pub struct StandbyRow {
    /// Walsender PID.
    pub pid: i32,
    /// Role.
    pub usename: Option<String>,
    /// `application_name`.
    pub application_name: Option<String>,
    /// Client address (none for Unix sockets).
    pub client_addr: Option<String>,
    /// Walsender state.
    pub state: Option<String>,
    /// Positions, as PostgreSQL prints them.
    pub sent_lsn: Option<String>,
    /// Written by the client.
    pub write_lsn: Option<String>,
    /// Flushed by the client.
    pub flush_lsn: Option<String>,
    /// Replayed by the client.
    pub replay_lsn: Option<String>,
    /// `async`, `sync`, `potential`, `quorum`.
    pub sync_state: Option<String>,
    /// Bytes behind the primary's current LSN, per position (sent, write, flush, replay).
    #[serde(skip)]
    pub lag: [Option<u64>; 4],
}

/// `replication-status`.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicationStatus {
    /// Server.
    pub server: String,
    /// The primary's current LSN (none on a standby).
    pub current_lsn: Option<String>,
    /// Streaming clients.
    pub clients: Vec<StandbyRow>,
}

/// `rebuild-xlogdb`.
#[derive(Debug, Clone, Serialize)]
pub struct XlogdbRebuilt {
    /// Server.
    pub server: String,
    /// `.history` files.
    pub history: usize,
    /// `.backup` labels.
    pub backup_labels: usize,
    /// Segments.
    pub wal_files: usize,
}

/// Resolves when the process receives SIGTERM or SIGINT (never, if the handlers cannot be
/// installed): what `receive-wal` and the daemon stop on.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

/// Names in `synchronous_standby_names` (`FIRST n (a, b)`, `ANY n (a, b)`, `a, b`).
fn standby_names(setting: &str) -> Vec<String> {
    let inner = match (setting.find('('), setting.rfind(')')) {
        (Some(a), Some(b)) if a < b => &setting[a + 1..b],
        _ => setting,
    };
    inner
        .split(',')
        .map(|n| n.trim().trim_matches('"').to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

impl Server {
    /// `receive-wal`: streams WAL through the server's slot until `cancel` fires, archiving
    /// each completed segment at once and promoting waiting backups; or, with
    /// `--stop`/`--reset`/`--create-slot`/`--drop-slot`, that action alone.
    pub async fn receive_wal(
        &self,
        o: ReceiveOpts,
        cancel: CancellationToken,
    ) -> Result<ReceiveWalDone> {
        let s = self.settings();
        let name = s.name.clone();
        let archive = self.archive()?;
        let locks = archive.lock_dir.clone();
        if o.stop {
            return match LockFile::holder(&locks, &name, "receive-wal") {
                Some(pid) if pid > 0 => {
                    nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid as i32),
                        nix::sys::signal::Signal::SIGTERM,
                    )
                    .map_err(|e| {
                        failed(format!(
                            "cannot signal receive-wal (PID {pid}) of server `{name}`: {e}"
                        ))
                    })?;
                    Ok(ReceiveWalDone::Stopped { pid })
                }
                _ => Err(failed(format!(
                    "Termination of receive-wal failed: no such process for server {name}"
                ))),
            };
        }
        let slot = self.typed().slot_name.clone();
        if o.create_slot || o.drop_slot {
            let slot =
                slot.ok_or_else(|| usage(format!("server `{name}`: `slot_name` is not set")))?;
            return self.slot_action(&slot, o).await;
        }
        self.usable("receive-wal")?;
        if o.reset {
            let _lock = LockFile::try_acquire(&locks, &name, "receive-wal")?;
            let dir = archive.streaming.clone();
            let removed = blocking(move || {
                let mut removed = 0;
                if let Ok(rd) = std::fs::read_dir(&dir) {
                    for e in rd.flatten() {
                        if e.file_name().to_string_lossy().ends_with(".partial") {
                            barkeep_archive::durable::remove_durable(&e.path())?;
                            removed += 1;
                        }
                    }
                }
                Ok(removed)
            })
            .await?;
            return Ok(ReceiveWalDone::Reset { removed });
        }
        archive.create_directories()?;
        if !self.typed().streaming_archiver {
            return Err(usage(format!(
                "Unable to start receive-wal: streaming_archiver option set to 'off' for server `{name}`"
            )));
        }
        let _lock = match LockFile::try_acquire(&locks, &name, "receive-wal") {
            Ok(l) => l,
            Err(ArchiveError::Locked { pid, .. }) => {
                return Err(EngineError::Refused(format!(
                    "Another receive-wal process is already running for server {name}{}",
                    pid.map(|p| format!(" (PID {p})")).unwrap_or_default()
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let app = self.typed().streaming_archiver_name.clone();
        let params = self.conn_params("streaming_conninfo", true, Some(&app))?;
        // Synchronous mode when the archiver's name is a synchronous standby.
        let synchronous = match Connection::connect(&params).await {
            Ok(mut c) => {
                let names = c
                    .show("synchronous_standby_names")
                    .await
                    .unwrap_or_default();
                let _ = c.close().await;
                standby_names(&names).iter().any(|n| n == &app || n == "*")
            }
            Err(e) => {
                tracing::warn!(server = %name, "{e}; will keep retrying");
                false
            }
        };
        if synchronous {
            tracing::info!(server = %name, "`{app}` is in synchronous_standby_names: synchronous mode");
        }
        let cfg = ReceiverConfig {
            server: name.clone(),
            streaming_dir: archive.streaming.clone(),
            wals_dir: archive.wals.clone(),
            errors_dir: archive.errors.clone(),
            identity_file: archive.identity_file.clone(),
            conn: params,
            slot,
            create_slot: self.typed().create_slot == "auto",
            synchronous,
            status_interval: Duration::from_secs(10),
            max_backoff: Duration::from_secs(30),
        };
        self.events
            .step(&name, format!("Starting receive-wal for server {name}"));
        // Completed segments are archived at once, and waiting backups promoted.
        let events = self.events.clone();
        let srv = name.clone();
        let on_archived: barkeep_backup::archiver::OnArchived =
            Arc::new(move |file: &str, bytes| {
                events.emit(Event::WalArchived {
                    server: srv.clone(),
                    name: file.to_string(),
                    bytes,
                })
            });
        let archiver = barkeep_backup::archiver::BackgroundArchiver::start_with(
            self.catalog()?,
            Some(on_archived),
        )
        .map_err(|e| failed(format!("cannot start the archiving thread: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        // The receiver holds the archiver's notifier: it must be gone before the archiver
        // is told to finish (the archiver thread ends when every notifier is dropped).
        let result = {
            let mut receiver = Receiver::new(cfg, stop.clone()).on_complete(archiver.notifier());
            let run = receiver.run();
            tokio::pin!(run);
            // The receiver polls its flag: it stops at a durable point (what it
            // acknowledged is on disk) once the token fires.
            tokio::select! {
                r = &mut run => r,
                _ = cancel.cancelled() => {
                    stop.store(true, Ordering::Relaxed);
                    run.await
                }
            }
        };
        archiver.finish();
        result?;
        Ok(ReceiveWalDone::Streamed)
    }

    async fn slot_action(&self, slot: &str, o: ReceiveOpts) -> Result<ReceiveWalDone> {
        let name = self.name().to_string();
        let params = self.conn_params("streaming_conninfo", true, None)?;
        let mut conn = Connection::connect(&params)
            .await
            .map_err(|e| EngineError::from(e).context(format!("server `{name}`")))?;
        let done = if o.create_slot {
            self.events.step(
                &name,
                format!("Creating physical replication slot '{slot}' on server '{name}'"),
            );
            match conn.create_physical_slot(slot, false, true).await {
                Ok(()) => ReceiveWalDone::SlotCreated {
                    slot: slot.to_string(),
                    existed: false,
                },
                Err(e) if e.sqlstate() == Some("42710") => {
                    if !o.if_not_exists {
                        return Err(failed(format!("Replication slot '{slot}' already exists")));
                    }
                    ReceiveWalDone::SlotCreated {
                        slot: slot.to_string(),
                        existed: true,
                    }
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            self.events.step(
                &name,
                format!("Dropping physical replication slot '{slot}' on server '{name}'"),
            );
            match conn.drop_replication_slot(slot, false).await {
                Ok(()) => ReceiveWalDone::SlotDropped {
                    slot: slot.to_string(),
                },
                Err(e) if e.sqlstate() == Some("42704") => {
                    return Err(failed(format!("Replication slot '{slot}' does not exist")));
                }
                Err(e) if e.sqlstate() == Some("55006") => {
                    return Err(failed(format!(
                        "Cannot drop replication slot '{slot}': it is in use (stop receive-wal first)"
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        };
        let _ = conn.close().await;
        Ok(done)
    }

    fn report_outcomes(&self, outcomes: &[Outcome]) -> Vec<String> {
        let server = self.name();
        let mut archived = Vec::new();
        for o in outcomes {
            match o {
                Outcome::Archived { name, .. } => {
                    let bytes = barkeep_archive::names::WalName::parse(name)
                        .and_then(|w| self.archive().ok().map(|a| a.archive_path(&w)))
                        .and_then(|p| std::fs::metadata(p).ok())
                        .map_or(0, |m| m.len());
                    self.events.emit(Event::WalArchived {
                        server: server.to_string(),
                        name: name.clone(),
                        bytes,
                    });
                    archived.push(name.clone())
                }
                Outcome::Duplicate { name } => {
                    tracing::info!("{name}: already archived, identical copy dropped")
                }
                Outcome::Conflict { name, moved_to } => self.rejected(
                    name,
                    "already archived with different content".into(),
                    moved_to,
                    format!(
                        "{name} is already archived with different content; moved to {}",
                        moved_to.display()
                    ),
                ),
                Outcome::Invalid {
                    name,
                    reason,
                    moved_to,
                } => self.rejected(
                    name,
                    reason.clone(),
                    moved_to,
                    format!(
                        "{name} is not valid WAL ({reason}); moved to {}",
                        moved_to.display()
                    ),
                ),
                Outcome::Unknown { name, moved_to } => self.rejected(
                    name,
                    "not a WAL file name".into(),
                    moved_to,
                    format!(
                        "{name} is not a WAL file name; moved to {}",
                        moved_to.display()
                    ),
                ),
            }
        }
        archived
    }

    fn rejected(&self, name: &str, reason: String, moved_to: &std::path::Path, text: String) {
        self.events.emit(Event::WalRejected {
            server: self.name().to_string(),
            name: name.to_string(),
            reason,
            moved_to: moved_to.to_path_buf(),
        });
        self.events.warning(self.name(), text);
    }

    /// `archive-wal`: moves what `incoming/` and `streaming/` hold into the archive
    /// (waiting up to 30 s for a pass of the receiver to end), then promotes waiting
    /// backups.
    pub fn archive_wal(&self) -> Result<ArchiveReport> {
        self.archive_wal_waiting(120)
    }

    /// `archive-wal`, waiting at most `polls` × 250 ms for another pass to end (`cron`
    /// does not wait: the pass running does the work).
    pub(crate) fn archive_wal_waiting(&self, polls: u32) -> Result<ArchiveReport> {
        self.usable("archive-wal")?;
        let cat = self.catalog()?;
        let archive = &cat.archive;
        archive.create_directories()?;
        let mut waited = 0;
        let outcomes = loop {
            match archive.archive_wal() {
                Err(ArchiveError::Locked { .. }) if waited < polls => {
                    waited += 1;
                    std::thread::sleep(Duration::from_millis(250));
                }
                r => break r?,
            }
        };
        let archived = self.report_outcomes(&outcomes);
        cat.promote_waiting()?;
        Ok(ArchiveReport {
            server: self.name().to_string(),
            archived,
        })
    }

    /// Writes `bytes` (a WAL file as asked for) where `get-wal` writes.
    fn get_wal_bytes(
        &self,
        wal: &str,
        bytes: &[u8],
        o: &GetWalOpts,
        out: &mut dyn Write,
    ) -> Result<()> {
        match &o.output_directory {
            Some(dir) => {
                barkeep_archive::durable::write_file_atomic(&dir.join(wal), bytes)?;
            }
            None => {
                out.write_all(bytes)
                    .and_then(|()| out.flush())
                    .map_err(|e| failed(format!("cannot write to standard output: {e}")))?;
            }
        }
        Ok(())
    }

    /// `get-wal --test`: whether the archive can answer.
    pub fn get_wal_ready(&self) -> Result<()> {
        self.archive().map(|_| ())
    }

    /// `get-wal --peek N`: `wal` and the next archived names after it.
    pub fn peek_wal(&self, wal: &str, n: usize) -> Result<Vec<String>> {
        check_wal_name(wal)?;
        Ok(self.archive()?.peek(wal, n)?)
    }

    /// `get-wal`: the file `wal`, decompressed unless `keep_compression`, to `-o DIR`
    /// (atomically) or to `out`.
    pub fn get_wal(&self, wal: &str, o: &GetWalOpts, out: &mut dyn Write) -> Result<()> {
        check_wal_name(wal)?;
        if let Some(c) = &o.compress {
            // The segment decompressed, then compressed as asked (Barman's -z/-j).
            let codec = Codec::from_setting(Some(c)).map_err(usage)?;
            let mut plain = Vec::new();
            let inner = GetWalOpts {
                compress: None,
                keep_compression: false,
                output_directory: None,
                partial: o.partial,
            };
            self.get_wal(wal, &inner, &mut plain)?;
            let mut packed = Vec::new();
            codec
                .compress(barkeep_archive::Level::Medium, &mut &plain[..], &mut packed)
                .map_err(|e| failed(format!("cannot compress `{wal}` with {c}: {e}")))?;
            return self.get_wal_bytes(wal, &packed, o, out);
        }
        let archive = self.archive()?;
        match &o.output_directory {
            Some(dir) => {
                let dest = dir.join(wal);
                barkeep_archive::durable::write_atomic(&dest, |f| {
                    archive
                        .get_wal(wal, o.partial, o.keep_compression, f)
                        .map(|_| ())
                        .map_err(|e| std::io::Error::other(barkeep_archive::error::chain(&e)))
                })?;
            }
            None => {
                archive.get_wal(wal, o.partial, o.keep_compression, out)?;
                out.flush()
                    .map_err(|e| failed(format!("cannot write to standard output: {e}")))?;
            }
        }
        Ok(())
    }

    /// `put-wal --test`.
    pub fn put_wal_ready(&self) -> Result<()> {
        self.usable("put-wal")?;
        self.archive().map(|_| ())
    }

    /// `put-wal`: the tar stream barman-wal-archive sends (WAL + checksums) into
    /// `incoming/`. Returns the files received.
    pub fn put_wal(&self, input: &mut dyn Read) -> Result<Vec<String>> {
        self.usable("put-wal")?;
        let archive = self.archive()?;
        archive.create_directories()?;
        let landed = archive.put_wal(input)?;
        for l in &landed {
            tracing::info!(server = %self.name(), "received {l}");
        }
        Ok(landed)
    }

    /// `switch-wal [--force] [--archive]`: closes the current segment on the primary and,
    /// with `archive_timeout`, waits until it is archived.
    pub async fn switch_wal(
        &self,
        force: bool,
        archive_timeout: Option<u64>,
    ) -> Result<SwitchWalDone> {
        let name = self.name().to_string();
        let mut conn = self.connect_sql().await?;
        if conn.is_in_recovery().await? {
            return Err(EngineError::Refused(format!(
                "No switch performed because server '{name}' is a standby."
            )));
        }
        if force {
            conn.checkpoint().await?;
        }
        let r = conn
            .query("SELECT w, pg_catalog.pg_walfile_name(w) FROM pg_catalog.pg_switch_wal() AS w")
            .await?;
        let lsn: barkeep_wal::Lsn = r
            .text(0, 0)
            .unwrap_or_default()
            .parse()
            .map_err(|e| failed(format!("server `{name}`: pg_switch_wal(): {e}")))?;
        let file = r.text(0, 1).unwrap_or_default().to_string();
        let seg = conn.wal_segment_size().await?;
        let _ = conn.close().await;
        if lsn.segment_offset(seg) == 0 {
            return Ok(SwitchWalDone {
                server: name,
                switched: false,
                wal: None,
            });
        }
        self.events.step(
            &name,
            format!("The WAL file {file} has been closed on server '{name}'"),
        );
        if let Some(timeout) = archive_timeout {
            let a = self.archive()?;
            self.events.step(
                &name,
                format!(
                    "Waiting for the WAL file {file} from server '{name}' (max: {timeout} seconds)"
                ),
            );
            let deadline = Instant::now() + Duration::from_secs(timeout);
            let w = barkeep_archive::names::WalName::parse(&file)
                .ok_or_else(|| failed(format!("bad WAL name {file}")))?;
            loop {
                let (a2, w2) = (a.clone(), w.clone());
                let (present, outcomes) = blocking(move || {
                    if a2.archive_path(&w2).exists() {
                        return Ok((true, Vec::new()));
                    }
                    let o = match a2.archive_wal() {
                        Ok(o) => o,
                        Err(ArchiveError::Locked { .. }) => Vec::new(),
                        Err(e) => return Err(e.into()),
                    };
                    Ok((a2.archive_path(&w2).exists(), o))
                })
                .await?;
                let archived = self.report_outcomes(&outcomes);
                if !archived.is_empty() {
                    self.events.step(
                        &name,
                        format!(
                            "Processing xlog segments for {name}\n\t{}",
                            archived.join("\n\t")
                        ),
                    );
                }
                if present {
                    if archived.is_empty() {
                        self.events.step(
                            &name,
                            format!("Processing xlog segments for {name}\n\t{file}"),
                        );
                    }
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(failed(format!(
                        "The WAL file {file} has not been received in {timeout} seconds"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        Ok(SwitchWalDone {
            server: name,
            switched: true,
            wal: Some(file),
        })
    }

    /// `replication-status`: `pg_stat_replication` of the server.
    pub async fn replication_status(&self) -> Result<ReplicationStatus> {
        let mut conn = self.connect_sql().await?;
        let standby = conn.is_in_recovery().await?;
        let current = if standby {
            None
        } else {
            Some(conn.current_wal_lsn().await?)
        };
        let clients = conn.stat_replication().await?;
        let _ = conn.close().await;
        let lag = |v: Option<barkeep_wal::Lsn>| {
            v.map(|v| current.map(|cur| cur.0.saturating_sub(v.0)).unwrap_or(0))
        };
        Ok(ReplicationStatus {
            server: self.name().to_string(),
            current_lsn: current.map(|l| l.to_string()),
            clients: clients
                .into_iter()
                .map(|c| StandbyRow {
                    pid: c.pid,
                    lag: [
                        lag(c.sent_lsn),
                        lag(c.write_lsn),
                        lag(c.flush_lsn),
                        lag(c.replay_lsn),
                    ],
                    usename: c.user,
                    application_name: c.application_name,
                    client_addr: c.client_addr,
                    state: c.state,
                    sent_lsn: c.sent_lsn.map(|l| l.to_string()),
                    write_lsn: c.write_lsn.map(|l| l.to_string()),
                    flush_lsn: c.flush_lsn.map(|l| l.to_string()),
                    replay_lsn: c.replay_lsn.map(|l| l.to_string()),
                    sync_state: c.sync_state,
                })
                .collect(),
        })
    }

    /// `rebuild-xlogdb`: rewrites xlog.db from the archive's files.
    pub fn rebuild_xlogdb(&self) -> Result<XlogdbRebuilt> {
        let a = self.archive()?;
        a.create_directories()?;
        self.events.step(
            self.name(),
            format!("Rebuilding xlogdb for server {}", self.name()),
        );
        let _l = LockFile::acquire_blocking(&a.lock_dir, self.name(), "xlogdb")?;
        let entries = barkeep_archive::xlogdb::rebuild(&a.wals, &a.xlogdb())?;
        let mut r = XlogdbRebuilt {
            server: self.name().to_string(),
            history: 0,
            backup_labels: 0,
            wal_files: 0,
        };
        for e in &entries {
            match barkeep_archive::names::WalName::parse(&e.name) {
                Some(barkeep_archive::names::WalName::History(_)) => r.history += 1,
                Some(barkeep_archive::names::WalName::BackupLabel(_)) => r.backup_labels += 1,
                _ => r.wal_files += 1,
            }
        }
        Ok(r)
    }
}

fn check_wal_name(wal: &str) -> Result<()> {
    if barkeep_archive::names::WalName::parse(wal).is_none() {
        return Err(usage(format!("`{wal}` is not a WAL file name")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synchronous_standby_names_forms() {
        assert_eq!(
            standby_names("FIRST 1 (barman_receive_wal, s2)"),
            vec!["barman_receive_wal", "s2"]
        );
        assert_eq!(standby_names("ANY 2 (\"a\", b)"), vec!["a", "b"]);
        assert_eq!(standby_names("a, b"), vec!["a", "b"]);
        assert!(standby_names("").is_empty());
    }
}
