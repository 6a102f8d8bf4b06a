//! Which paths of `/workspace` may differ from the baseline, tracked with fanotify
//! (protocol 1.11, capability [`pyro_protocol::CHANGE_WATCH_CAPABILITY`]), so a
//! workspace diff compares those paths only instead of walking both trees.
//!
//! # The idea
//!
//! The baseline mount never changes, and in one ext4 lineage an untouched entry keeps its
//! whole stat tuple (see `tree_diff`). So the baseline *is* the manifest; what a diff
//! needs besides it is the set of *candidate* paths that may differ from it. The agent
//! keeps that set:
//!
//! - **base**: candidates known when tracking started (from the host with
//!   [`pyro_protocol::Request::MountWorkspace`]: empty after create and after a reset to
//!   the baseline, the set taken when a snapshot was taken for a reset onto it), or
//!   the changes a full walk found; `None` = unknown.
//! - **the event log**: from the moment `/workspace` is mounted, a fanotify group marks
//!   its whole file system and a thread (waiting in `poll`, so an idle guest spends no
//!   CPU) files every event as its parent directory's file handle plus the entry's name:
//!   *deep* for create, delete and both halves of a move (the entry and everything
//!   below it may differ), *shallow* for modify, attrib and close-after-write of a
//!   non-directory. Events on directories themselves are ignored (directory metadata is
//!   not part of a diff). The events are queued by the system calls themselves, so a
//!   drain at the start of a diff sees every write that returned before it.
//! - **open for writing**: writes through a shared writable mapping make no event. A
//!   mapping needs a writable descriptor; while it (or the mapping) is open, the file
//!   is found by scanning `/proc/*/fd` (with the access mode in `fdinfo`) and
//!   `/proc/*/maps` (`w` and `s`); once the last reference goes, the kernel queues
//!   `FAN_CLOSE_WRITE`, and candidates are sticky.
//!
//! Candidates are never dropped; only a full walk replaces them (the log is cleared when
//! it starts, and its changes, top-most only, become the base). A directory handle is
//! resolved to its current path when the diff runs (`open_by_handle_at` + the
//! descriptor's `/proc/self/fd` link): a moved directory's entries are found where they
//! are now, and a handle that is stale means the directory is gone, which the event that
//! removed or moved it covers (deep). A path outside `/workspace` (a bind mount made in
//! the guest) makes the log unusable.
//!
//! # When the diff walks both trees anyway
//!
//! Unknown base; a lost log (`FAN_Q_OVERFLOW`, more than [`MAX_LOG_ENTRIES`] distinct
//! entries, an event that could not be parsed or resolved); a mount point below
//! `/workspace` (fanotify does not see other file systems; the full walk refuses to
//! cross them); and a regular file with more than one link whose inode the baseline
//! has too: an old name of the inode may have changed without an event naming it.
//! (Links among files made since the baseline stay tracked: every name of a new inode
//! was made since, with an event.)
//!
//! # Limits
//!
//! The hostile guest can only break its own diff: a root process could unmark the group
//! or forge timestamps, as it could write its workspace. Nothing here trusts an event for
//! more than "compare this path"; comparing more paths never changes the answer.

use crate::error::SandboxError;
use crate::sys;
use crate::tree_diff;
use pyro_protocol::{
    TreeDiffAnswer, TreeDiffLimits, TreeTotals, MAX_CHANGE_SET_BYTES, MAX_CHANGE_SET_PATHS,
};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Candidate paths (relative to `/workspace`) and whether each is deep (the entry and
/// everything below it) or shallow (the entry only).
pub(crate) type Candidates = BTreeMap<PathBuf, bool>;

/// Most distinct (directory, name) entries the log holds; past it the log is lost.
pub(crate) const MAX_LOG_ENTRIES: usize = 200_000;

/// Read buffer of one drain (the kernel never splits an event across reads).
const EVENT_BUFFER: usize = 64 * 1024;

/// Events that change the namespace: the entry and everything below it may differ.
const NAMESPACE_EVENTS: u64 =
    libc::FAN_CREATE | libc::FAN_DELETE | libc::FAN_MOVED_FROM | libc::FAN_MOVED_TO;
/// Events that change an entry in place.
const ENTRY_EVENTS: u64 = libc::FAN_MODIFY | libc::FAN_ATTRIB | libc::FAN_CLOSE_WRITE;

/// Size of `struct fanotify_event_metadata`.
const METADATA_LEN: usize = 24;
/// Offset of the `struct file_handle` in a FID info record (header 4 + fsid 8).
const HANDLE_OFFSET: usize = 12;

/// One event as read from the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// An entry `name` of the directory whose file handle is `dir` may differ.
    Entry { dir: Vec<u8>, name: Vec<u8>, deep: bool },
    /// Nothing a diff needs (an event on a directory itself).
    Ignored,
    /// The kernel dropped events, or an event could not be understood.
    Lost,
}

