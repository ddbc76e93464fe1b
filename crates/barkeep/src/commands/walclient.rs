//! The WAL clients that run on the database host, as Barman's `barman-wal-archive` and
//! `barman-wal-restore`: `wal-archive` (for `archive_command`) and `wal-restore` (for
//! `restore_command`). Over ssh they run `barkeep put-wal` / `get-wal` on the backup
//! host; with `--local` they act on this host's archive directly.
//!
//! ssh is run by argv. The remote command line is one string (that is how ssh works);
//! every argument in it is single-quoted for the remote shell.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, anyhow};
use barkeep_config::Config;
use sha2::Digest;

use crate::cli::{WalClientArgs, WalRestoreArgs};
use crate::{Failure, Output};

/// Quotes one argument for a POSIX shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn ssh_command(user: &str, host: &str, port: Option<u16>, remote: &[String]) -> Command {
    let mut c = Command::new("ssh");
    if let Some(p) = port {
        c.arg("-p").arg(p.to_string());
    }
    c.args(["-q", "-T"]).arg(format!("{user}@{host}"));
    c.arg(
        remote
            .iter()
            .map(|a| sh_quote(a))
            .collect::<Vec<_>>()
            .join(" "),
    );
    c
}

fn remote_args(program: &str, config: Option<&str>, rest: &[&str]) -> Vec<String> {
    let mut v = vec![program.to_string()];
    if let Some(c) = config {
        v.push("-c".into());
        v.push(c.to_string());
    }
    v.extend(rest.iter().map(|s| s.to_string()));
    v
}

/// The tar stream barman-wal-archive sends: the WAL file, then `SHA256SUMS` (or
/// `MD5SUMS`) with a `<hash> *<name>` line.
pub fn wal_tar(wal: &Path, md5: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let name = wal
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| anyhow!("`{}` has no file name", wal.display()))?;
    let data = std::fs::read(wal).with_context(|| format!("cannot read `{}`", wal.display()))?;
    let sum: String = if md5 {
        md5::Md5::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    } else {
        sha2::Sha256::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let mut b = tar::Builder::new(out);
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o600);
    h.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    h.set_cksum();
    b.append_data(&mut h, &name, &data[..])?;
    let text = format!("{sum} *{name}\n");
    let mut h = tar::Header::new_gnu();
    h.set_size(text.len() as u64);
    h.set_mode(0o600);
    h.set_cksum();
    b.append_data(
        &mut h,
        if md5 { "MD5SUMS" } else { "SHA256SUMS" },
        text.as_bytes(),
    )?;
    b.finish()?;
    Ok(())
}

fn exit(code: u8, e: anyhow::Error) -> Failure {
    Failure { error: e, code }
}

/// `wal-archive HOST SERVER WAL_PATH`.
pub fn wal_archive(
    a: &WalClientArgs,
    config: Option<&Config>,
    out: &mut Output,
) -> Result<(), Failure> {
    if a.remote.local {
        let config = config.ok_or_else(|| anyhow!("--local needs the configuration (-c)"))?;
        if a.remote.test {
            return super::wal::put_wal(config, &a.server_name, true, out);
        }
        let wal = a
            .wal_path
            .as_ref()
            .ok_or_else(|| crate::usage(anyhow!("WAL_PATH is required")))?;
        let s = super::select(config, std::slice::from_ref(&a.server_name))?[0];
        let archive = super::wal::archive_for(config, s)?;
        let mut buf = Vec::new();
        wal_tar(wal, a.md5, &mut buf)?;
        archive.put_wal(&mut &buf[..]).map_err(|e| anyhow!(e))?;
        return Ok(());
    }
    let mut rest = vec!["put-wal", a.server_name.as_str()];
    if a.remote.test {
        rest.push("--test");
    }
    let remote = remote_args(
        &a.remote.remote_program,
        a.remote.remote_config.as_deref(),
        &rest,
    );
    let mut cmd = ssh_command(&a.remote.user, &a.barman_host, a.remote.port, &remote);
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().context("cannot run ssh")?;
    if !a.remote.test {
        let wal = a
            .wal_path
            .as_ref()
            .ok_or_else(|| crate::usage(anyhow!("WAL_PATH is required")))?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| anyhow!("ssh has no stdin"))?;
        wal_tar(wal, a.md5, &mut stdin)?;
        drop(stdin);
    } else {
        drop(child.stdin.take());
    }
    let status = child.wait().context("waiting for ssh")?;
    match status.code() {
        Some(0) => Ok(()),
        Some(255) => Err(exit(
            3,
            anyhow!(
                "ssh to {}@{} failed (exit 255)",
                a.remote.user,
                a.barman_host
            ),
        )),
        Some(c) => Err(exit(
            u8::try_from(c).unwrap_or(1),
            anyhow!(
                "remote put-wal for server `{}` failed (exit {c})",
                a.server_name
            ),
        )),
        None => Err(exit(1, anyhow!("ssh was killed by a signal"))),
    }
}

