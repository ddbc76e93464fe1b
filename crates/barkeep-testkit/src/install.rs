//! Finding PostgreSQL installations: `BARKEEP_TEST_PG_BIN`, Debian's
//! `/usr/lib/postgresql/<major>/bin`, and the per-user cache that
//! `scripts/setup-test-env.sh --all-majors` fills with other majors.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::HarnessError;

/// One PostgreSQL installation (a `bin` directory with at least `initdb` and `postgres`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgInstall {
    /// The directory holding `initdb`, `postgres` and, usually, the client tools.
    pub bin: PathBuf,
    /// Major version (13, 14, …).
    pub major: u32,
    /// Full version as `postgres --version` prints it (e.g. `15.18`).
    pub version: String,
}

/// The cache directory of downloaded PostgreSQL trees.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BARKEEP_TEST_CACHE") {
        return PathBuf::from(dir).join("pg");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache/barkeep-test/pg")
}

impl PgInstall {
    /// Reads the version of the installation in `bin`.
    pub fn from_bin(bin: &Path) -> Result<PgInstall, HarnessError> {
        let postgres = bin.join("postgres");
        if !bin.join("initdb").is_file() || !postgres.is_file() {
            return Err(HarnessError::new(format!(
                "`{}` does not hold `initdb` and `postgres`",
                bin.display()
            )));
        }
        let mut cmd = Command::new(&postgres);
        cmd.arg("--version");
        crate::cluster::library_path(&mut cmd, bin);
        let out = cmd
            .output()
            .map_err(|e| HarnessError::io(format!("run `{} --version`", postgres.display()), e))?;
        let text = String::from_utf8_lossy(&out.stdout);
        // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        let version = text
            .split_whitespace()
            .nth(2)
            .ok_or_else(|| HarnessError::new(format!("unexpected `postgres --version`: {text}")))?
            .to_string();
        let major = version
            .split(['.', 'b', 'r'])
            .next()
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| HarnessError::new(format!("cannot read major from `{version}`")))?;
        Ok(PgInstall {
            bin: bin.to_path_buf(),
            major,
            version,
        })
    }

    /// Every installation found, newest version first, one per major.
    pub fn all() -> Vec<PgInstall> {
        let mut bins: Vec<PathBuf> = Vec::new();
        if let Ok(rd) = std::fs::read_dir("/usr/lib/postgresql") {
            bins.extend(rd.flatten().map(|e| e.path().join("bin")));
        }
        // Cache layout: <cache>/<version>/…/bin (wheel trees nest one level deeper).
        if let Ok(rd) = std::fs::read_dir(cache_dir()) {
            for e in rd.flatten() {
                let root = e.path();
                bins.push(root.join("bin"));
                if let Ok(inner) = std::fs::read_dir(&root) {
                    bins.extend(inner.flatten().map(|i| i.path().join("bin")));
                }
            }
        }
        let mut found: Vec<PgInstall> = bins
            .iter()
            .filter(|b| b.join("initdb").is_file())
            .filter_map(|b| PgInstall::from_bin(b).ok())
            .collect();
        found.sort_by(|a, b| {
            b.major
                .cmp(&a.major)
                .then_with(|| b.version.cmp(&a.version))
        });
        found.dedup_by_key(|i| i.major);
        found
    }

    /// The installation tests use by default: `BARKEEP_TEST_PG_BIN`, else the newest
    /// Debian major, else the newest cached one.
    pub fn discover() -> Result<PgInstall, HarnessError> {
        if let Some(bin) = std::env::var_os("BARKEEP_TEST_PG_BIN") {
            return PgInstall::from_bin(Path::new(&bin));
        }
        let mut debian: Vec<PgInstall> = PgInstall::all()
            .into_iter()
            .filter(|i| i.bin.starts_with("/usr/lib/postgresql"))
            .collect();
        if !debian.is_empty() {
            return Ok(debian.remove(0));
        }
        PgInstall::all().into_iter().next().ok_or_else(|| {
            HarnessError::new(
                "no PostgreSQL installation found (looked at BARKEEP_TEST_PG_BIN, /usr/lib/postgresql/*/bin and the test cache); run `scripts/setup-test-env.sh`".to_string(),
            )
        })
    }

    /// The installation of one major, if present.
    pub fn major(major: u32) -> Option<PgInstall> {
        PgInstall::all().into_iter().find(|i| i.major == major)
    }

    /// A client tool (`psql`, `pgbench`, `pg_verifybackup`…): from this installation, or,
    /// when it has none, from the newest installation that has it — except for tools
    /// that only work with their own major (`pg_waldump` reads only its own WAL page
    /// magic, `pg_verifybackup` runs it, `pg_controldata` reads its own control file…):
    /// those are never borrowed, so an oracle cannot silently be the wrong one.
    pub fn tool(&self, name: &str) -> Option<PathBuf> {
        const OWN_MAJOR_ONLY: &[&str] = &[
            "pg_waldump",
            "pg_verifybackup",
            "pg_controldata",
            "pg_resetwal",
            "pg_rewind",
            "pg_combinebackup",
            "pg_walsummary",
            "pg_checksums",
            "pg_upgrade",
        ];
        let own = self.bin.join(name);
        if own.is_file() {
            return Some(own);
        }
        if OWN_MAJOR_ONLY.contains(&name) {
            return None;
        }
        PgInstall::all()
            .into_iter()
            .map(|i| i.bin.join(name))
            .find(|p| p.is_file())
    }
}
