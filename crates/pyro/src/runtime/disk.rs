//! Stopped-workspace disk tools: `workspace_disk_export`, `workspace_disk_list` and
//! `workspace_disk_read`, without booting the guest.
//!
//! The backend writes the root disk as a raw ext4 image ([`Backend::export_raw_disk`]);
//! pyro then reads that image offline with `debugfs` (e2fsprogs), addressing every
//! entry by inode number so no name is ever parsed as a debugfs command argument.
//! Before anything is read or handed out, the guest's runtime-only directories
//! (`/run/pyro-secrets`, `/run/pyro-shells`, `/run/pyro-services`) are removed from the
//! image. They normally never reach the disk at all: `/run` is a tmpfs in the guest.
//!
//! Paths: relative paths are under `/workspace`; absolute paths may name anything in
//! the guest; `..` is collapsed lexically; symlinks are never followed (an
//! intermediate symlink is an error, a final one is listed as a link).
//!
//! [`Backend::export_raw_disk`]: crate::backend::Backend::export_raw_disk

use super::error::{PyroError, Result};
use super::state::{new_id, WorkspaceDir, WorkspaceLock, WorkspaceRecord};
use super::Runtime;
use pyro_contract::params::{
    WorkspaceDiskExportParams, WorkspaceFileListParams, WorkspaceFileReadParams,
};
use pyro_contract::results::{
    ArtifactType, DiskExportResult, DiskListResult, DiskReadResult, FileEntry,
};
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Guest directories that only exist while the guest runs; scrubbed from disk images.
pub const RUNTIME_DIRS: &[&str] = &["/run/pyro-secrets", "/run/pyro-shells", "/run/pyro-services"];

/// The debugfs binary: `$PYRO_DEBUGFS`, else `debugfs` from `PATH` (it lives in
/// `/sbin`, which is not on every user's `PATH`, so that is tried too).
fn debugfs_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("PYRO_DEBUGFS").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    for dir in std::env::var_os("PATH").iter().flat_map(std::env::split_paths) {
        let candidate = dir.join("debugfs");
        if candidate.is_file() {
            return candidate;
        }
    }
    for fallback in ["/usr/sbin/debugfs", "/sbin/debugfs"] {
        if Path::new(fallback).is_file() {
            return PathBuf::from(fallback);
        }
    }
    PathBuf::from("debugfs")
}

const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const ROOT_INODE: u64 = 2;
/// ext4 keeps symlink targets shorter than this inside the inode ("fast" links).
const FAST_LINK_MAX: u64 = 60;

/// One directory entry of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    ino: u64,
    mode: u32,
    name: String,
    size: u64,
}

impl Node {
    fn kind(&self) -> u32 {
        self.mode & S_IFMT
    }
    fn is_dir(&self) -> bool {
        self.kind() == S_IFDIR
    }
    fn is_symlink(&self) -> bool {
        self.kind() == S_IFLNK
    }
    fn is_regular(&self) -> bool {
        self.kind() == S_IFREG
    }
}

/// Parse one line of `ls -p`: `/ino/mode/uid/gid/name/size/` (size empty for dirs).
fn parse_ls_line(line: &str) -> Option<Node> {
    let rest = line.strip_prefix('/')?.strip_suffix('/')?;
    let mut head = rest.splitn(5, '/');
    let ino = head.next()?.parse().ok()?;
    let mode = u32::from_str_radix(head.next()?, 8).ok()?;
    head.next()?; // uid
    head.next()?; // gid
    let tail = head.next()?; // name/size (names never contain '/')
    let (name, size) = tail.rsplit_once('/')?;
    let size = if size.is_empty() { 0 } else { size.parse().ok()? };
    Some(Node { ino, mode, name: name.to_string(), size })
}

/// Normalise a disk-tool path: relative -> under /workspace; `..` collapsed; returns
/// the components.
pub(crate) fn disk_path(path: &str) -> Result<(String, Vec<String>)> {
    if path.contains('\0') {
        return Err(PyroError::invalid("workspace disk path must not contain NUL bytes"));
    }
    let trimmed = path.trim();
    if trimmed.is_empty() {
        return Err(PyroError::invalid("workspace disk path must not be empty"));
    }
    let full = if trimmed.starts_with('/') {
        trimmed.to_string()
    } else {
        format!("/workspace/{trimmed}")
    };
    let mut parts: Vec<String> = Vec::new();
    for part in full.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p.to_string()),
        }
    }
    Ok((format!("/{}", parts.join("/")), parts))
}

