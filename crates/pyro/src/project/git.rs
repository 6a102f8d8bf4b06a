//! The few Git commands project sources need, run as child processes of the host's
//! `git`. Only read-only commands ever run in the user's checkout (`rev-parse`,
//! `ls-files`); `clone` and `checkout` run only in a directory pyro created.
//!
//! Hand-written on top of the `git` binary rather than a Git library: the user's own
//! `git` already knows their index format, `safe.directory` settings and credentials,
//! and we need three commands.

use super::ProjectSourceError;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Longest `git` output read (file lists of very large repositories fit easily).
const MAX_OUTPUT: usize = 64 * 1024 * 1024;

fn git(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(dir);
    // Never prompt for credentials or open an editor: pyro runs without a terminal.
    cmd.env("GIT_TERMINAL_PROMPT", "0").env("GIT_EDITOR", "true").stdin(Stdio::null());
    cmd
}

fn run(mut cmd: Command, what: &str) -> Result<Vec<u8>, ProjectSourceError> {
    let out = cmd.output().map_err(|e| ProjectSourceError::Git {
        command: what.to_string(),
        message: if e.kind() == std::io::ErrorKind::NotFound {
            "git is not installed on this host".to_string()
        } else {
            e.to_string()
        },
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let message = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("failed").trim();
        return Err(ProjectSourceError::Git {
            command: what.to_string(),
            message: message.chars().take(300).collect(),
        });
    }
    if out.stdout.len() > MAX_OUTPUT {
        return Err(ProjectSourceError::Git {
            command: what.to_string(),
            message: "output too large".into(),
        });
    }
    Ok(out.stdout)
}

/// The top of the Git working tree containing `dir`, or `None` when `dir` is not
/// inside one (or git is missing).
pub fn toplevel(dir: &Path) -> Option<PathBuf> {
    let mut cmd = git(dir);
    cmd.args(["rev-parse", "--show-toplevel"]).stderr(Stdio::null());
    let out = run(cmd, "git rev-parse --show-toplevel").ok()?;
    let text = String::from_utf8(out).ok()?;
    let line = text.trim_end_matches(['\n', '\r']);
    (!line.is_empty()).then(|| PathBuf::from(line))
}

/// Whether `dir` is inside a Git working tree.
pub fn is_work_tree(dir: &Path) -> bool {
    toplevel(dir).is_some()
}

/// One path of the index under the directory `ls-files` ran in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// Path relative to that directory (as Git prints it, `/`-separated).
    pub path: String,
    /// Git's mode: `100644`, `100755`, `120000` (symlink) or `160000` (submodule).
    pub mode: String,
}

/// The index entries (tracked files, including staged new ones) under `dir`. Ignored
/// and untracked files are never listed; modified files are listed once, and their
/// working-tree content is what gets seeded.
pub fn tracked_files(dir: &Path) -> Result<Vec<IndexEntry>, ProjectSourceError> {
    let mut cmd = git(dir);
    cmd.args(["ls-files", "--cached", "--stage", "-z", "--", "."]);
    let out = run(cmd, "git ls-files")?;
    let mut entries: Vec<IndexEntry> = Vec::new();
    for record in out.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        // "<mode> <object> <stage>\t<path>"
        let Some(tab) = record.iter().position(|b| *b == b'\t') else { continue };
        let head = String::from_utf8_lossy(&record[..tab]);
        let Some(mode) = head.split(' ').next() else { continue };
        let Ok(path) = std::str::from_utf8(&record[tab + 1..]) else {
            return Err(ProjectSourceError::Git {
                command: "git ls-files".into(),
                message: format!(
                    "a tracked path is not valid UTF-8: {}",
                    String::from_utf8_lossy(&record[tab + 1..])
                ),
            });
        };
        // A path in conflict appears once per stage; keep one.
        if entries.last().is_some_and(|e| e.path == path) {
            continue;
        }
        entries.push(IndexEntry { path: path.to_string(), mode: mode.to_string() });
    }
    Ok(entries)
}

/// The commit checked out in `dir`.
pub fn head_commit(dir: &Path) -> Result<String, ProjectSourceError> {
    let mut cmd = git(dir);
    cmd.args(["rev-parse", "HEAD"]);
    let out = run(cmd, "git rev-parse HEAD")?;
    Ok(String::from_utf8_lossy(&out).trim().to_string())
}

/// Clone `url` into the new directory `into` (which pyro owns) and check out
/// `reference` (a branch, tag or commit) when given.
pub fn clone(url: &str, reference: Option<&str>, into: &Path) -> Result<(), ProjectSourceError> {
    let parent = into.parent().unwrap_or(Path::new("/"));
    let mut cmd = git(parent);
    cmd.args(["clone", "--quiet", "--no-hardlinks", "--", url]).arg(into.as_os_str());
    run(cmd, "git clone")?;
    if let Some(reference) = reference {
        if reference.starts_with('-') {
            return Err(ProjectSourceError::Invalid(format!(
                "--repo-ref {reference} must name a branch, tag or commit"
            )));
        }
        let mut cmd = git(into);
        cmd.args(["checkout", "--quiet", "--detach"]).arg(OsStr::new(reference));
        run(cmd, "git checkout")?;
    }
    Ok(())
}
