//! Commands about this machine: `doctor`, `prepare`, `gc`, `demo`, `completions`.

use clap::{Args, Subcommand, ValueEnum};

use super::*;

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