/// A raw ext4 image read with debugfs. The file is removed on drop.
struct RawImage {
    path: PathBuf,
    remove_on_drop: bool,
}

impl Drop for RawImage {
    fn drop(&mut self) {
        if self.remove_on_drop {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn quote(path: &str) -> String {
    format!("\"{}\"", path.replace('"', "\"\""))
}

impl RawImage {
    fn run(&self, args: &[&str], commands: &[String]) -> Result<String> {
        let binary = debugfs_binary();
        let mut child = Command::new(&binary)
            .args(args)
            .arg("-f")
            .arg("-")
            .arg(&self.path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                PyroError::invalid(format!(
                    "the disk tools need debugfs (Debian package e2fsprogs) on the host: cannot run {}: {e}",
                    binary.display()
                ))
            })?;
        let mut script = commands.join("\n");
        script.push('\n');
        let mut stdin = child.stdin.take().expect("piped stdin");
        let writer = std::thread::spawn(move || stdin.write_all(script.as_bytes()));
        let output =
            child.wait_with_output().map_err(|e| PyroError::io("debugfs failed", &self.path, e))?;
        let _ = writer.join();
        if !output.status.success() {
            return Err(PyroError::invalid(format!(
                "debugfs could not read the workspace disk: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// `ls -p` of several directories in one debugfs run.
    fn list_dirs(&self, inos: &[u64]) -> Result<BTreeMap<u64, Vec<Node>>> {
        let mut out = BTreeMap::new();
        for chunk in inos.chunks(500) {
            let commands: Vec<String> = chunk.iter().map(|i| format!("ls -p <{i}>")).collect();
            let text = self.run(&[], &commands)?;
            let mut current: Option<u64> = None;
            let mut pending = chunk.iter().copied().peekable();
            for line in text.lines() {
                if let Some(&next) = pending.peek() {
                    if line == format!("debugfs: ls -p <{next}>") {
                        current = Some(next);
                        pending.next();
                        out.insert(next, Vec::new());
                        continue;
                    }
                }
                let (Some(dir), Some(node)) = (current, parse_ls_line(line)) else { continue };
                if node.name == "." || node.name == ".." {
                    continue;
                }
                out.entry(dir).or_insert_with(Vec::new).push(node);
            }
        }
        for children in out.values_mut() {
            children.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        }
        Ok(out)
    }

    fn children(&self, ino: u64) -> Result<Vec<Node>> {
        Ok(self.list_dirs(&[ino])?.remove(&ino).unwrap_or_default())
    }

    /// Walk `parts` from the root without following symlinks. `None` when missing.
    fn resolve(&self, shown: &str, parts: &[String]) -> Result<Option<Node>> {
        let mut node =
            Node { ino: ROOT_INODE, mode: S_IFDIR | 0o755, name: String::new(), size: 0 };
        for (i, part) in parts.iter().enumerate() {
            if !node.is_dir() {
                let prefix = format!("/{}", parts[..i].join("/"));
                return Err(PyroError::invalid(if node.is_symlink() {
                    format!("workspace disk path goes through a symlink, which is not followed: {prefix} (in {shown})")
                } else {
                    format!(
                        "workspace disk path component is not a directory: {prefix} (in {shown})"
                    )
                }));
            }
            match self.children(node.ino)?.into_iter().find(|c| &c.name == part) {
                Some(child) => node = child,
                None => return Ok(None),
            }
        }
        Ok(Some(node))
    }

    /// Targets of symlink nodes (fast links from `stat`, others from their data).
    fn link_targets(&self, links: &[&Node]) -> Result<BTreeMap<u64, String>> {
        let mut targets = BTreeMap::new();
        let fast: Vec<&&Node> = links.iter().filter(|n| n.size < FAST_LINK_MAX).collect();
        for chunk in fast.chunks(500) {
            let commands: Vec<String> = chunk.iter().map(|n| format!("stat <{}>", n.ino)).collect();
            let text = self.run(&[], &commands)?;
            let mut current = None;
            let mut pending = chunk.iter().peekable();
            for line in text.split('\n') {
                if let Some(next) = pending.peek() {
                    if line == format!("debugfs: stat <{}>", next.ino) {
                        current = Some((next.ino, next.size as usize));
                        pending.next();
                        continue;
                    }
                }
                if let (Some((ino, size)), Some(rest)) =
                    (current, line.strip_prefix("Fast link dest: \""))
                {
                    let bytes = rest.as_bytes();
                    let end = size.min(bytes.len());
                    targets.insert(ino, String::from_utf8_lossy(&bytes[..end]).into_owned());
                    current = None;
                }
            }
        }
        let slow: Vec<&&Node> = links.iter().filter(|n| !targets.contains_key(&n.ino)).collect();
        for n in slow {
            let data = self.cat(n.ino, n.size.min(4096))?;
            targets.insert(n.ino, String::from_utf8_lossy(&data).into_owned());
        }
        Ok(targets)
    }

    /// The first `max` bytes of inode `ino`'s data.
    fn cat(&self, ino: u64, max: u64) -> Result<Vec<u8>> {
        let binary = debugfs_binary();
        let mut child = Command::new(&binary)
            .arg("-R")
            .arg(format!("cat <{ino}>"))
            .arg(&self.path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| PyroError::io("cannot run debugfs", &binary, e))?;
        let mut data = Vec::new();
        let mut stdout = child.stdout.take().expect("piped stdout");
        let read = stdout.by_ref().take(max).read_to_end(&mut data);
        drop(stdout);
        let _ = child.kill();
        let _ = child.wait();
        read.map_err(|e| PyroError::io("could not read from debugfs", &self.path, e))?;
        Ok(data)
    }

    /// Remove `path` and everything below it from the image (writes the image).
    fn remove_tree(&self, path: &str, parts: &[String]) -> Result<bool> {
        let Some(node) = self.resolve(path, parts)? else { return Ok(false) };
        let mut commands = Vec::new();
        self.removal_commands(path, &node, &mut commands, &mut HashSet::new())?;
        self.run(&["-w"], &commands)?;
        Ok(true)
    }

    fn removal_commands(
        &self,
        path: &str,
        node: &Node,
        out: &mut Vec<String>,
        seen: &mut HashSet<u64>,
    ) -> Result<()> {
        if path.contains(['\n', '\r']) {
            return Ok(());
        }
        if node.is_dir() {
            if !seen.insert(node.ino) {
                return Ok(());
            }
            for child in self.children(node.ino)? {
                self.removal_commands(&format!("{path}/{}", child.name), &child, out, seen)?;
            }
            out.push(format!("rmdir {}", quote(path)));
        } else {
            out.push(format!("rm {}", quote(path)));
        }
        Ok(())
    }

    fn scrub_runtime_dirs(&self) -> Result<()> {
        for dir in RUNTIME_DIRS {
            let (shown, parts) = disk_path(dir)?;
            self.remove_tree(&shown, &parts)?;
        }
        Ok(())
    }

    /// Entries below `dir_node` (at guest path `base`), pre-order when recursive.
    fn list(&self, base: &str, dir_node: &Node, recursive: bool) -> Result<Vec<FileEntry>> {
        let mut tree: BTreeMap<u64, Vec<Node>> = BTreeMap::new();
        let mut level = vec![dir_node.ino];
        let mut seen: HashSet<u64> = HashSet::from([dir_node.ino]);
        while !level.is_empty() {
            let listed = self.list_dirs(&level)?;
            level = Vec::new();
            for (ino, children) in listed {
                if recursive {
                    for c in children.iter().filter(|c| c.is_dir()) {
                        if seen.insert(c.ino) {
                            level.push(c.ino);
                        }
                    }
                }
                tree.insert(ino, children);
            }
        }
        let links: Vec<&Node> = tree.values().flatten().filter(|n| n.is_symlink()).collect();
        let targets = self.link_targets(&links)?;
        let mut out = Vec::new();
        flatten(&tree, dir_node.ino, base, recursive, &targets, &mut out, &mut HashSet::new());
        Ok(out)
    }
}

fn entry(path: String, node: &Node, targets: &BTreeMap<u64, String>) -> FileEntry {
    if node.is_dir() {
        FileEntry { path, artifact_type: ArtifactType::Directory, size_bytes: 0, link_target: None }
    } else if node.is_symlink() {
        FileEntry {
            path,
            artifact_type: ArtifactType::Symlink,
            size_bytes: node.size,
            link_target: targets.get(&node.ino).cloned(),
        }
    } else {
        // Special files are listed as files, as the live file tools do.
        FileEntry {
            path,
            artifact_type: ArtifactType::File,
            size_bytes: node.size,
            link_target: None,
        }
    }
}

fn flatten(
    tree: &BTreeMap<u64, Vec<Node>>,
    ino: u64,
    base: &str,
    recursive: bool,
    targets: &BTreeMap<u64, String>,
    out: &mut Vec<FileEntry>,
    seen: &mut HashSet<u64>,
) {
    if !seen.insert(ino) {
        return;
    }
    for child in tree.get(&ino).into_iter().flatten() {
        let path =
            if base == "/" { format!("/{}", child.name) } else { format!("{base}/{}", child.name) };
        out.push(entry(path.clone(), child, targets));
        if recursive && child.is_dir() {
            flatten(tree, child.ino, &path, recursive, targets, out, seen);
        }
    }
}

/// Whether the file at `path` starts with the ext4 superblock magic (0xEF53 at byte 1080).
pub fn has_ext4_magic(path: &Path) -> bool {
    let mut buf = [0u8; 2];
    let read = fs::File::open(path).and_then(|mut f| {
        use std::io::{Seek, SeekFrom};
        f.seek(SeekFrom::Start(1080))?;
        f.read_exact(&mut buf)
    });
    read.is_ok() && u16::from_le_bytes(buf) == 0xEF53
}

impl Runtime {
    /// Load a workspace for a disk operation: guest-backed, stopped, locked.
    fn disk_workspace(
        &self,
        workspace_id: &str,
        op: &str,
    ) -> Result<(WorkspaceDir, WorkspaceRecord, WorkspaceLock)> {
        let super::workspace::Locked { dir, rec, guard: lock } =
            self.lock_workspace(workspace_id)?;
        if !self.capabilities(rec.backend).raw_disk {
            return Err(PyroError::Unsupported {
                backend: rec.backend.name().into(),
                operation: format!("workspace_disk_{op}"),
                hint: format!(
                    "; workspace_disk_{op} is unavailable for host_compat workspaces (their /workspace is a host directory: use workspace_export instead)"
                ),
            });
        }
        if self.backend(rec.backend).is_running(&dir.sandbox()) {
            return Err(PyroError::WrongState(format!(
                "workspace '{workspace_id}' must be stopped before workspace_disk_{op}; run `pyro workspace stop {workspace_id}` first"
            )));
        }
        Ok((dir, rec, lock))
    }

    /// The image that holds `parts` (of a normalised disk path) and the parts relative
    /// to its root: the workspace volume for paths under `/workspace` of a workspace
    /// that has one, else the root disk.
    fn image_for(
        &self,
        dir: &WorkspaceDir,
        rec: &WorkspaceRecord,
        parts: &[String],
    ) -> Result<(RawImage, Vec<String>)> {
        match (&rec.volume, parts.first().map(String::as_str)) {
            (Some(_), Some("workspace")) => Ok((self.volume_image(dir, rec)?, parts[1..].to_vec())),
            _ => Ok((self.disk_image(dir, rec)?, parts.to_vec())),
        }
    }

    /// Convert the workspace volume (what the guest mounts at `/workspace`) to a
    /// temporary raw image.
    fn volume_image(&self, dir: &WorkspaceDir, rec: &WorkspaceRecord) -> Result<RawImage> {
        let Some(vol) = &rec.volume else {
            return Err(PyroError::invalid("this workspace has no volume"));
        };
        let image = RawImage {
            path: dir.root.join(format!(".volume-{}.raw", new_id())),
            remove_on_drop: true,
        };
        super::volume::repair_headers(dir, vol)?;
        crate::backend::qemu::volume::export_raw(&vol.spec(dir).active, &image.path)?;
        Ok(image)
    }

    /// Convert the workspace's disk to a scrubbed temporary raw image.
    fn disk_image(&self, dir: &WorkspaceDir, rec: &WorkspaceRecord) -> Result<RawImage> {
        let image = RawImage {
            path: dir.root.join(format!(".disk-{}.raw", new_id())),
            remove_on_drop: true,
        };
        self.backend(rec.backend).export_raw_disk(&dir.sandbox(), &image.path)?;
        image.scrub_runtime_dirs()?;
        Ok(image)
    }

    /// Copy the stopped workspace's root disk to a new host file as a raw ext4 image.
    pub fn workspace_disk_export(&self, p: WorkspaceDiskExportParams) -> Result<DiskExportResult> {
        let output = super::seed::absolute(&p.output_path)?;
        if output.symlink_metadata().is_ok() {
            return Err(PyroError::invalid(format!(
                "output_path already exists: {}",
                output.display()
            )));
        }
        let (dir, rec, _lock) = self.disk_workspace(&p.workspace_id, "export")?;
        let parent = output.parent().unwrap_or(Path::new("/")).to_path_buf();
        fs::create_dir_all(&parent)
            .map_err(|e| PyroError::io("could not create the output directory", &parent, e))?;
        let name = output.file_name().and_then(|n| n.to_str()).unwrap_or("disk");
        let tmp = RawImage {
            path: parent.join(format!(".{name}.tmp-{}", new_id())),
            remove_on_drop: true,
        };
        match &rec.volume {
            // The files a user wants back live on the volume: its image is what mounts
            // as `/workspace` (docs/decisions-4x.md, "Disk export of a volume").
            Some(vol) => {
                super::volume::repair_headers(&dir, vol)?;
                crate::backend::qemu::volume::export_raw(&vol.spec(&dir).active, &tmp.path)?
            }
            None => {
                self.backend(rec.backend).export_raw_disk(&dir.sandbox(), &tmp.path)?;
                tmp.scrub_runtime_dirs()?;
            }
        }
        if !has_ext4_magic(&tmp.path) {
            return Err(PyroError::CorruptState {
                path: dir.sandbox(),
                message: "the workspace disk is not an ext4 file system".into(),
            });
        }
        // A hard link never replaces an existing file, unlike rename.
        fs::hard_link(&tmp.path, &output).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                PyroError::invalid(format!("output_path already exists: {}", output.display()))
            } else {
                PyroError::io("could not write the disk image", &output, e)
            }
        })?;
        drop(tmp);
        let bytes_written = fs::metadata(&output)
            .map_err(|e| PyroError::io("could not stat the disk image", &output, e))?
            .len();
        Ok(DiskExportResult {
            workspace_id: p.workspace_id,
            output_path: output.display().to_string(),
            disk_format: "ext4".into(),
            bytes_written,
        })
    }

    /// List a path of the stopped workspace's disk.
    pub fn workspace_disk_list(&self, p: WorkspaceFileListParams) -> Result<DiskListResult> {
        let (path, parts) = disk_path(&p.path)?;
        let (dir, rec, lock) = self.disk_workspace(&p.workspace_id, "list")?;
        let (image, parts) = self.image_for(&dir, &rec, &parts)?;
        drop(lock);
        let node = image.resolve(&path, &parts)?.ok_or_else(|| {
            PyroError::invalid(format!("workspace disk path does not exist: {path}"))
        })?;
        let entries = if node.is_dir() {
            image.list(&path, &node, p.recursive)?
        } else {
            let targets =
                if node.is_symlink() { image.link_targets(&[&node])? } else { BTreeMap::new() };
            vec![entry(path.clone(), &node, &targets)]
        };
        Ok(DiskListResult { workspace_id: p.workspace_id, path, recursive: p.recursive, entries })
    }

    /// Read a regular file of the stopped workspace's disk.
    pub fn workspace_disk_read(&self, p: WorkspaceFileReadParams) -> Result<DiskReadResult> {
        if p.max_bytes == 0 {
            return Err(PyroError::invalid("max_bytes must be positive"));
        }
        let (path, parts) = disk_path(&p.path)?;
        let (dir, rec, lock) = self.disk_workspace(&p.workspace_id, "read")?;
        let (image, parts) = self.image_for(&dir, &rec, &parts)?;
        drop(lock);
        let node = image.resolve(&path, &parts)?.ok_or_else(|| {
            PyroError::invalid(format!("workspace disk path does not exist: {path}"))
        })?;
        if !node.is_regular() {
            return Err(PyroError::invalid(format!(
                "workspace disk read only supports regular files: {path}"
            )));
        }
        let data = image.cat(node.ino, p.max_bytes.min(node.size))?;
        Ok(DiskReadResult {
            path,
            size_bytes: node.size,
            max_bytes: p.max_bytes,
            content: self.redactor(&dir).redact(&String::from_utf8_lossy(&data)),
            truncated: node.size > p.max_bytes,
            workspace_id: p.workspace_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_lines_and_paths_parse() {
        assert_eq!(
            parse_ls_line("/13/100644/0/0/a b\"c.txt/6/"),
            Some(Node { ino: 13, mode: 0o100644, name: "a b\"c.txt".into(), size: 6 })
        );
        let dir = parse_ls_line("/19/040755/0/0/sub//").expect("dir");
        assert!(dir.is_dir() && dir.size == 0);
        assert_eq!(parse_ls_line("debugfs: ls -p <2>"), None);
        assert_eq!(disk_path("a/b").expect("rel").0, "/workspace/a/b");
        assert_eq!(disk_path("/etc/../run/./x").expect("abs").0, "/run/x");
        assert_eq!(disk_path("../../..").expect("up").0, "/");
        assert_eq!(disk_path("/workspace/x/..").expect("up").1, ["workspace"]);
        assert!(disk_path(" ").is_err() && disk_path("a\0b").is_err());
        assert_eq!(quote("we\"ird"), "\"we\"\"ird\"");
    }

    /// A small ext4 image made from a directory tree with `mkfs.ext4 -d`.
    fn image(tree: &Path) -> RawImage {
        let path = tree.parent().expect("parent").join("img.ext4");
        let status = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-d"])
            .arg(tree)
            .arg(&path)
            .arg("16M")
            .env("PATH", "/usr/sbin:/sbin:/usr/bin:/bin")
            .status()
            .expect("mkfs.ext4 (e2fsprogs) is needed for this test");
        assert!(status.success());
        RawImage { path, remove_on_drop: false }
    }

    #[test]
    fn reads_lists_and_scrubs_an_ext4_image_offline() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let tree = tmp.path().join("tree");
        let ws = tree.join("workspace");
        fs::create_dir_all(ws.join("sub/deeper")).expect("mkdir");
        fs::write(ws.join("a.txt"), "hello\n").expect("write");
        fs::write(ws.join("sub/deeper/b.bin"), vec![7u8; 70_000]).expect("write");
        fs::write(ws.join("we\"ird name"), "q").expect("write");
        std::os::unix::fs::symlink("short", ws.join("fast")).expect("symlink");
        let long = format!("{}/target", "x".repeat(100));
        std::os::unix::fs::symlink(&long, ws.join("slow")).expect("symlink");
        fs::create_dir_all(tree.join("run/pyro-secrets")).expect("mkdir");
        fs::write(tree.join("run/pyro-secrets/TOKEN"), "leaked-on-disk").expect("write");
        fs::write(tree.join("run/pyro-secrets/we\"ird"), "x").expect("write");
        fs::create_dir_all(tree.join("run/lock")).expect("mkdir");
        let img = image(&tree);
        assert!(has_ext4_magic(&img.path));

        let (p, parts) = disk_path("/workspace").expect("path");
        let root = img.resolve(&p, &parts).expect("resolve").expect("exists");
        let names: Vec<String> =
            img.list(&p, &root, false).expect("list").into_iter().map(|e| e.path).collect();
        assert_eq!(
            names,
            [
                "/workspace/a.txt",
                "/workspace/fast",
                "/workspace/slow",
                "/workspace/sub",
                "/workspace/we\"ird name"
            ]
        );
        let all = img.list(&p, &root, true).expect("recursive");
        let paths: Vec<&str> = all.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            &paths[3..6],
            ["/workspace/sub", "/workspace/sub/deeper", "/workspace/sub/deeper/b.bin"]
        );
        let by = |p: &str| all.iter().find(|e| e.path == p).expect(p).clone();
        assert_eq!(by("/workspace/fast").link_target.as_deref(), Some("short"));
        assert_eq!(by("/workspace/slow").link_target.as_deref(), Some(long.as_str()));
        assert_eq!(by("/workspace/sub/deeper/b.bin").size_bytes, 70_000);
        assert_eq!(by("/workspace/sub").artifact_type, ArtifactType::Directory);

        let (p, parts) = disk_path("a.txt").expect("path");
        let node = img.resolve(&p, &parts).expect("resolve").expect("exists");
        assert_eq!(img.cat(node.ino, 3).expect("cat"), b"hel");
        let (p, parts) = disk_path("fast/x").expect("path");
        let err = img.resolve(&p, &parts).expect_err("through a symlink").to_string();
        assert!(err.contains("not followed"), "{err}");
        let (p, parts) = disk_path("missing").expect("path");
        assert_eq!(img.resolve(&p, &parts).expect("resolve"), None);

        img.scrub_runtime_dirs().expect("scrub");
        let (p, parts) = disk_path("/run").expect("path");
        let run = img.resolve(&p, &parts).expect("resolve").expect("exists");
        let left: Vec<String> =
            img.list(&p, &run, true).expect("list").into_iter().map(|e| e.path).collect();
        assert_eq!(left, ["/run/lock"]);
        let fsck = Command::new("e2fsck")
            .args(["-f", "-n"])
            .arg(&img.path)
            .env("PATH", "/usr/sbin:/sbin:/usr/bin:/bin")
            .output()
            .expect("e2fsck");
        assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stdout));
    }
}
