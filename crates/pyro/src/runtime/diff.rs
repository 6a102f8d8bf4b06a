//! Tree comparison behind `workspace_diff`, and the rules of what counts as a change.
//!
//! Two ways feed the same rules ([`classify`]) and the same result ([`assemble`]):
//!
//! - **The live diff** ([`super::tree_diff`]), used when the guest has the workspace's
//!   baseline mounted at `/run/pyro-baseline` and its agent names `tree_diff`: the agent
//!   walks `/workspace` and the baseline together and skips, unread, every pair whose
//!   stat tuple (type, permission bits, size, mtime and ctime to the nanosecond, inode
//!   number) is identical. The baseline is a block-level snapshot of the same ext4, so an
//!   untouched file keeps all of these, while any write to a file changes its ctime,
//!   which user space cannot set (`utimensat` sets only mtime and atime): a same-size
//!   rewrite with its old mtime put back (`touch -d`, same-second writes) is still a
//!   candidate. Candidates are compared by content (another size: changed at once; the
//!   same size: a streamed byte compare). Across trees of different lineage inode numbers
//!   and ctimes never match, so every pair is a candidate and content decides: always
//!   correct, fast only when the lineage is shared. The one hole: a root process in the
//!   guest that sets the clock back to a file's old ctime before rewriting it forges the
//!   tuple; it only fools its own workspace's diff. Timestamps are compared to the
//!   nanosecond (the volume is made with 256-byte inodes, which store them): the
//!   baseline's entries carry whole-second ctimes from `mke2fs`, so a rewrite in the very
//!   second the baseline was made still differs unless its ctime is that exact
//!   nanosecond. Nothing is kept in sync between
//!   calls (no manifest): the compare is live against a frozen tree, so it is right
//!   after exec, file writes, patches, sync push, shells, services and stop/start by
//!   construction.
//! - **The archive diff** ([`diff_trees`]), for agents without `tree_diff`, guests
//!   without a mounted baseline, `host_compat`, and walks past the live diff's bounds:
//!   the create-time baseline archive against a tar of the current `/workspace`. Both
//!   are plain tar archives of the *children* of `/workspace` (member names relative,
//!   such as `src/a.txt`; directories as `src/` members; symlinks as symlink members).
//!   [`read_tree`] turns one into a map of normalised relative paths, and [`diff_maps`]
//!   compares two such maps.
//!
//! For the same trees both give byte-identical results (`tests/tree_diff_random.rs`
//! checks it on random edit sequences).
//!
//! # Behaviour
//!
//! - Regular files are compared by bytes. A change of the executable bit alone also
//!   counts as `modified` (without a text patch).
//! - Symlinks are compared by target.
//! - Directories are reported only when they are empty and were added or deleted. A
//!   directory that merely contains changed files is not an entry of its own.
//! - A path whose kind changed (file, directory, symlink) is `type_changed`, without a
//!   patch.
//! - A file is text when it has no NUL byte and is valid UTF-8 on both sides (an absent
//!   side counts as empty text). Text files get a unified diff with three lines of
//!   context, headers `--- a/<rel>` / `+++ b/<rel>`, and `/dev/null` on the absent side.
//!   The patches are accepted by [`super::patch`] and by GNU `patch -p1`.
//! - Every changed entry counts once in `total`, once in its status counter and once in
//!   exactly one of `text_patched` / `non_text`. Entries are sorted by path (byte order).
//!
//! # Limitations
//!
//! - Member names that are not UTF-8 are decoded lossily.
//! - Special files (devices, FIFOs) in an archive are ignored: they have no
//!   [`ArtifactType`].
//! - A file whose path contains a tab, CR or LF gets no text patch (it would corrupt the
//!   patch headers); it is counted as `non_text`.
//! - Lines are split at `\n` only, like GNU diff and patch; a `\r` stays part of its line.

use std::collections::BTreeMap;
use std::io::Read;
use std::ops::Bound;
use std::time::Duration;

use pyro_contract::results::{ArtifactType, DiffEntry, DiffSummary};
use similar::{Algorithm, DiffTag, TextDiff};
use tar::EntryType;

/// Lines of context around each hunk.
const CONTEXT_LINES: usize = 3;

