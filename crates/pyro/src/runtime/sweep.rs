//! Finding and removing what crashed pyro processes left behind: half-made workspaces,
//! QEMUs nobody owns, and stray files. `pyro doctor` reports ([`Runtime::sweep`] with
//! `remove = false`), `pyro gc` removes, and `pyro mcp serve` sweeps when it starts.
//!
//! What counts (and why it is safe to remove):
//! - a workspace directory without `workspace.json`, or whose record is still marked
//!   creating, whose lock is free: the create that made it died (a live create holds the
//!   lock until it finishes; see `state.rs`, "Crash safety");
//! - a QEMU whose sandbox directory (`-name pyro:<dir>`) lies in this state directory and whose workspace is gone,
//!   half-made, or recorded stopped with its lock free (a reset or start killed after it
//!   booted a guest); a one-shot VM's QEMU whose owning process is gone;
//! - snapshot archives without their `.json` (a snapshot killed between the two writes)
//!   and temp files of interrupted atomic writes, in workspaces whose lock is free.

use super::state::{self, WorkspaceDir, WorkspaceLock, WorkspaceRecord};
use super::Runtime;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// What a sweep found (and removed, when it removes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SweepReport {
    /// Whether the leftovers were removed (`pyro gc`) or only reported (`pyro doctor`).
    pub removed: bool,
    /// Workspaces left half-made by a create that died.
    pub half_made_workspaces: Vec<String>,
    /// QEMU processes nobody owns: `pid (why)`.
    pub orphan_qemus: Vec<String>,
    /// One-shot VM directories whose owning process is gone.
    pub orphan_vms: Vec<String>,
    /// Stray files of interrupted writes.
    pub stray_files: Vec<String>,
}

impl SweepReport {
    /// Nothing was found.
    pub fn is_clean(&self) -> bool {
        self.half_made_workspaces.is_empty()
            && self.orphan_qemus.is_empty()
            && self.orphan_vms.is_empty()
            && self.stray_files.is_empty()
    }
}

/// Every QEMU that names its sandbox directory on its command line: `(pid, sandbox
/// dir)`, from `-name pyro:<dir>` (how pyro starts QEMU, `launch::identity_arg`) or an
/// absolute `-pidfile <dir>/qemu.pid` (older launches).
fn qemu_processes() -> Vec<(u32, PathBuf)> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(raw) = fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
        let named = args.windows(2).find_map(|w| {
            let dir = w[1].strip_prefix(b"pyro:").filter(|_| w[0] == b"-name")?;
            Some(PathBuf::from(std::ffi::OsStr::from_bytes(dir)))
        });
        let pidfile = args.windows(2).find_map(|w| {
            let path = Path::new(std::ffi::OsStr::from_bytes(w[1]));
            if w[0] == b"-pidfile" && path.is_absolute() {
                path.parent().map(Path::to_path_buf)
            } else {
                None
            }
        });
        if let Some(dir) = named.or(pidfile) {
            out.push((pid, dir));
        }
    }
    out
}

fn kill(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// Leftovers younger than this are left alone: they may belong to an operation that
/// is starting right now (a create makes its directory a moment before its record).
const MIN_AGE: std::time::Duration = std::time::Duration::from_secs(60);

fn older_than_min_age(path: &Path) -> bool {
    fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age >= MIN_AGE)
}

/// Whether nobody holds the workspace's lock (probing takes and drops it).
fn lock_free(dir: &WorkspaceDir) -> bool {
    matches!(WorkspaceLock::try_acquire(&dir.lock()), Ok(Some(_)))
}

