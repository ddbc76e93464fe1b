//! The unattended operations end to end: retention (Barman's policies and GFS) planned
//! by `barkeep retention --dry-run` and applied by `cron` — the same plan —, `keep`, and
//! a backup kept only by GFS that still restores on real PostgreSQL.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use barkeep_testkit::ClusterBuilder;
use chrono::{DateTime, Datelike, Duration as Days, TimeZone, Utc};
use common::{Home, put_backup, put_wal, seg_name, wait_for};
use serde_json::Value;

fn json(home: &Home, args: &[&str]) -> Value {
    let mut full = vec!["-f", "json"];
    full.extend_from_slice(args);
    serde_json::from_str(&home.run(&full)).expect("json")
}

fn remaining_backups(server_dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(server_dir.join("meta"))
        .expect("meta")
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_suffix("-backup.info")
                .map(str::to_string)
        })
        .collect()
}

fn remaining_wal(server_dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for d in std::fs::read_dir(server_dir.join("wals"))
        .expect("wals")
        .flatten()
    {
        if d.path().is_dir() {
            for f in std::fs::read_dir(d.path()).expect("hash dir").flatten() {
                out.insert(f.file_name().to_string_lossy().into_owned());
            }
        } else {
            out.insert(d.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

#[test]
fn cron_applies_exactly_the_plan_retention_dry_run_shows() {
    // No PostgreSQL needed: nothing here connects (the server is unreachable on purpose).
    let home = Home::empty();
    home.configure(
        "host=/nonexistent port=1 user=nobody",
        "streaming_archiver = off\nretention_policy = REDUNDANCY 2\nminimum_redundancy = 1\nretention_gfs = 3 MONTHLY, 2 YEARLY\n",
    );
    let dir = home.server_dir();
    // Backups: the 1st and 15th of each of the last 14 months at 02:00 UTC, then the last
    // four days; each needs two segments, 4 segments apart.
    let now = Utc::now();
    let mut ends: Vec<DateTime<Utc>> = Vec::new();
    for k in (1..=14).rev() {
        let m = now.year() * 12 + now.month0() as i32 - k;
        for day in [1, 15] {
            ends.push(
                Utc.with_ymd_and_hms(m.div_euclid(12), m.rem_euclid(12) as u32 + 1, day, 2, 0, 0)
                    .single()
                    .expect("date"),
            );
        }
    }
    for k in (1..=4).rev() {
        ends.push(now - Days::days(k) - Days::hours(1));
    }
    let ids: Vec<String> = ends
        .iter()
        .enumerate()
        .map(|(i, t)| put_backup(&dir, *t, 10 + 4 * i as u64))
        .collect();
    let total_segments = 10 + 4 * ids.len() as u64 + 3;
    put_wal(&dir, total_segments);

    // One old backup kept standalone, by the CLI, stored as Barman stores it.
    let kept = ids[3].clone();
    home.run(&["keep", "pg", &kept, "--target", "standalone"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("meta").join(format!("{kept}-keep")))
            .expect("keep file")
            .trim(),
        "standalone"
    );
    let status = home.run(&["keep", "pg", &kept, "--status"]);
    assert_eq!(status, "Server pg:\n\tKeep: standalone\n");
    // delete refuses a kept backup, as Barman does.
    let out = home.cmd(&["delete", "pg", &kept]).output().expect("delete");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has a current keep request"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The plan, with a reason for every backup.
    let plan = &json(&home, &["retention", "pg", "--dry-run"])["pg"]["plan"];
    let verdicts = plan["backups"].as_array().expect("backups");
    assert_eq!(verdicts.len(), ids.len());
    assert!(
        verdicts
            .iter()
            .all(|v| !v["reasons"].as_array().expect("reasons").is_empty())
    );
    let keep_ids: BTreeSet<String> = verdicts
        .iter()
        .filter(|v| v["delete"] == false)
        .map(|v| v["backup_id"].as_str().expect("id").to_string())
        .collect();
    let wal_deleted: BTreeSet<String> = plan["wal"]["delete"]
        .as_array()
        .expect("wal")
        .iter()
        .map(|v| v.as_str().expect("name").to_string())
        .collect();
    // What the policy says, computed here independently: the two newest (REDUNDANCY 2),
    // the first backup of this month and the two before it, of this year and last year,
    // and the standalone one.
    let mut want: BTreeSet<String> = ids[ids.len() - 2..].iter().cloned().collect();
    want.insert(kept.clone());
    let first_in = |pred: &dyn Fn(&DateTime<Utc>) -> bool| {
        ends.iter()
            .zip(&ids)
            .find(|(t, _)| pred(t))
            .map(|(_, id)| id.clone())
    };
    for k in 0..3 {
        let m = now.year() * 12 + now.month0() as i32 - k;
        let (y, mo) = (m.div_euclid(12), m.rem_euclid(12) as u32 + 1);
        want.extend(first_in(&|t| t.year() == y && t.month() == mo));
    }
    for k in 0..2 {
        want.extend(first_in(&|t| t.year() == now.year() - k));
    }
    assert_eq!(keep_ids, want, "{plan:#}");
    // A GFS pick shows KEEP:GFS in list-backups; the dry run changed nothing.
    let list = home.run(&["list-backups", "pg"]);
    assert!(list.contains(" - KEEP:GFS"), "{list}");
    assert!(list.contains(" - KEEP:STANDALONE"), "{list}");
    assert!(list.contains(" - OBSOLETE"), "{list}");
    assert_eq!(remaining_backups(&dir).len(), ids.len());
    // show-backup says what the plan says, for every backup.
    for v in verdicts {
        let id = v["backup_id"].as_str().expect("id");
        let show = home.run(&["show-backup", "pg", id]);
        let want = format!(
            "Retention Policy     : {}",
            v["status"].as_str().expect("status")
        );
        assert!(show.contains(&want), "{id}: {want}\n{show}");
    }

    // cron applies exactly that plan.
    let before_wal = remaining_wal(&dir);
    home.run(&["cron"]);
    assert_eq!(remaining_backups(&dir), want);
    let after_wal = remaining_wal(&dir);
    let gone: BTreeSet<String> = before_wal.difference(&after_wal).cloned().collect();
    assert_eq!(gone, wal_deleted);
    assert!(after_wal.contains("00000002.history"));
    // The standalone backup keeps its own two segments; WAL from the oldest VALID backup
    // on is whole.
    let kept_seg = 10 + 4 * 3;
    assert!(after_wal.contains(&seg_name(kept_seg)) && after_wal.contains(&seg_name(kept_seg + 1)));
    assert!(!after_wal.contains(&seg_name(kept_seg + 2)));
    let oldest_valid = 10 + 4 * (ids.len() as u64 - 2);
    assert!((oldest_valid..total_segments).all(|s| after_wal.contains(&seg_name(s))));
    // Deleted backups' data went with them; xlog.db agrees with the directory.
    for id in &ids {
        assert_eq!(
            dir.join("base").join(id).exists(),
            want.contains(id),
            "{id}"
        );
    }
    let xlogdb = std::fs::read_to_string(dir.join("wals").join("pg-xlog.db")).expect("xlog.db");
    let indexed: BTreeSet<String> = xlogdb
        .lines()
        .map(|l| l.split('\t').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        indexed,
        after_wal
            .iter()
            .filter(|n| !n.ends_with(".db"))
            .cloned()
            .collect()
    );
    // Applied twice changes nothing.
    let again = &json(&home, &["retention", "pg", "--dry-run"])["pg"]["plan"];
    assert!(
        again["backups"]
            .as_array()
            .expect("backups")
            .iter()
            .all(|v| v["delete"] == false)
    );
    assert!(again["wal"]["delete"].as_array().expect("wal").is_empty());
    home.run(&["cron"]);
    assert_eq!(remaining_backups(&dir), want);
    // keep --release: then the standalone backup is an ordinary obsolete one.
    home.run(&["keep", "pg", &kept, "--release"]);
    assert_eq!(
        home.run(&["keep", "pg", &kept, "--status"]),
        "Server pg:\n\tKeep: nokeep\n"
    );
}

#[test]
fn cron_goes_on_past_a_broken_server_and_starts_one_receiver() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let c = ClusterBuilder::new(&pg).start().expect("start");
    let home = Home::empty();
    let conninfo = c.socket_conninfo("postgres", "postgres");
    std::fs::write(
        &home.config,
        format!(
            "[barman]\nbarman_home = {}\nlog_level = INFO\n\n[broken]\nconninfo = host=/nonexistent port=1\nbackup_method = postgres\nstreaming_archiver = on\nslot_name = x\n\n[pg]\nconninfo = {conninfo}\nstreaming_conninfo = {conninfo}\nbackup_method = postgres\nstreaming_archiver = on\nslot_name = barkeep\ncreate_slot = auto\n",
            home.home().display()
        ),
    )
    .expect("config");
    let t0 = std::time::Instant::now();
    let out = home.cmd(&["cron"]).output().expect("cron");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Starting streaming archiver for server pg"),
        "{text}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "cron took {:?}",
        t0.elapsed()
    );
    // The receiver of `pg` streams; a second cron starts no second one.
    let seg = c
        .query_value("SELECT pg_walfile_name(pg_current_wal_lsn())")
        .expect("segment");
    c.psql("SELECT pg_switch_wal()").expect("switch");
    wait_for(
        &home,
        "WAL archived by the cron-started receiver",
        Duration::from_secs(60),
        || home.archived().iter().any(|n| *n >= seg),
    );
    let out2 = home.run(&["cron"]);
    assert!(
        !out2.contains("Starting streaming archiver for server pg"),
        "{out2}"
    );
    let holders = std::fs::read_to_string(home.home().join(".pg-receive-wal.lock")).expect("lock");
    let pid: i32 = holders.trim().parse().expect("pid");
    // list-processes shows it; terminate-process stops it, as Barman's do.
    let listed = home.run(&["list-processes", "pg"]);
    assert_eq!(
        listed,
        format!("Active subprocesses for server pg:\n{pid} receive-wal\n")
    );
    let stopped = home.run(&["terminate-process", "pg", "receive-wal"]);
    assert_eq!(stopped, format!("Stopped process receive-wal({pid})\n"));
    wait_for(
        &home,
        "the receiver to stop",
        Duration::from_secs(30),
        || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err(),
    );
}

#[test]
fn a_backup_kept_only_by_gfs_still_restores() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let c = ClusterBuilder::new(&pg).start().expect("start");
    c.psql("CREATE TABLE t (id int)").expect("table");
    let home = Home::new(
        &c,
        "immediate_checkpoint = true\nslot_name = barkeep\ncreate_slot = auto\nretention_policy = REDUNDANCY 1\nretention_gfs = 2 DAILY\n",
    );
    let mut receiver = home.streaming_receiver();
    let mut ids = Vec::new();
    for n in 1..=3 {
        c.psql(&format!(
            "INSERT INTO t SELECT g FROM generate_series(1, {}) g",
            n * 100
        ))
        .expect("rows");
        home.run(&["backup", "--wait", "--wait-timeout", "120", "pg"]);
        let list = home.run(&["list-backups", "--minimal", "pg"]);
        ids.push(list.lines().next().expect("newest").to_string());
    }
    c.psql("INSERT INTO t SELECT 0").expect("after");
    let first = ids[0].clone();
    let plan = &json(&home, &["retention", "pg", "--dry-run"])["pg"]["plan"];
    let v = plan["backups"]
        .as_array()
        .expect("backups")
        .iter()
        .find(|v| v["backup_id"] == first.as_str())
        .expect("first backup in the plan")
        .clone();
    assert_eq!(v["status"], "KEEP:GFS", "{plan:#}");
    home.run(&["cron"]);
    common::kill(&mut receiver, nix::sys::signal::Signal::SIGTERM);
    // The GFS-only backup restores to its own end: 100 rows.
    let r = ClusterBuilder::new(&pg).create().expect("target");
    std::fs::remove_dir_all(r.data_dir()).expect("empty");
    let dest = r.data_dir().to_str().expect("utf-8").to_string();
    // Run as root: `--owner` gives the restored tree to the server's user.
    let owner_name = r.os_user().name().to_string();
    let mut args = vec![
        "restore",
        "--target-immediate",
        "--target-action",
        "promote",
    ];
    if r.os_user().ids().is_some() {
        args.extend(["--owner", owner_name.as_str()]);
    }
    args.extend(["pg", first.as_str(), dest.as_str()]);
    let out = home.run(&args);
    assert!(out.contains("successfully prepared for recovery"), "{out}");
    // ... and the next steps say so instead of asking for a chown.
    if let Some((uid, _)) = r.os_user().ids() {
        let owner =
            |p: &Path| std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(p).expect("stat"));
        assert_eq!(owner(Path::new(&dest)), uid);
        assert_eq!(
            owner(&Path::new(&dest).join("global").join("pg_control")),
            uid
        );
        assert!(
            out.contains(&format!("The files belong to {owner_name}")),
            "{out}"
        );
        assert!(!out.contains("chown -R"), "{out}");
    }
    let mut r = r;
    r.adopt_data_dir("").expect("adopt");
    r.start().expect("start restored");
    r.wait_for_recovery_end(Duration::from_secs(120))
        .expect("recovery");
    assert_eq!(
        r.query_value("SELECT count(*) FROM t").expect("count"),
        "100"
    );
}
