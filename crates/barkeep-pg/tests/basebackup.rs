//! BASE_BACKUP streamed by the native client, unpacked to a directory and checked by
//! PostgreSQL's own `pg_verifybackup` (manifest checksums and the WAL from start to end
//! position, parsed by `pg_waldump`) — on 13/14 (legacy stream) and 15+ (typed stream),
//! with a user tablespace, with WAL inside the backup or streamed separately, with
//! server-side compression, and with a page checksum failure that must fail the backup.

mod common;
use common::rt;

use std::io::Read;
use std::path::{Path, PathBuf};

use barkeep_pg::basebackup::{BackupEvent, BaseBackupOptions, TablespaceInfo};
use barkeep_pg::walstream::WalEvent;
use barkeep_pg::{Connection, PgError};
use barkeep_testkit::{Cluster, ClusterBuilder, PgInstall};
use barkeep_wal::{Lsn, SegmentSize, TimeLineId};

async fn connect(c: &Cluster, replication: bool) -> Connection {
    let extra = if replication { "replication=true" } else { "" };
    common::connect_socket(c, "postgres", extra).await
}

#[derive(Debug, Default)]
struct Taken {
    start: Option<(Lsn, TimeLineId)>,
    end: Option<(Lsn, TimeLineId)>,
    archives: Vec<(String, TablespaceInfo, Vec<u8>)>,
    manifest: Vec<u8>,
    progress: u64,
    completed: bool,
}

/// Runs a BASE_BACKUP and collects it; the error (if any) comes with what had arrived.
async fn take(conn: &mut Connection, opts: &BaseBackupOptions) -> (Taken, Option<PgError>) {
    let mut t = Taken::default();
    let mut stream = match conn.base_backup(opts).await {
        Ok(s) => s,
        Err(e) => return (t, Some(e)),
    };
    let mut open = false;
    loop {
        match stream.next().await {
            Ok(Some(ev)) => match ev {
                BackupEvent::Start { lsn, tli, .. } => t.start = Some((lsn, tli)),
                BackupEvent::ArchiveStart { name, tablespace } => {
                    assert!(!open, "archive started before the previous one ended");
                    open = true;
                    t.archives.push((name, tablespace, Vec::new()));
                }
                BackupEvent::ArchiveData(d) => {
                    assert!(open, "data outside an archive");
                    t.archives
                        .last_mut()
                        .expect("archive")
                        .2
                        .extend_from_slice(&d);
                }
                BackupEvent::ArchiveEnd => {
                    assert!(open);
                    open = false;
                }
                BackupEvent::Progress(n) => {
                    assert!(n >= t.progress, "progress is cumulative");
                    t.progress = n;
                }
                BackupEvent::ManifestStart => assert!(!open),
                BackupEvent::ManifestData(d) => t.manifest.extend_from_slice(&d),
                BackupEvent::End { lsn, tli } => t.end = Some((lsn, tli)),
            },
            Ok(None) => {
                t.completed = true;
                return (t, None);
            }
            Err(e) => return (t, Some(e)),
        }
    }
}

fn decompress(name: &str, data: &[u8]) -> Vec<u8> {
    if name.ends_with(".gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .expect("gunzip");
        out
    } else {
        assert!(name.ends_with(".tar"), "unexpected archive {name}");
        data.to_vec()
    }
}

/// Unpacks the archives as a restore would: base.tar into `dir`, each tablespace into its
/// own directory linked from `pg_tblspc/<oid>`; the manifest beside them.
fn unpack(t: &Taken, dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for (name, ts, data) in &t.archives {
        let tar = decompress(name, data);
        assert!(
            tar.len() >= 1024 && tar[tar.len() - 1024..].iter().all(|b| *b == 0),
            "{name} ends with the tar trailer"
        );
        let target: PathBuf = match ts.oid {
            None => dir.to_path_buf(),
            Some(oid) => dir.with_extension(format!("ts{oid}")),
        };
        std::fs::create_dir_all(&target).expect("mkdir");
        let mut archive = tar::Archive::new(&tar[..]);
        for entry in archive.entries().expect("tar entries") {
            let mut entry = entry.expect("tar entry");
            if entry.header().entry_type().is_symlink() {
                continue; // pg_tblspc links: re-created below
            }
            entry.unpack_in(&target).expect("unpack");
        }
    }
    for (_, ts, _) in &t.archives {
        if let Some(oid) = ts.oid {
            let link = dir.join("pg_tblspc").join(oid.to_string());
            let _ = std::fs::remove_dir(&link);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(dir.with_extension(format!("ts{oid}")), &link)
                .expect("tablespace link");
        }
    }
    std::fs::write(dir.join("backup_manifest"), &t.manifest).expect("manifest");
}

fn verify(c: &Cluster, dir: &Path) {
    let mut cmd = c.tool_command("pg_verifybackup").expect("pg_verifybackup");
    cmd.arg(dir);
    let out = barkeep_testkit::run(cmd, "pg_verifybackup")
        .unwrap_or_else(|e| panic!("PG {}: {e}", c.install().major));
    assert!(out.contains("successfully verified"), "{out}");
}

