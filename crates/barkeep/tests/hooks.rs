//! Hook scripts as Barman runs them: every kind fires around its operation with exactly
//! Barman 3.19's `BARMAN_*` variable names (captured from real Barman) and the values it
//! gives them; retry scripts are run again until 0, 62 or 63 and those codes do what
//! they do in Barman; a failing hook's output is shown; `hook_timeout` kills a hook;
//! a line that needs a shell is refused when the configuration is loaded.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use barkeep_testkit::ClusterBuilder;
use chrono::Utc;
use common::{Home, put_backup, put_wal, wait_for};

/// The variables Barman 3.19 sets, per kind of hook (from its hooks.py, checked by
/// running Barman itself with a script that dumps its environment).
const COMMON: &[&str] = &[
    "BARMAN_CONFIGURATION",
    "BARMAN_ERROR",
    "BARMAN_HOOK",
    "BARMAN_PHASE",
    "BARMAN_RETRY",
    "BARMAN_SERVER",
    "BARMAN_VERSION",
];
const BACKUP: &[&str] = &[
    "BARMAN_BACKUP_DIR",
    "BARMAN_BACKUP_ID",
    "BARMAN_BACKUP_INFO_PATH",
    "BARMAN_NEXT_ID",
    "BARMAN_PREVIOUS_ID",
    "BARMAN_STATUS",
];
const WAL: &[&str] = &[
    "BARMAN_COMPRESSION",
    "BARMAN_FILE",
    "BARMAN_SEGMENT",
    "BARMAN_SIZE",
    "BARMAN_TIMESTAMP",
];
const RECOVERY: &[&str] = &[
    "BARMAN_DESTINATION_DIRECTORY",
    "BARMAN_RECOVER_OPTIONS",
    "BARMAN_REMOTE_COMMAND",
    "BARMAN_TABLESPACES",
];

fn names(extra: &[&[&str]]) -> BTreeSet<String> {
    COMMON
        .iter()
        .chain(extra.iter().flat_map(|e| e.iter()))
        .map(|s| s.to_string())
        .collect()
}

/// A script that appends its `BARMAN_*` environment, one file per run, to `dir`:
/// `<dir>/<label>.<n>`.
fn dump_script(dir: &Path) -> PathBuf {
    let script = dir.join("dump.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nn=$(ls {out} | grep -c \"^$1\\.\")\nenv | grep '^BARMAN_\\|^BARKEEP_' | sort > {out}/$1.$n\nexit 0\n",
            out = dir.join("out").display()
        ),
    )
    .expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    std::fs::create_dir_all(dir.join("out")).expect("out");
    script
}

/// The environments dumped for `label`, in run order.
fn dumps(dir: &Path, label: &str) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    for n in 0.. {
        let Ok(text) = std::fs::read_to_string(dir.join("out").join(format!("{label}.{n}"))) else {
            break;
        };
        out.push(
            text.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
    }
    out
}

fn barman_names(env: &BTreeMap<String, String>) -> BTreeSet<String> {
    env.keys()
        .filter(|k| k.starts_with("BARMAN_"))
        .cloned()
        .collect()
}

fn hook_lines(script: &Path, events: &[&str]) -> String {
    let mut s = String::new();
    for e in events {
        for phase in ["pre", "post"] {
            for retry in ["", "_retry"] {
                s.push_str(&format!(
                    "{phase}_{e}{retry}_script = {} {phase}_{e}{retry}\n",
                    script.display()
                ));
            }
        }
    }
    s
}

