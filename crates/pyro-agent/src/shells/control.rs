//! Signals, terminal size and closing a shell.

use super::*;

impl Shells {
    pub(super) fn signal(&self, id: &str, name: &str) -> ShellResult<ShellStatus> {
        let Some(number) = signal_number(name) else {
            return Err((
                ErrorKind::Invalid,
                "signal_name must be one of: HUP, INT, TERM, KILL".to_owned(),
            ));
        };
        let shell = self.get(id)?;
        if shell.lock().exit_code.is_some() {
            return Err((ErrorKind::Invalid, format!("shell {id} is not running")));
        }
        shell.signal(number);
        let status = shell.status(&shell.lock());
        Ok(status)
    }

    pub(super) fn resize(&self, id: &str, cols: u16, rows: u16) -> ShellResult<ShellStatus> {
        if cols == 0 || rows == 0 {
            return Err((ErrorKind::Invalid, "cols and rows must be positive".to_owned()));
        }
        let shell = self.get(id)?;
        pty::set_size(&shell.master, cols, rows).map_err(|e| io_err("resize", e))?;
        let mut state = shell.lock();
        state.cols = cols;
        state.rows = rows;
        Ok(shell.status(&state))
    }

    /// End a shell: SIGHUP, up to [`CLOSE_GRACE`], then SIGKILL; then forget it.
    pub(super) fn close(&self, id: &str) -> ShellResult<ShellStatus> {
        let shell = self.get(id)?;
        if shell.lock().exit_code.is_none() {
            shell.signal(libc::SIGHUP);
            if !shell.wait_exit(CLOSE_GRACE) {
                shell.signal(libc::SIGKILL);
                shell.wait_exit(Duration::from_secs(2));
            }
        }
        // Give the reader a moment to collect the last output, then stop it.
        {
            let deadline = Instant::now() + REDACT_FLUSH * 3;
            let mut state = shell.lock();
            while !state.reader_done && Instant::now() < deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                state = shell
                    .changed
                    .wait_timeout(state, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        shell.closing.store(true, Ordering::Relaxed);
        self.table().remove(id);
        let status = shell.status(&shell.lock());
        Ok(status)
    }
}
