//! `pyro workspace service`: named long-running processes with readiness checks (the
//! `service_*` tools).

use clap::{Args, Subcommand};
use pyro::params::WORKSPACE_PATH;

use super::*;

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
    /// Give up waiting for readiness after this many seconds (1-3600).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub ready_timeout_seconds: u64,
    /// Readiness probe interval in milliseconds (1-60000).
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
