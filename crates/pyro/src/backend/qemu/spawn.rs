//! Starting QEMU detached from pyro, the way a jailer does, instead of `-daemonize`.
//!
//! ```text
//! pyro ──fork──▶ A: setsid(), fork, _exit(0)            (pyro reaps A at once)
//!                   └──fork──▶ B, the supervisor: fork, report C's pid, stdio to
//!                              /dev/null, close every other file, waitpid(C), write
//!                              how C ended to the exit file, _exit
//!                                 └──▶ C: join the cgroups, no core dumps, no new
//!                                      privileges, drop to the sandbox's uid/gid,
//!                                      stdio, chdir, exec QEMU
//! ```
//!
//! Why not `-daemonize`: QEMU's seccomp filter is installed before it daemonizes, and
//! `spawn=deny` (no fork) and `elevateprivileges=deny` (no setsid) make a daemonizing
//! QEMU die. Detaching here lets every QEMU run under the whole filter.
//!
//! Why a supervisor: QEMU is not pyro's child (it lives on after pyro exits), so no pyro
//! process can learn its exit status; B can, and writes it to `qemu.exit` so a later
//! `status` can say why a guest stopped (e.g. SIGSYS from the seccomp filter). B keeps
//! pyro's identity (QEMU runs under another uid when pyro is root, so a QEMU that
//! breaks out of its device emulation cannot ptrace its supervisor), holds no file but
//! the exit file (locked with `flock` while it waits, so a reader can tell a record still
//! to come from none at all), and never execs.
//!
//! Why hand-written: std's `Command` cannot fork twice or keep a supervisor, and the
//! daemonizing crates detach the calling process, not a child. Between `fork` and
//! `exec` the children of a multi-threaded process may only make async-signal-safe
//! calls: everything (argv, envp, paths, files) is prepared before the first fork, and
//! the children only issue plain system calls on it.
//!
//! Errors of any child before `exec` come back through a close-on-exec pipe as
//! `(stage, errno)` records; end of file on that pipe means QEMU is running.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The user and group the detached program runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials {
    /// User id.
    pub uid: u32,
    /// Group id (also the only supplementary group).
    pub gid: u32,
}

/// What to start detached.
#[derive(Debug)]
pub struct DetachedCommand {
    /// The program (resolved through `PATH` when it has no `/`).
    pub program: PathBuf,
    /// Arguments after the program name.
    pub args: Vec<OsString>,
    /// Working directory of the program.
    pub cwd: PathBuf,
    /// Receives the program's stdout and stderr.
    pub log: File,
    /// Receives one line, `pid=<pid> exited=<code>` or `pid=<pid> signal=<n>`, when the
    /// program ends.
    pub exit_file: File,
    /// `cgroup.procs` files the program joins before `exec`.
    pub cgroup_procs: Vec<File>,
    /// Files the program inherits (their descriptor numbers stay the same).
    pub inherit: Vec<File>,
    /// Run as this user instead of pyro's (pyro must be root).
    pub credentials: Option<Credentials>,
}

/// Errors of [`spawn_detached`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// The program was not found.
    #[error("{0} not found")]
    NotFound(PathBuf),
    /// Preparing failed (a NUL in an argument, a pipe or fork that failed).
    #[error("cannot start {program}: {context}: {source}")]
    Prepare {
        /// The program.
        program: PathBuf,
        /// What failed.
        context: &'static str,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// A child failed before `exec`.
    #[error("cannot start {program}: {stage} failed: {source}")]
    Child {
        /// The program.
        program: PathBuf,
        /// The step that failed.
        stage: &'static str,
        /// Cause.
        #[source]
        source: io::Error,
    },
}

/// Steps a child reports failures of; the index is the record's tag.
const STAGES: &[&str] = &[
    "setsid",
    "fork (session)",
    "fork (supervisor)",
    "joining the cgroup",
    "dropping core dumps",
    "no_new_privs",
    "setgroups",
    "setgid",
    "setuid",
    "redirecting stdio",
    "chdir",
    "exec",
    "closing inherited files",
];
const STAGE_SETSID: u32 = 0;
const STAGE_FORK_SESSION: u32 = 1;
const STAGE_FORK_SUPERVISOR: u32 = 2;
const STAGE_CGROUP: u32 = 3;
const STAGE_CORE: u32 = 4;
const STAGE_NNP: u32 = 5;
const STAGE_SETGROUPS: u32 = 6;
const STAGE_SETGID: u32 = 7;
const STAGE_SETUID: u32 = 8;
const STAGE_STDIO: u32 = 9;
const STAGE_CHDIR: u32 = 10;
const STAGE_EXEC: u32 = 11;
const STAGE_CLOSE: u32 = 12;
/// Tag of the record that carries the program's pid.
const TAG_PID: u32 = 0xffff_fffe;

