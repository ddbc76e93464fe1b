//! PostgreSQL 17+ incremental backups, on every installed major that has them: a full
//! backup, an incremental of it, an incremental of that, with writes between; each restores
//! natively (the chain combined by barkeep) to exactly its marker rows and passes
//! pg_amcheck; the native combination equals `pg_combinebackup`'s file by file and passes
//! `pg_verifybackup`; the chain is recorded as Barman records it; a broken chain fails the
//! restore before anything is written, naming the backup; deleting the root deletes the
//! chain.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use barkeep_testkit::{ClusterBuilder, PgInstall};
use common::Home;

/// The newest installed PostgreSQL 17+ and a cluster of it with `summarize_wal = on`.
fn summarizing_cluster() -> Option<(PgInstall, barkeep_testkit::Cluster)> {
    let pg = barkeep_testkit::require_installs_from(17)
        .into_iter()
        .last()?;
    let c = ClusterBuilder::new(&pg)
        .setting("summarize_wal", "on")
        .start()
        .expect("start");
    Some((pg, c))
}

fn info_field(home: &Home, id: &str, key: &str) -> String {
    let meta = home
        .server_dir()
        .join("meta")
        .join(format!("{id}-backup.info"));
    let text = std::fs::read_to_string(&meta).expect("backup.info");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_default()
        .to_string()
}

fn backup_id(home: &Home, name: &str) -> String {
    let out = home.run(&["-f", "json", "show-backup", "pg", name]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    v["pg"]["backup_id"]
        .as_str()
        .or_else(|| v["backup_id"].as_str())
        .unwrap_or_else(|| panic!("no backup id in {out}"))
        .to_string()
}

/// Every file below `root` (relative path → content), `pg_tblspc` links followed.
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("ls").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).expect("under").display().to_string();
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

fn chain_member(home: &Home, id: &str) -> barkeep_backup::combine::ChainBackup {
    barkeep_backup::combine::ChainBackup {
        id: id.into(),
        data_dir: home.server_dir().join("base").join(id).join("data"),
        tablespaces: BTreeMap::new(),
    }
}

#[test]
fn full_then_two_incrementals_restore_natively_and_match_pg_combinebackup() {
    for pg in barkeep_testkit::require_installs_from(17) {
        run_chain(&pg);
    }
}

