//! Thin wrappers around the few raw system calls the agent needs.
//!
//! Every `unsafe` block of the library lives here (and, for pseudo-terminals, in
//! `pty.rs`), so the rest of the crate is safe code. Each wrapper documents the
//! invariants it relies on.

use std::ffi::CStr;
use std::io;

/// Make the calling process the leader of a new session (and so of a new process
/// group whose id is its pid). Meant for `CommandExt::pre_exec`.
///
/// Only calls `setsid(2)`, which is async-signal-safe, so it may run between `fork`
/// and `exec`.
pub(crate) fn new_session() -> io::Result<()> {
    // SAFETY: setsid takes no arguments and touches no memory of ours; it is
    // async-signal-safe, so it is sound in a freshly forked child.
    // JUSTIFICATION: std has no safe way to start a child in its own session.
    let rc = unsafe { libc::setsid() };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Send `signal` to every process in process group `pgid`.
///
/// `pgid` must be a process-group id we created (the pid of a child we started with
/// [`new_session`] and have not reaped yet), never 0 or 1.
pub(crate) fn kill_process_group(pgid: u32, signal: i32) -> io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    if pgid <= 1 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "refusing to signal group <= 1"));
    }
    // SAFETY: kill(2) only reads its two integer arguments. A negative pid addresses
    // the process group; pgid > 1 was checked above so this never means "all
    // processes" (-1) or our own group (0).
    // JUSTIFICATION: std can only signal single children, not a process group.
    let rc = unsafe { libc::kill(-pgid, signal) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Flush all file systems (`sync(2)`).
pub(crate) fn sync_all() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    // JUSTIFICATION: std only offers per-file fsync.
    unsafe { libc::sync() };
}