/// Fetches `wal` into `dest` (atomically); `Err((code, error))` as barman-wal-restore:
/// 1 not found / get-wal failed, 2 ssh failed.
fn fetch(
    a: &WalRestoreArgs,
    config: Option<&Config>,
    wal: &str,
    dest: &Path,
) -> Result<(), (u8, anyhow::Error)> {
    let tmp = dest.with_file_name(format!(
        ".{}.{}.tmp",
        dest.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let result = if a.remote.local {
        let config = config.ok_or_else(|| (2, anyhow!("--local needs the configuration (-c)")))?;
        let s = config
            .server(&a.server_name)
            .ok_or_else(|| (1, anyhow!("unknown server `{}`", a.server_name)))?;
        let archive = super::wal::archive_for(config, s).map_err(|f| (1, f.error))?;
        let mut f = std::fs::File::create(&tmp)
            .map_err(|e| (1, anyhow!("cannot create `{}`: {e}", tmp.display())))?;
        archive
            .get_wal(wal, a.partial, false, &mut f)
            .map(|_| ())
            .map_err(|e| (1, anyhow!(e)))
            .and_then(|()| {
                f.sync_all()
                    .map_err(|e| (1, anyhow!("fsync `{}`: {e}", tmp.display())))
            })
    } else {
        let mut rest = vec!["get-wal"];
        if a.partial {
            rest.push("--partial");
        }
        rest.push(&a.server_name);
        rest.push(wal);
        let remote = remote_args(
            &a.remote.remote_program,
            a.remote.remote_config.as_deref(),
            &rest,
        );
        let file = std::fs::File::create(&tmp)
            .map_err(|e| (1, anyhow!("cannot create `{}`: {e}", tmp.display())))?;
        let status = ssh_command(&a.remote.user, &a.barman_host, a.remote.port, &remote)
            .stdout(Stdio::from(file))
            .status()
            .map_err(|e| (2, anyhow!("cannot run ssh: {e}")))?;
        match status.code() {
            Some(0) => Ok(()),
            Some(255) => Err((
                2,
                anyhow!("ssh to {}@{} failed", a.remote.user, a.barman_host),
            )),
            _ => Err((
                1,
                anyhow!("WAL file '{wal}' not found in server '{}'", a.server_name),
            )),
        }
    };
    match result {
        Ok(()) => std::fs::rename(&tmp, dest)
            .map_err(|e| (1, anyhow!("cannot move WAL into `{}`: {e}", dest.display()))),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn peek(a: &WalRestoreArgs, config: Option<&Config>, wal: &str, n: usize) -> Vec<String> {
    if a.remote.local {
        let Some(config) = config else {
            return Vec::new();
        };
        let Some(s) = config.server(&a.server_name) else {
            return Vec::new();
        };
        return super::wal::archive_for(config, s)
            .ok()
            .and_then(|ar| ar.peek(wal, n).ok())
            .unwrap_or_default();
    }
    let n = n.to_string();
    let rest = ["get-wal", "--peek", n.as_str(), a.server_name.as_str(), wal];
    let remote = remote_args(
        &a.remote.remote_program,
        a.remote.remote_config.as_deref(),
        &rest,
    );
    let Ok(o) = ssh_command(&a.remote.user, &a.barman_host, a.remote.port, &remote)
        .stderr(Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// `wal-restore HOST SERVER WAL_NAME WAL_DEST`.
pub fn wal_restore(
    a: &WalRestoreArgs,
    config: Option<&Config>,
    out: &mut Output,
) -> Result<(), Failure> {
    if a.remote.test {
        if a.remote.local {
            let config = config.ok_or_else(|| anyhow!("--local needs the configuration (-c)"))?;
            super::select(config, std::slice::from_ref(&a.server_name))?;
        } else {
            let remote = remote_args(
                &a.remote.remote_program,
                a.remote.remote_config.as_deref(),
                &[
                    "get-wal",
                    "--test",
                    &a.server_name,
                    "000000010000000000000001",
                ],
            );
            let st = ssh_command(&a.remote.user, &a.barman_host, a.remote.port, &remote)
                .status()
                .context("cannot run ssh")?;
            if !st.success() {
                return Err(exit(
                    2,
                    anyhow!("ssh to {}@{} failed", a.remote.user, a.barman_host),
                ));
            }
        }
        out.line(&format!(
            "Ready to retrieve WAL files from the server {}",
            a.server_name
        ));
        return Ok(());
    }
    // 1. Prefetched earlier into the spool?
    let spooled = a.spool_dir.join(&a.wal_name);
    if spooled.is_file() {
        std::fs::rename(&spooled, &a.wal_dest)
            .or_else(|_| {
                std::fs::copy(&spooled, &a.wal_dest)
                    .map(|_| ())
                    .and_then(|()| std::fs::remove_file(&spooled))
            })
            .with_context(|| {
                format!(
                    "cannot move `{}` to `{}`",
                    spooled.display(),
                    a.wal_dest.display()
                )
            })?;
        return Ok(());
    }
    // 2. Prefetch the next ones in parallel while fetching this one.
    let mut prefetch: Vec<String> = Vec::new();
    if a.parallel > 0 {
        prefetch = peek(a, config, &a.wal_name, a.parallel + 1);
        prefetch.retain(|w| w != &a.wal_name);
        if !prefetch.is_empty() {
            std::fs::create_dir_all(&a.spool_dir)
                .with_context(|| format!("cannot create `{}`", a.spool_dir.display()))?;
        }
    }
    let main = std::thread::scope(|s| {
        for w in &prefetch {
            let dest: PathBuf = a.spool_dir.join(w);
            s.spawn(move || {
                if let Err((_, e)) = fetch(a, config, w, &dest) {
                    tracing::debug!("prefetch of {w} failed: {e}");
                }
            });
        }
        fetch(a, config, &a.wal_name, &a.wal_dest)
    });
    match main {
        Ok(()) => Ok(()),
        Err((code, e)) => {
            if a.sleep > 0 {
                std::thread::sleep(std::time::Duration::from_secs(a.sleep));
            }
            Err(exit(code, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn remote_arguments_are_quoted() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        let c = ssh_command(
            "barman",
            "backup",
            Some(2222),
            &remote_args("barkeep", Some("/etc/x y.conf"), &["put-wal", "pg"]),
        );
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            vec![
                "-p",
                "2222",
                "-q",
                "-T",
                "barman@backup",
                "'barkeep' '-c' '/etc/x y.conf' 'put-wal' 'pg'"
            ]
        );
    }

    #[test]
    fn tar_stream_holds_wal_and_sums() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("000000010000000000000001");
        std::fs::write(&p, b"walbytes").expect("write");
        let mut buf = Vec::new();
        wal_tar(&p, false, &mut buf).expect("tar");
        let mut ar = tar::Archive::new(&buf[..]);
        let names: Vec<String> = ar
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(names, vec!["000000010000000000000001", "SHA256SUMS"]);
        let mut ar = tar::Archive::new(&buf[..]);
        let mut sums = String::new();
        for e in ar.entries().expect("entries") {
            let mut e = e.expect("entry");
            if e.path().expect("p").ends_with("SHA256SUMS") {
                e.read_to_string(&mut sums).expect("read");
            }
        }
        assert!(sums.ends_with(" *000000010000000000000001\n"), "{sums}");
    }
}