/// Find `program` in `PATH` unless it names a path.
fn resolve_program(program: &Path) -> Result<PathBuf, SpawnError> {
    if program.as_os_str().as_bytes().contains(&b'/') {
        return if program.is_file() {
            Ok(program.to_path_buf())
        } else {
            Err(SpawnError::NotFound(program.to_path_buf()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| SpawnError::NotFound(program.to_path_buf()))
}

fn cstring(program: &Path, value: &OsStr) -> Result<CString, SpawnError> {
    CString::new(value.as_bytes()).map_err(|e| SpawnError::Prepare {
        program: program.to_path_buf(),
        context: "an argument holds a NUL byte",
        source: io::Error::new(io::ErrorKind::InvalidInput, e),
    })
}

/// A NULL-terminated array of pointers into `strings` (which must outlive it).
fn pointer_array(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect()
}

/// A close-on-exec pipe: (read end, write end).
fn cloexec_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    // JUSTIFICATION: std has no pipe constructor that yields raw descriptors on 1.89.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Everything the children use, prepared before the first fork (no allocation after).
struct Prepared {
    program: CString,
    _args: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    _env: Vec<CString>,
    envp: Vec<*const libc::c_char>,
    cwd: CString,
    null: File,
    log: RawFd,
    exit_file: RawFd,
    cgroup_procs: Vec<RawFd>,
    inherit: Vec<RawFd>,
    /// Descriptors B keeps open (sorted): the exit file and the report pipe.
    supervisor_keeps: [RawFd; 2],
    credentials: Option<Credentials>,
    report: RawFd,
}

/// Start `command` detached (see the module doc); returns the program's pid once it
/// has been exec'd.
pub fn spawn_detached(command: &DetachedCommand) -> Result<i32, SpawnError> {
    let program = resolve_program(&command.program)?;
    let prepare_err = |context: &'static str| {
        let program = program.clone();
        move |source: io::Error| SpawnError::Prepare { program, context, source }
    };
    let program_c = cstring(&program, program.as_os_str())?;
    let mut args = vec![program_c.clone()];
    for arg in &command.args {
        args.push(cstring(&program, arg)?);
    }
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(key, value)| {
            let mut pair = key;
            pair.push("=");
            pair.push(value);
            CString::new(pair.as_bytes()).ok()
        })
        .collect();
    let null = File::open("/dev/null").map_err(prepare_err("opening /dev/null"))?;
    let (read_end, write_end) = cloexec_pipe().map_err(prepare_err("creating a pipe"))?;
    let mut keeps = [command.exit_file.as_raw_fd(), write_end.as_raw_fd()];
    keeps.sort_unstable();
    let prepared = Prepared {
        argv: pointer_array(&args),
        _args: args,
        envp: pointer_array(&env),
        _env: env,
        program: program_c,
        cwd: cstring(&program, command.cwd.as_os_str())?,
        null,
        log: command.log.as_raw_fd(),
        exit_file: command.exit_file.as_raw_fd(),
        cgroup_procs: command.cgroup_procs.iter().map(AsRawFd::as_raw_fd).collect(),
        inherit: command.inherit.iter().map(AsRawFd::as_raw_fd).collect(),
        supervisor_keeps: keeps,
        credentials: command.credentials,
        report: write_end.as_raw_fd(),
    };

    // SAFETY: fork has no memory-safety preconditions; the child only runs
    // `session_leader`, which makes async-signal-safe system calls on data prepared
    // above and never returns.
    // JUSTIFICATION: see the module doc (no std API forks twice).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(prepare_err("fork")(io::Error::last_os_error()));
    }
    if pid == 0 {
        session_leader(&prepared);
    }
    drop(write_end);
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid int; `pid` is our child.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            // ECHILD (someone else reaped A) is fine: the pipe tells what happened.
            break;
        }
    }
    let mut reports = Vec::new();
    // Each child writes at most two 8-byte records; 4 KiB bounds a misbehaving one.
    File::from(read_end)
        .take(4096)
        .read_to_end(&mut reports)
        .map_err(prepare_err("reading the start report"))?;
    let mut qemu_pid = None;
    for record in reports.chunks_exact(8) {
        let tag = u32::from_ne_bytes([record[0], record[1], record[2], record[3]]);
        let value = i32::from_ne_bytes([record[4], record[5], record[6], record[7]]);
        if tag == TAG_PID {
            qemu_pid = Some(value);
        } else {
            let stage = STAGES.get(tag as usize).copied().unwrap_or("an unknown step");
            let source = io::Error::from_raw_os_error(value);
            if tag == STAGE_EXEC && source.kind() == io::ErrorKind::NotFound {
                return Err(SpawnError::NotFound(program));
            }
            return Err(SpawnError::Child { program, stage, source });
        }
    }
    qemu_pid.ok_or_else(|| SpawnError::Child {
        program,
        stage: "reporting the pid",
        source: io::Error::other("the supervisor ended without a report"),
    })
}

