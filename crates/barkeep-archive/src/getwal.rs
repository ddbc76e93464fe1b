//! `get-wal` and `put-wal`: serving WAL to `restore_command` and accepting WAL from
//! `archive_command` (Barman's `barman-wal-archive` tar stream).

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use sha2::Digest;

use crate::archive::{ServerArchive, open_decompressed, same_content, segment_size_of};
use crate::codec::Codec;
use crate::durable;
use crate::error::{ArchiveError, Result};
use crate::names::WalName;

impl ServerArchive {
    /// Where `name` is, in Barman's search order: the archive, `incoming/`, `streaming/`;
    /// with `partial`, also `streaming/NAME.partial`, `wals/…/NAME.partial` and
    /// `incoming/NAME.partial`.
    pub fn find_wal(&self, name: &str, partial: bool) -> Option<PathBuf> {
        let w = WalName::parse(name)?;
        let mut candidates = vec![
            self.archive_path(&w),
            self.incoming.join(name),
            self.streaming.join(name),
        ];
        if partial && let WalName::Segment(_) = w {
            let p = format!("{name}.partial");
            if let Some(pw) = WalName::parse(&p) {
                candidates.push(self.streaming.join(&p));
                candidates.push(self.archive_path(&pw));
                candidates.push(self.incoming.join(&p));
            }
        }
        // The archive once more: archive-wal may have moved it meanwhile.
        candidates.push(self.archive_path(&w));
        candidates.into_iter().find(|p| p.is_file())
    }

    /// Writes WAL `name` to `out`, decompressed (or as stored with `keep_compression`).
    pub fn get_wal(
        &self,
        name: &str,
        partial: bool,
        keep_compression: bool,
        out: &mut dyn Write,
    ) -> Result<Codec> {
        let path = self.find_wal(name, partial).ok_or_else(|| {
            ArchiveError::Other(format!(
                "WAL file '{name}' not found in server '{}'",
                self.server
            ))
        })?;
        if keep_compression {
            let mut f =
                std::fs::File::open(&path).map_err(|e| ArchiveError::io("open", &path, e))?;
            std::io::copy(&mut f, out).map_err(|e| ArchiveError::io("read", &path, e))?;
            return Ok(open_decompressed(&path)?.0);
        }
        let (codec, mut r) = open_decompressed(&path)?;
        std::io::copy(&mut r, out).map_err(|e| ArchiveError::Decompress {
            path: path.clone(),
            codec: codec.name(),
            source: e,
        })?;
        Ok(codec)
    }

