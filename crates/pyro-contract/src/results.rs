//! Typed results. Each serialises to the structured JSON of the matching MCP tool and
//! of the CLI's `--json` output. New fields may be added in minor versions.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::params::NetworkPolicy;

/// Where a command ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionMode {
    /// Not started yet.
    Pending,
    /// Inside a guest VM, through the pyro guest agent.
    Guest,
    /// On the host, because the caller explicitly allowed it.
    HostCompat,
}

/// How a guest VM is accelerated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Accel {
    /// Hardware virtualisation.
    Kvm,
    /// QEMU's software emulator (slower, works everywhere).
    Tcg,
    /// No VM (host_compat).
    None,
}

/// Lifecycle state of a VM or workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VmState {
    /// Created, never started.
    Created,
    /// Running.
    Started,
    /// Not running (stopped or its VM died).
    Stopped,
}

/// What happened to a one-shot VM after its command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Cleanup {
    /// VM id.
    pub vm_id: String,
    /// Always true.
    pub deleted: bool,
    #[schemars(extend("enum" = ["post_exec_cleanup", "run_vm_error_cleanup", "explicit_delete"]))]
    /// `post_exec_cleanup`, `run_vm_error_cleanup` or `explicit_delete`.
    pub reason: String,
}

/// Result of `vm_run` and `vm_exec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VmExecResult {
    /// VM id.
    pub vm_id: String,
    /// Environment name.
    pub environment: String,
    /// Environment build identifier, if known.
    pub environment_version: Option<String>,
    /// The command as given.
    pub command: String,
    /// Standard output (UTF-8, invalid bytes replaced).
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Exit code (124 on timeout).
    pub exit_code: i32,
    /// Wall time of the command.
    pub duration_ms: u64,
    /// Output was cut at the capture limit.
    pub truncated: bool,
    /// Where it ran.
    pub execution_mode: ExecutionMode,
    /// Acceleration of the guest.
    pub accel: Accel,
    /// Guest kernel release (`uname -r`), when in a guest.
    pub guest_kernel: Option<String>,
    /// Cleanup performed.
    pub cleanup: Cleanup,
    /// How the guest started: `boot` (`clone` or `cold`), `boot_ms` and the other
    /// `boot_*` facts of the VM's metadata.
    #[schemars(extend("properties" = {"boot": {"type": "string", "enum": ["clone", "cold"]}, "backend": {"type": "string", "enum": ["qemu", "host_compat"]}, "agent_health": {"type": "string", "enum": ["ok", "unhealthy"]}}))]
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// A one-shot VM record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VmRecord {
    /// VM id.
    pub vm_id: String,
    /// Environment name.
    pub environment: String,
    /// Environment build identifier.
    pub environment_version: Option<String>,
    /// vCPUs.
    pub vcpu_count: u32,
    /// Memory in MiB.
    pub mem_mib: u32,
    /// Time to live in seconds.
    pub ttl_seconds: u64,
    /// Creation time, seconds since the epoch.
    pub created_at: f64,
    /// Expiry time, seconds since the epoch.
    pub expires_at: f64,
    /// State.
    pub state: VmState,
    /// Network requested.
    pub network_enabled: bool,
    /// Host execution allowed.
    pub allow_host_compat: bool,
    /// Guest address, when networked.
    pub guest_ip: Option<String>,
    /// Where commands run.
    pub execution_mode: ExecutionMode,
    /// Acceleration.
    pub accel: Accel,
    #[schemars(extend("properties" = {"boot": {"type": "string", "enum": ["clone", "cold"]}, "backend": {"type": "string", "enum": ["qemu", "host_compat"]}, "agent_health": {"type": "string", "enum": ["ok", "unhealthy"]}}))]
    /// Free-form details.
    pub metadata: BTreeMap<String, String>,
}

