//! Reading a shell's output from a cursor and typing into it.

use super::*;

impl Shells {
    pub(super) fn read(&self, req: &ShellReadRequest) -> ShellResult<ShellOutput> {
        if req.max_chars == 0 {
            return Err((ErrorKind::Invalid, "max_chars must be positive".to_owned()));
        }
        let shell = self.get(&req.shell_id)?;
        let mut state = shell.lock();
        if let Some(idle_ms) = req.wait_for_idle_ms {
            let idle = Duration::from_millis(idle_ms.max(1));
            let started = Instant::now();
            let overall = started + Duration::from_millis(SHELL_MAX_WAIT_MS);
            let mut idle_deadline = started + idle;
            let mut seen = state.output.len_chars();
            loop {
                let available = seen.saturating_sub(req.cursor.min(seen));
                let ended = state.exit_code.is_some() && state.reader_done;
                let now = Instant::now();
                if available >= req.max_chars || ended || now >= idle_deadline || now >= overall {
                    break;
                }
                let until = idle_deadline.min(overall);
                state = shell
                    .changed
                    .wait_timeout(state, until - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                let len = state.output.len_chars();
                if len > seen {
                    seen = len;
                    idle_deadline = Instant::now() + idle;
                }
            }
        }
        let (cursor, output, next_cursor) = state.output.read(req.cursor, req.max_chars);
        let truncated = next_cursor < state.output.len_chars();
        Ok(ShellOutput { shell: shell.status(&state), cursor, next_cursor, output, truncated })
    }

    pub(super) fn write(&self, id: &str, input: &str) -> ShellResult<ShellStatus> {
        let shell = self.get(id)?;
        if shell.lock().exit_code.is_some() {
            return Err((ErrorKind::Invalid, format!("shell {id} is not running")));
        }
        let deadline = Instant::now() + WRITE_TIMEOUT;
        let mut rest = input.as_bytes();
        let mut master = &shell.master;
        while !rest.is_empty() {
            match master.write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err((
                            ErrorKind::Io,
                            format!(
                                "shell {id} did not accept input for {}s (it is not reading); \
                                 {} bytes were not written",
                                WRITE_TIMEOUT.as_secs(),
                                rest.len()
                            ),
                        ));
                    }
                    pty::poll(shell.master.as_fd(), libc::POLLOUT, deadline - now)
                        .map_err(|e| io_err("poll", e))?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err("write to the shell", e)),
            }
        }
        let status = shell.status(&shell.lock());
        Ok(status)
    }
}
