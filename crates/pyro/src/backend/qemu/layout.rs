//! The files of one sandbox directory, and how to reach its unix sockets whatever the
//! length of its path.
//!
//! ```text
//! <dir>/disk.qcow2        copy-on-write overlay on the environment's rootfs.ext4
//! <dir>/qemu.pid          QEMU's pidfile (written by QEMU)
//! <dir>/qmp.sock          QMP control socket (QEMU listens)
//! <dir>/agent-<i>.sock    agent port i (QEMU listens; one client at a time)
//! <dir>/agent-<i>.lock    flock taken by the host process that uses port i
//! <dir>/console.log       the guest's serial console (truncated at every boot; see
//!                         `console.rs` for how it is capped)
//! <dir>/console.log.1     its rotated predecessor
//! <dir>/console.lock      flock held while draining QEMU's console ring into the log
//! <dir>/qemu.log          QEMU's stdout and stderr (truncated at every boot)
//! <dir>/qemu.exit         how the last QEMU ended, written by its supervisor
//! <dir>/vm.json           how the VM was booted (see `record.rs`)
//! ```
//!
//! # Long paths
//!
//! A unix socket address holds at most 107 path bytes (`sun_path`). QEMU is started
//! with its working directory set to the sandbox dir and is given every path inside it
//! relative to it; the host side connects through `/proc/self/fd/<dir fd>/<name>` when
//! the absolute path is too long, which is always short.

use super::super::BackendError;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// The overlay disk.
pub const DISK_FILE: &str = "disk.qcow2";
/// QEMU's pidfile.
pub const PID_FILE: &str = "qemu.pid";
/// The QMP socket.
pub const QMP_SOCKET: &str = "qmp.sock";
/// The serial console log.
pub const CONSOLE_LOG: &str = "console.log";
/// QEMU's stdout and stderr.
pub const QEMU_LOG: &str = "qemu.log";
/// How the last QEMU ended (see `spawn.rs`).
pub const QEMU_EXIT: &str = "qemu.exit";
/// The VM record.
pub const VM_RECORD: &str = "vm.json";

/// Longest path a `sockaddr_un` can hold (108 bytes including the terminating NUL).
pub const SUN_PATH_MAX: usize = 107;

/// The paths of one sandbox directory. The directory is made absolute and canonical
/// once, so the same sandbox always yields the same strings (they are matched against
/// QEMU's command line to recognise its process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPaths {
    dir: PathBuf,
}

impl SandboxPaths {
    /// Paths of the (existing) sandbox directory `dir`.
    pub fn new(dir: &Path) -> Result<Self, BackendError> {
        let dir = dir.canonicalize().map_err(|e| {
            BackendError::io(format!("cannot resolve the sandbox directory {}", dir.display()), e)
        })?;
        Ok(SandboxPaths { dir })
    }

    /// Paths of `dir` taken as is (tests, or a directory known to be canonical).
    #[cfg(test)]
    pub fn from_canonical(dir: PathBuf) -> Self {
        SandboxPaths { dir }
    }

    /// The sandbox directory (absolute, canonical).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `disk.qcow2`.
    pub fn disk(&self) -> PathBuf {
        self.dir.join(DISK_FILE)
    }

    /// `qemu.pid`.
    pub fn pidfile(&self) -> PathBuf {
        self.dir.join(PID_FILE)
    }

    /// `qmp.sock`.
    pub fn qmp_socket(&self) -> PathBuf {
        self.dir.join(QMP_SOCKET)
    }

    /// `console.log`.
    pub fn console_log(&self) -> PathBuf {
        self.dir.join(CONSOLE_LOG)
    }

    /// `console.log.1`, the rotated console log.
    pub fn console_log_rotated(&self) -> PathBuf {
        self.dir.join(format!("{CONSOLE_LOG}.1"))
    }

    /// `console.lock`.
    pub fn console_lock(&self) -> PathBuf {
        self.dir.join("console.lock")
    }