/// How `/workspace` was seeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WorkspaceSeed {
    #[schemars(extend("enum" = ["empty", "directory", "tar_archive"]))]
    /// `empty`, `directory` or `tar_archive`.
    pub mode: String,
    /// Host source, if any.
    pub seed_path: Option<String>,
    /// Always `/workspace`.
    pub destination: String,
    /// Archive members.
    pub entry_count: u64,
    /// Regular file bytes.
    pub bytes_written: u64,
    /// Where the content came from: `project_path` (the server's project), `repo_url`
    /// (a clean clone), `seed_path` (an explicit seed) or `none`.
    #[schemars(extend("enum" = ["project_path", "repo_url", "seed_path", "none"]))]
    #[serde(default = "d_origin_kind")]
    pub origin_kind: String,
    /// The project directory or seed path, or `URL@COMMIT` for a clone; null for `none`.
    #[serde(default)]
    pub origin_ref: Option<String>,
}

fn d_origin_kind() -> String {
    "none".into()
}

/// A secret as shown to callers: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretInfo {
    /// Secret name.
    pub name: String,
    #[schemars(extend("enum" = ["literal", "file"]))]
    /// `literal` or `file`.
    pub source_kind: String,
}

/// Summary of the last command of a workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LastCommand {
    /// 1-based sequence number.
    pub sequence: u64,
    /// Command string.
    pub command: String,
    /// Working directory.
    pub cwd: String,
    /// Exit code.
    pub exit_code: i32,
    /// Wall time.
    pub duration_ms: u64,
    /// Where it ran.
    pub execution_mode: ExecutionMode,
}

/// A persistent workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Workspace {
    /// Workspace id.
    pub workspace_id: String,
    /// Optional name.
    pub name: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Environment name.
    pub environment: String,
    /// Environment build identifier.
    pub environment_version: Option<String>,
    /// vCPUs.
    pub vcpu_count: u32,
    /// Memory in MiB.
    pub mem_mib: u32,
    /// Time to live in seconds.
    pub ttl_seconds: u64,
    /// Creation time (epoch seconds).
    pub created_at: f64,
    /// Last mutating activity (epoch seconds).
    pub last_activity_at: f64,
    /// Expiry (epoch seconds).
    pub expires_at: f64,
    /// State.
    pub state: VmState,
    /// Network policy.
    pub network_policy: NetworkPolicy,
    /// Whether the guest has a network device.
    pub network_enabled: bool,
    /// Host execution allowed.
    pub allow_host_compat: bool,
    /// Guest address, when networked.
    pub guest_ip: Option<String>,
    /// Where commands run.
    pub execution_mode: ExecutionMode,
    /// Acceleration.
    pub accel: Accel,
    /// Always `/workspace`.
    pub workspace_path: String,
    /// Seed summary.
    pub workspace_seed: WorkspaceSeed,
    /// Secret names.
    pub secrets: Vec<SecretInfo>,
    /// Commands run since creation or the last reset.
    pub command_count: u64,
    /// Last command.
    pub last_command: Option<LastCommand>,
    /// Resets so far.
    pub reset_count: u64,
    /// Time of the last reset.
    pub last_reset_at: Option<f64>,
    /// Services known.
    pub service_count: u64,
    /// Services running.
    pub running_service_count: u64,
    /// Last error seen (e.g. the VM died).
    pub last_error: Option<String>,
    #[schemars(extend("properties" = {"boot": {"type": "string", "enum": ["clone", "cold"]}, "backend": {"type": "string", "enum": ["qemu", "host_compat"]}, "agent_health": {"type": "string", "enum": ["ok", "unhealthy"]}}))]
    /// Free-form details (backend, guest kernel, ...).
    pub metadata: BTreeMap<String, String>,
}

/// Result of `workspace_reset`: the workspace plus what was restored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkspaceResetResult {
    /// The workspace after the reset.
    #[serde(flatten)]
    pub workspace: Workspace,
    /// What was restored.
    pub workspace_reset: ResetInfo,
}

