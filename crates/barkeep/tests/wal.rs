//! The WAL archive end to end, with the `barkeep` binary against real PostgreSQL:
//! streaming through restarts, crashes and SIGKILLs with no gap and bytes identical to
//! pg_receivewal's; timeline switches; corrupt files; archive_command and restore_command
//! through barkeep's own clients.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use barkeep_archive::Codec;
use barkeep_testkit::{ClusterBuilder, StopMode};
use common::{BIN, Home, decompress, kill, segment_size, wait_for};

#[test]
fn streaming_survives_restarts_crashes_and_kills_with_no_gap() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let mut c = ClusterBuilder::new(&pg)
        .setting("max_wal_size", "64MB")
        .start()
        .expect("start");
    c.pgbench_init(1).expect("pgbench -i");
    let home = Home::new(
        &c,
        "slot_name = barkeep\ncreate_slot = auto\ncompression = zstd\n",
    );
    let seg = segment_size(&c);

    // pg_receivewal on its own slot, alongside, as the reference.
    let reference = home.dir.path().join("reference");
    std::fs::create_dir(&reference).expect("mkdir");
    let sock = c.socket_dir().to_path_buf();
    let port = c.port().to_string();
    let recvwal_bin = pg.tool("pg_receivewal").expect("pg_receivewal");
    let recvwal = |extra: &[&str]| {
        let mut cmd = Command::new(&recvwal_bin);
        if let Some(lib) = recvwal_bin
            .parent()
            .and_then(Path::parent)
            .map(|p| p.join("lib"))
        {
            cmd.env("LD_LIBRARY_PATH", lib);
        }
        cmd.args(["-h"])
            .arg(&sock)
            .args(["-p", &port, "-U", "postgres", "-S", "reference", "-D"])
            .arg(&reference)
            .args(extra);
        cmd
    };
    barkeep_testkit::run(recvwal(&["--create-slot"]), "pg_receivewal --create-slot").expect("slot");
    // The reference must start no later than barkeep: both begin at the current segment.
    let mut receiver = home.receiver();
    let spawn_ref = || {
        recvwal(&[])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pg_receivewal")
    };
    let mut reference_proc = spawn_ref();
    wait_for(
        &home,
        "the receiver's first partial segment",
        Duration::from_secs(30),
        || {
            std::fs::read_dir(home.server_dir().join("streaming"))
                .map(|rd| rd.flatten().count() > 0)
                .unwrap_or(false)
        },
    );

    // Load with disruptions: fast restarts, crashes, and SIGKILLed receivers.
    // About two minutes of load in all (BARKEEP_TEST_LOAD_SECS per step, default 10).
    let step: u32 = std::env::var("BARKEEP_TEST_LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let events = [
        "kill", "restart", "kill", "crash", "kill", "restart", "crash", "kill", "crash", "kill",
    ];
    for (i, ev) in events.iter().enumerate() {
        let _ = c.pgbench_run(step, 2, &[]);
        match *ev {
            "kill" => {
                kill(&mut receiver, nix::sys::signal::Signal::SIGKILL);
                receiver = home.receiver();
            }
            "restart" => c
                .stop(StopMode::Fast)
                .and_then(|()| c.start())
                .expect("restart"),
            _ => c.crash().and_then(|()| c.start()).expect("crash + start"),
        }
        if i % 2 == 1 {
            let _ = home.cmd(&["archive-wal", "pg"]).output();
        }
        // pg_receivewal exits after a server restart (it loops only on its own terms).
        if let Ok(Some(_)) = reference_proc.try_wait() {
            reference_proc = spawn_ref();
        }
    }
    let _ = c.pgbench_run(step, 2, &[]);

    // Close the last segment; wait for both sides to have it complete.
    let last = c
        .query_value("SELECT pg_walfile_name(pg_switch_wal())")
        .expect("switch");
    wait_for(
        &home,
        "barkeep to archive the last segment",
        Duration::from_secs(90),
        || {
            let _ = home.cmd(&["archive-wal", "pg"]).output();
            if let Ok(Some(_)) = receiver.try_wait() {
                receiver = home.receiver();
            }
            home.archived().last().is_some_and(|l| *l >= last)
        },
    );
    wait_for(
        &home,
        "pg_receivewal to complete the last segment",
        Duration::from_secs(90),
        || {
            if let Ok(Some(_)) = reference_proc.try_wait() {
                reference_proc = spawn_ref();
            }
            reference.join(&last).exists()
        },
    );
    kill(&mut receiver, nix::sys::signal::Signal::SIGTERM);
    kill(&mut reference_proc, nix::sys::signal::Signal::SIGINT);
    home.run(&["archive-wal", "pg"]);

    // No gap, from the first archived segment to the last.
    let archived = home.archived();
    let log = home.receiver_log();
    assert!(
        archived.len() >= 4,
        "only {} segments archived\n{log}",
        archived.len()
    );
    let segnos: Vec<u64> = archived
        .iter()
        .map(|n| seg.parse_segment_name(n).expect("name").segno)
        .collect();
    for w in segnos.windows(2) {
        assert_eq!(
            w[1],
            w[0] + 1,
            "gap after {}\n{log}",
            seg.segment_name(1, w[0])
        );
    }
    // Byte-identical to pg_receivewal's files, decompressed.
    let mut compared = 0;
    for name in &archived {
        let theirs = reference.join(name);
        if !theirs.exists() {
            continue;
        }
        let ours = decompress(&home.archived_path(name));
        assert!(
            ours == std::fs::read(&theirs).expect("reference"),
            "{name} differs from pg_receivewal's"
        );
        compared += 1;
    }
    assert!(
        compared + 1 >= archived.len(),
        "compared {compared} of {}",
        archived.len()
    );
    eprintln!(
        "{} segments archived without a gap ({} .. {}), {compared} identical to pg_receivewal's",
        archived.len(),
        archived[0],
        archived[archived.len() - 1]
    );
    // The catalog lists them, compressed with zstd.
    let xlogdb =
        std::fs::read_to_string(home.server_dir().join("wals/pg-xlog.db")).expect("xlog.db");
    for name in &archived {
        assert!(
            xlogdb.contains(&format!("{name}\t")),
            "{name} not in xlog.db"
        );
    }
    assert!(
        xlogdb.lines().all(|l| l.split('\t').nth(3) == Some("zstd")),
        "{xlogdb}"
    );

    // pg_waldump reads across the whole range (decompressed by get-wal).
    let plain = home.dir.path().join("plain");
    std::fs::create_dir(&plain).expect("mkdir");
    for name in &archived {
        home.run(&["get-wal", "pg", name, "-o", plain.to_str().expect("utf-8")]);
    }
    let mut waldump = c.tool_command("pg_waldump").expect("pg_waldump");
    waldump
        .arg("-p")
        .arg(&plain)
        .arg("--stats")
        .arg(&archived[0])
        .arg(archived.last().expect("last"));
    let out = waldump.output().expect("pg_waldump");
    assert!(
        out.status.success(),
        "pg_waldump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn streaming_follows_a_promotion_to_timeline_2() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    // A standby without a primary: timeline 1 until promoted.
    let mut c = ClusterBuilder::new(&pg)
        .file("standby.signal", b"")
        .start()
        .expect("start standby");
    let home = Home::new(&c, "compression = gzip\n");
    let mut receiver = home.receiver();
    wait_for(
        &home,
        "streaming on timeline 1",
        Duration::from_secs(30),
        || home.receiver_log().contains("on timeline 1"),
    );
    c.promote().expect("promote");
    c.wait_for_recovery_end(Duration::from_secs(60))
        .expect("promoted");
    c.psql("CREATE TABLE after_promotion AS SELECT generate_series(1, 1000) AS i")
        .expect("write on timeline 2");
    let last = c
        .query_value("SELECT pg_walfile_name(pg_switch_wal())")
        .expect("switch");
    assert!(last.starts_with("00000002"), "{last}");
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
    let log = home.receiver_log();
    assert!(log.contains("following timeline 2"), "{log}");
    let wals = home.server_dir().join("wals");
    let history = std::fs::read(wals.join("00000002.history")).expect("history archived");
    assert_eq!(
        history,
        std::fs::read(c.data_dir().join("pg_wal/00000002.history")).expect("server's history")
    );
    // The old timeline's last segment is kept as .partial, as pg_receivewal leaves it.
    let partials: Vec<String> = std::fs::read_dir(wals.join("0000000100000000"))
        .expect("timeline 1 dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert_eq!(partials.len(), 1, "{partials:?}");
    // The timeline-2 copy of the switch segment starts with timeline 1's bytes.
    let switch_seg = &partials[0][..24];
    let new_name = format!("00000002{}", &switch_seg[8..]);
    let old = decompress(&wals.join("0000000100000000").join(&partials[0]));
    let new = decompress(&home.archived_path(&new_name));
    let entries =
        barkeep_wal::parse_history(std::str::from_utf8(&history).expect("utf-8")).expect("parse");
    let seg = segment_size(&c);
    let upto = entries[0].switch_point.segment_offset(seg) as usize;
    assert_eq!(old[..upto], new[..upto]);
}

#[test]
fn archive_command_and_restore_command_through_barkeep_clients() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let home = Home::empty();
    let archive_command = format!(
        "'{BIN} -c {} wal-archive --local localhost pg %p'",
        home.config.display()
    );
    // Until the configuration is written, archive_command fails and the server retries.
    let mut c = ClusterBuilder::new(&pg)
        .setting("archive_mode", "on")
        .setting("archive_command", &archive_command)
        .start()
        .expect("start");
    // archive_command and restore_command run as the server's OS user: with
    // `catalog_group` its group may deliver into incoming/ and read the archive.
    home.configure_full(
        &c.socket_conninfo("postgres", "postgres"),
        &format!("catalog_group = {}\n", c.os_user().group_name()),
        "compression = lz4\n",
    );
    home.run(&["archive-wal", "pg"]);

    c.psql("CREATE TABLE t (i int); INSERT INTO t SELECT generate_series(1, 1000)")
        .expect("data");
    let backup = home.dir.path().join("base");
    let mut bb = c.tool_command("pg_basebackup").expect("pg_basebackup");
    bb.arg("-h")
        .arg(c.socket_dir())
        .args([
            "-p",
            &c.port().to_string(),
            "-U",
            "postgres",
            "-X",
            "none",
            "-c",
            "fast",
            "-D",
        ])
        .arg(&backup);
    barkeep_testkit::run(bb, "pg_basebackup").expect("base backup");
    c.psql("INSERT INTO t SELECT generate_series(1001, 3000)")
        .expect("more data");
    let last = c
        .query_value("SELECT pg_walfile_name(pg_switch_wal())")
        .expect("switch");
    wait_for(
        &home,
        "archive_command to deliver the last segment",
        Duration::from_secs(60),
        || {
            let _ = home.cmd(&["archive-wal", "pg"]).output();
            home.archived().iter().any(|n| *n >= last)
        },
    );
    let xlogdb =
        std::fs::read_to_string(home.server_dir().join("wals/pg-xlog.db")).expect("xlog.db");
    assert!(xlogdb.contains("\tlz4\t"), "{xlogdb}");

    // Corrupt files in incoming/ go to errors/, good ones are still archived.
    let good = home.archived()[0].clone();
    let seg = segment_size(&c);
    let plain = decompress(&home.archived_path(&good));
    let base = seg.parse_segment_name(&good).expect("name").segno + 1000;
    let incoming = home.server_dir().join("incoming");
    let mut bad_magic = plain.clone();
    bad_magic[0] ^= 0xff;
    let mut other_cluster = plain.clone();
    other_cluster[24] ^= 0xff;
    let corrupt = [
        (seg.segment_name(1, base), bad_magic),
        (seg.segment_name(1, base + 1), other_cluster),
        (
            seg.segment_name(1, base + 2),
            plain[..plain.len() / 3].to_vec(),
        ),
    ];
    for (n, data) in &corrupt {
        std::fs::write(incoming.join(n), data).expect("corrupt file");
    }
    c.psql("INSERT INTO t SELECT generate_series(3001, 4000)")
        .expect("more");
    let last2 = c
        .query_value("SELECT pg_walfile_name(pg_switch_wal())")
        .expect("switch");
    wait_for(
        &home,
        "the archive to go on past corrupt files",
        Duration::from_secs(60),
        || {
            let out = home
                .cmd(&["archive-wal", "pg"])
                .output()
                .expect("archive-wal");
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            if !corrupt.iter().all(|(n, _)| !incoming.join(n).exists()) {
                return false;
            }
            if !err.is_empty() {
                for (n, _) in &corrupt {
                    if err.contains(n.as_str()) {
                        assert!(err.contains("not valid WAL"), "{err}");
                    }
                }
            }
            home.archived().iter().any(|n| *n >= last2)
        },
    );
    let errors: Vec<String> = std::fs::read_dir(home.server_dir().join("errors"))
        .expect("errors dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for (n, _) in &corrupt {
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(n.as_str()) && e.ends_with(".invalid")),
            "{n} not in errors: {errors:?}"
        );
    }

    // A cluster restored from the base backup recovers with barkeep's restore_command.
    // With parallel prefetch into a spool directory, as barman-wal-restore -p does.
    // The spool is the database host's, owned by the server's OS user.
    let spool = home.dir.path().join("spool");
    std::fs::create_dir(&spool).expect("spool");
    c.os_user().chown_tree(&spool).expect("chown spool");
    let restore_command = format!(
        "'{BIN} -c {} wal-restore --local --parallel 3 --spool-dir {} localhost pg %f %p'",
        home.config.display(),
        spool.display()
    );
    let mut r = ClusterBuilder::new(&pg)
        .create()
        .expect("create restore target");
    r.replace_data_dir(
        &backup,
        &format!("archive_mode = off\nrestore_command = {restore_command}\nrecovery_target_action = promote\n"),
    )
    .expect("restore data dir");
    std::fs::write(r.data_dir().join("recovery.signal"), b"").expect("recovery.signal");
    r.os_user().chown_tree(r.data_dir()).expect("chown");
    r.start().expect("start recovering cluster");
    r.wait_for_recovery_end(Duration::from_secs(120))
        .expect("recovery ends");
    assert_eq!(
        r.query_value("SELECT count(*) FROM t").expect("count"),
        "4000"
    );
    let _ = c.stop(StopMode::Fast);
}

