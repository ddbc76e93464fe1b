//! Writing a backup while it streams in, with bounded memory: archive bytes go through a
//! small bounded channel to a thread that either unpacks the tar (plain format) or
//! compresses it into a file (tar format).
//!
//! Plain format: every regular file is written, fsynced, and its CRC-32C computed on the
//! way. With deduplication, a file whose path, size and CRC-32C equal the previous
//! backup's (from that backup's manifest) is replaced by a hard link to it, so an
//! unchanged file costs no disk. The computed checksums are checked against the new
//! manifest once it arrives: a byte damaged in transit fails the backup.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender};

use bytes::Bytes;

use crate::error::{BackupError, Result};
use crate::manifest::{Hasher, Manifest};

/// A `Read` over chunks arriving on a channel; end of input when the sender is dropped.
#[derive(Debug)]
pub struct ChannelReader {
    rx: Receiver<Bytes>,
    current: Bytes,
}

impl ChannelReader {
    /// A bounded channel (`depth` chunks in flight) and its reader.
    pub fn pair(depth: usize) -> (SyncSender<Bytes>, ChannelReader) {
        let (tx, rx) = std::sync::mpsc::sync_channel(depth);
        (
            tx,
            ChannelReader {
                rx,
                current: Bytes::new(),
            },
        )
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.recv() {
                Ok(b) => self.current = b,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// The previous backup, for deduplication.
#[derive(Debug)]
pub struct Previous {
    /// Its manifest.
    pub manifest: Manifest,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its tablespace directories by OID.
    pub tablespaces: BTreeMap<u32, PathBuf>,
}

impl Previous {
    fn file_for(&self, manifest_path: &str) -> Option<PathBuf> {
        if let Some(rest) = manifest_path.strip_prefix("pg_tblspc/") {
            let (oid, inner) = rest.split_once('/')?;
            let dir = self.tablespaces.get(&oid.parse().ok()?)?;
            return Some(dir.join(inner));
        }
        Some(self.data_dir.join(manifest_path))
    }
}

/// How one archive is unpacked.
#[derive(Debug, Clone)]
pub struct Unpack {
    /// Destination directory.
    pub root: PathBuf,
    /// Prefix of this archive's paths in the manifest (`""`, or `pg_tblspc/<oid>/`).
    pub manifest_prefix: String,
    /// Previous backup to hard-link unchanged files to.
    pub previous: Option<Arc<Previous>>,
}

/// What an unpacked archive held.
#[derive(Debug, Default)]
pub struct Unpacked {
    /// Regular files written (or linked).
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// Bytes of files that are hard links to the previous backup.
    pub linked_bytes: u64,
    /// CRC-32C of each file, by manifest path, for the check against the manifest.
    pub crcs: BTreeMap<String, (u64, String)>,
    /// `backup_label` content (base archive).
    pub backup_label: Option<String>,
    /// Symlink entries (`pg_tblspc/<oid>` → location), not created.
    pub symlinks: Vec<(String, String)>,
}

fn clean_path(p: &Path) -> Result<String> {
    let s = p.to_string_lossy();
    let s = s.trim_start_matches("./").trim_end_matches('/').to_string();
    if s.split('/').any(|c| c == "..") || s.starts_with('/') {
        return Err(BackupError::Verify(format!(
            "tar member `{s}` escapes the backup directory"
        )));
    }
    Ok(s)
}

/// Files that carry their own CRC-32C at the end, so that their whole-file CRC-32C is the
/// same for any content: never shared by comparing checksums.
pub fn self_checksummed(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name == "pg_control"
        || name == "pg_filenode.map"
        || rel.starts_with("pg_twophase/")
        || rel.starts_with("pg_logical/")
        || rel.starts_with("pg_replslot/")
}

/// Unpacks a tar stream (plain format).
pub fn unpack(input: impl Read, u: &Unpack) -> Result<Unpacked> {
    let mut out = Unpacked::default();
    fs::create_dir_all(&u.root).map_err(|e| BackupError::io("create directory", &u.root, e))?;
    let mut archive = tar::Archive::new(input);
    let entries = archive
        .entries()
        .map_err(|e| BackupError::Verify(format!("backup stream is not a tar archive: {e}")))?;
    let mut buf = vec![0u8; 256 * 1024];
    for entry in entries {
        let mut entry =
            entry.map_err(|e| BackupError::Verify(format!("damaged tar stream: {e}")))?;
        let raw = entry
            .path()
            .map_err(|e| BackupError::Verify(format!("bad tar member name: {e}")))?
            .into_owned();
        let rel = clean_path(&raw)?;
        if rel.is_empty() {
            continue;
        }
        let dest = u.root.join(&rel);
        // barkeep's modes, not the header's: 0600/0700 (or `catalog_group`'s 0640/2750).
        let mode = barkeep_archive::durable::file_mode();
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            fs::create_dir_all(&dest).map_err(|e| BackupError::io("create directory", &dest, e))?;
            let _ = fs::set_permissions(
                &dest,
                fs::Permissions::from_mode(barkeep_archive::durable::dir_mode()),
            );
            continue;
        }
        if kind.is_symlink() {
            let target = entry
                .link_name()
                .ok()
                .flatten()
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.symlinks.push((rel, target));
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| BackupError::io("create directory", parent, e))?;
        }
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&dest)
            .map_err(|e| BackupError::io("create", &dest, e))?;
        let mut h = Hasher::new("CRC32C").ok_or_else(|| BackupError::Other("no CRC32C".into()))?;
        let mut size = 0u64;
        let mut label = (rel == "backup_label").then(Vec::new);
        loop {
            let n = entry.read(&mut buf).map_err(|e| {
                BackupError::Verify(format!("reading `{rel}` from the stream: {e}"))
            })?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            f.write_all(&buf[..n])
                .map_err(|e| BackupError::io("write", &dest, e))?;
            if let Some(l) = label.as_mut() {
                l.extend_from_slice(&buf[..n]);
            }
            size += n as u64;
        }
        f.sync_all()
            .map_err(|e| BackupError::io("fsync", &dest, e))?;
        if let Ok(mtime) = entry.header().mtime() {
            let _ = f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime));
        }
        drop(f);
        let _ = fs::set_permissions(&dest, fs::Permissions::from_mode(mode));
        let crc = h.finish();
        let mpath = format!("{}{rel}", u.manifest_prefix);
        out.files += 1;
        out.bytes += size;
        if let Some(l) = label {
            out.backup_label = Some(String::from_utf8_lossy(&l).into_owned());
        }
        // Sharing needs more than an equal CRC-32C: a file that ends with the CRC-32C of
        // what precedes it (then zeros) — `global/pg_control`, `pg_filenode.map`,
        // two-phase state files — has the same whole-file CRC-32C whatever it holds (the
        // CRC residue), so every backup's pg_control matched the first one's. Such files
        // are never shared; the others need the same size, the same modification time
        // on the server (as rsync decides) and the same CRC-32C.
        let mtime = entry.header().mtime().ok();
        if !self_checksummed(&rel)
            && let Some(prev) = &u.previous
            && let Some(pf) = prev.manifest.files.get(&mpath)
            && pf.size == size
            && pf.algorithm.as_deref() == Some("CRC32C")
            && pf.checksum.as_deref() == Some(crc.as_str())
            && let Some(old) = prev.file_for(&mpath)
            && fs::metadata(&old).is_ok_and(|m| {
                m.len() == size
                    && mtime.is_some_and(|t| {
                        m.modified()
                            .ok()
                            .and_then(|x| x.duration_since(std::time::UNIX_EPOCH).ok())
                            == Some(std::time::Duration::from_secs(t))
                    })
            })
        {
            // Same content as the previous backup's file: share it.
            let tmp = dest.with_file_name(format!(
                ".{}.link.tmp",
                dest.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ));
            if fs::hard_link(&old, &tmp).is_ok() {
                fs::rename(&tmp, &dest)
                    .map_err(|e| BackupError::io("replace with a link", &dest, e))?;
                out.linked_bytes += size;
            } else {
                let _ = fs::remove_file(&tmp);
            }
        }
        out.crcs.insert(mpath, (size, crc));
    }
    Ok(out)
}

