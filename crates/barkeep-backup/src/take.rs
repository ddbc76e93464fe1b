//! Taking a backup (`barkeep backup`, Barman's `backup_method = postgres`), natively:
//!
//! 1. `backup.info` is created (EMPTY), server facts are gathered over SQL, status
//!    STARTED is saved;
//! 2. `BASE_BACKUP` streams; each archive goes through a bounded channel to a thread that
//!    unpacks it (plain: `base/<ID>/data`, tablespaces in `base/<ID>/<oid>`, linked from
//!    `data/pg_tblspc/<oid>`) or stores it as a tar, compressed on this side or as the
//!    server compressed it; the manifest is stored byte for byte;
//! 3. the backup is good only after PostgreSQL's final CommandComplete, and (plain) once
//!    every file's size and CRC-32C match the manifest;
//! 4. configuration files kept outside PGDATA are fetched with `pg_read_binary_file`;
//! 5. a restore point `barman_<ID>` is created and the WAL switched, so the end segment is
//!    archived even on an idle server; status WAITING_FOR_WALS, then DONE when the WAL
//!    from begin to end is in the archive.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use barkeep_archive::{Identity, ServerArchive};
use barkeep_pg::basebackup::{BackupEvent, BaseBackupOptions, ManifestMode};
use barkeep_pg::conninfo::ConnParams;
use barkeep_pg::{Connection, PgError};
use barkeep_wal::{Lsn, SegmentSize};
use bytes::Bytes;

use barkeep_catalog::{
    BackupInfo, CatalogOps, CatalogStore, LocalCatalog as Catalog, Status, Tablespace,
    segment_before,
};

use crate::error::{BackupError, Result};
use crate::extract::{ChannelReader, Previous, Unpack, Unpacked, fsync_dirs, store, unpack};
use crate::manifest::Manifest;

/// Storage format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// A plain data directory (what `pg_basebackup -Fp` writes).
    Plain,
    /// One tar per tablespace, compressed with `codec` (`none`, `gzip`, `lz4`, `zstd`)
    /// here (`server = false`, `workers` threads for zstd) or by the server (15+).
    Tar {
        /// Codec.
        codec: String,
        /// Level (codec's scale).
        level: Option<i32>,
        /// Compress on the server.
        server: bool,
        /// zstd worker threads.
        workers: u32,
    },
}

/// `reuse_backup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Every file is written.
    Off,
    /// Same as off for streamed backups (kept for Barman compatibility).
    Copy,
    /// Unchanged files become hard links to the previous backup's.
    Link,
}

/// What `backup` was asked.
#[derive(Debug, Clone)]
pub struct Request {
    /// `--name`.
    pub name: Option<String>,
    /// Fast checkpoint.
    pub immediate_checkpoint: bool,
    /// kB/s.
    pub max_rate_kbps: Option<u32>,
    /// Format.
    pub format: Format,
    /// Deduplication.
    pub reuse: Reuse,
    /// SQL connection (`conninfo`).
    pub sql: ConnParams,
    /// With a backup from a standby (`primary_conninfo`): the primary, where the WAL
    /// switch that completes the backup's last segment is done.
    pub primary: Option<ConnParams>,
    /// Replication connection (`streaming_conninfo` with `replication=true`).
    pub replication: ConnParams,
    /// Called with (bytes done, bytes expected) while copying.
    pub progress: Option<ProgressFn>,
    /// Plain format only: let the server compress the stream (15+; `gzip`, `lz4`,
    /// `zstd` and a level), decompressed here before unpacking — less network.
    pub plain_server_compression: Option<(String, Option<i32>)>,
    /// The parent of an incremental backup (PostgreSQL 17+, plain format): its id. The
    /// caller has resolved and checked it ([`check_parent`]).
    pub incremental_parent: Option<String>,
    /// The parent comes from a default (`backup_incremental`), not a request: where the
    /// server cannot take an incremental backup (before 17, `summarize_wal` off, a
    /// compressed format) a full one is taken, with a warning, instead of failing.
    pub incremental_optional: bool,
    /// Called once the new backup's metadata is saved (status EMPTY), before anything is
    /// copied — where Barman runs the pre-backup hooks. An error stops the backup, which
    /// is saved FAILED with it.
    pub on_start: Option<StartFn>,
}

