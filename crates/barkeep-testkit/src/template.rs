//! `initdb` once per PostgreSQL version and option set, cached under
//! `/tmp/barkeep-test-templates`, then copied for each test (≈4× faster than initdb).

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use crate::cluster::{run, set_mode};
use crate::install::PgInstall;
use crate::{HarnessError, OsUser};

const TEMPLATES: &str = "/tmp/barkeep-test-templates";

/// Returns the data directory of a template cluster for `install`.
pub(crate) fn template(
    install: &PgInstall,
    checksums: Option<bool>,
    user: &OsUser,
) -> Result<PathBuf, HarnessError> {
    let base = Path::new(TEMPLATES);
    fs::create_dir_all(base).map_err(|e| HarnessError::io(format!("mkdir `{TEMPLATES}`"), e))?;
    set_mode(base, 0o755)?;
    let ck = match checksums {
        None => "default",
        Some(true) => "ck",
        Some(false) => "nock",
    };
    let key = format!("{}-{}-{ck}-{}", install.version, install.major, user.name());
    let dest = base.join(&key);
    if dest.join("data/PG_VERSION").is_file() && dest.join("data/global/pg_control").is_file() {
        return Ok(dest.join("data"));
    }
    let tmp = tempfile::Builder::new()
        .prefix(&format!("{key}.tmp-"))
        .tempdir_in(base)
        .map_err(|e| HarnessError::io(format!("create a temp dir in `{TEMPLATES}`"), e))?;
    set_mode(tmp.path(), 0o755)?;
    user.chown_tree(tmp.path())?;
    let data = tmp.path().join("data");
    let mut cmd = std::process::Command::new(install.bin.join("initdb"));
    user.apply(&mut cmd);
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LC_ALL", "C")
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "-N",
            "--auth=trust",
        ]);
    crate::cluster::library_path(&mut cmd, &install.bin);
    match checksums {
        Some(true) => {
            cmd.arg("--data-checksums");
        }
        Some(false) if install.major >= 18 => {
            cmd.arg("--no-data-checksums");
        }
        _ => {}
    }
    run(cmd, &format!("initdb ({})", install.bin.display()))?;
    // Atomic publish: if another test process won the race, use its template.
    let staged = tmp.keep();
    if fs::rename(&staged, &dest).is_err() {
        let _ = fs::remove_dir_all(&staged);
        if !dest.join("data/PG_VERSION").is_file() {
            return Err(HarnessError::new(format!(
                "template `{}` is incomplete; remove it and retry",
                dest.display()
            )));
        }
    }
    Ok(dest.join("data"))
}

/// Copies a directory tree with modes and symlinks (not ownership).
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), HarnessError> {
    let meta = fs::symlink_metadata(from)
        .map_err(|e| HarnessError::io(format!("stat `{}`", from.display()), e))?;
    fs::create_dir(to).map_err(|e| HarnessError::io(format!("mkdir `{}`", to.display()), e))?;
    fs::set_permissions(to, fs::Permissions::from_mode(meta.permissions().mode()))
        .map_err(|e| HarnessError::io(format!("chmod `{}`", to.display()), e))?;
    let entries = fs::read_dir(from)
        .map_err(|e| HarnessError::io(format!("list `{}`", from.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| HarnessError::io(format!("list `{}`", from.display()), e))?;
        let name = entry.file_name();
        if name == "postmaster.pid" {
            continue;
        }
        let src = entry.path();
        let dst = to.join(&name);
        let ft = entry
            .file_type()
            .map_err(|e| HarnessError::io(format!("stat `{}`", src.display()), e))?;
        if ft.is_dir() {
            copy_tree(&src, &dst)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&src)
                .map_err(|e| HarnessError::io(format!("readlink `{}`", src.display()), e))?;
            symlink(&target, &dst)
                .map_err(|e| HarnessError::io(format!("symlink `{}`", dst.display()), e))?;
        } else {
            fs::copy(&src, &dst).map_err(|e| {
                HarnessError::io(
                    format!("copy `{}` to `{}`", src.display(), dst.display()),
                    e,
                )
            })?;
        }
    }
    Ok(())
}
