//! Backup operations: `backup` (with Barman's retry policy and `--wait`), `list-backups`,
//! `show-backup`, `check-backup`, `verify-backup`, `delete`, `list-files`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use barkeep_archive::ServerArchive;
use barkeep_backup::take::{Format, ProgressFn, Request, Reuse};
use barkeep_catalog::{BackupInfo, CatalogOps, CatalogStore, LocalCatalog, Status, WalRange};
use serde::Serialize;

use crate::error::{EngineError, Result, failed, usage};
use crate::events::Event;
use crate::hooks::Phase;
use crate::{Server, tools};

/// Options of `backup`.
#[derive(Debug, Clone, Default)]
pub struct BackupOpts {
    /// `--name`.
    pub name: Option<String>,
    /// `--immediate-checkpoint` / `--no-immediate-checkpoint`.
    pub immediate: Option<bool>,
    /// `--bwlimit`.
    pub bwlimit: Option<u32>,
    /// `--retry-times` (after `--no-retry`).
    pub retry_times: Option<u32>,
    /// `--retry-sleep`.
    pub retry_sleep: Option<u64>,
    /// `-j`.
    pub jobs: Option<u32>,
    /// `--reuse-backup`.
    pub reuse: Option<String>,
    /// `--wait`.
    pub wait: bool,
    /// `--wait-timeout`.
    pub wait_timeout: Option<u64>,
    /// `--incremental PARENT` (an id, a name or a shortcut: `latest`, `last-full`…).
    pub incremental: Option<String>,
    /// `--full`: not incremental, whatever `backup_incremental` says.
    pub full: bool,
}

/// A backup that was taken.
#[derive(Debug, Clone, Serialize)]
pub struct BackupDone {
    /// Server.
    pub server: String,
    /// Backup id.
    pub backup_id: String,
    /// `DONE` or `WAITING_FOR_WALS`.
    pub status: String,
}

/// One row of `list-backups`.
#[derive(Debug, Clone, Serialize)]
pub struct BackupRow {
    /// Backup id.
    pub backup_id: String,
    /// `--name` given at backup time.
    pub backup_name: Option<String>,
    /// `full`, `incremental`, `rsync`, `snapshot`.
    pub backup_type: &'static str,
    /// Status (Barman's spelling).
    pub status: String,
    /// When the backup ended.
    pub end_time: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// Disk used (deduplicated size when known).
    pub size_bytes: u64,
    /// WAL archived from this backup's begin to the next backup's begin.
    pub wal_size_bytes: u64,
    /// Retention status as Barman's `list-backups` shows it: `-` when VALID, not
    /// ranked or not enforced.
    pub retention_status: &'static str,
}

/// Everything `show-backup` reports about one backup.
#[derive(Debug, Clone, Serialize)]
pub struct BackupDetails {
    /// Server.
    pub server: String,
    /// The backup's metadata.
    pub info: BackupInfo,
    /// `full`, `incremental`…
    pub backup_type: &'static str,
    /// The previous DONE backup.
    pub previous_backup_id: Option<String>,
    /// The next DONE backup.
    pub next_backup_id: Option<String>,
    /// Segments from begin to end WAL.
    pub wal_num: u64,
    /// WAL files archived from this backup up to the next one.
    pub wal_files: u64,
    /// Their size.
    pub wal_bytes: u64,
    /// Backup size.
    pub size_bytes: u64,
    /// Disk really used.
    pub deduplicated_size_bytes: u64,
    /// Retention status (`None`: no policy enforced).
    pub retention_status: Option<&'static str>,
    /// The full backup at the root of its chain (itself for a full backup).
    pub root_backup_id: String,
    /// Backups from the root to it, both included (Barman's "Backup chain size").
    pub chain_size: u64,
}

/// What `check-backup` found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckBackupReport {
    /// Server.
    pub server: String,
    /// Backup id.
    pub backup_id: String,
    /// Status after the check.
    pub status: String,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// What `verify-backup` found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Server.
    pub server: String,
    /// Backup id.
    pub backup_id: String,
    /// Differences from `backup_manifest` (empty = every file matches).
    pub problems: Vec<String>,
    /// What `pg_verifybackup` printed, when it was found and run.
    pub pg_verifybackup: Option<String>,
}

