//! Restoring a backup into a data directory that starts and stops exactly at the target
//! (PostgreSQL 12+ recovery model, protocol reference §9):
//!
//! - the backup's files are copied (plain, in parallel) or extracted (tar), tablespaces
//!   to their original or new locations, `pg_tblspc` links rewritten, mode 0700;
//! - configuration files kept outside PGDATA are restored beside the data;
//! - WAL: with `get_wal`, `restore_command` asks barkeep for each segment; otherwise the
//!   WAL is copied (decompressed) — into `pg_wal` when there is no target (crash recovery
//!   replays everything available, the newest streamed `.partial` included), or into a
//!   staging directory with `restore_command = cp …` for a point-in-time target;
//! - `recovery.signal` (or `standby.signal`) and the recovery settings are written to
//!   `postgresql.auto.conf`; `archive_command` is disabled so the copy cannot write into
//!   the archive; dangerous settings are reported.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use barkeep_archive::ServerArchive;
use barkeep_archive::names::WalName;
use barkeep_wal::SegmentSize;

use crate::error::{BackupError, Result};
use barkeep_catalog::BackupInfo;
use barkeep_catalog::{LocalCatalog as Catalog, WalRange};

/// A recovery target (at most one).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Target {
    /// `recovery_target_time`.
    Time(String),
    /// `recovery_target_xid`.
    Xid(String),
    /// `recovery_target_lsn`.
    Lsn(String),
    /// `recovery_target_name`.
    Name(String),
    /// `recovery_target = 'immediate'`.
    Immediate,
}

/// What `restore` was asked.
#[derive(Debug, Clone, Default)]
pub struct RestoreRequest {
    /// Target, if any.
    pub target: Option<Target>,
    /// `--target-tli`.
    pub target_tli: Option<String>,
    /// `--exclusive`.
    pub exclusive: bool,
    /// `--target-action`.
    pub target_action: Option<String>,
    /// `--standby-mode`.
    pub standby_mode: bool,
    /// `--tablespace NAME:LOCATION`.
    pub tablespace_map: Vec<(String, PathBuf)>,
    /// `restore_command` through barkeep (`Some(command prefix)`), else WAL is copied.
    pub get_wal: Option<String>,
    /// `--staging-wal-directory`.
    pub staging_wal_dir: Option<PathBuf>,
    /// `-j`.
    pub jobs: usize,
    /// `--recovery-conf-filename` (default `postgresql.auto.conf`).
    pub recovery_conf_filename: Option<String>,
    /// Where the data directory will finally be, when it is restored in a staging
    /// directory and shipped elsewhere (`--remote-ssh-command`): paths written into the
    /// recovery settings use it.
    pub final_dest: Option<PathBuf>,
    /// Called with (bytes copied, bytes to copy) as the data files of a plain backup are
    /// copied.
    pub progress: Option<crate::take::ProgressFn>,
}

/// What a restore did, for the summary.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RestoreReport {
    /// Settings changed: (file, line, text).
    pub changes: Vec<(String, usize, String)>,
    /// Settings to review: (file, line, text).
    pub warnings: Vec<(String, usize, String)>,
    /// Configuration files restored beside the data: (original path, restored path).
    pub external_files: Vec<(String, PathBuf)>,
    /// Configuration files the backup does not have.
    pub missing_files: Vec<String>,
    /// Whether recovery settings were written (PITR, get-wal or standby).
    pub recovery_configured: bool,
    /// WAL files copied.
    pub wal_copied: usize,
}

fn io(action: &str, path: &Path) -> impl Fn(std::io::Error) -> BackupError {
    let action = action.to_string();
    let path = path.to_path_buf();
    move |e| BackupError::io(action.clone(), path.clone(), e)
}

