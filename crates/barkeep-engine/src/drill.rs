//! Restore drills: a backup restored into a scratch directory, PostgreSQL started on it
//! (a free port, a private socket, trust for local connections only, archiving and
//! preloaded libraries off) as an unprivileged user, recovery to consistency, then
//! `pg_amcheck` when installed and the `drill_sql` probe. The result is recorded beside
//! the backup (`base/<ID>/barkeep-drill.json`) and the scratch copy removed, whatever
//! happened. A missing PostgreSQL binary is a failed drill with that reason.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use barkeep_catalog::CatalogOps;
use barkeep_pg::Connection;
use barkeep_pg::conninfo::ProcessEnv;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result, failed};
use crate::restore::{RestoreOpts, Target};
use crate::{Server, tools};

/// A drill's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillReport {
    /// Server.
    pub server: String,
    /// Backup drilled.
    pub backup_id: String,
    /// Passed.
    pub success: bool,
    /// Why it failed.
    pub error: Option<String>,
    /// When it started.
    pub started: DateTime<Utc>,
    /// How long it took, seconds.
    pub duration_seconds: f64,
    /// WAL files the restore copied for recovery.
    pub wal_replayed: usize,
    /// Whether `pg_amcheck` ran (it is optional).
    pub amcheck: bool,
}

impl Server {
    /// `drill SERVER [BACKUP]` (default `latest`).
    pub async fn drill(&self, id: &str) -> Result<DrillReport> {
        self.not_disabled("drill")?;
        let cat = self.catalog()?;
        let b = cat.resolve(id)?;
        let started = Utc::now();
        let t0 = Instant::now();
        self.remove_stale_drills().await;
        let scratch = self.typed().drill_directory.join(format!(
            "{}-{}-{}",
            self.name(),
            b.backup_id,
            std::process::id()
        ));
        self.events.step(
            self.name(),
            format!("Drill of backup {} of server {}", b.backup_id, self.name()),
        );
        let outcome = self.drill_in(&b, &scratch).await;
        if scratch.exists()
            && let Err(e) = std::fs::remove_dir_all(&scratch)
        {
            tracing::warn!(server = %self.name(), "cannot remove the drill's scratch copy {}: {e}", scratch.display());
        }
        let (wal, amcheck, error) = match outcome {
            Ok((wal, amcheck)) => (wal, amcheck, None),
            Err(e) => (0, false, Some(crate::render(&e))),
        };
        let report = DrillReport {
            server: self.name().to_string(),
            backup_id: b.backup_id.clone(),
            success: error.is_none(),
            error,
            started,
            duration_seconds: t0.elapsed().as_secs_f64(),
            wal_replayed: wal,
            amcheck,
        };
        let path = cat.backup_root(&b.backup_id).join("barkeep-drill.json");
        let text = serde_json::to_vec_pretty(&report).unwrap_or_default();
        barkeep_archive::durable::write_file_atomic(&path, &text)?;
        Ok(report)
    }

