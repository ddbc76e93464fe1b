//! Replication commands against real PostgreSQL: slots, TIMELINE_HISTORY, and
//! START_REPLICATION — whose WAL must be byte-identical to what `pg_receivewal` writes for
//! the same range, and which must report timeline ends as the server's history says.

mod common;
use common::rt;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use barkeep_pg::walstream::{StreamEnd, WalEvent};
use barkeep_pg::{Connection, PgError};
use barkeep_testkit::{Cluster, ClusterBuilder};
use barkeep_wal::{Lsn, SegmentSize, TimeLineId};

async fn walsender(c: &Cluster) -> Connection {
    common::connect_socket(c, "postgres", "replication=true").await
}

async fn sql(c: &Cluster) -> Connection {
    common::connect_socket(c, "postgres", "").await
}

/// Streams `[from, to)` of timeline `tli` into whole segments (`name → bytes`), answering
/// keepalives; returns the segments and how the stream ended.
async fn stream_segments(
    conn: &mut Connection,
    slot: Option<&str>,
    tli: TimeLineId,
    from: Lsn,
    to: Option<Lsn>,
    seg: SegmentSize,
) -> (BTreeMap<String, Vec<u8>>, StreamEnd) {
    let mut out: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut stream = conn
        .start_replication(slot, from, Some(tli))
        .await
        .expect("START_REPLICATION");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut stopping = false;
    loop {
        assert!(Instant::now() < deadline, "stream did not finish in time");
        match stream.next().await.expect("stream event") {
            WalEvent::Data { start, data, .. } => {
                let mut pos = start.0;
                let mut rest = &data[..];
                while !rest.is_empty() {
                    let lsn = Lsn(pos);
                    let off = lsn.segment_offset(seg) as usize;
                    let room = seg.bytes() as usize - off;
                    let n = room.min(rest.len());
                    let name = seg.segment_name(tli, lsn.segno(seg));
                    let buf = out.entry(name).or_default();
                    assert_eq!(buf.len(), off, "segment written in order from offset 0");
                    buf.extend_from_slice(&rest[..n]);
                    rest = &rest[n..];
                    pos += n as u64;
                }
                if let Some(to) = to
                    && pos >= to.0
                    && !stopping
                {
                    stopping = true;
                    stream.request_stop().await.expect("stop");
                }
            }
            WalEvent::Keepalive {
                reply_requested, ..
            } => {
                if reply_requested {
                    let w = stream.received_up_to().unwrap_or(from);
                    stream
                        .send_status(w, Lsn::INVALID, false)
                        .await
                        .expect("status");
                }
            }
            WalEvent::End(end) => return (out, end),
        }
    }
}

