//! A catalog in memory: every value replaced whole under one mutex, no files, no
//! rename, no hard links, no append. It exists to prove that [`CatalogStore`] asks for
//! nothing POSIX-only — what an object store (whole-object PUT/GET/DELETE/LIST) can
//! give — and to test the catalog's operations fast.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use barkeep_archive::Identity;
use barkeep_archive::xlogdb::XlogEntry;

use crate::error::{CatalogError, Result};
use crate::info::BackupInfo;
use crate::store::{CatalogStore, Guard, KeepTarget};

/// An object store's view of a catalog: keys to whole values.
#[derive(Debug, Default)]
struct Objects {
    /// `<id>` → backup.info text.
    infos: BTreeMap<String, String>,
    /// `<id>` → data objects (names only; the bytes do not matter here).
    data: BTreeMap<String, BTreeSet<String>>,
    keeps: BTreeMap<String, KeepTarget>,
    deleting: BTreeSet<String>,
    /// WAL name → stored size, in archive order.
    wal: Vec<(String, u64)>,
    identity: Option<Identity>,
    locks: BTreeSet<String>,
}

/// A catalog in memory. Clones share the same contents.
#[derive(Debug, Clone)]
pub struct MemoryCatalog {
    server: String,
    objects: Arc<Mutex<Objects>>,
}

/// A lock of a [`MemoryCatalog`].
#[derive(Debug)]
struct MemoryLock {
    objects: Arc<Mutex<Objects>>,
    task: String,
}

impl Drop for MemoryLock {
    fn drop(&mut self) {
        lock(&self.objects).locks.remove(&self.task);
    }
}

fn lock(o: &Mutex<Objects>) -> MutexGuard<'_, Objects> {
    o.lock().unwrap_or_else(|p| p.into_inner())
}

impl MemoryCatalog {
    /// An empty catalog of `server`.
    pub fn new(server: &str) -> MemoryCatalog {
        MemoryCatalog {
            server: server.to_string(),
            objects: Arc::default(),
        }
    }

    fn objects(&self) -> MutexGuard<'_, Objects> {
        lock(&self.objects)
    }

    /// Stores data objects of a backup (what a backup writer would upload).
    pub fn put_data(&self, id: &str, names: &[&str]) {
        self.objects()
            .data
            .entry(id.to_string())
            .or_default()
            .extend(names.iter().map(|n| n.to_string()));
    }

    /// The data objects of a backup.
    pub fn data(&self, id: &str) -> Vec<String> {
        self.objects()
            .data
            .get(id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Archives a WAL file (what archive-wal would upload).
    pub fn put_wal(&self, name: &str, size: u64) {
        let mut o = self.objects();
        if !o.wal.iter().any(|(n, _)| n == name) {
            o.wal.push((name.to_string(), size));
        }
    }
}

impl CatalogStore for MemoryCatalog {
    fn server(&self) -> &str {
        &self.server
    }

    fn backup_ids(&self) -> Result<Vec<String>> {
        Ok(self.objects().infos.keys().cloned().collect())
    }

    fn read_info(&self, id: &str) -> Result<Option<BackupInfo>> {
        let text = self.objects().infos.get(id).cloned();
        text.map(|t| BackupInfo::parse(id, &t, std::path::Path::new(&format!("memory:{id}"))))
            .transpose()
    }

    fn write_info(&self, info: &BackupInfo) -> Result<()> {
        self.objects()
            .infos
            .insert(info.backup_id.clone(), info.to_text());
        Ok(())
    }

    fn keep(&self, id: &str) -> Result<Option<KeepTarget>> {
        Ok(self.objects().keeps.get(id).copied())
    }

    fn set_keep(&self, id: &str, target: Option<KeepTarget>) -> Result<()> {
        let mut o = self.objects();
        match target {
            Some(t) => o.keeps.insert(id.to_string(), t),
            None => o.keeps.remove(id),
        };
        Ok(())
    }

    fn mark_for_deletion(&self, id: &str) -> Result<()> {
        self.objects().deleting.insert(id.to_string());
        Ok(())
    }

    fn marked_for_deletion(&self) -> Result<Vec<String>> {
        Ok(self.objects().deleting.iter().cloned().collect())
    }

    fn remove_backup_data(&self, id: &str) -> Result<()> {
        self.objects().data.remove(id);
        Ok(())
    }

    fn remove_backup(&self, id: &str) -> Result<()> {
        let mut o = self.objects();
        o.data.remove(id);
        o.infos.remove(id);
        o.keeps.remove(id);
        o.deleting.remove(id);
        Ok(())
    }

    fn wal_index(&self) -> Result<Vec<XlogEntry>> {
        Ok(self
            .objects()
            .wal
            .iter()
            .map(|(name, size)| XlogEntry {
                name: name.clone(),
                size: *size,
                time: 0.0,
                compression: barkeep_archive::Codec::None,
                encryption: None,
            })
            .collect())
    }

    fn has_wal(&self, name: &str) -> Result<bool> {
        Ok(self.objects().wal.iter().any(|(n, _)| n == name))
    }

    fn remove_wal(&self, names: &[String]) -> Result<usize> {
        let mut o = self.objects();
        let before = o.wal.len();
        o.wal.retain(|(n, _)| !names.contains(n));
        Ok(before - o.wal.len())
    }

    fn identity(&self) -> Result<Option<Identity>> {
        Ok(self.objects().identity.clone())
    }

    fn write_identity(&self, identity: &Identity) -> Result<()> {
        self.objects().identity = Some(identity.clone());
        Ok(())
    }

    fn lock(&self, task: &str) -> Result<Guard> {
        if !self.objects().locks.insert(task.to_string()) {
            return Err(CatalogError::Refused(format!(
                "{task} is already running for server `{}`",
                self.server
            )));
        }
        Ok(Box::new(MemoryLock {
            objects: self.objects.clone(),
            task: task.to_string(),
        }))
    }

    fn is_locked(&self, task: &str) -> bool {
        self.objects().locks.contains(task)
    }
}
