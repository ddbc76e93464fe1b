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

use barkeep_backup::restore::sh_quote;
use sha2::Digest;

use crate::Engine;
use crate::error::{EngineError, Result, failed, usage};

/// How the clients reach the backup host (Barman's `barman-wal-*` options).
#[derive(Debug, Clone, Default)]
pub struct RemoteArgs {
    /// `--barman-program`/remote program name.
    pub remote_program: String,
    /// `--local`: act on this host's archive directly.
    pub local: bool,
    /// `-U`.
    pub user: String,
    /// `--port`.
    pub port: Option<u16>,
    /// `-c` passed to the remote program.
    pub remote_config: Option<String>,
    /// `--test`.
    pub test: bool,
}

/// `wal-archive` arguments.
#[derive(Debug, Clone, Default)]
pub struct WalArchiveArgs {
    /// Connection to the backup host.
    pub remote: RemoteArgs,
    /// `--md5`.
    pub md5: bool,
    /// `-z`/`-j`/`--xz`/`--snappy`/`--zstd`/`--lz4`: compress the WAL before sending.
    pub compression: Option<String>,
    /// `--compression-level`.
    pub compression_level: Option<i32>,
    /// Backup host.
    pub barman_host: String,
    /// Server name.
    pub server_name: String,
    /// The WAL file (`%p`).
    pub wal_path: Option<PathBuf>,
}

/// `wal-restore` arguments.
#[derive(Debug, Clone, Default)]
pub struct WalRestoreArgs {
    /// Connection to the backup host.
    pub remote: RemoteArgs,
    /// `-P`.
    pub partial: bool,
    /// `-p`: files to prefetch.
    pub parallel: usize,
    /// `--spool-dir`.
    pub spool_dir: PathBuf,
    /// `-s`: seconds to sleep after a failure.
    pub sleep: u64,
    /// `-z`/`-j` (`gzip`, `bzip2`) or `--keep-compression` (`keep`): how the file travels;
    /// it is decompressed here.
    pub transfer: Option<String>,
    /// Backup host.
    pub barman_host: String,
    /// Server name.
    pub server_name: String,
    /// `%f`.
    pub wal_name: String,
    /// `%p`.
    pub wal_dest: PathBuf,
}

/// What a WAL client did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum WalClientDone {
    /// The file was sent or fetched.
    Done,
    /// `--test`: the backup host accepts WAL for the server.
    ReadyToAccept,
    /// `--test`: the backup host can return WAL for the server.
    ReadyToRetrieve,
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
pub fn wal_tar(wal: &Path, md5: bool, out: &mut dyn Write) -> Result<()> {
    wal_tar_compressed(wal, md5, None, out)
}

/// [`wal_tar`], the WAL compressed first with `codec` (at `level`), as
/// barman-wal-archive's `-z`/`-j`/`--xz`/`--snappy`/`--zstd`/`--lz4` do: the member keeps
/// the WAL's name, the checksum is of what is sent, and the backup host stores it as it
/// came (its magic bytes say how).
pub fn wal_tar_compressed(
    wal: &Path,
    md5: bool,
    codec: Option<(barkeep_archive::Codec, Option<i32>)>,
    out: &mut dyn Write,
) -> Result<()> {
    let name = wal
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| usage(format!("`{}` has no file name", wal.display())))?;
    let mut data = std::fs::read(wal).map_err(|e| EngineError::io("read", wal, e))?;
    if let Some((codec, level)) = codec {
        let mut packed = Vec::new();
        let level = level.unwrap_or_else(|| codec.level(barkeep_archive::Level::Medium));
        codec
            .compress_with(level, 1, &mut &data[..], &mut packed)
            .map_err(|e| EngineError::io(format!("compress with {}", codec.name()), wal, e))?;
        data = packed;
    }
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
    let io = |e: std::io::Error| failed(format!("cannot send `{}`: {e}", wal.display()));
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
    b.append_data(&mut h, &name, &data[..]).map_err(io)?;
    let text = format!("{sum} *{name}\n");
    let mut h = tar::Header::new_gnu();
    h.set_size(text.len() as u64);
    h.set_mode(0o600);
    h.set_cksum();
    b.append_data(
        &mut h,
        if md5 { "MD5SUMS" } else { "SHA256SUMS" },
        text.as_bytes(),
    )
    .map_err(io)?;
    b.finish().map_err(io)?;
    Ok(())
}

