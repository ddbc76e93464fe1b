//! Point-in-time restore, with proof: marker rows written after a backup, each with its
//! commit time, xid, LSN and a restore point; every target type restores exactly the
//! markers up to the target, the restored cluster starts as the unprivileged user and
//! passes pg_amcheck. Also: a relocated tablespace, get-wal through barkeep, and a
//! restore whose WAL is missing fails loudly.

mod common;

use std::path::Path;
use std::time::Duration;

use barkeep_testkit::{Cluster, ClusterBuilder, PgInstall};
use common::{Home, kill, wait_for};

/// One marker row and where it is in the WAL.
#[derive(Debug, Clone)]
struct Marker {
    time: String,
    xid: String,
    lsn: String,
    name: String,
}

struct Scenario {
    c: Cluster,
    home: Home,
    backup: String,
    markers: Vec<Marker>,
    receiver: std::process::Child,
}

fn scenario(pg: &PgInstall) -> Scenario {
    let c = ClusterBuilder::new(pg).start().expect("start");
    let ts = c.root().join("ts1");
    std::fs::create_dir(&ts).expect("ts dir");
    c.os_user().chown_tree(&ts).expect("chown");
    c.psql(&format!(
        "CREATE TABLESPACE ts1 LOCATION '{}'",
        ts.display()
    ))
    .expect("ts");
    c.psql("CREATE TABLE marker (id int PRIMARY KEY, note text) TABLESPACE ts1")
        .expect("marker");
    c.psql(
        "CREATE TABLE filler AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g",
    )
    .expect("filler");
    // restore_command (get-wal) runs as the server's OS user: it may read the WAL.
    let home = Home::shared(
        &c,
        "immediate_checkpoint = true\nslot_name = barkeep\ncreate_slot = auto\n",
    );
    let receiver = home.streaming_receiver();
    home.run(&[
        "backup",
        "--wait",
        "--wait-timeout",
        "120",
        "--name",
        "base",
        "pg",
    ]);
    let mut markers = Vec::new();
    for id in 1..=4 {
        // One transaction per marker; its xid, then its commit time and LSN after commit.
        let xid = c
            .query_value(&format!(
                "INSERT INTO marker VALUES ({id}, 'marker {id}') RETURNING txid_current()"
            ))
            .expect("insert");
        let row = c
            .query_rows("SELECT clock_timestamp(), pg_current_wal_lsn()")
            .expect("time/lsn");
        let name = format!("after_marker_{id}");
        c.psql(&format!("SELECT pg_create_restore_point('{name}')"))
            .expect("restore point");
        markers.push(Marker {
            time: row[0][0].clone(),
            xid,
            lsn: row[0][1].clone(),
            name,
        });
        std::thread::sleep(Duration::from_millis(1100));
        c.psql("INSERT INTO filler SELECT g, 'x' FROM generate_series(100001, 101000) g")
            .expect("more");
    }
    let last = c
        .query_value("SELECT pg_walfile_name(pg_switch_wal())")
        .expect("switch");
    wait_for(
        &home,
        "the last segment archived",
        Duration::from_secs(60),
        || {
            let _ = home.cmd(&["archive-wal", "pg"]).output();
            home.archived().iter().any(|n| *n >= last)
        },
    );
    Scenario {
        c,
        home,
        backup: "base".into(),
        markers,
        receiver,
    }
}

/// A cluster that was never started, with its data directory removed: a restore target.
fn empty_target(pg: &PgInstall) -> (Cluster, String) {
    let r = ClusterBuilder::new(pg).create().expect("create target");
    std::fs::remove_dir_all(r.data_dir()).expect("empty the target");
    let dest = r.data_dir().to_str().expect("utf-8").to_string();
    (r, dest)
}

/// Tablespace locations outside the data directory belong to the server's user too.
fn chown_tablespaces(r: &Cluster) {
    if let Ok(rd) = std::fs::read_dir(r.data_dir().join("pg_tblspc")) {
        for e in rd.flatten() {
            if let Ok(target) = std::fs::read_link(e.path()) {
                r.os_user().chown_tree(&target).expect("chown tablespace");
            }
        }
    }
}

