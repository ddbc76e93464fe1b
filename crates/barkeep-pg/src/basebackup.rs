//! `BASE_BACKUP` as one version-independent stream of events (protocol reference §2.8–2.10
//! and §3).
//!
//! PostgreSQL 13/14 send one COPY per tablespace with raw, unterminated tar data and the
//! manifest as one more COPY; 15+ send a single COPY of typed messages (`n`/`d`/`p`/`m`)
//! with complete tars. Both become: [`BackupEvent::Start`], then per archive
//! `ArchiveStart` · `ArchiveData`… · `ArchiveEnd` (13/14 archives get their 1024-byte tar
//! trailer appended, so every archive is a complete tar), `Progress`, optionally
//! `ManifestStart` · `ManifestData`…, then `End`. [`BaseBackupStream::next`] returns
//! `None` only after PostgreSQL's final CommandComplete: a backup is good only then (page
//! checksum failures are reported after the end position).

use std::collections::VecDeque;

use barkeep_wal::{Lsn, TimeLineId};
use bytes::Bytes;

use crate::codec::frontend::quote_literal;
use crate::codec::{BackendMessage, BackupCopyData, ProtocolError};
use crate::conn::{Connection, QueryResult};
use crate::error::PgError;

/// `MANIFEST` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ManifestMode {
    /// No manifest.
    No,
    /// A manifest (paths UTF-8 where possible).
    #[default]
    Yes,
    /// Every path hex-encoded.
    ForceEncode,
}

/// Options of a base backup; [`BaseBackupOptions::command`] writes the syntax of each
/// major.
#[derive(Debug, Clone)]
pub struct BaseBackupOptions {
    /// `LABEL` (≤ 1023 bytes).
    pub label: String,
    /// Size estimates in the tablespace list (`PROGRESS`).
    pub progress: bool,
    /// Immediate checkpoint (`FAST` / `CHECKPOINT 'fast'`) instead of a spread one.
    pub fast_checkpoint: bool,
    /// Wait until the last WAL segment is archived (`NOWAIT` / `WAIT false` when off).
    pub wait_for_archive: bool,
    /// Append the WAL needed for consistency to `base.tar` (`WAL`).
    pub include_wal: bool,
    /// `MAX_RATE` in kB/s (32…1048576).
    pub max_rate_kbps: Option<u32>,
    /// Send `tablespace_map` instead of `pg_tblspc` symlinks.
    pub tablespace_map: bool,
    /// Verify page checksums while reading (the default).
    pub verify_checksums: bool,
    /// `MANIFEST`.
    pub manifest: ManifestMode,
    /// `MANIFEST_CHECKSUMS` (`NONE`, `CRC32C`, `SHA224`, `SHA256`, `SHA384`, `SHA512`).
    pub manifest_checksums: Option<String>,
    /// Server-side compression (15+): `gzip`, `lz4` or `zstd`, and a detail such as
    /// `level=3,workers=2`.
    pub compression: Option<(String, Option<String>)>,
    /// Incremental against the manifest uploaded with
    /// [`Connection::upload_manifest`] (17+).
    pub incremental: bool,
}

impl Default for BaseBackupOptions {
    fn default() -> Self {
        BaseBackupOptions {
            label: "barkeep base backup".into(),
            progress: true,
            fast_checkpoint: false,
            wait_for_archive: false,
            include_wal: false,
            max_rate_kbps: None,
            tablespace_map: false,
            verify_checksums: true,
            manifest: ManifestMode::Yes,
            manifest_checksums: Some("CRC32C".into()),
            compression: None,
            incremental: false,
        }
    }
}

const CHECKSUM_ALGORITHMS: &[&str] = &["NONE", "CRC32C", "SHA224", "SHA256", "SHA384", "SHA512"];

