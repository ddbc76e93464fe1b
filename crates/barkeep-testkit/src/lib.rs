//! Test harness for barkeep: real PostgreSQL clusters for integration tests.
//!
//! Finds server binaries ([`PgInstall`]), creates clusters from a cached `initdb` template
//! ([`ClusterBuilder`]), runs them as an unprivileged OS user when the test runs as root
//! (PostgreSQL refuses root), on a free port with the Unix socket in a short directory
//! under `/tmp`, and stops and removes them on drop, also when the test panics. A test
//! process killed outright leaves its clusters behind; the next harness run finds them by
//! their `owner.pid` and removes them.
//!
//! ```no_run
//! let Some(pg) = barkeep_testkit::require_pg() else { return };
//! let cluster = barkeep_testkit::ClusterBuilder::new(&pg).start().unwrap();
//! assert_eq!(cluster.query_value("SELECT 1").unwrap(), "1");
//! ```
//!
//! When no PostgreSQL is installed [`require_pg`] prints one `SKIP` line and the test
//! returns, unless `BARKEEP_TEST_REQUIRE_PG=1` (set by CI), which turns it into a failure.

mod cluster;
mod install;
mod proxy;
mod smallfs;
mod template;
mod tls;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

pub use cluster::{Auth, Cluster, ClusterBuilder, HbaEntry, StopMode, free_port, run};
pub use install::{PgInstall, cache_dir};
pub use proxy::Proxy;
pub use smallfs::SmallFs;
pub use template::copy_tree;
pub use tls::TestCa;

/// A harness failure, with what was being done and why it failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HarnessError(String);

impl HarnessError {
    pub(crate) fn new(msg: String) -> Self {
        HarnessError(msg)
    }
    pub(crate) fn io(what: String, e: std::io::Error) -> Self {
        HarnessError(format!("cannot {what}: {e}"))
    }
}

/// The PostgreSQL installation for this test, or `None` (after printing one `SKIP` line)
/// when none is installed. With `BARKEEP_TEST_REQUIRE_PG=1` a missing installation panics.
pub fn require_pg() -> Option<PgInstall> {
    match PgInstall::discover() {
        Ok(i) => Some(i),
        Err(e) => skip(&e.to_string()),
    }
}

/// Every installed major, or a skip as [`require_pg`] does when there is none.
pub fn require_all_pg() -> Vec<PgInstall> {
    let all = PgInstall::all();
    if all.is_empty() {
        let _ = skip::<()>("no PostgreSQL installation found; run `scripts/setup-test-env.sh`");
    }
    all
}

/// The installations a protocol test loops over: every major when
/// `BARKEEP_TEST_ALL_MAJORS=1` (what `scripts/test.sh` sets), else the default one.
pub fn test_installs() -> Vec<PgInstall> {
    if std::env::var("BARKEEP_TEST_ALL_MAJORS").as_deref() == Ok("1") {
        require_all_pg()
    } else {
        require_pg().into_iter().collect()
    }
}

/// The installations a test of a feature of PostgreSQL `min_major`+ loops over: those of
/// [`test_installs`] that have it, else the newest installed one that has it, else a
/// skip as [`require_pg`] does.
pub fn require_installs_from(min_major: u32) -> Vec<PgInstall> {
    let mut v: Vec<PgInstall> = test_installs()
        .into_iter()
        .filter(|i| i.major >= min_major)
        .collect();
    if v.is_empty() {
        v.extend(
            PgInstall::all()
                .into_iter()
                .filter(|i| i.major >= min_major)
                .max_by_key(|i| i.major),
        );
    }
    if v.is_empty() {
        let _ = skip::<()>(&format!(
            "this test needs PostgreSQL {min_major} or later; none is installed (scripts/setup-test-env.sh --all-majors)"
        ));
    }
    v
}

/// Real Barman (3.19, installed by `scripts/setup-test-env.sh` into the test cache, or
/// `BARKEEP_TEST_BARMAN`): the `barman` program. A skip as [`require_pg`] does when absent.
pub fn require_barman() -> Option<std::path::PathBuf> {
    let explicit = std::env::var_os("BARKEEP_TEST_BARMAN").map(std::path::PathBuf::from);
    let cached = std::env::var_os("BARKEEP_TEST_CACHE")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| std::path::PathBuf::from(h).join(".cache/barkeep-test"))
        })
        .map(|c| c.join("barman/bin/barman"));
    match explicit.or(cached).filter(|p| p.is_file()) {
        Some(p) => Some(p),
        None => skip("no Barman installation found; run `scripts/setup-test-env.sh`"),
    }
}

fn skip<T>(reason: &str) -> Option<T> {
    if std::env::var("BARKEEP_TEST_REQUIRE_PG").as_deref() == Ok("1") {
        panic!("{reason} (BARKEEP_TEST_REQUIRE_PG=1 makes this a failure)");
    }
    eprintln!("SKIP: {reason}");
    None
}

