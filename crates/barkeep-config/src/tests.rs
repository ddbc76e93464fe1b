//! Tests of loading whole configurations: inheritance, interpolation, includes, errors.

use std::path::Path;

use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write test file");
    p
}

fn load_text(text: &str) -> (tempfile::TempDir, Result<Config, ConfigErrors>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let main = write(dir.path(), "barman.conf", text);
    let cfg = load(&main);
    (dir, cfg)
}

#[test]
fn barman_style_config_with_include_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inc = dir.path().join("barman.d");
    std::fs::create_dir(&inc).expect("mkdir");
    let main = write(
        dir.path(),
        "barman.conf",
        &format!(
            "[barman]\nbarman_home = /srv/barman\nconfiguration_files_directory = {}\ncompression = gzip\nretention_policy = RECOVERY WINDOW OF 2 WEEKS\n",
            inc.display()
        ),
    );
    write(
        &inc,
        "b.conf",
        "[pg-b]\ndescription = \"Server B\"\nconninfo = host=b user=barman password=s3cret\nstreaming_archiver = on\nbackup_method = postgres\n",
    );
    write(
        &inc,
        "a.conf",
        "[pg-a]\ndescription = 'Server A'\nconninfo = host=a\ncompression = zstd\nbackup_directory = /data/%(name)s\n",
    );
    write(&inc, "ignored.txt", "[nope]\n");
    let cfg = load(&main).expect("loads");
    let names: Vec<&str> = cfg.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["pg-a", "pg-b"], "sorted include order");
    let a = cfg.server("pg-a").expect("pg-a");
    assert_eq!(a.description(), Some("Server A"));
    assert_eq!(
        a.choice("compression"),
        Some("zstd"),
        "server overrides global"
    );
    assert_eq!(a.path("backup_directory"), Some(Path::new("/data/pg-a")));
    assert_eq!(a.path("wals_directory"), Some(Path::new("/data/pg-a/wals")));
    assert_eq!(
        a.path("xlogdb_directory"),
        Some(Path::new("/data/pg-a/wals"))
    );
    let b = cfg.server("pg-b").expect("pg-b");
    assert_eq!(
        b.choice("compression"),
        Some("gzip"),
        "inherited from [barman]"
    );
    assert_eq!(
        b.path("basebackups_directory"),
        Some(Path::new("/srv/barman/pg-b/base"))
    );
    assert_eq!(
        b.path("incoming_wals_directory"),
        Some(Path::new("/srv/barman/pg-b/incoming"))
    );
    assert_eq!(
        b.path("streaming_wals_directory"),
        Some(Path::new("/srv/barman/pg-b/streaming"))
    );
    assert_eq!(
        b.path("errors_directory"),
        Some(Path::new("/srv/barman/pg-b/errors"))
    );
    assert_eq!(b.bool("streaming_archiver"), Some(true));
    assert_eq!(
        b.str("streaming_conninfo"),
        Some("host=b user=barman password=s3cret")
    );
    assert_eq!(
        b.retention_policy(),
        Some(RetentionPolicy::RecoveryWindow {
            n: 2,
            unit: values::WindowUnit::Week
        })
    );
    match &b.settings.0["compression"].source {
        Source::File { origin, section } => {
            assert_eq!(origin.path, main);
            assert_eq!(origin.line, 4);
            assert_eq!(section, "barman");
        }
        other => panic!("unexpected source {other:?}"),
    }
    assert_eq!(b.settings.0["active"].source, Source::Default);
    assert_eq!(cfg.files.len(), 3);
}

#[test]
fn barkeep_section_is_the_global_section() {
    let (_d, cfg) = load_text("[barkeep]\nbarman_home = /x\n[s]\nconninfo = host=s\n");
    let cfg = cfg.expect("loads");
    assert_eq!(cfg.barman_home(), Path::new("/x"));
    assert_eq!(
        cfg.servers[0].path("backup_directory"),
        Some(Path::new("/x/s"))
    );
}

