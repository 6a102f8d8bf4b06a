//! Flags and value types several commands share: `--json`, `--allow-host-compat`, VM
//! sizing, network policies, a bare workspace id.

use clap::builder::PossibleValue;
use clap::{Args, ValueEnum};
use pyro::params::{NetworkPolicy, DEFAULT_MEM_MIB, DEFAULT_TTL_SECONDS, DEFAULT_VCPU_COUNT};
use std::fmt;

/// `--json`, shared by every command that prints a result.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct JsonFlag {
    /// Print the result as one JSON object on stdout.
    #[arg(
        long,
        long_help = "Print the result as one pretty-printed JSON object on stdout: the same \
            fields as the SDK result and the MCP tool's structured content. New fields may be \
            added in later versions. On failure stdout gets \
            {\"ok\": false, \"error\": {\"kind\": ..., \"message\": ..., \"hint\": ...}} \
            (kind from a closed set such as not_found or invalid_argument; hint, when present, \
            says what to do next) and the exit code is 1."
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
