//! The CLI's error type and its exit codes.

use pyro::PyroError;
use pyro_contract::{ErrorKind, ErrorReport};
use std::io;

/// The exit codes of `pyro`.
///
/// `run` and `workspace exec` pass the guest command's exit code through, in human and
/// `--json` mode alike, so a script can treat `pyro workspace exec ID -- make test` like
/// `make test`. Everything else exits 0, 1 or 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// The command succeeded. Also used when stdout was closed early (a broken pipe,
    /// e.g. `pyro workspace logs ID | head`), which is not an error.
    Success,
    /// A handled error: bad option values, unknown ids, runtime failures, unsupported
    /// features. Human mode prints one line, `error: <message>[; <hint>]`, on stderr;
    /// `--json` mode prints `{"ok": false, "error": {"kind", "message", "hint"}}` on
    /// stdout ([`pyro_contract::ErrorReport`]; `hint` only when there is one).
    Failure,
    /// A usage error reported by the argument parser (unknown flag, bad choice, missing
    /// or conflicting arguments); the usage is printed on stderr.
    Usage,
    /// `run`, `workspace exec` and `demo`: the guest command's exit code (124 when it timed
    /// out). Codes outside 0-255 are reported as 1.
    Guest(i32),
}

impl ExitCode {
    /// The numeric process exit status.
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Success => 0,
            ExitCode::Failure => 1,
            ExitCode::Usage => 2,
            ExitCode::Guest(code) => u8::try_from(code).unwrap_or(1),
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

/// Everything a CLI command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The library refused or failed.
    #[error(transparent)]
    Pyro(#[from] PyroError),
    /// An option value is invalid (found while building the request).
    #[error("{0}")]
    Invalid(String),
    /// The feature exists in the contract but not in this build.
    #[error("{0}")]
    NotImplemented(String),
    /// The MCP server stopped with an error.
    #[error("MCP server failed: {0}")]
    Mcp(io::Error),
    /// Writing the output failed.
    #[error("could not write output: {0}")]
    Output(#[from] io::Error),
}

impl CliError {
    /// Build a [`CliError::Invalid`].
    pub fn invalid(message: impl Into<String>) -> Self {
        CliError::Invalid(message.into())
    }

    /// The machine-readable category in `--json` error output: the library's
    /// [`PyroError::kind`], `invalid_argument` for option values, `unsupported` for
    /// what this build lacks, `internal` for a failed server or output.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CliError::Pyro(e) => e.kind(),
            CliError::Invalid(_) => ErrorKind::InvalidArgument,
            CliError::NotImplemented(_) => ErrorKind::Unsupported,
            CliError::Mcp(_) | CliError::Output(_) => ErrorKind::Internal,
        }
    }

    /// The error report of `--json` mode (and the one human line): the library's
    /// report for its errors, kind and message for the CLI's own.
    pub fn report(&self) -> ErrorReport {
        match self {
            CliError::Pyro(e) => e.report(),
            other => ErrorReport::new(other.kind(), other.to_string()),
        }
    }

    /// Whether this is stdout (or stderr) being closed under us.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_codes_pass_through_and_out_of_range_codes_fail() {
        assert_eq!(ExitCode::Guest(3).code(), 3);
        assert_eq!(ExitCode::Guest(124).code(), 124);
        assert_eq!(ExitCode::Guest(-9).code(), 1);
        assert_eq!(ExitCode::Guest(300).code(), 1);
        assert_eq!(ExitCode::Usage.code(), 2);
    }

    #[test]
    fn kinds_and_broken_pipe() {
        assert_eq!(CliError::invalid("x").kind(), ErrorKind::InvalidArgument);
        let unknown = CliError::Pyro(PyroError::UnknownWorkspace("w".into()));
        assert_eq!(unknown.kind(), ErrorKind::NotFound);
        assert!(unknown.report().message.contains("pyro workspace list"));
        assert!(CliError::Output(io::Error::from(io::ErrorKind::BrokenPipe)).is_broken_pipe());
        assert!(!CliError::Mcp(io::Error::from(io::ErrorKind::BrokenPipe)).is_broken_pipe());
    }
}