/// Writes a tar stream to `dest` through a compressor (tar format, client side), or as it
/// comes (server-side compression or no compression). Returns the stored size.
pub fn store(mut input: impl Read, dest: &Path, codec: Option<(&str, i32, u32)>) -> Result<u64> {
    let tmp = barkeep_archive::durable::temp_path(dest);
    let f = barkeep_archive::durable::create_private(&tmp)?;
    let mut w = io::BufWriter::with_capacity(256 * 1024, f);
    let res: io::Result<()> = (|| {
        if let Some((name, level, workers)) = codec {
            let codec =
                barkeep_archive::Codec::from_setting(Some(name)).map_err(io::Error::other)?;
            codec.compress_with(level, workers, &mut input, &mut w)?;
        } else {
            io::copy(&mut input, &mut w)?;
        }
        w.flush()?;
        w.get_ref().sync_all()
    })();
    if let Err(e) = res {
        drop(w);
        let _ = fs::remove_file(&tmp);
        return Err(BackupError::io("write", dest, e));
    }
    drop(w);
    barkeep_archive::durable::rename_durable(&tmp, dest)?;
    Ok(fs::metadata(dest)
        .map_err(|e| BackupError::io("stat", dest, e))?
        .len())
}

/// A reader of the tar inside an archive (`base.tar`, `16384.tar.zst`…), decompressed
/// by the codec its first bytes name — the same detection as for WAL.
pub fn archive_decoder<'a, R: Read + 'a>(input: R) -> io::Result<Box<dyn Read + 'a>> {
    barkeep_archive::Codec::sniff(input)
}