fn exit(code: u8, message: impl Into<String>) -> EngineError {
    EngineError::Exit {
        code,
        message: message.into(),
    }
}

fn need_engine(engine: Option<&Engine>) -> Result<&Engine> {
    engine.ok_or_else(|| usage("--local needs the configuration (-c)"))
}

fn client_codec(a: &WalArchiveArgs) -> Result<Option<(barkeep_archive::Codec, Option<i32>)>> {
    match &a.compression {
        None => Ok(None),
        Some(c) => barkeep_archive::Codec::from_setting(Some(c))
            .map(|codec| Some((codec, a.compression_level)))
            .map_err(usage),
    }
}

/// `wal-archive HOST SERVER WAL_PATH` (for `archive_command`).
pub fn wal_archive(a: &WalArchiveArgs, engine: Option<&Engine>) -> Result<WalClientDone> {
    if a.remote.local {
        let server = need_engine(engine)?.server(&a.server_name)?;
        if a.remote.test {
            server.put_wal_ready()?;
            return Ok(WalClientDone::ReadyToAccept);
        }
        let wal = a
            .wal_path
            .as_ref()
            .ok_or_else(|| usage("WAL_PATH is required"))?;
        let mut buf = Vec::new();
        wal_tar_compressed(wal, a.md5, client_codec(a)?, &mut buf)?;
        server.put_wal(&mut &buf[..])?;
        return Ok(WalClientDone::Done);
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
    let mut child = cmd
        .spawn()
        .map_err(|e| failed(format!("cannot run ssh: {e}")))?;
    if !a.remote.test {
        let wal = a
            .wal_path
            .as_ref()
            .ok_or_else(|| usage("WAL_PATH is required"))?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| failed("ssh has no stdin"))?;
        wal_tar_compressed(wal, a.md5, client_codec(a)?, &mut stdin)?;
        drop(stdin);
    } else {
        drop(child.stdin.take());
    }
    let status = child
        .wait()
        .map_err(|e| failed(format!("waiting for ssh: {e}")))?;
    match status.code() {
        Some(0) if a.remote.test => Ok(WalClientDone::ReadyToAccept),
        Some(0) => Ok(WalClientDone::Done),
        Some(255) => Err(exit(
            3,
            format!(
                "ssh to {}@{} failed (exit 255)",
                a.remote.user, a.barman_host
            ),
        )),
        Some(c) => Err(exit(
            u8::try_from(c).unwrap_or(1),
            format!(
                "remote put-wal for server `{}` failed (exit {c})",
                a.server_name
            ),
        )),
        None => Err(exit(1, "ssh was killed by a signal")),
    }
}

