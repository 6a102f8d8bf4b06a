//! The `pyro` command line.
//!
//! Layout:
//!
//! - [`args`]: stage one, the clap definitions (no I/O); help and completions are
//!   generated from them;
//! - [`parse`]: stage two helpers that turn option strings into the contract's
//!   parameter types (`--label`, `--secret*`, `--publish`, `--text-file`, ...);
//! - `commands`: one module per area, calling the async SDK ([`pyro::Pyro`]);
//! - [`output`]: `--json` and human printing, error reporting;
//! - [`error`]: [`CliError`] and the documented [`ExitCode`]s.

pub mod args;
mod commands;
pub mod error;
mod help;
pub mod output;
pub mod parse;
mod stream;

pub use args::Cli;
pub use error::{CliError, ExitCode};

use clap::{ArgMatches, CommandFactory, FromArgMatches};
use std::ffi::OsString;

/// A parsed command line, and whether errors must be reported as JSON.
#[derive(Debug)]
pub struct Parsed {
    /// The command.
    pub cli: Cli,
    /// `--json` was given to the (innermost) command.
    pub json: bool,
}

/// `--json` set on the innermost subcommand that has it.
fn json_requested(matches: &ArgMatches) -> bool {
    let mut current = matches;
    loop {
        if let Ok(Some(true)) = current.try_get_one::<bool>("json") {
            return true;
        }
        match current.subcommand() {
            Some((_, sub)) => current = sub,
            None => return false,
        }
    }
}

/// Parse the command line. `Err` is clap's error (usage problems, but also `--help` and
/// `--version`, whose exit code is 0); print it with [`usage_error`].
pub fn parse_args<I, T>(argv: I) -> Result<Parsed, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = Cli::command().try_get_matches_from(argv)?;
    let json = json_requested(&matches);
    let cli = Cli::from_arg_matches(&matches)?;
    Ok(Parsed { cli, json })
}

/// Print a clap error (or help/version text) and return its exit code.
pub fn usage_error(err: &clap::Error) -> ExitCode {
    // Printing help into a closed pipe is not an error worth reporting.
    let _ = err.print();
    if err.use_stderr() {
        ExitCode::Usage
    } else {
        ExitCode::Success
    }
}

/// Run a parsed command.
pub async fn dispatch(cli: Cli) -> Result<ExitCode, CliError> {
    commands::dispatch(cli).await
}

/// Turn the outcome of [`dispatch`] into an exit code, reporting errors in the mode
/// the user chose. A broken pipe is a success.
pub fn finish(result: Result<ExitCode, CliError>, json: bool) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(err) if err.is_broken_pipe() => ExitCode::Success,
        Err(err) => {
            output::error(&err, json);
            ExitCode::Failure
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_mode_is_found_on_nested_subcommands() {
        let p = parse_args(["pyro", "workspace", "file", "read", "w", "p", "--json"]).expect("ok");
        assert!(p.json);
        let p = parse_args(["pyro", "workspace", "file", "read", "w", "p"]).expect("ok");
        assert!(!p.json);
        let p = parse_args(["pyro", "completions", "bash"]).expect("ok");
        assert!(!p.json);
    }

    #[test]
    fn help_and_version_are_not_usage_errors() {
        let err = parse_args(["pyro", "--version"]).expect_err("version");
        assert!(!err.use_stderr());
        let err = parse_args(["pyro", "workspace", "--bogus"]).expect_err("bogus");
        assert!(err.use_stderr());
        assert_eq!(err.exit_code(), 2);
    }
}
