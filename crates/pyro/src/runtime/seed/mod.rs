//! Host-side archives: turning a seed or sync source into a checked tar (or, for a
//! directory seeding a volume, a surveyed directory packed only if a tar is needed),
//! and writing an exported tar to a new host path. Both reuse the agent crate's
//! tar-slip-safe code.

mod survey;

pub use survey::{DirectorySurvey, Staged};

use super::error::{PyroError, Result};
use super::transfer::{TransferLimits, MAX_ENTRIES_ENV};
use crate::backend::limits::{GuestLimits, MAX_TRANSFER_ENV};
use pyro_agent::archive;
use pyro_protocol::{ArchiveStats, ArtifactType};
use std::fs::{self, File};
use std::io::{BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Largest seed or sync archive accepted (bytes, uncompressed): the transfer cap
/// ([`GuestLimits::max_transfer_bytes`]), so whatever goes in can also come back out as
/// a baseline, snapshot or export.
pub fn max_seed_bytes() -> u64 {
    GuestLimits::from_env().max_transfer_bytes
}

fn too_large(source: &Path, max: u64) -> PyroError {
    PyroError::invalid(format!(
        "{} is larger than {} MiB as an archive (the transfer cap; raise it with {MAX_TRANSFER_ENV})",
        source.display(),
        max / (1024 * 1024)
    ))
}

/// A checked seed source.
#[derive(Debug)]
pub struct Seed {
    /// Its content: a checked tar, or a directory not packed yet.
    pub content: SeedContent,
    /// `directory` or `tar_archive`.
    pub mode: &'static str,
    /// Absolute source path.
    pub source: PathBuf,
    /// `seed_path`, `project_path` or `repo_url` (see [`crate::project::OriginKind`]).
    pub origin_kind: &'static str,
    /// The source as the caller knows it: the path, or `URL@COMMIT`.
    pub origin_ref: Option<String>,
}

/// What a [`Seed`] holds.
#[derive(Debug)]
pub enum SeedContent {
    /// The plain tar, in an unlinked temporary file (never whole in memory).
    Tar(File),
    /// A host directory within the limits, packed only when a tar is needed
    /// ([`Seed::tar`]): a volume can be made from the directory itself.
    Directory(DirectorySurvey),
}

impl Seed {
    /// The seed as a checked tar, rewound: a directory is packed now (once), refused
    /// with the same errors as at [`prepare_tar`] when it grew past the limits since.
    pub fn tar(&mut self) -> Result<&mut File> {
        if let SeedContent::Directory(_) = self.content {
            self.content = SeedContent::Tar(pack_dir(&self.source, &TransferLimits::from_env())?);
        }
        match &mut self.content {
            SeedContent::Tar(file) => {
                file.rewind().map_err(|e| {
                    PyroError::io("could not read the seed archive", std::env::temp_dir(), e)
                })?;
                Ok(file)
            }
            SeedContent::Directory(_) => unreachable!("packed above"),
        }
    }

    /// Length of the seed as an archive (bytes), whether packed yet or not.
    pub fn archive_bytes(&self) -> u64 {
        match &self.content {
            SeedContent::Tar(file) => file.metadata().map(|m| m.len()).unwrap_or(u64::MAX),
            SeedContent::Directory(survey) => survey.archive.archive_bytes,
        }
    }
}

/// Expand `~` and make a host path absolute.
pub fn absolute(path: &str) -> Result<PathBuf> {
    if path.trim().is_empty() {
        return Err(PyroError::invalid("host path must not be empty"));
    }
    let expanded = match path.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(rest),
        None => PathBuf::from(path),
    };
    if expanded.is_absolute() {
        return Ok(expanded);
    }
    let cwd = std::env::current_dir()
        .map_err(|e| PyroError::io("could not read the current directory", ".", e))?;
    Ok(cwd.join(expanded))
}

fn is_archive_name(path: &Path) -> Option<bool> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".tar") {
        Some(false)
    } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Some(true)
    } else {
        None
    }
}

fn spool_file() -> Result<File> {
    tempfile::tempfile()
        .map_err(|e| PyroError::io("could not create a spool file in", std::env::temp_dir(), e))
}

