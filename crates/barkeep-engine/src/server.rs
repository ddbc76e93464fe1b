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