#[test]
fn every_hook_fires_with_barmans_variables() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let c = ClusterBuilder::new(&pg).start().expect("start");
    c.psql("CREATE TABLE t AS SELECT generate_series(1, 500) AS i")
        .expect("rows");
    let work = tempfile::tempdir().expect("work");
    std::fs::set_permissions(
        work.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let script = dump_script(work.path());
    let home = Home::new(
        &c,
        &format!(
            "immediate_checkpoint = true\nslot_name = barkeep\ncreate_slot = auto\n{}",
            hook_lines(
                &script,
                &["backup", "archive", "delete", "wal_delete", "recovery"]
            )
        ),
    );
    let mut receiver = home.streaming_receiver();
    home.run(&["backup", "--wait", "--wait-timeout", "120", "pg"]);
    let first = home
        .run(&["list-backups", "--minimal", "pg"])
        .trim()
        .to_string();
    let config = home.config.display().to_string();

    // Backup: pre (EMPTY) then pre retry, post retry then post (DONE, after --wait).
    for (label, phase, status, hook, retry) in [
        ("pre_backup", "pre", "EMPTY", "backup_script", "0"),
        (
            "pre_backup_retry",
            "pre",
            "EMPTY",
            "backup_retry_script",
            "1",
        ),
        (
            "post_backup_retry",
            "post",
            "DONE",
            "backup_retry_script",
            "1",
        ),
        ("post_backup", "post", "DONE", "backup_script", "0"),
    ] {
        let d = dumps(work.path(), label);
        assert_eq!(d.len(), 1, "{label}: {d:?}");
        let e = &d[0];
        assert_eq!(barman_names(e), names(&[BACKUP]), "{label}");
        assert_eq!(e["BARMAN_PHASE"], phase);
        assert_eq!(e["BARMAN_STATUS"], status, "{label}");
        assert_eq!(e["BARMAN_HOOK"], hook);
        assert_eq!(e["BARMAN_RETRY"], retry);
        assert_eq!(e["BARMAN_SERVER"], "pg");
        assert_eq!(e["BARMAN_CONFIGURATION"], config);
        assert_eq!(e["BARMAN_VERSION"], "3.19.0");
        assert_eq!(e["BARMAN_BACKUP_ID"], first);
        assert_eq!(e["BARMAN_PREVIOUS_ID"], "");
        assert_eq!(e["BARMAN_NEXT_ID"], "");
        assert_eq!(e["BARMAN_ERROR"], "");
        let dir = home.server_dir().join("base").join(&first);
        assert_eq!(e["BARMAN_BACKUP_DIR"], dir.display().to_string());
        assert_eq!(
            e["BARMAN_BACKUP_INFO_PATH"],
            home.server_dir()
                .join("meta")
                .join(format!("{first}-backup.info"))
                .display()
                .to_string()
        );
    }
    // The order: pre standard before pre retry, post retry before post standard.
    let mtime = |label: &str| {
        std::fs::metadata(work.path().join("out").join(format!("{label}.0")))
            .and_then(|m| m.modified())
            .expect("dump")
    };
    assert!(mtime("pre_backup") <= mtime("pre_backup_retry"));
    assert!(mtime("post_backup_retry") <= mtime("post_backup"));

    // Archive hooks fire for each file the receiver archives: pre with the file waiting
    // in streaming/, post with its place in the archive.
    let seg = c
        .query_value("SELECT pg_walfile_name(pg_current_wal_lsn())")
        .expect("segment");
    c.psql("SELECT pg_switch_wal()").expect("switch");
    wait_for(
        &home,
        "the archive hooks of the switched segment",
        Duration::from_secs(60),
        || {
            dumps(work.path(), "post_archive")
                .iter()
                .any(|e| e["BARMAN_SEGMENT"] == seg)
        },
    );
    let pre = dumps(work.path(), "pre_archive");
    let e = pre
        .iter()
        .find(|e| e["BARMAN_SEGMENT"] == seg)
        .expect("pre_archive of the segment");
    assert_eq!(barman_names(e), names(&[WAL]));
    assert_eq!(e["BARMAN_HOOK"], "archive_script");
    assert_eq!(
        e["BARMAN_FILE"],
        home.server_dir()
            .join("streaming")
            .join(&seg)
            .display()
            .to_string()
    );
    assert_eq!(e["BARMAN_SIZE"], (16u64 << 20).to_string());
    assert_eq!(e["BARMAN_COMPRESSION"], "");
    assert!(
        e["BARMAN_TIMESTAMP"]
            .parse::<f64>()
            .is_ok_and(|t| t > 1.6e9),
        "{e:?}"
    );
    let post = dumps(work.path(), "post_archive");
    let p = post
        .iter()
        .find(|e| e["BARMAN_SEGMENT"] == seg)
        .expect("post_archive");
    assert_eq!(
        p["BARMAN_FILE"],
        home.archived_path(&seg).display().to_string()
    );
    assert_eq!(p["BARMAN_TIMESTAMP"], e["BARMAN_TIMESTAMP"]);
    assert!(
        dumps(work.path(), "pre_archive_retry")
            .iter()
            .any(|e| e["BARMAN_SEGMENT"] == seg && e["BARMAN_RETRY"] == "1")
    );

    // A second backup, then delete the first: delete hooks with its neighbours, and a
    // wal_delete pair per WAL file removed.
    home.run(&["backup", "--wait", "--wait-timeout", "120", "pg"]);
    let second = home
        .run(&["list-backups", "--minimal", "pg"])
        .lines()
        .next()
        .expect("id")
        .to_string();
    home.run(&["delete", "pg", &first]);
    for label in [
        "pre_delete",
        "pre_delete_retry",
        "post_delete_retry",
        "post_delete",
    ] {
        let d = dumps(work.path(), label);
        assert_eq!(d.len(), 1, "{label}");
        assert_eq!(barman_names(&d[0]), names(&[BACKUP]), "{label}");
        assert_eq!(d[0]["BARMAN_BACKUP_ID"], first);
        assert_eq!(d[0]["BARMAN_NEXT_ID"], second, "{label}");
        assert_eq!(d[0]["BARMAN_STATUS"], "DONE");
        assert_eq!(
            d[0]["BARMAN_HOOK"],
            if label.contains("retry") {
                "delete_retry_script"
            } else {
                "delete_script"
            }
        );
    }
    let wal_pre = dumps(work.path(), "pre_wal_delete");
    let wal_post = dumps(work.path(), "post_wal_delete");
    assert!(!wal_pre.is_empty() && wal_pre.len() == wal_post.len());
    assert_eq!(barman_names(&wal_pre[0]), names(&[WAL]));
    assert_eq!(wal_pre[0]["BARMAN_HOOK"], "wal_delete_script");
    assert!(
        !Path::new(&wal_pre[0]["BARMAN_FILE"]).exists(),
        "removed after its hooks"
    );

    // Restore: recovery hooks with the destination as given and the options as JSON.
    common::kill(&mut receiver, nix::sys::signal::Signal::SIGTERM);
    let r = ClusterBuilder::new(&pg).create().expect("target");
    std::fs::remove_dir_all(r.data_dir()).expect("empty");
    let dest = r.data_dir().display().to_string();
    home.run(&[
        "restore",
        "--target-immediate",
        "--target-action",
        "promote",
        "pg",
        &second,
        &dest,
    ]);
    for label in [
        "pre_recovery",
        "pre_recovery_retry",
        "post_recovery_retry",
        "post_recovery",
    ] {
        let d = dumps(work.path(), label);
        assert_eq!(d.len(), 1, "{label}");
        let e = &d[0];
        assert_eq!(barman_names(e), names(&[BACKUP, RECOVERY]), "{label}");
        assert_eq!(e["BARMAN_DESTINATION_DIRECTORY"], dest);
        assert_eq!(e["BARMAN_TABLESPACES"], "");
        assert_eq!(e["BARMAN_REMOTE_COMMAND"], "");
        assert_eq!(
            e["BARMAN_RECOVER_OPTIONS"],
            r#"{"target_action": "promote", "target_immediate": true}"#
        );
        assert_eq!(e["BARMAN_BACKUP_ID"], second);
    }
}

