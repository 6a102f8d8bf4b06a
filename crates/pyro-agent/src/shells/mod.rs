//! Interactive shells on pseudo-terminals.
//!
//! # Behaviour
//!
//! - [`Shells::open`] starts `bash --noprofile --norc -i` (or `/bin/sh -i` when there
//!   is no bash) on a new PTY, in its own session with the PTY as controlling
//!   terminal, with `TERM=xterm-256color`, `PS1='pyro$ '`, `PROMPT_COMMAND=` and the
//!   request's variables on top of the agent's environment.
//! - A reader thread appends everything the terminal prints to an in-memory
//!   [`OutputBuffer`]: the whole history since open, decoded as UTF-8 (invalid bytes
//!   become U+FFFD) and redacted. Cursors are character offsets into it, so a reader
//!   that always continues from the previous `next_cursor` neither loses nor repeats
//!   output.
//! - A waiter thread reaps the shell and records its exit code (`128 + N` when killed
//!   by signal N). The shell's state is `running` until then.
//! - Shells live in the agent process, not in the host connection that opened them:
//!   any later connection (another `pyro` invocation) can read, write, signal and
//!   close them by id.
//!
//! # Limitations
//!
//! - Output is kept in memory for the shell's whole life (like the reference
//!   implementation); a shell printing gigabytes uses that much guest memory.
//! - Redaction holds back a trailing part of the output that could be the start of a
//!   secret until more output arrives or the terminal has been quiet for
//!   [`REDACT_FLUSH`]; a secret printed with a longer pause in the middle is not
//!   recognised.

use crate::pty;
use pyro_protocol::{ErrorKind, Response, ShellOpenRequest, ShellOutput, ShellReadRequest};
use pyro_protocol::{ShellStatus, SHELL_MAX_WAIT_MS};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// Replacement text of a redacted secret value.
pub const REDACTED: &str = "[REDACTED]";

/// How long the terminal must be quiet before text held back for redaction is
/// released.
pub const REDACT_FLUSH: Duration = Duration::from_millis(100);

/// How long `close` waits after SIGHUP before it sends SIGKILL.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// How long a write waits for the terminal to accept input.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
mod control;
mod io_ops;
mod open;
mod output;
mod process;

pub use output::OutputBuffer;

#[derive(Debug)]
struct ShellState {
    output: OutputBuffer,
    exit_code: Option<i32>,
    ended_at: Option<Instant>,
    reader_done: bool,
    cols: u16,
    rows: u16,
}

#[derive(Debug)]
struct Shell {
    id: String,
    cwd: String,
    /// Pid of the shell, also its session and process group id.
    pid: u32,
    master: File,
    state: Mutex<ShellState>,
    changed: Condvar,
    /// Set by close: the reader stops and drops its reference.
    closing: AtomicBool,
}

impl Shell {
    fn lock(&self) -> MutexGuard<'_, ShellState> {
        // Holders only copy data; a panic cannot leave the state inconsistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn status(&self, state: &ShellState) -> ShellStatus {
        ShellStatus {
            shell_id: self.id.clone(),
            cwd: self.cwd.clone(),
            cols: state.cols,
            rows: state.rows,
            running: state.exit_code.is_none(),
            exit_code: state.exit_code,
            ended_ago_ms: state
                .ended_at
                .map(|t| u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)),
        }
    }

    /// Signal the foreground job and, for anything but INT, the shell's own group.
    fn signal(&self, signal: i32) {
        let foreground = pty::foreground_group(&self.master);
        if let Some(group) = foreground {
            pty::signal_group(group, signal);
        }
        let to_shell = signal != libc::SIGINT || foreground.is_none();
        if to_shell && foreground != Some(self.pid) {
            pty::signal_group(self.pid, signal);
        }
    }

    /// Wait until the shell exited or `timeout` passed; true when it exited.
    fn wait_exit(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        while state.exit_code.is_none() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

/// A failed shell request: protocol error kind and message.
type ShellResult<T> = Result<T, (ErrorKind, String)>;

fn io_err(what: &str, err: io::Error) -> (ErrorKind, String) {
    (ErrorKind::Io, format!("{what}: {err}"))
}

/// Map a signal name (`HUP`, `INT`, `TERM`, `KILL`, any case, optional `SIG`) to its
/// number.
pub fn signal_number(name: &str) -> Option<i32> {
    let upper = name.trim().to_ascii_uppercase();
    match upper.strip_prefix("SIG").unwrap_or(&upper) {
        "HUP" => Some(libc::SIGHUP),
        "INT" => Some(libc::SIGINT),
        "TERM" => Some(libc::SIGTERM),
        "KILL" => Some(libc::SIGKILL),
        _ => None,
    }
}

/// The interactive shells of one agent, by id.
#[derive(Debug, Default)]
pub struct Shells {
    table: Mutex<HashMap<String, Arc<Shell>>>,
}

impl Shells {
    fn table(&self) -> MutexGuard<'_, HashMap<String, Arc<Shell>>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, id: &str) -> ShellResult<Arc<Shell>> {
        self.table()
            .get(id)
            .cloned()
            .ok_or_else(|| (ErrorKind::NotFound, format!("shell '{id}' does not exist")))
    }

    /// Ids of the open shells, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.table().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Close every shell (best effort), e.g. before the guest stops.
    pub fn close_all(&self) {
        for id in self.ids() {
            let _ = self.close(&id);
        }
    }
}

