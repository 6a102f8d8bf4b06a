//! Parsing and applying the unified-diff subset accepted by `workspace_patch_apply`.
//!
//! [`parse_patch`] turns a multi-file unified diff into one [`FilePatch`] per file, and
//! [`apply`] applies one of them to a file's current text. Nothing here touches the file
//! system: the caller plans every file in memory first and writes afterwards.
//!
//! # Accepted
//!
//! - `--- <old>` / `+++ <new>` headers. A leading `a/` is stripped from the old name and
//!   `b/` from the new one; `/dev/null` marks an added or deleted file; anything after a
//!   tab (a timestamp) is ignored.
//! - `@@ -a,b +c,d @@` hunks whose line counts are exact; a missing count means 1. A blank
//!   line inside a hunk is an empty context line.
//! - `\ No newline at end of file` after a line: that line has no trailing newline.
//! - `diff --git` and `index` lines, and other text between files, are ignored.
//!
//! # Rejected
//!
//! - Mode lines, renames, copies, similarity lines and binary patches
//!   ([`PatchError::Unsupported`]).
//! - Old and new names that differ (other than `/dev/null`), the same file twice, a
//!   patch with no file, paths that are absolute or contain `..`.
//! - Hunks whose lines do not add up to their header's counts.
//!
//! # Applying
//!
//! There is no fuzz and no offset: each hunk must match the file exactly at the line its
//! header names, and hunks must come in file order. A delete patch must remove all of the
//! file's content. Paths in errors are absolute guest paths (`/workspace/<rel>`).

use pyro_contract::results::{PatchEntry, PatchSummary};

/// Mount point of the workspace inside the guest.
const WORKSPACE_ROOT: &str = "/workspace";

/// Line prefixes (outside hunks) of features this subset does not support.
const UNSUPPORTED_PREFIXES: &[&str] = &[
    "old mode ",
    "new mode ",
    "new file mode ",
    "deleted file mode ",
    "rename from ",
    "rename to ",
    "rename old ",
    "rename new ",
    "copy from ",
    "copy to ",
    "similarity index ",
    "dissimilarity index ",
    "Binary files ",
    "GIT binary patch",
];

/// Errors of [`parse_patch`] and [`apply`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    /// The text holds no file patch at all.
    #[error("patch is empty")]
    Empty,
    /// A feature outside the supported subset; carries the offending line.
    #[error("unsupported patch feature: {0}")]
    Unsupported(String),
    /// A path is absolute, has a `..` component or names `/workspace` itself.
    #[error("workspace path must stay inside /workspace")]
    OutsideWorkspace {
        /// The path as written in the patch.
        path: String,
    },
    /// The old and new names of a file differ.
    #[error("patch old and new paths differ: {old} != {new}")]
    PathMismatch {
        /// Old name (guest path).
        old: String,
        /// New name (guest path).
        new: String,
    },
    /// The same file appears twice.
    #[error("patch contains more than one entry for {0}")]
    Duplicate(String),
    /// A modification without any hunk.
    #[error("patch has no hunks for {0}")]
    NoHunks(String),
    /// The text is not a well-formed unified diff.
    #[error("malformed patch at line {line}: {reason}")]
    Malformed {
        /// 1-based line of the patch text.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A hunk's context or removed lines differ from the file, or hunks are out of order.
    #[error("patch context does not match for {0}")]
    ContextMismatch(String),
    /// A hunk reaches past the end of the file.
    #[error("patch hunk is out of range for {0}")]
    OutOfRange(String),
    /// An add patch for a path that exists.
    #[error("workspace patch cannot add an existing path: {0}")]
    AddExisting(String),
    /// A modify or delete patch for a path that does not exist.
    #[error("workspace patch cannot modify a missing path: {0}")]
    ModifyMissing(String),
    /// A delete patch that leaves content behind.
    #[error("workspace patch must remove all content to delete {0}")]
    DeleteIncomplete(String),
}

/// What a [`FilePatch`] does to its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// Creates the file (`--- /dev/null`).
    Add,
    /// Changes an existing file.
    Modify,
    /// Removes the file (`+++ /dev/null`).
    Delete,
}