/// A crafted catalog of three DONE backups (no PostgreSQL needed: delete never
/// connects), with `extra` server lines.
fn crafted(extra: &str) -> (Home, Vec<String>) {
    let home = Home::empty();
    home.configure(
        "host=/nonexistent port=1",
        &format!("streaming_archiver = off\n{extra}"),
    );
    let now = Utc::now();
    let ids: Vec<String> = (0..3)
        .map(|i| {
            put_backup(
                &home.server_dir(),
                now - chrono::Duration::days(3 - i),
                10 + 4 * i as u64,
            )
        })
        .collect();
    put_wal(&home.server_dir(), 24);
    (home, ids)
}

/// A script printing to stderr and exiting with the codes listed in `codes` (one per
/// run, the last one repeated), counting its runs in `<dir>/runs`.
fn coded_script(dir: &Path, codes: &[i32]) -> PathBuf {
    let script = dir.join(format!(
        "coded-{}.sh",
        codes
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join("-")
    ));
    let list = codes
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nruns={d}/runs\nn=$(cat $runs 2>/dev/null || echo 0)\necho $((n+1)) > $runs\ni=0\nfor c in {list}; do code=$c; [ $i -eq $n ] && break; i=$((i+1)); done\necho \"attempt $((n+1)) exits $code\" >&2\nexit $code\n",
            d = dir.display()
        ),
    )
    .expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let _ = std::fs::remove_file(dir.join("runs"));
    script
}

