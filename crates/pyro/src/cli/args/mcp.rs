//! `pyro mcp serve`: profile or mode, and the project source `workspace_create` seeds from.

use clap::builder::PossibleValue;
use clap::{Args, Subcommand, ValueEnum};
use pyro::{Mode, Profile};
use std::fmt;
use std::path::PathBuf;

use crate::cli::help;

/// An MCP profile as a command-line value; help comes from [`Profile::instructions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProfileArg(pub Profile);

impl ValueEnum for ProfileArg {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            ProfileArg(Profile::VmRun),
            ProfileArg(Profile::WorkspaceCore),
            ProfileArg(Profile::WorkspaceFull),
        ]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.0.name()).help(self.0.instructions()))
    }
}

impl fmt::Display for ProfileArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

/// `pyro mcp ...`.
#[derive(Debug, Subcommand)]
pub enum McpCommand {
    /// Run the MCP server on stdin/stdout until the client disconnects.
    #[command(after_help = help::mcp_serve_after_help())]
    Serve(McpServeArgs),
}

/// A mode as a command-line value; help comes from [`Mode::instructions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeArg(pub Mode);

impl ValueEnum for ModeArg {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            ModeArg(Mode::ReproFix),
            ModeArg(Mode::Inspect),
            ModeArg(Mode::ColdStart),
            ModeArg(Mode::ReviewEval),
        ]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.0.name()).help(self.0.instructions()))
    }
}

impl fmt::Display for ModeArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

/// Where `workspace_create` seeds from without `seed_path`, and the default
/// environment: shared by `mcp serve`, `doctor` and the `host` commands.
#[derive(Debug, Clone, Default, Args)]
pub struct ProjectArgs {
    /// Seed workspaces from this project (its Git-tracked files when it is in Git).
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with_all = ["repo_url", "no_project_source"],
        long_help = "Seed workspaces from DIR when workspace_create gets no seed_path: its \
            Git-tracked files (plus staged ones; never ignored or untracked files) when DIR is \
            inside a Git checkout, else the whole directory. Use it when the chat host does \
            not start the server in the project. The directory is only read."
    )]
    pub project_path: Option<PathBuf>,
    /// Seed workspaces from a clean clone of this repository.
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "no_project_source",
        long_help = "Seed workspaces from a clean clone of URL (anything `git clone` accepts, \
            e.g. a file:// bare repository), made once when the server starts in a temporary \
            directory pyro deletes when it exits. origin_ref reports URL@COMMIT."
    )]
    pub repo_url: Option<String>,
    /// Branch, tag or commit of --repo-url to check out (default: its default branch).
    #[arg(long, value_name = "REF", requires = "repo_url")]
    pub repo_ref: Option<String>,
    /// Do not seed from any project: workspace_create without seed_path starts empty.
    #[arg(long)]
    pub no_project_source: bool,
    /// Default environment of workspace_create when the call names none (e.g. debian:12-build);
    /// for `doctor`, the environment whose daily-loop readiness (warm/cold/stale) to report.
    #[arg(long, value_name = "ENV")]
    pub environment: Option<String>,
}

/// `--profile` or `--mode`: what the server exposes (`mcp serve`, `host ...`).
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct SurfaceArgs {
    /// Which tools to expose: workspace-core (default), workspace-full or vm-run (see below).
    #[arg(long, value_name = "PROFILE", hide_possible_values = true, conflicts_with = "mode")]
    pub profile: Option<ProfileArg>,
    /// A curated tool set for one job: repro-fix, inspect, cold-start or review-eval.
    #[arg(
        long,
        value_name = "MODE",
        long_help = "Serve a curated tool set for one job instead of a profile: repro-fix \
            (reproduce, patch, rerun, diff, export), inspect (offline reading of untrusted \
            content), cold-start (install, build, start a service, read its logs) or review-eval \
            (snapshot, shell, evaluate, summarize, reset). Each mode lists fewer tools than \
            workspace-core, with narrowed schemas and descriptions written for the job. \
            Cannot be combined with --profile."
    )]
    pub mode: Option<ModeArg>,
}

impl SurfaceArgs {
    /// The surface asked for; `None` means the default (workspace-core).
    pub fn surface(&self) -> Option<pyro::Surface> {
        match (self.mode, self.profile) {
            (Some(m), _) => Some(pyro::Surface::Mode(m.0)),
            (None, Some(p)) => Some(pyro::Surface::Profile(p.0)),
            (None, None) => None,
        }
    }
}

/// `pyro mcp serve`.
#[derive(Debug, Args)]
pub struct McpServeArgs {
    #[command(flatten)]
    pub surface: SurfaceArgs,
    #[command(flatten)]
    pub project: ProjectArgs,
}
