//! Opening a shell: a new PTY, a shell in its own session on it, and its threads.

use super::process::{run_reader, run_waiter, spawn_shell};
use super::*;

impl Shells {
    /// Start a shell in `cwd` (a host path already checked to be a directory).
    pub(super) fn open(&self, req: &ShellOpenRequest, cwd: &Path) -> ShellResult<ShellStatus> {
        let valid_id = !req.shell_id.is_empty()
            && req.shell_id.len() <= 64
            && req.shell_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_id {
            return Err((ErrorKind::Invalid, format!("invalid shell id '{}'", req.shell_id)));
        }
        if req.cols == 0 || req.rows == 0 {
            return Err((ErrorKind::Invalid, "cols and rows must be positive".to_owned()));
        }
        if self.table().contains_key(&req.shell_id) {
            return Err((ErrorKind::Invalid, format!("shell '{}' already exists", req.shell_id)));
        }
        let terminal = pty::open(req.cols, req.rows).map_err(|e| io_err("cannot open a PTY", e))?;
        let child = spawn_shell(&terminal.slave, cwd, &req.env)
            .map_err(|e| io_err("cannot start the shell", e))?;
        // The child has its own copies of the terminal side; ours must go so that the
        // reader sees EIO once the shell and its jobs are gone.
        drop(terminal.slave);
        let pid = child.id();
        let shell = Arc::new(Shell {
            id: req.shell_id.clone(),
            cwd: req.cwd.clone(),
            pid,
            master: terminal.master,
            state: Mutex::new(ShellState {
                output: OutputBuffer::new(&req.redact),
                exit_code: None,
                ended_at: None,
                reader_done: false,
                cols: req.cols,
                rows: req.rows,
            }),
            changed: Condvar::new(),
            closing: AtomicBool::new(false),
        });
        let waiter = Arc::clone(&shell);
        let spawned = thread::Builder::new()
            .name(format!("pyro-shell-wait-{pid}"))
            .spawn(move || run_waiter(waiter, child));
        if let Err(e) = spawned {
            // The child went back with the closure; kill its group so it does not linger.
            pty::signal_group(pid, libc::SIGKILL);
            return Err(io_err("cannot start a thread", e));
        }
        let reader = Arc::clone(&shell);
        let spawned = thread::Builder::new()
            .name(format!("pyro-shell-read-{pid}"))
            .spawn(move || run_reader(reader));
        if let Err(e) = spawned {
            pty::signal_group(pid, libc::SIGKILL);
            return Err(io_err("cannot start a thread", e));
        }
        let status = shell.status(&shell.lock());
        self.table().insert(req.shell_id.clone(), shell);
        Ok(status)
    }
}
