//! Rendering the unattended operations: `keep`, `retention`.

use barkeep_engine::{
    CheckReport, CronOpts, DrillReport, Engine, KeepAction, Server, StatusReport,
};
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

/// `check SERVER…`: Barman's console lines, its JSON (`{"server": {"item_key":
/// {"status", "hint"}}}`) or its Nagios line. Fails (exit 1; 2 with `--nagios`) when an
/// item of an active server fails.
pub fn check(reports: &[CheckReport], nagios: bool, out: &Output) -> Result<(), Failure> {
    let failing = reports.iter().any(CheckReport::fails);
    if nagios {
        out.raw(&nagios_text(reports));
        return if failing {
            Err(Failure {
                code: 2,
                message: String::new(),
            })
        } else {
            Ok(())
        };
    }
    for r in reports {
        if out.is_json() {
            // Sorted keys, as Barman's JSON writer prints them.
            let m: std::collections::BTreeMap<String, serde_json::Value> = r
                .items
                .iter()
                .map(|i| {
                    (
                        i.key(),
                        json!({"hint": i.hint.clone().unwrap_or_default(), "status": if i.ok { "OK" } else { "FAILED" }}),
                    )
                })
                .collect();
            out.json(r.server.clone(), json!(m));
            continue;
        }
        let suffix = if r.disabled {
            " (WARNING: disabled)"
        } else if !r.active {
            " (inactive)"
        } else {
            ""
        };
        out.line(&format!("Server {}:{suffix}", r.server));
        for i in &r.items {
            let status = if i.ok { "OK" } else { "FAILED" };
            match &i.hint {
                Some(h) if !h.is_empty() => out.line(&format!("\t{}: {status} ({h})", i.name)),
                _ => out.line(&format!("\t{}: {status}", i.name)),
            }
        }
    }
    if failing {
        Err(Failure {
            code: 1,
            message: String::new(),
        })
    } else {
        Ok(())
    }
}

/// Barman's Nagios output: one summary line with performance data, then one line per
/// failed item.
fn nagios_text(reports: &[CheckReport]) -> String {
    let mut perf = Vec::new();
    for r in reports {
        for i in &r.items {
            match (i.name.as_str(), i.perfdata) {
                ("backup minimum size", Some(p)) => perf.push(format!("{}={p}B", r.server)),
                ("wal size", Some(p)) => perf.push(format!("{}_wals={p}B", r.server)),
                _ => {}
            }
        }
    }
    let perf = if perf.is_empty() {
        String::new()
    } else {
        format!("|{}", perf.join(" "))
    };
    let with_issues: Vec<&CheckReport> = reports.iter().filter(|r| !r.ok()).collect();
    let critical: Vec<&CheckReport> = reports.iter().filter(|r| r.fails()).collect();
    if !critical.is_empty() {
        let summary: Vec<String> = with_issues
            .iter()
            .map(|r| {
                let failed: Vec<&str> = r
                    .items
                    .iter()
                    .filter(|i| !i.ok)
                    .map(|i| i.name.as_str())
                    .collect();
                format!("{} FAILED: {}", r.server, failed.join(", "))
            })
            .collect();
        let mut text = if reports.len() == 1 {
            format!(
                "BARMAN CRITICAL - server {} has issues * {}{perf}",
                reports[0].server,
                summary.join(" * ")
            )
        } else {
            format!(
                "BARMAN CRITICAL - {} server out of {} have issues * {}{perf}",
                with_issues.len(),
                reports.len(),
                summary.join(" * ")
            )
        };
        for r in &with_issues {
            for i in r.items.iter().filter(|i| !i.ok) {
                text.push_str(&format!("\n{}.{}: FAILED", r.server, i.name));
                if let Some(h) = i.hint.as_ref().filter(|h| !h.is_empty()) {
                    text.push_str(&format!(" ({h})"));
                }
            }
        }
        return text;
    }
    let ignoring: String = with_issues
        .iter()
        .map(|r| format!(" * IGNORING: {}", r.server))
        .collect();
    let good: Vec<&str> = reports
        .iter()
        .filter(|r| r.ok())
        .map(|r| r.server.as_str())
        .collect();
    match good.len() {
        0 => format!("BARMAN OK - No server configured{ignoring}"),
        1 => format!(
            "BARMAN OK - Ready to serve the Espresso backup for {}{ignoring}{perf}",
            good[0]
        ),
        n => format!(
            "BARMAN OK - Ready to serve the Espresso backup for {n} servers * {}{ignoring}{perf}",
            good.join(" * ")
        ),
    }
}

/// `status SERVER…`: Barman's lines (`\tDescription: message`) or its JSON
/// (`{"server": {"key": {"description", "message"}}}`).
pub fn status(reports: &[StatusReport], out: &Output) {
    for r in reports {
        if out.is_json() {
            let m: std::collections::BTreeMap<&str, serde_json::Value> = r
                .rows
                .iter()
                .map(|row| {
                    (
                        row.key,
                        json!({"description": row.description, "message": row.message}),
                    )
                })
                .collect();
            out.json(r.server.clone(), json!(m));
            continue;
        }
        out.line(&format!("Server {}:", r.server));
        for row in &r.rows {
            out.line(&format!("\t{}: {}", row.description, row.message));
        }
    }
}

/// `list-processes SERVER`, as Barman prints it (the daemon's own tasks marked).
pub fn list_processes(s: &Server, out: &Output) {
    let list = s.processes();
    if out.is_json() {
        out.json(
            s.name(),
            json!(
                list.iter()
                    .map(|p| json!({"pid": p.pid, "name": p.name}))
                    .collect::<Vec<_>>()
            ),
        );
        return;
    }
    if list.is_empty() {
        out.line(&format!(
            "No active subprocesses found for server {}.",
            s.name()
        ));
        return;
    }
    out.line(&format!("Active subprocesses for server {}:", s.name()));
    for p in list {
        if p.daemon {
            out.line(&format!("{} {} (barkeep daemon)", p.pid, p.name));
        } else {
            out.line(&format!("{} {}", p.pid, p.name));
        }
    }
}

/// `drill SERVER [ID]`: the outcome; exit 1 when the drill failed.
pub fn drill(r: &DrillReport, out: &Output) -> Result<(), Failure> {
    if out.is_json() {
        out.json(
            r.server.clone(),
            serde_json::to_value(r).unwrap_or_else(|e| json!({"error": e.to_string()})),
        );
    } else if r.success {
        out.line(&format!(
            "Drill of backup {} of server {}: PASSED in {:.1} s ({} WAL file(s) replayed; pg_amcheck {})",
            r.backup_id,
            r.server,
            r.duration_seconds,
            r.wal_replayed,
            if r.amcheck { "passed" } else { "not installed" }
        ));
    }
    match &r.error {
        None => Ok(()),
        Some(e) => Err(Failure {
            code: 1,
            message: format!(
                "Drill of backup {} of server {}: FAILED: {e}",
                r.backup_id, r.server
            ),
        }),
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
    if let Some(g) = &done.gfs {
        head.push_str(&format!(", retention_gfs {g}"));
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
