//! WAL commands: `receive-wal`, `archive-wal`, `get-wal`, `put-wal`, `switch-wal`,
//! `replication-status`, `rebuild-xlogdb`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use barkeep_archive::receiver::{Receiver, ReceiverConfig};
use barkeep_archive::{ArchiveError, Codec, Level, Outcome, ServerArchive, lock::LockFile};
use barkeep_config::values::CompressionLevel;
use barkeep_config::{Config, ServerConfig, Value};
use barkeep_pg::Connection;
use barkeep_pg::conninfo::{ConnParams, ProcessEnv};
use serde_json::json;

use crate::cli::Format;
use crate::{Failure, Output, usage};

/// The lock directory (`barman_lock_directory`, default `barman_home`).
pub(crate) fn lock_dir(config: &Config) -> PathBuf {
    config
        .global
        .path("barman_lock_directory")
        .unwrap_or_else(|| config.barman_home())
        .to_path_buf()
}

fn path_of(s: &ServerConfig, key: &str) -> Result<PathBuf, Failure> {
    s.path(key)
        .map(Path::to_path_buf)
        .ok_or_else(|| usage(anyhow!("server `{}`: `{key}` is not set", s.name)))
}

/// The WAL archive of a server, from its configuration.
pub(crate) fn archive_for(config: &Config, s: &ServerConfig) -> Result<ServerArchive, Failure> {
    let codec = Codec::from_setting(s.choice("compression"))
        .map_err(|e| usage(anyhow!("server `{}`: {e}", s.name)))?;
    let level = match s.get("compression_level") {
        Some(Value::Level(CompressionLevel::Low)) => Level::Low,
        Some(Value::Level(CompressionLevel::High)) => Level::High,
        Some(Value::Level(CompressionLevel::Level(n))) => Level::Number(*n),
        _ => Level::Medium,
    };
    Ok(ServerArchive {
        server: s.name.clone(),
        wals: path_of(s, "wals_directory")?,
        incoming: path_of(s, "incoming_wals_directory")?,
        streaming: path_of(s, "streaming_wals_directory")?,
        errors: path_of(s, "errors_directory")?,
        xlogdb_dir: path_of(s, "xlogdb_directory")?,
        lock_dir: lock_dir(config),
        identity_file: path_of(s, "backup_directory")?.join("identity.json"),
        codec,
        level,
        hooks: None,
    })
}

/// Connection parameters from the server's `key` (`conninfo`, `streaming_conninfo`).
pub(crate) fn conn_params(
    s: &ServerConfig,
    key: &str,
    replication: bool,
    application_name: Option<&str>,
) -> Result<ConnParams, Failure> {
    let ci = s
        .str(key)
        .ok_or_else(|| usage(anyhow!("server `{}`: `{key}` is not set", s.name)))?;
    let mut ci = ci.to_string();
    if replication {
        ci.push_str(" replication=true");
    }
    let mut p = barkeep_pg::conninfo::resolve(&ci, &ProcessEnv)
        .map_err(|e| usage(anyhow!(e).context(format!("server `{}`: `{key}`", s.name))))?;
    if let Some(app) = application_name {
        p.application_name = Some(app.to_string());
    }
    Ok(p)
}

/// A SQL connection to the server (`conninfo`).
pub(crate) async fn connect_sql(s: &ServerConfig) -> Result<Connection, Failure> {
    let params = conn_params(s, "conninfo", false, None)?;
    Ok(Connection::connect(&params)
        .await
        .with_context(|| format!("server `{}`", s.name))?)
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::from(anyhow!("cannot start the async runtime: {e}")))
}

fn usable(s: &ServerConfig, what: &str) -> Result<(), Failure> {
    if s.disabled() {
        return Err(Failure::from(anyhow!(
            "server `{}` is disabled ({}); {what} refused",
            s.name,
            s.disabled_reasons.join("; ")
        )));
    }
    if !s.active() {
        return Err(Failure::from(anyhow!(
            "server `{}` is inactive (active = false); {what} refused",
            s.name
        )));
    }
    Ok(())
}

