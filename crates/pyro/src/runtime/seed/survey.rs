//! The pre-walk of a directory seed: what its archive would be (length and stats, for
//! the limits) and whether `mke2fs -d` reading the directory itself makes the same
//! baseline as unpacking that archive into a staging tree first (see
//! docs/architecture.md, "Seeding a volume straight from the directory").
//!
//! The staging path normalises a tree while it is packed and unpacked: special files are
//! left out, hard links become separate files, set-user-id and set-group-id bits are
//! dropped, owners become the user pyro runs as, extended attributes are not carried.
//! `mke2fs -d` copies all of that as it finds it. So the direct path is taken only for
//! a tree where there is nothing to normalise; anything else is staged as before.

use pyro_agent::archive::{self, ArchiveError, Survey};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Why `mke2fs -d` cannot read a directory seed straight from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Staged {
    /// A fifo, socket or device: the archive skips it, `mke2fs -d` would copy it.
    SpecialFile(PathBuf),
    /// A file or symlink with more than one link: the archive makes separate files,
    /// `mke2fs -d` would keep the link.
    HardLink(PathBuf),
    /// A set-user-id or set-group-id bit, which unpacking drops.
    SetId(PathBuf),
    /// An owner other than the one unpacking as this user gives every entry.
    Owner(PathBuf),
    /// Extended attributes (or ACLs), which `mke2fs -d` copies and the archive does not
    /// carry; also when they cannot be listed.
    Xattrs(PathBuf),
    /// Not readable by its owner: packing reports the error it always did.
    Unreadable(PathBuf),
    /// The workspace volume would be written inside the seed itself.
    VolumeInside,
}

impl std::fmt::Display for Staged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (what, path) = match self {
            Staged::SpecialFile(p) => ("a special file", p),
            Staged::HardLink(p) => ("a hard link", p),
            Staged::SetId(p) => ("a set-user-id or set-group-id bit", p),
            Staged::Owner(p) => ("an owner other than pyro's user", p),
            Staged::Xattrs(p) => ("extended attributes", p),
            Staged::Unreadable(p) => ("an entry its owner cannot read", p),
            Staged::VolumeInside => return f.write_str("the workspace volume lies inside it"),
        };
        write!(f, "{what}: {}", path.display())
    }
}

/// A surveyed directory seed.
#[derive(Debug, Clone)]
pub struct DirectorySurvey {
    /// What its archive would be.
    pub archive: Survey,
    /// `Ok`: `mke2fs -d` may read the directory itself; else the first reason not to.
    pub direct: Result<(), Staged>,
}

/// The owner unpacking gives every entry it creates: the effective user and group
/// (the staging tree's parents have no set-group-id bit: `/dev/shm` or pyro's own
/// volume directory).
fn staging_owner() -> (u32, u32) {
    use crate::backend::qemu::confine::{effective_gid, effective_uid};
    (effective_uid(), effective_gid())
}

/// Whether `path` carries extended attributes (`llistxattr`, not following a link).
/// An error listing them counts as having some: `mke2fs -d` would fail on it.
fn has_xattrs(path: &Path) -> bool {
    match xattr::list(path) {
        Ok(mut names) => names.next().is_some(),
        Err(e) => !matches!(e.raw_os_error(), Some(libc::ENOTSUP)),
    }
}

/// The first reason the entry `path` (with its `lstat` data) needs staging.
fn check_entry(path: &Path, meta: &fs::Metadata, owner: (u32, u32)) -> Option<Staged> {
    let kind = meta.file_type();
    let path = || path.to_path_buf();
    if !(kind.is_dir() || kind.is_file() || kind.is_symlink()) {
        return Some(Staged::SpecialFile(path()));
    }
    if !kind.is_dir() && meta.nlink() != 1 {
        return Some(Staged::HardLink(path()));
    }
    if !kind.is_symlink() && meta.mode() & 0o6000 != 0 {
        return Some(Staged::SetId(path()));
    }
    if (meta.uid(), meta.gid()) != owner {
        return Some(Staged::Owner(path()));
    }
    // Root reads everything; another user reads by the owner bits (the entry is its own).
    let needs = if kind.is_dir() { 0o500 } else { 0o400 };
    if owner.0 != 0 && !kind.is_symlink() && meta.mode() & needs != needs {
        return Some(Staged::Unreadable(path()));
    }
    None
}

/// Survey the directory `dir` (`lstat` only; links are never followed). The archive
/// figures are exactly what packing it would give; `direct` says whether the
/// directory can be the `mke2fs -d` source.
pub fn survey(dir: &Path) -> Result<DirectorySurvey, ArchiveError> {
    let owner = staging_owner();
    let mut direct = Ok(());
    let root = fs::symlink_metadata(dir).map_err(|source| ArchiveError::Io {
        op: "stat",
        path: dir.to_path_buf(),
        source,
    })?;
    // The root becomes the file system's root directory, whose owner and mode mke2fs
    // sets itself (root_owner=0:0, 0755) on both paths; only its xattrs would be copied.
    if !root.is_dir() {
        return Err(ArchiveError::UnsupportedFileType(dir.to_path_buf()));
    }
    if has_xattrs(dir) {
        direct = Err(Staged::Xattrs(dir.to_path_buf()));
    }
    let archive = archive::survey_dir(dir, &mut |path, meta| {
        if direct.is_ok() {
            if let Some(reason) = check_entry(path, meta, owner) {
                direct = Err(reason);
            } else if has_xattrs(path) {
                direct = Err(Staged::Xattrs(path.to_path_buf()));
            }
        }
    })?;
    Ok(DirectorySurvey { archive, direct })
}