/// Details of a reset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ResetInfo {
    /// Snapshot restored.
    pub snapshot_name: String,
    #[schemars(extend("enum" = ["baseline", "named"]))]
    /// `baseline` or `named`.
    pub kind: String,
    /// Always `/workspace`.
    pub destination: String,
    /// Archive members restored.
    pub entry_count: u64,
    /// Regular file bytes restored.
    pub bytes_written: u64,
}

/// One row of `workspace_list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkspaceRow {
    /// Workspace id.
    pub workspace_id: String,
    /// Name.
    pub name: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Environment.
    pub environment: String,
    /// State.
    pub state: VmState,
    /// Creation time.
    pub created_at: f64,
    /// Last activity.
    pub last_activity_at: f64,
    /// Expiry.
    pub expires_at: f64,
    /// Commands run.
    pub command_count: u64,
    /// Services known.
    pub service_count: u64,
    /// Services running.
    pub running_service_count: u64,
}

/// Result of `workspace_list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkspaceList {
    /// Number of workspaces.
    pub count: u64,
    /// Rows, most recently active first.
    pub workspaces: Vec<WorkspaceRow>,
}

/// Result of `workspace_exec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WorkspaceExecResult {
    /// Workspace id.
    pub workspace_id: String,
    /// Environment.
    pub environment: String,
    /// Environment build identifier.
    pub environment_version: Option<String>,
    /// The command as given.
    pub command: String,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Exit code (124 on timeout).
    pub exit_code: i32,
    /// Wall time.
    pub duration_ms: u64,
    /// Output was cut at the capture limit.
    pub truncated: bool,
    /// Where it ran.
    pub execution_mode: ExecutionMode,
    /// Acceleration.
    pub accel: Accel,
    /// Sequence number in the workspace's history.
    pub sequence: u64,
    /// Working directory.
    pub cwd: String,
}

/// One entry of `workspace_logs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CommandLogEntry {
    /// Sequence number.
    pub sequence: u64,
    /// Command.
    pub command: String,
    /// Working directory.
    pub cwd: String,
    /// Exit code.
    pub exit_code: i32,
    /// Wall time.
    pub duration_ms: u64,
    /// Where it ran.
    pub execution_mode: ExecutionMode,
    /// When it finished (epoch seconds).
    pub recorded_at: f64,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Result of `workspace_logs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkspaceLogs {
    /// Workspace id.
    pub workspace_id: String,
    /// Number of entries.
    pub count: u64,
    /// Entries in order.
    pub entries: Vec<CommandLogEntry>,
}

/// Kind of a file system entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactType {
    /// Regular file.
    File,
    /// Directory.
    Directory,
    /// Symbolic link.
    Symlink,
}

/// One file system entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FileEntry {
    /// Absolute guest path.
    pub path: String,
    /// Kind.
    pub artifact_type: ArtifactType,
    /// Size in bytes (0 for directories).
    pub size_bytes: u64,
    /// Symlink target.
    pub link_target: Option<String>,
}

/// Result of `workspace_file_list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FileListResult {
    /// Workspace id.
    pub workspace_id: String,
    /// Listed path.
    pub path: String,
    /// Whether subdirectories were walked.
    pub recursive: bool,
    /// Entries.
    pub entries: Vec<FileEntry>,
    /// Where it ran.
    pub execution_mode: ExecutionMode,
}

/// Result of `workspace_file_read`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FileReadResult {
    /// Workspace id.
    pub workspace_id: String,
    /// File path.
    pub path: String,
    /// Full file size.
    pub size_bytes: u64,
    /// Limit applied.
    pub max_bytes: u64,
    /// Content (UTF-8, invalid bytes replaced).
    pub content: String,
    /// The file is larger than `max_bytes`.
    pub truncated: bool,
    /// Where it ran.
    pub execution_mode: ExecutionMode,
}