fn server<'a>(config: &'a Config, name: &str) -> Result<&'a ServerConfig, Failure> {
    Ok(super::select(config, &[name.to_string()])?[0])
}

/// Options of `receive-wal`.
#[derive(Debug, Clone, Copy)]
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

/// `receive-wal SERVER`.
pub fn receive_wal(
    config: &Config,
    name: &str,
    o: ReceiveOpts,
    out: &mut Output,
) -> Result<(), Failure> {
    let s = server(config, name)?;
    let archive = archive_for(config, s)?;
    let locks = lock_dir(config);
    if o.stop {
        return match LockFile::holder(&locks, &s.name, "receive-wal") {
            Some(pid) if pid > 0 => {
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGTERM,
                )
                .map_err(|e| {
                    anyhow!(
                        "cannot signal receive-wal (PID {pid}) of server `{}`: {e}",
                        s.name
                    )
                })?;
                out.line(&format!("Stopped process receive-wal({pid})"));
                Ok(())
            }
            _ => Err(Failure::from(anyhow!(
                "Termination of receive-wal failed: no such process for server {}",
                s.name
            ))),
        };
    }
    let slot = s.str("slot_name").map(str::to_string);
    if o.create_slot || o.drop_slot {
        let slot =
            slot.ok_or_else(|| usage(anyhow!("server `{}`: `slot_name` is not set", s.name)))?;
        let params = conn_params(s, "streaming_conninfo", true, None)?;
        return runtime()?.block_on(async {
            let mut conn = Connection::connect(&params).await.with_context(|| format!("server `{}`", s.name))?;
            if o.create_slot {
                out.line(&format!("Creating physical replication slot '{slot}' on server '{}'", s.name));
                match conn.create_physical_slot(&slot, false, true).await {
                    Ok(()) => out.line(&format!("Replication slot '{slot}' created")),
                    Err(e) if e.sqlstate() == Some("42710") => {
                        if o.if_not_exists {
                            out.line(&format!("Replication slot '{slot}' already exists"));
                        } else {
                            return Err(Failure::from(anyhow!("Replication slot '{slot}' already exists")));
                        }
                    }
                    Err(e) => return Err(Failure::from(anyhow!(e))),
                }
            } else {
                out.line(&format!("Dropping physical replication slot '{slot}' on server '{}'", s.name));
                match conn.drop_replication_slot(&slot, false).await {
                    Ok(()) => out.line(&format!("Replication slot '{slot}' dropped")),
                    Err(e) if e.sqlstate() == Some("42704") => {
                        return Err(Failure::from(anyhow!("Replication slot '{slot}' does not exist")));
                    }
                    Err(e) if e.sqlstate() == Some("55006") => {
                        return Err(Failure::from(anyhow!(
                            "Cannot drop replication slot '{slot}': it is in use (stop receive-wal first)"
                        )));
                    }
                    Err(e) => return Err(Failure::from(anyhow!(e))),
                }
            }
            let _ = conn.close().await;
            Ok(())
        });
    }
    usable(s, "receive-wal")?;
    if o.reset {
        let _lock =
            LockFile::try_acquire(&locks, &s.name, "receive-wal").map_err(|e| anyhow!(e))?;
        let mut removed = 0;
        if let Ok(rd) = std::fs::read_dir(&archive.streaming) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().ends_with(".partial") {
                    barkeep_archive::durable::remove_durable(&e.path()).map_err(|e| anyhow!(e))?;
                    removed += 1;
                }
            }
        }
        out.line(&format!(
            "Resetting receive-wal directory status for server '{}' ({removed} partial file(s) removed)",
            s.name
        ));
        return Ok(());
    }
    archive.create_directories().map_err(|e| anyhow!(e))?;
    if s.bool("streaming_archiver") != Some(true) {
        return Err(usage(anyhow!(
            "Unable to start receive-wal: streaming_archiver option set to 'off' for server `{}`",
            s.name
        )));
    }
    let _lock = match LockFile::try_acquire(&locks, &s.name, "receive-wal") {
        Ok(l) => l,
        Err(ArchiveError::Locked { pid, .. }) => {
            return Err(Failure::from(anyhow!(
                "Another receive-wal process is already running for server {}{}",
                s.name,
                pid.map(|p| format!(" (PID {p})")).unwrap_or_default()
            )));
        }
        Err(e) => return Err(Failure::from(anyhow!(e))),
    };
    let app = s
        .str("streaming_archiver_name")
        .unwrap_or("barman_receive_wal")
        .to_string();
    let params = conn_params(s, "streaming_conninfo", true, Some(&app))?;
    let stop = Arc::new(AtomicBool::new(false));
    let rt = runtime()?;
    rt.block_on(async {
        // Synchronous mode when the archiver's name is a synchronous standby.
        let synchronous = match Connection::connect(&params).await {
            Ok(mut c) => {
                let names = c.show("synchronous_standby_names").await.unwrap_or_default();
                let _ = c.close().await;
                standby_names(&names).iter().any(|n| n == &app || n == "*")
            }
            Err(e) => {
                tracing::warn!(server = %s.name, "{e}; will keep retrying");
                false
            }
        };
        if synchronous {
            tracing::info!(server = %s.name, "`{app}` is in synchronous_standby_names: synchronous mode");
        }
        let cfg = ReceiverConfig {
            server: s.name.clone(),
            streaming_dir: archive.streaming.clone(),
            wals_dir: archive.wals.clone(),
            errors_dir: archive.errors.clone(),
            identity_file: archive.identity_file.clone(),
            conn: params.clone(),
            slot: slot.clone(),
            create_slot: s.choice("create_slot") == Some("auto"),
            synchronous,
            status_interval: Duration::from_secs(10),
            max_backoff: Duration::from_secs(30),
        };
        let flag = stop.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            flag.store(true, Ordering::Relaxed);
        });
        out.line(&format!("Starting receive-wal for server {}", s.name));
        // Completed segments are archived at once, and waiting backups promoted.
        let archiver = barkeep_backup::archiver::BackgroundArchiver::start(
            super::backup::catalog_for(config, s)?,
            archive.clone(),
        )
        .map_err(|e| anyhow!("cannot start the archiving thread: {e}"))?;
        let result = Receiver::new(cfg, stop.clone())
            .on_complete(archiver.notifier())
            .run()
            .await;
        archiver.finish();
        result.map_err(|e| anyhow!(e))?;
        Ok::<(), Failure>(())
    })
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

