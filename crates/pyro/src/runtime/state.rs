//! State on disk.
//!
//! ```text
//! $PYRO_STATE_DIR/workspaces/<id>/
//!     workspace.json      the record (atomic: temp file, fsync, rename)
//!     lock                flock target serialising mutating calls
//!     baseline.tar        /workspace right after seeding, as an archive (immutable)
//!     volume/             the workspace volume's images (layout 2; see `volume.rs`)
//!     snapshots/<name>.json (+ <name>.tar without a volume)
//!     commands/NNNNNN.json  exec history (output already redacted)
//!     sandbox/            owned by the backend (disk, sockets, pidfile / host dir)
//! ```
//!
//! Writers take the workspace lock; readers never do, and always see either the old or
//! the new record because records are replaced with a rename.
//!
//! # Crash safety
//!
//! `workspace_create` writes the record first, marked [`CreatingMark`], and holds the
//! workspace lock until the workspace is complete. A record still marked creating whose
//! lock is free belongs to a create that died half way: every path that meets one
//! (`Runtime::lock_workspace`, the sweep behind `pyro gc`, `pyro doctor` and `mcp serve`
//! start) treats it as half-made and removes it with whatever QEMU it left.
//!
//! The lock is one `flock` per workspace, re-entrant within a thread (a thread that holds
//! it and asks again gets a guard that does nothing), so helpers that lock may be called
//! from code that already holds the lock.

use super::error::{PyroError, Result};
use crate::backend::BackendKind;
use pyro_contract::params::NetworkPolicy;
use pyro_contract::results::{Accel, LastCommand, SecretInfo, WorkspaceSeed};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Layout version written into every record.
/// 2: `/workspace` is a volume of its own (`volume` in the record); records of layout 1
/// (no volume: `/workspace` on the root disk, archives for the baseline and snapshots)
/// keep working that way.
pub const LAYOUT_VERSION: u32 = 2;

/// Seconds since the epoch, as a float.
pub fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// A new 12-hex-character id.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// Whether `id` looks like an id pyro made (so it is safe as a directory name).
pub fn is_valid_id(id: &str) -> bool {
    id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The persisted record of a workspace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkspaceRecord {
    /// Layout version.
    pub layout_version: u32,
    /// Id.
    pub workspace_id: String,
    /// Name.
    pub name: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Environment.
    pub environment: String,
    /// Environment build id.
    pub environment_version: Option<String>,
    /// vCPUs.
    pub vcpu_count: u32,
    /// Memory.
    pub mem_mib: u32,
    /// TTL.
    pub ttl_seconds: u64,
    /// Created.
    pub created_at: f64,
    /// Last activity.
    pub last_activity_at: f64,
    /// Expiry.
    pub expires_at: f64,
    /// Whether the user wants it running (`started`) or not (`stopped`).
    pub desired_running: bool,
    /// Network policy.
    pub network_policy: NetworkPolicy,
    /// Host execution allowed.
    pub allow_host_compat: bool,
    /// Backend running it.
    pub backend: BackendKind,
    /// Acceleration of the last boot.
    pub accel: Accel,
    /// Guest address.
    pub guest_ip: Option<String>,
    /// Seed.
    pub workspace_seed: WorkspaceSeed,
    /// Secret names (values live elsewhere).
    pub secrets: Vec<SecretInfo>,
    /// Commands since create/reset.
    pub command_count: u64,
    /// Next sequence number to hand out.
    pub next_sequence: u64,
    /// Last command.
    pub last_command: Option<LastCommand>,
    /// Resets.
    pub reset_count: u64,
    /// Last reset.
    pub last_reset_at: Option<f64>,
    /// Last error.
    pub last_error: Option<String>,
    /// Backend details.
    pub metadata: BTreeMap<String, String>,
    /// The workspace volume's chain (layout 2, QEMU); `None`: `/workspace` lives on the
    /// root disk or a host directory and moves as archives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<super::volume::VolumeRecord>,
    /// Set while `workspace_create` is still making the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creating: Option<CreatingMark>,
}

/// Who is creating a workspace, and since when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatingMark {
    /// Pid of the creating process.
    pub pid: u32,
    /// When the create started.
    pub started_at: f64,
}

impl CreatingMark {
    /// A mark for this process, now.
    pub fn here() -> Self {
        CreatingMark { pid: std::process::id(), started_at: now() }
    }
}

/// Paths of one workspace.
#[derive(Debug, Clone)]
pub struct WorkspaceDir {
    /// `<state>/workspaces/<id>`.
    pub root: PathBuf,
}