/// Restores with `args` into a fresh cluster's data directory, starts it, waits for
/// recovery to end, returns the marker ids present.
fn restore_and_count(
    s: &Scenario,
    pg: &PgInstall,
    args: &[&str],
    extra_conf: &str,
) -> (Cluster, Vec<i32>) {
    let (mut r, dest) = empty_target(pg);
    // The original tablespace location is in use by the source cluster.
    let ts = format!("ts1:{}", r.root().join("ts1").display());
    let mut full = vec!["restore"];
    full.extend_from_slice(args);
    if !args.contains(&"--tablespace") {
        full.extend_from_slice(&["--tablespace", &ts]);
    }
    full.extend_from_slice(&["pg", &s.backup, &dest]);
    let out = s.home.run(&full);
    assert!(out.contains("successfully prepared for recovery"), "{out}");
    assert!(out.contains("Next steps"), "{out}");
    r.adopt_data_dir(extra_conf).expect("adopt");
    chown_tablespaces(&r);
    r.start().expect("start restored cluster");
    r.wait_for_recovery_end(Duration::from_secs(120))
        .expect("recovery ends");
    let ids: Vec<i32> = r
        .query_rows("SELECT id FROM marker ORDER BY id")
        .expect("markers")
        .into_iter()
        .filter_map(|row| row.first().and_then(|v| v.parse().ok()))
        .collect();
    (r, ids)
}

