//! Tree comparison in the agent (protocol 1.8, [`Request::TreeDiffOpen`]): the current
//! tree against a frozen baseline tree, stat first.
//!
//! # How it decides
//!
//! Both trees are walked together, directory by directory, names in byte order, never
//! following a symlink and never entering another file system. For a path present on
//! both sides:
//!
//! - identical stat tuples (type, permission bits, size, mtime and ctime to the
//!   nanosecond, inode number) mean unchanged, and the entry is not read. When the
//!   baseline is a block-level snapshot of the same ext4 (one lineage), an untouched
//!   file keeps all of these, and any write to a file changes its ctime, which user
//!   space cannot set (`utimensat` sets mtime and atime only): a same-size rewrite with
//!   the old mtime put back (`touch -d`, same-second writes) still differs in ctime.
//!   The one hole: a root process that sets the clock back to the old ctime before
//!   writing forges the tuple; it only fools the diff of its own workspace.
//! - any other pair is a *candidate*: files of different sizes are changed at once,
//!   files of equal size are compared byte by byte (streamed, 64 KiB at a time),
//!   symlinks by target. Across trees of different lineage (a copied baseline)
//!   inode numbers and ctimes never match, so every pair is a candidate and content
//!   decides: always correct, fast only when the lineage is shared.
//!
//! The rules of what counts as a change are those of the host's archive diff
//! (`pyro::runtime::diff`): a permission change other than the executable bits is not
//! a change, directories are not entries unless present on one side only, special
//! files count as absent. Text (valid UTF-8 without NUL) of the files the host needs
//! for a patch travels in the answer, bounded by [`TreeDiffLimits::max_text_bytes`].
//!
//! # Candidates only (protocol 1.11)
//!
//! When the agent tracks `/workspace` (`change_watch`), a diff of `/workspace` against
//! the baseline mount compares only the candidate paths ([`diff_candidates`]), with the
//! same `compare` as the walk, so the answer holds the same changes; the walk
//! ([`diff_trees`]) remains for unknown sets, lost logs, hard-linked files and other
//! roots.
//!
//! [`Request::TreeDiffOpen`]: pyro_protocol::Request::TreeDiffOpen

use crate::error::SandboxError;
use pyro_protocol::{ArtifactType, TreeChange, TreeDiffAnswer, TreeDiffLimits, TreeSide};
use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub(crate) mod totals;

/// Read size of content comparisons and text checks.
const BLOCK: usize = 64 * 1024;

/// Which tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tree {
    Baseline,
    Current,
}

/// The stat data two untouched entries of one lineage share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StatTuple {
    file_type: u32,
    mode: u32,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
}

impl StatTuple {
    fn of(meta: &Metadata) -> Self {
        StatTuple {
            file_type: meta.mode() & libc::S_IFMT,
            mode: meta.mode() & 0o7777,
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
        }
    }
}

fn kind(meta: &Metadata) -> Option<ArtifactType> {
    let t = meta.file_type();
    if t.is_symlink() {
        Some(ArtifactType::Symlink)
    } else if t.is_dir() {
        Some(ArtifactType::Directory)
    } else if t.is_file() {
        Some(ArtifactType::File)
    } else {
        None
    }
}

fn is_executable(mode: u32) -> bool {
    mode & 0o111 != 0
}

/// Compare `current` with `baseline` (both directories, not symlinks).
pub(crate) fn diff_trees(
    current: &Path,
    baseline: &Path,
    limits: TreeDiffLimits,
) -> Result<TreeDiffAnswer, SandboxError> {
    let mut walker = Walker::new(current, baseline, limits)?;
    walker.walk_pair(Path::new(""))?;
    Ok(walker.answer)
}

/// [`diff_trees`], also returning the changed paths (relative, as on disk: names that
/// are not UTF-8 intact).
pub(crate) fn diff_trees_recording(
    current: &Path,
    baseline: &Path,
    limits: TreeDiffLimits,
) -> Result<(TreeDiffAnswer, Vec<PathBuf>), SandboxError> {
    let mut walker = Walker::new(current, baseline, limits)?;
    walker.walk_pair(Path::new(""))?;
    Ok((walker.answer, walker.changed))
}

