//! The `barkeep` binary as a user runs it: Barman-style configuration files in, console and
//! JSON out, exit codes. Output is snapshot-tested with temp paths filtered.

use std::path::PathBuf;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_barkeep");

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// A Barman-style layout: `barman.conf` with `[barman]` and `barman.d/*.conf`.
    fn barman_style() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::create_dir(d.join("barman.d")).expect("mkdir");
        std::fs::write(
            d.join("barman.conf"),
            format!(
                "; Barman global configuration\n[barman]\nbarman_home = {home}\nbarman_user = {me}\nconfiguration_files_directory = {inc}\ncompression = gzip\nminimum_redundancy = 1\nretention_policy = RECOVERY WINDOW OF 4 WEEKS\nlog_level = INFO\n",
                home = d.join("home").display(),
                inc = d.join("barman.d").display(),
                me = whoami()
            ),
        )
        .expect("write");
        std::fs::write(
            d.join("barman.d/pg-main.conf"),
            "[pg-main]\ndescription = \"Main PostgreSQL (streaming)\"\nconninfo = host=pg-main user=barman dbname=postgres password=hunter2\nstreaming_conninfo = host=pg-main user=streaming_barman\nbackup_method = postgres\nstreaming_archiver = on\nslot_name = barman\ncreate_slot = auto\ncompression = zstd\n",
        )
        .expect("write");
        std::fs::write(
            d.join("barman.d/pg-reports.conf"),
            "[pg-reports]\ndescription = 'Reporting replica'\nconninfo = host=pg-reports user=barman\nactive = false\nbackup_directory = /srv/backups/%(name)s\nlast_backup_maximum_age = 1 WEEK\n",
        )
        .expect("write");
        std::fs::write(
            d.join("barman.d/pg-archive.conf"),
            "[pg-archive]\ndescription = \"Archive via archive_command\"\nconninfo = host=pg-archive\narchiver = on\nretention_policy = REDUNDANCY 2\n",
        )
        .expect("write");
        Fixture { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("barman.conf")
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_barkeep"));
        cmd.arg("-c")
            .arg(self.config())
            .args(args)
            .env_remove("BARKEEP_LOG");
        cmd.output().expect("run barkeep")
    }

    fn filters(&self) -> Vec<(String, &'static str)> {
        vec![
            (
                regex_lite::escape(&self.dir.path().display().to_string()),
                "[TMP]",
            ),
            // show-servers' live values: the servers here do not exist, and how the
            // resolver says so varies.
            (
                r"connection_error: .*  \(live\)".into(),
                "connection_error: [CONNECTION ERROR]  (live)",
            ),
            (
                r#""value": "server `[^`]+`: cannot connect[^"]*""#.into(),
                r#""value": "[CONNECTION ERROR]""#,
            ),
        ]
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf8")
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("utf8")
}

macro_rules! snapshot {
    ($fx:expr, $name:expr, $text:expr) => {{
        let filters: Vec<(String, &str)> = $fx.filters();
        let filters: Vec<(&str, &str)> = filters.iter().map(|(a, b)| (a.as_str(), *b)).collect();
        insta::with_settings!({filters => filters}, {
            insta::assert_snapshot!($name, $text);
        });
    }};
}

