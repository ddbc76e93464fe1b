//! One test suite, two catalogs: every test runs against the Barman layout on a local
//! file system ([`LocalCatalog`]) and against [`MemoryCatalog`], which has no rename, no
//! hard links and no append. What passes on both asks nothing POSIX-only of the store —
//! the promise an object-store catalog will have to keep.

use barkeep_archive::{Codec, Identity, Level, ServerArchive};
use barkeep_catalog::{
    BackupInfo, CatalogError, CatalogOps, CatalogStore, KeepTarget, LocalCatalog, MemoryCatalog,
    Status, WalRange,
};

/// A catalog under test plus the means to put data and WAL in it, as a backup and
/// archive-wal would.
trait Fixture {
    fn store(&self) -> &dyn CatalogStore;
    fn put_data(&self, id: &str);
    fn has_data(&self, id: &str) -> bool;
    fn put_wal(&self, name: &str);
}

struct Local {
    _dir: tempfile::TempDir,
    cat: LocalCatalog,
}

impl Local {
    fn new() -> Local {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("pg");
        let archive = ServerArchive {
            server: "pg".into(),
            wals: root.join("wals"),
            incoming: root.join("incoming"),
            streaming: root.join("streaming"),
            errors: root.join("errors"),
            xlogdb_dir: root.join("wals"),
            lock_dir: dir.path().to_path_buf(),
            identity_file: root.join("identity.json"),
            codec: Codec::None,
            level: Level::Low,
            hooks: None,
        };
        archive.create_directories().expect("dirs");
        let cat = LocalCatalog {
            server: "pg".into(),
            backup_dir: root.clone(),
            base_dir: root.join("base"),
            archive,
        };
        Local { _dir: dir, cat }
    }
}

impl Fixture for Local {
    fn store(&self) -> &dyn CatalogStore {
        &self.cat
    }
    fn put_data(&self, id: &str) {
        let d = self.cat.data_dir(id).join("global");
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("pg_control"), b"control").expect("write");
    }
    fn has_data(&self, id: &str) -> bool {
        self.cat.backup_root(id).exists()
    }
    fn put_wal(&self, name: &str) {
        let w = barkeep_archive::names::WalName::parse(name).expect("wal name");
        let p = self.cat.archive.archive_path(&w);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, vec![0u8; 64]).expect("write");
        let e = barkeep_archive::xlogdb::XlogEntry::of_file(name, &p).expect("entry");
        barkeep_archive::xlogdb::append(&self.cat.archive.xlogdb(), &[e]).expect("append");
    }
}

struct Memory(MemoryCatalog);

impl Fixture for Memory {
    fn store(&self) -> &dyn CatalogStore {
        &self.0
    }
    fn put_data(&self, id: &str) {
        self.0.put_data(id, &["data.tar"]);
    }
    fn has_data(&self, id: &str) -> bool {
        !self.0.data(id).is_empty()
    }
    fn put_wal(&self, name: &str) {
        self.0.put_wal(name, 64);
    }
}

fn both(test: fn(&dyn Fixture)) {
    test(&Local::new());
    test(&Memory(MemoryCatalog::new("pg")));
}

fn seg(n: u64) -> String {
    format!("00000001000000000000{n:04X}")
}

fn backup(f: &dyn Fixture, id: &str, status: Status, wal: Option<(u64, u64)>) -> BackupInfo {
    let mut b = BackupInfo::new(id, "pg");
    b.status = status;
    if let Some((a, z)) = wal {
        b.begin_wal = Some(seg(a));
        b.end_wal = Some(seg(z));
        b.xlog_segment_size = Some(16 << 20);
        b.timeline = Some(1);
    }
    f.store().write_info(&b).expect("write info");
    f.put_data(id);
    b
}

#[test]
fn metadata_round_trips_and_shortcuts_resolve() {
    both(|f| {
        let s = f.store();
        let mut named = backup(f, "20260101T000000", Status::Done, None);
        named.backup_name = Some("monthly".into());
        s.write_info(&named).expect("rewrite");
        backup(f, "20260102T000000", Status::Failed, None);
        backup(f, "20260103T000000", Status::Done, None);
        backup(f, "20260104T000000", Status::Failed, None);
        assert_eq!(s.read_info("20260101T000000").expect("read"), Some(named));
        assert_eq!(s.read_info("20990101T000000").expect("read"), None);
        assert_eq!(s.list().expect("list").len(), 4);
        for (spec, want) in [
            ("latest", "20260103T000000"),
            ("first", "20260101T000000"),
            ("last-failed", "20260104T000000"),
            ("monthly", "20260101T000000"),
            ("20260102T000000", "20260102T000000"),
        ] {
            assert_eq!(s.resolve(spec).expect(spec).backup_id, want, "{spec}");
        }
        let err = s.resolve("nope").expect_err("unknown");
        assert_eq!(err.to_string(), "Unknown backup 'nope' for server 'pg'");
        let n = s.neighbours("20260102T000000").expect("neighbours");
        assert_eq!(
            n.previous.map(|b| b.backup_id).as_deref(),
            Some("20260101T000000")
        );
        assert_eq!(
            n.next.map(|b| b.backup_id).as_deref(),
            Some("20260103T000000")
        );
    });
}

