//! Block-level sharing between plain backups, measured from outside: seven daily backups
//! of a pgbench database (scale 20) with a contiguous 2 % of `pgbench_accounts` updated
//! between them. On XFS with reflink (a loop-mounted image, made by the test) they cost
//! at most 1.5× one full backup (`df` before and after); every backup verifies
//! (`verify-backup`, which runs `pg_verifybackup`); with the five in between deleted, the
//! oldest and the newest each restore and start with exactly their rows. On ext4 the
//! same backups fall back to hard links, and `deduplicated_size` says so.

mod common;

use barkeep_testkit::{ClusterBuilder, SmallFs};
use common::Home;

/// What the scenario measured.
#[derive(Debug)]
struct Figures {
    /// Bytes the first (full) backup added to the file system.
    first: u64,
    /// Bytes all seven added.
    all: u64,
    /// What GNU `du` reports for the seven (it counts a shared extent once per file).
    du: u64,
    /// Sum of the seven backups' `deduplicated_size`.
    dedup_sum: u64,
    /// `size` of one backup.
    size: u64,
}

fn du_bytes(path: &std::path::Path) -> u64 {
    let out = std::process::Command::new("du")
        .arg("-s")
        .arg("-B1")
        .arg(path)
        .output()
        .expect("du");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn info_field(home: &Home, id: &str, key: &str) -> String {
    let meta = home
        .server_dir()
        .join("meta")
        .join(format!("{id}-backup.info"));
    std::fs::read_to_string(&meta)
        .expect("backup.info")
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
        .unwrap_or_default()
}

fn seven_dailies(fs: &SmallFs, scale: u32) -> Figures {
    let pg = barkeep_testkit::require_pg().expect("PostgreSQL (checked by the caller)");
    let c = ClusterBuilder::new(&pg).start().expect("start");
    c.pgbench_init(scale).expect("pgbench -i");
    c.psql("CREATE TABLE marker (day int PRIMARY KEY)")
        .expect("marker");
    let base = fs.path().join("base");
    let home = Home::new(
        &c,
        &format!(
            "immediate_checkpoint = true\nslot_name = barkeep\ncreate_slot = auto\nbasebackups_directory = {}\n",
            base.display()
        ),
    );
    let mut receiver = home.streaming_receiver();
    let rows = i64::from(scale) * 100_000;
    let churn = rows / 50; // 2 %
    let before = fs.used();
    let mut first = 0;
    let mut ids = Vec::new();
    for day in 0..7i64 {
        if day > 0 {
            // A contiguous 2 % of the accounts, a different stretch each day.
            let from = (day - 1) * churn + 1;
            c.psql(&format!(
                "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid BETWEEN {from} AND {}",
                from + churn - 1
            ))
            .expect("churn");
        }
        c.psql(&format!("INSERT INTO marker VALUES ({day})"))
            .expect("marker");
        let o = home
            .cmd(&["backup", "--wait", "--wait-timeout", "120", "pg"])
            .output()
            .expect("backup");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        if std::env::var_os("BARKEEP_TEST_DEBUG").is_some() {
            eprintln!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let id = home
            .run(&["list-backups", "--minimal", "pg"])
            .lines()
            .next()
            .expect("newest")
            .trim()
            .to_string();
        if day == 0 {
            first = fs.used() - before;
        }
        ids.push(id);
    }
    let all = fs.used() - before;
    let du = du_bytes(&base);
    let dedup_sum = ids
        .iter()
        .map(|id| {
            info_field(&home, id, "deduplicated_size")
                .parse::<u64>()
                .expect("dedup")
        })
        .sum();
    let size = info_field(&home, &ids[6], "size").parse().expect("size");
    for id in &ids {
        let out = home.run(&["verify-backup", "pg", id]);
        assert!(out.contains("pg_verifybackup"), "verify-backup {id}: {out}");
    }
    common::switch_and_archive(&home, &c);

    // Only the oldest and the newest are kept; each restores with its own rows.
    for id in &ids[1..6] {
        home.run(&["delete", "pg", id]);
    }
    for (id, days) in [(&ids[0], 1), (&ids[6], 7)] {
        let r = common::restore_and_start(&home, &pg, common::AT_BACKUP, id);
        let got = r
            .query_value("SELECT string_agg(day::text, ',' ORDER BY day) FROM marker")
            .expect("markers");
        let want: Vec<String> = (0..days).map(|d| d.to_string()).collect();
        assert_eq!(got, want.join(","), "backup {id}");
        let touched = r
            .query_value("SELECT count(*) FROM pgbench_accounts WHERE abalance <> 0")
            .expect("churned rows");
        assert_eq!(touched, ((days - 1) * churn).to_string(), "backup {id}");
        assert_eq!(
            r.query_value("SELECT count(*) FROM pgbench_accounts")
                .expect("count"),
            rows.to_string()
        );
    }
    common::kill(&mut receiver, nix::sys::signal::Signal::SIGTERM);
    let _ = receiver.wait();
    let f = Figures {
        first,
        all,
        du,
        dedup_sum,
        size,
    };
    eprintln!(
        "seven dailies (scale {scale}): first {} MiB, all seven {} MiB ({:.2}×) by df; du {} MiB; sum of deduplicated_size {} MiB; size of one {} MiB",
        f.first >> 20,
        f.all >> 20,
        f.all as f64 / f.first.max(1) as f64,
        f.du >> 20,
        f.dedup_sum >> 20,
        f.size >> 20
    );
    f
}

#[test]
fn seven_daily_backups_on_xfs_reflink_cost_at_most_one_and_a_half_fulls() {
    if barkeep_testkit::require_pg().is_none() {
        return;
    }
    let d = tempfile::tempdir().expect("tempdir");
    let Some(xfs) = barkeep_testkit::require_reflink_fs(d.path(), 6144) else {
        return;
    };
    let f = seven_dailies(&xfs, 20);
    assert!(
        f.all * 2 <= f.first * 3,
        "seven backups cost {} bytes, one {} bytes: more than 1.5×",
        f.all,
        f.first
    );
    // deduplicated_size is what each really added: their sum is what df saw, roughly.
    let diff = f.dedup_sum.abs_diff(f.all);
    assert!(
        diff < f.first / 5,
        "deduplicated_size sum {} vs {} on disk",
        f.dedup_sum,
        f.all
    );
}

#[test]
fn on_ext4_backups_fall_back_to_hard_links() {
    if barkeep_testkit::require_pg().is_none() {
        return;
    }
    let d = tempfile::tempdir().expect("tempdir");
    let fs = match SmallFs::mount(d.path(), 8192) {
        Ok(fs) => fs,
        Err(e) => {
            if std::env::var("BARKEEP_TEST_REQUIRE_PG").as_deref() == Ok("1") {
                panic!("cannot mount ext4: {e}");
            }
            eprintln!("SKIP: cannot mount an ext4 file system: {e}");
            return;
        }
    };
    // The full scenario when measuring (BARKEEP_BENCH=1), a small one otherwise.
    let scale = if std::env::var("BARKEEP_BENCH").as_deref() == Ok("1") {
        20
    } else {
        2
    };
    let f = seven_dailies(&fs, scale);
    // No block sharing: every changed file is written whole, so the seven cost several
    // fulls, and deduplicated_size (hard links only) accounts for what df saw.
    assert!(
        f.all > f.first * 3,
        "{} bytes for seven, {} for one",
        f.all,
        f.first
    );
    let diff = f.dedup_sum.abs_diff(f.all);
    assert!(
        diff < f.first / 5,
        "deduplicated_size sum {} vs {} on disk",
        f.dedup_sum,
        f.all
    );
}
