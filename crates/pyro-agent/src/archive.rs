//! Tar archives of workspace trees, safe against tar-slip.
//!
//! Used on both sides of the protocol: the agent packs and unpacks `/workspace` paths,
//! and the host reuses [`validate_archive`] to check seed archives and [`unpack_into`]
//! to write exports to a host directory.
//!
//! # Format
//!
//! Plain (uncompressed) tar as written by the `tar` crate (GNU headers, long names
//! supported). [`pack_path`] writes members in a fixed order: for a directory, its
//! children with relative names, each directory immediately followed by its contents,
//! siblings sorted by name; for a file or symlink, one member named after its final
//! component. Permission bits and modification times are kept, owners are stored as
//! 0, symlinks are stored as symlinks, and special files (fifos, sockets, devices)
//! inside a directory are skipped.
//!
//! # Safety rules for unpacking
//!
//! Every member is checked before anything is written ([`validate_archive`]):
//! - names must be relative and free of `..` (`.` components are dropped; a member
//!   naming the archive root itself, like `./`, must be a directory and is skipped);
//! - only regular files, directories and symlinks are accepted: hard links, devices,
//!   fifos, sparse files and other special members are rejected (pax global headers
//!   are ignored);
//! - symlink targets must be relative and, resolved lexically from the link's
//!   directory, stay inside the destination without passing through another symlink
//!   of the archive;
//! - no member may sit below a symlink member (written "through" it), nor below a file
//!   member, and a path may appear twice only if both members are directories.
//!
//! With [`LinkTargets::Kept`] (host-side exports, see [`unpack_into_with`]) symlink
//! targets are not checked at all: a link to `/etc/passwd` or `../../x` is written as
//! that link, and stays harmless because nothing is ever written through a link (the
//! rule above still holds) and the host never follows one. The guest's own imports
//! keep [`LinkTargets::Contained`].
//!
//! [`unpack_into`] then also checks the existing destination (unless `replace` empties
//! it first): no member may pass through an existing symlink or replace a directory
//! with a non-directory. Existing files and symlinks named by a member are replaced.
//! Set-user-id and set-group-id bits are dropped on extraction. Files, directories and
//! symlinks get the member's modification time (whole seconds).

use pyro_protocol::{ArchiveStats, ArtifactType, ErrorKind};
use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why an archive could not be produced, was rejected, or could not be unpacked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The bytes are not a readable tar archive.
    #[error("malformed tar archive: {0}")]
    Malformed(io::Error),
    /// A member name is absolute.
    #[error("archive member has an absolute name: {0}")]
    AbsoluteName(String),
    /// A member name has a `..` component.
    #[error("archive member name contains '..': {0}")]
    ParentComponent(String),
    /// A member name is empty.
    #[error("archive member has an empty name")]
    EmptyName,
    /// A hard link member.
    #[error("archive member is a hard link, which is not supported: {0}")]
    HardLink(String),
    /// A member of a type other than file, directory or symlink.
    #[error("archive member {name} has unsupported type {kind}")]
    UnsupportedMember {
        /// Member name.
        name: String,
        /// Its tar type.
        kind: String,
    },
    /// A symlink member with an absolute target.
    #[error("archive symlink {name} has an absolute target: {target}")]
    AbsoluteSymlink {
        /// Member name.
        name: String,
        /// Link target.
        target: String,
    },
    /// A symlink member whose target leaves the destination.
    #[error("archive symlink {name} points outside the destination: {target}")]
    SymlinkEscape {
        /// Member name.
        name: String,
        /// Link target.
        target: String,
    },
    /// A member would be written through (or a symlink resolved through) a symlink.
    #[error("archive member {name} goes through symlink {link}")]
    ThroughSymlink {
        /// Member name.
        name: String,
        /// The symlink in the way.
        link: String,
    },
    /// A member conflicts with another member of a different type.
    #[error("archive member {name} conflicts with another member of a different type")]
    Conflict {
        /// Member name.
        name: String,
    },
    /// The same non-directory path appears twice.
    #[error("archive member appears twice: {0}")]
    Duplicate(String),
    /// An existing entry in the destination is in the way of a member.
    #[error("archive member {name} conflicts with an existing entry of a different type")]
    DestinationConflict {
        /// Member name.
        name: String,
    },
    /// An existing symlink in the destination is in the way of a member.
    #[error("archive member {name} would be written through existing symlink {link}")]
    DestinationSymlink {
        /// Member name.
        name: String,
        /// The existing symlink, relative to the destination.
        link: String,
    },
    /// The destination exists and is not a directory.
    #[error("archive destination is not a directory: {0}")]
    DestinationNotDirectory(PathBuf),
    /// The path to pack does not exist.
    #[error("path to archive does not exist: {0}")]
    NotFound(PathBuf),
    /// The path to pack is not a file, directory or symlink.
    #[error("can only archive files, directories and symlinks: {0}")]
    UnsupportedFileType(PathBuf),
    /// The archive holds more members than the entry cap allows.
    #[error("archive holds more than {max} members (the entry cap)")]
    TooManyEntries {
        /// The cap.
        max: u64,
    },
    /// An I/O error on a path.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl ArchiveError {
    /// Protocol error category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ArchiveError::AbsoluteName(_)
            | ArchiveError::ParentComponent(_)
            | ArchiveError::AbsoluteSymlink { .. }
            | ArchiveError::SymlinkEscape { .. }
            | ArchiveError::ThroughSymlink { .. }
            | ArchiveError::DestinationSymlink { .. } => ErrorKind::PathEscape,
            ArchiveError::Malformed(_)
            | ArchiveError::EmptyName
            | ArchiveError::HardLink(_)
            | ArchiveError::UnsupportedMember { .. }
            | ArchiveError::Conflict { .. }
            | ArchiveError::Duplicate(_)
            | ArchiveError::DestinationConflict { .. } => ErrorKind::Invalid,
            ArchiveError::DestinationNotDirectory(_) | ArchiveError::UnsupportedFileType(_) => {
                ErrorKind::WrongType
            }
            ArchiveError::NotFound(_) => ErrorKind::NotFound,
            ArchiveError::TooManyEntries { .. } => ErrorKind::TooLarge,
            ArchiveError::Io { .. } => ErrorKind::Io,
        }
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ArchiveError + 'a {
    move |source| ArchiveError::Io { op, path: path.to_path_buf(), source }
}