/// Upper bound on the time spent diffing one file; past it the diff is still correct but
/// may not be minimal.
const DIFF_TIMEOUT: Duration = Duration::from_secs(2);

/// The line GNU diff emits after a line that has no trailing newline.
pub const NO_NEWLINE_MARKER: &str = "\\ No newline at end of file";

/// Errors of [`read_tree`] and [`diff_trees`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiffError {
    /// The archive could not be read.
    #[error("workspace archive is unreadable: {0}")]
    Archive(#[source] std::io::Error),
    /// A member name is absolute or has a `..` component.
    #[error("workspace archive member escapes /workspace: {0}")]
    UnsafePath(String),
    /// A hard link points at a member that is not an earlier regular file.
    #[error("workspace archive hard link {path} points at a missing file: {target}")]
    DanglingHardLink {
        /// Relative path of the link.
        path: String,
        /// Relative path it points at.
        target: String,
    },
    /// A member lies below a path that is not a directory.
    #[error("workspace archive member {path} lies below a non-directory: {parent}")]
    NotADirectory {
        /// Relative path of the member.
        path: String,
        /// Its ancestor that is a file or a symlink.
        parent: String,
    },
}

/// One node of a workspace tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A regular file.
    File {
        /// Contents.
        data: Vec<u8>,
        /// Permission bits from the archive header.
        mode: u32,
    },
    /// A directory.
    Dir,
    /// A symbolic link and its target.
    Symlink(String),
}

impl Node {
    /// The contract's kind for this node.
    pub fn artifact_type(&self) -> ArtifactType {
        match self {
            Node::File { .. } => ArtifactType::File,
            Node::Dir => ArtifactType::Directory,
            Node::Symlink(_) => ArtifactType::Symlink,
        }
    }
}

/// Result of [`diff_trees`]: the contract's `Diff` result without `workspace_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeDiff {
    /// Anything changed.
    pub changed: bool,
    /// Counts.
    pub summary: DiffSummary,
    /// Changed entries, sorted by path.
    pub entries: Vec<DiffEntry>,
    /// All text patches concatenated, in path order.
    pub patch: String,
}

/// Reads a tar archive of the children of `/workspace` into a map from normalised
/// relative path (no leading `./`, no trailing `/`) to node.
///
/// Parent directories that have no member of their own are added as [`Node::Dir`]. A
/// later member of the same name replaces an earlier one, as extraction would. Hard links
/// become copies of the file they point at. Special files are skipped.
pub fn read_tree(tar: &[u8]) -> Result<BTreeMap<String, Node>, DiffError> {
    let mut tree = BTreeMap::new();
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().map_err(DiffError::Archive)? {
        let mut entry = entry.map_err(DiffError::Archive)?;
        let raw_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(path) = normalize(&raw_name)? else {
            // The archive root itself (`./`).
            continue;
        };
        let kind = entry.header().entry_type();
        let node = match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let mode = entry.header().mode().map_err(DiffError::Archive)?;
                let mut data = Vec::new();
                entry.read_to_end(&mut data).map_err(DiffError::Archive)?;
                Node::File { data, mode }
            }
            EntryType::Directory => Node::Dir,
            EntryType::Symlink => Node::Symlink(link_name(&entry)),
            EntryType::Link => {
                let raw_target = link_name(&entry);
                let target = normalize(&raw_target)?.unwrap_or_default();
                match tree.get(&target) {
                    Some(file @ Node::File { .. }) => file.clone(),
                    _ => return Err(DiffError::DanglingHardLink { path, target }),
                }
            }
            // Devices, FIFOs, global PAX headers and the like.
            _ => continue,
        };
        tree.insert(path, node);
    }
    add_implicit_parents(&mut tree)?;
    Ok(tree)
}

fn link_name(entry: &tar::Entry<'_, &[u8]>) -> String {
    entry.link_name_bytes().map(|n| String::from_utf8_lossy(&n).into_owned()).unwrap_or_default()
}

/// Normalises a member name; `None` for the archive root.
fn normalize(raw: &str) -> Result<Option<String>, DiffError> {
    if raw.starts_with('/') {
        return Err(DiffError::UnsafePath(raw.to_owned()));
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(DiffError::UnsafePath(raw.to_owned())),
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        Ok(None)
    } else {
        Ok(Some(parts.join("/")))
    }
}