/// Streams whole segments from `from`'s segment through `to`'s into `pg_wal`.
async fn stream_wal(c: &Cluster, from: Lsn, to: Lsn, tli: TimeLineId, pg_wal: &Path) {
    let mut repl = connect(c, true).await;
    let seg: SegmentSize = repl.wal_segment_size().await.expect("segment size");
    let stop = Lsn(to.segment_start(seg).0 + seg.bytes());
    let mut stream = repl
        .start_replication(None, from.segment_start(seg), Some(tli))
        .await
        .expect("START_REPLICATION");
    let mut files: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    let mut asked = false;
    loop {
        match stream.next().await.expect("WAL") {
            WalEvent::Data { start, data, .. } => {
                let mut pos = start.0;
                for chunk in data.chunks(8192) {
                    let name = seg.segment_name(tli, Lsn(pos).segno(seg));
                    files.entry(name).or_default().extend_from_slice(chunk);
                    pos += chunk.len() as u64;
                }
                if pos >= stop.0 && !asked {
                    asked = true;
                    stream.request_stop().await.expect("stop");
                }
            }
            WalEvent::Keepalive { .. } => {}
            WalEvent::End(_) => break,
        }
    }
    for (name, bytes) in files {
        if bytes.len() as u64 == seg.bytes() {
            std::fs::write(pg_wal.join(name), bytes).expect("write segment");
        }
    }
}

fn with_tablespace(pg: &PgInstall, checksums: bool) -> Cluster {
    let c = ClusterBuilder::new(pg)
        .data_checksums(checksums)
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
        "CREATE TABLE t_main AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g; \
         CREATE TABLE t_ts TABLESPACE ts1 AS SELECT g AS id FROM generate_series(1, 5000) g;",
    )
    .expect("data");
    c
}

#[test]
fn base_backup_verified_by_pg_verifybackup() {
    for pg in barkeep_testkit::test_installs() {
        let c = with_tablespace(&pg, false);
        let work = tempfile::tempdir().expect("tempdir");
        rt().block_on(async {
            let mut repl = connect(&c, true).await;

            // 1. WAL inside the backup, SHA-256 manifest, tablespace symlinks.
            let opts = BaseBackupOptions {
                label: "with wal".into(),
                fast_checkpoint: true,
                include_wal: true,
                manifest_checksums: Some("SHA256".into()),
                ..BaseBackupOptions::default()
            };
            let (t, err) = take(&mut repl, &opts).await;
            assert!(err.is_none(), "PG {}: {err:?}", pg.major);
            assert!(t.completed);
            let names: Vec<&str> = t.archives.iter().map(|a| a.0.as_str()).collect();
            assert_eq!(names.len(), 2, "{names:?}");
            assert!(names[0].ends_with(".tar") && names[0] != "base.tar");
            assert_eq!(names[1], "base.tar");
            let (start, tli) = t.start.expect("start");
            let (end, _) = t.end.expect("end");
            assert!(end > start && tli == 1);
            assert!(t.progress > 0);
            assert!(String::from_utf8_lossy(&t.manifest).contains("\"SHA256\""));
            let dir = work.path().join("b1");
            unpack(&t, &dir);
            verify(&c, &dir);

            // 2. No WAL in the backup: the WAL comes over START_REPLICATION, as barkeep's
            //    archiver will provide it. Tablespace map instead of links.
            let opts = BaseBackupOptions {
                label: "streamed wal".into(),
                fast_checkpoint: true,
                tablespace_map: true,
                ..BaseBackupOptions::default()
            };
            let (t, err) = take(&mut repl, &opts).await;
            assert!(err.is_none(), "PG {}: {err:?}", pg.major);
            let dir = work.path().join("b2");
            unpack(&t, &dir);
            let map = std::fs::read_to_string(dir.join("tablespace_map")).expect("map");
            assert!(map.contains("ts1"), "{map}");
            let mut db = connect(&c, false).await;
            db.query("SELECT pg_switch_wal()").await.expect("switch");
            let (start, tli) = t.start.expect("start");
            let (end, _) = t.end.expect("end");
            stream_wal(&c, start, end, tli, &dir.join("pg_wal")).await;
            verify(&c, &dir);

            // 3. Server-side compression (15+).
            if pg.major >= 15 {
                let opts = BaseBackupOptions {
                    label: "gzip".into(),
                    fast_checkpoint: true,
                    include_wal: true,
                    compression: Some(("gzip".into(), Some("1".into()))),
                    ..BaseBackupOptions::default()
                };
                let (t, err) = take(&mut repl, &opts).await;
                assert!(err.is_none(), "PG {}: {err:?}", pg.major);
                assert!(t.archives.iter().all(|a| a.0.ends_with(".tar.gz")));
                let dir = work.path().join("b3");
                unpack(&t, &dir);
                verify(&c, &dir);
            } else {
                let opts = BaseBackupOptions {
                    compression: Some(("gzip".into(), None)),
                    ..BaseBackupOptions::default()
                };
                let err = repl.base_backup(&opts).await.expect_err("13/14");
                assert!(format!("{err}").contains("15 or later"), "{err}");
            }

            // An option the server refuses is PostgreSQL's error, and the connection
            // stays usable.
            if pg.major >= 15 {
                let opts = BaseBackupOptions {
                    compression: Some(("gzip".into(), Some("level=99".into()))),
                    ..BaseBackupOptions::default()
                };
                let (t, err) = take(&mut repl, &opts).await;
                let err = err.expect("level 99 is refused");
                assert!(matches!(err, PgError::Server { .. }), "{err}");
                assert!(format!("{err}").contains("99"), "{err}");
                assert!(t.archives.is_empty() && !t.completed);
            }
            repl.identify_system().await.expect("usable after backups");
        });
    }
}

