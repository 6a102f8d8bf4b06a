//! The Rust SDK: [`Pyro`], one async method per operation.
//!
//! Requests are the contract's parameter structs ([`pyro_contract::params`]) and answers
//! its result structs ([`pyro_contract::results`]), so the SDK, the MCP tools and the
//! CLI's `--json` output share one shape. Each method runs the blocking runtime call on
//! tokio's blocking pool, so it is safe to call from any async context.
//!
//! ```no_run
//! use pyro::{Pyro, params::{WorkspaceCreateParams, WorkspaceExecParams}};
//!
//! # async fn demo() -> Result<(), pyro::PyroError> {
//! let pyro = Pyro::from_env();
//! let ws = pyro.workspace_create(WorkspaceCreateParams::new("debian:12")).await?;
//! let out = pyro
//!     .workspace_exec(WorkspaceExecParams::new(&ws.workspace_id, "echo hello > greeting && cat greeting"))
//!     .await?;
//! assert_eq!(out.stdout, "hello\n");
//! pyro.workspace_delete(&ws.workspace_id).await?;
//! # Ok(()) }
//! ```

use crate::mcp::{PyroMcpServer, ServerOptions};
use crate::project::{ProjectSource, ProjectSourceError};
use crate::runtime::{
    doctor::DoctorReport, environments::PruneResult, NetworkInfo, PyroError, ReapResult, Result,
    Runtime, RuntimeConfig, SnapshotList, SnapshotResult,
};
use pyro_contract::params::*;
use pyro_contract::results::*;
use pyro_contract::{ToolCall, ToolOutput};
use std::sync::Arc;

/// The pyro SDK. Cheap to clone; clones share one runtime.
#[derive(Debug, Clone)]
pub struct Pyro {
    runtime: Arc<Runtime>,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    // A watch of the calling task (progress, cancellation) goes along.
    let watch = crate::runtime::watch::of_task();
    tokio::task::spawn_blocking(move || crate::runtime::watch::enter(watch, f)).await.map_err(
        |e| PyroError::Backend(crate::backend::BackendError::Protocol(format!("task failed: {e}"))),
    )?
}

