//! Running one command to completion.
//!
//! # Behaviour
//!
//! - The command runs as `/bin/sh -c <command>` with the cached login environment
//!   ([`crate::login_env`]) in guest mode, else as `/bin/sh -lc <command>`; stdin is
//!   `/dev/null`, and it runs in a new session (so a new process group whose id is the
//!   shell's pid).
//! - stdout and stderr are drained concurrently by two threads. Each keeps at most
//!   `max_output_bytes`; the rest is read and dropped, and `truncated` is set.
//! - At the timeout the whole process group gets SIGKILL; the result then has exit
//!   code 124 and `timed_out`. A process killed by signal N reports `128 + N` and the
//!   signal.
//! - When the shell has exited, output is collected until both pipes reach EOF, but at
//!   most [`PIPE_GRACE`] longer while something else still holds a pipe open: a
//!   background process (a server started with `&`) does not hold the answer back. A
//!   pipe with no writer left is always read to its end (up to [`PIPE_DRAIN_MAX`]): in
//!   a starved guest the reader thread may run long after the shell exited, and its
//!   output must not be lost. Its later output is drained
//!   and discarded so it never blocks on a full pipe; background processes that are
//!   still running when the shell exits are left alone.

use crate::error::SandboxError;
use crate::sys;
use base64::Engine as _;
use pyro_protocol::{ExecChunk, ExecExit, ExecOutput, ExecWait};
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// How long to keep reading output after the shell exited while something else still
/// holds the pipes open.
pub const PIPE_GRACE: Duration = Duration::from_millis(200);

/// Longest to wait, after the shell exited, for output of pipes that no process holds
/// open any more (their readers are sure to reach EOF; only a starved guest is slow).
pub const PIPE_DRAIN_MAX: Duration = Duration::from_secs(30);

/// Exit code reported when the timeout fired.
pub const TIMEOUT_EXIT_CODE: i32 = 124;

/// PATH given to commands in `host_compat` mode when the agent itself has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Environment a command starts with.
#[derive(Debug, Clone)]
pub(crate) enum BaseEnv {
    /// The agent's own environment, through a login shell (`sh -lc`).
    Inherit,
    /// Exactly these variables (the captured login environment), with `sh -c`.
    Login(crate::login_env::EnvVars),
    /// Only PATH (the agent's, or a default), HOME and `LANG=C.UTF-8`.
    Clean {
        /// Value of HOME.
        home: std::path::PathBuf,
    },
}

/// Everything needed to run a command.
#[derive(Debug)]
pub(crate) struct ExecPlan<'a> {
    pub command: &'a str,
    pub cwd: &'a Path,
    pub base_env: BaseEnv,
    pub env: &'a BTreeMap<String, String>,
    pub timeout: Duration,
    pub max_output_bytes: usize,
}

#[derive(Debug, Default)]
struct Stream {
    buf: Vec<u8>,
    truncated: bool,
    done: bool,
    /// Set once the command ended: further output is dropped.
    detached: bool,
}

/// How the command ended, recorded by [`supervise`].
#[derive(Debug, Clone, Copy)]
struct End {
    exit_code: i32,
    signal: Option<i32>,
    timed_out: bool,
    killed: bool,
    duration_ms: u64,
}

#[derive(Debug, Default)]
struct State {
    streams: [Stream; 2],
    /// The read ends of the command's stdout and stderr pipes, owned by the reader
    /// threads; open while the stream is not `done` (a reader marks it done under the
    /// lock before it closes the pipe).
    pipes: [Option<std::os::fd::RawFd>; 2],
    /// Set once the shell was reaped: its process group id may be reused from then on.
    reaped: bool,
    /// The shell's exit status once reaped (`Err` when waiting for it failed).
    status: Option<Result<ExitStatus, String>>,
    /// Set once the command ended and its output is complete (or the grace ran out);
    /// `Err` when waiting for it failed.
    end: Option<Result<End, String>>,
}

impl State {
    /// Whether every stream still being read comes from a pipe without writers: its
    /// reader has output left to append (or EOF to see), and nothing can add more.
    fn only_writerless_pipes_open(&self) -> bool {
        self.streams.iter().zip(self.pipes).all(|(stream, pipe)| {
            stream.done || pipe.is_some_and(|fd| sys::pipe_writers_gone(fd).unwrap_or(false))
        })
    }
}

