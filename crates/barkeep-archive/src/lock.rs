//! Barman-compatible lock files: `flock` on `<lock dir>/.<server>-<task>.lock`, mode 0600,
//! holding the owner's PID. The lock is released when the holder exits, however it exits
//! (SIGKILL included), so a stale file never blocks anybody.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{ArchiveError, Result};

/// A held lock; released on drop.
#[derive(Debug)]
pub struct LockFile {
    _lock: Flock<File>,
    path: PathBuf,
}

impl LockFile {
    /// The lock file path Barman uses for `task` (`receive-wal`, `archive-wal`, `xlogdb`…).
    pub fn path_for(lock_dir: &Path, server: &str, task: &str) -> PathBuf {
        lock_dir.join(format!(".{server}-{task}.lock"))
    }

    /// Takes the lock without waiting; `Locked` (with the holder's PID) when taken.
    pub fn try_acquire(lock_dir: &Path, server: &str, task: &str) -> Result<LockFile> {
        Self::acquire(lock_dir, server, task, false)
    }

    /// Waits for the lock.
    pub fn acquire_blocking(lock_dir: &Path, server: &str, task: &str) -> Result<LockFile> {
        Self::acquire(lock_dir, server, task, true)
    }

    /// Takes a host-wide lock (`<lock dir>/.<name>.lock`, e.g. Barman's `.cron.lock`)
    /// without waiting.
    pub fn try_acquire_global(lock_dir: &Path, name: &str) -> Result<LockFile> {
        Self::acquire_at(
            lock_dir,
            lock_dir.join(format!(".{name}.lock")),
            "",
            name,
            false,
        )
    }

    /// Removes an unused lock file: only while holding its lock, so that no holder is
    /// ever affected. Returns whether it was removed (false: it is held).
    pub fn remove_unused(path: &Path) -> Result<bool> {
        let Ok(file) = OpenOptions::new().read(true).write(true).open(path) else {
            return Ok(false);
        };
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(_held) => match std::fs::remove_file(path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(ArchiveError::io("remove lock file", path, e)),
            },
            Err(_) => Ok(false),
        }
    }

    fn acquire(lock_dir: &Path, server: &str, task: &str, wait: bool) -> Result<LockFile> {
        let path = Self::path_for(lock_dir, server, task);
        Self::acquire_at(lock_dir, path, server, task, wait)
    }

    fn acquire_at(
        lock_dir: &Path,
        path: PathBuf,
        server: &str,
        task: &str,
        wait: bool,
    ) -> Result<LockFile> {
        crate::durable::create_dir_all_durable(lock_dir)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| ArchiveError::io("open lock file", &path, e))?;
        let arg = if wait {
            FlockArg::LockExclusive
        } else {
            FlockArg::LockExclusiveNonblock
        };
        // A probe by `holder()` takes a shared lock for an instant: a few quick retries
        // tell such a probe from a real holder, which keeps the lock.
        let mut file = file;
        let mut attempts = 0;
        let mut lock = loop {
            match Flock::lock(file, arg) {
                Ok(l) => break l,
                Err((f, errno)) if errno == nix::errno::Errno::EWOULDBLOCK && attempts < 10 => {
                    attempts += 1;
                    file = f;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err((mut file, errno)) => {
                    if errno == nix::errno::Errno::EWOULDBLOCK {
                        let mut text = String::new();
                        let _ = file.read_to_string(&mut text);
                        return Err(ArchiveError::Locked {
                            what: task.to_string(),
                            server: server.to_string(),
                            path,
                            pid: text.trim().parse().ok(),
                        });
                    }
                    return Err(ArchiveError::io(
                        "lock",
                        &path,
                        std::io::Error::from_raw_os_error(errno as i32),
                    ));
                }
            }
        };
        let pid = std::process::id().to_string();
        let write = (|| {
            lock.set_len(0)?;
            lock.rewind()?;
            lock.write_all(pid.as_bytes())?;
            lock.flush()
        })();
        write.map_err(|e| ArchiveError::io("write PID into lock file", &path, e))?;
        Ok(LockFile { _lock: lock, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The PID written in a lock file, if the lock is currently held by a live process.
    pub fn holder(lock_dir: &Path, server: &str, task: &str) -> Option<u32> {
        Self::holder_at(&Self::path_for(lock_dir, server, task))
    }

    /// Whether the lock file at `path` is held by a live process now.
    pub fn is_held(path: &Path) -> bool {
        Self::holder_at(path).is_some()
    }

    /// [`LockFile::holder`] for a lock file by path (a host-wide lock).
    pub fn holder_at(path: &Path) -> Option<u32> {
        // Probed with a shared lock, never written: the holder's PID stays in the file,
        // and a process taking the lock at this instant retries past the probe.
        let path = path.to_path_buf();
        let file = File::open(&path).ok()?;
        match Flock::lock(file, FlockArg::LockSharedNonblock) {
            Ok(_probe) => None,
            Err((mut file, errno)) if errno == nix::errno::Errno::EWOULDBLOCK => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                text.trim().parse().ok().or(Some(0))
            }
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_the_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let held = LockFile::try_acquire(dir.path(), "pg", "receive-wal").expect("first");
        assert!(held.path().ends_with(".pg-receive-wal.lock"));
        // flock locks belong to the open file description: a second open conflicts even
        // within one process.
        let err = LockFile::try_acquire(dir.path(), "pg", "receive-wal").expect_err("second");
        let msg = format!("{err}");
        assert!(
            msg.contains(&format!("PID {}", std::process::id())),
            "{msg}"
        );
        assert_eq!(
            LockFile::holder(dir.path(), "pg", "receive-wal"),
            Some(std::process::id())
        );
        drop(held);
        assert!(LockFile::try_acquire(dir.path(), "pg", "receive-wal").is_ok());
        assert_eq!(LockFile::holder(dir.path(), "pg", "receive-wal"), None);
    }
}