/// The answer [`diff_trees`] gives, found by comparing only `candidates` (relative
/// paths; deep: the entry and everything below it; shallow: the entry itself) in the
/// knowledge that no other path differs (`change_watch`). `None` when a regular file
/// with more than one link was met whose inode the baseline has (see
/// `Walker::old_inode`): another of its names may have changed without being a
/// candidate, so only a full walk is sure.
///
/// Each candidate is moved up to its top-most ancestor that is not a directory on both
/// sides (made deep): an entry below a directory that was added, removed or replaced is
/// reported with it, as the full walk reports it. Then in path order (components, so
/// an entry's descendants follow it), a candidate below a deep one is skipped (its
/// compare covered it); a shallow candidate that is a directory on both sides needs
/// nothing (directories are not compared); every other one is compared as the full walk
/// compares it. Changes come in another order than the walk's; the host orders them.
pub(crate) fn diff_candidates(
    current: &Path,
    baseline: &Path,
    limits: TreeDiffLimits,
    candidates: &std::collections::BTreeMap<PathBuf, bool>,
) -> Result<Option<TreeDiffAnswer>, SandboxError> {
    let mut walker = Walker::new(current, baseline, limits)?;
    walker.tracked = true;
    let whole = visit_candidates(&mut walker, candidates, |walker, path| walker.compare(path))?;
    Ok(whole.then_some(walker.answer))
}

/// The candidate loop of a tracked diff or count (see [`diff_candidates`]): `visit`
/// gets every path whose entry, and everything below it, must be looked at on both
/// sides, each once, none below another. `false` when a regular file with more than
/// one link of an inode the baseline has was met: the caller needs a full walk.
fn visit_candidates(
    walker: &mut Walker,
    candidates: &std::collections::BTreeMap<PathBuf, bool>,
    mut visit: impl FnMut(&mut Walker, &Path) -> Result<(), SandboxError>,
) -> Result<bool, SandboxError> {
    let mut lifted: std::collections::BTreeMap<PathBuf, bool> = Default::default();
    let mut dirs = std::collections::HashMap::new();
    for (path, deep) in candidates {
        let normal = path.components().all(|c| matches!(c, std::path::Component::Normal(_)));
        if !normal || path.as_os_str().is_empty() {
            continue;
        }
        let mut at = PathBuf::new();
        let mut target = (path.clone(), *deep);
        let mut parts = path.components().peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                break;
            }
            at.push(part);
            if !walker.dir_on_both_sides(&at, &mut dirs)? {
                target = (at.clone(), true);
                break;
            }
        }
        let entry = lifted.entry(target.0).or_insert(false);
        *entry |= target.1;
    }
    let mut covered: Option<PathBuf> = None;
    for (path, deep) in lifted {
        if covered.as_ref().is_some_and(|top| path.starts_with(top)) {
            continue;
        }
        // A shallow directory on both sides: its own metadata is not compared, and the
        // candidates below it come on their own.
        if !deep && walker.dir_on_both_sides(&path, &mut dirs)? {
            continue;
        }
        visit(walker, &path)?;
        covered = Some(path);
        if walker.multi_link {
            return Ok(false);
        }
    }
    Ok(true)
}

struct Walker {
    current: PathBuf,
    baseline: PathBuf,
    current_dev: u64,
    baseline_dev: u64,
    limits: TreeDiffLimits,
    text_bytes: u64,
    answer: TreeDiffAnswer,
    /// Relative paths of `answer.changes`, in the same order.
    changed: Vec<PathBuf>,
    /// Comparing candidates only: note regular files with more than one link.
    tracked: bool,
    /// A regular file with more than one link, of an inode the baseline has, was
    /// stat'ed (tracked mode; see [`Walker::old_inode`]).
    multi_link: bool,
    /// The baseline root, opened when a handle must be tried on it.
    baseline_dir: Option<File>,
}

fn rel_string(rel: &Path) -> String {
    String::from_utf8_lossy(rel.as_os_str().as_bytes()).into_owned()
}

