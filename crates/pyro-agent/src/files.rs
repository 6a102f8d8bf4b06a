//! File requests: list, read, write, delete, export and import.
//!
//! All of them take guest paths, check them with [`crate::paths`] and never follow a
//! symlink: not in an intermediate component (refused), and not in the final one
//! (listed as a link, refused by read and write, removed itself by delete).

use crate::archive;
use crate::error::SandboxError;
use crate::paths::{self, ResolvedPath, WorkspacePath};
use pyro_protocol::{ArchiveStats, ArtifactType, FileEntry};
use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

fn resolve_existing(
    workspace_dir: &Path,
    guest: &str,
) -> Result<(ResolvedPath, fs::Metadata), SandboxError> {
    let path = WorkspacePath::parse(guest)?;
    let resolved = paths::resolve(workspace_dir, &path)?;
    match resolved.metadata.clone() {
        Some(meta) => Ok((resolved, meta)),
        None => Err(SandboxError::NotFound(path.guest())),
    }
}

fn entry_for(guest: String, host: &Path, meta: &fs::Metadata) -> Result<FileEntry, SandboxError> {
    let file_type = meta.file_type();
    if file_type.is_symlink() {
        let target = fs::read_link(host).map_err(|e| SandboxError::io("read link", &guest, e))?;
        Ok(FileEntry {
            path: guest,
            artifact_type: ArtifactType::Symlink,
            size_bytes: meta.len(),
            link_target: Some(target.to_string_lossy().into_owned()),
        })
    } else if file_type.is_dir() {
        Ok(FileEntry {
            path: guest,
            artifact_type: ArtifactType::Directory,
            size_bytes: 0,
            link_target: None,
        })
    } else {
        // Regular files, and special files (fifos, sockets, devices), which the protocol
        // has no type for, are listed as files with their lstat size.
        Ok(FileEntry {
            path: guest,
            artifact_type: ArtifactType::File,
            size_bytes: meta.len(),
            link_target: None,
        })
    }
}

/// List `guest`: a directory's children (pre-order and recursive if asked), or a single
/// entry for anything else. Symlinks are never followed.
pub(crate) fn list(
    workspace_dir: &Path,
    guest: &str,
    recursive: bool,
) -> Result<Vec<FileEntry>, SandboxError> {
    let (resolved, meta) = resolve_existing(workspace_dir, guest)?;
    if !meta.is_dir() {
        return Ok(vec![entry_for(resolved.guest(), &resolved.host, &meta)?]);
    }
    let mut out = Vec::new();
    list_dir(&resolved.host, &resolved.path, recursive, &mut out)?;
    Ok(out)
}

fn list_dir(
    host: &Path,
    guest: &WorkspacePath,
    recursive: bool,
    out: &mut Vec<FileEntry>,
) -> Result<(), SandboxError> {
    let read_err = |e| SandboxError::io("list", &guest.guest(), e);
    let mut names: Vec<OsString> = fs::read_dir(host)
        .map_err(read_err)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(read_err)?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let child_host = host.join(&name);
        let child = guest.child(&name.to_string_lossy());
        let meta = match fs::symlink_metadata(&child_host) {
            Ok(meta) => meta,
            // Removed while we were listing.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(SandboxError::io("stat", &child.guest(), e)),
        };
        out.push(entry_for(child.guest(), &child_host, &meta)?);
        if recursive && meta.is_dir() {
            list_dir(&child_host, &child, recursive, out)?;
        }
    }
    Ok(())
}

/// What [`read`] returns.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FileData {
    pub size_bytes: u64,
    pub data: Vec<u8>,
    pub truncated: bool,
}

