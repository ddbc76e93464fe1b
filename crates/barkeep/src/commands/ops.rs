//! Rendering the unattended operations: `keep`, `retention`.

use barkeep_engine::{CronOpts, Engine, KeepAction, Server};
use serde_json::json;

use crate::{Failure, Output};

/// `keep SERVER ID --target|--release|--status`.
pub fn keep(s: &Server, id: &str, action: KeepAction, out: &Output) -> Result<(), Failure> {
    let done = s.keep(id, action)?;
    if action != KeepAction::Status {
        if out.is_json() {
            out.json(
                done.server.clone(),
                json!({"backup_id": done.backup_id, "keep": done.target.map(|t| t.as_str())}),
            );
        }
        return Ok(());
    }
    let word = done.target.map_or("nokeep", |t| t.as_str());
    if out.is_json() {
        out.json(
            done.server.clone(),
            json!({"keep_status": {"description": "Keep", "message": word}}),
        );
    } else {
        out.line(&format!("Server {}:", done.server));
        out.line(&format!("\tKeep: {word}"));
    }
    Ok(())
}

/// `cron`: one maintenance pass. Exits 1 when a step failed on some server (the others
/// still ran).
pub fn cron(engine: &Engine, keep_descriptors: bool, out: &Output) -> Result<(), Failure> {
    let done = engine.cron(&CronOpts { keep_descriptors })?;
    if out.is_json() {
        for s in &done.servers {
            out.json(
                s.server.clone(),
                serde_json::to_value(s).unwrap_or_else(|e| json!({"error": e.to_string()})),
            );
        }
    }
    let failed: Vec<&str> = done
        .servers
        .iter()
        .filter(|s| !s.errors.is_empty())
        .map(|s| s.server.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure {
            code: 1,
            message: format!(
                "cron: some steps failed on server(s) {} (see the warnings above); the other steps and servers ran",
                failed.join(", ")
            ),
        })
    }
}

/// `retention SERVER [--dry-run]`.
pub fn retention(s: &Server, dry_run: bool, out: &Output) -> Result<(), Failure> {
    let done = s.retention(dry_run)?;
    let p = &done.plan;
    if out.is_json() {
        out.json(
            done.server.clone(),
            serde_json::to_value(&done).unwrap_or_else(|e| json!({"error": e.to_string()})),
        );
        return Ok(());
    }
    if !p.enforced {
        out.line(&format!(
            "Server {}: no retention policy (retention_policy and retention_gfs are unset): nothing is deleted",
            done.server
        ));
        return Ok(());
    }
    let mut head = format!(
        "Retention plan for server {} at {}: {}",
        done.server,
        p.now.format("%Y-%m-%d %H:%M:%S UTC"),
        p.policy.as_deref().unwrap_or("no retention_policy")
    );
    head.push_str(&format!(", minimum_redundancy {}", p.minimum_redundancy));
    if let Some(g) = &p.gfs {
        let kinds: Vec<String> = [
            (g.daily, "DAILY"),
            (g.weekly, "WEEKLY"),
            (g.monthly, "MONTHLY"),
            (g.yearly, "YEARLY"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, k)| format!("{n} {k}"))
        .collect();
        head.push_str(&format!(", retention_gfs {}", kinds.join(", ")));
    }
    out.line(&head);
    for v in p.backups.iter().rev() {
        let action = if v.delete { "delete" } else { "keep" };
        out.line(&format!(
            "  {} {:<16} {:<16} {:<6} {}",
            v.backup_id,
            v.backup_status.as_str(),
            v.status.as_str(),
            action,
            v.reasons.join("; ")
        ));
    }
    match &p.wal.kept_whole_from {
        Some(w) => out.line(&format!("  WAL: kept whole from {w}")),
        None => out.line("  WAL: no backup is kept for point-in-time recovery: no WAL is deleted"),
    }
    if !p.wal.kept_consistent_only.is_empty() {
        out.line(&format!(
            "  WAL: only the segments that make them consistent are kept for {}",
            p.wal.kept_consistent_only.join(", ")
        ));
    }
    let deletes = p.deleted().count();
    match (p.wal.delete.first(), p.wal.delete.last()) {
        (Some(a), Some(b)) => out.line(&format!(
            "  WAL: {} files deleted ({a} … {b})",
            p.wal.delete.len()
        )),
        _ => out.line("  WAL: nothing deleted"),
    }
    if dry_run {
        out.line(&format!(
            "Dry run: {deletes} backups and {} WAL files would be deleted; nothing was changed.",
            p.wal.delete.len()
        ));
    } else {
        out.line(&format!(
            "Deleted {} backups and {} WAL files.",
            done.deleted.len(),
            done.wal_removed
        ));
    }
    Ok(())
}