impl BaseBackupOptions {
    /// The `BASE_BACKUP` command for server major `major`: the legacy keyword syntax on
    /// 13/14, the parenthesised option list on 15+. Options a major does not have are
    /// refused with the reason.
    pub fn command(&self, major: u32) -> Result<String, String> {
        if major < 13 {
            return Err(format!(
                "PostgreSQL {major} is not supported (13 and later are)"
            ));
        }
        if self.label.len() > 1023 {
            return Err(format!(
                "backup label is {} bytes long; PostgreSQL allows 1023",
                self.label.len()
            ));
        }
        if let Some(r) = self.max_rate_kbps
            && !(32..=1_048_576).contains(&r)
        {
            return Err(format!(
                "maximum transfer rate {r} kB/s is out of range: 32 to 1048576 kB/s"
            ));
        }
        let checksums = match &self.manifest_checksums {
            Some(c) => {
                let up = c.to_ascii_uppercase();
                if !CHECKSUM_ALGORITHMS.contains(&up.as_str()) {
                    return Err(format!(
                        "manifest checksum algorithm `{c}` is not one of {}",
                        CHECKSUM_ALGORITHMS.join(", ")
                    ));
                }
                (self.manifest != ManifestMode::No).then_some(up)
            }
            None => None,
        };
        let manifest = match self.manifest {
            ManifestMode::No => None,
            ManifestMode::Yes => Some("yes"),
            ManifestMode::ForceEncode => Some("force-encode"),
        };
        if major < 15 {
            if self.compression.is_some() {
                return Err(format!(
                    "server-side compression needs PostgreSQL 15 or later (server is {major}); compress on the barkeep side instead"
                ));
            }
            if self.incremental {
                return Err(format!(
                    "incremental backups need PostgreSQL 17 or later (server is {major})"
                ));
            }
            let mut cmd = format!("BASE_BACKUP LABEL {}", quote_literal(&self.label));
            let flag = |cmd: &mut String, on: bool, word: &str| {
                if on {
                    cmd.push(' ');
                    cmd.push_str(word);
                }
            };
            flag(&mut cmd, self.progress, "PROGRESS");
            flag(&mut cmd, self.fast_checkpoint, "FAST");
            flag(&mut cmd, self.include_wal, "WAL");
            flag(&mut cmd, !self.wait_for_archive, "NOWAIT");
            if let Some(r) = self.max_rate_kbps {
                cmd.push_str(&format!(" MAX_RATE {r}"));
            }
            flag(&mut cmd, self.tablespace_map, "TABLESPACE_MAP");
            flag(&mut cmd, !self.verify_checksums, "NOVERIFY_CHECKSUMS");
            if let Some(m) = manifest {
                cmd.push_str(&format!(" MANIFEST '{m}'"));
            }
            if let Some(c) = checksums {
                cmd.push_str(&format!(" MANIFEST_CHECKSUMS '{c}'"));
            }
            return Ok(cmd);
        }
        if self.incremental && major < 17 {
            return Err(format!(
                "incremental backups need PostgreSQL 17 or later (server is {major})"
            ));
        }
        let mut opts = vec![format!("LABEL {}", quote_literal(&self.label))];
        let b = |on: bool| if on { "true" } else { "false" };
        opts.push(format!("PROGRESS {}", b(self.progress)));
        opts.push(format!(
            "CHECKPOINT '{}'",
            if self.fast_checkpoint {
                "fast"
            } else {
                "spread"
            }
        ));
        opts.push(format!("WAL {}", b(self.include_wal)));
        opts.push(format!("WAIT {}", b(self.wait_for_archive)));
        if let Some(r) = self.max_rate_kbps {
            opts.push(format!("MAX_RATE {r}"));
        }
        opts.push(format!("TABLESPACE_MAP {}", b(self.tablespace_map)));
        opts.push(format!("VERIFY_CHECKSUMS {}", b(self.verify_checksums)));
        opts.push(format!("MANIFEST '{}'", manifest.unwrap_or("no")));
        if let Some(c) = checksums {
            opts.push(format!("MANIFEST_CHECKSUMS '{c}'"));
        }
        if let Some((method, detail)) = &self.compression {
            let m = method.to_ascii_lowercase();
            if !["gzip", "lz4", "zstd", "none"].contains(&m.as_str()) {
                return Err(format!(
                    "server-side compression `{method}` is not one of gzip, lz4, zstd, none"
                ));
            }
            opts.push(format!("COMPRESSION {}", quote_literal(&m)));
            if let Some(d) = detail {
                opts.push(format!("COMPRESSION_DETAIL {}", quote_literal(d)));
            }
        }
        if self.incremental {
            opts.push("INCREMENTAL".into());
        }
        Ok(format!("BASE_BACKUP ({})", opts.join(", ")))
    }
}

