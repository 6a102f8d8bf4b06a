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

/// Characters between two index marks of an [`OutputBuffer`].
const MARK_STRIDE: u64 = 1024;

/// The output of one shell: text plus a sparse character index, fed with raw bytes.
#[derive(Debug, Default)]
pub struct OutputBuffer {
    /// Committed text: what readers see.
    text: String,
    /// Characters in `text`.
    chars: u64,
    /// `marks[k]` is the byte offset of character `k * MARK_STRIDE`.
    marks: Vec<usize>,
    /// Trailing bytes of an incomplete UTF-8 sequence.
    partial: Vec<u8>,
    /// Decoded text not yet committed because its end could start a secret.
    pending: String,
    /// Values to redact, longest first, none empty.
    redact: Vec<String>,
}

impl OutputBuffer {
    /// An empty buffer that replaces each of `redact` with [`REDACTED`].
    pub fn new(redact: &[String]) -> Self {
        let mut redact: Vec<String> = redact.iter().filter(|s| !s.is_empty()).cloned().collect();
        redact.sort_by_key(|s| std::cmp::Reverse(s.len()));
        redact.dedup();
        OutputBuffer { redact, ..OutputBuffer::default() }
    }

    /// Number of committed characters.
    pub fn len_chars(&self) -> u64 {
        self.chars
    }

    /// Whether text is held back (for redaction or as an incomplete UTF-8 sequence).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty() || !self.partial.is_empty()
    }

    /// Append raw terminal bytes.
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        let mut decoded = String::new();
        let mut rest: &[u8] = &self.partial;
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    decoded.push_str(text);
                    rest = &[];
                    break;
                }
                Err(err) => {
                    let (valid, after) = rest.split_at(err.valid_up_to());
                    // `valid` is valid UTF-8 by the contract of `valid_up_to`.
                    decoded.push_str(&String::from_utf8_lossy(valid));
                    match err.error_len() {
                        Some(n) => {
                            decoded.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[n..];
                        }
                        None => {
                            rest = after;
                            break;
                        }
                    }
                }
            }
        }
        self.partial = rest.to_vec();
        self.pending.push_str(&decoded);
        self.commit(false);
    }

    /// Release everything held back (at the end of output or after a quiet period).
    pub fn flush(&mut self) {
        if !self.partial.is_empty() {
            let tail = String::from_utf8_lossy(&self.partial).into_owned();
            self.partial.clear();
            self.pending.push_str(&tail);
        }
        self.commit(true);
    }

    fn commit(&mut self, all: bool) {
        if self.pending.is_empty() {
            return;
        }
        for secret in &self.redact {
            if self.pending.contains(secret.as_str()) {
                self.pending = self.pending.replace(secret.as_str(), REDACTED);
            }
        }
        let keep_from = if all { self.pending.len() } else { self.hold_back_start() };
        let rest = self.pending.split_off(keep_from);
        let ready = std::mem::replace(&mut self.pending, rest);
        self.append(&ready);
    }

    /// Byte offset in `pending` from which the rest is a proper prefix of a secret
    /// (so it must wait for more output); `pending.len()` when nothing is held back.
    fn hold_back_start(&self) -> usize {
        let mut start = self.pending.len();
        for secret in &self.redact {
            let longest = secret.len().saturating_sub(1).min(self.pending.len());
            for len in (1..=longest).rev() {
                let from = self.pending.len() - len;
                if from < start
                    && self.pending.is_char_boundary(from)
                    && secret.starts_with(&self.pending[from..])
                {
                    start = from;
                    break;
                }
            }
        }
        start
    }

    fn append(&mut self, text: &str) {
        for (offset, _) in text.char_indices() {
            if self.chars.is_multiple_of(MARK_STRIDE) {
                self.marks.push(self.text.len() + offset);
            }
            self.chars += 1;
        }
        self.text.push_str(text);
    }

    /// Byte offset of character `index` (`index <= len_chars()`).
    fn byte_of(&self, index: u64) -> usize {
        if index >= self.chars {
            return self.text.len();
        }
        let mark = usize::try_from(index / MARK_STRIDE).unwrap_or(usize::MAX);
        let base = self.marks.get(mark).copied().unwrap_or(0);
        let skip = usize::try_from(index % MARK_STRIDE).unwrap_or(0);
        self.text[base..].char_indices().nth(skip).map_or(self.text.len(), |(i, _)| base + i)
    }

    /// Up to `max_chars` characters from `cursor` (clamped to the length): returns the
    /// clamped cursor, the text and the cursor after it.
    pub fn read(&self, cursor: u64, max_chars: u64) -> (u64, String, u64) {
        let start = cursor.min(self.chars);
        let end = start.saturating_add(max_chars).min(self.chars);
        let text = self.text[self.byte_of(start)..self.byte_of(end)].to_owned();
        (start, text, end)
    }
}

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

fn run_reader(shell: Arc<Shell>) {
    let mut chunk = vec![0u8; 16 * 1024];
    let mut master = &shell.master;
    loop {
        if shell.closing.load(Ordering::Relaxed) {
            break;
        }
        let revents = match pty::poll(shell.master.as_fd(), libc::POLLIN, REDACT_FLUSH) {
            Ok(r) => r,
            Err(_) => break,
        };
        if revents == 0 {
            let mut state = shell.lock();
            if state.output.has_pending() {
                state.output.flush();
                drop(state);
                shell.changed.notify_all();
            }
            continue;
        }
        match master.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                shell.lock().output.push_bytes(&chunk[..n]);
                shell.changed.notify_all();
            }
            Err(e)
                if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            // EIO: every process holding the terminal side has gone.
            Err(_) => break,
        }
    }
    let mut state = shell.lock();
    state.output.flush();
    state.reader_done = true;
    drop(state);
    shell.changed.notify_all();
}