fn ne_u16(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(buf.get(at..at + 2)?.try_into().ok()?))
}

fn ne_u32(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

fn ne_u64(buf: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(buf.get(at..at + 8)?.try_into().ok()?))
}

/// Parse what one `read(2)` of a `FAN_REPORT_DFID_NAME` group returned, by hand: the
/// libc crate has the constants only, and nix has no parser for FID-mode info records
/// (it hands out the metadata and a descriptor, which FID groups do not have). A
/// buffer that does not hold whole, well-formed events ends with [`Event::Lost`].
///
/// Layout: `struct fanotify_event_metadata` (`event_len` u32, `vers` u8, reserved u8,
/// `metadata_len` u16, `mask` u64, `fd` i32, `pid` i32), then info records up to
/// `event_len`, each `struct fanotify_event_info_header` (`info_type` u8, pad u8, `len`
/// u16); a `FAN_EVENT_INFO_TYPE_DFID_NAME` record continues with the fsid (8 bytes),
/// `struct file_handle` (`handle_bytes` u32, `handle_type` i32, the bytes) and the
/// entry's NUL-terminated name.
pub(crate) fn parse_events(buf: &[u8]) -> Vec<Event> {
    let mut events = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let event_len = ne_u32(buf, at).map(|n| n as usize);
        let Some(event) = event_len
            .filter(|&n| n >= METADATA_LEN && at + n <= buf.len())
            .map(|n| &buf[at..at + n])
        else {
            events.push(Event::Lost);
            break;
        };
        events.push(parse_event(event));
        at += event.len();
    }
    events
}

fn parse_event(event: &[u8]) -> Event {
    let (Some(vers), Some(metadata_len), Some(mask)) =
        (event.get(4), ne_u16(event, 6), ne_u64(event, 8))
    else {
        return Event::Lost;
    };
    if *vers != libc::FANOTIFY_METADATA_VERSION || mask & libc::FAN_Q_OVERFLOW != 0 {
        return Event::Lost;
    }
    let namespace = mask & NAMESPACE_EVENTS != 0;
    if mask & libc::FAN_ONDIR != 0 && !namespace {
        return Event::Ignored;
    }
    if !namespace && mask & ENTRY_EVENTS == 0 {
        return Event::Lost;
    }
    let mut at = metadata_len as usize;
    while at < event.len() {
        let (Some(kind), Some(len)) = (event.get(at), ne_u16(event, at + 2)) else {
            return Event::Lost;
        };
        let len = len as usize;
        let Some(record) = event.get(at..at + len).filter(|_| len >= 4) else {
            return Event::Lost;
        };
        if *kind == libc::FAN_EVENT_INFO_TYPE_DFID_NAME {
            return parse_dfid_name(record, namespace);
        }
        at += len;
    }
    // A change without the directory and name it happened to.
    Event::Lost
}

fn parse_dfid_name(record: &[u8], deep: bool) -> Event {
    let Some(handle_bytes) = ne_u32(record, HANDLE_OFFSET).map(|n| n as usize) else {
        return Event::Lost;
    };
    let handle_end = HANDLE_OFFSET + 8 + handle_bytes;
    let (Some(dir), Some(rest)) = (record.get(HANDLE_OFFSET..handle_end), record.get(handle_end..))
    else {
        return Event::Lost;
    };
    let Some(nul) = rest.iter().position(|&b| b == 0) else { return Event::Lost };
    let name = &rest[..nul];
    match name {
        // "." is the directory itself (an event on it, or the file system's root).
        b"." => Event::Ignored,
        b"" | b".." => Event::Lost,
        _ if name.contains(&b'/') => Event::Lost,
        _ => Event::Entry { dir: dir.to_vec(), name: name.to_vec(), deep },
    }
}

