//! `barkeep daemon` end to end on real PostgreSQL, schedules compressed to seconds: it
//! streams WAL and takes scheduled backups; `status` shows what it will do next; a
//! SIGKILL of the daemon and a restart leave nothing for a person to do; a SIGHUP adds a
//! second server, which then gets its backups; SIGTERM stops it within 30 s with no
//! backup left half-made; a restore of the newest backup holds the last committed row.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use barkeep_testkit::{Cluster, ClusterBuilder};
use common::{BIN, Home, kill, wait_for};
use nix::sys::signal::Signal;

fn server_section(name: &str, c: &Cluster) -> String {
    let ci = c.socket_conninfo("postgres", "postgres");
    let bin = c
        .install()
        .tool("postgres")
        .and_then(|p| p.parent().map(|d| d.display().to_string()))
        .unwrap_or_default();
    format!(
        "\n[{name}]\ndescription = {name}\nconninfo = {ci}\nstreaming_conninfo = {ci}\nbackup_method = postgres\nstreaming_archiver = on\nslot_name = barkeep\ncreate_slot = auto\nimmediate_checkpoint = true\nbackup_schedule = */4 * * * * *\nbackup_schedule_jitter = 0\nretention_schedule = */5 * * * * *\ncheck_schedule = */3 * * * * *\ndrill_schedule = */15 * * * * *\npath_prefix = {bin}\nschedule_timezone = UTC\nretention_policy = REDUNDANCY 3\n"
    )
}

fn daemon(home: &Home) -> Child {
    Command::new(BIN)
        .arg("-c")
        .arg(&home.config)
        .arg("daemon")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(home.dir.path().join("daemon.log"))
                .expect("log"),
        ))
        .spawn()
        .expect("barkeep daemon")
}