fn run_waiter(shell: Arc<Shell>, mut child: Child) {
    let code = match child.wait() {
        Ok(status) => status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
        Err(_) => -1,
    };
    let mut state = shell.lock();
    state.exit_code = Some(code);
    state.ended_at = Some(Instant::now());
    drop(state);
    shell.changed.notify_all();
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

    /// Start a shell in `cwd` (a host path already checked to be a directory).
    fn open(&self, req: &ShellOpenRequest, cwd: &Path) -> ShellResult<ShellStatus> {
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

    fn read(&self, req: &ShellReadRequest) -> ShellResult<ShellOutput> {
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

    fn write(&self, id: &str, input: &str) -> ShellResult<ShellStatus> {
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

    fn signal(&self, id: &str, name: &str) -> ShellResult<ShellStatus> {
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

    fn resize(&self, id: &str, cols: u16, rows: u16) -> ShellResult<ShellStatus> {
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
    fn close(&self, id: &str) -> ShellResult<ShellStatus> {
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

    /// Close every shell (best effort), e.g. before the guest stops.
    pub fn close_all(&self) {
        for id in self.ids() {
            let _ = self.close(&id);
        }
    }
}

fn spawn_shell(slave: &File, cwd: &Path, env: &BTreeMap<String, String>) -> io::Result<Child> {
    let attempt = |program: &str, args: &[&str]| -> io::Result<Child> {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(cwd)
            .env("TERM", "xterm-256color")
            .env("PS1", "pyro$ ")
            .env("PROMPT_COMMAND", "")
            .envs(env)
            .stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave.try_clone()?));
        // SAFETY: the closure runs in the forked child before exec and only calls
        // setsid(2) and ioctl(2) through `pty::become_session_leader_on_stdin`, both
        // async-signal-safe; it allocates nothing.
        // JUSTIFICATION: the shell must lead its own session with the PTY as its
        // controlling terminal, for job control, Ctrl-C and SIGHUP on close.
        unsafe {
            cmd.pre_exec(pty::become_session_leader_on_stdin);
        }
        cmd.spawn()
    };
    match attempt("bash", &["--noprofile", "--norc", "-i"]) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => attempt("/bin/sh", &["-i"]),
        other => other,
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

    fn buffer_text(buf: &OutputBuffer) -> String {
        buf.read(0, u64::MAX).1
    }

    #[test]
    fn cursor_reads_in_chunks_concatenate_to_the_whole() {
        let mut buf = OutputBuffer::new(&[]);
        let text: String = (0..5000).map(|i| format!("{i}é✓\n")).collect();
        for piece in text.as_bytes().chunks(7) {
            buf.push_bytes(piece);
        }
        buf.flush();
        assert_eq!(buffer_text(&buf), text);
        assert_eq!(buf.len_chars(), text.chars().count() as u64);
        for step in [1u64, 3, 1000, 1024, 1025, 70_000] {
            let mut cursor = 0;
            let mut joined = String::new();
            loop {
                let (start, part, next) = buf.read(cursor, step);
                assert_eq!(start, cursor);
                assert_eq!(next - start, part.chars().count() as u64);
                if part.is_empty() {
                    break;
                }
                joined.push_str(&part);
                cursor = next;
            }
            assert_eq!(joined, text, "step {step}");
        }
        // A cursor past the end is clamped.
        let (start, part, next) = buf.read(u64::MAX, 10);
        assert_eq!((start, part.as_str(), next), (buf.len_chars(), "", buf.len_chars()));
    }

    #[test]
    fn split_and_invalid_utf8_is_decoded_with_replacement() {
        let mut buf = OutputBuffer::new(&[]);
        let bytes = "a✓b".as_bytes();
        buf.push_bytes(&bytes[..2]); // 'a' + first byte of ✓
        assert_eq!(buffer_text(&buf), "a");
        assert!(buf.has_pending());
        buf.push_bytes(&bytes[2..]);
        assert_eq!(buffer_text(&buf), "a✓b");
        buf.push_bytes(b"\xff-");
        assert_eq!(buffer_text(&buf), "a✓b\u{fffd}-");
        buf.push_bytes(b"\xe2\x9c");
        buf.flush();
        assert_eq!(buffer_text(&buf), "a✓b\u{fffd}-\u{fffd}");
    }

    #[test]
    fn secrets_are_redacted_even_across_chunks() {
        let mut buf = OutputBuffer::new(&["hunter2".to_owned(), "".to_owned()]);
        buf.push_bytes(b"pw=hun");
        assert_eq!(buffer_text(&buf), "pw=", "a possible secret prefix is held back");
        buf.push_bytes(b"ter2 ok hunter2\r\nhun");
        assert_eq!(buffer_text(&buf), "pw=[REDACTED] ok [REDACTED]\r\n");
        buf.push_bytes(b"gry");
        assert_eq!(buffer_text(&buf), "pw=[REDACTED] ok [REDACTED]\r\nhungry");
        buf.push_bytes(b"h");
        buf.flush();
        assert!(buffer_text(&buf).ends_with("hungryh"));
    }

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
