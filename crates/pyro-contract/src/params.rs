//! Typed parameters of every tool. These structs are the MCP input schemas (through
//! `schemars`), the SDK request types and the CLI's target types at once.
//!
//! All of them reject unknown fields, so an argument a profile does not offer (for
//! example `secrets` sent to the `workspace-core` variant of `workspace_create`) is an
//! error, never silently dropped or honoured.
//!
//! A field's doc comment is for Rust readers; what `tools/list` shows comes from its
//! `#[schemars(...)]`: the real range (`range`), and a `description` only for what the
//! name, type, default and range do not already say (an empty one shows nothing). The
//! token budget (`tests/token_budget.rs`) keeps that short.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Default vCPU count.
pub const DEFAULT_VCPU_COUNT: u32 = 1;
/// Default guest memory in MiB.
pub const DEFAULT_MEM_MIB: u32 = 1024;
/// Default command timeout in seconds.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 30;
/// Default time to live in seconds.
pub const DEFAULT_TTL_SECONDS: u64 = 600;
/// Default `max_bytes` of file reads.
pub const DEFAULT_MAX_BYTES: u64 = 65536;
/// Default environment for examples and the CLI demo.
pub const DEFAULT_ENVIRONMENT: &str = "debian:12";
/// The guest workspace root.
pub const WORKSPACE_PATH: &str = "/workspace";

fn d_vcpu() -> u32 {
    DEFAULT_VCPU_COUNT
}
fn d_mem() -> u32 {
    DEFAULT_MEM_MIB
}
fn d_timeout() -> u64 {
    DEFAULT_TIMEOUT_SECONDS
}
fn d_ttl() -> u64 {
    DEFAULT_TTL_SECONDS
}
fn d_max_bytes() -> u64 {
    DEFAULT_MAX_BYTES
}
fn d_workspace() -> String {
    WORKSPACE_PATH.to_string()
}
fn d_baseline() -> String {
    "baseline".to_string()
}
fn d_network_policy() -> NetworkPolicy {
    NetworkPolicy::Off
}
fn d_true() -> bool {
    true
}
fn d_cols() -> u32 {
    120
}
fn d_rows() -> u32 {
    30
}
fn d_max_chars() -> u64 {
    65536
}
fn d_signal() -> String {
    "INT".to_string()
}
fn d_ready_timeout() -> u64 {
    30
}
fn d_ready_interval() -> u64 {
    500
}
fn d_tail_lines() -> i64 {
    200
}

/// Network policy of a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub enum NetworkPolicy {
    /// No network device at all.
    #[default]
    #[serde(rename = "off")]
    Off,
    /// Outbound access through user-mode networking.
    #[serde(rename = "egress")]
    Egress,
    /// Outbound access plus service ports published on the host's 127.0.0.1.
    #[serde(rename = "egress+published-ports")]
    EgressPublishedPorts,
}

impl NetworkPolicy {
    /// The stable name.
    pub fn name(self) -> &'static str {
        match self {
            NetworkPolicy::Off => "off",
            NetworkPolicy::Egress => "egress",
            NetworkPolicy::EgressPublishedPorts => "egress+published-ports",
        }
    }

    /// Parse a name (trimmed, case-insensitive).
    pub fn parse(s: &str) -> Option<NetworkPolicy> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" => Some(NetworkPolicy::Off),
            "egress" => Some(NetworkPolicy::Egress),
            "egress+published-ports" => Some(NetworkPolicy::EgressPublishedPorts),
            _ => None,
        }
    }
}

/// A secret given at workspace creation: exactly one of `value` or `file_path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretInput {
    /// Secret name: letters, digits and `_`, not starting with a digit.
    #[schemars(description = "", regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub name: String,
    /// The secret value (never echoed back).
    #[serde(default)]
    #[schemars(description = "")]
    pub value: Option<String>,
    /// Host file holding the value (read at create time).
    #[serde(default)]
    #[schemars(description = "")]
    pub file_path: Option<String>,
}

