//! `archive-wal`: moves files from `incoming/` and `streaming/` into `wals/`, validated,
//! compressed and catalogued, durable at every step:
//!
//! 1. the file name is classified (segment, `.partial`, `.backup`, `.history`); anything
//!    else goes to `errors/NAME.TIMESTAMP.unknown`;
//! 2. segments are validated page by page against `identity.json` (system id, major);
//!    a bad file goes to `errors/NAME.TIMESTAMP.invalid` with a log line saying why;
//! 3. if the destination exists, contents are compared decompressed: identical → the
//!    incoming copy is dropped; different → `errors/NAME.TIMESTAMP.duplicate`;
//! 4. the file is compressed (unless it already is) into a temporary file beside its
//!    destination, fsynced, renamed into place, the directory fsynced;
//! 5. its line is appended to xlog.db (fsynced) under the `xlogdb` lock;
//! 6. only then is the source removed.
//!
//! A crash at any point leaves either the source or a complete archived file (or both:
//! the next run sees an identical duplicate and finishes the job). With a backlog,
//! validation and compression run on every core; files are committed in name order.

use std::fs::File;

use serde::Deserialize;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use crate::codec::{Codec, Level, MAGIC_LEN};
use crate::durable;
use crate::error::{ArchiveError, Result};
use crate::lock::LockFile;
use crate::names::WalName;
use crate::validate::{Expect, validate_segment};
use crate::xlogdb::{self, XlogEntry};

/// `identity.json`: `{"systemid": "...", "version": "<major>"}`. Barman writes the major
/// as a string (`"15"`; `"9.6"` before 10) and so does barkeep; a number (what barkeep
/// 0.1 wrote) is read too.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// System identifier, as text.
    #[serde(deserialize_with = "text_or_number")]
    pub systemid: String,
    /// Server major version, as Barman writes it (`"15"`).
    #[serde(deserialize_with = "text_or_number")]
    pub version: String,
}

fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or a number, found {other}"
        ))),
    }
}

impl Identity {
    /// The identity of a server of major `major` (`15`, from `server_version_num / 10000`).
    pub fn new(systemid: impl Into<String>, major: u32) -> Identity {
        Identity {
            systemid: systemid.into(),
            version: major.to_string(),
        }
    }

    /// The major as a number (`None` for a pre-10 `"9.6"` or anything unexpected).
    pub fn major(&self) -> Option<u32> {
        self.version.trim().parse().ok()
    }

    /// Reads `identity.json`, `None` when absent.
    pub fn load(path: &Path) -> Result<Option<Identity>> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
                ArchiveError::Other(format!(
                    "`{}` is not a valid identity file: {e}",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ArchiveError::io("read", path, e)),
        }
    }

    /// The one system-identity check: `path` records the identity of the first server
    /// seen (system id and major); a server with another system id is refused — WAL or
    /// backups of two clusters must never mix in one archive. `what` (`WAL`, `backups`)
    /// and `server` name the refusal.
    pub fn check_or_record(
        path: &Path,
        systemid: u64,
        major: u32,
        server: &str,
        what: &str,
    ) -> Result<()> {
        match Identity::load(path)? {
            Some(known) if known.systemid != systemid.to_string() => {
                Err(ArchiveError::Other(format!(
                    "server `{server}` has system identifier {systemid}, but the archive in `{}` belongs to {}: refusing to mix {what} of two clusters",
                    path.display(),
                    known.systemid
                )))
            }
            Some(_) => Ok(()),
            None => Identity::new(systemid.to_string(), major).save(path),
        }
    }

    /// Writes it as Barman does (`json.dump(indent=4, sort_keys=True)` and a newline),
    /// atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = format!(
            "{{\n    \"systemid\": {},\n    \"version\": {}\n}}\n",
            serde_json::Value::String(self.systemid.clone()),
            serde_json::Value::String(self.version.clone())
        );
        durable::write_file_atomic(path, text.as_bytes())
    }
}

