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
        crate::combine::map_path(&self.data_dir, &self.tablespaces, manifest_path)
    }
}

/// How one archive is unpacked.
#[derive(Debug, Clone)]
pub struct Unpack {
    /// Destination directory.
    pub root: PathBuf,
    /// Prefix of this archive's paths in the manifest (`""`, or `pg_tblspc/<oid>/`).
    pub manifest_prefix: String,
    /// Previous backup to share unchanged files or blocks with.
    pub previous: Option<Arc<Previous>>,
    /// Replace a file unchanged since the previous backup by a hard link to it.
    pub link_unchanged: bool,
    /// Start each file as a clone of the previous backup's and write only the blocks
    /// that differ (the file system must clone extents: [`barkeep_archive::share`]).
    pub clone_changed: bool,
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
    /// Bytes of blocks shared with the previous backup's files by cloning (not written).
    pub cloned_bytes: u64,
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
    // The clone's current content, compared with `buf` (allocated once, if cloning).
    let mut old = vec![0u8; if u.clone_changed { buf.len() } else { 0 }];
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
        let mpath = format!("{}{rel}", u.manifest_prefix);
        // The previous backup's file of the same path, to clone from.
        let clone_from = if u.clone_changed {
            u.previous.as_ref().and_then(|p| p.file_for(&mpath))
        } else {
            None
        };
        let mut label = (rel == "backup_label").then(Vec::new);
        let w = write_member(
            &mut entry,
            &dest,
            clone_from.as_deref(),
            &mut buf,
            &mut old,
            &rel,
            |b| {
                if let Some(l) = label.as_mut() {
                    l.extend_from_slice(b);
                }
            },
        )?;
        let size = w.size;
        if let Ok(mtime) = entry.header().mtime() {
            let _ = w
                .file
                .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime));
        }
        drop(w.file);
        let _ = fs::set_permissions(&dest, fs::Permissions::from_mode(mode));
        let h = w.hasher;
        let crc = h.finish();
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
        let mut linked = false;
        if u.link_unchanged
            && !self_checksummed(&rel)
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
                linked = true;
            } else {
                let _ = fs::remove_file(&tmp);
            }
        }
        if !linked {
            out.cloned_bytes += size - w.written;
        }
        out.crcs.insert(mpath, (size, crc));
    }
    Ok(out)
}

/// A member written to disk.
struct Written {
    file: fs::File,
    hasher: Hasher,
    size: u64,
    /// Bytes actually written (the rest shares the clone source's blocks).
    written: u64,
}

/// Block size of the comparison: PostgreSQL's page size.
const BLOCK: usize = 8192;