/// A port to publish on the host's 127.0.0.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishedPortInput {
    /// Guest TCP port (1-65535).
    #[schemars(description = "", range(min = 1))]
    pub guest_port: u16,
    /// Host port (1025-65535); omitted or null picks a free one.
    #[serde(default)]
    #[schemars(description = "Omit for a free port.", range(min = 1025))]
    pub host_port: Option<u16>,
}

/// `vm_run`: boot, run one command, delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmRunParams {
    /// Environment name, e.g. `debian:12`.
    #[schemars(description = "", extend("examples" = ["debian:12"]))]
    pub environment: String,
    /// Shell command run with `/bin/sh -lc` in the guest.
    #[schemars(description = "")]
    pub command: String,
    /// Virtual CPUs (1-8).
    #[serde(default = "d_vcpu")]
    #[schemars(description = "", range(min = 1, max = 8))]
    pub vcpu_count: u32,
    /// Guest memory in MiB (256-32768).
    #[serde(default = "d_mem")]
    #[schemars(description = "", range(min = 256, max = 32768))]
    pub mem_mib: u32,
    /// Kill the command after this many seconds (exit code 124).
    #[serde(default = "d_timeout")]
    #[schemars(description = "", range(min = 1, max = 86400))]
    pub timeout_seconds: u64,
    /// Lifetime of the VM in seconds (60-3600).
    #[serde(default = "d_ttl")]
    #[schemars(description = "", range(min = 60, max = 3600))]
    pub ttl_seconds: u64,
    /// Give the guest outbound network access.
    #[serde(default)]
    #[schemars(description = "")]
    pub network: bool,
    /// Allow running on the host when no guest backend is available (reported as `host_compat`).
    #[serde(default)]
    #[schemars(description = "Run on the host if no VM.")]
    pub allow_host_compat: bool,
}

/// `vm_create`: create a one-shot VM record (not started).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmCreateParams {
    /// Environment name.
    #[schemars(description = "")]
    pub environment: String,
    /// Virtual CPUs (1-8).
    #[serde(default = "d_vcpu")]
    #[schemars(description = "", range(min = 1, max = 8))]
    pub vcpu_count: u32,
    /// Guest memory in MiB (256-32768).
    #[serde(default = "d_mem")]
    #[schemars(description = "", range(min = 256, max = 32768))]
    pub mem_mib: u32,
    /// Lifetime in seconds (60-3600).
    #[serde(default = "d_ttl")]
    #[schemars(description = "", range(min = 60, max = 3600))]
    pub ttl_seconds: u64,
    /// Give the guest outbound network access.
    #[serde(default)]
    #[schemars(description = "")]
    pub network: bool,
    /// Allow running on the host when no guest backend is available (reported as `host_compat`).
    #[serde(default)]
    #[schemars(description = "Run on the host if no VM.")]
    pub allow_host_compat: bool,
}

/// Parameters naming one one-shot VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmIdParams {
    /// VM id returned by `vm_create`.
    #[schemars(description = "")]
    pub vm_id: String,
}

/// `vm_exec`: run one command in a started VM, then delete it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmExecParams {
    /// VM id.
    #[schemars(description = "")]
    pub vm_id: String,
    /// Shell command.
    #[schemars(description = "")]
    pub command: String,
    /// Timeout in seconds.
    #[serde(default = "d_timeout")]
    #[schemars(description = "", range(min = 1, max = 86400))]
    pub timeout_seconds: u64,
}