/// An unlinked temporary file holding `bytes` (a tar packed in memory elsewhere).
pub fn spool(bytes: &[u8]) -> Result<File> {
    let mut file = spool_file()?;
    file.write_all(bytes)
        .map_err(|e| PyroError::io("could not write a spool file in", std::env::temp_dir(), e))?;
    Ok(file)
}

fn too_many_entries(source: &Path, max: u64) -> PyroError {
    PyroError::invalid(format!(
        "{} holds more than {max} entries (the archive entry cap; raise it with {MAX_ENTRIES_ENV})",
        source.display()
    ))
}

/// Pack the directory `source` into a spooled tar, refused over the limits.
fn pack_dir(source: &Path, limits: &TransferLimits) -> Result<File> {
    let spool_err = |e: std::io::Error| {
        PyroError::io("could not write a spool file in", std::env::temp_dir(), e)
    };
    let (writer, _, stats) = archive::pack_path_to(source, BufWriter::new(spool_file()?))
        .map_err(|e| PyroError::invalid(format!("could not pack {}: {e}", source.display())))?;
    let mut tar = writer.into_inner().map_err(|e| spool_err(e.into_error()))?;
    let len = tar.stream_position().map_err(spool_err)?;
    check_limits(source, len, stats.entry_count, limits)?;
    Ok(tar)
}

/// The size cap first, then the entry cap (the order the errors always came in).
fn check_limits(source: &Path, bytes: u64, entries: u64, limits: &TransferLimits) -> Result<()> {
    if bytes > limits.max_total_bytes {
        return Err(too_large(source, limits.max_total_bytes));
    }
    if entries > limits.max_entries {
        return Err(too_many_entries(source, limits.max_entries));
    }
    Ok(())
}

/// Read a directory or `.tar`/`.tar.gz`/`.tgz` into a tar that is safe to unpack,
/// spooled to a temporary file: memory stays bounded whatever the source's size.
pub fn prepare_tar(path: &str) -> Result<Seed> {
    prepare_as(path, false, &TransferLimits::from_env())
}

/// Check a seed source: a directory is surveyed (`lstat` only) against the limits and
/// left unpacked (see [`Seed::tar`]); an archive is spooled and validated.
pub fn prepare(path: &str) -> Result<Seed> {
    prepare_as(path, true, &TransferLimits::from_env())
}

fn prepare_as(path: &str, lazy: bool, limits: &TransferLimits) -> Result<Seed> {
    let source = absolute(path)?;
    let meta = fs::metadata(&source).map_err(|_| {
        PyroError::invalid(format!("seed_path {} does not exist", source.display()))
    })?;
    let max = limits.max_total_bytes;
    let origin_ref = Some(source.display().to_string());
    if meta.is_dir() {
        let linked = fs::symlink_metadata(&source).is_ok_and(|m| m.file_type().is_symlink());
        let content = if linked || !lazy {
            // A symlink to a directory packs as that one link, as it always did.
            SeedContent::Tar(pack_dir(&source, limits)?)
        } else {
            let survey = survey::survey(&source).map_err(|e| {
                PyroError::invalid(format!("could not pack {}: {e}", source.display()))
            })?;
            let (bytes, entries) = (survey.archive.archive_bytes, survey.archive.stats.entry_count);
            check_limits(&source, bytes, entries, limits)?;
            tracing::debug!(source = %source.display(), bytes, entries, direct = survey.direct.is_ok(), "seed: surveyed");
            SeedContent::Directory(survey)
        };
        return Ok(Seed {
            content,
            mode: "directory",
            source,
            origin_kind: "seed_path",
            origin_ref,
        });
    }
    let Some(gzipped) = is_archive_name(&source).filter(|_| meta.is_file()) else {
        return Err(PyroError::invalid(
            "seed_path must be a directory or a .tar/.tar.gz/.tgz archive",
        ));
    };
    let file = fs::File::open(&source).map_err(|e| PyroError::io("could not open", &source, e))?;
    let mut tar = spool_file()?;
    let read = if gzipped {
        std::io::copy(&mut flate2::read::GzDecoder::new(file).take(max + 1), &mut tar)
    } else {
        std::io::copy(&mut file.take(max + 1), &mut tar)
    };
    let len = read.map_err(|e| {
        PyroError::invalid(format!("could not read archive {}: {e}", source.display()))
    })?;
    if len > max {
        return Err(too_large(&source, max));
    }
    // Links are kept as links in the guest (any target); nothing is written through one.
    archive::validate_reader(&mut tar, archive::LinkTargets::Kept, limits.max_entries).map_err(
        |e| match e {
            archive::ArchiveError::TooManyEntries { max } => too_many_entries(&source, max),
            e => PyroError::invalid(format!("unsafe or invalid archive {}: {e}", source.display())),
        },
    )?;
    Ok(Seed {
        content: SeedContent::Tar(tar),
        mode: "tar_archive",
        source,
        origin_kind: "seed_path",
        origin_ref,
    })
}

