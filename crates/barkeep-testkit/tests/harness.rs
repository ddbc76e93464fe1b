//! The harness against real PostgreSQL: start, connect (TCP and socket), crash, restart,
//! promote, parallel clusters, cleanup.

use std::time::Duration;

use barkeep_testkit::{Auth, ClusterBuilder, HbaEntry, StopMode, require_pg};

#[test]
fn start_connect_tcp_and_socket_crash_restart_cleanup() {
    let Some(pg) = require_pg() else { return };
    let mut c = ClusterBuilder::new(&pg)
        .setting("max_wal_senders", "5")
        .start()
        .expect("cluster starts");
    let root = c.root().to_path_buf();
    assert!(c.port() > 0);
    assert_eq!(
        c.psql_as("SELECT 40 + 2", "postgres", "postgres", None, true)
            .expect("tcp"),
        "42"
    );
    assert_eq!(
        c.psql_as("SELECT 1", "postgres", "postgres", None, false)
            .expect("socket"),
        "1"
    );
    assert_eq!(c.query_value("SHOW max_wal_senders").expect("show"), "5");
    assert_eq!(c.query_value("SHOW wal_level").expect("show"), "replica");
    // The server runs unprivileged when we are root.
    if nix::unistd::geteuid().is_root() {
        let who = c
            .query_value("SELECT pg_current_logfile() IS NULL")
            .expect("query");
        assert_eq!(who, "t");
        let owner = std::fs::metadata(c.data_dir().join("PG_VERSION")).expect("stat");
        assert_ne!(
            std::os::unix::fs::MetadataExt::uid(&owner),
            0,
            "data dir owned by root"
        );
    }

    c.psql("CREATE TABLE t(i int); INSERT INTO t SELECT generate_series(1, 100)")
        .expect("write");
    c.crash().expect("immediate stop");
    assert!(!c.is_running());
    assert!(c.psql("SELECT 1").is_err(), "crashed server still answers");
    c.start().expect("restart after crash");
    assert_eq!(
        c.query_value("SELECT count(*) FROM t").expect("count"),
        "100"
    );
    assert!(
        c.log_tail(100_000).contains("not properly shut down"),
        "crash recovery not logged"
    );
    c.restart().expect("fast restart");
    c.stop(StopMode::Fast).expect("stop");
    drop(c);
    assert!(!root.exists(), "cluster directory left behind");
}

#[test]
fn parallel_clusters_do_not_collide() {
    let Some(pg) = require_pg() else { return };
    let handles: Vec<_> = (0..3)
        .map(|i| {
            let pg = pg.clone();
            std::thread::spawn(move || {
                let c = ClusterBuilder::new(&pg).start().expect("start");
                c.psql(&format!("CREATE TABLE mine AS SELECT {i} AS v"))
                    .expect("create");
                std::thread::sleep(Duration::from_millis(200));
                let v = c.query_value("SELECT v FROM mine").expect("read");
                (c.port(), c.data_dir().to_path_buf(), v)
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    for (i, (_, _, v)) in results.iter().enumerate() {
        assert_eq!(v, &i.to_string());
    }
    let mut ports: Vec<u16> = results.iter().map(|r| r.0).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 3, "two clusters shared a port");
}

#[test]
fn cleanup_after_panicking_test() {
    let Some(pg) = require_pg() else { return };
    let (tx, rx) = std::sync::mpsc::channel();
    let r = std::thread::spawn(move || {
        let c = ClusterBuilder::new(&pg).start().expect("start");
        tx.send(c.root().to_path_buf()).expect("send");
        panic!("deliberate panic while the cluster runs");
    })
    .join();
    assert!(r.is_err());
    let root = rx.recv().expect("root");
    assert!(!root.exists(), "cluster of a panicking test not cleaned up");
}

#[test]
fn password_authentication_and_hba() {
    let Some(pg) = require_pg() else { return };
    let c = ClusterBuilder::new(&pg)
        .hba(HbaEntry::host("all", "md5user", Auth::Md5))
        .hba(HbaEntry::host("all", "nobody_allowed", Auth::Reject))
        .host_auth(Auth::Scram)
        .start()
        .expect("start");
    c.create_user("md5user", "md5pw", Auth::Md5, "")
        .expect("md5 user");
    c.create_user("scramuser", "scrampw", Auth::Scram, "REPLICATION")
        .expect("scram user");
    c.create_user("nobody_allowed", "x", Auth::Scram, "")
        .expect("user");
    assert_eq!(
        c.psql_as(
            "SELECT current_user",
            "md5user",
            "postgres",
            Some("md5pw"),
            true
        )
        .expect("md5"),
        "md5user"
    );
    assert_eq!(
        c.psql_as("SELECT 1", "scramuser", "postgres", Some("scrampw"), true)
            .expect("scram"),
        "1"
    );
    let e = c
        .psql_as("SELECT 1", "scramuser", "postgres", Some("wrong"), true)
        .expect_err("wrong password");
    assert!(
        e.to_string().contains("password authentication failed"),
        "{e}"
    );
    let e = c
        .psql_as("SELECT 1", "nobody_allowed", "postgres", Some("x"), true)
        .expect_err("rejected");
    assert!(e.to_string().contains("pg_hba.conf rejects"), "{e}");
}

#[test]
fn promote_a_standby() {
    let Some(pg) = require_pg() else { return };
    let mut standby = ClusterBuilder::new(&pg)
        .setting("hot_standby", "on")
        .create()
        .expect("create");
    // An empty standby.signal with no primary: the server stays in recovery until promoted.
    std::fs::write(standby.data_dir().join("standby.signal"), b"").expect("signal");
    standby.start().expect("start as standby");
    assert_eq!(
        standby
            .query_value("SELECT pg_is_in_recovery()")
            .expect("query"),
        "t"
    );
    standby.promote().expect("promote");
    assert_eq!(
        standby
            .query_value("SELECT pg_is_in_recovery()")
            .expect("query"),
        "f"
    );
    let tli = standby
        .query_value("SELECT timeline_id FROM pg_control_checkpoint()")
        .expect("tli");
    standby.psql("CHECKPOINT").expect("checkpoint");
    let tli2 = standby
        .query_value("SELECT timeline_id FROM pg_control_checkpoint()")
        .expect("tli");
    assert!(
        tli2.parse::<u32>().expect("num") >= 2,
        "timeline {tli} -> {tli2}"
    );
}

#[test]
fn pgbench_helpers() {
    let Some(pg) = require_pg() else { return };
    let c = ClusterBuilder::new(&pg).start().expect("start");
    c.pgbench_init(1).expect("pgbench -i");
    assert_eq!(
        c.query_value("SELECT count(*) FROM pgbench_branches")
            .expect("q"),
        "1"
    );
    let out = c.pgbench_run(1, 2, &[]).expect("pgbench");
    assert!(
        out.contains("number of transactions actually processed"),
        "{out}"
    );
}