#[test]
fn bad_retention_names_file_line_key_and_grammar() {
    let (_d, cfg) =
        load_text("[barman]\nbarman_home = /x\n\n[pg]\nretention_policy = REDUNDANCY x\n");
    let err = cfg.expect_err("must fail").to_string();
    assert!(err.contains("barman.conf` line 5"), "{err}");
    assert!(err.contains("`retention_policy`"), "{err}");
    assert!(err.contains("`REDUNDANCY x`"), "{err}");
    assert!(err.contains("REDUNDANCY <n>"), "{err}");
    assert!(err.contains("[pg]"), "{err}");
}

#[test]
fn bad_global_value_is_reported_once_at_its_line() {
    let (_d, cfg) = load_text("[barman]\nbarman_home = /x\nminimum_redundancy = lots\n[a]\n[b]\n");
    let err = cfg.expect_err("must fail");
    assert_eq!(err.0.len(), 1, "{err}");
    assert!(err.to_string().contains("line 3"), "{err}");
}

#[test]
fn all_errors_are_reported_together() {
    let (_d, cfg) = load_text(
        "[barman]\nbarman_home = /x\n[a]\nactive = perhaps\n[b]\ncreate_slot = sometimes\nlast_backup_maximum_age = 3 fortnights\n",
    );
    let err = cfg.expect_err("must fail");
    assert_eq!(err.0.len(), 3, "{err}");
    let text = err.to_string();
    assert!(text.contains("one of `auto`, `manual`"), "{text}");
    assert!(text.contains("HOURS|DAYS|WEEKS|MONTHS"), "{text}");
}

#[test]
fn unknown_keys_only_warn_with_file_line_key() {
    let (_d, cfg) = load_text(
        "[barman]\nbarman_home = /x\nfrobnicate = 1\n[pg]\nconninfo = host=a\nwal_level = replica\n",
    );
    let cfg = cfg.expect("loads despite unknown keys");
    let w: Vec<String> = cfg.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w[0].contains("barman.conf:3") && w[0].contains("`frobnicate`"),
        "{w:?}"
    );
    assert!(
        w[1].contains("barman.conf:6") && w[1].contains("`wal_level`") && w[1].contains("[pg]"),
        "{w:?}"
    );
}

#[test]
fn interpolation_of_custom_keys_and_defaults() {
    let (_d, cfg) = load_text(
        "[barman]\nbarman_home = /x\nstreaming_archiver_name = bk_%(name)s\n[pg]\nhost = db1\nconninfo = host=%(host)s dbname=postgres\nslot_name = %(cluster)s_slot\ncluster = Main\n",
    );
    let cfg = cfg.expect("loads");
    let pg = &cfg.servers[0];
    assert_eq!(pg.str("conninfo"), Some("host=db1 dbname=postgres"));
    assert_eq!(pg.str("streaming_archiver_name"), Some("bk_pg"));
    assert_eq!(
        pg.str("slot_name"),
        Some("main_slot"),
        "slot names are lower-cased"
    );
    assert_eq!(
        pg.str("streaming_conninfo"),
        Some("host=db1 dbname=postgres")
    );
}

#[test]
fn interpolation_errors_are_clear() {
    let (_d, cfg) = load_text("[barman]\nbarman_home = /x\n[pg]\nconninfo = host=%(nothere)s\n");
    let e = cfg.expect_err("must fail").to_string();
    assert!(e.contains("`nothere`") && e.contains("line 4"), "{e}");
    let (_d, cfg) =
        load_text("[barman]\nbarman_home = /x\n[pg]\na = %(b)s\nb = %(a)s\nconninfo = %(a)s\n");
    let e = cfg.expect_err("must fail").to_string();
    assert!(e.contains("reference loop"), "{e}");
    let (_d, cfg) = load_text("[barman]\nbarman_home = /x\n[pg]\nconninfo = 100% sure\n");
    let e = cfg.expect_err("must fail").to_string();
    assert!(e.contains("followed by `%`"), "{e}");
}

#[test]
fn empty_server_value_blocks_inheritance() {
    let (_d, cfg) = load_text(
        "[barman]\nbarman_home = /x\ncompression = gzip\nretention_policy = REDUNDANCY 2\n[pg]\ncompression =\nretention_policy = None\n",
    );
    let cfg = cfg.expect("loads");
    let pg = &cfg.servers[0];
    assert_eq!(pg.get("compression"), None);
    assert_eq!(pg.retention_policy(), None);
}

