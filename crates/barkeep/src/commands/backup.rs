//! Rendering the backup commands: `backup`, `list-backups`, `show-backup`,
//! `verify-backup`, `check-backup`, `delete`, `list-files`.

use barkeep_engine::{BackupOpts, Server, human_size};
use serde_json::{Value as Json, json};

use crate::{Failure, Output};

/// Python's `time.ctime()`.
fn ctime(t: &chrono::DateTime<chrono::FixedOffset>) -> String {
    t.with_timezone(&chrono::Local)
        .format("%a %b %e %H:%M:%S %Y")
        .to_string()
}

/// `backup SERVER`.
pub async fn backup(s: &Server, o: &BackupOpts, out: &Output) -> Result<(), Failure> {
    let done = s.backup(o).await?;
    if out.is_json() {
        out.json(
            done.server.clone(),
            json!({"backup_id": done.backup_id, "status": done.status}),
        );
    }
    Ok(())
}

/// `list-backups SERVER`.
pub fn list_backups(s: &Server, minimal: bool, out: &Output) -> Result<(), Failure> {
    let rows = s.list_backups()?;
    if out.is_json() {
        let rows: Vec<Json> = rows
            .iter()
            .map(|b| {
                let mut row = json!({
                    "backup_id": b.backup_id,
                    "backup_type": b.backup_type,
                    "end_time": b.end_time.map(|t| ctime(&t)),
                    "end_time_timestamp": b.end_time.map(|t| t.timestamp().to_string()),
                    "size": human_size(b.size_bytes),
                    "size_bytes": b.size_bytes,
                    "wal_size": human_size(b.wal_size_bytes),
                    "wal_size_bytes": b.wal_size_bytes,
                    "status": b.status,
                    "retention_status": b.retention_status,
                });
                if let Some(n) = &b.backup_name {
                    row["backup_name"] = json!(n);
                }
                row
            })
            .collect();
        out.json(s.name(), Json::Array(rows));
        return Ok(());
    }
    for b in &rows {
        if minimal {
            out.line(&b.backup_id);
            continue;
        }
        let letter = &b.backup_type[..1].to_uppercase();
        let name = b
            .backup_name
            .as_ref()
            .map(|n| format!(" '{n}'"))
            .unwrap_or_default();
        match b.status.as_str() {
            "DONE" | "WAITING_FOR_WALS" => {
                let mut line = format!(
                    "{} {}{name} - {letter} - {} - Size: {} - WAL Size: {}",
                    s.name(),
                    b.backup_id,
                    b.end_time.map(|t| ctime(&t)).unwrap_or_default(),
                    human_size(b.size_bytes),
                    human_size(b.wal_size_bytes)
                );
                if b.status == "WAITING_FOR_WALS" {
                    line.push_str(" - WAITING_FOR_WALS");
                }
                if b.retention_status != "-" {
                    line.push_str(&format!(" - {}", b.retention_status));
                }
                out.line(&line);
            }
            st => out.line(&format!(
                "{} {}{name} - {letter} - {st}",
                s.name(),
                b.backup_id
            )),
        }
    }
    Ok(())
}