/// Result of `workspace_file_write`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FileWriteResult {
    /// Workspace id.
    pub workspace_id: String,
    /// File path.
    pub path: String,
    /// New size.
    pub size_bytes: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Where it ran.
    pub execution_mode: ExecutionMode,
}

/// Summary counts of a diff.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DiffSummary {
    /// Changed entries.
    pub total: u64,
    /// Added.
    pub added: u64,
    /// Modified.
    pub modified: u64,
    /// Deleted.
    pub deleted: u64,
    /// Changed type (file/dir/symlink).
    pub type_changed: u64,
    /// With a text patch.
    pub text_patched: u64,
    /// Without a text patch (binary, type change, directory).
    pub non_text: u64,
}

/// One changed entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DiffEntry {
    /// Path relative to /workspace.
    pub path: String,
    #[schemars(extend("enum" = ["added", "modified", "deleted", "type_changed"]))]
    /// `added`, `modified`, `deleted` or `type_changed`.
    pub status: String,
    /// Kind of the entry now (or before, when deleted).
    pub artifact_type: ArtifactType,
    /// Unified diff, for text files.
    pub text_patch: Option<String>,
}

/// Result of `workspace_diff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DiffResult {
    /// Workspace id.
    pub workspace_id: String,
    /// Anything changed.
    pub changed: bool,
    /// Counts.
    pub summary: DiffSummary,
    /// Entries sorted by path.
    pub entries: Vec<DiffEntry>,
    /// All text patches concatenated.
    pub patch: String,
}

/// Result of `workspace_export`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExportResult {
    /// Workspace id.
    pub workspace_id: String,
    /// Exported guest path.
    pub workspace_path: String,
    /// Host path written.
    pub output_path: String,
    /// Kind of the exported path.
    pub artifact_type: ArtifactType,
    /// Entries written.
    pub entry_count: u64,
    /// Regular file bytes written.
    pub bytes_written: u64,
    /// Symlinks in the export, written as links exactly as the guest had them (also
    /// absolute ones and ones pointing outside the tree); pyro never follows them.
    #[serde(default)]
    pub symlink_count: u64,
    /// Where it ran.
    pub execution_mode: ExecutionMode,
}

/// Result of `workspace_disk_export`: the stopped workspace's root disk as a raw image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DiskExportResult {
    /// Workspace id.
    pub workspace_id: String,
    /// Host path written (a raw ext4 image).
    pub output_path: String,
    #[schemars(extend("enum" = ["ext4"]))]
    /// Always `ext4`.
    pub disk_format: String,
    /// Size of the image file.
    pub bytes_written: u64,
}

/// Result of `workspace_disk_list` (read offline from the stopped workspace's disk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DiskListResult {
    /// Workspace id.
    pub workspace_id: String,
    /// Listed guest path (absolute).
    pub path: String,
    /// Whether subdirectories were walked.
    pub recursive: bool,
    /// Entries: direct children sorted by path, or pre-order when recursive.
    pub entries: Vec<FileEntry>,
}

/// Result of `workspace_disk_read` (read offline from the stopped workspace's disk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DiskReadResult {
    /// Guest path (absolute).
    pub path: String,
    /// Full file size.
    pub size_bytes: u64,
    /// Limit applied.
    pub max_bytes: u64,
    /// The first `max_bytes` bytes (UTF-8, invalid bytes replaced).
    pub content: String,
    /// The file is larger than `max_bytes`.
    pub truncated: bool,
    /// Workspace id.
    pub workspace_id: String,
}

/// Details of a sync push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SyncInfo {
    #[schemars(extend("enum" = ["directory", "tar_archive"]))]
    /// `directory` or `tar_archive`.
    pub mode: String,
    /// Host source.
    pub source_path: String,
    /// Guest destination.
    pub destination: String,
    /// Entries written.
    pub entry_count: u64,
    /// Regular file bytes written.
    pub bytes_written: u64,
}

