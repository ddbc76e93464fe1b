//! Command dispatch: load the configuration once, set up logging, build the engine, run
//! the command, render its result. Each command module is a few lines per command: turn
//! arguments into engine options, call the engine, print what it returned.

mod backup;
mod ops;
mod restore;
mod servers;
mod wal;

use std::sync::Arc;

use barkeep_engine::{Engine, EngineError};

use crate::cli::{Cli, Command};
use crate::output::Sink;
use crate::{Failure, Output, logging};

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        Failure {
            code: e.exit_code(),
            message: barkeep_engine::render(&e),
        }
    }
}

/// Loads the configuration and runs the selected command.
pub fn dispatch(cli: &Cli, rt: &tokio::runtime::Runtime, out: &Arc<Output>) -> Result<(), Failure> {
    // The WAL clients run on database hosts, usually without a barkeep configuration.
    match &cli.command {
        Command::WalArchive(a) if !a.remote.local => {
            logging::init(logging::level(cli, None), None, cli.color);
            return wal::wal_archive(a, None, out);
        }
        Command::WalRestore(a) if !a.remote.local => {
            logging::init(logging::level(cli, None), None, cli.color);
            return wal::wal_restore(a, None, out);
        }
        _ => {}
    }
    let env = |k: &str| std::env::var(k).ok();
    let path = barkeep_config::find_config_file(cli.config.as_deref(), &env)
        .map_err(|e| Failure::usage(e.to_string()))?;
    let config = match barkeep_config::load(&path) {
        Ok(c) => c,
        Err(errors) => {
            logging::init(logging::level(cli, None), None, cli.color);
            return Err(Failure::usage(errors.to_string()));
        }
    };
    // `barman_user`: started as root, become that user (re-executed); started as another
    // user, refused — as Barman does.
    barkeep_engine::become_barman_user(&config)?;
    // Private by default: the catalog holds every row of every database.
    barkeep_engine::catalog_group(&config)?;
    let level = logging::level(cli, config.global.choice("log_level"));
    let json = config
        .global
        .str("log_format")
        .is_some_and(|f| f.trim().eq_ignore_ascii_case("json"));
    if let Some(w) = logging::init_as(level, config.global.path("log_file"), cli.color, json) {
        out.warning(&w);
    }
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    tracing::debug!(config = %path.display(), "configuration loaded");
    let engine = Engine::new(config).with_events(Sink(out.clone()));

    match &cli.command {
        Command::ListServers { minimal } => servers::list(&engine, *minimal, out),
        Command::ShowServers {
            servers,
            show_config_source,
        } => servers::show(&engine, rt, servers, *show_config_source, out),
        Command::Diagnose { show_config_source } => {
            servers::diagnose(&engine, *show_config_source, out)
        }
        Command::ReceiveWal {
            server,
            stop,
            reset,
            create_slot,
            if_not_exists,
            drop_slot,
        } => {
            let o = barkeep_engine::ReceiveOpts {
                stop: *stop,
                reset: *reset,
                create_slot: *create_slot,
                if_not_exists: *if_not_exists,
                drop_slot: *drop_slot,
            };
            wal::receive_wal(&engine.server(server)?, o, rt, out)
        }
        Command::ArchiveWal { server } => wal::archive_wal(&engine.server(server)?, out),
        Command::GetWal {
            server,
            wal_name,
            output_directory,
            partial,
            peek,
            test,
            keep_compression,
            gzip,
            bzip2,
        } => {
            let o = barkeep_engine::GetWalOpts {
                output_directory: output_directory.clone(),
                partial: *partial,
                keep_compression: *keep_compression,
                compress: match (gzip, bzip2) {
                    (true, _) => Some("gzip".into()),
                    (_, true) => Some("bzip2".into()),
                    _ => None,
                },
            };
            wal::get_wal(&engine.server(server)?, wal_name, *peek, *test, &o, out)
        }
        Command::PutWal { server, test } => wal::put_wal(&engine.server(server)?, *test, out),
        Command::SwitchWal {
            servers,
            force,
            archive,
            archive_timeout,
        } => {
            let timeout = archive.then_some(*archive_timeout);
            for s in engine.servers(servers)? {
                each(out, rt.block_on(wal::switch_wal(&s, *force, timeout, out)));
            }
            Ok(())
        }
        Command::ReplicationStatus { servers, minimal } => {
            for s in engine.servers(servers)? {
                each(out, rt.block_on(wal::replication_status(&s, *minimal, out)));
            }
            Ok(())
        }
        Command::RebuildXlogdb { servers } => {
            for s in engine.servers(servers)? {
                wal::rebuild_xlogdb(&s, out)?;
            }
            Ok(())
        }
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
            incremental,
            full,
        } => {
            let o = barkeep_engine::BackupOpts {
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
                incremental: incremental.clone(),
                full: *full,
            };
            for s in engine.servers(servers)? {
                if let Some(skip) = s.backup_skipped() {
                    out.warning(&skip);
                    continue;
                }
                each(out, rt.block_on(backup::backup(&s, &o, out)));
            }
            Ok(())
        }
        Command::ListBackups { servers, minimal } => {
            for s in engine.servers(servers)? {
                backup::list_backups(&s, *minimal, out)?;
            }
            Ok(())
        }
        Command::ShowBackup { server, backup_id } => {
            backup::show_backup(&engine.server(server)?, backup_id, out)
        }
        Command::VerifyBackup { server, backup_id } => {
            backup::verify_backup(&engine.server(server)?, backup_id, out)
        }
        Command::CheckBackup { server, backup_id } => {
            backup::check_backup(&engine.server(server)?, backup_id, out)
        }
        Command::Keep {
            server,
            backup_id,
            release,
            status,
            target,
        } => {
            let action = match (release, status, target.as_deref()) {
                (true, _, _) => barkeep_engine::KeepAction::Release,
                (_, true, _) => barkeep_engine::KeepAction::Status,
                (_, _, Some("standalone")) => {
                    barkeep_engine::KeepAction::Set(barkeep_engine::KeepTarget::Standalone)
                }
                _ => barkeep_engine::KeepAction::Set(barkeep_engine::KeepTarget::Full),
            };
            ops::keep(&engine.server(server)?, backup_id, action, out)
        }
        Command::Check {
            servers,
            nagios,
            check_timeout,
        } => {
            let list = engine.servers(servers)?;
            let reports = rt.block_on(engine.check(list, *check_timeout));
            ops::check(&reports, *nagios, out)
        }
        Command::Status { servers } => {
            let list = engine.servers(servers)?;
            ops::status(&rt.block_on(engine.status(list)), out);
            Ok(())
        }
        Command::ListProcesses { server } => {
            ops::list_processes(&engine.server(server)?, out);
            Ok(())
        }
        Command::TerminateProcess { server, task } => {
            let p = engine.server(server)?.terminate(task)?;
            out.line(&format!("Stopped process {}({})", p.name, p.pid));
            Ok(())
        }
        Command::Drill { server, backup_id } => {
            let report = rt.block_on(engine.server(server)?.drill(backup_id))?;
            ops::drill(&report, out)
        }
        Command::Daemon => Ok(rt.block_on(barkeep_daemon::run(path.clone(), Sink(out.clone())))?),
        Command::Cron { keep_descriptors } => ops::cron(&engine, *keep_descriptors, out),
        Command::LockDirectoryCleanup => {
            engine.lock_directory_cleanup()?;
            Ok(())
        }
        Command::Retention { server, dry_run } => {
            ops::retention(&engine.server(server)?, *dry_run, out)
        }
        Command::Delete { server, backup_id } => {
            backup::delete(&engine.server(server)?, backup_id, out)
        }
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
            owner,
            staging_path: _,
            staging_location: _,
            combine_mode,
        } => {
            use barkeep_engine::Target;
            if let Some(m) = combine_mode.as_deref().filter(|m| *m != "copy") {
                return Err(Failure::usage(format!(
                    "--combine-mode {m}: barkeep combines incremental chains natively by copying the blocks into the destination (`copy`); `link`, `clone` and `copy-file-range` would tie the restored files to the catalog's"
                )));
            }
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
            let o = barkeep_engine::RestoreOpts {
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
                owner: owner.clone(),
            };
            restore::restore(
                &engine.server(server)?,
                backup_id,
                destination_directory,
                &o,
                out,
            )
        }
        Command::ListFiles {
            server,
            backup_id,
            target,
        } => backup::list_files(&engine.server(server)?, backup_id, target, out),
        Command::WalArchive(a) => wal::wal_archive(a, Some(&engine), out),
        Command::WalRestore(a) => wal::wal_restore(a, Some(&engine), out),
    }
}

/// A per-server result of a command over several servers: a failure is reported and the
/// next server still runs (exit code 1 at the end), as Barman does.
fn each(out: &Output, r: Result<(), Failure>) {
    if let Err(f) = r {
        out.error(&f.message);
    }
}