fn run_chain(pg: &PgInstall) {
    eprintln!("PostgreSQL {}", pg.major);
    let c = ClusterBuilder::new(pg)
        .setting("summarize_wal", "on")
        .start()
        .expect("start");
    // The full scenario when measuring (BARKEEP_BENCH=1: docs/benchmarks.md).
    let bench = std::env::var("BARKEEP_BENCH").as_deref() == Ok("1");
    let scale = if bench { 20 } else { 5 };
    c.pgbench_init(scale).expect("pgbench -i");
    c.psql("CREATE TABLE marker (id int PRIMARY KEY)")
        .expect("marker");
    let home = Home::shared(
        &c,
        "immediate_checkpoint = true\nslot_name = barkeep\ncreate_slot = auto\n",
    );
    let mut receiver = home.streaming_receiver();
    let backup = |args: &[&str]| {
        let mut a = vec!["backup", "--wait", "--wait-timeout", "120"];
        a.extend_from_slice(args);
        a.push("pg");
        home.run(&a)
    };
    backup(&["--name", "full"]);
    let light = |id: i32| {
        c.psql(&format!(
            "INSERT INTO marker VALUES ({id}); UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 1000 = {id}"
        ))
        .expect("writes");
    };
    light(1);
    backup(&["--name", "inc1", "--incremental", "latest"]);
    light(2);
    let out = backup(&["--name", "inc2", "--incremental", "inc1"]);
    assert!(!out.is_empty());
    light(3);
    common::switch_and_archive(&home, &c);
    let (f, i1, i2) = (
        backup_id(&home, "full"),
        backup_id(&home, "inc1"),
        backup_id(&home, "inc2"),
    );

    // The chain as Barman records it.
    assert_eq!(info_field(&home, &i1, "parent_backup_id"), f);
    assert_eq!(info_field(&home, &i2, "parent_backup_id"), i1);
    assert_eq!(info_field(&home, &f, "children_backup_ids"), i1);
    assert_eq!(info_field(&home, &i1, "children_backup_ids"), i2);
    assert_eq!(info_field(&home, &f, "parent_backup_id"), "None");
    let list = home.run(&["-f", "json", "list-backups", "pg"]);
    let v: serde_json::Value = serde_json::from_str(&list).expect("json");
    let types: Vec<String> = v["pg"]
        .as_array()
        .expect("list")
        .iter()
        .map(|b| b["backup_type"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        types.iter().filter(|t| *t == "incremental").count(),
        2,
        "{list}"
    );
    // A lightly changed database: the incremental is a small part of the full.
    let size = |id: &str| info_field(&home, id, "size").parse::<u64>().expect("size");
    eprintln!(
        "PostgreSQL {} scale {scale}: full {} MiB, incremental 1 {} KiB, incremental 2 {} KiB",
        pg.major,
        size(&f) >> 20,
        size(&i1) >> 10,
        size(&i2) >> 10
    );
    assert!(
        size(&i1) * 4 < size(&f),
        "incremental {} bytes, full {} bytes",
        size(&i1),
        size(&f)
    );
    for id in [&f, &i1, &i2] {
        home.run(&["verify-backup", "pg", id]);
    }
    let show = home.run(&["show-backup", "pg", &i2]);
    for line in [
        format!("Root Backup          : {f}"),
        format!("Parent Backup        : {i1}"),
        "Backup chain size    : 3".to_string(),
        "Backup Type          : incremental".to_string(),
    ] {
        assert!(show.contains(&line), "{line} in {show}");
    }
    let show = home.run(&["show-backup", "pg", &f]);
    assert!(
        show.contains(&format!("Children Backup(s)   : {i1}")),
        "{show}"
    );

    // Native combination vs pg_combinebackup, file by file.
    let scratch = tempfile::tempdir().expect("tempdir");
    let native = scratch.path().join("native");
    let chain = [
        chain_member(&home, &f),
        chain_member(&home, &i1),
        chain_member(&home, &i2),
    ];
    barkeep_backup::combine::combine(
        &chain,
        &barkeep_backup::combine::CombineTarget {
            data_dir: native.clone(),
            tablespaces: BTreeMap::new(),
            skip: Vec::new(),
            jobs: 2,
            progress: None,
        },
    )
    .expect("native combine");
    let theirs = scratch.path().join("pg_combinebackup");
    let mut cmd = c
        .tool_command("pg_combinebackup")
        .expect("pg_combinebackup");
    cmd.arg("-o").arg(&theirs);
    for m in &chain {
        cmd.arg(&m.data_dir);
    }
    barkeep_testkit::run(cmd, "pg_combinebackup").expect("pg_combinebackup combines the chain");
    let (mut a, mut b) = (tree(&native), tree(&theirs));
    // The manifests differ in their timestamps' provenance and order only; each is
    // checked by pg_verifybackup below.
    a.remove("backup_manifest");
    b.remove("backup_manifest");
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "same files"
    );
    let differ: Vec<&String> = a.keys().filter(|k| a[*k] != b[*k]).collect();
    assert!(
        differ.is_empty(),
        "files that differ from pg_combinebackup's: {differ:?}"
    );
    let rebuilt = chain[2]
        .data_dir
        .join("base")
        .read_dir()
        .expect("ls")
        .flatten()
        .flat_map(|d| d.path().read_dir().into_iter().flatten().flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with("INCREMENTAL."))
        .count();
    assert!(
        rebuilt > 0,
        "the second incremental holds INCREMENTAL files"
    );
    for dir in [&native, &theirs] {
        let mut v = c.tool_command("pg_verifybackup").expect("pg_verifybackup");
        v.arg("-n").arg(dir);
        barkeep_testkit::run(v, "pg_verifybackup").expect("the combined backup verifies");
    }

    // Each backup of the chain restores natively to its own markers.
    for (name, want) in [("full", vec![]), ("inc1", vec![1]), ("inc2", vec![1, 2])] {
        let r = common::restore_and_start(&home, pg, common::AT_BACKUP, name);
        let ids: Vec<i32> = r
            .query_rows("SELECT id FROM marker ORDER BY id")
            .expect("markers")
            .into_iter()
            .filter_map(|row| row.first().and_then(|v| v.parse().ok()))
            .collect();
        assert_eq!(ids, want, "PostgreSQL {}: backup {name}", pg.major);
        let n = r
            .query_value("SELECT count(*) FROM pgbench_accounts")
            .expect("count");
        assert_eq!(n, (i64::from(scale) * 100_000).to_string());
    }

    // A broken chain: the middle backup FAILED. The restore refuses before writing.
    let meta = home
        .server_dir()
        .join("meta")
        .join(format!("{i1}-backup.info"));
    let text = std::fs::read_to_string(&meta).expect("info");
    std::fs::write(&meta, text.replace("status=DONE", "status=FAILED")).expect("fail inc1");
    let dest = scratch.path().join("broken");
    let out = home
        .cmd(&["restore", "pg", &i2, dest.to_str().expect("utf-8")])
        .output()
        .expect("restore");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&i1) && err.contains("FAILED"), "{err}");
    assert!(!dest.exists(), "nothing written for a broken chain");
    std::fs::write(&meta, text).expect("restore inc1's status");

    // Deleting the root deletes its incremental backups (Barman's tree delete).
    let out = home.run(&["delete", "pg", &f]);
    assert!(out.contains(&i2) || !out.is_empty());
    let left = home.run(&["list-backups", "--minimal", "pg"]);
    assert!(left.trim().is_empty(), "the chain is gone: {left}");
    for id in [&f, &i1, &i2] {
        assert!(!home.server_dir().join("base").join(id).exists());
    }
    common::kill(&mut receiver, nix::sys::signal::Signal::SIGTERM);
    let _ = receiver.wait();
}

