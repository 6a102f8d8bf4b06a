//! The runtime's error type: one enum, messages a model or a person can act on.

use crate::backend::BackendError;
use pyro_contract::{ErrorKind, ErrorReport, GuestErrorKind};
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
    /// The caller cancelled the call (an MCP `notifications/cancelled`); the message
    /// says what was stopped.
    #[error("{0}")]
    Cancelled(String),
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
    /// This workspace's backend cannot do this (the message says which and why; kind
    /// `unsupported`, like [`PyroError::Unsupported`], with the contract's wording).
    #[error("{0}")]
    Unavailable(String),
    /// An error inside the sandbox that pyro found on the host side (an answer that
    /// does not fit, a failed guest step), without a more precise kind.
    #[error("{0}")]
    Sandbox(String),
    /// The guest agent refused or failed a request (path escape, missing file, ...),
    /// with the agent's own kind.
    #[error("{message}")]
    Guest {
        /// The agent's kind.
        kind: GuestErrorKind,
        /// The agent's message (secrets redacted where the caller knows them).
        message: String,
    },
    /// Another error whose message had a secret in it: the same kind, the redacted text.
    #[error("{message}")]
    Redacted {
        /// The kind of the original error.
        kind: ErrorKind,
        /// The redacted message.
        message: String,
        /// The original error's hint.
        hint: Option<String>,
    },
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

    /// An error the guest agent answered with, keeping the agent's kind.
    pub fn guest(kind: pyro_protocol::ErrorKind, message: impl Into<String>) -> Self {
        PyroError::Guest { kind: guest_kind(kind), message: message.into() }
    }

    /// The category every surface reports ([`ErrorReport::kind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            PyroError::InvalidArgument(_) => ErrorKind::InvalidArgument,
            PyroError::UnknownWorkspace(_)
            | PyroError::UnknownVm(_)
            | PyroError::UnknownSnapshot { .. }
            | PyroError::UnknownShell { .. }
            | PyroError::UnknownService { .. }
            | PyroError::WorkspaceExpired(_)
            | PyroError::VmExpired(_) => ErrorKind::NotFound,
            PyroError::WrongState(_) => ErrorKind::WrongState,
            PyroError::Cancelled(_) => ErrorKind::Cancelled,
            PyroError::GuestUnavailable { .. } => ErrorKind::GuestUnavailable,
            PyroError::Unsupported { .. } | PyroError::Unavailable(_) => ErrorKind::Unsupported,
            PyroError::Sandbox(_) => ErrorKind::GuestError,
            PyroError::Guest { kind, .. } => kind.report_kind(),
            PyroError::Redacted { kind, .. } => *kind,
            PyroError::Backend(e) => backend_kind(e),
            PyroError::ProjectSource(_) => ErrorKind::InvalidArgument,
            PyroError::Io { .. } | PyroError::CorruptState { .. } => ErrorKind::Internal,
        }
    }

    /// What to do next, where the message does not say it already.
    pub fn hint(&self) -> Option<String> {
        let hint = match self {
            PyroError::UnknownVm(_) => {
                "one-shot VMs live only in the process that created them; create one with vm_create"
            }
            PyroError::UnknownSnapshot { .. } => {
                "list the snapshots with snapshot_list (CLI: pyro workspace snapshot list)"
            }
            PyroError::UnknownShell { .. } => "open a shell with shell_open",
            PyroError::UnknownService { .. } => {
                "list the services with service_list (CLI: pyro workspace service list)"
            }
            PyroError::WorkspaceExpired(_) | PyroError::VmExpired(_) => {
                "create a new one, with a larger ttl_seconds to keep it longer"
            }
            PyroError::WrongState(_) => {
                "check the state with workspace_status (CLI: pyro workspace status)"
            }
            PyroError::Cancelled(_) => {
                "nothing of the cancelled call was kept (a command is killed and leaves no history \
                 entry; a create removes its half-made workspace); run it again if needed"
            }
            PyroError::Guest { kind, .. } => return kind.hint().map(str::to_owned),
            PyroError::Redacted { hint, .. } => return hint.clone(),
            PyroError::Backend(BackendError::Timeout(_)) => {
                "retry; if it keeps timing out, stop and start the workspace (or reset it)"
            }
            PyroError::Backend(BackendError::GuestDied(_) | BackendError::NotRunning) => {
                "start the workspace again with workspace_start, or rebuild it with workspace_reset"
            }
            PyroError::Backend(BackendError::Boot(_)) => "run `pyro doctor` to check the host",
            PyroError::Io { .. } | PyroError::CorruptState { .. } => {
                "run `pyro doctor`, and `pyro gc` to remove what a crashed pyro left behind"
            }
            _ => return None,
        };
        Some(hint.to_owned())
    }

    /// The error as every surface reports it: kind, message, hint and (for errors of the
    /// guest agent) the agent's kind.
    pub fn report(&self) -> ErrorReport {
        ErrorReport {
            kind: self.kind(),
            message: self.to_string(),
            hint: self.hint(),
            guest_kind: match self {
                PyroError::Guest { kind, .. } => Some(*kind),
                _ => None,
            },
        }
    }
}