/// Result of `workspace_sync_push`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SyncPushResult {
    /// Workspace id.
    pub workspace_id: String,
    /// Where it ran.
    pub execution_mode: ExecutionMode,
    /// What was copied.
    pub workspace_sync: SyncInfo,
}

/// Counts of a patch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PatchSummary {
    /// Files touched.
    pub total: u64,
    /// Added.
    pub added: u64,
    /// Modified.
    pub modified: u64,
    /// Deleted.
    pub deleted: u64,
}

/// One file touched by a patch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PatchEntry {
    /// Absolute guest path.
    pub path: String,
    #[schemars(extend("enum" = ["added", "modified", "deleted"]))]
    /// `added`, `modified` or `deleted`.
    pub status: String,
}

/// Result of `workspace_patch_apply`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PatchApplyResult {
    /// Workspace id.
    pub workspace_id: String,
    /// Anything changed.
    pub changed: bool,
    /// Counts.
    pub summary: PatchSummary,
    /// Files touched, sorted.
    pub entries: Vec<PatchEntry>,
    /// The patch as given.
    pub patch: String,
    /// Where it ran.
    pub execution_mode: ExecutionMode,
}

/// Result of `workspace_delete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WorkspaceDeleteResult {
    /// Workspace id.
    pub workspace_id: String,
    /// Always true.
    pub deleted: bool,
    #[schemars(extend("enum" = ["explicit_delete", "expired"]))]
    /// Why (`explicit_delete`, `expired`).
    pub reason: String,
}

/// Result of `vm_delete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VmDeleteResult {
    /// VM id.
    pub vm_id: String,
    /// Always true.
    pub deleted: bool,
    #[schemars(extend("enum" = ["explicit_delete"]))]
    /// Why.
    pub reason: String,
}

/// A snapshot of `/workspace`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotInfo {
    /// Workspace id.
    pub workspace_id: String,
    /// Name (`baseline` for the create-time state).
    pub snapshot_name: String,
    #[schemars(extend("enum" = ["baseline", "named"]))]
    /// `baseline` or `named`.
    pub kind: String,
    /// When it was taken.
    pub created_at: f64,
    /// Archive members.
    pub entry_count: u64,
    /// Regular file bytes.
    pub bytes_written: u64,
    /// Whether it can be deleted (not the baseline).
    pub deletable: bool,
}

/// Result of `snapshot_create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotResult {
    /// Workspace id.
    pub workspace_id: String,
    /// The snapshot.
    pub snapshot: SnapshotInfo,
    /// Where it ran.
    pub execution_mode: ExecutionMode,
}

/// Result of `snapshot_list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotList {
    /// Workspace id.
    pub workspace_id: String,
    /// Number of snapshots.
    pub count: u64,
    /// The baseline first, then named snapshots newest first.
    pub snapshots: Vec<SnapshotInfo>,
}

/// Result of `snapshot_delete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotDeleteResult {
    /// Workspace id.
    pub workspace_id: String,
    /// Deleted snapshot.
    pub snapshot_name: String,
    /// Always true.
    pub deleted: bool,
}

/// Network facts of a one-shot VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkInfo {
    /// VM id.
    pub vm_id: String,
    /// Whether the guest has a NIC.
    pub network_enabled: bool,
    /// Guest address.
    pub guest_ip: Option<String>,
    /// Gateway (the host, through user-mode networking).
    pub gateway_ip: Option<String>,
    /// DNS server.
    pub dns_servers: Vec<String>,
    /// Whether outbound connections should work (the network is on and the VM runs).
    pub outbound_connectivity_expected: bool,
    /// Explanation when there is no network, or it is not up yet.
    pub reason: Option<String>,
    #[schemars(extend("enum" = ["user", null]))]
    /// How the guest is networked: `user` (QEMU user-mode networking), or null.
    pub network_mode: Option<String>,
    /// Host TAP device; always null (user-mode networking needs none).
    pub tap_name: Option<String>,
    /// The guest's subnet.
    pub subnet_cidr: Option<String>,
    /// The guest NIC's MAC address.
    pub mac_address: Option<String>,
}