/// Tools without parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// `workspace_create` in profile `workspace-full`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceCreateParams {
    /// Environment name, e.g. `debian:12`.
    #[schemars(description = "", extend("examples" = ["debian:12"]))]
    pub environment: String,
    /// Virtual CPUs (1-8).
    #[serde(default = "d_vcpu")]
    #[schemars(description = "", range(min = 1, max = 8))]
    pub vcpu_count: u32,
    /// Guest memory in MiB (256-32768).
    #[serde(default = "d_mem")]
    #[schemars(description = "", range(min = 256, max = 32768))]
    pub mem_mib: u32,
    /// Lifetime in seconds; the workspace is deleted after it.
    #[serde(default = "d_ttl")]
    #[schemars(description = "The workspace is deleted after it.", range(min = 60, max = 3600))]
    pub ttl_seconds: u64,
    /// `off` (no network), `egress` or `egress+published-ports`.
    #[serde(default = "d_network_policy")]
    #[schemars(description = "")]
    pub network_policy: NetworkPolicy,
    /// Allow running on the host when no guest backend is available (reported as `host_compat`).
    #[serde(default)]
    #[schemars(description = "Run on the host if no VM.")]
    pub allow_host_compat: bool,
    /// Host directory or .tar/.tar.gz/.tgz copied into /workspace.
    #[serde(default)]
    pub seed_path: Option<String>,
    /// Secrets installed under /run/pyro-secrets/<name> in the guest, each with exactly one of `value` or `file_path`.
    #[serde(default)]
    #[schemars(description = "Each at /run/pyro-secrets/<name>; give value or file_path.")]
    pub secrets: Option<Vec<SecretInput>>,
    /// Optional human-friendly name.
    #[serde(default)]
    #[schemars(description = "")]
    pub name: Option<String>,
    /// Optional labels.
    #[serde(default)]
    #[schemars(description = "")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// `workspace_create` in profile `workspace-core` (narrowed: see `WorkspaceCreateParams`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceCreateCoreParams {
    /// Environment name, e.g. `debian:12`.
    #[schemars(description = "", extend("examples" = ["debian:12"]))]
    pub environment: String,
    /// Virtual CPUs (1-8).
    #[serde(default = "d_vcpu")]
    #[schemars(description = "", range(min = 1, max = 8))]
    pub vcpu_count: u32,
    /// Guest memory in MiB (256-32768).
    #[serde(default = "d_mem")]
    #[schemars(description = "", range(min = 256, max = 32768))]
    pub mem_mib: u32,
    /// Lifetime in seconds; the workspace is deleted after it.
    #[serde(default = "d_ttl")]
    #[schemars(description = "The workspace is deleted after it.", range(min = 60, max = 3600))]
    pub ttl_seconds: u64,
    /// Allow running on the host when no guest backend is available (reported as `host_compat`).
    #[serde(default)]
    #[schemars(description = "Run on the host if no VM.")]
    pub allow_host_compat: bool,
    /// Host directory or .tar/.tar.gz/.tgz copied into /workspace.
    #[serde(default)]
    pub seed_path: Option<String>,
    /// Optional human-friendly name.
    #[serde(default)]
    #[schemars(description = "")]
    pub name: Option<String>,
    /// Optional labels.
    #[serde(default)]
    #[schemars(description = "")]
    pub labels: Option<BTreeMap<String, String>>,
}

impl From<WorkspaceCreateCoreParams> for WorkspaceCreateParams {
    fn from(p: WorkspaceCreateCoreParams) -> Self {
        WorkspaceCreateParams {
            environment: p.environment,
            vcpu_count: p.vcpu_count,
            mem_mib: p.mem_mib,
            ttl_seconds: p.ttl_seconds,
            network_policy: NetworkPolicy::Off,
            allow_host_compat: p.allow_host_compat,
            seed_path: p.seed_path,
            secrets: None,
            name: p.name,
            labels: p.labels,
        }
    }
}

impl WorkspaceCreateParams {
    /// Defaults for everything but the environment.
    pub fn new(environment: impl Into<String>) -> Self {
        WorkspaceCreateParams {
            environment: environment.into(),
            vcpu_count: DEFAULT_VCPU_COUNT,
            mem_mib: DEFAULT_MEM_MIB,
            ttl_seconds: DEFAULT_TTL_SECONDS,
            network_policy: NetworkPolicy::Off,
            allow_host_compat: false,
            seed_path: None,
            secrets: None,
            name: None,
            labels: None,
        }
    }
}

