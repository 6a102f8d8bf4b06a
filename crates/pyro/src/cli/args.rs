//! Stage one of parsing: the clap definitions of every command and flag.
//!
//! These types only describe the command line. They do no I/O and no validation beyond
//! what clap does (types, choices, required and conflicting flags, all of which are usage
//! errors with exit code 2). Stage two, in [`super::parse`] and the command modules, turns
//! them into the contract's parameter structs, reading files and checking values.
//!
//! Flags are accepted anywhere before `--`, so `pyro workspace exec ID --json -- echo hi`
//! and `pyro workspace exec --json ID -- echo hi` mean the same thing. Everything after
//! `--` is the guest command.
//!
//! Help texts, the man-style long help and the shell completions are all generated from
//! these definitions.

use clap::builder::PossibleValue;
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use pyro::params::{
    NetworkPolicy, DEFAULT_MAX_BYTES, DEFAULT_MEM_MIB, DEFAULT_TIMEOUT_SECONDS,
    DEFAULT_TTL_SECONDS, DEFAULT_VCPU_COUNT, WORKSPACE_PATH,
};
use pyro::{Mode, Profile};
use std::fmt;
use std::path::PathBuf;

use super::help;

/// `pyro`: disposable and persistent Linux microVM sandboxes for AI agents.
#[derive(Debug, Parser)]
#[command(
    name = "pyro",
    version,
    about = "Disposable and persistent Linux microVM sandboxes for AI agents",
    long_about = "Disposable and persistent Linux microVM sandboxes for AI agents.\n\n\
        `pyro run` boots a fresh VM, runs one command and deletes the VM. `pyro workspace` \
        keeps a VM with a /workspace directory across commands: exec, read, write and patch \
        files, diff against the starting point, export results, reset and delete. \
        `pyro mcp serve` offers the same operations to a chat host as MCP tools.\n\n\
        Commands run inside a guest VM. When no guest backend is available (see `pyro doctor`), \
        `run` and `workspace create` fail unless you pass --allow-host-compat, which runs the \
        commands on this host instead; every result reports its execution_mode.",
    after_help = help::top_level_after_help(),
    max_term_width = 100
)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands, in help order.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List, build, inspect and prune guest environments.
    #[command(subcommand)]
    Env(EnvCommand),
    /// Serve pyro's tools to a chat host over the Model Context Protocol.
    #[command(subcommand)]
    Mcp(McpCommand),
    /// Boot a fresh VM, run one command in it and delete the VM.
    #[command(
        long_about = "Boot a fresh VM from ENVIRONMENT, run the command given after `--` with \
            /bin/sh -lc, print its output and delete the VM.\n\n\
            Human mode prints progress and a summary on stderr, the guest's stdout on stdout \
            and its stderr on stderr. The exit code of pyro is the exit code of the command \
            (124 on timeout).",
        after_help = "Example:\n  pyro run debian:12 -- git --version\n  pyro run debian:12 --json -- sh -c 'uname -a'"
    )]
    Run(RunArgs),
    /// Persistent workspaces: a VM with a /workspace directory kept across commands.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Check what this host can run, and how to fix what it cannot.
    Doctor(DoctorArgs),
    /// Make this machine warm for an environment and prove the workspace loop once.
    #[command(
        long_about = "Make the machine warm for ENVIRONMENT (default debian:12) so chat sessions \
            skip setup: pull the environment if it is missing, then prove the loop with one \
            throwaway workspace (create, exec, reset, exec, delete) on the guest backend, and \
            record a manifest in the cache (<cache>/daily-loop/). Afterwards `pyro doctor \
            --environment ENVIRONMENT` reports warm, and stale (with the reason) once the \
            image, guest kernel, guest agent or pyro version changes. An already warm \
            environment is left alone unless --force is given.",
        after_help = "Examples:\n  pyro prepare\n  pyro prepare debian:12-build --json\n  pyro prepare debian:12 --network --force"
    )]
    Prepare(PrepareArgs),
    /// Connect chat hosts (Claude Code, Codex, OpenCode) to pyro, check and repair them.
    #[command(subcommand)]
    Host(HostCommand),
    /// Remove what crashed pyro processes left behind: half-made workspaces, QEMUs nobody
    /// owns, stray files (`pyro doctor` lists them; `pyro mcp serve` does this at start).
    #[command(after_help = "Example:\n  pyro gc\n  pyro gc --json")]
    Gc(GcArgs),
    /// Run `git --version` in a fresh debian:12 VM and print the result as JSON.
    #[command(args_conflicts_with_subcommands = true)]
    Demo(DemoArgs),
    /// Print a shell completion script for bash, zsh or fish.
    #[command(
        after_help = "Example:\n  pyro completions bash > ~/.local/share/bash-completion/completions/pyro"
    )]
    Completions(CompletionsArgs),
}