// ---------------------------------------------------------------------------------------
// Packing

/// Pack `path` (not followed if it is a symlink) into a tar archive.
///
/// A directory yields its children with relative names (pre-order, sorted, directories
/// included); a file or symlink yields one member named after its final component.
/// Returns the archive, the type of `path`, and the stats (`entry_count` = members,
/// `bytes_written` = sum of regular file sizes).
pub fn pack_path(path: &Path) -> Result<(Vec<u8>, ArtifactType, ArchiveStats), ArchiveError> {
    pack_path_to(path, Vec::new())
}

/// [`pack_path`] into any writer (a spool file for chunked transfers), so the archive
/// never has to fit in memory. Returns the writer, the type of `path` and the stats.
pub fn pack_path_to<W: Write>(
    path: &Path,
    out: W,
) -> Result<(W, ArtifactType, ArchiveStats), ArchiveError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ArchiveError::NotFound(path.to_path_buf()));
        }
        Err(e) => return Err(io_err("stat", path)(e)),
    };
    let mut packer = Packer::new(out);
    let artifact_type = if meta.is_dir() {
        packer.add_dir_contents(path, Path::new(""))?;
        ArtifactType::Directory
    } else {
        let name = path
            .file_name()
            .ok_or_else(|| ArchiveError::UnsupportedFileType(path.to_path_buf()))?;
        match packer.add(path, Path::new(name), &meta)? {
            Some(t) => t,
            None => return Err(ArchiveError::UnsupportedFileType(path.to_path_buf())),
        }
    };
    let bytes = packer.builder.into_inner().map_err(io_err("finish archive of", path))?;
    Ok((bytes, artifact_type, packer.stats))
}

/// Pack the listed paths of `root` (relative, `/`-separated, as `git ls-files` prints
/// them) in the given order, each preceded by the directories leading to it. Entries
/// that no longer exist are skipped (a tracked file deleted in the working tree);
/// directories and special files among `paths` are skipped too, so only files and
/// symlinks are taken from the list. Returns the tar and its stats.
///
/// Used for project sources, which seed only a checkout's tracked files. Unreadable
/// files among `paths` are an error naming the file.
pub fn pack_selected(
    root: &Path,
    paths: &[String],
) -> Result<(Vec<u8>, ArchiveStats), ArchiveError> {
    let mut packer = Packer::new(Vec::new());
    let mut dirs: std::collections::BTreeSet<PathBuf> = std::collections::BTreeSet::new();
    for rel in paths {
        let rel_path = Path::new(rel);
        if rel_path.is_absolute()
            || rel_path.components().any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(ArchiveError::UnsupportedFileType(rel_path.to_path_buf()));
        }
        let host = root.join(rel_path);
        let meta = match fs::symlink_metadata(&host) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err("stat", &host)(e)),
        };
        if !(meta.file_type().is_file() || meta.file_type().is_symlink()) {
            continue;
        }
        let mut prefix = PathBuf::new();
        if let Some(parent) = rel_path.parent() {
            for component in parent.components() {
                prefix.push(component);
                if dirs.insert(prefix.clone()) {
                    let dir_host = root.join(&prefix);
                    let dir_meta =
                        fs::symlink_metadata(&dir_host).map_err(io_err("stat", &dir_host))?;
                    if !dir_meta.is_dir() {
                        return Err(ArchiveError::UnsupportedFileType(dir_host));
                    }
                    packer.add(&dir_host, &prefix, &dir_meta)?;
                }
            }
        }
        packer.add(&host, rel_path, &meta)?;
    }
    let bytes = packer.builder.into_inner().map_err(io_err("finish archive of", root))?;
    Ok((bytes, packer.stats))
}

/// What [`survey_dir`] found: what [`pack_path_to`] of the same directory would write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Survey {
    /// Length of the archive in bytes (headers, GNU long-name members, padded data and
    /// the end-of-archive blocks).
    pub archive_bytes: u64,
    /// The stats packing would report.
    pub stats: ArchiveStats,
}

/// Walk the directory `dir` exactly as [`pack_path_to`] packs it, with `lstat` only
/// (file contents are never opened, symlinks never followed), and return what the
/// archive would be: its length and stats, so limits can be checked before anything
/// is packed. `inspect` sees every entry the walk meets with its `lstat` data,
/// including the special files packing skips (not `dir` itself).
///
/// The length is exact for an unchanged tree: the headers come from the same `tar`
/// builder into a counting sink, and each file adds its size padded to 512 bytes.
pub fn survey_dir(dir: &Path, inspect: Inspect<'_>) -> Result<Survey, ArchiveError> {
    let mut packer = Packer::new(ByteCounter(0));
    packer.measure = Some(0);
    packer.inspect = Some(inspect);
    packer.add_dir_contents(dir, Path::new(""))?;
    let data = packer.measure.unwrap_or(0);
    let stats = packer.stats;
    let counter = packer.builder.into_inner().map_err(io_err("finish archive of", dir))?;
    Ok(Survey { archive_bytes: counter.0 + data, stats })
}

