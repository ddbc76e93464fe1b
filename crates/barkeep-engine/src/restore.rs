//! `restore` (alias `recover`): choosing the backup (`auto`), re-checking one that was
//! waiting for WAL, local or remote (staged here, shipped over ssh as a tar stream)
//! restore, and the typed report the front end renders.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use barkeep_backup::restore::Target;
use barkeep_backup::restore::{RestoreReport, RestoreRequest, restore as do_restore, sh_quote};
use barkeep_catalog::{BackupInfo, CatalogOps, Status};
use serde::Serialize;

use crate::Server;
use crate::error::{EngineError, Result, failed, usage};
use crate::hooks::Phase;

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
    /// `--owner`: run as root, give the restored files to this user.
    pub owner: Option<String>,
}

/// Picks the backup for `auto`: the newest DONE backup that ends before the target.
fn auto_backup(all: &[BackupInfo], target: Option<&Target>) -> Result<BackupInfo> {
    let done = all.iter().rev().filter(|b| b.status == Status::Done);
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
                    usage(format!(
                        "--target-time `{t}`: expected YYYY-MM-DD HH:MM:SS[.fff][+HH:MM]"
                    ))
                })?;
            done.into_iter()
                .find(|b| b.end_time.is_some_and(|e| e <= tt))
        }
        Some(Target::Lsn(l)) => {
            let want: barkeep_wal::Lsn =
                l.parse().map_err(|e| usage(format!("--target-lsn: {e}")))?;
            done.into_iter()
                .find(|b| b.end_xlog.is_some_and(|e| e <= want))
        }
        Some(_) => {
            return Err(usage(
                "`auto` needs --target-time or --target-lsn (or no target); give a backup id for xid, name or immediate targets",
            ));
        }
    };
    found
        .cloned()
        .ok_or_else(|| failed("no DONE backup ends before the requested target"))
}

/// A finished restore.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreDone {
    /// Server.
    pub server: String,
    /// The backup restored.
    pub backup_id: String,
    /// Where the data directory is (on the remote host with `--remote-ssh-command`).
    pub destination_directory: PathBuf,
    /// What was changed, warned about and restored beside the data.
    pub report: RestoreReport,
    /// When the restore started.
    pub started: chrono::DateTime<chrono::Local>,
    /// How long it took, in seconds.
    pub elapsed_seconds: f64,
    /// The user the restored files were given to (run as root); `None`: they belong to
    /// the user who ran barkeep.
    pub owner: Option<String>,
}