impl WorkspaceDir {
    /// Paths for workspace `id` under `state_dir`.
    pub fn new(state_dir: &Path, id: &str) -> Self {
        WorkspaceDir { root: state_dir.join("workspaces").join(id) }
    }
    /// The record.
    pub fn record(&self) -> PathBuf {
        self.root.join("workspace.json")
    }
    /// The lock file.
    pub fn lock(&self) -> PathBuf {
        self.root.join("lock")
    }
    /// The baseline archive.
    pub fn baseline(&self) -> PathBuf {
        self.root.join("baseline.tar")
    }
    /// The workspace volume's images (see `volume.rs`).
    pub fn volume(&self) -> PathBuf {
        self.root.join("volume")
    }
    /// Snapshot directory.
    pub fn snapshots(&self) -> PathBuf {
        self.root.join("snapshots")
    }
    /// Command history directory.
    pub fn commands(&self) -> PathBuf {
        self.root.join("commands")
    }
    /// The backend's directory.
    pub fn sandbox(&self) -> PathBuf {
        self.root.join("sandbox")
    }
    /// Present while the guest agent is known to be unhealthy: why (see
    /// [`super::agent::HealthWatch`]).
    pub fn agent_health(&self) -> PathBuf {
        self.root.join("agent-unhealthy")
    }
}

/// Write `bytes` to `path` atomically: temp file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", new_id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|e| PyroError::io("could not write", path, e))
}

/// Serialise `value` as pretty JSON and write it atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| PyroError::CorruptState { path: path.into(), message: e.to_string() })?;
    write_atomic(path, &bytes)
}

/// Read JSON written by [`write_json`].
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).map_err(|e| PyroError::io("could not read", path, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| PyroError::CorruptState { path: path.into(), message: e.to_string() })
}

/// An exclusive lock on a workspace, released on drop.
#[derive(Debug)]
pub struct WorkspaceLock {
    /// `None` for a re-entrant guard (this thread already holds the lock).
    held: Option<(File, PathBuf)>,
    /// Not `Send`: the re-entrancy record is per thread, so the guard must be dropped on
    /// the thread that took it.
    _same_thread: std::marker::PhantomData<std::rc::Rc<()>>,
}

thread_local! {
    /// Lock files this thread holds.
    static HELD: std::cell::RefCell<std::collections::HashSet<PathBuf>> =
        std::cell::RefCell::new(std::collections::HashSet::new());
}

impl WorkspaceLock {
    /// Block until the lock at `path` is ours (at once when this thread holds it).
    pub fn acquire(path: &Path) -> Result<Self> {
        if HELD.with(|held| held.borrow().contains(path)) {
            return Ok(WorkspaceLock { held: None, _same_thread: std::marker::PhantomData });
        }
        let file = Self::open(path)?;
        file.lock().map_err(|e| PyroError::io("could not lock", path, e))?;
        HELD.with(|held| held.borrow_mut().insert(path.to_path_buf()));
        Ok(WorkspaceLock {
            held: Some((file, path.to_path_buf())),
            _same_thread: std::marker::PhantomData,
        })
    }

    /// Take the lock only if nobody holds it; `Ok(None)` when someone does.
    pub fn try_acquire(path: &Path) -> Result<Option<Self>> {
        if HELD.with(|held| held.borrow().contains(path)) {
            return Ok(Some(WorkspaceLock { held: None, _same_thread: std::marker::PhantomData }));
        }
        let file = Self::open(path)?;
        match file.try_lock() {
            Ok(()) => {
                HELD.with(|held| held.borrow_mut().insert(path.to_path_buf()));
                Ok(Some(WorkspaceLock {
                    held: Some((file, path.to_path_buf())),
                    _same_thread: std::marker::PhantomData,
                }))
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(PyroError::io("could not lock", path, e)),
        }
    }

    fn open(path: &Path) -> Result<File> {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| PyroError::io("could not open lock", path, e))
    }
}

impl Drop for WorkspaceLock {
    fn drop(&mut self) {
        if let Some((_, path)) = &self.held {
            HELD.with(|held| held.borrow_mut().remove(path));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_is_reentrant_in_a_thread_and_exclusive_across_threads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lock");
        let outer = WorkspaceLock::acquire(&path).expect("lock");
        let inner = WorkspaceLock::acquire(&path).expect("re-entrant");
        drop(inner);
        let other = {
            let path = path.clone();
            std::thread::spawn(move || WorkspaceLock::try_acquire(&path).expect("try").is_some())
        };
        assert!(!other.join().expect("thread"), "another thread got the held lock");
        drop(outer);
        let other =
            std::thread::spawn(move || WorkspaceLock::try_acquire(&path).expect("try").is_some());
        assert!(other.join().expect("thread"), "the lock stayed held after drop");
    }

    #[test]
    fn ids_are_12_lower_hex_and_validated() {
        let id = new_id();
        assert!(is_valid_id(&id), "{id}");
        assert!(!is_valid_id("../../etc"));
        assert!(!is_valid_id("ABCDEF123456"));
        assert!(!is_valid_id("abc"));
    }

    #[test]
    fn atomic_write_replaces_whole_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.json");
        write_json(&p, &vec![1, 2, 3]).expect("write");
        write_json(&p, &vec![4]).expect("write");
        let back: Vec<i32> = read_json(&p).expect("read");
        assert_eq!(back, vec![4]);
        let names: Vec<_> = fs::read_dir(dir.path()).expect("ls").flatten().collect();
        assert_eq!(names.len(), 1, "temp files left behind");
    }
}