/// `archive-wal SERVER`.
pub fn archive_wal(config: &Config, name: &str, out: &mut Output) -> Result<(), Failure> {
    let s = server(config, name)?;
    usable(s, "archive-wal")?;
    let archive = archive_for(config, s)?;
    archive.create_directories().map_err(|e| anyhow!(e))?;
    // receive-wal archives as segments complete: wait a little for its pass to end.
    let mut waited = 0;
    let outcomes = loop {
        match archive.archive_wal() {
            Err(ArchiveError::Locked { .. }) if waited < 120 => {
                waited += 1;
                std::thread::sleep(Duration::from_millis(250));
            }
            r => break r.map_err(|e| anyhow!(e))?,
        }
    };
    report_outcomes(&s.name, &outcomes, out);
    let cat = super::backup::catalog_for(config, s)?;
    cat.promote_waiting(&archive).map_err(|e| anyhow!(e))?;
    Ok(())
}

pub(crate) fn report_outcomes(server: &str, outcomes: &[Outcome], out: &mut Output) {
    let mut archived = Vec::new();
    for o in outcomes {
        match o {
            Outcome::Archived { name, .. } => archived.push(name.clone()),
            Outcome::Duplicate { name } => {
                tracing::info!("{name}: already archived, identical copy dropped")
            }
            Outcome::Conflict { name, moved_to } => out.warning(&format!(
                "{name} is already archived with different content; moved to {}",
                moved_to.display()
            )),
            Outcome::Invalid {
                name,
                reason,
                moved_to,
            } => out.warning(&format!(
                "{name} is not valid WAL ({reason}); moved to {}",
                moved_to.display()
            )),
            Outcome::Unknown { name, moved_to } => out.warning(&format!(
                "{name} is not a WAL file name; moved to {}",
                moved_to.display()
            )),
        }
    }
    if out.format() == Format::Json {
        out.json()
            .insert(server.to_string(), json!({ "archived": archived }));
    } else if !archived.is_empty() {
        out.line(&format!("Processing xlog segments for {server}"));
        for a in &archived {
            out.line(&format!("\t{a}"));
        }
    }
}