impl Server {
    /// `restore SERVER ID DEST`: `id` may be `auto` (the newest DONE backup that ends
    /// before the target); a WAITING_FOR_WALS backup is re-checked (and refused, naming
    /// the first missing segment, when its WAL is still not archived).
    pub fn restore(&self, id: &str, dest: &Path, o: &RestoreOpts) -> Result<RestoreDone> {
        self.not_disabled("restore")?;
        if o.owner.is_some() && !nix::unistd::geteuid().is_root() {
            return Err(usage(
                "--owner needs barkeep to run as root (files can only be given away by root)",
            ));
        }
        if o.owner.is_some() && o.remote_ssh_command.is_some() {
            return Err(usage(
                "--owner applies to a local restore; with --remote-ssh-command the files belong to the ssh user",
            ));
        }
        let name = self.name().to_string();
        let dest_given = dest.display().to_string();
        let remote = o
            .remote_ssh_command
            .as_deref()
            .map(split_words)
            .transpose()?;
        if remote.is_some() {
            if !dest.is_absolute() {
                return Err(usage(
                    "with --remote-ssh-command the destination must be an absolute path on the remote host",
                ));
            }
            if o.staging_wal_dir.is_some() {
                return Err(usage(
                    "--staging-wal-directory cannot be combined with --remote-ssh-command (the WAL travels inside the destination)",
                ));
            }
        }
        if let Some(a) = &o.target_action {
            if !["pause", "shutdown", "promote"].contains(&a.as_str()) {
                return Err(usage(format!(
                    "--target-action `{a}`: expected pause, shutdown or promote"
                )));
            }
            if o.target.is_none() {
                return Err(usage("--target-action needs a recovery target"));
            }
        }
        let cat = self.catalog()?;
        let archive = cat.archive.clone();
        cat.recover_crashed()?;
        let mut b = if id == "auto" {
            auto_backup(&cat.list()?, o.target.as_ref())?
        } else {
            cat.resolve(id)?
        };
        if b.status == Status::WaitingForWals {
            // Its WAL may have arrived since: archive what is pending and look again.
            barkeep_backup::archiver::archive_once(&cat, &archive);
            cat.check_backup(&mut b)?;
            if b.status == Status::WaitingForWals {
                let missing = cat.first_missing_wal(&b)?.unwrap_or_else(|| "?".into());
                return Err(failed(format!(
                    "backup {} of server {name} is WAITING_FOR_WALS: WAL segment {missing} (needed to make it consistent) is not archived yet\nhint: if the server has not switched WAL since the backup, run `barkeep switch-wal --archive {name}`; if WAL streaming is down, start `barkeep receive-wal {name}`",
                    b.backup_id
                )));
            }
            self.events.warning(
                &name,
                format!(
                    "backup {} was WAITING_FOR_WALS; its WAL is now all archived: it is DONE",
                    b.backup_id
                ),
            );
        }
        if b.status != Status::Done {
            return Err(failed(format!(
                "backup {} of server {name} is {}: only DONE backups can be restored{}",
                b.backup_id,
                b.status.as_str(),
                b.error.map(|e| format!(" ({e})")).unwrap_or_default()
            )));
        }
        let dest = if dest.is_absolute() {
            dest.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| failed(format!("cannot find the current directory: {e}")))?
                .join(dest)
        };
        let get_wal = o
            .get_wal
            .unwrap_or_else(|| self.typed().recovery_options.contains(&"get-wal"));
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
                sh_quote(&name)
            ))
        } else if get_wal {
            let exe = std::env::current_exe()
                .map_err(|e| failed(format!("cannot find barkeep's own path: {e}")))?;
            Some(format!(
                "{} -c {} wal-restore --local{} localhost {} %f %p",
                sh_quote(&exe.display().to_string()),
                sh_quote(&self.config.main_file.display().to_string()),
                if o.standby_mode { "" } else { " -P" },
                sh_quote(&name)
            ))
        } else {
            None
        };
        let mut tablespace_map: Vec<(String, PathBuf)> = Vec::new();
        for t in &o.tablespaces {
            let (n, l) = t
                .split_once(':')
                .ok_or_else(|| usage(format!("--tablespace `{t}`: expected NAME:LOCATION")))?;
            if !b.tablespaces().iter().any(|x| x.name == n) {
                return Err(usage(format!(
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
                    .prefix(&format!("barkeep-staging-{name}-{}-", b.backup_id))
                    .tempdir_in(self.config.barman_home())
                    .or_else(|_| {
                        tempfile::Builder::new()
                            .prefix("barkeep-staging-")
                            .tempdir()
                    })
                    .map_err(|e| failed(format!("cannot create a staging directory: {e}")))?,
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
        self.events.step(
            &name,
            format!(
                "Starting {} restore for server {name} using backup {}",
                if remote.is_some() { "remote" } else { "local" },
                b.backup_id
            ),
        );
        self.events
            .step(&name, format!("Destination directory: {}", dest.display()));
        if let Some(r) = &remote {
            self.events
                .step(&name, format!("Remote command: {}", r.join(" ")));
            remote_check_empty(r, &dest)?;
            for (n, loc, _) in &remote_ts {
                remote_check_empty(r, loc).map_err(|e| e.context(format!("tablespace `{n}`")))?;
            }
        }
        if let Some(t) = &o.target {
            self.events.step(
                &name,
                format!("Doing PITR. Recovery target {}", describe_target(t)),
            );
        }
        self.events.step(&name, "Copying the base backup.");
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
            jobs: o.jobs.unwrap_or_else(|| {
                usize::try_from(self.typed().parallel_jobs)
                    .unwrap_or(1)
                    .max(1)
            }),
            recovery_conf_filename: o.recovery_conf_filename.clone(),
            final_dest: remote.as_ref().map(|_| dest.clone()),
            progress: Some(self.progress("restore")),
        };
        let hooks = self.has_hooks("recovery");
        let hook_env = hooks.then(|| self.recovery_env(&cat, &b, &dest_given, o));
        if let Some(env) = &hook_env {
            self.run_hooks("recovery", Phase::Pre, env, None)?;
        }
        let report = do_restore(&cat, &archive, &b, &local_dest, &req)?;
        if let Some(r) = &remote {
            // Links to where the tablespaces will be on the remote host.
            for t in b.tablespaces() {
                if let Some((_, final_loc, _)) = remote_ts.iter().find(|(n, _, _)| *n == t.name) {
                    barkeep_backup::extract::tablespace_link(&local_dest, t.oid, final_loc)?;
                }
            }
            self.events
                .step(&name, "Copying the restored files to the remote host.");
            ship(r, &local_dest, &dest, o.bwlimit)?;
            for (_, final_loc, staged) in &remote_ts {
                ship(r, staged, final_loc, o.bwlimit)?;
            }
        }
        // Run as root, the restored tree goes to the server's user.
        let owner = if remote.is_none() && nix::unistd::geteuid().is_root() {
            let mut roots = vec![dest.clone()];
            roots.extend(req.tablespace_map.iter().map(|(_, l)| l.clone()));
            for t in b.tablespaces() {
                if !req.tablespace_map.iter().any(|(n, _)| *n == t.name) {
                    roots.push(PathBuf::from(&t.location));
                }
            }
            roots.extend(o.staging_wal_dir.clone());
            hand_over(&dest, o.owner.as_deref(), &roots)?
        } else {
            None
        };
        if let Some(env) = &hook_env {
            self.run_hooks("recovery", Phase::Post, env, None)?;
        }
        Ok(RestoreDone {
            server: name,
            backup_id: b.backup_id.clone(),
            destination_directory: dest,
            report,
            started: begin,
            elapsed_seconds: started.elapsed().as_secs_f64(),
            owner,
        })
    }
}

/// Gives the restored trees to `owner` (or, without one, to the owner of `dest`'s parent
/// directory when that is not root). Returns the user's name, `None` when nothing changed.
fn hand_over(dest: &Path, owner: Option<&str>, roots: &[PathBuf]) -> Result<Option<String>> {
    use std::os::unix::fs::MetadataExt;
    let (uid, gid, name) = match owner {
        Some(n) => {
            let u = nix::unistd::User::from_name(n)
                .map_err(|e| failed(format!("--owner {n}: cannot look the user up: {e}")))?
                .ok_or_else(|| usage(format!("--owner {n}: no such user on this host")))?;
            (u.uid.as_raw(), u.gid.as_raw(), u.name)
        }
        None => {
            let parent = dest.parent().unwrap_or(Path::new("/"));
            let meta = std::fs::metadata(parent).map_err(|e| EngineError::io("stat", parent, e))?;
            if meta.uid() == 0 {
                return Ok(None);
            }
            let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(meta.uid()))
                .ok()
                .flatten()
                .map_or_else(|| meta.uid().to_string(), |u| u.name);
            (meta.uid(), meta.gid(), name)
        }
    };
    fn walk(p: &Path, uid: u32, gid: u32) -> Result<()> {
        std::os::unix::fs::lchown(p, Some(uid), Some(gid))
            .map_err(|e| EngineError::io("change the owner of", p, e))?;
        let meta = std::fs::symlink_metadata(p).map_err(|e| EngineError::io("stat", p, e))?;
        if meta.is_dir() {
            for e in std::fs::read_dir(p).map_err(|e| EngineError::io("list", p, e))? {
                let e = e.map_err(|e| EngineError::io("list", p, e))?;
                walk(&e.path(), uid, gid)?;
            }
        }
        Ok(())
    }
    for r in roots {
        if r.exists() {
            walk(r, uid, gid)?;
        }
    }
    Ok(Some(name))
}

impl Server {
    /// `env_from_recover`: the backup's variables plus the destination as given, the
    /// relocated tablespaces and the remote command as given, and the other options
    /// that were set, as Barman's JSON.
    fn recovery_env(
        &self,
        cat: &barkeep_catalog::LocalCatalog,
        b: &BackupInfo,
        dest: &str,
        o: &RestoreOpts,
    ) -> crate::hooks::Env {
        use crate::hooks::{PyVal, py_json};
        use std::collections::BTreeMap;
        let mut env = self.backup_env(cat, b);
        let tablespaces: BTreeMap<String, PyVal> = o
            .tablespaces
            .iter()
            .filter_map(|t| t.split_once(':'))
            .map(|(n, l)| (n.to_string(), PyVal::Str(l.to_string())))
            .collect();
        let mut opts: BTreeMap<String, PyVal> = BTreeMap::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                opts.insert(k.to_string(), PyVal::Str(v));
            }
        };
        match &o.target {
            Some(Target::Time(t)) => put("target_time", Some(t.clone())),
            Some(Target::Xid(x)) => put("target_xid", Some(x.clone())),
            Some(Target::Lsn(l)) => put("target_lsn", Some(l.clone())),
            Some(Target::Name(n)) => put("target_name", Some(n.clone())),
            Some(Target::Immediate) | None => {}
        }
        put("target_tli", o.target_tli.clone());
        put("target_action", o.target_action.clone());
        put("recovery_conf_filename", o.recovery_conf_filename.clone());
        if matches!(o.target, Some(Target::Immediate)) {
            opts.insert("target_immediate".into(), PyVal::True);
        }
        if o.exclusive {
            opts.insert("exclusive".into(), PyVal::True);
        }
        if o.standby_mode {
            opts.insert("standby_mode".into(), PyVal::True);
        }
        env.insert("BARMAN_DESTINATION_DIRECTORY", dest.to_string());
        env.insert(
            "BARMAN_TABLESPACES",
            if tablespaces.is_empty() {
                String::new()
            } else {
                py_json(&tablespaces)
            },
        );
        env.insert(
            "BARMAN_REMOTE_COMMAND",
            o.remote_ssh_command.clone().unwrap_or_default(),
        );
        env.insert(
            "BARMAN_RECOVER_OPTIONS",
            if opts.is_empty() {
                String::new()
            } else {
                py_json(&opts)
            },
        );
        env.insert("BARMAN_ERROR", String::new());
        env
    }
}

