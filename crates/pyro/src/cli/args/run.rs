//! `pyro run`: one command in a throwaway VM (the `vm_run` tool).

use clap::Args;
use pyro::params::DEFAULT_TIMEOUT_SECONDS;

use super::*;

/// `pyro run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Environment to boot, e.g. debian:12 (see `pyro env list`).
    #[arg(value_name = "ENVIRONMENT")]
    pub environment: String,
    #[command(flatten)]
    pub sizing: SizingArgs,
    /// Kill the command after this many seconds (1-86400; exit code 124).
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