#[derive(Debug, Default)]
struct Capture {
    state: Mutex<State>,
    changed: Condvar,
    /// Set by [`Running::kill`] before it signals the group.
    killed: AtomicBool,
    /// Tests only: how long the reader threads wait before their first read (a guest
    /// too starved to schedule them).
    #[cfg(test)]
    reader_delay: Duration,
}

impl Capture {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A reader thread cannot panic while holding the lock (it only copies bytes),
        // and the data stays consistent even if one did, so poisoning is ignored.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn spawn_reader(
    capture: Arc<Capture>,
    index: usize,
    mut pipe: impl Read + Send + 'static,
    cap: usize,
) -> std::io::Result<()> {
    thread::Builder::new().name("pyro-exec-output".into()).spawn(move || {
        #[cfg(test)]
        thread::sleep(capture.reader_delay);
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = match pipe.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let mut state = capture.lock();
            let stream = &mut state.streams[index];
            if stream.detached {
                continue;
            }
            let room = cap.saturating_sub(stream.buf.len());
            let keep = n.min(room);
            stream.buf.extend_from_slice(&chunk[..keep]);
            if keep < n {
                stream.truncated = true;
            }
            drop(state);
            if keep > 0 {
                // A streamed read may be waiting for output.
                capture.changed.notify_all();
            }
        }
        capture.lock().streams[index].done = true;
        capture.changed.notify_all();
    })?;
    Ok(())
}

fn build_command(plan: &ExecPlan<'_>) -> Command {
    let mut cmd = Command::new("/bin/sh");
    let flag = if matches!(plan.base_env, BaseEnv::Login(_)) { "-c" } else { "-lc" };
    cmd.arg(flag).arg(plan.command).current_dir(plan.cwd);
    match &plan.base_env {
        BaseEnv::Inherit => {}
        BaseEnv::Login(vars) => {
            cmd.env_clear().envs(vars.iter().map(|(k, v)| (k, v)));
        }
        BaseEnv::Clean { home } => {
            let path = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
            cmd.env_clear().env("PATH", path).env("HOME", home).env("LANG", "C.UTF-8");
        }
    }
    cmd.envs(plan.env);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: the closure runs in the forked child before exec and only calls
    // `sys::new_session`, i.e. setsid(2), which is async-signal-safe and allocates
    // nothing.
    // JUSTIFICATION: the command and everything it starts must share one process group
    // of their own so the timeout can kill the whole tree.
    unsafe {
        cmd.pre_exec(sys::new_session);
    }
    cmd
}

/// A command spawned with its output readers and its waiter running.
struct Spawned {
    pgid: u32,
    capture: Arc<Capture>,
    started: Instant,
}

fn spawn(plan: &ExecPlan<'_>) -> Result<Spawned, SandboxError> {
    spawn_into(plan, Capture::default())
}

fn spawn_into(plan: &ExecPlan<'_>, capture: Capture) -> Result<Spawned, SandboxError> {
    let started = Instant::now();
    let mut child = build_command(plan).spawn().map_err(SandboxError::Spawn)?;
    let pgid = child.id();
    let capture = Arc::new(capture);
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    capture.lock().pipes = [
        stdout.as_ref().map(std::os::fd::AsRawFd::as_raw_fd),
        stderr.as_ref().map(std::os::fd::AsRawFd::as_raw_fd),
    ];
    if let Err(e) = start_readers(&capture, stdout, stderr, plan.max_output_bytes) {
        kill_and_reap(pgid, child);
        return Err(SandboxError::Spawn(e));
    }
    // The waiter owns the child and records its status; the process group id stays
    // valid until then, which only this thread decides.
    let waiter = Arc::clone(&capture);
    let spawned = thread::Builder::new().name("pyro-exec-wait".into()).spawn(move || {
        let status = child.wait().map_err(|e| e.to_string());
        let mut state = waiter.lock();
        state.reaped = true;
        state.status = Some(status);
        drop(state);
        waiter.changed.notify_all();
    });
    if let Err(e) = spawned {
        // The closure (and the child in it) came back with the error; we cannot reach
        // it, so kill the group and let the zombie be reaped by the init process.
        let _ = sys::kill_process_group(pgid, libc::SIGKILL);
        return Err(SandboxError::Spawn(e));
    }
    Ok(Spawned { pgid, capture, started })
}

/// Watching a spawned command: its timeout (the whole group is killed at it), then the
/// grace for its output, then its end. Quick commands are watched to their end by the
/// thread that started them; a streamed command that outlives its first answer is
/// handed to a thread of its own ([`start`]).
struct Supervision {
    pgid: u32,
    capture: Arc<Capture>,
    started: Instant,
    timeout_at: Instant,
    timed_out: bool,
}

