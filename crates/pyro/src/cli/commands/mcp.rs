//! `pyro mcp serve`: the MCP server on stdio.

use crate::cli::args::McpCommand;
use crate::cli::error::{CliError, ExitCode};
use pyro::Pyro;

/// Run an `mcp` subcommand.
pub async fn run(cmd: McpCommand) -> Result<ExitCode, CliError> {
    match cmd {
        McpCommand::Serve(args) => {
            // stdout carries the protocol; logs go to stderr (see main.rs).
            tracing::info!(profile = %args.profile, "serving MCP on stdio");
            Pyro::from_env()
                .create_server(args.profile.0)
                .serve_stdio()
                .await
                .map_err(CliError::Mcp)?;
            Ok(ExitCode::Success)
        }
    }
}