/// Fetches `wal` into `dest` (atomically); `Err((code, message))` as barman-wal-restore:
/// 1 not found / get-wal failed, 2 ssh failed.
fn fetch(
    a: &WalRestoreArgs,
    engine: Option<&Engine>,
    wal: &str,
    dest: &Path,
) -> std::result::Result<(), (u8, String)> {
    let tmp = dest.with_file_name(format!(
        ".{}.{}.tmp",
        dest.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let result = if a.remote.local {
        let engine =
            engine.ok_or_else(|| (2, "--local needs the configuration (-c)".to_string()))?;
        let server = engine
            .server(&a.server_name)
            .map_err(|e| (1, crate::render(&e)))?;
        let mut f = std::fs::File::create(&tmp)
            .map_err(|e| (1, format!("cannot create `{}`: {e}", tmp.display())))?;
        let o = crate::GetWalOpts {
            output_directory: None,
            partial: a.partial,
            keep_compression: false,
            compress: None,
        };
        server
            .get_wal(wal, &o, &mut f)
            .map_err(|e| (1, crate::render(&e)))
            .and_then(|()| {
                f.sync_all()
                    .map_err(|e| (1, format!("fsync `{}`: {e}", tmp.display())))
            })
    } else {
        let mut rest = vec!["get-wal"];
        if a.partial {
            rest.push("--partial");
        }
        match a.transfer.as_deref() {
            Some("gzip") => rest.push("--gzip"),
            Some("bzip2") => rest.push("--bzip2"),
            Some("keep") => rest.push("--keep-compression"),
            _ => {}
        }
        rest.push(&a.server_name);
        rest.push(wal);
        let remote = remote_args(
            &a.remote.remote_program,
            a.remote.remote_config.as_deref(),
            &rest,
        );
        let file = std::fs::File::create(&tmp)
            .map_err(|e| (1, format!("cannot create `{}`: {e}", tmp.display())))?;
        let status = ssh_command(&a.remote.user, &a.barman_host, a.remote.port, &remote)
            .stdout(Stdio::from(file))
            .status()
            .map_err(|e| (2, format!("cannot run ssh: {e}")))?;
        match status.code() {
            Some(0) => Ok(()),
            Some(255) => Err((
                2,
                format!("ssh to {}@{} failed", a.remote.user, a.barman_host),
            )),
            _ => Err((
                1,
                format!("WAL file '{wal}' not found in server '{}'", a.server_name),
            )),
        }
    };
    let result = result.and_then(|()| {
        if a.transfer.is_some() {
            decompress_in_place(&tmp)
        } else {
            Ok(())
        }
    });
    match result {
        Ok(()) => std::fs::rename(&tmp, dest)
            .map_err(|e| (1, format!("cannot move WAL into `{}`: {e}", dest.display()))),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// A file that travelled compressed, decompressed in place (its magic bytes say how).
fn decompress_in_place(path: &Path) -> std::result::Result<(), (u8, String)> {
    let fail = |e: std::io::Error| (1, format!("cannot decompress `{}`: {e}", path.display()));
    let plain = path.with_extension("plain");
    let input = std::fs::File::open(path).map_err(fail)?;
    let mut reader = barkeep_archive::Codec::sniff(std::io::BufReader::new(input)).map_err(fail)?;
    let mut out = std::fs::File::create(&plain).map_err(fail)?;
    let copied = std::io::copy(&mut reader, &mut out).and_then(|_| out.sync_all());
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&plain);
        return Err(fail(e));
    }
    std::fs::rename(&plain, path).map_err(fail)
}

fn peek(a: &WalRestoreArgs, engine: Option<&Engine>, wal: &str, n: usize) -> Vec<String> {
    if a.remote.local {
        return engine
            .and_then(|e| e.server(&a.server_name).ok())
            .and_then(|s| s.peek_wal(wal, n).ok())
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

/// `wal-restore HOST SERVER WAL_NAME WAL_DEST` (for `restore_command`): from the spool
/// when prefetched, else fetched while the next `-p` files are prefetched in parallel.
pub fn wal_restore(a: &WalRestoreArgs, engine: Option<&Engine>) -> Result<WalClientDone> {
    if a.remote.test {
        if a.remote.local {
            need_engine(engine)?.server(&a.server_name)?;
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
                .map_err(|e| failed(format!("cannot run ssh: {e}")))?;
            if !st.success() {
                return Err(exit(
                    2,
                    format!("ssh to {}@{} failed", a.remote.user, a.barman_host),
                ));
            }
        }
        return Ok(WalClientDone::ReadyToRetrieve);
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
            .map_err(|e| {
                failed(format!(
                    "cannot move `{}` to `{}`: {e}",
                    spooled.display(),
                    a.wal_dest.display()
                ))
            })?;
        return Ok(WalClientDone::Done);
    }
    // 2. Prefetch the next ones in parallel while fetching this one.
    let mut prefetch: Vec<String> = Vec::new();
    if a.parallel > 0 {
        prefetch = peek(a, engine, &a.wal_name, a.parallel + 1);
        prefetch.retain(|w| w != &a.wal_name);
        if !prefetch.is_empty() {
            std::fs::create_dir_all(&a.spool_dir)
                .map_err(|e| EngineError::io("create", &a.spool_dir, e))?;
        }
    }
    // The file asked for and the prefetches, in parallel on one small pool.
    let main = {
        use rayon::prelude::*;
        let prefetch_all = || {
            prefetch.par_iter().for_each(|w| {
                if let Err((_, e)) = fetch(a, engine, w, &a.spool_dir.join(w)) {
                    tracing::debug!("prefetch of {w} failed: {e}");
                }
            })
        };
        match rayon::ThreadPoolBuilder::new()
            .num_threads(prefetch.len() + 1)
            .build()
        {
            Ok(pool) => {
                pool.install(|| {
                    rayon::join(|| fetch(a, engine, &a.wal_name, &a.wal_dest), prefetch_all)
                })
                .0
            }
            // No threads to spare: the file asked for, alone.
            Err(_) => fetch(a, engine, &a.wal_name, &a.wal_dest),
        }
    };
    match main {
        Ok(()) => Ok(WalClientDone::Done),
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
