//! The catalog's operations, written once against [`CatalogStore`]: listing, backup id
//! shortcuts, neighbours, the WAL check that moves a backup from WAITING_FOR_WALS to
//! DONE, recovery from a process that died, and Barman's delete.

use barkeep_wal::Lsn;
use barkeep_wal::SegmentSize;

use crate::error::{CatalogError, Result};
use crate::info::{BackupInfo, Status};
use crate::store::CatalogStore;
use crate::walrange::WalRange;

/// What [`CatalogOps::delete`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeleteReport {
    /// WAL files removed because no remaining backup needs them.
    pub wal_removed: usize,
}

/// The previous and next DONE backups of one backup.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Neighbours {
    /// The newest DONE backup older than it.
    pub previous: Option<BackupInfo>,
    /// The oldest DONE backup newer than it.
    pub next: Option<BackupInfo>,
}

/// Catalog operations on any [`CatalogStore`].
pub trait CatalogOps {
    /// Every backup not being deleted, oldest first.
    fn list(&self) -> Result<Vec<BackupInfo>>;
    /// A backup by id, name, or Barman's shortcuts (`latest`/`last`, `oldest`/`first`,
    /// `last-failed`, `last-full`/`latest-full`). Reads only what it must: an id reads one
    /// file; a shortcut reads from the right end until it finds one.
    fn resolve(&self, spec: &str) -> Result<BackupInfo>;
    /// The DONE backups either side of `id`, reading outwards from it.
    fn neighbours(&self, id: &str) -> Result<Neighbours>;
    /// [`CatalogOps::resolve`] and the backup's [`Neighbours`], from one listing: what
    /// `show-backup` needs, reading three backups' metadata whatever the catalog's size.
    fn resolve_with_neighbours(&self, spec: &str) -> Result<(BackupInfo, Neighbours)>;
    /// Unless a backup is running: finishes interrupted deletes, and marks FAILED
    /// (removing its partial data) the newest backup when a process that is gone left it
    /// STARTED or EMPTY. Returns the backups marked. Reads one backup's metadata.
    fn recover_crashed(&self) -> Result<Vec<String>>;
    /// The same for every backup, for a caller that holds the backup lock itself (a new
    /// backup starting): afterwards no backup of the catalog is STARTED or EMPTY, which
    /// is what lets [`CatalogOps::recover_crashed`] look at the newest one only.
    fn recover_interrupted(&self) -> Result<Vec<String>>;
    /// The first segment from `begin_wal` to `end_wal` not archived.
    fn first_missing_wal(&self, b: &BackupInfo) -> Result<Option<String>>;
    /// Re-evaluates a WAITING_FOR_WALS (or DONE) backup against the archive: DONE when its
    /// WAL is all there; FAILED when a segment is missing while later WAL is archived;
    /// else unchanged. Saves and returns the new status.
    fn check_backup(&self, b: &mut BackupInfo) -> Result<Status>;
    /// Moves every WAITING_FOR_WALS backup whose WAL is now archived to DONE (or FAILED).
    fn promote_waiting(&self) -> Result<Vec<(String, Status)>>;
    /// Deletes a backup as Barman does: refused while it is kept or when fewer DONE
    /// backups than `minimum_redundancy` would remain; else marked, removed, then the WAL
    /// that no remaining backup needs is removed, then the mark.
    fn delete(&self, b: &BackupInfo, minimum_redundancy: usize) -> Result<DeleteReport>;
    /// Whether [`CatalogOps::delete`] may delete `b`: refused while it is kept, or when it
    /// is DONE and no more than `minimum_redundancy` DONE backups exist.
    fn check_delete(&self, b: &BackupInfo, minimum_redundancy: usize) -> Result<()>;
    /// The WAL no backup needs once `b` is gone: what is older than the oldest other
    /// usable backup's begin (nothing when no other usable backup remains).
    fn wal_freed_by_delete(&self, b: &BackupInfo) -> Result<Vec<String>>;
    /// The incremental backups that depend on `b` (its children, theirs…), leaves first:
    /// what deleting `b` deletes too. Found by `parent_backup_id` and by `b`'s
    /// `children_backup_ids`, so a child Barman listed, or one a killed backup left
    /// unlisted, is found either way.
    fn descendants(&self, b: &BackupInfo) -> Result<Vec<BackupInfo>>;
    /// Drops `child` from its parent's `children_backup_ids` (once the child is gone).
    fn unlink_from_parent(&self, child: &BackupInfo) -> Result<()>;
    /// Removes a backup without any check and without touching WAL — what retention
    /// does after planning: marked, data removed, metadata removed, mark removed; an
    /// interrupted one is finished by the next command.
    fn drop_backup(&self, id: &str) -> Result<()>;
}

