//! The backup catalog of one server: `meta/<ID>-backup.info` (Barman 3.13+; older
//! `base/<ID>/backup.info` is read too), `base/<ID>/…` data, backup id shortcuts, the
//! WAL check that moves a backup from WAITING_FOR_WALS to DONE, and recovery from a
//! backup process that died.

use std::path::PathBuf;

use barkeep_archive::ServerArchive;
use barkeep_archive::lock::LockFile;
use barkeep_wal::{Lsn, SegmentSize};

use crate::error::{BackupError, Result};
use crate::info::{BackupInfo, Status};

/// A server's backups on disk.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// Server name.
    pub server: String,
    /// `backup_directory`.
    pub backup_dir: PathBuf,
    /// `barman_lock_directory`.
    pub lock_dir: PathBuf,
}

impl Catalog {
    /// `base/`.
    pub fn base(&self) -> PathBuf {
        self.backup_dir.join("base")
    }
    /// `meta/`.
    pub fn meta(&self) -> PathBuf {
        self.backup_dir.join("meta")
    }
    /// `base/<ID>`.
    pub fn backup_root(&self, id: &str) -> PathBuf {
        self.base().join(id)
    }
    /// `base/<ID>/data`.
    pub fn data_dir(&self, id: &str) -> PathBuf {
        self.backup_root(id).join("data")
    }
    /// `meta/<ID>-backup.info`.
    pub fn info_path(&self, id: &str) -> PathBuf {
        self.meta().join(format!("{id}-backup.info"))
    }