fn add_implicit_parents(tree: &mut BTreeMap<String, Node>) -> Result<(), DiffError> {
    let paths: Vec<String> = tree.keys().cloned().collect();
    for path in paths {
        let mut end = 0;
        while let Some(slash) = path[end..].find('/') {
            let parent = &path[..end + slash];
            match tree.get(parent) {
                None => {
                    tree.insert(parent.to_owned(), Node::Dir);
                }
                Some(Node::Dir) => {}
                Some(_) => {
                    return Err(DiffError::NotADirectory {
                        path: path.clone(),
                        parent: parent.to_owned(),
                    })
                }
            }
            end += slash + 1;
        }
    }
    Ok(())
}

/// Whether `path` (a directory) has no children in `tree`.
fn is_empty_dir(tree: &BTreeMap<String, Node>, path: &str) -> bool {
    let prefix = format!("{path}/");
    match tree.range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded)).next() {
        Some((key, _)) => !key.starts_with(&prefix),
        None => true,
    }
}

/// Text for diffing: no NUL byte and valid UTF-8.
pub fn as_text(data: &[u8]) -> Option<&str> {
    if data.contains(&0) {
        return None;
    }
    std::str::from_utf8(data).ok()
}

fn is_executable(mode: u32) -> bool {
    mode & 0o111 != 0
}

/// Whether `path` can appear in a patch header without corrupting it.
fn patchable_path(path: &str) -> bool {
    !path.contains(['\n', '\r', '\t'])
}

/// Compares two workspace archives (see the module documentation for the rules).
pub fn diff_trees(baseline_tar: &[u8], current_tar: &[u8]) -> Result<TreeDiff, DiffError> {
    let before = read_tree(baseline_tar)?;
    let after = read_tree(current_tar)?;
    Ok(diff_maps(&before, &after))
}

/// Compares two trees as returned by [`read_tree`].
pub fn diff_maps(before: &BTreeMap<String, Node>, after: &BTreeMap<String, Node>) -> TreeDiff {
    let mut paths: Vec<&String> = before.keys().chain(after.keys()).collect();
    paths.sort();
    paths.dedup();
    assemble(paths.into_iter().filter_map(|path| {
        let (old_node, new_node) = (before.get(path), after.get(path));
        let changed = match (old_node, new_node) {
            (Some(Node::Symlink(a)), Some(Node::Symlink(b))) => a != b,
            (Some(Node::File { data: a, .. }), Some(Node::File { data: b, .. })) => a != b,
            _ => false,
        };
        let old = old_node.map(|node| side_of(before, path, node));
        let new = new_node.map(|node| side_of(after, path, node));
        classify(path, old, new, changed).map(|change| (path.clone(), change))
    }))
}

fn side_of<'a>(tree: &BTreeMap<String, Node>, path: &str, node: &'a Node) -> Side<'a> {
    match node {
        Node::File { data, mode } => Side::File { text: as_text(data), mode: *mode },
        Node::Dir => Side::Dir { empty: is_empty_dir(tree, path) },
        Node::Symlink(_) => Side::Symlink,
    }
}

/// What [`classify`] needs of one side of a path.
#[derive(Debug, Clone, Copy)]
pub enum Side<'a> {
    /// A regular file: its text when it is text, and its permission bits.
    File {
        /// The contents, when text ([`as_text`]); `None` for binary files.
        text: Option<&'a str>,
        /// Permission bits.
        mode: u32,
    },
    /// A directory, and whether it has no entries.
    Dir {
        /// No children on its side.
        empty: bool,
    },
    /// A symbolic link.
    Symlink,
}

/// One changed path, as [`classify`] found it.
#[derive(Debug, Clone)]
pub struct Change {
    status: Status,
    artifact_type: ArtifactType,
    text_patch: Option<String>,
}