#[test]
fn files_compressed_by_system_tools_are_recognised() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let c = ClusterBuilder::new(&pg).start().expect("start");
    let home = Home::new(&c, "");
    c.psql("CREATE TABLE t AS SELECT generate_series(1, 10000) i")
        .expect("data");
    // Real WAL segments, taken with pg_receivewal.
    let segs = home.dir.path().join("segs");
    let first = c
        .query_value("SELECT pg_walfile_name(pg_current_wal_lsn())")
        .expect("first");
    for _ in 0..5 {
        c.psql("INSERT INTO t SELECT generate_series(1, 1000); SELECT pg_switch_wal()")
            .expect("wal");
    }
    let end = c.query_value("SELECT pg_current_wal_lsn()").expect("end");
    c.psql("CREATE TABLE past_end ()").expect("more");
    let names = c
        .receive_segments(&segs, &first, &end)
        .expect("pg_receivewal");
    let tools: [(&str, &[&str], Codec); 5] = [
        ("gzip", &["-c"], Codec::Gzip),
        ("bzip2", &["-c"], Codec::Bzip2),
        ("xz", &["-c"], Codec::Xz),
        ("zstd", &["-q", "-c"], Codec::Zstd),
        ("lz4", &["-q", "-c"], Codec::Lz4),
    ];
    assert!(names.len() >= tools.len(), "{names:?}");
    let incoming = home.server_dir().join("incoming");
    std::fs::create_dir_all(&incoming).expect("incoming");
    let mut expected = Vec::new();
    for ((tool, args, codec), name) in tools.iter().zip(&names) {
        let out = Command::new(tool)
            .args(*args)
            .arg(segs.join(name))
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "`{tool}` is needed for this test (scripts/setup-test-env.sh installs it): {e}"
                )
            });
        assert!(out.status.success(), "{tool} failed");
        assert_eq!(Codec::detect(&out.stdout), *codec, "{tool}");
        std::fs::write(incoming.join(name), &out.stdout).expect("write");
        expected.push((name.clone(), *codec));
    }
    home.run(&["archive-wal", "pg"]);
    let xlogdb =
        std::fs::read_to_string(home.server_dir().join("wals/pg-xlog.db")).expect("xlog.db");
    for (name, codec) in expected {
        // Stored as the tool compressed it, catalogued with its codec, served decompressed.
        assert!(xlogdb.contains(&format!("{name}\t")), "{name}");
        let line = xlogdb.lines().find(|l| l.starts_with(&name)).expect("line");
        assert_eq!(line.split('\t').nth(3), Some(codec.name()), "{line}");
        let out = home
            .cmd(&["get-wal", "pg", &name])
            .output()
            .expect("get-wal");
        assert!(out.status.success());
        assert!(
            out.stdout == std::fs::read(segs.join(&name)).expect("original"),
            "{name} via {}",
            codec.name()
        );
    }
    let out = home
        .cmd(&["get-wal", "pg", "0000000100000000000000FF"])
        .output()
        .expect("get-wal missing");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("WAL file '0000000100000000000000FF' not found in server 'pg'"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn synchronous_receiver_switch_wal_and_replication_status() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    // With barkeep's receiver as the synchronous standby, commits wait for its fsync.
    let c = ClusterBuilder::new(&pg)
        .setting("synchronous_standby_names", "'barman_receive_wal'")
        .start()
        .expect("start");
    let home = Home::new(&c, "slot_name = barkeep\ncreate_slot = auto\n");
    let mut receiver = home.receiver();
    wait_for(
        &home,
        "the synchronous receiver",
        Duration::from_secs(30),
        || {
            c.query_value("SELECT sync_state FROM pg_stat_replication WHERE application_name = 'barman_receive_wal'")
            .is_ok_and(|s| s == "sync")
        },
    );
    assert!(
        home.receiver_log().contains("synchronous mode"),
        "{}",
        home.receiver_log()
    );
    // A commit returns only once the receiver reported it flushed.
    c.psql("CREATE TABLE sync_t AS SELECT 1 AS i")
        .expect("synchronous commit");
    let flushed = c
        .query_value("SELECT flush_lsn >= pg_current_wal_lsn() FROM pg_stat_replication WHERE application_name = 'barman_receive_wal'")
        .expect("flush");
    assert_eq!(flushed, "t");

    let status = home.run(&["replication-status", "pg"]);
    assert!(
        status.contains("Application name: barman_receive_wal"),
        "{status}"
    );
    assert!(status.contains("Sync WAL streamer"), "{status}");
    let json = home.run(&["-f", "json", "replication-status", "pg"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["pg"]["clients"][0]["sync_state"], "sync");

    // switch-wal --archive: the closed segment is streamed and archived.
    let out = home.run(&["switch-wal", "--archive", "--archive-timeout", "60", "pg"]);
    assert!(out.contains("has been closed on server 'pg'"), "{out}");
    let closed = out
        .split_whitespace()
        .find(|w| w.len() == 24)
        .expect("segment name")
        .to_string();
    assert!(home.archived().contains(&closed), "{out}");
    // Nothing written since: no switch.
    let again = home.run(&["switch-wal", "pg"]);
    assert!(
        again.contains("No switch required for server 'pg'"),
        "{again}"
    );

    // One receiver per server.
    let out = home
        .cmd(&["receive-wal", "pg"])
        .output()
        .expect("second receiver");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("Another receive-wal process is already running")
    );
    // --stop ends the running one.
    let stop = home.run(&["receive-wal", "--stop", "pg"]);
    assert!(stop.contains("Stopped process receive-wal("), "{stop}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while receiver.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "receiver did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Slot management.
    let out = home
        .cmd(&["receive-wal", "--create-slot", "pg"])
        .output()
        .expect("create");
    assert!(!out.status.success(), "slot exists already");
    home.run(&["receive-wal", "--create-slot", "--if-not-exists", "pg"]);
    home.run(&["receive-wal", "--drop-slot", "pg"]);
    assert_eq!(
        c.query_value("SELECT count(*) FROM pg_replication_slots")
            .expect("slots"),
        "0"
    );
}

/// Defect: a receiver SIGKILLed while pre-filling a new segment left
/// `streaming/<seg>.partial` at 8388608 bytes, and every restart then refused to run.
/// Both kinds of short file a crash (or another tool) can leave must resume by themselves:
/// zeros (no WAL: prepared again) and data (moved to `errors/`, never deleted, and the
/// segment streamed again from the slot).
#[test]
fn a_short_partial_left_by_a_crash_resumes_by_itself() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let c = ClusterBuilder::new(&pg).start().expect("start");
    let home = Home::new(&c, "slot_name = barkeep\n");
    home.run(&["receive-wal", "--create-slot", "pg"]);
    let seg = segment_size(&c);
    let streaming = home.server_dir().join("streaming");
    let errors = home.server_dir().join("errors");
    for (case, content) in [("zeros", 0u8), ("data", 0x5a)] {
        let current = c
            .query_value("SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
            .expect("current segment");
        std::fs::create_dir_all(&streaming).expect("mkdir");
        // What the killed receiver left: half a segment.
        let half = vec![content; (seg.bytes() / 2) as usize];
        std::fs::write(streaming.join(format!("{current}.partial")), &half).expect("short partial");
        let mut receiver = home.receiver();
        c.psql(&format!(
            "CREATE TABLE t_{case} AS SELECT generate_series(1, 1000) AS i"
        ))
        .expect("write");
        let closed = c
            .query_value("SELECT pg_walfile_name(pg_switch_wal())")
            .expect("switch");
        assert_eq!(closed, current);
        wait_for(
            &home,
            &format!("the segment after a short partial of {case} to be archived"),
            Duration::from_secs(60),
            || {
                if let Ok(Some(st)) = receiver.try_wait() {
                    panic!(
                        "receive-wal exited ({st}) instead of resuming:\n{}",
                        home.receiver_log()
                    );
                }
                home.archived().contains(&closed)
            },
        );
        kill(&mut receiver, nix::sys::signal::Signal::SIGTERM);
        // The archived segment is whole and is the server's WAL (its validation passed),
        // and nothing that may have been WAL was thrown away.
        assert_eq!(
            decompress(&home.archived_path(&closed)).len() as u64,
            seg.bytes()
        );
        let kept: Vec<String> = std::fs::read_dir(&errors)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let moved = kept
            .iter()
            .find(|n| n.starts_with(&format!("{current}.partial.")));
        if content == 0 {
            assert!(moved.is_none(), "zeros are no WAL: {kept:?}");
        } else {
            let moved = moved.unwrap_or_else(|| panic!("data kept in errors/: {kept:?}"));
            assert_eq!(std::fs::read(errors.join(moved)).expect("kept"), half);
        }
    }
    // No pre-fill leftovers.
    let leftovers: Vec<String> = std::fs::read_dir(&streaming)
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn wal_clients_take_barmans_compression_options() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let c = ClusterBuilder::new(&pg).start().expect("start");
    let home = Home::new(&c, "");
    c.psql("CREATE TABLE t AS SELECT generate_series(1, 1000) AS i")
        .expect("rows");
    let name = c
        .query_value("SELECT pg_walfile_name(pg_switch_wal())")
        .expect("switch");
    let original = std::fs::read(c.data_dir().join("pg_wal").join(&name)).expect("segment");
    let path = home.dir.path().join(&name);
    std::fs::write(&path, &original).expect("copy");
    // barman-wal-archive's --zstd: sent compressed, stored as it came.
    let p = path.display().to_string();
    home.run(&[
        "wal-archive",
        "--local",
        "--zstd",
        "--compression-level",
        "5",
        "localhost",
        "pg",
        &p,
    ]);
    home.run(&["archive-wal", "pg"]);
    let stored = std::fs::read(home.archived_path(&name)).expect("archived");
    assert_eq!(&stored[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd magic");
    // get-wal decompresses; -z sends gzip.
    let out = home
        .cmd(&["get-wal", "pg", &name])
        .output()
        .expect("get-wal");
    assert!(out.status.success());
    assert!(
        out.stdout == original,
        "get-wal returns the segment as PostgreSQL wrote it"
    );
    let out = home
        .cmd(&["get-wal", "-z", "pg", &name])
        .output()
        .expect("get-wal -z");
    assert_eq!(&out.stdout[..2], &[0x1f, 0x8b], "gzip magic");
    assert_eq!(decompress_bytes(&out.stdout), original);
    // barman-wal-restore's --keep-compression: delivered decompressed.
    let dest = home.dir.path().join("restored");
    home.run(&[
        "wal-restore",
        "--local",
        "--keep-compression",
        "localhost",
        "pg",
        &name,
        &dest.display().to_string(),
    ]);
    assert!(std::fs::read(&dest).expect("restored") == original);
}

fn decompress_bytes(b: &[u8]) -> Vec<u8> {
    let mut r = Codec::sniff(b).expect("sniff");
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut r, &mut out).expect("read");
    out
}
