//! Backup commands: `backup`, `list-backups`, `show-backup`, `verify-backup`,
//! `check-backup`, `delete`, `list-files`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use barkeep_archive::{ServerArchive, xlogdb};
use barkeep_backup::take::{Format, ProgressFn, Request, Reuse};
use barkeep_backup::{BackupInfo, Catalog, Status};
use barkeep_config::{Config, ServerConfig};
use barkeep_wal::SegmentSize;
use serde_json::{Value as Json, json};

use super::wal::{archive_for, conn_params, lock_dir, runtime};
use crate::cli::Format as OutFormat;
use crate::{Failure, Output, usage};

/// The backup catalog of a server.
pub(crate) fn catalog_for(config: &Config, s: &ServerConfig) -> Result<Catalog, Failure> {
    Ok(Catalog {
        server: s.name.clone(),
        backup_dir: s
            .path("backup_directory")
            .map(Path::to_path_buf)
            .ok_or_else(|| {
                usage(anyhow!(
                    "server `{}`: `backup_directory` is not set",
                    s.name
                ))
            })?,
        lock_dir: lock_dir(config),
    })
}

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
}

/// The storage format, and for plain backups the server-side compression of the stream.
type FormatChoice = (Format, Option<(String, Option<i32>)>);

fn format_for(s: &ServerConfig, jobs: Option<u32>) -> Result<FormatChoice, Failure> {
    let Some(codec) = s.choice("backup_compression").filter(|c| *c != "none") else {
        return Ok((Format::Plain, None));
    };
    let server = s.choice("backup_compression_location") == Some("server");
    let level = s.int("backup_compression_level").map(|l| l as i32);
    if s.choice("backup_compression_format") == Some("plain") {
        if !server {
            return Err(usage(anyhow!(
                "server `{}`: backup_compression_format = plain needs backup_compression_location = server (the server compresses, barkeep decompresses)",
                s.name
            )));
        }
        return Ok((Format::Plain, Some((codec.to_string(), level))));
    }
    let workers = jobs
        .or_else(|| s.int("backup_compression_workers").map(|w| w as u32))
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

/// `backup SERVER…`.
pub fn backup(
    config: &Config,
    names: &[String],
    o: &BackupOpts,
    out: &mut Output,
) -> Result<(), Failure> {
    let servers = super::select(config, names)?;
    let rt = runtime()?;
    for s in servers {
        if !s.active() || s.disabled() || s.passive() {
            out.warning(&format!(
                "Skipping backup of server `{}` (inactive, disabled or passive)",
                s.name
            ));
            continue;
        }
        let result = backup_one(config, s, o, &rt, out);
        if let Err(f) = result {
            out.error(&crate::render_error(&f.error));
        }
    }
    Ok(())
}

fn backup_one(
    config: &Config,
    s: &ServerConfig,
    o: &BackupOpts,
    rt: &tokio::runtime::Runtime,
    out: &mut Output,
) -> Result<(), Failure> {
    let cat = catalog_for(config, s)?;
    let archive = archive_for(config, s)?;
    archive.create_directories().map_err(|e| anyhow!(e))?;
    let reuse = match o.reuse.as_deref().or(s.choice("reuse_backup")) {
        Some("off") => Reuse::Off,
        Some("copy") => Reuse::Copy,
        Some("link") | None => Reuse::Link,
        Some(other) => {
            return Err(usage(anyhow!(
                "--reuse-backup `{other}`: expected off, copy or link"
            )));
        }
    };
    let bw = o
        .bwlimit
        .or_else(|| s.int("bandwidth_limit").map(|b| b as u32))
        .filter(|b| *b > 0);
    let progress = if std::io::IsTerminal::is_terminal(&std::io::stderr())
        && out.format() == OutFormat::Console
    {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(ProgressFn(std::sync::Arc::new(move |done, total| {
            bar.set_length(total.max(done));
            bar.set_position(done);
        })))
    } else {
        None
    };
    let format = format_for(s, o.jobs)?;
    let req = Request {
        plain_server_compression: format.1,
        name: o.name.clone(),
        immediate_checkpoint: o
            .immediate
            .unwrap_or_else(|| s.bool("immediate_checkpoint").unwrap_or(false)),
        max_rate_kbps: bw.map(|b| b.clamp(32, 1_048_576)),
        format: format.0,
        reuse,
        sql: conn_params(s, "conninfo", false, None)?,
        replication: conn_params(
            s,
            "streaming_conninfo",
            true,
            Some("barman_streaming_backup"),
        )?,
        progress,
    };
    let retries = o
        .retry_times
        .unwrap_or_else(|| s.int("basebackup_retry_times").unwrap_or(0) as u32);
    let sleep = o
        .retry_sleep
        .unwrap_or_else(|| s.int("basebackup_retry_sleep").unwrap_or(30) as u64);
    out.line(&format!(
        "Starting backup using postgres method for server {}",
        s.name
    ));
    let mut attempt = 0;
    let mut info = loop {
        match rt.block_on(barkeep_backup::take::take(&cat, &archive, &req)) {
            Ok(info) => break info,
            Err(e)
                if attempt < retries
                    && !matches!(
                        e,
                        barkeep_backup::BackupError::Archive(
                            barkeep_archive::ArchiveError::Locked { .. }
                        )
                    ) =>
            {
                attempt += 1;
                out.warning(&format!(
                    "backup attempt {attempt} of server `{}` failed ({}); retrying in {sleep} s",
                    s.name,
                    barkeep_archive::error::chain(&e)
                ));
                std::thread::sleep(Duration::from_secs(sleep));
            }
            Err(e) => {
                return Err(Failure::from(
                    anyhow!(e).context(format!("backup of server `{}` failed", s.name)),
                ));
            }
        }
    };
    out.line(&format!(
        "Backup start at LSN: {} ({}, {:08X})",
        info.get("begin_xlog").unwrap_or("?"),
        info.get("begin_wal").unwrap_or("?"),
        info.int("begin_offset").unwrap_or(0)
    ));
    out.line(&format!(
        "Backup completed (start time: {}, elapsed time: {})",
        info.get("begin_time").unwrap_or("?"),
        elapsed(&info)
    ));
    if o.wait && info.status() == Status::WaitingForWals {
        out.line(&format!(
            "Waiting for the WALs to be archived (timeout: {})",
            o.wait_timeout
                .filter(|t| *t > 0)
                .map(|t| format!("{t} seconds"))
                .unwrap_or_else(|| "none".into())
        ));
        let deadline = o
            .wait_timeout
            .filter(|t| *t > 0)
            .map(|t| Instant::now() + Duration::from_secs(t));
        while info.status() == Status::WaitingForWals {
            match archive.archive_wal() {
                Ok(_) | Err(barkeep_archive::ArchiveError::Locked { .. }) => {}
                Err(e) => return Err(Failure::from(anyhow!(e))),
            }
            cat.check_backup(&mut info, &archive)
                .map_err(|e| anyhow!(e))?;
            if info.status() != Status::WaitingForWals {
                break;
            }
            if deadline.is_some_and(|d| Instant::now() > d) {
                return Err(Failure::from(anyhow!(
                    "the WALs of backup {} were not archived in time; it stays WAITING_FOR_WALS",
                    info.backup_id
                )));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    match info.status() {
        Status::Done => out.line(&format!("Backup {} of server {} is DONE", info.backup_id, s.name)),
        Status::WaitingForWals => out.line(&format!("Backup {} of server {} is WAITING_FOR_WALS: it becomes DONE when its WAL is archived (receive-wal/archive-wal, or check-backup)", info.backup_id, s.name)),
        st => return Err(Failure::from(anyhow!("backup {} of server {} is {}: {}", info.backup_id, s.name, st.as_str(), info.get("error").unwrap_or("")))),
    }
    if out.format() == OutFormat::Json {
        out.json().insert(
            s.name.clone(),
            json!({"backup_id": info.backup_id, "status": info.status().as_str()}),
        );
    }
    Ok(())
}

fn elapsed(info: &BackupInfo) -> String {
    match (info.time("begin_time"), info.time("end_time")) {
        (Some(b), Some(e)) => format!("{} seconds", (e - b).num_seconds()),
        _ => "?".into(),
    }
}

/// Barman's human-readable sizes (`23.4 MiB`).
pub fn human_size(bytes: u64) -> String {
    let mut size = bytes as f64;
    for unit in ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] {
        if size.abs() < 1024.0 {
            return format!("{size:.1} {unit}");
        }
        size /= 1024.0;
    }
    format!("{size:.1} EiB")
}

/// Python's `time.ctime()`.
fn ctime(t: &chrono::DateTime<chrono::FixedOffset>) -> String {
    t.with_timezone(&chrono::Local)
        .format("%a %b %e %H:%M:%S %Y")
        .to_string()
}

fn backup_type(b: &BackupInfo) -> &'static str {
    match b.get("mode") {
        Some(m) if m.starts_with("rsync") => "rsync",
        Some(m) if m.starts_with("snapshot") => "snapshot",
        _ if b.get("parent_backup_id").is_some() => "incremental",
        _ => "full",
    }
}

/// WAL archived from this backup's begin up to the next backup's begin: (files, bytes).
fn wal_after(b: &BackupInfo, next: Option<&BackupInfo>, db: &[xlogdb::XlogEntry]) -> (u64, u64) {
    let Some(begin) = b.get("begin_wal") else {
        return (0, 0);
    };
    let until = next.and_then(|n| n.get("begin_wal"));
    db.iter()
        .filter(|e| {
            e.name.len() >= 24 && e.name[..24] >= *begin && until.is_none_or(|u| e.name[..24] < *u)
        })
        .fold((0, 0), |(n, s), e| (n + 1, s + e.size))
}

/// `list-backups SERVER…`.
pub fn list_backups(
    config: &Config,
    names: &[String],
    minimal: bool,
    out: &mut Output,
) -> Result<(), Failure> {
    for s in super::select(config, names)? {
        let cat = catalog_for(config, s)?;
        let archive = archive_for(config, s)?;
        cat.recover_crashed().map_err(|e| anyhow!(e))?;
        let db = xlogdb::read(&archive.xlogdb()).map_err(|e| anyhow!(e))?;
        let all = cat.list().map_err(|e| anyhow!(e))?;
        let mut rows = Vec::new();
        for (i, b) in all.iter().enumerate().rev() {
            let next = all[i + 1..]
                .iter()
                .find(|n| matches!(n.status(), Status::Done | Status::WaitingForWals));
            let size = b
                .int("deduplicated_size")
                .or_else(|| b.int("size"))
                .unwrap_or(0) as u64;
            let (_, wal) = wal_after(b, next, &db);
            if out.format() == OutFormat::Json {
                let mut row = json!({
                    "backup_id": b.backup_id,
                    "backup_type": backup_type(b),
                    "end_time": b.time("end_time").map(|t| ctime(&t)),
                    "end_time_timestamp": b.time("end_time").map(|t| t.timestamp().to_string()),
                    "size": human_size(size),
                    "size_bytes": size,
                    "wal_size": human_size(wal),
                    "wal_size_bytes": wal,
                    "status": b.status().as_str(),
                    "retention_status": "-",
                });
                if let Some(n) = b.get("backup_name") {
                    row["backup_name"] = json!(n);
                }
                rows.push(row);
                continue;
            }
            if minimal {
                out.line(&b.backup_id);
                continue;
            }
            let letter = &backup_type(b)[..1].to_uppercase();
            let name = b
                .get("backup_name")
                .map(|n| format!(" '{n}'"))
                .unwrap_or_default();
            match b.status() {
                Status::Done | Status::WaitingForWals => {
                    let mut line = format!(
                        "{} {}{name} - {letter} - {} - Size: {} - WAL Size: {}",
                        s.name,
                        b.backup_id,
                        b.time("end_time").map(|t| ctime(&t)).unwrap_or_default(),
                        human_size(size),
                        human_size(wal)
                    );
                    if b.status() == Status::WaitingForWals {
                        line.push_str(" - WAITING_FOR_WALS");
                    }
                    out.line(&line);
                }
                st => out.line(&format!(
                    "{} {}{name} - {letter} - {}",
                    s.name,
                    b.backup_id,
                    st.as_str()
                )),
            }
        }
        if out.format() == OutFormat::Json {
            out.json().insert(s.name.clone(), Json::Array(rows));
        }
    }
    Ok(())
}

fn resolve(
    config: &Config,
    server: &str,
    id: &str,
) -> Result<(Catalog, ServerArchive, BackupInfo), Failure> {
    let s = super::select(config, &[server.to_string()])?[0];
    let cat = catalog_for(config, s)?;
    let archive = archive_for(config, s)?;
    cat.recover_crashed().map_err(|e| anyhow!(e))?;
    let b = cat.resolve(id).map_err(|e| anyhow!(e))?;
    Ok((cat, archive, b))
}

/// `show-backup SERVER ID`.
pub fn show_backup(
    config: &Config,
    server: &str,
    id: &str,
    out: &mut Output,
) -> Result<(), Failure> {
    let (cat, archive, b) = resolve(config, server, id)?;
    let db = xlogdb::read(&archive.xlogdb()).map_err(|e| anyhow!(e))?;
    let all = cat.list().map_err(|e| anyhow!(e))?;
    let pos = all
        .iter()
        .position(|x| x.backup_id == b.backup_id)
        .unwrap_or(0);
    let prev = all[..pos]
        .iter()
        .rev()
        .find(|x| x.status() == Status::Done)
        .map(|x| x.backup_id.clone());
    let next = all[pos + 1..]
        .iter()
        .find(|x| x.status() == Status::Done)
        .map(|x| x.backup_id.clone());
    let seg = b.int("xlog_segment_size").unwrap_or(16 << 20) as u64;
    let n_wals = match (b.get("begin_wal"), b.get("end_wal"), SegmentSize::new(seg)) {
        (Some(bw), Some(ew), Ok(sz)) => {
            match (sz.parse_segment_name(bw), sz.parse_segment_name(ew)) {
                (Ok(a), Ok(z)) => z.segno.saturating_sub(a.segno) + 1,
                _ => 0,
            }
        }
        _ => 0,
    };
    let size = b.int("size").unwrap_or(0) as u64;
    let dedup = b.int("deduplicated_size").unwrap_or(size as i64) as u64;
    let (wal_files, wal_bytes) = wal_after(
        &b,
        all[pos + 1..].iter().find(|x| x.status() == Status::Done),
        &db,
    );
    let get = |k: &str| b.get(k).unwrap_or("None").to_string();
    let tablespaces = b.tablespaces();
    if out.format() == OutFormat::Json {
        let doc = json!({
            "backup_id": b.backup_id,
            "backup_name": b.get("backup_name"),
            "server_name": cat.server,
            "system_id": b.get("systemid"),
            "status": b.status().as_str(),
            "postgresql_version": b.get("version"),
            "pgdata_directory": b.get("pgdata"),
            "cluster_size": b.int("cluster_size").map(|c| human_size(c as u64)),
            "cluster_size_bytes": b.int("cluster_size"),
            "server_information": {
                "data_checksums": b.get("data_checksums"),
                "summarize_wal": b.get("summarize_wal"),
            },
            "tablespaces": tablespaces.iter().map(|t| json!({"name": t.name, "oid": t.oid, "location": t.location})).collect::<Vec<_>>(),
            "base_backup_information": {
                "backup_method": b.get("mode"),
                "backup_type": backup_type(&b),
                "backup_size": human_size(size),
                "backup_size_bytes": size,
                "resources_saved": human_size(size - dedup.min(size)),
                "resources_saved_bytes": size - dedup.min(size),
                "deduplicated_size_bytes": dedup,
                "backup_compression": b.get("compression"),
                "timeline": b.int("timeline"),
                "begin_wal": b.get("begin_wal"),
                "end_wal": b.get("end_wal"),
                "wal_num": n_wals,
                "begin_time_timestamp": b.time("begin_time").map(|t| t.timestamp().to_string()),
                "begin_time": b.time("begin_time").map(|t| ctime(&t)),
                "end_time_timestamp": b.time("end_time").map(|t| t.timestamp().to_string()),
                "end_time": b.time("end_time").map(|t| ctime(&t)),
                "begin_offset": b.int("begin_offset"),
                "end_offset": b.int("end_offset"),
                "begin_lsn": b.get("begin_xlog"),
                "end_lsn": b.get("end_xlog"),
            },
            "wal_information": {
                "no_of_files": wal_files,
                "disk_usage": human_size(wal_bytes),
                "disk_usage_bytes": wal_bytes,
            },
            "catalog_information": {
                "retention_policy": "-",
                "previous_backup_id": prev,
                "next_backup_id": next,
                "parent_backup_id": b.get("parent_backup_id"),
                "children_backup_ids": b.get("children_backup_ids"),
            },
            "error": b.get("error"),
        });
        out.json().insert(cat.server.clone(), doc);
        return Ok(());
    }
    out.line(&format!("Backup {}:", b.backup_id));
    if let Some(n) = b.get("backup_name") {
        out.line(&format!("  Backup Name            : {n}"));
    }
    out.line(&format!("  Server Name            : {}", cat.server));
    out.line(&format!("  System Id              : {}", get("systemid")));
    out.line(&format!(
        "  Status                 : {}",
        b.status().as_str()
    ));
    out.line(&format!("  PostgreSQL Version     : {}", get("version")));
    out.line(&format!("  PGDATA directory       : {}", get("pgdata")));
    if let Some(c) = b.int("cluster_size") {
        out.line(&format!(
            "  Estimated Cluster Size : {}",
            human_size(c as u64)
        ));
    }
    out.line("");
    out.line("  Server information:");
    out.line(&format!(
        "    Checksums            : {}",
        get("data_checksums")
    ));
    if let Some(w) = b.get("summarize_wal") {
        out.line(&format!("    WAL summarizer       : {w}"));
    }
    if !tablespaces.is_empty() {
        out.line("");
        out.line("  Tablespaces:");
        for t in &tablespaces {
            out.line(&format!("    {}: {} (oid: {})", t.name, t.location, t.oid));
        }
    }
    out.line("");
    out.line("  Base backup information:");
    out.line(&format!("    Backup Method        : {}", get("mode")));
    out.line(&format!("    Backup Type          : {}", backup_type(&b)));
    out.line(&format!(
        "    Backup Size          : {} ({} with WALs)",
        human_size(size),
        human_size(size + wal_bytes)
    ));
    out.line(&format!(
        "    WAL Size             : {}",
        human_size(wal_bytes)
    ));
    if dedup < size {
        out.line(&format!(
            "    Resources saved      : {} ({:.2}%)",
            human_size(size - dedup),
            (size - dedup) as f64 * 100.0 / size.max(1) as f64
        ));
    }
    out.line(&format!(
        "    Backup Compression   : {}",
        get("compression")
    ));
    out.line(&format!("    Timeline             : {}", get("timeline")));
    out.line(&format!("    Begin WAL            : {}", get("begin_wal")));
    out.line(&format!("    End WAL              : {}", get("end_wal")));
    out.line(&format!("    WAL number           : {n_wals}"));
    out.line(&format!("    Begin time           : {}", get("begin_time")));
    out.line(&format!("    End time             : {}", get("end_time")));
    out.line(&format!(
        "    Begin Offset         : {}",
        get("begin_offset")
    ));
    out.line(&format!("    End Offset           : {}", get("end_offset")));
    out.line(&format!("    Begin LSN            : {}", get("begin_xlog")));
    out.line(&format!("    End LSN              : {}", get("end_xlog")));
    out.line("");
    out.line("  WAL information:");
    out.line(&format!("    No of files          : {wal_files}"));
    out.line(&format!(
        "    Disk usage           : {}",
        human_size(wal_bytes)
    ));
    out.line("");
    out.line("  Catalog information:");
    out.line(&format!(
        "    Previous Backup      : {}",
        prev.unwrap_or_else(|| "- (this is the oldest base backup)".into())
    ));
    out.line(&format!(
        "    Next Backup          : {}",
        next.unwrap_or_else(|| "- (this is the latest base backup)".into())
    ));
    if let Some(e) = b.get("error") {
        out.line(&format!("  Error                  : {e}"));
    }
    Ok(())
}

/// `check-backup SERVER ID`.
pub fn check_backup(
    config: &Config,
    server: &str,
    id: &str,
    out: &mut Output,
) -> Result<(), Failure> {
    let (cat, archive, mut b) = resolve(config, server, id)?;
    let st = cat.check_backup(&mut b, &archive).map_err(|e| anyhow!(e))?;
    out.line(&format!(
        "Backup {} of server {}: {}",
        b.backup_id,
        cat.server,
        st.as_str()
    ));
    if st == Status::Failed {
        return Err(Failure::from(anyhow!(
            "backup {}: {}",
            b.backup_id,
            b.get("error").unwrap_or("")
        )));
    }
    Ok(())
}

/// Unpacks a tar-format backup into `dest` (decompressing by file extension).
fn extract_tar_backup(cat: &Catalog, b: &BackupInfo, dest: &Path) -> Result<(), Failure> {
    let data = cat.data_dir(&b.backup_id);
    for e in std::fs::read_dir(&data)
        .with_context(|| format!("cannot list `{}`", data.display()))?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.split(".tar").next().filter(|_| name.contains(".tar")) else {
            continue;
        };
        let file = std::fs::File::open(e.path())
            .with_context(|| format!("cannot open `{}`", e.path().display()))?;
        let reader = barkeep_backup::extract::archive_decoder(&name, file)
            .with_context(|| format!("decompressing `{}`", e.path().display()))?;
        let (root, prefix) = if stem == "base" {
            (dest.to_path_buf(), String::new())
        } else {
            (
                dest.with_extension(format!("ts{stem}")),
                format!("pg_tblspc/{stem}/"),
            )
        };
        barkeep_backup::extract::unpack(
            reader,
            &barkeep_backup::extract::Unpack {
                root,
                manifest_prefix: prefix,
                previous: None,
            },
        )
        .map_err(|err| {
            anyhow!(err).context(format!("extracting `{}`", data.join(&name).display()))
        })?;
        if stem != "base" {
            let link = dest.join("pg_tblspc").join(stem);
            let _ = std::fs::create_dir_all(dest.join("pg_tblspc"));
            let _ = std::fs::remove_dir(&link);
            std::os::unix::fs::symlink(dest.with_extension(format!("ts{stem}")), &link)
                .context("tablespace link")?;
        }
    }
    std::fs::copy(data.join("backup_manifest"), dest.join("backup_manifest"))
        .context("copy backup_manifest")?;
    Ok(())
}

/// The WAL a backup needs, decompressed into `dir` (for pg_verifybackup -w).
fn wal_for(archive: &ServerArchive, b: &BackupInfo, dir: &Path) -> Result<bool, Failure> {
    let (Some(bw), Some(ew)) = (b.get("begin_wal"), b.get("end_wal")) else {
        return Ok(false);
    };
    let seg = SegmentSize::new(b.int("xlog_segment_size").unwrap_or(16 << 20) as u64)
        .map_err(|e| anyhow!("{e}"))?;
    let (a, z) = (
        seg.parse_segment_name(bw).map_err(|e| anyhow!("{e}"))?,
        seg.parse_segment_name(ew).map_err(|e| anyhow!("{e}"))?,
    );
    std::fs::create_dir_all(dir).context("create WAL directory")?;
    for segno in a.segno..=z.segno {
        let name = seg.segment_name(z.tli, segno);
        let mut f = std::fs::File::create(dir.join(&name)).context("create WAL file")?;
        if archive.get_wal(&name, false, false, &mut f).is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `verify-backup SERVER ID`.
pub fn verify_backup(
    config: &Config,
    server: &str,
    id: &str,
    out: &mut Output,
) -> Result<(), Failure> {
    let (cat, archive, b) = resolve(config, server, id)?;
    let tmp = tempfile::tempdir().context("temporary directory")?;
    let data =
        if b.get("compression").is_some() || !cat.data_dir(&b.backup_id).join("global").exists() {
            let d = tmp.path().join("data");
            extract_tar_backup(&cat, &b, &d)?;
            d
        } else {
            cat.data_dir(&b.backup_id)
        };
    let problems = barkeep_backup::manifest::verify_plain(&data).map_err(|e| anyhow!(e))?;
    if !problems.is_empty() {
        for p in &problems {
            out.error(&format!("backup {}: {p}", b.backup_id));
        }
        return Err(Failure::from(anyhow!(
            "backup {} of server {} failed verification ({} problem(s))",
            b.backup_id,
            cat.server,
            problems.len()
        )));
    }
    out.line(&format!(
        "Backup {} of server {}: every file matches backup_manifest",
        b.backup_id, cat.server
    ));
    // PostgreSQL's own verifier, with the WAL from the archive, when installed.
    let major = b.int("version").unwrap_or(0) / 10000;
    let tool = [format!("/usr/lib/postgresql/{major}/bin/pg_verifybackup")]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    if let Some(tool) = tool {
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
            .with_context(|| format!("cannot run `{}`", tool.display()))?;
        if !o.status.success() {
            return Err(Failure::from(anyhow!(
                "pg_verifybackup failed for backup {}: {}",
                b.backup_id,
                String::from_utf8_lossy(&o.stderr).trim()
            )));
        }
        out.line(&format!(
            "pg_verifybackup: {}",
            String::from_utf8_lossy(&o.stdout).trim()
        ));
    }
    Ok(())
}

/// `delete SERVER ID`.
pub fn delete(config: &Config, server: &str, id: &str, out: &mut Output) -> Result<(), Failure> {
    let (cat, archive, b) = resolve(config, server, id)?;
    let s = super::select(config, &[server.to_string()])?[0];
    let _lock = barkeep_archive::lock::LockFile::try_acquire(&cat.lock_dir, &cat.server, "backup")
        .map_err(|e| anyhow!(e))?;
    let min = s.int("minimum_redundancy").unwrap_or(0) as usize;
    out.line(&format!(
        "Deleting backup {} for server {}",
        b.backup_id, cat.server
    ));
    let report = cat.delete(&b, &archive, min).map_err(|e| {
        anyhow!(e).context(format!(
            "Cannot delete backup ({} {})",
            cat.server, b.backup_id
        ))
    })?;
    if report.wal_removed > 0 {
        out.line(&format!(
            "Delete associated WAL segments: {} removed",
            report.wal_removed
        ));
    }
    out.line(&format!("Deleted backup {}", b.backup_id));
    Ok(())
}

/// `list-files SERVER ID --target …`.
pub fn list_files(
    config: &Config,
    server: &str,
    id: &str,
    target: &str,
    out: &mut Output,
) -> Result<(), Failure> {
    let (cat, archive, b) = resolve(config, server, id)?;
    if !["data", "wal", "standalone", "full"].contains(&target) {
        return Err(usage(anyhow!(
            "--target `{target}`: expected data, wal, standalone or full"
        )));
    }
    if target != "wal" {
        let mut stack = vec![cat.backup_root(&b.backup_id)];
        let mut files = Vec::new();
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d)
                .with_context(|| format!("cannot list `{}`", d.display()))?
                .flatten()
            {
                let m = e.path().symlink_metadata().context("stat")?;
                if m.is_dir() {
                    stack.push(e.path());
                } else {
                    files.push(e.path());
                }
            }
        }
        files.sort();
        for f in files {
            out.line(&f.display().to_string());
        }
    }
    if target != "data" {
        let db = xlogdb::read(&archive.xlogdb()).map_err(|e| anyhow!(e))?;
        let begin = b.get("begin_wal").unwrap_or_default();
        let end = b.get("end_wal").unwrap_or_default();
        for e in db {
            let Some(w) = barkeep_archive::names::WalName::parse(&e.name) else {
                continue;
            };
            let Some(segname) = w.segment() else { continue };
            if segname >= begin && (target == "full" || segname <= end) {
                out.line(&archive.archive_path(&w).display().to_string());
            }
        }
    }
    Ok(())
}
