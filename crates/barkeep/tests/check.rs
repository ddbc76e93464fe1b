//! `check` and `status` against real PostgreSQL, in Barman's shapes: the same items in
//! the same order as Barman 3.19 prints for a streaming server (captured from Barman
//! itself), its JSON keys, its Nagios line and exit codes; and the failures a DBA meets —
//! a stopped receiver, a dropped slot, an old last backup — each failing the right item
//! with a hint that names the fix.

mod common;

use std::time::Duration;

use barkeep_testkit::ClusterBuilder;
use common::{Home, kill};
use serde_json::Value;

/// What Barman 3.19 prints for a healthy streaming server (`backup_method = postgres`,
/// `streaming_archiver = on`, a slot), in order.
const BARMAN_ITEMS: &[&str] = &[
    "PostgreSQL",
    "superuser or standard user with backup privileges",
    "PostgreSQL streaming",
    "wal_level",
    "replication slot",
    "directories",
    "retention policy settings",
    "backup maximum age",
    "backup minimum size",
    "wal maximum age",
    "wal size",
    "compression settings",
    "failed backups",
    "minimum redundancy requirements",
    "pg_basebackup",
    "pg_basebackup compatible",
    "pg_basebackup supports tablespaces mapping",
    "systemid coherence",
    "pg_receivexlog",
    "pg_receivexlog compatible",
    "receive-wal running",
    "archiver errors",
];

/// Barman's JSON keys for those items.
const BARMAN_KEYS: &[&str] = &[
    "archiver_errors",
    "backup_maximum_age",
    "backup_minimum_size",
    "compression_settings",
    "directories",
    "failed_backups",
    "minimum_redundancy_requirements",
    "pg_basebackup",
    "pg_basebackup_compatible",
    "pg_basebackup_supports_tablespaces_mapping",
    "pg_receivexlog",
    "pg_receivexlog_compatible",
    "postgresql",
    "postgresql_streaming",
    "receive_wal_running",
    "replication_slot",
    "retention_policy_settings",
    "superuser_or_standard_user_with_backup_privileges",
    "systemid_coherence",
    "wal_level",
    "wal_maximum_age",
    "wal_size",
];

fn check(home: &Home, args: &[&str]) -> (i32, String) {
    let out = home.cmd(args).output().expect("check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn item<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find(|l| l.trim_start().starts_with(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no `{name}` in:\n{text}"))
}