struct WalCheck {
    missing: Option<String>,
    later: bool,
}

fn wal_check<S: CatalogStore + ?Sized>(s: &S, b: &BackupInfo) -> Result<Option<WalCheck>> {
    let Some(range) = WalRange::of_backup(b)? else {
        return Ok(None);
    };
    let mut missing = None;
    for (_, names) in range.segments() {
        if !s.has_wal(&names[0])? && !s.has_wal(&names[1])? {
            missing = Some(names[1].clone());
            break;
        }
    }
    // Later WAL archived: a gap will never fill.
    let last = range.last.unwrap_or(range.first);
    let later = s.has_wal(&range.seg.segment_name(last.tli, last.segno + 1))?
        || s.has_wal(&range.seg.segment_name(last.tli, last.segno + 2))?;
    Ok(Some(WalCheck { missing, later }))
}

fn usable_ids<S: CatalogStore + ?Sized>(s: &S) -> Result<Vec<String>> {
    Ok(s.listing()?.live)
}

fn recover<S: CatalogStore + ?Sized>(s: &S, newest_only: bool) -> Result<Vec<String>> {
    let listing = s.listing()?;
    for id in &listing.marked {
        tracing::warn!(server = %s.server(), "the delete of backup {id} was interrupted: finishing it");
        let info = s.read_info(id).ok().flatten();
        s.remove_backup(id)?;
        // An incremental backup leaves its parent's children list too.
        if let Some(b) = info {
            unlink_child(s, &b)?;
        }
    }
    let mut ids = listing.live;
    if newest_only {
        // Every new backup first runs the full pass under the backup lock, so only the
        // newest can have been left behind since.
        ids = ids.pop().into_iter().collect();
    }
    let mut failed = Vec::new();
    for id in ids {
        let Some(mut b) = s.read_info(&id)? else {
            continue;
        };
        if !matches!(b.status, Status::Started | Status::Empty) {
            continue;
        }
        tracing::warn!(server = %s.server(), "backup {id} was interrupted (its process is gone): marking it FAILED and removing its partial files");
        s.remove_backup_data(&id)?;
        b.status = Status::Failed;
        b.error = Some(
            "failure during backup (the backup process was interrupted; partial files removed)"
                .into(),
        );
        s.write_info(&b)?;
        failed.push(id);
    }
    Ok(failed)
}

fn unlink_child<S: CatalogStore + ?Sized>(s: &S, child: &BackupInfo) -> Result<()> {
    let Some(pid) = &child.parent_backup_id else {
        return Ok(());
    };
    let Some(mut p) = s.read_info(pid)? else {
        return Ok(());
    };
    if let Some(kids) = p.children_backup_ids.as_mut()
        && kids.contains(&child.backup_id)
    {
        kids.retain(|k| *k != child.backup_id);
        if kids.is_empty() {
            p.children_backup_ids = None;
        }
        s.write_info(&p)?;
    }
    Ok(())
}

