//! `restore` (alias `recover`): a backup plus WAL → a data directory that stops at the
//! target, then the next steps printed for the operator.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::anyhow;
use barkeep_backup::restore::{RestoreRequest, Target, restore as do_restore, sh_quote};
use barkeep_backup::{BackupInfo, Status};
use barkeep_config::Config;
use serde_json::json;

use super::backup::catalog_for;
use super::wal::archive_for;
use crate::cli::Format;
use crate::{Failure, Output, usage};

/// Options of `restore`.
#[derive(Debug, Clone, Default)]
pub struct RestoreOpts {
    /// The target.
    pub target: Option<Target>,
    /// `--target-tli`.
    pub target_tli: Option<String>,
    /// `--exclusive`.
    pub exclusive: bool,
    /// `--target-action`.
    pub target_action: Option<String>,
    /// `--standby-mode`.
    pub standby_mode: bool,
    /// `--tablespace`.
    pub tablespaces: Vec<String>,
    /// `--get-wal` / `--no-get-wal`.
    pub get_wal: Option<bool>,
    /// `--staging-wal-directory`.
    pub staging_wal_dir: Option<PathBuf>,
    /// `-j`.
    pub jobs: Option<usize>,
    /// `--recovery-conf-filename`.
    pub recovery_conf_filename: Option<String>,
    /// `--remote-ssh-command`.
    pub remote_ssh_command: Option<String>,
}

/// Picks the backup for `auto`: the newest DONE backup that ends before the target.
fn auto_backup(all: &[BackupInfo], target: Option<&Target>) -> Result<BackupInfo, Failure> {
    let done = all.iter().rev().filter(|b| b.status() == Status::Done);
    let found = match target {
        None => done.into_iter().next(),
        Some(Target::Time(t)) => {
            let tt = chrono::DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%#z")
                .or_else(|_| {
                    chrono::DateTime::parse_from_str(
                        &format!("{t}+00:00"),
                        "%Y-%m-%d %H:%M:%S%.f%#z",
                    )
                })
                .map_err(|_| {
                    usage(anyhow!(
                        "--target-time `{t}`: expected YYYY-MM-DD HH:MM:SS[.fff][+HH:MM]"
                    ))
                })?;
            done.into_iter()
                .find(|b| b.time("end_time").is_some_and(|e| e <= tt))
        }
        Some(Target::Lsn(l)) => {
            let want: barkeep_wal::Lsn =
                l.parse().map_err(|e| usage(anyhow!("--target-lsn: {e}")))?;
            done.into_iter().find(|b| {
                b.get("end_xlog")
                    .and_then(|e| e.parse::<barkeep_wal::Lsn>().ok())
                    .is_some_and(|e| e <= want)
            })
        }
        Some(_) => {
            return Err(usage(anyhow!(
                "`auto` needs --target-time or --target-lsn (or no target); give a backup id for xid, name or immediate targets"
            )));
        }
    };
    found
        .cloned()
        .ok_or_else(|| Failure::from(anyhow!("no DONE backup ends before the requested target")))
}