/// `--json`, shared by every command that prints a result.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct JsonFlag {
    /// Print the result as one JSON object on stdout.
    #[arg(
        long,
        long_help = "Print the result as one pretty-printed JSON object on stdout: the same \
            fields as the SDK result and the MCP tool's structured content. New fields may be \
            added in later versions. On failure stdout gets \
            {\"ok\": false, \"error\": {\"kind\": ..., \"message\": ...}} and the exit code is 1."
    )]
    pub json: bool,
}

/// `--allow-host-compat`, the explicit opt-in to host execution.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct HostCompatFlag {
    /// Run on this host when no guest VM backend is available.
    #[arg(
        long,
        long_help = "Allow running on this host, without a VM, when no guest backend is \
            available (see `pyro doctor`). Without this flag pyro fails instead of silently \
            losing the VM's isolation. Results report execution_mode=host_compat."
    )]
    pub allow_host_compat: bool,
}

/// Sizing flags of a new VM.
#[derive(Debug, Clone, Copy, Args)]
pub struct SizingArgs {
    /// Virtual CPUs (1-8).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_VCPU_COUNT)]
    pub vcpu_count: u32,
    /// Guest memory in MiB (256-32768).
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_MEM_MIB)]
    pub mem_mib: u32,
    /// Lifetime in seconds (60-3600); the VM is deleted after it.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_TTL_SECONDS)]
    pub ttl_seconds: u64,
}

/// `pyro run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Environment to boot, e.g. debian:12 (see `pyro env list`).
    #[arg(value_name = "ENVIRONMENT")]
    pub environment: String,
    #[command(flatten)]
    pub sizing: SizingArgs,
    /// Kill the command after this many seconds (exit code 124).
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_TIMEOUT_SECONDS)]
    pub timeout_seconds: u64,
    /// Give the guest outbound network access.
    #[arg(long)]
    pub network: bool,
    #[command(flatten)]
    pub host: HostCompatFlag,
    #[command(flatten)]
    pub out: JsonFlag,
    /// The command to run, after `--` (joined with shell quoting).
    #[arg(
        last = true,
        value_name = "COMMAND",
        long_help = "The command to run, after `--`. The words are joined with POSIX shell \
            quoting into one string and run with /bin/sh -lc, so `-- sh -c 'exit 3'` runs \
            exactly that."
    )]
    pub command: Vec<String>,
}

/// Network policy choices of `workspace create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkPolicyArg(pub NetworkPolicy);

impl ValueEnum for NetworkPolicyArg {
    fn value_variants<'a>() -> &'a [Self] {
        &[
            NetworkPolicyArg(NetworkPolicy::Off),
            NetworkPolicyArg(NetworkPolicy::Egress),
            NetworkPolicyArg(NetworkPolicy::EgressPublishedPorts),
        ]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let help = match self.0 {
            NetworkPolicy::Off => "no network device",
            NetworkPolicy::Egress => "outbound access",
            NetworkPolicy::EgressPublishedPorts => {
                "outbound access, and services may publish ports on 127.0.0.1"
            }
        };
        Some(PossibleValue::new(self.0.name()).help(help))
    }
}

impl fmt::Display for NetworkPolicyArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

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

/// Commands that take only `--json`.
#[derive(Debug, Args)]
pub struct JsonOnlyArgs {
    #[command(flatten)]
    pub out: JsonFlag,
}