/// Kernel release, as `uname -r` prints it.
pub(crate) fn kernel_release() -> io::Result<String> {
    // SAFETY: utsname is a plain struct of byte arrays; all-zero is a valid value.
    // JUSTIFICATION: needed as the out-parameter of uname(2).
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname that outlives the call.
    // JUSTIFICATION: std has no uname wrapper; /proc may be missing on the host.
    let rc = unsafe { libc::uname(&mut uts) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel NUL-terminates every utsname field within its array, and the
    // array lives as long as `uts`, which outlives the borrow.
    // JUSTIFICATION: converting the C string field needs a raw pointer.
    let release = unsafe { CStr::from_ptr(uts.release.as_ptr()) };
    Ok(release.to_string_lossy().into_owned())
}

/// Set `CLOCK_REALTIME` to `unix_time_ns` nanoseconds after the epoch; needs
/// CAP_SYS_TIME.
pub fn set_wall_clock(unix_time_ns: u64) -> io::Result<()> {
    let ts = libc::timespec {
        tv_sec: (unix_time_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (unix_time_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: `ts` is a valid timespec (nanoseconds < 1e9) that outlives the call.
    // JUSTIFICATION: std cannot set the clock.
    let rc = unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &ts) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `RNDADDENTROPY` = `_IOW('R', 0x03, int[2])` (linux/random.h).
const RNDADDENTROPY: libc::c_ulong = 0x4008_5203;
/// `RNDRESEEDCRNG` = `_IO('R', 0x07)` (linux/random.h).
const RNDRESEEDCRNG: libc::c_ulong = 0x5207;

/// Mix `data` into the kernel's input pool, credited as full entropy, then force the
/// CRNG to reseed from it now; needs CAP_SYS_ADMIN. Writing to `/dev/urandom` alone
/// would mix without crediting or reseeding, so the RNG output would not change at once.
pub fn add_entropy_and_reseed(data: &[u8]) -> io::Result<()> {
    let urandom = std::fs::OpenOptions::new().write(true).open("/dev/urandom")?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&urandom);
    // struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }: two ints,
    // then the bytes, built in a u32 buffer so it is aligned like the C struct.
    let words = data.len().div_ceil(4);
    let mut info = vec![0u32; 2 + words];
    let bits = i32::try_from(data.len() * 8).map_err(|_| io::Error::other("too much entropy"))?;
    let len = i32::try_from(data.len()).map_err(|_| io::Error::other("too much entropy"))?;
    info[0] = bits as u32;
    info[1] = len as u32;
    for (i, chunk) in data.chunks(4).enumerate() {
        let mut word = [0u8; 4];
        word[..chunk.len()].copy_from_slice(chunk);
        info[2 + i] = u32::from_ne_bytes(word);
    }
    // SAFETY: `info` is a rand_pool_info laid out as the kernel expects (entropy_count,
    // buf_size = data.len(), then at least buf_size bytes), alive for the call; `fd` is
    // open.
    // JUSTIFICATION: crediting entropy has no std or file-write equivalent.
    if unsafe { libc::ioctl(fd, RNDADDENTROPY as _, info.as_ptr()) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: RNDRESEEDCRNG takes no argument; `fd` is open.
    // JUSTIFICATION: as above.
    if unsafe { libc::ioctl(fd, RNDRESEEDCRNG as _) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Set the host name (`sethostname(2)`); needs CAP_SYS_ADMIN.
pub fn set_hostname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe the bytes of `name`, which outlives the
    // call; the kernel copies them and does not need a NUL terminator.
    // JUSTIFICATION: std has no sethostname wrapper.
    let rc = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Flush file systems and power the machine off (`reboot(RB_POWER_OFF)`), falling
/// back to a halt. Returns only if both fail (for example without CAP_SYS_BOOT).
pub fn power_off() -> io::Error {
    sync_all();
    // SAFETY: reboot(2) with a valid command constant touches no memory of ours.
    // JUSTIFICATION: powering off the guest is the point of the Shutdown request.
    let rc = unsafe { libc::reboot(libc::RB_POWER_OFF) };
    let err =
        if rc == -1 { io::Error::last_os_error() } else { io::Error::other("reboot returned") };
    // SAFETY: as above, with the halt command.
    // JUSTIFICATION: fallback when the machine has no way to power off.
    unsafe { libc::reboot(libc::RB_HALT_SYSTEM) };
    err
}

/// `BLKFLSBUF` = `_IO(0x12, 97)` (linux/fs.h).
const BLKFLSBUF: libc::c_ulong = 0x1261;
/// `FIFREEZE` = `_IOWR('X', 119, int)` (linux/fs.h).
const FIFREEZE: libc::c_ulong = 0xC004_5877;
/// `FITHAW` = `_IOWR('X', 120, int)` (linux/fs.h).
const FITHAW: libc::c_ulong = 0xC004_5878;

/// Whether every write end of the pipe whose read end is `fd` is closed (`poll` reports
/// `POLLHUP`, also while data is still buffered): its reader is then sure to reach EOF.
///
/// `fd` must stay open for the call; the exec supervisor only asks about pipes whose
/// reader thread still holds them (it cannot close them while the capture lock is held).
pub(crate) fn pipe_writers_gone(fd: std::os::fd::RawFd) -> io::Result<bool> {
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: poll reads and writes exactly one pollfd through the pointer, which points
    // to `pfd`, alive for the call; a timeout of 0 never blocks. A closed fd would only
    // be reported as POLLNVAL.
    // JUSTIFICATION: std cannot ask whether a pipe still has writers.
    if unsafe { libc::poll(&mut pfd, 1, 0) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(pfd.revents & libc::POLLHUP != 0)
}

/// Drop the page cache of the block device open as `device` (`BLKFLSBUF`); needs
/// CAP_SYS_ADMIN.
pub fn flush_block_buffers(device: &std::fs::File) -> io::Result<()> {
    let fd = std::os::fd::AsRawFd::as_raw_fd(device);
    // SAFETY: BLKFLSBUF takes no argument pointer (0 is passed); `fd` is an open file
    // that outlives the call.
    // JUSTIFICATION: dropping one device's cache has no std equivalent.
    if unsafe { libc::ioctl(fd, BLKFLSBUF as _, 0) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Freeze (`FIFREEZE`) or thaw (`FITHAW`) the file system `dir` (an open directory) is
/// on; needs CAP_SYS_ADMIN.
pub fn freeze_fs(dir: &std::fs::File, freeze: bool) -> io::Result<()> {
    let fd = std::os::fd::AsRawFd::as_raw_fd(dir);
    let request = if freeze { FIFREEZE } else { FITHAW };
    // SAFETY: both ioctls ignore their argument (0 is passed); `fd` is an open file that
    // outlives the call.
    // JUSTIFICATION: std cannot freeze a file system.
    if unsafe { libc::ioctl(fd, request as _, 0) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `mount(2)` the block device `source` (file system `fstype`) on `target` with `flags`
/// and the option string `data`; needs CAP_SYS_ADMIN.
pub fn mount(
    source: &str,
    target: &str,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> io::Result<()> {
    let c = |s: &str| {
        std::ffi::CString::new(s).map_err(|_| io::Error::other("NUL byte in a mount argument"))
    };
    let (source, target, fstype, data) = (c(source)?, c(target)?, c(fstype)?, c(data)?);
    // SAFETY: every pointer is a NUL-terminated string alive for the whole call; the
    // kernel copies them.
    // JUSTIFICATION: std has no mount wrapper.
    let rc = unsafe {
        libc::mount(source.as_ptr(), target.as_ptr(), fstype.as_ptr(), flags, data.as_ptr().cast())
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Outcome of [`wait_any_child`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaped {
    /// A child changed state: its pid.
    Child(u32),
    /// The caller has no children at all.
    NoChildren,
}

/// Block until any child exits and reap it (`waitpid(-1, .., 0)`), retrying on EINTR.
pub fn wait_any_child() -> io::Result<Reaped> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is a valid, writable c_int that outlives the call.
        // JUSTIFICATION: PID 1 must reap every orphan, which std cannot express.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid >= 0 {
            return Ok(Reaped::Child(pid.unsigned_abs()));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::ECHILD) => return Ok(Reaped::NoChildren),
            _ => return Err(err),
        }
    }
}

/// Lower the calling thread's scheduling priority to the lowest (nice 19), so background
/// work yields to everything else in the guest.
pub fn lower_thread_priority() {
    // SAFETY: gettid and setpriority take no pointers; on Linux PRIO_PROCESS with a
    // thread id changes only that thread's nice value. A failure leaves it unchanged.
    // JUSTIFICATION: std has no way to set a thread's priority.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
    }
}

/// Whether `dir` is a directory on another file system than its parent (a mount point).
pub fn is_mount_point(dir: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(parent) = dir.parent() else { return false };
    match (std::fs::symlink_metadata(dir), std::fs::symlink_metadata(parent)) {
        (Ok(own), Ok(up)) => own.is_dir() && own.dev() != up.dev(),
        _ => false,
    }
}

/// A fanotify notification group (`FAN_CLASS_NOTIF`: it only listens, never blocks an
/// access) that reports the parent directory's file handle and the entry's name with
/// each event (`FAN_REPORT_DFID_NAME`, Linux 5.9+), non-blocking; needs CAP_SYS_ADMIN.
pub(crate) fn fanotify_dfid_name_group() -> io::Result<std::os::fd::OwnedFd> {
    let flags =
        libc::FAN_CLASS_NOTIF | libc::FAN_CLOEXEC | libc::FAN_NONBLOCK | libc::FAN_REPORT_DFID_NAME;
    // SAFETY: fanotify_init takes two integer arguments and touches no memory of ours.
    // JUSTIFICATION: std has no fanotify; nix has no parser for the FID-mode records
    // this group reports (see `change_watch`), so the crate would only add a wrapper.
    let fd = unsafe { libc::fanotify_init(flags, libc::O_RDONLY as libc::c_uint) };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by fanotify_init, is open, and nothing else owns it.
    // JUSTIFICATION: an OwnedFd closes it exactly once.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}

/// Mark the whole file system `path` is on (`FAN_MARK_FILESYSTEM`) in `group` for the
/// events of `mask`.
pub(crate) fn fanotify_mark_filesystem(
    group: &std::os::fd::OwnedFd,
    path: &std::path::Path,
    mask: u64,
) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("NUL byte in a path"))?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(group);
    // SAFETY: `path` is a NUL-terminated string alive for the call; `fd` is an open
    // fanotify group; the other arguments are integers.
    // JUSTIFICATION: as for `fanotify_dfid_name_group`.
    let rc = unsafe {
        libc::fanotify_mark(
            fd,
            libc::FAN_MARK_ADD | libc::FAN_MARK_FILESYSTEM,
            mask,
            libc::AT_FDCWD,
            path.as_ptr(),
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Open the object a file handle names (`open_by_handle_at`, `O_PATH`: nothing is read)
/// on the file system of `mount`. `handle` is a `struct file_handle` as the kernel wrote
/// it: `handle_bytes` (u32), `handle_type` (i32), then `handle_bytes` bytes. Needs
/// CAP_DAC_READ_SEARCH. A handle of an object that is gone is `ESTALE`.
pub(crate) fn open_by_handle(
    mount: &std::fs::File,
    handle: &[u8],
) -> io::Result<std::os::fd::OwnedFd> {
    let bad = || io::Error::from_raw_os_error(libc::EINVAL);
    let declared = handle.get(..4).ok_or_else(bad)?;
    let declared = u32::from_ne_bytes(declared.try_into().map_err(|_| bad())?) as usize;
    if handle.len() != 8 + declared || declared > MAX_HANDLE_BYTES {
        return Err(bad());
    }
    // A u32 buffer: struct file_handle is 4-byte aligned.
    let mut buf = vec![0u32; handle.len().div_ceil(4)];
    for (i, byte) in handle.iter().enumerate() {
        let word = &mut buf[i / 4];
        let mut bytes = word.to_ne_bytes();
        bytes[i % 4] = *byte;
        *word = u32::from_ne_bytes(bytes);
    }
    let fd = std::os::fd::AsRawFd::as_raw_fd(mount);
    // SAFETY: `buf` is a 4-byte aligned struct file_handle whose handle_bytes (checked
    // above against the buffer) says how many bytes follow the 8-byte header, all inside
    // `buf`, which outlives the call; the kernel only reads it. `fd` is open.
    // JUSTIFICATION: std has no way to open a file handle.
    let rc = unsafe {
        libc::open_by_handle_at(
            fd,
            buf.as_mut_ptr().cast::<libc::file_handle>(),
            libc::O_PATH | libc::O_CLOEXEC,
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `rc` is a new descriptor nothing else owns.
    // JUSTIFICATION: an OwnedFd closes it exactly once.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(rc) })
}

/// Most bytes of a file handle (`MAX_HANDLE_SZ` in the kernel's `fcntl.h`).
const MAX_HANDLE_BYTES: usize = 128;

/// The file handle of `path` (`name_to_handle_at`, not following a final symlink),
/// laid out as `struct file_handle` (`handle_bytes` u32, `handle_type` i32, the bytes):
/// what [`open_by_handle`] takes.
pub(crate) fn name_to_handle(path: &std::path::Path) -> io::Result<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // A u32 buffer: struct file_handle is 4-byte aligned; handle_bytes is its capacity.
    let mut buf = vec![0u32; (8 + MAX_HANDLE_BYTES) / 4];
    buf[0] = MAX_HANDLE_BYTES as u32;
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `c_path` is a NUL-terminated string and `buf` a 4-byte aligned struct
    // file_handle whose handle_bytes (set above) is the room after its 8-byte header;
    // both and `mount_id` outlive the call, which writes within those bounds only.
    // JUSTIFICATION: std has no way to name a file handle.
    let rc = unsafe {
        libc::name_to_handle_at(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            buf.as_mut_ptr().cast::<libc::file_handle>(),
            &mut mount_id,
            0,
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    let used = (buf[0] as usize).min(MAX_HANDLE_BYTES);
    let mut bytes: Vec<u8> = buf.iter().flat_map(|word| word.to_ne_bytes()).collect();
    bytes.truncate(8 + used);
    Ok(bytes)
}

/// Wait, without a timeout, until `fd` is readable (or in error: the next read says).
pub(crate) fn wait_readable(fd: std::os::fd::RawFd) -> io::Result<()> {
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: poll reads and writes exactly one pollfd through the pointer, which points
    // to `pfd`, alive for the call; the caller keeps `fd` open.
    // JUSTIFICATION: std cannot wait for a descriptor to become readable.
    if unsafe { libc::poll(&mut pfd, 1, -1) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_release_is_not_empty() {
        let release = kernel_release().expect("uname");
        assert!(!release.is_empty());
        assert!(!release.contains('\0'));
    }

    #[test]
    fn kill_process_group_refuses_special_groups() {
        assert!(kill_process_group(0, libc::SIGKILL).is_err());
        assert!(kill_process_group(1, libc::SIGKILL).is_err());
    }
}