/// Read the first `max_bytes` bytes of a regular file.
pub(crate) fn read(
    workspace_dir: &Path,
    guest: &str,
    max_bytes: u64,
) -> Result<FileData, SandboxError> {
    let (resolved, meta) = resolve_existing(workspace_dir, guest)?;
    let guest = resolved.guest();
    if meta.file_type().is_symlink() {
        return Err(SandboxError::FinalSymlink(guest));
    }
    if !meta.is_file() {
        return Err(SandboxError::ReadNotRegular(guest));
    }
    // O_NOFOLLOW and O_NONBLOCK: if the entry was swapped for a symlink or a fifo since
    // the lstat, the open fails or does not hang; fstat below re-checks the type.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&resolved.host)
        .map_err(|e| SandboxError::io("open", &guest, e))?;
    let meta = file.metadata().map_err(|e| SandboxError::io("stat", &guest, e))?;
    if !meta.is_file() {
        return Err(SandboxError::ReadNotRegular(guest));
    }
    let size_bytes = meta.len();
    let mut data = Vec::with_capacity(usize::try_from(size_bytes.min(max_bytes)).unwrap_or(0));
    file.take(max_bytes).read_to_end(&mut data).map_err(|e| SandboxError::io("read", &guest, e))?;
    Ok(FileData { size_bytes, truncated: size_bytes > data.len() as u64, data })
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Create or atomically replace a regular file, creating missing parent directories.
pub(crate) fn write(workspace_dir: &Path, guest: &str, data: &[u8]) -> Result<u64, SandboxError> {
    let path = WorkspacePath::parse(guest)?;
    let guest = path.guest();
    // Check before creating anything, so a refused write leaves the tree unchanged.
    let resolved = paths::resolve(workspace_dir, &path)?;
    let existing_mode = match &resolved.metadata {
        Some(meta) if meta.file_type().is_symlink() => {
            return Err(SandboxError::FinalSymlink(guest))
        }
        Some(meta) if !meta.is_file() => return Err(SandboxError::WriteNotRegular(guest)),
        Some(meta) => Some(meta.permissions().mode() & 0o7777),
        None => None,
    };
    paths::create_parents(workspace_dir, &path)?;
    let target = resolved.host;
    let dir = target.parent().ok_or_else(|| SandboxError::WriteNotRegular(guest.clone()))?;
    let temp = dir.join(format!(
        ".pyro-write-{}-{}.tmp",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temp)?;
        if let Some(mode) = existing_mode {
            file.set_permissions(fs::Permissions::from_mode(mode))?;
        }
        file.write_all(data)?;
        file.sync_all()?;
        fs::rename(&temp, &target)?;
        // Persist the rename itself.
        fs::File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(SandboxError::io("write", &guest, e));
    }
    Ok(data.len() as u64)
}

/// Remove a file, symlink (not its target) or directory tree. Missing is fine.
pub(crate) fn delete(workspace_dir: &Path, guest: &str) -> Result<(), SandboxError> {
    let path = WorkspacePath::parse(guest)?;
    if path.is_root() {
        return Err(SandboxError::DeleteRoot);
    }
    let resolved = paths::resolve(workspace_dir, &path)?;
    let guest = resolved.guest();
    let result = match &resolved.metadata {
        None => return Ok(()),
        // remove_dir_all does not follow symlinks inside the tree.
        Some(meta) if meta.is_dir() => fs::remove_dir_all(&resolved.host),
        Some(_) => fs::remove_file(&resolved.host),
    };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SandboxError::io("delete", &guest, e)),
    }
}

/// Pack a guest path into a tar archive (see [`archive::pack_path`]).
pub(crate) fn export(
    workspace_dir: &Path,
    guest: &str,
) -> Result<(Vec<u8>, ArtifactType, ArchiveStats), SandboxError> {
    export_to(workspace_dir, guest, Vec::new())
}

