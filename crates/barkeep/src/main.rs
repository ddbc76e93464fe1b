//! The `barkeep` command.

fn main() -> std::process::ExitCode {
    barkeep::run(std::env::args_os())
}