/// Builds the result from changed paths given in path order.
pub fn assemble(changes: impl Iterator<Item = (String, Change)>) -> TreeDiff {
    let mut summary = DiffSummary::default();
    let mut entries = Vec::new();
    let mut patch = String::new();
    for (path, Change { status, artifact_type, text_patch }) in changes {
        summary.total += 1;
        match status {
            Status::Added => summary.added += 1,
            Status::Modified => summary.modified += 1,
            Status::Deleted => summary.deleted += 1,
            Status::TypeChanged => summary.type_changed += 1,
        }
        match &text_patch {
            Some(text) => {
                summary.text_patched += 1;
                patch.push_str(text);
            }
            None => summary.non_text += 1,
        }
        entries.push(DiffEntry {
            path,
            status: status.as_str().to_owned(),
            artifact_type,
            text_patch,
        });
    }
    TreeDiff { changed: !entries.is_empty(), summary, entries, patch }
}

#[derive(Debug, Clone, Copy)]
enum Status {
    Added,
    Modified,
    Deleted,
    TypeChanged,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Added => "added",
            Status::Modified => "modified",
            Status::Deleted => "deleted",
            Status::TypeChanged => "type_changed",
        }
    }
}

impl Side<'_> {
    fn artifact_type(&self) -> ArtifactType {
        match self {
            Side::File { .. } => ArtifactType::File,
            Side::Dir { .. } => ArtifactType::Directory,
            Side::Symlink => ArtifactType::Symlink,
        }
    }
}

/// Decides whether `path` changed and how (the rules of the module documentation).
/// `changed` says whether the bytes of two files, or the targets of two symlinks,
/// differ; it is not looked at otherwise.
pub fn classify(
    path: &str,
    old: Option<Side<'_>>,
    new: Option<Side<'_>>,
    changed: bool,
) -> Option<Change> {
    // Like git: a tab ends a name with a space, so GNU patch reads all of it.
    let tab = if path.contains(' ') { "\t" } else { "" };
    let a_label = || format!("a/{path}{tab}");
    let b_label = || format!("b/{path}{tab}");
    let change = |status, artifact_type, text_patch| Change { status, artifact_type, text_patch };
    match (old, new) {
        (None, None) => None,
        (None, Some(Side::Dir { empty })) => {
            empty.then(|| change(Status::Added, ArtifactType::Directory, None))
        }
        (Some(Side::Dir { empty }), None) => {
            empty.then(|| change(Status::Deleted, ArtifactType::Directory, None))
        }
        (Some(Side::Dir { .. }), Some(Side::Dir { .. })) => None,
        (None, Some(Side::Symlink)) => Some(change(Status::Added, ArtifactType::Symlink, None)),
        (Some(Side::Symlink), None) => Some(change(Status::Deleted, ArtifactType::Symlink, None)),
        (Some(Side::Symlink), Some(Side::Symlink)) => {
            changed.then(|| change(Status::Modified, ArtifactType::Symlink, None))
        }
        (None, Some(Side::File { text, .. })) => {
            let patch = text
                .filter(|_| patchable_path(path))
                .map(|text| unified_diff("", text, "/dev/null", &b_label()));
            Some(change(Status::Added, ArtifactType::File, patch))
        }
        (Some(Side::File { text, .. }), None) => {
            let patch = text
                .filter(|_| patchable_path(path))
                .map(|text| unified_diff(text, "", &a_label(), "/dev/null"));
            Some(change(Status::Deleted, ArtifactType::File, patch))
        }
        (
            Some(Side::File { text: old_text, mode: old_mode }),
            Some(Side::File { text: new_text, mode: new_mode }),
        ) => {
            if !changed && is_executable(old_mode) == is_executable(new_mode) {
                return None;
            }
            let patch = match (old_text, new_text) {
                (Some(a), Some(b)) if changed && patchable_path(path) => {
                    Some(unified_diff(a, b, &a_label(), &b_label()))
                }
                _ => None,
            };
            Some(change(Status::Modified, ArtifactType::File, patch))
        }
        (Some(_), Some(side)) => Some(change(Status::TypeChanged, side.artifact_type(), None)),
    }
}

/// Splits text into lines at `\n`, each keeping its newline; only the last may lack one.
fn split_lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

