//! The fault campaign's part for the paths of incremental chains and block sharing
//! (PostgreSQL 17+, the catalog on XFS with reflink where it can be mounted): SIGKILLs at
//! random instants of an incremental backup, of the restore of a chain (combined
//! natively), and of the delete of a chain's root. After each, without a person: the
//! next command works, every DONE backup verifies, the chain links are whole (every
//! parent exists, no children list names a missing backup), and a restore of the newest
//! backup starts with exactly the rows it holds.
//!
//! `BARKEEP_CHAIN_FAULT_TRIALS` (default 6) trials; the seed is printed and
//! `BARKEEP_FAULT_SEED` replays it.

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use barkeep_testkit::ClusterBuilder;
use common::{Home, kill};
use nix::sys::signal::Signal;

fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }
}

/// Every backup's metadata: id → (status, parent, children).
fn catalog(home: &Home) -> BTreeMap<String, (String, String, String)> {
    let mut out = BTreeMap::new();
    let meta = home.server_dir().join("meta");
    for e in std::fs::read_dir(&meta).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix("-backup.info") else {
            continue;
        };
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or("None")
                .to_string()
        };
        out.insert(
            id.to_string(),
            (
                field("status"),
                field("parent_backup_id"),
                field("children_backup_ids"),
            ),
        );
    }
    out
}