/// Commands that name one workspace.
#[derive(Debug, Args)]
pub struct WorkspaceIdArgs {
    /// Workspace id (see `pyro workspace list`).
    #[arg(value_name = "WORKSPACE_ID")]
    pub workspace_id: String,
    #[command(flatten)]
    pub out: JsonFlag,
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
    /// Kill the command after this many seconds (exit code 124).
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

/// `pyro workspace file ...`.
#[derive(Debug, Subcommand)]
pub enum FileCommand {
    /// List a directory of /workspace.
    List(FileListArgs),
    /// Print a file of /workspace.
    Read(FileReadArgs),
    /// Create or replace a file of /workspace.
    Write(FileWriteArgs),
}

/// `pyro workspace file list` and `disk list`.
#[derive(Debug, Args)]
pub struct FileListArgs {
    /// Workspace id (see `pyro workspace list`).
    #[arg(value_name = "WORKSPACE_ID")]
    pub workspace_id: String,
    /// Directory to list.
    #[arg(value_name = "PATH", default_value = WORKSPACE_PATH)]
    pub path: String,
    /// Include subdirectories.
    #[arg(long)]
    pub recursive: bool,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `pyro workspace file read` and `disk read`.
#[derive(Debug, Args)]
pub struct FileReadArgs {
    /// Workspace id (see `pyro workspace list`).
    #[arg(value_name = "WORKSPACE_ID")]
    pub workspace_id: String,
    /// File to read (relative paths are under /workspace).
    #[arg(value_name = "PATH")]
    pub path: String,
    /// Return at most this many bytes (1-1048576).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BYTES)]
    pub max_bytes: u64,
    /// Print exactly the content, nothing else.
    #[arg(long, conflicts_with = "json")]
    pub content_only: bool,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `pyro workspace file write`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["text", "text_file"])))]
pub struct FileWriteArgs {
    /// Workspace id (see `pyro workspace list`).
    #[arg(value_name = "WORKSPACE_ID")]
    pub workspace_id: String,
    /// File to write (relative paths are under /workspace; parents are created).
    #[arg(value_name = "PATH")]
    pub path: String,
    /// The new content (UTF-8, at most 1 MiB).
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub text: Option<String>,
    /// Read the new content from this host file (UTF-8, at most 1 MiB).
    #[arg(long, value_name = "PATH")]
    pub text_file: Option<PathBuf>,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `pyro workspace patch ...`.
#[derive(Debug, Subcommand)]
pub enum PatchCommand {
    /// Apply a unified diff to /workspace.
    #[command(
        long_about = "Apply a unified diff to /workspace. Paths are relative to /workspace; \
            a/ and b/ prefixes and /dev/null (add or delete) are understood. Context must \
            match exactly."
    )]
    Apply(PatchApplyArgs),
}