/// Sees each entry a directory walk meets, with its `lstat` data.
pub type Inspect<'a> = &'a mut dyn FnMut(&Path, &fs::Metadata);

/// A writer that only counts the bytes written to it.
struct ByteCounter(u64);

impl Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Packer<'a, W: Write> {
    builder: tar::Builder<W>,
    stats: ArchiveStats,
    /// Surveying ([`survey_dir`]): file data is not read; the padded length it would
    /// take is summed here instead.
    measure: Option<u64>,
    /// Sees every entry met while walking a directory.
    inspect: Option<Inspect<'a>>,
}

impl<'a, W: Write> Packer<'a, W> {
    fn new(out: W) -> Self {
        Packer {
            builder: tar::Builder::new(out),
            stats: ArchiveStats::default(),
            measure: None,
            inspect: None,
        }
    }

    fn add_dir_contents(&mut self, dir: &Path, rel: &Path) -> Result<(), ArchiveError> {
        let mut names: Vec<OsString> = fs::read_dir(dir)
            .map_err(io_err("read directory", dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_err("read directory", dir))?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let host = dir.join(&name);
            let child_rel = rel.join(&name);
            let meta = match fs::symlink_metadata(&host) {
                Ok(meta) => meta,
                // Removed while we were walking: leave it out.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("stat", &host)(e)),
            };
            if let Some(inspect) = self.inspect.as_mut() {
                inspect(&host, &meta);
            }
            if self.add(&host, &child_rel, &meta)? == Some(ArtifactType::Directory) {
                self.add_dir_contents(&host, &child_rel)?;
            }
        }
        Ok(())
    }

    /// Add one member for `host` (not its contents). Returns `None` for skipped types.
    fn add(
        &mut self,
        host: &Path,
        rel: &Path,
        meta: &fs::Metadata,
    ) -> Result<Option<ArtifactType>, ArchiveError> {
        let mut header = tar::Header::new_gnu();
        header.set_mode(meta.mode() & 0o7777);
        header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
        header.set_uid(0);
        header.set_gid(0);
        let file_type = meta.file_type();
        let artifact_type = if file_type.is_symlink() {
            let target = fs::read_link(host).map_err(io_err("read link", host))?;
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            self.builder
                .append_link(&mut header, rel, &target)
                .map_err(io_err("archive symlink", host))?;
            self.stats.symlink_count += 1;
            ArtifactType::Symlink
        } else if file_type.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            self.builder
                .append_data(&mut header, rel, io::empty())
                .map_err(io_err("archive directory", host))?;
            ArtifactType::Directory
        } else if let (true, Some(measured)) = (file_type.is_file(), self.measure.as_mut()) {
            let len = meta.len();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(len);
            self.builder
                .append_data(&mut header, rel, io::empty())
                .map_err(io_err("archive file", host))?;
            *measured += len.div_ceil(512) * 512;
            self.stats.bytes_written += len;
            ArtifactType::File
        } else if file_type.is_file() {
            // Stream the file at the size it had when opened, zero-padded if it shrinks
            // meanwhile, so the header size always matches the data without holding
            // the whole file in memory.
            let (file, len) = open_regular_nofollow(host)?;
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(len);
            let data = file.take(len).chain(io::repeat(0)).take(len);
            self.builder
                .append_data(&mut header, rel, data)
                .map_err(io_err("archive file", host))?;
            self.stats.bytes_written += len;
            ArtifactType::File
        } else {
            return Ok(None);
        };
        self.stats.entry_count += 1;
        Ok(Some(artifact_type))
    }
}

fn open_regular_nofollow(path: &Path) -> Result<(File, u64), ArchiveError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(io_err("open", path))?;
    let meta = file.metadata().map_err(io_err("stat", path))?;
    if !meta.is_file() {
        return Err(ArchiveError::UnsupportedFileType(path.to_path_buf()));
    }
    Ok((file, meta.len()))
}

// ---------------------------------------------------------------------------------------
// Validation

/// What a checked member will create.
#[derive(Debug, Clone, PartialEq, Eq)]
enum MemberKind {
    /// The destination directory itself (`./`): nothing to create.
    Root,
    Directory,
    /// Regular file whose data is `len` bytes at `offset` of the archive.
    File {
        offset: u64,
        len: u64,
    },
    Symlink {
        target: PathBuf,
    },
}

#[derive(Debug)]
struct Member {
    /// Normalised relative path (no `.`, `..` or root components).
    path: PathBuf,
    kind: MemberKind,
    mode: u32,
    mtime: u64,
}

/// A fully checked archive: members in archive order plus stats.
#[derive(Debug)]
struct Plan {
    members: Vec<Member>,
    stats: ArchiveStats,
    links: LinkTargets,
}