/// Options of `get-wal`.
#[derive(Debug, Clone)]
pub struct GetWalOpts {
    /// `-o`.
    pub output_directory: Option<PathBuf>,
    /// `-P`.
    pub partial: bool,
    /// `--peek`.
    pub peek: Option<usize>,
    /// `-t`.
    pub test: bool,
    /// `--keep-compression`.
    pub keep_compression: bool,
}

/// `get-wal SERVER WAL`.
pub fn get_wal(
    config: &Config,
    name: &str,
    wal: &str,
    o: &GetWalOpts,
    out: &mut Output,
) -> Result<(), Failure> {
    let s = server(config, name)?;
    let archive = archive_for(config, s)?;
    if o.test {
        out.line(&format!(
            "Ready to retrieve WAL files from the server {}",
            s.name
        ));
        return Ok(());
    }
    if barkeep_archive::names::WalName::parse(wal).is_none() {
        return Err(usage(anyhow!("`{wal}` is not a WAL file name")));
    }
    if let Some(n) = o.peek {
        for w in archive.peek(wal, n).map_err(|e| anyhow!(e))? {
            out.line(&w);
        }
        return Ok(());
    }
    match &o.output_directory {
        Some(dir) => {
            let dest = dir.join(wal);
            barkeep_archive::durable::write_atomic(&dest, |f| {
                archive
                    .get_wal(wal, o.partial, o.keep_compression, f)
                    .map(|_| ())
                    .map_err(|e| std::io::Error::other(barkeep_archive::error::chain(&e)))
            })
            .map_err(|e| anyhow!(e))?;
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            archive
                .get_wal(wal, o.partial, o.keep_compression, &mut stdout)
                .map_err(|e| anyhow!(e))?;
            stdout.flush().context("write to standard output")?;
        }
    }
    Ok(())
}

/// `put-wal SERVER`.
pub fn put_wal(config: &Config, name: &str, test: bool, out: &mut Output) -> Result<(), Failure> {
    let s = server(config, name)?;
    usable(s, "put-wal")?;
    let archive = archive_for(config, s)?;
    if test {
        out.line(&format!(
            "Ready to accept WAL files for the server {}",
            s.name
        ));
        return Ok(());
    }
    archive.create_directories().map_err(|e| anyhow!(e))?;
    let mut stdin = std::io::stdin().lock();
    let landed = archive.put_wal(&mut stdin).map_err(|e| anyhow!(e))?;
    for l in landed {
        tracing::info!(server = %s.name, "received {l}");
    }
    Ok(())
}