/// (id, status) of a server's backups, newest first.
fn backups(home: &Home, server: &str) -> Vec<(String, String)> {
    let out = home
        .cmd(&["-f", "json", "list-backups", server])
        .output()
        .expect("list");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v[server]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|b| {
                    (
                        b["backup_id"].as_str().unwrap_or_default().to_string(),
                        b["status"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn done(home: &Home, server: &str) -> Vec<String> {
    backups(home, server)
        .into_iter()
        .filter(|(_, s)| s == "DONE")
        .map(|(id, _)| id)
        .collect()
}

/// `GET path` on the daemon's HTTP server: (status code, body).
fn http_get(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n{auth}\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (code, body)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn daemon_log(home: &Home) -> String {
    std::fs::read_to_string(home.dir.path().join("daemon.log")).unwrap_or_default()
}

#[test]
fn the_daemon_backs_up_on_schedule_survives_kills_reloads_and_stops_cleanly() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let a = ClusterBuilder::new(&pg).start().expect("start a");
    let b = ClusterBuilder::new(&pg).start().expect("start b");
    let c3 = ClusterBuilder::new(&pg).start().expect("start c");
    a.psql("CREATE TABLE marker (id int)").expect("table");
    a.pgbench_init(1).expect("pgbench a");
    b.pgbench_init(1).expect("pgbench b");
    // Load on both, for the whole test.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut loaders = Vec::new();
    for c in [&a, &b] {
        let mut cmd = c.pgbench_command(1, 2, &[]).expect("pgbench");
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let stop = stop.clone();
        loaders.push(std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = cmd.status();
                std::thread::sleep(Duration::from_millis(200));
            }
        }));
    }
    // The reference: pg_receivewal on its own slot of a.
    let reference = tempfile::tempdir().expect("reference");
    let recvwal = a.install().tool("pg_receivewal").expect("pg_receivewal");
    let ref_cmd = |extra: &[&str]| {
        let mut cmd = Command::new(&recvwal);
        cmd.arg("-h")
            .arg(a.socket_dir())
            .args([
                "-p",
                &a.port().to_string(),
                "-U",
                "postgres",
                "-S",
                "reference",
                "-D",
            ])
            .arg(reference.path())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    assert!(
        ref_cmd(&["--create-slot"])
            .status()
            .expect("slot")
            .success()
    );
    let mut ref_proc = ref_cmd(&[]).spawn().expect("pg_receivewal");
    let home = Home::empty();
    let port = free_port();
    let token_file = home.dir.path().join("metrics.token");
    std::fs::write(&token_file, "s3cret\n").expect("token");
    let global = format!(
        "[barman]\nbarman_home = {}\nlog_level = INFO\nmax_concurrent_backups = 2\nmetrics_address = 127.0.0.1:{port}\nmetrics_token_file = {}\n",
        home.home().display(),
        token_file.display()
    );
    std::fs::write(
        &home.config,
        format!(
            "{global}{}{}",
            server_section("pa", &a),
            server_section("pb", &b)
        ),
    )
    .expect("config");

    // Scheduled backups appear, DONE, while WAL streams.
    let mut d = daemon(&home);
    wait_for(
        &home,
        "two scheduled backups of pa",
        Duration::from_secs(90),
        || done(&home, "pa").len() >= 2,
    );
    let status = home.run(&["status", "pa"]);
    assert!(status.contains("\tDaemon: running (PID "), "{status}");
    assert!(status.contains("\tNext scheduled backup: 20"), "{status}");
    assert!(
        status.contains("\tReceive-wal: running"),
        "{status}\n{}",
        daemon_log(&home)
    );
    // Its tasks show in list-processes; terminate-process does not kill the daemon.
    let procs = home.run(&["list-processes", "pa"]);
    assert!(procs.contains("receive-wal (barkeep daemon)"), "{procs}");
    let out = home
        .cmd(&["terminate-process", "pa", "receive-wal"])
        .output()
        .expect("terminate");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("a task of the running barkeep daemon"));

    // SIGKILL of the daemon, then a restart: it goes on by itself.
    kill(&mut d, Signal::SIGKILL);
    let before = done(&home, "pa");
    d = daemon(&home);
    wait_for(
        &home,
        "a backup after the restart",
        Duration::from_secs(90),
        || done(&home, "pa").iter().any(|id| !before.contains(id)),
    );
    assert!(
        backups(&home, "pa")
            .iter()
            .all(|(_, s)| s == "DONE" || s == "FAILED" || s == "WAITING_FOR_WALS"),
        "{:?}",
        backups(&home, "pa")
    );

    // SIGHUP with a third server added: it gets its backups; the others keep going.
    let three = format!(
        "{global}{}{}{}",
        server_section("pa", &a),
        server_section("pb", &b),
        server_section("pc", &c3)
    );
    std::fs::write(&home.config, &three).expect("config");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(d.id() as i32), Signal::SIGHUP).expect("hup");
    wait_for(
        &home,
        "a scheduled backup of the added server",
        Duration::from_secs(90),
        || !done(&home, "pc").is_empty(),
    );
    assert!(!done(&home, "pb").is_empty());
    // /metrics: the series, with plausible values; the token is required.
    assert_eq!(http_get(port, "/metrics", None).0, 401);
    let (code, m) = http_get(port, "/metrics", Some("s3cret"));
    assert_eq!(code, 200, "{m}");
    let value = |series: &str| -> f64 {
        m.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{m}"))
    };
    assert_eq!(value("barkeep_up{server=\"pa\"}"), 1.0);
    assert!(value("barkeep_last_backup_age_seconds{server=\"pa\"}") < 120.0);
    assert!(value("barkeep_last_backup_duration_seconds{server=\"pa\"}") >= 0.0);
    assert!(value("barkeep_last_backup_size_bytes{server=\"pa\"}") > 1e6);
    assert!(value("barkeep_backups{server=\"pa\",status=\"DONE\"}") >= 1.0);
    assert_eq!(value("barkeep_wal_receiver_connected{server=\"pa\"}"), 1.0);
    assert!(
        value("barkeep_wal_archived_total{server=\"pa\"}") >= 1.0,
        "{m}"
    );
    assert!(value("barkeep_wal_archived_bytes_total{server=\"pa\"}") > 0.0);
    assert!(value("barkeep_wal_lag_bytes{server=\"pa\"}") < 64e6);
    assert!(value("barkeep_slot_retained_bytes{server=\"pa\"}") < 256e6);
    assert!(value("barkeep_catalog_free_bytes{server=\"pa\"}") > 0.0);
    assert!(
        m.contains("barkeep_check_ok{server=\"pa\",check=\"receive_wal_running\"} 1"),
        "{m}"
    );
    // A scheduled drill passes, and says so in the metrics.
    wait_for(
        &home,
        "a scheduled drill of pa",
        Duration::from_secs(90),
        || {
            http_get(port, "/metrics", Some("s3cret"))
                .1
                .contains("barkeep_last_drill_success{server=\"pa\"} 1")
        },
    );
    // /health: 200 while all are healthy, 503 while one server is down, 200 again. A
    // backup the daemon's SIGKILL interrupted is FAILED, and `check` (so /health) says so
    // until a person deletes it — as they would.
    let clear_failed = |server: &str| {
        for (id, st) in backups(&home, server) {
            if st == "FAILED" {
                let _ = home.cmd(&["delete", server, &id]).output();
            }
        }
    };
    wait_for(&home, "/health 200", Duration::from_secs(60), || {
        for s in ["pa", "pb", "pc"] {
            clear_failed(s);
        }
        http_get(port, "/health", Some("s3cret")).0 == 200
    });
    let mut b = b;
    b.stop(barkeep_testkit::StopMode::Immediate)
        .expect("stop b");
    let (code, body) = http_get(port, "/health", Some("s3cret"));
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("\"pb\":{"), "{body}");
    b.start().expect("start b again");
    wait_for(
        &home,
        "/health 200 once pb is back",
        Duration::from_secs(120),
        || {
            // A backup the crash interrupted is FAILED: deleted, as a person would.
            clear_failed("pb");
            http_get(port, "/health", Some("s3cret")).0 == 200
        },
    );

    // A configuration that does not load is rejected; the old one stays in force.
    std::fs::write(&home.config, format!("{global}[pa]\nactive = perhaps\n")).expect("bad");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(d.id() as i32), Signal::SIGHUP).expect("hup");
    std::thread::sleep(Duration::from_secs(1));
    std::fs::write(&home.config, &three).expect("config");
    let n = done(&home, "pa").len() + backups(&home, "pa").len();
    wait_for(
        &home,
        "pa still backed up after a rejected reload",
        Duration::from_secs(60),
        || done(&home, "pa").len() + backups(&home, "pa").len() != n,
    );
    assert!(
        daemon_log(&home).contains("the new configuration is rejected"),
        "{}",
        daemon_log(&home)
    );

    // The load stops; the last committed row, archived.
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in loaders {
        let _ = l.join();
    }
    a.psql("INSERT INTO marker VALUES (42)").expect("row");
    let seg = a
        .query_value("SELECT pg_walfile_name(pg_switch_wal())")
        .expect("switch");
    wait_for(
        &home,
        "the marker's segment archived",
        Duration::from_secs(60),
        || home.archived_of("pa").contains(&seg),
    );

    // The WAL archive of pa has no gap: every segment the reference holds, from
    // barkeep's first to the marker's, is archived, byte for byte.
    kill(&mut ref_proc, Signal::SIGTERM);
    let ours = home.archived_of("pa");
    let first = ours.first().cloned().unwrap_or_default();
    let mut missing = Vec::new();
    for e in std::fs::read_dir(reference.path())
        .expect("reference")
        .flatten()
    {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.len() != 24 || n < first || n > seg {
            continue;
        }
        if !ours.contains(&n) {
            missing.push(n);
            continue;
        }
        let got = home.cmd(&["get-wal", "pa", &n]).output().expect("get-wal");
        let want = std::fs::read(e.path()).expect("reference segment");
        assert!(got.stdout == want, "{n} differs from pg_receivewal's");
    }
    assert!(
        missing.is_empty(),
        "WAL gap: {missing:?} (barkeep from {first})"
    );
    // SIGTERM: out within 30 s, exit 0, no backup left STARTED.
    let t0 = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(d.id() as i32), Signal::SIGTERM)
        .expect("term");
    let status = loop {
        if let Ok(Some(st)) = d.try_wait() {
            break st;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the daemon did not stop in 30 s:\n{}",
            daemon_log(&home)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}\n{}", daemon_log(&home));
    for s in ["pa", "pb", "pc"] {
        let all = backups(&home, s);
        assert!(
            all.iter()
                .all(|(_, st)| st == "DONE" || st == "FAILED" || st == "WAITING_FOR_WALS"),
            "{s}: {all:?}"
        );
    }
    assert!(!home.run(&["status", "pa"]).contains("Daemon: running"));

    // The newest backup of pa restores to the latest point with the marker.
    let newest = done(&home, "pa").first().cloned().expect("a DONE backup");
    let r = ClusterBuilder::new(&pg).create().expect("target");
    std::fs::remove_dir_all(r.data_dir()).expect("empty");
    let dest = r.data_dir().to_str().expect("utf-8").to_string();
    home.run(&["restore", "pa", &newest, &dest]);
    let mut r = r;
    r.adopt_data_dir("").expect("adopt");
    r.start().expect("start restored");
    r.wait_for_recovery_end(Duration::from_secs(120))
        .expect("recovery");
    assert_eq!(
        r.query_value("SELECT count(*) FROM marker WHERE id = 42")
            .expect("count"),
        "1"
    );
}