impl PatchKind {
    /// The contract's status word: `added`, `modified` or `deleted`.
    pub fn status(self) -> &'static str {
        match self {
            PatchKind::Add => "added",
            PatchKind::Modify => "modified",
            PatchKind::Delete => "deleted",
        }
    }
}

/// Role of a line in a hunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// Present before and after (` `).
    Context,
    /// Removed (`-`).
    Remove,
    /// Added (`+`).
    Add,
}

/// One line of a hunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HunkLine {
    /// Role of the line.
    pub kind: LineKind,
    /// Text without its prefix and without the newline.
    pub text: String,
    /// False when followed by `\ No newline at end of file`.
    pub newline: bool,
}

/// One `@@` hunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunk {
    /// First old line (1-based), or the line after which to insert when `old_len` is 0.
    pub old_start: usize,
    /// Old lines covered.
    pub old_len: usize,
    /// First new line, as written in the header (informational).
    pub new_start: usize,
    /// New lines produced.
    pub new_len: usize,
    /// The lines, in order.
    pub lines: Vec<HunkLine>,
}

/// The changes to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePatch {
    /// Normalised path relative to `/workspace`, such as `src/a.txt`.
    pub path: String,
    /// Add, modify or delete.
    pub kind: PatchKind,
    /// Hunks in file order.
    pub hunks: Vec<Hunk>,
}

impl FilePatch {
    /// The absolute guest path, `/workspace/<path>`.
    pub fn guest_path(&self) -> String {
        guest_path(&self.path)
    }
}

/// `/workspace/<rel>`.
pub fn guest_path(rel: &str) -> String {
    format!("{WORKSPACE_ROOT}/{rel}")
}

/// The contract's counts and sorted entries (absolute paths) for parsed patches.
pub fn summarize(files: &[FilePatch]) -> (PatchSummary, Vec<PatchEntry>) {
    let mut summary = PatchSummary::default();
    let mut entries: Vec<PatchEntry> = files
        .iter()
        .map(|file| {
            summary.total += 1;
            match file.kind {
                PatchKind::Add => summary.added += 1,
                PatchKind::Modify => summary.modified += 1,
                PatchKind::Delete => summary.deleted += 1,
            }
            PatchEntry { path: file.guest_path(), status: file.kind.status().to_owned() }
        })
        .collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    (summary, entries)
}

/// Parses a multi-file unified diff (see the module documentation for the subset).
pub fn parse_patch(text: &str) -> Result<Vec<FilePatch>, PatchError> {
    let lines: Vec<&str> =
        text.split_inclusive('\n').map(|l| l.strip_suffix('\n').unwrap_or(l)).collect();
    let mut files: Vec<FilePatch> = Vec::new();
    let mut current: Option<FilePatch> = None;
    // Set right after a hunk, to catch hunks with more lines than their header says.
    let mut after_hunk = false;
    let mut i = 0;
    while let Some(&line) = lines.get(i) {
        let trimmed = line.trim_end_matches('\r');
        if trimmed.starts_with("@@ ") || trimmed == "@@" {
            let Some(file) = current.as_mut() else {
                return Err(malformed(i, "hunk before any `---`/`+++` file header"));
            };
            let (hunk, next) = parse_hunk(&lines, i)?;
            file.hunks.push(hunk);
            i = next;
            after_hunk = true;
            continue;
        }
        if let (Some(old), Some(new)) = (
            trimmed.strip_prefix("--- "),
            lines.get(i + 1).and_then(|n| n.trim_end_matches('\r').strip_prefix("+++ ")),
        ) {
            if let Some(done) = current.take() {
                finish(done, &mut files)?;
            }
            current = Some(parse_header(old, new, i)?);
            i += 2;
            after_hunk = false;
            continue;
        }
        if UNSUPPORTED_PREFIXES.iter().any(|p| trimmed.starts_with(p)) {
            return Err(PatchError::Unsupported(trimmed.to_owned()));
        }
        // `-- ` is the signature separator of `git format-patch`.
        if after_hunk && trimmed != "-- " && line.starts_with(['+', '-', ' ']) {
            return Err(malformed(i, "hunk has more lines than its header says"));
        }
        // `diff --git`, `index`, and any other text between files.
        after_hunk = false;
        i += 1;
    }
    if let Some(done) = current.take() {
        finish(done, &mut files)?;
    }
    if files.is_empty() {
        return Err(PatchError::Empty);
    }
    Ok(files)
}

