//! One module per command area; each turns its clap arguments into SDK calls and
//! prints the result.

mod demo;
mod disk;
mod doctor;
mod env;
mod files;
mod host;
mod mcp;
mod prepare;
mod run;
mod services;
mod shells;
mod workspace;

use super::args::{Cli, Command, CompletionsArgs, ShellKind};
use super::error::{CliError, ExitCode};
use clap::CommandFactory;
use pyro::Pyro;

/// Run the parsed command line.
pub async fn dispatch(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Completions(args) => completions(&args),
        Command::Mcp(cmd) => mcp::run(cmd).await,
        Command::Env(cmd) => env::run(&Pyro::from_env(), cmd).await,
        Command::Run(args) => run::run(&Pyro::from_env(), args).await,
        Command::Workspace(cmd) => workspace::run(&Pyro::from_env(), cmd).await,
        Command::Host(cmd) => host::run(cmd),
        Command::Prepare(args) => prepare::run(&Pyro::from_env(), args).await,
        Command::Doctor(args) => doctor::run(&Pyro::from_env(), &args).await,
        Command::Gc(args) => doctor::gc(&Pyro::from_env(), &args).await,
        Command::Demo(args) => demo::run(&Pyro::from_env(), args).await,
    }
}

/// `pyro completions SHELL`, generated from the same clap definitions as the parser.
fn completions(args: &CompletionsArgs) -> Result<ExitCode, CliError> {
    let shell = match args.shell {
        ShellKind::Bash => clap_complete::Shell::Bash,
        ShellKind::Zsh => clap_complete::Shell::Zsh,
        ShellKind::Fish => clap_complete::Shell::Fish,
    };
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "pyro", &mut buf);
    super::output::stdout_text(&String::from_utf8_lossy(&buf))?;
    Ok(ExitCode::Success)
}
