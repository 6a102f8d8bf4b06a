//! Finding, signalling and waiting for the detached QEMU process of a sandbox.
//!
//! QEMU is detached from pyro (see `spawn.rs`), so it is not our child: it is found
//! through its pidfile, and a pid only counts as "this sandbox's QEMU" when
//! `/proc/<pid>/cmdline` names this sandbox: `-name pyro:<sandbox dir>` (or, for a QEMU
//! started by an older pyro with `-daemonize`, `-pidfile <sandbox dir>/qemu.pid`). A
//! reused pid belongs to some other program. Zombies count as gone.

use super::launch::identity_arg;
use super::layout::SandboxPaths;
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Read a pidfile; `None` when missing or malformed.
pub fn read_pidfile(path: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(path).ok()?;
    text.trim().parse::<i32>().ok().filter(|pid| *pid > 0)
}

/// The process state letter from `/proc/<pid>/stat` (`R`, `S`, `Z`, ...).
fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_state(&stat)
}

/// The state field of a `/proc/<pid>/stat` line. The command name in parentheses may
/// itself contain `)` and spaces, so the state is taken after the last `)`.
fn parse_stat_state(stat: &str) -> Option<char> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.trim_start().chars().next()
}

/// Whether `pid` exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    matches!(proc_state(pid), Some(state) if state != 'Z' && state != 'X')
}

/// The command line of `pid`, split at NULs.
fn cmdline(pid: i32) -> Option<Vec<OsString>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(split_cmdline(&raw))
}

fn split_cmdline(raw: &[u8]) -> Vec<OsString> {
    raw.split(|b| *b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| OsString::from_vec(arg.to_vec()))
        .collect()
}

/// Whether a command line is the QEMU of the sandbox at `paths`.
fn is_sandbox_cmdline(args: &[OsString], paths: &SandboxPaths) -> bool {
    let identity = identity_arg(paths);
    let legacy_pidfile = paths.pidfile();
    args.windows(2).any(|w| {
        (w[0] == "-name" && w[1] == identity)
            || (w[0] == "-pidfile" && Path::new(&w[1]) == legacy_pidfile)
    })
}

/// The pid of this sandbox's QEMU, when it runs.
pub fn qemu_pid(paths: &SandboxPaths) -> Option<i32> {
    let pid = read_pidfile(&paths.pidfile())?;
    if !pid_alive(pid) {
        return None;
    }
    let args = cmdline(pid)?;
    is_sandbox_cmdline(&args, paths).then_some(pid)
}

/// Signals this module sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Ask to exit (QEMU shuts down cleanly).
    Term,
    /// Kill.
    Kill,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Term => "TERM",
            Signal::Kill => "KILL",
        }
    }
}

/// Send `signal` to `pid`. The crate forbids `unsafe`, so this runs the shell's `kill`
/// builtin (a few milliseconds; only used when stopping a VM).
pub fn send_signal(pid: i32, signal: Signal) -> io::Result<()> {
    let output = std::process::Command::new("/bin/sh")
        .args(["-c", "kill -s \"$0\" \"$1\"", signal.name(), &pid.to_string()])
        .stdin(std::process::Stdio::null())
        .output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "kill -s {} {pid} failed: {}",
            signal.name(),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// How long a zombie is given to be reaped by its parent (its supervisor, or init)
/// before it counts as gone anyway. A zombie has closed every file (sockets, disk image
/// locks), so a new QEMU can use the sandbox at once. Some inits reap late (this
/// project's CI machines: ~1.8 s), and waiting for them would slow every stop.
const ZOMBIE_GRACE: Duration = Duration::from_millis(200);

/// Wait until `pid` is gone, at most `timeout`; true when it is. A zombie counts as gone
/// once reaped, or after [`ZOMBIE_GRACE`] (an init that does not reap must not stall us).
pub fn wait_gone(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut zombie_since: Option<Instant> = None;
    loop {
        match proc_state(pid) {
            None => return true,
            Some('Z' | 'X') => {
                let since = *zombie_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= ZOMBIE_GRACE {
                    return true;
                }
            }
            Some(_) => {}
        }
        if Instant::now() >= deadline {
            return zombie_since.is_some();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// SIGKILL `pid` and wait (up to 5 s) for it to disappear.
pub fn kill_and_wait(pid: i32) -> bool {
    // ESRCH (already gone) is fine: wait_gone answers at once.
    let _ = send_signal(pid, Signal::Kill);
    wait_gone(pid, Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_state_survives_odd_command_names() {
        assert_eq!(parse_stat_state("42 (qemu-system-x86) S 1 42 42 0"), Some('S'));
        assert_eq!(parse_stat_state("42 (a) b) Z 1 42"), Some('Z'));
        assert_eq!(parse_stat_state("garbage"), None);
    }

    #[test]
    fn cmdline_must_name_this_sandbox() {
        let ab = SandboxPaths::from_canonical("/w/ab/sandbox".into());
        let cd = SandboxPaths::from_canonical("/w/cd/sandbox".into());
        let args = split_cmdline(
            b"qemu-system-x86_64\0-M\0q35\0-name\0pyro:/w/ab/sandbox\0-pidfile\0qemu.pid\0",
        );
        assert!(is_sandbox_cmdline(&args, &ab));
        assert!(!is_sandbox_cmdline(&args, &cd));
        let legacy =
            split_cmdline(b"qemu-system-x86_64\0-M\0q35\0-pidfile\0/w/ab/sandbox/qemu.pid\0");
        assert!(is_sandbox_cmdline(&legacy, &ab), "a QEMU from before the upgrade");
        assert!(!is_sandbox_cmdline(&legacy, &cd));
        let other = split_cmdline(b"sleep\x00100\x00");
        assert!(!is_sandbox_cmdline(&other, &ab));
    }

    #[test]
    fn signals_reach_processes() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().expect("spawn sleep");
        let pid = i32::try_from(child.id()).expect("pid");
        assert!(pid_alive(pid));
        send_signal(pid, Signal::Term).expect("signal");
        let status = child.wait().expect("wait");
        assert!(!status.success());
        assert!(!pid_alive(pid));
        assert!(send_signal(pid, Signal::Kill).is_err(), "no such process any more");
    }

    #[test]
    fn our_own_pid_is_alive_and_pidfiles_parse() {
        assert!(pid_alive(std::process::id() as i32));
        let tmp = tempfile::tempdir().expect("tempdir");
        let f = tmp.path().join("p");
        std::fs::write(&f, "1234\n").expect("write");
        assert_eq!(read_pidfile(&f), Some(1234));
        std::fs::write(&f, "-1\n").expect("write");
        assert_eq!(read_pidfile(&f), None);
        assert_eq!(read_pidfile(&tmp.path().join("missing")), None);
    }
}
