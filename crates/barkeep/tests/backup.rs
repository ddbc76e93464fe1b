//! `barkeep backup` end to end against real PostgreSQL: plain backups with a tablespace and
//! data checksums verified by pg_verifybackup (WAL from barkeep's archive) and by
//! verify-backup; damage detected; deduplication; tar formats; configuration files
//! outside PGDATA; a killed backup; the catalog commands' output.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use barkeep_testkit::{Cluster, ClusterBuilder};
use common::{Home, kill, wait_for};

fn cluster(pg: &barkeep_testkit::PgInstall) -> Cluster {
    let c = ClusterBuilder::new(pg)
        .data_checksums(true)
        .start()
        .expect("start");
    let ts = c.root().join("ts1");
    std::fs::create_dir(&ts).expect("tablespace dir");
    c.os_user().chown_tree(&ts).expect("chown");
    c.psql(&format!(
        "CREATE TABLESPACE ts1 LOCATION '{}'",
        ts.display()
    ))
    .expect("tablespace");
    c.psql(
        "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 200000) g",
    )
    .expect("big");
    c.psql("CREATE TABLE small TABLESPACE ts1 AS SELECT g AS id FROM generate_series(1, 10000) g")
        .expect("small");
    // Settle hint bits and visibility maps, so that "no change" means no change on disk.
    c.psql("VACUUM FREEZE").expect("vacuum");
    c.psql("CHECKPOINT").expect("checkpoint");
    c
}

