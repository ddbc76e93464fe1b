//! Command dispatch: resolve the configuration once, set up logging, run the command.

mod diagnose;
mod servers;

use anyhow::anyhow;
use barkeep_config::{Config, ServerConfig};

use crate::cli::{Cli, Command};
use crate::{Failure, Output, logging, usage};

/// Loads the configuration and runs the selected command.
pub fn dispatch(cli: &Cli, out: &mut Output) -> Result<(), Failure> {
    let env = |k: &str| std::env::var(k).ok();
    let path = barkeep_config::find_config_file(cli.config.as_deref(), &env).map_err(usage)?;
    let config = match barkeep_config::load(&path) {
        Ok(c) => c,
        Err(errors) => {
            logging::init(logging::level(cli, None), None, cli.color);
            return Err(usage(anyhow!(errors)));
        }
    };
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
