//! The workspace volume inside the guest: finding its disks by serial, mounting them,
//! and freezing `/workspace` while the host takes a disk-level snapshot.
//!
//! The host gives every workspace guest two extra virtio-blk disks: the writable
//! workspace volume (serial [`WORKSPACE_VOLUME_SERIAL`]) and its read-only baseline
//! ([`BASELINE_VOLUME_SERIAL`]). A template guest sees placeholders for both and never
//! mounts them; a clone of it gets the workspace's own disks on the same devices, so
//! before mounting, each device's page cache is dropped (`BLKFLSBUF`): the template
//! probed the placeholder, and its cached block 0 (with the superblock of the
//! placeholder's file system) would otherwise be what the kernel reads.

use crate::error::SandboxError;
use crate::sys;
use pyro_protocol::{
    BASELINE_MOUNT, BASELINE_VOLUME_SERIAL, MAX_FREEZE_MS, WORKSPACE_ROOT, WORKSPACE_VOLUME_SERIAL,
};
use std::fs::{self, File};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bumped by every freeze and thaw: a deadline thread only thaws the freeze it was
/// started for.
static FREEZE_GENERATION: AtomicU64 = AtomicU64::new(0);

/// The `/dev` node of the virtio disk whose serial is `serial`.
fn find_disk(serial: &str) -> Result<PathBuf, SandboxError> {
    let entries =
        fs::read_dir("/sys/block").map_err(|e| SandboxError::io("list", "/sys/block", e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("vd") {
            continue;
        }
        let found =
            fs::read_to_string(entry.path().join("serial")).is_ok_and(|text| text.trim() == serial);
        if found {
            return Ok(PathBuf::from("/dev").join(name));
        }
    }
    Err(SandboxError::NotFound(format!(
        "no virtio disk with serial {serial} (the host did not attach the workspace volume)"
    )))
}

/// Whether something is mounted on `target` (from `/proc/self/mountinfo`).
fn is_mount_point(target: &str) -> bool {
    let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else { return false };
    text.lines().any(|line| line.split(' ').nth(4) == Some(target))
}

/// Mount the disk with `serial` on `target` unless something is mounted there already;
/// whether it mounted it now.
fn mount_disk(
    serial: &str,
    target: &str,
    flags: libc::c_ulong,
    data: &str,
) -> Result<bool, SandboxError> {
    if is_mount_point(target) {
        return Ok(false);
    }
    let device = find_disk(serial)?;
    let shown = device.display().to_string();
    let handle = File::open(&device).map_err(|e| SandboxError::io("open", &shown, e))?;
    sys::flush_block_buffers(&handle)
        .map_err(|e| SandboxError::io("flush the cache of", &shown, e))?;
    drop(handle);
    fs::create_dir_all(target).map_err(|e| SandboxError::io("create", target, e))?;
    sys::mount(&shown, target, "ext4", flags, data)
        .map_err(|e| SandboxError::io("mount the workspace volume on", target, e))?;
    Ok(true)
}

/// Mount the workspace volume on `/workspace` and the baseline read-only on
/// [`BASELINE_MOUNT`] (no-ops for what is mounted already); whether `/workspace` was
/// mounted now.
pub fn mount_workspace() -> Result<bool, SandboxError> {
    mount_disk(BASELINE_VOLUME_SERIAL, BASELINE_MOUNT, libc::MS_RDONLY | libc::MS_NODEV, "noload")?;
    mount_disk(WORKSPACE_VOLUME_SERIAL, WORKSPACE_ROOT, libc::MS_NODEV, "")
}

fn open_workspace() -> Result<File, SandboxError> {
    if !is_mount_point(WORKSPACE_ROOT) {
        return Err(SandboxError::Unsupported(
            "/workspace is not a mounted volume in this guest; nothing to freeze".into(),
        ));
    }
    File::open(WORKSPACE_ROOT).map_err(|e| SandboxError::io("open", WORKSPACE_ROOT, e))
}

/// Freeze `/workspace`; a thread thaws it after `thaw_after_ms` unless
/// [`thaw_workspace`] (or another freeze) came first. A file system that is frozen
/// already (a host that died mid-snapshot) counts as frozen by this request.
pub fn freeze_workspace(thaw_after_ms: u64) -> Result<(), SandboxError> {
    if thaw_after_ms == 0 || thaw_after_ms > MAX_FREEZE_MS {
        return Err(SandboxError::Invalid(format!(
            "thaw_after_ms must be 1 to {MAX_FREEZE_MS}, got {thaw_after_ms}"
        )));
    }
    let dir = open_workspace()?;
    match sys::freeze_fs(&dir, true) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
        Err(e) => return Err(SandboxError::io("freeze", WORKSPACE_ROOT, e)),
    }
    let generation = FREEZE_GENERATION.fetch_add(1, Ordering::SeqCst) + 1;
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(thaw_after_ms));
        if FREEZE_GENERATION.load(Ordering::SeqCst) == generation {
            eprintln!("pyro-guest-agent: freeze deadline passed; thawing /workspace");
            let _ = sys::freeze_fs(&dir, false);
        }
    });
    Ok(())
}

/// Thaw `/workspace` (not frozen: not an error).
pub fn thaw_workspace() -> Result<(), SandboxError> {
    FREEZE_GENERATION.fetch_add(1, Ordering::SeqCst);
    let dir = open_workspace()?;
    match sys::freeze_fs(&dir, false) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        Err(e) => Err(SandboxError::io("thaw", WORKSPACE_ROOT, e)),
    }
}