/// What Barman's archive hooks (`pre_archive_script`, `post_archive_script` and their
/// `_retry_` variants) are told about a file: `BARMAN_FILE`, `BARMAN_SIZE`,
/// `BARMAN_TIMESTAMP`, `BARMAN_COMPRESSION`, `BARMAN_SEGMENT`, `BARMAN_ERROR`.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchivedFile {
    /// Before the commit, the file waiting in `incoming/` or `streaming/`; after it, its
    /// path in the archive (`BARMAN_FILE`).
    pub path: PathBuf,
    /// File name (`BARMAN_SEGMENT`).
    pub name: String,
    /// Size of that file (`BARMAN_SIZE`).
    pub size: u64,
    /// Its modification time, seconds since the epoch (`BARMAN_TIMESTAMP`).
    pub time: f64,
    /// Its codec (`BARMAN_COMPRESSION`).
    pub codec: Codec,
}

impl ArchivedFile {
    fn of(path: &Path, name: &str, codec: Codec) -> ArchivedFile {
        let meta = std::fs::metadata(path).ok();
        ArchivedFile {
            path: path.to_path_buf(),
            name: name.to_string(),
            size: meta.as_ref().map_or(0, |m| m.len()),
            // As Python's `st_mtime`: seconds + nanoseconds × 1e-9, in a double.
            time: meta.map_or(0.0, |m| {
                use std::os::unix::fs::MetadataExt;
                m.mtime() as f64 + m.mtime_nsec() as f64 * 1e-9
            }),
            codec,
        }
    }
}

/// Archive hooks, called around each file's commit. A pre-hook error aborts that file's
/// archiving (it stays where it is, to be retried), as Barman's `pre_archive_retry_script`
/// does.
pub trait ArchiveHooks: std::fmt::Debug + Send + Sync {
    /// Before the file is committed into the archive.
    fn pre_archive(&self, file: &ArchivedFile) -> std::result::Result<(), String>;
    /// After the commit.
    fn post_archive(&self, file: &ArchivedFile, error: Option<&str>);
}

/// Where a server's WAL lives and how it is stored.
#[derive(Debug, Clone)]
pub struct ServerArchive {
    /// Server name.
    pub server: String,
    /// `wals_directory`.
    pub wals: PathBuf,
    /// `incoming_wals_directory`.
    pub incoming: PathBuf,
    /// `streaming_wals_directory`.
    pub streaming: PathBuf,
    /// `errors_directory`.
    pub errors: PathBuf,
    /// `xlogdb_directory`.
    pub xlogdb_dir: PathBuf,
    /// `barman_lock_directory`.
    pub lock_dir: PathBuf,
    /// `<backup_directory>/identity.json`.
    pub identity_file: PathBuf,
    /// `compression`.
    pub codec: Codec,
    /// `compression_level`.
    pub level: Level,
    /// Archive hooks (none until the hooks are configured).
    pub hooks: Option<std::sync::Arc<dyn ArchiveHooks>>,
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored in the archive.
    Archived {
        /// File name.
        name: String,
        /// Codec of the stored file.
        codec: Codec,
    },
    /// Already archived with the same content; the copy was dropped.
    Duplicate {
        /// File name.
        name: String,
    },
    /// Already archived with different content; moved to `errors/`.
    Conflict {
        /// File name.
        name: String,
        /// Where it went.
        moved_to: PathBuf,
    },
    /// Failed validation; moved to `errors/`.
    Invalid {
        /// File name.
        name: String,
        /// Why.
        reason: String,
        /// Where it went.
        moved_to: PathBuf,
    },
    /// Not a WAL archive name; moved to `errors/`.
    Unknown {
        /// File name.
        name: String,
        /// Where it went.
        moved_to: PathBuf,
    },
}

pub(crate) fn timestamp() -> String {
    // Barman: `%Y%m%dT%H%M%SZ` in UTC.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86400;
    let rem = secs % 86400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil conversion.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| ArchiveError::io("open", path, e))
}

fn head(path: &Path) -> Result<Vec<u8>> {
    let mut f = open(path)?;
    let mut buf = vec![0u8; MAGIC_LEN.max(40)];
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(ArchiveError::io("read", path, e)),
        }
    }
    buf.truncate(n);
    Ok(buf)
}

/// A reader of the decompressed content of a stored or incoming file.
pub fn open_decompressed(path: &Path) -> Result<(Codec, Box<dyn Read>)> {
    let codec = Codec::detect(&head(path)?);
    let f = BufReader::with_capacity(256 * 1024, open(path)?);
    let r = codec.decoder(f).map_err(|e| ArchiveError::Decompress {
        path: path.to_path_buf(),
        codec: codec.name(),
        source: e,
    })?;
    Ok((codec, r))
}