    /// `--peek N`: up to `n` consecutive WAL names that exist, starting with `name`.
    pub fn peek(&self, name: &str, n: usize) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let Some(first) = self.find_wal(name, false) else {
            return Ok(out);
        };
        let w = WalName::parse(name)
            .ok_or_else(|| ArchiveError::Other(format!("`{name}` is not a WAL name")))?;
        let Some(seg_name) = w.segment() else {
            out.push(name.to_string());
            return Ok(out);
        };
        let size = barkeep_wal::SegmentSize::new(segment_size_of(&first)?)
            .map_err(|e| ArchiveError::Other(crate::error::chain(&e)))?;
        let p = size
            .parse_segment_name(seg_name)
            .map_err(|e| ArchiveError::Other(crate::error::chain(&e)))?;
        for i in 0..n as u64 {
            let candidate = size.segment_name(p.tli, p.segno + i);
            if self.find_wal(&candidate, false).is_none() {
                break;
            }
            out.push(candidate);
        }
        Ok(out)
    }

    /// `put-wal`: reads a tar stream holding WAL files and a `SHA256SUMS` (or `MD5SUMS`)
    /// file, verifies every checksum, and lands the files in `incoming/` atomically.
    /// A file already present (in `incoming/` or the archive) with identical content is
    /// accepted; with different content it is an error and nothing is replaced.
    pub fn put_wal(&self, input: &mut dyn Read) -> Result<Vec<String>> {
        durable::create_dir_all_durable(&self.incoming)?;
        let mut archive = tar::Archive::new(input);
        let mut files: Vec<(String, PathBuf, String, String)> = Vec::new(); // name, temp, sha256, md5
        let mut sums: Option<(String, String)> = None; // (kind, text)
        let cleanup = |files: &[(String, PathBuf, String, String)]| {
            for (_, t, _, _) in files {
                let _ = std::fs::remove_file(t);
            }
        };
        let entries = archive.entries().map_err(|e| {
            ArchiveError::Other(format!("put-wal: the input is not a tar stream: {e}"))
        })?;
        for entry in entries {
            let mut entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    cleanup(&files);
                    return Err(ArchiveError::Other(format!(
                        "put-wal: damaged tar stream: {e}"
                    )));
                }
            };
            let path = entry
                .path()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let name = path.rsplit('/').next().unwrap_or_default().to_string();
            if name == "SHA256SUMS" || name == "MD5SUMS" {
                let mut text = String::new();
                if let Err(e) = entry.read_to_string(&mut text) {
                    cleanup(&files);
                    return Err(ArchiveError::Other(format!(
                        "put-wal: cannot read {name}: {e}"
                    )));
                }
                sums = Some((name, text));
                continue;
            }
            if WalName::parse(&name).is_none() {
                cleanup(&files);
                return Err(ArchiveError::Other(format!(
                    "put-wal: `{path}` in the tar stream is not a WAL file name"
                )));
            }
            let temp = self
                .incoming
                .join(format!(".{name}.{}.put.tmp", std::process::id()));
            let res = (|| -> std::io::Result<(String, String)> {
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(durable::file_mode())
                    .open(&temp)?;
                let mut sha = sha2::Sha256::new();
                let mut md5 = md5::Md5::new();
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    let n = entry.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    sha.update(&buf[..n]);
                    md5.update(&buf[..n]);
                    f.write_all(&buf[..n])?;
                }
                f.sync_all()?;
                Ok((hex(&sha.finalize()), hex(&md5.finalize())))
            })();
            match res {
                Ok((s, m)) => files.push((name, temp, s, m)),
                Err(e) => {
                    let _ = std::fs::remove_file(&temp);
                    cleanup(&files);
                    return Err(ArchiveError::io("write", &temp, e));
                }
            }
        }
        let verdict = (|| -> Result<()> {
            let (kind, text) = sums.as_ref().ok_or_else(|| {
                ArchiveError::Other(
                    "put-wal: the tar stream has no SHA256SUMS or MD5SUMS file".into(),
                )
            })?;
            if files.is_empty() {
                return Err(ArchiveError::Other(
                    "put-wal: the tar stream holds no WAL file".into(),
                ));
            }
            for (name, _, sha, md5) in &files {
                let want = text.lines().find_map(|l| {
                    let (sum, file) = l.split_once(char::is_whitespace)?;
                    let file = file.trim_start().trim_start_matches('*');
                    (file == name).then(|| sum.to_ascii_lowercase())
                });
                let got = if kind == "MD5SUMS" { md5 } else { sha };
                match want {
                    None => {
                        return Err(ArchiveError::Other(format!(
                            "put-wal: {kind} has no line for `{name}`"
                        )));
                    }
                    Some(w) if &w != got => {
                        return Err(ArchiveError::Other(format!(
                            "put-wal: checksum mismatch for `{name}` ({kind} says {w}, received data hashes to {got}): transfer damaged"
                        )));
                    }
                    Some(_) => {}
                }
            }
            Ok(())
        })();
        if let Err(e) = verdict {
            cleanup(&files);
            return Err(e);
        }
        let mut landed = Vec::new();
        for (name, temp, _, _) in &files {
            let dest = self.incoming.join(name);
            let archived = WalName::parse(name).map(|w| self.archive_path(&w));
            let existing = [Some(dest.clone()), archived]
                .into_iter()
                .flatten()
                .find(|p| p.is_file());
            if let Some(existing) = existing {
                let same = same_content(&existing, temp)?;
                let _ = std::fs::remove_file(temp);
                if same {
                    tracing::info!(server = %self.server, "put-wal: `{name}` already received with identical content");
                    landed.push(name.clone());
                    continue;
                }
                cleanup(&files);
                return Err(ArchiveError::Other(format!(
                    "put-wal: `{name}` already exists in `{}` with different content; not replaced",
                    existing.display()
                )));
            }
            durable::rename_durable(temp, &dest)?;
            landed.push(name.clone());
        }
        Ok(landed)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::tests::{SEG, segment};

    fn setup() -> (tempfile::TempDir, ServerArchive) {
        crate::archive::tests::setup(Codec::Gzip)
    }

    /// A tar stream built the way barman-wal-archive builds it: the WAL, then SHA256SUMS
    /// with `<hash> *<name>` lines.
    fn barman_tar(name: &str, data: &[u8], sums_kind: &str, corrupt: bool) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_cksum();
        b.append_data(&mut h, name, data).expect("wal");
        let sum = if sums_kind == "MD5SUMS" {
            hex(&md5::Md5::digest(data))
        } else {
            hex(&sha2::Sha256::digest(data))
        };
        let sum = if corrupt { "0".repeat(sum.len()) } else { sum };
        let text = format!("{sum} *{name}\n");
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o600);
        h.set_cksum();
        b.append_data(&mut h, sums_kind, text.as_bytes())
            .expect("sums");
        b.into_inner().expect("tar")
    }

    #[test]
    fn put_wal_then_archive_then_get_wal() {
        let (_d, a) = setup();
        let size = barkeep_wal::SegmentSize::new(SEG).expect("size");
        let n1 = size.segment_name(1, 7);
        let n2 = size.segment_name(1, 8);
        let s1 = segment(1, 7, 42, 0xD110, 20);
        let s2 = segment(1, 8, 42, 0xD110, 20);
        assert_eq!(
            a.put_wal(&mut &barman_tar(&n1, &s1, "SHA256SUMS", false)[..])
                .expect("put"),
            vec![n1.clone()]
        );
        assert_eq!(
            a.put_wal(&mut &barman_tar(&n2, &s2, "MD5SUMS", false)[..])
                .expect("put md5"),
            vec![n2.clone()]
        );
        // Identical again: accepted. Different: refused, nothing replaced.
        a.put_wal(&mut &barman_tar(&n1, &s1, "SHA256SUMS", false)[..])
            .expect("identical");
        let err = a
            .put_wal(&mut &barman_tar(&n1, &s2, "SHA256SUMS", false)[..])
            .expect_err("different");
        assert!(format!("{err}").contains("different content"), "{err}");
        let err = a
            .put_wal(&mut &barman_tar(&size.segment_name(1, 9), &s1, "SHA256SUMS", true)[..])
            .expect_err("bad sum");
        assert!(format!("{err}").contains("checksum mismatch"), "{err}");
        assert!(a.put_wal(&mut &b"not a tar"[..]).is_err());

        let out = a.archive_wal().expect("archive");
        assert_eq!(out.len(), 2, "{out:?}");
        // Identical to what is archived: still accepted.
        a.put_wal(&mut &barman_tar(&n1, &s1, "SHA256SUMS", false)[..])
            .expect("archived identical");

        let mut got = Vec::new();
        assert_eq!(
            a.get_wal(&n1, false, false, &mut got).expect("get"),
            Codec::Gzip
        );
        assert_eq!(got, s1);
        let mut raw = Vec::new();
        a.get_wal(&n2, false, true, &mut raw)
            .expect("keep compression");
        assert_eq!(Codec::detect(&raw), Codec::Gzip);
        assert_eq!(a.peek(&n1, 10).expect("peek"), vec![n1.clone(), n2.clone()]);
        let err = a
            .get_wal(&size.segment_name(1, 30), false, false, &mut Vec::new())
            .expect_err("missing");
        assert_eq!(
            format!("{err}"),
            format!(
                "WAL file '{}' not found in server 'pg'",
                size.segment_name(1, 30)
            )
        );
    }
}
