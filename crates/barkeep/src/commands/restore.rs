//! `restore` (alias `recover`): a backup plus WAL → a data directory that stops at the
//! target, then the next steps printed for the operator.

use std::io::Write;
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
    /// `--bwlimit` (kB/s) for the transfer to the remote host.
    pub bwlimit: Option<u64>,
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
    let remote = o
        .remote_ssh_command
        .as_deref()
        .map(split_words)
        .transpose()?;
    if remote.is_some() {
        if !dest.is_absolute() {
            return Err(usage(anyhow!(
                "with --remote-ssh-command the destination must be an absolute path on the remote host"
            )));
        }
        if o.staging_wal_dir.is_some() {
            return Err(usage(anyhow!(
                "--staging-wal-directory cannot be combined with --remote-ssh-command (the WAL travels inside the destination)"
            )));
        }
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
    let mut b = b;
    if b.status() == Status::WaitingForWals {
        // Its WAL may have arrived since: archive what is pending and look again.
        barkeep_backup::archiver::archive_once(&cat, &archive);
        cat.check_backup(&mut b, &archive).map_err(|e| anyhow!(e))?;
        if b.status() == Status::WaitingForWals {
            let missing = cat
                .first_missing_wal(&b, &archive)
                .map_err(|e| anyhow!(e))?
                .unwrap_or_else(|| "?".into());
            return Err(Failure::from(anyhow!(
                "backup {} of server {} is WAITING_FOR_WALS: WAL segment {missing} (needed to make it consistent) is not archived yet\nhint: if the server has not switched WAL since the backup, run `barkeep switch-wal --archive {}`; if WAL streaming is down, start `barkeep receive-wal {}`",
                b.backup_id,
                s.name,
                s.name,
                s.name
            )));
        }
        out.warning(&format!(
            "backup {} was WAITING_FOR_WALS; its WAL is now all archived: it is DONE",
            b.backup_id
        ));
    }
    if b.status() != Status::Done {
        return Err(Failure::from(anyhow!(
            "backup {} of server {} is {}: only DONE backups can be restored{}",
            b.backup_id,
            s.name,
            b.status().as_str(),
            b.get("error")
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
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
    let get_wal_cmd = if get_wal && remote.is_some() {
        // On the remote host, the client calls back to this host over ssh.
        let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| "barman".into());
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        Some(format!(
            "barkeep wal-restore{} -U {} {} {} %f %p",
            if o.standby_mode { "" } else { " -P" },
            sh_quote(&me),
            sh_quote(&host),
            sh_quote(&s.name)
        ))
    } else if get_wal {
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
    let mut tablespace_map: Vec<(String, PathBuf)> = Vec::new();
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
    // Remote: restore into a local staging directory, then ship it with tar over ssh.
    let staging = match &remote {
        Some(_) => Some(
            tempfile::Builder::new()
                .prefix(&format!("barkeep-staging-{}-{}-", s.name, b.backup_id))
                .tempdir_in(config.barman_home())
                .or_else(|_| {
                    tempfile::Builder::new()
                        .prefix("barkeep-staging-")
                        .tempdir()
                })
                .map_err(|e| anyhow!("cannot create a staging directory: {e}"))?,
        ),
        None => None,
    };
    let mut remote_ts: Vec<(String, PathBuf, PathBuf)> = Vec::new(); // name, remote, staged
    if let Some(st) = &staging {
        for t in b.tablespaces() {
            let final_loc = tablespace_map
                .iter()
                .find(|(n, _)| *n == t.name)
                .map(|(_, l)| l.clone())
                .unwrap_or_else(|| PathBuf::from(&t.location));
            let staged = st.path().join(format!("tablespace-{}", t.oid));
            remote_ts.push((t.name.clone(), final_loc, staged.clone()));
        }
        tablespace_map = remote_ts
            .iter()
            .map(|(n, _, st)| (n.clone(), st.clone()))
            .collect();
    }
    let local_dest = staging
        .as_ref()
        .map(|st| st.path().join("data"))
        .unwrap_or_else(|| dest.clone());
    out.line(&format!(
        "Starting {} restore for server {} using backup {}",
        if remote.is_some() { "remote" } else { "local" },
        s.name,
        b.backup_id
    ));
    out.line(&format!("Destination directory: {}", dest.display()));
    if let Some(r) = &remote {
        out.line(&format!("Remote command: {}", r.join(" ")));
        remote_check_empty(r, &dest)?;
        for (n, loc, _) in &remote_ts {
            remote_check_empty(r, loc)
                .map_err(|f| Failure::from(f.error.context(format!("tablespace `{n}`"))))?;
        }
    }
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
        final_dest: remote.as_ref().map(|_| dest.clone()),
    };
    let report = do_restore(&cat, &archive, &b, &local_dest, &req).map_err(|e| anyhow!(e))?;
    if let Some(r) = &remote {
        // Links to where the tablespaces will be on the remote host.
        for t in b.tablespaces() {
            if let Some((_, final_loc, _)) = remote_ts.iter().find(|(n, _, _)| *n == t.name) {
                let link = local_dest.join("pg_tblspc").join(t.oid.to_string());
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink(final_loc, &link)
                    .map_err(|e| anyhow!("cannot write `{}`: {e}", link.display()))?;
            }
        }
        out.line("Copying the restored files to the remote host.");
        ship(r, &local_dest, &dest, o.bwlimit)?;
        for (_, final_loc, staged) in &remote_ts {
            ship(r, staged, final_loc, o.bwlimit)?;
        }
    }
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

/// Splits `--remote-ssh-command` into argv (whitespace, with '…' and "…" quoting); no
/// shell is involved on this side.
fn split_words(s: &str) -> Result<Vec<String>, Failure> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() || any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if quote.is_some() {
        return Err(usage(anyhow!(
            "--remote-ssh-command: unbalanced quote in `{s}`"
        )));
    }
    if !cur.is_empty() || any {
        out.push(cur);
    }
    if out.is_empty() {
        return Err(usage(anyhow!("--remote-ssh-command is empty")));
    }
    Ok(out)
}

fn ssh(argv: &[String], remote_cmd: &str) -> std::process::Command {
    let mut c = std::process::Command::new(&argv[0]);
    c.args(&argv[1..]).arg(remote_cmd);
    c
}

/// A writer that keeps to `kbps` kB/s on average (`--bwlimit`).
struct Throttled<W: Write> {
    inner: W,
    kbps: Option<u64>,
    sent: u64,
    start: Instant,
}

impl<W: Write> Write for Throttled<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sent += n as u64;
        if let Some(k) = self.kbps {
            let due = std::time::Duration::from_secs_f64(self.sent as f64 / (k as f64 * 1024.0));
            if let Some(wait) = due.checked_sub(self.start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Fails unless `dir` is absent or empty on the remote host.
fn remote_check_empty(argv: &[String], dir: &Path) -> Result<(), Failure> {
    let d = sh_quote(&dir.display().to_string());
    let o = ssh(argv, &format!("test ! -e {d} || test -z \"$(ls -A {d})\""))
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| anyhow!("cannot run `{}`: {e}", argv[0]))?;
    match o.status.code() {
        Some(0) => Ok(()),
        Some(255) => Err(Failure::from(anyhow!(
            "ssh to the remote host failed ({}): {}",
            argv.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        ))),
        _ => Err(Failure::from(anyhow!(
            "remote destination `{}` is not empty: restore only into an empty or new directory{}",
            dir.display(),
            if o.stderr.is_empty() {
                String::new()
            } else {
                format!(" ({})", String::from_utf8_lossy(&o.stderr).trim())
            }
        ))),
    }
}

/// Sends `local` to `remote_dir` on the remote host: a tar stream into `tar -x` over ssh.
fn ship(
    argv: &[String],
    local: &Path,
    remote_dir: &Path,
    kbps: Option<u64>,
) -> Result<(), Failure> {
    let d = sh_quote(&remote_dir.display().to_string());
    let mut child = ssh(
        argv,
        &format!("mkdir -p {d} && chmod 700 {d} && tar -x -p -f - -C {d}"),
    )
    .stdin(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .map_err(|e| anyhow!("cannot run `{}`: {e}", argv[0]))?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| anyhow!("ssh has no stdin"))?;
    let sent = (|| -> std::io::Result<()> {
        let mut t = tar::Builder::new(Throttled {
            inner: stdin,
            kbps,
            sent: 0,
            start: Instant::now(),
        });
        t.follow_symlinks(false);
        t.mode(tar::HeaderMode::Complete);
        t.append_dir_all(".", local)?;
        t.into_inner()?.flush()
    })();
    let o = child
        .wait_with_output()
        .map_err(|e| anyhow!("waiting for ssh: {e}"))?;
    if !o.status.success() || sent.is_err() {
        return Err(Failure::from(anyhow!(
            "copying to `{}` on the remote host failed{}: {}",
            remote_dir.display(),
            sent.err().map(|e| format!(" ({e})")).unwrap_or_default(),
            String::from_utf8_lossy(&o.stderr).trim()
        )));
    }
    Ok(())
}
