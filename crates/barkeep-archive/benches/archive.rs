//! Archive throughput per codec on real WAL (pgbench), with all cores:
//! `cargo bench -p barkeep-archive --bench archive [-- SEGMENTS]`.
//!
//! Generates WAL with pgbench on a throwaway cluster, collects whole segments with
//! pg_receivewal, then for each codec times `archive-wal` (validate + compress + fsync +
//! rename + xlog.db) and `get-wal` (decompress) over the same segments. Prints a Markdown
//! table for docs/benchmarks.md.

use std::path::Path;
use std::time::Instant;

use barkeep_archive::{Codec, Identity, Level, ServerArchive};

fn main() {
    // `cargo test --all-targets` runs benches once as tests: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("archive benchmark: run with `cargo bench -p barkeep-archive --bench archive`");
        return;
    }
    let segments: usize = std::env::args()
        .filter_map(|a| a.parse().ok())
        .next()
        .unwrap_or(16);
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let c = barkeep_testkit::ClusterBuilder::new(&pg)
        .setting("max_wal_size", "1GB")
        .start()
        .expect("cluster");
    let work = tempfile::tempdir().expect("tempdir");
    let wal = work.path().join("wal");
    let first = c
        .query_value("SELECT pg_walfile_name(pg_current_wal_lsn())")
        .expect("first");
    c.pgbench_init(1).expect("pgbench -i");
    let seg_bytes: u64 = 16 << 20;
    let want_end = || {
        let lsn = c
            .query_value("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
            .expect("lsn");
        lsn.parse::<f64>().unwrap_or(0.0) as u64
    };
    let start = want_end();
    while want_end() < start + seg_bytes * segments as u64 {
        c.pgbench_run(5, 2, &[]).expect("pgbench");
    }
    c.psql("SELECT pg_switch_wal()").expect("switch");
    let end = c.query_value("SELECT pg_current_wal_lsn()").expect("end");
    c.psql("CREATE TABLE past_end ()").expect("more");
    let files = c
        .receive_segments(&wal, &first, &end)
        .expect("pg_receivewal");
    let sysid = c
        .query_value("SELECT system_identifier FROM pg_control_system()")
        .expect("sysid");
    let input: u64 = files.len() as u64 * seg_bytes;
    println!(
        "{} segments of pgbench WAL ({} MiB), PostgreSQL {}, {} cores\n",
        files.len(),
        input >> 20,
        pg.major,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!("| codec (level medium) | archive-wal MiB/s | stored size | get-wal MiB/s |");
    println!("| --- | ---: | ---: | ---: |");
    for codec in [
        Codec::None,
        Codec::Lz4,
        Codec::Snappy,
        Codec::Zstd,
        Codec::Gzip,
        Codec::Bzip2,
        Codec::Xz,
    ] {
        let root = work.path().join(format!("a-{}", codec.name()));
        let a = ServerArchive {
            server: "bench".into(),
            wals: root.join("wals"),
            incoming: root.join("incoming"),
            streaming: root.join("streaming"),
            errors: root.join("errors"),
            xlogdb_dir: root.join("wals"),
            lock_dir: root.clone(),
            identity_file: root.join("identity.json"),
            codec,
            level: Level::Medium,
            hooks: None,
        };
        a.create_directories().expect("dirs");
        Identity::new(sysid.clone(), pg.major)
            .save(&a.identity_file)
            .expect("identity");
        for f in &files {
            std::fs::copy(wal.join(f), a.incoming.join(f)).expect("copy");
        }
        let t = Instant::now();
        let out = a.archive_wal().expect("archive");
        let archive_s = t.elapsed().as_secs_f64();
        assert_eq!(out.len(), files.len());
        let stored: u64 = files
            .iter()
            .map(|f| {
                std::fs::metadata(a.wals.join(&f[..16]).join(f))
                    .expect("stat")
                    .len()
            })
            .sum();
        let t = Instant::now();
        for f in &files {
            let mut sink = std::io::sink();
            a.get_wal(f, false, false, &mut sink).expect("get");
        }
        let get_s = t.elapsed().as_secs_f64();
        let mib = input as f64 / (1 << 20) as f64;
        println!(
            "| {} | {:.0} | {:.1}% | {:.0} |",
            codec.name(),
            mib / archive_s,
            stored as f64 * 100.0 / input as f64,
            mib / get_s
        );
        let _ = std::fs::remove_dir_all(Path::new(&root));
    }
}