macro_rules! by_params {
    ($( $(#[$doc:meta])* $name:ident($ty:ty) -> $ret:ty; )*) => {
        $(
            $(#[$doc])*
            pub async fn $name(&self, params: $ty) -> Result<$ret> {
                let rt = self.runtime.clone();
                blocking(move || rt.$name(params)).await
            }
        )*
    };
}

macro_rules! by_id {
    ($( $(#[$doc:meta])* $name:ident -> $ret:ty; )*) => {
        $(
            $(#[$doc])*
            pub async fn $name(&self, id: impl Into<String>) -> Result<$ret> {
                let rt = self.runtime.clone();
                let id = id.into();
                blocking(move || rt.$name(&id)).await
            }
        )*
    };
}

impl Pyro {
    /// A client configured from `PYRO_STATE_DIR` / `PYRO_CACHE_DIR`.
    pub fn from_env() -> Self {
        Pyro { runtime: Arc::new(Runtime::from_env()) }
    }

    /// A client with explicit directories.
    pub fn with_config(config: RuntimeConfig) -> Self {
        Pyro { runtime: Arc::new(Runtime::new(config)) }
    }

    /// A client over an existing runtime, e.g. one built with its own backends
    /// ([`Runtime::with_backends`]).
    pub fn with_runtime(runtime: Runtime) -> Self {
        Pyro { runtime: Arc::new(runtime) }
    }

    /// The blocking runtime underneath, for synchronous callers.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// An MCP server over this client's runtime. `options` is a [`crate::Profile`], a
    /// [`crate::Mode`] or full [`ServerOptions`]; `ServerOptions::default()` (and
    /// `crate::Profile::default()`) is `workspace-core`. A project source that cannot be
    /// resolved turns into an error of `workspace_create`; see
    /// [`Pyro::try_create_server`] to fail at once.
    pub fn create_server(&self, options: impl Into<ServerOptions>) -> PyroMcpServer {
        PyroMcpServer::new(self.clone(), options)
    }

    /// Like [`Pyro::create_server`], but resolve the project source now (clone a
    /// `--repo-url`, check a `--project-path`) and fail if it cannot be used.
    pub fn try_create_server(
        &self,
        options: impl Into<ServerOptions>,
    ) -> std::result::Result<PyroMcpServer, ProjectSourceError> {
        PyroMcpServer::try_new(self.clone(), options)
    }

    /// What happened in a workspace since its last reset: commands and exit codes,
    /// files changed, patches, syncs, exports, services, snapshots, and a Markdown
    /// text to paste into a chat or pull request.
    pub async fn summarize_workspace(
        &self,
        workspace_id: impl Into<String>,
    ) -> Result<WorkspaceSummary> {
        let rt = self.runtime.clone();
        let id = workspace_id.into();
        blocking(move || rt.workspace_summary(&id)).await
    }

    /// Create a workspace seeded from a project source (its Git-tracked files or a
    /// clean clone) instead of `params.seed_path`.
    pub async fn workspace_create_from_project(
        &self,
        params: WorkspaceCreateParams,
        project: Arc<ProjectSource>,
    ) -> Result<Workspace> {
        let rt = self.runtime.clone();
        blocking(move || {
            let seed = project.materialize()?;
            rt.workspace_create_seeded(params, Some(seed))
        })
        .await
    }

    by_params! {
        /// Boot a VM, run one command, delete the VM.
        vm_run(VmRunParams) -> VmExecResult;
        /// Create a one-shot VM (not started).
        vm_create(VmCreateParams) -> VmRecord;
        /// Run one command in a started one-shot VM, then delete it.
        vm_exec(VmExecParams) -> VmExecResult;
        /// Create and start a persistent workspace.
        workspace_create(WorkspaceCreateParams) -> Workspace;
        /// Change a workspace's name or labels.
        workspace_update(WorkspaceUpdateParams) -> Workspace;
        /// Run a command in /workspace.
        workspace_exec(WorkspaceExecParams) -> WorkspaceExecResult;
        /// Copy host content into /workspace.
        workspace_sync_push(WorkspaceSyncPushParams) -> SyncPushResult;
        /// Copy a workspace path to a new host path.
        workspace_export(WorkspaceExportParams) -> ExportResult;
        /// List files.
        workspace_file_list(WorkspaceFileListParams) -> FileListResult;
        /// Read a file.
        workspace_file_read(WorkspaceFileReadParams) -> FileReadResult;
        /// Create or replace a file.
        workspace_file_write(WorkspaceFileWriteParams) -> FileWriteResult;
        /// Apply a unified diff.
        workspace_patch_apply(WorkspacePatchApplyParams) -> PatchApplyResult;
        /// Rebuild the workspace and restore a snapshot.
        workspace_reset(WorkspaceResetParams) -> WorkspaceResetResult;
        /// Save /workspace as a named snapshot.
        snapshot_create(SnapshotParams) -> SnapshotResult;
        /// Delete a named snapshot.
        snapshot_delete(SnapshotParams) -> crate::runtime::SnapshotDeleteResult;
    }

    by_id! {
        /// Boot a created or stopped one-shot VM.
        vm_start -> VmRecord;
        /// Stop a one-shot VM.
        vm_stop -> VmRecord;
        /// Delete a one-shot VM.
        vm_delete -> VmDeleteResult;
        /// Show a one-shot VM.
        vm_status -> VmRecord;
        /// Show a one-shot VM's network.
        vm_network_info -> NetworkInfo;
        /// Show a workspace.
        workspace_status -> Workspace;
        /// Stop a workspace's VM.
        workspace_stop -> Workspace;
        /// Start a stopped workspace.
        workspace_start -> Workspace;
        /// The exec history of a workspace.
        workspace_logs -> WorkspaceLogs;
        /// Compare /workspace with the baseline.
        workspace_diff -> DiffResult;
        /// Delete a workspace.
        workspace_delete -> WorkspaceDeleteResult;
        /// List a workspace's snapshots.
        snapshot_list -> SnapshotList;
        /// Inspect one environment.
        env_inspect -> EnvironmentInfo;
    }

    /// Delete one-shot VMs past their TTL.
    pub async fn vm_reap_expired(&self) -> Result<ReapResult> {
        let rt = self.runtime.clone();
        blocking(move || rt.vm_reap_expired()).await
    }

    /// List workspaces.
    pub async fn workspace_list(&self) -> Result<WorkspaceList> {
        let rt = self.runtime.clone();
        blocking(move || rt.workspace_list()).await
    }

    /// List the environments.
    pub async fn env_list(&self) -> Result<Vec<EnvironmentInfo>> {
        let rt = self.runtime.clone();
        blocking(move || Ok(rt.env_list())).await
    }

    /// Build an environment (and the boot assets) from Debian packages. `progress`
    /// receives one line per phase; the builder's own output goes to stderr.
    pub async fn env_pull(
        &self,
        name: impl Into<String>,
        mut progress: impl FnMut(&str) + Send + 'static,
    ) -> Result<EnvironmentInfo> {
        let rt = self.runtime.clone();
        let name = name.into();
        blocking(move || rt.env_pull(&name, &mut progress)).await
    }

    /// Remove partial and unknown environment builds.
    pub async fn env_prune(&self) -> Result<PruneResult> {
        let rt = self.runtime.clone();
        blocking(move || rt.env_prune()).await
    }

    /// Inspect the host.
    pub async fn doctor(&self) -> Result<DoctorReport> {
        let rt = self.runtime.clone();
        blocking(move || Ok(rt.doctor())).await
    }

    /// Remove what crashed pyro processes left behind (half-made workspaces, QEMUs nobody
    /// owns, stray files); returns what was removed.
    pub async fn gc(&self) -> Result<crate::runtime::sweep::SweepReport> {
        let rt = self.runtime.clone();
        blocking(move || Ok(rt.sweep(true))).await
    }

    /// Call a `workspace-full` operation that this build does not implement yet; it
    /// returns a clear "not supported" error naming the workspace's backend.
    pub async fn not_yet(
        &self,
        workspace_id: impl Into<String>,
        operation: &'static str,
    ) -> Result<serde_json::Value> {
        let rt = self.runtime.clone();
        let id = workspace_id.into();
        blocking(move || rt.not_yet(&id, operation)).await
    }
}

/// Every tool of the contract as one typed call.
impl Pyro {
    /// Run one tool call: `call` holds the tool's parsed parameters, the answer is the
    /// tool's typed result (what MCP's `structuredContent` and the CLI's `--json` show).
    /// This is what `pyro mcp serve` runs; the `match` is exhaustive, so a tool of the
    /// contract without an SDK method here does not compile, and each arm's
    /// [`ToolOutput`] variant fixes the result type its `outputSchema` promises.
    ///
    /// ```no_run
    /// use pyro::{Pyro, ToolCall, ToolOutput};
    /// use pyro::params::NoParams;
    ///
    /// # async fn demo(pyro: Pyro) -> Result<(), pyro::PyroError> {
    /// let ToolOutput::WorkspaceList(list) = pyro.call(ToolCall::WorkspaceList(NoParams {})).await?
    /// else { unreachable!("workspace_list answers with its list") };
    /// println!("{} workspaces", list.count);
    /// # Ok(()) }
    /// ```
    pub async fn call(&self, call: ToolCall) -> Result<ToolOutput> {
        use ToolCall as C;
        use ToolOutput as O;
        Ok(match call {
            C::VmRun(p) => O::VmRun(self.vm_run(p).await?),
            C::VmListEnvironments(NoParams {}) => {
                O::VmListEnvironments(EnvironmentList { result: self.env_list().await? })
            }
            C::VmCreate(p) => O::VmCreate(self.vm_create(p).await?),
            C::VmStart(p) => O::VmStart(self.vm_start(p.vm_id).await?),
            C::VmExec(p) => O::VmExec(self.vm_exec(p).await?),
            C::VmStop(p) => O::VmStop(self.vm_stop(p.vm_id).await?),
            C::VmDelete(p) => O::VmDelete(self.vm_delete(p.vm_id).await?),
            C::VmStatus(p) => O::VmStatus(self.vm_status(p.vm_id).await?),
            C::VmNetworkInfo(p) => O::VmNetworkInfo(self.vm_network_info(p.vm_id).await?),
            C::VmReapExpired(NoParams {}) => O::VmReapExpired(self.vm_reap_expired().await?),
            C::WorkspaceCreate(p) => O::WorkspaceCreate(self.workspace_create(p).await?),
            C::WorkspaceList(NoParams {}) => O::WorkspaceList(self.workspace_list().await?),
            C::WorkspaceUpdate(p) => O::WorkspaceUpdate(self.workspace_update(p).await?),
            C::WorkspaceExec(p) => O::WorkspaceExec(self.workspace_exec(p).await?),
            C::WorkspaceSyncPush(p) => O::WorkspaceSyncPush(self.workspace_sync_push(p).await?),
            C::WorkspaceStatus(p) => {
                O::WorkspaceStatus(self.workspace_status(p.workspace_id).await?)
            }
            C::WorkspaceStop(p) => O::WorkspaceStop(self.workspace_stop(p.workspace_id).await?),
            C::WorkspaceStart(p) => O::WorkspaceStart(self.workspace_start(p.workspace_id).await?),
            C::WorkspaceLogs(p) => O::WorkspaceLogs(self.workspace_logs(p.workspace_id).await?),
            C::WorkspaceExport(p) => O::WorkspaceExport(self.workspace_export(p).await?),
            C::WorkspaceDiff(p) => O::WorkspaceDiff(self.workspace_diff(p.workspace_id).await?),
            C::WorkspaceSummary(p) => {
                O::WorkspaceSummary(self.summarize_workspace(p.workspace_id).await?)
            }
            C::WorkspaceFileList(p) => O::WorkspaceFileList(self.workspace_file_list(p).await?),
            C::WorkspaceFileRead(p) => O::WorkspaceFileRead(self.workspace_file_read(p).await?),
            C::WorkspaceFileWrite(p) => O::WorkspaceFileWrite(self.workspace_file_write(p).await?),
            C::WorkspacePatchApply(p) => {
                O::WorkspacePatchApply(self.workspace_patch_apply(p).await?)
            }
            C::WorkspaceDiskExport(p) => {
                O::WorkspaceDiskExport(self.workspace_disk_export(p).await?)
            }
            C::WorkspaceDiskList(p) => O::WorkspaceDiskList(self.workspace_disk_list(p).await?),
            C::WorkspaceDiskRead(p) => O::WorkspaceDiskRead(self.workspace_disk_read(p).await?),
            C::SnapshotCreate(p) => O::SnapshotCreate(self.snapshot_create(p).await?),
            C::SnapshotList(p) => O::SnapshotList(self.snapshot_list(p.workspace_id).await?),
            C::SnapshotDelete(p) => O::SnapshotDelete(self.snapshot_delete(p).await?),
            C::WorkspaceReset(p) => O::WorkspaceReset(self.workspace_reset(p).await?),
            C::ShellOpen(p) => O::ShellOpen(self.shell_open(p).await?),
            C::ShellRead(p) => O::ShellRead(self.shell_read(p).await?),
            C::ShellWrite(p) => O::ShellWrite(self.shell_write(p).await?),
            C::ShellSignal(p) => O::ShellSignal(self.shell_signal(p).await?),
            C::ShellClose(p) => O::ShellClose(self.shell_close(p).await?),
            C::ServiceStart(p) => O::ServiceStart(self.service_start(p).await?),
            C::ServiceList(p) => O::ServiceList(self.service_list(p.workspace_id).await?),
            C::ServiceStatus(p) => O::ServiceStatus(self.service_status(p).await?),
            C::ServiceLogs(p) => O::ServiceLogs(self.service_logs(p).await?),
            C::ServiceStop(p) => O::ServiceStop(self.service_stop(p).await?),
            C::WorkspaceDelete(p) => {
                O::WorkspaceDelete(self.workspace_delete(p.workspace_id).await?)
            }
        })
    }
}

/// Interactive shells (`workspace-full`): PTYs in the guest that outlive the calling
/// process. Signal names are case-insensitive.
impl Pyro {
    by_params! {
        /// Open an interactive shell (a PTY running bash) in a started guest workspace.
        shell_open(ShellOpenParams) -> Shell;
        /// Read a shell's output from a cursor (optionally plain text, or after the
        /// output has been idle for `wait_for_idle_ms`).
        shell_read(ShellReadParams) -> ShellReadResult;
        /// Type input into a shell.
        shell_write(ShellWriteParams) -> ShellWriteResult;
        /// Send HUP, INT, TERM or KILL to a shell's foreground job.
        shell_signal(ShellSignalParams) -> ShellSignalResult;
        /// Close a shell and forget it.
        shell_close(ShellIdParams) -> ShellCloseResult;
        /// Change a shell's terminal size (an SDK extension of the 3.x contract).
        shell_resize(ShellResizeParams) -> Shell;
    }
}

/// Stopped-workspace disk tools (`workspace-full`): the root disk read offline,
/// without booting the guest.
impl Pyro {
    by_params! {
        /// Copy a stopped workspace's root disk to a new host file (raw ext4 image).
        workspace_disk_export(WorkspaceDiskExportParams) -> DiskExportResult;
        /// List a path of a stopped workspace's disk (relative paths are under
        /// /workspace; absolute paths may name anything in the guest).
        workspace_disk_list(WorkspaceFileListParams) -> DiskListResult;
        /// Read a regular file from a stopped workspace's disk.
        workspace_disk_read(WorkspaceFileReadParams) -> DiskReadResult;
    }
}

/// Services (`workspace-full`): named long-running processes in the guest that outlive
/// the calling process, with readiness probes and ports published on 127.0.0.1.
///
/// ```no_run
/// use pyro::params::{PublishedPortInput, ServiceStartParams};
/// use pyro::results::{ServiceReadiness, ServiceState};
///
/// # async fn demo(pyro: pyro::Pyro, workspace_id: String) -> Result<(), pyro::PyroError> {
/// let mut start = ServiceStartParams::new(&workspace_id, "web", "python3 -m http.server 8080")
///     .with_readiness(ServiceReadiness::Http { url: "http://127.0.0.1:8080/".into() });
/// start.published_ports = Some(vec![PublishedPortInput { guest_port: 8080, host_port: None }]);
/// let web = pyro.service_start(start).await?;
/// assert_eq!(web.state, ServiceState::Running);
/// println!("http://127.0.0.1:{}/", web.published_ports[0].host_port);
/// # Ok(()) }
/// ```
impl Pyro {
    by_params! {
        /// Start a service and wait until it is ready (a `failed` service when it exits
        /// first or times out; not an error).
        service_start(ServiceStartParams) -> Service;
        /// Show one service.
        service_status(ServiceIdParams) -> Service;
        /// A service's stdout and stderr (last `tail_lines` lines, or all).
        service_logs(ServiceLogsParams) -> ServiceLogsResult;
        /// Stop a service and its whole process group.
        service_stop(ServiceIdParams) -> Service;
    }

    by_id! {
        /// List a workspace's services.
        service_list -> ServiceList;
    }
}

/// Build an MCP server (a [`crate::Profile`], a [`crate::Mode`] or [`ServerOptions`]; the default is
/// `workspace-core`) with a runtime configured from the environment.
pub fn create_server(options: impl Into<ServerOptions>) -> PyroMcpServer {
    Pyro::from_env().create_server(options)
}

#[cfg(test)]
mod tests {
    /// Every row of the contract's tool table names an SDK method of [`super::Pyro`]
    /// and [`super::Pyro::call`] calls it (methods with `impl Into` arguments cannot be
    /// named as values, so the check reads this file's definitions: `pub async fn NAME(`
    /// or a `by_params!`/`by_id!` entry).
    #[test]
    fn every_tool_has_an_sdk_method() {
        let source = include_str!("sdk.rs");
        for t in pyro_contract::TOOLS {
            let m = t.sdk_method;
            let defined = source.contains(&format!("pub async fn {m}("))
                || source.contains(&format!("\n        {m}("))
                || source.contains(&format!("\n        {m} ->"));
            assert!(defined, "{}: the SDK has no method {m}", t.name);
            let called = source.contains(&format!("self.{m}("));
            assert!(called, "{}: Pyro::call does not call {m}", t.name);
        }
    }
}