fn resolve_in<S: CatalogStore + ?Sized>(s: &S, ids: &[String], spec: &str) -> Result<BackupInfo> {
    let unknown = || CatalogError::UnknownBackup {
        spec: spec.to_string(),
        server: s.server().to_string(),
    };
    let find = |ids: &mut dyn Iterator<Item = &String>,
                want: &dyn Fn(&BackupInfo) -> bool|
     -> Result<Option<BackupInfo>> {
        for id in ids {
            if let Some(b) = s.read_info(id)?
                && want(&b)
            {
                return Ok(Some(b));
            }
        }
        Ok(None)
    };
    let found = match spec {
        "latest" | "last" => find(&mut ids.iter().rev(), &BackupInfo::is_usable)?,
        "oldest" | "first" => find(&mut ids.iter(), &BackupInfo::is_usable)?,
        "last-failed" => find(&mut ids.iter().rev(), &|b| b.status == Status::Failed)?,
        "last-full" | "latest-full" => find(&mut ids.iter().rev(), &|b| {
            b.is_usable() && b.parent_backup_id.is_none()
        })?,
        id if ids.iter().any(|i| i == id) => s.read_info(id)?,
        name => find(&mut ids.iter().rev(), &|b| {
            b.backup_name.as_deref() == Some(name)
        })?,
    };
    found.ok_or_else(unknown)
}

fn neighbours_in<S: CatalogStore + ?Sized>(s: &S, ids: &[String], id: &str) -> Result<Neighbours> {
    let pos = ids.iter().position(|i| i == id).unwrap_or(ids.len());
    let done = |id: &String| -> Result<Option<BackupInfo>> {
        Ok(s.read_info(id)?.filter(|b| b.status == Status::Done))
    };
    let mut n = Neighbours::default();
    for i in ids[..pos].iter().rev() {
        if let Some(b) = done(i)? {
            n.previous = Some(b);
            break;
        }
    }
    for i in ids.iter().skip(pos + 1) {
        if let Some(b) = done(i)? {
            n.next = Some(b);
            break;
        }
    }
    Ok(n)
}

impl<S: CatalogStore + ?Sized> CatalogOps for S {
    fn list(&self) -> Result<Vec<BackupInfo>> {
        let mut out = Vec::new();
        for id in usable_ids(self)? {
            if let Some(b) = self.read_info(&id)? {
                out.push(b);
            }
        }
        Ok(out)
    }

    fn resolve(&self, spec: &str) -> Result<BackupInfo> {
        resolve_in(self, &usable_ids(self)?, spec)
    }

    fn neighbours(&self, id: &str) -> Result<Neighbours> {
        neighbours_in(self, &usable_ids(self)?, id)
    }

    fn resolve_with_neighbours(&self, spec: &str) -> Result<(BackupInfo, Neighbours)> {
        let ids = usable_ids(self)?;
        let b = resolve_in(self, &ids, spec)?;
        let n = neighbours_in(self, &ids, &b.backup_id)?;
        Ok((b, n))
    }

    fn recover_crashed(&self) -> Result<Vec<String>> {
        if self.is_locked("backup") {
            return Ok(Vec::new());
        }
        recover(self, true)
    }

    fn recover_interrupted(&self) -> Result<Vec<String>> {
        recover(self, false)
    }

    fn first_missing_wal(&self, b: &BackupInfo) -> Result<Option<String>> {
        Ok(wal_check(self, b)?.and_then(|c| c.missing))
    }

    fn check_backup(&self, b: &mut BackupInfo) -> Result<Status> {
        if !matches!(b.status, Status::WaitingForWals | Status::Done) {
            return Ok(b.status);
        }
        let Some(check) = wal_check(self, b)? else {
            return Ok(b.status);
        };
        let new = match check.missing {
            None => Status::Done,
            Some(m) if check.later => {
                b.error = Some(format!(
                    "At least one WAL file is missing. The first missing WAL file is {m}"
                ));
                Status::Failed
            }
            Some(_) => Status::WaitingForWals,
        };
        if new != b.status {
            b.status = new;
            self.write_info(b)?;
        }
        Ok(new)
    }

    fn promote_waiting(&self) -> Result<Vec<(String, Status)>> {
        let mut changed = Vec::new();
        // While a backup process runs (its lock is held) it owns the metadata it writes
        // and checks its own WAL; promoting then could overwrite a newer copy.
        if self.is_locked("backup") {
            return Ok(changed);
        }
        for mut b in self.list()? {
            if b.status != Status::WaitingForWals {
                continue;
            }
            let st = self.check_backup(&mut b)?;
            if st != Status::WaitingForWals {
                match st {
                    Status::Done => {
                        tracing::info!(server = %self.server(), "backup {} is DONE: its WAL is archived", b.backup_id)
                    }
                    _ => {
                        tracing::error!(server = %self.server(), "backup {} is {}: {}", b.backup_id, st.as_str(), b.error.as_deref().unwrap_or(""))
                    }
                }
                changed.push((b.backup_id.clone(), st));
            }
        }
        Ok(changed)
    }