    /// Scratch copies a killed drill left behind (this server's, in `drill_directory`):
    /// the PostgreSQL still running on one is stopped (fast shutdown), then the copy is
    /// removed — so a drill killed at any moment costs nothing after the next one.
    async fn remove_stale_drills(&self) {
        let dir = &self.typed().drill_directory;
        let prefix = format!("{}-", self.name());
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // `<server>-<backup id>-<pid>`: another server's copies are not ours.
            let Some(owner) = name
                .strip_prefix(&prefix)
                .and_then(|rest| rest.rsplit_once('-'))
                .filter(|(id, _)| id.len() == 15)
                .and_then(|(_, pid)| pid.parse::<i32>().ok())
            else {
                continue;
            };
            // A drill still running in another live barkeep process is left alone.
            let alive = owner != std::process::id() as i32
                && nix::sys::signal::kill(nix::unistd::Pid::from_raw(owner), None).is_ok();
            if alive {
                continue;
            }
            let path = e.path();
            let pid = std::fs::read_to_string(path.join("data").join("postmaster.pid"))
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()));
            if let Some(pid) = pid {
                let pid = nix::unistd::Pid::from_raw(pid);
                if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).is_ok() {
                    let deadline = Instant::now() + Duration::from_secs(30);
                    while Instant::now() < deadline && nix::sys::signal::kill(pid, None).is_ok() {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            tracing::warn!(server = %self.name(), "removing the scratch copy of an interrupted drill: {}", path.display());
            if let Err(err) = std::fs::remove_dir_all(&path) {
                tracing::warn!(server = %self.name(), "cannot remove {}: {err}", path.display());
            }
        }
    }

    /// The last drill of a backup, when there was one.
    pub fn last_drill(&self, backup_id: &str) -> Option<DrillReport> {
        let path = self
            .catalog()
            .ok()?
            .backup_root(backup_id)
            .join("barkeep-drill.json");
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    async fn drill_in(
        &self,
        b: &barkeep_catalog::BackupInfo,
        scratch: &Path,
    ) -> Result<(usize, bool)> {
        let major = b.major().ok_or_else(|| {
            failed(format!(
                "backup {} does not say its PostgreSQL version",
                b.backup_id
            ))
        })?;
        let postgres = tools::find(self.typed(), "postgres", major).ok_or_else(|| {
            failed(format!(
                "no `postgres` binary of PostgreSQL {major} on this host (looked in path_prefix, /usr/lib/postgresql/{major}/bin, /usr/pgsql-{major}/bin and PATH)"
            ))
        })?;
        // PostgreSQL refuses root: run as `postgres` then.
        let root = nix::unistd::geteuid().is_root();
        let user = if root {
            Some(
                nix::unistd::User::from_name("postgres")
                    .ok()
                    .flatten()
                    .ok_or_else(|| {
                        failed(
                            "running as root, a drill needs a `postgres` user to run PostgreSQL as",
                        )
                    })?,
            )
        } else {
            None
        };
        barkeep_archive::durable::create_dir_all_durable(scratch)?;
        if let (Some(u), Some(parent)) = (&user, scratch.parent()) {
            // PostgreSQL, run as that user, must reach its data directory.
            std::os::unix::fs::chown(parent, Some(u.uid.as_raw()), Some(u.gid.as_raw()))
                .map_err(|e| EngineError::io("give to postgres", parent, e))?;
        }
        let data = scratch.join("data");
        let sock = scratch.join("sock");
        let srv = self.clone();
        let data2 = data.clone();
        let owner = user.as_ref().map(|u| u.name.clone());
        let o = RestoreOpts {
            target: Some(Target::Immediate),
            target_action: Some("promote".into()),
            get_wal: Some(false),
            owner,
            ..RestoreOpts::default()
        };
        let id = b.backup_id.clone();
        let report = barkeep_archive::durable::blocking_io(move || srv.restore(&id, &data2, &o))
            .map_err(|e| e.context("the drill's restore failed"))?;
        std::fs::create_dir_all(&sock).map_err(|e| EngineError::io("create", &sock, e))?;
        let hba = scratch.join("drill_hba.conf");
        std::fs::write(&hba, "local all all trust\n")
            .map_err(|e| EngineError::io("write", &hba, e))?;
        if let Some(u) = &user {
            for p in [scratch, sock.as_path(), hba.as_path()] {
                std::os::unix::fs::chown(p, Some(u.uid.as_raw()), Some(u.gid.as_raw()))
                    .map_err(|e| EngineError::io("give to postgres", p, e))?;
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| failed(format!("no free local port for the drill: {e}")))?;
        let log = scratch.join("postgres.log");
        let mut cmd = Command::new(&postgres);
        cmd.arg("-D").arg(&data);
        for (k, v) in [
            ("port", port.to_string()),
            ("listen_addresses", String::new()),
            ("unix_socket_directories", sock.display().to_string()),
            ("hba_file", hba.display().to_string()),
            ("archive_mode", "off".into()),
            ("archive_command", String::new()),
            ("shared_preload_libraries", String::new()),
            ("ssl", "off".into()),
            ("logging_collector", "off".into()),
            ("log_destination", "stderr".into()),
        ] {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(
            std::fs::File::create(&log)
                .map(Stdio::from)
                .map_err(|e| EngineError::io("create", &log, e))?,
        );
        if let Some(u) = &user {
            std::os::unix::process::CommandExt::uid(&mut cmd, u.uid.as_raw());
            std::os::unix::process::CommandExt::gid(&mut cmd, u.gid.as_raw());
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| EngineError::io("start PostgreSQL for the drill", &postgres, e))?;
        let checked = self
            .drill_checks(&sock, port, major, &log, &mut child)
            .await;
        // Stop it whatever happened: SIGINT is a fast shutdown.
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGINT,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        let amcheck = checked?;
        Ok((report.report.wal_copied, amcheck))
    }

    async fn drill_checks(
        &self,
        sock: &Path,
        port: u16,
        major: u32,
        log: &Path,
        child: &mut Child,
    ) -> Result<bool> {
        let user = self
            .conn_params("conninfo", false, None)
            .map(|p| p.user)
            .unwrap_or_else(|_| "postgres".into());
        let ci = format!(
            "host={} port={port} user={user} dbname=postgres connect_timeout=5",
            sock.display()
        );
        let params = barkeep_pg::conninfo::resolve(&ci, &ProcessEnv)
            .map_err(|e| failed(crate::render(&e)))?;
        let tail = |log: &Path| {
            std::fs::read_to_string(log)
                .unwrap_or_default()
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join(" | ")
        };
        // Up, and out of recovery (consistency reached, promoted).
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut conn = loop {
            if let Ok(Some(st)) = child.try_wait() {
                return Err(failed(format!(
                    "PostgreSQL stopped during the drill ({st}): {}",
                    tail(log)
                )));
            }
            if let Ok(mut c) = Connection::connect(&params).await
                && matches!(c.is_in_recovery().await, Ok(false))
            {
                break c;
            }
            if Instant::now() > deadline {
                return Err(failed(format!(
                    "recovery did not end within 10 minutes: {}",
                    tail(log)
                )));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        if let Some(sql) = &self.typed().drill_sql {
            conn.simple_query(sql)
                .await
                .map_err(|e| failed(format!("drill_sql `{sql}` failed: {}", crate::render(&e))))?;
        }
        let _ = conn.close().await;
        let Some(amcheck) = tools::find(self.typed(), "pg_amcheck", major) else {
            return Ok(false);
        };
        let mut cmd = Command::new(&amcheck);
        cmd.arg("-h").arg(sock).args([
            "-p",
            &port.to_string(),
            "-U",
            &user,
            "--all",
            "--install-missing",
            "--heapallindexed",
        ]);
        let out = barkeep_archive::durable::blocking_io(|| cmd.output())
            .map_err(|e| EngineError::io("run", amcheck.clone(), e))?;
        if !out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            return Err(failed(format!(
                "pg_amcheck found problems: {}",
                text.lines().take(5).collect::<Vec<_>>().join(" | ")
            )));
        }
        Ok(true)
    }
}