/// Single-quotes a value for postgresql.conf (`'` doubled).
fn conf_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Quotes one argument for the shell PostgreSQL runs `restore_command` with.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The name of the effective user, for error messages.
fn current_user() -> String {
    let uid = nix::unistd::geteuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

/// Left at the top of a destination while a restore writes it, removed last: a
/// destination holding it is an interrupted restore of barkeep's, which the next restore
/// empties and writes again (no person needed). `global/pg_control` is written just
/// before it goes, so PostgreSQL refuses to start on a half-written copy.
pub const IN_PROGRESS: &str = ".barkeep-restore-in-progress";

/// The destination must not exist or be empty (or hold an interrupted restore, which is
/// emptied); it is created with mode 0700 and marked in progress.
fn prepare_dir(dest: &Path, what: &str) -> Result<()> {
    // Killed before its mark was in place, a restore leaves only its own probe or the
    // mark's temporary file: that is an interrupted restore too.
    let only_ours = fs::read_dir(dest).is_ok_and(|rd| {
        let names: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        !names.is_empty()
            && names.iter().all(|n| {
                n.trim_start_matches('.')
                    .starts_with(IN_PROGRESS.trim_start_matches('.'))
            })
    });
    if dest.join(IN_PROGRESS).is_file() || only_ours {
        tracing::warn!(
            "{what} `{}` holds a restore that was interrupted: emptying it and restoring again",
            dest.display()
        );
        for e in fs::read_dir(dest).map_err(io("list", dest))?.flatten() {
            let p = e.path();
            let r = if e.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            r.map_err(io("remove", &p))?;
        }
    }
    if dest.exists() {
        let mut rd = fs::read_dir(dest).map_err(io("list", dest))?;
        if rd.next().is_some() {
            return Err(BackupError::Other(format!(
                "{what} `{}` is not empty: restore only into an empty or new directory",
                dest.display()
            )));
        }
    }
    fs::create_dir_all(dest).map_err(|e| {
        let user = current_user();
        BackupError::Other(format!(
            "cannot create {what} `{}` as user `{user}`: {e}",
            dest.display()
        ))
    })?;
    fs::set_permissions(dest, fs::Permissions::from_mode(0o700)).map_err(io("chmod 0700", dest))?;
    // Writable by us?
    let probe = dest.join(format!("{IN_PROGRESS}.probe"));
    fs::write(&probe, b"").map_err(|e| {
        let user = current_user();
        BackupError::Other(format!(
            "{what} `{}` is not writable by user `{user}`: {e}",
            dest.display()
        ))
    })?;
    let _ = fs::remove_file(probe);
    barkeep_archive::durable::write_file_atomic(&dest.join(IN_PROGRESS), b"barkeep restore\n")?;
    Ok(())
}

/// Where the restored `pg_control` comes from at the end of a restore.
#[derive(Debug)]
enum Control {
    /// Copied from the backup's data directory (plain backups).
    Copy(PathBuf),
    /// Renamed back from where extraction set it aside (tar backups).
    SetAside(PathBuf),
}

/// The end of a restore: `pg_control` in place, then the in-progress marks removed.
fn finish_dirs(control: &Control, to: &Path, dirs: &[&Path]) -> Result<()> {
    match control {
        Control::SetAside(from) if from.exists() => {
            barkeep_archive::durable::rename_durable(from, to)?;
        }
        Control::Copy(from) if from.exists() => {
            fs::copy(from, to).map_err(io("copy", from))?;
            fs::set_permissions(
                to,
                fs::Permissions::from_mode(barkeep_archive::durable::file_mode()),
            )
            .map_err(io("chmod", to))?;
            barkeep_archive::durable::fsync_file(to)?;
            barkeep_archive::durable::fsync_dir(to.parent().unwrap_or(Path::new(".")))?;
        }
        _ => {}
    }
    for d in dirs {
        let m = d.join(IN_PROGRESS);
        if m.exists() {
            barkeep_archive::durable::remove_durable(&m)?;
        }
    }
    Ok(())
}

/// Copies a tree (regular files, directories, symlinks as they are) with `jobs` threads.
fn copy_tree(
    src: &Path,
    dst: &Path,
    jobs: usize,
    skip_top: &[&str],
    progress: Option<&crate::take::ProgressFn>,
) -> Result<()> {
    let mut files: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut stack = vec![(src.to_path_buf(), dst.to_path_buf(), true)];
    while let Some((s, d, top)) = stack.pop() {
        fs::create_dir_all(&d).map_err(io("create directory", &d))?;
        for e in fs::read_dir(&s).map_err(io("list", &s))? {
            let e = e.map_err(io("list", &s))?;
            let name = e.file_name();
            if top && skip_top.iter().any(|n| name == *n) {
                continue;
            }
            let m = e.path().symlink_metadata().map_err(io("stat", &e.path()))?;
            let to = d.join(&name);
            if m.is_dir() {
                stack.push((e.path(), to, false));
            } else if m.file_type().is_symlink() {
                let target = fs::read_link(e.path()).map_err(io("read link", &e.path()))?;
                std::os::unix::fs::symlink(target, &to).map_err(io("create symlink", &to))?;
            } else if e.path() != src.join("global").join("pg_control") {
                // pg_control is written last (see IN_PROGRESS).
                files.push((e.path(), to));
            }
        }
    }
    let total: u64 = files
        .iter()
        .filter_map(|(f, _)| f.symlink_metadata().ok())
        .map(|m| m.len())
        .sum();
    let done = std::sync::atomic::AtomicU64::new(0);
    let copy = |(from, to): &(PathBuf, PathBuf)| -> Result<()> {
        // fs::copy gives the copy the source's mode: narrow it (a catalog written by
        // Barman under a 022 umask holds 0644 files).
        fs::copy(from, to)
            .and_then(|_| {
                let mode = fs::metadata(to)?.permissions().mode();
                let private = barkeep_archive::durable::private_mode(mode);
                if private != mode & 0o7777 {
                    fs::set_permissions(to, fs::Permissions::from_mode(private))?;
                }
                fs::File::open(to).and_then(|f| f.sync_all())
            })
            .map_err(|e| BackupError::io(format!("copy `{}` to", from.display()), to.clone(), e))?;
        if let Some(p) = progress {
            let len = from.symlink_metadata().map(|m| m.len()).unwrap_or(0);
            let now = done.fetch_add(len, std::sync::atomic::Ordering::Relaxed) + len;
            (p.0)(now, total);
        }
        Ok(())
    };
    use rayon::prelude::*;
    rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .thread_name(|i| format!("restore-copy-{i}"))
        .build()
        .map_err(|e| BackupError::Other(format!("cannot start {jobs} copy threads: {e}")))?
        .install(|| files.par_iter().try_for_each(copy))?;
    crate::extract::fsync_dirs(dst)
}

/// The chain of backup `b`, its full root first and `b` last (just `b` for a full
/// backup): every ancestor in the catalog, DONE, plain. The error names the backup that
/// breaks it.
pub fn chain_of(cat: &Catalog, b: &BackupInfo) -> Result<Vec<BackupInfo>> {
    use barkeep_catalog::CatalogStore;
    let mut chain = vec![b.clone()];
    let mut child = b.clone();
    while let Some(pid) = child.parent_backup_id.clone() {
        let broken = |why: String| {
            BackupError::Catalog(format!(
                "backup {} is incremental and its chain is broken: {why}; it cannot be restored",
                b.backup_id
            ))
        };
        let Some(p) = cat.read_info(&pid)? else {
            return Err(broken(format!(
                "its ancestor {pid} (parent of {}) is not in the catalog of server `{}`",
                child.backup_id, cat.server
            )));
        };
        if p.status != barkeep_catalog::Status::Done {
            return Err(broken(format!(
                "its ancestor {pid} (parent of {}) is {}",
                child.backup_id,
                p.status.as_str()
            )));
        }
        if p.compression.is_some() || !cat.data_dir(&pid).join("backup_manifest").is_file() {
            return Err(broken(format!(
                "its ancestor {pid} (parent of {}) is not a plain backup with a manifest in `{}`",
                child.backup_id,
                cat.data_dir(&pid).display()
            )));
        }
        if chain.len() > 10_000 || chain.iter().any(|x| x.backup_id == pid) {
            return Err(broken(format!("backup {pid} is its own ancestor")));
        }
        chain.push(p.clone());
        child = p;
    }
    chain.reverse();
    Ok(chain)
}

/// Restores backup `b` of `cat` into `dest`.
pub fn restore(
    cat: &Catalog,
    archive: &ServerArchive,
    b: &BackupInfo,
    dest: &Path,
    req: &RestoreRequest,
) -> Result<RestoreReport> {
    let mut report = RestoreReport::default();
    check_wal_available(archive, b, req.target.as_ref())?;
    // An incremental backup: its whole chain is checked before anything is written.
    let chain = chain_of(cat, b)?;
    let members: Vec<crate::combine::ChainBackup> = chain
        .iter()
        .map(|x| crate::combine::ChainBackup {
            id: x.backup_id.clone(),
            data_dir: cat.data_dir(&x.backup_id),
            tablespaces: x
                .tablespaces()
                .iter()
                .map(|t| (t.oid, cat.backup_root(&x.backup_id).join(t.oid.to_string())))
                .collect(),
        })
        .collect();
    if members.len() > 1 {
        crate::combine::check_chain(&members).map_err(|e| {
            BackupError::Other(format!(
                "backup {} cannot be restored, nothing was written: {}",
                b.backup_id,
                barkeep_archive::error::chain(&e)
            ))
        })?;
    }
    prepare_dir(dest, "destination directory")?;
    let data = cat.data_dir(&b.backup_id);
    let root = cat.backup_root(&b.backup_id);
    let jobs = req.jobs.max(1);

    // Tablespace destinations: original location, or --tablespace NAME:LOCATION.
    let mut ts_dest: Vec<(u32, PathBuf)> = Vec::new();
    for t in b.tablespaces() {
        let to = req
            .tablespace_map
            .iter()
            .find(|(n, _)| *n == t.name)
            .map(|(_, l)| l.clone())
            .unwrap_or_else(|| PathBuf::from(&t.location));
        prepare_dir(&to, &format!("tablespace `{}` location", t.name))?;
        ts_dest.push((t.oid, to));
    }

    // pg_control goes in last: from the backup (plain), or set aside after extraction.
    let control_aside = dest.join("global").join(".pg_control.barkeep-restore");
    let control: Control;
    if members.len() > 1 {
        // PostgreSQL 17+ incremental chain: combined natively into the destination.
        control = Control::Copy(data.join("global").join("pg_control"));
        let combined = crate::combine::combine(
            &members,
            &crate::combine::CombineTarget {
                data_dir: dest.to_path_buf(),
                tablespaces: ts_dest.iter().cloned().collect(),
                skip: vec!["global/pg_control".into()],
                jobs,
                progress: req.progress.clone(),
            },
        )?;
        tracing::info!(
            "backup {}: combined from a chain of {} backups ({} files, {} rebuilt from incremental files)",
            b.backup_id,
            members.len(),
            combined.files,
            combined.reconstructed
        );
        fs::create_dir_all(dest.join("pg_tblspc")).map_err(io("create", dest))?;
    } else if b.compression.is_none() && data.join("global").is_dir() {
        control = Control::Copy(data.join("global").join("pg_control"));
        copy_tree(&data, dest, jobs, &["pg_tblspc"], req.progress.as_ref())?;
        fs::create_dir_all(dest.join("pg_tblspc")).map_err(io("create", dest))?;
        for (oid, to) in &ts_dest {
            copy_tree(
                &root.join(oid.to_string()),
                to,
                jobs,
                &[],
                req.progress.as_ref(),
            )?;
        }
    } else {
        crate::extract::extract_tar_backup(&data, dest, |oid| {
            ts_dest
                .iter()
                .find(|(o, _)| *o == oid)
                .map(|(_, p)| p.clone())
                .ok_or_else(|| {
                    BackupError::Catalog(format!(
                        "archive of tablespace {oid} has no tablespace in backup.info of backup {}",
                        b.backup_id
                    ))
                })
        })?;
        let extracted = dest.join("global").join("pg_control");
        if extracted.exists() {
            barkeep_archive::durable::rename_durable(&extracted, &control_aside)?;
        }
        control = Control::SetAside(control_aside);
        crate::extract::fsync_dirs(dest)?;
    }
    // pg_tblspc links to where the tablespaces now are.
    for (oid, to) in &ts_dest {
        crate::extract::tablespace_link(dest, *oid, to)?;
    }
    fs::set_permissions(dest, fs::Permissions::from_mode(0o700)).map_err(io("chmod 0700", dest))?;
    // As Barman: the manifest set aside, the backup's metadata kept.
    let manifest = dest.join("backup_manifest");
    if manifest.exists() {
        fs::rename(
            &manifest,
            dest.join(format!("backup_manifest.{}", b.backup_id)),
        )
        .map_err(io("rename", &manifest))?;
    }
    fs::write(dest.join(".barman-recover.info"), b.to_text()).map_err(io("write", dest))?;

    // Configuration files kept outside PGDATA: beside the data, and the main ones in it.
    let ext_root = root.join("external_config");
    let pgdata = b.pgdata.clone().unwrap_or_default();
    let mut wanted: Vec<(String, Option<&str>)> = Vec::new();
    for (value, name) in [
        (&b.config_file, "postgresql.conf"),
        (&b.hba_file, "pg_hba.conf"),
        (&b.ident_file, "pg_ident.conf"),
    ] {
        if let Some(f) = value
            && !(f.starts_with(&format!("{}/", pgdata.trim_end_matches('/'))))
        {
            wanted.push((f.to_string(), Some(name)));
        }
    }
    for f in b.included_files() {
        wanted.push((f.clone(), None));
    }
    let beside = dest.join("barman_external_config");
    for (orig, in_data) in wanted {
        let saved = ext_root.join(orig.trim_start_matches('/'));
        if !saved.is_file() {
            report.missing_files.push(orig);
            continue;
        }
        let to = beside.join(orig.trim_start_matches('/'));
        fs::create_dir_all(to.parent().unwrap_or(&beside)).map_err(io("create", &to))?;
        fs::copy(&saved, &to).map_err(io("copy", &saved))?;
        if let Some(name) = in_data
            && !dest.join(name).exists()
        {
            fs::copy(&saved, dest.join(name)).map_err(io("copy", &saved))?;
        }
        report.external_files.push((orig, to));
    }

    let seg =
        SegmentSize::new(b.segment_size()).map_err(|e| BackupError::Catalog(e.to_string()))?;
    // Crash recovery (WAL in pg_wal, no recovery.signal) replays only the backup's own
    // timeline: when the archive holds a later one (a promotion after the backup), the
    // latest point is on it and only archive recovery (recovery_target_timeline =
    // latest) gets there — else every transaction after the switch would be silently
    // left out.
    let later_timeline = b
        .timeline
        .is_some_and(|tli| has_later_timeline(archive, tli));
    let pitr = req.target.is_some() || req.target_tli.is_some() || later_timeline;
    let mut settings: Vec<String> = Vec::new();
    if let Some(cmd) = &req.get_wal {
        settings.push(format!("restore_command = {}", conf_quote(cmd)));
        report.recovery_configured = true;
    } else if pitr || req.standby_mode {
        let staging = req
            .staging_wal_dir
            .clone()
            .unwrap_or_else(|| dest.join("barman_wal"));
        fs::create_dir_all(&staging).map_err(io("create", &staging))?;
        report.wal_copied = copy_wal(archive, b, seg, &staging, req.target.as_ref())?;
        // The path as the server will see it (shipped elsewhere with a remote restore).
        let seen = match (&req.final_dest, &req.staging_wal_dir) {
            (Some(f), None) => f.join("barman_wal"),
            _ => staging.clone(),
        };
        settings.push(format!(
            "restore_command = {}",
            conf_quote(&format!(
                "cp {}/%f %p",
                sh_quote(&seen.display().to_string())
            ))
        ));
        report.recovery_configured = true;
    } else {
        // No target: every available WAL into pg_wal; crash recovery replays it all.
        let pg_wal = dest.join("pg_wal");
        fs::create_dir_all(pg_wal.join("archive_status")).map_err(io("create", &pg_wal))?;
        report.wal_copied = copy_wal(archive, b, seg, &pg_wal, None)?;
        for e in fs::read_dir(&pg_wal)
            .map_err(io("list", &pg_wal))?
            .flatten()
        {
            let n = e.file_name().to_string_lossy().into_owned();
            if WalName::parse(&n).is_some() {
                fs::write(pg_wal.join("archive_status").join(format!("{n}.done")), b"")
                    .map_err(io("write", &pg_wal))?;
            }
        }
    }
    if report.recovery_configured || req.standby_mode {
        match &req.target {
            Some(Target::Time(t)) => {
                settings.push(format!("recovery_target_time = {}", conf_quote(t)))
            }
            Some(Target::Xid(x)) => {
                settings.push(format!("recovery_target_xid = {}", conf_quote(x)))
            }
            Some(Target::Lsn(l)) => {
                settings.push(format!("recovery_target_lsn = {}", conf_quote(l)))
            }
            Some(Target::Name(n)) => {
                settings.push(format!("recovery_target_name = {}", conf_quote(n)))
            }
            Some(Target::Immediate) => settings.push("recovery_target = 'immediate'".into()),
            None => {}
        }
        if req.exclusive {
            settings.push("recovery_target_inclusive = false".into());
        }
        settings.push(format!(
            "recovery_target_timeline = {}",
            conf_quote(req.target_tli.as_deref().unwrap_or("latest"))
        ));
        if let Some(a) = &req.target_action {
            settings.push(format!("recovery_target_action = {}", conf_quote(a)));
        }
        let signal = if req.standby_mode {
            "standby.signal"
        } else {
            "recovery.signal"
        };
        fs::write(dest.join(signal), b"").map_err(io("write", dest))?;
    }

    // Keep the copy from archiving into the real archive, and review risky settings.
    let conf_name = req
        .recovery_conf_filename
        .clone()
        .unwrap_or_else(|| "postgresql.auto.conf".into());
    for file in ["postgresql.conf", "postgresql.auto.conf"] {
        let path = dest.join(file);
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let mut changed = false;
        let mut out = String::new();
        for (i, line) in text.lines().enumerate() {
            let key = line
                .trim_start()
                .split(['=', ' ', '\t'])
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            if key == "archive_command"
                || (key.starts_with("recovery_target") && report.recovery_configured)
            {
                report
                    .changes
                    .push((file.to_string(), i + 1, line.trim().to_string()));
                out.push_str("#BARMAN#");
                changed = true;
            } else if [
                "data_directory",
                "config_file",
                "hba_file",
                "ident_file",
                "external_pid_file",
                "ssl_cert_file",
                "ssl_key_file",
                "ssl_ca_file",
                "ssl_crl_file",
                "unix_socket_directories",
                "include",
                "include_dir",
                "include_if_exists",
            ]
            .contains(&key.as_str())
            {
                report
                    .warnings
                    .push((file.to_string(), i + 1, line.trim().to_string()));
            }
            out.push_str(line);
            out.push('\n');
        }
        if changed {
            fs::copy(&path, dest.join(format!("{file}.origin"))).map_err(io("copy", &path))?;
            fs::write(&path, out).map_err(io("write", &path))?;
        }
    }
    settings.insert(0, "archive_command = false".into());
    let conf = dest.join(&conf_name);
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&conf)
        .map_err(io("open", &conf))?;
    let mut text = format!(
        "\n# Added by barkeep restore of backup {} ({})\n",
        b.backup_id,
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S")
    );
    for s in &settings {
        text.push_str(s);
        text.push('\n');
    }
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io("write", &conf))?;
    crate::extract::fsync_dirs(dest)?;
    let ts_dirs: Vec<&Path> = ts_dest.iter().map(|(_, p)| p.as_path()).collect();
    let mut marked = vec![dest];
    marked.extend(ts_dirs);
    finish_dirs(&control, &dest.join("global").join("pg_control"), &marked)?;
    Ok(report)
}

