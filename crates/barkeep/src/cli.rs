//! Command-line shape, as Barman's: global options before the subcommand, subcommands
//! named as Barman names them (with its aliases). Only parsing lives here; each command's
//! logic is in `commands/`.

use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};

/// The text `--version` prints.
pub const VERSION_TEXT: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\nbarkeep — PostgreSQL backup and recovery (reads Barman 3.x configuration and catalogs)"
);

/// barkeep: backup and recovery manager for PostgreSQL fleets, a successor to Barman.
#[derive(Debug, Parser)]
#[command(
    name = "barkeep",
    disable_version_flag = true,
    version = VERSION_TEXT,
    after_help = "Configuration lookup without -c: $BARKEEP_CONFIG, ~/.barkeep.conf, /etc/barkeep.conf, /etc/barkeep/barkeep.conf, $BARMAN_CONFIG_FILE, ~/.barman.conf, /etc/barman.conf, /etc/barman/barman.conf"
)]
pub struct Cli {
    /// Configuration file (Barman's INI format).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Output format.
    #[arg(short = 'f', long = "format", value_enum, default_value_t = Format::Console)]
    pub format: Format,

    /// Be quiet: print nothing on standard output, log only errors.
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,

    /// Debug output (same as `--log-level DEBUG`).
    #[arg(short = 'd', long = "debug")]
    pub debug: bool,