fn runs(dir: &Path) -> u32 {
    std::fs::read_to_string(dir.join("runs"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn delete(home: &Home, id: &str) -> std::process::Output {
    home.cmd(&["delete", "pg", id])
        .env("BARKEEP_HOOK_RETRY_PAUSES_MS", "10,30")
        .output()
        .expect("delete")
}

#[test]
fn retry_scripts_run_until_0_62_or_63_as_barmans() {
    let work = tempfile::tempdir().expect("work");
    let dir = work.path();

    // Fails twice (its stderr shown each time), then succeeds: the delete goes on.
    let s = coded_script(dir, &[1, 2, 0]);
    let (home, ids) = crafted(&format!("pre_delete_retry_script = {}\n", s.display()));
    let out = delete(&home, &ids[0]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(runs(dir), 3);
    assert!(
        stderr.contains("attempt 1 exits 1") && stderr.contains("attempt 2 exits 2"),
        "{stderr}"
    );
    assert!(stderr.contains("returned 1"), "{stderr}");
    assert!(!home.server_dir().join("base").join(&ids[0]).exists());

    // 62: stop retrying, go on with the delete (a warning says so).
    let s = coded_script(dir, &[62]);
    let (home, ids) = crafted(&format!("pre_delete_retry_script = {}\n", s.display()));
    let out = delete(&home, &ids[0]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(runs(dir), 1);
    assert!(stderr.contains("exit status 62"), "{stderr}");
    assert!(!home.server_dir().join("base").join(&ids[0]).exists());

    // 63 before: the delete does not happen.
    let s = coded_script(dir, &[1, 63]);
    let (home, ids) = crafted(&format!("pre_delete_retry_script = {}\n", s.display()));
    let out = delete(&home, &ids[0]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(runs(dir), 2);
    assert!(stderr.contains("exit status 63"), "{stderr}");
    assert!(
        home.server_dir().join("base").join(&ids[0]).exists(),
        "not deleted"
    );
    assert!(
        home.server_dir()
            .join("meta")
            .join(format!("{}-backup.info", ids[0]))
            .exists()
    );
    assert!(
        !home
            .server_dir()
            .join("meta")
            .join(format!("{}-delete_this", ids[0]))
            .exists()
    );

    // 63 after: ignored with Barman's warning (the delete is done).
    let s = coded_script(dir, &[63]);
    let (home, ids) = crafted(&format!("post_delete_retry_script = {}\n", s.display()));
    let out = delete(&home, &ids[0]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Ignoring stop request after receiving abort (exit code 63) from post-delete retry hook script"), "{stderr}");

    // A standard script's failure is shown, and changes nothing.
    let s = coded_script(dir, &[3]);
    let (home, ids) = crafted(&format!("pre_delete_script = {} arg\n", s.display()));
    let out = delete(&home, &ids[0]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(runs(dir), 1);
    assert!(
        stderr.contains("returned 3") && stderr.contains("attempt 1 exits 3"),
        "{stderr}"
    );
}

#[test]
fn hook_timeout_kills_a_hook() {
    let work = tempfile::tempdir().expect("work");
    let script = work.path().join("slow.sh");
    std::fs::write(&script, "#!/bin/sh\nsleep 30\n").expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let (home, ids) = crafted(&format!(
        "hook_timeout = 1\npre_delete_script = {}\n",
        script.display()
    ));
    let t0 = std::time::Instant::now();
    let out = delete(&home, &ids[0]);
    assert!(out.status.success());
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert!(String::from_utf8_lossy(&out.stderr).contains("killed after hook_timeout = 1 s"));
}

#[test]
fn a_hook_line_that_needs_a_shell_is_refused_naming_file_line_and_key() {
    let (home, ids) = crafted("post_delete_script = /bin/true && curl http://x\n");
    let out = delete(&home, &ids[0]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let config = home.config.display().to_string();
    assert!(
        stderr.contains(&format!("{config}:"))
            && stderr.contains("`post_delete_script = /bin/true && curl http://x`")
            && stderr.contains("without a shell"),
        "{stderr}"
    );
    assert!(home.server_dir().join("base").join(&ids[0]).exists());
}
