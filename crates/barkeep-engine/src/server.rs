//! A server's resources, resolved from its settings once: the WAL archive, the backup
//! catalog, the lock directory, connection parameters; and the rules that refuse an
//! operation on a disabled or inactive server.

use std::path::PathBuf;

use barkeep_archive::{Codec, Level, ServerArchive};
use barkeep_catalog::LocalCatalog;
use barkeep_config::Config;
use barkeep_config::values::CompressionLevel;
use barkeep_pg::Connection;
use barkeep_pg::conninfo::{ConnParams, ProcessEnv};

use crate::Server;
use crate::error::{EngineError, Result, usage};

/// The lock directory (`barman_lock_directory`, default `barman_home`).
pub(crate) fn lock_dir(config: &Config) -> PathBuf {
    config
        .global
        .path("barman_lock_directory")
        .unwrap_or_else(|| config.barman_home())
        .to_path_buf()
}

/// `barman_user`, when a configuration file sets it: a process started as that user goes
/// on; one started as root becomes that user — its groups, its uid, its `HOME` (for
/// `.pgpass`) — by executing itself again with the same arguments; one started as anybody
/// else is refused, as Barman refuses ("please run barman as 'barman' user"). Unset (the
/// key's default is Barman's `barman`, but barkeep does not assume a user exists), barkeep
/// runs as whoever starts it.
pub fn become_barman_user(config: &Config) -> Result<()> {
    use barkeep_config::Source;
    let set_in_file = matches!(
        config.global.0.get("barman_user").map(|s| &s.source),
        Some(Source::File { .. })
    );
    let Some(name) = config.global.str("barman_user").filter(|_| set_in_file) else {
        return Ok(());
    };
    let user = match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => u,
        Ok(None) => {
            return Err(usage(format!(
                "the configured user '{name}' (barman_user) does not exist on this host"
            )));
        }
        Err(e) => {
            return Err(usage(format!(
                "barman_user = {name}: cannot look the user up: {e}"
            )));
        }
    };
    let me = nix::unistd::geteuid();
    if me == user.uid {
        return Ok(());
    }
    if !me.is_root() {
        let current = nix::unistd::User::from_uid(me)
            .ok()
            .flatten()
            .map_or_else(|| me.to_string(), |u| u.name);
        return Err(EngineError::Refused(format!(
            "please run barkeep as '{name}' user (barman_user), not as '{current}': e.g. sudo -u {name} barkeep …"
        )));
    }
    let exe = std::env::current_exe()
        .map_err(|e| EngineError::io("find the barkeep executable", PathBuf::new(), e))?;
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    let cname = std::ffi::CString::new(user.name.clone())
        .map_err(|_| usage(format!("barman_user = {name}: not a valid user name")))?;
    nix::unistd::initgroups(&cname, user.gid).map_err(|e| {
        EngineError::Failed(format!(
            "cannot take the groups of '{name}' (barman_user): {e}"
        ))
    })?;
    let mut cmd = std::process::Command::new(&exe);
    std::os::unix::process::CommandExt::arg0(&mut cmd, argv0);
    cmd.args(args)
        .env("HOME", &user.dir)
        .env("USER", &user.name)
        .env("LOGNAME", &user.name);
    std::os::unix::process::CommandExt::gid(&mut cmd, user.gid.as_raw());
    std::os::unix::process::CommandExt::uid(&mut cmd, user.uid.as_raw());
    let e = std::os::unix::process::CommandExt::exec(&mut cmd);
    Err(EngineError::io(
        format!("run barkeep again as '{name}' (barman_user)"),
        exe,
        e,
    ))
}

/// Applies `catalog_group` (or none) to everything the process creates from now on:
/// files 0600/0640, directories 0700/2750. Call once, before any operation.
pub fn catalog_group(config: &Config) -> Result<()> {
    let group = match config.global.str("catalog_group") {
        None => None,
        Some(name) => match nix::unistd::Group::from_name(name) {
            Ok(Some(g)) => Some(g.gid),
            Ok(None) => {
                return Err(usage(format!(
                    "`catalog_group = {name}`: no such group on this host"
                )));
            }
            Err(e) => {
                return Err(usage(format!(
                    "`catalog_group = {name}`: cannot look the group up: {e}"
                )));
            }
        },
    };
    barkeep_archive::durable::set_group_access(group);
    Ok(())
}