/// Events filed by directory handle, then name (deep wins).
#[derive(Debug, Default)]
pub(crate) struct EventLog {
    dirs: HashMap<Vec<u8>, BTreeMap<Vec<u8>, bool>>,
    entries: usize,
    lost: bool,
}

impl EventLog {
    pub(crate) fn file(&mut self, event: Event) {
        match event {
            Event::Ignored => {}
            Event::Lost => self.lost = true,
            Event::Entry { dir, name, deep } => {
                if self.lost {
                    return;
                }
                let names = self.dirs.entry(dir).or_default();
                match names.get_mut(&name) {
                    Some(old) => *old |= deep,
                    None if self.entries >= MAX_LOG_ENTRIES => self.lost = true,
                    None => {
                        names.insert(name, deep);
                        self.entries += 1;
                    }
                }
            }
        }
    }

    fn clear(&mut self) {
        *self = EventLog::default();
    }
}

/// The tracking of one mounted `/workspace`.
#[derive(Debug)]
pub(crate) struct ChangeWatch {
    root: PathBuf,
    group: File,
    /// An open directory on the file system, for `open_by_handle_at`.
    mount: File,
    state: Mutex<State>,
    /// Held by a full walk that rebuilds the base, so two never interleave their clears.
    rebuild: Mutex<()>,
}

#[derive(Debug)]
struct State {
    log: EventLog,
    base: Option<Candidates>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Filing an event cannot panic half way (map inserts only); a poisoned lock still
    // guards a whole log.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ChangeWatch {
    /// Start tracking the file system mounted at `root` (just mounted: nothing changed
    /// it yet), with `known` as the base. Spawns the thread that drains the events.
    pub(crate) fn start(root: &Path, known: Option<Candidates>) -> io::Result<Arc<ChangeWatch>> {
        let group: OwnedFd = sys::fanotify_dfid_name_group()?;
        let mask = NAMESPACE_EVENTS | ENTRY_EVENTS | libc::FAN_ONDIR;
        sys::fanotify_mark_filesystem(&group, root, mask)?;
        let mount = File::open(root)?;
        let watch = Arc::new(ChangeWatch {
            root: root.to_path_buf(),
            group: File::from(group),
            mount,
            state: Mutex::new(State { log: EventLog::default(), base: known }),
            rebuild: Mutex::new(()),
        });
        let drainer = Arc::clone(&watch);
        std::thread::Builder::new().name("change-watch".into()).spawn(move || loop {
            if sys::wait_readable(drainer.group.as_raw_fd()).is_err() {
                // EINTR or worse: drain anyway; a broken group shows up as lost.
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let drained = drainer.drain(&mut lock(&drainer.state).log);
            match drained {
                // The group is broken (the log says lost): stop rather than spin.
                Drained::Failed => return,
                // Readable but nothing to read should not happen; never spin on it.
                Drained::Bytes(0) => std::thread::sleep(std::time::Duration::from_millis(50)),
                Drained::Bytes(_) => {}
            }
        })?;
        Ok(watch)
    }

    /// Read every queued event into `log` (the caller holds the state lock, so events
    /// the thread read are filed before anyone looks).
    fn drain(&self, log: &mut EventLog) -> Drained {
        let mut buf = vec![0u8; EVENT_BUFFER];
        let mut total = 0;
        loop {
            match (&self.group).read(&mut buf) {
                Ok(0) => return Drained::Bytes(total),
                Ok(n) => {
                    total += n;
                    for event in parse_events(&buf[..n]) {
                        log.file(event);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Drained::Bytes(total),
                Err(_) => {
                    log.lost = true;
                    return Drained::Failed;
                }
            }
        }
    }

    /// The candidates now: the base, the logged events at their directories' current
    /// paths, and files open for writing or mapped shared-writable. `None`: unknown.
    pub(crate) fn candidates(&self) -> Option<Candidates> {
        let (mut candidates, log) = {
            let mut state = lock(&self.state);
            self.drain(&mut state.log);
            if state.log.lost {
                return None;
            }
            let log = state.log.dirs.clone();
            (state.base.clone()?, log)
        };
        for (handle, names) in &log {
            let dir = match self.resolve(handle) {
                Resolved::Dir(dir) => dir,
                Resolved::Gone => continue,
                Resolved::Unknown => return None,
            };
            for (name, deep) in names {
                let path = dir.join(OsStr::from_bytes(name));
                let entry = candidates.entry(path).or_insert(false);
                *entry |= *deep;
            }
        }
        for path in open_for_writing(&self.root) {
            candidates.entry(path).or_insert(false);
        }
        Some(candidates)
    }

    /// The current path of the directory `handle` names, relative to the root.
    fn resolve(&self, handle: &[u8]) -> Resolved {
        let fd = match sys::open_by_handle(&self.mount, handle) {
            Ok(fd) => fd,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ESTALE | libc::ENOENT)) => {
                return Resolved::Gone
            }
            Err(_) => return Resolved::Unknown,
        };
        let Ok(path) = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())) else {
            return Resolved::Unknown;
        };
        // A directory removed meanwhile reads "<path> (deleted)": a harmless extra
        // candidate (no such entry), and the event that removed it covers its entries.
        relative_to(&self.root, &path).map_or(Resolved::Unknown, Resolved::Dir)
    }

    /// The candidate set for the host (taken while `/workspace` is frozen for a
    /// snapshot): `None` when unknown, not UTF-8 or over the bounds of the protocol.
    pub(crate) fn change_set(&self) -> Option<Vec<String>> {
        to_wire(&self.candidates()?)
    }

    /// Hold while a full walk rebuilds the base.
    pub(crate) fn rebuild_guard(&self) -> MutexGuard<'_, ()> {
        lock(&self.rebuild)
    }

    /// A full walk that rebuilds the base starts: forget the base and the events so
    /// far (the walk sees their effects); events from now on are kept.
    pub(crate) fn begin_rebuild(&self) {
        let mut state = lock(&self.state);
        self.drain(&mut state.log);
        state.log.clear();
        state.base = None;
    }

    /// The full walk that began with [`ChangeWatch::begin_rebuild`] found these changes.
    pub(crate) fn finish_rebuild(&self, changed: Candidates) {
        lock(&self.state).base = Some(changed);
    }
}

