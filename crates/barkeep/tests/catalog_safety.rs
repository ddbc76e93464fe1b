//! What the catalog promises a user, with the `barkeep` binary against real PostgreSQL:
//!
//! - it is private whatever the umask (files 0600, directories 0700; a restored data
//!   directory 0700), or readable by exactly one group with `catalog_group`;
//! - a backup taken without `--wait` becomes DONE by itself as soon as its WAL is
//!   streamed and archived, with no cron and no `check-backup`; `restore latest` of a
//!   backup still waiting re-checks the archive, and fails naming the first missing
//!   segment when WAL is really missing.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use barkeep_testkit::ClusterBuilder;
use common::{Home, kill, wait_for};

/// Every file and directory under `root` (not following symlinks), with its mode.
fn modes(root: &Path) -> Vec<(String, bool, u32, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).expect("stat");
        if m.file_type().is_symlink() {
            continue;
        }
        out.push((
            p.display().to_string(),
            m.is_dir(),
            m.mode() & 0o7777,
            m.gid(),
        ));
        if m.is_dir() {
            stack.extend(
                std::fs::read_dir(&p)
                    .expect("ls")
                    .flatten()
                    .map(|e| e.path()),
            );
        }
    }
    out
}

fn status_of(home: &Home, id: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&home.run(&["-f", "json", "show-backup", "pg", id])).expect("json");
    v["pg"]["status"].as_str().unwrap_or_default().to_string()
}

#[test]
fn the_catalog_is_private_under_a_022_umask_and_waiting_backups_become_done_by_themselves() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    // barkeep inherits this umask: the most common one, which made everything 0644/0755.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let c = ClusterBuilder::new(&pg).start().expect("start");
    c.psql("CREATE TABLE t AS SELECT generate_series(1, 5000) AS i")
        .expect("data");
    let home = Home::new(
        &c,
        "slot_name = barkeep\ncreate_slot = auto\ncompression = gzip\n",
    );
    let mut receiver = home.streaming_receiver();

    // A backup without --wait: WAITING_FOR_WALS when it ends...
    let out = home.run(&["backup", "--name", "nowait", "pg"]);
    assert!(
        out.contains("WAITING_FOR_WALS") || out.contains("is DONE"),
        "{out}"
    );
    // ...and DONE by itself once the end segment is streamed: the receiver archives it
    // and promotes the backup (nothing else runs).
    c.psql("SELECT pg_switch_wal()").expect("switch");
    wait_for(
        &home,
        "the backup to become DONE",
        Duration::from_secs(60),
        || status_of(&home, "nowait") == "DONE",
    );
    assert!(home.archived().len() >= 2, "{:?}", home.archived());

    // Private whatever the umask: the backup holds pg_authid.
    let all = modes(&home.server_dir());
    assert!(all.iter().any(|(p, ..)| p.contains("/base/")), "{all:?}");
    assert!(
        all.iter().any(|(p, ..)| p.contains("/wals/0000")),
        "{all:?}"
    );
    for (path, is_dir, mode, _) in &all {
        if *is_dir {
            assert_eq!(*mode, 0o700, "directory {path} is {mode:o}");
        } else {
            assert_eq!(*mode, 0o600, "file {path} is {mode:o}");
        }
    }
    for lock in std::fs::read_dir(home.home()).expect("ls").flatten() {
        let m = lock.metadata().expect("stat");
        if m.is_file() {
            assert_eq!(
                m.mode() & 0o077,
                0,
                "{} is {:o}",
                lock.path().display(),
                m.mode()
            );
        }
    }

    // A restored data directory is 0700, its files private.
    let target = home.dir.path().join("restored");
    home.run(&["restore", "pg", "latest", target.to_str().expect("utf-8")]);
    let restored = std::fs::metadata(&target).expect("stat");
    assert_eq!(restored.mode() & 0o7777, 0o700);
    for (path, is_dir, mode, _) in modes(&target) {
        assert_eq!(mode & 0o077, 0, "{path} ({is_dir}) is {mode:o}");
    }

    // A backup that waits for WAL the server has not written out yet: restore latest
    // refuses it naming the segment; once the segment is archived, restore goes on.
    kill(&mut receiver, nix::sys::signal::Signal::SIGTERM);
    let out = home.run(&["backup", "--name", "waiting", "pg"]);
    assert!(out.contains("WAITING_FOR_WALS"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&home.run(&["-f", "json", "show-backup", "pg", "waiting"]))
            .expect("json");
    let info = &v["pg"]["base_backup_information"];
    let begin_wal = info["begin_wal"].as_str().expect("begin_wal").to_string();
    let end_wal = info["end_wal"].as_str().expect("end_wal").to_string();
    let dest = home.dir.path().join("restored2");
    let refused = home
        .cmd(&["restore", "pg", "latest", dest.to_str().expect("utf-8")])
        .output()
        .expect("restore");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(
        err.contains("WAITING_FOR_WALS") && err.contains(&begin_wal),
        "the error names the first missing segment {begin_wal}: {err}"
    );
    assert!(!dest.exists(), "nothing written");
    // The WAL arrives by another road (pushed into incoming/, as archive_command does),
    // and nothing re-checks the backup...
    c.psql("SELECT pg_switch_wal()").expect("switch");
    c.psql("INSERT INTO t VALUES (0)").expect("write");
    let endpos = c.query_value("SELECT pg_current_wal_lsn()").expect("lsn");
    c.psql("INSERT INTO t VALUES (0)").expect("write");
    let got = home.dir.path().join("pushed");
    let names = c
        .receive_segments(&got, &begin_wal, &endpos)
        .expect("pg_receivewal");
    assert!(names.contains(&end_wal), "{names:?}");
    let incoming = home.server_dir().join("incoming");
    for n in &names {
        std::fs::copy(got.join(n), incoming.join(n)).expect("push");
    }
    assert_eq!(status_of(&home, "waiting"), "WAITING_FOR_WALS");
    // ... so `restore latest` (that backup) re-checks the archive itself and goes on.
    let ok = home
        .cmd(&["restore", "pg", "latest", dest.to_str().expect("utf-8")])
        .output()
        .expect("restore");
    let stdout = String::from_utf8_lossy(&ok.stdout);
    let stderr = String::from_utf8_lossy(&ok.stderr);
    assert!(ok.status.success(), "{stderr}");
    assert!(
        stdout.contains("successfully prepared for recovery"),
        "{stdout}"
    );
    assert!(stderr.contains("its WAL is now all archived"), "{stderr}");
    assert_eq!(status_of(&home, "waiting"), "DONE");
}