/// `show-backup SERVER ID`.
pub fn show_backup(s: &Server, id: &str, out: &Output) -> Result<(), Failure> {
    let d = s.show_backup(id)?;
    let b = &d.info;
    let (size, dedup) = (d.size_bytes, d.deduplicated_size_bytes);
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "None".into());
    let show = |v: Option<String>| v.unwrap_or_else(|| "None".into());
    let num = |v: Option<u64>| show(v.map(|n| n.to_string()));
    let time = |v: &Option<chrono::DateTime<chrono::FixedOffset>>| {
        show(v.map(|t| barkeep_engine::format_time(&t)))
    };
    let lsn = |v: &Option<barkeep_engine::Lsn>| show(v.map(|l| l.to_string()));
    let tablespaces = b.tablespaces();
    if out.is_json() {
        let doc = json!({
            "backup_id": b.backup_id,
            "backup_name": b.backup_name,
            "server_name": d.server,
            "system_id": b.systemid,
            "status": b.status.as_str(),
            "postgresql_version": b.version,
            "pgdata_directory": b.pgdata,
            "cluster_size": b.cluster_size.map(human_size),
            "cluster_size_bytes": b.cluster_size,
            "server_information": {
                "data_checksums": b.data_checksums,
                "summarize_wal": b.summarize_wal,
            },
            "tablespaces": tablespaces.iter().map(|t| json!({"name": t.name, "oid": t.oid, "location": t.location})).collect::<Vec<_>>(),
            "base_backup_information": {
                "backup_method": b.mode,
                "backup_type": d.backup_type,
                "backup_size": human_size(size),
                "backup_size_bytes": size,
                "resources_saved": human_size(size - dedup.min(size)),
                "resources_saved_bytes": size - dedup.min(size),
                "deduplicated_size_bytes": dedup,
                "backup_compression": b.compression,
                "timeline": b.timeline,
                "begin_wal": b.begin_wal,
                "end_wal": b.end_wal,
                "wal_num": d.wal_num,
                "begin_time_timestamp": b.begin_time.map(|t| t.timestamp().to_string()),
                "begin_time": b.begin_time.map(|t| ctime(&t)),
                "end_time_timestamp": b.end_time.map(|t| t.timestamp().to_string()),
                "end_time": b.end_time.map(|t| ctime(&t)),
                "begin_offset": b.begin_offset,
                "end_offset": b.end_offset,
                "begin_lsn": b.begin_xlog.map(|l| l.to_string()),
                "end_lsn": b.end_xlog.map(|l| l.to_string()),
            },
            "wal_information": {
                "no_of_files": d.wal_files,
                "disk_usage": human_size(d.wal_bytes),
                "disk_usage_bytes": d.wal_bytes,
            },
            "catalog_information": {
                "retention_policy": d.retention_status.unwrap_or("not enforced"),
                "previous_backup_id": d.previous_backup_id,
                "next_backup_id": d.next_backup_id,
                "parent_backup_id": b.parent_backup_id,
                "root_backup_id": d.root_backup_id,
                "chain_size": d.chain_size,
                "children_backup_ids": b.children_backup_ids.as_ref().map(|c| c.join(",")),
            },
            "error": b.error,
        });
        out.json(d.server.clone(), doc);
        return Ok(());
    }
    out.line(&format!("Backup {}:", b.backup_id));
    if let Some(n) = &b.backup_name {
        out.line(&format!("  Backup Name            : {n}"));
    }
    out.line(&format!("  Server Name            : {}", d.server));
    out.line(&format!("  System Id              : {}", text(&b.systemid)));
    out.line(&format!("  Status                 : {}", b.status.as_str()));
    out.line(&format!(
        "  PostgreSQL Version     : {}",
        show(b.version.map(|v| v.to_string()))
    ));
    out.line(&format!("  PGDATA directory       : {}", text(&b.pgdata)));
    if let Some(c) = b.cluster_size {
        out.line(&format!("  Estimated Cluster Size : {}", human_size(c)));
    }
    out.line("");
    out.line("  Server information:");
    out.line(&format!(
        "    Checksums            : {}",
        text(&b.data_checksums)
    ));
    if let Some(w) = &b.summarize_wal {
        out.line(&format!("    WAL summarizer       : {w}"));
    }
    if !tablespaces.is_empty() {
        out.line("");
        out.line("  Tablespaces:");
        for t in tablespaces {
            out.line(&format!("    {}: {} (oid: {})", t.name, t.location, t.oid));
        }
    }
    out.line("");
    out.line("  Base backup information:");
    out.line(&format!("    Backup Method        : {}", text(&b.mode)));
    out.line(&format!("    Backup Type          : {}", d.backup_type));
    out.line(&format!(
        "    Backup Size          : {} ({} with WALs)",
        human_size(dedup),
        human_size(dedup + d.wal_bytes)
    ));
    out.line(&format!(
        "    WAL Size             : {}",
        human_size(d.wal_bytes)
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
        text(&b.compression)
    ));
    out.line(&format!(
        "    Timeline             : {}",
        show(b.timeline.map(|t| t.to_string()))
    ));
    out.line(&format!(
        "    Begin WAL            : {}",
        text(&b.begin_wal)
    ));
    out.line(&format!("    End WAL              : {}", text(&b.end_wal)));
    out.line(&format!("    WAL number           : {}", d.wal_num));
    out.line(&format!(
        "    Begin time           : {}",
        time(&b.begin_time)
    ));
    out.line(&format!("    End time             : {}", time(&b.end_time)));
    out.line(&format!(
        "    Begin Offset         : {}",
        num(b.begin_offset)
    ));
    out.line(&format!("    End Offset           : {}", num(b.end_offset)));
    out.line(&format!(
        "    Begin LSN            : {}",
        lsn(&b.begin_xlog)
    ));
    out.line(&format!("    End LSN              : {}", lsn(&b.end_xlog)));
    out.line("");
    out.line("  WAL information:");
    out.line(&format!("    No of files          : {}", d.wal_files));
    out.line(&format!(
        "    Disk usage           : {}",
        human_size(d.wal_bytes)
    ));
    out.line("");
    out.line("  Catalog information:");
    out.line(&format!(
        "    Retention Policy     : {}",
        d.retention_status.unwrap_or("not enforced")
    ));
    out.line(&format!(
        "    Previous Backup      : {}",
        d.previous_backup_id
            .clone()
            .unwrap_or_else(|| "- (this is the oldest base backup)".into())
    ));
    out.line(&format!(
        "    Next Backup          : {}",
        d.next_backup_id
            .clone()
            .unwrap_or_else(|| "- (this is the latest base backup)".into())
    ));
    if d.backup_type == "incremental" {
        out.line(&format!("    Root Backup          : {}", d.root_backup_id));
        out.line(&format!(
            "    Parent Backup        : {}",
            text(&b.parent_backup_id)
        ));
        out.line(&format!("    Backup chain size    : {}", d.chain_size));
    }
    if let Some(kids) = &b.children_backup_ids {
        out.line(&format!("    Children Backup(s)   : {}", kids.join(",")));
    }
    if let Some(e) = &b.error {
        out.line(&format!("  Error                  : {e}"));
    }
    Ok(())
}

