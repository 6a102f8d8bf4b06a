//! The error report every surface gives: `{kind, message, hint}`.
//!
//! - MCP: a failed `tools/call` is `isError: true` with `structuredContent`
//!   `{"error": ErrorReport}` and the message (and hint) as text.
//! - CLI `--json`: `{"ok": false, "error": ErrorReport}` on stdout; human mode prints one
//!   line, `error: <message>` (plus the hint after `; `), on stderr.
//! - SDK: `pyro::PyroError::report()`.
//!
//! `kind` is a closed set a caller (or a model) can branch on; `message` says what went
//! wrong in words; `hint`, when present, says what to do next. An error the guest agent
//! reported keeps the agent's own kind in `guest_kind`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What kind of failure this is. The names are stable public API; new kinds may be
/// added in minor versions (callers should treat an unknown kind like `internal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// An argument is missing, malformed or out of range; fix the call and retry.
    InvalidArgument,
    /// The workspace, VM, snapshot, shell, service, tool or path does not exist (or
    /// expired and was deleted).
    NotFound,
    /// The target exists but is in the wrong state (stopped, running, ...).
    WrongState,
    /// The tool or parameter exists, but not in this server's profile or mode.
    OutOfProfile,
    /// This backend or build cannot do this.
    Unsupported,
    /// No guest can run: assets missing, the guest did not boot, or it died.
    GuestUnavailable,
    /// The guest agent refused or failed the operation.
    GuestError,
    /// The guest did not answer in time.
    Timeout,
    /// A size or space limit was hit (file too large, host disk full).
    LimitExceeded,
    /// pyro itself failed (host I/O, corrupt state, a bug).
    Internal,
    /// The caller cancelled the call (MCP `notifications/cancelled`); what it ran in the
    /// guest was stopped.
    Cancelled,
}

impl ErrorKind {
    /// The stable name (`invalid_argument`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::NotFound => "not_found",
            ErrorKind::WrongState => "wrong_state",
            ErrorKind::OutOfProfile => "out_of_profile",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::GuestUnavailable => "guest_unavailable",
            ErrorKind::GuestError => "guest_error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::LimitExceeded => "limit_exceeded",
            ErrorKind::Internal => "internal",
            ErrorKind::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The kind of error the guest agent answered with, kept as the agent said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuestErrorKind {
    /// The path does not exist.
    NotFound,
    /// The path leaves `/workspace`.
    PathEscape,
    /// Wrong entry type (a directory where a file was expected, ...).
    WrongType,
    /// Over a size limit.
    TooLarge,
    /// Malformed request or archive.
    Invalid,
    /// The agent does not know this operation.
    Unsupported,
    /// Another I/O failure in the guest.
    Io,
}

impl GuestErrorKind {
    /// The report kind a guest error of this kind has.
    pub fn report_kind(self) -> ErrorKind {
        match self {
            GuestErrorKind::NotFound => ErrorKind::NotFound,
            GuestErrorKind::PathEscape | GuestErrorKind::WrongType | GuestErrorKind::Invalid => {
                ErrorKind::InvalidArgument
            }
            GuestErrorKind::TooLarge => ErrorKind::LimitExceeded,
            GuestErrorKind::Unsupported => ErrorKind::Unsupported,
            GuestErrorKind::Io => ErrorKind::GuestError,
        }
    }

    /// What to do next, in general, after a guest error of this kind.
    pub fn hint(self) -> Option<&'static str> {
        match self {
            GuestErrorKind::NotFound => {
                Some("check the path with workspace_file_list (CLI: pyro workspace file list)")
            }
            GuestErrorKind::PathEscape => Some("use a path inside /workspace"),
            GuestErrorKind::WrongType => Some("check the entry's type with workspace_file_list"),
            GuestErrorKind::TooLarge => Some("ask for less (max_bytes) or split the content"),
            GuestErrorKind::Unsupported => {
                Some("the guest agent is older than this pyro; rebuild the environment with `pyro env pull`")
            }
            GuestErrorKind::Invalid | GuestErrorKind::Io => None,
        }
    }
}

/// One error, as every surface reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorReport {
    /// What kind of failure (a closed set).
    pub kind: ErrorKind,
    /// What went wrong.
    pub message: String,
    /// What to do next, when the message does not already say it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The guest agent's own kind, for errors the agent reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_kind: Option<GuestErrorKind>,
}

impl ErrorReport {
    /// A report without hint.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ErrorReport { kind, message: message.into(), hint: None, guest_kind: None }
    }

    /// The same report with a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// One line for people and for the MCP text content: the message, then the hint.
    pub fn line(&self) -> String {
        match &self.hint {
            Some(hint) => format!("{}; {hint}", self.message),
            None => self.message.clone(),
        }
    }

    /// The JSON Schema of the error envelope, `{"error": ErrorReport}`.
    pub fn envelope_schema() -> serde_json::Value {
        let mut value = serde_json::to_value(schemars::schema_for!(ToolError)).unwrap_or_default();
        if let Some(obj) = value.as_object_mut() {
            obj.remove("$schema");
            obj.remove("title");
        }
        value
    }
}

impl fmt::Display for ErrorReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line())
    }
}

/// The error envelope: MCP `structuredContent` of a failed call, and (with `"ok": false`
/// beside it) the CLI's `--json` error output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ToolError {
    /// The error.
    pub error: ErrorReport,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialize_as_their_names() {
        for kind in [ErrorKind::InvalidArgument, ErrorKind::OutOfProfile, ErrorKind::Internal] {
            assert_eq!(serde_json::to_value(kind).expect("json"), kind.name());
        }
        let report = ErrorReport::new(ErrorKind::NotFound, "no such thing").with_hint("list them");
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"kind": "not_found", "message": "no such thing", "hint": "list them"})
        );
        assert_eq!(report.line(), "no such thing; list them");
        let schema = ErrorReport::envelope_schema();
        assert!(schema.to_string().contains("out_of_profile"), "{schema}");
    }
}
