//! Pseudo-terminals: the few raw calls interactive shells need.
//!
//! Like [`crate::sys`], every `unsafe` block here wraps one system call and documents
//! the invariants it relies on; [`crate::shells`] uses only these safe wrappers.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

/// A new PTY pair.
#[derive(Debug)]
pub(crate) struct Pty {
    /// The controlling side, kept by the agent (non-blocking, close-on-exec).
    pub master: File,
    /// The terminal side, given to the shell as stdin/stdout/stderr (close-on-exec,
    /// so only the dup2'ed copies reach the child).
    pub slave: File,
}

/// Open a PTY pair of `cols` x `rows`.
///
/// Both descriptors are opened with `O_CLOEXEC` (std does that for every open), so a
/// process another thread starts at the same moment never inherits them.
pub(crate) fn open(cols: u16, rows: u16) -> io::Result<Pty> {
    let master = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open("/dev/ptmx")?;
    let fd = master.as_raw_fd();
    // SAFETY: `fd` is the open ptmx descriptor owned by `master`, alive for the call;
    // unlockpt only issues the TIOCSPTLCK ioctl on it.
    // JUSTIFICATION: std has no PTY support.
    if unsafe { libc::unlockpt(fd) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut number: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int through the pointer, which points to
    // `number`, a live, writable c_uint.
    // JUSTIFICATION: the reentrant way to learn the slave's name (ptsname is not
    // thread-safe).
    if unsafe { libc::ioctl(fd, libc::TIOCGPTN, &mut number as *mut libc::c_uint) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let slave = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(format!("/dev/pts/{number}"))?;
    set_size(&master, cols, rows)?;
    Ok(Pty { master, slave })
}

/// Set the terminal size (TIOCSWINSZ); the kernel sends SIGWINCH to the foreground
/// process group when it changes.
pub(crate) fn set_size(master: &File, cols: u16, rows: u16) -> io::Result<()> {
    let size = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one winsize through the pointer, which points to
    // `size`, alive for the call; the descriptor belongs to `master`.
    // JUSTIFICATION: std has no terminal ioctls.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size as *const libc::winsize) }
        != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The foreground process group of the terminal behind `master` (TIOCGPGRP), if any.
pub(crate) fn foreground_group(master: &File) -> Option<u32> {
    let mut pgrp: libc::pid_t = 0;
    // SAFETY: TIOCGPGRP writes one pid_t through the pointer, which points to `pgrp`,
    // a live, writable pid_t; the descriptor belongs to `master`.
    // JUSTIFICATION: std has no tcgetpgrp.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPGRP, &mut pgrp as *mut i32) };
    if rc != 0 || pgrp <= 1 {
        return None;
    }
    u32::try_from(pgrp).ok()
}

/// In the forked child before exec: start a new session and make stdin (the PTY
/// slave, already dup2'ed there) its controlling terminal. Meant for
/// `CommandExt::pre_exec`; only calls the async-signal-safe `setsid` and `ioctl`.
pub(crate) fn become_session_leader_on_stdin() -> io::Result<()> {
    crate::sys::new_session()?;
    // SAFETY: TIOCSCTTY takes an integer argument and touches no memory of ours;
    // ioctl is async-signal-safe, so this is sound between fork and exec.
    // JUSTIFICATION: a shell needs a controlling terminal for job control and Ctrl-C.
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Wait until `fd` is ready for `events` (`POLLIN`/`POLLOUT`) or `timeout` passes.
/// Returns the `revents` (0 on timeout). EINTR counts as a timeout.
pub(crate) fn poll(
    fd: BorrowedFd<'_>,
    events: libc::c_short,
    timeout: Duration,
) -> io::Result<i16> {
    let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events, revents: 0 };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `pfd` is one live, writable pollfd and we pass a count of 1; the
    // descriptor is borrowed, so it stays open for the call.
    // JUSTIFICATION: std has no poll; the reader must wake up to notice a close.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(err);
    }
    Ok(pfd.revents)
}

/// Send `signal` to process group `pgid` (> 1), ignoring a group that is already gone.
pub(crate) fn signal_group(pgid: u32, signal: i32) {
    let _ = crate::sys::kill_process_group(pgid, signal);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    #[test]
    fn a_pty_pair_passes_bytes_and_keeps_its_size() {
        let mut pty = open(77, 11).expect("open pty");
        pty.slave.write_all(b"hi\n").expect("write slave");
        let revents = poll(pty.master.as_fd(), libc::POLLIN, Duration::from_secs(5)).expect("poll");
        assert_ne!(revents & libc::POLLIN, 0);
        let mut buf = [0u8; 16];
        let n = pty.master.read(&mut buf).expect("read master");
        // The line discipline turns \n into \r\n.
        assert_eq!(&buf[..n], b"hi\r\n");
        let mut size = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCGWINSZ writes one winsize into `size`, alive for the call.
        let rc = unsafe {
            libc::ioctl(pty.slave.as_raw_fd(), libc::TIOCGWINSZ, &mut size as *mut libc::winsize)
        };
        assert_eq!(rc, 0);
        assert_eq!((size.ws_col, size.ws_row), (77, 11));
        set_size(&pty.master, 100, 40).expect("resize");
        // SAFETY: as above.
        let rc = unsafe {
            libc::ioctl(pty.slave.as_raw_fd(), libc::TIOCGWINSZ, &mut size as *mut libc::winsize)
        };
        assert_eq!(rc, 0);
        assert_eq!((size.ws_col, size.ws_row), (100, 40));
        // No session has this terminal as its controlling one yet.
        assert_eq!(foreground_group(&pty.master), None);
    }
}