/// Write an exported archive to `output` (which must not exist): a directory becomes a
/// new directory, a file or symlink becomes that single entry.
pub fn write_export<R: Read + Seek>(
    tar: R,
    kind: ArtifactType,
    output: &Path,
) -> Result<ArchiveStats> {
    let max_entries = TransferLimits::from_env().max_entries;
    let parent = output.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(parent).map_err(|e| PyroError::io("could not create", parent, e))?;
    let staging = parent.join(format!(".pyro-export-{}", super::state::new_id()));
    let result = (|| -> Result<ArchiveStats> {
        // Links are kept verbatim (absolute ones too): the export writes nothing
        // through them and pyro never follows them afterwards.
        let stats =
            archive::unpack_from(tar, &staging, false, archive::LinkTargets::Kept, max_entries)
                .map_err(|e| {
                    PyroError::invalid(format!("exported archive could not be written: {e}"))
                })?;
        let from = match kind {
            ArtifactType::Directory => staging.clone(),
            _ => {
                let mut entries = fs::read_dir(&staging)
                    .map_err(|e| PyroError::io("could not read", &staging, e))?
                    .flatten();
                match (entries.next(), entries.next()) {
                    (Some(only), None) => only.path(),
                    _ => {
                        return Err(PyroError::invalid(
                            "exported archive of a single file did not hold exactly one entry",
                        ))
                    }
                }
            }
        };
        fs::rename(&from, output).map_err(|e| PyroError::io("could not write", output, e))?;
        Ok(stats)
    })();
    if staging.exists() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

#[cfg(test)]
mod tests {
    //! Exports of archives forged by a hostile guest: each is refused before anything
    //! is written, and nothing ever lands outside the output path.
    use super::*;

    /// `(name, type, data, link)` members with raw GNU headers, so hostile names stay.
    fn forged(members: &[(&str, tar::EntryType, &[u8], &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind, data, link) in members {
            let mut header = tar::Header::new_gnu();
            let gnu = header.as_gnu_mut().expect("gnu");
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
            header.set_entry_type(*kind);
            header.set_mode(0o644);
            header.set_size(data.len() as u64);
            header.set_cksum();
            builder.append(&header, *data).expect("append");
        }
        builder.into_inner().expect("finish")
    }

    fn names_below(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                out.push(path.strip_prefix(root).expect("below").display().to_string());
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(path);
                }
            }
        }
        out.sort();
        out
    }

    /// A surveyed directory is accepted or refused at exactly the limits where packing
    /// it is, with the same error.
    #[test]
    fn the_survey_and_packing_meet_the_limits_alike() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("seed");
        fs::create_dir_all(root.join("d".repeat(120)).join("sub")).expect("mkdir");
        fs::write(root.join("a.txt"), vec![b'a'; 1000]).expect("write");
        fs::write(root.join("d".repeat(120)).join("sub/b"), b"b").expect("write");
        std::os::unix::fs::symlink("/etc/passwd", root.join("abs")).expect("link");
        let (bytes, _, stats) = archive::pack_path(&root).expect("pack");
        let (len, entries) = (bytes.len() as u64, stats.entry_count);
        let path = root.display().to_string();
        for (max_total_bytes, max_entries) in
            [(len, entries), (len - 1, entries), (len, entries - 1), (len - 1, entries - 1)]
        {
            let limits = TransferLimits { max_total_bytes, chunk_bytes: 1 << 20, max_entries };
            let outcome = |lazy| match prepare_as(&path, lazy, &limits) {
                Ok(mut seed) => {
                    let direct = matches!(seed.content, SeedContent::Directory(_));
                    assert_eq!(seed.archive_bytes(), len, "lazy {lazy}");
                    assert_eq!(direct, lazy, "only a lazy prepare leaves the directory");
                    assert_eq!(seed.tar().expect("tar").metadata().expect("len").len(), len);
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            };
            let (surveyed, packed) = (outcome(true), outcome(false));
            assert_eq!(surveyed, packed, "limits {max_total_bytes} bytes, {max_entries} entries");
            assert_eq!(packed.is_ok(), max_total_bytes == len && max_entries == entries);
        }
    }

    #[test]
    fn forged_export_archives_write_nothing() {
        use tar::EntryType::{Block, Char, Link, Regular, Symlink};
        let tmp = tempfile::tempdir().expect("tempdir");
        let host = tmp.path().join("host");
        fs::create_dir_all(host.join("victim")).expect("mkdir");
        fs::write(host.join("victim/secret"), "keep").expect("write");
        // A huge sparse file: a header that claims 64 GiB with no data behind it.
        let mut header = tar::Header::new_gnu();
        header.set_path("big").expect("name");
        header.set_entry_type(Regular);
        header.set_size(64 << 30);
        header.set_cksum();
        let mut sparse = header.as_bytes().to_vec();
        sparse.extend_from_slice(&[0u8; 1024]);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("dotdot", forged(&[("../victim/secret", Regular, b"pwn", "")])),
            ("absolute", forged(&[("/tmp/pyro-pwned", Regular, b"pwn", "")])),
            (
                "write through symlink",
                forged(&[("l", Symlink, b"", "../victim"), ("l/secret", Regular, b"pwn", "")]),
            ),
            (
                "write through absolute symlink",
                forged(&[("l", Symlink, b"", "/"), ("l/tmp/pyro-pwned", Regular, b"pwn", "")]),
            ),
            ("hard link", forged(&[("h", Link, b"", "../victim/secret")])),
            ("char device", forged(&[("null", Char, b"", "")])),
            ("block device", forged(&[("sda", Block, b"", "")])),
            ("huge sparse file", sparse),
            ("garbage", b"\x00not a tar at all".repeat(100)),
        ];
        for (case, tar) in cases {
            let output = host.join("out");
            let err = write_export(std::io::Cursor::new(&tar), ArtifactType::Directory, &output)
                .expect_err(case);
            assert!(err.to_string().contains("exported archive"), "{case}: {err}");
            assert!(!output.exists(), "{case}: output written");
            assert_eq!(names_below(&host), ["victim", "victim/secret"], "{case}");
            assert_eq!(fs::read_to_string(host.join("victim/secret")).expect("read"), "keep");
        }
        assert!(!Path::new("/tmp/pyro-pwned").exists());
    }

    #[test]
    fn exported_symlinks_stay_links_whatever_their_target() {
        use tar::EntryType::{Directory, Regular, Symlink};
        let tmp = tempfile::tempdir().expect("tempdir");
        let tar = forged(&[
            ("src", Directory, b"", ""),
            ("src/main.rs", Regular, b"fn main() {}", ""),
            ("etc-passwd", Symlink, b"", "/etc/passwd"),
            ("src/up", Symlink, b"", "../../../outside"),
            ("src/main-link", Symlink, b"", "main.rs"),
        ]);
        let output = tmp.path().join("export");
        let stats = write_export(std::io::Cursor::new(&tar), ArtifactType::Directory, &output)
            .expect("export");
        assert_eq!(stats.symlink_count, 3);
        assert_eq!(stats.entry_count, 5);
        assert_eq!(
            fs::read_link(output.join("etc-passwd")).expect("link"),
            Path::new("/etc/passwd")
        );
        assert_eq!(
            fs::read_link(output.join("src/up")).expect("link"),
            Path::new("../../../outside")
        );
        assert_eq!(fs::read_to_string(output.join("src/main-link")).expect("read"), "fn main() {}");
        assert_eq!(
            names_below(tmp.path()).len(),
            6,
            "only the export: {:?}",
            names_below(tmp.path())
        );
    }
}
