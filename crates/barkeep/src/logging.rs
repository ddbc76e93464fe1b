//! The tracing subscriber: standard error always, plus `log_file` when configured.

use std::path::Path;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;

use crate::cli::{Cli, ColorMode, LogLevel};

fn directive(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Notset | LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warning => "warn",
        LogLevel::Error | LogLevel::Critical => "error",
    }
}

/// The level chosen by `-q`, `-d`, `--log-level`, then `log_level` from the configuration.
pub fn level(cli: &Cli, config_level: Option<&str>) -> &'static str {
    if cli.quiet {
        return "error";
    }
    if cli.debug {
        return "debug";
    }
    if let Some(l) = cli.log_level {
        return directive(l);
    }
    match config_level {
        Some("notset" | "debug") => "debug",
        Some("warning") => "warn",
        Some("error" | "critical") => "error",
        _ => "info",
    }
}

/// Installs the subscriber. Returns a warning to print when `log_file` cannot be opened.
pub fn init(level: &str, log_file: Option<&Path>, color: ColorMode) -> Option<String> {
    init_as(level, log_file, color, false)
}

/// [`init`], with one JSON object per line when `json` (`log_format = json`).
pub fn init_as(
    level: &str,
    log_file: Option<&Path>,
    color: ColorMode,
    json: bool,
) -> Option<String> {
    use std::io::IsTerminal;
    let ansi = match color {
        ColorMode::Always => true,
        ColorMode::Never => false,
        ColorMode::Auto => std::io::stderr().is_terminal(),
    };
    let filter = EnvFilter::try_from_env("BARKEEP_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .without_time();
    let mut warning = None;
    let file = log_file.and_then(|p| match barkeep_engine::open_log_file(p) {
        Ok(f) => Some(f),
        Err(e) => {
            warning = Some(format!(
                "cannot open log_file `{}`: {e}; logging to standard error only",
                p.display()
            ));
            None
        }
    });
    let result = match (file, json) {
        (Some(f), false) => builder
            .with_ansi(false)
            .with_writer(std::io::stderr.and(std::sync::Mutex::new(f)))
            .try_init(),
        (None, false) => builder
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .try_init(),
        (Some(f), true) => builder
            .json()
            .with_writer(std::io::stderr.and(std::sync::Mutex::new(f)))
            .try_init(),
        (None, true) => builder.json().with_writer(std::io::stderr).try_init(),
    };
    // A second initialisation (the demo runs several commands in one process) is fine.
    let _ = result;
    warning
}
