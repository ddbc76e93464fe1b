//! A server's resources, resolved from its settings once: the WAL archive, the backup
//! catalog, the lock directory, connection parameters; and the rules that refuse an
//! operation on a disabled or inactive server.

use std::path::{Path, PathBuf};

use barkeep_archive::{Codec, Level, ServerArchive};
use barkeep_catalog::LocalCatalog;
use barkeep_config::values::CompressionLevel;
use barkeep_config::{Config, ServerConfig, Value};
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

fn path_of(s: &ServerConfig, key: &str) -> Result<PathBuf> {
    s.path(key)
        .map(Path::to_path_buf)
        .ok_or_else(|| usage(format!("server `{}`: `{key}` is not set", s.name)))
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
        let s = self.settings();
        let codec = Codec::from_setting(s.choice("compression"))
            .map_err(|e| usage(format!("server `{}`: {e}", s.name)))?;
        let level = match s.get("compression_level") {
            Some(Value::Level(CompressionLevel::Low)) => Level::Low,
            Some(Value::Level(CompressionLevel::High)) => Level::High,
            Some(Value::Level(CompressionLevel::Level(n))) => Level::Number(*n),
            _ => Level::Medium,
        };
        Ok(ServerArchive {
            server: s.name.clone(),
            wals: path_of(s, "wals_directory")?,
            incoming: path_of(s, "incoming_wals_directory")?,
            streaming: path_of(s, "streaming_wals_directory")?,
            errors: path_of(s, "errors_directory")?,
            xlogdb_dir: path_of(s, "xlogdb_directory")?,
            lock_dir: lock_dir(&self.config),
            identity_file: path_of(s, "backup_directory")?.join("identity.json"),
            codec,
            level,
            hooks: None,
        })
    }

    /// The catalog of this server: `backup_directory`, its backups in
    /// `basebackups_directory` (default `<backup_directory>/base`), its WAL archive.
    pub(crate) fn catalog(&self) -> Result<LocalCatalog> {
        let s = self.settings();
        let backup_dir = path_of(s, "backup_directory")?;
        Ok(LocalCatalog {
            server: s.name.clone(),
            base_dir: s
                .path("basebackups_directory")
                .map(Path::to_path_buf)
                .unwrap_or_else(|| backup_dir.join("base")),
            backup_dir,
            archive: self.archive()?,
        })
    }

    /// Connection parameters from the server's `key` (`conninfo`, `streaming_conninfo`).
    pub(crate) fn conn_params(
        &self,
        key: &str,
        replication: bool,
        application_name: Option<&str>,
    ) -> Result<ConnParams> {
        let s = self.settings();
        let ci = s
            .str(key)
            .ok_or_else(|| usage(format!("server `{}`: `{key}` is not set", s.name)))?;
        let mut ci = ci.to_string();
        if replication {
            ci.push_str(" replication=true");
        }
        let mut p = barkeep_pg::conninfo::resolve(&ci, &ProcessEnv).map_err(|e| {
            usage(format!(
                "server `{}`: `{key}`: {}",
                s.name,
                crate::render(&e)
            ))
        })?;
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