/// Result of `vm_reap_expired`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReapResult {
    /// Deleted VM ids.
    pub deleted_vm_ids: Vec<String>,
    /// How many.
    pub count: u64,
}

/// Result of `vm_list_environments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EnvironmentList {
    /// The catalog's environments.
    pub result: Vec<EnvironmentInfo>,
}

/// An environment in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EnvironmentInfo {
    /// Name, e.g. `debian:12`.
    pub name: String,
    /// What it contains.
    pub description: String,
    /// Debian release.
    pub distribution: String,
    /// Debian version.
    pub distribution_version: String,
    /// Packages added on top of the minimal base.
    pub default_packages: Vec<String>,
    /// Image present in the cache.
    pub installed: bool,
    /// Cache directory of this environment.
    pub install_dir: String,
    /// Build time (epoch seconds), when installed.
    pub built_at: Option<u64>,
    /// Image size, when installed.
    pub size_bytes: Option<u64>,
    /// Number of installed Debian packages, when installed.
    pub package_count: Option<u64>,
    /// Guest kernel release, when the boot assets are installed.
    pub kernel_release: Option<String>,
    /// Every Debian package in the image (`name version`), filled by `inspect` only.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub installed_packages: Option<Vec<String>>,
}

/// State of an interactive shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShellState {
    /// The shell process is alive.
    Running,
    /// The shell process has exited (or was closed).
    Stopped,
}

/// An interactive shell (a PTY in the guest), as `shell_open` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Shell {
    /// Workspace id.
    pub workspace_id: String,
    /// Shell id (12 hex characters).
    pub shell_id: String,
    /// Working directory it was opened in.
    pub cwd: String,
    /// Terminal columns.
    pub cols: u32,
    /// Terminal rows.
    pub rows: u32,
    /// `running` or `stopped`.
    pub state: ShellState,
    /// Open time, seconds since the epoch.
    pub started_at: f64,
    /// Exit time, once it exited.
    pub ended_at: Option<f64>,
    /// Exit code, once it exited (128 + N when killed by signal N).
    pub exit_code: Option<i32>,
    /// Where it runs (always `guest`: shells need the guest).
    pub execution_mode: ExecutionMode,
}

/// Result of `shell_read`: the shell plus a slice of its output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ShellReadResult {
    /// The shell.
    #[serde(flatten)]
    pub shell: Shell,
    /// Character offset the output starts at (the request's, clamped).
    pub cursor: u64,
    /// Pass this as `cursor` to continue; it refers to the raw output, also with `plain`.
    pub next_cursor: u64,
    /// Output (merged stdout/stderr of the terminal), secrets redacted.
    pub output: String,
    /// More output is available after `next_cursor` (or `plain` text was cut).
    pub truncated: bool,
    /// Escape sequences were stripped and carriage returns applied.
    pub plain: bool,
    /// The idle wait used, if any.
    pub wait_for_idle_ms: Option<u64>,
}

/// Result of `shell_write`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ShellWriteResult {
    /// The shell.
    #[serde(flatten)]
    pub shell: Shell,
    /// Characters of `input` written (the appended newline not counted).
    pub input_length: u64,
    /// Whether Enter was pressed after the input.
    pub append_newline: bool,
}

/// Result of `shell_signal`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ShellSignalResult {
    /// The shell.
    #[serde(flatten)]
    pub shell: Shell,
    #[schemars(extend("enum" = ["HUP", "INT", "TERM", "KILL"]))]
    /// Signal sent (`HUP`, `INT`, `TERM` or `KILL`).
    pub signal: String,
}

/// Result of `shell_close`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ShellCloseResult {
    /// The shell's final state.
    #[serde(flatten)]
    pub shell: Shell,
    /// Always true.
    pub closed: bool,
}