impl VmRunParams {
    /// Defaults for everything but the environment and command.
    pub fn new(environment: impl Into<String>, command: impl Into<String>) -> Self {
        VmRunParams {
            environment: environment.into(),
            command: command.into(),
            vcpu_count: DEFAULT_VCPU_COUNT,
            mem_mib: DEFAULT_MEM_MIB,
            timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
            ttl_seconds: DEFAULT_TTL_SECONDS,
            network: false,
            allow_host_compat: false,
        }
    }
}

/// Parameters naming one workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceIdParams {
    /// Workspace id returned by `workspace_create`.
    #[schemars(description = "")]
    pub workspace_id: String,
}

/// `workspace_update`: change name and labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceUpdateParams {
    /// Workspace id.
    #[schemars(description = "")]
    pub workspace_id: String,
    /// New name.
    #[serde(default)]
    #[schemars(description = "")]
    pub name: Option<String>,
    /// Remove the name.
    #[serde(default)]
    #[schemars(description = "")]
    pub clear_name: bool,
    /// Labels to add or replace, merged into the current ones.
    #[serde(default)]
    #[schemars(description = "Merged.")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Label keys to remove.
    #[serde(default)]
    #[schemars(description = "")]
    pub clear_labels: Option<Vec<String>>,
}

/// `workspace_exec` in profile `workspace-full`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceExecParams {
    /// Workspace id.
    #[schemars(description = "")]
    pub workspace_id: String,
    /// Shell command run with `/bin/sh -lc` in /workspace.
    #[schemars(description = "")]
    pub command: String,
    /// Kill the command after this many seconds (exit code 124).
    #[serde(default = "d_timeout")]
    #[schemars(description = "", range(min = 1, max = 86400))]
    pub timeout_seconds: u64,
    /// Map workspace secret names to environment variable names.
    #[serde(default)]
    #[schemars(description = "Secret name to env var name.")]
    pub secret_env: Option<BTreeMap<String, String>>,
}

/// `workspace_exec` in profile `workspace-core` (narrowed: see `WorkspaceExecParams`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceExecCoreParams {
    /// Workspace id.
    #[schemars(description = "")]
    pub workspace_id: String,
    /// Shell command run with `/bin/sh -lc` in /workspace.
    #[schemars(description = "")]
    pub command: String,
    /// Kill the command after this many seconds (exit code 124).
    #[serde(default = "d_timeout")]
    #[schemars(description = "", range(min = 1, max = 86400))]
    pub timeout_seconds: u64,
}

impl From<WorkspaceExecCoreParams> for WorkspaceExecParams {
    fn from(p: WorkspaceExecCoreParams) -> Self {
        WorkspaceExecParams {
            workspace_id: p.workspace_id,
            command: p.command,
            timeout_seconds: p.timeout_seconds,
            secret_env: None,
        }
    }
}

impl WorkspaceExecParams {
    /// Defaults for everything but the id and command.
    pub fn new(workspace_id: impl Into<String>, command: impl Into<String>) -> Self {
        WorkspaceExecParams {
            workspace_id: workspace_id.into(),
            command: command.into(),
            timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
            secret_env: None,
        }
    }
}

/// `workspace_sync_push`: copy host content into the workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSyncPushParams {
    /// Workspace id.
    #[schemars(description = "")]
    pub workspace_id: String,
    /// Host directory or .tar/.tar.gz/.tgz archive.
    #[schemars(description = "")]
    pub source_path: String,
    /// Destination directory inside /workspace.
    #[serde(default = "d_workspace")]
    #[schemars(description = "")]
    pub dest: String,
}

/// `workspace_export`: copy a workspace path to the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceExportParams {
    /// Workspace id.
    #[schemars(description = "")]
    pub workspace_id: String,
    /// Path inside /workspace (relative paths are under /workspace).
    #[schemars(description = "")]
    pub path: String,
    /// Host path to create; must not exist yet.
    #[schemars(description = "")]
    pub output_path: String,
}