/// `backup_incremental = latest` with `backup_incremental_max_chain = 1`: the first backup
/// is full (no parent yet), the second incremental, the third full again (the chain is
/// long enough). With `summarize_wal` turned off, `check` fails its `incremental backups`
/// item and the default gives a full backup with a warning, while an explicit
/// `--incremental` is refused with PostgreSQL's reason.
#[test]
fn backup_incremental_default_and_its_check() {
    let Some((_, mut c)) = summarizing_cluster() else {
        return;
    };
    let home = Home::new(
        &c,
        "immediate_checkpoint = true\nslot_name = barkeep\ncreate_slot = auto\nbackup_incremental = latest\nbackup_incremental_max_chain = 1\n",
    );
    let mut receiver = home.streaming_receiver();
    let types = |home: &Home| -> Vec<String> {
        let v: serde_json::Value =
            serde_json::from_str(&home.run(&["-f", "json", "list-backups", "pg"])).expect("json");
        let mut t: Vec<String> = v["pg"]
            .as_array()
            .expect("list")
            .iter()
            .map(|b| b["backup_type"].as_str().unwrap_or_default().to_string())
            .collect();
        t.reverse();
        t
    };
    for _ in 0..3 {
        home.run(&["backup", "--wait", "--wait-timeout", "120", "pg"]);
        std::thread::sleep(Duration::from_millis(1100));
    }
    assert_eq!(types(&home), ["full", "incremental", "full"]);
    let check = home.run(&["check", "pg"]);
    assert!(check.contains("incremental backups: OK"), "{check}");

    c.set("summarize_wal", "off").expect("summarize_wal off");
    c.reload().expect("reload");
    let out = home.cmd(&["check", "pg"]).output().expect("check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("incremental backups: FAILED (summarize_wal is off"),
        "{text}"
    );
    let out = home
        .cmd(&["backup", "--incremental", "latest", "pg"])
        .output()
        .expect("backup");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("summarize_wal"), "{err}");
    // Refused before anything is written (no FAILED backup); the default falls back to
    // a full backup, with a warning.
    assert_eq!(types(&home).len(), 3);
    let out = home
        .cmd(&["backup", "--wait", "--wait-timeout", "120", "pg"])
        .output()
        .expect("backup");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(all.contains("full backup"), "{all}");
    let t = types(&home);
    assert_eq!(t.last().map(String::as_str), Some("full"), "{t:?}");
    common::kill(&mut receiver, nix::sys::signal::Signal::SIGTERM);
    let _ = receiver.wait();
}