/// Lifecycle state of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    /// The process runs (it became ready).
    Running,
    /// The process ended on its own after it was ready.
    Exited,
    /// Stopped by `service_stop`.
    Stopped,
    /// Never became ready, or a published port could not be set up.
    Failed,
}

/// When a service counts as ready, normalized. Addresses and URLs are reached from
/// inside the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServiceReadiness {
    /// This path exists (normalized to `/workspace/...`).
    File {
        /// Absolute guest path under `/workspace`.
        path: String,
    },
    /// `HOST:PORT` accepts TCP connections.
    Tcp {
        /// `HOST:PORT`.
        address: String,
    },
    /// `GET url` answers 2xx or 3xx.
    Http {
        /// An `http://` URL.
        url: String,
    },
    /// The command exits 0 (`/bin/sh -lc`, in the service's cwd).
    Command {
        /// Shell command.
        command: String,
    },
}

/// A guest port published on the host's loopback address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PublishedPort {
    /// Always `127.0.0.1`.
    pub host: String,
    /// Port on the host.
    pub host_port: u16,
    /// Port in the guest.
    pub guest_port: u16,
    #[schemars(extend("enum" = ["tcp"]))]
    /// Always `tcp`.
    pub protocol: String,
}

/// A service: a named long-running process in a workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Service {
    /// Workspace id.
    pub workspace_id: String,
    /// Service name.
    pub service_name: String,
    /// `running`, `exited`, `stopped` or `failed`.
    pub state: ServiceState,
    /// The command as given.
    pub command: String,
    /// Working directory.
    pub cwd: String,
    /// Start time, seconds since the epoch (guest clock).
    pub started_at: f64,
    /// End time, once it ended.
    pub ended_at: Option<f64>,
    /// Exit code, once it ended (128 + N when killed by signal N).
    pub exit_code: Option<i32>,
    /// Pid (and process group id) of the service's shell in the guest.
    pub pid: Option<u32>,
    /// Where it runs.
    pub execution_mode: ExecutionMode,
    /// The readiness probe, if any.
    pub readiness: Option<ServiceReadiness>,
    /// When it became ready.
    pub ready_at: Option<f64>,
    /// Why it ended: `process_exited_before_ready`, `readiness_timeout`, `sigterm`,
    #[schemars(extend("enum" = ["process_exited_before_ready", "readiness_timeout", "sigterm", "sigkill", "published_port_failed", null]))]
    /// `sigkill` or `published_port_failed`.
    pub stop_reason: Option<String>,
    /// Ports published on the host's 127.0.0.1 while it runs.
    pub published_ports: Vec<PublishedPort>,
}

/// Result of `service_list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceList {
    /// Workspace id.
    pub workspace_id: String,
    /// Number of services.
    pub count: u64,
    /// Number of running services.
    pub running_count: u64,
    /// Services sorted by name.
    pub services: Vec<Service>,
}

/// Result of `service_logs`: the service plus its output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceLogsResult {
    /// The service.
    #[serde(flatten)]
    pub service: Service,
    /// Standard output (secrets redacted).
    pub stdout: String,
    /// Standard error (secrets redacted).
    pub stderr: String,
    /// Lines per stream asked for; `null` with `all`.
    pub tail_lines: Option<u64>,
    /// Lines (or bytes beyond 1 MiB per stream) were left out.
    pub truncated: bool,
}

