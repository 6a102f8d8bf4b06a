//! Input validation shared by every surface: limits, names and guest paths.

use super::error::{PyroError, Result};
use std::collections::BTreeMap;

/// Largest file read, write or patch text (bytes).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Largest captured stdout or stderr of one command (bytes, each).
pub const MAX_OUTPUT_BYTES: u64 = 1024 * 1024;

/// Check vCPU, memory and TTL ranges.
pub fn sizing(vcpu_count: u32, mem_mib: u32, ttl_seconds: u64) -> Result<()> {
    if !(1..=8).contains(&vcpu_count) {
        return Err(PyroError::invalid("vcpu_count must be between 1 and 8"));
    }
    if !(256..=32768).contains(&mem_mib) {
        return Err(PyroError::invalid("mem_mib must be between 256 and 32768"));
    }
    if !(60..=3600).contains(&ttl_seconds) {
        return Err(PyroError::invalid("ttl_seconds must be between 60 and 3600"));
    }
    Ok(())
}

/// Check a command timeout.
pub fn timeout(timeout_seconds: u64) -> Result<()> {
    if timeout_seconds == 0 {
        return Err(PyroError::invalid("timeout_seconds must be positive"));
    }
    if timeout_seconds > 86_400 {
        return Err(PyroError::invalid("timeout_seconds must be at most 86400 (one day)"));
    }
    Ok(())
}

/// Check a command string.
pub fn command(command: &str) -> Result<()> {
    if command.trim().is_empty() {
        return Err(PyroError::invalid("command must not be empty"));
    }
    Ok(())
}

/// Check `max_bytes` of a read.
pub fn max_bytes(max_bytes: u64) -> Result<()> {
    if max_bytes == 0 {
        return Err(PyroError::invalid("max_bytes must be positive"));
    }
    if max_bytes > MAX_FILE_BYTES {
        return Err(PyroError::invalid(format!(
            "max_bytes must be at most {MAX_FILE_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Check a text payload size.
pub fn payload(what: &str, text: &str) -> Result<()> {
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(PyroError::invalid(format!(
            "{what} is {} bytes; the limit is {MAX_FILE_BYTES} bytes (1 MiB)",
            text.len()
        )));
    }
    Ok(())
}

/// Normalise and check a workspace name.
pub fn workspace_name(name: &str) -> Result<String> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(PyroError::invalid("workspace name must not be empty"));
    }
    if trimmed.chars().count() > 120 {
        return Err(PyroError::invalid("workspace name must be at most 120 characters"));
    }
    Ok(trimmed.to_string())
}

fn is_label_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Check labels.
pub fn labels(labels: &BTreeMap<String, String>) -> Result<()> {
    for (key, value) in labels {
        if !is_label_key(key) {
            return Err(PyroError::invalid(format!(
                "label key '{key}' must match [A-Za-z0-9][A-Za-z0-9._-]{{0,63}}"
            )));
        }
        if value.trim().is_empty() || value.chars().count() > 120 || value.contains(['\r', '\n']) {
            return Err(PyroError::invalid(format!(
                "label '{key}' must have a non-empty value of at most 120 characters without line breaks"
            )));
        }
    }
    Ok(())
}

/// Check a snapshot name (also used for services).
pub fn object_name(what: &str, name: &str) -> Result<()> {
    if !is_label_key(name) {
        return Err(PyroError::invalid(format!(
            "{what} '{name}' must match [A-Za-z0-9][A-Za-z0-9._-]{{0,63}}"
        )));
    }
    Ok(())
}

/// Normalise a path the caller gave for the workspace: relative paths are under
/// `/workspace`; `..` components, paths outside `/workspace` and NUL bytes are rejected.
/// `/workspace` itself is allowed when `allow_root` is set.
pub fn workspace_path(path: &str, allow_root: bool) -> Result<String> {
    let escape =
        || PyroError::invalid(format!("workspace path must stay inside /workspace: {path}"));
    if path.contains('\0') {
        return Err(escape());
    }
    let trimmed = path.trim();
    if trimmed.is_empty() {
        return Err(PyroError::invalid("workspace path must not be empty"));
    }
    let rel = if let Some(rest) = trimmed.strip_prefix('/') {
        match rest.strip_prefix("workspace") {
            Some("") => "",
            Some(r) if r.starts_with('/') => r,
            _ => return Err(escape()),
        }
    } else {
        trimmed
    };
    let mut parts = Vec::new();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(escape()),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        if allow_root {
            return Ok("/workspace".into());
        }
        return Err(PyroError::invalid(format!(
            "path must name something inside /workspace: {path}"
        )));
    }
    Ok(format!("/workspace/{}", parts.join("/")))
}

/// Check a path the guest named relative to `/workspace` (a tree diff entry): not
/// empty, `/`-separated, no empty, `.` or `..` components, no NUL byte, no leading or
/// trailing `/`. Unlike [`workspace_path`] nothing is trimmed or normalised: a path that
/// is not already in normal form is refused.
pub fn tree_relative_path(path: &str) -> Result<()> {
    let bad = |why: &str| PyroError::invalid(format!("{why}: {path:?}"));
    if path.contains('\0') {
        return Err(bad("NUL byte in a workspace path"));
    }
    if path.split('/').any(|part| matches!(part, "" | "." | "..")) {
        return Err(bad("workspace path not relative and normalised inside /workspace"));
    }
    // Belt and braces: the same path as a guest path stays inside /workspace.
    workspace_path(&format!("/workspace/{path}"), false)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_paths_are_normalised_and_escapes_rejected() {
        assert_eq!(workspace_path("a/b.txt", false).expect("ok"), "/workspace/a/b.txt");
        assert_eq!(workspace_path("/workspace/./a//b", false).expect("ok"), "/workspace/a/b");
        assert_eq!(workspace_path("/workspace", true).expect("ok"), "/workspace");
        assert!(workspace_path("/workspace", false).is_err());
        for bad in ["../etc/passwd", "/etc/passwd", "/workspacex/a", "a/../../b", "/", "a\0b"] {
            let err = workspace_path(bad, true).expect_err(bad).to_string();
            assert!(err.contains("must stay inside /workspace"), "{bad}: {err}");
        }
    }

    #[test]
    fn tree_relative_paths_must_be_normal_and_inside() {
        for good in ["a", "a/b c", "dir/file.txt ", " lead", "\u{fffd}x"] {
            assert!(tree_relative_path(good).is_ok(), "{good:?}");
        }
        for bad in ["", "/etc/passwd", "a/../../b", "..", "a//b", "a/", "./a", "a/.", "a\0b"] {
            assert!(tree_relative_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn limits_reject_out_of_range_values() {
        assert!(sizing(1, 1024, 600).is_ok());
        assert!(sizing(0, 1024, 600).is_err());
        assert!(sizing(1, 128, 600).is_err());
        assert!(sizing(1, 1024, 10).is_err());
        assert!(max_bytes(0).is_err());
        assert!(max_bytes(MAX_FILE_BYTES + 1).is_err());
        assert!(payload("text", &"x".repeat(MAX_FILE_BYTES as usize + 1)).is_err());
        let mut l = BTreeMap::new();
        l.insert("ok-key".to_string(), "v".to_string());
        assert!(labels(&l).is_ok());
        l.insert("bad key".to_string(), "v".to_string());
        assert!(labels(&l).is_err());
    }
}
