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

/// An error with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    /// The error and its causes.
    pub error: anyhow::Error,
    /// The process exit code.
    pub code: u8,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            error: e.into(),
            code: EXIT_FAILURE,
        }
    }
}

/// Marks an error as a usage/configuration error (exit code 2).
pub(crate) fn usage(e: impl Into<anyhow::Error>) -> Failure {
    Failure {
        error: e.into(),
        code: EXIT_USAGE,
    }
}

/// Runs barkeep with `args` (the first is the program name) and returns its exit code.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let mut out = Output::new(cli.format, cli.quiet);
    let result = commands::dispatch(&cli, &mut out);
    let code = match result {
        Ok(()) => {
            if out.errors_emitted() {
                EXIT_FAILURE
            } else {
                EXIT_OK
            }
        }
        Err(f) => {
            out.error(&render_error(&f.error));
            f.code
        }
    };
    out.finish();
    ExitCode::from(code)
}

/// `error: what: cause: cause…`, keeping every cause of the chain.
pub fn render_error(e: &anyhow::Error) -> String {
    let mut s = e.to_string();
    for cause in e.chain().skip(1) {
        s.push_str(": ");
        s.push_str(&cause.to_string());
    }
    s
}