fn display(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Check every member of `bytes` against the rules in the module docs without
/// touching the file system. Returns the stats unpacking would report.
pub fn validate_archive(bytes: &[u8]) -> Result<ArchiveStats, ArchiveError> {
    plan(Cursor::new(bytes), LinkTargets::Contained, DEFAULT_MAX_ENTRIES).map(|plan| plan.stats)
}

/// Default cap on the members of one archive: fits real repositories (a large
/// monorepo checkout with its `.git` and `node_modules` holds a few hundred thousand).
pub const DEFAULT_MAX_ENTRIES: u64 = 1_000_000;

/// [`validate_archive_with`] reading from a file (or any seekable reader), so the
/// archive never has to be in memory, with a cap on its member count.
pub fn validate_reader<R: Read + Seek>(
    reader: R,
    links: LinkTargets,
    max_entries: u64,
) -> Result<ArchiveStats, ArchiveError> {
    plan(reader, links, max_entries).map(|plan| plan.stats)
}

/// [`validate_archive`] with a choice of which symlink targets are accepted.
pub fn validate_archive_with(
    bytes: &[u8],
    links: LinkTargets,
) -> Result<ArchiveStats, ArchiveError> {
    plan(Cursor::new(bytes), links, DEFAULT_MAX_ENTRIES).map(|plan| plan.stats)
}

fn plan<R: Read + Seek>(
    mut reader: R,
    links: LinkTargets,
    max_entries: u64,
) -> Result<Plan, ArchiveError> {
    let total_len = reader.seek(SeekFrom::End(0)).map_err(ArchiveError::Malformed)?;
    reader.seek(SeekFrom::Start(0)).map_err(ArchiveError::Malformed)?;
    let mut archive = tar::Archive::new(reader);
    let mut members = Vec::new();
    let mut stats = ArchiveStats::default();
    for entry in archive.entries_with_seek().map_err(ArchiveError::Malformed)? {
        let entry = entry.map_err(ArchiveError::Malformed)?;
        if stats.entry_count >= max_entries {
            return Err(ArchiveError::TooManyEntries { max: max_entries });
        }
        let entry_type = entry.header().entry_type();
        if entry_type == tar::EntryType::XGlobalHeader {
            continue;
        }
        let raw_name = entry.path_bytes();
        let shown = String::from_utf8_lossy(&raw_name).into_owned();
        let path = normalise_member_name(&raw_name)?;
        let mode = entry.header().mode().map_err(ArchiveError::Malformed)? & 0o7777;
        let mtime = entry.header().mtime().unwrap_or(0);
        let kind = match entry_type {
            tar::EntryType::Directory => MemberKind::Directory,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let (offset, len) = (entry.raw_file_position(), entry.size());
                match offset.checked_add(len) {
                    Some(end) if end <= total_len => MemberKind::File { offset, len },
                    _ => {
                        return Err(ArchiveError::Malformed(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("data of member {shown} runs past the end of the archive"),
                        )))
                    }
                }
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
                if target.is_empty() {
                    return Err(ArchiveError::Malformed(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("symlink member {shown} has an empty target"),
                    )));
                }
                MemberKind::Symlink { target: PathBuf::from(OsStr::from_bytes(&target)) }
            }
            tar::EntryType::Link => return Err(ArchiveError::HardLink(shown)),
            other => {
                return Err(ArchiveError::UnsupportedMember {
                    name: shown,
                    kind: entry_type_name(other),
                })
            }
        };
        let kind = if path.as_os_str().is_empty() {
            if kind != MemberKind::Directory {
                return Err(ArchiveError::EmptyName);
            }
            MemberKind::Root
        } else {
            kind
        };
        stats.entry_count += 1;
        match kind {
            MemberKind::File { len, .. } => stats.bytes_written += len,
            MemberKind::Symlink { .. } => stats.symlink_count += 1,
            _ => {}
        }
        members.push(Member { path, kind, mode, mtime });
    }
    check_members(&members, links)?;
    Ok(Plan { members, stats, links })
}

fn entry_type_name(t: tar::EntryType) -> String {
    match t {
        tar::EntryType::Char => "character device".into(),
        tar::EntryType::Block => "block device".into(),
        tar::EntryType::Fifo => "fifo".into(),
        tar::EntryType::GNUSparse => "sparse file".into(),
        other => format!("{:?} ({:?})", other, char::from(other.as_byte())),
    }
}

