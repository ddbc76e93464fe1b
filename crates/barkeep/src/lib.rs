//! The `barkeep` command-line program: argument parsing, logging, output formats and the
//! commands themselves, on top of the library crates (`barkeep-config`, …).
//!
//! [`run`] is the whole program; `main` only calls it, and the demo calls it in-process.
//!
//! ```no_run
//! let code = barkeep::run(["barkeep", "-c", "/etc/barman.conf", "list-servers"]);
//! ```

pub mod cli;
mod commands;
mod logging;
mod output;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

pub use output::Output;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the command failed (or a check failed).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: usage or configuration error.
pub const EXIT_USAGE: u8 = 2;

/// A failed command: the message (every cause on one line) and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// What failed and why.
    pub message: String,
    /// The process exit code.
    pub code: u8,
}

impl Failure {
    /// A usage or configuration error (exit code 2).
    pub(crate) fn usage(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: EXIT_USAGE,
        }
    }

    /// A failure (exit code 1).
    pub(crate) fn failed(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: EXIT_FAILURE,
        }
    }
}

/// Runs barkeep with `args` (the first is the program name) and returns its exit code.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    // Installed (or linked) as `barman-wal-archive` / `barman-wal-restore`, barkeep is
    // that program: an `archive_command`/`restore_command` line keeps working unchanged.
    let mut args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let invoked = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned());
    match invoked.as_deref() {
        Some("barman-wal-archive") => args.insert(1, "wal-archive".into()),
        Some("barman-wal-restore") => args.insert(1, "wal-restore".into()),
        _ => {}
    }
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let out = Output::new(cli.format, cli.quiet);
    // The one runtime of the process: operations that talk to PostgreSQL run on it; file
    // work runs on this thread, outside it.
    // The daemon serves many servers at once: its runtime has a thread per core, and
    // blocking file work moves off the workers (`durable::blocking_io`).
    let runtime = if matches!(cli.command, cli::Command::Daemon) {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    let result = match runtime {
        Ok(rt) => commands::dispatch(&cli, &rt, &out),
        Err(e) => Err(Failure::failed(format!(
            "cannot start the async runtime: {e}"
        ))),
    };
    let code = match result {
        Ok(()) => {
            if out.errors_emitted() {
                EXIT_FAILURE
            } else {
                EXIT_OK
            }
        }
        Err(f) => {
            if !f.message.is_empty() {
                out.error(&f.message);
            }
            f.code
        }
    };
    out.finish();
    ExitCode::from(code)
}