impl Server {
    /// The WAL archive of this server.
    pub(crate) fn archive(&self) -> Result<ServerArchive> {
        let s = self.typed();
        let codec = Codec::from_setting(s.compression)
            .map_err(|e| usage(format!("server `{}`: {e}", self.name())))?;
        let level = match s.compression_level {
            CompressionLevel::Low => Level::Low,
            CompressionLevel::Medium => Level::Medium,
            CompressionLevel::High => Level::High,
            CompressionLevel::Level(n) => Level::Number(n),
        };
        Ok(ServerArchive {
            server: self.name().to_string(),
            wals: s.wals_directory.clone(),
            incoming: s.incoming_wals_directory.clone(),
            streaming: s.streaming_wals_directory.clone(),
            errors: s.errors_directory.clone(),
            xlogdb_dir: s.xlogdb_directory.clone(),
            lock_dir: lock_dir(&self.config),
            identity_file: s.backup_directory.join("identity.json"),
            codec,
            level,
            hooks: self.has_hooks("archive").then(|| {
                std::sync::Arc::new(crate::hooks::ArchiveHookRunner(self.clone()))
                    as std::sync::Arc<dyn barkeep_archive::ArchiveHooks>
            }),
        })
    }

    /// The catalog of this server: `backup_directory`, its backups in
    /// `basebackups_directory` (default `<backup_directory>/base`), its WAL archive.
    pub(crate) fn catalog(&self) -> Result<LocalCatalog> {
        let s = self.typed();
        Ok(LocalCatalog {
            server: self.name().to_string(),
            base_dir: s.basebackups_directory.clone(),
            backup_dir: s.backup_directory.clone(),
            archive: self.archive()?,
        })
    }

    /// Connection parameters from the server's `key` (`conninfo`, `streaming_conninfo`,
    /// `primary_conninfo`).
    pub(crate) fn conn_params(
        &self,
        key: &str,
        replication: bool,
        application_name: Option<&str>,
    ) -> Result<ConnParams> {
        let t = self.typed();
        let name = self.name();
        let ci = match key {
            "conninfo" => t.conninfo.as_deref(),
            "streaming_conninfo" => t.streaming_conninfo.as_deref(),
            "primary_conninfo" => t.primary_conninfo.as_deref(),
            _ => None,
        }
        .ok_or_else(|| usage(format!("server `{name}`: `{key}` is not set")))?;
        let mut ci = ci.to_string();
        if replication {
            ci.push_str(" replication=true");
        }
        let mut p = barkeep_pg::conninfo::resolve(&ci, &ProcessEnv)
            .map_err(|e| usage(format!("server `{name}`: `{key}`: {}", crate::render(&e))))?;
        if let Some(app) = application_name {
            p.application_name = Some(app.to_string());
        }
        Ok(p)
    }

    /// A SQL connection to the server (`conninfo`).
    pub(crate) async fn connect_sql(&self) -> Result<Connection> {
        let params = self.conn_params("conninfo", false, None)?;
        Connection::connect(&params)
            .await
            .map_err(|e| EngineError::from(e).context(format!("server `{}`", self.name())))
    }

    /// Refuses `what` on a disabled or inactive server.
    /// Refuses `what` on a disabled server (an inactive one may still be read, deleted
    /// from and restored from, as in Barman).
    pub(crate) fn not_disabled(&self, what: &str) -> Result<()> {
        let s = self.settings();
        if s.disabled() {
            return Err(EngineError::Refused(format!(
                "server `{}` is disabled ({}); {what} refused",
                s.name,
                s.disabled_reasons.join("; ")
            )));
        }
        Ok(())
    }

    pub(crate) fn usable(&self, what: &str) -> Result<()> {
        let s = self.settings();
        if s.disabled() {
            return Err(EngineError::Refused(format!(
                "server `{}` is disabled ({}); {what} refused",
                s.name,
                s.disabled_reasons.join("; ")
            )));
        }
        if !s.active() {
            return Err(EngineError::Refused(format!(
                "server `{}` is inactive (active = false); {what} refused",
                s.name
            )));
        }
        Ok(())
    }
}