    /// Every backup, oldest first.
    pub fn list(&self) -> Result<Vec<BackupInfo>> {
        let mut out: Vec<BackupInfo> = Vec::new();
        if let Ok(rd) = std::fs::read_dir(self.meta()) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(id) = name.strip_suffix("-backup.info") {
                    out.push(BackupInfo::load(&e.path(), id)?);
                }
            }
        }
        // Barman before 3.13: base/<ID>/backup.info.
        if let Ok(rd) = std::fs::read_dir(self.base()) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let legacy = e.path().join("backup.info");
                if legacy.is_file() && !out.iter().any(|b| b.backup_id == id) {
                    out.push(BackupInfo::load(&legacy, &id)?);
                }
            }
        }
        out.sort_by(|a, b| a.backup_id.cmp(&b.backup_id));
        Ok(out)
    }

    /// A backup by id, name, or Barman's shortcuts (`latest`/`last`, `oldest`/`first`,
    /// `last-failed`, `last-full`/`latest-full`).
    pub fn resolve(&self, spec: &str) -> Result<BackupInfo> {
        let all = self.list()?;
        let usable = |b: &&BackupInfo| matches!(b.status(), Status::Done | Status::WaitingForWals);
        let found = match spec {
            "latest" | "last" => all.iter().rev().find(usable),
            "oldest" | "first" => all.iter().find(usable),
            "last-failed" => all.iter().rev().find(|b| b.status() == Status::Failed),
            "last-full" | "latest-full" => all
                .iter()
                .rev()
                .filter(usable)
                .find(|b| b.get("parent_backup_id").is_none()),
            _ => all.iter().find(|b| b.backup_id == spec).or_else(|| {
                all.iter()
                    .rev()
                    .find(|b| b.get("backup_name") == Some(spec))
            }),
        };
        found.cloned().ok_or_else(|| {
            BackupError::Catalog(format!(
                "Unknown backup '{spec}' for server '{}'",
                self.server
            ))
        })
    }

    /// Backups left STARTED or EMPTY by a process that is gone (no backup lock held) are
    /// marked FAILED and their partial data removed. Returns their ids.
    pub fn recover_crashed(&self) -> Result<Vec<String>> {
        if LockFile::holder(&self.lock_dir, &self.server, "backup").is_some() {
            return Ok(Vec::new());
        }
        let mut failed = Vec::new();
        for mut b in self.list()? {
            if !matches!(b.status(), Status::Started | Status::Empty) {
                continue;
            }
            tracing::warn!(server = %self.server, "backup {} was interrupted (its process is gone): marking it FAILED and removing its partial files", b.backup_id);
            let root = self.backup_root(&b.backup_id);
            if root.exists() {
                std::fs::remove_dir_all(&root).map_err(|e| BackupError::io("remove", &root, e))?;
                barkeep_archive::durable::fsync_dir(&self.base())?;
            }
            b.set_status(Status::Failed);
            b.set(
                "error",
                "failure during backup (the backup process was interrupted; partial files removed)",
            );
            b.save(&self.info_path(&b.backup_id))?;
            failed.push(b.backup_id.clone());
        }
        Ok(failed)
    }

    /// The first segment from `begin_wal` to `end_wal` that is not in the archive (`None`
    /// when all are there, or when the backup does not say which WAL it needs).
    pub fn first_missing_wal(
        &self,
        b: &BackupInfo,
        archive: &ServerArchive,
    ) -> Result<Option<String>> {
        Ok(self.wal_check(b, archive)?.and_then(|c| c.missing))
    }

    fn wal_check(&self, b: &BackupInfo, archive: &ServerArchive) -> Result<Option<WalCheck>> {
        let (Some(begin), Some(end), Some(size)) = (
            b.get("begin_wal"),
            b.get("end_wal"),
            b.int("xlog_segment_size"),
        ) else {
            return Ok(None);
        };
        let seg = SegmentSize::new(size as u64).map_err(|e| BackupError::Catalog(e.to_string()))?;
        let first = seg
            .parse_segment_name(begin)
            .map_err(|e| BackupError::Catalog(e.to_string()))?;
        let last = seg
            .parse_segment_name(end)
            .map_err(|e| BackupError::Catalog(e.to_string()))?;
        let present = |tli: u32, segno: u64| {
            let name = seg.segment_name(tli, segno);
            barkeep_archive::names::WalName::parse(&name)
                .is_some_and(|w| archive.archive_path(&w).exists())
        };
        let mut missing = None;
        for segno in first.segno..=last.segno {
            if !present(last.tli, segno) && !present(first.tli, segno) {
                missing = Some(seg.segment_name(first.tli, segno));
                break;
            }
        }
        // Later WAL archived: a gap will never fill.
        let later = present(last.tli, last.segno + 1) || present(last.tli, last.segno + 2);
        Ok(Some(WalCheck { missing, later }))
    }

    /// Re-evaluates a WAITING_FOR_WALS (or DONE) backup against the WAL archive: DONE when
    /// every segment from `begin_wal` to `end_wal` is archived; FAILED when one is missing
    /// while later WAL is archived; else unchanged. Saves and returns the new status.
    pub fn check_backup(&self, b: &mut BackupInfo, archive: &ServerArchive) -> Result<Status> {
        if !matches!(b.status(), Status::WaitingForWals | Status::Done) {
            return Ok(b.status());
        }
        let Some(check) = self.wal_check(b, archive)? else {
            return Ok(b.status());
        };
        let new = match check.missing {
            None => Status::Done,
            Some(m) if check.later => {
                b.set(
                    "error",
                    format!("At least one WAL file is missing. The first missing WAL file is {m}"),
                );
                Status::Failed
            }
            Some(_) => Status::WaitingForWals,
        };
        if new != b.status() {
            b.set_status(new);
            b.save(&self.info_path(&b.backup_id))?;
        }
        Ok(new)
    }

    /// Moves every WAITING_FOR_WALS backup whose WAL is now archived to DONE (or FAILED
    /// when a segment is missing for good). Called after WAL is archived, so that a backup
    /// is usable as soon as its end segment is. Returns the backups that changed.
    pub fn promote_waiting(&self, archive: &ServerArchive) -> Result<Vec<(String, Status)>> {
        let mut changed = Vec::new();
        // While a backup process runs (its lock is held) it owns the backup.info files it
        // writes and checks its own WAL; promoting then could overwrite a newer copy.
        if LockFile::holder(&self.lock_dir, &self.server, "backup").is_some() {
            return Ok(changed);
        }
        for mut b in self.list()? {
            if b.status() != Status::WaitingForWals {
                continue;
            }
            let st = self.check_backup(&mut b, archive)?;
            if st != Status::WaitingForWals {
                match st {
                    Status::Done => {
                        tracing::info!(server = %self.server, "backup {} is DONE: its WAL is archived", b.backup_id)
                    }
                    _ => {
                        tracing::error!(server = %self.server, "backup {} is {}: {}", b.backup_id, st.as_str(), b.get("error").unwrap_or(""))
                    }
                }
                changed.push((b.backup_id.clone(), st));
            }
        }
        Ok(changed)
    }
}