/// What `delete` did.
#[derive(Debug, Clone, Serialize)]
pub struct DeleteOutcome {
    /// Server.
    pub server: String,
    /// Backup id.
    pub backup_id: String,
    /// WAL files removed because no remaining backup needs them.
    pub wal_removed: usize,
    /// The incremental backups deleted with it (leaves first).
    pub descendants: Vec<String>,
}

/// What `list-files` lists.
#[derive(Debug, Clone, Serialize)]
pub struct FileList {
    /// Files, in order.
    pub files: Vec<PathBuf>,
}

/// The storage format, and for plain backups the server-side compression of the stream.
type FormatChoice = (Format, Option<(String, Option<i32>)>);

pub use barkeep_catalog::human_size;

/// How many incremental backups lead from its full root to `b` (0 for a full backup).
fn chain_depth(cat: &LocalCatalog, b: &BackupInfo) -> u64 {
    let mut depth = 0;
    let mut parent = b.parent_backup_id.clone();
    while let Some(p) = parent {
        depth += 1;
        parent = cat
            .read_info(&p)
            .ok()
            .flatten()
            .and_then(|x| x.parent_backup_id);
        if depth > 10_000 {
            break;
        }
    }
    depth
}

/// WAL archived from this backup's begin up to the next backup's begin: (files, bytes).
fn wal_after(
    cat: &dyn CatalogStore,
    b: &BackupInfo,
    next: Option<&BackupInfo>,
) -> Result<(u64, u64)> {
    Ok(match WalRange::until_next(b, next)? {
        Some(r) => cat.wal_stats(&r)?,
        None => (0, 0),
    })
}

impl Server {
    /// A progress callback for the lower crates that reports `Event::Progress`.
    pub(crate) fn progress(&self, operation: &'static str) -> ProgressFn {
        let events = self.events.clone();
        let server = self.name().to_string();
        ProgressFn(std::sync::Arc::new(move |done, total| {
            events.emit(Event::Progress {
                server: server.clone(),
                operation,
                done,
                total,
            })
        }))
    }