/// [`export`] into any writer (a spool file for streamed transfers).
pub(crate) fn export_to<W: std::io::Write>(
    workspace_dir: &Path,
    guest: &str,
    out: W,
) -> Result<(W, ArtifactType, ArchiveStats), SandboxError> {
    let (resolved, meta) = resolve_existing(workspace_dir, guest)?;
    let file_type = meta.file_type();
    if !(file_type.is_dir() || file_type.is_file() || file_type.is_symlink()) {
        return Err(SandboxError::ExportUnsupportedType(resolved.guest()));
    }
    if resolved.path.is_root() {
        // `ws/.` makes the (trusted) workspace directory itself be followed even if it
        // is reached through a symlink on the host.
        return Ok(archive::pack_path_to(&workspace_dir.join("."), out)?);
    }
    Ok(archive::pack_path_to(&resolved.host, out)?)
}

/// Validate an archive, then unpack it into a guest directory (created if missing).
/// `links` says which symlink targets are accepted (see [`archive::LinkTargets`]).
pub(crate) fn import(
    workspace_dir: &Path,
    dest: &str,
    replace: bool,
    bytes: &[u8],
    links: archive::LinkTargets,
) -> Result<ArchiveStats, SandboxError> {
    import_from(workspace_dir, dest, replace, std::io::Cursor::new(bytes), links)
}