/// Write a `(tag, value)` record to the report pipe.
fn report(fd: RawFd, tag: u32, value: i32) {
    let mut record = [0u8; 8];
    record[..4].copy_from_slice(&tag.to_ne_bytes());
    record[4..].copy_from_slice(&value.to_ne_bytes());
    // SAFETY: `record` is 8 readable bytes; a failed write cannot be reported anyway.
    unsafe {
        libc::write(fd, record.as_ptr().cast(), record.len());
    }
}

/// Report the current errno for `stage` and exit the child.
fn fail(p: &Prepared, stage: u32) -> ! {
    let errno = io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
    report(p.report, stage, errno);
    // SAFETY: _exit is async-signal-safe and ends this child without running atexit
    // handlers or destructors that belong to the parent.
    unsafe { libc::_exit(127) }
}

/// Child A: leave pyro's session and process group, fork the supervisor, exit.
fn session_leader(p: &Prepared) -> ! {
    // SAFETY: plain system calls in a forked child (see `spawn_detached`).
    unsafe {
        if libc::setsid() < 0 {
            fail(p, STAGE_SETSID);
        }
        match libc::fork() {
            -1 => fail(p, STAGE_FORK_SESSION),
            0 => supervisor(p),
            _ => libc::_exit(0),
        }
    }
}

/// Close every descriptor from 3 up except `keep` (sorted).
fn close_all_but(keep: &[RawFd]) -> io::Result<()> {
    let mut low: libc::c_uint = 3;
    for fd in keep.iter().copied().filter(|fd| *fd >= 3) {
        let fd = fd as libc::c_uint;
        if fd > low {
            close_range(low, fd - 1, 0)?;
        }
        low = fd + 1;
    }
    close_range(low, libc::c_uint::MAX, 0)
}

