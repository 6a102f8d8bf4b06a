//! Mapping guest paths under `/workspace` to the directory that backs them.
//!
//! A request path is first checked *lexically* ([`WorkspacePath::parse`]): it must be
//! absolute, lie under [`WORKSPACE_ROOT`] and have no `..` component (`.` and repeated
//! slashes are dropped). It is then *resolved* against the workspace directory
//! ([`resolve`]) component by component with `lstat`: an intermediate component that is a
//! symlink is refused whatever it points at, so no operation ever leaves the tree through
//! a link. The final component is reported as it is (never followed); each operation
//! decides what it accepts.
//!
//! Limitation: the checks and the later use are separate system calls, so a process
//! that swaps a directory for a symlink in between could win the race. Inside the guest
//! that process would already run with full rights over the guest; in `host_compat`
//! mode commands run on the host unconfined anyway. Neither mode treats this as a
//! security boundary.

use crate::error::SandboxError;
use pyro_protocol::WORKSPACE_ROOT;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A lexically valid guest path: `/workspace` or something below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspacePath {
    /// Normalised components below `/workspace` (no `.`, `..` or empty ones).
    components: Vec<String>,
}

impl WorkspacePath {
    /// The workspace root itself.
    pub fn root() -> Self {
        WorkspacePath { components: Vec::new() }
    }

    /// Check a guest path: absolute, under `/workspace`, no `..`, no NUL byte.
    pub fn parse(path: &str) -> Result<Self, SandboxError> {
        if path.contains('\0') {
            return Err(SandboxError::NulByte(path.to_owned()));
        }
        if !path.starts_with('/') {
            return Err(SandboxError::RelativePath(path.to_owned()));
        }
        let root = WORKSPACE_ROOT.trim_start_matches('/');
        let mut parts = path.split('/').filter(|c| !c.is_empty() && *c != ".");
        let mut components = Vec::new();
        let mut first = true;
        for part in parts.by_ref() {
            if part == ".." {
                return Err(SandboxError::ParentComponent(path.to_owned()));
            }
            if first {
                if part != root {
                    return Err(SandboxError::OutsideWorkspace(path.to_owned()));
                }
                first = false;
                continue;
            }
            components.push(part.to_owned());
        }
        if first {
            // Only "/" (or "/./"), which is outside the workspace.
            return Err(SandboxError::OutsideWorkspace(path.to_owned()));
        }
        Ok(WorkspacePath { components })
    }

    /// True for `/workspace` itself.
    pub fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    /// Components below `/workspace`.
    pub fn components(&self) -> &[String] {
        &self.components
    }

    /// The normalised guest path, e.g. `/workspace/a/b`.
    pub fn guest(&self) -> String {
        guest_string(&self.components)
    }

    /// The guest path of the first `n` components below `/workspace`.
    pub fn guest_prefix(&self, n: usize) -> String {
        guest_string(&self.components[..n.min(self.components.len())])
    }

    /// The path below `workspace_dir` that backs this guest path (lexical only).
    pub fn host_path(&self, workspace_dir: &Path) -> PathBuf {
        let mut out = workspace_dir.to_path_buf();
        out.extend(&self.components);
        out
    }

    /// Final component, or `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        self.components.last().map(String::as_str)
    }

    /// The path with one more component (a plain name, not checked).
    pub(crate) fn child(&self, name: &str) -> Self {
        let mut components = self.components.clone();
        components.push(name.to_owned());
        WorkspacePath { components }
    }
}

fn guest_string(components: &[String]) -> String {
    let mut out = String::from(WORKSPACE_ROOT);
    for c in components {
        out.push('/');
        out.push_str(c);
    }
    out
}

/// A guest path checked against the file system.
#[derive(Debug)]
pub struct ResolvedPath {
    /// The guest path.
    pub path: WorkspacePath,
    /// Backing path on this machine.
    pub host: PathBuf,
    /// `lstat` of the final component; `None` when it (or a parent) does not exist.
    pub metadata: Option<fs::Metadata>,
}

impl ResolvedPath {
    /// The normalised guest path.
    pub fn guest(&self) -> String {
        self.path.guest()
    }
}

/// Walk `path` below `workspace_dir` with `lstat`, refusing symlinks and non-directories
/// in intermediate components. The final component is not followed.
pub fn resolve(workspace_dir: &Path, path: &WorkspacePath) -> Result<ResolvedPath, SandboxError> {
    let host = path.host_path(workspace_dir);
    let mut current = workspace_dir.to_path_buf();
    // The workspace directory itself is trusted (it may legitimately be reached through
    // a symlink on the host), so it is stat'ed with `metadata`, following links.
    let mut meta = match fs::metadata(&current) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(SandboxError::NotFound(WORKSPACE_ROOT.to_owned()));
        }
        Err(e) => return Err(SandboxError::io("stat", WORKSPACE_ROOT, e)),
    };
    for (i, component) in path.components().iter().enumerate() {
        // `meta` describes the parent of `component`: it must be a real directory.
        if meta.file_type().is_symlink() {
            return Err(SandboxError::SymlinkEscape(path.guest_prefix(i)));
        }
        if !meta.is_dir() {
            return Err(SandboxError::NotADirectory(path.guest_prefix(i)));
        }
        current.push(component);
        meta = match fs::symlink_metadata(&current) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(ResolvedPath { path: path.clone(), host, metadata: None });
            }
            Err(e) => return Err(SandboxError::io("stat", &path.guest_prefix(i + 1), e)),
        };
    }
    Ok(ResolvedPath { path: path.clone(), host, metadata: Some(meta) })
}

