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
/// [`DEFAULT_VOLUME_GIB`]). Changing it makes new templates, and every overlay made from
/// then on (reset, snapshot) has the new size, so the disk always matches the template.
/// Only raise it: an existing workspace's file system keeps its size inside a larger
/// disk, but would no longer fit a smaller one.
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
    create_sparse(image, size)?;
    format_ext4(image, source)
}

/// Create `image` as a new sparse file of `size` bytes (any old one is replaced): what
/// [`format_ext4`] formats. The file exists, at its final size, from here on.
pub fn create_sparse(image: &Path, size: u64) -> Result<(), BackendError> {
    remove_if_exists(image)?;
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(image)
        .map_err(|e| BackendError::io(format!("cannot create {}", image.display()), e))?;
    file.set_len(size).map_err(|e| BackendError::io(format!("cannot size {}", image.display()), e))
}

/// Make the sparse file `image` ([`create_sparse`]) an ext4 file system holding the
/// tree in `source`, as [`make_ext4`] describes.
pub fn format_ext4(image: &Path, source: Option<&Path>) -> Result<(), BackendError> {
    // 256-byte inodes whatever the host's mke2fs.conf says: they store timestamps to the
    // nanosecond, which the guest's stat-first tree diff relies on (a rewrite in the same
    // second as the baseline was made must still move ctime).
    let mut args: Vec<&std::ffi::OsStr> =
        ["-q", "-F", "-t", "ext4", "-I", "256", "-L", "workspace"]
            .iter()
            .map(std::ffi::OsStr::new)
            .collect();
    // Lazy init: the inode tables and journal of a fresh sparse file are zero already.
    // No metadata checksums: `mke2fs -d` recomputes a directory block's checksum on every
    // entry it adds, a fifth of its time for a 130 MB / 11k-file seed (0.64 s -> 0.50 s
    // here); the image is a private file on the host's own storage, and nothing in pyro
    // or the guest needs them.
    args.extend(
        ["-E", "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0", "-O", "^metadata_csum"]
            .map(std::ffi::OsStr::new),
    );
    if let Some(source) = source {
        args.push("-d".as_ref());
        args.push(source.as_os_str());
    }
    args.push(image.as_os_str());
    run_tool("mke2fs", &args)?;
    tracing::debug!(image = %image.display(), "volume: mke2fs done");
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
        // `-u`: do not open the backing chain (a running QEMU may have written a
        // descriptor name into a layer's header; pyro names every image explicitly).
        c.args(["create", "-q", "-u", "-f", "qcow2", "-F", backing_format, "-b"])
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

/// The QMP node name of a volume image: its file stem (`active-3`, `layer-2`,
/// `baseline`, `empty-8g`), kept to what QEMU accepts (a letter first, then letters,
/// digits, `-`, `_`, `.`; at most 31 bytes).
pub fn node_name(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mut name: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        name.insert(0, 'v');
    }
    name.truncate(31);
    name
}

/// Rewrite the backing file name in the header of the qcow2 `image` to `backing`
/// (format `format`) without touching data (`qemu-img rebase -u`). QEMU writes
/// `/proc/self/fd/<n>` names there when it merges layers of a running chain; pyro puts
/// the real paths back before any offline tool follows the headers.
pub fn set_backing_header(image: &Path, backing: &Path, format: &str) -> Result<(), BackendError> {
    let output = run_qemu_img(|c| {
        c.args(["rebase", "-q", "-u", "-f", "qcow2", "-F", format, "-b"]).arg(backing).arg(image);
    })?;
    if !output.status.success() {
        return Err(tool_error(&format!("qemu-img rebase -u {}", image.display()), &output));
    }
    Ok(())
}