fn malformed(index: usize, reason: &'static str) -> PatchError {
    PatchError::Malformed { line: index + 1, reason }
}

fn finish(file: FilePatch, files: &mut Vec<FilePatch>) -> Result<(), PatchError> {
    if file.kind == PatchKind::Modify && file.hunks.is_empty() {
        return Err(PatchError::NoHunks(file.guest_path()));
    }
    if files.iter().any(|f| f.path == file.path) {
        return Err(PatchError::Duplicate(file.guest_path()));
    }
    files.push(file);
    Ok(())
}

/// Builds a file patch from the text after `--- ` and `+++ `.
fn parse_header(old: &str, new: &str, index: usize) -> Result<FilePatch, PatchError> {
    let old_path = header_path(old, "a/")?;
    let new_path = header_path(new, "b/")?;
    let (path, kind) = match (old_path, new_path) {
        (None, None) => return Err(malformed(index, "both file names are /dev/null")),
        (None, Some(path)) => (path, PatchKind::Add),
        (Some(path), None) => (path, PatchKind::Delete),
        (Some(old), Some(new)) if old != new => {
            return Err(PatchError::PathMismatch { old: guest_path(&old), new: guest_path(&new) })
        }
        (Some(path), Some(_)) => (path, PatchKind::Modify),
    };
    Ok(FilePatch { path, kind, hunks: Vec::new() })
}

/// The normalised relative path of a header name, or `None` for `/dev/null`.
fn header_path(raw: &str, prefix: &str) -> Result<Option<String>, PatchError> {
    // Trimmed on both sides, as `validate::workspace_path` trims: `+++  /dev/null` is the
    // deletion marker and ` ../x` is `../x`, never a name that only looks harmless here
    // and means something else to the path check (found by `tests/fuzz.rs`).
    let name = raw.split('\t').next().unwrap_or(raw).trim();
    if name == "/dev/null" {
        return Ok(None);
    }
    if name.starts_with('"') {
        // Git quotes names with unusual characters; C-style unquoting is not supported.
        return Err(PatchError::Unsupported(name.to_owned()));
    }
    let name = name.strip_prefix(prefix).unwrap_or(name);
    normalize_rel(name).map(Some)
}

/// Normalises a path relative to `/workspace`, refusing anything that escapes it.
///
/// A patch names files relative to `/workspace` (never absolutely), and otherwise by the
/// same rules as every other tool's path ([`super::validate::workspace_path`]: trimmed, no
/// NUL, no `..`), so the parser can never accept a name the path check reads differently
/// (`tests/fuzz.rs` found ` /dev/null` after an `a/` prefix, and a NUL).
fn normalize_rel(name: &str) -> Result<String, PatchError> {
    let outside = || PatchError::OutsideWorkspace { path: name.to_owned() };
    if name.trim_start().starts_with('/') {
        return Err(outside());
    }
    let full = super::validate::workspace_path(name, false).map_err(|_| outside())?;
    full.strip_prefix("/workspace/").map(str::to_owned).ok_or_else(outside)
}

/// Parses the `start[,len]` of a hunk header.
fn parse_range(text: &str) -> Option<(usize, usize)> {
    let number = |s: &str| {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<usize>().ok()
    };
    match text.split_once(',') {
        Some((start, len)) => Some((number(start)?, number(len)?)),
        None => Some((number(text)?, 1)),
    }
}