impl Walker {
    fn new(current: &Path, baseline: &Path, limits: TreeDiffLimits) -> Result<Self, SandboxError> {
        let root_meta = |path: &Path| -> Result<Metadata, SandboxError> {
            let shown = path.display().to_string();
            match fs::symlink_metadata(path) {
                Ok(meta) if meta.is_dir() => Ok(meta),
                Ok(_) => Err(SandboxError::Invalid(format!(
                    "tree diff root is not a directory: {shown}"
                ))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Err(SandboxError::NotFound(shown)),
                Err(e) => Err(SandboxError::io("stat", &shown, e)),
            }
        };
        Ok(Walker {
            current: current.to_path_buf(),
            baseline: baseline.to_path_buf(),
            current_dev: root_meta(current)?.dev(),
            baseline_dev: root_meta(baseline)?.dev(),
            limits,
            text_bytes: 0,
            answer: TreeDiffAnswer::default(),
            changed: Vec::new(),
            tracked: false,
            multi_link: false,
            baseline_dir: None,
        })
    }

    /// Whether `rel` is a directory (not a symlink) on both sides; answers cached in
    /// `known` (candidates share ancestors). Its ancestors must be so already.
    fn dir_on_both_sides(
        &mut self,
        rel: &Path,
        known: &mut std::collections::HashMap<PathBuf, bool>,
    ) -> Result<bool, SandboxError> {
        if let Some(answer) = known.get(rel) {
            return Ok(*answer);
        }
        let mut both = true;
        for tree in [Tree::Baseline, Tree::Current] {
            let is_dir = self.stat(tree, rel)?.is_some_and(|meta| meta.is_dir());
            both &= is_dir;
        }
        known.insert(rel.to_path_buf(), both);
        Ok(both)
    }

    fn push(&mut self, rel: &Path, change: TreeChange) {
        self.answer.changes.push(change);
        self.changed.push(rel.to_path_buf());
    }

    fn root(&self, tree: Tree) -> &Path {
        match tree {
            Tree::Baseline => &self.baseline,
            Tree::Current => &self.current,
        }
    }

    fn count(&mut self) -> Result<(), SandboxError> {
        self.answer.scanned += 1;
        if self.answer.scanned > self.limits.max_entries {
            return Err(SandboxError::TooLarge(format!(
                "the trees hold more than {} entries",
                self.limits.max_entries
            )));
        }
        Ok(())
    }

    /// Sorted names in directory `rel` of `tree`; a directory removed meanwhile is empty.
    fn names(&self, tree: Tree, rel: &Path) -> Result<Vec<OsString>, SandboxError> {
        let dir = self.root(tree).join(rel);
        let shown = dir.display().to_string();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(SandboxError::io("read directory", &shown, e)),
        };
        let mut names: Vec<OsString> = entries
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(|e| SandboxError::io("read directory", &shown, e))?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        Ok(names)
    }

    /// lstat of `rel` in `tree`, counted; `None` when absent (or removed meanwhile).
    fn stat(&mut self, tree: Tree, rel: &Path) -> Result<Option<Metadata>, SandboxError> {
        let path = self.root(tree).join(rel);
        match fs::symlink_metadata(&path) {
            Ok(meta) => {
                self.count()?;
                if self.tracked && meta.is_file() && meta.nlink() > 1 && self.old_inode(tree, &path)
                {
                    self.multi_link = true;
                }
                Ok(Some(meta))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SandboxError::io("stat", &path.display().to_string(), e)),
        }
    }

    /// Whether the regular file at `path` (of `tree`, with more than one link) may have
    /// a name that no candidate covers: on the baseline side always; on the current
    /// side when its inode was in the baseline already (its file handle opens on the
    /// baseline mount: same lineage, so same inode number and generation). An inode
    /// made since has only names made since, and each of those was created with an
    /// event or is in the known set, so every one is a candidate. The handle check
    /// errs towards `true` (a full walk) on anything but "stale": the inode number
    /// is free in the baseline, or in use there by an inode of another generation.
    fn old_inode(&mut self, tree: Tree, path: &Path) -> bool {
        if tree == Tree::Baseline {
            return true;
        }
        if self.baseline_dir.is_none() {
            self.baseline_dir = File::open(&self.baseline).ok();
        }
        let Some(baseline) = &self.baseline_dir else { return true };
        match crate::sys::name_to_handle(path)
            .and_then(|handle| crate::sys::open_by_handle(baseline, &handle))
        {
            Ok(_) => true,
            Err(e) => e.raw_os_error() != Some(libc::ESTALE),
        }
    }