#[test]
fn sigterm_during_a_backup_stops_in_time_and_the_backup_is_failed_never_done() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let c = ClusterBuilder::new(&pg).start().expect("start");
    c.pgbench_init(3).expect("pgbench -i");
    let home = Home::empty();
    let ci = c.socket_conninfo("postgres", "postgres");
    std::fs::write(
        &home.config,
        format!(
            "[barman]\nbarman_home = {}\nlog_level = INFO\n\n[pg]\nconninfo = {ci}\nstreaming_conninfo = {ci}\nbackup_method = postgres\nstreaming_archiver = on\nslot_name = barkeep\ncreate_slot = auto\nimmediate_checkpoint = true\nbandwidth_limit = 2000\nbackup_schedule = */2 * * * * *\nbackup_schedule_jitter = 0\nschedule_timezone = UTC\n",
            home.home().display()
        ),
    )
    .expect("config");
    let mut d = daemon(&home);
    // A slow backup (2 MB/s) is copying.
    wait_for(&home, "a backup copying", Duration::from_secs(60), || {
        backups(&home, "pg").iter().any(|(_, s)| s == "STARTED")
    });
    std::thread::sleep(Duration::from_secs(2));
    let t0 = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(d.id() as i32), Signal::SIGTERM)
        .expect("term");
    let status = loop {
        if let Ok(Some(st)) = d.try_wait() {
            break st;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "not stopped in 30 s:\n{}",
            daemon_log(&home)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}\n{}", daemon_log(&home));
    let all = backups(&home, "pg");
    assert!(!all.is_empty());
    assert!(
        all.iter().all(|(_, s)| s == "FAILED"),
        "the interrupted backup must be FAILED: {all:?}\n{}",
        daemon_log(&home)
    );
    // What PostgreSQL was told is durable is on disk here: the slot's restart position
    // is covered by the archive or the receiver's partial segment.
    let restart = c
        .query_value("SELECT pg_walfile_name(restart_lsn - 1) FROM pg_replication_slots WHERE slot_name = 'barkeep'")
        .expect("slot");
    let partial = home
        .server_dir()
        .join("streaming")
        .join(format!("{restart}.partial"));
    assert!(
        home.archived().contains(&restart)
            || partial.exists()
            || home.server_dir().join("streaming").join(&restart).exists(),
        "segment {restart} acknowledged but not on disk"
    );
}