/// Parses the hunk whose header is `lines[start]`; returns it and the next line index.
fn parse_hunk(lines: &[&str], start: usize) -> Result<(Hunk, usize), PatchError> {
    let header = lines.get(start).map_or("", |l| l.trim_end_matches('\r'));
    let ranges = header
        .strip_prefix("@@ -")
        .and_then(|rest| rest.split_once(" +"))
        .and_then(|(old, rest)| rest.split_once(" @@").map(|(new, _)| (old, new)))
        .and_then(|(old, new)| Some((parse_range(old)?, parse_range(new)?)));
    let Some(((old_start, old_len), (new_start, new_len))) = ranges else {
        return Err(malformed(start, "bad hunk header, expected `@@ -a,b +c,d @@`"));
    };
    if old_len > 0 && old_start == 0 {
        return Err(malformed(start, "hunk header has old start 0 with a non-empty range"));
    }

    let mut hunk = Hunk { old_start, old_len, new_start, new_len, lines: Vec::new() };
    let (mut old_left, mut new_left) = (old_len, new_len);
    let mut i = start + 1;
    while old_left > 0 || new_left > 0 {
        let Some(&line) = lines.get(i) else {
            return Err(malformed(i, "hunk has fewer lines than its header says"));
        };
        let (kind, text) = match line.as_bytes().first() {
            Some(b' ') => (LineKind::Context, &line[1..]),
            Some(b'-') => (LineKind::Remove, &line[1..]),
            Some(b'+') => (LineKind::Add, &line[1..]),
            // Some tools strip the single space of an empty context line.
            None => (LineKind::Context, ""),
            Some(b'\\') => {
                mark_no_newline(&mut hunk, i)?;
                i += 1;
                continue;
            }
            Some(_) => return Err(malformed(i, "hunk has fewer lines than its header says")),
        };
        let (uses_old, uses_new) = match kind {
            LineKind::Context => (true, true),
            LineKind::Remove => (true, false),
            LineKind::Add => (false, true),
        };
        if (uses_old && old_left == 0) || (uses_new && new_left == 0) {
            return Err(malformed(i, "hunk lines do not add up to its header's counts"));
        }
        old_left -= usize::from(uses_old);
        new_left -= usize::from(uses_new);
        hunk.lines.push(HunkLine { kind, text: text.to_owned(), newline: true });
        i += 1;
    }
    if lines.get(i).is_some_and(|l| l.starts_with('\\')) {
        mark_no_newline(&mut hunk, i)?;
        i += 1;
    }
    Ok((hunk, i))
}

fn mark_no_newline(hunk: &mut Hunk, index: usize) -> Result<(), PatchError> {
    match hunk.lines.last_mut() {
        Some(last) => {
            last.newline = false;
            Ok(())
        }
        None => Err(malformed(index, "`\\ No newline at end of file` before any hunk line")),
    }
}

/// Applies one file patch to the file's current text (`None` when the file is absent).
/// Returns the new text, or `None` when the patch deletes the file.
pub fn apply(file: &FilePatch, old: Option<&str>) -> Result<Option<String>, PatchError> {
    let path = file.guest_path();
    let old_text = match (file.kind, old) {
        (PatchKind::Add, Some(_)) => return Err(PatchError::AddExisting(path)),
        (PatchKind::Add, None) => "",
        (PatchKind::Modify | PatchKind::Delete, None) => {
            return Err(PatchError::ModifyMissing(path))
        }
        (PatchKind::Modify | PatchKind::Delete, Some(text)) => text,
    };
    let old_lines: Vec<&str> = old_text.split_inclusive('\n').collect();
    let mut out = Output::default();
    let mut cursor = 0;
    for hunk in &file.hunks {
        let start = if hunk.old_len == 0 { hunk.old_start } else { hunk.old_start - 1 };
        if start < cursor {
            // Overlapping or out of order.
            return Err(PatchError::ContextMismatch(path));
        }
        if start.checked_add(hunk.old_len).is_none_or(|end| end > old_lines.len()) {
            return Err(PatchError::OutOfRange(path));
        }
        for line in &old_lines[cursor..start] {
            out.push(line, &path)?;
        }
        cursor = start;
        for line in &hunk.lines {
            match line.kind {
                LineKind::Context | LineKind::Remove => {
                    let Some(&current) = old_lines.get(cursor) else {
                        return Err(PatchError::OutOfRange(path));
                    };
                    if !line_matches(line, current) {
                        return Err(PatchError::ContextMismatch(path));
                    }
                    if line.kind == LineKind::Context {
                        out.push(current, &path)?;
                    }
                    cursor += 1;
                }
                LineKind::Add => {
                    out.push(&line.text, &path)?;
                    if line.newline {
                        out.text.push('\n');
                        out.open_line = false;
                    }
                }
            }
        }
    }
    for line in old_lines.get(cursor..).unwrap_or_default() {
        out.push(line, &path)?;
    }
    match file.kind {
        PatchKind::Delete if out.text.is_empty() => Ok(None),
        PatchKind::Delete => Err(PatchError::DeleteIncomplete(path)),
        PatchKind::Add | PatchKind::Modify => Ok(Some(out.text)),
    }
}