/// Make the qcow2 `image` (its header naming its current backing correctly) backed by
/// `backing` instead, copying into it whatever differs between the two chains
/// (`qemu-img rebase`, safe mode). Offline only: no QEMU may have `image` open.
pub fn rebase_onto(image: &Path, backing: &Path, format: &str) -> Result<(), BackendError> {
    let output = run_qemu_img(|c| {
        c.args(["rebase", "-q", "-f", "qcow2", "-F", format, "-b"]).arg(backing).arg(image);
    })?;
    if !output.status.success() {
        return Err(tool_error(&format!("qemu-img rebase {}", image.display()), &output));
    }
    Ok(())
}

/// Longest a merge of running volume layers (`block-stream`) may take.
const STREAM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Make the fresh qcow2 `overlay` the writable top of the running volume: QMP `add-fd`
/// (QEMU cannot reach the volume directory by path), `blockdev-add` with no backing,
/// `blockdev-snapshot` (the former top becomes the overlay's read-only backing), then
/// the fd set is dropped (the node holds its own descriptor).
pub fn snapshot_running(
    qmp: &mut super::qmp::QmpClient,
    overlay: &Path,
    credentials: Option<super::spawn::Credentials>,
) -> Result<(), BackendError> {
    use serde_json::json;
    use std::os::fd::AsFd;
    use std::os::unix::fs::OpenOptionsExt;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(overlay)
        .map_err(|e| BackendError::io(format!("cannot open {}", overlay.display()), e))?;
    if let Some(c) = credentials {
        std::os::unix::fs::fchown(&file, Some(c.uid), Some(c.gid)).map_err(|e| {
            BackendError::io(format!("cannot give {} to the QEMU user", overlay.display()), e)
        })?;
    }
    let (set, fd) = qmp.add_fd(file.as_fd())?;
    let node = node_name(overlay);
    let added = qmp.execute(
        "blockdev-add",
        Some(json!({
            "driver": "qcow2",
            "node-name": node,
            "file": { "driver": "file", "filename": format!("/proc/self/fd/{fd}") },
            "backing": null,
        })),
    );
    let _ = qmp.execute("remove-fd", Some(json!({ "fdset-id": set })));
    added?;
    if let Err(e) =
        qmp.execute("blockdev-snapshot", Some(json!({ "node": "vol", "overlay": node })))
    {
        let _ = qmp.execute("blockdev-del", Some(json!({ "node-name": node })));
        return Err(e.into());
    }
    Ok(())
}

/// Merge into the running volume image `top` the data of its backing chain above
/// `base` (QMP `block-stream`), so the layers between drop out of the chain; waits for
/// the job. `top` and `base` are volume images, named as [`node_name`] names them.
pub fn stream_running(
    qmp: &mut super::qmp::QmpClient,
    top: &Path,
    base: &Path,
) -> Result<(), BackendError> {
    use serde_json::{json, Value};
    let job = format!("pyro-merge-{}", node_name(top));
    qmp.execute(
        "block-stream",
        Some(json!({
            "job-id": job,
            "device": node_name(top),
            "base-node": node_name(base),
            "auto-dismiss": false,
        })),
    )?;
    let deadline = std::time::Instant::now() + STREAM_TIMEOUT;
    loop {
        let jobs = qmp.execute("query-jobs", None)?;
        let ours = jobs
            .as_array()
            .and_then(|all| all.iter().find(|j| j.get("id").and_then(Value::as_str) == Some(&job)))
            .cloned();
        let status = ours.as_ref().and_then(|j| j.get("status")).and_then(Value::as_str);
        if status == Some("concluded") || ours.is_none() {
            let error = ours.as_ref().and_then(|j| j.get("error")).and_then(Value::as_str);
            let _ = qmp.execute("job-dismiss", Some(json!({ "id": job })));
            return match error {
                Some(e) => Err(BackendError::Boot(format!("merging volume layers failed: {e}"))),
                None => Ok(()),
            };
        }
        if std::time::Instant::now() >= deadline {
            let _ = qmp.execute("job-cancel", Some(json!({ "id": job })));
            return Err(BackendError::Timeout(STREAM_TIMEOUT));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