#[test]
fn kept_backups_and_minimum_redundancy_refuse_delete() {
    both(|f| {
        let s = f.store();
        let a = backup(f, "20260101T000000", Status::Done, None);
        let b = backup(f, "20260102T000000", Status::Done, None);
        s.set_keep(&a.backup_id, Some(KeepTarget::Standalone))
            .expect("keep");
        assert_eq!(
            s.keep(&a.backup_id).expect("keep"),
            Some(KeepTarget::Standalone)
        );
        let err = s.delete(&a, 0).expect_err("kept");
        assert!(
            matches!(err, CatalogError::Refused(ref m) if m.contains("keep request (keep:standalone)")),
            "{err}"
        );
        assert!(f.has_data(&a.backup_id));
        s.set_keep(&a.backup_id, None).expect("release");
        assert_eq!(s.keep(&a.backup_id).expect("keep"), None);
        let err = s.delete(&b, 2).expect_err("redundancy");
        assert!(err.to_string().contains("minimum redundancy = 2"), "{err}");
        s.delete(&b, 1).expect("delete");
        assert!(!f.has_data(&b.backup_id));
        assert_eq!(s.read_info(&b.backup_id).expect("read"), None);
        assert_eq!(s.list().expect("list").len(), 1);
    });
}

#[test]
fn interrupted_deletes_and_backups_are_finished_by_the_next_command() {
    both(|f| {
        let s = f.store();
        backup(f, "20260101T000000", Status::Done, None);
        backup(f, "20260102T000000", Status::Done, None);
        backup(f, "20260103T000000", Status::Started, None);
        // A delete killed after its mark: never offered again.
        s.mark_for_deletion("20260102T000000").expect("mark");
        assert_eq!(
            s.resolve("latest").expect("latest").backup_id,
            "20260101T000000"
        );
        assert_eq!(s.list().expect("list").len(), 2);
        // While a backup holds the lock nothing is touched.
        {
            let _held = s.lock("backup").expect("lock");
            assert!(s.is_locked("backup"));
            assert!(s.recover_crashed().expect("recover").is_empty());
            assert!(f.has_data("20260103T000000"));
        }
        assert!(!s.is_locked("backup"));
        assert_eq!(
            s.recover_crashed().expect("recover"),
            vec!["20260103T000000".to_string()]
        );
        assert!(s.marked_for_deletion().expect("marks").is_empty());
        assert!(!f.has_data("20260102T000000") && !f.has_data("20260103T000000"));
        let failed = s.resolve("last-failed").expect("failed");
        assert!(failed.error.expect("error").contains("interrupted"));
    });
}

#[test]
fn waiting_backups_follow_the_archive_and_delete_prunes_old_wal() {
    both(|f| {
        let s = f.store();
        let mut old = backup(f, "20260101T000000", Status::WaitingForWals, Some((2, 3)));
        f.put_wal(&seg(2));
        assert_eq!(
            s.check_backup(&mut old).expect("check"),
            Status::WaitingForWals
        );
        assert_eq!(s.first_missing_wal(&old).expect("missing"), Some(seg(3)));
        f.put_wal(&seg(3));
        assert_eq!(
            s.promote_waiting().expect("promote"),
            vec![("20260101T000000".to_string(), Status::Done)]
        );
        assert_eq!(
            s.read_info(&old.backup_id)
                .expect("read")
                .expect("some")
                .status,
            Status::Done
        );
        // A hole followed by later WAL never fills: FAILED, naming the segment.
        let mut gap = backup(f, "20260102T000000", Status::WaitingForWals, Some((5, 6)));
        f.put_wal(&seg(4));
        f.put_wal(&seg(6));
        f.put_wal(&seg(7));
        assert_eq!(s.check_backup(&mut gap).expect("check"), Status::Failed);
        assert!(gap.error.as_deref().expect("error").contains(&seg(5)));
        let r = WalRange::until_next(&old, None)
            .expect("range")
            .expect("some");
        assert_eq!(s.wal_stats(&r).expect("stats"), (5, 5 * 64));
        // Deleting the oldest backup removes the WAL only it needed.
        let newer = backup(f, "20260103T000000", Status::Done, Some((4, 4)));
        let report = s.delete(&old, 0).expect("delete");
        assert_eq!(report.wal_removed, 2);
        assert!(!s.has_wal(&seg(2)).expect("has") && !s.has_wal(&seg(3)).expect("has"));
        assert!(s.has_wal(&seg(4)).expect("has"));
        let names: Vec<String> = s
            .wal_index()
            .expect("index")
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, vec![seg(4), seg(6), seg(7)]);
        assert_eq!(
            s.resolve("oldest").expect("oldest").backup_id,
            newer.backup_id
        );
    });
}

#[test]
fn identity_round_trips() {
    both(|f| {
        let s = f.store();
        assert_eq!(s.identity().expect("identity"), None);
        let id = Identity::new("7412345678901234567", 17);
        s.write_identity(&id).expect("write");
        assert_eq!(s.identity().expect("identity"), Some(id));
    });
}
