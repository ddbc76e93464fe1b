//! A Barman user switches: real Barman 3.19 builds a catalog (streamed WAL, two base
//! backups, a keep annotation, a rejected file in `errors/`, `identity.json` with its
//! string version, xlog.db, lock files, a timeline switch with its `.history` and the old
//! timeline's `.partial` in `wals/`, pg_receivewal's `.partial` in `streaming/`), then
//! barkeep, pointed
//! at the same configuration file, lists, checks, verifies, streams, backs up and
//! restores on it — and Barman reads back what barkeep wrote.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use barkeep_testkit::ClusterBuilder;
use common::{BIN, kill};

thread_local! {
    static LOG: std::cell::RefCell<PathBuf> = const { std::cell::RefCell::new(PathBuf::new()) };
}

struct Shared {
    dir: tempfile::TempDir,
    config: PathBuf,
    barman: PathBuf,
}

impl Shared {
    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }
    fn barman(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.barman);
        c.arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null());
        c
    }
    fn barkeep(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null());
        c
    }
}

fn ok(mut c: Command, what: &str) -> String {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let log = LOG.with(|l| l.borrow().clone());
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}\nBarman's log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(log).unwrap_or_default()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

fn barman_ids(sh: &Shared) -> Vec<(String, String)> {
    let v = json(&ok(
        sh.barman(&["-f", "json", "list-backups", "pg"]),
        "barman list-backups",
    ));
    v["pg"]
        .as_array()
        .expect("array")
        .iter()
        .map(|b| {
            (
                b["backup_id"].as_str().unwrap_or_default().to_string(),
                b["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn barkeep_works_on_a_catalog_written_by_barman_and_barman_reads_barkeeps() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let Some(barman) = barkeep_testkit::require_barman() else {
        return;
    };
    let mut c = ClusterBuilder::new(&pg).start().expect("start");
    c.psql("CREATE TABLE marker (id int PRIMARY KEY)")
        .expect("table");
    c.psql("INSERT INTO marker VALUES (1)").expect("row");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let config = dir.path().join("barman.conf");
    let bin = pg.tool("pg_basebackup").expect("pg_basebackup");
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .expect("user")
        .expect("user")
        .name;
    let conninfo = c.socket_conninfo("postgres", "postgres");
    let sh = Shared {
        config: config.clone(),
        barman,
        dir,
    };
    std::fs::write(
        &config,
        format!(
            "[barman]\nbarman_home = {home}\nbarman_user = {me}\nlog_file = {log}\nlog_level = INFO\n\n\
             [pg]\ndescription = shared\nconninfo = {conninfo}\nstreaming_conninfo = {conninfo}\n\
             backup_method = postgres\nstreaming_archiver = on\nslot_name = barman\ncreate_slot = auto\n\
             path_prefix = {bin}\nminimum_redundancy = 0\n",
            home = sh.home().display(),
            log = sh.dir.path().join("barman.log").display(),
            bin = bin.parent().expect("bin dir").display(),
        ),
    )
    .expect("config");

    LOG.with(|l| *l.borrow_mut() = sh.dir.path().join("barman.log"));
    // barman_home exists, as Barman's packages create it.
    std::fs::create_dir(sh.home()).expect("barman_home");
    // --- Barman builds its catalog: receive-wal (pg_receivewal), archive-wal, backups.
    ok(
        sh.barman(&["receive-wal", "--create-slot", "pg"]),
        "barman receive-wal --create-slot",
    );
    let mut receiver: Child = sh
        .barman(&["receive-wal", "pg"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("barman receive-wal");
    // barman cron's archiving, every second, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let archiver = {
        let stop = stop.clone();
        let cmd = (sh.barman.clone(), config.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = Command::new(&cmd.0)
                    .arg("-c")
                    .arg(&cmd.1)
                    .args(["archive-wal", "pg"])
                    .stdin(Stdio::null())
                    .output();
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sh
        .home()
        .join("pg/streaming")
        .read_dir()
        .is_ok_and(|mut d| d.next().is_some())
    {
        assert!(
            Instant::now() < deadline,
            "barman receive-wal did not start:\n{}",
            std::fs::read_to_string(sh.dir.path().join("barman.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Barman's first backup needs a WAL file archived (its 'WAL archive' check).
    ok(
        sh.barman(&[
            "switch-wal",
            "--force",
            "--archive",
            "--archive-timeout",
            "60",
            "pg",
        ]),
        "barman switch-wal --archive",
    );
    ok(
        sh.barman(&["backup", "--wait", "--wait-timeout", "120", "pg"]),
        "barman backup 1",
    );
    c.psql("INSERT INTO marker VALUES (2)").expect("row");
    // Backup ids are timestamps to the second.
    std::thread::sleep(Duration::from_millis(1100));
    ok(
        sh.barman(&["backup", "--wait", "--wait-timeout", "120", "pg"]),
        "barman backup 2",
    );
    let ids = barman_ids(&sh);
    assert_eq!(ids.len(), 2, "{ids:?}");
    let (first, second) = (ids[1].0.clone(), ids[0].0.clone());
    ok(
        sh.barman(&["keep", "pg", &first, "--target", "full"]),
        "barman keep",
    );
    // A file archive-wal rejects goes to errors/.
    std::fs::write(sh.home().join("pg/streaming/notes.txt"), b"not wal").expect("junk");
    c.psql("INSERT INTO marker VALUES (3)").expect("row");
    c.psql("SELECT pg_switch_wal()").expect("switch");
    let deadline = Instant::now() + Duration::from_secs(60);
    while sh.home().join("pg/streaming/notes.txt").exists() {
        assert!(Instant::now() < deadline, "barman archive-wal did not run");
        std::thread::sleep(Duration::from_millis(200));
    }
    // A timeline switch under Barman: the server restarts in recovery and is promoted;
    // Barman's pg_receivewal follows it, leaving timeline 1's last segment `.partial`
    // and fetching `00000002.history`, which Barman archives into wals/.
    let slot_released = |c: &barkeep_testkit::Cluster| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while c
            .query_value("SELECT active FROM pg_replication_slots WHERE slot_name = 'barman'")
            .is_ok_and(|a| a == "t")
        {
            assert!(
                Instant::now() < deadline,
                "Barman's pg_receivewal still streams"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    kill(&mut receiver, nix::sys::signal::Signal::SIGTERM);
    c.stop(barkeep_testkit::StopMode::Fast).expect("stop");
    std::fs::write(c.data_dir().join("standby.signal"), b"").expect("standby.signal");
    c.start().expect("start in recovery");
    c.promote().expect("promote");
    slot_released(&c);
    receiver = sh
        .barman(&["receive-wal", "pg"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("barman receive-wal again");
    c.psql("INSERT INTO marker VALUES (30)")
        .expect("row on timeline 2");
    c.psql("SELECT pg_switch_wal()").expect("switch");
    let wals = sh.home().join("pg/wals");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let partial = std::fs::read_dir(wals.join("0000000100000000"))
            .map(|rd| {
                rd.flatten()
                    .any(|e| e.file_name().to_string_lossy().ends_with(".partial"))
            })
            .unwrap_or(false);
        let tli2 = std::fs::read_dir(wals.join("0000000200000000"))
            .map(|rd| rd.flatten().count() > 0)
            .unwrap_or(false);
        if partial && tli2 && wals.join("00000002.history").exists() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Barman did not archive the timeline switch (partial {partial}, timeline 2 {tli2})"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, Ordering::Relaxed);
    archiver.join().expect("archiver thread");
    kill(&mut receiver, nix::sys::signal::Signal::SIGTERM);
    slot_released(&c);

    // What Barman wrote, as it wrote it.
    let identity = std::fs::read_to_string(sh.home().join("pg/identity.json")).expect("identity");
    assert!(
        identity.contains(&format!("\"version\": \"{}\"", pg.major)),
        "{identity}"
    );
    assert!(sh.home().join(format!("pg/meta/{first}-keep")).exists());
    assert!(
        sh.home()
            .join(format!("pg/meta/{first}-backup.info"))
            .exists()
    );
    assert!(sh.home().join("pg/wals/pg-xlog.db").exists());
    let errors: Vec<String> = std::fs::read_dir(sh.home().join("pg/errors"))
        .expect("errors")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("notes.txt.") && e.ends_with(".unknown")),
        "{errors:?}"
    );

    // --- barkeep on Barman's catalog.
    let list = json(&ok(
        sh.barkeep(&["-f", "json", "list-backups", "pg"]),
        "barkeep list-backups",
    ));
    let listed = list.to_string();
    assert!(
        listed.contains(&first) && listed.contains(&second),
        "{listed}"
    );
    for id in [&first, &second] {
        let show = json(&ok(
            sh.barkeep(&["-f", "json", "show-backup", "pg", id]),
            "barkeep show-backup",
        ));
        assert_eq!(show["pg"]["status"], "DONE", "{show}");
        ok(
            sh.barkeep(&["check-backup", "pg", id]),
            "barkeep check-backup",
        );
        ok(
            sh.barkeep(&["verify-backup", "pg", id]),
            "barkeep verify-backup",
        );
    }
    // The keep request Barman wrote is honoured.
    let out = sh
        .barkeep(&["delete", "pg", &first])
        .output()
        .expect("delete");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("keep request"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        sh.home()
            .join(format!("pg/meta/{first}-backup.info"))
            .exists()
    );
    // Barman's keep annotation, read by `keep --status` and honoured by retention; the
    // crontab line only changes its program name.
    assert_eq!(
        ok(
            sh.barkeep(&["keep", "pg", &first, "--status"]),
            "barkeep keep --status"
        ),
        "Server pg:\n\tKeep: full\n"
    );
    let mut cfg = std::fs::read_to_string(&config).expect("config");
    cfg.push_str("retention_policy = REDUNDANCY 1\n");
    std::fs::write(&config, &cfg).expect("config");
    let plan = json(&ok(
        sh.barkeep(&["-f", "json", "retention", "pg", "--dry-run"]),
        "barkeep retention --dry-run",
    ));
    let statuses: Vec<(String, String)> = plan["pg"]["plan"]["backups"]
        .as_array()
        .expect("backups")
        .iter()
        .map(|v| {
            (
                v["backup_id"].as_str().unwrap_or_default().to_string(),
                v["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (first.clone(), "KEEP:FULL".to_string()),
            (second.clone(), "VALID".to_string())
        ],
        "{plan:#}"
    );
    // Streaming resumes from pg_receivewal's files; backup with Barman's identity.json
    // (the defect: `invalid type: string "15", expected u32`); archive-wal appends to
    // Barman's xlog.db.
    let mut ours = sh
        .barkeep(&["receive-wal", "pg"])
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(sh.dir.path().join("barkeep-receiver.log")).expect("log"),
        ))
        .spawn()
        .expect("barkeep receive-wal");
    c.psql("INSERT INTO marker VALUES (4)").expect("row");
    std::thread::sleep(Duration::from_millis(1100));
    let out = ok(
        sh.barkeep(&["backup", "--wait", "--wait-timeout", "120", "pg"]),
        "barkeep backup",
    );
    assert!(out.contains("is DONE"), "{out}");
    c.psql("INSERT INTO marker VALUES (5)").expect("row");
    let last = c
        .query_value("SELECT pg_walfile_name(pg_switch_wal())")
        .expect("switch");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let db = std::fs::read_to_string(sh.home().join("pg/wals/pg-xlog.db")).unwrap_or_default();
        if db.contains(&format!("{last}\t")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "barkeep did not archive {last}:\n{}",
            std::fs::read_to_string(sh.dir.path().join("barkeep-receiver.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Monitoring: barkeep's check on Barman's catalog, with barkeep streaming: every item
    // OK but the file Barman moved to errors/, reported as Barman reports it.
    let out = sh.barkeep(&["check", "pg"]).output().expect("check");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let failed: Vec<&str> = text.lines().filter(|l| l.contains(": FAILED")).collect();
    assert_eq!(failed, ["\tarchiver errors: FAILED (unknown: 1)"], "{text}");
    assert!(!out.status.success());
    // cron: one pass; barkeep's receiver is running, so no second one is started; with
    // REDUNDANCY 2 and Barman's keep:full every backup stays.
    cfg = cfg.replace(
        "retention_policy = REDUNDANCY 1\n",
        "retention_policy = REDUNDANCY 2\n",
    );
    std::fs::write(&config, &cfg).expect("config");
    let cron = ok(sh.barkeep(&["cron"]), "barkeep cron");
    assert!(!cron.contains("Starting streaming archiver"), "{cron}");
    assert_eq!(barman_ids(&sh).len(), 3);
    cfg = cfg.replace("retention_policy = REDUNDANCY 2\n", "");
    std::fs::write(&config, &cfg).expect("config");
    kill(&mut ours, nix::sys::signal::Signal::SIGTERM);

    // --- Barman reads what barkeep wrote: three backups, all DONE; its own checks pass.
    let ids = barman_ids(&sh);
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(ids.iter().all(|(_, st)| st == "DONE"), "{ids:?}");
    let newest = ids[0].0.clone();
    let show = json(&ok(
        sh.barman(&["-f", "json", "show-backup", "pg", &newest]),
        "barman show-backup",
    ));
    assert_eq!(show["pg"]["status"], "DONE", "{show}");
    ok(
        sh.barman(&["check-backup", "pg", &newest]),
        "barman check-backup",
    );
    ok(
        sh.barman(&["rebuild-xlogdb", "pg"]),
        "barman rebuild-xlogdb",
    );

    // --- And barkeep restores Barman's backup, the WAL of both, to the latest point.
    let target = ClusterBuilder::new(&pg).create().expect("target");
    let dest: &Path = target.data_dir();
    std::fs::remove_dir_all(dest).expect("empty target");
    let out = ok(
        sh.barkeep(&["restore", "pg", &second, dest.to_str().expect("utf-8")]),
        "barkeep restore of Barman's backup",
    );
    assert!(out.contains("successfully prepared for recovery"), "{out}");
    let mut target = target;
    target.adopt_data_dir("").expect("adopt");
    target.start().expect("start restored");
    target
        .wait_for_recovery_end(Duration::from_secs(120))
        .expect("recovery ends");
    assert_eq!(
        target
            .query_value("SELECT string_agg(id::text, ',' ORDER BY id) FROM marker")
            .expect("rows"),
        "1,2,3,4,5,30"
    );
    let _ = c.stop(barkeep_testkit::StopMode::Fast);
}

/// PostgreSQL 17+ incremental chains cross over: Barman 3.19 takes a full backup and an
/// incremental one; barkeep restores Barman's incremental natively, then takes two
/// incremental backups on top of Barman's chain; Barman lists the four as one chain and
/// restores barkeep's newest with pg_combinebackup — each restore starting with exactly
/// the rows of its backup.
#[test]
fn incremental_chains_cross_over_between_barman_and_barkeep() {
    let Some(pg) = barkeep_testkit::PgInstall::major(17)
        .or_else(|| barkeep_testkit::PgInstall::major(18))
        .or_else(|| {
            barkeep_testkit::require_installs_from(17)
                .into_iter()
                .next()
        })
    else {
        return;
    };
    let Some(barman) = barkeep_testkit::require_barman() else {
        return;
    };
    let c = ClusterBuilder::new(&pg)
        .setting("summarize_wal", "on")
        .start()
        .expect("start");
    c.psql("CREATE TABLE marker (id int PRIMARY KEY)")
        .expect("table");
    c.psql("INSERT INTO marker VALUES (1)").expect("row");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let config = dir.path().join("barman.conf");
    let bin = pg.tool("pg_basebackup").expect("pg_basebackup");
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .expect("user")
        .expect("user")
        .name;
    let conninfo = c.socket_conninfo("postgres", "postgres");
    let sh = Shared {
        config: config.clone(),
        barman,
        dir,
    };
    std::fs::write(
        &config,
        format!(
            "[barman]\nbarman_home = {home}\nbarman_user = {me}\nlog_file = {log}\nlog_level = INFO\n\n\
             [pg]\ndescription = chains\nconninfo = {conninfo}\nstreaming_conninfo = {conninfo}\n\
             backup_method = postgres\nstreaming_archiver = on\nslot_name = barman\ncreate_slot = auto\n\
             path_prefix = {bin}\nminimum_redundancy = 0\nimmediate_checkpoint = true\n\
             local_staging_path = {staging}\n",
            home = sh.home().display(),
            log = sh.dir.path().join("barman.log").display(),
            bin = bin.parent().expect("bin dir").display(),
            staging = sh.dir.path().join("staging").display(),
        ),
    )
    .expect("config");
    LOG.with(|l| *l.borrow_mut() = sh.dir.path().join("barman.log"));
    std::fs::create_dir(sh.home()).expect("barman_home");
    std::fs::create_dir(sh.dir.path().join("staging")).expect("staging");
    ok(
        sh.barman(&["receive-wal", "--create-slot", "pg"]),
        "barman receive-wal --create-slot",
    );
    let mut receiver: Child = sh
        .barman(&["receive-wal", "pg"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("barman receive-wal");
    let stop = Arc::new(AtomicBool::new(false));
    let archiver = {
        let stop = stop.clone();
        let cmd = (sh.barman.clone(), config.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = Command::new(&cmd.0)
                    .arg("-c")
                    .arg(&cmd.1)
                    .args(["archive-wal", "pg"])
                    .stdin(Stdio::null())
                    .output();
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sh
        .home()
        .join("pg/streaming")
        .read_dir()
        .is_ok_and(|mut d| d.next().is_some())
    {
        assert!(
            Instant::now() < deadline,
            "barman receive-wal did not start"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    ok(
        sh.barman(&[
            "switch-wal",
            "--force",
            "--archive",
            "--archive-timeout",
            "60",
            "pg",
        ]),
        "barman switch-wal --archive",
    );
    let wait = ["--wait", "--wait-timeout", "120"];
    let backup = |who: &str, extra: &[&str]| {
        let mut a = vec!["backup"];
        a.extend_from_slice(&wait);
        a.extend_from_slice(extra);
        a.push("pg");
        if who == "barman" {
            ok(sh.barman(&a), "barman backup");
        } else {
            ok(sh.barkeep(&a), "barkeep backup");
        }
        std::thread::sleep(Duration::from_millis(1100));
    };
    backup("barman", &[]);
    c.psql("INSERT INTO marker VALUES (2)").expect("row");
    backup("barman", &["--incremental", "latest"]);
    let sorted = |mut v: Vec<(String, String)>| {
        v.sort();
        v
    };
    let barman_incr = sorted(barman_ids(&sh)).last().expect("newest").0.clone();
    c.psql("INSERT INTO marker VALUES (3)").expect("row");
    backup("barkeep", &["--incremental", "latest"]);
    c.psql("INSERT INTO marker VALUES (4)").expect("row");
    backup("barkeep", &["--incremental", "latest"]);
    let ids = sorted(barman_ids(&sh));
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert!(ids.iter().all(|(_, st)| st == "DONE"), "{ids:?}");
    let newest = ids[3].0.clone();

    // Barman sees one chain: types and parents.
    let list = json(&ok(
        sh.barman(&["-f", "json", "list-backups", "pg"]),
        "barman list-backups",
    ));
    let types: Vec<&str> = list["pg"]
        .as_array()
        .expect("array")
        .iter()
        .map(|b| b["backup_type"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        types.iter().filter(|t| **t == "incremental").count(),
        3,
        "{list}"
    );
    let show = json(&ok(
        sh.barman(&["-f", "json", "show-backup", "pg", &newest]),
        "barman show-backup",
    ));
    let text = show.to_string();
    assert!(
        text.contains(&ids[2].0),
        "parent of barkeep's newest: {text}"
    );

    let restore_and_rows = |who: &str, id: &str| -> String {
        let mut t = ClusterBuilder::new(&pg).create().expect("target");
        let dest = t.data_dir().to_path_buf();
        std::fs::remove_dir_all(&dest).expect("empty target");
        let args = [
            "restore",
            "--target-immediate",
            "--target-action",
            "promote",
            "pg",
            id,
            dest.to_str().expect("utf-8"),
        ];
        let args: Vec<&str> = if who == "barman" {
            let mut a = args.to_vec();
            a[0] = "recover";
            a
        } else {
            args.to_vec()
        };
        if who == "barman" {
            ok(sh.barman(&args), "barman recover of barkeep's chain");
        } else {
            ok(sh.barkeep(&args), "barkeep restore of Barman's chain");
        }
        t.adopt_data_dir("").expect("adopt");
        t.start().expect("restored cluster starts");
        t.wait_for_recovery_end(Duration::from_secs(120))
            .expect("recovery ends");
        t.query_value("SELECT string_agg(id::text, ',' ORDER BY id) FROM marker")
            .expect("rows")
    };
    assert_eq!(restore_and_rows("barkeep", &barman_incr), "1,2");
    assert_eq!(restore_and_rows("barman", &newest), "1,2,3,4");
    stop.store(true, Ordering::Relaxed);
    let _ = archiver.join();
    kill(&mut receiver, nix::sys::signal::Signal::SIGTERM);
    let _ = receiver.wait();
}