    /// Log level, overriding `log_level` from the configuration.
    #[arg(
        long = "log-level",
        value_enum,
        ignore_case = true,
        value_name = "LEVEL"
    )]
    pub log_level: Option<LogLevel>,

    /// When to use colours.
    #[arg(long = "color", visible_alias = "colour", value_enum, default_value_t = ColorMode::Auto)]
    pub color: ColorMode,

    /// Print the version and exit.
    #[arg(short = 'v', long = "version", action = ArgAction::Version)]
    pub version: Option<bool>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `-f/--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable text.
    Console,
    /// One JSON document on standard output.
    Json,
}

/// `--log-level`, with Barman's (Python logging's) names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum LogLevel {
    /// Everything.
    Notset,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something to look at.
    Warning,
    /// A failure.
    Error,
    /// A failure of everything.
    Critical,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorMode {
    /// Never colour.
    Never,
    /// Always colour.
    Always,
    /// Colour when both standard output and standard error are terminals.
    Auto,
}

/// Subcommands.
// Parsed once per process: the size of the largest variant (restore's options) costs
// nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the configured servers with their descriptions.
    #[command(name = "list-servers", visible_alias = "list-server")]
    ListServers {
        /// Only the server names, one per line.
        #[arg(long)]
        minimal: bool,
    },
    /// Show every effective setting of servers, its value and where it came from.
    #[command(name = "show-servers", visible_alias = "show-server")]
    ShowServers {
        /// Server names, or `all`.
        #[arg(required = true, value_name = "SERVER_NAME")]
        servers: Vec<String>,
        /// In JSON, give each setting as `{"value": …, "source": …}`.
        #[arg(long)]
        show_config_source: bool,
    },
    /// Print configuration, versions and environment as one JSON document.
    Diagnose {
        /// Give each setting as `{"value": …, "source": …}`.
        #[arg(long)]
        show_config_source: bool,
    },
    /// Stream WAL from the server into the streaming directory (runs until stopped).
    #[command(name = "receive-wal")]
    ReceiveWal {
        /// Server name.
        server: String,
        /// Stop the running receiver of this server.
        #[arg(long, conflicts_with_all = ["reset", "create_slot", "drop_slot"])]
        stop: bool,
        /// Forget the partial segment and restart from the archive or the server's position.
        #[arg(long, conflicts_with_all = ["create_slot", "drop_slot"])]
        reset: bool,
        /// Create the replication slot `slot_name` and exit.
        #[arg(long, conflicts_with = "drop_slot")]
        create_slot: bool,
        /// With --create-slot: succeed when the slot already exists.
        #[arg(long, requires = "create_slot")]
        if_not_exists: bool,
        /// Drop the replication slot `slot_name` and exit.
        #[arg(long)]
        drop_slot: bool,
    },
    /// Check that servers are ready to be backed up and their WAL archived (Barman's
    /// items; `--nagios` for a Nagios/Icinga plugin line).
    Check {
        /// Server names, or `all`.
        #[arg(required = true, value_name = "SERVER_NAME")]
        servers: Vec<String>,
        /// Nagios plugin output and exit codes (0 OK, 2 CRITICAL).
        #[arg(long)]
        nagios: bool,
        /// Give up after this many seconds (default `check_timeout`; 0 = no limit).
        #[arg(long, value_name = "SECONDS")]
        check_timeout: Option<u64>,
    },
    /// Show the status of servers: PostgreSQL, the WAL receiver, backups, retention.
    Status {
        /// Server names, or `all`.
        #[arg(required = true, value_name = "SERVER_NAME")]
        servers: Vec<String>,
    },
    /// Show the processes working for a server (who holds its task locks).
    #[command(name = "list-processes", visible_alias = "list-process")]
    ListProcesses {
        /// Server name.
        server: String,
    },
    /// Stop the process running a task of a server (`backup`, `receive-wal`…).
    #[command(name = "terminate-process")]
    TerminateProcess {
        /// Server name.
        server: String,
        /// The task.
        task: String,
    },
    /// Restore drill: restore a backup into a scratch directory, start PostgreSQL on it,
    /// replay to consistency, run pg_amcheck and `drill_sql`, record the result, clean up.
    Drill {
        /// Server name.
        server: String,
        /// Backup id, name or shortcut (default: latest).
        #[arg(default_value = "latest")]
        backup_id: String,
    },
    /// Run all the time (in the foreground, for systemd and containers): WAL receivers
    /// supervised, backups, retention and checks on their schedules. SIGHUP re-reads the
    /// configuration; SIGTERM stops.
    Daemon,
    /// Maintenance for every server, safe to run every minute: start missing WAL
    /// receivers, archive WAL, re-check waiting backups, apply retention, remove unused
    /// lock files.
    Cron {
        /// Started receivers keep this process's stdout and stderr (containers).
        #[arg(long)]
        keep_descriptors: bool,
    },
    /// Remove lock files nothing uses any more.
    #[command(name = "lock-directory-cleanup")]
    LockDirectoryCleanup,
    /// Move WAL from the incoming and streaming directories into the archive.
    #[command(name = "archive-wal")]
    ArchiveWal {
        /// Server name.
        server: String,
    },
    /// Write a WAL file from the archive to standard output (or a directory).
    #[command(name = "get-wal")]
    GetWal {
        /// Server name.
        server: String,
        /// WAL file name.
        wal_name: String,
        /// Write the file into this directory instead of standard output.
        #[arg(short = 'o', long = "output-directory", value_name = "DIR")]
        output_directory: Option<PathBuf>,
        /// Also look for a `.partial` file.
        #[arg(short = 'P', long)]
        partial: bool,
        /// List up to N consecutive WAL names available from WAL_NAME, one per line.
        #[arg(short = 'p', long, value_name = "N")]
        peek: Option<usize>,
        /// Test the connection only.
        #[arg(short = 't', long)]
        test: bool,
        /// Send the file as stored, compressed.
        #[arg(long)]
        keep_compression: bool,
        /// Compress the output with gzip.
        #[arg(short = 'z', long, conflicts_with_all = ["bzip2", "keep_compression"])]
        gzip: bool,
        /// Compress the output with bzip2.
        #[arg(short = 'j', long, conflicts_with = "keep_compression")]
        bzip2: bool,
    },
    /// Receive WAL from barman-wal-archive / `barkeep wal-archive` (a tar stream on stdin).
    #[command(name = "put-wal")]
    PutWal {
        /// Server name.
        server: String,
        /// Test the connection only.
        #[arg(short = 't', long)]
        test: bool,
    },
    /// Close the current WAL segment of servers.
    #[command(name = "switch-wal", visible_alias = "switch-xlog")]
    SwitchWal {
        /// Server names, or `all`.
        #[arg(required = true, value_name = "SERVER_NAME")]
        servers: Vec<String>,
        /// Run a CHECKPOINT first, so that a switch happens even without new WAL.
        #[arg(long)]
        force: bool,
        /// Wait until the closed segment is in the archive.
        #[arg(long)]
        archive: bool,
        /// Seconds to wait with --archive.
        #[arg(long, default_value_t = 30, value_name = "SECONDS")]
        archive_timeout: u64,
    },
    /// Show the streaming replication clients of servers.
    #[command(name = "replication-status")]
    ReplicationStatus {
        /// Server names, or `all`.
        #[arg(required = true, value_name = "SERVER_NAME")]
        servers: Vec<String>,
        /// One line per client.
        #[arg(long)]
        minimal: bool,
    },
    /// Rebuild the WAL catalog (`<server>-xlog.db`) from the archive.
    #[command(name = "rebuild-xlogdb")]
    RebuildXlogdb {
        /// Server names, or `all`.
        #[arg(required = true, value_name = "SERVER_NAME")]
        servers: Vec<String>,
    },
    /// Take a base backup of servers.
    Backup {
        /// Server names, or `all`.
        #[arg(required = true, value_name = "SERVER_NAME")]
        servers: Vec<String>,
        /// A name for the backup (usable instead of its id).
        #[arg(long)]
        name: Option<String>,
        /// Fast checkpoint at the start.
        #[arg(long, overrides_with = "no_immediate_checkpoint")]
        immediate_checkpoint: bool,
        /// Spread checkpoint at the start.
        #[arg(long)]
        no_immediate_checkpoint: bool,
        /// Maximum transfer rate in kB/s (0 = unlimited).
        #[arg(long, value_name = "KBPS")]
        bwlimit: Option<u32>,
        /// Attempts after a failure.
        #[arg(long, value_name = "N")]
        retry_times: Option<u32>,
        /// Seconds between attempts.
        #[arg(long, value_name = "SECONDS")]
        retry_sleep: Option<u64>,
        /// No retry.
        #[arg(long)]
        no_retry: bool,
        /// Compression threads (backup_compression_workers).
        #[arg(short = 'j', long, value_name = "N")]
        jobs: Option<u32>,
        /// off, copy or link (overrides reuse_backup).
        #[arg(long, value_name = "MODE")]
        reuse_backup: Option<String>,
        /// Wait until the backup's WAL is archived (status DONE).
        #[arg(short = 'w', long)]
        wait: bool,
        /// Seconds to wait with --wait (0 = forever).
        #[arg(long, value_name = "SECONDS")]
        wait_timeout: Option<u64>,
        /// PostgreSQL 17+: an incremental backup of the parent (an id, a name, `latest`,
        /// `last-full`…); the server needs summarize_wal = on.
        #[arg(long, value_name = "BACKUP_ID")]
        incremental: Option<String>,
        /// A full backup, whatever backup_incremental says.
        #[arg(long, conflicts_with = "incremental")]
        full: bool,
    },
    /// List the backups of a server.
    #[command(name = "list-backups", visible_alias = "list-backup")]
    ListBackups {
        /// Server name, or `all`.
        #[arg(required = true, value_name = "SERVER_NAME")]
        servers: Vec<String>,
        /// Only the backup ids.
        #[arg(long)]
        minimal: bool,
    },
    /// Show a backup's details.
    #[command(name = "show-backup", visible_alias = "show-backups")]
    ShowBackup {
        /// Server name.
        server: String,
        /// Backup id, name or shortcut (latest, oldest, last-failed, last-full).
        backup_id: String,
    },
    /// Verify a backup against its manifest (and with pg_verifybackup when installed).
    #[command(name = "verify-backup", visible_alias = "verify")]
    VerifyBackup {
        /// Server name.
        server: String,
        /// Backup id, name or shortcut.
        backup_id: String,
    },
    /// Re-check a backup's WAL: WAITING_FOR_WALS → DONE, or FAILED when WAL is missing.
    #[command(name = "check-backup")]
    CheckBackup {
        /// Server name.
        server: String,
        /// Backup id, name or shortcut.
        backup_id: String,
    },
    /// Keep a backup whatever the retention policy (`--target full|standalone`), release
    /// the keep (`--release`), or show it (`--status`).
    #[command(group(clap::ArgGroup::new("keep_action").required(true).args(["release", "status", "target"])))]
    Keep {
        /// Server name.
        server: String,
        /// Backup id, name or shortcut.
        backup_id: String,
        /// Release the keep: retention may delete the backup again.
        #[arg(short = 'r', long)]
        release: bool,
        /// Show the keep (`full`, `standalone` or `nokeep`).
        #[arg(short = 's', long)]
        status: bool,
        /// Keep it with all later WAL (`full`) or only the WAL that makes it consistent
        /// (`standalone`).
        #[arg(long, value_parser = ["full", "standalone"])]
        target: Option<String>,
    },
    /// Show the retention plan of a server — every backup's status and why, the WAL
    /// kept — and apply it (what `cron` does), unless `--dry-run`.
    Retention {
        /// Server name.
        server: String,
        /// Show the plan only; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete a backup (and the WAL no backup needs any more).
    Delete {
        /// Server name.
        server: String,
        /// Backup id, name or shortcut.
        backup_id: String,
    },
    /// Restore a backup into a directory, optionally to a point in time.
    #[command(visible_alias = "recover")]
    Restore {
        /// Server name.
        server: String,
        /// Backup id, name, shortcut, or `auto` (newest backup ending before the target).
        backup_id: String,
        /// Destination data directory (must be empty or absent).
        destination_directory: PathBuf,
        /// Recover up to this time (`YYYY-MM-DD HH:MM:SS[.fff][+TZ]`).
        #[arg(long, group = "target")]
        target_time: Option<String>,
        /// Recover up to this transaction id.
        #[arg(long, group = "target")]
        target_xid: Option<String>,
        /// Recover up to this LSN.
        #[arg(long, group = "target")]
        target_lsn: Option<String>,
        /// Recover up to this restore point.
        #[arg(long, group = "target")]
        target_name: Option<String>,
        /// Stop as soon as the backup is consistent.
        #[arg(long, group = "target")]
        target_immediate: bool,
        /// Timeline to follow: a number, `current` or `latest`.
        #[arg(long, value_name = "TLI")]
        target_tli: Option<String>,
        /// Stop just before the target (time, xid, lsn) instead of just after.
        #[arg(long)]
        exclusive: bool,
        /// What the server does at the target: pause, shutdown or promote.
        #[arg(long, value_name = "ACTION")]
        target_action: Option<String>,
        /// Restore as a standby (standby.signal).
        #[arg(long)]
        standby_mode: bool,
        /// Relocate a tablespace (`NAME:LOCATION`, repeatable).
        #[arg(long, value_name = "NAME:LOCATION")]
        tablespace: Vec<String>,
        /// restore_command fetches WAL from barkeep (overrides recovery_options).
        #[arg(long, overrides_with = "no_get_wal")]
        get_wal: bool,
        /// WAL is copied into the destination (overrides recovery_options).
        #[arg(long)]
        no_get_wal: bool,
        /// Where to put WAL for a point-in-time recovery without get-wal.
        #[arg(long, value_name = "DIR")]
        staging_wal_directory: Option<PathBuf>,
        /// Copy threads.
        #[arg(short = 'j', long, value_name = "N")]
        jobs: Option<usize>,
        /// File that receives the recovery settings (default postgresql.auto.conf).
        #[arg(long, value_name = "FILE")]
        recovery_conf_filename: Option<String>,
        /// Restore onto another host through this ssh command (e.g. `ssh postgres@db1`).
        #[arg(long, value_name = "COMMAND")]
        remote_ssh_command: Option<String>,
        /// Bandwidth limit in kB/s for the transfer to a remote host (0 = none).
        #[arg(long, value_name = "KBPS")]
        bwlimit: Option<u64>,
        /// Run as root: give the restored files to this user (default: the owner of the
        /// destination's parent directory).
        #[arg(long, value_name = "USER")]
        owner: Option<String>,
        /// Barman's staging area for compressed and incremental backups: accepted, not
        /// needed (barkeep decompresses and combines straight into the destination).
        #[arg(long, value_name = "DIR", visible_alias = "local-staging-path")]
        staging_path: Option<PathBuf>,
        /// Barman's `local`/`remote` staging location: accepted, not needed.
        #[arg(long, value_name = "WHERE", value_parser = ["local", "remote"])]
        staging_location: Option<String>,
        /// Barman's pg_combinebackup mode: `copy` (what barkeep's native combine does);
        /// `link`, `clone` and `copy-file-range` are refused.
        #[arg(long, value_name = "MODE")]
        combine_mode: Option<String>,
    },
    /// List the files of a backup.
    #[command(name = "list-files")]
    ListFiles {
        /// Server name.
        server: String,
        /// Backup id, name or shortcut.
        backup_id: String,
        /// data, wal, standalone (data + WAL to reach consistency) or full.
        #[arg(long, default_value = "standalone")]
        target: String,
    },
    /// `archive_command` client (as barman-wal-archive): send a WAL file to barkeep.
    #[command(name = "wal-archive", version = VERSION_TEXT, disable_version_flag = true)]
    WalArchive(WalClientArgs),
    /// `restore_command` client (as barman-wal-restore): fetch a WAL file from barkeep.
    #[command(name = "wal-restore", version = VERSION_TEXT, disable_version_flag = true)]
    WalRestore(WalRestoreArgs),
}

/// How the WAL clients reach the barkeep host.
#[derive(Debug, Clone, clap::Args)]
pub struct RemoteArgs {
    /// Program to run on the barkeep host.
    #[arg(long, default_value = "barkeep")]
    pub remote_program: String,
    /// Run on this host without ssh (the configuration is read locally).
    #[arg(long)]
    pub local: bool,
    /// User on the barkeep host.
    #[arg(short = 'U', long, default_value = "barman")]
    pub user: String,
    /// ssh port.
    #[arg(long)]
    pub port: Option<u16>,
    /// Configuration file on the barkeep host (barman-wal-archive's and
    /// barman-wal-restore's `-c`).
    #[arg(
        short = 'c',
        long = "config",
        visible_alias = "remote-config",
        value_name = "FILE"
    )]
    pub remote_config: Option<String>,
    /// Print the version and exit.
    #[arg(short = 'V', long = "version", action = ArgAction::Version)]
    pub version: Option<bool>,
    /// Test the connection only.
    #[arg(short = 't', long)]
    pub test: bool,
}

/// `wal-archive` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct WalClientArgs {
    /// Connection to the barkeep host.
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Use MD5SUMS instead of SHA256SUMS (for old barman servers).
    #[arg(long)]
    pub md5: bool,
    /// Compress the WAL with gzip before sending it.
    #[arg(short = 'z', long, group = "client_compression")]
    pub gzip: bool,
    /// Compress the WAL with bzip2 before sending it.
    #[arg(short = 'j', long, group = "client_compression")]
    pub bzip2: bool,
    /// Compress the WAL with xz before sending it.
    #[arg(long, group = "client_compression")]
    pub xz: bool,
    /// Compress the WAL with snappy before sending it.
    #[arg(long, group = "client_compression")]
    pub snappy: bool,
    /// Compress the WAL with zstd before sending it.
    #[arg(long, group = "client_compression")]
    pub zstd: bool,
    /// Compress the WAL with lz4 before sending it.
    #[arg(long, group = "client_compression")]
    pub lz4: bool,
    /// Compression level for the client-side compression.
    #[arg(long, value_name = "LEVEL", allow_hyphen_values = true)]
    pub compression_level: Option<i32>,
    /// The barkeep (or Barman) host.
    pub barman_host: String,
    /// Server name on that host.
    pub server_name: String,
    /// The WAL file to send (`%p`).
    pub wal_path: Option<PathBuf>,
}

/// `wal-restore` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct WalRestoreArgs {
    /// Connection to the barkeep host.
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Also fetch `.partial` files.
    #[arg(short = 'P', long)]
    pub partial: bool,
    /// Prefetch this many following WAL files in parallel into the spool directory.
    #[arg(short = 'p', long, default_value_t = 0)]
    pub parallel: usize,
    /// Spool directory for prefetched WAL.
    #[arg(long, default_value = "/var/tmp/walrestore")]
    pub spool_dir: PathBuf,
    /// Seconds to sleep after a failure.
    #[arg(short = 's', long, default_value_t = 0)]
    pub sleep: u64,
    /// Transfer gzip-compressed (decompressed here; deprecated in Barman, accepted).
    #[arg(short = 'z', long, group = "transfer_compression")]
    pub gzip: bool,
    /// Transfer bzip2-compressed (decompressed here; deprecated in Barman, accepted).
    #[arg(short = 'j', long, group = "transfer_compression")]
    pub bzip2: bool,
    /// Transfer the file as it is stored, compressed; decompress it here.
    #[arg(long, group = "transfer_compression")]
    pub keep_compression: bool,
    /// The barkeep (or Barman) host.
    pub barman_host: String,
    /// Server name on that host.
    pub server_name: String,
    /// WAL file name (`%f`).
    pub wal_name: String,
    /// Destination (`%p`).
    pub wal_dest: PathBuf,
}
