//! A file system of its own for a test: an image (sparse until written), loop-mounted
//! (root only). An ext4 one that a test can fill up — [`SmallFs::fill`] leaves only a few
//! KiB free, [`SmallFs::free`] gives the space back: a disk-full fault under barkeep's
//! catalog, and its recovery —, or an XFS one made with `-m reflink=1`
//! ([`SmallFs::mount_xfs_reflink`]), where files can share extents.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::HarnessError;

/// A mounted image; unmounted and removed on drop.
#[derive(Debug)]
pub struct SmallFs {
    image: PathBuf,
    mount: PathBuf,
    filler: PathBuf,
}

impl SmallFs {
    /// Creates and mounts an ext4 image of `mib` MiB at `dir/mnt` (the image beside it).
    /// Fails with the reason when this machine cannot (not root, no loop devices, no
    /// mkfs.ext4): the caller skips with one clear line.
    pub fn mount(dir: &Path, mib: u64) -> Result<SmallFs, HarnessError> {
        Self::mount_kind(dir, mib, false)
    }

    /// Creates and mounts an XFS image with reflink (`mkfs.xfs -m reflink=1`, at least
    /// 300 MiB) at `dir/mnt`. Fails with the reason as [`SmallFs::mount`] does (also when
    /// `mkfs.xfs` is missing: `scripts/setup-test-env.sh` installs xfsprogs).
    pub fn mount_xfs_reflink(dir: &Path, mib: u64) -> Result<SmallFs, HarnessError> {
        Self::mount_kind(dir, mib.max(300), true)
    }

    fn mount_kind(dir: &Path, mib: u64, xfs: bool) -> Result<SmallFs, HarnessError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(HarnessError(
                "loop-mounting a file system needs root".into(),
            ));
        }
        let image = dir.join("smallfs.img");
        let mount = dir.join("mnt");
        std::fs::create_dir_all(&mount)
            .map_err(|e| HarnessError::io(format!("create `{}`", mount.display()), e))?;
        let f = std::fs::File::create(&image)
            .map_err(|e| HarnessError::io(format!("create `{}`", image.display()), e))?;
        f.set_len(mib << 20)
            .map_err(|e| HarnessError::io(format!("size `{}`", image.display()), e))?;
        drop(f);
        if xfs {
            let mut mkfs = Command::new("mkfs.xfs");
            mkfs.args(["-q", "-f", "-m", "reflink=1"]).arg(&image);
            crate::run(mkfs, "mkfs.xfs -m reflink=1").map_err(|e| {
                HarnessError(format!(
                    "{e} (is xfsprogs installed? scripts/setup-test-env.sh installs it)"
                ))
            })?;
        } else {
            let mut mkfs = Command::new("mkfs.ext4");
            mkfs.args(["-q", "-F", "-m", "0"]).arg(&image);
            crate::run(mkfs, "mkfs.ext4")?;
        }
        let mut m = Command::new("mount");
        m.args(["-o", "loop"]).arg(&image).arg(&mount);
        crate::run(m, "mount -o loop")?;
        std::fs::set_permissions(&mount, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(|e| HarnessError::io(format!("chmod `{}`", mount.display()), e))?;
        let filler = mount.join(".filler");
        Ok(SmallFs {
            image,
            mount,
            filler,
        })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.mount
    }

    /// Bytes in use (statvfs: blocks minus free blocks), what `df` shows as used.
    pub fn used(&self) -> u64 {
        nix::sys::statvfs::statvfs(&self.mount)
            .map(|s| (s.blocks() - s.blocks_free()) * s.fragment_size())
            .unwrap_or(0)
    }

    /// Bytes free for an unprivileged writer (statvfs).
    pub fn available(&self) -> u64 {
        nix::sys::statvfs::statvfs(&self.mount)
            .map(|s| s.blocks_available() * s.fragment_size())
            .unwrap_or(0)
    }

    /// Fills the file system, leaving about `leave` bytes free (blocks allocated with
    /// fallocate: instant whatever the size, and counted as used).
    pub fn fill(&self, leave: u64) -> Result<(), HarnessError> {
        let grow = self.available().saturating_sub(leave);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.filler)
            .map_err(|e| HarnessError::io(format!("open `{}`", self.filler.display()), e))?;
        let have = f.metadata().map(|m| m.len()).unwrap_or(0);
        nix::fcntl::fallocate(
            std::os::fd::AsRawFd::as_raw_fd(&f),
            nix::fcntl::FallocateFlags::empty(),
            i64::try_from(have).unwrap_or(0),
            i64::try_from(grow).unwrap_or(i64::MAX),
        )
        .map_err(|e| {
            HarnessError::io(format!("fallocate `{}`", self.filler.display()), e.into())
        })?;
        Ok(())
    }

    /// Gives the space back.
    pub fn free(&self) {
        let _ = std::fs::remove_file(&self.filler);
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
        let _ = std::fs::remove_file(&self.image);
    }
}