/// A chain whose cluster has a tablespace: the restore combines the tablespace's files
/// too, into the relocated location (`--tablespace NAME:LOCATION`).
#[test]
fn a_chain_with_a_tablespace_restores_relocated() {
    let Some((pg, c)) = summarizing_cluster() else {
        return;
    };
    let ts = c.root().join("ts1");
    std::fs::create_dir(&ts).expect("ts dir");
    c.os_user().chown_tree(&ts).expect("chown");
    c.psql(&format!(
        "CREATE TABLESPACE ts1 LOCATION '{}'",
        ts.display()
    ))
    .expect("tablespace");
    c.psql("CREATE TABLE spaced (id int PRIMARY KEY, v text) TABLESPACE ts1")
        .expect("table");
    c.psql("INSERT INTO spaced SELECT g, md5(g::text) FROM generate_series(1, 50000) g")
        .expect("rows");
    let home = Home::new(
        &c,
        "immediate_checkpoint = true\nslot_name = barkeep\ncreate_slot = auto\n",
    );
    let mut receiver = home.streaming_receiver();
    home.run(&["backup", "--wait", "--wait-timeout", "120", "pg"]);
    std::thread::sleep(Duration::from_millis(1100));
    c.psql("UPDATE spaced SET v = 'changed' WHERE id % 100 = 0; INSERT INTO spaced VALUES (50001, 'new')")
        .expect("changes");
    home.run(&[
        "backup",
        "--wait",
        "--wait-timeout",
        "120",
        "--incremental",
        "latest",
        "pg",
    ]);
    common::switch_and_archive(&home, &c);
    let target = tempfile::tempdir().expect("tempdir");
    let reloc = target.path().join("ts1");
    let map = format!("ts1:{}", reloc.display());
    let mut opts = common::AT_BACKUP.to_vec();
    opts.extend_from_slice(&["--tablespace", &map]);
    // The relocated tablespace must be reachable by the server's OS user.
    std::fs::set_permissions(
        target.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let mut r = ClusterBuilder::new(&pg).create().expect("target cluster");
    std::fs::remove_dir_all(r.data_dir()).expect("empty");
    let dest = r.data_dir().to_str().expect("utf-8").to_string();
    let mut args = vec!["restore"];
    args.extend_from_slice(&opts);
    args.extend_from_slice(&["pg", "latest", &dest]);
    home.run(&args);
    r.os_user().chown_tree(&reloc).expect("chown tablespace");
    r.adopt_data_dir("").expect("adopt");
    r.start().expect("restored cluster starts");
    r.wait_for_recovery_end(Duration::from_secs(120))
        .expect("recovery ends");
    assert_eq!(
        r.query_value("SELECT count(*), count(*) FILTER (WHERE v = 'changed') FROM spaced")
            .expect("rows"),
        "50001|500"
    );
    common::amcheck(&r);
    common::kill(&mut receiver, nix::sys::signal::Signal::SIGTERM);
    let _ = receiver.wait();
}

/// Retention removes an obsolete chain whole: its incremental backups (leaves first) and
/// a FAILED incremental child retention does not rank — no backup is left with a missing
/// parent, and the parent lists are kept right.
#[test]
fn retention_removes_an_obsolete_chain_whole() {
    let Some((_, c)) = summarizing_cluster() else {
        return;
    };
    let home = Home::new(
        &c,
        "immediate_checkpoint = true\nslot_name = barkeep\ncreate_slot = auto\nretention_policy = REDUNDANCY 1\n",
    );
    let mut receiver = home.streaming_receiver();
    let wait = ["backup", "--wait", "--wait-timeout", "120"];
    let run = |extra: &[&str]| {
        let mut a = wait.to_vec();
        a.extend_from_slice(extra);
        a.push("pg");
        home.run(&a);
        std::thread::sleep(Duration::from_millis(1100));
    };
    run(&[]);
    run(&["--incremental", "latest"]);
    let (f, i) = (backup_id(&home, "oldest"), backup_id(&home, "latest"));
    // A FAILED incremental child of the root, as a killed backup leaves one.
    let meta = home.server_dir().join("meta");
    let failed_id = "20000101T000000";
    let text = std::fs::read_to_string(meta.join(format!("{i}-backup.info"))).expect("info");
    let text = text
        .replace("status=DONE", "status=FAILED")
        .replace(&format!("backup_id={i}"), &format!("backup_id={failed_id}"));
    std::fs::write(meta.join(format!("{failed_id}-backup.info")), text).expect("write");
    let root = meta.join(format!("{f}-backup.info"));
    let rt = std::fs::read_to_string(&root).expect("root info");
    std::fs::write(
        &root,
        rt.replace(
            &format!("children_backup_ids={i}"),
            &format!("children_backup_ids={i},{failed_id}"),
        ),
    )
    .expect("write root");
    run(&["--full"]);
    let newest = backup_id(&home, "latest");
    let out = home.run(&["retention", "pg"]);
    assert!(!out.is_empty());
    let left = home.run(&["list-backups", "--minimal", "pg"]);
    assert_eq!(
        left.trim(),
        newest,
        "only the new full backup is left: {left}"
    );
    for id in [&f, &i] {
        assert!(
            !meta.join(format!("{id}-backup.info")).exists(),
            "{id} removed"
        );
    }
    assert!(
        !meta.join(format!("{failed_id}-backup.info")).exists(),
        "the FAILED child removed"
    );
    common::kill(&mut receiver, nix::sys::signal::Signal::SIGTERM);
    let _ = receiver.wait();
}