/// Fails before anything is written when the archive has a hole between the backup's
/// first segment and the last one the restore can use (the target LSN's or the backup
/// end's segment for those targets; else the newest WAL held, streamed partial included):
/// recovery would otherwise stop at the hole.
fn check_wal_available(
    archive: &ServerArchive,
    b: &BackupInfo,
    target: Option<&Target>,
) -> Result<()> {
    let range = WalRange::from_backup(b)?
        .ok_or_else(|| BackupError::Catalog(format!("backup {} has no begin_wal", b.backup_id)))?;
    let (seg, first) = (range.seg, range.first);
    let begin = b.begin_wal.as_deref().unwrap_or_default();
    let end = WalRange::of_backup(b)?
        .and_then(|r| r.last)
        .map(|p| p.segno)
        .unwrap_or(first.segno);
    let mut have = std::collections::BTreeSet::new();
    for e in barkeep_archive::xlogdb::read(&archive.xlogdb())? {
        if let Some(WalName::Segment(n)) = WalName::parse(&e.name)
            && range.contains(&n)
            && let Some(p) = range.position(&n)
            && archive.archive_path(&WalName::Segment(n.clone())).exists()
        {
            have.insert(p.segno);
        }
    }
    if let Ok(rd) = fs::read_dir(&archive.streaming) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if range.contains(&n)
                && let Some(p) = range.position(&n)
            {
                have.insert(p.segno);
            }
        }
    }
    let last = match target {
        Some(Target::Immediate) => end,
        Some(Target::Lsn(l)) => l
            .parse::<barkeep_wal::Lsn>()
            .map(|l| l.segno(seg))
            .unwrap_or(end),
        _ => have.iter().next_back().copied().unwrap_or(end).max(end),
    };
    for segno in first.segno..=last {
        if !have.contains(&segno) {
            return Err(BackupError::Other(format!(
                "WAL needed by this restore is missing from the archive: the first missing file is {} (backup {} needs every segment from {begin}{}); recovery would stop there, so nothing was restored",
                seg.segment_name(first.tli, segno),
                b.backup_id,
                match target {
                    Some(Target::Immediate) => " to its end".to_string(),
                    Some(_) | None => " to the target".to_string(),
                }
            )));
        }
    }
    Ok(())
}

