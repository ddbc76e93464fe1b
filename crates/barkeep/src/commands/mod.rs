//! Command dispatch: resolve the configuration once, set up logging, run the command.

mod backup;
mod diagnose;
mod restore;
mod servers;
mod wal;
mod walclient;

use anyhow::anyhow;
use barkeep_config::{Config, ServerConfig};

use crate::cli::{Cli, Command};
use crate::{Failure, Output, logging, usage};

/// Loads the configuration and runs the selected command.
pub fn dispatch(cli: &Cli, out: &mut Output) -> Result<(), Failure> {
    // The WAL clients run on database hosts, usually without a barkeep configuration.
    match &cli.command {
        Command::WalArchive(a) if !a.remote.local => {
            barkeep_archive::durable::set_group_access(None);
            logging::init(logging::level(cli, None), None, cli.color);
            return walclient::wal_archive(a, None, out);
        }
        Command::WalRestore(a) if !a.remote.local => {
            barkeep_archive::durable::set_group_access(None);
            logging::init(logging::level(cli, None), None, cli.color);
            return walclient::wal_restore(a, None, out);
        }
        _ => {}
    }
    let env = |k: &str| std::env::var(k).ok();
    let path = barkeep_config::find_config_file(cli.config.as_deref(), &env).map_err(usage)?;
    let config = match barkeep_config::load(&path) {
        Ok(c) => c,
        Err(errors) => {
            logging::init(logging::level(cli, None), None, cli.color);
            return Err(usage(anyhow!(errors)));
        }
    };
    // Private by default: the catalog holds every row of every database.
    let group = match config.global.str("catalog_group") {
        None => None,
        Some(name) => match nix::unistd::Group::from_name(name) {
            Ok(Some(g)) => Some(g.gid),
            Ok(None) => {
                return Err(usage(anyhow!(
                    "`catalog_group = {name}`: no such group on this host"
                )));
            }
            Err(e) => {
                return Err(usage(anyhow!(
                    "`catalog_group = {name}`: cannot look the group up: {e}"
                )));
            }
        },
    };
    barkeep_archive::durable::set_group_access(group);
    let level = logging::level(cli, config.global.choice("log_level"));
    if let Some(w) = logging::init(level, config.global.path("log_file"), cli.color) {
        out.warning(&w);
    }
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    tracing::debug!(config = %path.display(), "configuration loaded");

    match &cli.command {
        Command::ListServers { minimal } => servers::list(&config, *minimal, out),
        Command::ShowServers {
            servers,
            show_config_source,
        } => servers::show(&config, servers, *show_config_source, out),
        Command::Diagnose { show_config_source } => {
            diagnose::run(&config, *show_config_source, out)
        }
        Command::ReceiveWal {
            server,
            stop,
            reset,
            create_slot,
            if_not_exists,
            drop_slot,
        } => wal::receive_wal(
            &config,
            server,
            wal::ReceiveOpts {
                stop: *stop,
                reset: *reset,
                create_slot: *create_slot,
                if_not_exists: *if_not_exists,
                drop_slot: *drop_slot,
            },
            out,
        ),
        Command::ArchiveWal { server } => wal::archive_wal(&config, server, out),
        Command::GetWal {
            server,
            wal_name,
            output_directory,
            partial,
            peek,
            test,
            keep_compression,
        } => wal::get_wal(
            &config,
            server,
            wal_name,
            &wal::GetWalOpts {
                output_directory: output_directory.clone(),
                partial: *partial,
                peek: *peek,
                test: *test,
                keep_compression: *keep_compression,
            },
            out,
        ),
        Command::PutWal { server, test } => wal::put_wal(&config, server, *test, out),
        Command::SwitchWal {
            servers,
            force,
            archive,
            archive_timeout,
        } => wal::switch_wal(&config, servers, *force, *archive, *archive_timeout, out),
        Command::ReplicationStatus { servers, minimal } => {
            wal::replication_status(&config, servers, *minimal, out)
        }
        Command::RebuildXlogdb { servers } => wal::rebuild_xlogdb(&config, servers, out),
        Command::Backup {
            servers,
            name,
            immediate_checkpoint,
            no_immediate_checkpoint,
            bwlimit,
            retry_times,
            retry_sleep,
            no_retry,
            jobs,
            reuse_backup,
            wait,
            wait_timeout,
        } => backup::backup(
            &config,
            servers,
            &backup::BackupOpts {
                name: name.clone(),
                immediate: if *immediate_checkpoint {
                    Some(true)
                } else if *no_immediate_checkpoint {
                    Some(false)
                } else {
                    None
                },
                bwlimit: *bwlimit,
                retry_times: if *no_retry { Some(0) } else { *retry_times },
                retry_sleep: *retry_sleep,
                jobs: *jobs,
                reuse: reuse_backup.clone(),
                wait: *wait,
                wait_timeout: *wait_timeout,
            },
            out,
        ),
        Command::ListBackups { servers, minimal } => {
            backup::list_backups(&config, servers, *minimal, out)
        }
        Command::ShowBackup { server, backup_id } => {
            backup::show_backup(&config, server, backup_id, out)
        }
        Command::VerifyBackup { server, backup_id } => {
            backup::verify_backup(&config, server, backup_id, out)
        }
        Command::CheckBackup { server, backup_id } => {
            backup::check_backup(&config, server, backup_id, out)
        }
        Command::Delete { server, backup_id } => backup::delete(&config, server, backup_id, out),
        Command::Restore {
            server,
            backup_id,
            destination_directory,
            target_time,
            target_xid,
            target_lsn,
            target_name,
            target_immediate,
            target_tli,
            exclusive,
            target_action,
            standby_mode,
            tablespace,
            get_wal,
            no_get_wal,
            staging_wal_directory,
            jobs,
            recovery_conf_filename,
            remote_ssh_command,
            bwlimit,
        } => {
            use barkeep_backup::restore::Target;
            let target = if let Some(t) = target_time {
                Some(Target::Time(t.clone()))
            } else if let Some(x) = target_xid {
                Some(Target::Xid(x.clone()))
            } else if let Some(l) = target_lsn {
                Some(Target::Lsn(l.clone()))
            } else if let Some(n) = target_name {
                Some(Target::Name(n.clone()))
            } else if *target_immediate {
                Some(Target::Immediate)
            } else {
                None
            };
            restore::restore(
                &config,
                server,
                backup_id,
                destination_directory,
                &restore::RestoreOpts {
                    target,
                    target_tli: target_tli.clone(),
                    exclusive: *exclusive,
                    target_action: target_action.clone(),
                    standby_mode: *standby_mode,
                    tablespaces: tablespace.clone(),
                    get_wal: if *get_wal {
                        Some(true)
                    } else if *no_get_wal {
                        Some(false)
                    } else {
                        None
                    },
                    staging_wal_dir: staging_wal_directory.clone(),
                    jobs: *jobs,
                    recovery_conf_filename: recovery_conf_filename.clone(),
                    remote_ssh_command: remote_ssh_command.clone(),
                    bwlimit: bwlimit.filter(|b| *b > 0),
                },
                out,
            )
        }
        Command::ListFiles {
            server,
            backup_id,
            target,
        } => backup::list_files(&config, server, backup_id, target, out),
        Command::WalArchive(a) => walclient::wal_archive(a, Some(&config), out),
        Command::WalRestore(a) => walclient::wal_restore(a, Some(&config), out),
    }
}

/// The servers named on the command line (`all` = every server), in configuration order.
pub(crate) fn select<'a>(
    config: &'a Config,
    names: &[String],
) -> Result<Vec<&'a ServerConfig>, Failure> {
    if names.iter().any(|n| n == "all") {
        return Ok(config.servers.iter().collect());
    }
    let mut out = Vec::new();
    for name in names {
        match config.server(name) {
            Some(s) => out.push(s),
            None => {
                let known: Vec<&str> = config.servers.iter().map(|s| s.name.as_str()).collect();
                return Err(Failure::from(anyhow!(
                    "unknown server `{name}` (configured: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        }
    }
    Ok(out)
}