    /// Refuse to walk into a directory on another file system.
    fn same_fs(&self, tree: Tree, rel: &Path, meta: &Metadata) -> Result<(), SandboxError> {
        let dev = match tree {
            Tree::Baseline => self.baseline_dev,
            Tree::Current => self.current_dev,
        };
        if meta.dev() != dev {
            return Err(SandboxError::Unsupported(format!(
                "tree diff does not cross mount points: {}",
                self.root(tree).join(rel).display()
            )));
        }
        Ok(())
    }

    /// Compare directory `rel`, present in both trees.
    fn walk_pair(&mut self, rel: &Path) -> Result<(), SandboxError> {
        let old = self.names(Tree::Baseline, rel)?;
        let new = self.names(Tree::Current, rel)?;
        let (mut i, mut j) = (0, 0);
        while i < old.len() || j < new.len() {
            let name = match (old.get(i), new.get(j)) {
                (Some(a), Some(b)) => match a.as_bytes().cmp(b.as_bytes()) {
                    std::cmp::Ordering::Less => {
                        i += 1;
                        a
                    }
                    std::cmp::Ordering::Greater => {
                        j += 1;
                        b
                    }
                    std::cmp::Ordering::Equal => {
                        i += 1;
                        j += 1;
                        a
                    }
                },
                (Some(a), None) => {
                    i += 1;
                    a
                }
                (None, Some(b)) => {
                    j += 1;
                    b
                }
                (None, None) => break,
            };
            let child = rel.join(name);
            self.compare(&child)?;
        }
        Ok(())
    }

    fn compare(&mut self, rel: &Path) -> Result<(), SandboxError> {
        let old = self.stat(Tree::Baseline, rel)?;
        let new = self.stat(Tree::Current, rel)?;
        let old_kind = old.as_ref().and_then(kind);
        let new_kind = new.as_ref().and_then(kind);
        match (old.as_ref().zip(old_kind), new.as_ref().zip(new_kind)) {
            (None, None) => Ok(()),
            (Some((meta, _)), None) => self.one_sided(Tree::Baseline, rel, meta),
            (None, Some((meta, _))) => self.one_sided(Tree::Current, rel, meta),
            (Some((a, ka)), Some((b, kb))) if ka != kb => {
                let change = TreeChange {
                    path: rel_string(rel),
                    old: Some(self.side(Tree::Baseline, rel, a, ka)?),
                    new: Some(self.side(Tree::Current, rel, b, kb)?),
                    content_changed: false,
                };
                self.push(rel, change);
                for (tree, meta, k) in [(Tree::Baseline, a, ka), (Tree::Current, b, kb)] {
                    if k == ArtifactType::Directory {
                        self.same_fs(tree, rel, meta)?;
                        self.walk_one(tree, rel)?;
                    }
                }
                Ok(())
            }
            (Some((a, ArtifactType::Directory)), Some((b, _))) => {
                self.same_fs(Tree::Baseline, rel, a)?;
                self.same_fs(Tree::Current, rel, b)?;
                self.walk_pair(rel)
            }
            (Some((a, k)), Some((b, _))) => {
                if StatTuple::of(a) == StatTuple::of(b) {
                    return Ok(());
                }
                self.answer.candidates += 1;
                if k == ArtifactType::Symlink {
                    self.compare_links(rel, a, b)
                } else {
                    self.compare_files(rel, a, b)
                }
            }
        }
    }

    fn compare_links(
        &mut self,
        rel: &Path,
        a: &Metadata,
        b: &Metadata,
    ) -> Result<(), SandboxError> {
        let old = self.side(Tree::Baseline, rel, a, ArtifactType::Symlink)?;
        let new = self.side(Tree::Current, rel, b, ArtifactType::Symlink)?;
        if old.link_target != new.link_target {
            let path = rel_string(rel);
            self.push(
                rel,
                TreeChange { path, old: Some(old), new: Some(new), content_changed: false },
            );
        }
        Ok(())
    }

