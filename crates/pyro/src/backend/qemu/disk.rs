//! The root disk of a stopped sandbox as a raw image: `qemu-img convert -O raw` of the
//! qcow2 overlay (base image included), for the offline disk tools.

use super::super::BackendError;
use super::launch::run_qemu_img;
use super::layout::SandboxPaths;
use super::process;
use std::path::Path;

/// Convert the sandbox's `disk.qcow2` to the raw image `output` (sparse; must not
/// exist). Refuses while QEMU runs: the guest could be writing the disk.
pub fn export_raw(paths: &SandboxPaths, output: &Path) -> Result<(), BackendError> {
    if process::qemu_pid(paths).is_some() {
        return Err(BackendError::Unsupported {
            backend: "qemu",
            operation: "reading the disk of a running sandbox".into(),
        });
    }
    let disk = paths.disk();
    if !disk.is_file() {
        return Err(BackendError::MissingAsset {
            what: "the sandbox's disk (it was never created or was destroyed)".into(),
            path: disk,
        });
    }
    if output.symlink_metadata().is_ok() {
        return Err(BackendError::io(
            format!("cannot write {}", output.display()),
            std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        ));
    }
    let result = run_qemu_img(|c| {
        c.args(["convert", "-q", "-f", "qcow2", "-O", "raw"]).arg(&disk).arg(output);
    })?;
    if !result.status.success() {
        let _ = std::fs::remove_file(output);
        return Err(BackendError::io(
            format!("qemu-img could not convert {} to a raw image", disk.display()),
            std::io::Error::other(String::from_utf8_lossy(&result.stderr).trim().to_owned()),
        ));
    }
    Ok(())
}
