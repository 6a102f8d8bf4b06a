//! Calling the agent of a sandbox and mapping its answers to typed results.

use super::error::{PyroError, Result};
use crate::backend::{AgentChannel, BackendError};
use base64::Engine;
use pyro_protocol::{Request, Response};
use std::time::Duration;

/// Default deadline for quick requests (files, archives).
pub const QUICK: Duration = Duration::from_secs(60);

/// An agent channel that remembers, in the workspace's `agent-unhealthy` file, that
/// the guest sent an invalid answer: `status` then says the agent is unhealthy until the
/// guest is booted again (a fresh agent from the initramfs).
pub struct HealthWatch {
    inner: Box<dyn AgentChannel>,
    marker: std::path::PathBuf,
}

impl HealthWatch {
    /// Watch `inner`, recording failures at `marker`.
    pub fn new(inner: Box<dyn AgentChannel>, marker: std::path::PathBuf) -> Self {
        HealthWatch { inner, marker }
    }
}

impl AgentChannel for HealthWatch {
    fn call(
        &mut self,
        request: Request,
        timeout: Duration,
    ) -> std::result::Result<Response, BackendError> {
        let result = self.inner.call(request, timeout);
        if let Err(e @ BackendError::InvalidAnswer(_)) = &result {
            let reason: String = e.to_string().chars().take(MAX_HEALTH_REASON).collect();
            if let Err(write) = super::state::write_atomic(&self.marker, reason.as_bytes()) {
                tracing::warn!(error = %write, "could not record the unhealthy agent");
            }
        }
        result
    }

    fn supports(&mut self, capability: &str) -> bool {
        self.inner.supports(capability)
    }
}

/// Record at `marker` that the guest sent an invalid answer, when `result` says so (for
/// checks the runtime makes on answers that passed the channel: sizes, listed paths).
pub fn note_health<T>(marker: &std::path::Path, result: Result<T>) -> Result<T> {
    if let Err(PyroError::Backend(e @ BackendError::InvalidAnswer(_))) = &result {
        let reason: String = e.to_string().chars().take(MAX_HEALTH_REASON).collect();
        if let Err(write) = super::state::write_atomic(marker, reason.as_bytes()) {
            tracing::warn!(error = %write, "could not record the unhealthy agent");
        }
    }
    result
}

/// Longest reason kept in the `agent-unhealthy` file.
const MAX_HEALTH_REASON: usize = 400;

/// Why the agent is unhealthy, when it is (read back from the marker, bounded).
pub fn unhealthy_reason(marker: &std::path::Path) -> Option<String> {
    use std::io::Read;
    let file = std::fs::File::open(marker).ok()?;
    let mut text = String::new();
    file.take(4 * MAX_HEALTH_REASON as u64).read_to_string(&mut text).ok()?;
    Some(text)
}

/// Send `request` and turn an agent error into [`PyroError::Sandbox`].
pub fn call(
    channel: &mut dyn AgentChannel,
    request: Request,
    timeout: Duration,
) -> Result<Response> {
    match channel.call(request, timeout)? {
        Response::Error { kind, message } => Err(PyroError::guest(kind, message)),
        other => Ok(other),
    }
}

/// The guest's answer is not valid (wrong shape, forged size, escaping path).
pub fn invalid(detail: impl Into<String>) -> PyroError {
    PyroError::Backend(BackendError::InvalidAnswer(detail.into()))
}

/// The answer did not have the expected shape.
pub fn unexpected(what: &str, response: &Response) -> PyroError {
    let shown: String =
        serde_json::to_string(response).unwrap_or_default().chars().take(200).collect();
    invalid(format!("unexpected answer to {what}: {shown}"))
}