/// What one drain did.
enum Drained {
    /// Read this many bytes of events.
    Bytes(usize),
    /// The group failed (the log is lost).
    Failed,
}

enum Resolved {
    Dir(PathBuf),
    Gone,
    Unknown,
}

/// `path` relative to `root` when it is `root` or below it and normal.
fn relative_to(root: &Path, path: &Path) -> Option<PathBuf> {
    let rel = path.strip_prefix(root).ok()?;
    rel.components().all(|c| matches!(c, Component::Normal(_))).then(|| rel.to_path_buf())
}

/// Files below `root` that some process has open for writing or mapped shared and
/// writable (relative paths, shallow candidates). Best effort over `/proc`: a process
/// that ends meanwhile closed its files, which queued `FAN_CLOSE_WRITE`.
fn open_for_writing(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return found };
    for proc_dir in procs.flatten() {
        let name = proc_dir.file_name();
        if !name.as_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        let pid = proc_dir.path();
        if let Ok(fds) = std::fs::read_dir(pid.join("fd")) {
            for fd in fds.flatten() {
                let Ok(target) = std::fs::read_link(fd.path()) else { continue };
                let Some(rel) = relative_to(root, &target).filter(|r| !r.as_os_str().is_empty())
                else {
                    continue;
                };
                let info = std::fs::read_to_string(pid.join("fdinfo").join(fd.file_name()));
                if info.map_or(true, |text| opened_for_writing(&text)) {
                    found.push(rel);
                }
            }
        }
        let Ok(maps) = std::fs::read_to_string(pid.join("maps")) else { continue };
        for range in shared_writable_ranges(&maps) {
            let Ok(target) = std::fs::read_link(pid.join("map_files").join(range)) else {
                continue;
            };
            if let Some(rel) = relative_to(root, &target).filter(|r| !r.as_os_str().is_empty()) {
                found.push(rel);
            }
        }
    }
    found
}

/// Whether an `fdinfo` text's `flags:` (octal) has a writable access mode.
fn opened_for_writing(fdinfo: &str) -> bool {
    fdinfo
        .lines()
        .find_map(|line| line.strip_prefix("flags:"))
        .and_then(|flags| u32::from_str_radix(flags.trim(), 8).ok())
        .is_none_or(|flags| flags & libc::O_ACCMODE as u32 != libc::O_RDONLY as u32)
}

