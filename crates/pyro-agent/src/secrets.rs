//! Workspace secrets inside the guest: one file per secret under
//! [`pyro_protocol::SECRETS_DIR`] (`/run/pyro-secrets`, on the `/run` tmpfs, so a
//! secret never reaches the workspace disk).
//!
//! [`install`] replaces the whole directory: it is wiped and rewritten, so a secret
//! that is no longer given disappears. The directory is mode 0700, each file 0400,
//! both owned by the agent's user (root). Error messages name secrets, never values.

use crate::error::SandboxError;
use base64::Engine as _;
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Whether `name` is a valid secret name: `[A-Za-z_][A-Za-z0-9_]{0,63}`.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && (bytes[0].is_ascii_alphabetic() || bytes[0] == b'_')
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

fn invalid(name: &str, message: &str) -> SandboxError {
    SandboxError::Io {
        op: "install secret",
        path: name.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidInput, message.to_owned()),
    }
}

/// Wipe `dir` and write every secret (`name` -> base64 value) as `dir/<name>`, mode
/// 0400. Everything is checked before anything is written. Returns the number of
/// secrets installed.
pub fn install(dir: &Path, secrets: &BTreeMap<String, String>) -> Result<u64, SandboxError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut decoded = Vec::with_capacity(secrets.len());
    for (name, value_b64) in secrets {
        if !is_valid_name(name) {
            return Err(invalid(name, "secret names must match [A-Za-z_][A-Za-z0-9_]{0,63}"));
        }
        let value =
            b64.decode(value_b64).map_err(|_| invalid(name, "secret value is not valid base64"))?;
        decoded.push((name, value));
    }
    let shown = dir.display().to_string();
    match fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(SandboxError::io("remove", &shown, e)),
    }
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent).map_err(|e| SandboxError::io("mkdir", &shown, e))?;
    }
    fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|e| SandboxError::io("mkdir", &shown, e))?;
    // The umask may have narrowed the mode; make it exact.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| SandboxError::io("chmod", &shown, e))?;
    for (name, value) in &decoded {
        let path = dir.join(name);
        let shown = path.display().to_string();
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(&path)
            .map_err(|e| SandboxError::io("create", &shown, e))?;
        file.write_all(value).map_err(|e| SandboxError::io("write", &shown, e))?;
        file.sync_all().map_err(|e| SandboxError::io("sync", &shown, e))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400))
            .map_err(|e| SandboxError::io("chmod", &shown, e))?;
    }
    Ok(decoded.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn install_wipes_and_rewrites_with_tight_modes() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("run/pyro-secrets");
        let first = BTreeMap::from([("OLD".to_string(), b64("old")), ("TOKEN".into(), b64("t1"))]);
        assert_eq!(install(&dir, &first).expect("install"), 2);
        let second = BTreeMap::from([("TOKEN".to_string(), b64("t2\nline"))]);
        assert_eq!(install(&dir, &second).expect("reinstall"), 1);
        assert!(!dir.join("OLD").exists(), "a dropped secret must disappear");
        let token = dir.join("TOKEN");
        assert_eq!(fs::read(&token).expect("read"), b"t2\nline");
        assert_eq!(fs::metadata(&token).expect("stat").mode() & 0o7777, 0o400);
        assert_eq!(fs::metadata(&dir).expect("stat").mode() & 0o7777, 0o700);
        install(&dir, &BTreeMap::new()).expect("empty");
        assert_eq!(fs::read_dir(&dir).expect("ls").count(), 0);
    }

    #[test]
    fn bad_names_and_values_change_nothing_and_do_not_echo_values() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("s");
        install(&dir, &BTreeMap::from([("KEEP".to_string(), b64("k"))])).expect("install");
        for (name, value) in [("../x", b64("v")), ("1A", b64("v")), ("OK", "!!not-b64!!".into())] {
            let err = install(&dir, &BTreeMap::from([(name.to_string(), value.clone())]))
                .expect_err(name)
                .to_string();
            assert!(err.contains(name), "{err}");
            assert!(!err.contains(&value) || value.len() < 4, "{err}");
            assert!(dir.join("KEEP").exists(), "nothing may be wiped on a rejected request");
        }
        assert!(is_valid_name("_a9") && is_valid_name(&"A".repeat(64)));
        assert!(!is_valid_name(&"A".repeat(65)) && !is_valid_name("A-B") && !is_valid_name(""));
    }
}
