//! `pyro mcp serve`: the MCP server on stdio.

use crate::cli::args::{McpCommand, McpServeArgs, ProjectArgs};
use crate::cli::error::{CliError, ExitCode};
use pyro::project::ProjectSourceChoice;
use pyro::Pyro;
use pyro::{PyroError, ServerOptions};

/// The project source the flags ask for; without any flag, the Git checkout containing
/// the current directory (if any).
pub fn project_choice(args: &ProjectArgs) -> Result<ProjectSourceChoice, CliError> {
    Ok(if args.no_project_source {
        ProjectSourceChoice::Disabled
    } else if let Some(dir) = &args.project_path {
        ProjectSourceChoice::ProjectPath(dir.clone())
    } else if let Some(url) = &args.repo_url {
        ProjectSourceChoice::RepoUrl { url: url.clone(), reference: args.repo_ref.clone() }
    } else {
        let cwd = std::env::current_dir()
            .map_err(|e| CliError::Invalid(format!("could not read the current directory: {e}")))?;
        ProjectSourceChoice::Detect(cwd)
    })
}

/// The server options `pyro mcp serve` flags describe.
pub fn server_options(args: &McpServeArgs) -> Result<ServerOptions, CliError> {
    let surface = args.surface.surface().unwrap_or_default();
    let mut options = ServerOptions::new(surface).with_project(project_choice(&args.project)?);
    if let Some(env) = &args.project.environment {
        pyro::runtime::EnvironmentCatalog::require_known(env)?;
        options = options.with_environment(env.clone());
    }
    Ok(options)
}

/// Run an `mcp` subcommand.
pub async fn run(cmd: McpCommand) -> Result<ExitCode, CliError> {
    match cmd {
        McpCommand::Serve(args) => {
            let options = server_options(&args)?;
            // Leftovers of crashed pyro processes go before serving (docs/security.md).
            match Pyro::from_env().gc().await {
                Ok(swept) if !swept.is_clean() => tracing::warn!(?swept, "removed leftovers"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not sweep leftovers"),
            }
            let server = Pyro::from_env().try_create_server(options).map_err(|e| {
                CliError::Invalid(format!(
                    "{}; fix it, or start the server with --project-path DIR, --repo-url URL \
                     or --no-project-source",
                    PyroError::ProjectSource(e)
                ))
            })?;
            // stdout carries the protocol; logs go to stderr (see main.rs).
            match server.project() {
                Some(p) => tracing::info!(
                    surface = %server.surface(),
                    origin_kind = p.origin_kind().name(),
                    origin_ref = p.origin_ref(),
                    "serving MCP on stdio"
                ),
                None => tracing::info!(surface = %server.surface(), "serving MCP on stdio"),
            }
            server.serve_stdio().await.map_err(CliError::Mcp)?;
            Ok(ExitCode::Success)
        }
    }
}
