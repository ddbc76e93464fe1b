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

    /// `meta/<ID>-delete_this`: Barman's mark of a backup being deleted.
    pub fn delete_marker(&self, id: &str) -> PathBuf {
        self.meta().join(format!("{id}-delete_this"))
    }

    /// The keep annotation of a backup (`meta/<ID>-keep`, or before Barman 3.13.3
    /// `base/<ID>/annotations/keep`): `full` or `standalone`.
    pub fn keep_target(&self, id: &str) -> Result<Option<String>> {
        for p in [
            self.meta().join(format!("{id}-keep")),
            self.backup_root(id).join("annotations").join("keep"),
        ] {
            match std::fs::read_to_string(&p) {
                Ok(t) => return Ok(Some(t.trim().to_string())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(BackupError::io("read", &p, e)),
            }
        }
        Ok(None)
    }

    /// Every backup, oldest first.
    pub fn list(&self) -> Result<Vec<BackupInfo>> {
        let mut out: Vec<BackupInfo> = Vec::new();
        if let Ok(rd) = std::fs::read_dir(self.meta()) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(id) = name.strip_suffix("-backup.info") {
                    // Being deleted (or a delete was interrupted): never offered.
                    if self.delete_marker(id).exists() {
                        continue;
                    }
                    out.push(BackupInfo::load(&e.path(), id)?);
                }
            }
        }
        // Barman before 3.13: base/<ID>/backup.info.
        if let Ok(rd) = std::fs::read_dir(self.base()) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let legacy = e.path().join("backup.info");
                if legacy.is_file()
                    && !out.iter().any(|b| b.backup_id == id)
                    && !self.delete_marker(&id).exists()
                {
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
        for id in self.interrupted_deletes() {
            tracing::warn!(server = %self.server, "the delete of backup {id} was interrupted: finishing it");
            self.finish_delete(&id)?;
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

    fn interrupted_deletes(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(self.meta())
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .strip_suffix("-delete_this")
                            .map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// Removes a backup marked for deletion: data, then `backup.info`, then the mark —
    /// each step durable, so that a crash at any point leaves the mark and the next
    /// command finishes the job. Idempotent.
    fn finish_delete(&self, id: &str) -> Result<()> {
        let root = self.backup_root(id);
        if root.exists() {
            std::fs::remove_dir_all(&root).map_err(|e| BackupError::io("remove", &root, e))?;
            barkeep_archive::durable::fsync_dir(&self.base())?;
        }
        for info in [self.info_path(id), root.join("backup.info")] {
            match std::fs::remove_file(&info) {
                Ok(()) => {
                    barkeep_archive::durable::fsync_dir(info.parent().unwrap_or(&self.backup_dir))?
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(BackupError::io("remove", &info, e)),
            }
        }
        let marker = self.delete_marker(id);
        if marker.exists() {
            barkeep_archive::durable::remove_durable(&marker)?;
        }
        Ok(())
    }

    /// Deletes a backup as Barman does: refused while it has a keep annotation or when it
    /// would leave fewer DONE backups than `minimum_redundancy`; else marked
    /// (`meta/<ID>-delete_this`), its files removed, then the WAL that no remaining
    /// backup needs, then the mark. The caller holds the server's backup lock.
    pub fn delete(
        &self,
        b: &BackupInfo,
        archive: &ServerArchive,
        minimum_redundancy: usize,
    ) -> Result<DeleteReport> {
        if let Some(target) = self.keep_target(&b.backup_id)? {
            return Err(BackupError::Catalog(format!(
                "Skipping delete of backup {} for server {} as it has a current keep request (keep:{target}). If you really want to delete this backup please remove the keep and try again.",
                b.backup_id, self.server
            )));
        }
        let all = self.list()?;
        let done = all.iter().filter(|x| x.status() == Status::Done).count();
        if b.status() == Status::Done && done <= minimum_redundancy {
            return Err(BackupError::Catalog(format!(
                "Skipping delete of backup {} for server {} due to minimum redundancy requirements (minimum redundancy = {minimum_redundancy}, current redundancy = {done})",
                b.backup_id, self.server
            )));
        }
        barkeep_archive::durable::write_file_atomic(&self.delete_marker(&b.backup_id), b"delete")?;
        let root = self.backup_root(&b.backup_id);
        if root.exists() {
            std::fs::remove_dir_all(&root).map_err(|e| BackupError::io("remove", &root, e))?;
            barkeep_archive::durable::fsync_dir(&self.base())?;
        }
        barkeep_archive::durable::remove_durable(&self.info_path(&b.backup_id))?;
        // WAL older than the oldest remaining backup is needed by nobody.
        let keep_from = all
            .iter()
            .filter(|x| {
                x.backup_id != b.backup_id
                    && matches!(x.status(), Status::Done | Status::WaitingForWals)
            })
            .find_map(|r| r.get("begin_wal"))
            .map(str::to_string);
        let mut wal_removed = 0;
        if let Some(first) = keep_from {
            let _l = LockFile::acquire_blocking(&archive.lock_dir, &self.server, "xlogdb")?;
            let db = barkeep_archive::xlogdb::read(&archive.xlogdb())?;
            for e in &db {
                if let Some(w) = barkeep_archive::names::WalName::parse(&e.name)
                    && let Some(segname) = w.segment()
                    && segname[8..] < first[8..]
                    && segname[..8] <= first[..8]
                {
                    let p = archive.archive_path(&w);
                    match std::fs::remove_file(&p) {
                        Ok(()) => wal_removed += 1,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(BackupError::io("remove", &p, e)),
                    }
                }
            }
            if wal_removed > 0 {
                barkeep_archive::xlogdb::rebuild(&archive.wals, &archive.xlogdb())?;
            }
        }
        self.finish_delete(&b.backup_id)?;
        Ok(DeleteReport { wal_removed })
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

/// What [`Catalog::delete`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteReport {
    /// WAL files removed because no remaining backup needs them.
    pub wal_removed: usize,
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
    #[test]
    fn kept_backups_are_not_deleted_and_interrupted_deletes_finish_by_themselves() {
        let (d, c) = catalog();
        let a = d.path().join("pg");
        let archive = ServerArchive {
            server: "pg".into(),
            wals: a.join("wals"),
            incoming: a.join("incoming"),
            streaming: a.join("streaming"),
            errors: a.join("errors"),
            xlogdb_dir: a.join("wals"),
            lock_dir: d.path().to_path_buf(),
            identity_file: a.join("identity.json"),
            codec: barkeep_archive::Codec::None,
            level: barkeep_archive::Level::Low,
            hooks: None,
        };
        for id in ["20260101T000000", "20260102T000000", "20260103T000000"] {
            let mut b = BackupInfo::new(id, "pg");
            b.set_status(Status::Done);
            b.save(&c.info_path(id)).expect("save");
            std::fs::create_dir_all(c.data_dir(id)).expect("mkdir");
        }
        // Barman 3.13.3+ writes meta/<ID>-keep; older versions base/<ID>/annotations/keep.
        std::fs::write(c.meta().join("20260101T000000-keep"), "full").expect("keep");
        let old = c.backup_root("20260102T000000").join("annotations");
        std::fs::create_dir_all(&old).expect("mkdir");
        std::fs::write(old.join("keep"), "standalone").expect("keep");
        for (id, target) in [
            ("20260101T000000", "full"),
            ("20260102T000000", "standalone"),
        ] {
            assert_eq!(c.keep_target(id).expect("keep").as_deref(), Some(target));
            let b = c.resolve(id).expect("resolve");
            let err = c.delete(&b, &archive, 0).expect_err("kept");
            assert!(err.to_string().contains("keep request"), "{err}");
            assert!(c.info_path(id).exists() && c.data_dir(id).exists());
        }
        // A delete killed after its mark: the backup is never offered again, and the
        // next command finishes it.
        let id = "20260103T000000";
        std::fs::write(c.delete_marker(id), "delete").expect("mark");
        assert_eq!(
            c.resolve("latest").expect("latest").backup_id,
            "20260102T000000"
        );
        c.recover_crashed().expect("recover");
        assert!(!c.info_path(id).exists() && !c.backup_root(id).exists());
        assert!(!c.delete_marker(id).exists());
        assert_eq!(c.list().expect("list").len(), 2);
    }
}