/// `workspace_file_list` and `workspace_disk_list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceFileListParams {
    /// Workspace id.
    #[schemars(description = "")]
    pub workspace_id: String,
    /// Directory to list.
    #[serde(default = "d_workspace")]
    #[schemars(description = "")]
    pub path: String,
    /// Include subdirectories.
    #[serde(default)]
    #[schemars(description = "")]
    pub recursive: bool,
}

/// `workspace_file_read` and `workspace_disk_read`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceFileReadParams {
    /// Workspace id.
    #[schemars(description = "")]
    pub workspace_id: String,
    /// File path inside /workspace.
    #[schemars(description = "")]
    pub path: String,
    /// Return at most this many bytes (1-1048576).
    #[serde(default = "d_max_bytes")]
    #[schemars(description = "", range(min = 1, max = 1048576))]
    pub max_bytes: u64,
}

/// `workspace_file_write`: create or replace a text file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceFileWriteParams {
    /// Workspace id.
    #[schemars(description = "")]
    pub workspace_id: String,
    /// File path inside /workspace; parents are created.
    #[schemars(description = "")]
    pub path: String,
    /// Full new content (UTF-8, at most 1 MiB).
    #[schemars(description = "UTF-8, at most 1 MiB.")]
    pub text: String,
}

/// `workspace_patch_apply`: apply a unified diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspacePatchApplyParams {
    /// Workspace id.
    #[schemars(description = "")]
    pub workspace_id: String,
    /// Unified diff (paths relative to /workspace, `a/` and `b/` prefixes allowed).
    #[schemars(description = "Paths relative to /workspace.")]
    pub patch: String,
}

/// `workspace_reset`: rebuild the sandbox and restore a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceResetParams {
    /// Workspace id.
    #[schemars(description = "")]
    pub workspace_id: String,
    /// Snapshot to restore; `baseline` is the state right after creation.
    #[serde(default = "d_baseline")]
    #[schemars(description = "")]
    pub snapshot: String,
}

/// `workspace_disk_export`: copy the stopped workspace's disk to the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceDiskExportParams {
    /// Workspace id.
    #[schemars(description = "")]
    pub workspace_id: String,
    /// Host path to create; must not exist yet.
    #[schemars(description = "")]
    pub output_path: String,
}

/// `snapshot_create` and `snapshot_delete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotParams {
    /// Workspace id.
    #[schemars(description = "")]
    pub workspace_id: String,
    /// Snapshot name (`baseline` is reserved).
    #[schemars(description = "")]
    pub snapshot_name: String,
}

/// `shell_open`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellOpenParams {
    /// Workspace id.
    #[schemars(description = "")]
    pub workspace_id: String,
    /// Working directory inside /workspace.
    #[serde(default = "d_workspace")]
    #[schemars(description = "")]
    pub cwd: String,
    /// Terminal width.
    #[serde(default = "d_cols")]
    #[schemars(description = "", range(min = 1, max = 65535))]
    pub cols: u32,
    /// Terminal height.
    #[serde(default = "d_rows")]
    #[schemars(description = "", range(min = 1, max = 65535))]
    pub rows: u32,
    /// Map workspace secret names to environment variable names.
    #[serde(default)]
    #[schemars(description = "Secret name to env var name.")]
    pub secret_env: Option<BTreeMap<String, String>>,
}

/// Parameters naming one shell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellIdParams {
    /// Workspace id.
    #[schemars(description = "")]
    pub workspace_id: String,
    /// Shell id returned by `shell_open`.
    #[schemars(description = "")]
    pub shell_id: String,
}

/// `shell_read`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellReadParams {
    /// Workspace id.
    #[schemars(description = "")]
    pub workspace_id: String,
    /// Shell id.
    #[schemars(description = "")]
    pub shell_id: String,
    /// Character offset to read from: the previous read's `next_cursor`.
    #[serde(default)]
    #[schemars(description = "The previous read's `next_cursor`.")]
    pub cursor: u64,
    /// Return at most this many characters.
    #[serde(default = "d_max_chars")]
    #[schemars(description = "", range(min = 1))]
    pub max_chars: u64,
    /// Strip terminal escape sequences.
    #[serde(default)]
    pub plain: bool,
    /// First wait until the shell is quiet this long.
    #[serde(default)]
    #[schemars(range(min = 1, max = 10000))]
    pub wait_for_idle_ms: Option<u64>,
}