/// Normalise a member name: refuse absolute names and `..`, drop `.` components.
fn normalise_member_name(raw: &[u8]) -> Result<PathBuf, ArchiveError> {
    let shown = || String::from_utf8_lossy(raw).into_owned();
    if raw.is_empty() {
        return Err(ArchiveError::EmptyName);
    }
    if raw.starts_with(b"/") {
        return Err(ArchiveError::AbsoluteName(shown()));
    }
    let mut out = PathBuf::new();
    for component in Path::new(OsStr::from_bytes(raw)).components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => return Err(ArchiveError::ParentComponent(shown())),
            Component::RootDir | Component::Prefix(_) => {
                return Err(ArchiveError::AbsoluteName(shown()))
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Declared {
    Directory,
    File,
    Symlink,
}

fn check_members(members: &[Member], links: LinkTargets) -> Result<(), ArchiveError> {
    let mut declared: HashMap<&Path, Declared> = HashMap::new();
    for m in members {
        let d = match m.kind {
            MemberKind::Root => continue,
            MemberKind::Directory => Declared::Directory,
            MemberKind::File { .. } => Declared::File,
            MemberKind::Symlink { .. } => Declared::Symlink,
        };
        match declared.get(m.path.as_path()) {
            None => {
                declared.insert(&m.path, d);
            }
            Some(Declared::Directory) if d == Declared::Directory => {}
            Some(prev) if *prev == d => return Err(ArchiveError::Duplicate(display(&m.path))),
            Some(_) => return Err(ArchiveError::Conflict { name: display(&m.path) }),
        }
    }
    let symlinks: HashSet<&Path> =
        declared.iter().filter(|(_, d)| **d == Declared::Symlink).map(|(p, _)| *p).collect();
    for m in members {
        // Every proper ancestor is implicitly a directory: it must not be declared as a
        // symlink (writing through it) or a file.
        for ancestor in m.path.ancestors().skip(1) {
            if ancestor.as_os_str().is_empty() {
                break;
            }
            match declared.get(ancestor) {
                Some(Declared::Symlink) => {
                    return Err(ArchiveError::ThroughSymlink {
                        name: display(&m.path),
                        link: display(ancestor),
                    })
                }
                Some(Declared::File) => {
                    return Err(ArchiveError::Conflict { name: display(ancestor) })
                }
                _ => {}
            }
        }
        if let MemberKind::Symlink { target } = &m.kind {
            if links == LinkTargets::Contained {
                check_symlink_target(&m.path, target, |p| symlinks.contains(p))?;
            }
        }
    }
    Ok(())
}

/// Resolve `target` lexically from the directory of `link` (both relative to the
/// destination) and refuse it if it leaves the destination or steps through a path for
/// which `is_symlink` is true.
fn check_symlink_target(
    link: &Path,
    target: &Path,
    mut is_symlink: impl FnMut(&Path) -> bool,
) -> Result<(), ArchiveError> {
    let escape = || ArchiveError::SymlinkEscape { name: display(link), target: display(target) };
    if target.as_os_str().as_bytes().starts_with(b"/") {
        return Err(ArchiveError::AbsoluteSymlink { name: display(link), target: display(target) });
    }
    let mut location: PathBuf = link.parent().map(Path::to_path_buf).unwrap_or_default();
    for component in target.components() {
        if !location.as_os_str().is_empty() && is_symlink(&location) {
            return Err(ArchiveError::ThroughSymlink {
                name: display(link),
                link: display(&location),
            });
        }
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !location.pop() {
                    return Err(escape());
                }
            }
            Component::Normal(c) => location.push(c),
            Component::RootDir | Component::Prefix(_) => return Err(escape()),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Unpacking

/// Which symlink targets an unpack accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkTargets {
    /// Relative targets that stay inside the destination (the guest's imports).
    #[default]
    Contained,
    /// Any target, kept verbatim as a link (host exports of a guest tree: links are
    /// data there, never followed or written through).
    Kept,
}

/// Validate `bytes` completely, then unpack it into `dest` (created if missing; if
/// `replace`, emptied first). `dest` itself is trusted and may be reached through a
/// symlink; nothing below it is ever written through one.
///
/// Nothing is written when validation fails. An I/O error during extraction can leave
/// a partly unpacked tree.
pub fn unpack_into(bytes: &[u8], dest: &Path, replace: bool) -> Result<ArchiveStats, ArchiveError> {
    unpack_into_with(bytes, dest, replace, LinkTargets::Contained)
}

/// [`unpack_into`] with a choice of which symlink targets are accepted.
pub fn unpack_into_with(
    bytes: &[u8],
    dest: &Path,
    replace: bool,
    links: LinkTargets,
) -> Result<ArchiveStats, ArchiveError> {
    unpack_from(Cursor::new(bytes), dest, replace, links, DEFAULT_MAX_ENTRIES)
}

/// [`unpack_into_with`] reading the archive from a file (or any seekable reader): the
/// archive is checked completely first, then extracted member by member, so memory
/// stays bounded by the member list, not the archive size. At most `max_entries`
/// members are accepted.
pub fn unpack_from<R: Read + Seek>(
    mut reader: R,
    dest: &Path,
    replace: bool,
    links: LinkTargets,
    max_entries: u64,
) -> Result<ArchiveStats, ArchiveError> {
    let plan = plan(&mut reader, links, max_entries)?;
    match fs::metadata(dest) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(ArchiveError::DestinationNotDirectory(dest.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("stat", dest)(e)),
    }
    if !replace {
        check_against_destination(&plan, dest)?;
    }
    fs::create_dir_all(dest).map_err(io_err("create directory", dest))?;
    if replace {
        empty_dir(dest)?;
    }
    extract(&plan, &mut reader, dest)?;
    Ok(plan.stats)
}

/// Remove every entry inside `dir` (not `dir` itself), never following symlinks.
pub(crate) fn empty_dir(dir: &Path) -> Result<(), ArchiveError> {
    for entry in fs::read_dir(dir).map_err(io_err("read directory", dir))? {
        let entry = entry.map_err(io_err("read directory", dir))?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(io_err("stat", &path))?;
        if file_type.is_dir() {
            fs::remove_dir_all(&path).map_err(io_err("remove", &path))?;
        } else {
            fs::remove_file(&path).map_err(io_err("remove", &path))?;
        }
    }
    Ok(())
}

/// Lstat `dest/rel`; `None` when missing.
fn lstat_in(dest: &Path, rel: &Path) -> Result<Option<fs::Metadata>, ArchiveError> {
    let path = dest.join(rel);
    match fs::symlink_metadata(&path) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        // An ancestor is a file: the ancestor check reports it.
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(None),
        Err(e) => Err(io_err("stat", &path)(e)),
    }
}

/// Check members against what already exists below `dest`.
fn check_against_destination(plan: &Plan, dest: &Path) -> Result<(), ArchiveError> {
    let mut existing_symlinks: HashMap<PathBuf, bool> = HashMap::new();
    for m in &plan.members {
        if m.kind == MemberKind::Root {
            continue;
        }
        let mut ancestors: Vec<&Path> =
            m.path.ancestors().skip(1).filter(|a| !a.as_os_str().is_empty()).collect();
        ancestors.reverse();
        for ancestor in ancestors {
            match lstat_in(dest, ancestor)? {
                None => break,
                Some(meta) if meta.file_type().is_symlink() => {
                    return Err(ArchiveError::DestinationSymlink {
                        name: display(&m.path),
                        link: display(ancestor),
                    })
                }
                Some(meta) if !meta.is_dir() => {
                    return Err(ArchiveError::DestinationConflict { name: display(&m.path) })
                }
                Some(_) => {}
            }
        }
        if let Some(meta) = lstat_in(dest, &m.path)? {
            let ok = match m.kind {
                MemberKind::Directory => meta.is_dir(),
                // Files and symlinks replace existing files and symlinks, never dirs.
                _ => !meta.is_dir(),
            };
            if !ok {
                if meta.file_type().is_symlink() {
                    return Err(ArchiveError::DestinationSymlink {
                        name: display(&m.path),
                        link: display(&m.path),
                    });
                }
                return Err(ArchiveError::DestinationConflict { name: display(&m.path) });
            }
        }
        if let (MemberKind::Symlink { target }, LinkTargets::Contained) = (&m.kind, plan.links) {
            let mut failure = None;
            check_symlink_target(&m.path, target, |p| {
                if let Some(known) = existing_symlinks.get(p) {
                    return *known;
                }
                let is_link = match lstat_in(dest, p) {
                    Ok(meta) => meta.is_some_and(|m| m.file_type().is_symlink()),
                    Err(e) => {
                        failure = Some(e);
                        true
                    }
                };
                existing_symlinks.insert(p.to_path_buf(), is_link);
                is_link
            })
            .map_err(|e| failure.take().unwrap_or(e))?;
        }
    }
    Ok(())
}

fn extract<R: Read + Seek>(plan: &Plan, reader: &mut R, dest: &Path) -> Result<(), ArchiveError> {
    let mut dirs: Vec<(&Member, PathBuf)> = Vec::new();
    for m in &plan.members {
        if m.kind == MemberKind::Root {
            continue;
        }
        let target = dest.join(&m.path);
        create_ancestors(dest, &m.path)?;
        match &m.kind {
            MemberKind::Root => {}
            MemberKind::Directory => {
                match fs::symlink_metadata(&target) {
                    Ok(meta) if meta.is_dir() => {}
                    Ok(_) => {
                        return Err(ArchiveError::DestinationConflict { name: display(&m.path) })
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        fs::create_dir(&target).map_err(io_err("create directory", &target))?;
                    }
                    Err(e) => return Err(io_err("stat", &target)(e)),
                }
                dirs.push((m, target));
            }
            MemberKind::File { offset, len } => {
                remove_non_dir(&target, &m.path)?;
                let out_of_range = || {
                    ArchiveError::Malformed(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "member data out of range",
                    ))
                };
                reader.seek(SeekFrom::Start(*offset)).map_err(|_| out_of_range())?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&target)
                    .map_err(io_err("create", &target))?;
                let copied = io::copy(&mut reader.by_ref().take(*len), &mut file)
                    .map_err(io_err("write", &target))?;
                if copied != *len {
                    return Err(out_of_range());
                }
                file.set_permissions(fs::Permissions::from_mode(safe_mode(m.mode)))
                    .map_err(io_err("chmod", &target))?;
                set_mtime(&file, m.mtime);
            }
            MemberKind::Symlink { target: link_target } => {
                remove_non_dir(&target, &m.path)?;
                std::os::unix::fs::symlink(link_target, &target)
                    .map_err(io_err("create symlink", &target))?;
                set_symlink_mtime(&target, m.mtime);
            }
        }
    }
    // Directory modes and times last, deepest first, so a read-only directory does not
    // block its own contents and creating children does not bump its mtime afterwards.
    for (m, path) in dirs.iter().rev() {
        fs::set_permissions(path, fs::Permissions::from_mode(safe_mode(m.mode)))
            .map_err(io_err("chmod", path))?;
        if let Ok(dir) = File::open(path) {
            set_mtime(&dir, m.mtime);
        }
    }
    Ok(())
}

