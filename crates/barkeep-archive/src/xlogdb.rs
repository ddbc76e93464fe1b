//! `<server>-xlog.db`: Barman's WAL catalog, one line per archived file:
//! `name\tsize\ttime\tcompression\tencryption\n` (size of the stored file, mtime as a
//! float, `None` for a missing value). Appended under the `xlogdb` lock and fsynced;
//! rebuilt from the archive by `rebuild-xlogdb`.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::codec::Codec;
use crate::error::{ArchiveError, Result};
use crate::names::WalName;

/// One line of xlog.db.
#[derive(Debug, Clone, PartialEq)]
pub struct XlogEntry {
    /// File name.
    pub name: String,
    /// Size of the stored (compressed) file.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub time: f64,
    /// Codec of the stored file.
    pub compression: Codec,
    /// Encryption (`None` unless Barman's gpg encryption was used).
    pub encryption: Option<String>,
}

impl XlogEntry {
    /// The line, as Barman writes it (without the newline).
    pub fn to_line(&self) -> String {
        let compression = match self.compression {
            Codec::None => "None",
            c => c.name(),
        };
        format!(
            "{}\t{}\t{}\t{}\t{}",
            self.name,
            self.size,
            python_float(self.time),
            compression,
            self.encryption.as_deref().unwrap_or("None")
        )
    }

    /// Parses a line (also Barman's older 3- and 4-column forms).
    pub fn parse(line: &str) -> Option<XlogEntry> {
        let cols: Vec<&str> = line.trim_end_matches(['\n', '\r']).split('\t').collect();
        if cols.len() < 3 || cols.len() > 5 {
            return None;
        }
        Some(XlogEntry {
            name: cols[0].to_string(),
            size: cols[1].parse().ok()?,
            time: cols[2].parse().ok()?,
            compression: cols
                .get(3)
                .map_or(Some(Codec::None), |c| Codec::from_xlogdb(c))?,
            encryption: cols.get(4).filter(|e| **e != "None").map(|e| e.to_string()),
        })
    }

    /// Builds the entry of a stored file.
    pub fn of_file(name: &str, path: &Path) -> Result<XlogEntry> {
        let meta = std::fs::metadata(path).map_err(|e| ArchiveError::io("stat", path, e))?;
        let mut head = [0u8; crate::codec::MAGIC_LEN];
        let n = {
            use std::io::Read;
            let mut f = std::fs::File::open(path).map_err(|e| ArchiveError::io("open", path, e))?;
            let mut n = 0;
            while n < head.len() {
                match f.read(&mut head[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) => return Err(ArchiveError::io("read", path, e)),
                }
            }
            n
        };
        let time = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        Ok(XlogEntry {
            name: name.to_string(),
            size: meta.len(),
            time,
            compression: Codec::detect(&head[..n]),
            encryption: None,
        })
    }
}

/// Python's `repr(float)` for the values we write (always with a decimal point).
fn python_float(x: f64) -> String {
    let s = format!("{x}");
    if s.contains('.') || s.contains('e') || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}

/// The xlog.db file of `server` in `dir` (`xlogdb_directory`).
pub fn xlogdb_path(dir: &Path, server: &str) -> PathBuf {
    dir.join(format!("{server}-xlog.db"))
}

/// Appends entries and fsyncs. The caller holds the `xlogdb` lock.
pub fn append(path: &Path, entries: &[XlogEntry]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let existed = path.exists();
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(crate::durable::file_mode())
        .open(path)
        .map_err(|e| ArchiveError::io("open", path, e))?;
    let mut text = String::new();
    for e in entries {
        text.push_str(&e.to_line());
        text.push('\n');
    }
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| ArchiveError::io("append to", path, e))?;
    if !existed {
        crate::durable::fsync_dir(path.parent().unwrap_or(Path::new(".")))?;
    }
    Ok(())
}

/// Reads every entry (unparseable lines are skipped with a warning naming the line).
pub fn read(path: &Path) -> Result<Vec<XlogEntry>> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ArchiveError::io("open", path, e)),
    };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| ArchiveError::io("read", path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        match XlogEntry::parse(&line) {
            Some(e) => out.push(e),
            None => tracing::warn!(
                "{}:{}: not an xlog.db line, skipped: {line:?}",
                path.display(),
                i + 1
            ),
        }
    }
    Ok(out)
}

/// Rewrites xlog.db from the files in `wals` (hash directories and top-level history
/// files), sorted by name; temporary and unexpected files are reported and skipped.
pub fn rebuild(wals: &Path, xlogdb: &Path) -> Result<Vec<XlogEntry>> {
    let mut entries = Vec::new();
    let list = |dir: &Path| -> Result<Vec<(String, PathBuf)>> {
        let mut v = Vec::new();
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(v),
            Err(e) => return Err(ArchiveError::io("list", dir, e)),
        };
        for e in rd {
            let e = e.map_err(|e| ArchiveError::io("list", dir, e))?;
            v.push((e.file_name().to_string_lossy().into_owned(), e.path()));
        }
        Ok(v)
    };
    for (name, path) in list(wals)? {
        if path.is_dir() && name.len() == 16 {
            for (f, p) in list(&path)? {
                match WalName::parse(&f) {
                    Some(w) if w.hash_dir() == Some(name.as_str()) => {
                        entries.push(XlogEntry::of_file(&f, &p)?)
                    }
                    _ => {
                        tracing::warn!("rebuild-xlogdb: unexpected file `{}` skipped", p.display())
                    }
                }
            }
        } else if let Some(WalName::History(_)) = WalName::parse(&name) {
            entries.push(XlogEntry::of_file(&name, &path)?);
        } else if path.file_name() != xlogdb.file_name() && !name.starts_with('.') {
            tracing::warn!(
                "rebuild-xlogdb: unexpected file `{}` skipped",
                path.display()
            );
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let mut text = String::new();
    for e in &entries {
        text.push_str(&e.to_line());
        text.push('\n');
    }
    crate::durable::write_file_atomic(xlogdb, text.as_bytes())?;
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn barman_line_format() {
        let e = XlogEntry {
            name: "000000010000000000000002".into(),
            size: 16777216,
            time: 1700000000.0,
            compression: Codec::None,
            encryption: None,
        };
        assert_eq!(
            e.to_line(),
            "000000010000000000000002\t16777216\t1700000000.0\tNone\tNone"
        );
        assert_eq!(XlogEntry::parse(&e.to_line()), Some(e.clone()));
        let z = XlogEntry::parse("000000010000000000000003\t123\t1700000001.25\tzstd\tNone")
            .expect("zstd");
        assert_eq!(z.compression, Codec::Zstd);
        // Barman's older 3-column lines.
        let old =
            XlogEntry::parse("000000010000000000000004\t16777216\t1400000000.5").expect("old");
        assert_eq!(old.compression, Codec::None);
        assert!(XlogEntry::parse("garbage").is_none());
        assert!(XlogEntry::parse("a\tb\tc").is_none());
    }
}
