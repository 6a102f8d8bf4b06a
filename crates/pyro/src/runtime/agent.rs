//! Calling the agent of a sandbox and mapping its answers to typed results.

use super::error::{PyroError, Result};
use crate::backend::{AgentChannel, BackendError};
use base64::Engine;
use pyro_protocol::{Request, Response};
use std::time::Duration;

/// Default deadline for quick requests (files, archives).
pub const QUICK: Duration = Duration::from_secs(60);

/// Send `request` and turn an agent error into [`PyroError::Sandbox`].
pub fn call(
    channel: &mut dyn AgentChannel,
    request: Request,
    timeout: Duration,
) -> Result<Response> {
    match channel.call(request, timeout)? {
        Response::Error { message, .. } => Err(PyroError::Sandbox(message)),
        other => Ok(other),
    }
}

/// The answer did not have the expected shape.
pub fn unexpected(what: &str, response: &Response) -> PyroError {
    PyroError::Backend(BackendError::Protocol(format!(
        "unexpected answer to {what}: {}",
        serde_json::to_string(response).unwrap_or_default()
    )))
}

/// How long the host waits for an exec answer: the guest's own timeout plus a margin
/// for the round trip, so a dead guest is noticed but a slow one is not cut short.
pub fn exec_deadline(timeout_seconds: u64) -> Duration {
    Duration::from_secs(timeout_seconds.saturating_add(30))
}

/// Append the timeout notice to a command's stderr when the agent killed it.
pub fn note_timeout(stderr: &mut String, timed_out: bool, timeout_seconds: u64) {
    if !timed_out {
        return;
    }
    if !stderr.is_empty() && !stderr.ends_with('\n') {
        stderr.push('\n');
    }
    stderr.push_str(&format!("command timed out after {timeout_seconds}s"));
}

/// Encode bytes for the wire.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decode bytes from the wire.
pub fn unb64(text: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).map_err(|e| {
        PyroError::Backend(BackendError::Protocol(format!("bad base64 from agent: {e}")))
    })
}

/// Bytes as text, invalid UTF-8 replaced.
pub fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