/// Drop set-user-id and set-group-id bits.
fn safe_mode(mode: u32) -> u32 {
    mode & 0o1777
}

fn set_mtime(file: &File, mtime: u64) {
    let time = UNIX_EPOCH + Duration::from_secs(mtime);
    // Best effort: a file system without timestamps support is not a failure.
    let _ = file.set_times(fs::FileTimes::new().set_modified(time).set_accessed(SystemTime::now()));
}

/// The mtime of the symlink itself (never its target), as `mke2fs -d` copies it from a
/// source tree: a seed staged through an archive and one read straight from the host
/// directory then give the guest the same times. Best effort, like [`set_mtime`].
fn set_symlink_mtime(link: &Path, mtime: u64) {
    let mtime = filetime::FileTime::from_unix_time(i64::try_from(mtime).unwrap_or(0), 0);
    let _ = filetime::set_symlink_file_times(link, filetime::FileTime::now(), mtime);
}

/// Create the missing ancestors of `dest/rel` as real directories.
fn create_ancestors(dest: &Path, rel: &Path) -> Result<(), ArchiveError> {
    let mut current = dest.to_path_buf();
    let Some(parent) = rel.parent() else { return Ok(()) };
    for component in parent.components() {
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(ArchiveError::DestinationSymlink {
                    name: display(rel),
                    link: display(current.strip_prefix(dest).unwrap_or(&current)),
                })
            }
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(ArchiveError::DestinationConflict { name: display(rel) }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&current).map_err(io_err("create directory", &current))?;
            }
            Err(e) => return Err(io_err("stat", &current)(e)),
        }
    }
    Ok(())
}