/// `pyro workspace patch apply`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["patch", "patch_file"])))]
pub struct PatchApplyArgs {
    /// Workspace id (see `pyro workspace list`).
    #[arg(value_name = "WORKSPACE_ID")]
    pub workspace_id: String,
    /// The patch text (at most 1 MiB).
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub patch: Option<String>,
    /// Read the patch from this host file (UTF-8, at most 1 MiB).
    #[arg(long, value_name = "PATH")]
    pub patch_file: Option<PathBuf>,
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

/// `pyro workspace disk ...`.
#[derive(Debug, Subcommand)]
pub enum DiskCommand {
    /// Copy the stopped workspace's disk image to a host file.
    Export(DiskExportArgs),
    /// List a directory on the stopped workspace's disk.
    List(FileListArgs),
    /// Read a file on the stopped workspace's disk.
    Read(FileReadArgs),
}

/// `pyro workspace disk export`.
#[derive(Debug, Args)]
pub struct DiskExportArgs {
    /// Workspace id (see `pyro workspace list`).
    #[arg(value_name = "WORKSPACE_ID")]
    pub workspace_id: String,
    /// Host path to create; it must not exist yet.
    #[arg(long, value_name = "HOST_PATH", required = true)]
    pub output: PathBuf,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `pyro workspace shell ...`.
#[derive(Debug, Subcommand)]
pub enum ShellCommand {
    /// Open an interactive shell (a PTY) in the workspace.
    Open(ShellOpenArgs),
    /// Read a shell's output from a cursor.
    Read(ShellReadArgs),
    /// Type input into a shell.
    Write(ShellWriteArgs),
    /// Send a signal to a shell.
    Signal(ShellSignalArgs),
    /// Close a shell.
    Close(ShellIdArgs),
}

/// `pyro workspace shell open`.
#[derive(Debug, Args)]
pub struct ShellOpenArgs {
    /// Workspace id (see `pyro workspace list`).
    #[arg(value_name = "WORKSPACE_ID")]
    pub workspace_id: String,
    /// Working directory inside /workspace.
    #[arg(long, value_name = "PATH", default_value = WORKSPACE_PATH)]
    pub cwd: String,
    /// Terminal width.
    #[arg(long, value_name = "N", default_value_t = 120)]
    pub cols: u32,
    /// Terminal height.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub rows: u32,
    /// Expose workspace secret SECRET as environment variable ENV (repeatable).
    #[arg(long = "secret-env", value_name = "SECRET[=ENV]")]
    pub secret_env: Vec<String>,
    #[command(flatten)]
    pub out: JsonFlag,
    /// Print only the new shell id.
    #[arg(long, conflicts_with = "json")]
    pub id_only: bool,
}

/// Shell commands that name one shell.
#[derive(Debug, Args)]
pub struct ShellIdArgs {
    /// Workspace id (see `pyro workspace list`).
    #[arg(value_name = "WORKSPACE_ID")]
    pub workspace_id: String,
    /// Shell id (from `shell open`).
    #[arg(value_name = "SHELL_ID")]
    pub shell_id: String,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `pyro workspace shell read`.
#[derive(Debug, Args)]
pub struct ShellReadArgs {
    /// Workspace id (see `pyro workspace list`).
    #[arg(value_name = "WORKSPACE_ID")]
    pub workspace_id: String,
    /// Shell id (from `shell open`).
    #[arg(value_name = "SHELL_ID")]
    pub shell_id: String,
    /// Character offset to read from (the previous read's next_cursor).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub cursor: u64,
    /// Return at most this many characters.
    #[arg(long, value_name = "N", default_value_t = 65536)]
    pub max_chars: u64,
    /// Strip terminal escape sequences and apply carriage returns.
    #[arg(long)]
    pub plain: bool,
    /// Wait until the shell has been quiet this long (1-10000 ms).
    #[arg(long, value_name = "MS")]
    pub wait_for_idle_ms: Option<u64>,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `pyro workspace shell write`.
#[derive(Debug, Args)]
pub struct ShellWriteArgs {
    /// Workspace id (see `pyro workspace list`).
    #[arg(value_name = "WORKSPACE_ID")]
    pub workspace_id: String,
    /// Shell id (from `shell open`).
    #[arg(value_name = "SHELL_ID")]
    pub shell_id: String,
    /// Text to type.
    #[arg(long, value_name = "TEXT", required = true, allow_hyphen_values = true)]
    pub input: String,
    /// Do not press Enter after the input.
    #[arg(long)]
    pub no_newline: bool,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// Signals a shell accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SignalArg {
    /// Hang up.
    #[value(name = "HUP")]
    Hup,
    /// Interrupt (Ctrl-C).
    #[value(name = "INT")]
    Int,
    /// Terminate.
    #[value(name = "TERM")]
    Term,
    /// Kill.
    #[value(name = "KILL")]
    Kill,
}

impl SignalArg {
    /// The contract's signal name.
    pub fn name(self) -> &'static str {
        match self {
            SignalArg::Hup => "HUP",
            SignalArg::Int => "INT",
            SignalArg::Term => "TERM",
            SignalArg::Kill => "KILL",
        }
    }
}

/// `pyro workspace shell signal`.
#[derive(Debug, Args)]
pub struct ShellSignalArgs {
    /// Workspace id (see `pyro workspace list`).
    #[arg(value_name = "WORKSPACE_ID")]
    pub workspace_id: String,
    /// Shell id (from `shell open`).
    #[arg(value_name = "SHELL_ID")]
    pub shell_id: String,
    /// Signal to send.
    #[arg(long, value_name = "SIGNAL", value_enum, default_value_t = SignalArg::Int)]
    pub signal: SignalArg,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `pyro workspace service ...`.
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Start a long-running process and wait until it is ready.
    Start(ServiceStartArgs),
    /// List the workspace's services.
    List(WorkspaceIdArgs),
    /// Show one service.
    Status(ServiceNameArgs),
    /// Print a service's stdout and stderr.
    Logs(ServiceLogsArgs),
    /// Stop a service.
    Stop(ServiceNameArgs),
}

/// `pyro workspace service start`.
#[derive(Debug, Args)]
pub struct ServiceStartArgs {
    /// Workspace id (see `pyro workspace list`).
    #[arg(value_name = "WORKSPACE_ID")]
    pub workspace_id: String,
    /// Service name ([A-Za-z0-9][A-Za-z0-9._-]*).
    #[arg(value_name = "SERVICE_NAME")]
    pub service_name: String,
    /// Working directory inside /workspace.
    #[arg(long, value_name = "PATH", default_value = WORKSPACE_PATH)]
    pub cwd: String,
    /// Ready when this file exists.
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<String>,
    /// Ready when HOST:PORT accepts TCP connections (inside the guest).
    #[arg(long, value_name = "HOST:PORT")]
    pub ready_tcp: Option<String>,
    /// Ready when this URL answers 2xx or 3xx (inside the guest).
    #[arg(long, value_name = "URL")]
    pub ready_http: Option<String>,
    /// Ready when this command exits 0.
    #[arg(long, value_name = "CMD")]
    pub ready_command: Option<String>,
    /// Give up waiting for readiness after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub ready_timeout_seconds: u64,
    /// Readiness probe interval in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub ready_interval_ms: u64,
    /// Expose workspace secret SECRET as environment variable ENV (repeatable).
    #[arg(long = "secret-env", value_name = "SECRET[=ENV]")]
    pub secret_env: Vec<String>,
    /// Publish a guest port on the host's 127.0.0.1 (repeatable).
    #[arg(long = "publish", value_name = "[HOST_PORT:]GUEST_PORT")]
    pub publish: Vec<String>,
    #[command(flatten)]
    pub out: JsonFlag,
    /// The service's command, after `--` (joined with shell quoting).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Service commands that name one service.
#[derive(Debug, Args)]
pub struct ServiceNameArgs {
    /// Workspace id (see `pyro workspace list`).
    #[arg(value_name = "WORKSPACE_ID")]
    pub workspace_id: String,
    /// Service name.
    #[arg(value_name = "SERVICE_NAME")]
    pub service_name: String,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `pyro workspace service logs`.
#[derive(Debug, Args)]
pub struct ServiceLogsArgs {
    /// Workspace id (see `pyro workspace list`).
    #[arg(value_name = "WORKSPACE_ID")]
    pub workspace_id: String,
    /// Service name.
    #[arg(value_name = "SERVICE_NAME")]
    pub service_name: String,
    /// Print the last N lines of each stream.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub tail_lines: i64,
    /// Print the whole logs.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `pyro env ...`.
#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// List the environments and whether they are installed.
    List(JsonOnlyArgs),
    /// Build an environment image (and the guest boot assets) from Debian packages.
    Pull(EnvNameArgs),
    /// Show one environment.
    Inspect(EnvNameArgs),
    /// Remove partial builds and directories of unknown environments.
    Prune(JsonOnlyArgs),
}

/// Env commands that name one environment.
#[derive(Debug, Args)]
pub struct EnvNameArgs {
    /// Environment name, e.g. debian:12.
    #[arg(value_name = "ENVIRONMENT")]
    pub environment: String,
    #[command(flatten)]
    pub out: JsonFlag,
}

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

/// Platforms `doctor` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlatformArg {
    /// 64-bit x86 Linux.
    #[value(name = "linux-x86_64")]
    LinuxX86_64,
}

/// `pyro doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Platform to check.
    #[arg(long, value_enum, default_value_t = PlatformArg::LinuxX86_64)]
    pub platform: PlatformArg,
    /// The project source `pyro mcp serve` would use here, and (--environment) whether
    /// that environment is warm.
    #[command(flatten)]
    pub project: ProjectArgs,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `pyro prepare`.
#[derive(Debug, Args)]
pub struct PrepareArgs {
    /// Environment to warm, e.g. debian:12 (see `pyro env list`).
    #[arg(value_name = "ENVIRONMENT", default_value = "debian:12")]
    pub environment: String,
    /// Prove the loop with guest networking too (network_policy egress).
    #[arg(long)]
    pub network: bool,
    /// Run the proof again even when the environment is already warm.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `pyro gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    #[command(flatten)]
    pub out: JsonFlag,
}

/// `pyro demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Run an HTTPS probe to example.com instead (needs guest networking).
    #[arg(long)]
    pub network: bool,
    #[command(flatten)]
    pub host: HostCompatFlag,
    #[command(flatten)]
    pub out: JsonFlag,
    /// Optional demo.
    #[command(subcommand)]
    pub demo: Option<DemoCommand>,
}

/// `pyro demo ...`.
#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// Let a local model drive vm_run through tool calls (not in this build).
    Ollama(OllamaArgs),
}

/// `pyro demo ollama`.
#[derive(Debug, Args)]
pub struct OllamaArgs {
    /// OpenAI-compatible API base URL.
    #[arg(long, value_name = "URL", default_value = "http://localhost:11434/v1")]
    pub base_url: String,
    /// Model name.
    #[arg(long, value_name = "MODEL", default_value = "llama3.2:3b")]
    pub model: String,
    /// Print every request and tool call.
    #[arg(short, long)]
    pub verbose: bool,
}

/// Shells `completions` can generate for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShellKind {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

/// `pyro completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Shell to generate for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: ShellKind,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("pyro").chain(args.iter().copied()))
    }