/// Whether the archive has a timeline history file newer than `tli`.
fn has_later_timeline(archive: &ServerArchive, tli: u32) -> bool {
    fs::read_dir(&archive.wals)
        .map(|rd| {
            rd.flatten().any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.strip_suffix(".history")
                    .filter(|h| h.len() == 8)
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .is_some_and(|t| t > tli)
            })
        })
        .unwrap_or(false)
}

/// Copies (decompressed) the WAL a restore needs into `dir`: from the backup's begin on
/// its timeline and later ones, plus history files, plus the newest streamed `.partial`
/// (as a complete name), stopping after the target LSN's segment for an LSN target and
/// at the backup end for `immediate`. Returns the number of files.
fn copy_wal(
    archive: &ServerArchive,
    b: &BackupInfo,
    seg: SegmentSize,
    dir: &Path,
    target: Option<&Target>,
) -> Result<usize> {
    let range = WalRange::from_backup(b)?
        .ok_or_else(|| BackupError::Catalog(format!("backup {} has no begin_wal", b.backup_id)))?;
    let last_segno: Option<u64> = match target {
        Some(Target::Immediate) => WalRange::of_backup(b)?
            .and_then(|r| r.last)
            .map(|p| p.segno),
        Some(Target::Lsn(l)) => l.parse::<barkeep_wal::Lsn>().ok().map(|l| l.segno(seg)),
        _ => None,
    };
    let mut count = 0;
    let db = barkeep_archive::xlogdb::read(&archive.xlogdb())?;
    let mut names: Vec<String> = db.into_iter().map(|e| e.name).collect();
    names.sort();
    names.dedup();
    let mut wanted: Vec<String> = Vec::new();
    for n in &names {
        match WalName::parse(n) {
            Some(WalName::History(_)) => wanted.push(n.clone()),
            Some(WalName::Segment(s))
                if range.contains(&s)
                    && range
                        .position(&s)
                        .is_some_and(|p| last_segno.is_none_or(|l| p.segno <= l)) =>
            {
                wanted.push(n.clone());
            }
            _ => {}
        }
    }
    for n in &wanted {
        let mut f = fs::File::create(dir.join(n)).map_err(io("create", &dir.join(n)))?;
        archive.get_wal(n, false, false, &mut f)?;
        f.sync_all().map_err(io("fsync", &dir.join(n)))?;
        count += 1;
    }
    // The newest segment being streamed: no transaction received by barkeep is lost.
    if last_segno.is_none()
        && let Ok(rd) = fs::read_dir(&archive.streaming)
    {
        let newest = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".partial"))
            .max();
        if let Some(p) = newest {
            let full = p.trim_end_matches(".partial").to_string();
            if !dir.join(&full).exists() && range.contains(&full) {
                fs::copy(archive.streaming.join(&p), dir.join(&full))
                    .map_err(io("copy", &archive.streaming.join(&p)))?;
                count += 1;
            }
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_restore_is_emptied_and_marked_anything_else_refused() {
        let d = tempfile::tempdir().expect("tempdir");
        // Killed while writing its mark: only the mark's temporary file.
        let a = d.path().join("a");
        fs::create_dir(&a).expect("mkdir");
        fs::write(a.join(format!(".{IN_PROGRESS}.123.tmp")), b"").expect("w");
        prepare_dir(&a, "destination").expect("an interrupted restore is resumed");
        let names: Vec<String> = fs::read_dir(&a)
            .expect("ls")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![IN_PROGRESS.to_string()]);
        // Killed half-way through the copy: the mark and some files.
        fs::create_dir_all(a.join("base/1")).expect("mkdir");
        fs::write(a.join("base/1/1259"), b"x").expect("w");
        prepare_dir(&a, "destination").expect("resumed again");
        assert!(!a.join("base").exists());
        // Somebody else's data: refused, untouched.
        let b = d.path().join("b");
        fs::create_dir(&b).expect("mkdir");
        fs::write(b.join("PG_VERSION"), b"15").expect("w");
        let err = prepare_dir(&b, "destination").expect_err("not empty");
        assert!(err.to_string().contains("not empty"), "{err}");
        assert!(b.join("PG_VERSION").exists());
    }
}
