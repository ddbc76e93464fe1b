//! Crash-safe file operations: data is written to a temporary name in the destination
//! directory, fsynced, renamed into place, and the directory fsynced — so after a crash a
//! file is either absent or complete, never torn.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{ArchiveError, Result};

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
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(ArchiveError::io("create directory", dir, e)),
    }
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
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| ArchiveError::io("create", &tmp, e))?;
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

/// Renames and fsyncs the destination directory (and the source directory when it differs).
pub fn rename_durable(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to)
        .map_err(|e| ArchiveError::io(format!("rename to `{}`", to.display()), from, e))?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
