//! Finding PostgreSQL's own programs (`pg_verifybackup`, …) for a server: `path_prefix`
//! first (as Barman), then the distributions' per-major directories, then `PATH` — the
//! last only when the program's major matches, since WAL parsing tools are tied to it.

use std::path::{Path, PathBuf};

use barkeep_config::ServerSettings;

fn executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The first `program` for PostgreSQL `major` this host has, or `None`.
pub(crate) fn find(s: &ServerSettings, program: &str, major: u32) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(prefix) = &s.path_prefix {
        dirs.extend(
            prefix
                .split(':')
                .filter(|d| !d.is_empty())
                .map(PathBuf::from),
        );
    }
    for d in &dirs {
        let p = d.join(program);
        if executable(&p) {
            return Some(p);
        }
    }
    for d in [
        format!("/usr/lib/postgresql/{major}/bin"),
        format!("/usr/pgsql-{major}/bin"),
    ] {
        let p = Path::new(&d).join(program);
        if executable(&p) {
            return Some(p);
        }
    }
    let path = std::env::var_os("PATH")?;
    for d in std::env::split_paths(&path) {
        let p = d.join(program);
        if executable(&p) && version_major(&p) == Some(major) {
            return Some(p);
        }
    }
    None
}

/// The major version a PostgreSQL program reports (`pg_verifybackup (PostgreSQL) 17.2`).
fn version_major(p: &Path) -> Option<u32> {
    let o = std::process::Command::new(p)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&o.stdout);
    let v = text.split_whitespace().last()?;
    v.split(['.', 'b', 'r']).next()?.parse().ok()
}