/// The address ranges (`start-end`, as `/proc/<pid>/map_files` names them) of the
/// shared writable mappings in a `/proc/<pid>/maps` text.
fn shared_writable_ranges(maps: &str) -> Vec<&str> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            let (range, perms) = (fields.next()?, fields.next()?.as_bytes());
            (perms.len() == 4 && perms[1] == b'w' && perms[3] == b's').then_some(range)
        })
        .collect()
}

/// Candidates as the protocol carries them; `None` past its bounds or for names that
/// are not UTF-8 (they could not come back unchanged).
pub(crate) fn to_wire(candidates: &Candidates) -> Option<Vec<String>> {
    if candidates.len() > MAX_CHANGE_SET_PATHS {
        return None;
    }
    let mut bytes = 0usize;
    let mut out = Vec::with_capacity(candidates.len());
    for path in candidates.keys() {
        let text = path.to_str()?;
        bytes += text.len();
        if bytes > MAX_CHANGE_SET_BYTES {
            return None;
        }
        out.push(text.to_owned());
    }
    Some(out)
}

/// The host's known set as a base (every path deep: a directory stands for everything
/// below it); `None` when it is over the bounds or names a path that is not relative
/// and normal (the host validates it too).
pub(crate) fn from_wire(paths: &[String]) -> Option<Candidates> {
    if paths.len() > MAX_CHANGE_SET_PATHS
        || paths.iter().map(String::len).sum::<usize>() > MAX_CHANGE_SET_BYTES
    {
        return None;
    }
    let mut out = Candidates::new();
    for path in paths {
        let p = Path::new(path);
        let normal = !path.is_empty()
            && !path.ends_with('/')
            && !path.contains("//")
            && p.components().all(|c| matches!(c, Component::Normal(_)));
        if !normal {
            return None;
        }
        out.insert(p.to_path_buf(), true);
    }
    Some(out)
}

/// Whether anything is mounted strictly below `root` (fanotify would not see it).
fn has_mounts_below(root: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else { return true };
    text.lines().filter_map(|line| line.split(' ').nth(4)).any(|point| {
        // Mount points are escaped (\040 for a space); an escaped one below root
        // still starts with root's path.
        Path::new(point).strip_prefix(root).is_ok_and(|rel| !rel.as_os_str().is_empty())
    })
}

/// The diff of `/workspace` against the baseline with tracking: the candidates only
/// when they are known (see the module documentation), else a full walk that rebuilds
/// the base.
pub(crate) fn tracked_diff(
    watch: &ChangeWatch,
    current: &Path,
    baseline: &Path,
    limits: TreeDiffLimits,
) -> Result<TreeDiffAnswer, SandboxError> {
    if !has_mounts_below(&watch.root) {
        if let Some(candidates) = watch.candidates() {
            if let Some(mut answer) =
                tree_diff::diff_candidates(current, baseline, limits, &candidates)?
            {
                answer.tracked = true;
                answer.tracked_paths = candidates.len() as u64;
                return Ok(answer);
            }
        }
    }
    let _rebuilding = watch.rebuild_guard();
    watch.begin_rebuild();
    let (answer, changed) = tree_diff::diff_trees_recording(current, baseline, limits)?;
    watch.finish_rebuild(top_most(changed));
    Ok(answer)
}

/// The totals of `/workspace` ([`pyro_protocol::Request::TreeTotals`]) from the
/// baseline's and the candidates when they are known; else counted whole. The second
/// value says which.
pub(crate) fn tracked_totals(
    watch: &ChangeWatch,
    current: &Path,
    baseline: &Path,
    baseline_totals: TreeTotals,
) -> Result<(TreeTotals, bool), SandboxError> {
    if !has_mounts_below(&watch.root) {
        if let Some(candidates) = watch.candidates() {
            let counted = tree_diff::totals::count_candidates(
                current,
                baseline,
                baseline_totals,
                &candidates,
            )?;
            if let Some(totals) = counted {
                return Ok((totals, true));
            }
        }
    }
    Ok((tree_diff::totals::count_tree(current)?, false))
}