#[test]
fn slots_and_wal_identical_to_pg_receivewal() {
    for pg in barkeep_testkit::test_installs() {
        let c = ClusterBuilder::new(&pg).start().expect("start");
        rt().block_on(async {
            let mut repl = walsender(&c).await;
            let mut db = sql(&c).await;
            let seg = repl.wal_segment_size().await.expect("segment size");

            // Slot names are checked before anything is sent.
            let err = repl
                .create_physical_slot("Bad-Name", false, true)
                .await
                .expect_err("bad slot name");
            assert!(format!("{err}").contains("lower-case"), "{err}");

            repl.create_physical_slot("bk_ours", false, true)
                .await
                .expect("create slot");
            repl.create_physical_slot("bk_theirs", false, true)
                .await
                .expect("create slot");
            let err = repl
                .create_physical_slot("bk_ours", false, true)
                .await
                .expect_err("duplicate slot");
            assert_eq!(err.sqlstate(), Some("42710"), "{err}");

            let via_sql = db
                .replication_slot("bk_ours")
                .await
                .expect("slot via SQL")
                .expect("slot exists");
            assert_eq!(via_sql.slot_type, "physical");
            assert_eq!(via_sql.active, Some(false));
            let restart = via_sql.restart_lsn.expect("RESERVE_WAL sets restart_lsn");
            if pg.major >= 15 {
                let via_cmd = repl
                    .replication_slot("bk_ours")
                    .await
                    .expect("READ_REPLICATION_SLOT")
                    .expect("slot exists");
                assert_eq!(via_cmd.restart_lsn, Some(restart));
                assert_eq!(via_cmd.restart_tli, Some(1));
                assert!(
                    repl.replication_slot("nosuch")
                        .await
                        .expect("read")
                        .is_none()
                );
            } else {
                let err = repl.replication_slot("bk_ours").await.expect_err("13/14");
                assert!(format!("{err}").contains("pg_replication_slots"), "{err}");
            }
            assert!(db.replication_slot("nosuch").await.expect("sql").is_none());

            // WAL activity over several segments, then a switch so the range ends on a
            // segment boundary.
            c.pgbench_init(2).expect("pgbench -i");
            c.pgbench_run(3, 2, &[]).expect("pgbench");
            db.query("SELECT pg_switch_wal()").await.expect("switch");
            let end: Lsn = db
                .query_value("SELECT pg_current_wal_lsn()")
                .await
                .expect("lsn")
                .expect("lsn")
                .parse()
                .expect("lsn text");
            let end = end.segment_start(seg);
            // Some WAL past the end, so pg_receivewal sees its --endpos passed without
            // waiting for background activity.
            db.query("CREATE TABLE past_the_end ()")
                .await
                .expect("more WAL");
            let start = restart.segment_start(seg);
            assert!(
                end.0 - start.0 >= 2 * seg.bytes(),
                "want at least two segments"
            );

            // pg_receivewal from the same segment: an empty .partial file tells it where to
            // start on every version (13/14 have no slot-based start).
            let theirs = tempfile::tempdir().expect("tempdir");
            let first = seg.segment_name(1, start.segno(seg));
            std::fs::write(theirs.path().join(format!("{first}.partial")), b"").expect("seed");
            let mut cmd = c.tool_command("pg_receivewal").expect("pg_receivewal");
            cmd.arg("-D")
                .arg(theirs.path())
                .arg("-S")
                .arg("bk_theirs")
                .arg(format!("--endpos={end}"))
                .arg("--no-loop")
                .arg("--no-sync")
                .arg("-h")
                .arg(c.socket_dir())
                .arg("-p")
                .arg(c.port().to_string())
                .args(["-U", "postgres"]);
            barkeep_testkit::run(cmd, "pg_receivewal").expect("pg_receivewal");

            let (ours, how) =
                stream_segments(&mut repl, Some("bk_ours"), 1, start, Some(end), seg).await;
            assert_eq!(how, StreamEnd::Stopped);
            let mut compared = 0;
            for (name, bytes) in &ours {
                let segno = seg.parse_segment_name(name).expect("name").segno;
                if Lsn(segno * seg.bytes() + seg.bytes()) > end {
                    continue; // beyond the range pg_receivewal was asked for
                }
                let path = theirs.path().join(name);
                let reference = std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("PG {}: {}: {e}", pg.major, path.display()));
                assert_eq!(bytes.len(), reference.len(), "{name} size");
                assert!(
                    bytes == &reference,
                    "PG {}: segment {name} differs",
                    pg.major
                );
                compared += 1;
            }
            assert!(compared >= 2, "compared {compared} segments");

            // The stream ended cleanly; the connection is usable again.
            let id = repl.identify_system().await.expect("after stream");
            assert_eq!(id.timeline, 1);

            // START_REPLICATION errors keep PostgreSQL's words.
            let err = repl
                .start_replication(Some("nosuch"), start, None)
                .await
                .expect_err("unknown slot");
            assert_eq!(err.sqlstate(), Some("42704"), "{err}");

            repl.drop_replication_slot("bk_ours", false)
                .await
                .expect("drop");
            repl.drop_replication_slot("bk_theirs", true)
                .await
                .expect("drop");
            assert!(db.replication_slot("bk_ours").await.expect("sql").is_none());
            let err = repl
                .drop_replication_slot("bk_ours", false)
                .await
                .expect_err("already dropped");
            assert_eq!(err.sqlstate(), Some("42704"), "{err}");
        });
    }
}