fn backup_ids(home: &Home) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(home.server_dir().join("meta"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .strip_suffix("-backup.info")
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn info(home: &Home, id: &str) -> String {
    std::fs::read_to_string(
        home.server_dir()
            .join("meta")
            .join(format!("{id}-backup.info")),
    )
    .expect("backup.info")
}

fn field(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or("")
        .to_string()
}

#[test]
fn plain_backups_verify_deduplicate_and_detect_damage() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let c = cluster(&pg);
    let home = Home::new(
        &c,
        "immediate_checkpoint = true\nslot_name = barkeep\ncreate_slot = auto\n",
    );
    let mut receiver = home.streaming_receiver();

    let out = home.run(&[
        "backup",
        "--wait",
        "--wait-timeout",
        "120",
        "--name",
        "first",
        "pg",
    ]);
    assert!(out.contains("is DONE"), "{out}");
    let ids = backup_ids(&home);
    assert_eq!(ids.len(), 1);
    let first = ids[0].clone();
    let text = info(&home, &first);
    for key in [
        "begin_wal",
        "end_wal",
        "begin_xlog",
        "end_xlog",
        "systemid",
        "timeline",
        "version",
        "xlog_segment_size",
        "pgdata",
        "size",
        "deduplicated_size",
        "backup_label",
    ] {
        assert!(
            !field(&text, key).is_empty() && field(&text, key) != "None",
            "{key} missing:\n{text}"
        );
    }
    assert_eq!(field(&text, "status"), "DONE");
    assert_eq!(field(&text, "mode"), "postgres");
    assert_eq!(field(&text, "data_checksums"), "on");
    assert!(
        field(&text, "tablespaces").starts_with("[('ts1', "),
        "{text}"
    );
    assert_eq!(field(&text, "backup_name"), "first");

    // barkeep's verifier and pg_verifybackup (with WAL from the archive) both pass.
    let v = home.run(&["verify-backup", "pg", "first"]);
    assert!(v.contains("every file matches backup_manifest"), "{v}");
    assert!(
        v.contains("successfully verified"),
        "pg_verifybackup did not run: {v}"
    );

    // A second backup with no changes costs almost nothing on disk.
    home.run(&["backup", "--wait", "--wait-timeout", "120", "pg"]);
    let second = backup_ids(&home)[1].clone();
    let t2 = info(&home, &second);
    let (size2, dedup2): (u64, u64) = (
        field(&t2, "size").parse().expect("size"),
        field(&t2, "deduplicated_size").parse().expect("dedup"),
    );
    let size1: u64 = field(&text, "size").parse().expect("size");
    assert!(
        dedup2 * 20 < size1,
        "second backup costs {dedup2} of {size1} bytes"
    );
    assert!(size2 >= size1 / 2);
    home.run(&["verify-backup", "pg", &second]);

    // After changing one table, only its files are new.
    let relpath = c
        .query_value("SELECT pg_relation_filepath('small')")
        .expect("relpath");
    c.psql("UPDATE small SET id = id + 1").expect("update");
    c.psql("CHECKPOINT").expect("checkpoint");
    home.run(&["backup", "--wait", "--wait-timeout", "120", "pg"]);
    let third = backup_ids(&home)[2].clone();
    let relnode = relpath.rsplit('/').next().expect("relfilenode").to_string();
    let data3 = home.server_dir().join("base").join(&third);
    let mut new_files = Vec::new();
    let mut stack = vec![data3.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("ls").flatten() {
            let m = e.path().symlink_metadata().expect("stat");
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file()
                && std::os::unix::fs::MetadataExt::nlink(&m) == 1
                && m.len() > 8192
            {
                new_files.push(
                    e.path()
                        .strip_prefix(&data3)
                        .expect("prefix")
                        .display()
                        .to_string(),
                );
            }
        }
    }
    // The rewritten table, plus catalog and WAL-related bookkeeping files that always
    // change (pg_control, the visibility map…) — but not the big untouched table.
    let big = c
        .query_value("SELECT pg_relation_filepath('big')")
        .expect("big path");
    assert!(
        !new_files.iter().any(|f| f.ends_with(&big)),
        "{new_files:?}"
    );
    let small_new = c
        .query_value("SELECT pg_relation_filenode('small')")
        .expect("small node");
    assert!(
        new_files
            .iter()
            .any(|f| f.contains(&small_new) || f.contains(&relnode)),
        "{new_files:?}"
    );

    // One flipped byte: both verifiers fail and name the file.
    let victim = home
        .server_dir()
        .join("base")
        .join(&first)
        .join("data")
        .join(&big);
    let meta = std::fs::symlink_metadata(&victim).expect("victim");
    assert!(meta.is_file());
    // The file may be shared with later backups by a hard link: damage a private copy.
    let mut bytes = std::fs::read(&victim).expect("read");
    bytes[100] ^= 0x01;
    std::fs::remove_file(&victim).expect("unlink");
    std::fs::write(&victim, &bytes).expect("write damaged");
    let out = home
        .cmd(&["verify-backup", "pg", "first"])
        .output()
        .expect("verify");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&big) && err.contains("checksum mismatch"),
        "{err}"
    );
    let tool = pg.tool("pg_verifybackup").expect("pg_verifybackup");
    let o = std::process::Command::new(tool)
        .arg("-n")
        .arg(home.server_dir().join("base").join(&first).join("data"))
        .output()
        .expect("pg_verifybackup");
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&big),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // Catalog output: Barman's keys.
    let json: serde_json::Value =
        serde_json::from_str(&home.run(&["-f", "json", "list-backups", "pg"])).expect("json");
    let row = &json["pg"][0];
    for key in [
        "backup_id",
        "backup_type",
        "end_time",
        "end_time_timestamp",
        "size",
        "size_bytes",
        "wal_size",
        "wal_size_bytes",
        "status",
        "retention_status",
    ] {
        assert!(
            row.get(key).is_some(),
            "list-backups JSON lacks {key}: {row}"
        );
    }
    assert_eq!(json["pg"].as_array().expect("rows").len(), 3);
    let console = home.run(&["list-backups", "pg"]);
    assert!(
        console.contains(&format!("pg {first} 'first' - F - ")),
        "{console}"
    );
    assert!(
        console.contains(" - Size: ") && console.contains(" - WAL Size: "),
        "{console}"
    );
    let show: serde_json::Value =
        serde_json::from_str(&home.run(&["-f", "json", "show-backup", "pg", "latest"]))
            .expect("json");
    for key in [
        "backup_id",
        "status",
        "system_id",
        "base_backup_information",
        "wal_information",
        "catalog_information",
    ] {
        assert!(
            show["pg"].get(key).is_some(),
            "show-backup JSON lacks {key}"
        );
    }
    assert_eq!(show["pg"]["backup_id"], third.as_str());
    let console = home.run(&["show-backup", "pg", "first"]);
    assert!(
        console.contains("Backup Method        : postgres"),
        "{console}"
    );
    assert!(
        console.contains("Resources saved") || console.contains("Backup Size"),
        "{console}"
    );
    let files = home.run(&["list-files", "--target", "standalone", "pg", "first"]);
    assert!(
        files.contains("backup_manifest") && files.contains("/wals/"),
        "{files}"
    );

    // delete keeps the WAL later backups need.
    home.run(&["delete", "pg", "first"]);
    assert_eq!(backup_ids(&home).len(), 2);
    home.run(&["check-backup", "pg", "oldest"]);
    kill(&mut receiver, nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn tar_backups_client_and_server_side_verify() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let c = cluster(&pg);
    for (codec, location, format) in [
        ("zstd", "client", "tar"),
        ("zstd", "server", "tar"),
        ("lz4", "client", "tar"),
        ("lz4", "server", "tar"),
        ("gzip", "client", "tar"),
        ("gzip", "server", "tar"),
        ("zstd", "server", "plain"),
    ] {
        let home = Home::new(
            &c,
            &format!(
                "immediate_checkpoint = true\narchiver = on\nbackup_compression = {codec}\nbackup_compression_location = {location}\nbackup_compression_format = {format}\nslot_name = bk_{codec}\ncreate_slot = auto\n"
            ),
        );
        let mut receiver = home.streaming_receiver();
        let out = home.run(&["backup", "--wait", "--wait-timeout", "120", "pg"]);
        assert!(out.contains("is DONE"), "{codec}/{location}: {out}");
        let id = backup_ids(&home)[0].clone();
        let data: PathBuf = home.server_dir().join("base").join(&id).join("data");
        let ext = match codec {
            "zstd" => "zst",
            "lz4" => "lz4",
            _ => "gz",
        };
        if format == "tar" {
            assert!(
                data.join(format!("base.tar.{ext}")).is_file(),
                "{codec}/{location}: {:?}",
                std::fs::read_dir(&data)
                    .map(|r| r.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
            );
            assert_eq!(field(&info(&home, &id), "compression"), codec);
        } else {
            // Compressed on the wire, stored plain.
            assert!(data.join("global/pg_control").is_file());
        }
        let v = home.run(&["verify-backup", "pg", &id]);
        assert!(
            v.contains("every file matches backup_manifest"),
            "{codec}: {v}"
        );
        assert!(v.contains("successfully verified"), "{codec}: {v}");
        kill(&mut receiver, nix::sys::signal::Signal::SIGTERM);
        let _ = c.psql(&format!("SELECT pg_drop_replication_slot('bk_{codec}')"));
    }
}

#[test]
fn config_files_outside_pgdata_are_backed_up() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    // Debian keeps pg_hba.conf and friends in /etc/postgresql/…: here, a directory beside
    // the data directory, with an included file too.
    let mut c = ClusterBuilder::new(&pg).create().expect("create");
    let etc = c.root().join("etc");
    std::fs::create_dir(&etc).expect("etc");
    std::fs::copy(c.data_dir().join("pg_hba.conf"), etc.join("pg_hba.conf")).expect("hba");
    std::fs::copy(
        c.data_dir().join("pg_ident.conf"),
        etc.join("pg_ident.conf"),
    )
    .expect("ident");
    std::fs::write(etc.join("extra.conf"), "work_mem = '8MB'\n").expect("extra");
    c.os_user().chown_tree(&etc).expect("chown");
    let mut conf = std::fs::OpenOptions::new()
        .append(true)
        .open(c.data_dir().join("postgresql.conf"))
        .expect("conf");
    std::io::Write::write_all(
        &mut conf,
        format!(
            "hba_file = '{0}/pg_hba.conf'\nident_file = '{0}/pg_ident.conf'\ninclude '{0}/extra.conf'\n",
            etc.display()
        )
        .as_bytes(),
    )
    .expect("append");
    drop(conf);
    c.start().expect("start");
    let home = Home::new(
        &c,
        "immediate_checkpoint = true\narchiver = on\nslot_name = bk\ncreate_slot = auto\n",
    );
    let mut receiver = home.streaming_receiver();
    home.run(&["backup", "--wait", "--wait-timeout", "120", "pg"]);
    let id = backup_ids(&home)[0].clone();
    let text = info(&home, &id);
    assert_eq!(
        field(&text, "hba_file"),
        format!("{}/pg_hba.conf", etc.display())
    );
    assert!(
        field(&text, "included_files").contains("extra.conf"),
        "{text}"
    );
    let kept = home
        .server_dir()
        .join("base")
        .join(&id)
        .join("external_config");
    for f in ["pg_hba.conf", "pg_ident.conf", "extra.conf"] {
        let copy = kept.join(etc.strip_prefix("/").expect("abs")).join(f);
        assert_eq!(
            std::fs::read(&copy).unwrap_or_else(|e| panic!("{}: {e}", copy.display())),
            std::fs::read(etc.join(f)).expect("original"),
            "{f}"
        );
    }
    // The data directory itself still verifies (nothing extra inside it).
    home.run(&["verify-backup", "pg", &id]);
    kill(&mut receiver, nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn a_killed_backup_is_marked_failed_and_cleaned() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let c = cluster(&pg);
    let home = Home::new(&c, "");
    // Slow enough to be killed mid-copy.
    let mut child = home
        .cmd(&["backup", "--bwlimit", "100", "pg"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("backup");
    wait_for(&home, "the copy to start", Duration::from_secs(60), || {
        backup_ids(&home)
            .first()
            .is_some_and(|id| field(&info(&home, id), "status") == "STARTED")
            && std::fs::read_dir(home.server_dir().join("base"))
                .map(|rd| rd.flatten().count() > 0)
                .unwrap_or(false)
    });
    std::thread::sleep(Duration::from_secs(1));
    kill(&mut child, nix::sys::signal::Signal::SIGKILL);
    let id = backup_ids(&home)[0].clone();
    assert_eq!(field(&info(&home, &id), "status"), "STARTED");
    let out = home.run(&["list-backups", "pg"]);
    assert!(out.contains(&format!("pg {id} - F - FAILED")), "{out}");
    let text = info(&home, &id);
    assert!(field(&text, "error").contains("interrupted"), "{text}");
    assert!(
        !home.server_dir().join("base").join(&id).exists(),
        "partial files left"
    );
}

#[test]
fn a_custom_basebackups_directory_holds_and_lists_the_backups() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let c = ClusterBuilder::new(&pg).start().expect("start");
    c.psql("CREATE TABLE t AS SELECT generate_series(1, 1000) AS i")
        .expect("table");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let base = elsewhere.path().join("pg-base");
    let home = Home::new(
        &c,
        &format!(
            "immediate_checkpoint = true\narchiver = on\nbasebackups_directory = {}\nslot_name = bk\ncreate_slot = auto\n",
            base.display()
        ),
    );
    let mut receiver = home.streaming_receiver();
    let out = home.run(&["backup", "--wait", "--wait-timeout", "120", "pg"]);
    assert!(out.contains("is DONE"), "{out}");
    kill(&mut receiver, nix::sys::signal::Signal::SIGTERM);
    let id = backup_ids(&home)[0].clone();
    // The data is where the configuration says; the metadata stays in meta/.
    assert!(base.join(&id).join("data").join("PG_VERSION").is_file());
    assert!(!home.server_dir().join("base").join(&id).exists());
    let list = home.run(&["list-backups", "pg"]);
    assert!(list.contains(&format!("pg {id} - F - ")), "{list}");
    let shown = home.run(&["show-backup", "pg", &id]);
    assert!(shown.contains("Status                 : DONE"), "{shown}");
    let files = home.run(&["list-files", "--target", "data", "pg", &id]);
    assert!(
        files
            .lines()
            .all(|l| l.starts_with(&base.join(&id).display().to_string())),
        "{files}"
    );
    let verified = home.run(&["verify-backup", "pg", &id]);
    assert!(
        verified.contains("every file matches backup_manifest"),
        "{verified}"
    );
    home.run(&["delete", "pg", &id]);
    assert!(!base.join(&id).exists());
    assert!(home.run(&["list-backups", "pg"]).trim().is_empty());
}

#[test]
fn refused_settings_stop_the_server_naming_file_line_and_key() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let c = ClusterBuilder::new(&pg).start().expect("start");
    for (extra, key, supported) in [
        (
            "encryption = gpg\n",
            "`encryption = gpg`",
            "barkeep does not encrypt yet",
        ),
        (
            "backup_method = rsync\n",
            "`backup_method = rsync`",
            "(`backup_method = postgres`)",
        ),
    ] {
        let home = Home::new(&c, extra);
        let o = home.cmd(&["backup", "pg"]).output().expect("run");
        assert_eq!(
            o.status.code(),
            Some(1),
            "{extra}: backup of a refused server"
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("error: server `pg` is disabled ("),
            "{extra}: {err}"
        );
        let text = std::fs::read_to_string(&home.config).expect("config");
        let line = text
            .lines()
            .collect::<Vec<_>>()
            .iter()
            .rposition(|l| *l == extra.trim_end())
            .expect("line")
            + 1;
        let at = format!("{}:{line}: {key}", home.config.display());
        assert!(err.contains(&at), "{extra}: {err}");
        assert!(err.contains(supported), "{extra}: {err}");
        let o = home.cmd(&["receive-wal", "pg"]).output().expect("run");
        assert!(!o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains(&at));
    }
}