/// Whether two files have the same decompressed content.
pub fn same_content(a: &Path, b: &Path) -> Result<bool> {
    let (ca, mut ra) = open_decompressed(a)?;
    let (cb, mut rb) = open_decompressed(b)?;
    let mut ba = vec![0u8; 64 * 1024];
    let mut bb = vec![0u8; 64 * 1024];
    loop {
        let na = read_chunk(&mut ra, &mut ba).map_err(|e| ArchiveError::Decompress {
            path: a.to_path_buf(),
            codec: ca.name(),
            source: e,
        })?;
        let nb = read_chunk(&mut rb, &mut bb).map_err(|e| ArchiveError::Decompress {
            path: b.to_path_buf(),
            codec: cb.name(),
            source: e,
        })?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_chunk(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The segment size recorded in a segment's long page header (decompressing if needed).
pub fn segment_size_of(path: &Path) -> Result<u64> {
    let (_, mut r) = open_decompressed(path)?;
    let mut h = [0u8; 40];
    read_chunk(&mut r, &mut h).map_err(|e| ArchiveError::io("read", path, e))?;
    let size = u64::from(u32::from_le_bytes([h[32], h[33], h[34], h[35]]));
    barkeep_wal::SegmentSize::new(size)
        .map(|s| s.bytes())
        .map_err(|e| ArchiveError::InvalidWal {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// Removes the temporary copies of `dest` that a killed `archive-wal` left beside it.
/// The caller holds the `archive-wal` lock: no other process writes them.
fn remove_stale_temps(dest: &Path) {
    let (Some(dir), Some(name)) = (dest.parent(), dest.file_name()) else {
        return;
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let ours = format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id());
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&prefix) && n.ends_with(".tmp") && n != ours {
            tracing::info!(
                "removing `{}`, left by an interrupted archive-wal",
                e.path().display()
            );
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// A file ready to commit: validated, compressed into `temp` (or to be moved as is).
struct Prepared {
    name: WalName,
    source: PathBuf,
    dest: PathBuf,
    temp: Option<PathBuf>,
    codec: Codec,
}

enum Step {
    Ready(Prepared),
    Done(Outcome),
}

impl ServerArchive {
    /// Creates the server's directories (as Barman does before any WAL operation).
    pub fn create_directories(&self) -> Result<()> {
        if let Some(parent) = self.identity_file.parent() {
            durable::create_dir_all_durable(parent)?;
            durable::apply_dir_access(parent, false)?;
        }
        for d in [
            &self.wals,
            &self.incoming,
            &self.streaming,
            &self.errors,
            &self.xlogdb_dir,
        ] {
            durable::create_dir_all_durable(d)?;
            // With `catalog_group`, a local `archive_command` run by a member of the group
            // delivers into `incoming/`.
            durable::apply_dir_access(d, *d == self.incoming)?;
        }
        Ok(())
    }

    /// Where an archived file lives.
    pub fn archive_path(&self, name: &WalName) -> PathBuf {
        match name.hash_dir() {
            Some(h) => self.wals.join(h).join(name.name()),
            None => self.wals.join(name.name()),
        }
    }

    /// The xlog.db file.
    pub fn xlogdb(&self) -> PathBuf {
        xlogdb::xlogdb_path(&self.xlogdb_dir, &self.server)
    }

    fn to_errors(&self, source: &Path, name: &str, kind: &str) -> Result<PathBuf> {
        durable::create_dir_all_durable(&self.errors)?;
        let dest = self.errors.join(format!("{name}.{}.{kind}", timestamp()));
        durable::rename_durable(source, &dest)?;
        Ok(dest)
    }

    /// Validates the content of `source` as `name`.
    fn validate(
        &self,
        name: &WalName,
        source: &Path,
        identity: Option<&Identity>,
    ) -> Result<(), String> {
        let (_, mut r) = open_decompressed(source).map_err(|e| crate::error::chain(&e))?;
        match name {
            WalName::Segment(_) | WalName::Partial(_) => {
                let seg = segment_size_of(source).map_err(|e| crate::error::chain(&e))?;
                let size =
                    barkeep_wal::SegmentSize::new(seg).map_err(|e| crate::error::chain(&e))?;
                let parsed = size
                    .parse_segment_name(name.segment().unwrap_or_default())
                    .map_err(|e| crate::error::chain(&e))?;
                let expect = Expect {
                    tli: parsed.tli,
                    segno: parsed.segno,
                    segment_size: seg,
                    system_id: identity.and_then(|i| i.systemid.parse().ok()),
                    major: identity.and_then(Identity::major),
                    complete: matches!(name, WalName::Segment(_)),
                };
                validate_segment(&mut r, &expect)
            }
            WalName::History(_) => {
                let mut text = String::new();
                r.read_to_string(&mut text)
                    .map_err(|e| format!("not text: {e}"))?;
                barkeep_wal::parse_history(&text)
                    .map(|_| ())
                    .map_err(|e| crate::error::chain(&e))
            }
            WalName::BackupLabel(_) => {
                let mut text = String::new();
                r.read_to_string(&mut text)
                    .map_err(|e| format!("not text: {e}"))?;
                if text.starts_with("START WAL LOCATION:") {
                    Ok(())
                } else {
                    Err("a backup history file starts with `START WAL LOCATION:`".into())
                }
            }
        }
    }

    fn prepare(&self, name: WalName, source: PathBuf, identity: Option<&Identity>) -> Result<Step> {
        if let Err(reason) = self.validate(&name, &source, identity) {
            tracing::error!(server = %self.server, "WAL file `{}` is invalid: {reason}; moving it to the errors directory", source.display());
            let moved_to = self.to_errors(&source, name.name(), "invalid")?;
            return Ok(Step::Done(Outcome::Invalid {
                name: name.name().into(),
                reason,
                moved_to,
            }));
        }
        let dest = self.archive_path(&name);
        if dest.exists() {
            if same_content(&dest, &source)? {
                return Ok(Step::Done(Outcome::Duplicate {
                    name: name.name().into(),
                }));
            }
            tracing::error!(server = %self.server, "WAL file `{}` is already archived with different content; moving the new copy to the errors directory", name.name());
            let moved_to = self.to_errors(&source, name.name(), "duplicate")?;
            return Ok(Step::Done(Outcome::Conflict {
                name: name.name().into(),
                moved_to,
            }));
        }
        if let Some(parent) = dest.parent() {
            durable::create_dir_all_durable(parent)?;
        }
        let source_codec = Codec::detect(&head(&source)?);
        // History and backup label files stay readable text, as Barman keeps them.
        let want = match name {
            WalName::History(_) | WalName::BackupLabel(_) => Codec::None,
            _ => self.codec,
        };
        if source_codec != Codec::None || want == Codec::None {
            // Stored as it came (already compressed by the client, or no compression):
            // copied so that the source can be removed only after the commit.
            let temp = durable::temp_path(&dest);
            remove_stale_temps(&dest);
            let mut input = open(&source)?;
            let mut out = durable::create_private(&temp)?;
            if let Err(e) = std::io::copy(&mut input, &mut out).and_then(|_| out.sync_all()) {
                let _ = std::fs::remove_file(&temp);
                return Err(ArchiveError::io("copy into", &temp, e));
            }
            return Ok(Step::Ready(Prepared {
                name,
                source,
                dest,
                temp: Some(temp),
                codec: source_codec,
            }));
        }
        let temp = durable::temp_path(&dest);
        remove_stale_temps(&dest);
        let mut input = BufReader::with_capacity(256 * 1024, open(&source)?);
        let out = durable::create_private(&temp)?;
        let mut w = std::io::BufWriter::with_capacity(256 * 1024, out);
        let res = want
            .compress(self.level, &mut input, &mut w)
            .and_then(|_| w.flush())
            .and_then(|()| w.get_ref().sync_all());
        if let Err(e) = res {
            let _ = std::fs::remove_file(&temp);
            return Err(ArchiveError::io(
                format!("compress ({}) into", want.name()),
                &temp,
                e,
            ));
        }
        Ok(Step::Ready(Prepared {
            name,
            source,
            dest,
            temp: Some(temp),
            codec: want,
        }))
    }

    /// The files waiting in `incoming/` and `streaming/`, sorted by name, with the newest
    /// `.partial` of `streaming/` (being written by the receiver) left alone.
    pub fn pending(&self) -> Result<Vec<(String, PathBuf)>> {
        let mut out = Vec::new();
        for (dir, streaming) in [(&self.incoming, false), (&self.streaming, true)] {
            let rd = match std::fs::read_dir(dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(ArchiveError::io("list", dir, e)),
            };
            let mut names: Vec<(String, PathBuf)> = Vec::new();
            for e in rd {
                let e = e.map_err(|e| ArchiveError::io("list", dir, e))?;
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with(".tmp") || name.starts_with('.') || !e.path().is_file() {
                    continue;
                }
                names.push((name, e.path()));
            }
            if streaming
                && let Some(newest) = names
                    .iter()
                    .filter(|(n, _)| n.ends_with(".partial"))
                    .map(|(n, _)| n.clone())
                    .max()
                && !self.timeline_ended(&newest, &names)
            {
                names.retain(|(n, _)| *n != newest);
            }
            out.extend(names);
        }
        out.sort();
        Ok(out)
    }

    /// Whether the timeline of a `.partial` has ended: a history file of a later
    /// timeline is in `streaming/` (`waiting`) or in the archive. The receiver writes it
    /// only after the old timeline's last segment is flushed, so that `.partial` is
    /// final and can be archived now, not left behind as if still being written.
    fn timeline_ended(&self, partial: &str, waiting: &[(String, PathBuf)]) -> bool {
        let tli_of = |name: &str| name.get(..8).and_then(|t| u32::from_str_radix(t, 16).ok());
        let Some(tli) = tli_of(partial) else {
            return false;
        };
        let later =
            |name: &str| name.ends_with(".history") && tli_of(name).is_some_and(|t| t > tli);
        waiting.iter().any(|(n, _)| later(n))
            || std::fs::read_dir(&self.wals).is_ok_and(|rd| {
                rd.flatten()
                    .any(|e| later(&e.file_name().to_string_lossy()))
            })
    }

    /// Archives everything pending. Holds the `archive-wal` lock; returns what happened
    /// to each file. Per-file problems (invalid, conflicting, unknown files) are outcomes,
    /// not errors: archiving goes on with the other files.
    pub fn archive_wal(&self) -> Result<Vec<Outcome>> {
        let _lock = LockFile::try_acquire(&self.lock_dir, &self.server, "archive-wal")?;
        let identity = Identity::load(&self.identity_file)?;
        if identity.is_none() {
            tracing::warn!(server = %self.server, "no `{}` yet: WAL is validated without the system identifier", self.identity_file.display());
        }
        let pending = self.pending()?;
        let mut outcomes = Vec::new();
        let mut work = Vec::new();
        for (file, path) in pending {
            match WalName::parse(&file) {
                Some(n) => work.push((n, path)),
                None => {
                    tracing::warn!(server = %self.server, "`{}` is not a WAL file name; moving it to the errors directory", path.display());
                    let moved_to = self.to_errors(&path, &file, "unknown")?;
                    outcomes.push(Outcome::Unknown {
                        name: file,
                        moved_to,
                    });
                }
            }
        }
        // The same name can wait in both incoming/ and streaming/: copies of one name go
        // to successive rounds, so that no two are prepared at once (the later one then
        // meets the archived file: a duplicate, or a conflict kept in errors/).
        let mut rounds: Vec<Vec<(WalName, PathBuf)>> = Vec::new();
        let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for (n, p) in work {
            let k = seen.entry(n.name().to_string()).or_insert(0);
            if rounds.len() <= *k {
                rounds.push(Vec::new());
            }
            rounds[*k].push((n, p));
            *k += 1;
        }
        // In batches, so that a large backlog is committed progressively.
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        for batch in rounds.iter().flat_map(|r| r.chunks(workers.max(1) * 4)) {
            let steps: Vec<Result<Step>> = if batch.len() > 1 && workers > 1 {
                let next = std::sync::atomic::AtomicUsize::new(0);
                let results: Vec<std::sync::Mutex<Option<Result<Step>>>> =
                    batch.iter().map(|_| std::sync::Mutex::new(None)).collect();
                std::thread::scope(|s| {
                    for _ in 0..workers.min(batch.len()) {
                        s.spawn(|| {
                            loop {
                                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                let Some((n, p)) = batch.get(i) else { break };
                                let r = self.prepare(n.clone(), p.clone(), identity.as_ref());
                                if let Ok(mut slot) = results[i].lock() {
                                    *slot = Some(r);
                                }
                            }
                        });
                    }
                });
                results
                    .into_iter()
                    .map(|m| {
                        m.into_inner().ok().flatten().unwrap_or_else(|| {
                            Err(ArchiveError::Other("a worker thread failed".into()))
                        })
                    })
                    .collect()
            } else {
                batch
                    .iter()
                    .map(|(n, p)| self.prepare(n.clone(), p.clone(), identity.as_ref()))
                    .collect()
            };
            let mut first_error = None;
            let mut ready = Vec::new();
            for s in steps {
                match s {
                    Ok(Step::Ready(p)) => ready.push(p),
                    Ok(Step::Done(o)) => {
                        if let Outcome::Duplicate { name } = &o {
                            self.ensure_catalogued(name)?;
                            let src = batch
                                .iter()
                                .find(|(n, _)| n.name() == name)
                                .map(|(_, p)| p.clone());
                            if let Some(src) = src {
                                durable::remove_durable(&src)?;
                            }
                        }
                        outcomes.push(o);
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            let committed = self.commit(ready)?;
            outcomes.extend(committed);
            if let Some(e) = first_error {
                return Err(e);
            }
        }
        Ok(outcomes)
    }

    /// Renames prepared files into place, appends their xlog.db lines, removes sources.
    fn commit(&self, ready: Vec<Prepared>) -> Result<Vec<Outcome>> {
        if ready.is_empty() {
            return Ok(Vec::new());
        }
        // Pre-archive hooks first, outside the xlog.db lock: a retry script may wait
        // minutes, and the receiver must go on archiving meanwhile.
        let mut accepted = Vec::new();
        for p in &ready {
            // The source as it waits (compressed already when a client compressed it).
            let source_codec = head(&p.source)
                .map(|h| Codec::detect(&h))
                .unwrap_or(Codec::None);
            let waiting = ArchivedFile::of(&p.source, p.name.name(), source_codec);
            if let Some(h) = &self.hooks
                && let Err(why) = h.pre_archive(&waiting)
            {
                tracing::warn!(server = %self.server, "pre-archive hook refused {}: {why}; it will be retried", p.name.name());
                if let Some(t) = &p.temp {
                    let _ = std::fs::remove_file(t);
                }
                continue;
            }
            accepted.push((p, waiting.time));
        }
        let xlogdb_lock = LockFile::acquire_blocking(&self.lock_dir, &self.server, "xlogdb")?;
        let mut entries = Vec::new();
        let mut outcomes = Vec::new();
        let mut committed = Vec::new();
        for (p, time) in accepted {
            if let Some(t) = &p.temp {
                durable::rename_durable(t, &p.dest)?;
            }
            entries.push(XlogEntry::of_file(p.name.name(), &p.dest)?);
            outcomes.push(Outcome::Archived {
                name: p.name.name().into(),
                codec: p.codec,
            });
            // Barman reports the time of the file as it arrived.
            let mut stored = ArchivedFile::of(&p.dest, p.name.name(), p.codec);
            stored.time = time;
            committed.push((p, stored));
        }
        durable::create_dir_all_durable(&self.xlogdb_dir)?;
        xlogdb::append(&self.xlogdb(), &entries)?;
        drop(xlogdb_lock);
        for (p, info) in &committed {
            durable::remove_durable(&p.source)?;
            tracing::info!(server = %self.server, "archived {} ({})", p.name.name(), p.codec.name());
            if let Some(h) = &self.hooks {
                h.post_archive(info, None);
            }
        }
        Ok(outcomes)
    }

    /// After a crash between the rename and the xlog.db append, the duplicate found on the
    /// next run must still be catalogued.
    fn ensure_catalogued(&self, name: &str) -> Result<()> {
        let _l = LockFile::acquire_blocking(&self.lock_dir, &self.server, "xlogdb")?;
        let db = self.xlogdb();
        if xlogdb::read(&db)?.iter().any(|e| e.name == name) {
            return Ok(());
        }
        let path = self.archive_path(
            &WalName::parse(name).ok_or_else(|| ArchiveError::Other(format!("bad name {name}")))?,
        );
        xlogdb::append(&db, &[XlogEntry::of_file(name, &path)?])
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::validate::tests::{SEG, segment};

    /// A server archive in a temporary directory, with identity (system id 42, PG 15).
    pub(crate) fn setup(codec: Codec) -> (tempfile::TempDir, ServerArchive) {
        let d = tempfile::tempdir().expect("tempdir");
        let a = ServerArchive {
            server: "pg".into(),
            wals: d.path().join("wals"),
            incoming: d.path().join("incoming"),
            streaming: d.path().join("streaming"),
            errors: d.path().join("errors"),
            xlogdb_dir: d.path().join("wals"),
            lock_dir: d.path().to_path_buf(),
            identity_file: d.path().join("identity.json"),
            codec,
            level: Level::Low,
            hooks: None,
        };
        for dir in [&a.incoming, &a.streaming] {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        Identity::new("42", 15)
            .save(&a.identity_file)
            .expect("identity");
        (d, a)
    }

    fn name(segno: u64) -> String {
        barkeep_wal::SegmentSize::new(SEG)
            .expect("size")
            .segment_name(1, segno)
    }

    #[test]
    fn the_last_partial_of_an_ended_timeline_is_not_held_back() {
        let (_d, a) = setup(Codec::None);
        let partial = format!("{}.partial", name(6));
        std::fs::write(a.streaming.join(&partial), b"x").expect("w");
        // Still being written: held back.
        assert!(a.pending().expect("pending").is_empty());
        // A later timeline's history (waiting, or archived): timeline 1 has ended.
        std::fs::write(a.streaming.join("00000002.history"), b"1\t0/6000000\tx\n").expect("w");
        let p: Vec<String> = a
            .pending()
            .expect("pending")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(p, vec![partial.clone(), "00000002.history".to_string()]);
        std::fs::remove_file(a.streaming.join("00000002.history")).expect("rm");
        std::fs::create_dir_all(&a.wals).expect("wals");
        std::fs::write(a.wals.join("00000002.history"), b"1\t0/6000000\tx\n").expect("w");
        let p: Vec<String> = a
            .pending()
            .expect("pending")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(p, vec![partial]);
    }

    #[test]
    fn archives_validates_and_sorts_out_bad_files() {
        let (_d, a) = setup(Codec::Zstd);
        let good: Vec<Vec<u8>> = (1..=5).map(|s| segment(1, s, 42, 0xD110, 30)).collect();
        for (i, g) in good.iter().enumerate() {
            std::fs::write(a.incoming.join(name(i as u64 + 1)), g).expect("write");
        }
        // Bad magic, another cluster, truncated, and something that is not WAL at all.
        std::fs::write(a.incoming.join(name(10)), segment(1, 10, 42, 0xD116, 3)).expect("w");
        std::fs::write(a.incoming.join(name(11)), segment(1, 11, 7, 0xD110, 3)).expect("w");
        std::fs::write(
            a.incoming.join(name(12)),
            &segment(1, 12, 42, 0xD110, 3)[..5000],
        )
        .expect("w");
        std::fs::write(a.incoming.join("notes.txt"), b"hello").expect("w");
        // The receiver's current partial stays.
        std::fs::write(
            a.streaming.join(format!("{}.partial", name(6))),
            segment(1, 6, 42, 0xD110, 2),
        )
        .expect("w");

        let out = a.archive_wal().expect("archive");
        let archived = out
            .iter()
            .filter(|o| matches!(o, Outcome::Archived { .. }))
            .count();
        let invalid = out
            .iter()
            .filter(|o| matches!(o, Outcome::Invalid { .. }))
            .count();
        assert_eq!((archived, invalid), (5, 3), "{out:?}");
        assert!(out.iter().any(|o| matches!(o, Outcome::Unknown { .. })));
        for (i, g) in good.iter().enumerate() {
            let p = a.archive_path(&WalName::parse(&name(i as u64 + 1)).expect("n"));
            let (codec, mut r) = open_decompressed(&p).expect("open");
            assert_eq!(codec, Codec::Zstd);
            let mut back = Vec::new();
            r.read_to_end(&mut back).expect("read");
            assert_eq!(&back, g);
        }
        let db = xlogdb::read(&a.xlogdb()).expect("xlogdb");
        assert_eq!(db.len(), 5);
        assert!(db.iter().all(|e| e.compression == Codec::Zstd));
        let errors: Vec<String> = std::fs::read_dir(&a.errors)
            .expect("errors")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("notes.txt.") && e.ends_with(".unknown"))
        );
        assert_eq!(std::fs::read_dir(&a.incoming).expect("ls").count(), 0);
        assert_eq!(std::fs::read_dir(&a.streaming).expect("ls").count(), 1);

        // The same file again is dropped; different content is a conflict.
        std::fs::write(a.incoming.join(name(1)), &good[0]).expect("w");
        std::fs::write(a.incoming.join(name(2)), segment(1, 2, 42, 0xD110, 31)).expect("w");
        let out = a.archive_wal().expect("again");
        assert!(
            out.contains(&Outcome::Duplicate { name: name(1) }),
            "{out:?}"
        );
        assert!(
            out.iter()
                .any(|o| matches!(o, Outcome::Conflict { name: n, .. } if *n == name(2)))
        );
        assert_eq!(xlogdb::read(&a.xlogdb()).expect("db").len(), 5);

        // rebuild-xlogdb finds the same files.
        let rebuilt = xlogdb::rebuild(&a.wals, &a.xlogdb()).expect("rebuild");
        assert_eq!(rebuilt.len(), 5);
    }

    #[derive(Debug, Default)]
    struct Recorder {
        refuse: bool,
        seen: std::sync::Mutex<Vec<String>>,
    }
    impl ArchiveHooks for Recorder {
        fn pre_archive(&self, f: &ArchivedFile) -> std::result::Result<(), String> {
            self.seen
                .lock()
                .expect("lock")
                .push(format!("pre {}", f.name));
            if self.refuse {
                Err("not now".into())
            } else {
                Ok(())
            }
        }
        fn post_archive(&self, f: &ArchivedFile, _error: Option<&str>) {
            self.seen
                .lock()
                .expect("lock")
                .push(format!("post {} {}", f.name, f.size));
        }
    }

    #[test]
    fn hooks_run_around_each_file_and_a_refusal_keeps_it_for_later() {
        let (_d, mut a) = setup(Codec::Gzip);
        std::fs::write(a.incoming.join(name(1)), segment(1, 1, 42, 0xD110, 3)).expect("w");
        let refusing = std::sync::Arc::new(Recorder {
            refuse: true,
            ..Recorder::default()
        });
        a.hooks = Some(refusing.clone());
        assert!(a.archive_wal().expect("archive").is_empty());
        assert!(a.incoming.join(name(1)).exists(), "kept for a retry");
        let accepting = std::sync::Arc::new(Recorder::default());
        a.hooks = Some(accepting.clone());
        assert_eq!(a.archive_wal().expect("archive").len(), 1);
        let seen = accepting.seen.lock().expect("lock").clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(
            seen[0].starts_with("pre ") && seen[1].starts_with("post "),
            "{seen:?}"
        );
    }

    #[test]
    fn identity_json_as_barman_writes_it() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("identity.json");
        let id = Identity::new("7711773420910049781", 15);
        id.save(&p).expect("save");
        // Byte for byte what Barman 3.x writes (json.dump, indent 4, sorted keys).
        assert_eq!(
            std::fs::read_to_string(&p).expect("read"),
            "{\n    \"systemid\": \"7711773420910049781\",\n    \"version\": \"15\"\n}\n"
        );
        assert_eq!(Identity::load(&p).expect("load"), Some(id.clone()));
        // What barkeep 0.1 wrote (a number) is read too.
        std::fs::write(
            &p,
            "{\"systemid\": \"7711773420910049781\", \"version\": 15}",
        )
        .expect("w");
        assert_eq!(Identity::load(&p).expect("load"), Some(id));
        // Before PostgreSQL 10 Barman wrote "9.6": read, no numeric major.
        std::fs::write(&p, "{\"systemid\": \"1\", \"version\": \"9.6\"}").expect("w");
        assert_eq!(
            Identity::load(&p).expect("load").expect("some").major(),
            None
        );
        std::fs::write(&p, "{\"systemid\": \"1\", \"version\": []}").expect("w");
        assert!(Identity::load(&p).is_err());
    }

    #[test]
    fn utc_timestamps() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_416), (2025, 11, 24));
        assert_eq!(timestamp().len(), 16);
    }
}