/// `shell_write`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellWriteParams {
    /// Workspace id.
    #[schemars(description = "")]
    pub workspace_id: String,
    /// Shell id.
    #[schemars(description = "")]
    pub shell_id: String,
    /// Text to type.
    #[schemars(description = "")]
    pub input: String,
    /// Press Enter after the input.
    #[serde(default = "d_true")]
    #[schemars(description = "")]
    pub append_newline: bool,
}

/// `shell_signal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellSignalParams {
    /// Workspace id.
    #[schemars(description = "")]
    pub workspace_id: String,
    /// Shell id.
    #[schemars(description = "")]
    pub shell_id: String,
    /// One of HUP, INT, TERM, KILL.
    #[serde(default = "d_signal")]
    #[schemars(description = "", extend("enum" = ["HUP", "INT", "TERM", "KILL"]))]
    pub signal_name: String,
}

/// Change a shell's terminal size. An SDK extension: not an MCP tool or CLI command of
/// the 3.x contract (which only sets the size at `shell_open`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellResizeParams {
    /// Workspace id.
    #[schemars(description = "")]
    pub workspace_id: String,
    /// Shell id.
    pub shell_id: String,
    /// Terminal width.
    pub cols: u32,
    /// Terminal height.
    pub rows: u32,
}

impl ShellOpenParams {
    /// Defaults for everything but the workspace: `/workspace`, 120 x 30, no secrets.
    pub fn new(workspace_id: impl Into<String>) -> Self {
        ShellOpenParams {
            workspace_id: workspace_id.into(),
            cwd: d_workspace(),
            cols: d_cols(),
            rows: d_rows(),
            secret_env: None,
        }
    }
}

impl ShellReadParams {
    /// Read from `cursor` with the defaults (65536 characters, raw, no wait).
    pub fn new(workspace_id: impl Into<String>, shell_id: impl Into<String>, cursor: u64) -> Self {
        ShellReadParams {
            workspace_id: workspace_id.into(),
            shell_id: shell_id.into(),
            cursor,
            max_chars: d_max_chars(),
            plain: false,
            wait_for_idle_ms: None,
        }
    }
}

impl ShellWriteParams {
    /// Type `input` and press Enter.
    pub fn new(
        workspace_id: impl Into<String>,
        shell_id: impl Into<String>,
        input: impl Into<String>,
    ) -> Self {
        ShellWriteParams {
            workspace_id: workspace_id.into(),
            shell_id: shell_id.into(),
            input: input.into(),
            append_newline: true,
        }
    }
}

/// `service_start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceStartParams {
    /// Workspace id.
    #[schemars(description = "")]
    pub workspace_id: String,
    /// Service name.
    #[schemars(description = "")]
    pub service_name: String,
    /// Shell command of the long-running process.
    #[schemars(description = "")]
    pub command: String,
    /// Working directory inside /workspace.
    #[serde(default = "d_workspace")]
    #[schemars(description = "")]
    pub cwd: String,
    /// Ready when this file exists in the guest.
    #[serde(default)]
    #[schemars(description = "Path that must exist.")]
    pub ready_file: Option<String>,
    /// Ready when HOST:PORT accepts TCP connections in the guest.
    #[serde(default)]
    #[schemars(description = "HOST:PORT accepting TCP.")]
    pub ready_tcp: Option<String>,
    /// Ready when this URL answers 2xx/3xx in the guest.
    #[serde(default)]
    #[schemars(description = "URL answering 2xx/3xx.")]
    pub ready_http: Option<String>,
    /// Ready when this command exits 0.
    #[serde(default)]
    #[schemars(description = "Command exiting 0.")]
    pub ready_command: Option<String>,
    /// Give up waiting for readiness after this many seconds.
    #[serde(default = "d_ready_timeout")]
    #[schemars(description = "", range(min = 1, max = 3600))]
    pub ready_timeout_seconds: u64,
    /// Probe interval in milliseconds.
    #[serde(default = "d_ready_interval")]
    #[schemars(description = "", range(min = 1, max = 60000))]
    pub ready_interval_ms: u64,
    /// Map workspace secret names to environment variable names.
    #[serde(default)]
    #[schemars(description = "Secret name to env var name.")]
    pub secret_env: Option<BTreeMap<String, String>>,
    /// Ports to publish on the host's 127.0.0.1.
    #[serde(default)]
    #[schemars(description = "On the host's 127.0.0.1.")]
    pub published_ports: Option<Vec<PublishedPortInput>>,
}