fn close_range(first: libc::c_uint, last: libc::c_uint, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: close_range only closes (or marks) descriptors of this process.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Child B: fork QEMU, report its pid, drop every file but the exit file, wait for
/// QEMU and record how it ended.
fn supervisor(p: &Prepared) -> ! {
    // SAFETY: plain system calls in a forked child (see `spawn_detached`).
    unsafe {
        let child = libc::fork();
        if child < 0 {
            fail(p, STAGE_FORK_SUPERVISOR);
        }
        if child == 0 {
            program(p);
        }
        // Holding a lock on the exit file tells readers a record is still to come.
        libc::flock(p.exit_file, libc::LOCK_EX | libc::LOCK_NB);
        report(p.report, TAG_PID, child);
        // B must not hold pyro's files: not its stdio (a caller reading pyro's output
        // to its end would wait for QEMU), nor flocks (they live as long as any copy
        // of their descriptor), nor the report pipe (pyro reads it to its end).
        let null = p.null.as_raw_fd();
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        if close_all_but(&p.supervisor_keeps).is_err() {
            // Without close_range (Linux < 5.9) close one by one.
            for fd in 3..4096 {
                if !p.supervisor_keeps.contains(&fd) {
                    libc::close(fd);
                }
            }
        }
        libc::close(p.report);
        let mut status = 0;
        loop {
            let rc = libc::waitpid(child, &mut status, 0);
            if rc == child {
                break;
            }
            if rc < 0 && *libc::__errno_location() != libc::EINTR {
                libc::_exit(1);
            }
        }
        let mut line = [0u8; 48];
        let mut len = 0;
        push(&mut line, &mut len, b"pid=");
        push_number(&mut line, &mut len, i64::from(child));
        if libc::WIFSIGNALED(status) {
            push(&mut line, &mut len, b" signal=");
            push_number(&mut line, &mut len, i64::from(libc::WTERMSIG(status)));
        } else {
            push(&mut line, &mut len, b" exited=");
            push_number(&mut line, &mut len, i64::from(libc::WEXITSTATUS(status)));
        }
        push(&mut line, &mut len, b"\n");
        libc::write(p.exit_file, line.as_ptr().cast(), len);
        libc::_exit(0)
    }
}

fn push(buf: &mut [u8], len: &mut usize, bytes: &[u8]) {
    for b in bytes {
        if *len < buf.len() {
            buf[*len] = *b;
            *len += 1;
        }
    }
}

/// Decimal digits of `n` without allocating (async-signal-safe).
fn push_number(buf: &mut [u8], len: &mut usize, n: i64) {
    if n < 0 {
        push(buf, len, b"-");
    }
    let mut digits = [0u8; 20];
    let mut count = 0;
    let mut rest = n.unsigned_abs();
    loop {
        digits[count] = b'0' + (rest % 10) as u8;
        count += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for i in (0..count).rev() {
        push(buf, len, &digits[i..=i]);
    }
}

/// Child C: confine itself and become QEMU.
fn program(p: &Prepared) -> ! {
    // SAFETY: plain system calls in a forked child (see `spawn_detached`); every
    // pointer comes from `Prepared`, which outlives this process image.
    unsafe {
        for fd in &p.cgroup_procs {
            if libc::write(*fd, b"0".as_ptr().cast(), 1) != 1 {
                fail(p, STAGE_CGROUP);
            }
        }
        // A core dump of QEMU is a copy of guest memory: never write one.
        let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::setrlimit(libc::RLIMIT_CORE, &no_core) != 0 {
            fail(p, STAGE_CORE);
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            fail(p, STAGE_NNP);
        }
        // Enter the sandbox dir before giving up root: the QEMU user may not search
        // the directories above it (`/root` is 0700), and it needs none of them, since
        // QEMU names every file relative to this working directory.
        if libc::chdir(p.cwd.as_ptr()) != 0 {
            fail(p, STAGE_CHDIR);
        }
        if let Some(creds) = p.credentials {
            let groups = [creds.gid];
            if libc::setgroups(1, groups.as_ptr()) != 0 {
                fail(p, STAGE_SETGROUPS);
            }
            if libc::setresgid(creds.gid, creds.gid, creds.gid) != 0 {
                fail(p, STAGE_SETGID);
            }
            if libc::setresuid(creds.uid, creds.uid, creds.uid) != 0 {
                fail(p, STAGE_SETUID);
            }
        }
        if libc::dup2(p.null.as_raw_fd(), 0) < 0
            || libc::dup2(p.log, 1) < 0
            || libc::dup2(p.log, 2) < 0
        {
            fail(p, STAGE_STDIO);
        }
        // Nothing of pyro's leaks into QEMU, whoever opened it without O_CLOEXEC;
        // the files QEMU is meant to inherit are opened again to it below.
        if close_range(3, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC).is_err() {
            fail(p, STAGE_CLOSE);
        }
        for fd in &p.inherit {
            if libc::fcntl(*fd, libc::F_SETFD, 0) != 0 {
                fail(p, STAGE_CLOSE);
            }
        }
        libc::umask(0o077);
        // Undo what the Rust runtime and pyro's threads changed for themselves.
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::execve(p.program.as_ptr(), p.argv.as_ptr(), p.envp.as_ptr());
        fail(p, STAGE_EXEC)
    }
}

/// How a detached program ended, as its supervisor recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitRecord {
    /// The program's pid.
    pub pid: i32,
    /// How it ended.
    pub end: ProgramEnd,
}

/// Exit status or fatal signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramEnd {
    /// `exit(code)`.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

impl std::fmt::Display for ProgramEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProgramEnd::Exited(code) => write!(f, "exited with status {code}"),
            ProgramEnd::Signaled(libc::SIGSYS) => {
                write!(f, "was killed by SIGSYS: it made a system call its seccomp filter denies")
            }
            ProgramEnd::Signaled(libc::SIGKILL) => write!(f, "was killed by SIGKILL"),
            ProgramEnd::Signaled(libc::SIGTERM) => write!(f, "was stopped by SIGTERM"),
            ProgramEnd::Signaled(signal) => write!(f, "was killed by signal {signal}"),
        }
    }
}