/// What the start callback is: given the new backup's metadata; `Err(why)` stops it.
pub type StartCallback = dyn Fn(&BackupInfo) -> std::result::Result<(), String> + Send + Sync;

/// The start callback.
#[derive(Clone)]
pub struct StartFn(pub Arc<StartCallback>);

impl std::fmt::Debug for StartFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("start callback")
    }
}

/// A progress callback: (bytes done, bytes expected).
#[derive(Clone)]
pub struct ProgressFn(pub Arc<dyn Fn(u64, u64) + Send + Sync>);

impl std::fmt::Debug for ProgressFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("progress callback")
    }
}

fn pg(server: &str) -> impl Fn(PgError) -> BackupError + '_ {
    move |source| BackupError::Pg {
        server: server.to_string(),
        source,
    }
}

fn under(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path == dir || path.starts_with(&format!("{dir}/"))
}

/// A new backup id from the local time; waits for the next second if it is taken.
pub async fn new_backup_id(cat: &Catalog) -> String {
    loop {
        let id = chrono::Local::now().format("%Y%m%dT%H%M%S").to_string();
        if !cat.info_path(&id).exists() && !cat.backup_root(&id).exists() {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Takes a backup. Returns its final info (WAITING_FOR_WALS or DONE). On failure the
/// backup is saved FAILED with the cause, and its partial files removed.
pub async fn take(cat: &Catalog, archive: &ServerArchive, req: &Request) -> Result<BackupInfo> {
    let _lock =
        barkeep_archive::lock::LockFile::try_acquire(&cat.archive.lock_dir, &cat.server, "backup")?;
    // We hold the backup lock: no other backup runs, every STARTED one is dead.
    barkeep_archive::durable::blocking_io(|| cat.recover_interrupted())?;
    let id = new_backup_id(cat).await;
    let mut info = BackupInfo::new(&id, &cat.server);
    if let Some(n) = &req.name {
        info.backup_name = Some(n.clone());
    }
    info.parent_backup_id = req.incremental_parent.clone();
    barkeep_archive::durable::blocking_io(|| cat.write_info(&info))?;
    let started = match &req.on_start {
        Some(f) => (f.0)(&info).map_err(BackupError::Other),
        None => Ok(()),
    };
    let result = match started {
        Ok(()) => run(cat, archive, req, &mut info).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(info),
        Err(e) => {
            let msg = barkeep_archive::error::chain(&e);
            tracing::error!(server = %cat.server, "backup {id} failed: {msg}");
            let root = cat.backup_root(&id);
            if root.exists() {
                let _ = std::fs::remove_dir_all(&root);
            }
            info.status = Status::Failed;
            let first = msg.lines().next().unwrap_or_default().to_string();
            info.error = Some(format!("failure during backup ({first})"));
            barkeep_archive::durable::blocking_io(|| cat.write_info(&info))?;
            Err(e)
        }
    }
}

async fn run(
    cat: &Catalog,
    archive: &ServerArchive,
    req: &Request,
    info: &mut BackupInfo,
) -> Result<()> {
    let server = cat.server.as_str();
    let id = info.backup_id.clone();
    let begin = chrono::Local::now();
    let t0 = Instant::now();
    let mut sql = Connection::connect(&req.sql).await.map_err(pg(server))?;
    let version = sql.server_version_num().await.map_err(pg(server))?;
    let major = version / 10000;
    info.version = Some(version);
    let show = |v: std::result::Result<String, PgError>| v.ok().filter(|s| !s.is_empty());
    let pgdata = show(sql.show("data_directory").await);
    if let Some(p) = &pgdata {
        info.pgdata = Some(p.clone());
    } else {
        tracing::warn!(
            server,
            "cannot read data_directory (needs superuser or pg_read_all_settings): pgdata left empty in backup.info"
        );
    }
    info.config_file = show(sql.show("config_file").await);
    info.hba_file = show(sql.show("hba_file").await);
    info.ident_file = show(sql.show("ident_file").await);
    if let Some(v) = show(sql.show("data_checksums").await) {
        info.data_checksums = Some(v);
    }
    if major >= 17
        && let Some(v) = show(sql.show("summarize_wal").await)
    {
        info.summarize_wal = Some(v);
    }
    let ts_rows = sql
        .query("SELECT spcname, oid, pg_catalog.pg_tablespace_location(oid) FROM pg_catalog.pg_tablespace WHERE pg_catalog.pg_tablespace_location(oid) <> '' ORDER BY oid")
        .await
        .map_err(pg(server))?;
    let tablespaces: Vec<Tablespace> = (0..ts_rows.rows.len())
        .filter_map(|i| {
            Some(Tablespace {
                name: ts_rows.text(i, 0)?,
                oid: ts_rows.text(i, 1)?.parse().ok()?,
                location: ts_rows.text(i, 2)?,
            })
        })
        .collect();
    if !tablespaces.is_empty() {
        info.tablespaces = Some(tablespaces.clone());
    }
    if let Some(size) = sql
        .query_value(
            "SELECT sum(pg_catalog.pg_database_size(oid))::bigint FROM pg_catalog.pg_database",
        )
        .await
        .ok()
        .flatten()
    {
        info.cluster_size = size.parse().ok();
    }
    let included: Vec<String> = match sql
        .query("SELECT DISTINCT sourcefile FROM pg_catalog.pg_file_settings WHERE sourcefile IS NOT NULL ORDER BY 1")
        .await
    {
        Ok(r) => (0..r.rows.len())
            .filter_map(|i| r.text(i, 0))
            .filter(|f| Some(f) != info.config_file.as_ref() && !pgdata.as_deref().is_some_and(|d| under(f, d)))
            .collect(),
        Err(_) => Vec::new(),
    };
    if !included.is_empty() {
        info.included_files = Some(included.clone());
    }

    let mut repl = Connection::connect(&req.replication)
        .await
        .map_err(pg(server))?;
    let ident = repl.identify_system().await.map_err(pg(server))?;
    let seg: SegmentSize = repl.wal_segment_size().await.map_err(pg(server))?;
    info.systemid = Some(ident.system_id.to_string());
    info.xlog_segment_size = Some(seg.bytes());
    barkeep_archive::durable::blocking_io(|| {
        Identity::check_or_record(
            &archive.identity_file,
            ident.system_id,
            major,
            server,
            "backups",
        )
    })?;
    info.begin_time = Some(begin.fixed_offset());
    info.status = Status::Started;
    barkeep_archive::durable::blocking_io(|| cat.write_info(info))?;

    let root = cat.backup_root(&id);
    let data = cat.data_dir(&id);
    barkeep_archive::durable::blocking_io(|| {
        barkeep_archive::durable::create_dir_all_durable(&data)
    })?;
    // The previous plain backup, for deduplication: hard links for unchanged files
    // (`link`), clones of its files with only the changed blocks written where the file
    // system clones extents (`link` and `copy`).
    let sharing = barkeep_archive::share::probe(&cat.base());
    let clone_changed = sharing.clone && req.reuse != Reuse::Off;
    let previous = if (req.reuse == Reuse::Link || clone_changed) && req.format == Format::Plain {
        previous_plain(
            cat,
            &id,
            info.parent_backup_id.as_deref(),
            req.reuse == Reuse::Link,
            clone_changed,
        )
    } else {
        None
    };
    let mut opts = BaseBackupOptions {
        label: format!("barkeep backup {server} {id}"),
        progress: true,
        fast_checkpoint: req.immediate_checkpoint,
        wait_for_archive: false,
        include_wal: false,
        max_rate_kbps: req.max_rate_kbps,
        tablespace_map: false,
        verify_checksums: true,
        manifest: ManifestMode::Yes,
        manifest_checksums: Some("CRC32C".into()),
        compression: None,
        incremental: false,
    };
    if req.format == Format::Plain
        && let Some((codec, level)) = &req.plain_server_compression
    {
        opts.compression = Some((codec.clone(), level.map(|l| l.to_string())));
    }
    if let Format::Tar {
        codec,
        level,
        server: true,
        workers,
    } = &req.format
    {
        let mut detail = level.map(|l| format!("level={l}"));
        if codec == "zstd" && *workers > 1 {
            detail = Some(format!(
                "{}workers={workers}",
                detail.map(|d| d + ",").unwrap_or_default()
            ));
        }
        opts.compression = Some((codec.clone(), detail));
    }
    if let Some(parent) = req.incremental_parent.clone() {
        let why_not = if req.format != Format::Plain {
            Some(format!(
                "server `{server}`: incremental backups are stored as plain directories (the chain is combined from them); unset backup_compression to take one"
            ))
        } else if major < 17 {
            Some(format!(
                "incremental backups need PostgreSQL 17 or later; server `{server}` runs {version}"
            ))
        } else if info.summarize_wal.as_deref() != Some("on") {
            Some(format!(
                "'summarize_wal' option has to be enabled in the Postgres server to perform an incremental backup (server `{server}` has summarize_wal = {})",
                info.summarize_wal.as_deref().unwrap_or("unknown")
            ))
        } else {
            None
        };
        match why_not {
            Some(why) if req.incremental_optional => {
                tracing::warn!(
                    server,
                    "backup {id} is a full backup, not incremental to {parent} as backup_incremental asks: {why}"
                );
                info.parent_backup_id = None;
            }
            Some(why) => return Err(BackupError::Other(why)),
            None => {
                // The parent lists its child from now on, whatever the outcome (as
                // Barman): a child that fails or is killed is deleted with its parent.
                barkeep_archive::durable::blocking_io(|| {
                    cat.write_info(info)?;
                    link_child(cat, &parent, &id)
                })?;
                let pm = cat.data_dir(&parent).join("backup_manifest");
                let bytes = barkeep_archive::durable::blocking_io(|| std::fs::read(&pm))
                    .map_err(|e| BackupError::io("read the parent's manifest", &pm, e))?;
                repl.upload_manifest(&bytes).await.map_err(pg(server))?;
                opts.incremental = true;
            }
        }
    }
    let mut stream = repl.base_backup(&opts).await.map_err(pg(server))?;
    let mut total_kb = 0u64;
    let mut current: Option<(
        std::sync::mpsc::SyncSender<Bytes>,
        std::thread::JoinHandle<Result<Sink>>,
    )> = None;
    let mut sinks: Vec<Sink> = Vec::new();
    let manifest_tmp = data.join("backup_manifest.tmp");
    let mut manifest_file: Option<std::fs::File> = None;
    let mut start: Option<(Lsn, u32)> = None;
    let mut end: Option<(Lsn, u32)> = None;
    let mut done_bytes = 0u64;
    let finish = |cur: &mut Option<(
        std::sync::mpsc::SyncSender<Bytes>,
        std::thread::JoinHandle<Result<Sink>>,
    )>,
                  sinks: &mut Vec<Sink>|
     -> Result<()> {
        if let Some((tx, h)) = cur.take() {
            drop(tx);
            let s = h
                .join()
                .map_err(|_| BackupError::Other("the archive writer thread panicked".into()))??;
            sinks.push(s);
        }
        Ok(())
    };
    loop {
        let ev = match stream.next().await {
            Ok(Some(ev)) => ev,
            Ok(None) => break,
            Err(e) => {
                drop(current.take());
                return Err(pg(server)(e));
            }
        };
        match ev {
            BackupEvent::Start {
                lsn,
                tli,
                tablespaces,
            } => {
                start = Some((lsn, tli));
                total_kb = tablespaces.iter().filter_map(|t| t.size_kb).sum();
                info.begin_xlog = Some(lsn);
                info.begin_wal = Some(seg.segment_name(tli, lsn.segno(seg)));
                info.begin_offset = Some(lsn.segment_offset(seg));
                info.timeline = Some(tli);
            }
            BackupEvent::ArchiveStart { name, tablespace } => {
                finish(&mut current, &mut sinks)?;
                let (tx, rx) = ChannelReader::pair(16);
                let job = match (&req.format, tablespace.oid) {
                    (Format::Plain, oid) => Job::Unpack(
                        Unpack {
                            root: match oid {
                                None => data.clone(),
                                Some(o) => root.join(o.to_string()),
                            },
                            manifest_prefix: oid
                                .map(|o| format!("pg_tblspc/{o}/"))
                                .unwrap_or_default(),
                            previous: previous.clone(),
                            link_unchanged: req.reuse == Reuse::Link,
                            clone_changed,
                        },
                        name.clone(),
                    ),
                    (
                        Format::Tar {
                            codec,
                            level,
                            server,
                            workers,
                        },
                        _,
                    ) => {
                        let (file, codec) = if *server || codec == "none" {
                            (name.clone(), None)
                        } else {
                            let ext = match codec.as_str() {
                                "gzip" => "gz",
                                "lz4" => "lz4",
                                _ => "zst",
                            };
                            (
                                format!("{name}.{ext}"),
                                Some((
                                    codec.clone(),
                                    level.unwrap_or(match codec.as_str() {
                                        "gzip" => 6,
                                        "lz4" => 0,
                                        _ => 3,
                                    }),
                                    *workers,
                                )),
                            )
                        };
                        Job::Store {
                            dest: data.join(file),
                            codec,
                        }
                    }
                };
                let handle = std::thread::spawn(move || job.run(rx));
                current = Some((tx, handle));
            }
            BackupEvent::ArchiveData(d) => {
                done_bytes += d.len() as u64;
                if let Some((tx, _)) = &current
                    && tx.send(d).is_err()
                {
                    // The writer stopped: its error comes from join.
                    finish(&mut current, &mut sinks)?;
                    return Err(BackupError::Other(
                        "the archive writer stopped early".into(),
                    ));
                }
                if let Some(p) = &req.progress {
                    (p.0)(done_bytes, total_kb * 1024);
                }
            }
            BackupEvent::ArchiveEnd => finish(&mut current, &mut sinks)?,
            BackupEvent::Progress(_) => {}
            BackupEvent::ManifestStart => {
                finish(&mut current, &mut sinks)?;
                manifest_file = Some(
                    barkeep_archive::durable::blocking_io(|| std::fs::File::create(&manifest_tmp))
                        .map_err(|e| BackupError::io("create", &manifest_tmp, e))?,
                );
            }
            BackupEvent::ManifestData(d) => {
                use std::io::Write;
                if let Some(f) = manifest_file.as_mut() {
                    barkeep_archive::durable::blocking_io(|| f.write_all(&d))
                        .map_err(|e| BackupError::io("write", &manifest_tmp, e))?;
                }
            }
            BackupEvent::End { lsn, tli } => end = Some((lsn, tli)),
        }
    }
    finish(&mut current, &mut sinks)?;
    let (Some((_, _)), Some((end_lsn, end_tli))) = (start, end) else {
        return Err(BackupError::Other(
            "the server ended the backup without start or end position".into(),
        ));
    };
    let manifest_path = data.join("backup_manifest");
    match manifest_file.take() {
        Some(f) => {
            barkeep_archive::durable::blocking_io(|| {
                f.sync_all()
                    .map_err(|e| BackupError::io("fsync", &manifest_tmp, e))?;
                barkeep_archive::durable::rename_durable(&manifest_tmp, &manifest_path)
                    .map_err(BackupError::from)
            })?;
        }
        None => {
            return Err(BackupError::Other(
                "the server sent no backup manifest".into(),
            ));
        }
    }
    let copy_time = t0.elapsed().as_secs_f64();

    // Plain: tablespace links, checksums against the manifest.
    let mut size = 0u64;
    let mut linked = 0u64;
    let mut cloned = 0u64;
    let mut label = None;
    if req.format == Format::Plain {
        let manifest = Manifest::load(&manifest_path)?;
        if !manifest.checksum_ok {
            return Err(BackupError::Verify(
                "the backup manifest's checksum does not match its content".into(),
            ));
        }
        let mut seen: BTreeMap<String, (u64, String)> = BTreeMap::new();
        for s in &sinks {
            if let Sink::Unpacked(u) = s {
                size += u.bytes;
                linked += u.linked_bytes;
                cloned += u.cloned_bytes;
                seen.extend(u.crcs.clone());
                if u.backup_label.is_some() {
                    label = u.backup_label.clone();
                }
            }
        }
        for (path, f) in &manifest.files {
            match seen.get(path) {
                None => {
                    return Err(BackupError::Verify(format!(
                        "`{path}` is in the manifest but was not received"
                    )));
                }
                Some((sz, crc)) => {
                    if *sz != f.size || f.checksum.as_deref().is_some_and(|c| c != crc) {
                        return Err(BackupError::Verify(format!(
                            "`{path}`: received {sz} bytes with CRC32C {crc}, the manifest says {} bytes, {:?}",
                            f.size, f.checksum
                        )));
                    }
                }
            }
        }
        for t in &tablespaces {
            crate::extract::tablespace_link(&data, t.oid, &root.join(t.oid.to_string()))?;
        }
        barkeep_archive::durable::blocking_io(|| fsync_dirs(&root))?;
    } else {
        for s in &sinks {
            if let Sink::Stored(bytes) = s {
                size += bytes;
            }
        }
        size += std::fs::metadata(&manifest_path)
            .map(|m| m.len())
            .unwrap_or(0);
        if let Format::Tar { codec, .. } = &req.format
            && codec != "none"
        {
            info.compression = Some(codec.clone());
        }
        barkeep_archive::durable::blocking_io(|| fsync_dirs(&root))?;
    }
    if let Some(l) = label {
        info.backup_label = Some(l);
    }

    // Configuration files kept outside PGDATA (Debian's /etc/postgresql/…).
    let mut outside: Vec<String> = Vec::new();
    for f in [&info.config_file, &info.hba_file, &info.ident_file]
        .into_iter()
        .flatten()
    {
        if !pgdata.as_deref().is_some_and(|d| under(f, d)) {
            outside.push(f.to_string());
        }
    }
    outside.extend(included.iter().cloned());
    for f in &outside {
        match sql.read_binary_file(f).await {
            Ok(bytes) => {
                let dest = config_copy_path(&root, f);
                if let Some(p) = dest.parent() {
                    barkeep_archive::durable::create_dir_all_durable(p)?;
                }
                barkeep_archive::durable::blocking_io(|| {
                    barkeep_archive::durable::write_file_atomic(&dest, &bytes)
                })?;
                size += bytes.len() as u64;
            }
            Err(e) => tracing::warn!(
                server,
                "configuration file `{f}` is outside the data directory and could not be read over SQL ({}): it is NOT in backup {id}; grant pg_read_server_files or EXECUTE on pg_read_binary_file(text) to the backup role",
                barkeep_archive::error::chain(&e)
            ),
        }
    }

    info.end_xlog = Some(end_lsn);
    info.end_wal = Some(seg.segment_name(end_tli, segment_before(end_lsn, seg)));
    info.end_offset = Some(end_lsn.segment_offset(seg));
    info.end_time = Some(chrono::Local::now().fixed_offset());
    info.size = Some(size);
    info.deduplicated_size = Some(size.saturating_sub(linked + cloned));
    if linked + cloned > 0 {
        use barkeep_catalog::human_size as h;
        tracing::info!(
            server,
            "backup {id}: {} of {} shared with the previous backup ({} in hard-linked files, {} in cloned blocks)",
            h(linked + cloned),
            h(size),
            h(linked),
            h(cloned)
        );
    }
    info.copy_stats = Some(format!(
        "{{'copy_time': {copy_time:.6}, 'total_time': {:.6}}}",
        t0.elapsed().as_secs_f64()
    ));

    // Restore point and WAL switch, so the end segment reaches the archive.
    if !sql.is_in_recovery().await.map_err(pg(server))? {
        if let Err(e) = sql.create_restore_point(&format!("barman_{id}")).await {
            tracing::warn!(
                server,
                "could not create restore point barman_{id}: {}",
                barkeep_archive::error::chain(&e)
            );
        }
        if let Err(e) = sql.switch_wal().await {
            tracing::warn!(
                server,
                "could not switch WAL after the backup ({}); the backup waits for the next segment switch",
                barkeep_archive::error::chain(&e)
            );
        }
    } else if let Some(primary) = &req.primary {
        // A standby cannot switch WAL: the primary does, and the standby replays it, so
        // the backup's end segment completes and reaches the archive (Barman's
        // `primary_conninfo`).
        match Connection::connect(primary).await {
            Ok(mut p) => {
                if let Err(e) = p.switch_wal().await {
                    tracing::warn!(
                        server,
                        "could not switch WAL on the primary (`primary_conninfo`): {}; the backup waits for the next segment switch",
                        barkeep_archive::error::chain(&e)
                    );
                }
                let _ = p.close().await;
            }
            Err(e) => tracing::warn!(
                server,
                "cannot connect to the primary (`primary_conninfo`): {}; the backup waits for the next segment switch",
                barkeep_archive::error::chain(&e)
            ),
        }
    }
    let _ = sql.close().await;
    let _ = repl.close().await;
    info.status = Status::WaitingForWals;
    barkeep_archive::durable::blocking_io(|| {
        cat.write_info(info)?;
        cat.check_backup(info)
    })?;
    Ok(())
}

/// Adds `child` to the `children_backup_ids` of `parent` (once).
pub fn link_child(cat: &Catalog, parent: &str, child: &str) -> Result<()> {
    let Some(mut p) = cat.read_info(parent)? else {
        return Err(BackupError::Catalog(format!(
            "the parent backup {parent} of backup {child} is not in the catalog of server `{}`",
            cat.server
        )));
    };
    let kids = p.children_backup_ids.get_or_insert_with(Vec::new);
    if !kids.iter().any(|k| k == child) {
        kids.push(child.to_string());
        cat.write_info(&p)?;
    }
    Ok(())
}

/// Whether `parent` can be the parent of an incremental backup: DONE, plain, taken with
/// `summarize_wal = on` (Barman's rules); the error says why not.
pub fn check_parent(parent: &BackupInfo) -> Result<()> {
    let id = &parent.backup_id;
    if parent.status != Status::Done {
        return Err(BackupError::Other(format!(
            "backup {id} cannot be the parent of an incremental backup: its status is {}",
            parent.status.as_str()
        )));
    }
    if parent.compression.is_some() {
        return Err(BackupError::Other(format!(
            "backup {id} cannot be the parent of an incremental backup: it is compressed ({}); incremental chains are plain directories",
            parent.compression.as_deref().unwrap_or_default()
        )));
    }
    if parent.summarize_wal.as_deref() != Some("on") {
        return Err(BackupError::Other(format!(
            "Backup ID {id} is not eligible as a parent for an incremental backup because WAL summaries were not enabled when that backup was taken."
        )));
    }
    Ok(())
}

/// Where a configuration file from outside PGDATA is kept: `base/<ID>/external_config`
/// followed by its absolute path.
pub fn config_copy_path(root: &Path, file: &str) -> PathBuf {
    root.join("external_config")
        .join(file.trim_start_matches('/'))
}

fn previous_plain(
    cat: &Catalog,
    id: &str,
    parent: Option<&str>,
    link: bool,
    clone: bool,
) -> Option<Arc<Previous>> {
    // An incremental backup shares with its parent; a full one with the newest plain
    // full backup (an incremental one holds only parts of the relation files).
    let prev = cat
        .list()
        .ok()?
        .into_iter()
        .rev()
        .filter(|b| b.backup_id.as_str() < id)
        .find(|b| match parent {
            Some(p) => b.backup_id == p,
            None => b.is_usable() && b.compression.is_none() && b.parent_backup_id.is_none(),
        })?;
    let data = cat.data_dir(&prev.backup_id);
    let manifest = Manifest::load(&data.join("backup_manifest")).ok()?;
    let tablespaces = prev
        .tablespaces()
        .iter()
        .map(|t| {
            (
                t.oid,
                cat.backup_root(&prev.backup_id).join(t.oid.to_string()),
            )
        })
        .collect();
    let how = match (link, clone) {
        (true, true) => {
            "files unchanged since backup {} are hard-linked to it, changed files share its unchanged blocks"
        }
        (true, false) => "files unchanged since backup {} are hard-linked to it",
        _ => "files share their unchanged blocks with backup {}",
    };
    tracing::info!(server = %cat.server, "{}", how.replace("{}", &prev.backup_id));
    Some(Arc::new(Previous {
        manifest,
        data_dir: data,
        tablespaces,
    }))
}

enum Job {
    Unpack(Unpack, String),
    Store {
        dest: PathBuf,
        codec: Option<(String, i32, u32)>,
    },
}

/// What a finished archive writer produced.
#[derive(Debug)]
enum Sink {
    Unpacked(Unpacked),
    Stored(u64),
}

impl Job {
    fn run(self, rx: ChannelReader) -> Result<Sink> {
        match self {
            Job::Unpack(u, name) => {
                // With server-side compression the archive name says the codec.
                let mut reader = crate::extract::archive_decoder(rx)
                    .map_err(|e| BackupError::Other(format!("decompressing `{name}`: {e}")))?;
                let unpacked = unpack(&mut reader, &u)?;
                // Drain what follows the end-of-archive blocks.
                let _ = std::io::copy(&mut reader, &mut std::io::sink());
                Ok(Sink::Unpacked(unpacked))
            }
            Job::Store { dest, codec } => {
                let c = codec.as_ref().map(|(c, l, w)| (c.as_str(), *l, *w));
                let bytes = store(rx, &dest, c)?;
                Ok(Sink::Stored(bytes))
            }
        }
    }
}
