//! The shell process: spawning it on the PTY, the reader thread that fills its output
//! buffer, and the waiter thread that reaps it.

use super::*;

pub(super) fn run_reader(shell: Arc<Shell>) {
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

pub(super) fn run_waiter(shell: Arc<Shell>, mut child: Child) {
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

pub(super) fn spawn_shell(
    slave: &File,
    cwd: &Path,
    env: &BTreeMap<String, String>,
) -> io::Result<Child> {
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