#[test]
fn check_and_status_speak_barmans_language() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let c = ClusterBuilder::new(&pg).start().expect("start");
    let extra = "slot_name = barkeep\ncreate_slot = auto\nimmediate_checkpoint = true\nlast_backup_maximum_age = 1 DAYS\nlast_wal_maximum_age = 1 HOURS\nretention_policy = REDUNDANCY 2\n";
    let home = Home::new(&c, extra);

    // Nothing set up yet: no slot, no receiver — each says what to run.
    let (code, text) = check(&home, &["check", "pg"]);
    assert_eq!(code, 1, "{text}");
    assert!(
        item(&text, "replication slot").contains("FAILED (replication slot 'barkeep' doesn't exist. Please execute 'barkeep receive-wal --create-slot pg'"),
        "{text}"
    );
    assert!(
        item(&text, "receive-wal running")
            .contains("FAILED (no receive-wal is running for server pg: run `barkeep cron`"),
        "{text}"
    );
    assert!(
        item(&text, "backup maximum age")
            .contains("FAILED (interval provided: 1 day, latest backup age: No available backups)"),
        "{text}"
    );

    // Streaming and one backup: every item OK, in Barman's order.
    let mut receiver = home.streaming_receiver();
    home.run(&["backup", "--wait", "--wait-timeout", "120", "pg"]);
    let (code, text) = check(&home, &["check", "pg"]);
    assert_eq!(code, 0, "{text}");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("Server pg:"));
    let names: Vec<&str> = lines
        .map(|l| {
            l.trim_start_matches('\t')
                .split(": ")
                .next()
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(names, BARMAN_ITEMS, "{text}");
    assert!(text.lines().skip(1).all(|l| l.contains(": OK")), "{text}");
    assert!(
        item(&text, "pg_basebackup").contains("needs no pg_basebackup"),
        "{text}"
    );
    assert!(
        item(&text, "backup maximum age")
            .contains("OK (interval provided: 1 day, latest backup age: "),
        "{text}"
    );
    assert!(
        item(&text, "minimum redundancy requirements")
            .contains("OK (have 1 non-incremental backups, expected at least 0)"),
        "{text}"
    );
    assert!(
        item(&text, "failed backups").contains("OK (there are 0 failed backups)"),
        "{text}"
    );

    // JSON: Barman's keys, {status, hint} each.
    let (_, j) = check(&home, &["-f", "json", "check", "pg"]);
    let v: Value = serde_json::from_str(&j).expect("json");
    let keys: Vec<&str> = v["pg"]
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, BARMAN_KEYS);
    assert!(
        v["pg"]
            .as_object()
            .expect("obj")
            .values()
            .all(|i| i["status"] == "OK" && i["hint"].is_string())
    );

    // Nagios: one line, perfdata, exit 0.
    let (code, n) = check(&home, &["check", "--nagios", "pg"]);
    assert_eq!(code, 0, "{n}");
    let re = regex_lite::Regex::new(
        r"^BARMAN OK - Ready to serve the Espresso backup for pg\|pg=\d+B pg_wals=\d+B\n$",
    )
    .expect("re");
    assert!(re.is_match(&n), "{n}");

    // status, as Barman's.
    let st = home.run(&["status", "pg"]);
    for line in [
        "Server pg:",
        "\tDescription: test",
        "\tActive: True",
        "\tDisabled: False",
        "\tCluster state: in production",
        "\tPassive node: False",
        "\tRetention policies: enforced (mode: auto, retention: REDUNDANCY 2, WAL retention: MAIN)",
        "\tNo. of available backups: 1",
        "\tMinimum redundancy requirements: satisfied (1/0)",
    ] {
        assert!(st.lines().any(|l| l == line), "{line:?} in\n{st}");
    }
    assert!(
        st.contains("\tPostgreSQL version: ") && st.contains("\tCurrent WAL segment: 0000000"),
        "{st}"
    );
    let js: Value = serde_json::from_str(&home.run(&["-f", "json", "status", "pg"])).expect("json");
    for key in [
        "active",
        "backups_number",
        "current_xlog",
        "first_backup",
        "is_in_recovery",
        "last_backup",
        "minimum_redundancy",
        "pg_version",
        "retention_policies",
    ] {
        assert!(
            js["pg"][key]["description"].is_string() && js["pg"][key]["message"].is_string(),
            "{key}: {js:#}"
        );
    }

    // show-servers adds the live values, as Barman's does.
    let ss = home.run(&["show-servers", "pg"]);
    for want in [
        "\tserver_txt_version: ",
        "\tstreaming: True  (live)",
        "\twal_level: replica  (live)",
        "\tconnection_error: None  (live)",
        "\treplication_slot: Record(slot_name='barkeep', active=True",
    ] {
        assert!(ss.contains(want), "{want:?} in\n{ss}");
    }

    // A stopped receiver: the slot is not active and nothing receives.
    kill(&mut receiver, nix::sys::signal::Signal::SIGTERM);
    let (code, text) = check(&home, &["check", "pg"]);
    assert_eq!(code, 1);
    assert!(
        item(&text, "replication slot")
            .contains("FAILED (slot 'barkeep' not active: is 'receive-wal' running?)"),
        "{text}"
    );
    assert!(
        item(&text, "receive-wal running").contains("FAILED"),
        "{text}"
    );
    let (code, n) = check(&home, &["check", "--nagios", "pg"]);
    assert_eq!(code, 2, "{n}");
    let first = n.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("BARMAN CRITICAL - server pg has issues * pg FAILED: replication slot, receive-wal running|pg="),
        "{n}"
    );
    assert!(
        n.lines()
            .any(|l| l.starts_with("pg.replication slot: FAILED (slot 'barkeep' not active")),
        "{n}"
    );

    // A dropped slot: the hint names the command that creates it.
    home.run(&["receive-wal", "--drop-slot", "pg"]);
    let (_, text) = check(&home, &["check", "pg"]);
    assert!(
        item(&text, "replication slot")
            .contains("doesn't exist. Please execute 'barkeep receive-wal --create-slot pg'"),
        "{text}"
    );

    // An old last backup: `backup maximum age` fails, saying how old.
    let meta = home.server_dir().join("meta");
    let info = std::fs::read_dir(&meta)
        .expect("meta")
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with("-backup.info"))
        .expect("backup.info")
        .path();
    let text = std::fs::read_to_string(&info).expect("read");
    let old = (chrono::Utc::now() - chrono::Duration::days(3))
        .format("%Y-%m-%d %H:%M:%S%.6f+00:00")
        .to_string();
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("end_time=") {
                format!("end_time={old}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&info, text).expect("write");
    let (code, text) = check(&home, &["check", "pg"]);
    assert_eq!(code, 1);
    assert!(
        item(&text, "backup maximum age")
            .contains("FAILED (interval provided: 1 day, latest backup age: 3 days"),
        "{text}"
    );
    let _ = Duration::from_secs(0);
}

#[test]
fn check_all_runs_every_server_and_an_unreachable_one_fails_alone() {
    let Some(pg) = barkeep_testkit::require_pg() else {
        return;
    };
    let c = ClusterBuilder::new(&pg).start().expect("start");
    let home = Home::empty();
    let conninfo = c.socket_conninfo("postgres", "postgres");
    std::fs::write(
        &home.config,
        format!(
            "[barman]\nbarman_home = {}\n\n[down]\nconninfo = host=/nonexistent port=1\nbackup_method = postgres\nstreaming_archiver = off\n\n[off]\nactive = false\nconninfo = host=/nonexistent port=1\nbackup_method = postgres\n\n[pg]\nconninfo = {conninfo}\nbackup_method = postgres\nstreaming_archiver = off\narchiver = off\n",
            home.home().display()
        ),
    )
    .expect("config");
    let (code, text) = check(&home, &["check", "all"]);
    assert_eq!(code, 1, "{text}");
    // Sorted by name; the inactive one is marked and does not fail the run by itself.
    let heads: Vec<&str> = text.lines().filter(|l| l.starts_with("Server ")).collect();
    assert_eq!(
        heads,
        ["Server down:", "Server off: (inactive)", "Server pg:"],
        "{text}"
    );
    let down = text.split("Server off:").next().unwrap_or_default();
    assert!(item(down, "PostgreSQL").contains("FAILED ("), "{down}");
    let (code, n) = check(&home, &["check", "--nagios", "all"]);
    assert_eq!(code, 2);
    assert!(n.starts_with("BARMAN CRITICAL - "), "{n}");
    assert!(n.contains("down FAILED: "), "{n}");
}