#[test]
fn models_do_not_crash_and_are_not_servers() {
    let (_d, cfg) = load_text(
        "[barman]\nbarman_home = /x\n[pg]\ncluster = c\nconninfo = host=a\n[pg:switchover]\nmodel = true\ncluster = c\nconninfo = host=b\nbackup_directory = /nope\n",
    );
    let cfg = cfg.expect("loads");
    assert_eq!(cfg.servers.len(), 1);
    assert_eq!(cfg.models.len(), 1);
    assert_eq!(cfg.models[0].settings.str("conninfo"), Some("host=b"));
    assert!(cfg.models[0].settings.get("backup_directory").is_none());
    assert!(
        cfg.warnings
            .iter()
            .any(|w| w.message.contains("not allowed in model"))
    );
}

#[test]
fn path_conflicts_disable_both_servers() {
    let (_d, cfg) = load_text(
        "[barman]\nbarman_home = /x\n[a]\nconninfo = host=a\n[b]\nconninfo = host=b\nwals_directory = /x/a/./wals\n",
    );
    let cfg = cfg.expect("loads");
    assert!(cfg.server("a").expect("a").disabled());
    assert!(cfg.server("b").expect("b").disabled());
    let msg = &cfg.server("b").expect("b").disabled_reasons[0];
    assert!(
        msg.contains("`wals_directory`") && msg.contains("server `a`"),
        "{msg}"
    );
}

#[test]
fn path_conflict_inside_one_server() {
    let (_d, cfg) =
        load_text("[barman]\nbarman_home = /x\n[a]\nerrors_directory = /x/a/incoming\n[b]\n");
    let cfg = cfg.expect("loads");
    assert!(cfg.server("a").expect("a").disabled());
    assert!(!cfg.server("b").expect("b").disabled());
}

#[test]
fn reserved_server_names_are_errors() {
    let (_d, cfg) = load_text("[barman]\nbarman_home = /x\n[all]\nconninfo = x\n");
    let e = cfg.expect_err("must fail").to_string();
    assert!(e.contains("`all` cannot be a server name"), "{e}");
}

#[test]
fn include_may_not_define_global_section() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inc = dir.path().join("d");
    std::fs::create_dir(&inc).expect("mkdir");
    let main = write(
        dir.path(),
        "m.conf",
        "[barman]\nbarman_home = /x\nconfiguration_files_directory = d\n",
    );
    write(&inc, "x.conf", "[pg]\n[barman]\ncompression = gzip\n");
    let e = load(&main).expect_err("must fail").to_string();
    assert!(
        e.contains("x.conf:2") && e.contains("global section"),
        "{e}"
    );
}

#[test]
fn missing_include_directory_names_it() {
    let (_d, cfg) =
        load_text("[barman]\nbarman_home = /x\nconfiguration_files_directory = /does/not/exist\n");
    let e = cfg.expect_err("must fail").to_string();
    assert!(
        e.contains("/does/not/exist") && e.contains("No such file"),
        "{e}"
    );
}

#[test]
fn find_config_file_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    std::fs::create_dir(&home).expect("mkdir");
    let barman = write(&home, ".barman.conf", "[barman]\n");
    let h = home.display().to_string();
    let env = |k: &str| (k == "HOME").then(|| h.clone());
    assert_eq!(find_config_file(None, &env).expect("found"), barman);
    let barkeep = write(&home, ".barkeep.conf", "[barkeep]\n");
    assert_eq!(find_config_file(None, &env).expect("found"), barkeep);
    let explicit = write(dir.path(), "x.conf", "");
    let env2 = |k: &str| match k {
        "HOME" => Some(h.clone()),
        "BARKEEP_CONFIG" => Some(explicit.display().to_string()),
        _ => None,
    };
    assert_eq!(find_config_file(None, &env2).expect("found"), explicit);
    let env3 = |k: &str| (k == "BARMAN_CONFIG_FILE").then(|| "/nope.conf".to_string());
    let e = find_config_file(None, &env3)
        .expect_err("missing")
        .to_string();
    assert!(
        e.contains("BARMAN_CONFIG_FILE") && e.contains("/nope.conf"),
        "{e}"
    );
    let e = find_config_file(Some(Path::new("/nope2")), &env)
        .expect_err("missing")
        .to_string();
    assert!(e.contains("`-c`"), "{e}");
}

