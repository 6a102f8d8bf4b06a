//! Waking a port thread when the host opens its virtio-serial port, instead of polling.
//!
//! While no host is connected, a read on a virtio console port returns EOF at once, and
//! `poll(2)` reports it readable (and hung up) all the time, so neither can wait for a
//! host. What does work: in `O_ASYNC` mode the `virtio_console` driver sends the file's
//! owner a `SIGIO` whenever the host side opens or closes the port (and when data
//! arrives). So each port thread
//!
//! 1. blocks `SIGIO` for itself ([`PortWaker::arm`]) and makes itself the owner of the
//!    port's signals (`F_SETOWN_EX` with `F_OWNER_TID`, so the signal goes to this thread
//!    and not to whichever thread the kernel picks), then sets `O_ASYNC`;
//! 2. after every EOF, sleeps in `sigtimedwait(SIGIO)` ([`PortWaker::wait`]).
//!
//! There is no lost-wakeup window: the signal is blocked, so one sent between the EOF
//! and the wait stays pending and ends the wait at once. A stale pending signal (sent
//! for data while the host was connected) costs one extra EOF read. The wait still
//! times out after [`FALLBACK_WAIT`], so a kernel that never sends the signal degrades
//! to slow polling instead of never answering.
//!
//! A no-op `SIGIO` handler is installed process-wide ([`install_noop_handler`]): the
//! default action of `SIGIO` is to terminate, and a handler (unlike `SIG_IGN`) is reset
//! by `execve`, so commands the agent starts see the default disposition.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// `fcntl` command setting the owner with a type (linux/fcntl.h; not in the libc crate
/// for glibc targets).
const F_SETOWN_EX: libc::c_int = 15;
/// Owner type: one thread (linux/fcntl.h).
const F_OWNER_TID: libc::c_int = 0;

/// `struct f_owner_ex` of linux/fcntl.h.
#[repr(C)]
struct FOwnerEx {
    kind: libc::c_int,
    pid: libc::pid_t,
}

/// Longest a port thread sleeps without a signal before reading again.
pub const FALLBACK_WAIT: Duration = Duration::from_secs(2);

extern "C" fn noop_signal_handler(_signal: libc::c_int) {}

/// Install a handler that does nothing for `SIGIO` (see the module doc).
pub fn install_noop_handler() -> io::Result<()> {
    // SAFETY: sigaction is a plain C struct; all-zero is a valid starting value
    // (empty mask, no flags) that is filled in below.
    // JUSTIFICATION: std has no signal API; this is the out/in parameter of sigaction(2).
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = noop_signal_handler as extern "C" fn(libc::c_int) as libc::sighandler_t;
    action.sa_flags = libc::SA_RESTART;
    // SAFETY: `action` is a valid, initialised sigaction whose handler is an
    // async-signal-safe function that touches nothing; the old action is not wanted.
    // JUSTIFICATION: see above.
    let rc = unsafe { libc::sigaction(libc::SIGIO, &action, std::ptr::null_mut()) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `{SIGIO}` as a signal set.
fn sigio_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it fully before use.
    // JUSTIFICATION: out-parameter of sigemptyset(3).
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable sigset_t; both calls only write into it and
    // cannot fail for a valid signal number.
    // JUSTIFICATION: std has no signal-set API.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGIO);
    }
    set
}

/// Waits for the host side of one port to change (see the module doc). Create it on
/// the thread that serves the port; it only works for that thread.
#[derive(Debug)]
pub struct PortWaker {
    set: libc::sigset_t,
    /// False when the port could not be put in async mode: [`PortWaker::wait`] then
    /// just sleeps briefly.
    armed: bool,
}

impl PortWaker {
    /// Block `SIGIO` on the calling thread and route the port's signals to it.
    /// Failures are reported but not fatal: the waker falls back to a short sleep.
    pub fn arm(port: BorrowedFd<'_>) -> (PortWaker, Option<io::Error>) {
        let set = sigio_set();
        match Self::route_signals(port, &set) {
            Ok(()) => (PortWaker { set, armed: true }, None),
            Err(e) => (PortWaker { set, armed: false }, Some(e)),
        }
    }

    fn route_signals(port: BorrowedFd<'_>, set: &libc::sigset_t) -> io::Result<()> {
        // SAFETY: `set` is a valid sigset_t; the old mask is not wanted.
        // JUSTIFICATION: the signal must stay pending for sigtimedwait, not be delivered.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        let fd = port.as_raw_fd();
        // SAFETY: gettid takes no arguments and cannot fail.
        // JUSTIFICATION: F_OWNER_TID needs this thread's kernel id, which std does not expose.
        let tid = unsafe { libc::gettid() };
        let owner = FOwnerEx { kind: F_OWNER_TID, pid: tid };
        // SAFETY: `fd` is open for the duration (borrowed), and `owner` is a valid
        // f_owner_ex that outlives the call.
        // JUSTIFICATION: std has no fcntl; signal routing is the point of this module.
        if unsafe { libc::fcntl(fd, F_SETOWN_EX, &owner) } == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: F_GETFL on an open descriptor takes no pointer.
        // JUSTIFICATION: as above.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: F_SETFL with an integer flag set on an open descriptor.
        // JUSTIFICATION: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_ASYNC) } == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Whether signals are routed (else [`PortWaker::wait`] polls every 10 ms).
    pub fn is_armed(&self) -> bool {
        self.armed
    }

    /// Sleep until the host side of the port changes, or [`FALLBACK_WAIT`] passed.
    pub fn wait(&self) {
        if !self.armed {
            std::thread::sleep(Duration::from_millis(10));
            return;
        }
        let timeout = libc::timespec {
            tv_sec: FALLBACK_WAIT.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(FALLBACK_WAIT.subsec_nanos() as i32),
        };
        // SAFETY: `self.set` and `timeout` are valid and outlive the call; the siginfo
        // out-parameter may be null. An error (EAGAIN at the timeout, EINTR) is the same
        // as a wake-up here: the caller reads the port again either way.
        // JUSTIFICATION: waiting for a blocked signal has no std equivalent.
        unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &timeout) };
    }
}