impl Runtime {
    /// Find leftovers of crashed pyro processes; remove them when `remove`.
    pub fn sweep(&self, remove: bool) -> SweepReport {
        let mut report = SweepReport { removed: remove, ..SweepReport::default() };
        let workspaces = self.config.state_dir.join("workspaces");
        for entry in fs::read_dir(&workspaces).into_iter().flatten().flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if !state::is_valid_id(&id) {
                continue;
            }
            let dir = WorkspaceDir::new(&self.config.state_dir, &id);
            let record = state::read_json::<WorkspaceRecord>(&dir.record()).ok();
            let half_made = match &record {
                None => !dir.record().exists() && older_than_min_age(&dir.root) && lock_free(&dir),
                Some(rec) => rec.creating.is_some() && lock_free(&dir),
            };
            if half_made {
                report.half_made_workspaces.push(id.clone());
                if remove {
                    for backend in self.all_backends() {
                        let _ = backend.destroy(&dir.sandbox());
                    }
                    let _ = fs::remove_dir_all(&dir.root);
                }
                continue;
            }
            if record.is_some() && lock_free(&dir) {
                self.sweep_stray_files(&dir, remove, &mut report);
            }
        }
        self.sweep_qemus(remove, &mut report);
        let vms = self.config.state_dir.join("vms");
        for entry in fs::read_dir(&vms).into_iter().flatten().flatten() {
            let owner = fs::read_to_string(entry.path().join("owner.pid"))
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok());
            if owner.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists()) {
                continue;
            }
            report.orphan_vms.push(entry.file_name().to_string_lossy().into_owned());
            if remove {
                for backend in self.all_backends() {
                    let _ = backend.destroy(&entry.path().join("sandbox"));
                }
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        report
    }

    fn sweep_qemus(&self, remove: bool, report: &mut SweepReport) {
        let state_dir =
            self.config.state_dir.canonicalize().unwrap_or(self.config.state_dir.clone());
        for (pid, sandbox) in qemu_processes() {
            let Ok(rest) = sandbox.strip_prefix(&state_dir) else { continue };
            let parts: Vec<String> =
                rest.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            let why = match parts.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
                ["workspaces", id, "sandbox"] => {
                    let dir = WorkspaceDir::new(&self.config.state_dir, id);
                    match state::read_json::<WorkspaceRecord>(&dir.record()) {
                        Err(_) if !dir.root.exists() => Some(format!("workspace {id} is gone")),
                        Err(_) => None,
                        Ok(rec)
                            if !rec.desired_running
                                && rec.creating.is_none()
                                && lock_free(&dir) =>
                        {
                            Some(format!("workspace {id} is recorded stopped"))
                        }
                        Ok(_) => None,
                    }
                }
                ["vms", id, "sandbox"] => {
                    let vm = self.config.state_dir.join("vms").join(id);
                    let owner = fs::read_to_string(vm.join("owner.pid"))
                        .ok()
                        .and_then(|s| s.trim().parse::<u32>().ok());
                    (!owner.is_some_and(|o| Path::new(&format!("/proc/{o}")).exists()))
                        .then(|| format!("the process that ran vm {id} is gone"))
                }
                // Not a layout this build makes: not ours to judge.
                _ => None,
            };
            if let Some(why) = why {
                report.orphan_qemus.push(format!("{pid} ({why})"));
                if remove {
                    kill(pid);
                }
            }
        }
    }

    fn sweep_stray_files(&self, dir: &WorkspaceDir, remove: bool, report: &mut SweepReport) {
        let mut stray = Vec::new();
        for entry in fs::read_dir(dir.snapshots()).into_iter().flatten().flatten() {
            let path = entry.path();
            // Snapshots are only written under the lock, which is free here.
            if path.extension().is_some_and(|e| e == "tar") && !path.with_extension("json").exists()
            {
                stray.push(path);
            }
        }
        stray.extend(Self::stray_volume_files(dir));
        for folder in [dir.root.clone(), dir.snapshots(), dir.commands()] {
            for entry in fs::read_dir(&folder).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.')
                    && name.contains(".tmp-")
                    && older_than_min_age(&entry.path())
                {
                    stray.push(entry.path());
                }
            }
        }
        for path in stray {
            report.stray_files.push(path.display().to_string());
            if remove {
                let _ = fs::remove_file(&path);
            }
        }
    }
}