/// A recovery target as Barman prints it (`time: '2026-01-01 00:00:00'`).
pub fn describe_target(t: &Target) -> String {
    match t {
        Target::Time(v) => format!("time: '{v}'"),
        Target::Xid(v) => format!("xid: '{v}'"),
        Target::Lsn(v) => format!("LSN: '{v}'"),
        Target::Name(v) => format!("name: '{v}'"),
        Target::Immediate => "immediate: the end of the backup (consistency)".into(),
    }
}

/// Splits `--remote-ssh-command` into argv with POSIX shell-word rules; no shell is
/// involved on this side.
fn split_words(s: &str) -> Result<Vec<String>> {
    let words =
        shell_words::split(s).map_err(|e| usage(format!("--remote-ssh-command `{s}`: {e}")))?;
    if words.is_empty() {
        return Err(usage("--remote-ssh-command is empty"));
    }
    Ok(words)
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
fn remote_check_empty(argv: &[String], dir: &Path) -> Result<()> {
    let d = sh_quote(&dir.display().to_string());
    let o = ssh(argv, &format!("test ! -e {d} || test -z \"$(ls -A {d})\""))
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| failed(format!("cannot run `{}`: {e}", argv[0])))?;
    match o.status.code() {
        Some(0) => Ok(()),
        Some(255) => Err(failed(format!(
            "ssh to the remote host failed ({}): {}",
            argv.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        ))),
        _ => Err(failed(format!(
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
fn ship(argv: &[String], local: &Path, remote_dir: &Path, kbps: Option<u64>) -> Result<()> {
    let d = sh_quote(&remote_dir.display().to_string());
    let mut child = ssh(
        argv,
        &format!("mkdir -p {d} && chmod 700 {d} && tar -x -p -f - -C {d}"),
    )
    .stdin(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .map_err(|e| failed(format!("cannot run `{}`: {e}", argv[0])))?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| failed("ssh has no stdin"))?;
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
        .map_err(|e| EngineError::Failed(format!("waiting for ssh: {e}")))?;
    if !o.status.success() || sent.is_err() {
        return Err(failed(format!(
            "copying to `{}` on the remote host failed{}: {}",
            remote_dir.display(),
            sent.err().map(|e| format!(" ({e})")).unwrap_or_default(),
            String::from_utf8_lossy(&o.stderr).trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_ssh_command_is_split_like_a_shell_would() {
        assert_eq!(
            split_words("ssh -p 2222 'postgres@db 1' \"-o X=y\"").expect("split"),
            vec!["ssh", "-p", "2222", "postgres@db 1", "-o X=y"]
        );
        assert!(split_words("ssh 'open").expect_err("unbalanced").is_usage());
        assert!(split_words("  ").expect_err("empty").is_usage());
    }
}