    fn compare_files(
        &mut self,
        rel: &Path,
        a: &Metadata,
        b: &Metadata,
    ) -> Result<(), SandboxError> {
        let old_path = self.baseline.join(rel);
        let new_path = self.current.join(rel);
        let content_changed = a.size() != b.size() || !same_bytes(&old_path, &new_path)?;
        let (old_mode, new_mode) = (a.mode() & 0o7777, b.mode() & 0o7777);
        if !content_changed && is_executable(old_mode) == is_executable(new_mode) {
            return Ok(());
        }
        let mut old = TreeSide {
            artifact_type: ArtifactType::File,
            mode: old_mode,
            link_target: None,
            text: None,
        };
        let mut new = TreeSide {
            artifact_type: ArtifactType::File,
            mode: new_mode,
            link_target: None,
            text: None,
        };
        if content_changed {
            let before = self.text(&old_path, a.size())?;
            let after = match before {
                Some(_) => self.text(&new_path, b.size())?,
                None => None,
            };
            match (before, after) {
                (Some(x), Some(y)) => {
                    old.text = Some(x);
                    new.text = Some(y);
                }
                // Only both sides as text make a patch: give the budget back.
                (Some(x), None) => self.text_bytes -= x.len() as u64,
                _ => {}
            }
        }
        let path = rel_string(rel);
        self.push(rel, TreeChange { path, old: Some(old), new: Some(new), content_changed });
        Ok(())
    }

    /// Report `rel`, present in `tree` only, and everything below it.
    fn one_sided(&mut self, tree: Tree, rel: &Path, meta: &Metadata) -> Result<(), SandboxError> {
        let Some(k) = kind(meta) else { return Ok(()) };
        let mut side = self.side(tree, rel, meta, k)?;
        if k == ArtifactType::File {
            side.text = self.text(&self.root(tree).join(rel), meta.size())?;
        }
        let (old, new) = match tree {
            Tree::Baseline => (Some(side), None),
            Tree::Current => (None, Some(side)),
        };
        self.push(rel, TreeChange { path: rel_string(rel), old, new, content_changed: false });
        if k == ArtifactType::Directory {
            self.same_fs(tree, rel, meta)?;
            self.walk_one(tree, rel)?;
        }
        Ok(())
    }

    /// Report every entry below directory `rel` of `tree` (present there only).
    fn walk_one(&mut self, tree: Tree, rel: &Path) -> Result<(), SandboxError> {
        for name in self.names(tree, rel)? {
            let child = rel.join(name);
            if let Some(meta) = self.stat(tree, &child)? {
                self.one_sided(tree, &child, &meta)?;
            }
        }
        Ok(())
    }

    /// One side of a change; files present on one side only carry their text.
    fn side(
        &mut self,
        tree: Tree,
        rel: &Path,
        meta: &Metadata,
        k: ArtifactType,
    ) -> Result<TreeSide, SandboxError> {
        let path = self.root(tree).join(rel);
        let mut side = TreeSide {
            artifact_type: k,
            mode: meta.mode() & 0o7777,
            link_target: None,
            text: None,
        };
        match k {
            ArtifactType::Symlink => {
                let target = fs::read_link(&path)
                    .map_err(|e| SandboxError::io("read link", &path.display().to_string(), e))?;
                side.link_target =
                    Some(String::from_utf8_lossy(target.as_os_str().as_bytes()).into_owned());
            }
            ArtifactType::File => {}
            ArtifactType::Directory => {}
        }
        Ok(side)
    }

    /// The text of file `path` (`size` bytes when stat'ed), charged to the text budget;
    /// `None` when it is not text. A text file past the budget is [`SandboxError::TooLarge`].
    fn text(&mut self, path: &Path, size: u64) -> Result<Option<String>, SandboxError> {
        let shown = || path.display().to_string();
        let file = open_nofollow(path).map_err(|e| SandboxError::io("open", &shown(), e))?;
        let budget = self.limits.max_text_bytes.saturating_sub(self.text_bytes);
        if size > budget {
            return match is_text(file).map_err(|e| SandboxError::io("read", &shown(), e))? {
                false => Ok(None),
                true => Err(self.over_text_budget()),
            };
        }
        let mut data = Vec::new();
        file.take(budget.saturating_add(1))
            .read_to_end(&mut data)
            .map_err(|e| SandboxError::io("read", &shown(), e))?;
        if data.len() as u64 > budget {
            // Grew while being read, past the budget.
            return Err(self.over_text_budget());
        }
        if data.contains(&0) {
            return Ok(None);
        }
        match String::from_utf8(data) {
            Ok(text) => {
                self.text_bytes += text.len() as u64;
                Ok(Some(text))
            }
            Err(_) => Ok(None),
        }
    }

    fn over_text_budget(&self) -> SandboxError {
        SandboxError::TooLarge(format!(
            "the changed text files hold more than {} bytes",
            self.limits.max_text_bytes
        ))
    }
}

