//! `pyro env`: the environment catalog (list, pull, inspect, prune).

use clap::{Args, Subcommand};

use super::*;

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