    fn delete(&self, b: &BackupInfo, minimum_redundancy: usize) -> Result<DeleteReport> {
        self.check_delete(b, minimum_redundancy)?;
        self.mark_for_deletion(&b.backup_id)?;
        self.remove_backup_data(&b.backup_id)?;
        let old = self.wal_freed_by_delete(b)?;
        let wal_removed = if old.is_empty() {
            0
        } else {
            self.remove_wal(&old)?
        };
        self.remove_backup(&b.backup_id)?;
        Ok(DeleteReport { wal_removed })
    }

    fn check_delete(&self, b: &BackupInfo, minimum_redundancy: usize) -> Result<()> {
        if let Some(target) = self.keep(&b.backup_id)? {
            return Err(CatalogError::Refused(format!(
                "Skipping delete of backup {} for server {} as it has a current keep request (keep:{}). If you really want to delete this backup please remove the keep and try again.",
                b.backup_id,
                self.server(),
                target.as_str()
            )));
        }
        // Barman counts the DONE full backups, and never refuses an incremental one.
        let all = self.list()?;
        let done = all
            .iter()
            .filter(|x| x.status == Status::Done && x.parent_backup_id.is_none())
            .count();
        if b.status == Status::Done && b.parent_backup_id.is_none() && done <= minimum_redundancy {
            return Err(CatalogError::Refused(format!(
                "Skipping delete of backup {} for server {} due to minimum redundancy requirements (minimum redundancy = {minimum_redundancy}, current redundancy = {done})",
                b.backup_id,
                self.server()
            )));
        }
        Ok(())
    }

    fn wal_freed_by_delete(&self, b: &BackupInfo) -> Result<Vec<String>> {
        // WAL older than the oldest remaining backup is needed by nobody.
        let all = self.list()?;
        let oldest = all
            .iter()
            .find(|x| x.backup_id != b.backup_id && x.is_usable());
        if let Some(oldest) = oldest
            && let Some(range) = WalRange::from_backup(oldest)?
        {
            return Ok(self
                .wal_index()?
                .into_iter()
                .map(|e| e.name)
                .filter(|n| range.precedes(n))
                .collect());
        }
        Ok(Vec::new())
    }

    fn descendants(&self, b: &BackupInfo) -> Result<Vec<BackupInfo>> {
        let all = self.list()?;
        let mut out: Vec<BackupInfo> = Vec::new();
        // Depth-first from `b`; each child's own descendants before it.
        fn walk(all: &[BackupInfo], id: &str, kids_listed: &[String], out: &mut Vec<BackupInfo>) {
            for c in all {
                let is_child =
                    c.parent_backup_id.as_deref() == Some(id) || kids_listed.contains(&c.backup_id);
                if is_child && c.backup_id != id && !out.iter().any(|o| o.backup_id == c.backup_id)
                {
                    let grand = c.children_backup_ids.clone().unwrap_or_default();
                    walk(all, &c.backup_id, &grand, out);
                    out.push(c.clone());
                }
            }
        }
        let kids = b.children_backup_ids.clone().unwrap_or_default();
        walk(&all, &b.backup_id, &kids, &mut out);
        Ok(out)
    }

    fn unlink_from_parent(&self, child: &BackupInfo) -> Result<()> {
        unlink_child(self, child)
    }

    fn drop_backup(&self, id: &str) -> Result<()> {
        self.mark_for_deletion(id)?;
        self.remove_backup_data(id)?;
        self.remove_backup(id)
    }
}

/// The WAL segment holding the byte before `lsn` (PostgreSQL's `pg_walfile_name`).
pub fn segment_before(lsn: Lsn, seg: SegmentSize) -> u64 {
    Lsn(lsn.0.saturating_sub(1)).segno(seg)
}
