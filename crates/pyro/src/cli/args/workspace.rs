//! `pyro workspace` and its lifecycle commands: create, update, exec, sync push, export,
//! snapshots, reset, stop/start, status, logs, summary, delete (the `workspace_*` and
//! `snapshot_*` tools).

use clap::{Args, Subcommand};
use pyro::params::{NetworkPolicy, DEFAULT_TIMEOUT_SECONDS, WORKSPACE_PATH};
use std::path::PathBuf;

use super::*;

/// `pyro workspace ...`.
#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Create and start a workspace.
    #[command(
        long_about = "Create and start a workspace from ENVIRONMENT. With --seed-path, a host \
            directory or .tar/.tar.gz/.tgz archive is copied into /workspace first; that \
            content is the baseline that `diff` compares against and `reset` restores.",
        after_help = "Example:\n  pyro workspace create debian:12 --seed-path ./repo --name fix-42 --label task=42"
    )]
    Create(WorkspaceCreateArgs),
    /// List workspaces, most recently active first.
    List(JsonOnlyArgs),
    /// Change a workspace's name or labels.
    Update(WorkspaceUpdateArgs),
    /// Run a command in /workspace; pyro exits with its exit code.
    #[command(
        long_about = "Run the command given after `--` with /bin/sh -lc in /workspace. Human \
            mode prints the command's stdout and stderr as they are and a summary on stderr. \
            The exit code of pyro is the exit code of the command (124 on timeout), in human \
            and --json mode alike.",
        after_help = "Example:\n  pyro workspace exec 1a2b3c4d5e6f -- make test\n  pyro workspace exec 1a2b3c4d5e6f --json -- sh -c 'cat notes.txt'"
    )]
    Exec(WorkspaceExecArgs),
    /// Copy host content into a workspace.
    #[command(subcommand)]
    Sync(SyncCommand),
    /// Copy a file or directory from /workspace to a new host path.
    Export(WorkspaceExportArgs),
    /// Show what changed in /workspace since creation (or the last reset).
    Diff(WorkspaceIdArgs),
    /// List, read and write files in /workspace.
    #[command(subcommand)]
    File(FileCommand),
    /// Apply unified diffs to /workspace.
    #[command(subcommand)]
    Patch(PatchCommand),
    /// Save, list and delete named snapshots of /workspace.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Rebuild the workspace VM and restore the baseline or a snapshot.
    Reset(WorkspaceResetArgs),
    /// Stop a workspace's VM (its files are kept).
    Stop(WorkspaceIdArgs),
    /// Start a stopped workspace.
    Start(WorkspaceIdArgs),
    /// Inspect the disk of a stopped workspace.
    #[command(subcommand)]
    Disk(DiskCommand),
    /// Interactive shells in a workspace.
    #[command(subcommand)]
    Shell(ShellCommand),
    /// Long-running services in a workspace.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Show a workspace.
    Status(WorkspaceIdArgs),
    /// Show a workspace's command history with output.
    Logs(WorkspaceIdArgs),
    /// Summarize a workspace since its last reset, ready to paste into a chat or PR.
    #[command(
        long_about = "Summarize what happened in a workspace since its last reset (or its \
            creation): the commands run with their exit codes, the files changed against the \
            baseline, patches applied, syncs, exports, services started and stopped, snapshots, \
            and the outcome of the last command. Human mode prints Markdown short enough to \
            paste into a chat or pull request; `workspace logs` and `workspace diff` have the \
            details.",
        after_help = "Example:\n  pyro workspace summary 1a2b3c4d5e6f\n  pyro workspace summary 1a2b3c4d5e6f --json"
    )]
    Summary(WorkspaceIdArgs),
    /// Delete a workspace and everything in it.
    Delete(WorkspaceIdArgs),
}

/// `pyro workspace create`.
#[derive(Debug, Args)]
pub struct WorkspaceCreateArgs {
    /// Environment to boot, e.g. debian:12 (see `pyro env list`).
    #[arg(value_name = "ENVIRONMENT")]
    pub environment: String,
    #[command(flatten)]
    pub sizing: SizingArgs,
    /// Network access of the workspace.
    #[arg(long, value_name = "POLICY", default_value_t = NetworkPolicyArg(NetworkPolicy::Off))]
    pub network_policy: NetworkPolicyArg,
    #[command(flatten)]
    pub host: HostCompatFlag,
    /// Host directory or .tar/.tar.gz/.tgz archive copied into /workspace.
    #[arg(long, value_name = "PATH")]
    pub seed_path: Option<PathBuf>,
    /// Human-friendly name (at most 120 characters).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Add a label (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Add a secret with a literal value (repeatable).
    #[arg(
        long = "secret",
        value_name = "NAME=VALUE",
        long_help = "Add a secret with a literal value (repeatable). It is installed in the \
            guest at /run/pyro-secrets/NAME, never printed, and can be mapped to an \
            environment variable per command with `workspace exec --secret-env`."
    )]
    pub secrets: Vec<String>,
    /// Add a secret read from a host file at creation time (repeatable).
    #[arg(long = "secret-file", value_name = "NAME=PATH")]
    pub secret_files: Vec<String>,
    #[command(flatten)]
    pub out: JsonFlag,
    /// Print only the new workspace id.
    #[arg(long, conflicts_with = "json")]
    pub id_only: bool,
}