    fn format(&self, jobs: Option<u32>) -> Result<FormatChoice> {
        let s = self.typed();
        let Some(codec) = s.backup_compression.filter(|c| *c != "none") else {
            return Ok((Format::Plain, None));
        };
        let server = s.backup_compression_location == Some("server");
        let level = s
            .backup_compression_level
            .map(|l| l.clamp(i32::MIN.into(), i32::MAX.into()) as i32);
        if s.backup_compression_format == "plain" {
            if !server {
                return Err(usage(format!(
                    "server `{}`: backup_compression_format = plain needs backup_compression_location = server (the server compresses, barkeep decompresses)",
                    self.name()
                )));
            }
            return Ok((Format::Plain, Some((codec.to_string(), level))));
        }
        let workers = jobs
            .or_else(|| u32::try_from(s.backup_compression_workers).ok())
            .filter(|w| *w > 0)
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get() as u32)
                    .unwrap_or(1)
            });
        Ok((
            Format::Tar {
                codec: codec.to_string(),
                level,
                server,
                workers,
            },
            None,
        ))
    }

    /// Why `backup` skips this server, when it is inactive or passive (a warning: the
    /// operator chose it). A disabled server is not skipped: [`Server::backup`] refuses
    /// it with the reasons (a refused setting, a path conflict).
    pub fn backup_skipped(&self) -> Option<String> {
        let s = self.settings();
        (!s.disabled() && (!s.active() || s.passive())).then(|| {
            format!(
                "Skipping backup of server `{}` (inactive or passive)",
                s.name
            )
        })
    }

    /// Takes a base backup: retried `basebackup_retry_times` times (never while another
    /// backup holds the lock), then, with `--wait`, waits until its WAL is archived.
    pub async fn backup(&self, o: &BackupOpts) -> Result<BackupDone> {
        let s = self.settings();
        let name = s.name.clone();
        self.usable("backup")?;
        if self.typed().backup_method != "postgres"
            || !matches!(
                s.settings.0.get("backup_method").map(|x| &x.source),
                Some(barkeep_config::Source::File { .. })
            )
        {
            return Err(usage(format!(
                "server `{name}`: `backup_method` is not set, and Barman's default is rsync, which barkeep does not do; set `backup_method = postgres` (backups over the replication protocol)"
            )));
        }
        let cat = self.catalog()?;
        let archive = cat.archive.clone();
        archive.create_directories()?;
        let t = self.typed();
        let reuse = match o.reuse.as_deref().unwrap_or(t.reuse_backup) {
            "off" => Reuse::Off,
            "copy" => Reuse::Copy,
            "link" => Reuse::Link,
            other => {
                return Err(usage(format!(
                    "--reuse-backup `{other}`: expected off, copy or link"
                )));
            }
        };
        let bw = o
            .bwlimit
            .or_else(|| u32::try_from(t.bandwidth_limit).ok())
            .filter(|b| *b > 0);
        let progress = self.progress("backup");
        let format = self.format(o.jobs)?;
        let parent = self.incremental_parent(&cat, o)?;
        if let Some((pid, false)) = &parent {
            self.server_can_take_incremental(pid).await?;
        }
        let req = Request {
            plain_server_compression: format.1,
            name: o.name.clone(),
            immediate_checkpoint: o.immediate.unwrap_or(t.immediate_checkpoint),
            max_rate_kbps: bw.map(|b| b.clamp(32, 1_048_576)),
            format: format.0,
            reuse,
            sql: self.conn_params("conninfo", false, None)?,
            primary: match t.primary_conninfo {
                Some(_) => Some(self.conn_params("primary_conninfo", false, None)?),
                None => None,
            },
            replication: self.conn_params(
                "streaming_conninfo",
                true,
                Some(&t.streaming_backup_name),
            )?,
            progress: Some(progress),
            on_start: None,
            incremental_parent: parent.as_ref().map(|(id, _)| id.clone()),
            incremental_optional: parent.as_ref().is_some_and(|(_, optional)| *optional),
        };
        // Hooks: pre-backup once the new backup's metadata is saved; post-backup once its
        // status is final (after `--wait`), for a failed attempt too.
        let started: std::sync::Arc<std::sync::Mutex<Option<String>>> = Default::default();
        let mut req = req;
        if self.has_hooks("backup") {
            let (srv, c, slot) = (self.clone(), cat.clone(), started.clone());
            req.on_start = Some(barkeep_backup::take::StartFn(std::sync::Arc::new(
                move |info: &BackupInfo| {
                    if let Ok(mut s) = slot.lock() {
                        *s = Some(info.backup_id.clone());
                    }
                    let env = srv.backup_env(&c, info);
                    srv.run_hooks("backup", Phase::Pre, &env, None)
                        .map_err(|e| crate::render(&e))
                },
            )));
        }
        let post_hooks = |id: Option<String>| {
            if let Some(id) = id
                && let Ok(Some(b)) = cat.read_info(&id)
            {
                let env = self.backup_env(&cat, &b);
                let _ = self.run_hooks("backup", Phase::Post, &env, None);
            }
        };
        let take_started = || started.lock().ok().and_then(|mut s| s.take());
        let retries = o
            .retry_times
            .unwrap_or_else(|| u32::try_from(t.basebackup_retry_times).unwrap_or(u32::MAX));
        let sleep = o.retry_sleep.unwrap_or(t.basebackup_retry_sleep);
        self.events.step(
            &name,
            format!("Starting backup using postgres method for server {name}"),
        );
        let mut attempt = 0;
        let info = loop {
            match barkeep_backup::take::take(&cat, &archive, &req).await {
                Ok(info) => break info,
                Err(e) => {
                    let e = EngineError::from(e);
                    post_hooks(take_started());
                    if attempt < retries && !e.is_locked() {
                        attempt += 1;
                        self.events.warning(
                            &name,
                            format!(
                                "backup attempt {attempt} of server `{name}` failed ({}); retrying in {sleep} s",
                                crate::render(&e)
                            ),
                        );
                        tokio::time::sleep(Duration::from_secs(sleep)).await;
                        continue;
                    }
                    return Err(e.context(format!("backup of server `{name}` failed")));
                }
            }
        };
        self.events.step(
            &name,
            format!(
                "Backup start at LSN: {} ({}, {:08X})",
                info.begin_xlog
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "?".into()),
                info.begin_wal.as_deref().unwrap_or("?"),
                info.begin_offset.unwrap_or(0)
            ),
        );
        let elapsed = match (info.begin_time, info.end_time) {
            (Some(b), Some(e)) => format!("{} seconds", (e - b).num_seconds()),
            _ => "?".into(),
        };
        self.events.step(
            &name,
            format!(
                "Backup completed (start time: {}, elapsed time: {elapsed})",
                info.begin_time
                    .map(|t| barkeep_catalog::format_time(&t))
                    .unwrap_or_else(|| "?".into()),
            ),
        );
        let waited = self.wait_for_wal(o, &cat, &archive, info).await;
        post_hooks(take_started());
        let info = waited?;
        match info.status {
            Status::Done => self.events.step(
                &name,
                format!("Backup {} of server {name} is DONE", info.backup_id),
            ),
            Status::WaitingForWals => self.events.step(
                &name,
                format!(
                    "Backup {} of server {name} is WAITING_FOR_WALS: it becomes DONE when its WAL is archived (receive-wal/archive-wal, or check-backup)",
                    info.backup_id
                ),
            ),
            st => {
                return Err(failed(format!(
                    "backup {} of server {name} is {}: {}",
                    info.backup_id,
                    st.as_str(),
                    info.error.as_deref().unwrap_or("")
                )));
            }
        }
        Ok(BackupDone {
            server: name,
            backup_id: info.backup_id.clone(),
            status: info.status.as_str().to_string(),
        })
    }

    /// The parent of the backup to take, and whether it only comes from the default
    /// (`backup_incremental`): `--incremental` must be honoured or fail; the default
    /// gives a full backup where there is no eligible parent, or where the chain already
    /// has `backup_incremental_max_chain` incremental backups.
    fn incremental_parent(
        &self,
        cat: &LocalCatalog,
        o: &BackupOpts,
    ) -> Result<Option<(String, bool)>> {
        let name = self.name().to_string();
        if o.full {
            if o.incremental.is_some() {
                return Err(usage("--full and --incremental exclude each other"));
            }
            return Ok(None);
        }
        if let Some(spec) = &o.incremental {
            let p = cat.resolve(spec).map_err(|e| {
                usage(format!(
                    "--incremental {spec}: {}",
                    barkeep_archive::error::chain(&e)
                ))
            })?;
            barkeep_backup::take::check_parent(&p).map_err(|e| {
                usage(format!(
                    "--incremental {spec}: {}",
                    barkeep_archive::error::chain(&e)
                ))
            })?;
            return Ok(Some((p.backup_id, false)));
        }
        let t = self.typed();
        let spec = match t.backup_incremental {
            "latest" => "latest",
            "last-full" => "last-full",
            _ => return Ok(None),
        };
        let Ok(p) = cat.resolve(spec) else {
            self.events.step(
                &name,
                format!("backup_incremental = {spec}: no backup to be incremental to yet, taking a full backup"),
            );
            return Ok(None);
        };
        if let Err(e) = barkeep_backup::take::check_parent(&p) {
            self.events.warning(
                &name,
                format!(
                    "backup_incremental = {spec}: taking a full backup: {}",
                    barkeep_archive::error::chain(&e)
                ),
            );
            return Ok(None);
        }
        let depth = chain_depth(cat, &p);
        if depth >= t.backup_incremental_max_chain {
            self.events.step(
                &name,
                format!(
                    "backup_incremental = {spec}: the chain of {} already has {depth} incremental backups (backup_incremental_max_chain = {}), taking a full backup",
                    p.backup_id, t.backup_incremental_max_chain
                ),
            );
            return Ok(None);
        }
        Ok(Some((p.backup_id, true)))
    }

    /// Before an explicit `--incremental` creates anything: the server must be 17+ with
    /// `summarize_wal = on` (Barman checks this before the backup starts too, so a
    /// refused request leaves no FAILED backup behind).
    async fn server_can_take_incremental(&self, parent: &str) -> Result<()> {
        let name = self.name().to_string();
        let mut c = self.connect_sql().await?;
        let version = c
            .server_version_num()
            .await
            .map_err(|e| failed(format!("server `{name}`: {}", crate::render(&e))))?;
        let summarize = if version >= 170000 {
            c.show("summarize_wal").await.ok()
        } else {
            None
        };
        let _ = c.close().await;
        if version < 170000 {
            return Err(usage(format!(
                "--incremental {parent}: Postgres version 17 or greater is required for incremental backups using the Postgres backup method (server `{name}` runs {version})"
            )));
        }
        if summarize.as_deref() != Some("on") {
            return Err(usage(format!(
                "--incremental {parent}: 'summarize_wal' option has to be enabled in the Postgres server to perform an incremental backup using the Postgres backup method (server `{name}` has summarize_wal = {})",
                summarize.as_deref().unwrap_or("unknown")
            )));
        }
        Ok(())
    }

    /// `--wait`: archives and re-checks until the backup's WAL is all there (or the
    /// timeout passes).
    async fn wait_for_wal(
        &self,
        o: &BackupOpts,
        cat: &LocalCatalog,
        archive: &ServerArchive,
        mut info: BackupInfo,
    ) -> Result<BackupInfo> {
        let name = self.name().to_string();
        if o.wait && info.status == Status::WaitingForWals {
            self.events.step(
                &name,
                format!(
                    "Waiting for the WALs to be archived (timeout: {})",
                    o.wait_timeout
                        .filter(|t| *t > 0)
                        .map(|t| format!("{t} seconds"))
                        .unwrap_or_else(|| "none".into())
                ),
            );
            let deadline = o
                .wait_timeout
                .filter(|t| *t > 0)
                .map(|t| Instant::now() + Duration::from_secs(t));
            while info.status == Status::WaitingForWals {
                let (c, a, mut b) = (cat.clone(), archive.clone(), info);
                info = blocking(move || -> Result<BackupInfo> {
                    match a.archive_wal() {
                        Ok(_) | Err(barkeep_archive::ArchiveError::Locked { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                    c.check_backup(&mut b)?;
                    Ok(b)
                })
                .await?;
                if info.status != Status::WaitingForWals {
                    break;
                }
                if deadline.is_some_and(|d| Instant::now() > d) {
                    return Err(failed(format!(
                        "the WALs of backup {} were not archived in time; it stays WAITING_FOR_WALS",
                        info.backup_id
                    )));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        Ok(info)
    }

    /// Whether a backup (or a delete) of this server holds its lock now.
    pub fn backup_running(&self) -> bool {
        self.catalog().is_ok_and(|c| c.is_locked("backup"))
    }

    /// Marks FAILED a backup whose process is gone and finishes interrupted deletes (what
    /// every command does on opening the catalog); the ids marked.
    pub fn recover_interrupted(&self) -> Result<Vec<String>> {
        Ok(self.catalog()?.recover_crashed()?)
    }

    /// Whether `incoming/` holds files waiting to be archived.
    pub fn incoming_waiting(&self) -> bool {
        std::fs::read_dir(&self.typed().incoming_wals_directory)
            .is_ok_and(|mut rd| rd.next().is_some())
    }

    /// The catalog with interrupted backups and deletes dealt with, and the archive.
    fn open(&self) -> Result<(LocalCatalog, ServerArchive)> {
        let cat = self.catalog()?;
        let archive = cat.archive.clone();
        cat.recover_crashed()?;
        Ok((cat, archive))
    }

    /// A backup by id, name or shortcut (`latest`, `oldest`, `last-failed`, `last-full`).
    pub(crate) fn resolve(&self, id: &str) -> Result<(LocalCatalog, ServerArchive, BackupInfo)> {
        let (cat, archive) = self.open()?;
        let b = cat.resolve(id)?;
        Ok((cat, archive, b))
    }

    /// `list-backups`: newest first.
    pub fn list_backups(&self) -> Result<Vec<BackupRow>> {
        let (cat, _) = self.open()?;
        let all = cat.list()?;
        let plan = if self.retention_policy().enforced() {
            Some(self.plan_for(&cat, chrono::Utc::now())?)
        } else {
            None
        };
        // The WAL index read and sorted once; each backup sums its slice of it.
        let seg = barkeep_wal::SegmentSize::new(
            all.last()
                .map(BackupInfo::segment_size)
                .unwrap_or(barkeep_catalog::DEFAULT_SEGMENT_SIZE),
        )
        .map_err(|e| failed(format!("server `{}`: {e}", cat.server)))?;
        let probe = WalRange::all(seg);
        let mut wal: Vec<(barkeep_catalog::SegPos, u64)> = cat
            .wal_index()?
            .iter()
            .filter_map(|e| probe.position(&e.name).map(|p| (p, e.size)))
            .collect();
        wal.sort_unstable_by_key(|(p, _)| (p.segno, p.tli));
        let mut rows = Vec::new();
        for (i, b) in all.iter().enumerate().rev() {
            let next = all[i + 1..].iter().find(|n| n.is_usable());
            let size = b.deduplicated_size.or(b.size).unwrap_or(0);
            let wal = match WalRange::until_next(b, next)? {
                Some(r) => {
                    let from = wal.partition_point(|(p, _)| p.segno < r.first.segno);
                    wal[from..]
                        .iter()
                        .take_while(|(p, _)| r.last.is_none_or(|l| p.segno <= l.segno))
                        .filter(|(p, _)| r.contains_pos(*p))
                        .map(|(_, s)| s)
                        .sum()
                }
                None => 0,
            };
            rows.push(BackupRow {
                backup_id: b.backup_id.clone(),
                backup_name: b.backup_name.clone(),
                backup_type: b.backup_type(),
                status: b.status.as_str().to_string(),
                end_time: b.end_time,
                size_bytes: size,
                wal_size_bytes: wal,
                retention_status: plan
                    .as_ref()
                    .and_then(|p| p.verdict(&b.backup_id))
                    .map(|v| v.status)
                    .filter(|s| *s != barkeep_catalog::retention::RetentionStatus::Valid)
                    .map_or("-", |s| s.as_str()),
            });
        }
        Ok(rows)
    }

    /// `show-backup`: reads this backup's metadata, its nearest DONE neighbours and the
    /// WAL index — not every backup of the catalog.
    pub fn show_backup(&self, id: &str) -> Result<BackupDetails> {
        let (cat, _) = self.open()?;
        let (b, n) = cat.resolve_with_neighbours(id)?;
        let wal_num = WalRange::of_backup(&b)?.map(|r| r.len()).unwrap_or(0);
        let size = b.size.unwrap_or(0);
        let dedup = b.deduplicated_size.unwrap_or(size);
        let (wal_files, wal_bytes) = wal_after(&cat, &b, n.next.as_ref())?;
        let retention_status = if self.retention_policy().enforced() {
            Some(self.retention_status_of(&cat, &b)?.as_str())
        } else {
            None
        };
        // Walk to the root, as Barman's `walk_to_root`.
        let (mut root, mut chain_size) = (b.backup_id.clone(), 1);
        let mut parent = b.parent_backup_id.clone();
        while let Some(p) = parent.take() {
            root = p.clone();
            chain_size += 1;
            parent = cat.read_info(&p)?.and_then(|x| x.parent_backup_id);
            if chain_size > 10_000 {
                break;
            }
        }
        Ok(BackupDetails {
            server: cat.server.clone(),
            backup_type: b.backup_type(),
            root_backup_id: root,
            chain_size,
            info: b,
            previous_backup_id: n.previous.map(|p| p.backup_id),
            next_backup_id: n.next.map(|p| p.backup_id),
            wal_num,
            wal_files,
            wal_bytes,
            size_bytes: size,
            deduplicated_size_bytes: dedup,
            retention_status,
        })
    }

    /// `check-backup`: DONE when its WAL is all archived, FAILED when a segment is missing
    /// for good (the report says which), else still WAITING_FOR_WALS.
    pub fn check_backup(&self, id: &str) -> Result<CheckBackupReport> {
        let (cat, _, mut b) = self.resolve(id)?;
        let st = cat.check_backup(&mut b)?;
        Ok(CheckBackupReport {
            server: cat.server.clone(),
            backup_id: b.backup_id.clone(),
            status: st.as_str().to_string(),
            error: b.error.clone(),
        })
    }

    /// `verify-backup`: every file against `backup_manifest`, then PostgreSQL's
    /// `pg_verifybackup` with the backup's WAL when it is installed.
    pub fn verify_backup(&self, id: &str) -> Result<VerifyReport> {
        let (cat, archive, b) = self.resolve(id)?;
        let tmp =
            tempfile::tempdir().map_err(|e| EngineError::io("create", std::env::temp_dir(), e))?;
        let data = if b.compression.is_some() || !cat.data_dir(&b.backup_id).join("global").exists()
        {
            let d = tmp.path().join("data");
            let src = cat.data_dir(&b.backup_id);
            barkeep_backup::extract::extract_tar_backup(&src, &d, |oid| {
                Ok(d.with_extension(format!("ts{oid}")))
            })?;
            let manifest = src.join("backup_manifest");
            std::fs::copy(&manifest, d.join("backup_manifest"))
                .map_err(|e| EngineError::io("copy", &manifest, e))?;
            d
        } else {
            cat.data_dir(&b.backup_id)
        };
        let problems: Vec<String> = barkeep_backup::manifest::verify_plain(&data)?
            .iter()
            .map(ToString::to_string)
            .collect();
        let mut report = VerifyReport {
            server: cat.server.clone(),
            backup_id: b.backup_id.clone(),
            problems,
            pg_verifybackup: None,
        };
        if !report.problems.is_empty() {
            return Ok(report);
        }
        let major = b.major().unwrap_or(0);
        if let Some(tool) = tools::find(self.typed(), "pg_verifybackup", major) {
            let wal = tmp.path().join("wal");
            let mut cmd = std::process::Command::new(&tool);
            if wal_for(&archive, &b, &wal)? {
                cmd.arg("-w").arg(&wal);
            } else {
                cmd.arg("-n");
            }
            let o = cmd
                .arg(&data)
                .output()
                .map_err(|e| failed(format!("cannot run `{}`: {e}", tool.display())))?;
            if !o.status.success() {
                return Err(failed(format!(
                    "pg_verifybackup failed for backup {}: {}",
                    b.backup_id,
                    String::from_utf8_lossy(&o.stderr).trim()
                )));
            }
            report.pg_verifybackup = Some(String::from_utf8_lossy(&o.stdout).trim().to_string());
        }
        Ok(report)
    }

    /// `delete`: refused for a kept backup or below `minimum_redundancy`; removes the
    /// backup, then the WAL no remaining backup needs.
    pub fn delete(&self, id: &str) -> Result<DeleteOutcome> {
        self.not_disabled("delete")?;
        let (cat, _, b) = self.resolve(id)?;
        let _lock = cat.lock("backup")?;
        let min = usize::try_from(self.typed().minimum_redundancy).unwrap_or(usize::MAX);
        self.events.step(
            &cat.server,
            format!("Deleting backup {} for server {}", b.backup_id, cat.server),
        );
        let cannot = |e: barkeep_catalog::CatalogError| {
            EngineError::from(e).context(format!(
                "Cannot delete backup ({} {})",
                cat.server, b.backup_id
            ))
        };
        cat.check_delete(&b, min).map_err(cannot)?;
        // A backup with incremental backups depending on it takes them along, leaves
        // first (Barman's tree delete).
        let tree = cat.descendants(&b)?;
        if !tree.is_empty() {
            self.events.warning(
                &cat.server,
                format!(
                    "Backup {} has incremental backups which depend on it. Deleting all backups in the tree",
                    b.backup_id
                ),
            );
        }
        let mut wal_removed = 0;
        let mut also = Vec::new();
        for d in &tree {
            if let Some(t) = cat.keep(&d.backup_id)? {
                return Err(cannot(barkeep_catalog::CatalogError::Refused(format!(
                    "its incremental backup {} has a keep request (keep:{})",
                    d.backup_id,
                    t.as_str()
                ))));
            }
        }
        for d in &tree {
            self.events.step(
                &cat.server,
                format!("Deleting backup {} for server {}", d.backup_id, cat.server),
            );
            wal_removed += self.remove_backup(&cat, d, true).map_err(|e| {
                e.context(
                    "Failed to delete one of its incremental backups. Make sure all its dependent backups are deletable and try again.",
                )
            })?;
            also.push(d.backup_id.clone());
        }
        wal_removed += self.remove_backup(&cat, &b, true)?;
        Ok(DeleteOutcome {
            server: cat.server.clone(),
            backup_id: b.backup_id.clone(),
            wal_removed,
            descendants: also,
        })
    }

    /// Removes a backup with its hooks, in Barman's order: pre-delete hooks (a retry
    /// script exiting 63 stops here), the delete mark, the data, then — with
    /// `free_wal` — the WAL no other backup needs (each file with its wal-delete hooks),
    /// the metadata, the post-delete hooks. Returns the WAL files removed.
    pub(crate) fn remove_backup(
        &self,
        cat: &LocalCatalog,
        b: &BackupInfo,
        free_wal: bool,
    ) -> Result<usize> {
        let hooks = self.has_hooks("delete");
        if hooks {
            self.run_hooks("delete", Phase::Pre, &self.backup_env(cat, b), None)?;
        }
        cat.mark_for_deletion(&b.backup_id)?;
        cat.remove_backup_data(&b.backup_id)?;
        let mut removed = 0;
        if free_wal {
            let old = cat.wal_freed_by_delete(b)?;
            removed = self.remove_wal_files(cat, &old)?;
        }
        cat.remove_backup(&b.backup_id)?;
        cat.unlink_from_parent(b)?;
        if hooks {
            self.run_hooks("delete", Phase::Post, &self.backup_env(cat, b), None)?;
        }
        Ok(removed)
    }

    /// Removes archived WAL files; with wal-delete hooks, one at a time between them.
    pub(crate) fn remove_wal_files(&self, cat: &LocalCatalog, names: &[String]) -> Result<usize> {
        if names.is_empty() {
            return Ok(0);
        }
        if !self.has_hooks("wal_delete") {
            return Ok(cat.remove_wal(names)?);
        }
        let index: std::collections::BTreeMap<String, barkeep_archive::xlogdb::XlogEntry> = cat
            .wal_index()?
            .into_iter()
            .map(|e| (e.name.clone(), e))
            .collect();
        let mut removed = 0;
        for name in names {
            let (size, time, codec) = index
                .get(name)
                .map_or((0, 0.0, None), |e| (e.size, e.time, Some(e.compression)));
            let path = barkeep_archive::names::WalName::parse(name)
                .map(|w| cat.archive.archive_path(&w))
                .unwrap_or_else(|| cat.archive.wals.join(name));
            let compression = codec
                .filter(|c| *c != barkeep_archive::Codec::None)
                .map(|c| c.name());
            let env = crate::hooks::wal_env(name, &path, size, time, compression, None);
            self.run_hooks("wal_delete", Phase::Pre, &env, None)?;
            removed += cat.remove_wal(std::slice::from_ref(name))?;
            self.run_hooks("wal_delete", Phase::Post, &env, None)?;
        }
        Ok(removed)
    }

    /// `list-files --target data|wal|standalone|full`.
    pub fn list_files(&self, id: &str, target: &str) -> Result<FileList> {
        let (cat, archive, b) = self.resolve(id)?;
        if !["data", "wal", "standalone", "full"].contains(&target) {
            return Err(usage(format!(
                "--target `{target}`: expected data, wal, standalone or full"
            )));
        }
        let mut out = Vec::new();
        if target != "wal" {
            let mut stack = vec![cat.backup_root(&b.backup_id)];
            let mut files = Vec::new();
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d)
                    .map_err(|e| EngineError::io("list", &d, e))?
                    .flatten()
                {
                    let m = e
                        .path()
                        .symlink_metadata()
                        .map_err(|err| EngineError::io("stat", e.path(), err))?;
                    if m.is_dir() {
                        stack.push(e.path());
                    } else {
                        files.push(e.path());
                    }
                }
            }
            files.sort();
            out.extend(files);
        }
        let range = if target == "full" {
            WalRange::from_backup(&b)?
        } else {
            WalRange::of_backup(&b)?
        };
        if target != "data"
            && let Some(range) = range
        {
            for e in cat.wal_index()? {
                let Some(w) = barkeep_archive::names::WalName::parse(&e.name) else {
                    continue;
                };
                if w.segment().is_some() && range.contains(&e.name) {
                    out.push(archive.archive_path(&w));
                }
            }
        }
        Ok(FileList { files: out })
    }
}

/// Runs blocking file work off the async runtime's threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| failed(format!("a worker thread failed: {e}")))?
}

/// The WAL a backup needs, decompressed into `dir` (for pg_verifybackup -w).
fn wal_for(archive: &ServerArchive, b: &BackupInfo, dir: &Path) -> Result<bool> {
    let Some(range) = WalRange::of_backup(b)? else {
        return Ok(false);
    };
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io("create", dir, e))?;
    for (_, names) in range.segments() {
        let name = names[0].clone();
        let p = dir.join(&name);
        let mut f = std::fs::File::create(&p).map_err(|e| EngineError::io("create", &p, e))?;
        if archive.get_wal(&name, false, false, &mut f).is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}