    /// `qemu.log`.
    pub fn qemu_log(&self) -> PathBuf {
        self.dir.join(QEMU_LOG)
    }

    /// `qemu.exit`.
    pub fn qemu_exit(&self) -> PathBuf {
        self.dir.join(QEMU_EXIT)
    }

    /// `vm.json`.
    pub fn vm_record(&self) -> PathBuf {
        self.dir.join(VM_RECORD)
    }

    /// File name of agent port `index`'s socket.
    pub fn agent_socket_name(index: usize) -> String {
        format!("agent-{index}.sock")
    }

    /// `agent-<index>.sock`.
    pub fn agent_socket(&self, index: usize) -> PathBuf {
        self.dir.join(Self::agent_socket_name(index))
    }

    /// `agent-<index>.lock`.
    pub fn agent_lock(&self, index: usize) -> PathBuf {
        self.dir.join(format!("agent-{index}.lock"))
    }

    /// Files that only exist while QEMU runs (removed after it stopped).
    pub fn runtime_files(&self, agent_ports: usize) -> Vec<PathBuf> {
        let mut files = vec![self.pidfile(), self.qmp_socket()];
        files.extend((0..agent_ports).map(|i| self.agent_socket(i)));
        files
    }

    /// Every file this backend may create in the directory (removed by destroy).
    pub fn owned_files(&self, agent_ports: usize) -> Vec<PathBuf> {
        let mut files = self.runtime_files(agent_ports);
        files.extend((0..agent_ports).map(|i| self.agent_lock(i)));
        files.push(self.disk());
        files.push(self.dir.join(super::launch::VOLUME_PLACEHOLDER));
        files.push(self.console_log());
        files.push(self.console_log_rotated());
        files.push(self.console_lock());
        files.push(self.qemu_log());
        files.push(self.qemu_exit());
        files.push(self.vm_record());
        files.push(self.dir.join(format!("{VM_RECORD}.tmp")));
        files
    }
}

/// Remove `path`; a missing file is not an error.
pub fn remove_if_exists(path: &Path) -> Result<(), BackendError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(BackendError::io(format!("cannot remove {}", path.display()), e)),
    }
}

/// Connect to the unix socket at `path`, whatever its length (see the module doc).
pub fn connect_unix(path: &Path) -> io::Result<UnixStream> {
    if path.as_os_str().len() <= SUN_PATH_MAX {
        return UnixStream::connect(path);
    }
    let (parent, name) = match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => (parent, name),
        _ => {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "socket path has no file name"))
        }
    };
    // The directory handle must stay open until connect() has resolved the path.
    let dir = File::open(parent)?;
    let mut short = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    short.push(name);
    let stream = UnixStream::connect(&short);
    drop(dir);
    stream
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn owned_files_cover_runtime_files() {
        let paths = SandboxPaths::from_canonical(PathBuf::from("/s"));
        let owned = paths.owned_files(2);
        for f in paths.runtime_files(2) {
            assert!(owned.contains(&f), "{}", f.display());
        }
        assert!(owned.contains(&PathBuf::from("/s/agent-1.lock")));
        assert!(owned.contains(&PathBuf::from("/s/disk.qcow2")));
    }

    #[test]
    fn connects_to_sockets_with_paths_longer_than_sun_path() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let deep = tmp.path().join("d".repeat(60)).join("e".repeat(60));
        std::fs::create_dir_all(&deep).expect("mkdir");
        let socket = deep.join("agent-0.sock");
        assert!(socket.as_os_str().len() > SUN_PATH_MAX);
        // Bind through the same /proc/self/fd trick QEMU's cwd gives it.
        let dir = File::open(&deep).expect("open dir");
        let listener =
            UnixListener::bind(format!("/proc/self/fd/{}/agent-0.sock", dir.as_raw_fd()))
                .expect("bind");
        assert!(socket.exists());
        let client = connect_unix(&socket).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        drop((client, server));
    }
}