/// The chain links are whole, every DONE backup verifies.
fn check_catalog(home: &Home, what: &str, lib: Option<&std::path::Path>) {
    // Any command finishes what a killed one left (interrupted deletes, dead backups).
    home.run(&["list-backups", "pg"]);
    let cat = catalog(home);
    for (id, (status, parent, children)) in &cat {
        if parent != "None" {
            assert!(
                cat.contains_key(parent),
                "{what}: backup {id} ({status}) has a missing parent {parent}: {cat:?}"
            );
        }
        if children != "None" {
            for c in children.split(',') {
                assert!(
                    cat.contains_key(c),
                    "{what}: backup {id} lists a missing child {c}: {cat:?}"
                );
            }
        }
        assert!(
            status != "STARTED" && status != "EMPTY",
            "{what}: backup {id} left {status}"
        );
        if status == "DONE" {
            let mut v = home.cmd(&["verify-backup", "pg", id]);
            if let Some(l) = lib {
                v.env("LD_LIBRARY_PATH", l);
            }
            let o = v.output().expect("verify-backup");
            assert!(
                o.status.success(),
                "{what}: backup {id} does not verify: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}

#[test]
fn kills_on_incremental_chains_leave_a_catalog_that_resumes() {
    let Some(pg) = barkeep_testkit::require_installs_from(17)
        .into_iter()
        .last()
    else {
        return;
    };
    let trials = env_u64("BARKEEP_CHAIN_FAULT_TRIALS", 6);
    let seed = env_u64(
        "BARKEEP_FAULT_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    );
    eprintln!(
        "chain faults: PostgreSQL {}, seed {seed}, {trials} trials",
        pg.major
    );
    let mut rng = Rng(seed);
    let c = ClusterBuilder::new(&pg)
        .setting("summarize_wal", "on")
        .start()
        .expect("start");
    c.pgbench_init(3).expect("pgbench -i");
    c.psql("CREATE TABLE marker (id int PRIMARY KEY)")
        .expect("marker");
    let scratch = tempfile::tempdir().expect("tempdir");
    let xfs = barkeep_testkit::SmallFs::mount_xfs_reflink(scratch.path(), 2048).ok();
    let base = match &xfs {
        Some(fs) => fs.path().join("base"),
        None => {
            eprintln!("(no XFS with reflink here: the chains are stored without block sharing)");
            scratch.path().join("base")
        }
    };
    let home = Home::new(
        &c,
        &format!(
            "immediate_checkpoint = true\nslot_name = barkeep\ncreate_slot = auto\nbasebackups_directory = {}\npath_prefix = {}\n",
            base.display(),
            pg.bin.display()
        ),
    );
    let lib = pg
        .bin
        .parent()
        .map(|p| p.join("lib"))
        .filter(|l| l.join("libpq.so.5").exists());
    let mut receiver = home.streaming_receiver();
    let mut marker = 0;
    // Markers present when each backup was taken (restores to its consistency point).
    let mut rows_at: BTreeMap<String, i32> = BTreeMap::new();
    let newest = |home: &Home| -> String {
        home.run(&["list-backups", "--minimal", "pg"])
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let backup = |home: &Home, args: &[&str], marker: i32, rows_at: &mut BTreeMap<String, i32>| {
        let mut a = vec!["backup", "--wait", "--wait-timeout", "120"];
        a.extend_from_slice(args);
        a.push("pg");
        let mut cmd = home.cmd(&a);
        if let Some(l) = &lib {
            cmd.env("LD_LIBRARY_PATH", l);
        }
        let o = cmd.output().expect("backup");
        assert!(
            o.status.success(),
            "backup {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        rows_at.insert(newest(home), marker);
        std::thread::sleep(Duration::from_millis(1100));
    };
    backup(&home, &["--full"], marker, &mut rows_at);
    for trial in 0..trials {
        marker += 1;
        c.psql(&format!(
            "INSERT INTO marker VALUES ({marker}); UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 500 = {marker}"
        ))
        .expect("writes");
        let what = format!("trial {trial} (seed {seed})");
        let kind = rng.below(3);
        match std::env::var("BARKEEP_CHAIN_FAULT_ONLY")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(kind)
        {
            0 => {
                // An incremental backup killed at a random instant; the next one works.
                let mut p = home
                    .cmd(&["backup", "--incremental", "latest", "pg"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn backup");
                std::thread::sleep(Duration::from_millis(rng.below(2500)));
                kill(&mut p, Signal::SIGKILL);
                eprintln!("{what}: killed an incremental backup");
                check_catalog(&home, &what, lib.as_deref());
                backup(&home, &["--incremental", "latest"], marker, &mut rows_at);
            }
            1 => {
                // The restore of the newest backup (a chain) killed; run again, it
                // finishes in place and starts with its rows.
                backup(&home, &["--incremental", "latest"], marker, &mut rows_at);
                let id = newest(&home);
                let mut r = ClusterBuilder::new(&pg).create().expect("target");
                std::fs::remove_dir_all(r.data_dir()).expect("empty");
                let dest = r.data_dir().to_str().expect("utf-8").to_string();
                let args = [
                    "restore",
                    "--target-immediate",
                    "--target-action",
                    "promote",
                    "pg",
                    &id,
                    &dest,
                ];
                let mut p = home
                    .cmd(&args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn restore");
                std::thread::sleep(Duration::from_millis(rng.below(1500)));
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p.id() as i32),
                    Signal::SIGKILL,
                );
                let finished = p.wait().is_ok_and(|st| st.success());
                eprintln!("{what}: killed the restore of {id} (finished first: {finished})");
                if !finished {
                    home.run(&args);
                }
                r.adopt_data_dir("").expect("adopt");
                r.start().expect("restored cluster starts");
                r.wait_for_recovery_end(Duration::from_secs(120))
                    .expect("recovery ends");
                let n = r
                    .query_value("SELECT count(*) FROM marker")
                    .expect("markers");
                assert_eq!(n, rows_at[&id].to_string(), "{what}: rows of backup {id}");
            }
            _ => {
                // A new full backup, then the delete of the oldest chain's root killed.
                backup(&home, &["--full"], marker, &mut rows_at);
                let cat = catalog(&home);
                let root = cat
                    .iter()
                    .find(|(_, (st, parent, _))| st == "DONE" && parent == "None")
                    .map(|(id, _)| id.clone())
                    .expect("a root");
                let mut p = home
                    .cmd(&["delete", "pg", &root])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn delete");
                std::thread::sleep(Duration::from_millis(rng.below(400)));
                kill(&mut p, Signal::SIGKILL);
                eprintln!("{what}: killed the delete of root {root}");
                check_catalog(&home, &what, lib.as_deref());
                if catalog(&home).contains_key(&root) {
                    home.run(&["delete", "pg", &root]);
                }
                let cat = catalog(&home);
                assert!(
                    !cat.values().any(|(_, parent, _)| *parent == root),
                    "{what}: a child of the deleted root {root} is left: {cat:?}"
                );
            }
        }
        check_catalog(&home, &what, lib.as_deref());
    }
    // The archive keeps up to the end.
    common::switch_and_archive(&home, &c);
    kill(&mut receiver, Signal::SIGTERM);
    let _ = receiver.wait();
}
