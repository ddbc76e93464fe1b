//! The SQL helpers against real PostgreSQL on every major: non-exclusive backup start and
//! stop with each major's function names, privileges as Barman's checks ask them, restore
//! points, WAL switches, pg_read_binary_file, settings and pg_stat_replication.

mod common;
use common::{connect_socket, rt};

use barkeep_testkit::{Auth, ClusterBuilder};

#[test]
fn backup_functions_privileges_and_status() {
    for pg in barkeep_testkit::test_installs() {
        eprintln!("PostgreSQL {}", pg.major);
        let c = ClusterBuilder::new(&pg).start().expect("start");
        c.create_user("plain", "x", Auth::Scram, "REPLICATION")
            .expect("user");
        c.create_user("backupuser", "x", Auth::Scram, "")
            .expect("user");
        let (start_fn, stop_fn) = if pg.major >= 15 {
            ("pg_backup_start(text, boolean)", "pg_backup_stop(boolean)")
        } else {
            (
                "pg_start_backup(text, boolean, boolean)",
                "pg_stop_backup(boolean, boolean)",
            )
        };
        c.psql(&format!(
            "GRANT pg_monitor TO backupuser; \
             GRANT EXECUTE ON FUNCTION {start_fn} TO backupuser; \
             GRANT EXECUTE ON FUNCTION {stop_fn} TO backupuser; \
             GRANT EXECUTE ON FUNCTION pg_switch_wal() TO backupuser; \
             GRANT EXECUTE ON FUNCTION pg_create_restore_point(text) TO backupuser;"
        ))
        .expect("grants");
        rt().block_on(async {
            let mut su = connect_socket(&c, "postgres", "application_name=sqltest").await;
            let p = su.privileges().await.expect("privileges");
            assert!(p.superuser && p.replication && p.monitoring && p.backup && p.checkpoint);

            let mut plain = connect_socket(&c, "plain", "").await;
            let p = plain.privileges().await.expect("privileges");
            assert!(!p.superuser && p.replication && !p.monitoring && !p.backup);
            // What the missing privilege looks like: PostgreSQL's words and SQLSTATE.
            let err = plain.switch_wal().await.expect_err("no privilege");
            assert_eq!(err.sqlstate(), Some("42501"), "{err}");

            let mut bu = connect_socket(&c, "backupuser", "").await;
            let p = bu.privileges().await.expect("privileges");
            assert!(!p.superuser && p.monitoring && p.backup, "{p:?}");

            // Non-exclusive backup with this major's function names, as the granted user.
            assert!(!bu.is_in_recovery().await.expect("recovery"));
            let start = bu.backup_start("sql test", true).await.expect("start");
            let stop = bu.backup_stop(false).await.expect("stop");
            assert!(stop.lsn > start);
            assert!(
                stop.label_file
                    .contains(&format!("START WAL LOCATION: {start}")),
                "{}",
                stop.label_file
            );
            assert!(stop.label_file.contains("LABEL: sql test"));
            assert!(stop.tablespace_map.is_empty());

            let rp = bu
                .create_restore_point("before_x")
                .await
                .expect("restore point");
            assert!(rp >= stop.lsn);
            su.simple_query("CREATE TABLE some_wal AS SELECT 1 AS x")
                .await
                .expect("write");
            let before = su.current_wal_lsn().await.expect("lsn");
            let switched = bu.switch_wal().await.expect("switch");
            assert!(switched >= before);
            su.checkpoint().await.expect("checkpoint");

            let control = su
                .read_binary_file("global/pg_control")
                .await
                .expect("read");
            assert_eq!(control.len(), 8192);
            let id = control[0..8]
                .try_into()
                .map(u64::from_le_bytes)
                .expect("8 bytes");
            let sysid = c
                .query_value("SELECT system_identifier FROM pg_control_system()")
                .expect("sysid");
            assert_eq!(id.to_string(), sysid);

            let s = su
                .settings(&["wal_level", "max_wal_senders", "no_such_setting"])
                .await
                .expect("settings");
            assert_eq!(s["wal_level"].value, "replica");
            assert!(!s.contains_key("no_such_setting"));

            // A walsender shows in pg_stat_replication with its application_name.
            let mut repl =
                connect_socket(&c, "postgres", "replication=true application_name=bk_probe").await;
            let pos = repl.identify_system().await.expect("identify").xlogpos;
            let seg = repl.wal_segment_size().await.expect("seg");
            let stream = repl
                .start_replication(None, pos.segment_start(seg), None)
                .await
                .expect("stream");
            let mut seen = None;
            for _ in 0..50 {
                let rows = su.stat_replication().await.expect("pg_stat_replication");
                seen = rows
                    .into_iter()
                    .find(|r| r.application_name.as_deref() == Some("bk_probe"));
                if seen.is_some() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            let seen = seen.expect("walsender listed");
            assert_eq!(seen.user.as_deref(), Some("postgres"));
            let _ = stream;
        });
    }
}