/// Whether a hunk line equals a file line (which keeps its `\n`, if any).
fn line_matches(line: &HunkLine, current: &str) -> bool {
    match current.strip_suffix('\n') {
        Some(body) => line.newline && body == line.text,
        None => !line.newline && current == line.text,
    }
}

/// The new text being built.
#[derive(Default)]
struct Output {
    text: String,
    /// The text ends with a line that has no newline.
    open_line: bool,
}

impl Output {
    /// Appends a line (with its newline, if it has one). Nothing may follow a line
    /// without a newline: that would mean a `\ No newline` marker not at the end.
    fn push(&mut self, line: &str, path: &str) -> Result<(), PatchError> {
        if self.open_line {
            return Err(PatchError::ContextMismatch(path.to_owned()));
        }
        self.text.push_str(line);
        self.open_line = !line.ends_with('\n');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> FilePatch {
        let mut files = parse_patch(text).expect("parse");
        assert_eq!(files.len(), 1);
        files.remove(0)
    }

    fn err(text: &str) -> String {
        parse_patch(text).expect_err("patch should be rejected").to_string()
    }

    fn apply_err(text: &str, old: Option<&str>) -> String {
        apply(&one(text), old).expect_err("apply should fail").to_string()
    }

    const MODIFY: &str =
        "--- a/src/a.txt\n+++ b/src/a.txt\n@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n";

    #[test]
    fn parses_modify_add_delete() {
        let text = format!(
            "diff --git a/src/a.txt b/src/a.txt\nindex 123..456 100644\n{MODIFY}\
             --- /dev/null\t2024-01-01 00:00:00\n+++ b/new.txt\t2024-01-01 00:00:00\n@@ -0,0 +1 @@\n+hi\n\
             --- a/old.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n"
        );
        let files = parse_patch(&text).expect("parse");
        let summary: Vec<(&str, PatchKind)> =
            files.iter().map(|f| (f.path.as_str(), f.kind)).collect();
        assert_eq!(
            summary,
            [
                ("src/a.txt", PatchKind::Modify),
                ("new.txt", PatchKind::Add),
                ("old.txt", PatchKind::Delete)
            ]
        );
        assert_eq!(
            files[0].hunks[0],
            Hunk {
                old_start: 1,
                old_len: 3,
                new_start: 1,
                new_len: 3,
                lines: vec![
                    HunkLine { kind: LineKind::Context, text: "one".into(), newline: true },
                    HunkLine { kind: LineKind::Remove, text: "two".into(), newline: true },
                    HunkLine { kind: LineKind::Add, text: "TWO".into(), newline: true },
                    HunkLine { kind: LineKind::Context, text: "three".into(), newline: true },
                ],
            }
        );
        assert_eq!(
            apply(&files[0], Some("one\ntwo\nthree\nfour\n")),
            Ok(Some("one\nTWO\nthree\nfour\n".into()))
        );
        assert_eq!(apply(&files[1], None), Ok(Some("hi\n".into())));
        assert_eq!(apply(&files[2], Some("bye\n")), Ok(None));

        let (summary, entries) = summarize(&files);
        assert_eq!(summary, PatchSummary { total: 3, added: 1, modified: 1, deleted: 1 });
        let paths: Vec<(&str, &str)> =
            entries.iter().map(|e| (e.path.as_str(), e.status.as_str())).collect();
        assert_eq!(
            paths,
            [
                ("/workspace/new.txt", "added"),
                ("/workspace/old.txt", "deleted"),
                ("/workspace/src/a.txt", "modified")
            ]
        );
    }

    #[test]
    fn omitted_counts_mean_one_and_blank_lines_are_context() {
        let file = one("--- a/f\n+++ b/f\n@@ -2 +2 @@\n-b\n+B\n");
        assert_eq!((file.hunks[0].old_len, file.hunks[0].new_len), (1, 1));
        assert_eq!(apply(&file, Some("a\nb\nc\n")), Ok(Some("a\nB\nc\n".into())));
        // The empty context line lost its leading space.
        let file = one("--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n\n-c\n+C\n");
        assert_eq!(apply(&file, Some("a\n\nc\n")), Ok(Some("a\n\nC\n".into())));
    }

    #[test]
    fn no_newline_markers() {
        let text = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n";
        let file = one(text);
        assert_eq!(apply(&file, Some("a\nb")), Ok(Some("a\nc".into())));
        // The old side must really lack the newline.
        assert_eq!(
            apply(&file, Some("a\nb\n")).map_err(|e| e.to_string()),
            Err("patch context does not match for /workspace/f".into())
        );
        let add_newline =
            one("--- a/f\n+++ b/f\n@@ -1 +1 @@\n-x\n\\ No newline at end of file\n+x\n");
        assert_eq!(apply(&add_newline, Some("x")), Ok(Some("x\n".into())));
        // A marker on a line that is not the last of the new file.
        let misplaced =
            one("--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+A\n\\ No newline at end of file\n");
        assert_eq!(
            apply(&misplaced, Some("a\nb\n")).map_err(|e| e.to_string()),
            Err("patch context does not match for /workspace/f".into())
        );
    }

    #[test]
    fn add_and_delete_of_empty_files() {
        let add = one("--- /dev/null\n+++ b/empty\n");
        assert_eq!(apply(&add, None), Ok(Some(String::new())));
        let delete = one("--- a/empty\n+++ /dev/null\n");
        assert_eq!(apply(&delete, Some("")), Ok(None));
        assert_eq!(
            apply(&delete, Some("left\n")).map_err(|e| e.to_string()),
            Err("workspace patch must remove all content to delete /workspace/empty".into())
        );
    }

    #[test]
    fn rejects_unsupported_features() {
        for line in [
            "old mode 100644",
            "new mode 100755",
            "new file mode 100644",
            "deleted file mode 100644",
            "rename from x",
            "rename to y",
            "copy from x",
            "copy to y",
            "similarity index 90%",
            "dissimilarity index 10%",
            "Binary files a/x and b/x differ",
            "GIT binary patch",
        ] {
            let text = format!("diff --git a/x b/x\n{line}\n{MODIFY}");
            assert_eq!(err(&text), format!("unsupported patch feature: {line}"));
        }
    }

    #[test]
    fn rejects_bad_paths_and_entries() {
        assert_eq!(err(""), "patch is empty");
        assert_eq!(err("just some text\n"), "patch is empty");
        assert_eq!(
            err("--- a/x\n+++ b/y\n@@ -1 +1 @@\n-a\n+b\n"),
            "patch old and new paths differ: /workspace/x != /workspace/y"
        );
        assert_eq!(
            err(&format!("{MODIFY}{MODIFY}")),
            "patch contains more than one entry for /workspace/src/a.txt"
        );
        for path in ["/etc/passwd", "../x", "src/../../x", "a/../../x", "."] {
            let text = format!("--- {path}\n+++ {path}\n@@ -1 +1 @@\n-a\n+b\n");
            assert_eq!(err(&text), "workspace path must stay inside /workspace", "{path}");
        }
        assert_eq!(
            err("--- /dev/null\n+++ /abs\n@@ -0,0 +1 @@\n+a\n"),
            "workspace path must stay inside /workspace"
        );
        assert_eq!(err("--- a/x\n+++ b/x\n"), "patch has no hunks for /workspace/x");
        for path in [" ../x", "  /etc/passwd", " /abs", "a\0b", "a/ /dev/null", "b/\t/etc/x"] {
            let text = format!("--- {path}\n+++ {path}\n@@ -1 +1 @@\n-a\n+b\n");
            assert_eq!(err(&text), "workspace path must stay inside /workspace", "{path:?}");
        }
    }

    #[test]
    fn extra_spaces_around_header_names_are_not_part_of_them() {
        let delete = one("--- a/gone\n+++  /dev/null\n@@ -1 +0,0 @@\n-a\n");
        assert_eq!(delete.path, "gone");
        assert_eq!(delete.kind, PatchKind::Delete);
        let add = one("---  /dev/null \n+++  b/new \n@@ -0,0 +1 @@\n+a\n");
        assert_eq!(add.path, "new");
    }

    #[test]
    fn rejects_miscounted_hunks() {
        assert_eq!(
            err("--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n-a\n+b\n"),
            "malformed patch at line 6: hunk has fewer lines than its header says"
        );
        assert_eq!(
            err("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n+c\n"),
            "malformed patch at line 6: hunk has more lines than its header says"
        );
        assert_eq!(
            err("--- a/x\n+++ b/x\n@@ -1 +1,2 @@\n-a\n-b\n"),
            "malformed patch at line 5: hunk lines do not add up to its header's counts"
        );
        assert_eq!(
            err("--- a/x\n+++ b/x\n@@ -1 +1 @ oops\n-a\n+b\n"),
            "malformed patch at line 3: bad hunk header, expected `@@ -a,b +c,d @@`"
        );
        assert_eq!(
            err("@@ -1 +1 @@\n-a\n+b\n"),
            "malformed patch at line 1: hunk before any `---`/`+++` file header"
        );
    }

    #[test]
    fn ignores_trailing_signature_and_garbage() {
        let text = format!("Subject: fix\n\n{MODIFY}-- \n2.43.0\n");
        assert_eq!(parse_patch(&text).map(|f| f.len()), Ok(1));
    }

    #[test]
    fn apply_rejections() {
        // Context mismatch: no fuzz, not even whitespace.
        assert_eq!(
            apply_err(MODIFY, Some("one\ntwo \nthree\n")),
            "patch context does not match for /workspace/src/a.txt"
        );
        // No offset: the hunk must sit exactly where its header says.
        assert_eq!(
            apply_err(MODIFY, Some("zero\none\ntwo\nthree\n")),
            "patch context does not match for /workspace/src/a.txt"
        );
        // Hunks out of order.
        let text = "--- a/f\n+++ b/f\n@@ -3 +3 @@\n-c\n+C\n@@ -1 +1 @@\n-a\n+A\n";
        assert_eq!(
            apply_err(text, Some("a\nb\nc\n")),
            "patch context does not match for /workspace/f"
        );
        // Beyond the end of the file.
        assert_eq!(
            apply_err(MODIFY, Some("one\ntwo\n")),
            "patch hunk is out of range for /workspace/src/a.txt"
        );
        let text = "--- a/f\n+++ b/f\n@@ -5,0 +6 @@\n+x\n";
        assert_eq!(apply_err(text, Some("a\n")), "patch hunk is out of range for /workspace/f");
        // Target state.
        assert_eq!(
            apply_err("--- /dev/null\n+++ b/f\n@@ -0,0 +1 @@\n+x\n", Some("")),
            "workspace patch cannot add an existing path: /workspace/f"
        );
        assert_eq!(
            apply_err(MODIFY, None),
            "workspace patch cannot modify a missing path: /workspace/src/a.txt"
        );
        assert_eq!(
            apply_err("--- a/f\n+++ /dev/null\n@@ -1 +0,0 @@\n-a\n", None),
            "workspace patch cannot modify a missing path: /workspace/f"
        );
        // A delete must remove everything.
        assert_eq!(
            apply_err("--- a/f\n+++ /dev/null\n@@ -1 +0,0 @@\n-a\n", Some("a\nb\n")),
            "workspace patch must remove all content to delete /workspace/f"
        );
    }

    #[test]
    fn insertion_after_a_line_and_multiple_hunks() {
        let text = "--- a/f\n+++ b/f\n@@ -1,0 +2 @@\n+inserted\n@@ -3 +4 @@\n-c\n+C\n";
        assert_eq!(
            apply(&one(text), Some("a\nb\nc\nd\n")),
            Ok(Some("a\ninserted\nb\nC\nd\n".into()))
        );
    }
}