/// Remove an existing file or symlink at `path` so a member can take its place.
fn remove_non_dir(path: &Path, rel: &Path) -> Result<(), ArchiveError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Err(ArchiveError::DestinationConflict { name: display(rel) }),
        Ok(_) => fs::remove_file(path).map_err(io_err("remove", path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("stat", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Build an archive from raw members, bypassing the tar crate's own path checks.
    fn raw_archive(members: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind, data, link) in members {
            let mut header = tar::Header::new_gnu();
            {
                let gnu = header.as_gnu_mut().expect("gnu header");
                gnu.name[..name.len()].copy_from_slice(name.as_bytes());
                if let Some(link) = link {
                    gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
                }
            }
            header.set_entry_type(*kind);
            header.set_mode(0o644);
            header.set_size(data.len() as u64);
            header.set_cksum();
            builder.append(&header, *data).expect("append");
        }
        builder.into_inner().expect("finish")
    }

    fn file(
        name: &str,
        data: &'static [u8],
    ) -> (String, tar::EntryType, &'static [u8], Option<String>) {
        (name.to_owned(), tar::EntryType::Regular, data, None)
    }

    fn build(members: &[(String, tar::EntryType, &'static [u8], Option<String>)]) -> Vec<u8> {
        let refs: Vec<(&str, tar::EntryType, &[u8], Option<&str>)> =
            members.iter().map(|(n, k, d, l)| (n.as_str(), *k, *d, l.as_deref())).collect();
        raw_archive(&refs)
    }

    fn symlink(
        name: &str,
        target: &str,
    ) -> (String, tar::EntryType, &'static [u8], Option<String>) {
        (name.to_owned(), tar::EntryType::Symlink, b"", Some(target.to_owned()))
    }

    fn dir(name: &str) -> (String, tar::EntryType, &'static [u8], Option<String>) {
        (name.to_owned(), tar::EntryType::Directory, b"", None)
    }

    #[test]
    fn member_names_are_normalised() {
        assert_eq!(normalise_member_name(b"./a/./b/").expect("ok"), PathBuf::from("a/b"));
        assert_eq!(normalise_member_name(b"./").expect("ok"), PathBuf::new());
        assert!(matches!(normalise_member_name(b"/etc/x"), Err(ArchiveError::AbsoluteName(_))));
        assert!(matches!(
            normalise_member_name(b"a/../../x"),
            Err(ArchiveError::ParentComponent(_))
        ));
        assert!(matches!(normalise_member_name(b"a/.."), Err(ArchiveError::ParentComponent(_))));
    }

    #[test]
    fn symlink_targets_are_resolved_lexically() {
        let never = |_: &Path| false;
        assert!(check_symlink_target(Path::new("a/l"), Path::new("../b"), never).is_ok());
        assert!(check_symlink_target(Path::new("a/l"), Path::new("./x/../y"), never).is_ok());
        assert!(check_symlink_target(Path::new("l"), Path::new(".."), never).is_err());
        assert!(check_symlink_target(Path::new("a/l"), Path::new("../../b"), never).is_err());
        assert!(check_symlink_target(Path::new("a/l"), Path::new("x/../../.."), never).is_err());
        assert!(matches!(
            check_symlink_target(Path::new("l"), Path::new("/etc"), never),
            Err(ArchiveError::AbsoluteSymlink { .. })
        ));
        // `s` is a symlink: stepping through it is refused even if lexically inside.
        let s_is_link = |p: &Path| p == Path::new("s");
        assert!(matches!(
            check_symlink_target(Path::new("t"), Path::new("s/x"), s_is_link),
            Err(ArchiveError::ThroughSymlink { .. })
        ));
        // Pointing *at* a symlink is fine.
        assert!(check_symlink_target(Path::new("t"), Path::new("s"), s_is_link).is_ok());
    }

    #[test]
    fn validate_rejects_every_kind_of_slip() {
        let cases: Vec<(Vec<_>, ErrorKind)> = vec![
            (vec![file("/etc/evil", b"x")], ErrorKind::PathEscape),
            (vec![file("../evil", b"x")], ErrorKind::PathEscape),
            (vec![file("a/../../evil", b"x")], ErrorKind::PathEscape),
            (vec![symlink("l", "/etc")], ErrorKind::PathEscape),
            (vec![symlink("l", "../outside")], ErrorKind::PathEscape),
            (vec![symlink("l", "."), file("l/x", b"x")], ErrorKind::PathEscape),
            // The symlink comes after the member that would go through it.
            (vec![file("l/x", b"x"), symlink("l", "d")], ErrorKind::PathEscape),
            // t -> s/.. where s -> .. : lexically inside, really outside.
            (vec![symlink("d/s", ".."), symlink("d/t", "s/..")], ErrorKind::PathEscape),
            (
                vec![(String::from("h"), tar::EntryType::Link, b"" as &[u8], Some("etc".into()))],
                ErrorKind::Invalid,
            ),
            (
                vec![(String::from("p"), tar::EntryType::Fifo, b"" as &[u8], None)],
                ErrorKind::Invalid,
            ),
            (
                vec![(String::from("c"), tar::EntryType::Char, b"" as &[u8], None)],
                ErrorKind::Invalid,
            ),
            (vec![file("f", b"x"), dir("f")], ErrorKind::Invalid),
            (vec![file("f", b"x"), file("f/g", b"y")], ErrorKind::Invalid),
            (vec![file("f", b"x"), file("f", b"y")], ErrorKind::Invalid),
        ];
        for (members, kind) in cases {
            let bytes = build(&members);
            let err = validate_archive(&bytes).expect_err(&format!("{members:?}"));
            assert_eq!(err.kind(), kind, "{members:?}: {err}");
        }
    }

    #[test]
    fn validate_accepts_a_normal_tree_and_counts() {
        let bytes = build(&[
            dir("./"),
            dir("a"),
            file("a/f", b"hello"),
            symlink("a/l", "f"),
            symlink("up", "a/../a/f"),
            file("g", b"xy"),
            dir("a"),
        ]);
        let stats = validate_archive(&bytes).expect("valid");
        assert_eq!(stats, ArchiveStats { entry_count: 7, bytes_written: 7, symlink_count: 2 });
    }

    #[test]
    fn rejected_archives_write_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("dest");
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).expect("mkdir");
        let bytes =
            build(&[file("ok-first", b"1"), symlink("esc", "../outside"), file("esc/pwned", b"x")]);
        assert!(unpack_into(&bytes, &dest, false).is_err());
        assert!(!dest.exists(), "destination must not even be created");
        assert_eq!(fs::read_dir(&outside).expect("ls").count(), 0);
    }

    #[test]
    fn unpack_refuses_existing_symlinks_in_the_destination() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("dest");
        let outside = dir.path().join("outside");
        fs::create_dir_all(&dest).expect("mkdir");
        fs::create_dir(&outside).expect("mkdir");
        std::os::unix::fs::symlink(&outside, dest.join("link")).expect("symlink");
        let bytes = build(&[file("first", b"1"), file("link/x", b"x")]);
        let err = unpack_into(&bytes, &dest, false).expect_err("through existing symlink");
        assert_eq!(err.kind(), ErrorKind::PathEscape, "{err}");
        assert!(!dest.join("first").exists());
        assert_eq!(fs::read_dir(&outside).expect("ls").count(), 0);
        // A new symlink whose target steps through the existing one is refused too.
        let bytes = build(&[symlink("t", "link/..")]);
        assert_eq!(
            unpack_into(&bytes, &dest, false).expect_err("through").kind(),
            ErrorKind::PathEscape
        );
        // With replace the old tree (and its symlink) is gone first.
        let bytes = build(&[file("link/x", b"x")]);
        unpack_into(&bytes, &dest, true).expect("replace");
        assert!(dest.join("link").symlink_metadata().expect("lstat").is_dir());
        assert_eq!(fs::read_dir(&outside).expect("ls").count(), 0);
    }

    #[test]
    fn pack_then_unpack_round_trips_modes_and_symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("b/c")).expect("mkdir");
        fs::write(src.join("b/c/run.sh"), b"#!/bin/sh\n").expect("write");
        fs::set_permissions(src.join("b/c/run.sh"), fs::Permissions::from_mode(0o750))
            .expect("chmod");
        fs::write(src.join("a.txt"), b"abc").expect("write");
        fs::write(src.join("b.txt"), b"").expect("write");
        std::os::unix::fs::symlink("b/c/run.sh", src.join("z-link")).expect("symlink");
        let when = filetime::FileTime::from_unix_time(1_500_000_000, 0);
        filetime::set_symlink_file_times(src.join("z-link"), when, when).expect("lutimes");

        let (bytes, kind, stats) = pack_path(&src).expect("pack");
        assert_eq!(kind, ArtifactType::Directory);
        assert_eq!(stats, ArchiveStats { entry_count: 6, bytes_written: 13, symlink_count: 1 });
        let names: Vec<String> = tar::Archive::new(bytes.as_slice())
            .entries()
            .expect("entries")
            .map(|e| display(&e.expect("entry").path().expect("path")))
            .collect();
        assert_eq!(names, ["a.txt", "b", "b/c", "b/c/run.sh", "b.txt", "z-link"]);

        let dest = dir.path().join("dest");
        assert_eq!(unpack_into(&bytes, &dest, false).expect("unpack"), stats);
        let meta = fs::metadata(dest.join("b/c/run.sh")).expect("stat");
        assert_eq!(meta.permissions().mode() & 0o7777, 0o750);
        assert_eq!(fs::read_link(dest.join("z-link")).expect("link"), PathBuf::from("b/c/run.sh"));
        let link = fs::symlink_metadata(dest.join("z-link")).expect("lstat");
        assert_eq!(link.mtime(), 1_500_000_000, "the link's own mtime is kept");
        assert_eq!(fs::read(dest.join("a.txt")).expect("read"), b"abc");

        // A single symlink packs as one member named after it.
        let (bytes, kind, stats) = pack_path(&src.join("z-link")).expect("pack");
        assert_eq!(kind, ArtifactType::Symlink);
        assert_eq!(stats, ArchiveStats { entry_count: 1, bytes_written: 0, symlink_count: 1 });
        let mut archive = tar::Archive::new(bytes.as_slice());
        let entry = archive.entries().expect("entries").next().expect("one").expect("entry");
        assert_eq!(entry.path().expect("path").as_ref(), Path::new("z-link"));
        assert_eq!(entry.header().entry_type(), tar::EntryType::Symlink);
    }

    #[test]
    fn unpack_replaces_files_but_not_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path();
        fs::write(dest.join("f"), b"old").expect("write");
        fs::create_dir(dest.join("d")).expect("mkdir");
        let bytes = build(&[file("f", b"new")]);
        unpack_into(&bytes, dest, false).expect("unpack");
        assert_eq!(fs::read(dest.join("f")).expect("read"), b"new");
        let bytes = build(&[file("d", b"x")]);
        let err = unpack_into(&bytes, dest, false).expect_err("dir in the way");
        assert_eq!(err.kind(), ErrorKind::Invalid);
        assert!(dest.join("d").is_dir());
    }

    #[test]
    fn malformed_bytes_are_invalid() {
        let err = validate_archive(&[1u8; 700]).expect_err("garbage");
        assert_eq!(err.kind(), ErrorKind::Invalid);
        // An empty archive (just the end marker) is fine.
        assert_eq!(validate_archive(&[0u8; 1024]).expect("empty"), ArchiveStats::default());
    }
}