/// What [`Catalog::wal_check`] found.
#[derive(Debug)]
struct WalCheck {
    /// The first segment of the backup's range not archived.
    missing: Option<String>,
    /// Whether WAL after the backup's end is archived.
    later: bool,
}

/// The WAL segment holding the byte before `lsn` (PostgreSQL's `pg_walfile_name`).
pub fn segment_before(lsn: Lsn, seg: SegmentSize) -> u64 {
    Lsn(lsn.0.saturating_sub(1)).segno(seg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> (tempfile::TempDir, Catalog) {
        let d = tempfile::tempdir().expect("tempdir");
        let c = Catalog {
            server: "pg".into(),
            backup_dir: d.path().join("pg"),
            lock_dir: d.path().to_path_buf(),
        };
        (d, c)
    }

    #[test]
    fn shortcuts_and_names() {
        let (_d, c) = catalog();
        for (id, status, name) in [
            ("20260101T000000", Status::Done, Some("monthly")),
            ("20260102T000000", Status::Failed, None),
            ("20260103T000000", Status::Done, None),
            ("20260104T000000", Status::Failed, None),
        ] {
            let mut b = BackupInfo::new(id, "pg");
            b.set_status(status);
            if let Some(n) = name {
                b.set("backup_name", n);
            }
            b.save(&c.info_path(id)).expect("save");
        }
        assert_eq!(
            c.resolve("latest").expect("latest").backup_id,
            "20260103T000000"
        );
        assert_eq!(
            c.resolve("first").expect("first").backup_id,
            "20260101T000000"
        );
        assert_eq!(
            c.resolve("last-failed").expect("failed").backup_id,
            "20260104T000000"
        );
        assert_eq!(
            c.resolve("monthly").expect("name").backup_id,
            "20260101T000000"
        );
        let err = c.resolve("nope").expect_err("unknown");
        assert_eq!(format!("{err}"), "Unknown backup 'nope' for server 'pg'");
    }

    #[test]
    fn interrupted_backups_become_failed_and_are_cleaned() {
        let (_d, c) = catalog();
        let mut b = BackupInfo::new("20260105T000000", "pg");
        b.set_status(Status::Started);
        b.save(&c.info_path(&b.backup_id)).expect("save");
        std::fs::create_dir_all(c.data_dir(&b.backup_id).join("base")).expect("mkdir");
        assert_eq!(
            c.recover_crashed().expect("recover"),
            vec!["20260105T000000".to_string()]
        );
        let again = c.resolve("last-failed").expect("failed");
        assert!(again.get("error").expect("error").contains("interrupted"));
        assert!(!c.backup_root(&b.backup_id).exists());
        // While a backup process holds the lock, nothing is touched.
        let mut b2 = BackupInfo::new("20260106T000000", "pg");
        b2.set_status(Status::Started);
        b2.save(&c.info_path(&b2.backup_id)).expect("save");
        let _lock = LockFile::try_acquire(&c.lock_dir, "pg", "backup").expect("lock");
        assert!(c.recover_crashed().expect("recover").is_empty());
    }
}