/// Most entries [`warm`] visits in one tree.
const MAX_WARM_ENTRIES: u64 = 2_000_000;

/// lstat every entry below `root` (same file system only, no symlink followed, up to
/// [`MAX_WARM_ENTRIES`]), so the kernel has the inodes in memory when the first diff
/// comes. Returns the entries visited.
pub(crate) fn warm(root: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(root) else { return 0 };
    let dev = meta.dev();
    let mut visited = 0u64;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            visited += 1;
            if visited > MAX_WARM_ENTRIES {
                return visited;
            }
            let path = entry.path();
            if let Ok(meta) = fs::symlink_metadata(&path) {
                if meta.is_dir() && meta.dev() == dev {
                    stack.push(path);
                }
            }
        }
    }
    visited
}

/// Start [`warm`] over `roots` once per agent process, in a thread at the lowest
/// priority: a volume's baseline and workspace come up cold (made on the host), and a
/// first diff would otherwise read every inode from the disk while the caller waits.
pub(crate) fn warm_in_background(roots: &[&'static str]) {
    static STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if STARTED.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let roots = roots.to_vec();
    let _ = std::thread::Builder::new().name("tree-warm".into()).spawn(move || {
        crate::sys::lower_thread_priority();
        for root in roots {
            warm(Path::new(root));
        }
    });
}

fn open_nofollow(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path)
}