/// Parameters naming one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceIdParams {
    /// Workspace id.
    #[schemars(description = "")]
    pub workspace_id: String,
    /// Service name.
    #[schemars(description = "")]
    pub service_name: String,
}

/// `service_logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceLogsParams {
    /// Workspace id.
    #[schemars(description = "")]
    pub workspace_id: String,
    /// Service name.
    #[schemars(description = "")]
    pub service_name: String,
    /// Return the last N lines.
    #[serde(default = "d_tail_lines")]
    #[schemars(description = "", range(min = 1))]
    pub tail_lines: i64,
    /// Return the whole logs instead of a tail (`tail_lines` is ignored).
    #[serde(default)]
    #[schemars(description = "Ignore tail_lines.")]
    pub all: bool,
}

impl ServiceStartParams {
    /// Defaults for everything but the workspace, name and command: cwd `/workspace`,
    /// no readiness probe (ready at once), 30 s / 500 ms, no secrets, no ports.
    pub fn new(
        workspace_id: impl Into<String>,
        service_name: impl Into<String>,
        command: impl Into<String>,
    ) -> Self {
        ServiceStartParams {
            workspace_id: workspace_id.into(),
            service_name: service_name.into(),
            command: command.into(),
            cwd: WORKSPACE_PATH.to_string(),
            ready_file: None,
            ready_tcp: None,
            ready_http: None,
            ready_command: None,
            ready_timeout_seconds: d_ready_timeout(),
            ready_interval_ms: d_ready_interval(),
            secret_env: None,
            published_ports: None,
        }
    }

    /// Use `readiness` as the only readiness probe (the SDK's `readiness` argument).
    pub fn with_readiness(mut self, readiness: crate::results::ServiceReadiness) -> Self {
        use crate::results::ServiceReadiness as R;
        (self.ready_file, self.ready_tcp, self.ready_http, self.ready_command) =
            (None, None, None, None);
        match readiness {
            R::File { path } => self.ready_file = Some(path),
            R::Tcp { address } => self.ready_tcp = Some(address),
            R::Http { url } => self.ready_http = Some(url),
            R::Command { command } => self.ready_command = Some(command),
        }
        self
    }

    /// The readiness probe these parameters ask for; when several `ready_*` fields are
    /// set, the first of file, tcp, http, command wins (as documented for MCP).
    pub fn readiness(&self) -> Option<crate::results::ServiceReadiness> {
        use crate::results::ServiceReadiness as R;
        if let Some(path) = &self.ready_file {
            Some(R::File { path: path.clone() })
        } else if let Some(address) = &self.ready_tcp {
            Some(R::Tcp { address: address.clone() })
        } else if let Some(url) = &self.ready_http {
            Some(R::Http { url: url.clone() })
        } else {
            self.ready_command.as_ref().map(|command| R::Command { command: command.clone() })
        }
    }
}

impl ServiceLogsParams {
    /// The last 200 lines of each stream of a service.
    pub fn new(workspace_id: impl Into<String>, service_name: impl Into<String>) -> Self {
        ServiceLogsParams {
            workspace_id: workspace_id.into(),
            service_name: service_name.into(),
            tail_lines: d_tail_lines(),
            all: false,
        }
    }
}