/// `pyro workspace update`.
#[derive(Debug, Args)]
pub struct WorkspaceUpdateArgs {
    /// Workspace id (see `pyro workspace list`).
    #[arg(value_name = "WORKSPACE_ID")]
    pub workspace_id: String,
    /// Set the name.
    #[arg(long, value_name = "NAME", conflicts_with = "clear_name")]
    pub name: Option<String>,
    /// Remove the name.
    #[arg(long)]
    pub clear_name: bool,
    /// Add or replace a label (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Remove a label (repeatable).
    #[arg(long = "clear-label", value_name = "KEY")]
    pub clear_labels: Vec<String>,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `pyro workspace exec`.
#[derive(Debug, Args)]
pub struct WorkspaceExecArgs {
    /// Workspace id (see `pyro workspace list`).
    #[arg(value_name = "WORKSPACE_ID")]
    pub workspace_id: String,
    /// Kill the command after this many seconds (1-86400; exit code 124).
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_TIMEOUT_SECONDS)]
    pub timeout_seconds: u64,
    /// Expose workspace secret SECRET as environment variable ENV (default: same name).
    #[arg(long = "secret-env", value_name = "SECRET[=ENV]")]
    pub secret_env: Vec<String>,
    #[command(flatten)]
    pub out: JsonFlag,
    /// The command to run, after `--` (joined with shell quoting).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `pyro workspace sync ...`.
#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Copy a host directory or archive into the workspace.
    Push(SyncPushArgs),
}

/// `pyro workspace sync push`.
#[derive(Debug, Args)]
pub struct SyncPushArgs {
    /// Workspace id (see `pyro workspace list`).
    #[arg(value_name = "WORKSPACE_ID")]
    pub workspace_id: String,
    /// Host directory or .tar/.tar.gz/.tgz archive.
    #[arg(value_name = "SOURCE_PATH")]
    pub source_path: PathBuf,
    /// Destination directory inside /workspace.
    #[arg(long, value_name = "PATH", default_value = WORKSPACE_PATH)]
    pub dest: String,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `pyro workspace export`.
#[derive(Debug, Args)]
pub struct WorkspaceExportArgs {
    /// Workspace id (see `pyro workspace list`).
    #[arg(value_name = "WORKSPACE_ID")]
    pub workspace_id: String,
    /// File or directory inside /workspace (relative paths are under /workspace).
    #[arg(value_name = "PATH")]
    pub path: String,
    /// Host path to create; it must not exist yet.
    #[arg(long, value_name = "HOST_PATH", required = true)]
    pub output: PathBuf,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `pyro workspace snapshot ...`.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Save /workspace as a named snapshot.
    Create(SnapshotNameArgs),
    /// List the baseline and the named snapshots.
    List(WorkspaceIdArgs),
    /// Delete a named snapshot.
    Delete(SnapshotNameArgs),
}

/// Snapshot commands that name one snapshot.
#[derive(Debug, Args)]
pub struct SnapshotNameArgs {
    /// Workspace id (see `pyro workspace list`).
    #[arg(value_name = "WORKSPACE_ID")]
    pub workspace_id: String,
    /// Snapshot name ([A-Za-z0-9][A-Za-z0-9._-]*; `baseline` is reserved).
    #[arg(value_name = "SNAPSHOT_NAME")]
    pub snapshot_name: String,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `pyro workspace reset`.
#[derive(Debug, Args)]
pub struct WorkspaceResetArgs {
    /// Workspace id (see `pyro workspace list`).
    #[arg(value_name = "WORKSPACE_ID")]
    pub workspace_id: String,
    /// Snapshot to restore; `baseline` is the state right after creation.
    #[arg(long, value_name = "NAME", default_value = "baseline")]
    pub snapshot: String,
    #[command(flatten)]
    pub out: JsonFlag,
}