#[test]
fn list_servers_console_and_json() {
    let fx = Fixture::barman_style();
    let o = fx.run(&["list-servers"]);
    assert!(o.status.success(), "{}", stderr(&o));
    snapshot!(fx, "list_servers_console", stdout(&o));

    let o = fx.run(&["-f", "json", "list-servers"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(v["pg-main"]["description"], "Main PostgreSQL (streaming)");
    assert_eq!(v["pg-reports"]["description"], "Reporting replica");
    assert_eq!(
        v["pg-archive"]["description"],
        "Archive via archive_command"
    );
    snapshot!(fx, "list_servers_json", stdout(&o));

    let o = fx.run(&["list-server", "--minimal"]);
    // Included files are read in sorted order.
    assert_eq!(stdout(&o), "pg-archive\npg-main\npg-reports\n");
}

#[test]
fn show_servers_shows_derived_directories_and_sources() {
    let fx = Fixture::barman_style();
    let o = fx.run(&["show-servers", "all"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let home = fx.dir.path().join("home");
    for sub in ["base", "wals", "streaming", "incoming", "errors"] {
        let p = home.join("pg-main").join(sub);
        assert!(
            text.contains(&p.display().to_string()),
            "missing {}",
            p.display()
        );
    }
    assert!(
        text.contains("\tbasebackups_directory: /srv/backups/pg-reports/base  (default)"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "password leaked:\n{text}");
    snapshot!(fx, "show_servers_console", text);

    let o = fx.run(&[
        "-f",
        "json",
        "show-server",
        "pg-main",
        "--show-config-source",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    let main = &v["pg-main"];
    assert_eq!(
        main["wals_directory"]["value"],
        home.join("pg-main/wals").display().to_string()
    );
    assert_eq!(main["wals_directory"]["source"], "default");
    assert_eq!(main["compression"]["value"], "zstd");
    assert!(
        main["compression"]["source"]
            .as_str()
            .expect("str")
            .ends_with("pg-main.conf:9 [pg-main]")
    );
    assert_eq!(main["minimum_redundancy"]["value"], 1);
    assert!(
        main["minimum_redundancy"]["source"]
            .as_str()
            .expect("str")
            .ends_with("barman.conf:7 [barman]")
    );
    assert_eq!(main["streaming_archiver"]["value"], true);
    snapshot!(fx, "show_servers_json", stdout(&o));
}

#[test]
fn unknown_server_fails() {
    let fx = Fixture::barman_style();
    let o = fx.run(&["show-servers", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("unknown server `nope`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_value_exits_2_naming_file_line_key_and_form() {
    let fx = Fixture::barman_style();
    let bad = fx.dir.path().join("barman.d/pg-archive.conf");
    let mut text = std::fs::read_to_string(&bad).expect("read");
    text.push_str("retention_policy = REDUNDANCY x\n");
    std::fs::write(&bad, text).expect("write");
    let o = fx.run(&["list-servers"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("`{}` line 6", bad.display())),
        "{err}"
    );
    assert!(
        err.contains("`retention_policy`") && err.contains("`REDUNDANCY x`"),
        "{err}"
    );
    assert!(
        err.contains("`REDUNDANCY <n>` or `RECOVERY WINDOW OF <n> DAYS|WEEKS|MONTHS`"),
        "{err}"
    );
    assert!(stdout(&o).is_empty());
}

#[test]
fn unknown_key_only_warns() {
    let fx = Fixture::barman_style();
    let f = fx.dir.path().join("barman.d/pg-main.conf");
    let mut text = std::fs::read_to_string(&f).expect("read");
    text.push_str("wal_keep_segments = 8\n");
    std::fs::write(&f, text).expect("write");
    let o = fx.run(&["list-servers"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(&format!("{}:10", f.display())), "{err}");
    assert!(
        err.contains("unknown configuration key `wal_keep_segments` in [pg-main]"),
        "{err}"
    );
    assert_eq!(stdout(&o).lines().count(), 3);
}

#[test]
fn diagnose_is_json_without_passwords() {
    let fx = Fixture::barman_style();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_barkeep"));
    cmd.arg("-c")
        .arg(fx.config())
        .args(["-f", "json", "diagnose"])
        .env("PGPASSWORD", "topsecret");
    let o = cmd.output().expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        !text.contains("hunter2") && !text.contains("topsecret"),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        v["global"]["system_info"]["barkeep_version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(v["global"]["config"]["barman_user"], whoami());
    assert_eq!(
        v["global"]["config_files"].as_array().expect("array").len(),
        4
    );
    assert_eq!(v["servers"]["pg-main"]["config"]["slot_name"], "barman");
    assert_eq!(
        v["global"]["system_info"]["environment"]["PGPASSWORD"],
        "********"
    );
}

#[test]
fn config_lookup_env_and_missing_file() {
    let fx = Fixture::barman_style();
    let o = Command::new(env!("CARGO_BIN_EXE_barkeep"))
        .args(["list-servers", "--minimal"])
        .env("BARKEEP_CONFIG", fx.config())
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 3);
    let o = Command::new(env!("CARGO_BIN_EXE_barkeep"))
        .args(["-c", "/nonexistent/barman.conf", "list-servers"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("`/nonexistent/barman.conf`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn version_and_usage_errors() {
    let o = Command::new(env!("CARGO_BIN_EXE_barkeep"))
        .arg("--version")
        .output()
        .expect("run");
    assert!(o.status.success());
    assert!(stdout(&o).starts_with(concat!("barkeep ", env!("CARGO_PKG_VERSION"))));
    let o = Command::new(env!("CARGO_BIN_EXE_barkeep"))
        .arg("-v")
        .output()
        .expect("run");
    assert!(o.status.success());
    let o = Command::new(env!("CARGO_BIN_EXE_barkeep"))
        .arg("frobnicate")
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    let o = Command::new(env!("CARGO_BIN_EXE_barkeep"))
        .args(["--log-level", "warning", "-c", "/x", "list-servers"])
        .output()
        .expect("run");
    assert_eq!(
        o.status.code(),
        Some(2),
        "lower-case level accepted, missing file is exit 2"
    );
}

/// The user running the tests (`barman_user` set to it changes nothing).
fn whoami() -> String {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| "root".into())
}

#[test]
fn barman_user_is_become_from_root_and_enforced_otherwise() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let Ok(user) = barkeep_testkit::OsUser::for_server() else {
        return;
    };
    let Some((uid, gid)) = user.ids() else {
        return;
    };
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(
        d.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let home = d.path().join("home");
    std::fs::create_dir(&home).expect("home");
    std::os::unix::fs::chown(&home, Some(uid), Some(gid)).expect("chown");
    let cfg = d.path().join("barman.conf");
    let write = |u: &str| {
        std::fs::write(
            &cfg,
            format!(
                "[barman]\nbarman_home = {}\nbarman_user = {u}\n\n[pg]\nconninfo = host=/nonexistent\nbackup_method = postgres\n",
                home.display()
            ),
        )
        .expect("config")
    };
    // Started as root: barkeep becomes barman_user; what it creates is that user's.
    write(user.name());
    let out = Command::new(BIN)
        .arg("-c")
        .arg(&cfg)
        .args(["rebuild-xlogdb", "pg"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wals = home.join("pg").join("wals");
    let meta = std::fs::metadata(&wals).expect("wals created");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), uid);
    // Started as somebody else: refused, naming the user to run as.
    write("root");
    let mut cmd = Command::new(BIN);
    cmd.arg("-c").arg(&cfg).args(["list-servers"]);
    user.apply(&mut cmd);
    let out = cmd.output().expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("please run barkeep as 'root' user"), "{err}");
    // A user that does not exist: said so.
    write("no-such-user-here");
    let out = Command::new(BIN)
        .arg("-c")
        .arg(&cfg)
        .arg("list-servers")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("'no-such-user-here' (barman_user) does not exist")
    );
}

#[test]
fn log_format_json_gives_one_json_object_per_line() {
    let d = tempfile::tempdir().expect("tempdir");
    let cfg = d.path().join("barman.conf");
    std::fs::write(
        &cfg,
        format!(
            "[barman]\nbarman_home = {}\nlog_format = json\n\n[pg]\nconninfo = host=/nonexistent\nbackup_method = postgres\n",
            d.path().join("home").display()
        ),
    )
    .expect("config");
    let out = Command::new(BIN)
        .arg("-d")
        .arg("-c")
        .arg(&cfg)
        .arg("list-servers")
        .env_remove("BARKEEP_LOG")
        .output()
        .expect("run");
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no log lines");
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{l}"
        );
    }
}