/// One row of the tablespace list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablespaceInfo {
    /// Tablespace OID; `None` for the main data directory.
    pub oid: Option<u32>,
    /// Location on the server; `None` for the main data directory.
    pub location: Option<String>,
    /// Estimated size in kB (with `PROGRESS`).
    pub size_kb: Option<u64>,
}

/// One event of a base backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupEvent {
    /// The start checkpoint is done.
    Start {
        /// Start position (the checkpoint's redo pointer).
        lsn: Lsn,
        /// Timeline at the start.
        tli: TimeLineId,
        /// Tablespaces, user tablespaces first, the data directory last.
        tablespaces: Vec<TablespaceInfo>,
    },
    /// A new archive: `base.tar` or `<oid>.tar`, with a compression suffix when the server
    /// compresses.
    ArchiveStart {
        /// Archive name.
        name: String,
        /// The tablespace (`oid: None` for the data directory).
        tablespace: TablespaceInfo,
    },
    /// Archive bytes (a tar stream, or compressed tar).
    ArchiveData(Bytes),
    /// The current archive is complete.
    ArchiveEnd,
    /// Uncompressed bytes sent so far (whole backup).
    Progress(u64),
    /// The manifest follows.
    ManifestStart,
    /// Manifest bytes (never compressed).
    ManifestData(Bytes),
    /// The end position: the backup needs WAL up to here to be consistent.
    End {
        /// End position.
        lsn: Lsn,
        /// Timeline at the end.
        tli: TimeLineId,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading the start position and tablespace list.
    Header,
    /// Between COPYs (13/14) or before the single COPY (15+).
    BetweenCopies,
    /// Inside a 13/14 per-archive COPY.
    LegacyArchive,
    /// Inside the 13/14 manifest COPY.
    LegacyManifest,
    /// Inside the 15+ COPY.
    Copy,
    /// After the end position, waiting for CommandComplete.
    Trailer,
    /// Complete.
    Done,
}

/// A running `BASE_BACKUP`.
#[derive(Debug)]
pub struct BaseBackupStream<'a> {
    conn: &'a mut Connection,
    command: String,
    legacy: bool,
    phase: Phase,
    pending: VecDeque<BackupEvent>,
    tablespaces: Vec<TablespaceInfo>,
    /// Index of the next 13/14 archive.
    next_archive: usize,
    in_archive: bool,
    in_manifest: bool,
    /// Bytes received (13/14 progress).
    bytes: u64,
    end_seen: bool,
}

/// The tar end-of-archive marker 13/14 servers leave out.
const TAR_TRAILER: [u8; 1024] = [0; 1024];

impl Connection {
    /// Starts `BASE_BACKUP` with `options` in the syntax of this server's major.
    pub async fn base_backup(
        &mut self,
        options: &BaseBackupOptions,
    ) -> Result<BaseBackupStream<'_>, PgError> {
        let major = self.server_major().ok_or_else(|| PgError::Protocol {
            target: self.target().to_string(),
            source: ProtocolError("the server did not report server_version".into()),
        })?;
        let command = options.command(major).map_err(|e| PgError::Protocol {
            target: self.target().to_string(),
            source: ProtocolError(format!("BASE_BACKUP: {e}")),
        })?;
        tracing::debug!(target = %self.target(), "{command}");
        self.send_query(&command).await?;
        Ok(BaseBackupStream {
            conn: self,
            command,
            legacy: major < 15,
            phase: Phase::Header,
            pending: VecDeque::new(),
            tablespaces: Vec::new(),
            next_archive: 0,
            in_archive: false,
            in_manifest: false,
            bytes: 0,
            end_seen: false,
        })
    }

    /// `UPLOAD_MANIFEST` (17+): sends the previous backup's `backup_manifest` so that the
    /// next `BASE_BACKUP` with `incremental` on this connection is incremental to it.
    pub async fn upload_manifest(&mut self, manifest: &[u8]) -> Result<(), PgError> {
        self.send_query("UPLOAD_MANIFEST").await?;
        match self.read().await? {
            BackendMessage::CopyInResponse(_) => {}
            BackendMessage::ErrorResponse(f) => {
                let e = self.server_error(f, Some("UPLOAD_MANIFEST"));
                return Err(self.finish_with_error(e).await);
            }
            other => return Err(self.unexpected("CopyInResponse", &other)),
        }
        for chunk in manifest.chunks(64 * 1024) {
            self.send_copy_data(chunk).await?;
        }
        self.send_copy_done().await?;
        let mut error = None;
        loop {
            match self.read().await? {
                BackendMessage::CommandComplete(_) => {}
                BackendMessage::ErrorResponse(f) => {
                    error = Some(self.server_error(f, Some("UPLOAD_MANIFEST")));
                }
                BackendMessage::ReadyForQuery(_) => {
                    return match error {
                        Some(e) => Err(e),
                        None => Ok(()),
                    };
                }
                other => return Err(self.unexpected("CommandComplete UPLOAD_MANIFEST", &other)),
            }
        }
    }
}