/// `switch-wal SERVER…`.
pub fn switch_wal(
    config: &Config,
    names: &[String],
    force: bool,
    archive: bool,
    timeout: u64,
    out: &mut Output,
) -> Result<(), Failure> {
    let servers = super::select(config, names)?;
    let rt = runtime()?;
    for s in servers {
        let result: Result<(), Failure> = rt.block_on(async {
            let mut conn = connect_sql(s).await?;
            if conn.is_in_recovery().await.map_err(|e| anyhow!(e))? {
                return Err(Failure::from(anyhow!(
                    "No switch performed because server '{}' is a standby.",
                    s.name
                )));
            }
            if force {
                conn.checkpoint().await.map_err(|e| anyhow!(e))?;
            }
            let r = conn
                .query(
                    "SELECT w, pg_catalog.pg_walfile_name(w) FROM pg_catalog.pg_switch_wal() AS w",
                )
                .await
                .map_err(|e| anyhow!(e))?;
            let lsn: barkeep_wal::Lsn = r
                .text(0, 0)
                .unwrap_or_default()
                .parse()
                .map_err(|e| anyhow!("{e}"))?;
            let file = r.text(0, 1).unwrap_or_default();
            let seg = conn.wal_segment_size().await.map_err(|e| anyhow!(e))?;
            let _ = conn.close().await;
            if lsn.segment_offset(seg) == 0 {
                out.line(&format!("No switch required for server '{}'", s.name));
                if out.format() == Format::Json {
                    out.json()
                        .insert(s.name.clone(), json!({"switched": false}));
                }
                return Ok(());
            }
            out.line(&format!(
                "The WAL file {file} has been closed on server '{}'",
                s.name
            ));
            if out.format() == Format::Json {
                out.json()
                    .insert(s.name.clone(), json!({"switched": true, "wal": file}));
            }
            if archive {
                let a = archive_for(config, s)?;
                out.line(&format!(
                    "Waiting for the WAL file {file} from server '{}' (max: {timeout} seconds)",
                    s.name
                ));
                let deadline = Instant::now() + Duration::from_secs(timeout);
                let w = barkeep_archive::names::WalName::parse(&file)
                    .ok_or_else(|| anyhow!("bad WAL name {file}"))?;
                loop {
                    if a.archive_path(&w).exists() {
                        out.line(&format!(
                            "Processing xlog segments for {}\n\t{file}",
                            s.name
                        ));
                        return Ok(());
                    }
                    match a.archive_wal() {
                        Ok(o) => report_outcomes(&s.name, &o, out),
                        Err(ArchiveError::Locked { .. }) => {}
                        Err(e) => return Err(Failure::from(anyhow!(e))),
                    }
                    if a.archive_path(&w).exists() {
                        return Ok(());
                    }
                    if Instant::now() >= deadline {
                        return Err(Failure::from(anyhow!(
                            "The WAL file {file} has not been received in {timeout} seconds"
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
            Ok(())
        });
        if let Err(f) = result {
            out.error(&crate::render_error(&f.error));
        }
    }
    Ok(())
}

/// `replication-status SERVER…`.
pub fn replication_status(
    config: &Config,
    names: &[String],
    minimal: bool,
    out: &mut Output,
) -> Result<(), Failure> {
    let servers = super::select(config, names)?;
    let rt = runtime()?;
    for s in servers {
        let result: Result<(), Failure> = rt.block_on(async {
            let mut conn = connect_sql(s).await?;
            let standby = conn.is_in_recovery().await.map_err(|e| anyhow!(e))?;
            let current = if standby {
                None
            } else {
                Some(conn.current_wal_lsn().await.map_err(|e| anyhow!(e))?)
            };
            let clients = conn.stat_replication().await.map_err(|e| anyhow!(e))?;
            let _ = conn.close().await;
            if out.format() == Format::Json {
                let list: Vec<_> = clients
                    .iter()
                    .map(|c| {
                        json!({
                            "pid": c.pid,
                            "usename": c.user,
                            "application_name": c.application_name,
                            "client_addr": c.client_addr,
                            "state": c.state,
                            "sent_lsn": c.sent_lsn.map(|l| l.to_string()),
                            "write_lsn": c.write_lsn.map(|l| l.to_string()),
                            "flush_lsn": c.flush_lsn.map(|l| l.to_string()),
                            "replay_lsn": c.replay_lsn.map(|l| l.to_string()),
                            "sync_state": c.sync_state,
                        })
                    })
                    .collect();
                out.json().insert(
                    s.name.clone(),
                    json!({"current_lsn": current.map(|l| l.to_string()), "clients": list}),
                );
                return Ok(());
            }
            if minimal {
                for c in &clients {
                    out.line(&format!(
                        "{} {} {} {} {}",
                        s.name,
                        c.application_name.as_deref().unwrap_or(""),
                        c.state.as_deref().unwrap_or(""),
                        c.sync_state.as_deref().unwrap_or(""),
                        c.flush_lsn.map(|l| l.to_string()).unwrap_or_default()
                    ));
                }
                return Ok(());
            }
            out.line(&format!(
                "Status of streaming clients for server '{}':",
                s.name
            ));
            if let Some(c) = current {
                out.line(&format!("  Current LSN on primary: {c}"));
            }
            if clients.is_empty() {
                out.line("  No streaming clients attached");
                return Ok(());
            }
            out.line(&format!("  Number of streaming clients: {}", clients.len()));
            for (i, c) in clients.iter().enumerate() {
                let kind = if c.replay_lsn.is_some() {
                    "Hot standby"
                } else {
                    "WAL streamer"
                };
                let sync = c.sync_state.as_deref().unwrap_or("async");
                out.line("");
                out.line(&format!("  {}. {} {kind}", i + 1, capitalise(sync)));
                out.line(&format!(
                    "     Application name: {}",
                    c.application_name.as_deref().unwrap_or("")
                ));
                out.line(&format!(
                    "     Sync stage      : {}",
                    c.state.as_deref().unwrap_or("")
                ));
                out.line(&format!(
                    "     Communication   : {}",
                    c.client_addr
                        .as_deref()
                        .map(|a| format!("TCP/IP ({a})"))
                        .unwrap_or_else(|| "Unix domain socket".into())
                ));
                out.line(&format!(
                    "     User name       : {}",
                    c.user.as_deref().unwrap_or("")
                ));
                out.line(&format!("     WAL sender PID  : {}", c.pid));
                for (label, v) in [
                    ("Sent LSN   ", c.sent_lsn),
                    ("Write LSN  ", c.write_lsn),
                    ("Flush LSN  ", c.flush_lsn),
                    ("Replay LSN ", c.replay_lsn),
                ] {
                    if let Some(v) = v {
                        let diff = current.map(|cur| cur.0.saturating_sub(v.0)).unwrap_or(0);
                        out.line(&format!("     {label}: {v} (diff: {diff} B)"));
                    }
                }
            }
            Ok(())
        });
        if let Err(f) = result {
            out.error(&crate::render_error(&f.error));
        }
    }
    Ok(())
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// `rebuild-xlogdb SERVER…`.
pub fn rebuild_xlogdb(config: &Config, names: &[String], out: &mut Output) -> Result<(), Failure> {
    for s in super::select(config, names)? {
        let a = archive_for(config, s)?;
        out.line(&format!("Rebuilding xlogdb for server {}", s.name));
        let _l =
            LockFile::acquire_blocking(&a.lock_dir, &s.name, "xlogdb").map_err(|e| anyhow!(e))?;
        let entries =
            barkeep_archive::xlogdb::rebuild(&a.wals, &a.xlogdb()).map_err(|e| anyhow!(e))?;
        let (mut h, mut b, mut w) = (0, 0, 0);
        for e in &entries {
            match barkeep_archive::names::WalName::parse(&e.name) {
                Some(barkeep_archive::names::WalName::History(_)) => h += 1,
                Some(barkeep_archive::names::WalName::BackupLabel(_)) => b += 1,
                _ => w += 1,
            }
        }
        out.line(&format!(
            "Done rebuilding xlogdb for server {} (history: {h}, backup_labels: {b}, wal_file: {w})",
            s.name
        ));
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