/// `check-backup SERVER ID`.
pub fn check_backup(s: &Server, id: &str, out: &Output) -> Result<(), Failure> {
    let r = s.check_backup(id)?;
    out.line(&format!(
        "Backup {} of server {}: {}",
        r.backup_id, r.server, r.status
    ));
    if r.status == "FAILED" {
        return Err(Failure::failed(format!(
            "backup {}: {}",
            r.backup_id,
            r.error.as_deref().unwrap_or("")
        )));
    }
    Ok(())
}

/// `verify-backup SERVER ID`.
pub fn verify_backup(s: &Server, id: &str, out: &Output) -> Result<(), Failure> {
    let r = s.verify_backup(id)?;
    if !r.problems.is_empty() {
        for p in &r.problems {
            out.error(&format!("backup {}: {p}", r.backup_id));
        }
        return Err(Failure::failed(format!(
            "backup {} of server {} failed verification ({} problem(s))",
            r.backup_id,
            r.server,
            r.problems.len()
        )));
    }
    out.line(&format!(
        "Backup {} of server {}: every file matches backup_manifest",
        r.backup_id, r.server
    ));
    if let Some(text) = &r.pg_verifybackup {
        out.line(&format!("pg_verifybackup: {text}"));
    }
    Ok(())
}

/// `delete SERVER ID`.
pub fn delete(s: &Server, id: &str, out: &Output) -> Result<(), Failure> {
    let r = s.delete(id)?;
    if r.wal_removed > 0 {
        out.line(&format!(
            "Delete associated WAL segments: {} removed",
            r.wal_removed
        ));
    }
    out.line(&format!("Deleted backup {}", r.backup_id));
    Ok(())
}

/// `list-files SERVER ID --target …`.
pub fn list_files(s: &Server, id: &str, target: &str, out: &Output) -> Result<(), Failure> {
    for f in s.list_files(id, target)?.files {
        out.line(&f.display().to_string());
    }
    Ok(())
}