#[test]
fn timeline_history_and_end_of_timeline() {
    for pg in barkeep_testkit::test_installs() {
        // A standby without a primary, promoted: timeline 2 forks off at the end of the
        // WAL of timeline 1.
        let mut c = ClusterBuilder::new(&pg)
            .file("standby.signal", b"")
            .start()
            .expect("start standby");
        c.psql("SELECT 1").expect("standby answers");
        c.promote().expect("promote");
        c.wait_for_recovery_end(Duration::from_secs(60))
            .expect("promoted");
        rt().block_on(async {
            let mut repl = walsender(&c).await;
            let id = repl.identify_system().await.expect("identify");
            assert_eq!(id.timeline, 2);
            let seg = repl.wal_segment_size().await.expect("segment size");

            let err = repl
                .timeline_history(1)
                .await
                .expect_err("no history for 1");
            assert!(
                format!("{err}").contains("timeline 1 has no history"),
                "{err}"
            );
            let h = repl.timeline_history(2).await.expect("TIMELINE_HISTORY 2");
            assert_eq!(h.filename, "00000002.history");
            let on_disk =
                std::fs::read(c.data_dir().join("pg_wal/00000002.history")).expect("history file");
            assert_eq!(h.content, on_disk);
            let entries =
                barkeep_wal::parse_history(std::str::from_utf8(&h.content).expect("utf-8 history"))
                    .expect("parse history");
            let switch = entries.last().expect("one entry").switch_point;

            // Streaming timeline 1 from its last segment ends with the switch to 2.
            let (data, how) =
                stream_segments(&mut repl, None, 1, switch.segment_start(seg), None, seg).await;
            assert_eq!(
                how,
                StreamEnd::TimelineEnd {
                    next_tli: 2,
                    switch_lsn: switch
                }
            );
            let (name, bytes) = data.iter().next().expect("WAL before the switch");
            assert_eq!(name, &seg.segment_name(1, switch.segno(seg)));
            assert_eq!(bytes.len() as u64, switch.segment_offset(seg));

            // Starting exactly at the switch point skips COPY altogether.
            let mut s = repl
                .start_replication(None, switch, Some(1))
                .await
                .expect("start at the switch point");
            assert_eq!(
                s.next().await.expect("end"),
                WalEvent::End(StreamEnd::TimelineEnd {
                    next_tli: 2,
                    switch_lsn: switch
                })
            );
            repl.identify_system().await.expect("usable afterwards");
        });
    }
}

#[test]
fn server_shutdown_ends_the_stream() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let mut c = ClusterBuilder::new(&pg).start().expect("start");
    let runtime = rt();
    let mut repl = runtime.block_on(walsender(&c));
    let pos = runtime
        .block_on(repl.identify_system())
        .expect("identify")
        .xlogpos;
    let seg = runtime.block_on(repl.wal_segment_size()).expect("size");
    let mut stream = runtime
        .block_on(repl.start_replication(None, pos.segment_start(seg), None))
        .expect("start");
    // A fast shutdown waits for the walsender to send everything, then ends COPY.
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        c.stop(barkeep_testkit::StopMode::Fast).expect("stop");
        c
    });
    let end = runtime.block_on(async {
        loop {
            match stream.next().await {
                Ok(WalEvent::End(e)) => return Ok(e),
                Ok(WalEvent::Keepalive { .. }) => {
                    let w = stream.received_up_to().unwrap_or(pos);
                    stream.send_status(w, w, false).await.expect("status");
                }
                Ok(WalEvent::Data { .. }) => {}
                Err(e) => return Err::<StreamEnd, PgError>(e),
            }
        }
    });
    let _c = stopper.join().expect("stopper");
    match end {
        Ok(e) => assert_eq!(e, StreamEnd::ServerClosed),
        // Terminated walsenders may also say so with an error (57P01).
        Err(e) => assert!(e.is_transient(), "{e}"),
    }
}