#[test]
fn every_target_type_restores_exactly_the_rows_up_to_it() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let mut s = scenario(&pg);
    let m = s.markers.clone();
    let promote = ["--target-action", "promote"];
    let cases: Vec<(String, Vec<String>, Vec<i32>)> = vec![
        (
            "time".into(),
            vec!["--target-time".into(), m[1].time.clone()],
            vec![1, 2],
        ),
        (
            "xid".into(),
            vec!["--target-xid".into(), m[2].xid.clone()],
            vec![1, 2, 3],
        ),
        (
            "lsn".into(),
            vec!["--target-lsn".into(), m[0].lsn.clone()],
            vec![1],
        ),
        (
            "name".into(),
            vec!["--target-name".into(), m[2].name.clone()],
            vec![1, 2, 3],
        ),
        (
            "immediate".into(),
            vec!["--target-immediate".into()],
            vec![],
        ),
        (
            "xid exclusive".into(),
            vec![
                "--target-xid".into(),
                m[1].xid.clone(),
                "--exclusive".into(),
            ],
            vec![1],
        ),
    ];
    for (what, target, want) in cases {
        let mut args: Vec<&str> = target.iter().map(String::as_str).collect();
        args.extend_from_slice(&promote);
        let (r, ids) = restore_and_count(&s, &pg, &args, "");
        assert_eq!(ids, want, "target {what}: {args:?}\n{}", r.log_tail(3000));
        if what == "time" {
            common::amcheck(&r);
        }
    }
    // No target: everything barkeep has, the newest streamed segment included.
    s.c.psql("INSERT INTO marker VALUES (5, 'after the last switch, only streamed')")
        .expect("marker 5");
    wait_for(
        &s.home,
        "marker 5 streamed",
        Duration::from_secs(30),
        || {
            let lsn =
                s.c.query_value("SELECT pg_current_wal_lsn()")
                    .unwrap_or_default();
            s.c.query_value(&format!(
            "SELECT write_lsn >= '{lsn}' FROM pg_stat_replication WHERE application_name = 'barman_receive_wal'"
        ))
        .is_ok_and(|v| v == "t")
        },
    );
    // Give the receiver a moment to write what it acknowledged.
    std::thread::sleep(Duration::from_millis(500));
    let (r, ids) = restore_and_count(&s, &pg, &[], "");
    assert_eq!(ids, vec![1, 2, 3, 4, 5], "latest\n{}", r.log_tail(3000));
    common::amcheck(&r);
    kill(&mut s.receiver, nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn tablespace_relocation_get_wal_and_missing_wal() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let mut s = scenario(&pg);
    let m = s.markers.clone();
    // A tablespace restored to a new location, with WAL served by barkeep's get-wal.
    let new_loc = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(
        new_loc.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let loc = new_loc.path().join("ts1-restored");
    let ts_arg = format!("ts1:{}", loc.display());
    let (r, ids) = restore_and_count(
        &s,
        &pg,
        &[
            "--get-wal",
            "--tablespace",
            &ts_arg,
            "--target-name",
            &m[1].name,
            "--target-action",
            "promote",
        ],
        "",
    );
    assert_eq!(ids, vec![1, 2]);
    let link = std::fs::read_link(
        std::fs::read_dir(r.data_dir().join("pg_tblspc"))
            .expect("pg_tblspc")
            .flatten()
            .next()
            .expect("one tablespace")
            .path(),
    )
    .expect("link");
    assert_eq!(link, loc);
    let conf =
        std::fs::read_to_string(r.data_dir().join("postgresql.auto.conf")).expect("auto.conf");
    assert!(conf.contains("wal-restore --local -P localhost"), "{conf}");
    assert!(conf.contains("archive_command = false"), "{conf}");
    drop(r);

    // A restore whose WAL is missing fails loudly instead of ending early.
    let seg = common::segment_size(&s.c);
    let archived = s.home.archived();
    // Remove a segment after the backup's end, before the target.
    let info_file = std::fs::read_dir(s.home.server_dir().join("meta"))
        .expect("meta")
        .flatten()
        .next()
        .expect("backup.info")
        .path();
    let info = std::fs::read_to_string(&info_file).expect("info");
    let end_wal = info
        .lines()
        .find_map(|l| l.strip_prefix("end_wal="))
        .expect("end_wal")
        .to_string();
    let end = seg.parse_segment_name(&end_wal).expect("name");
    let victim = archived
        .iter()
        .find(|n| {
            seg.parse_segment_name(n)
                .is_ok_and(|p| p.segno == end.segno + 1)
        })
        .expect("a segment after the backup")
        .clone();
    std::fs::remove_file(s.home.archived_path(&victim)).expect("remove a segment");
    let (r, dest) = empty_target(&pg);
    let ts = format!("ts1:{}", r.root().join("ts1").display());
    for mode in ["--no-get-wal", "--get-wal"] {
        let out = s
            .home
            .cmd(&[
                "restore",
                "--target-xid",
                &m[3].xid,
                "--target-action",
                "promote",
                mode,
                "--tablespace",
                &ts,
                "pg",
                "base",
                &dest,
            ])
            .output()
            .expect("restore");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{mode}: {err}");
        assert!(
            err.contains("missing") && err.contains(&victim),
            "{mode}: {err}"
        );
        assert!(
            !Path::new(&dest).exists(),
            "{mode}: nothing may be restored"
        );
    }
    kill(&mut s.receiver, nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn restore_follows_a_promotion_to_timeline_2() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    // A primary and its standby (pg_basebackup -R); barkeep backs up and streams from the
    // standby, which is then promoted (a failover): the archive continues on timeline 2.
    let p = ClusterBuilder::new(&pg).start().expect("primary");
    p.psql("CREATE TABLE marker (id int PRIMARY KEY)")
        .expect("marker");
    let mut sb = ClusterBuilder::new(&pg).create().expect("standby");
    std::fs::remove_dir_all(sb.data_dir()).expect("empty");
    let mut bb = p.tool_command("pg_basebackup").expect("pg_basebackup");
    bb.arg("-h")
        .arg(p.socket_dir())
        .args([
            "-p",
            &p.port().to_string(),
            "-U",
            "postgres",
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "-D",
        ])
        .arg(sb.data_dir());
    barkeep_testkit::run(bb, "pg_basebackup -R").expect("standby copy");
    sb.adopt_data_dir("").expect("adopt");
    sb.start().expect("start standby");
    let home = Home::new(
        &sb,
        "immediate_checkpoint = true\nslot_name = barkeep\ncreate_slot = auto\n",
    );
    let mut receiver = home.streaming_receiver();
    // Backup from the standby; the primary's activity closes its end segment.
    let mut backup = home
        .cmd(&[
            "backup",
            "--wait",
            "--wait-timeout",
            "120",
            "--name",
            "base",
            "pg",
        ])
        .spawn()
        .expect("backup");
    for i in 1..=20 {
        std::thread::sleep(Duration::from_millis(500));
        let _ = p.psql(&format!(
            "INSERT INTO marker VALUES ({}); SELECT pg_switch_wal()",
            1000 + i
        ));
        if let Ok(Some(_)) = backup.try_wait() {
            break;
        }
    }
    assert!(
        backup.wait().expect("backup").success(),
        "backup from the standby\n{}",
        home.receiver_log()
    );
    p.psql("INSERT INTO marker VALUES (1); SELECT pg_switch_wal()")
        .expect("marker 1 on timeline 1");
    wait_for(
        &home,
        "marker 1 on the standby",
        Duration::from_secs(30),
        || {
            sb.query_value("SELECT count(*) FROM marker WHERE id = 1")
                .is_ok_and(|v| v == "1")
        },
    );
    // Failover.
    let mut p = p;
    p.stop(barkeep_testkit::StopMode::Fast)
        .expect("stop primary");
    sb.promote().expect("promote");
    sb.wait_for_recovery_end(Duration::from_secs(60))
        .expect("promoted");
    sb.psql("INSERT INTO marker VALUES (2)")
        .expect("marker 2 on timeline 2");
    let last = sb
        .query_value("SELECT pg_walfile_name(pg_switch_wal())")
        .expect("switch");
    assert!(last.starts_with("00000002"));
    wait_for(
        &home,
        "timeline 2 archived",
        Duration::from_secs(60),
        || {
            let _ = home.cmd(&["archive-wal", "pg"]).output();
            home.archived().iter().any(|n| *n >= last)
        },
    );
    kill(&mut receiver, nix::sys::signal::Signal::SIGTERM);
    home.run(&["archive-wal", "pg"]);

    let (mut r, dest) = empty_target(&pg);
    let out = home.run(&["restore", "--target-tli", "latest", "pg", "base", &dest]);
    assert!(out.contains("prepared for recovery"), "{out}");
    // The restored copy must not think it is still the old standby.
    let auto = r.data_dir().join("postgresql.auto.conf");
    let text = std::fs::read_to_string(&auto).expect("auto.conf");
    std::fs::write(&auto, text.replace("primary_conninfo", "#primary_conninfo")).expect("write");
    let _ = std::fs::remove_file(r.data_dir().join("standby.signal"));
    r.adopt_data_dir("").expect("adopt");
    r.start().expect("start restored");
    r.wait_for_recovery_end(Duration::from_secs(120))
        .expect("recovered");
    let rows = r
        .query_rows("SELECT id FROM marker WHERE id < 1000 ORDER BY id")
        .expect("rows");
    let ids: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.first().map(String::as_str))
        .collect();
    assert_eq!(ids, vec!["1", "2"], "{}", r.log_tail(3000));
    let tli = r
        .query_value("SELECT timeline_id FROM pg_control_checkpoint()")
        .expect("tli");
    assert!(
        tli.parse::<u32>().expect("number") >= 3,
        "a new timeline after timeline 2: {tli}"
    );
}

/// A private sshd on a free port, accepting one key for root (the test runs as root).
struct Sshd {
    dir: tempfile::TempDir,
    child: std::process::Child,
    port: u16,
}

impl Sshd {
    fn start() -> Option<Sshd> {
        if !Path::new("/usr/sbin/sshd").exists() {
            assert!(
                std::env::var("BARKEEP_TEST_REQUIRE_PG").as_deref() != Ok("1"),
                "sshd is needed (scripts/setup-test-env.sh installs openssh-server)"
            );
            eprintln!("SKIP: no /usr/sbin/sshd");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        for key in ["host", "client"] {
            let st = std::process::Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(key))
                .status()
                .expect("ssh-keygen");
            assert!(st.success());
        }
        std::fs::copy(d.join("client.pub"), d.join("authorized_keys")).expect("authorized_keys");
        let port = barkeep_testkit::free_port().expect("port");
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {0}/host\nAuthorizedKeysFile {0}/authorized_keys\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile {0}/sshd.pid\n",
                d.display()
            ),
        )
        .expect("config");
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let child = std::process::Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("sshd");
        let s = Sshd { dir, child, port };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "sshd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(s)
    }
    fn command(&self) -> String {
        format!(
            "ssh -p {} -i {}/client -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR root@127.0.0.1",
            self.port,
            self.dir.path().display()
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn remote_restore_over_ssh() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let Some(sshd) = Sshd::start() else {
        return;
    };
    let mut s = scenario(&pg);
    let m = s.markers.clone();
    let (mut r, dest) = empty_target(&pg);
    let ts = format!("ts1:{}", r.root().join("ts-remote").display());
    let ssh = sshd.command();
    let out = s.home.run(&[
        "restore",
        "--remote-ssh-command",
        &ssh,
        "--tablespace",
        &ts,
        "--target-name",
        &m[2].name,
        "--target-action",
        "promote",
        "pg",
        "base",
        &dest,
    ]);
    assert!(
        out.contains("Starting remote restore") && out.contains("prepared for recovery"),
        "{out}"
    );
    r.adopt_data_dir("").expect("adopt");
    r.os_user()
        .chown_tree(&r.root().join("ts-remote"))
        .expect("chown");
    r.start().expect("start");
    r.wait_for_recovery_end(Duration::from_secs(120))
        .expect("recovered");
    let rows = r
        .query_rows("SELECT id FROM marker ORDER BY id")
        .expect("rows");
    assert_eq!(rows.len(), 3, "{rows:?}");
    // A remote destination that is not empty is refused, with the remote side's words.
    let out = s
        .home
        .cmd(&[
            "restore",
            "--remote-ssh-command",
            &ssh,
            "--tablespace",
            &ts,
            "pg",
            "base",
            &dest,
        ])
        .output()
        .expect("restore");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not empty"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A broken ssh command says so.
    let out = s
        .home
        .cmd(&[
            "restore",
            "--remote-ssh-command",
            "ssh -p 1 -o BatchMode=yes root@127.0.0.1",
            "pg",
            "base",
            "/tmp/nowhere-barkeep",
        ])
        .output()
        .expect("restore");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ssh to the remote host failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    kill(&mut s.receiver, nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn compressed_backup_restores_and_destination_must_be_empty() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let c = ClusterBuilder::new(&pg).start().expect("start");
    c.psql("CREATE TABLE t AS SELECT generate_series(1, 5000) AS i")
        .expect("data");
    let home = Home::new(
        &c,
        "immediate_checkpoint = true\nslot_name = barkeep\ncreate_slot = auto\nbackup_compression = zstd\n",
    );
    let mut receiver = home.streaming_receiver();
    home.run(&["backup", "--wait", "--wait-timeout", "120", "pg"]);
    c.psql("INSERT INTO t SELECT generate_series(5001, 6000)")
        .expect("more");
    let last = c
        .query_value("SELECT pg_walfile_name(pg_switch_wal())")
        .expect("switch");
    wait_for(&home, "the last segment", Duration::from_secs(60), || {
        let _ = home.cmd(&["archive-wal", "pg"]).output();
        home.archived().iter().any(|n| *n >= last)
    });
    kill(&mut receiver, nix::sys::signal::Signal::SIGTERM);

    let mut r = ClusterBuilder::new(&pg).create().expect("target");
    // Not empty: refused, naming the directory.
    let dest = r.data_dir().to_str().expect("utf-8").to_string();
    let out = home
        .cmd(&["restore", "pg", "latest", &dest])
        .output()
        .expect("restore");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&dest) && err.contains("not empty"), "{err}");
    std::fs::remove_dir_all(r.data_dir()).expect("empty");
    let out = home.run(&["restore", "-j", "2", "pg", "latest", &dest]);
    assert!(out.contains("Crash recovery replays"), "{out}");
    r.adopt_data_dir("").expect("adopt");
    r.start().expect("start");
    r.wait_for_recovery_end(Duration::from_secs(60))
        .expect("ready");
    assert_eq!(
        r.query_value("SELECT count(*) FROM t").expect("count"),
        "6000"
    );
}