/// Create the missing parent directories of `path`, refusing symlinks and
/// non-directories on the way. The final component is not touched.
pub(crate) fn create_parents(
    workspace_dir: &Path,
    path: &WorkspacePath,
) -> Result<(), SandboxError> {
    let mut current = workspace_dir.to_path_buf();
    let n = path.components().len().saturating_sub(1);
    for (i, component) in path.components()[..n].iter().enumerate() {
        current.push(component);
        let guest = path.guest_prefix(i + 1);
        ensure_real_dir(&current, &guest)?;
    }
    Ok(())
}

/// Make sure `host` is a real directory (not a symlink), creating it if missing.
pub(crate) fn ensure_real_dir(host: &Path, guest: &str) -> Result<(), SandboxError> {
    match fs::symlink_metadata(host) {
        Ok(meta) if meta.file_type().is_symlink() => {
            Err(SandboxError::SymlinkEscape(guest.to_owned()))
        }
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(SandboxError::NotADirectory(guest.to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(host) {
            Ok(()) => Ok(()),
            // Someone else created it in between: check what it is.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                match fs::symlink_metadata(host) {
                    Ok(meta) if meta.is_dir() => Ok(()),
                    Ok(meta) if meta.file_type().is_symlink() => {
                        Err(SandboxError::SymlinkEscape(guest.to_owned()))
                    }
                    Ok(_) => Err(SandboxError::NotADirectory(guest.to_owned())),
                    Err(e) => Err(SandboxError::io("stat", guest, e)),
                }
            }
            Err(e) => Err(SandboxError::io("create directory", guest, e)),
        },
        Err(e) => Err(SandboxError::io("stat", guest, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyro_protocol::ErrorKind;

    #[test]
    fn parse_normalises_and_rejects_escapes() {
        let p = WorkspacePath::parse("/workspace/./a//b/").expect("valid");
        assert_eq!(p.guest(), "/workspace/a/b");
        assert_eq!(p.components(), ["a", "b"]);
        assert!(WorkspacePath::parse("/workspace").expect("root").is_root());
        assert!(WorkspacePath::parse("/workspace/").expect("root").is_root());

        for (bad, kind) in [
            ("/workspace/../etc", ErrorKind::PathEscape),
            ("/workspace/a/../../etc", ErrorKind::PathEscape),
            ("/workspace/a/..", ErrorKind::PathEscape),
            ("/etc/passwd", ErrorKind::PathEscape),
            ("/workspacefoo/a", ErrorKind::PathEscape),
            ("/", ErrorKind::PathEscape),
            ("workspace/a", ErrorKind::Invalid),
            ("", ErrorKind::Invalid),
            ("/workspace/a\0b", ErrorKind::Invalid),
        ] {
            let err = WorkspacePath::parse(bad).expect_err(bad);
            assert_eq!(err.kind(), kind, "{bad}: {err}");
        }
        assert_eq!(
            WorkspacePath::parse("/tmp").expect_err("outside").to_string(),
            "workspace path must stay inside /workspace: /tmp"
        );
    }

    #[test]
    fn host_path_maps_below_the_workspace_dir() {
        let p = WorkspacePath::parse("/workspace/src/main.rs").expect("valid");
        assert_eq!(p.host_path(Path::new("/srv/ws")), PathBuf::from("/srv/ws/src/main.rs"));
        assert_eq!(WorkspacePath::root().host_path(Path::new("/srv/ws")), PathBuf::from("/srv/ws"));
        assert_eq!(p.guest_prefix(1), "/workspace/src");
        assert_eq!(p.file_name(), Some("main.rs"));
    }

    #[test]
    fn resolve_refuses_intermediate_symlinks_and_reports_final_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ws = dir.path();
        fs::create_dir(ws.join("d")).expect("mkdir");
        fs::write(ws.join("d/f"), b"x").expect("write");
        std::os::unix::fs::symlink("/etc", ws.join("out")).expect("symlink");
        std::os::unix::fs::symlink("d", ws.join("inside")).expect("symlink");

        let r = resolve(ws, &WorkspacePath::parse("/workspace/d/f").expect("p")).expect("ok");
        assert!(r.metadata.expect("exists").is_file());
        let r =
            resolve(ws, &WorkspacePath::parse("/workspace/d/missing/x").expect("p")).expect("ok");
        assert!(r.metadata.is_none());

        let err = resolve(ws, &WorkspacePath::parse("/workspace/out/passwd").expect("p"))
            .expect_err("escape");
        assert_eq!(err.to_string(), "path escapes /workspace through symlink: /workspace/out");
        // Even a symlink that stays inside is not traversed.
        let err = resolve(ws, &WorkspacePath::parse("/workspace/inside/f").expect("p"))
            .expect_err("escape");
        assert_eq!(err.kind(), ErrorKind::PathEscape);
        // The final symlink is reported, not followed.
        let r = resolve(ws, &WorkspacePath::parse("/workspace/out").expect("p")).expect("ok");
        assert!(r.metadata.expect("exists").file_type().is_symlink());
        // A file used as a directory.
        let err = resolve(ws, &WorkspacePath::parse("/workspace/d/f/g").expect("p"))
            .expect_err("not dir");
        assert_eq!(err.kind(), ErrorKind::WrongType);
    }
}
