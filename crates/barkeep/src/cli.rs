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
}