#[cfg(test)]
mod tests {
    //! The survey against the real packer: the same length and stats for trees with
    //! long names, long link targets, empty and odd-sized files, special files; and
    //! the direct path refused for each thing staging would normalise.
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn packed(dir: &Path) -> (u64, pyro_protocol::ArchiveStats) {
        let (bytes, _, stats) = archive::pack_path(dir).expect("pack");
        (bytes.len() as u64, stats)
    }

    fn plain_tree(root: &Path) {
        let long = "n".repeat(120);
        let deep = root.join("a").join(&long).join("b".repeat(90)).join("c".repeat(60));
        fs::create_dir_all(&deep).expect("mkdir");
        fs::create_dir_all(root.join("empty-dir")).expect("mkdir");
        fs::write(deep.join("f"), vec![7u8; 513]).expect("write");
        fs::write(root.join("empty"), b"").expect("write");
        fs::write(root.join("block"), vec![1u8; 512]).expect("write");
        fs::write(root.join("bin.sh"), b"#!/bin/sh\n").expect("write");
        fs::set_permissions(root.join("bin.sh"), fs::Permissions::from_mode(0o755)).expect("chmod");
        std::os::unix::fs::symlink("t".repeat(150), root.join("long-target")).expect("link");
        std::os::unix::fs::symlink("/etc/passwd", root.join("abs")).expect("link");
        std::os::unix::fs::symlink("empty", root.join(format!("l{long}"))).expect("link");
        fs::write(root.join("ünïcode-naïve"), "x").expect("write");
    }

    #[test]
    fn the_survey_counts_exactly_what_packing_writes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("seed");
        plain_tree(&root);
        let got = survey(&root).expect("survey");
        let (len, stats) = packed(&root);
        assert_eq!(got.archive.archive_bytes, len);
        assert_eq!(got.archive.stats, stats);
        assert_eq!(got.direct, Ok(()), "a plain tree owned by this user goes direct");

        // A fifo is skipped by both (not counted) and sends the seed through staging.
        let fifo = root.join("a/fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
        assert!(made.success(), "mkfifo");
        let got = survey(&root).expect("survey");
        assert_eq!((got.archive.archive_bytes, got.archive.stats), packed(&root));
        assert_eq!(got.direct, Err(Staged::SpecialFile(fifo)));
    }

    #[test]
    fn what_staging_normalises_sends_the_seed_through_staging() {
        let tmp = tempfile::tempdir().expect("tempdir");
        type Make = Box<dyn Fn(&Path) -> Staged>;
        let cases: Vec<(&str, Make)> = vec![
            (
                "hard link",
                Box::new(|root: &Path| {
                    fs::hard_link(root.join("empty"), root.join("again")).expect("link");
                    Staged::HardLink(root.join("again"))
                }),
            ),
            (
                "set-uid file",
                Box::new(|root: &Path| {
                    let p = root.join("bin.sh");
                    fs::set_permissions(&p, fs::Permissions::from_mode(0o4755)).expect("chmod");
                    Staged::SetId(p)
                }),
            ),
            (
                "extended attribute",
                Box::new(|root: &Path| {
                    let p = root.join("block");
                    xattr::set(&p, "user.origin", b"web").expect("setxattr");
                    Staged::Xattrs(p)
                }),
            ),
            (
                "set-gid directory",
                Box::new(|root: &Path| {
                    let p = root.join("empty-dir");
                    fs::set_permissions(&p, fs::Permissions::from_mode(0o2755)).expect("chmod");
                    Staged::SetId(p)
                }),
            ),
        ];
        for (i, (case, make)) in cases.into_iter().enumerate() {
            let root = tmp.path().join(format!("seed-{i}"));
            plain_tree(&root);
            let expected = make(&root);
            let got = survey(&root).expect("survey");
            assert_eq!(got.direct, Err(expected.clone()), "{case}");
            // The first one found wins; the hard link pair is met in name order.
            let (len, stats) = packed(&root);
            assert_eq!((got.archive.archive_bytes, got.archive.stats), (len, stats), "{case}");
        }
        let owner = staging_owner();
        let meta = fs::symlink_metadata(tmp.path()).expect("stat");
        let other = (owner.0 + 1, owner.1);
        assert_eq!(
            check_entry(tmp.path(), &meta, other),
            Some(Staged::Owner(tmp.path().to_path_buf()))
        );
    }
}