#[test]
fn conninfo_passwords_are_redacted() {
    assert_eq!(
        redact_conninfo("host=a password=secret user=b"),
        "host=a password=******** user=b"
    );
    assert_eq!(
        redact_conninfo("host=a password = 'x y\\' z' user=b"),
        "host=a password = ******** user=b"
    );
    assert_eq!(
        redact_conninfo("postgresql://u:pw@h:5432/db?sslmode=require&password=x"),
        "postgresql://u:********@h:5432/db?sslmode=require&password=********"
    );
    assert_eq!(redact_conninfo("host=a"), "host=a");
    assert!(!redact_conninfo("garbage password").contains("password"));
    assert_eq!(
        display_value("conninfo", &Value::Str("password=x".into())),
        "password=********"
    );
}

proptest::proptest! {
    #[test]
    fn ini_parser_never_panics(text in "(\\PC|\n|\\[|\\]|=|%|\\(|\\)){0,200}") {
        let _ = ini::parse(Path::new("/p"), &text);
    }

    #[test]
    fn redaction_never_leaks(pw in "[a-zA-Z0-9]{8,16}", host in "[a-z]{1,8}") {
        let s = format!("host={host} password={pw} user=x");
        proptest::prop_assert!(!redact_conninfo(&s).contains(&pw));
        let u = format!("postgresql://user:{pw}@{host}/db");
        proptest::prop_assert!(!redact_conninfo(&u).contains(&pw));
    }
}

#[test]
fn every_key_is_documented() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/configuration.md"
    ))
    .expect("docs/configuration.md");
    for spec in keys::GLOBAL_KEYS.iter().chain(keys::SERVER_KEYS.iter()) {
        assert!(
            doc.contains(&format!("`{}`", spec.name)),
            "`{}` missing from docs/configuration.md",
            spec.name
        );
        // Its row says what barkeep does with it, as support.rs does.
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", spec.name)))
            .unwrap_or_else(|| panic!("no table row for `{}`", spec.name));
        let want = match support::support(spec.name) {
            Some(support::Support::Acts) => "| acts |",
            Some(support::Support::NoEffect(_)) => "| no effect: ",
            Some(support::Support::Refused(_)) => "| **refused**: ",
            Some(support::Support::Values(..)) => "| acts for ",
            None => "unclassified",
        };
        let want_alt = want.replace(" |", ":");
        assert!(
            row.contains(want) || (want == "| acts |" && row.contains(&want_alt)),
            "`{}`: row should say `{want}`: {row}",
            spec.name
        );
    }
    for hook in keys::HOOK_KEYS {
        assert!(
            doc.contains(&format!("`{hook}`")),
            "`{hook}` missing from docs/configuration.md"
        );
    }
}

#[test]
fn every_key_of_the_table_acts_refuses_or_has_no_effect() {
    let mut unclassified = Vec::new();
    for spec in keys::GLOBAL_KEYS.iter().chain(keys::SERVER_KEYS.iter()) {
        if support::support(spec.name).is_none() {
            unclassified.push(spec.name);
        }
    }
    for hook in keys::HOOK_KEYS {
        if support::support(hook).is_none() {
            unclassified.push(hook);
        }
    }
    assert!(
        unclassified.is_empty(),
        "keys without a classification in support.rs: {unclassified:?}"
    );
}

