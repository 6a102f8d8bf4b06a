//! The runtime's error type: one enum, messages a model or a person can act on.

use crate::backend::BackendError;
use std::path::PathBuf;

/// Everything that can go wrong in a pyro operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PyroError {
    /// An argument is invalid; the message says which and why.
    #[error("{0}")]
    InvalidArgument(String),
    /// No workspace with this id.
    #[error("workspace '{0}' does not exist; run `pyro workspace list` to see the workspaces")]
    UnknownWorkspace(String),
    /// No one-shot VM with this id (one-shot VMs live only in the process that created them).
    #[error("vm '{0}' does not exist")]
    UnknownVm(String),
    /// No snapshot with this name.
    #[error("snapshot '{name}' does not exist in workspace '{workspace_id}'")]
    UnknownSnapshot {
        /// Workspace.
        workspace_id: String,
        /// Snapshot.
        name: String,
    },
    /// No shell with this id in the workspace.
    #[error("shell '{shell_id}' does not exist in workspace '{workspace_id}'")]
    UnknownShell {
        /// Workspace.
        workspace_id: String,
        /// Shell.
        shell_id: String,
    },
    /// No service with this name in the workspace.
    #[error("service '{name}' does not exist in workspace '{workspace_id}'")]
    UnknownService {
        /// Workspace.
        workspace_id: String,
        /// Service.
        name: String,
    },
    /// The workspace passed its time to live and was deleted.
    #[error("workspace '{0}' expired and was automatically deleted")]
    WorkspaceExpired(String),
    /// The VM passed its time to live and was deleted.
    #[error("vm '{0}' expired and was automatically deleted")]
    VmExpired(String),
    /// The operation needs another state.
    #[error("{0}")]
    WrongState(String),
    /// No guest backend and host execution not allowed.
    #[error(
        "guest execution is unavailable: {reason}. Run `pyro doctor` to see how to install the guest \
         backend, or opt into host execution with allow_host_compat=true (CLI: --allow-host-compat)"
    )]
    GuestUnavailable {
        /// Why there is no guest.
        reason: String,
    },
    /// The backend running this workspace cannot do this.
    #[error("{operation}: not supported by backend {backend}{hint}")]
    Unsupported {
        /// Backend name.
        backend: String,
        /// Operation.
        operation: String,
        /// Extra hint, starting with "; " when present.
        hint: String,
    },
    /// An error inside the sandbox (path escape, missing file, ...), from the agent.
    #[error("{0}")]
    Sandbox(String),
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// Host I/O failed.
    #[error("{context} ({path}): {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Path involved.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The server's project source could not be read.
    #[error(transparent)]
    ProjectSource(#[from] crate::project::ProjectSourceError),
    /// Something pyro wrote itself could not be read back.
    #[error("corrupt state in {path}: {message}")]
    CorruptState {
        /// File.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

impl PyroError {
    /// Build an [`PyroError::Io`].
    pub fn io(
        context: impl Into<String>,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        PyroError::Io { context: context.into(), path: path.into(), source }
    }

    /// Build an [`PyroError::InvalidArgument`].
    pub fn invalid(message: impl Into<String>) -> Self {
        PyroError::InvalidArgument(message.into())
    }

    /// A short machine-readable category for JSON error output.
    pub fn kind(&self) -> &'static str {
        match self {
            PyroError::InvalidArgument(_) => "invalid_argument",
            PyroError::UnknownWorkspace(_)
            | PyroError::UnknownVm(_)
            | PyroError::UnknownSnapshot { .. }
            | PyroError::UnknownShell { .. }
            | PyroError::UnknownService { .. } => "not_found",
            PyroError::WorkspaceExpired(_) | PyroError::VmExpired(_) => "expired",
            PyroError::WrongState(_) => "wrong_state",
            PyroError::GuestUnavailable { .. } => "guest_unavailable",
            PyroError::Unsupported { .. } => "unsupported",
            PyroError::Sandbox(_) => "sandbox_error",
            PyroError::Backend(_) => "backend_error",
            PyroError::Io { .. } => "io_error",
            PyroError::CorruptState { .. } => "corrupt_state",
            PyroError::ProjectSource(_) => "project_source",
        }
    }
}

/// Result alias.
pub type Result<T, E = PyroError> = std::result::Result<T, E>;