/// A unified diff of `old` and `new` with three lines of context, in the
/// format of GNU `diff -u` (including `\ No newline at end of file` markers). When the
/// texts are equal the result is just the two header lines.
pub fn unified_diff(old: &str, new: &str, old_label: &str, new_label: &str) -> String {
    let old_lines = split_lines(old);
    let new_lines = split_lines(new);
    let diff = TextDiff::configure()
        .algorithm(Algorithm::Myers)
        .timeout(DIFF_TIMEOUT)
        .diff_slices(&old_lines, &new_lines);

    let mut out = format!("--- {old_label}\n+++ {new_label}\n");
    for group in diff.grouped_ops(CONTEXT_LINES) {
        if group.iter().all(|op| op.tag() == DiffTag::Equal) {
            continue;
        }
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        let old_range = first.old_range().start..last.old_range().end;
        let new_range = first.new_range().start..last.new_range().end;
        out.push_str(&format!("@@ -{} +{} @@\n", hunk_range(&old_range), hunk_range(&new_range)));
        for op in &group {
            let (tag, old_part, new_part) = op.as_tag_tuple();
            match tag {
                DiffTag::Equal => push_lines(&mut out, ' ', &old_lines[old_part]),
                DiffTag::Delete => push_lines(&mut out, '-', &old_lines[old_part]),
                DiffTag::Insert => push_lines(&mut out, '+', &new_lines[new_part]),
                DiffTag::Replace => {
                    push_lines(&mut out, '-', &old_lines[old_part]);
                    push_lines(&mut out, '+', &new_lines[new_part]);
                }
            }
        }
    }
    out
}

/// `start,len` as in GNU diff: 1-based, `,len` omitted when 1, and for an empty range
/// the line before it.
fn hunk_range(range: &std::ops::Range<usize>) -> String {
    let len = range.end.saturating_sub(range.start);
    match len {
        0 => format!("{},0", range.start),
        1 => format!("{}", range.start + 1),
        _ => format!("{},{}", range.start + 1, len),
    }
}