fn lsn_tli(r: &QueryResult) -> Option<(Lsn, TimeLineId)> {
    let lsn = r.get(0, "recptr")?.parse().ok()?;
    let tli = r.get(0, "tli")?.parse().ok()?;
    Some((lsn, tli))
}

impl BaseBackupStream<'_> {
    fn violation(&self, msg: String) -> PgError {
        PgError::Protocol {
            target: self.conn.target().to_string(),
            source: ProtocolError(format!("BASE_BACKUP: {msg}")),
        }
    }

    async fn fail(&mut self, fields: crate::codec::ErrorFields) -> PgError {
        self.phase = Phase::Done;
        let e = self.conn.server_error(fields, Some(&self.command));
        self.conn.finish_with_error(e).await
    }

    /// Reads one result set (RowDescription, DataRows, CommandComplete).
    async fn result_set(&mut self, what: &str) -> Result<QueryResult, PgError> {
        let mut r = QueryResult::default();
        loop {
            match self.conn.read().await? {
                BackendMessage::RowDescription(c) => r.columns = c,
                BackendMessage::DataRow(row) => r.rows.push(row),
                BackendMessage::CommandComplete(tag) => {
                    r.tag = tag;
                    return Ok(r);
                }
                BackendMessage::ErrorResponse(f) => return Err(self.fail(f).await),
                other => return Err(self.conn.unexpected(what, &other)),
            }
        }
    }

    async fn header(&mut self) -> Result<(), PgError> {
        let start = self.result_set("the start position").await?;
        let (lsn, tli) = lsn_tli(&start)
            .ok_or_else(|| self.violation("start position row (recptr, tli) missing".into()))?;
        let list = self.result_set("the tablespace list").await?;
        let mut tablespaces = Vec::new();
        for i in 0..list.rows.len() {
            let oid = match list.get(i, "spcoid") {
                Some(o) => Some(o.parse::<u32>().map_err(|_| {
                    self.violation(format!("tablespace oid `{o}` is not a number"))
                })?),
                None => None,
            };
            tablespaces.push(TablespaceInfo {
                oid,
                location: list.get(i, "spclocation"),
                size_kb: list.get(i, "size").and_then(|s| s.parse().ok()),
            });
        }
        if tablespaces.last().is_none_or(|t| t.oid.is_some()) {
            return Err(self.violation(
                "the tablespace list must end with the data directory (NULL oid)".into(),
            ));
        }
        self.tablespaces = tablespaces.clone();
        self.pending.push_back(BackupEvent::Start {
            lsn,
            tli,
            tablespaces,
        });
        self.phase = Phase::BetweenCopies;
        Ok(())
    }

    fn end_archive(&mut self) {
        if self.in_archive {
            self.in_archive = false;
            self.pending.push_back(BackupEvent::ArchiveEnd);
        }
    }

    fn tablespace_for(&self, path: &str) -> TablespaceInfo {
        self.tablespaces
            .iter()
            .find(|t| {
                if path.is_empty() {
                    t.oid.is_none()
                } else {
                    t.location.as_deref() == Some(path)
                }
            })
            .cloned()
            .unwrap_or(TablespaceInfo {
                oid: None,
                location: (!path.is_empty()).then(|| path.to_string()),
                size_kb: None,
            })
    }

    /// The next event; `Ok(None)` once PostgreSQL confirmed the backup with its final
    /// CommandComplete. Stop reading at an error: the backup is not usable.
    pub async fn next(&mut self) -> Result<Option<BackupEvent>, PgError> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Ok(Some(e));
            }
            match self.phase {
                Phase::Done => return Ok(None),
                Phase::Header => self.header().await?,
                _ => self.step().await?,
            }
        }
    }

    async fn step(&mut self) -> Result<(), PgError> {
        let msg = self.conn.read().await?;
        match (self.phase, msg) {
            (_, BackendMessage::ErrorResponse(f)) => Err(self.fail(f).await),
            (Phase::BetweenCopies, BackendMessage::CopyOutResponse(_)) => {
                if !self.legacy {
                    self.phase = Phase::Copy;
                } else if self.next_archive < self.tablespaces.len() {
                    let ts = self.tablespaces[self.next_archive].clone();
                    self.next_archive += 1;
                    let name = match ts.oid {
                        Some(oid) => format!("{oid}.tar"),
                        None => "base.tar".to_string(),
                    };
                    self.in_archive = true;
                    self.pending.push_back(BackupEvent::ArchiveStart {
                        name,
                        tablespace: ts,
                    });
                    self.phase = Phase::LegacyArchive;
                } else if !self.in_manifest {
                    self.in_manifest = true;
                    self.pending.push_back(BackupEvent::ManifestStart);
                    self.phase = Phase::LegacyManifest;
                } else {
                    return Err(self.violation("a COPY after the manifest".into()));
                }
                Ok(())
            }
            (Phase::LegacyArchive, BackendMessage::CopyData(d)) => {
                self.bytes += d.len() as u64;
                self.pending.push_back(BackupEvent::ArchiveData(d));
                Ok(())
            }
            (Phase::LegacyArchive, BackendMessage::CopyDone) => {
                // 13/14 leave out the tar end-of-archive blocks.
                self.pending
                    .push_back(BackupEvent::ArchiveData(Bytes::from_static(&TAR_TRAILER)));
                self.end_archive();
                self.pending.push_back(BackupEvent::Progress(self.bytes));
                self.phase = Phase::BetweenCopies;
                Ok(())
            }
            (Phase::LegacyManifest, BackendMessage::CopyData(d)) => {
                self.pending.push_back(BackupEvent::ManifestData(d));
                Ok(())
            }
            (Phase::LegacyManifest, BackendMessage::CopyDone) => {
                self.phase = Phase::BetweenCopies;
                Ok(())
            }
            (Phase::Copy, BackendMessage::CopyData(payload)) => {
                let typed = BackupCopyData::parse(payload).map_err(|source| PgError::Protocol {
                    target: self.conn.target().to_string(),
                    source,
                })?;
                match typed {
                    BackupCopyData::NewArchive { name, path } => {
                        if self.in_manifest {
                            return Err(
                                self.violation(format!("new archive `{name}` after the manifest"))
                            );
                        }
                        self.end_archive();
                        let tablespace = self.tablespace_for(&path);
                        self.in_archive = true;
                        self.pending
                            .push_back(BackupEvent::ArchiveStart { name, tablespace });
                    }
                    BackupCopyData::Data(d) => {
                        if self.in_manifest {
                            self.pending.push_back(BackupEvent::ManifestData(d));
                        } else if self.in_archive {
                            self.pending.push_back(BackupEvent::ArchiveData(d));
                        } else {
                            return Err(self
                                .violation("archive data before any new-archive message".into()));
                        }
                    }
                    BackupCopyData::Progress(n) => self.pending.push_back(BackupEvent::Progress(n)),
                    BackupCopyData::Manifest => {
                        self.end_archive();
                        self.in_manifest = true;
                        self.pending.push_back(BackupEvent::ManifestStart);
                    }
                }
                Ok(())
            }
            (Phase::Copy, BackendMessage::CopyDone) => {
                self.end_archive();
                self.phase = Phase::BetweenCopies;
                Ok(())
            }
            (Phase::BetweenCopies, BackendMessage::RowDescription(cols)) => {
                // The end position result set.
                let mut r = QueryResult {
                    columns: cols,
                    ..QueryResult::default()
                };
                loop {
                    match self.conn.read().await? {
                        BackendMessage::DataRow(row) => r.rows.push(row),
                        BackendMessage::CommandComplete(_) => break,
                        BackendMessage::ErrorResponse(f) => return Err(self.fail(f).await),
                        other => return Err(self.conn.unexpected("the end position", &other)),
                    }
                }
                let (lsn, tli) = lsn_tli(&r).ok_or_else(|| {
                    self.violation("end position row (recptr, tli) missing".into())
                })?;
                if self.legacy && self.next_archive < self.tablespaces.len() {
                    return Err(self.violation(format!(
                        "the end position arrived after {} of {} archives",
                        self.next_archive,
                        self.tablespaces.len()
                    )));
                }
                self.end_seen = true;
                self.pending.push_back(BackupEvent::End { lsn, tli });
                self.phase = Phase::Trailer;
                Ok(())
            }
            (Phase::Trailer, BackendMessage::CommandComplete(_)) => match self.conn.read().await? {
                BackendMessage::ReadyForQuery(_) => {
                    self.phase = Phase::Done;
                    Ok(())
                }
                BackendMessage::ErrorResponse(f) => Err(self.fail(f).await),
                other => Err(self.conn.unexpected("ReadyForQuery", &other)),
            },
            (_, other) => {
                let expected = match self.phase {
                    Phase::BetweenCopies => "CopyOutResponse or the end position",
                    Phase::LegacyArchive | Phase::LegacyManifest | Phase::Copy => {
                        "CopyData or CopyDone"
                    }
                    _ => "CommandComplete BASE_BACKUP",
                };
                Err(self.conn.unexpected(expected, &other))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_syntax_for_13_and_14() {
        let o = BaseBackupOptions {
            label: "it's".into(),
            fast_checkpoint: true,
            max_rate_kbps: Some(1024),
            tablespace_map: true,
            manifest_checksums: Some("sha256".into()),
            ..BaseBackupOptions::default()
        };
        assert_eq!(
            o.command(13).expect("13"),
            "BASE_BACKUP LABEL 'it''s' PROGRESS FAST NOWAIT MAX_RATE 1024 TABLESPACE_MAP MANIFEST 'yes' MANIFEST_CHECKSUMS 'SHA256'"
        );
        let no_manifest = BaseBackupOptions {
            manifest: ManifestMode::No,
            verify_checksums: false,
            wait_for_archive: true,
            progress: false,
            ..BaseBackupOptions::default()
        };
        assert_eq!(
            no_manifest.command(14).expect("14"),
            "BASE_BACKUP LABEL 'barkeep base backup' NOVERIFY_CHECKSUMS"
        );
    }

    #[test]
    fn parenthesised_syntax_from_15() {
        let o = BaseBackupOptions {
            compression: Some(("zstd".into(), Some("level=3".into()))),
            ..BaseBackupOptions::default()
        };
        assert_eq!(
            o.command(15).expect("15"),
            "BASE_BACKUP (LABEL 'barkeep base backup', PROGRESS true, CHECKPOINT 'spread', WAL false, WAIT false, TABLESPACE_MAP false, VERIFY_CHECKSUMS true, MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C', COMPRESSION 'zstd', COMPRESSION_DETAIL 'level=3')"
        );
        let inc = BaseBackupOptions {
            incremental: true,
            ..BaseBackupOptions::default()
        };
        assert!(inc.command(17).expect("17").ends_with(", INCREMENTAL)"));
    }

    #[test]
    fn options_a_major_lacks_are_refused() {
        let inc = BaseBackupOptions {
            incremental: true,
            ..BaseBackupOptions::default()
        };
        assert!(inc.command(16).expect_err("16").contains("17 or later"));
        assert!(inc.command(14).expect_err("14").contains("17 or later"));
        let comp = BaseBackupOptions {
            compression: Some(("gzip".into(), None)),
            ..BaseBackupOptions::default()
        };
        assert!(comp.command(14).expect_err("14").contains("15 or later"));
        let rate = BaseBackupOptions {
            max_rate_kbps: Some(5),
            ..BaseBackupOptions::default()
        };
        assert!(
            rate.command(15)
                .expect_err("rate")
                .contains("32 to 1048576")
        );
        let sum = BaseBackupOptions {
            manifest_checksums: Some("md5".into()),
            ..BaseBackupOptions::default()
        };
        assert!(sum.command(15).expect_err("md5").contains("CRC32C"));
        let label = BaseBackupOptions {
            label: "x".repeat(1024),
            ..BaseBackupOptions::default()
        };
        assert!(label.command(15).is_err());
        assert!(BaseBackupOptions::default().command(12).is_err());
    }
}