#[test]
fn with_catalog_group_one_group_may_read_and_deliver_but_never_the_world() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let c = ClusterBuilder::new(&pg).start().expect("start");
    let home = Home::shared(
        &c,
        "compression = gzip\nslot_name = barkeep\ncreate_slot = auto\n",
    );
    let group = c.os_user().group_name();
    let gid = nix::unistd::Group::from_name(&group)
        .expect("group lookup")
        .expect("group")
        .gid
        .as_raw();
    let mut receiver = home.streaming_receiver();
    home.run(&["backup", "--wait", "--wait-timeout", "60", "pg"]);
    kill(&mut receiver, nix::sys::signal::Signal::SIGTERM);
    let all = modes(&home.server_dir());
    assert!(
        all.iter().any(|(p, ..)| p.contains("/wals/0000")),
        "{all:?}"
    );
    for (path, is_dir, mode, g) in &all {
        assert_eq!(mode & 0o007, 0, "{path} is {mode:o}: world access");
        assert_eq!(*g, gid, "{path} belongs to group {g}, not {group}");
        if *is_dir {
            let want = if path.ends_with("/incoming") {
                0o2770
            } else {
                0o2750
            };
            assert_eq!(*mode, want, "directory {path} is {mode:o}");
        } else {
            assert_eq!(*mode, 0o640, "file {path} is {mode:o}");
        }
    }
    // An unknown group is a configuration error that names it.
    let bad = Home::empty();
    bad.configure_full(
        &c.socket_conninfo("postgres", "postgres"),
        "catalog_group = no-such-group-here\n",
        "",
    );
    let out = bad.cmd(&["list-backups", "pg"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no-such-group-here"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Defect found by the fault campaign: deduplication compared whole-file CRC-32Cs, and
/// every valid `pg_control` has the same one (it ends with the CRC of what precedes it),
/// so every backup after the first got the first backup's control file and could not be
/// restored ("could not locate required checkpoint record") — while verify-backup and
/// pg_verifybackup, which trust the same CRC, passed. Now: the later backup restores and
/// starts, and verify-backup compares the control file with backup_label.
#[test]
fn a_deduplicated_later_backup_restores_with_its_own_control_file() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let c = ClusterBuilder::new(&pg).start().expect("start");
    c.psql("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 100000) g")
        .expect("data");
    let home = Home::new(&c, "slot_name = barkeep\ncreate_slot = auto\n");
    let mut receiver = home.streaming_receiver();
    home.run(&[
        "backup",
        "--wait",
        "--wait-timeout",
        "60",
        "--name",
        "first",
        "pg",
    ]);
    c.psql("INSERT INTO t VALUES (0, 'second'); CHECKPOINT")
        .expect("more");
    std::thread::sleep(Duration::from_millis(1100));
    home.run(&[
        "backup",
        "--wait",
        "--wait-timeout",
        "60",
        "--name",
        "second",
        "pg",
    ]);
    kill(&mut receiver, nix::sys::signal::Signal::SIGTERM);
    let id = |name: &str| {
        let v: serde_json::Value =
            serde_json::from_str(&home.run(&["-f", "json", "show-backup", "pg", name]))
                .expect("json");
        v["pg"]["backup_id"].as_str().expect("id").to_string()
    };
    let (first, second) = (id("first"), id("second"));
    let control = |id: &str| {
        home.server_dir()
            .join(format!("base/{id}/data/global/pg_control"))
    };
    let ino = |p: &Path| std::fs::metadata(p).expect("stat").ino();
    assert_ne!(
        ino(&control(&first)),
        ino(&control(&second)),
        "pg_control shared"
    );
    // The big table did not change: still shared.
    home.run(&["verify-backup", "pg", "second"]);
    // A control file from another backup is caught by verify-backup.
    let saved = std::fs::read(control(&second)).expect("read");
    std::fs::remove_file(control(&second)).expect("rm");
    std::fs::copy(control(&first), control(&second)).expect("stale copy");
    let out = home
        .cmd(&["verify-backup", "pg", "second"])
        .output()
        .expect("verify");
    let err =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("global/pg_control"), "{err}");
    std::fs::write(control(&second), saved).expect("restore pg_control");
    // The second backup restores and starts, with the row written before it — after a
    // first attempt killed half-way: the same command finishes the job by itself, and
    // the half-written copy could not have been started (no pg_control yet).
    let mut target = ClusterBuilder::new(&pg).create().expect("target");
    let dest = target.data_dir().to_path_buf();
    std::fs::remove_dir_all(&dest).expect("empty");
    let killed = home
        .cmd(&["restore", "pg", "second", dest.to_str().expect("utf-8")])
        .env("BARKEEP_CRASH_AT", "after-rename:1")
        .output()
        .expect("restore");
    assert!(!killed.status.success(), "the crash point fired");
    std::fs::create_dir_all(dest.join("base")).expect("mkdir");
    std::fs::write(dest.join("base/half-copied"), b"x").expect("partial file");
    assert!(dest.join(".barkeep-restore-in-progress").exists());
    assert!(!dest.join("global/pg_control").exists());
    home.run(&["restore", "pg", "second", dest.to_str().expect("utf-8")]);
    assert!(!dest.join(".barkeep-restore-in-progress").exists());
    assert!(!dest.join("base/half-copied").exists());
    target.adopt_data_dir("").expect("adopt");
    target.start().expect("the second backup starts");
    target
        .wait_for_recovery_end(Duration::from_secs(60))
        .expect("recovery");
    assert_eq!(
        target
            .query_value("SELECT v FROM t WHERE id = 0")
            .expect("row"),
        "second"
    );
}