#[test]
fn checksum_failure_fails_the_backup_after_the_end_position() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let c = with_tablespace(&pg, true);
    let path = c
        .query_value("SELECT pg_relation_filepath('t_main')")
        .expect("path");
    c.psql("CHECKPOINT").expect("checkpoint");
    // Damage the middle of the first page on disk (its LSN predates the backup, so the
    // server verifies its checksum while sending it).
    let file = c.data_dir().join(path);
    let mut bytes = std::fs::read(&file).expect("read relation");
    for b in &mut bytes[4000..4016] {
        *b ^= 0xff;
    }
    std::fs::write(&file, &bytes).expect("corrupt relation");
    rt().block_on(async {
        let mut repl = connect(&c, true).await;
        let opts = BaseBackupOptions {
            fast_checkpoint: true,
            ..BaseBackupOptions::default()
        };
        let (t, err) = take(&mut repl, &opts).await;
        let err = err.expect("the backup must fail");
        assert_eq!(err.sqlstate(), Some("XX001"), "{err}");
        assert!(t.end.is_some(), "the error comes after the end position");
        assert!(!t.completed);
        let notices = repl.take_notices();
        assert!(
            notices.iter().any(|n| n.message().contains("checksum")),
            "{notices:?}"
        );
        repl.identify_system().await.expect("connection usable");
    });
}

#[test]
fn incremental_backup_after_upload_manifest_combines_and_verifies() {
    for pg in barkeep_testkit::test_installs()
        .into_iter()
        .filter(|p| p.major >= 17)
    {
        let c = ClusterBuilder::new(&pg)
            .setting("summarize_wal", "on")
            .start()
            .expect("start");
        c.psql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 50000) g")
            .expect("data");
        let work = tempfile::tempdir().expect("tempdir");
        rt().block_on(async {
            let mut repl = connect(&c, true).await;
            let full_opts = BaseBackupOptions {
                label: "full".into(),
                fast_checkpoint: true,
                include_wal: true,
                ..BaseBackupOptions::default()
            };
            let (full, err) = take(&mut repl, &full_opts).await;
            assert!(err.is_none(), "{err:?}");
            let full_dir = work.path().join("full");
            unpack(&full, &full_dir);

            c.psql("UPDATE t SET id = id + 1 WHERE id < 100; CHECKPOINT")
                .expect("changes");
            // WAL summaries must reach the start of the next backup; the server waits
            // for them itself (up to a timeout).
            repl.upload_manifest(&full.manifest)
                .await
                .expect("UPLOAD_MANIFEST");
            let inc_opts = BaseBackupOptions {
                label: "incremental".into(),
                incremental: true,
                ..full_opts.clone()
            };
            let (inc, err) = take(&mut repl, &inc_opts).await;
            assert!(err.is_none(), "PG {}: {err:?}", pg.major);
            let inc_dir = work.path().join("inc");
            unpack(&inc, &inc_dir);
            let manifest = String::from_utf8_lossy(&inc.manifest);
            assert!(
                manifest.contains("INCREMENTAL."),
                "incremental files expected"
            );
            let label = std::fs::read_to_string(inc_dir.join("backup_label")).expect("label");
            assert!(label.contains("INCREMENTAL FROM LSN"), "{label}");

            // PostgreSQL's own tools: combine, then verify the synthetic full backup.
            let combined = work.path().join("combined");
            let mut cmd = c
                .tool_command("pg_combinebackup")
                .expect("pg_combinebackup");
            cmd.arg(&full_dir).arg(&inc_dir).arg("-o").arg(&combined);
            barkeep_testkit::run(cmd, "pg_combinebackup").expect("combine");
            let mut cmd = c.tool_command("pg_verifybackup").expect("pg_verifybackup");
            // pg_combinebackup writes a new manifest; the WAL is the incremental's.
            cmd.arg("-w").arg(inc_dir.join("pg_wal")).arg(&combined);
            let out = barkeep_testkit::run(cmd, "pg_verifybackup").expect("verify combined");
            assert!(out.contains("successfully verified"), "{out}");

            // A damaged manifest is refused by the server, with its message.
            let mut bad = full.manifest.clone();
            bad.truncate(bad.len() / 2);
            let err = repl
                .upload_manifest(&bad)
                .await
                .expect_err("broken manifest");
            assert!(matches!(err, PgError::Server { .. }), "{err}");
            repl.identify_system().await.expect("usable");
        });
    }
}