/// One observable thing done to a workspace, recorded host-side as it happens (in the
/// workspace's state directory) and cleared by `workspace_reset`. Commands are not
/// events: the command history is their record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReviewEventKind {
    /// `workspace_sync_push`.
    SyncPush {
        /// Host source.
        source_path: String,
        /// Destination in the guest.
        destination: String,
    },
    /// `workspace_file_write`.
    FileWrite {
        /// Path in the guest.
        path: String,
    },
    /// `workspace_patch_apply`.
    PatchApply {
        /// Files the patch touched.
        paths: Vec<String>,
    },
    /// `workspace_export`.
    Export {
        /// Path in the guest.
        workspace_path: String,
        /// Host path written.
        output_path: String,
    },
    /// `service_start`.
    ServiceStart {
        /// Service.
        service_name: String,
        #[schemars(extend("enum" = ["running", "exited", "stopped", "failed"]))]
        /// State after the start (`running`, `failed`, ...).
        state: String,
    },
    /// `service_stop`.
    ServiceStop {
        /// Service.
        service_name: String,
    },
    /// `snapshot_create`.
    SnapshotCreate {
        /// Snapshot.
        snapshot_name: String,
    },
    /// `snapshot_delete`.
    SnapshotDelete {
        /// Snapshot.
        snapshot_name: String,
    },
    /// `workspace_reset` (always the first event after a reset).
    Reset {
        /// Snapshot restored.
        snapshot_name: String,
    },
}

/// A review event with its time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReviewEvent {
    /// When it happened (epoch seconds).
    pub at: f64,
    /// What happened.
    #[serde(flatten)]
    pub event: ReviewEventKind,
}

/// One command in a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SummaryCommand {
    /// Sequence number (see `workspace_logs`).
    pub sequence: u64,
    /// The command (cut at 200 characters).
    pub command: String,
    /// Exit code (124 on timeout).
    pub exit_code: i32,
    /// Duration.
    pub duration_ms: u64,
}

/// Files changed, from the diff against the baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SummaryChanges {
    /// Counts by status.
    pub summary: DiffSummary,
    /// `status path` lines (at most 50).
    pub files: Vec<String>,
    /// More files changed than listed.
    pub truncated: bool,
}

/// Where to look for details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SummaryPointers {
    /// Full command output: the `workspace_logs` tool / this CLI command.
    pub logs: String,
    /// The full unified diff: the `workspace_diff` tool / this CLI command.
    pub diff: String,
}

/// Result of `workspace_summary`: what happened since the last reset (or creation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkspaceSummary {
    /// Workspace id.
    pub workspace_id: String,
    /// Name, if any.
    pub name: Option<String>,
    /// Environment.
    pub environment: String,
    /// `started` or `stopped`.
    pub state: VmState,
    #[schemars(extend("enum" = ["project_path", "repo_url", "seed_path", "none"]))]
    /// Where /workspace came from (`workspace_seed.origin_kind`).
    pub origin_kind: String,
    /// `workspace_seed.origin_ref`.
    pub origin_ref: Option<String>,
    #[schemars(extend("enum" = ["created", "reset"]))]
    /// `created` or `reset`: what the summary starts from.
    pub since: String,
    /// When that was.
    pub since_at: f64,
    /// Resets so far.
    pub reset_count: u64,
    /// Commands run since then.
    pub command_count: u64,
    /// Commands that exited non-zero.
    pub failed_command_count: u64,
    /// The last 20 commands, oldest first.
    pub commands: Vec<SummaryCommand>,
    /// The last command.
    pub last_command: Option<SummaryCommand>,
    #[schemars(extend("enum" = ["no_commands", "passed", "failed"]))]
    /// `no_commands`, `passed` (the last command exited 0) or `failed`.
    pub outcome: String,
    /// Files changed against the baseline; null when the workspace is stopped (the diff
    /// needs the running guest).
    pub changes: Option<SummaryChanges>,
    /// Patches applied.
    pub patches_applied: Vec<ReviewEvent>,
    /// Files written.
    pub files_written: Vec<ReviewEvent>,
    /// Host content pushed in.
    pub syncs: Vec<ReviewEvent>,
    /// Exports to the host.
    pub exports: Vec<ReviewEvent>,
    /// Services started and stopped.
    pub services: Vec<ReviewEvent>,
    /// Snapshots created and deleted.
    pub snapshots: Vec<ReviewEvent>,
    /// Where the details are.
    pub pointers: SummaryPointers,
    /// The summary as Markdown, short enough to paste into a chat or pull request.
    pub text: String,
}
