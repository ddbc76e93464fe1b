//! Crash-safe, private file operations: data is written to a temporary name in the
//! destination directory, fsynced, renamed into place, and the directory fsynced — so
//! after a crash a file is either absent or complete, never torn.
//!
//! The catalog holds every row of every database (base backups include `pg_authid`), so
//! what barkeep creates is private whatever the umask: files 0600, directories 0700. With
//! [`set_group_access`] (the `catalog_group` setting) a group may read — files 0640,
//! directories 2750 owned by that group, so that what is created inside inherits it — and
//! write `incoming/` (2770) for a local `archive_command`; never the world.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::error::{ArchiveError, Result};

/// The group that may read the catalog (`catalog_group`), or -1 for none.
///
/// This is process state on purpose, and the only such state barkeep has: it mirrors
/// the process umask, which every file the process creates obeys — tar extraction, log
/// files, third-party crates — so there can only be one policy per process. The
/// configuration sets it (`catalog_group` is a global key); a daemon re-reading its
/// configuration sets it again.
static GROUP: AtomicI64 = AtomicI64::new(-1);

fn group() -> Option<nix::unistd::Gid> {
    u32::try_from(GROUP.load(Ordering::Relaxed))
        .ok()
        .map(nix::unistd::Gid::from_raw)
}

/// Sets the process's access policy before files are created: the process umask
/// becomes 077 (or 027 with a group), so that files created by any code path are private
/// too. A later call (a configuration reload) replaces the policy for what is created
/// from then on; what exists keeps its modes.
pub fn set_group_access(gid: Option<nix::unistd::Gid>) {
    GROUP.store(gid.map_or(-1, |g| i64::from(g.as_raw())), Ordering::Relaxed);
    let mask = if gid.is_some() { 0o027 } else { 0o077 };
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
}

/// The permission bits barkeep never grants: group and other (077), or only other and
/// group write (027) when a group may read.
pub fn forbidden_bits() -> u32 {
    if group().is_some() { 0o027 } else { 0o077 }
}

/// Mode of the files barkeep creates: 0600, or 0640 with a group.
pub fn file_mode() -> u32 {
    0o666 & !forbidden_bits() & !0o111
}

/// Mode of the directories barkeep creates: 0700, or 2750 (setgid) with a group.
pub fn dir_mode() -> u32 {
    if group().is_some() { 0o2750 } else { 0o700 }
}

/// Creates (truncating) a private file for writing.
pub fn create_private(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(file_mode())
        .open(path)
        .map_err(|e| ArchiveError::io("create", path, e))
}

/// Applies the group policy to a directory: with a group, gives it that group and mode
/// 2750 (`writable`: 2770, for `incoming/`); without a group, nothing (barkeep creates
/// directories 0700). A directory already right is left alone; one owned by another user
/// that this process may not change is reported once in the log and left as it is.
pub fn apply_dir_access(dir: &Path, writable: bool) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Some(gid) = group() else {
        return Ok(());
    };
    let mode = if writable { 0o2770 } else { 0o2750 };
    let meta = fs::metadata(dir).map_err(|e| ArchiveError::io("stat", dir, e))?;
    if meta.gid() == gid.as_raw() && meta.mode() & 0o7777 == mode {
        return Ok(());
    }
    let changed = nix::unistd::chown(dir, None, Some(gid))
        .map_err(io::Error::from)
        .and_then(|()| fs::set_permissions(dir, fs::Permissions::from_mode(mode)));
    match changed {
        Ok(()) => Ok(()),
        Err(e) if meta.uid() != nix::unistd::geteuid().as_raw() => {
            tracing::warn!(
                "cannot give `{}` group {gid} and mode {mode:o} (catalog_group): {e}; it belongs to UID {}",
                dir.display(),
                meta.uid()
            );
            Ok(())
        }
        Err(e) => Err(ArchiveError::io(
            format!("give group {gid} and mode {mode:o} (catalog_group) to"),
            dir,
            e,
        )),
    }
}

/// Narrows a mode that came from elsewhere (a tar header, a source file) to what barkeep
/// grants.
pub fn private_mode(mode: u32) -> u32 {
    mode & 0o7777 & !forbidden_bits()
}

/// fsyncs a directory so that entries created, renamed or removed in it survive a crash.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ArchiveError::io("fsync directory", dir, e))
}