/// The OS user servers run as: an unprivileged one when the test runs as root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OsUser {
    /// Not root: run servers as ourselves.
    Current,
    /// Root: switch to this user.
    Switch {
        /// Login name.
        name: String,
        /// User id.
        uid: u32,
        /// Primary group id.
        gid: u32,
    },
}

impl OsUser {
    /// `postgres` (or `BARKEEP_TEST_PG_USER`) when running as root, else the current user.
    pub fn for_server() -> Result<OsUser, HarnessError> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(OsUser::Current);
        }
        let wanted = std::env::var("BARKEEP_TEST_PG_USER").unwrap_or_else(|_| "postgres".into());
        for name in [wanted.as_str(), "nobody"] {
            if let Ok(Some(u)) = nix::unistd::User::from_name(name) {
                return Ok(OsUser::Switch {
                    name: u.name,
                    uid: u.uid.as_raw(),
                    gid: u.gid.as_raw(),
                });
            }
        }
        Err(HarnessError::new(format!(
            "running as root and no `{wanted}` user to run PostgreSQL as (PostgreSQL refuses root); create it or set BARKEEP_TEST_PG_USER"
        )))
    }
    /// Login name (`current` when not switching).
    pub fn name(&self) -> &str {
        match self {
            OsUser::Current => "current",
            OsUser::Switch { name, .. } => name,
        }
    }
    /// `(uid, gid)` to switch to, if any.
    pub fn ids(&self) -> Option<(u32, u32)> {
        match self {
            OsUser::Current => None,
            OsUser::Switch { uid, gid, .. } => Some((*uid, *gid)),
        }
    }
    /// The name of this user's primary group (for `catalog_group`).
    pub fn group_name(&self) -> String {
        let gid = match self {
            OsUser::Current => nix::unistd::getegid(),
            OsUser::Switch { gid, .. } => nix::unistd::Gid::from_raw(*gid),
        };
        nix::unistd::Group::from_gid(gid)
            .ok()
            .flatten()
            .map(|g| g.name)
            .unwrap_or_else(|| gid.to_string())
    }
    /// Makes `cmd` run as this user (std drops root's supplementary groups too).
    pub fn apply(&self, cmd: &mut Command) {
        if let Some((uid, gid)) = self.ids() {
            cmd.uid(uid).gid(gid);
        }
    }
    /// Gives a whole tree to this user.
    pub fn chown_tree(&self, root: &Path) -> Result<(), HarnessError> {
        let Some((uid, gid)) = self.ids() else {
            return Ok(());
        };
        // lchown: symlinks (pg_tblspc) are changed themselves, never followed.
        let mut stack = vec![root.to_path_buf()];
        while let Some(p) = stack.pop() {
            std::os::unix::fs::lchown(&p, Some(uid), Some(gid))
                .map_err(|e| HarnessError::io(format!("chown `{}`", p.display()), e))?;
            let meta = std::fs::symlink_metadata(&p)
                .map_err(|e| HarnessError::io(format!("stat `{}`", p.display()), e))?;
            if meta.is_dir() {
                let rd = std::fs::read_dir(&p)
                    .map_err(|e| HarnessError::io(format!("list `{}`", p.display()), e))?;
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
        Ok(())
    }
}

/// Removes clusters left behind by test processes that died without dropping them
/// (SIGKILL, abort): their `owner.pid` names a process that no longer exists.
pub fn sweep_stale_clusters() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(rd) = std::fs::read_dir("/tmp") else {
            return;
        };
        for entry in rd.flatten() {
            let path = entry.path();
            let is_ours = entry.file_name().to_string_lossy().starts_with("bkt-");
            if !is_ours {
                continue;
            }
            let owner = std::fs::read_to_string(path.join("owner.pid"))
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok());
            let alive =
                |pid: i32| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
            let stale = match owner {
                Some(pid) => !alive(pid),
                // No owner file: only stale when old (it may be being created right now).
                None => entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .is_some_and(|age| age > Duration::from_secs(600)),
            };
            if !stale {
                continue;
            }
            if let Some(pm) = std::fs::read_to_string(path.join("data/postmaster.pid"))
                .ok()
                .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
            {
                let pid = nix::unistd::Pid::from_raw(pm);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGQUIT);
                std::thread::sleep(Duration::from_millis(200));
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
            let _ = std::fs::remove_dir_all(&path);
        }
    });
}

/// An XFS file system with reflink for this test, loop-mounted under `dir` (see
/// [`SmallFs::mount_xfs_reflink`]), or `None` after one `SKIP` line where this machine
/// cannot mount one (not root, no loop device, no mkfs.xfs) — a failure with
/// `BARKEEP_TEST_REQUIRE_PG=1`, as a missing PostgreSQL is.
pub fn require_reflink_fs(dir: &Path, mib: u64) -> Option<SmallFs> {
    match SmallFs::mount_xfs_reflink(dir, mib) {
        Ok(fs) => Some(fs),
        Err(e) => skip(&format!(
            "cannot mount an XFS file system with reflink: {e}"
        )),
    }
}