fn push_lines(out: &mut String, prefix: char, lines: &[&str]) {
    for line in lines {
        out.push(prefix);
        out.push_str(line);
        if !line.ends_with('\n') {
            out.push('\n');
            out.push_str(NO_NEWLINE_MARKER);
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::patch::{apply, parse_patch};

    /// A member of a test archive.
    enum M<'a> {
        File(&'a str, &'a [u8]),
        Exec(&'a str, &'a [u8]),
        Dir(&'a str),
        Link(&'a str, &'a str),
    }

    fn tar_of(members: &[M<'_>]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for member in members {
            let mut header = tar::Header::new_gnu();
            match member {
                M::File(name, data) | M::Exec(name, data) => {
                    header.set_entry_type(EntryType::Regular);
                    header.set_mode(if matches!(member, M::Exec(..)) { 0o755 } else { 0o644 });
                    header.set_size(data.len() as u64);
                    header.set_cksum();
                    builder.append_data(&mut header, name, *data).expect("append file");
                }
                M::Dir(name) => {
                    header.set_entry_type(EntryType::Directory);
                    header.set_mode(0o755);
                    header.set_size(0);
                    header.set_cksum();
                    builder.append_data(&mut header, name, std::io::empty()).expect("append dir");
                }
                M::Link(name, target) => {
                    header.set_entry_type(EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    builder.append_link(&mut header, name, target).expect("append symlink");
                }
            }
        }
        builder.into_inner().expect("finish tar")
    }

    fn diff(before: &[M<'_>], after: &[M<'_>]) -> TreeDiff {
        diff_trees(&tar_of(before), &tar_of(after)).expect("diff")
    }

    fn summary(
        added: u64,
        modified: u64,
        deleted: u64,
        type_changed: u64,
        text: u64,
    ) -> DiffSummary {
        let total = added + modified + deleted + type_changed;
        DiffSummary {
            total,
            added,
            modified,
            deleted,
            type_changed,
            text_patched: text,
            non_text: total - text,
        }
    }

    fn entry(path: &str, status: &str, kind: ArtifactType, patch: Option<&str>) -> DiffEntry {
        DiffEntry {
            path: path.to_owned(),
            status: status.to_owned(),
            artifact_type: kind,
            text_patch: patch.map(str::to_owned),
        }
    }

    #[test]
    fn identical_trees_are_clean() {
        let tree = [
            M::Dir("./"),
            M::Dir("./src/"),
            M::File("./src/a.txt", b"hello\n"),
            M::Dir("./empty/"),
            M::Link("./link", "src/a.txt"),
            M::File("./bin", b"\x00\x01"),
        ];
        let result = diff(&tree, &tree);
        assert_eq!(
            result,
            TreeDiff {
                changed: false,
                summary: DiffSummary::default(),
                entries: vec![],
                patch: String::new()
            }
        );
    }

    #[test]
    fn read_tree_normalises_names_and_adds_parents() {
        let tree = read_tree(&tar_of(&[
            M::Dir("./"),
            M::File("./a/b/c.txt", b"x"),
            M::Dir("d/"),
            M::Link("l", "a"),
        ]))
        .expect("read");
        let keys: Vec<&str> = tree.keys().map(String::as_str).collect();
        assert_eq!(keys, ["a", "a/b", "a/b/c.txt", "d", "l"]);
        assert_eq!(tree.get("a/b"), Some(&Node::Dir));
        assert_eq!(tree.get("l"), Some(&Node::Symlink("a".to_owned())));
        assert_eq!(tree.get("a/b/c.txt"), Some(&Node::File { data: b"x".to_vec(), mode: 0o644 }));
    }

    #[test]
    fn read_tree_rejects_escaping_members() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_old();
        header.set_entry_type(EntryType::Regular);
        header.set_size(1);
        // `append_data` refuses `..`, so write the name into the header directly.
        let name = b"../evil";
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_cksum();
        builder.append(&header, &b"x"[..]).expect("append");
        let archive = builder.into_inner().expect("finish");
        assert!(matches!(read_tree(&archive), Err(DiffError::UnsafePath(p)) if p == "../evil"));
    }

    #[test]
    fn added_modified_deleted_text_files() {
        let before = [
            M::Dir("src/"),
            M::File("src/a.txt", b"one\ntwo\nthree\n"),
            M::File("src/gone.txt", b"bye\n"),
        ];
        let after = [
            M::Dir("src/"),
            M::File("src/a.txt", b"one\nTWO\nthree\n"),
            M::File("src/new.txt", b"fresh\nlines\n"),
        ];
        let result = diff(&before, &after);
        let a_patch =
            "--- a/src/a.txt\n+++ b/src/a.txt\n@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n";
        let gone_patch = "--- a/src/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n";
        let new_patch = "--- /dev/null\n+++ b/src/new.txt\n@@ -0,0 +1,2 @@\n+fresh\n+lines\n";
        assert!(result.changed);
        assert_eq!(result.summary, summary(1, 1, 1, 0, 3));
        assert_eq!(
            result.entries,
            vec![
                entry("src/a.txt", "modified", ArtifactType::File, Some(a_patch)),
                entry("src/gone.txt", "deleted", ArtifactType::File, Some(gone_patch)),
                entry("src/new.txt", "added", ArtifactType::File, Some(new_patch)),
            ]
        );
        assert_eq!(result.patch, format!("{a_patch}{gone_patch}{new_patch}"));
    }

    #[test]
    fn missing_trailing_newline_is_marked() {
        let result = diff(&[M::File("f", b"a\nb")], &[M::File("f", b"a\nc")]);
        assert_eq!(
            result.patch,
            "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n"
        );
        let result = diff(&[M::File("f", b"a")], &[M::File("f", b"a\n")]);
        assert_eq!(
            result.patch,
            "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+a\n"
        );
    }

    #[test]
    fn added_empty_file_has_header_only_patch() {
        let result = diff(&[], &[M::File("e", b"")]);
        assert_eq!(result.summary, summary(1, 0, 0, 0, 1));
        assert_eq!(result.patch, "--- /dev/null\n+++ b/e\n");
    }

    #[test]
    fn binary_files_are_non_text() {
        let result = diff(
            &[M::File("bin", b"\x00\x01"), M::File("latin1", b"caf\xe9\n")],
            &[M::File("bin", b"\x00\x02"), M::File("latin1", b"cafe\n"), M::File("new", b"a\0b")],
        );
        assert_eq!(result.summary, summary(1, 2, 0, 0, 0));
        assert_eq!(
            result.entries,
            vec![
                entry("bin", "modified", ArtifactType::File, None),
                entry("latin1", "modified", ArtifactType::File, None),
                entry("new", "added", ArtifactType::File, None),
            ]
        );
        assert_eq!(result.patch, "");
    }

    #[test]
    fn executable_bit_change_alone_is_modified_without_patch() {
        let result = diff(&[M::File("run.sh", b"echo\n")], &[M::Exec("run.sh", b"echo\n")]);
        assert_eq!(result.summary, summary(0, 1, 0, 0, 0));
        assert_eq!(result.entries, vec![entry("run.sh", "modified", ArtifactType::File, None)]);
    }

    #[test]
    fn empty_directories_added_and_deleted() {
        let result = diff(
            &[M::Dir("old/"), M::Dir("full/"), M::File("full/x", b"x\n"), M::Dir("keep/")],
            &[M::Dir("new/"), M::Dir("full/"), M::Dir("keep/"), M::File("keep/y", b"")],
        );
        // `full` and `keep` exist on both sides: only their files are entries.
        assert_eq!(result.summary, summary(2, 0, 2, 0, 2));
        let paths: Vec<(&str, &str)> =
            result.entries.iter().map(|e| (e.path.as_str(), e.status.as_str())).collect();
        assert_eq!(
            paths,
            [("full/x", "deleted"), ("keep/y", "added"), ("new", "added"), ("old", "deleted")]
        );
        assert_eq!(result.entries[2].artifact_type, ArtifactType::Directory);
        assert_eq!(result.entries[3].artifact_type, ArtifactType::Directory);
    }

    #[test]
    fn non_empty_new_directory_is_not_an_entry() {
        let result = diff(&[], &[M::Dir("d/"), M::File("d/f", b"1\n")]);
        let paths: Vec<&str> = result.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["d/f"]);
    }

    #[test]
    fn type_changes_have_no_patch() {
        let result = diff(
            &[M::File("a", b"text\n"), M::Dir("b/"), M::Link("c", "a")],
            &[M::Dir("a/"), M::Link("b", "a"), M::File("c", b"text\n")],
        );
        assert_eq!(result.summary, summary(0, 0, 0, 3, 0));
        assert_eq!(
            result.entries,
            vec![
                entry("a", "type_changed", ArtifactType::Directory, None),
                entry("b", "type_changed", ArtifactType::Symlink, None),
                entry("c", "type_changed", ArtifactType::File, None),
            ]
        );
        assert_eq!(result.patch, "");
    }

    #[test]
    fn symlinks_compared_by_target() {
        let result = diff(
            &[M::Link("l", "one"), M::Link("same", "x"), M::Link("gone", "x")],
            &[M::Link("l", "two"), M::Link("same", "x"), M::Link("new", "y")],
        );
        assert_eq!(result.summary, summary(1, 1, 1, 0, 0));
        assert_eq!(
            result.entries,
            vec![
                entry("gone", "deleted", ArtifactType::Symlink, None),
                entry("l", "modified", ArtifactType::Symlink, None),
                entry("new", "added", ArtifactType::Symlink, None),
            ]
        );
    }

    #[test]
    fn hunks_far_apart_are_separate() {
        let old: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        let new = old.replace("line 2\n", "line two\n").replace("line 28\n", "line 28b\n");
        let patch = unified_diff(&old, &new, "a/f", "b/f");
        assert_eq!(
            patch,
            "--- a/f\n+++ b/f\n\
             @@ -1,5 +1,5 @@\n line 1\n-line 2\n+line two\n line 3\n line 4\n line 5\n\
             @@ -25,6 +25,6 @@\n line 25\n line 26\n line 27\n-line 28\n+line 28b\n line 29\n line 30\n"
        );
    }

    #[test]
    fn awkward_paths_in_headers() {
        let result = diff(&[], &[M::File("my file.txt", b"x\n"), M::File("new\nline", b"y\n")]);
        // A tab ends a name with a space (as git does), so GNU patch reads the whole name.
        assert_eq!(result.patch, "--- /dev/null\n+++ b/my file.txt\t\n@@ -0,0 +1 @@\n+x\n");
        let files = parse_patch(&result.patch).expect("parse");
        assert_eq!(files[0].path, "my file.txt");
        // A newline in a name cannot be written in a header: no patch.
        assert_eq!(result.entries[1].path, "new\nline");
        assert_eq!(result.entries[1].text_patch, None);
        assert_eq!(result.summary, summary(2, 0, 0, 0, 1));
    }

    #[test]
    fn hard_links_copy_their_target() {
        let archive = |link_target: &str| {
            let mut builder = tar::Builder::new(Vec::new());
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o644);
            header.set_size(3);
            header.set_cksum();
            builder.append_data(&mut header, "a", &b"abc"[..]).expect("append");
            let mut link = tar::Header::new_gnu();
            link.set_entry_type(EntryType::Link);
            link.set_size(0);
            builder.append_link(&mut link, "b", link_target).expect("append link");
            builder.into_inner().expect("finish")
        };
        let tree = read_tree(&archive("./a")).expect("read");
        assert_eq!(tree.get("b"), Some(&Node::File { data: b"abc".to_vec(), mode: 0o644 }));
        let err = read_tree(&archive("missing")).expect_err("dangling link");
        assert_eq!(
            err.to_string(),
            "workspace archive hard link b points at a missing file: missing"
        );
    }

    /// Applying each entry's text patch to `before` yields `after`.
    #[test]
    fn text_patches_round_trip_through_patch_apply() {
        let long: String = (1..=40).map(|i| format!("row {i}\n")).collect();
        let long_edited = long
            .replace("row 1\n", "")
            .replace("row 20\n", "row 20 edited\nrow 20.5\n")
            .replace("row 40\n", "row 40");
        let pairs: Vec<(Option<&str>, Option<&str>)> = vec![
            (Some("a\nb\nc\n"), Some("a\nB\nc\n")),
            (Some("a\nb"), Some("a\nb\n")),
            (Some("a\nb\n"), Some("a\nb")),
            (Some("a\nb"), Some("a\nc")),
            (Some("x"), Some("y")),
            (Some(""), Some("new\n")),
            (Some("gone\n"), Some("")),
            (Some(""), Some("no newline")),
            (Some("no newline"), Some("")),
            (None, Some("added\nfile")),
            (None, Some("")),
            (Some("deleted\n"), None),
            (Some("deleted no newline"), None),
            (Some(""), None),
            (Some("crlf\r\nline\r\n"), Some("crlf\r\nLINE\r\n")),
            (Some("lone\rcr\n"), Some("lone\rCR\n")),
            (Some(long.as_str()), Some(long_edited.as_str())),
            (Some(long_edited.as_str()), Some(long.as_str())),
        ];
        for (before, after) in pairs {
            let mut old_tree = Vec::new();
            let mut new_tree = Vec::new();
            if let Some(text) = before {
                old_tree.push(M::File("dir/f.txt", text.as_bytes()));
            }
            if let Some(text) = after {
                new_tree.push(M::File("dir/f.txt", text.as_bytes()));
            }
            let result = diff(&old_tree, &new_tree);
            let file_entry = result
                .entries
                .iter()
                .find(|e| e.path == "dir/f.txt")
                .unwrap_or_else(|| panic!("no entry for {before:?} -> {after:?}"));
            let text_patch = file_entry.text_patch.as_deref().expect("text patch");
            let files = parse_patch(text_patch).expect("parse generated patch");
            assert_eq!(files.len(), 1, "{text_patch}");
            assert_eq!(files[0].path, "dir/f.txt");
            let applied = apply(&files[0], before).expect("apply generated patch");
            assert_eq!(applied.as_deref(), after, "{before:?} -> {after:?}\n{text_patch}");
        }
    }

    /// The combined patch of a multi-file diff parses into one entry per text file.
    #[test]
    fn combined_patch_parses_per_file() {
        let result = diff(
            &[M::File("a", b"1\n"), M::File("b", b"2\n"), M::File("c", b"3")],
            &[M::File("a", b"1\n1\n"), M::File("c", b"4"), M::File("d", b"\x00")],
        );
        let files = parse_patch(&result.patch).expect("parse");
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a", "b", "c"]);
        assert_eq!(result.summary, summary(1, 2, 1, 0, 3));
    }
}