/// Creates `dir` (and parents) and fsyncs the parent chain that was created.
pub fn create_dir_all_durable(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_all_durable(parent)?;
    }
    match fs::DirBuilder::new().mode(dir_mode() & 0o777).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(ArchiveError::io("create directory", dir, e)),
    }
    apply_dir_access(dir, false)?;
    if let Some(parent) = dir.parent() {
        fsync_dir(parent)?;
    }
    Ok(())
}

/// The temporary name used while writing `dest` (same directory, so rename is atomic).
pub fn temp_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Writes a file atomically and durably: `write` fills a temporary file, which is fsynced
/// and renamed to `dest`; the directory is fsynced. On error the temporary file is removed
/// and `dest` is untouched.
pub fn write_atomic(dest: &Path, write: impl FnOnce(&mut File) -> io::Result<()>) -> Result<()> {
    let tmp = temp_path(dest);
    let result = (|| {
        let mut f = create_private(&tmp)?;
        write(&mut f).map_err(|e| ArchiveError::io("write", &tmp, e))?;
        f.flush().map_err(|e| ArchiveError::io("write", &tmp, e))?;
        f.sync_all()
            .map_err(|e| ArchiveError::io("fsync", &tmp, e))?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    rename_durable(&tmp, dest)
}

/// Writes `bytes` to `dest` atomically and durably.
pub fn write_file_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(dest, |f| f.write_all(bytes))
}

/// Crash points for the fault campaign: `BARKEEP_CRASH_AT=POINT:N` makes this process
/// SIGKILL itself at the N-th time it reaches POINT — `before-rename` (the temporary file
/// is complete and fsynced, not yet in place) or `after-rename` (in place, its directory
/// not yet fsynced) — so the campaign can stop a process exactly inside those windows.
/// Unset (always, outside tests), it costs one relaxed load.
pub fn crash_point(point: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static PLAN: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    let plan = PLAN.get_or_init(|| {
        let v = std::env::var("BARKEEP_CRASH_AT").ok()?;
        let (p, n) = v.split_once(':')?;
        Some((p.to_string(), n.parse().ok()?))
    });
    if let Some((p, n)) = plan
        && p == point
        && HITS.fetch_add(1, Ordering::Relaxed) + 1 == *n
    {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

/// Renames and fsyncs the destination directory (and the source directory when it differs).
pub fn rename_durable(from: &Path, to: &Path) -> Result<()> {
    crash_point("before-rename");
    fs::rename(from, to)
        .map_err(|e| ArchiveError::io(format!("rename to `{}`", to.display()), from, e))?;
    crash_point("after-rename");
    let to_dir = to.parent().unwrap_or(Path::new("."));
    fsync_dir(to_dir)?;
    if let Some(from_dir) = from.parent()
        && from_dir != to_dir
    {
        fsync_dir(from_dir)?;
    }
    Ok(())
}

/// fsyncs a file's data.
pub fn fsync_file(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| ArchiveError::io("fsync", path, e))
}

/// Removes a file and fsyncs its directory.
pub fn remove_durable(path: &Path) -> Result<()> {
    fs::remove_file(path).map_err(|e| ArchiveError::io("remove", path, e))?;
    fsync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Runs blocking file work (writes, fsyncs, renames) from async code. On a multi-thread
/// tokio runtime the worker first hands its other tasks to the other workers
/// (`block_in_place`), so one server's fsync never stalls the other servers a daemon
/// serves; elsewhere (a current-thread runtime such as the CLI's, or no runtime) it runs
/// in place, where nothing else is waiting.
pub fn blocking_io<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_directories_are_private_whatever_the_umask() {
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().join("a/b");
        create_dir_all_durable(&d).expect("mkdir");
        let f = d.join("f");
        write_file_atomic(&f, b"secret").expect("write");
        let g = d.join("g");
        create_private(&g).expect("create");
        nix::sys::stat::umask(old);
        let mode = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o7777;
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&d), 0o700);
        assert_eq!(mode(&f), 0o600);
        assert_eq!(mode(&g), 0o600);
        assert_eq!(private_mode(0o755), 0o700);
        assert_eq!(private_mode(0o644), 0o600);
    }

    #[test]
    fn atomic_write_replaces_or_leaves_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        write_file_atomic(&p, b"one").expect("write");
        assert_eq!(fs::read(&p).expect("read"), b"one");
        let err = write_atomic(&p, |_| Err(io::Error::other("boom"))).expect_err("fails");
        assert!(crate::error::chain(&err).contains("boom"));
        assert_eq!(fs::read(&p).expect("read"), b"one", "untouched on error");
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .expect("ls")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
