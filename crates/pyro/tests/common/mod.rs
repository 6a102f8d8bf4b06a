//! Shared by the guest test binaries.

use std::path::{Path, PathBuf};

/// A temporary directory that, when dropped (also while a failed test unwinds), kills
/// every QEMU whose pidfile lies below it, so a failing guest test never leaves VMs
/// running after its state directory is gone.
#[derive(Debug)]
pub struct GuestTempDir {
    dir: tempfile::TempDir,
}

impl GuestTempDir {
    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A runtime on the state directory `state` whose guest backend is ready; otherwise the
/// test fails and says to run `scripts/setup` (guest tests never skip).
#[allow(dead_code)] // not every test binary starts a runtime of its own
pub fn guest_runtime(state: &Path) -> pyro::Runtime {
    let config =
        pyro::RuntimeConfig { state_dir: state.to_path_buf(), ..pyro::RuntimeConfig::from_env() };
    let rt = pyro::Runtime::new(config);
    let report = rt.doctor();
    assert!(report.runtime_ok, "guest backend not ready ({:?}); run scripts/setup", report.issues);
    rt
}

/// Run `command` in workspace `id` and return its stdout; the test fails unless it
/// exits 0 (the message shows both outputs).
#[allow(dead_code)] // not every test binary runs commands this way
pub fn exec_ok(rt: &pyro::Runtime, id: &str, command: &str) -> String {
    let out =
        rt.workspace_exec(pyro::params::WorkspaceExecParams::new(id, command)).expect(command);
    assert_eq!(out.exit_code, 0, "{command}: {}{}", out.stdout, out.stderr);
    out.stdout
}

/// A new [`GuestTempDir`].
pub fn guest_tempdir() -> GuestTempDir {
    GuestTempDir { dir: tempfile::tempdir().expect("tempdir") }
}

fn pidfiles(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name() == "qemu.pid" {
            out.push(path);
        } else if depth > 0 && entry.file_type().is_ok_and(|t| t.is_dir()) {
            pidfiles(&path, depth - 1, out);
        }
    }
}

impl Drop for GuestTempDir {
    fn drop(&mut self) {
        let mut found = Vec::new();
        pidfiles(self.dir.path(), 5, &mut found);
        for pidfile in found {
            if let Some(pid) =
                std::fs::read_to_string(&pidfile).ok().and_then(|s| s.trim().parse::<i32>().ok())
            {
                let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
    }
}
