//! Rendering `restore` (alias `recover`): Barman's report, then the next steps for the
//! operator.

use std::path::Path;

use barkeep_engine::{RestoreOpts, Server, describe_target};
use serde_json::json;

use crate::{Failure, Output};

/// `restore SERVER ID DEST`.
pub fn restore(
    s: &Server,
    id: &str,
    dest: &Path,
    o: &RestoreOpts,
    out: &Output,
) -> Result<(), Failure> {
    let r = s.restore(id, dest, o)?;
    let elapsed = r.elapsed_seconds;
    let report = &r.report;
    let begin = r.started;
    let dest = &r.destination_directory;
    if out.is_json() {
        out.json(
            r.server.clone(),
            json!({
                "backup_id": r.backup_id,
                "destination_directory": dest.display().to_string(),
                "changes": report.changes.iter().map(|(f, l, t)| json!({"file": f, "line": l, "text": t})).collect::<Vec<_>>(),
                "changes_count": report.changes.len(),
                "warnings": report.warnings.iter().map(|(f, l, t)| json!({"file": f, "line": l, "text": t})).collect::<Vec<_>>(),
                "warnings_count": report.warnings.len(),
                "missing_files": report.missing_files,
                "external_files": report.external_files.iter().map(|(o, p)| json!({"original": o, "restored": p.display().to_string()})).collect::<Vec<_>>(),
                "recovery_start_time": begin.to_rfc3339(),
                "recovery_start_time_timestamp": begin.timestamp().to_string(),
                "recovery_elapsed_time": format!("{elapsed:.1} seconds"),
                "recovery_elapsed_time_seconds": elapsed,
            }),
        );
        return Ok(());
    }
    if !report.changes.is_empty() {
        out.line("");
        out.line("IMPORTANT");
        out.line("These settings have been modified to prevent data losses");
        out.line("");
        for (f, l, t) in &report.changes {
            out.line(&format!(
                "{f} line {l}: {t}  (commented out; archive_command = false added)"
            ));
        }
    }
    if !report.warnings.is_empty() {
        out.line("");
        out.line("WARNING");
        out.line("You are required to review the following options as potentially dangerous");
        out.line("");
        for (f, l, t) in &report.warnings {
            out.line(&format!("{f} line {l}: {t}"));
        }
    }
    if !report.external_files.is_empty() {
        out.line("");
        out.line("Configuration files kept outside PGDATA were restored beside the data:");
        for (o, p) in &report.external_files {
            out.line(&format!("  {o} -> {}", p.display()));
        }
    }
    if !report.missing_files.is_empty() {
        out.line("");
        out.line("WARNING");
        out.line("The following configuration files have not been saved during backup, hence they have not been restored.");
        out.line("You need to manually restore them in order to start the recovered PostgreSQL instance:");
        for f in &report.missing_files {
            out.line(&format!("    {f}"));
        }
    }
    out.line("");
    out.line(&format!(
        "Restore operation completed (start time: {}, elapsed time: {elapsed:.1} seconds)",
        begin.format("%Y-%m-%d %H:%M:%S")
    ));
    out.line("Your PostgreSQL server has been successfully prepared for recovery!");
    out.line("");
    for l in next_steps(
        dest,
        o,
        r.owner.as_deref(),
        report.recovery_configured,
        report.wal_copied,
    ) {
        out.line(&l);
    }
    Ok(())
}

/// What the operator does next; the same text is in docs/point-in-time-recovery.md.
fn next_steps(
    dest: &Path,
    o: &RestoreOpts,
    owner: Option<&str>,
    recovery: bool,
    wal_copied: usize,
) -> Vec<String> {
    let d = dest.display();
    let mut v = vec!["Next steps".to_string()];
    match owner {
        Some(u) => v.push(format!("  1. The files belong to {u}, the server's user.")),
        None => v.push(format!(
            "  1. The files belong to the user who ran barkeep. Give them to the server's user: chown -R postgres: {d}   (run as root, barkeep does it: --owner USER)"
        )),
    }
    v.push(format!(
        "  2. Start the server: pg_ctl -D {d} start   (or point your service at {d})"
    ));
    if recovery {
        let what = match &o.target {
            Some(t) => format!("replay WAL up to {} and then", describe_target(t)),
            None => "replay all the WAL barkeep has and then".to_string(),
        };
        let action = match (o.target.is_some(), o.target_action.as_deref()) {
            (true, Some("promote")) => "open for writes (promote)",
            (true, Some("shutdown")) => {
                "shut down (recovery.signal stays; remove it and start again to promote)"
            }
            (true, _) => {
                "PAUSE, read-only: check the data, then run SELECT pg_wal_replay_resume(); to promote (or fix the target and restart)"
            }
            (false, _) => "open for writes",
        };
        v.push(format!("  3. Recovery will {what} {action}."));
        v.push("     Follow it in the server log; 'recovery stopping before/after …' names where it stopped,".into());
        v.push(
            "     and SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn(); shows where it is."
                .into(),
        );
        v.push("     If WAL is missing before the target, PostgreSQL stops with FATAL: recovery ended before".into());
        v.push("     the configured target was reached — it does not silently end early.".into());
    } else {
        v.push(format!("  3. Crash recovery replays the {wal_copied} WAL file(s) copied into pg_wal (everything barkeep had), then opens for writes."));
    }
    v.push("  4. After promotion the server starts a new timeline: it is a new history. Re-enable archiving".into());
    v.push("     (archive_command was set to false so this copy cannot write into the original archive)".into());
    v.push("     and take a new backup of it: `barkeep backup SERVER`.".into());
    v
}