impl Supervision {
    fn new(spawned: Spawned, timeout: Duration) -> Self {
        let Spawned { pgid, capture, started } = spawned;
        Supervision { pgid, capture, started, timeout_at: started + timeout, timed_out: false }
    }

    /// Watch until the command ended and its end is recorded (true), or until `until`
    /// passed or `wake` says so (false; call again to go on).
    fn step(&mut self, until: Option<Instant>, wake: impl Fn(&State) -> bool) -> bool {
        let mut state = self.capture.lock();
        while state.status.is_none() {
            let now = Instant::now();
            if !self.timed_out && now >= self.timeout_at {
                // The group may already be empty if the shell exited at the deadline.
                let _ = sys::kill_process_group(self.pgid, libc::SIGKILL);
                self.timed_out = true;
                continue;
            }
            if until.is_some_and(|u| now >= u) || wake(&state) {
                return false;
            }
            let limit =
                [(!self.timed_out).then_some(self.timeout_at), until].into_iter().flatten().min();
            state = match limit {
                Some(limit) => {
                    self.capture
                        .changed
                        .wait_timeout(state, limit.saturating_duration_since(now))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self.capture.changed.wait(state).unwrap_or_else(PoisonError::into_inner),
            };
        }
        let exited = Instant::now();
        let mut grace_deadline = exited + PIPE_GRACE;
        while !(state.streams[0].done && state.streams[1].done) {
            let now = Instant::now();
            if now >= grace_deadline {
                if now < exited + PIPE_DRAIN_MAX && state.only_writerless_pipes_open() {
                    grace_deadline = now + PIPE_GRACE;
                    continue;
                }
                break;
            }
            state = self
                .capture
                .changed
                .wait_timeout(state, grace_deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        for stream in state.streams.iter_mut() {
            stream.detached = true;
        }
        let killed = self.capture.killed.load(Ordering::SeqCst);
        let timed_out = self.timed_out;
        let end = match state.status.take() {
            Some(Ok(status)) => {
                let signal = status.signal();
                let exit_code = if timed_out {
                    TIMEOUT_EXIT_CODE
                } else {
                    status.code().unwrap_or_else(|| 128 + signal.unwrap_or(0))
                };
                Ok(End {
                    exit_code,
                    signal,
                    timed_out,
                    killed: killed && !timed_out,
                    duration_ms: u64::try_from(self.started.elapsed().as_millis())
                        .unwrap_or(u64::MAX),
                })
            }
            Some(Err(message)) => Err(message),
            None => Err("the command's status was not recorded".to_owned()),
        };
        state.end = Some(end);
        drop(state);
        self.capture.changed.notify_all();
        true
    }
}

/// Run a command to completion as described in the module docs.
pub(crate) fn run(plan: &ExecPlan<'_>) -> Result<ExecOutput, SandboxError> {
    let spawned = spawn(plan)?;
    let capture = Arc::clone(&spawned.capture);
    Supervision::new(spawned, plan.timeout).step(None, |_| false);
    let mut state = capture.lock();
    let end = match state.end.take() {
        Some(Ok(end)) => end,
        Some(Err(message)) => {
            return Err(SandboxError::io("wait for", "/bin/sh", std::io::Error::other(message)))
        }
        None => {
            return Err(SandboxError::io(
                "wait for",
                "/bin/sh",
                std::io::Error::other("the command's end was not recorded"),
            ))
        }
    };
    let (out, err) = {
        let [out, err] = &mut state.streams;
        (std::mem::take(out), std::mem::take(err))
    };
    drop(state);
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(ExecOutput {
        stdout_b64: b64.encode(&out.buf),
        stderr_b64: b64.encode(&err.buf),
        truncated: out.truncated || err.truncated,
        exit_code: end.exit_code,
        signal: end.signal,
        timed_out: end.timed_out,
        duration_ms: end.duration_ms,
    })
}

/// A command started by [`start`], running (or ended) in the background.
#[derive(Debug)]
pub(crate) struct Running {
    capture: Arc<Capture>,
    pgid: u32,
    started: Instant,
}

/// Start a command with the semantics of [`run`]; its output is read with
/// [`Running::read`] while it runs. Watch it with [`Pending::watch`].
pub(crate) fn start(plan: &ExecPlan<'_>) -> Result<(Running, Pending), SandboxError> {
    let spawned = spawn(plan)?;
    let running = Running {
        capture: Arc::clone(&spawned.capture),
        pgid: spawned.pgid,
        started: spawned.started,
    };
    Ok((running, Pending(Supervision::new(spawned, plan.timeout))))
}

/// The supervision of a started command, not yet running anywhere.
pub(crate) struct Pending(Supervision);

impl Pending {
    /// Watch the command on this thread for up to `first` (or until it printed, with
    /// `wake_on_output`): a quick command has ended by then and cost no thread more
    /// than [`run`]; a longer one is handed to a supervisor thread of its own.
    pub(crate) fn watch(self, first: Duration, wake_on_output: bool) -> Result<(), SandboxError> {
        let mut supervision = self.0;
        let until = Instant::now() + first;
        let has_output = |state: &State| state.streams.iter().any(|s| !s.buf.is_empty());
        if supervision.step(Some(until), |state| wake_on_output && has_output(state)) {
            return Ok(());
        }
        let pgid = supervision.pgid;
        let spawned = thread::Builder::new().name("pyro-exec-supervisor".into()).spawn(move || {
            supervision.step(None, |_| false);
        });
        if let Err(e) = spawned {
            // Without a supervisor nothing would enforce the timeout: end the command.
            let _ = sys::kill_process_group(pgid, libc::SIGKILL);
            return Err(SandboxError::Spawn(e));
        }
        Ok(())
    }
}

impl Running {
    /// Output after the offsets, waiting as `wait` says; the exit once the command
    /// ended and nothing is left after this chunk.
    pub(crate) fn read(
        &self,
        stdout_offset: u64,
        stderr_offset: u64,
        wait: &ExecWait,
    ) -> Result<ExecChunk, SandboxError> {
        let offsets =
            [stdout_offset, stderr_offset].map(|o| usize::try_from(o).unwrap_or(usize::MAX));
        let wait_ms = wait.wait_ms.min(pyro_protocol::EXEC_MAX_WAIT_MS);
        let deadline = Instant::now() + Duration::from_millis(wait_ms);
        let max = usize::try_from(wait.max_bytes).unwrap_or(usize::MAX);
        let mut state = self.capture.lock();
        loop {
            for (stream, offset) in state.streams.iter().zip(offsets) {
                if offset > stream.buf.len() {
                    return Err(SandboxError::Invalid(format!(
                        "exec read offset {offset} is past the {} bytes of output",
                        stream.buf.len()
                    )));
                }
            }
            let has_new =
                state.streams.iter().zip(offsets).any(|(stream, offset)| stream.buf.len() > offset);
            let now = Instant::now();
            if state.end.is_some() || (wait.return_on_output && has_new) || now >= deadline {
                break;
            }
            state = self
                .capture
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut complete = true;
        let mut data = [String::new(), String::new()];
        for (i, (stream, offset)) in state.streams.iter().zip(offsets).enumerate() {
            let end = stream.buf.len().min(offset.saturating_add(max));
            complete &= end == stream.buf.len();
            data[i] = b64.encode(&stream.buf[offset..end]);
        }
        let truncated = state.streams.iter().any(|s| s.truncated);
        let exit = match (&state.end, complete) {
            (Some(Ok(end)), true) => Some(ExecExit {
                truncated,
                exit_code: end.exit_code,
                signal: end.signal,
                timed_out: end.timed_out,
                killed: end.killed,
                duration_ms: end.duration_ms,
            }),
            (Some(Err(message)), _) => {
                return Err(SandboxError::io(
                    "wait for",
                    "/bin/sh",
                    std::io::Error::other(message.clone()),
                ))
            }
            _ => None,
        };
        let [stdout_b64, stderr_b64] = data;
        Ok(ExecChunk {
            stdout_offset,
            stdout_b64,
            stderr_offset,
            stderr_b64,
            elapsed_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            exit,
        })
    }

    /// Kill the command's process group, unless it already ended.
    pub(crate) fn kill(&self) {
        let state = self.capture.lock();
        if !state.reaped {
            self.capture.killed.store(true, Ordering::SeqCst);
            // The group id stays valid until the supervisor reaps the shell; it marks
            // the reap under this lock right after `wait` returns (the only window, a
            // few instructions long, is between the reap and that mark).
            let _ = sys::kill_process_group(self.pgid, libc::SIGKILL);
        }
    }

    /// Whether the command ended.
    pub(crate) fn ended(&self) -> bool {
        self.capture.lock().end.is_some()
    }
}

fn start_readers(
    capture: &Arc<Capture>,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    cap: usize,
) -> std::io::Result<()> {
    let missing = || std::io::Error::other("child pipes missing");
    spawn_reader(Arc::clone(capture), 0, stdout.ok_or_else(missing)?, cap)?;
    spawn_reader(Arc::clone(capture), 1, stderr.ok_or_else(missing)?, cap)?;
    Ok(())
}

fn kill_and_reap(pgid: u32, mut child: Child) {
    let _ = sys::kill_process_group(pgid, libc::SIGKILL);
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(command: &str, timeout_ms: u64, max: usize) -> ExecOutput {
        let env = BTreeMap::from([("PYRO_TEST_VAR".to_owned(), "v a l".to_owned())]);
        let dir = std::env::temp_dir();
        let plan = ExecPlan {
            command,
            cwd: &dir,
            base_env: BaseEnv::Inherit,
            env: &env,
            timeout: Duration::from_millis(timeout_ms),
            max_output_bytes: max,
        };
        run(&plan).expect("exec")
    }

    fn decode(b64: &str) -> String {
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).expect("base64");
        String::from_utf8(bytes).expect("utf8")
    }

    #[test]
    fn output_of_a_reader_that_runs_late_is_kept() {
        // A starved guest: the shell exits and its pipes close, but the reader threads
        // get no CPU until well after the grace.
        let env = BTreeMap::new();
        let dir = std::env::temp_dir();
        let plan = ExecPlan {
            command: "echo late",
            cwd: &dir,
            base_env: BaseEnv::Inherit,
            env: &env,
            timeout: Duration::from_secs(10),
            max_output_bytes: 1024,
        };
        let late = Capture { reader_delay: PIPE_GRACE * 3, ..Capture::default() };
        let spawned = spawn_into(&plan, late).expect("spawn");
        let capture = Arc::clone(&spawned.capture);
        assert!(Supervision::new(spawned, Duration::from_secs(10)).step(None, |_| false));
        let state = capture.lock();
        assert_eq!(state.streams[0].buf, b"late\n");
        assert!(matches!(state.end, Some(Ok(End { exit_code: 0, .. }))));
    }

    #[test]
    fn a_background_writer_does_not_hold_the_answer() {
        let started = Instant::now();
        let out = exec("echo now; sleep 8 &", 10_000, 1024);
        assert_eq!(decode(&out.stdout_b64), "now\n");
        assert!(started.elapsed() < Duration::from_secs(6), "waited for the background sleep");
    }

    #[test]
    fn captures_both_streams_exit_code_and_env() {
        let out = exec("echo out; echo err >&2; echo \"$PYRO_TEST_VAR\"; exit 3", 10_000, 1024);
        assert_eq!(decode(&out.stdout_b64), "out\nv a l\n");
        assert_eq!(decode(&out.stderr_b64), "err\n");
        assert_eq!(out.exit_code, 3);
        assert_eq!(out.signal, None);
        assert!(!out.timed_out && !out.truncated);
    }

    #[test]
    fn stdin_is_empty_and_the_shell_leads_its_own_group() {
        let out = exec("cat; cut -d' ' -f5 /proc/$$/stat; echo $$", 10_000, 1024);
        let text = decode(&out.stdout_b64);
        let lines: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(lines.len(), 2, "{text:?}");
        assert_eq!(lines[0], lines[1], "pgid == pid of the shell");
    }

    #[test]
    fn login_base_env_is_exact_and_request_vars_win() {
        let vars = std::sync::Arc::new(vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("FROM_PROFILE".into(), "p".into()),
            ("PYRO_TEST_VAR".into(), "profile".into()),
        ]);
        let env = BTreeMap::from([("PYRO_TEST_VAR".to_owned(), "request".to_owned())]);
        let dir = std::env::temp_dir();
        let plan = ExecPlan {
            command: "echo \"$FROM_PROFILE $PYRO_TEST_VAR ${HOME-unset}\"; echo $0",
            cwd: &dir,
            base_env: BaseEnv::Login(vars),
            env: &env,
            timeout: Duration::from_secs(10),
            max_output_bytes: 1024,
        };
        let out = run(&plan).expect("exec");
        assert_eq!(decode(&out.stdout_b64), "p request unset\n/bin/sh\n");
    }

    #[test]
    fn signal_death_reports_128_plus_n() {
        let out = exec("kill -TERM $$", 10_000, 1024);
        assert_eq!(out.exit_code, 128 + libc::SIGTERM);
        assert_eq!(out.signal, Some(libc::SIGTERM));
        assert!(!out.timed_out);
    }
}
