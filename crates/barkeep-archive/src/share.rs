//! Block-level sharing between files: whether a directory's file system can share extents
//! between files (XFS with reflink, btrfs, ZFS 2.2+ block cloning — `FICLONE`), and the
//! clone itself. A backup's file starts as a clone of the previous backup's, and only the
//! blocks that differ are written: the file system keeps the reference counts, so deleting
//! either file never affects the other.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What a directory's file system can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sharing {
    /// Files can share extents (`FICLONE` works there).
    pub clone: bool,
    /// The file system's name (`xfs`, `btrfs`, `zfs`, `ext4`…, or its magic number).
    pub fs: String,
    /// Why cloning is not available (the OS error of the probe), when it is not.
    pub why_not: Option<String>,
    /// Whether the directory was probed (it exists); `why_not` says why not otherwise.
    pub probed: bool,
}

impl Sharing {
    /// One line for `check`, `show-servers` and the log.
    pub fn describe(&self) -> String {
        if !self.probed {
            return format!(
                "not known yet ({}): probed when the first backup is taken",
                self.why_not.as_deref().unwrap_or("not probed")
            );
        }
        if self.clone {
            format!(
                "block sharing ({} clones extents): a backup writes only the blocks changed since the previous one",
                self.fs
            )
        } else {
            format!(
                "no block sharing ({} cannot clone extents{}): unchanged files are hard-linked, changed files written whole",
                self.fs,
                self.why_not
                    .as_deref()
                    .map(|w| format!(": {w}"))
                    .unwrap_or_default()
            )
        }
    }
}

/// The name of the file system holding `dir`.
pub fn fs_name(dir: &Path) -> String {
    let Ok(st) = rustix::fs::statfs(dir) else {
        return "unknown file system".into();
    };
    #[allow(clippy::unnecessary_cast)]
    let magic = st.f_type as i64;
    match magic {
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x2FC1_2FC1 => "zfs".into(),
        0xEF53 => "ext4".into(),
        0x0102_1994 => "tmpfs".into(),
        0x794C_7630 => "overlayfs".into(),
        0x6969 => "nfs".into(),
        0xFF53_4D42 => "cifs".into(),
        other => format!("file system 0x{other:X}"),
    }
}

/// Probes `dir` (which must exist) once per process: two small files, one cloned into the
/// other. The result is cached by directory, and logged the first time.
pub fn probe(dir: &Path) -> Sharing {
    static SEEN: Mutex<Option<HashMap<PathBuf, Sharing>>> = Mutex::new(None);
    let key = dir.to_path_buf();
    if let Some(s) = SEEN
        .lock()
        .ok()
        .and_then(|m| m.as_ref().and_then(|m| m.get(&key).cloned()))
    {
        return s;
    }
    let s = probe_now(dir);
    tracing::info!(directory = %dir.display(), "{}", s.describe());
    if let Ok(mut m) = SEEN.lock() {
        m.get_or_insert_with(HashMap::new).insert(key, s.clone());
    }
    s
}

fn probe_now(dir: &Path) -> Sharing {
    let fs = fs_name(dir);
    let pid = std::process::id();
    let a = dir.join(format!(".barkeep-reflink-probe-{pid}.a"));
    let b = dir.join(format!(".barkeep-reflink-probe-{pid}.b"));
    let res = (|| -> io::Result<()> {
        use std::io::Write;
        // The source of a clone must be open for reading.
        let mut fa = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&a)?;
        fa.write_all(&[0x5a; 4096])?;
        let fb = File::create(&b)?;
        clone_into(&fb, &fa)
    })();
    let _ = std::fs::remove_file(&a);
    let _ = std::fs::remove_file(&b);
    match res {
        Ok(()) => Sharing {
            clone: true,
            fs,
            why_not: None,
            probed: true,
        },
        Err(e) => Sharing {
            clone: false,
            fs,
            why_not: Some(e.to_string()),
            probed: true,
        },
    }
}

/// Makes `dst` (open for writing, any content) a clone of the whole of `src`: afterwards
/// it has `src`'s content and shares its extents. Fails (`EXDEV`, `EOPNOTSUPP`, `EINVAL`)
/// where the file system cannot, leaving `dst` as it was.
pub fn clone_into(dst: &File, src: &File) -> io::Result<()> {
    rustix::fs::ioctl_ficlone(dst, src).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probing_reports_the_file_system_and_cleans_up() {
        let d = tempfile::tempdir().expect("tempdir");
        let s = probe(d.path());
        assert!(!s.fs.is_empty());
        assert_eq!(s.clone, s.why_not.is_none());
        assert!(s.describe().contains(&s.fs));
        assert_eq!(std::fs::read_dir(d.path()).expect("list").count(), 0);
    }
}