    #[test]
    fn flags_are_accepted_after_positionals_before_dashdash() {
        let cli =
            parse(&["workspace", "exec", "abc", "--json", "--", "echo", "hi"]).expect("parse");
        let Command::Workspace(WorkspaceCommand::Exec(a)) = cli.command else {
            panic!("wrong command");
        };
        assert!(a.out.json);
        assert_eq!(a.workspace_id, "abc");
        assert_eq!(a.command, ["echo", "hi"]);

        let cli =
            parse(&["run", "debian:12", "--network", "--allow-host-compat", "--", "ls", "--json"])
                .expect("parse");
        let Command::Run(a) = cli.command else { panic!("wrong command") };
        assert!(a.network && a.host.allow_host_compat && !a.out.json);
        assert_eq!(a.command, ["ls", "--json"], "words after -- are the command's");
    }

    #[test]
    fn defaults_match_the_contract() {
        let Command::Run(a) = parse(&["run", "debian:12", "--", "true"]).expect("parse").command
        else {
            panic!("wrong command")
        };
        assert_eq!(
            (a.sizing.vcpu_count, a.sizing.mem_mib, a.sizing.ttl_seconds, a.timeout_seconds),
            (1, 1024, 600, 30)
        );
        let Command::Mcp(McpCommand::Serve(s)) = parse(&["mcp", "serve"]).expect("parse").command
        else {
            panic!("wrong command")
        };
        assert_eq!(s.surface.profile.map(|p| p.0).unwrap_or_default(), Profile::WorkspaceCore);
        assert!(s.surface.mode.is_none());
        let err = parse(&["mcp", "serve", "--mode", "inspect", "--profile", "workspace-full"])
            .expect_err("--mode with --profile");
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        let err = parse(&["mcp", "serve", "--project-path", ".", "--no-project-source"])
            .expect_err("conflict");
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        let err = parse(&["mcp", "serve", "--repo-ref", "main"]).expect_err("needs --repo-url");
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let cli = parse(&["workspace", "shell", "signal", "w", "s"]).expect("parse");
        let Command::Workspace(WorkspaceCommand::Shell(ShellCommand::Signal(a))) = cli.command
        else {
            panic!("wrong command")
        };
        assert_eq!(a.signal, SignalArg::Int);
    }

