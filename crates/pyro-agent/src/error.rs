//! The error type of sandbox operations and its mapping to protocol error kinds.

use crate::archive::ArchiveError;
use pyro_protocol::ErrorKind;
use std::io;

/// Why a sandbox request failed. Messages name guest paths (never host paths, except
/// inside wrapped I/O and archive errors) and are sent to the host verbatim.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// The path does not exist.
    #[error("workspace path does not exist: {0}")]
    NotFound(String),
    /// The path is not absolute.
    #[error("workspace path must be absolute: {0}")]
    RelativePath(String),
    /// The path lies outside `/workspace`.
    #[error("workspace path must stay inside /workspace: {0}")]
    OutsideWorkspace(String),
    /// The path has a `..` component.
    #[error("workspace path must not contain '..': {0}")]
    ParentComponent(String),
    /// The path has a NUL byte.
    #[error("workspace path must not contain NUL bytes: {0:?}")]
    NulByte(String),
    /// An intermediate component of the path is a symlink.
    #[error("path escapes /workspace through symlink: {0}")]
    SymlinkEscape(String),
    /// The final component is a symlink, which read, write, import and cwd refuse to follow.
    #[error("workspace path is a symlink, which is not followed: {0}")]
    FinalSymlink(String),
    /// An intermediate component exists but is not a directory.
    #[error("workspace path component is not a directory: {0}")]
    NotADirectory(String),
    /// Read of something other than a regular file.
    #[error("workspace file read only supports regular files: {0}")]
    ReadNotRegular(String),
    /// Write over something other than a regular file.
    #[error("workspace file write only replaces regular files: {0}")]
    WriteNotRegular(String),
    /// Export of something other than a file, directory or symlink.
    #[error("workspace export only supports files, directories and symlinks: {0}")]
    ExportUnsupportedType(String),
    /// Import into something other than a directory.
    #[error("archive import destination is not a directory: {0}")]
    ImportNotDirectory(String),
    /// Delete of `/workspace` itself.
    #[error("refusing to delete /workspace itself")]
    DeleteRoot,
    /// Exec working directory is not a directory.
    #[error("exec cwd is not a directory: {0}")]
    CwdNotDirectory(String),
    /// No streamed command has this id.
    #[error(
        "no streamed command with exec_id {0} (it never started, or it ended and was read to the end)"
    )]
    UnknownExec(String),
    /// Too many streamed commands are kept at once.
    #[error("{0} streamed commands are already kept; read one to its end or kill one first")]
    TooManyExecs(usize),
    /// A base64 payload did not decode.
    #[error("invalid base64 in {field}: {source}")]
    Base64 {
        /// Field that held the payload.
        field: &'static str,
        /// Decoder error.
        source: base64::DecodeError,
    },
    /// A request field is out of range.
    #[error("{0}")]
    Invalid(String),
    /// An answer or walk would pass a limit the host set.
    #[error("{0}")]
    TooLarge(String),
    /// The request is not supported by this sandbox mode or agent.
    #[error("{0}")]
    Unsupported(String),
    /// The shell could not be started.
    #[error("failed to start /bin/sh: {0}")]
    Spawn(io::Error),
    /// Any other I/O failure on a guest path.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (e.g. `read`).
        op: &'static str,
        /// Guest path.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// An archive was rejected or could not be produced or unpacked.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

impl SandboxError {
    /// Protocol error category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SandboxError::NotFound(_) | SandboxError::UnknownExec(_) => ErrorKind::NotFound,
            SandboxError::TooManyExecs(_) => ErrorKind::TooLarge,
            SandboxError::OutsideWorkspace(_)
            | SandboxError::ParentComponent(_)
            | SandboxError::SymlinkEscape(_)
            | SandboxError::FinalSymlink(_) => ErrorKind::PathEscape,
            SandboxError::NotADirectory(_)
            | SandboxError::ReadNotRegular(_)
            | SandboxError::WriteNotRegular(_)
            | SandboxError::ExportUnsupportedType(_)
            | SandboxError::ImportNotDirectory(_)
            | SandboxError::CwdNotDirectory(_) => ErrorKind::WrongType,
            SandboxError::RelativePath(_)
            | SandboxError::NulByte(_)
            | SandboxError::DeleteRoot
            | SandboxError::Base64 { .. }
            | SandboxError::Invalid(_) => ErrorKind::Invalid,
            SandboxError::Unsupported(_) => ErrorKind::Unsupported,
            SandboxError::TooLarge(_) => ErrorKind::TooLarge,
            SandboxError::Spawn(_) | SandboxError::Io { .. } => ErrorKind::Io,
            SandboxError::Archive(err) => err.kind(),
        }
    }

    pub(crate) fn io(op: &'static str, path: &str, source: io::Error) -> Self {
        SandboxError::Io { op, path: path.to_owned(), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_kinds_match_the_protocol_wording() {
        let err = SandboxError::NotFound("/workspace/x".into());
        assert_eq!(err.to_string(), "workspace path does not exist: /workspace/x");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let err = SandboxError::SymlinkEscape("/workspace/link".into());
        assert_eq!(err.to_string(), "path escapes /workspace through symlink: /workspace/link");
        assert_eq!(err.kind(), ErrorKind::PathEscape);
        assert_eq!(SandboxError::ReadNotRegular("/workspace".into()).kind(), ErrorKind::WrongType);
        assert_eq!(SandboxError::DeleteRoot.kind(), ErrorKind::Invalid);
    }
}