/// Writes one tar member to `dest`, fsynced, hashing it on the way. With `clone_from` (a
/// file of the previous backup, on a file system that clones extents) `dest` starts as a
/// clone of it and only the 8 KB blocks that differ from the stream are written; where
/// cloning fails every byte is written.
fn write_member(
    entry: &mut impl Read,
    dest: &Path,
    clone_from: Option<&Path>,
    buf: &mut [u8],
    old: &mut [u8],
    rel: &str,
    mut seen: impl FnMut(&[u8]),
) -> Result<Written> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(barkeep_archive::durable::file_mode())
        .open(dest)
        .map_err(|e| BackupError::io("create", dest, e))?;
    let mut h = Hasher::new("CRC32C").ok_or_else(|| BackupError::Other("no CRC32C".into()))?;
    // The clone source's length when `dest` now shares its blocks.
    let old_len = clone_from.and_then(|src| {
        let src = fs::File::open(src).ok()?;
        let len = src.metadata().ok()?.len();
        barkeep_archive::share::clone_into(&f, &src).ok()?;
        Some(len)
    });
    let (mut size, mut written) = (0u64, 0u64);
    loop {
        // Fill the buffer (block-aligned comparisons need whole chunks).
        let mut n = 0;
        while n < buf.len() {
            let r = entry.read(&mut buf[n..]).map_err(|e| {
                BackupError::Verify(format!("reading `{rel}` from the stream: {e}"))
            })?;
            if r == 0 {
                break;
            }
            n += r;
        }
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        h.update(chunk);
        seen(chunk);
        match old_len {
            Some(ol) if size < ol => {
                // Compare with the clone's current content block by block; write the
                // runs of blocks that differ.
                let have = usize::try_from((ol - size).min(n as u64)).unwrap_or(n);
                f.read_exact_at(&mut old[..have], size)
                    .map_err(|e| BackupError::io("read", dest, e))?;
                let mut i = 0;
                while i < n {
                    let end = (i + BLOCK).min(n);
                    let same = end <= have && chunk[i..end] == old[i..end];
                    if same {
                        i = end;
                        continue;
                    }
                    // A run of differing blocks.
                    let mut j = end;
                    while j < n {
                        let e2 = (j + BLOCK).min(n);
                        if e2 <= have && chunk[j..e2] == old[j..e2] {
                            break;
                        }
                        j = e2;
                    }
                    f.write_all_at(&chunk[i..j], size + i as u64)
                        .map_err(|e| BackupError::io("write", dest, e))?;
                    written += (j - i) as u64;
                    i = j;
                }
            }
            _ => {
                f.write_all_at(chunk, size)
                    .map_err(|e| BackupError::io("write", dest, e))?;
                written += n as u64;
            }
        }
        size += n as u64;
    }
    if old_len.is_some_and(|ol| ol > size) {
        f.set_len(size)
            .map_err(|e| BackupError::io("truncate", dest, e))?;
    }
    f.sync_all()
        .map_err(|e| BackupError::io("fsync", dest, e))?;
    Ok(Written {
        file: f,
        hasher: h,
        size,
        written,
    })
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
                link_unchanged: false,
                clone_changed: false,
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
            link_unchanged: false,
            clone_changed: false,
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

    fn blocks(n: usize, seed: u8) -> Vec<u8> {
        (0..n * BLOCK)
            .map(|i| {
                (i as u8)
                    .wrapping_mul(31)
                    .wrapping_add(seed ^ (i / BLOCK) as u8)
            })
            .collect()
    }

    /// The previous backup `old` (one file `base/1/16384`) and a new stream of `new` for
    /// the same path, unpacked with sharing; returns what was unpacked and the new file.
    fn share_round(root: &Path, old: &[u8], new: &[u8], clone: bool) -> (Unpacked, Vec<u8>) {
        let prev_dir = root.join("prev");
        fs::create_dir_all(prev_dir.join("base/1")).expect("mkdir");
        fs::write(prev_dir.join("base/1/16384"), old).expect("write old");
        let prev = Previous {
            manifest: Manifest::default(),
            data_dir: prev_dir,
            tablespaces: BTreeMap::new(),
        };
        let u = Unpack {
            root: root.join("new"),
            manifest_prefix: String::new(),
            previous: Some(Arc::new(prev)),
            link_unchanged: true,
            clone_changed: clone,
        };
        let out = unpack(&tar_of(&[("base/1/16384", new)])[..], &u).expect("unpack");
        let got = fs::read(root.join("new/base/1/16384")).expect("read new");
        (out, got)
    }

    #[test]
    fn changed_blocks_only_are_written_over_a_clone() {
        let d = tempfile::tempdir().expect("tempdir");
        let Some(xfs) = barkeep_testkit::require_reflink_fs(d.path(), 300) else {
            return;
        };
        let probe = barkeep_archive::share::probe(xfs.path());
        assert!(probe.clone, "XFS with reflink clones: {probe:?}");
        assert_eq!(probe.fs, "xfs");
        let old = blocks(512, 1);
        // Two blocks changed, the file grown by two blocks and a half.
        let mut new = old.clone();
        new[3 * BLOCK + 100] ^= 0xff;
        new[400 * BLOCK..401 * BLOCK].fill(7);
        new.extend_from_slice(&blocks(2, 9));
        new.extend_from_slice(&[1u8; 4000]);
        let before = xfs.used();
        let (out, got) = share_round(xfs.path(), &old, &new, true);
        assert_eq!(got, new, "the new file holds the new content");
        assert_eq!(out.linked_bytes, 0);
        let written = 4 * BLOCK as u64 + 4000;
        assert_eq!(out.cloned_bytes, new.len() as u64 - written);
        // On disk: the old file (4 MiB) plus about what was written.
        let grew = xfs.used() - before;
        assert!(
            grew < old.len() as u64 + 1024 * 1024,
            "the clone shares the unchanged blocks: {grew} bytes used for {} + {} bytes",
            old.len(),
            new.len()
        );
        // Shrunk: truncated to the new length.
        let d2 = xfs.path().join("shrink");
        let (out, got) = share_round(&d2, &old, &old[..100 * BLOCK], true);
        assert_eq!(got, &old[..100 * BLOCK]);
        assert_eq!(out.cloned_bytes, 100 * BLOCK as u64);
        // Changing the previous backup's file afterwards leaves the new one alone.
        fs::write(d2.join("prev/base/1/16384"), b"gone").expect("overwrite");
        assert_eq!(
            fs::read(d2.join("new/base/1/16384")).expect("read"),
            &old[..100 * BLOCK]
        );
    }

    #[test]
    fn without_cloning_every_byte_is_written() {
        let d = tempfile::tempdir().expect("tempdir");
        let old = blocks(16, 1);
        let mut new = old.clone();
        new[5 * BLOCK] ^= 1;
        // Whether or not this file system clones, `clone_changed = false` writes it all.
        let (out, got) = share_round(d.path(), &old, &new, false);
        assert_eq!(got, new);
        assert_eq!(out.cloned_bytes, 0);
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