/// Whether two files hold the same bytes (read in blocks, stopping at the first
/// difference).
fn same_bytes(a: &Path, b: &Path) -> Result<bool, SandboxError> {
    let open = |p: &Path| {
        open_nofollow(p).map_err(|e| SandboxError::io("open", &p.display().to_string(), e))
    };
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    let (mut ba, mut bb) = (vec![0u8; BLOCK], vec![0u8; BLOCK]);
    loop {
        let na = read_full(&mut fa, &mut ba)
            .map_err(|e| SandboxError::io("read", &a.display().to_string(), e))?;
        let nb = read_full(&mut fb, &mut bb)
            .map_err(|e| SandboxError::io("read", &b.display().to_string(), e))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

/// Read until `buf` is full or the end of the file.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Whether a stream is text (valid UTF-8 without NUL), read in blocks; stops at the
/// first NUL or invalid sequence.
fn is_text(mut reader: impl Read) -> io::Result<bool> {
    let mut buf = vec![0u8; BLOCK];
    // Bytes of a sequence cut at the end of the previous block (at most 3).
    let mut carry = 0;
    loop {
        let n = match reader.read(&mut buf[carry..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(carry == 0);
        }
        let filled = carry + n;
        if buf[carry..filled].contains(&0) {
            return Ok(false);
        }
        match std::str::from_utf8(&buf[..filled]) {
            Ok(_) => carry = 0,
            Err(e) if e.error_len().is_none() => {
                let valid = e.valid_up_to();
                buf.copy_within(valid..filled, 0);
                carry = filled - valid;
            }
            Err(_) => return Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sandbox;
    use pyro_protocol::{ErrorKind, Request, Response};

    fn limits() -> TreeDiffLimits {
        TreeDiffLimits { max_entries: 1000, max_text_bytes: 1 << 20, max_answer_bytes: 1 << 20 }
    }

    fn trees() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (base, cur) = (tmp.path().join("base"), tmp.path().join("cur"));
        fs::create_dir_all(&base).expect("mkdir");
        fs::create_dir_all(&cur).expect("mkdir");
        (tmp, base, cur)
    }

    #[test]
    fn text_is_checked_across_block_boundaries() {
        // A two-byte character cut by the block boundary is still text.
        let mut text = vec![b'a'; BLOCK - 1];
        text.extend_from_slice("é and more".as_bytes());
        assert!(is_text(&text[..]).expect("read"));
        let mut with_nul = text.clone();
        with_nul.push(0);
        assert!(!is_text(&with_nul[..]).expect("read"));
        assert!(!is_text(&b"caf\xe9 au lait"[..]).expect("read"));
        // A sequence cut by the end of the file is not text.
        assert!(!is_text(&"é".as_bytes()[..1]).expect("read"));
        assert!(is_text(&b""[..]).expect("read"));
    }

    #[test]
    fn same_tuple_is_skipped_and_same_size_rewrites_are_found() {
        let (_tmp, base, cur) = trees();
        fs::write(cur.join("linked.txt"), "same\n").expect("write");
        fs::hard_link(cur.join("linked.txt"), base.join("linked.txt")).expect("link");
        fs::write(base.join("copied.txt"), "abc\n").expect("write");
        fs::write(cur.join("copied.txt"), "abd\n").expect("write");
        let mtime = fs::metadata(base.join("copied.txt")).expect("stat").modified().expect("mtime");
        File::options()
            .write(true)
            .open(cur.join("copied.txt"))
            .and_then(|f| f.set_modified(mtime))
            .expect("mtime back");
        let answer = diff_trees(&cur, &base, limits()).expect("diff");
        // The hard-linked pair shares its tuple: not a candidate, never read.
        assert_eq!((answer.scanned, answer.candidates), (4, 1));
        assert_eq!(answer.changes.len(), 1);
        let change = &answer.changes[0];
        assert_eq!(change.path, "copied.txt");
        assert!(change.content_changed);
        let texts = change
            .old
            .as_ref()
            .zip(change.new.as_ref())
            .map(|(a, b)| (a.text.clone(), b.text.clone()));
        assert_eq!(texts, Some((Some("abc\n".into()), Some("abd\n".into()))));
    }

    fn sorted(mut answer: TreeDiffAnswer) -> Vec<TreeChange> {
        answer.changes.sort_by(|a, b| a.path.cmp(&b.path));
        answer.changes
    }

    fn set(items: &[(&str, bool)]) -> std::collections::BTreeMap<PathBuf, bool> {
        items.iter().map(|(p, d)| (PathBuf::from(p), *d)).collect()
    }

    #[test]
    fn candidates_give_the_full_walks_answer_with_lifting_and_pruning() {
        let (_tmp, base, cur) = trees();
        for tree in [&base, &cur] {
            fs::create_dir_all(tree.join("big/sub")).expect("mkdir");
            fs::create_dir_all(tree.join("gone/deeper")).expect("mkdir");
            fs::write(tree.join("gone/deeper/f"), "f\n").expect("write");
            for i in 0..40 {
                fs::write(tree.join(format!("big/sub/keep{i}")), "k\n").expect("write");
            }
            fs::write(tree.join("big/edit"), "old\n").expect("write");
            fs::write(tree.join("becomes-dir"), "file\n").expect("write");
            fs::write(tree.join("a-b"), "x\n").expect("write");
        }
        fs::write(cur.join("big/edit"), "new\n").expect("write");
        fs::remove_dir_all(cur.join("gone")).expect("rm");
        fs::write(cur.join("gone"), "now a file\n").expect("write");
        fs::remove_file(cur.join("becomes-dir")).expect("rm");
        fs::create_dir_all(cur.join("becomes-dir/inner")).expect("mkdir");
        fs::write(cur.join("becomes-dir/inner/x"), "x\n").expect("write");
        fs::write(cur.join("a-b"), "y\n").expect("write");
        let full = diff_trees(&cur, &base, limits()).expect("full");
        let candidates = set(&[
            ("big/edit", false),
            // A shallow directory on both sides: nothing to do.
            ("big", false),
            // Below a replaced directory: lifted to it, made deep.
            ("gone/deeper/f", false),
            // A deep one and entries below it (compared once, by its recursion).
            ("becomes-dir", true),
            ("becomes-dir/inner", true),
            ("becomes-dir/inner/x", false),
            // Sorted after "a" but not below it.
            ("a-b", false),
            // Names nothing on either side.
            ("never/was", false),
        ]);
        let tracked = diff_candidates(&cur, &base, limits(), &candidates)
            .expect("tracked")
            .expect("no multi-link files");
        assert!(tracked.scanned < full.scanned, "{} vs {}", tracked.scanned, full.scanned);
        assert_eq!(sorted(tracked), sorted(full.clone()));
        // Missing a changed path gives another answer: the candidates are what is compared.
        let short = diff_candidates(&cur, &base, limits(), &set(&[("big/edit", false)]))
            .expect("tracked")
            .expect("answer");
        assert_ne!(sorted(short), sorted(full));
    }

    #[test]
    fn a_file_with_more_links_needs_a_full_walk() {
        let (_tmp, base, cur) = trees();
        fs::write(base.join("f"), "1\n").expect("write");
        fs::write(cur.join("f"), "2\n").expect("write");
        fs::hard_link(cur.join("f"), cur.join("g")).expect("link");
        let answer = diff_candidates(&cur, &base, limits(), &set(&[("g", false)])).expect("ok");
        assert_eq!(answer, None);
        // Below a deep candidate too.
        fs::create_dir(cur.join("d")).expect("mkdir");
        fs::rename(cur.join("g"), cur.join("d/g")).expect("mv");
        let answer = diff_candidates(&cur, &base, limits(), &set(&[("d", true)])).expect("ok");
        assert_eq!(answer, None);
    }

    #[test]
    fn warming_visits_every_entry_without_following_links() {
        let (tmp, base, _cur) = trees();
        fs::create_dir_all(base.join("a/b")).expect("mkdir");
        fs::write(base.join("a/b/f"), "x").expect("write");
        std::os::unix::fs::symlink(tmp.path(), base.join("up")).expect("symlink");
        // a, a/b, a/b/f, up (the link, not what it points at)
        assert_eq!(warm(&base), 4);
        assert_eq!(warm(&base.join("missing")), 0);
    }

    #[test]
    fn limits_are_too_large_errors() {
        let (_tmp, base, cur) = trees();
        for i in 0..5 {
            fs::write(cur.join(format!("f{i}")), "x".repeat(100)).expect("write");
        }
        fs::write(cur.join("blob"), [0u8; 500]).expect("write");
        let few = TreeDiffLimits { max_entries: 3, ..limits() };
        assert!(matches!(diff_trees(&cur, &base, few), Err(SandboxError::TooLarge(_))));
        let little_text = TreeDiffLimits { max_text_bytes: 250, ..limits() };
        let err = diff_trees(&cur, &base, little_text).expect_err("text budget");
        assert!(matches!(err, SandboxError::TooLarge(ref m) if m.contains("250")), "{err}");
        // A binary file over the budget is fine: it needs no text.
        for i in 0..5 {
            fs::remove_file(cur.join(format!("f{i}"))).expect("rm");
        }
        let tiny = TreeDiffLimits { max_text_bytes: 10, ..limits() };
        let answer = diff_trees(&cur, &base, tiny).expect("binary");
        assert_eq!(answer.changes.len(), 1);
        assert_eq!(answer.changes[0].new.as_ref().and_then(|s| s.text.clone()), None);
    }

    #[test]
    fn the_request_maps_roots_and_refuses_escapes() {
        let (tmp, base, cur) = trees();
        fs::write(cur.join("a"), "1\n").expect("write");
        let request = |root: &str, baseline: &str| Request::TreeDiffOpen {
            root: root.into(),
            baseline_root: baseline.into(),
            limits: limits(),
            full_walk: false,
        };
        let host = Sandbox::host_compat(tmp.path());
        assert!(matches!(
            host.handle(request("/workspace/cur", "/workspace/base")),
            Response::TransferOpened { size_bytes, .. } if size_bytes > 0
        ));
        for (root, baseline, kind) in [
            ("/workspace/../etc", "/workspace/base", ErrorKind::PathEscape),
            ("/etc", "/workspace/base", ErrorKind::PathEscape),
            ("/workspace/cur", "/etc", ErrorKind::PathEscape),
            ("/workspace/cur/a", "/workspace/base", ErrorKind::WrongType),
            // No baseline directory in host_compat unless given one.
            ("/workspace/cur", pyro_protocol::BASELINE_MOUNT, ErrorKind::Unsupported),
        ] {
            match host.handle(request(root, baseline)) {
                Response::Error { kind: k, .. } => assert_eq!(k, kind, "{root} {baseline}"),
                other => panic!("{root} {baseline}: {other:?}"),
            }
        }
        let with_baseline = Sandbox::host_compat(tmp.path()).with_baseline_dir(&base);
        assert!(matches!(
            with_baseline.handle(request("/workspace/cur", pyro_protocol::BASELINE_MOUNT)),
            Response::TransferOpened { .. }
        ));
        // In a guest a plain directory is not a mounted baseline.
        let guest = Sandbox::guest(tmp.path()).with_power_off(false).with_baseline_dir(&base);
        assert!(matches!(
            guest.handle(request("/workspace/cur", pyro_protocol::BASELINE_MOUNT)),
            Response::Error { kind: ErrorKind::Unsupported, .. }
        ));
    }
}