/// The paths of `changed` that are not below another one, all deep.
fn top_most(mut changed: Vec<PathBuf>) -> Candidates {
    changed.sort();
    let mut out = Candidates::new();
    let mut last: Option<PathBuf> = None;
    for path in changed {
        if last.as_ref().is_some_and(|top| path.starts_with(top)) {
            continue;
        }
        out.insert(path.clone(), true);
        last = Some(path);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One event as the kernel lays it out, with a DFID_NAME record.
    fn event(mask: u64, handle: &[u8], name: &[u8]) -> Vec<u8> {
        let mut record = vec![libc::FAN_EVENT_INFO_TYPE_DFID_NAME, 0, 0, 0];
        record.extend_from_slice(&[7u8; 8]); // fsid
        record.extend_from_slice(&(handle.len() as u32).to_ne_bytes());
        record.extend_from_slice(&1i32.to_ne_bytes()); // handle type
        record.extend_from_slice(handle);
        record.extend_from_slice(name);
        record.push(0);
        while record.len() % 4 != 0 {
            record.push(0);
        }
        let len = record.len() as u16;
        record[2..4].copy_from_slice(&len.to_ne_bytes());
        let mut out = Vec::new();
        out.extend_from_slice(&((METADATA_LEN + record.len()) as u32).to_ne_bytes());
        out.push(libc::FANOTIFY_METADATA_VERSION);
        out.push(0);
        out.extend_from_slice(&(METADATA_LEN as u16).to_ne_bytes());
        out.extend_from_slice(&mask.to_ne_bytes());
        out.extend_from_slice(&libc::FAN_NOFD.to_ne_bytes());
        out.extend_from_slice(&42i32.to_ne_bytes());
        out.extend_from_slice(&record);
        out
    }

    fn key(handle: &[u8]) -> Vec<u8> {
        let mut k = (handle.len() as u32).to_ne_bytes().to_vec();
        k.extend_from_slice(&1i32.to_ne_bytes());
        k.extend_from_slice(handle);
        k
    }

    #[test]
    fn events_parse_into_entries_deep_for_namespace_changes() {
        let mut buf = event(libc::FAN_MODIFY, b"dirA", b"file.txt");
        buf.extend(event(libc::FAN_CREATE | libc::FAN_ONDIR, b"dirA", b"sub"));
        buf.extend(event(libc::FAN_MOVED_FROM, b"dirB", b"old"));
        buf.extend(event(libc::FAN_ATTRIB | libc::FAN_ONDIR, b"dirB", b"x"));
        buf.extend(event(libc::FAN_ATTRIB | libc::FAN_ONDIR, b"root", b"."));
        assert_eq!(
            parse_events(&buf),
            [
                Event::Entry { dir: key(b"dirA"), name: b"file.txt".to_vec(), deep: false },
                Event::Entry { dir: key(b"dirA"), name: b"sub".to_vec(), deep: true },
                Event::Entry { dir: key(b"dirB"), name: b"old".to_vec(), deep: true },
                Event::Ignored,
                Event::Ignored,
            ]
        );
    }

    #[test]
    fn odd_events_are_lost_never_a_panic() {
        let good = event(libc::FAN_CLOSE_WRITE, b"d", b"f");
        // Overflow: metadata only.
        let mut overflow = good[..METADATA_LEN].to_vec();
        overflow[0..4].copy_from_slice(&(METADATA_LEN as u32).to_ne_bytes());
        overflow[8..16].copy_from_slice(&libc::FAN_Q_OVERFLOW.to_ne_bytes());
        assert_eq!(parse_events(&overflow), [Event::Lost]);
        // A modify without a name record.
        assert_eq!(parse_events(&overflow.iter().map(|_| 0).collect::<Vec<u8>>()), [Event::Lost]);
        // Every truncation of a good event, and garbage lengths.
        for cut in 0..good.len() {
            let events = parse_events(&good[..cut]);
            assert!(cut == 0 || events.contains(&Event::Lost), "cut at {cut}: {events:?}");
        }
        let mut huge_handle = good.clone();
        huge_handle[METADATA_LEN + 12..METADATA_LEN + 16].copy_from_slice(&9999u32.to_ne_bytes());
        assert_eq!(parse_events(&huge_handle), [Event::Lost]);
        let mut zero_record = good.clone();
        zero_record[METADATA_LEN + 2..METADATA_LEN + 4].copy_from_slice(&0u16.to_ne_bytes());
        assert_eq!(parse_events(&zero_record), [Event::Lost]);
        for name in [&b""[..], b"..", b"a/b"] {
            assert_eq!(parse_events(&event(libc::FAN_MODIFY, b"d", name)), [Event::Lost]);
        }
        let mut wrong_version = good.clone();
        wrong_version[4] = 99;
        assert_eq!(parse_events(&wrong_version), [Event::Lost]);
    }

    #[test]
    fn the_log_merges_names_and_gives_up_past_its_cap() {
        let mut log = EventLog::default();
        let entry = |name: &str, deep| Event::Entry {
            dir: key(b"d"),
            name: name.as_bytes().to_vec(),
            deep,
        };
        log.file(entry("a", false));
        log.file(entry("a", true));
        log.file(entry("a", false));
        assert!(log.dirs[&key(b"d")][&b"a".to_vec()]);
        assert_eq!(log.entries, 1);
        log.entries = MAX_LOG_ENTRIES;
        log.file(entry("a", false));
        assert!(!log.lost, "a known entry costs nothing");
        log.file(entry("b", false));
        assert!(log.lost);
        log.clear();
        assert!(!log.lost && log.dirs.is_empty());
    }

    #[test]
    fn proc_texts_are_read_for_writable_files() {
        assert!(opened_for_writing("pos:\t0\nflags:\t0100002\nmnt_id:\t20\n"));
        assert!(opened_for_writing("flags:\t01\n"));
        assert!(!opened_for_writing("pos:\t0\nflags:\t0100000\n"));
        // Unreadable: counted as writable (an extra candidate is harmless).
        assert!(opened_for_writing("garbage"));
        let maps = "7f00-7f10 rw-s 00000000 fe:01 12 /workspace/data.bin\n\
                    7f10-7f20 r--s 00000000 fe:01 13 /workspace/ro.bin\n\
                    7f20-7f30 rw-p 00000000 00:00 0 \n\
                    7f30-7f40 -w-s 00000000 fe:01 14 /workspace/w only\n";
        assert_eq!(shared_writable_ranges(maps), ["7f00-7f10", "7f30-7f40"]);
    }

    #[test]
    fn wire_sets_are_bounded_and_normal() {
        let set = from_wire(&["a/b".into(), "c".into()]).expect("valid");
        assert_eq!(set.len(), 2);
        assert!(set.values().all(|deep| *deep));
        assert_eq!(to_wire(&set), Some(vec!["a/b".to_owned(), "c".to_owned()]));
        for bad in ["", "/etc", "a/../b", "./a", "a//b", "a/"] {
            assert_eq!(from_wire(&[bad.to_owned()]), None, "{bad}");
        }
        let many: Vec<String> = (0..=MAX_CHANGE_SET_PATHS).map(|i| format!("f{i}")).collect();
        assert_eq!(from_wire(&many), None);
        let big = vec!["x".repeat(MAX_CHANGE_SET_BYTES + 1)];
        assert_eq!(from_wire(&big), None);
        let mut odd = Candidates::new();
        odd.insert(PathBuf::from(OsStr::from_bytes(b"caf\xe9")), false);
        assert_eq!(to_wire(&odd), None, "a name that is not UTF-8 cannot travel");
    }

    #[test]
    fn top_most_keeps_ancestors_only() {
        let paths = ["a/b/c", "a", "a-b", "a/b", "z/y", "z/x/w"].map(PathBuf::from).to_vec();
        let top: Vec<String> = top_most(paths).keys().map(|p| p.display().to_string()).collect();
        assert_eq!(top, ["a", "a-b", "z/x/w", "z/y"]);
    }

    #[test]
    fn relative_paths_stay_below_the_root() {
        let root = Path::new("/workspace");
        assert_eq!(relative_to(root, Path::new("/workspace")), Some(PathBuf::new()));
        assert_eq!(relative_to(root, Path::new("/workspace/a/b")), Some(PathBuf::from("a/b")));
        assert_eq!(relative_to(root, Path::new("/workspacex/a")), None);
        assert_eq!(relative_to(root, Path::new("/elsewhere")), None);
    }
}