/// The contract's name for an agent error kind.
fn guest_kind(kind: pyro_protocol::ErrorKind) -> GuestErrorKind {
    use pyro_protocol::ErrorKind as Agent;
    match kind {
        Agent::NotFound => GuestErrorKind::NotFound,
        Agent::PathEscape => GuestErrorKind::PathEscape,
        Agent::WrongType => GuestErrorKind::WrongType,
        Agent::TooLarge => GuestErrorKind::TooLarge,
        Agent::Invalid => GuestErrorKind::Invalid,
        Agent::Unsupported => GuestErrorKind::Unsupported,
        // `Io` and kinds added to the protocol after this pyro was built.
        _ => GuestErrorKind::Io,
    }
}

fn backend_kind(e: &BackendError) -> ErrorKind {
    match e {
        BackendError::MissingAsset { .. } | BackendError::Boot(_) | BackendError::GuestDied(_) => {
            ErrorKind::GuestUnavailable
        }
        BackendError::NoSpace { .. } => ErrorKind::LimitExceeded,
        BackendError::NotRunning => ErrorKind::WrongState,
        BackendError::Timeout(_) => ErrorKind::Timeout,
        BackendError::Protocol(_) | BackendError::InvalidAnswer(_) => ErrorKind::GuestError,
        BackendError::Unsupported { .. } => ErrorKind::Unsupported,
        BackendError::Io { .. } => ErrorKind::Internal,
    }
}

/// Result alias.
pub type Result<T, E = PyroError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn each_error_reports_its_kind_and_what_to_do_next() {
        let cases = [
            (PyroError::invalid("vcpu_count must be between 1 and 8"), ErrorKind::InvalidArgument),
            (PyroError::UnknownWorkspace("w".into()), ErrorKind::NotFound),
            (PyroError::WorkspaceExpired("w".into()), ErrorKind::NotFound),
            (PyroError::WrongState("workspace 'w' must be started".into()), ErrorKind::WrongState),
            (PyroError::GuestUnavailable { reason: "no kvm".into() }, ErrorKind::GuestUnavailable),
            (PyroError::Unavailable("shells need a guest".into()), ErrorKind::Unsupported),
            (PyroError::Backend(BackendError::Timeout(Duration::from_secs(3))), ErrorKind::Timeout),
            (
                PyroError::Backend(BackendError::GuestDied("eof".into())),
                ErrorKind::GuestUnavailable,
            ),
            (PyroError::Backend(BackendError::InvalidAnswer("x".into())), ErrorKind::GuestError),
            (
                PyroError::Backend(BackendError::NoSpace {
                    path: "/s".into(),
                    free_mib: 1,
                    needed_mib: 2,
                }),
                ErrorKind::LimitExceeded,
            ),
            (
                PyroError::io("could not write", "/s", std::io::Error::other("disk")),
                ErrorKind::Internal,
            ),
        ];
        for (error, kind) in cases {
            let report = error.report();
            assert_eq!(report.kind, kind, "{error}");
            assert_eq!(report.message, error.to_string());
        }
        // Timeouts, dead guests and missing things say what to do next.
        for error in [
            PyroError::Backend(BackendError::Timeout(Duration::from_secs(3))),
            PyroError::Backend(BackendError::GuestDied("eof".into())),
            PyroError::UnknownService { workspace_id: "w".into(), name: "s".into() },
            PyroError::VmExpired("v".into()),
        ] {
            assert!(error.report().hint.is_some(), "{error} has no hint");
        }
    }

    #[test]
    fn guest_errors_keep_the_agent_kind() {
        use pyro_protocol::ErrorKind as Agent;
        let cases = [
            (Agent::NotFound, ErrorKind::NotFound, GuestErrorKind::NotFound),
            (Agent::PathEscape, ErrorKind::InvalidArgument, GuestErrorKind::PathEscape),
            (Agent::WrongType, ErrorKind::InvalidArgument, GuestErrorKind::WrongType),
            (Agent::TooLarge, ErrorKind::LimitExceeded, GuestErrorKind::TooLarge),
            (Agent::Invalid, ErrorKind::InvalidArgument, GuestErrorKind::Invalid),
            (Agent::Unsupported, ErrorKind::Unsupported, GuestErrorKind::Unsupported),
            (Agent::Io, ErrorKind::GuestError, GuestErrorKind::Io),
        ];
        for (agent, kind, guest) in cases {
            let report = PyroError::guest(agent, "the agent's words").report();
            assert_eq!((report.kind, report.guest_kind), (kind, Some(guest)), "{agent:?}");
            assert_eq!(report.message, "the agent's words");
        }
    }
}
