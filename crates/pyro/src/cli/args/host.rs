//! `pyro host`: connect chat hosts (Claude Code, Codex, OpenCode) to pyro, check and repair.

use clap::{Args, Subcommand, ValueEnum};

use super::*;

/// A chat host `pyro host` can configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HostArg {
    /// Claude Code (`claude mcp add`, else ~/.claude.json).
    ClaudeCode,
    /// Codex (`codex mcp add`, else ~/.codex/config.toml).
    Codex,
    /// OpenCode (~/.config/opencode/opencode.json).
    #[value(name = "opencode")]
    OpenCode,
}

impl HostArg {
    /// The library's host.
    pub fn kind(self) -> pyro::host::HostKind {
        match self {
            HostArg::ClaudeCode => pyro::host::HostKind::ClaudeCode,
            HostArg::Codex => pyro::host::HostKind::Codex,
            HostArg::OpenCode => pyro::host::HostKind::OpenCode,
        }
    }
}

/// `pyro host ...`.
#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Register pyro's MCP server (named `pyro`) in a chat host.
    #[command(
        long_about = "Register the MCP server `pyro` in HOST with the canonical command \
            `pyro mcp serve` plus the profile or mode, project and environment flags given \
            here. Uses the host's CLI when it is on PATH (`claude mcp add --scope user`, \
            `codex mcp add`); otherwise edits the host's config file: idempotently, showing a \
            diff first and keeping a timestamped backup. Run it again with other flags to \
            change the entry.",
        after_help = "Examples:\n  pyro host connect codex --mode repro-fix\n  pyro host connect claude-code --mode cold-start --project-path ~/src/app\n  pyro host connect opencode --dry-run"
    )]
    Connect(HostConnectArgs),
    /// Print the config snippet for a host without changing anything.
    PrintConfig(HostConnectArgs),
    /// Check each host's pyro entry: not installed, not configured, current or drifted.
    #[command(
        long_about = "Check every host (or HOST) against the canonical command built from the \
            flags given here (pass the flags you connected with). Statuses: not_installed (no \
            CLI, no config directory), not_configured (no pyro entry), current, drifted (with \
            what drifted and the command that fixes it)."
    )]
    Doctor(HostDoctorArgs),
    /// Rewrite a drifted pyro entry to the canonical command.
    Repair(HostConnectArgs),
}

/// Flags shared by `host connect`, `print-config` and `repair`.
#[derive(Debug, Args)]
pub struct HostConnectArgs {
    /// The host.
    #[arg(value_enum, value_name = "HOST")]
    pub host: HostArg,
    #[command(flatten)]
    pub serve: HostServeArgs,
    /// Show what would change (diff or CLI commands) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `pyro host doctor`.
#[derive(Debug, Args)]
pub struct HostDoctorArgs {
    /// Check only this host.
    #[arg(value_enum, value_name = "HOST")]
    pub host: Option<HostArg>,
    #[command(flatten)]
    pub serve: HostServeArgs,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// The canonical server command's flags.
#[derive(Debug, Clone, Args)]
pub struct HostServeArgs {
    #[command(flatten)]
    pub surface: SurfaceArgs,
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Program the host runs (default `pyro`, found on the host's PATH).
    #[arg(long = "command", value_name = "PROGRAM", default_value = "pyro")]
    pub program: String,
}