/// `restore SERVER ID DEST`.
pub fn restore(
    config: &Config,
    server: &str,
    id: &str,
    dest: &Path,
    o: &RestoreOpts,
    out: &mut Output,
) -> Result<(), Failure> {
    if o.remote_ssh_command.is_some() {
        return Err(usage(anyhow!(
            "--remote-ssh-command: remote restores are not supported yet; restore locally and copy, or run barkeep on the destination host"
        )));
    }
    if let Some(a) = &o.target_action {
        if !["pause", "shutdown", "promote"].contains(&a.as_str()) {
            return Err(usage(anyhow!(
                "--target-action `{a}`: expected pause, shutdown or promote"
            )));
        }
        if o.target.is_none() {
            return Err(usage(anyhow!("--target-action needs a recovery target")));
        }
    }
    let s = super::select(config, &[server.to_string()])?[0];
    let cat = catalog_for(config, s)?;
    let archive = archive_for(config, s)?;
    cat.recover_crashed().map_err(|e| anyhow!(e))?;
    let b = if id == "auto" {
        auto_backup(&cat.list().map_err(|e| anyhow!(e))?, o.target.as_ref())?
    } else {
        cat.resolve(id).map_err(|e| anyhow!(e))?
    };
    if b.status() != Status::Done {
        return Err(Failure::from(anyhow!(
            "backup {} of server {} is {}: only DONE backups can be restored",
            b.backup_id,
            s.name,
            b.status().as_str()
        )));
    }
    let dest = if dest.is_absolute() {
        dest.to_path_buf()
    } else {
        std::env::current_dir().map_err(|e| anyhow!(e))?.join(dest)
    };
    let get_wal = o
        .get_wal
        .unwrap_or_else(|| s.list("recovery_options").contains(&"get-wal"));
    let get_wal_cmd = if get_wal {
        let exe =
            std::env::current_exe().map_err(|e| anyhow!("cannot find barkeep's own path: {e}"))?;
        Some(format!(
            "{} -c {} wal-restore --local{} localhost {} %f %p",
            sh_quote(&exe.display().to_string()),
            sh_quote(&config.main_file.display().to_string()),
            if o.standby_mode { "" } else { " -P" },
            sh_quote(&s.name)
        ))
    } else {
        None
    };
    let mut tablespace_map = Vec::new();
    for t in &o.tablespaces {
        let (n, l) = t
            .split_once(':')
            .ok_or_else(|| usage(anyhow!("--tablespace `{t}`: expected NAME:LOCATION")))?;
        if !b.tablespaces().iter().any(|x| x.name == n) {
            return Err(usage(anyhow!(
                "--tablespace: backup {} has no tablespace `{n}`",
                b.backup_id
            )));
        }
        tablespace_map.push((n.to_string(), PathBuf::from(l)));
    }
    out.line(&format!(
        "Starting local restore for server {} using backup {}",
        s.name, b.backup_id
    ));
    out.line(&format!("Destination directory: {}", dest.display()));
    if let Some(t) = &o.target {
        out.line(&format!("Doing PITR. Recovery target {}", describe(t)));
    }
    out.line("Copying the base backup.");
    let started = Instant::now();
    let begin = chrono::Local::now();
    let req = RestoreRequest {
        target: o.target.clone(),
        target_tli: o.target_tli.clone(),
        exclusive: o.exclusive,
        target_action: o.target_action.clone(),
        standby_mode: o.standby_mode,
        tablespace_map,
        get_wal: get_wal_cmd,
        staging_wal_dir: o.staging_wal_dir.clone(),
        jobs: o
            .jobs
            .unwrap_or_else(|| s.int("parallel_jobs").unwrap_or(1) as usize),
        recovery_conf_filename: o.recovery_conf_filename.clone(),
    };
    let report = do_restore(&cat, &archive, &b, &dest, &req).map_err(|e| anyhow!(e))?;
    let elapsed = started.elapsed().as_secs_f64();
    if out.format() == Format::Json {
        out.json().insert(
            s.name.clone(),
            json!({
                "backup_id": b.backup_id,
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
    for l in next_steps(&dest, o, report.recovery_configured, report.wal_copied) {
        out.line(&l);
    }
    Ok(())
}

fn describe(t: &Target) -> String {
    match t {
        Target::Time(v) => format!("time: '{v}'"),
        Target::Xid(v) => format!("xid: '{v}'"),
        Target::Lsn(v) => format!("LSN: '{v}'"),
        Target::Name(v) => format!("name: '{v}'"),
        Target::Immediate => "immediate: the end of the backup (consistency)".into(),
    }
}

/// What the operator does next; the same text is in docs/point-in-time-recovery.md.
fn next_steps(dest: &Path, o: &RestoreOpts, recovery: bool, wal_copied: usize) -> Vec<String> {
    let d = dest.display();
    let mut v = vec![
        "Next steps".to_string(),
        format!(
            "  1. The files belong to the user who ran barkeep. Give them to the server's user: chown -R postgres: {d}"
        ),
        format!("  2. Start the server: pg_ctl -D {d} start   (or point your service at {d})"),
    ];
    if recovery {
        let what = match &o.target {
            Some(t) => format!("replay WAL up to {} and then", describe(t)),
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