/// Links `pg_tblspc/<oid>` in `data` to `target` (replacing what is there): how every
/// backup, restore and verification lays out a tablespace.
pub fn tablespace_link(data: &Path, oid: u32, target: &Path) -> Result<()> {
    let dir = data.join("pg_tblspc");
    let link = dir.join(oid.to_string());
    fs::create_dir_all(&dir).map_err(|e| BackupError::io("create", &dir, e))?;
    let _ = fs::remove_file(&link);
    let _ = fs::remove_dir(&link);
    std::os::unix::fs::symlink(target, &link)
        .map_err(|e| BackupError::io("create symlink", &link, e))
}

/// Unpacks the archives of a tar-format backup (`data_dir` holds `base.tar[.ext]` and
/// `<oid>.tar[.ext]`): `base` into `dest`, each tablespace into `tablespace_root(oid)`,
/// linked from `dest/pg_tblspc/<oid>`. Returns the tablespace oids found.
pub fn extract_tar_backup(
    data_dir: &Path,
    dest: &Path,
    tablespace_root: impl Fn(u32) -> Result<PathBuf>,
) -> Result<Vec<u32>> {
    let mut names: Vec<String> = fs::read_dir(data_dir)
        .map_err(|e| BackupError::io("list", data_dir, e))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tar"))
        .collect();
    names.sort();
    let mut oids = Vec::new();
    for name in names {
        let path = data_dir.join(&name);
        let stem = name.split(".tar").next().unwrap_or_default();
        let (root, prefix, oid) = if stem == "base" {
            (dest.to_path_buf(), String::new(), None)
        } else {
            let oid: u32 = stem.parse().map_err(|_| {
                BackupError::Catalog(format!("unexpected archive `{}`", path.display()))
            })?;
            (
                tablespace_root(oid)?,
                format!("pg_tblspc/{oid}/"),
                Some(oid),
            )
        };
        let file = fs::File::open(&path).map_err(|e| BackupError::io("open", &path, e))?;
        let reader = archive_decoder(file).map_err(|e| BackupError::io("decompress", &path, e))?;
        unpack(
            reader,
            &Unpack {
                root: root.clone(),
                manifest_prefix: prefix,
                previous: None,
            },
        )
        .map_err(|e| {
            BackupError::Other(format!(
                "extracting `{}`: {}",
                path.display(),
                barkeep_archive::error::chain(&e)
            ))
        })?;
        if let Some(oid) = oid {
            tablespace_link(dest, oid, &root)?;
            oids.push(oid);
        }
    }
    Ok(oids)
}

/// fsyncs every directory below `root` (files are fsynced as they are written).
pub fn fsync_dirs(root: &Path) -> Result<()> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)
            .map_err(|e| BackupError::io("list", &d, e))?
            .flatten()
        {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
        barkeep_archive::durable::fsync_dir(&d)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_cksum();
            b.append_data(&mut h, name, *data).expect("append");
        }
        b.into_inner().expect("tar")
    }

    #[test]
    fn unpacks_hashes_and_refuses_escapes() {
        let d = tempfile::tempdir().expect("tempdir");
        let t = tar_of(&[
            ("backup_label", b"START WAL LOCATION: x\n"),
            ("./base/1/1234", b"data"),
        ]);
        let u = Unpack {
            root: d.path().join("data"),
            manifest_prefix: String::new(),
            previous: None,
        };
        let out = unpack(&t[..], &u).expect("unpack");
        assert_eq!(out.files, 2);
        assert_eq!(out.backup_label.as_deref(), Some("START WAL LOCATION: x\n"));
        assert!(out.crcs.contains_key("base/1/1234"));
        assert_eq!(
            fs::read(d.path().join("data/base/1/1234")).expect("read"),
            b"data"
        );

        let mut evil = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_cksum();
        // tar::Builder refuses `..` itself; write the name bytes by hand.
        h.as_gnu_mut().expect("gnu").name[..7].copy_from_slice(b"../evil");
        h.set_cksum();
        evil.append(&h, &b"x"[..]).expect("append");
        let evil = evil.into_inner().expect("tar");
        assert!(unpack(&evil[..], &u).is_err());
    }

    #[test]
    fn channel_reader_reassembles_chunks() {
        let (tx, mut r) = ChannelReader::pair(2);
        let t = std::thread::spawn(move || {
            for c in [&b"ab"[..], b"", b"cde"] {
                tx.send(Bytes::copy_from_slice(c)).expect("send");
            }
        });
        let mut s = Vec::new();
        r.read_to_end(&mut s).expect("read");
        t.join().expect("join");
        assert_eq!(s, b"abcde");
    }
}