    #[test]
    fn usage_errors_are_rejected_by_clap() {
        use clap::error::ErrorKind;
        let kind = |args: &[&str]| parse(args).expect_err("must fail").kind();
        assert_eq!(kind(&["mcp", "serve", "--profile", "nope"]), ErrorKind::InvalidValue);
        assert_eq!(
            kind(&["workspace", "create", "debian:12", "--json", "--id-only"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["workspace", "file", "write", "w", "p", "--text", "a", "--text-file", "f"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["workspace", "file", "write", "w", "p"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            kind(&["workspace", "shell", "signal", "w", "s", "--signal", "int"]),
            ErrorKind::InvalidValue
        );
        assert_eq!(
            kind(&["workspace", "create", "debian:12", "--network-policy", "all"]),
            ErrorKind::InvalidValue
        );
    }

    /// The subcommand at `path` (`workspace exec`), if the CLI has it.
    fn subcommand(path: &str) -> Option<clap::Command> {
        let mut cmd = Cli::command();
        for word in path.split(' ') {
            cmd = cmd.find_subcommand(word)?.clone();
        }
        Some(cmd)
    }

    /// The parity check of the tool table: every tool with a CLI command in the contract
    /// has that command, exactly the one-shot VM tools have none (CONTRACT.md lists no
    /// CLI for them), and every tool has its row in docs/profiles.md.
    #[test]
    fn every_tool_has_its_cli_command_and_docs_row() {
        let docs = include_str!("../../../../docs/profiles.md");
        let mut without_cli = Vec::new();
        for t in pyro_contract::TOOLS {
            match t.cli_command {
                Some(path) => assert!(
                    subcommand(path).is_some(),
                    "{}: the contract has `pyro {path}`, the CLI does not",
                    t.name
                ),
                None => without_cli.push(t.name),
            }
            assert!(
                docs.contains(&format!("| `{}` |", t.name)),
                "{}: no row in docs/profiles.md",
                t.name
            );
        }
        assert_eq!(
            without_cli,
            [
                "vm_create",
                "vm_start",
                "vm_exec",
                "vm_stop",
                "vm_delete",
                "vm_status",
                "vm_network_info",
                "vm_reap_expired"
            ],
            "only the one-shot VM tools may lack a CLI command (CONTRACT.md §5)"
        );
    }

    /// Every CLI option named like a parameter of its tool has the contract's default
    /// (the schema's `default`), so help text and behaviour cannot drift from MCP's.
    #[test]
    fn option_defaults_are_the_contracts() {
        let mut compared = 0;
        for t in pyro_contract::TOOLS {
            let Some(cmd) = t.cli_command.and_then(subcommand) else { continue };
            let schema = t.schema_for(Profile::WorkspaceFull);
            for arg in cmd.get_arguments() {
                let Some(contract) = schema["properties"].get(arg.get_id().as_str()) else {
                    continue;
                };
                let Some(default) = contract.get("default") else { continue };
                let default = match default {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let cli: Vec<String> = arg
                    .get_default_values()
                    .iter()
                    .map(|v| v.to_string_lossy().into_owned())
                    .collect();
                assert_eq!(
                    cli,
                    std::slice::from_ref(&default),
                    "{} --{}: the contract's default is {default}",
                    t.name,
                    arg.get_id()
                );
                compared += 1;
            }
        }
        assert!(compared >= 10, "only {compared} defaults compared");
    }

    #[test]
    fn network_policy_values_use_contract_names() {
        let cli = parse(&[
            "workspace",
            "create",
            "debian:12",
            "--network-policy",
            "egress+published-ports",
        ])
        .expect("parse");
        let Command::Workspace(WorkspaceCommand::Create(a)) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!(a.network_policy.0, NetworkPolicy::EgressPublishedPorts);
    }
}