fn to_response<T>(result: ShellResult<T>, ok: impl FnOnce(T) -> Response) -> Response {
    match result {
        Ok(value) => ok(value),
        Err((kind, message)) => Response::Error { kind, message },
    }
}

impl Shells {
    /// Perform one shell request; `cwd` resolves the open request's working directory.
    pub(crate) fn handle(
        &self,
        request: pyro_protocol::Request,
        cwd: impl FnOnce(&str) -> Result<std::path::PathBuf, crate::SandboxError>,
    ) -> Response {
        use pyro_protocol::Request;
        match request {
            Request::ShellOpen(req) => match cwd(&req.cwd) {
                Ok(dir) => to_response(self.open(&req, &dir), Response::Shell),
                Err(err) => Response::Error { kind: err.kind(), message: err.to_string() },
            },
            Request::ShellRead(req) => to_response(self.read(&req), Response::ShellOutput),
            Request::ShellWrite { shell_id, input } => {
                to_response(self.write(&shell_id, &input), Response::Shell)
            }
            Request::ShellSignal { shell_id, signal } => {
                to_response(self.signal(&shell_id, &signal), Response::Shell)
            }
            Request::ShellResize { shell_id, cols, rows } => {
                to_response(self.resize(&shell_id, cols, rows), Response::Shell)
            }
            Request::ShellClose { shell_id } => to_response(self.close(&shell_id), Response::Shell),
            _ => Response::Error {
                kind: ErrorKind::Invalid,
                message: "not a shell request".to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_are_case_insensitive() {
        assert_eq!(signal_number("int"), Some(libc::SIGINT));
        assert_eq!(signal_number("SIGKILL"), Some(libc::SIGKILL));
        assert_eq!(signal_number(" Hup "), Some(libc::SIGHUP));
        assert_eq!(signal_number("STOP"), None);
    }

    fn open_req(id: &str) -> ShellOpenRequest {
        ShellOpenRequest {
            shell_id: id.to_owned(),
            cwd: "/workspace".to_owned(),
            cols: 80,
            rows: 24,
            env: BTreeMap::from([("PYRO_SHELL_TEST".to_owned(), "from-env".to_owned())]),
            redact: vec!["s3cr3t-value".to_owned()],
        }
    }

    fn read_until(shells: &Shells, id: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = shells
                .read(&ShellReadRequest {
                    shell_id: id.to_owned(),
                    cursor: 0,
                    max_chars: 1 << 20,
                    wait_for_idle_ms: Some(100),
                })
                .expect("read");
            if out.output.contains(needle) {
                return out.output;
            }
            assert!(Instant::now() < deadline, "{needle:?} never appeared in {:?}", out.output);
        }
    }

    #[test]
    fn a_real_shell_runs_commands_resizes_signals_and_closes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shells = Shells::default();
        let status = shells.open(&open_req("abc123"), dir.path()).expect("open");
        assert!(status.running);
        assert_eq!((status.cols, status.rows), (80, 24));
        let dup = shells.open(&open_req("abc123"), dir.path()).expect_err("duplicate id");
        assert_eq!(dup.0, ErrorKind::Invalid);

        shells.write("abc123", "echo \"[$PYRO_SHELL_TEST] [$TERM] $(pwd)\"\n").expect("write");
        let text = read_until(&shells, "abc123", "[from-env] [xterm-256color]");
        let cwd = dir.path().canonicalize().expect("canon");
        assert!(text.contains(cwd.to_str().expect("utf8")), "{text}");
        assert!(text.contains("pyro$ "), "prompt missing: {text}");

        shells.write("abc123", "echo s3cr3t-value; echo \"redacted-$((1+1))\"\n").expect("write");
        let text = read_until(&shells, "abc123", "redacted-2");
        assert!(!text.contains("s3cr3t-value"), "{text}");
        // Once in the echoed command line, once in its output.
        assert_eq!(text.matches("[REDACTED]").count(), 2, "{text}");

        shells.resize("abc123", 101, 33).expect("resize");
        shells.write("abc123", "stty size\n").expect("write");
        read_until(&shells, "abc123", "33 101");

        shells.write("abc123", "sleep 100\n").expect("write");
        thread::sleep(Duration::from_millis(300));
        let started = Instant::now();
        shells.signal("abc123", "int").expect("signal");
        shells.write("abc123", "echo \"after-$((1+1))\"\n").expect("write");
        read_until(&shells, "abc123", "after-2");
        assert!(started.elapsed() < Duration::from_secs(10));

        let closed = shells.close("abc123").expect("close");
        assert!(!closed.running);
        assert!(closed.exit_code.is_some());
        assert!(shells.ids().is_empty());
        let gone = shells.write("abc123", "x").expect_err("closed shell");
        assert_eq!(gone.0, ErrorKind::NotFound);
    }

    #[test]
    fn the_sandbox_serves_shells_in_guest_mode_only() {
        use crate::Sandbox;
        use pyro_protocol::Request;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        let open = |cwd: &str| {
            let mut req = open_req("sb1");
            req.cwd = cwd.to_owned();
            Request::ShellOpen(req)
        };
        match Sandbox::host_compat(dir.path()).handle(open("/workspace")) {
            Response::Error { kind: ErrorKind::Unsupported, message } => {
                assert!(message.contains("interactive shells require guest execution"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        let guest = Sandbox::guest(dir.path()).with_power_off(false);
        for (cwd, kind) in [
            ("/tmp", ErrorKind::PathEscape),
            ("/workspace/missing", ErrorKind::NotFound),
            ("/workspace/../etc", ErrorKind::PathEscape),
        ] {
            match guest.handle(open(cwd)) {
                Response::Error { kind: k, .. } => assert_eq!(k, kind, "{cwd}"),
                other => panic!("{cwd}: {other:?}"),
            }
        }
        match guest.handle(open("/workspace/sub")) {
            Response::Shell(status) => {
                assert_eq!(status.cwd, "/workspace/sub");
                assert!(status.running);
            }
            other => panic!("{other:?}"),
        }
        let read = Request::ShellRead(ShellReadRequest {
            shell_id: "nope".into(),
            cursor: 0,
            max_chars: 10,
            wait_for_idle_ms: None,
        });
        match guest.handle(read) {
            Response::Error { kind: ErrorKind::NotFound, message } => {
                assert_eq!(message, "shell 'nope' does not exist")
            }
            other => panic!("{other:?}"),
        }
        match guest.handle(Request::ShellClose { shell_id: "sb1".into() }) {
            Response::Shell(status) => assert!(!status.running),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_exited_shell_reports_its_code_and_refuses_input() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shells = Shells::default();
        shells.open(&open_req("exit1"), dir.path()).expect("open");
        shells.write("exit1", "exit 7\n").expect("write");
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            let out = shells
                .read(&ShellReadRequest {
                    shell_id: "exit1".into(),
                    cursor: 0,
                    max_chars: 10,
                    wait_for_idle_ms: None,
                })
                .expect("read");
            if !out.shell.running {
                break out.shell;
            }
            assert!(Instant::now() < deadline, "shell did not exit");
            thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(status.exit_code, Some(7));
        assert!(status.ended_ago_ms.is_some());
        let err = shells.write("exit1", "echo\n").expect_err("not running");
        assert_eq!(err.1, "shell exit1 is not running");
        let err = shells.signal("exit1", "INT").expect_err("not running");
        assert_eq!(err.1, "shell exit1 is not running");
        assert_eq!(shells.close("exit1").expect("close").exit_code, Some(7));
    }
}