#[test]
fn refused_settings_disable_their_server_naming_file_line_key_and_what_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let main = dir.path().join("barman.conf");
    std::fs::write(
        &main,
        "[barman]\nbarman_home = /b\nlog_format = %%(message)s\n\n[gpg]\nconninfo = host=a\nbackup_method = postgres\nencryption = gpg\n\n[rsync]\nconninfo = host=b\nbackup_method = rsync\n\n[ok]\nconninfo = host=c\nbackup_method = postgres\nretention_policy = REDUNDANCY 2\n\n[cloud]\nconninfo = host=d\nbackup_method = postgres\nbasebackups_directory = s3://bucket/barman\ncloud_staging_max_size = 30Gi\n",
    )
    .expect("write");
    let cfg = load(&main).expect("loads");
    let path = main.display().to_string();
    let gpg = &cfg.server("gpg").expect("gpg").disabled_reasons;
    assert_eq!(gpg.len(), 1, "{gpg:?}");
    assert!(
        gpg[0].starts_with(&format!(
            "{path}:8: `encryption = gpg`: barkeep does not encrypt yet"
        )),
        "{}",
        gpg[0]
    );
    let rsync = &cfg.server("rsync").expect("rsync").disabled_reasons;
    assert!(
        rsync[0].starts_with(&format!("{path}:12: `backup_method = rsync`: barkeep takes backups over the replication protocol only (`backup_method = postgres`)")),
        "{}",
        rsync[0]
    );
    let cloud = &cfg.server("cloud").expect("cloud").disabled_reasons;
    assert!(cloud[0].contains("object storage"), "{cloud:?}");
    assert!(!cfg.server("ok").expect("ok").disabled());
    let warnings: Vec<String> = cfg.warnings.iter().map(ToString::to_string).collect();
    for (line, key) in [(3, "log_format"), (23, "cloud_staging_max_size")] {
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with(&format!("{path}:{line}: `{key} ="))
                    && w.contains("has no effect in barkeep")),
            "{key}: {warnings:#?}"
        );
    }
    // retention_policy is enforced now: no warning.
    assert!(
        !warnings.iter().any(|w| w.contains("`retention_policy =")),
        "{warnings:#?}"
    );
    // Barman 3.19's keys are known keys, not "unknown".
    assert!(
        !warnings
            .iter()
            .any(|w| w.contains("unknown configuration key")),
        "{warnings:#?}"
    );
}

#[test]
fn typed_server_settings_cover_every_acting_key_and_take_defaults_from_the_table() {
    use crate::typed::ServerSettings;
    let fields = ServerSettings::FIELDS;
    let mut problems = Vec::new();
    for f in fields {
        let Some(spec) = keys::lookup(f.key) else {
            problems.push(format!("{}: not in the key table", f.key));
            continue;
        };
        if !(f.accepts)(spec.kind) {
            problems.push(format!(
                "{}: field type does not fit {:?}",
                f.key, spec.kind
            ));
        }
        if f.required && spec.default.is_none() {
            problems.push(format!("{}: not an Option but has no default", f.key));
        }
    }
    for spec in keys::SERVER_KEYS {
        let acts = matches!(
            support::support(spec.name),
            Some(support::Support::Acts | support::Support::Values(..))
        );
        if acts && !fields.iter().any(|f| f.key == spec.name) {
            problems.push(format!(
                "{}: barkeep acts on it but it has no typed field",
                spec.name
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");

    // Defaults come from the table, resolved against the server's own values.
    let (_dir, cfg) = load_text("[barman]\nbarman_home = /b\n\n[pg]\nconninfo = host=a\n");
    let cfg = cfg.expect("loads");
    let s = cfg.server("pg").expect("pg").typed();
    assert!(s.active);
    assert_eq!(s.cluster, "pg");
    assert_eq!(s.streaming_conninfo.as_deref(), Some("host=a"));
    assert_eq!(s.basebackup_retry_sleep, 30);
    assert_eq!(s.parallel_jobs, 1);
    assert_eq!(s.backup_method, "rsync");
    assert_eq!(s.reuse_backup, "link");
    assert_eq!(s.streaming_archiver_name, "barman_receive_wal");
    assert_eq!(s.wals_directory, Path::new("/b/pg/wals"));
    assert_eq!(s.xlogdb_directory, Path::new("/b/pg/wals"));
    assert_eq!(s.check_timeout, 30);
    assert!(s.slot_name.is_none());
}