/// [`import`] from any seekable reader (an import's spool file).
pub(crate) fn import_from<R: std::io::Read + std::io::Seek>(
    workspace_dir: &Path,
    dest: &str,
    replace: bool,
    mut reader: R,
    links: archive::LinkTargets,
) -> Result<ArchiveStats, SandboxError> {
    let path = WorkspacePath::parse(dest)?;
    let guest = path.guest();
    // Validate before creating the destination, so a bad archive changes nothing.
    archive::validate_reader(&mut reader, links, archive::DEFAULT_MAX_ENTRIES)?;
    let resolved = paths::resolve(workspace_dir, &path)?;
    match &resolved.metadata {
        Some(meta) if meta.file_type().is_symlink() => {
            return Err(SandboxError::FinalSymlink(guest))
        }
        Some(meta) if !meta.is_dir() => return Err(SandboxError::ImportNotDirectory(guest)),
        Some(_) => {}
        None => {
            paths::create_parents(workspace_dir, &path)?;
            paths::ensure_real_dir(&resolved.host, &guest)?;
        }
    }
    Ok(archive::unpack_from(reader, &resolved.host, replace, links, archive::DEFAULT_MAX_ENTRIES)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyro_protocol::ErrorKind;
    use std::os::unix::fs::symlink;

    fn ws() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let ws = dir.path();
        fs::create_dir_all(ws.join("b/sub")).expect("mkdir");
        fs::write(ws.join("a.txt"), b"hello").expect("write");
        fs::write(ws.join("b/sub/deep.txt"), b"d").expect("write");
        fs::write(ws.join("b/x"), b"xx").expect("write");
        fs::write(ws.join("b.txt"), b"").expect("write");
        symlink("/etc", ws.join("link")).expect("symlink");
        dir
    }

    fn paths(entries: &[FileEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.path.as_str()).collect()
    }

    /// Snapshot of a tree: (relative path, kind, content) sorted.
    fn snapshot(root: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
            for e in fs::read_dir(dir).expect("ls") {
                let e = e.expect("entry");
                let p = e.path();
                let rel = p.strip_prefix(root).expect("prefix").to_string_lossy().into_owned();
                let ft = e.file_type().expect("type");
                if ft.is_symlink() {
                    out.push((rel, format!("link:{}", fs::read_link(&p).expect("rl").display())));
                } else if ft.is_dir() {
                    out.push((rel, "dir".into()));
                    walk(root, &p, out);
                } else {
                    out.push((
                        rel,
                        String::from_utf8_lossy(&fs::read(&p).expect("read")).into_owned(),
                    ));
                }
            }
        }
        walk(root, root, &mut out);
        out.sort();
        out
    }

    #[test]
    fn list_is_sorted_and_recursive_listing_is_pre_order() {
        let dir = ws();
        let entries = list(dir.path(), "/workspace", false).expect("list");
        assert_eq!(
            paths(&entries),
            ["/workspace/a.txt", "/workspace/b", "/workspace/b.txt", "/workspace/link"]
        );
        let link = &entries[3];
        assert_eq!(link.artifact_type, ArtifactType::Symlink);
        assert_eq!(link.link_target.as_deref(), Some("/etc"));
        assert_eq!(entries[1].size_bytes, 0);
        assert_eq!(entries[0].size_bytes, 5);

        let entries = list(dir.path(), "/workspace", true).expect("list");
        assert_eq!(
            paths(&entries),
            [
                "/workspace/a.txt",
                "/workspace/b",
                "/workspace/b/sub",
                "/workspace/b/sub/deep.txt",
                "/workspace/b/x",
                "/workspace/b.txt",
                "/workspace/link",
            ]
        );
        // A file lists as itself; a symlink to a directory is not entered.
        let entries = list(dir.path(), "/workspace/b/x", true).expect("list");
        assert_eq!(paths(&entries), ["/workspace/b/x"]);
        let entries = list(dir.path(), "/workspace/link", true).expect("list");
        assert_eq!(paths(&entries), ["/workspace/link"]);
        let err = list(dir.path(), "/workspace/nope", false).expect_err("missing");
        assert_eq!(err.to_string(), "workspace path does not exist: /workspace/nope");
        let err = list(dir.path(), "/workspace/link/passwd", false).expect_err("escape");
        assert_eq!(err.kind(), ErrorKind::PathEscape);
    }

    #[test]
    fn read_truncates_and_reports_the_full_size() {
        let dir = ws();
        let data = read(dir.path(), "/workspace/a.txt", 3).expect("read");
        assert_eq!(data, FileData { size_bytes: 5, data: b"hel".to_vec(), truncated: true });
        let data = read(dir.path(), "/workspace/a.txt", 5).expect("read");
        assert_eq!(data, FileData { size_bytes: 5, data: b"hello".to_vec(), truncated: false });
        let err = read(dir.path(), "/workspace/b", 5).expect_err("dir");
        assert_eq!(
            err.to_string(),
            "workspace file read only supports regular files: /workspace/b"
        );
        assert_eq!(err.kind(), ErrorKind::WrongType);
    }

    #[test]
    fn read_and_write_never_follow_symlinks() {
        let dir = ws();
        let outside = tempfile::tempdir().expect("tempdir");
        fs::write(outside.path().join("secret"), b"s").expect("write");
        symlink(outside.path().join("secret"), dir.path().join("final")).expect("symlink");
        symlink(outside.path(), dir.path().join("mid")).expect("symlink");
        let before = snapshot(dir.path());
        let outside_before = snapshot(outside.path());

        for path in
            ["/workspace/final", "/workspace/mid/secret", "/workspace/../secret", "/etc/passwd"]
        {
            let err = read(dir.path(), path, 10).expect_err(path);
            assert_eq!(err.kind(), ErrorKind::PathEscape, "{path}: {err}");
        }
        for path in [
            "/workspace/final",
            "/workspace/mid/secret",
            "/workspace/mid/new/file",
            "/workspace/x/../../escape",
            "/tmp/x",
        ] {
            let err = write(dir.path(), path, b"pwned").expect_err(path);
            assert_eq!(err.kind(), ErrorKind::PathEscape, "{path}: {err}");
        }
        let err = write(dir.path(), "/workspace/mid/secret", b"x").expect_err("mid");
        assert_eq!(err.to_string(), "path escapes /workspace through symlink: /workspace/mid");
        assert_eq!(snapshot(dir.path()), before);
        assert_eq!(snapshot(outside.path()), outside_before);
    }

    #[test]
    fn write_creates_parents_and_replaces_atomically() {
        let dir = ws();
        assert_eq!(write(dir.path(), "/workspace/new/dir/f.txt", b"abc").expect("write"), 3);
        assert_eq!(fs::read(dir.path().join("new/dir/f.txt")).expect("read"), b"abc");
        fs::set_permissions(dir.path().join("a.txt"), fs::Permissions::from_mode(0o755))
            .expect("chmod");
        // Keep a handle on the old inode: an atomic replace leaves it untouched.
        let old = fs::File::open(dir.path().join("a.txt")).expect("open");
        write(dir.path(), "/workspace/a.txt", b"replaced").expect("write");
        let mut old_content = String::new();
        (&old).read_to_string(&mut old_content).expect("read old");
        assert_eq!(old_content, "hello");
        assert_eq!(fs::read(dir.path().join("a.txt")).expect("read"), b"replaced");
        let mode = fs::metadata(dir.path().join("a.txt")).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "mode of the replaced file is kept");
        // No temp files are left behind.
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .expect("ls")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(".pyro-write"))
            .collect();
        assert!(leftovers.is_empty());
        // Not over a directory, and not through a file used as a directory.
        assert_eq!(
            write(dir.path(), "/workspace/b", b"x").expect_err("dir").kind(),
            ErrorKind::WrongType
        );
        assert_eq!(
            write(dir.path(), "/workspace/a.txt/x", b"x").expect_err("file").kind(),
            ErrorKind::WrongType
        );
    }

    #[test]
    fn delete_removes_trees_and_links_but_not_the_root() {
        let dir = ws();
        delete(dir.path(), "/workspace/b").expect("delete dir");
        assert!(!dir.path().join("b").exists());
        delete(dir.path(), "/workspace/link").expect("delete link");
        assert!(dir.path().join("link").symlink_metadata().is_err());
        assert!(Path::new("/etc").is_dir());
        delete(dir.path(), "/workspace/missing/x").expect("missing is fine");
        assert_eq!(delete(dir.path(), "/workspace").expect_err("root").kind(), ErrorKind::Invalid);
        assert_eq!(delete(dir.path(), "/workspace/").expect_err("root").kind(), ErrorKind::Invalid);
        assert!(dir.path().join("a.txt").exists());
    }

    #[test]
    fn export_and_import_round_trip_through_the_workspace() {
        let dir = ws();
        let (bytes, kind, stats) = export(dir.path(), "/workspace/b").expect("export");
        assert_eq!(kind, ArtifactType::Directory);
        assert_eq!(stats, ArchiveStats { entry_count: 3, bytes_written: 3, symlink_count: 0 });
        let stats2 = import(
            dir.path(),
            "/workspace/copy/of/b",
            false,
            &bytes,
            archive::LinkTargets::Contained,
        )
        .expect("import");
        assert_eq!(stats2, stats);
        assert_eq!(fs::read(dir.path().join("copy/of/b/sub/deep.txt")).expect("read"), b"d");

        let (bytes, kind, _) = export(dir.path(), "/workspace/a.txt").expect("export");
        assert_eq!(kind, ArtifactType::File);
        import(dir.path(), "/workspace/b", true, &bytes, archive::LinkTargets::Contained)
            .expect("replace");
        let names: Vec<_> = list(dir.path(), "/workspace/b", true)
            .expect("list")
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(names, ["/workspace/b/a.txt"]);

        // Import through or into a symlink is refused.
        let err =
            import(dir.path(), "/workspace/link", false, &bytes, archive::LinkTargets::Contained)
                .expect_err("link");
        assert_eq!(err.kind(), ErrorKind::PathEscape);
        let err = import(
            dir.path(),
            "/workspace/link/sub",
            false,
            &bytes,
            archive::LinkTargets::Contained,
        )
        .expect_err("link");
        assert_eq!(err.kind(), ErrorKind::PathEscape);
        let err =
            import(dir.path(), "/workspace/a.txt", false, &bytes, archive::LinkTargets::Contained)
                .expect_err("file");
        assert_eq!(err.kind(), ErrorKind::WrongType);
    }
}