/// Decode a file read's answer, checking every size the guest claims against what was
/// asked: at most `max_bytes` of data, `truncated` exactly when the file is larger, and
/// an untruncated file exactly as long as its data.
pub fn file_data(
    size_bytes: u64,
    data_b64: &str,
    truncated: bool,
    max_bytes: u64,
) -> Result<Vec<u8>> {
    if data_b64.len() > crate::backend::limits::base64_len(max_bytes) {
        return Err(invalid(format!(
            "a file read of {} base64 characters for at most {max_bytes} bytes",
            data_b64.len()
        )));
    }
    let data = unb64(data_b64)?;
    let len = data.len() as u64;
    let consistent = len <= max_bytes
        && if truncated { size_bytes > len && len == max_bytes } else { size_bytes == len };
    if !consistent {
        return Err(invalid(format!(
            "a file read that claims size {size_bytes} (truncated: {truncated}) with {len} bytes \
             of data for at most {max_bytes}"
        )));
    }
    Ok(data)
}

/// Check a listing of `root` from the guest: every entry is `root` itself or lies below
/// it, written as a plain absolute path (no `.`, `..`, empty components or NUL), so a
/// caller that joins a listed path to anything cannot be led outside.
pub fn check_listing(root: &str, entries: &[pyro_protocol::FileEntry]) -> Result<()> {
    let prefix = format!("{}/", root.trim_end_matches('/'));
    for entry in entries {
        let path = entry.path.as_str();
        let plain = path.starts_with('/')
            && !path.contains('\0')
            && path[1..].split('/').all(|c| !c.is_empty() && c != "." && c != "..");
        if !plain || (path != root && !path.starts_with(&prefix)) {
            let shown: String = path.chars().take(200).collect();
            return Err(invalid(format!("a listing of {root} names {shown:?}, outside it")));
        }
    }
    Ok(())
}

/// Decode one captured exec output, at most `max_bytes` long.
pub fn exec_output(b64: &str, max_bytes: u64) -> Result<Vec<u8>> {
    if b64.len() > crate::backend::limits::base64_len(max_bytes) {
        return Err(invalid(format!("an exec output longer than its cap of {max_bytes} bytes")));
    }
    unb64(b64)
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
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| invalid(format!("bad base64: {e}")))
}

/// Bytes as text, invalid UTF-8 replaced.
pub fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_file_sizes_are_refused() {
        let ok = |size, data: &[u8], truncated, max| file_data(size, &b64(data), truncated, max);
        assert_eq!(ok(3, b"abc", false, 10).expect("exact"), b"abc");
        assert_eq!(ok(99, b"ab", true, 2).expect("cut"), b"ab");
        for (size, data, truncated, max) in [
            (3u64, &b"abcd"[..], false, 10u64), // size lies
            (4, b"abcd", false, 3),             // more data than asked
            (2, b"ab", true, 2),                // truncated but not larger
            (9, b"a", true, 2),                 // truncated short of max
        ] {
            let err = ok(size, data, truncated, max).expect_err("forged");
            assert!(err.to_string().contains("invalid answer"), "{err}");
        }
        assert!(file_data(1, "!!!!", false, 10).is_err());
        let entry = |path: &str| pyro_protocol::FileEntry {
            path: path.into(),
            artifact_type: pyro_protocol::ArtifactType::File,
            size_bytes: 0,
            link_target: None,
        };
        let listed = |paths: &[&str]| {
            check_listing("/workspace/src", &paths.iter().map(|p| entry(p)).collect::<Vec<_>>())
        };
        listed(&["/workspace/src", "/workspace/src/a/b.rs"]).expect("inside");
        for bad in [
            "/workspace/src/../../etc/passwd",
            "/etc/passwd",
            "/workspace/srcx",
            "rel",
            "/workspace/src//a",
        ] {
            assert!(listed(&[bad]).is_err(), "{bad}");
        }
        assert!(exec_output(&b64(&[0u8; 10]), 9).is_err());
        assert_eq!(exec_output(&b64(b"hi"), 2).expect("fits"), b"hi");
    }
}
