//! The `barkeep` binary is thin: clap → engine → renderers. Its sources do no file system
//! work, no SQL, no protocol and spawn nothing of their own; its manifest does not even
//! depend on the crates that do. Everything lives in `barkeep-engine` and below, where
//! the daemon reaches it too.

use std::path::{Path, PathBuf};

/// Text that must not appear in `crates/barkeep/src`, and why.
const FORBIDDEN: &[(&str, &str)] = &[
    ("std::fs", "file system access"),
    ("fs::", "file system access"),
    ("File::", "file system access"),
    ("OpenOptions", "file system access"),
    ("read_dir", "file system access"),
    ("remove_file", "file system access"),
    ("create_dir", "file system access"),
    ("std::process::Command", "running programs"),
    ("Command::new", "running programs"),
    ("tokio::spawn", "spawned tasks"),
    ("spawn_blocking", "spawned tasks"),
    ("thread::spawn", "spawned threads"),
    ("thread::scope", "spawned threads"),
    ("JoinSet", "spawned tasks"),
    ("barkeep_pg", "the PostgreSQL protocol"),
    ("barkeep_archive", "the WAL archive internals"),
    ("barkeep_backup", "the backup internals"),
    ("Connection", "PostgreSQL connections"),
    (".query(", "SQL"),
    ("simple_query", "SQL"),
    ("pg_catalog", "SQL"),
    ("TcpStream", "network access"),
    ("UnixStream", "network access"),
];

/// Crates the binary must not depend on (the engine does).
const FORBIDDEN_DEPS: &[&str] = &[
    "barkeep-pg",
    "barkeep-archive",
    "barkeep-backup",
    "barkeep-wal",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("list src") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn the_binary_does_no_work_of_its_own() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    assert!(files.len() >= 5, "sources found: {files:?}");
    let mut problems = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read source");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for (needle, what) in FORBIDDEN {
                if code.contains(needle) {
                    problems.push(format!(
                        "{}:{}: `{needle}` ({what}) belongs in barkeep-engine: {}",
                        f.strip_prefix(root).unwrap_or(f).display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_binary_depends_on_the_engine_not_on_what_is_below_it() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .expect("read Cargo.toml");
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|s| s.split("\n[").next())
        .expect("[dependencies]");
    assert!(deps.contains("barkeep-engine"), "{deps}");
    for d in FORBIDDEN_DEPS {
        assert!(
            !deps.lines().any(|l| l.trim_start().starts_with(d)),
            "the binary depends on `{d}`: go through barkeep-engine"
        );
    }
}
