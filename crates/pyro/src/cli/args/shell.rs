//! `pyro workspace shell`: interactive PTY shells in a workspace (the `shell_*` tools).

use clap::{Args, Subcommand, ValueEnum};
use pyro::params::WORKSPACE_PATH;

use super::*;

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
    /// Terminal width in columns (1-65535).
    #[arg(long, value_name = "N", default_value_t = 120)]
    pub cols: u32,
    /// Terminal height in rows (1-65535).
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
