//! The core round trip on every supported major (13 to 18, as `scripts/test.sh` installs
//! them): barkeep streams the WAL, takes a backup, restores it to a target, the restored
//! server starts with exactly the marker rows up to the target; `verify-backup` (which
//! runs the major's own `pg_verifybackup`) passes and `pg_waldump` of that major reads a
//! streamed segment. The options are chosen pairwise, not as a full product: each major
//! gets one storage format and one target type, so that every format (plain, plain with
//! server-side compression, tar compressed here, tar compressed by the server, an
//! incremental chain) and every target type is covered somewhere, each on a major that
//! has it (server-side compression 15+, incremental 17+). The version-specific paths
//! this crosses: the legacy BASE_BACKUP syntax (13, 14), each major's WAL page magic,
//! and PostgreSQL 17+ incremental backups.

mod common;

use std::time::Duration;

use barkeep_testkit::{ClusterBuilder, PgInstall};
use common::Home;

/// One major's choice of options.
struct Case {
    /// Configuration lines for the server.
    conf: &'static str,
    /// `restore` target arguments (filled from the marker).
    target: &'static str,
    /// An incremental backup on top of the full one.
    incremental: bool,
}

fn case_for(major: u32) -> Case {
    match major {
        13 => Case {
            conf: "reuse_backup = link\n",
            target: "time",
            incremental: false,
        },
        14 => Case {
            conf: "backup_compression = gzip\nbackup_compression_format = tar\n",
            target: "xid",
            incremental: false,
        },
        15 => Case {
            conf: "backup_compression = zstd\nbackup_compression_format = plain\nbackup_compression_location = server\n",
            target: "lsn",
            incremental: false,
        },
        16 => Case {
            conf: "backup_compression = lz4\nbackup_compression_format = tar\nbackup_compression_location = server\n",
            target: "name",
            incremental: false,
        },
        17 => Case {
            conf: "",
            target: "time",
            incremental: true,
        },
        _ => Case {
            conf: "backup_compression = zstd\nbackup_compression_format = tar\nbackup_compression_location = server\n",
            target: "xid",
            incremental: false,
        },
    }
}

#[test]
fn the_round_trip_passes_on_every_major() {
    let installs = barkeep_testkit::test_installs();
    if installs.is_empty() {
        return;
    }
    if std::env::var("BARKEEP_TEST_ALL_MAJORS").as_deref() == Ok("1") {
        let majors: Vec<u32> = installs.iter().map(|i| i.major).collect();
        for m in 13..=18 {
            assert!(
                majors.contains(&m),
                "PostgreSQL {m} is not installed: {majors:?}"
            );
        }
    }
    for pg in installs {
        round_trip(&pg);
    }
}

fn round_trip(pg: &PgInstall) {
    let case = case_for(pg.major);
    let mut b = ClusterBuilder::new(pg);
    if case.incremental {
        b = b.setting("summarize_wal", "on");
    }
    let c = b.start().expect("start");
    let what = format!(
        "PostgreSQL {} ({})",
        pg.version,
        case.conf.trim().replace('\n', ", ")
    );
    eprintln!("{what}: target {}", case.target);
    c.psql("CREATE TABLE marker (id int PRIMARY KEY)")
        .expect("marker");
    c.psql(
        "CREATE TABLE filler AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g",
    )
    .expect("filler");
    let home = Home::new(
        &c,
        &format!(
            "immediate_checkpoint = true\nslot_name = barkeep\ncreate_slot = auto\npath_prefix = {}\n{}",
            pg.bin.display(),
            case.conf
        ),
    );
    let mut receiver = home.streaming_receiver();
    home.run(&["backup", "--wait", "--wait-timeout", "120", "pg"]);
    if case.incremental {
        c.psql("INSERT INTO filler SELECT g, 'x' FROM generate_series(20001, 21000) g")
            .expect("more");
        home.run(&[
            "backup",
            "--wait",
            "--wait-timeout",
            "120",
            "--incremental",
            "latest",
            "pg",
        ]);
    }
    let newest = home
        .run(&["list-backups", "--minimal", "pg"])
        .lines()
        .next()
        .expect("a backup")
        .trim()
        .to_string();
    // Marker 1, the target just after it, marker 2.
    let xid = c
        .query_value("INSERT INTO marker VALUES (1) RETURNING txid_current()")
        .expect("marker 1");
    let row = c
        .query_rows("SELECT clock_timestamp(), pg_current_wal_lsn()")
        .expect("time and lsn");
    c.psql("SELECT pg_create_restore_point('after_one')")
        .expect("restore point");
    std::thread::sleep(Duration::from_millis(1100));
    c.psql("INSERT INTO marker VALUES (2)").expect("marker 2");
    let last = common::switch_and_archive(&home, &c);

    // The major's own tools read what barkeep wrote.
    // (The downloaded trees' tools find their libraries in ../lib, as the harness runs
    // them.)
    let mut verify = home.cmd(&["verify-backup", "pg", &newest]);
    if let Some(lib) = pg.bin.parent().map(|p| p.join("lib"))
        && lib.join("libpq.so.5").exists()
    {
        verify.env("LD_LIBRARY_PATH", lib);
    }
    let o = verify.output().expect("verify-backup");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("pg_verifybackup"),
        "{what}: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let seg = home.archived_path(&last);
    let plain = common::decompress(&seg);
    let scratch = tempfile::tempdir().expect("tempdir");
    let copy = scratch.path().join(&last);
    std::fs::write(&copy, plain).expect("write segment");
    let mut waldump = c.tool_command("pg_waldump").expect("pg_waldump");
    waldump.arg(&copy);
    barkeep_testkit::run(waldump, "pg_waldump")
        .unwrap_or_else(|e| panic!("{what}: pg_waldump reads the streamed segment {last}: {e}"));

    // Restore to the target; the server starts with marker 1 only.
    let (flag, value) = match case.target {
        "time" => ("--target-time", row[0][0].clone()),
        "xid" => ("--target-xid", xid),
        "lsn" => ("--target-lsn", row[0][1].clone()),
        _ => ("--target-name", "after_one".to_string()),
    };
    let r = common::restore_and_start(
        &home,
        pg,
        &[flag, &value, "--target-action", "promote"],
        &newest,
    );
    let ids = r
        .query_value("SELECT string_agg(id::text, ',' ORDER BY id) FROM marker")
        .expect("markers");
    assert_eq!(ids, "1", "{what}: target {flag} {value}");
    let n = r
        .query_value("SELECT count(*) FROM filler")
        .expect("filler");
    assert_eq!(
        n,
        if case.incremental { "21000" } else { "20000" },
        "{what}"
    );
    common::kill(&mut receiver, nix::sys::signal::Signal::SIGTERM);
    let _ = receiver.wait();
}
