//! Images of the workspace volume, made on the host: ext4 file systems (`mke2fs -d`),
//! qcow2 overlays and layers (`qemu-img`), and the shared empty image.
//!
//! Every volume image has the same virtual size ([`volume_size_bytes`]): the guest
//! reads a disk's capacity once, when it probes the device, and a clone inherits that
//! from its template, whose placeholder disk had this size. The size is part of every
//! template key.
//!
//! Files are sparse: an 8 GiB image of a 4 MB tree takes a few MB on the host.

use super::super::BackendError;
use super::launch::run_qemu_img;
use super::layout::remove_if_exists;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Environment variable: the virtual size of every workspace volume, in GiB (default
/// [`DEFAULT_VOLUME_GIB`]). Changing it makes new templates; existing workspaces keep
/// the size their images were made with and are started cold when it differs.
pub const VOLUME_SIZE_ENV: &str = "PYRO_WORKSPACE_VOLUME_GIB";
/// Default virtual size of a workspace volume, in GiB.
pub const DEFAULT_VOLUME_GIB: u64 = 8;

/// The virtual size of workspace volumes, in bytes (see [`VOLUME_SIZE_ENV`]).
pub fn volume_size_bytes() -> u64 {
    let gib = std::env::var(VOLUME_SIZE_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|g| (1..=1024).contains(g))
        .unwrap_or(DEFAULT_VOLUME_GIB);
    gib << 30
}

fn tool_error(what: &str, output: &std::process::Output) -> BackendError {
    BackendError::Boot(format!(
        "{what} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    ))
}

fn run_tool(program: &str, args: &[&std::ffi::OsStr]) -> Result<(), BackendError> {
    let output = Command::new(program).args(args).stdin(Stdio::null()).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            BackendError::MissingAsset {
                what: format!("{program} (install e2fsprogs)"),
                path: PathBuf::from(program),
            }
        } else {
            BackendError::io(format!("cannot run {program}"), e)
        }
    })?;
    if !output.status.success() {
        return Err(tool_error(program, &output));
    }
    Ok(())
}

/// Make `image` (a new sparse file of `size` bytes) an ext4 file system holding the
/// tree in `source` (`None`: empty). The root directory is owned by root, mode 0755;
/// `lost+found` is removed so `/workspace` holds exactly the seed. Everything else
/// (owners, modes, mtimes, symlinks) is copied from `source` as it is.
pub fn make_ext4(image: &Path, size: u64, source: Option<&Path>) -> Result<(), BackendError> {
    remove_if_exists(image)?;
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(image)
        .map_err(|e| BackendError::io(format!("cannot create {}", image.display()), e))?;
    file.set_len(size)
        .map_err(|e| BackendError::io(format!("cannot size {}", image.display()), e))?;
    drop(file);
    let mut args: Vec<&std::ffi::OsStr> =
        ["-q", "-F", "-t", "ext4", "-L", "workspace"].iter().map(std::ffi::OsStr::new).collect();
    // Lazy init: the inode tables and journal of a fresh sparse file are zero already.
    args.extend(
        ["-E", "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0"].map(std::ffi::OsStr::new),
    );
    if let Some(source) = source {
        args.push("-d".as_ref());
        args.push(source.as_os_str());
    }
    args.push(image.as_os_str());
    run_tool("mke2fs", &args)?;
    run_tool(
        "debugfs",
        &["-w".as_ref(), "-R".as_ref(), "rmdir /lost+found".as_ref(), image.as_os_str()],
    )
}

/// The shared empty volume image of the current size under `cache_dir`, made once
/// (under a lock) when missing. Read-only bottom of unseeded workspaces and of the
/// templates' placeholder disks.
pub fn empty_image(cache_dir: &Path) -> Result<PathBuf, BackendError> {
    let size = volume_size_bytes();
    let dir = cache_dir.join("volume");
    let image = dir.join(format!("empty-{}g.ext4", size >> 30));
    if image.is_file() {
        return Ok(image);
    }
    fs::create_dir_all(&dir)
        .map_err(|e| BackendError::io(format!("cannot create {}", dir.display()), e))?;
    let lock_path = dir.join("empty.lock");
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| BackendError::io(format!("cannot open {}", lock_path.display()), e))?;
    lock.lock().map_err(|e| BackendError::io(format!("cannot lock {}", lock_path.display()), e))?;
    if image.is_file() {
        return Ok(image);
    }
    let tmp = dir.join(format!(".empty-{}.tmp", std::process::id()));
    make_ext4(&tmp, size, None)?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644))
        .map_err(|e| BackendError::io(format!("cannot chmod {}", tmp.display()), e))?;
    File::open(&tmp)
        .and_then(|f| f.sync_all())
        .and_then(|()| fs::rename(&tmp, &image))
        .map_err(|e| BackendError::io(format!("cannot write {}", image.display()), e))?;
    Ok(image)
}

/// Create `overlay`: an empty qcow2 of the volume size whose backing file is `backing`
/// (format `raw` or `qcow2`). Any old `overlay` is replaced.
pub fn create_overlay(
    backing: &Path,
    backing_format: &str,
    overlay: &Path,
) -> Result<(), BackendError> {
    remove_if_exists(overlay)?;
    let size = volume_size_bytes().to_string();
    let output = run_qemu_img(|c| {
        c.args(["create", "-q", "-f", "qcow2", "-F", backing_format, "-b"])
            .arg(backing)
            .arg(overlay)
            .arg(&size);
    })?;
    if !output.status.success() {
        return Err(tool_error(&format!("qemu-img create {}", overlay.display()), &output));
    }
    Ok(())
}

/// The format of a chain image by its name: the baseline and the empty image are raw
/// ext4 (`.ext4`), every layer is qcow2.
pub fn image_format(path: &Path) -> &'static str {
    if path.extension().is_some_and(|x| x == "ext4") {
        "raw"
    } else {
        "qcow2"
    }
}

/// Write the volume whose writable overlay is `active` (its chain as its qcow2 headers
/// name it: pyro writes every header with the absolute path of the image below) to
/// `output` as a sparse raw ext4 image. `output` must not exist.
pub fn export_raw(active: &Path, output: &Path) -> Result<(), BackendError> {
    if output.symlink_metadata().is_ok() {
        return Err(BackendError::io(
            format!("cannot write {}", output.display()),
            std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        ));
    }
    let result = run_qemu_img(|c| {
        c.args(["convert", "-q", "-f", "qcow2", "-O", "raw"]).arg(active).arg(output);
    })?;
    if !result.status.success() {
        let _ = fs::remove_file(output);
        return Err(tool_error(&format!("qemu-img convert {}", active.display()), &result));
    }
    Ok(())
}