/// Parse the supervisor's line (`pid=<n> exited=<code>` / `pid=<n> signal=<n>`).
pub fn parse_exit_record(text: &str) -> Option<ExitRecord> {
    let mut fields = text.split_whitespace();
    let pid = fields.next()?.strip_prefix("pid=")?.parse().ok()?;
    let end = fields.next()?;
    let end = if let Some(code) = end.strip_prefix("exited=") {
        ProgramEnd::Exited(code.parse().ok()?)
    } else {
        ProgramEnd::Signaled(end.strip_prefix("signal=")?.parse().ok()?)
    };
    Some(ExitRecord { pid, end })
}

/// Whether the supervisor that will write `path` still runs (it holds a lock on it).
pub fn exit_record_pending(path: &Path) -> bool {
    match File::open(path) {
        Ok(file) => matches!(file.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

/// Read an exit file (at most 256 bytes of it).
pub fn read_exit_record(path: &Path) -> Option<ExitRecord> {
    let mut text = String::new();
    File::open(path).ok()?.take(256).read_to_string(&mut text).ok()?;
    parse_exit_record(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn command(dir: &Path, program: &str, args: &[&str]) -> DetachedCommand {
        DetachedCommand {
            program: PathBuf::from(program),
            args: args.iter().map(OsString::from).collect(),
            cwd: dir.to_path_buf(),
            log: File::create(dir.join("log")).expect("log"),
            exit_file: File::create(dir.join("exit")).expect("exit"),
            cgroup_procs: Vec::new(),
            inherit: Vec::new(),
            credentials: None,
        }
    }

    fn wait_for_exit(path: &Path) -> ExitRecord {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(record) = read_exit_record(path) {
                return record;
            }
            assert!(Instant::now() < deadline, "no exit record in {}", path.display());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn parent_of(pid: i32) -> i32 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let rest = &stat[stat.rfind(')').expect("comm") + 2..];
        rest.split(' ').nth(1).expect("ppid").parse().expect("ppid number")
    }

    #[test]
    fn detached_program_runs_in_its_own_session_and_reports_its_end() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cmd = command(tmp.path(), "sh", &["-c", "echo out; echo err >&2; pwd; exit 7"]);
        let pid = spawn_detached(&cmd).expect("spawn");
        let record = wait_for_exit(&tmp.path().join("exit"));
        assert_eq!(record, ExitRecord { pid, end: ProgramEnd::Exited(7) });
        let log = std::fs::read_to_string(tmp.path().join("log")).expect("log");
        let cwd = tmp.path().canonicalize().expect("canonical");
        assert_eq!(log, format!("out\nerr\n{}\n", cwd.display()));
    }

    #[test]
    fn detached_program_is_not_our_child_and_has_no_session_of_ours() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cmd = command(tmp.path(), "sleep", &["30"]);
        let pid = spawn_detached(&cmd).expect("spawn");
        // The lock is on the open file, which this process shares until it drops it.
        drop(cmd);
        assert!(exit_record_pending(&tmp.path().join("exit")), "the supervisor holds the lock");
        let me = std::process::id() as i32;
        assert_ne!(parent_of(pid), me, "the supervisor is QEMU's parent, not pyro");
        assert_ne!(parent_of(parent_of(pid)), me, "the supervisor is not our child either");
        // SAFETY: getsid only reads; pid 0 means this process.
        let (ours, theirs) = unsafe { (libc::getsid(0), libc::getsid(pid)) };
        assert_ne!(ours, theirs);
        // SAFETY: signalling the sleep we started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        let record = wait_for_exit(&tmp.path().join("exit"));
        assert_eq!(record, ExitRecord { pid, end: ProgramEnd::Signaled(libc::SIGKILL) });
        let deadline = Instant::now() + Duration::from_secs(5);
        while exit_record_pending(&tmp.path().join("exit")) {
            assert!(Instant::now() < deadline, "the supervisor kept its lock after writing");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn the_supervisor_does_not_hold_the_callers_stdio() {
        // pyro's caller reads pyro's stdout to its end: a supervisor holding it would
        // make that wait for QEMU to exit. This test runs spawn_detached in a child
        // process (the test binary itself) whose stdout is a pipe we read to EOF.
        if let Some(dir) = std::env::var_os("PYRO_SPAWN_STDIO_CHILD") {
            let cmd = command(Path::new(&dir), "sleep", &["30"]);
            let pid = spawn_detached(&cmd).expect("spawn");
            println!("detached-pid={pid}");
            return;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let started = Instant::now();
        let out = std::process::Command::new(std::env::current_exe().expect("exe"))
            .args([
                "--exact",
                "backend::qemu::spawn::tests::the_supervisor_does_not_hold_the_callers_stdio",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PYRO_SPAWN_STDIO_CHILD", tmp.path())
            .stderr(std::process::Stdio::null())
            .output()
            .expect("run child");
        assert!(started.elapsed() < Duration::from_secs(20), "stdout stayed open");
        let text = String::from_utf8_lossy(&out.stdout);
        let pid: i32 = text
            .split_whitespace()
            .find_map(|word| word.strip_prefix("detached-pid=")?.parse().ok())
            .unwrap_or_else(|| panic!("no pid in {text}"));
        assert!(pid > 1, "{text}");
        // SAFETY: signalling the sleep the child started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    }

    #[test]
    fn inherited_files_stay_open_and_others_do_not_leak() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join("data"), "hello").expect("write");
        let data = File::open(tmp.path().join("data")).expect("open");
        let other = File::open(tmp.path().join("data")).expect("open");
        // SAFETY: clears FD_CLOEXEC on a descriptor this test owns (a careless opener).
        assert_eq!(unsafe { libc::fcntl(other.as_raw_fd(), libc::F_SETFD, 0) }, 0);
        let script = format!(
            "cat /proc/self/fd/{}; ls /proc/self/fd/{} 2>/dev/null && echo leaked",
            data.as_raw_fd(),
            other.as_raw_fd()
        );
        let mut cmd = command(tmp.path(), "/bin/sh", &["-c", &script]);
        cmd.inherit.push(data);
        let pid = spawn_detached(&cmd).expect("spawn");
        assert_eq!(wait_for_exit(&tmp.path().join("exit")).pid, pid);
        let log = std::fs::read_to_string(tmp.path().join("log")).expect("log");
        assert_eq!(log, "hello");
        drop(other);
    }

    #[test]
    fn missing_programs_and_bad_directories_are_reported() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cmd = command(tmp.path(), "pyro-no-such-program", &[]);
        assert!(matches!(spawn_detached(&cmd), Err(SpawnError::NotFound(_))));
        let mut cmd = command(tmp.path(), "true", &[]);
        cmd.cwd = tmp.path().join("missing");
        match spawn_detached(&cmd) {
            Err(SpawnError::Child { stage, .. }) => assert_eq!(stage, "chdir"),
            other => panic!("expected a chdir failure, got {other:?}"),
        }
    }

    #[test]
    fn exit_records_parse() {
        assert_eq!(
            parse_exit_record("pid=42 signal=31\n"),
            Some(ExitRecord { pid: 42, end: ProgramEnd::Signaled(31) })
        );
        assert_eq!(
            parse_exit_record("pid=7 exited=0"),
            Some(ExitRecord { pid: 7, end: ProgramEnd::Exited(0) })
        );
        for bad in ["", "pid=x exited=0", "pid=1", "pid=1 other=2"] {
            assert_eq!(parse_exit_record(bad), None, "{bad}");
        }
        assert!(ProgramEnd::Signaled(libc::SIGSYS).to_string().contains("seccomp"));
    }
}
